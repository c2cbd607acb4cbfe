//! `sockit nc` end to end: the real binary against sockit's own servers,
//! socat (as a listener that announces its port) and ncat (as a client),
//! and plain std sockets where the test must see the exact wire bytes.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use support::{KillOnDrop, Sandbox, peer_available, start_echo};

/// Long enough for any loaded machine; only a hang reaches it.
const PATIENCE: Duration = Duration::from_secs(30);

fn all_bytes() -> Vec<u8> {
    (0..=255u8).collect()
}

/// A `sockit nc` process with every stream piped.
struct Nc {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Nc {
    fn spawn(sandbox: &Sandbox, args: &[&str]) -> Self {
        let mut child = sandbox
            .cmd()
            .arg("nc")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        Self { child, out }
    }

    /// Starts a listener and returns it with the address it announced.
    fn listen(sandbox: &Sandbox, args: &[&str]) -> (Self, SocketAddr) {
        let mut nc = Self::spawn(sandbox, args);
        let mut err = BufReader::new(nc.child.stderr.take().unwrap());
        let mut line = String::new();
        err.read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .unwrap();
        std::thread::spawn(move || for _ in err.lines() {});
        (nc, addr)
    }

    fn send(&mut self, bytes: &[u8]) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(bytes).unwrap();
        stdin.flush().unwrap();
    }

    fn close_stdin(&mut self) {
        drop(self.child.stdin.take());
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.out.read_line(&mut l).unwrap();
        l.trim_end().to_owned()
    }

    /// Reads stdout lines until one contains `needle`; returns them all.
    fn lines_until(&mut self, needle: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let l = self.line();
            assert!(
                !l.is_empty() || seen.len() < 1000,
                "stdout ended before {needle:?}: {seen:?}"
            );
            let done = l.contains(needle);
            seen.push(l);
            if done {
                return seen;
            }
        }
    }

    fn finish(mut self) -> (ExitStatus, Vec<u8>) {
        self.close_stdin();
        let mut out = Vec::new();
        self.out.read_to_end(&mut out).unwrap();
        (wait(&mut self.child), out)
    }
}

impl Drop for Nc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait(child: &mut Child) -> ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(started.elapsed() < PATIENCE, "process did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `sockit nc ARGS` with `stdin` and returns (status, stdout, stderr).
fn run_nc(sandbox: &Sandbox, args: &[&str], stdin: &[u8]) -> (ExitStatus, Vec<u8>, String) {
    let mut nc = Nc::spawn(sandbox, args);
    nc.send(stdin);
    let mut err = nc.child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).unwrap();
        s
    });
    let (status, out) = nc.finish();
    (status, out, stderr.join().unwrap())
}

/// socat listening on a port it picks; returns it and the port it announced.
fn socat_listen(args: &[&str]) -> (KillOnDrop, u16) {
    let mut child = Command::new("socat")
        .args(["-d", "-d"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let port = loop {
        let mut line = String::new();
        assert!(err.read_line(&mut line).unwrap() > 0, "socat exited before listening");
        if line.contains("listening on") {
            break line.trim().rsplit(':').next().unwrap().parse().unwrap();
        }
    };
    std::thread::spawn(move || for _ in err.lines() {});
    (KillOnDrop(child), port)
}

/// A one-connection TCP peer in the test: runs `talk` on the accepted stream.
fn tcp_peer<T: Send + 'static>(
    talk: impl FnOnce(TcpStream) -> T + Send + 'static,
) -> (SocketAddr, std::thread::JoinHandle<T>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        talk(stream)
    });
    (addr, handle)
}

/// A peer that reads exactly `want` bytes, answers `reply`, and returns
/// what it read.
fn exchange_peer(want: usize, reply: &[u8]) -> (SocketAddr, std::thread::JoinHandle<Vec<u8>>) {
    let reply = reply.to_vec();
    tcp_peer(move |mut s| {
        let mut got = vec![0u8; want];
        s.read_exact(&mut got).unwrap();
        s.write_all(&reply).unwrap();
        got
    })
}

fn read_all(mut stream: TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    stream.read_to_end(&mut got).unwrap();
    got
}

// ---- TCP client ----

#[test]
fn binary_round_trip_through_socat_cat_and_half_close() {
    if !peer_available("socat", &["-h"]) {
        return;
    }
    // cat echoes until our half-close, then exits and closes: every byte
    // value must come back unchanged, and only after EOF was sent.
    let (_socat, port) = socat_listen(&["TCP-LISTEN:0,bind=127.0.0.1", "EXEC:cat"]);
    let sandbox = Sandbox::new();
    let data: Vec<u8> = all_bytes().repeat(64);
    let (status, out, _) = run_nc(&sandbox, &["127.0.0.1", &port.to_string()], &data);
    assert!(status.success());
    assert_eq!(out, data);
}

