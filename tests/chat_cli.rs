//! `sockit chat serve` and `sockit chat join` as a user runs them: ncat
//! as a plain-text member, a GBK terminal, and the auth layer.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, ChildStdout, Command, Stdio};

use support::{KillOnDrop, Sandbox, peer_available, start_listeners};

/// A line-based process: stdin and stdout piped, killed on drop.
struct Peer {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Peer {
    fn spawn(cmd: &mut Command) -> Peer {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        Peer { child, out }
    }

    fn send(&mut self, bytes: &[u8]) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(bytes).unwrap();
        stdin.flush().unwrap();
    }

    fn line(&mut self) -> Vec<u8> {
        let mut l = Vec::new();
        self.out.read_until(b'\n', &mut l).unwrap();
        assert!(!l.is_empty(), "the peer closed");
        l
    }

    fn until(&mut self, needle: &[u8]) -> Vec<u8> {
        for _ in 0..1000 {
            let l = self.line();
            if l.windows(needle.len()).any(|w| w == needle) {
                return l;
            }
        }
        panic!("never saw {:?}", String::from_utf8_lossy(needle));
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn ncat_and_a_gbk_terminal_share_a_room() {
    if !peer_available("ncat", &["--version"]) {
        return;
    }
    let sandbox = Sandbox::new();
    let (server, found) = start_listeners(
        &sandbox,
        &["chat", "serve", "--listen", "127.0.0.1:0", "--insecure-no-auth"],
        1,
    );
    let _server = KillOnDrop(server);
    let addr = found[0].1.clone();
    let (host, port) = addr.rsplit_once(':').unwrap();

    let mut nc = Peer::spawn(Command::new("ncat").args([host, port]));
    nc.until(b"*** welcome, guest");
    nc.send(b"/nick plain\n");
    nc.until(b"is now known as plain");

    let mut gbk = Peer::spawn(sandbox.cmd().args([
        "chat",
        "join",
        &addr,
        "--nick",
        "gbk",
        "--encoding",
        "gbk",
        "--insecure-no-auth",
    ]));
    gbk.until(b"is now known as gbk");
    nc.until(b"is now known as gbk");
    // 你好 typed on a GBK terminal reaches the room as UTF-8.
    gbk.send(&[0xc4, 0xe3, 0xba, 0xc3, b'\n']);
    assert_eq!(nc.until("<gbk>".as_bytes()), "<gbk> 你好\n".as_bytes());
    // UTF-8 from the room is shown in GBK.
    nc.send("再见\n".as_bytes());
    assert_eq!(
        gbk.until(b"<plain>"),
        [&b"<plain> "[..], &[0xd4, 0xd9, 0xbc, 0xfb], b"\n"].concat()
    );
    // Closing stdin leaves the room with /quit.
    drop(gbk.child.stdin.take());
    assert_eq!(nc.until(b"left"), b"*** gbk left\n");
}

#[test]
fn the_room_sits_behind_the_auth_layer() {
    let sandbox = Sandbox::new();
    let (server, found) = start_listeners(&sandbox, &["chat", "serve", "--listen", "127.0.0.1:0"], 1);
    let _server = KillOnDrop(server);
    let addr = found[0].1.clone();
    assert!(found[0].2.contains("auth: hmac-sha256"), "{:?}", found[0]);
    // With the default key (which serve created) the member gets in.
    let mut member = Peer::spawn(sandbox.cmd().args(["chat", "join", &addr, "--nick", "keyed"]));
    member.until(b"is now known as keyed");
    member.send(b"/who\n");
    assert_eq!(member.until(b"here:"), b"*** 1 here: keyed\n");
    // With a wrong key, the server closes after the handshake.
    let wrong = sandbox.path("wrong.key");
    std::fs::write(&wrong, "not the key").unwrap();
    let out = sandbox
        .cmd()
        .args(["chat", "join", &addr, "--key-file", wrong.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("welcome"));
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_config_file_runs_the_room() {
    use std::io::Read as _;
    let sandbox = Sandbox::new();
    std::fs::create_dir_all(sandbox.path("work")).unwrap();
    let config = "[[service]]\nkind = \"chat\"\nlisten = \"127.0.0.1:0\"\ninsecure_no_auth = true\n";
    std::fs::write(sandbox.path("work/sockit.toml"), config).unwrap();
    let (child, found) = start_listeners(&sandbox, &["serve", "--config", "sockit.toml"], 1);
    let _server = KillOnDrop(child);
    assert_eq!((found[0].0.as_str(), found[0].2.as_str()), ("tcp", "chat, auth: off"));
    let mut member = std::net::TcpStream::connect(&found[0].1).unwrap();
    let mut welcome = [0u8; 16];
    member.read_exact(&mut welcome).unwrap();
    assert_eq!(&welcome, b"*** welcome, gue");
}

#[test]
fn one_address_holds_at_most_max_per_peer_members() {
    use std::io::Read as _;
    let sandbox = Sandbox::new();
    let args = [
        "chat",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--insecure-no-auth",
        "--max-per-peer",
        "2",
    ];
    let (server, found) = start_listeners(&sandbox, &args, 1);
    let _server = KillOnDrop(server);
    let addr = found[0].1.clone();
    let join = || {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        let mut first = [0u8; 11];
        let n = s.read(&mut first).unwrap();
        (s, first[..n].to_vec())
    };
    let (_a, welcome_a) = join();
    let (_b, welcome_b) = join();
    assert!(welcome_a.starts_with(b"*** welcome") && welcome_b.starts_with(b"*** welcome"));
    // The third from the same address is closed without a place.
    let (_c, third) = join();
    assert!(third.is_empty(), "{}", String::from_utf8_lossy(&third));
}
