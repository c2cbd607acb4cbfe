//! The sticky-packet demonstration over loopback: a sender writes small
//! messages back to back, a receiver records how its reads cut the
//! stream, and the proto crate's `sticky::cut` says what each read held.

use std::io::{self, Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::Duration;

use sockit_proto::lab::sticky::{self, LengthPrefixed};

/// How long any read or write of the demonstration may wait.
const PATIENCE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    pub messages: usize,
    pub size: usize,
    /// TCP_NODELAY on the sender: each write goes out at once, without
    /// waiting to gather small ones (Nagle's algorithm).
    pub nodelay: bool,
    /// A pause after each message.
    pub pause: Duration,
    /// The receiver starts reading only once everything was sent: the
    /// course's "the receiver did not take it in time".
    pub late_receiver: bool,
    /// A 4-byte length before each message, and a receiver that decodes it.
    pub framed: bool,
    /// Bytes each read asks for (the course's `recv(1024)`).
    pub recv_size: usize,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    /// The sizes of the messages as written (with their prefix when framed).
    pub written: Vec<usize>,
    /// The sizes the reads returned, in order.
    pub reads: Vec<usize>,
    /// Framed: how many messages came out, and whether each equals the
    /// one sent.
    pub decoded: Option<(usize, bool)>,
}

/// The message number `i`, `size` bytes: readable on the wire.
pub fn message(i: usize, size: usize) -> Vec<u8> {
    let label = format!("msg{i:03};");
    label.bytes().cycle().take(size.max(1)).collect()
}

pub fn run(scenario: Scenario) -> io::Result<Outcome> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let sent: Vec<Vec<u8>> = (0..scenario.messages).map(|i| message(i, scenario.size)).collect();
    let writes: Vec<Vec<u8>> = if scenario.framed {
        sent.iter().map(|m| sticky::frame(m)).collect()
    } else {
        sent.clone()
    };
    let written = writes.iter().map(Vec::len).collect();
    let sender = std::thread::spawn(move || -> io::Result<()> {
        let mut s = TcpStream::connect(addr)?;
        s.set_write_timeout(Some(PATIENCE))?;
        s.set_nodelay(scenario.nodelay)?;
        for w in &writes {
            // One write per message: what the sender thinks of as one.
            s.write_all(w)?;
            if !scenario.pause.is_zero() {
                std::thread::sleep(scenario.pause);
            }
        }
        s.shutdown(Shutdown::Write)
    });
    let (mut conn, _) = listener.accept()?;
    conn.set_read_timeout(Some(PATIENCE))?;
    let mut sender = Some(sender);
    if scenario.late_receiver {
        if let Some(s) = sender.take() {
            s.join().map_err(|_| io::Error::other("the sender panicked"))??;
        }
    }
    let mut buf = vec![0u8; scenario.recv_size.max(1)];
    let mut reads = Vec::new();
    let mut decoder = scenario.framed.then(LengthPrefixed::default);
    let mut decoded = Vec::new();
    loop {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            break;
        }
        reads.push(n);
        if let Some(d) = decoder.as_mut() {
            decoded.extend(d.push(buf.get(..n).unwrap_or_default()).map_err(io::Error::other)?);
        }
    }
    if let Some(s) = sender {
        s.join().map_err(|_| io::Error::other("the sender panicked"))??;
    }
    let decoded = scenario.framed.then(|| (decoded.len(), decoded == sent));
    Ok(Outcome {
        written,
        reads,
        decoded,
    })
}