#[test]
fn a_reply_sent_after_eof_is_received() {
    if !peer_available("socat", &["-h"]) {
        return;
    }
    let (_socat, port) = socat_listen(&[
        "TCP-LISTEN:0,bind=127.0.0.1",
        "SYSTEM:cat >/dev/null; echo reply-after-eof",
    ]);
    let sandbox = Sandbox::new();
    let (status, out, _) = run_nc(&sandbox, &["127.0.0.1", &port.to_string()], b"x");
    assert!(status.success());
    assert_eq!(out, b"reply-after-eof\n");
}

#[test]
fn no_shutdown_keeps_the_write_side_open() {
    let (addr, peer) = tcp_peer(|mut s| {
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"x");
        // With the write side left open, EOF arrives only when nc exits
        // after -q; nc must be gone by then, so this reply goes unread.
        let rest = s.read(&mut buf).unwrap();
        let _ = s.write_all(b"saw-eof");
        rest
    });
    let sandbox = Sandbox::new();
    let port = addr.port().to_string();
    let (status, out, _) = run_nc(&sandbox, &["--no-shutdown", "-q", "0.5", "127.0.0.1", &port], b"x");
    assert!(status.success());
    assert_eq!(
        out, b"",
        "the reply to EOF must not arrive while the write side is open"
    );
    assert_eq!(peer.join().unwrap(), 0);
}

#[test]
fn against_sockit_echo_server() {
    let sandbox = Sandbox::new();
    let (_server, tcp, udp) = start_echo(&sandbox, &["--insecure-no-auth"]);
    let (host, port) = tcp.rsplit_once(':').unwrap();
    let (status, out, _) = run_nc(&sandbox, &[host, port], "hello 你好\n".as_bytes());
    assert!(status.success());
    assert_eq!(out, "hello 你好\n".as_bytes());
    // netcat-openbsd's -N (half-close at EOF), as the course types it.
    let (status, out, _) = run_nc(&sandbox, &["-N", host, port], b"with -N\n");
    assert!(status.success());
    assert_eq!(out, b"with -N\n");

    // UDP: one datagram out, the echo back; -q ends the run after EOF.
    let (host, port) = udp.rsplit_once(':').unwrap();
    let (status, out, _) = run_nc(&sandbox, &["-u", "-q", "2", host, port], b"ping");
    assert!(status.success());
    assert_eq!(out, b"ping");
}

#[test]
fn connection_refused_is_a_clear_failure() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let sandbox = Sandbox::new();
    let (status, _, err) = run_nc(&sandbox, &["127.0.0.1", &port], b"");
    assert_eq!(status.code(), Some(1));
    assert!(
        err.contains("cannot connect to 127.0.0.1:") && err.contains("refused"),
        "{err}"
    );
    // UDP hears of it through ICMP port-unreachable.
    let udp_port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let (status, _, err) = run_nc(&sandbox, &["-u", "127.0.0.1", &udp_port], b"anyone?");
    assert_eq!(status.code(), Some(1));
    assert!(err.contains("connection refused"), "{err}");
}

#[test]
fn idle_timeout_and_quit_after_eof() {
    let sandbox = Sandbox::new();
    // -w: the peer never sends and stdin stays open: nc gives up.
    let (addr, peer) = tcp_peer(read_all);
    let mut nc = Nc::spawn(&sandbox, &["-w", "0.3", "127.0.0.1", &addr.port().to_string()]);
    let started = Instant::now();
    let status = wait(&mut nc.child);
    assert!(status.success());
    assert!(started.elapsed() >= Duration::from_millis(300));
    drop(nc);
    assert_eq!(peer.join().unwrap(), b"");

    // -q: stdin ends, the peer never closes: nc quits after -q.
    let (addr, peer) = tcp_peer(|mut s| {
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        // Hold the connection open until nc itself goes away.
        let _ = s.read(&mut [0u8; 1]);
        got
    });
    let (status, _, _) = run_nc(&sandbox, &["-q", "0.2", "127.0.0.1", &addr.port().to_string()], b"bye");
    assert!(status.success());
    assert_eq!(peer.join().unwrap(), b"bye");
}

// ---- listening ----

