//! Interop with programs written from the seeds (tests/interop/*.py): the
//! seed's FTP client and HMAC-MD5 handshake against `sockit serve`, and the
//! seed's FTP server receiving `sockit put --classic`.
//!
//! Python is a peer, not an option: under CI=true a missing python3 fails.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use support::{KillOnDrop, Sandbox, Server, write};

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop").join(name)
}

fn python_available() -> bool {
    let ok = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").is_err(),
            "python3 is required for interop tests in CI"
        );
        eprintln!("skipping: python3 not found");
    }
    ok
}

/// A Python peer; killed by PID when dropped.
struct Peer {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Peer {
    fn start(cmd: &mut Command) -> Self {
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        Self { child, out }
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.out.read_line(&mut l).unwrap();
        l.trim_end().to_owned()
    }

    fn close_stdin(&mut self) {
        drop(self.child.stdin.take());
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (bounded) until `path` holds `want`: the seed client reads no
/// reply, so the file itself is the only signal.
fn wait_for_file(path: &Path, want: &[u8]) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        if std::fs::read(path).is_ok_and(|b| b == want) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{} never got the expected contents", path.display());
}

fn host_port(addr: &str) -> (String, String) {
    let (h, p) = addr.rsplit_once(':').unwrap();
    (h.to_owned(), p.to_owned())
}

#[test]
fn seed_client_uploads_to_sockit_without_reading_a_reply() {
    if !python_available() {
        return;
    }
    let sb = Sandbox::new();
    let srv = Server::start(&sb, &["--insecure-no-auth", "--root", "up"]);
    let text: Vec<u8> = (0..5000)
        .flat_map(|i| format!("line {i} 你好\n").into_bytes())
        .collect();
    let binary: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    write(&sb.path("a.txt"), &text);
    write(&sb.path("b.bin"), &binary);
    let (host, port) = host_port(&srv.addr);
    let mut peer = Peer::start(
        Command::new("python3")
            .arg(script("seed_client.py"))
            .args([&host, &port])
            .args([sb.path("a.txt"), sb.path("b.bin")]),
    );
    assert_eq!(peer.line(), "sent");
    wait_for_file(&sb.path("work/up/a.txt"), &text);
    wait_for_file(&sb.path("work/up/b.bin"), &binary);
    peer.close_stdin();
}

#[test]
fn seed_hmac_md5_handshake_authenticates() {
    if !python_available() {
        return;
    }
    let sb = Sandbox::new();
    write(&sb.path("work/seed.key"), b"linhaifeng bang bang bang\n");
    write(&sb.path("work/wrong.key"), b"linhaifeng bang bang bang1111\n");
    let srv = Server::start(&sb, &["--key-file", "seed.key", "--auth-digest", "md5", "--root", "up"]);
    write(&sb.path("hello.txt"), b"hello from the seed");
    let (host, port) = host_port(&srv.addr);
    let run = |key: &str| {
        let mut peer = Peer::start(
            Command::new("python3")
                .arg(script("seed_client.py"))
                .args([&host, &port])
                .arg(sb.path("hello.txt"))
                .args(["--read-replies", "--hmac-md5-key-file"])
                .arg(sb.path(&format!("work/{key}"))),
        );
        let reply = peer.line();
        peer.close_stdin();
        reply
    };
    let reply: serde_json::Value = serde_json::from_str(&run("seed.key")).unwrap();
    assert_eq!(reply["status"], "ok");
    assert_eq!(
        std::fs::read(sb.path("work/up/hello.txt")).unwrap(),
        b"hello from the seed"
    );

    std::fs::remove_file(sb.path("work/up/hello.txt")).unwrap();
    assert_eq!(run("wrong.key"), "closed");
    assert!(!sb.path("work/up/hello.txt").exists());
}

#[test]
fn seed_server_receives_a_sockit_classic_put() {
    if !python_available() {
        return;
    }
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.path("seed-dir")).unwrap();
    let mut server = Peer::start(
        Command::new("python3")
            .arg(script("seed_server.py"))
            .arg("127.0.0.1:0")
            .arg(sb.path("seed-dir")),
    );
    let addr = server.line().strip_prefix("listening on ").unwrap().to_owned();
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
    write(&sb.path("work/payload.bin"), &data);
    let out = sb
        .cmd()
        .args([
            "put",
            "--classic",
            "--insecure-no-auth",
            "payload.bin",
            "--server",
            &addr,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("not confirmed"));
    assert_eq!(server.line(), "stored payload.bin 1000000");
    assert_eq!(std::fs::read(sb.path("seed-dir/payload.bin")).unwrap(), data);
    server.child.stdin.as_mut().map(|s| s.flush());
}

fn classic(args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg(script("seed_classic.py"))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn seed_upper_echo_client_behind_hmac_md5() {
    if !python_available() {
        return;
    }
    let sb = Sandbox::new();
    write(&sb.path("work/seed.key"), b"linhaifeng bang bang bang\n");
    write(&sb.path("work/wrong.key"), b"linhaifeng bang bang bang1111\n");
    let (child, found) = support::start_listeners(
        &sb,
        &[
            "echo",
            "serve",
            "--tcp",
            "127.0.0.1:0",
            "--upper",
            "--auth-digest",
            "md5",
            "--key-file",
            "seed.key",
        ],
        1,
    );
    let _server = KillOnDrop(child);
    let (host, port) = host_port(&found[0].1);
    let key = sb.path("work/seed.key");
    let out = classic(&[
        "upper",
        &host,
        &port,
        key.to_str().unwrap(),
        "hello 你好",
        "second line",
    ]);
    assert_eq!(out, "HELLO 你好\nSECOND LINE\n");
    let wrong = sb.path("work/wrong.key");
    let out = classic(&["upper", &host, &port, wrong.to_str().unwrap(), "hello"]);
    assert_eq!(out, "closed\n", "a wrong key gets no reply");
}

#[test]
fn seed_udp_time_client() {
    if !python_available() {
        return;
    }
    let sb = Sandbox::new();
    let (child, found) = support::start_listeners(&sb, &["time", "serve", "--udp", "127.0.0.1:0"], 1);
    let _server = KillOnDrop(child);
    let (host, port) = host_port(&found[0].1);
    let year = classic(&["time", &host, &port, "%Y"]);
    let expected = Command::new("date").arg("+%Y").output().unwrap().stdout;
    assert_eq!(year.as_bytes(), expected);
    let default = classic(&["time", &host, &port]);
    let d = default.trim_end();
    assert_eq!(d.len(), 19, "{d:?} should be %Y-%m-%d %X");
    assert!(d.starts_with(year.trim()) && &d[4..5] == "-" && &d[13..14] == ":");
}

#[test]
fn seed_raw_command_exec_client() {
    if !python_available() {
        return;
    }
    let sb = Sandbox::new();
    // Exec without auth is allowed on loopback only, which is where the
    // seed's own server listens.
    let srv = Server::start(&sb, &["--insecure-no-auth", "--allow-exec", "--root", "r"]);
    assert!(srv.banner.contains("exec: on"));
    let (host, port) = host_port(&srv.addr);
    let out = classic(&["exec", &host, &port, "echo hello from sockit", "ls /no-such-dir-here"]);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("hello from sockit"));
    assert!(out.contains("No such file or directory"), "stderr wins: {out}");
}

#[test]
fn exec_needs_no_double_dash_and_forwards_stdin() {
    let sb = Sandbox::new();
    let srv = Server::start(&sb, &["--allow-exec", "--root", "r"]);
    let s = ["-s", srv.addr.as_str()];
    sb.assert_cmd()
        .arg("exec")
        .args(s)
        .args(["echo", "-n", "no dashes"])
        .assert()
        .success()
        .stdout("no dashes");
    sb.assert_cmd()
        .arg("exec")
        .args(s)
        .arg("sort")
        .write_stdin("pear\napple\n")
        .assert()
        .success()
        .stdout("apple\npear\n");
    // -n: the command reads end-of-file at once; the exit code is its own.
    sb.assert_cmd()
        .arg("exec")
        .args(s)
        .args(["-n", "sh", "-c", "test -z \"$(cat)\" && exit 7"])
        .write_stdin("ignored\n")
        .assert()
        .code(7);
    // The old form still works.
    sb.assert_cmd()
        .arg("exec")
        .args(s)
        .args(["--", "echo", "old"])
        .assert()
        .success()
        .stdout("old\n");
}

#[test]
fn exec_without_auth_off_loopback_is_refused() {
    let sb = Sandbox::new();
    let out = sb
        .cmd()
        .args(["serve", "--insecure-no-auth", "--allow-exec", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing --allow-exec with --insecure-no-auth"));
}

#[test]
fn seed_one_shot_download_client() {
    if !python_available() {
        return;
    }
    let sb = Sandbox::new();
    write(&sb.path("work/pub/notes.txt"), "下载 me\n".as_bytes());
    let (child, found) = support::start_listeners(
        &sb,
        &[
            "download",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--root",
            "pub",
            "--insecure-no-auth",
        ],
        1,
    );
    let _server = KillOnDrop(child);
    let (host, port) = host_port(&found[0].1);
    std::fs::create_dir_all(sb.path("into")).unwrap();
    let into = sb.path("into");
    assert_eq!(
        classic(&["download", &host, &port, "notes.txt", into.to_str().unwrap()]),
        format!("received {}\n", "下载 me\n".len())
    );
    assert_eq!(
        std::fs::read(into.join("[接收]notes.txt")).unwrap(),
        "下载 me\n".as_bytes()
    );
    assert_eq!(
        classic(&["download", &host, &port, "../etc/passwd", into.to_str().unwrap()]),
        "received 0\n"
    );
}
