//! `sockit chat join`: typed lines to the room, the room's lines back.
//! The room speaks UTF-8; the binary converts for GBK terminals.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc;

use sockit_proto::chat::{Line, LineReader, MAX_ROOM_LINE, Nick};

use crate::Error;
use crate::clients::{Dial, connect};

/// A room that does not answer is noticed by TCP keepalive: after this much
/// silence the kernel probes, and a dead room ends the session within a
/// minute or two instead of never. (A quiet room is normal: silence alone
/// is not a reason to leave.)
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_PROBES: u32 = 6;

/// Connects, takes `nick` if given, then relays: each line from `input`
/// goes to the room, each line from the room to `output`. Returns when the
/// room closes the connection; input ending sends `/quit`.
///
/// The room's first line must arrive within `timeout`; no line may be
/// longer than [`MAX_ROOM_LINE`] (a room that sends more without a newline
/// is refused, not buffered).
pub async fn join(
    addr: &str,
    dial: &Dial,
    nick: Option<&Nick>,
    mut input: mpsc::Receiver<String>,
    output: mpsc::Sender<String>,
    timeout: Duration,
) -> Result<(), Error> {
    let stream = connect(addr, dial, timeout).await?;
    let auth = dial.auth.as_ref();
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    let _ = socket2::SockRef::from(stream.tcp()).set_tcp_keepalive(&keepalive);
    let (mut reader, mut writer) = tokio::io::split(stream);
    if let Some(nick) = nick {
        writer
            .write_all(format!("/nick {nick}\n").as_bytes())
            .await
            .map_err(Error::io("sending the nick"))?;
    }
    let mut lines = LineReader::with_max(MAX_ROOM_LINE);
    let mut buf = vec![0u8; 16 * 1024];
    let mut input_open = true;
    let mut welcomed = false;
    let welcome_by = tokio::time::Instant::now() + timeout;
    // Without a key, the first bytes are held until they are known not to
    // be an auth challenge, so a keyed room is reported, not shown as junk.
    let mut first = (auth.is_none()).then(Vec::new);
    loop {
        tokio::select! {
            read = reader.read(&mut buf) => match read {
                Ok(0) if !welcomed && auth.is_some() => return Err(Error::AuthRejected),
                Ok(0) if !welcomed => return Err(Error::Closed { op: "joining the room" }),
                Ok(0) => return Ok(()),
                Ok(n) => {
                    let mut data = buf.get(..n).unwrap_or_default().to_vec();
                    if let Some(held) = &mut first {
                        held.extend_from_slice(&data);
                        match first_bytes(held) {
                            First::Challenge => return Err(Error::AuthWanted),
                            First::Undecided => continue,
                            First::Text => data = first.take().unwrap_or_default(),
                        }
                    }
                    let mut got = Vec::new();
                    lines.push(&data, |l| got.push(l));
                    for line in got {
                        let text = match line {
                            Line::Text(t) => t,
                            Line::NotUtf8 => "(the room sent a line that is not UTF-8)".to_owned(),
                            Line::TooLong => {
                                return Err(Error::Protocol(format!(
                                    "the room sent a line longer than {MAX_ROOM_LINE} bytes"
                                )));
                            }
                        };
                        welcomed = true;
                        if output.send(text).await.is_err() {
                            return Ok(());
                        }
                    }
                }
                Err(e) => return Err(Error::Io { op: "reading from the room", source: e }),
            },
            () = tokio::time::sleep_until(welcome_by), if !welcomed => {
                return Err(Error::Timeout { op: "waiting for the room's welcome", after: timeout });
            }
            typed = input.recv(), if input_open => match typed {
                Some(text) => writer.write_all(format!("{text}\n").as_bytes()).await.map_err(Error::io("sending"))?,
                None => {
                    input_open = false;
                    writer.write_all(b"/quit\n").await.map_err(Error::io("sending /quit"))?;
                }
            },
        }
    }
}

/// What a keyless client's first bytes are.
enum First {
    Challenge,
    /// Text so far, but neither a whole line nor a challenge's length yet.
    Undecided,
    Text,
}

fn first_bytes(held: &[u8]) -> First {
    use sockit_proto::auth::{CHALLENGE_LEN, is_text, looks_like_challenge};
    match held.get(..CHALLENGE_LEN) {
        Some(head) if looks_like_challenge(head) => First::Challenge,
        Some(_) => First::Text,
        // A challenge comes in one write, so a short text start is the room's.
        None if is_text(held) => First::Text,
        None => First::Undecided,
    }
}