#[test]
fn listener_with_ncat_as_the_client_both_ways() {
    if !peer_available("ncat", &["-h"]) {
        return;
    }
    let sandbox = Sandbox::new();
    let (mut nc, addr) = Nc::listen(&sandbox, &["-l", "127.0.0.1", "0"]);
    let data: Vec<u8> = all_bytes().repeat(16);
    let mut ncat = Command::new("ncat")
        .args(["127.0.0.1", &addr.port().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut ncat_in = ncat.stdin.take().unwrap();
    ncat_in.write_all(&data).unwrap();
    let mut got = vec![0u8; data.len()];
    nc.out.read_exact(&mut got).unwrap();
    assert_eq!(got, data);
    // The other way: what sockit reads on stdin reaches ncat.
    nc.send(&data);
    nc.close_stdin();
    let mut back = vec![0u8; data.len()];
    ncat.stdout.as_mut().unwrap().read_exact(&mut back).unwrap();
    assert_eq!(back, data);
    drop(ncat_in);
    let _ncat = KillOnDrop(ncat);
    assert!(wait(&mut nc.child).success());
}

#[test]
fn keep_listening_serves_many_clients_and_broadcasts() {
    let sandbox = Sandbox::new();
    let (mut nc, addr) = Nc::listen(&sandbox, &["-lk", "127.0.0.1", "0", "--broadcast-to-all", "--tags"]);
    let mut clients: Vec<TcpStream> = Vec::new();
    for i in 1..=3 {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(PATIENCE)).unwrap();
        c.write_all(format!("from client {i}\n").as_bytes()).unwrap();
        let seen = nc.lines_until(&format!("from client {i}"));
        let last = seen.last().unwrap();
        // Each line names the client it came from.
        assert!(last.starts_with(&format!("#{i} {}", c.local_addr().unwrap())), "{last}");
        clients.push(c);
    }
    nc.send(b"to everyone\n");
    for c in &mut clients {
        let mut got = [0u8; 12];
        c.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"to everyone\n");
    }
    // Without --broadcast-to-all only the newest client hears it.
    let (mut one, addr) = Nc::listen(&sandbox, &["-lk", "127.0.0.1", "0", "--tags"]);
    let a = TcpStream::connect(addr).unwrap();
    one.lines_until("#1");
    let mut b = TcpStream::connect(addr).unwrap();
    one.lines_until("#2");
    one.send(b"newest\n");
    b.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut got = [0u8; 7];
    b.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"newest\n");
    one.close_stdin();
    // Input ended: every client is half-closed; `a` got nothing before EOF.
    a.set_read_timeout(Some(PATIENCE)).unwrap();
    assert_eq!(read_all(a.try_clone().unwrap()), b"");
}

#[test]
fn udp_listener_with_socat_and_many_peers() {
    let sandbox = Sandbox::new();
    if peer_available("socat", &["-h"]) {
        let (mut nc, addr) = Nc::listen(&sandbox, &["-u", "-l", "127.0.0.1", "0"]);
        let mut socat = Command::new("socat")
            .args(["-", &format!("UDP:{addr}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        socat.stdin.as_mut().unwrap().write_all(b"hello from socat\n").unwrap();
        assert_eq!(nc.line(), "hello from socat");
        nc.send(b"hello back\n");
        let mut back = BufReader::new(socat.stdout.take().unwrap());
        let mut line = String::new();
        back.read_line(&mut line).unwrap();
        assert_eq!(line, "hello back\n");
        let _socat = KillOnDrop(socat);
    }

    // -k: many peers on one socket, each tagged; broadcast reaches them all.
    let (mut nc, addr) = Nc::listen(
        &sandbox,
        &["-u", "-lk", "127.0.0.1", "0", "--broadcast-to-all", "--tags"],
    );
    let peers: Vec<UdpSocket> = (0..3).map(|_| UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
    for (i, p) in peers.iter().enumerate() {
        p.set_read_timeout(Some(PATIENCE)).unwrap();
        p.send_to(format!("peer {i}").as_bytes(), addr).unwrap();
        let seen = nc.lines_until(&format!("peer {i}"));
        assert!(
            seen.last()
                .unwrap()
                .starts_with(&format!("#{} {}", i + 1, p.local_addr().unwrap()))
        );
    }
    nc.send(b"all of you\n");
    for p in &peers {
        let mut buf = [0u8; 64];
        let n = p.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"all of you\n");
    }
}

// ---- port checks ----

#[test]
fn port_check_open_and_closed() {
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let open_port = open.local_addr().unwrap().port();
    let closed_port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let sandbox = Sandbox::new();
    let (status, out, _) = run_nc(&sandbox, &["-z", "127.0.0.1", &open_port.to_string()], b"");
    assert!(status.success());
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!("127.0.0.1 {open_port}/tcp open\n")
    );
    let (status, out, _) = run_nc(&sandbox, &["-z", "127.0.0.1", &closed_port.to_string()], b"");
    assert_eq!(status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!("127.0.0.1 {closed_port}/tcp closed\n")
    );

    let list = format!("{closed_port},{open_port}");
    let (status, out, _) = run_nc(&sandbox, &["-z", "--json", "127.0.0.1", &list], b"");
    assert!(status.success());
    let reports: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(reports.len(), 2);
    for r in &reports {
        let want = if r["port"] == open_port { "open" } else { "closed" };
        assert_eq!(r["state"], want, "{r}");
        assert_eq!(r["protocol"], "tcp");
    }
    // UDP: ICMP port-unreachable means closed.
    let udp_closed = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let (status, out, _) = run_nc(&sandbox, &["-zu", "-w", "5", "127.0.0.1", &udp_closed], b"");
    assert_eq!(status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!("127.0.0.1 {udp_closed}/udp closed\n")
    );
    let (status, _, err) = run_nc(&sandbox, &["-z", "127.0.0.1", "30-20"], b"");
    assert_eq!(status.code(), Some(2), "{err}");
}

// ---- the assistant's features ----

#[test]
fn gbk_round_trip() {
    // Answers with 再见 in GBK.
    let (addr, peer) = exchange_peer(5, &[0xd4, 0xd9, 0xbc, 0xfb, b'\n']);
    let sandbox = Sandbox::new();
    let port = addr.port().to_string();
    let (status, out, _) = run_nc(
        &sandbox,
        &["--encoding", "gbk", "127.0.0.1", &port],
        "你好\n".as_bytes(),
    );
    assert!(status.success());
    assert_eq!(
        peer.join().unwrap(),
        [0xc4, 0xe3, 0xba, 0xc3, b'\n'],
        "GBK bytes on the wire"
    );
    assert_eq!(String::from_utf8(out).unwrap(), "再见\n", "shown decoded");
}

#[test]
fn hex_send_and_show() {
    let (addr, peer) = exchange_peer(3, &[0x00, 0x01, 0xfe, b'A']);
    let sandbox = Sandbox::new();
    let port = addr.port().to_string();
    let (status, out, err) = run_nc(
        &sandbox,
        &["--send-hex", "--hex", "127.0.0.1", &port],
        b"zz\n01 02 ff\n",
    );
    assert!(status.success());
    assert_eq!(peer.join().unwrap(), [1, 2, 255]);
    assert!(err.contains("not sent: 'z' at column 1 is not a hex digit"), "{err}");
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains(&format!("{addr} < 4 bytes")), "{out}");
    assert!(out.contains("  00000000  00 01 fe 41 "), "{out}");
    assert!(out.contains("|...A|"), "{out}");
    assert!(
        out.contains(&format!("{addr} > 3 bytes")),
        "sent bytes shown with >: {out}"
    );
}

#[test]
fn periodic_send_count() {
    let (addr, peer) = tcp_peer(read_all);
    let sandbox = Sandbox::new();
    let port = addr.port().to_string();
    let args = [
        "--data",
        "ping",
        "--append",
        "lf",
        "--interval",
        "10",
        "--count",
        "5",
        "127.0.0.1",
        &port,
    ];
    let (status, _, _) = run_nc(&sandbox, &args, b"");
    assert!(status.success());
    assert_eq!(peer.join().unwrap(), b"ping\n".repeat(5));
}

#[test]
fn every_append_against_known_vectors() {
    let sandbox = Sandbox::new();
    for (append, suffix) in [
        ("crlf", &b"\r\n"[..]),
        ("lf", b"\n"),
        ("cr", b"\r"),
        ("sum8", b"\xdd"),
        ("xor8", b"\x31"),
        ("crc16-modbus", b"\x37\x4b"),
        ("lrc", b"\x23"),
        ("crc16-ccitt", b"\x29\xb1"),
        ("crc32", b"\x26\x39\xf4\xcb"),
    ] {
        let (addr, peer) = tcp_peer(read_all);
        let port = addr.port().to_string();
        let (status, _, _) = run_nc(&sandbox, &["--append", append, "127.0.0.1", &port], b"123456789\n");
        assert!(status.success());
        let mut want = b"123456789".to_vec();
        want.extend_from_slice(suffix);
        assert_eq!(peer.join().unwrap(), want, "--append {append}");
    }
}

#[test]
fn frames_timestamps_log_and_stats() {
    let (addr, _peer) = tcp_peer(|mut s| {
        let mut wire = Vec::new();
        for msg in [&b"first"[..], b"", "第二".as_bytes()] {
            wire.extend_from_slice(&(msg.len() as u32).to_le_bytes());
            wire.extend_from_slice(msg);
        }
        // Split mid-prefix to show reassembly across reads.
        s.write_all(&wire[..6]).unwrap();
        s.flush().unwrap();
        s.write_all(&wire[6..]).unwrap();
    });
    let sandbox = Sandbox::new();
    let log = sandbox.path("session.log");
    let port = addr.port().to_string();
    let args = [
        "--frame",
        "len32le",
        "--timestamps",
        "--stats",
        "--log",
        log.to_str().unwrap(),
        "127.0.0.1",
        &port,
    ];
    let (status, out, err) = run_nc(&sandbox, &args, b"");
    assert!(status.success());
    let out = String::from_utf8(out).unwrap();
    let messages: Vec<&str> = out.lines().filter(|l| l.contains(" < ")).collect();
    assert_eq!(messages.len(), 3, "{out}");
    assert!(messages[0].ends_with("< message of 5 bytes: first"), "{out}");
    assert!(messages[1].ends_with("< message of 0 bytes: "), "{out}");
    assert!(messages[2].ends_with("< message of 6 bytes: 第二"), "{out}");
    // [HH:MM:SS.mmm] in front of each line.
    let stamp = &messages[0][..14];
    assert!(
        stamp.starts_with('[') && stamp.ends_with(']') && stamp.as_bytes()[9] == b'.',
        "{stamp}"
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("< message of 6 bytes: 第二"), "{logged}");
    assert!(logged.contains("-- "), "connection notices are logged: {logged}");
    assert!(err.contains("rx 23 bytes"), "{err}");
}

#[test]
fn usage_errors_exit_2() {
    let sandbox = Sandbox::new();
    for args in [
        &["127.0.0.1"][..],
        &["-k", "127.0.0.1", "80"],
        &["--encoding", "latin9", "127.0.0.1", "80"],
        &["--append", "crc64", "127.0.0.1", "80"],
        &["-n", "localhost", "80"],
        &["127.0.0.1", "99999"],
    ] {
        let (status, _, err) = run_nc(&sandbox, args, b"");
        assert_eq!(status.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with("sockit: ") || err.starts_with("error: "), "{err}");
    }
}

#[test]
fn source_address_and_json_events() {
    let (addr, peer) = tcp_peer(|mut s| {
        let from = s.peer_addr().unwrap();
        s.write_all(b"hi\n").unwrap();
        from
    });
    let free_port = TcpListener::bind("127.0.0.2:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let sandbox = Sandbox::new();
    let port = addr.port().to_string();
    let args = ["-s", "127.0.0.2", "-p", &free_port, "--json", "127.0.0.1", &port];
    let (status, out, _) = run_nc(&sandbox, &args, b"");
    assert!(status.success());
    assert_eq!(peer.join().unwrap().to_string(), format!("127.0.0.2:{free_port}"));
    let events: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let received = events
        .iter()
        .find(|e| e["event"] == "data" && e["direction"] == "in")
        .unwrap();
    assert_eq!(received["text"], "hi\n");
    assert_eq!(received["hex"], "68 69 0a");
    assert_eq!(received["peer"], addr.to_string());
}

#[test]
fn frame_line_and_json_frame() {
    let (addr, _peer) = tcp_peer(|mut s| s.write_all(b"one\r\ntwo\nthree").unwrap());
    let sandbox = Sandbox::new();
    let (_, out, _) = run_nc(
        &sandbox,
        &["--frame", "line", "127.0.0.1", &addr.port().to_string()],
        b"",
    );
    let out = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = out.lines().filter(|l| l.contains(" < ")).collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].ends_with("< line: one") && lines[1].ends_with("< line: two"),
        "{out}"
    );
    assert!(lines[2].ends_with("< line (no line end yet): three"), "{out}");

    let (addr, _peer) = tcp_peer(|mut s| {
        let header = br#"{"cmd":"put","filename":"a.txt","filesize":2}"#;
        s.write_all(&(header.len() as u32).to_le_bytes()).unwrap();
        s.write_all(header).unwrap();
        s.write_all(b"ok").unwrap();
    });
    let (_, out, _) = run_nc(
        &sandbox,
        &["--frame", "json-frame", "127.0.0.1", &addr.port().to_string()],
        b"",
    );
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains(r#"< header {"cmd":"put","filename":"a.txt","filesize":2} (body 2 bytes)"#),
        "{out}"
    );
    assert!(out.contains("< body piece of 2 bytes: ok"), "{out}");
}

#[test]
fn verbose_notices_and_address_families() {
    let (addr, _peer) = tcp_peer(read_all);
    let sandbox = Sandbox::new();
    let port = addr.port().to_string();
    let (status, _, err) = run_nc(&sandbox, &["-v", "127.0.0.1", &port], b"x");
    assert!(status.success());
    assert!(err.contains(&format!("{addr} connected (local 127.0.0.1:")), "{err}");
    assert!(err.contains(&format!("{addr} closed: by the peer")), "{err}");
    // -6 refuses an IPv4 target instead of quietly using it.
    let (status, _, err) = run_nc(&sandbox, &["-6", "127.0.0.1", &port], b"");
    assert_eq!(status.code(), Some(1));
    assert!(err.contains("has no IPv6 address"), "{err}");
    if let Ok(v6) = TcpListener::bind("[::1]:0") {
        let port = v6.local_addr().unwrap().port().to_string();
        std::thread::spawn(move || {
            let (mut s, _) = v6.accept().unwrap();
            s.write_all(b"over ipv6").unwrap();
        });
        let (status, out, _) = run_nc(&sandbox, &["-6", "::1", &port], b"");
        assert!(status.success());
        assert_eq!(out, b"over ipv6");
    }
}

// ---- half-close: the interop matrix ----

/// Which netcat plays a role in the half-close matrix.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Netcat {
    Sockit,
    Ncat,
    OpenBsd,
}

impl Netcat {
    fn available(self) -> bool {
        match self {
            Netcat::Sockit => true,
            Netcat::Ncat => peer_available("ncat", &["-h"]),
            Netcat::OpenBsd => peer_available("nc.openbsd", &["-h"]),
        }
    }

    fn speaks_tls(self) -> bool {
        self != Netcat::OpenBsd
    }

    /// The command, with each tool's flag for "half-close on stdin EOF".
    fn command(self, sandbox: &Sandbox, args: &[&str]) -> Command {
        let mut cmd = match self {
            Netcat::Sockit => {
                let mut c = sandbox.cmd();
                c.arg("nc");
                c
            }
            Netcat::Ncat => Command::new("ncat"),
            Netcat::OpenBsd => {
                let mut c = Command::new("nc.openbsd");
                c.arg("-N");
                c
            }
        };
        cmd.args(args);
        cmd
    }
}

/// Starts `tool` listening on 127.0.0.1 with `stdin` from a file and
/// stdout to a file; returns it once it has announced its address.
fn listen_with(
    tool: Netcat,
    sandbox: &Sandbox,
    ssl: bool,
    stdin: &std::path::Path,
    stdout: &std::path::Path,
) -> (KillOnDrop, u16) {
    let port = match tool {
        Netcat::Sockit => 0,
        // The others cannot announce a port they picked: take one that was
        // free a moment ago.
        _ => TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port(),
    };
    let port_text = port.to_string();
    let mut cmd = match tool {
        Netcat::Sockit => tool.command(sandbox, &["-l", "127.0.0.1", &port_text]),
        _ => tool.command(sandbox, &["-v", "-l", "127.0.0.1", &port_text]),
    };
    if ssl {
        cmd.arg("--ssl");
    }
    let mut child = cmd
        .stdin(std::fs::File::open(stdin).unwrap())
        .stdout(std::fs::File::create(stdout).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let announced = loop {
        let mut line = String::new();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "{tool:?} exited before listening"
        );
        if line.contains("istening on") {
            break line;
        }
    };
    std::thread::spawn(move || for _ in err.lines() {});
    let port = match tool {
        Netcat::Sockit => announced.trim().rsplit(':').next().unwrap().parse().unwrap(),
        _ => port,
    };
    (KillOnDrop(child), port)
}

/// Every pairing of sockit with itself, ncat and nc.openbsd, in both roles,
/// in the clear and (where both speak it) over TLS, with either side's
/// input ending first: sockit, whenever its input is the
/// file, delivers all of it although the other side half-closed before a
/// byte moved (a peer's end-of-stream ends one direction, not the session),
/// and exits 0 in every role.
#[test]
fn half_close_matrix_delivers_everything_whichever_side_ends_first() {
    let sandbox = Sandbox::new();
    let payload = sandbox.path("payload.bin");
    let data: Vec<u8> = (0..8 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&payload, &data).unwrap();
    let empty = std::path::Path::new("/dev/null");
    let pairs = [
        (Netcat::Sockit, Netcat::Sockit),
        (Netcat::Sockit, Netcat::Ncat),
        (Netcat::Sockit, Netcat::OpenBsd),
        (Netcat::Ncat, Netcat::Sockit),
        (Netcat::OpenBsd, Netcat::Sockit),
    ];
    for ((listener, client), ssl) in pairs.into_iter().flat_map(|p| [(p, false), (p, true)]) {
        if !listener.available() || !client.available() {
            continue;
        }
        if ssl && !(listener.speaks_tls() && client.speaks_tls()) {
            continue;
        }
        for sender_is_client in [true, false] {
            let case = format!(
                "{listener:?} -l / {client:?}{}, sender is the {}",
                if ssl { " over TLS" } else { "" },
                if sender_is_client { "client" } else { "listener" }
            );
            let (l_in, c_in) = if sender_is_client {
                (empty, payload.as_path())
            } else {
                (payload.as_path(), empty)
            };
            let l_out = sandbox.path("listener.out");
            let c_out = sandbox.path("client.out");
            let (mut l, port) = listen_with(listener, &sandbox, ssl, l_in, &l_out);
            let mut c = client.command(&sandbox, &["127.0.0.1", &port.to_string()]);
            if ssl {
                c.arg("--ssl");
            }
            let mut c = c
                .stdin(std::fs::File::open(c_in).unwrap())
                .stdout(std::fs::File::create(&c_out).unwrap())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let c_status = wait(&mut c);
            let l_status = wait(&mut l.0);
            let received = std::fs::read(if sender_is_client { &l_out } else { &c_out }).unwrap();
            let sender = if sender_is_client { client } else { listener };
            if sender == Netcat::Sockit {
                assert_eq!(received.len(), data.len(), "{case}");
                assert!(received == data, "{case}: bytes differ");
            } else {
                // ncat and nc.openbsd as senders stop when their peer
                // half-closes (as they do with themselves); what arrived
                // must still be the file's start, untouched.
                assert!(data.starts_with(&received), "{case}: bytes differ");
            }
            if client == Netcat::Sockit {
                assert!(c_status.success(), "{case}: sockit client {c_status}");
            }
            if listener == Netcat::Sockit {
                assert!(l_status.success(), "{case}: sockit listener {l_status}");
            }
        }
    }
}

#[test]
fn a_write_that_fails_is_an_error_not_a_quiet_success() {
    // The peer reads a little, then closes for good: the rest of our input
    // cannot be delivered, which must be exit 1.
    let (addr, peer) = tcp_peer(|mut s| {
        let mut got = [0u8; 1000];
        s.read_exact(&mut got).unwrap();
    });
    let sandbox = Sandbox::new();
    let big = sandbox.path("big.bin");
    std::fs::write(&big, vec![7u8; 32 * 1024 * 1024]).unwrap();
    let out = sandbox
        .cmd()
        .args(["nc", "127.0.0.1", &addr.port().to_string()])
        .stdin(std::fs::File::open(&big).unwrap())
        .output()
        .unwrap();
    let (status, err) = (out.status, String::from_utf8_lossy(&out.stderr).into_owned());
    peer.join().unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    // The reset shows on whichever direction meets it first.
    assert!(err.contains("sending failed") || err.contains("reset"), "{err}");
}

#[test]
fn crlf_line_endings_and_host_colon_port() {
    let sandbox = Sandbox::new();
    let (addr, peer) = tcp_peer(read_all);
    // -C as ncat: each line goes out with CRLF; HOST:PORT as one argument.
    let (status, _, _) = run_nc(&sandbox, &["-C", &addr.to_string()], b"GET / HTTP/1.0\n\n");
    assert!(status.success());
    assert_eq!(peer.join().unwrap(), b"GET / HTTP/1.0\r\n\r\n");
    let (status, _, err) = run_nc(&sandbox, &["127.0.0.1:notaport"], b"");
    assert_eq!(status.code(), Some(2), "{err}");
}

#[test]
fn port_checks_take_several_arguments_and_open_only() {
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let open_port = open.local_addr().unwrap().port();
    let closed_port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let sandbox = Sandbox::new();
    let (o, c) = (open_port.to_string(), closed_port.to_string());
    let (status, out, _) = run_nc(&sandbox, &["-z", "127.0.0.1", &c, &o], b"");
    assert!(status.success());
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    let (status, out, _) = run_nc(&sandbox, &["-z", "--open-only", "127.0.0.1", &c, &o], b"");
    assert!(status.success());
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!("127.0.0.1 {open_port}/tcp open\n")
    );
    // Nothing open: exit 1, and with --open-only nothing printed.
    let (status, out, _) = run_nc(&sandbox, &["-z", "--open-only", "127.0.0.1", &c], b"");
    assert_eq!((status.code(), out.len()), (Some(1), 0));
}

#[test]
fn listening_without_an_address_takes_ipv4_and_ipv6() {
    let sandbox = Sandbox::new();
    for (client, payload) in [("127.0.0.1", &b"over v4\n"[..]), ("::1", b"over v6\n")] {
        let (mut nc, addr) = Nc::listen(&sandbox, &["-l", "0"]);
        assert!(addr.ip().is_unspecified() && addr.is_ipv6(), "{addr}");
        let mut c = TcpStream::connect((client, addr.port())).unwrap();
        c.write_all(payload).unwrap();
        drop(c);
        nc.close_stdin();
        let (status, out) = nc.finish();
        assert!(status.success());
        assert_eq!(out, payload);
    }
    // An IPv4 client of the dual-stack socket is shown as IPv4.
    let (mut nc, addr) = Nc::listen(&sandbox, &["-lk", "0", "--tags"]);
    let c = TcpStream::connect(("127.0.0.1", addr.port())).unwrap();
    let seen = nc.lines_until("connected");
    assert!(
        seen.last()
            .unwrap()
            .starts_with(&format!("-- #1 {}", c.local_addr().unwrap())),
        "{seen:?}"
    );
    // -6 is IPv6 only.
    let (_nc, addr) = Nc::listen(&sandbox, &["-6", "-l", "0"]);
    assert!(TcpStream::connect(("127.0.0.1", addr.port())).is_err());
}

#[test]
fn keep_listening_into_a_file_writes_raw_bytes() {
    let sandbox = Sandbox::new();
    let (mut nc, addr) = Nc::listen(&sandbox, &["-lk", "127.0.0.1", "0"]);
    for i in 0..2u8 {
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(&[b'a' + i, 0, 0xff]).unwrap();
        drop(c);
        // One client's bytes before the next connects, so the order is known.
        let mut got = [0u8; 3];
        nc.out.read_exact(&mut got).unwrap();
        assert_eq!(got, [b'a' + i, 0, 0xff]);
    }
}

#[test]
fn exec_a_program_per_connection() {
    let sandbox = Sandbox::new();
    // -e: the program talks to the peer, one process per client with -k.
    let (_nc, addr) = Nc::listen(&sandbox, &["-lk", "127.0.0.1", "0", "-e", "tr a-z A-Z"]);
    for word in ["first", "second"] {
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(format!("{word}\n").as_bytes()).unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        c.set_read_timeout(Some(PATIENCE)).unwrap();
        assert_eq!(read_all(c), format!("{}\n", word.to_uppercase()).as_bytes());
    }
    // A program that ends first closes the connection, though the peer
    // says nothing and keeps its side open.
    let (_nc, addr) = Nc::listen(&sandbox, &["-l", "127.0.0.1", "0", "-e", "echo bye"]);
    let c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(PATIENCE)).unwrap();
    assert_eq!(read_all(c), b"bye\n");
    // -c: a shell line, with ncat's variables naming the peer.
    let (_nc, addr) = Nc::listen(&sandbox, &["-l", "127.0.0.1", "0", "-c", "echo from $NCAT_REMOTE_ADDR"]);
    let c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(PATIENCE)).unwrap();
    assert_eq!(read_all(c), b"from 127.0.0.1\n");
    // As a client: the program's output goes to the server, and back.
    let (addr, peer) = tcp_peer(|mut s| {
        s.write_all(b"ping\n").unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        read_all(s)
    });
    let (status, _, err) = run_nc(&sandbox, &["-e", "cat", "127.0.0.1", &addr.port().to_string()], b"");
    assert!(status.success(), "{err}");
    assert_eq!(peer.join().unwrap(), b"ping\n");
    // Beyond loopback it needs --allow-exec.
    let (status, _, err) = run_nc(&sandbox, &["-l", "0.0.0.0", "0", "-e", "cat"], b"");
    assert_eq!(status.code(), Some(2));
    assert!(err.contains("--allow-exec"), "{err}");
}

#[test]
fn exec_listener_serves_ncat() {
    let sandbox = Sandbox::new();
    if !peer_available("ncat", &["--version"]) {
        return;
    }
    let (_nc, addr) = Nc::listen(&sandbox, &["-l", "127.0.0.1", "0", "-e", "tr a-z A-Z"]);
    let out = Command::new("ncat")
        .args(["127.0.0.1", &addr.port().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(b"stressed\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(out.stdout, b"STRESSED\n");
}

#[test]
fn unix_domain_sockets_both_ways() {
    let sandbox = Sandbox::new();
    let path = sandbox.path("s.sock");
    let p = path.to_str().unwrap();
    // sockit listens (announcing with -v); a plain Unix client talks to it.
    let mut listener = Nc::spawn(&sandbox, &["-v", "-lU", p]);
    let mut err = BufReader::new(listener.child.stderr.take().unwrap());
    let mut first = String::new();
    err.read_line(&mut first).unwrap();
    assert_eq!(first.trim(), format!("listening on {p}"));
    let mut c = std::os::unix::net::UnixStream::connect(&path).unwrap();
    c.write_all(b"over a unix socket\n").unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    listener.send(b"and back\n");
    listener.close_stdin();
    let mut back = Vec::new();
    c.read_to_end(&mut back).unwrap();
    assert_eq!(back, b"and back\n");
    let (status, out) = listener.finish();
    assert!(status.success());
    assert_eq!(out, b"over a unix socket\n");
    assert!(!path.exists(), "the socket file is removed on exit");

    // sockit connects, to a program served on a Unix socket by sockit.
    let mut server = Nc::spawn(&sandbox, &["-v", "-lkU", p, "-e", "tr a-z A-Z"]);
    let mut err = BufReader::new(server.child.stderr.take().unwrap());
    let mut first = String::new();
    err.read_line(&mut first).unwrap();
    let (status, out, _) = run_nc(&sandbox, &["-U", p], b"shout\n");
    assert!(status.success());
    assert_eq!(out, b"SHOUT\n");
    // An existing file is never replaced.
    let (status, _, err) = run_nc(&sandbox, &["-lU", p], b"");
    assert_eq!(status.code(), Some(2), "{err}");
    drop(server);
}
