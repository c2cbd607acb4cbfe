//! TFTP end to end with independent implementations: sockit's server with
//! tftp-hpa, curl, atftp and the seed's Python client; sockit's client with
//! tftpd-hpa and atftpd. Plus what a hostile network sends the server.
//!
//! tftpd-hpa and atftpd cannot announce a port they picked, so they get a
//! port that was free a moment before (bound to port 0, then released).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use std::io::BufRead as _;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use support::tftp::*;
use support::{KillOnDrop, Sandbox, peer_available, start_listeners};

// ---- sockit's server, independent clients ----

#[test]
fn server_with_tftp_hpa_plain_rfc_1350() {
    if !peer_available("tftp", &["-V"]) {
        return;
    }
    let sandbox = Sandbox::new();
    let (root, client) = dirs(&sandbox);
    let data = random_file(&root.join("a.bin"), 100_000, 1);
    let (_server, addr) = sockit_server(&sandbox, &root, &["--allow-write", "--allow-create"]);
    let port = addr.port().to_string();
    let got = client.join("a.bin");
    let out = run(Command::new("tftp").args([
        "-m",
        "binary",
        "127.0.0.1",
        &port,
        "-c",
        "get",
        "a.bin",
        got.to_str().unwrap(),
    ]));
    assert!(got.exists(), "{out:?}");
    assert_eq!(std::fs::read(&got).unwrap(), data);
    run(Command::new("tftp").args([
        "-m",
        "binary",
        "127.0.0.1",
        &port,
        "-c",
        "put",
        got.to_str().unwrap(),
        "up.bin",
    ]));
    assert_eq!(std::fs::read(root.join("up.bin")).unwrap(), data);
}

#[test]
fn server_with_curl_options() {
    if !peer_available("curl", &["--version"]) {
        return;
    }
    let sandbox = Sandbox::new();
    let (root, client) = dirs(&sandbox);
    let data = random_file(&root.join("b.bin"), 300_001, 2);
    let (_server, addr) = sockit_server(&sandbox, &root, &["--allow-write", "--allow-create"]);
    // curl always sends blksize, tsize and timeout.
    let got = client.join("b.bin");
    let out = run(Command::new("curl").args([
        "-sS",
        "--tftp-blksize",
        "1468",
        "-o",
        got.to_str().unwrap(),
        &format!("tftp://{addr}/b.bin"),
    ]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(&got).unwrap(), data);
    let out = run(Command::new("curl").args([
        "-sS",
        "--tftp-blksize",
        "1468",
        "-T",
        got.to_str().unwrap(),
        &format!("tftp://{addr}/c.bin"),
    ]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(root.join("c.bin")).unwrap(), data);
}

#[test]
fn server_with_atftp_windowsize_16() {
    if !peer_available("atftp", &["--help"]) {
        return;
    }
    let sandbox = Sandbox::new();
    let (root, client) = dirs(&sandbox);
    let data = random_file(&root.join("w.bin"), 500_000, 3);
    let (_server, addr) = sockit_server(&sandbox, &root, &["--allow-write", "--allow-create"]);
    let port = addr.port().to_string();
    let got = client.join("w.bin");
    let opts = ["--option", "blksize 1468", "--option", "windowsize 16"];
    let out = run(Command::new("atftp").args(opts).args([
        "-g",
        "-r",
        "w.bin",
        "-l",
        got.to_str().unwrap(),
        "127.0.0.1",
        &port,
    ]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(&got).unwrap(), data);
    let out = run(Command::new("atftp").args(opts).args([
        "-p",
        "-r",
        "w2.bin",
        "-l",
        got.to_str().unwrap(),
        "127.0.0.1",
        &port,
    ]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(root.join("w2.bin")).unwrap(), data);
}

#[test]
fn forty_mib_both_ways_past_the_block_wrap() {
    if !peer_available("tftp", &["-V"]) {
        return;
    }
    // 40 MiB at 512-byte blocks is 81,920 blocks: numbers wrap at 65,535.
    let sandbox = Sandbox::new();
    let (root, client) = dirs(&sandbox);
    random_file(&root.join("big.bin"), 40 << 20, 4);
    let want = sha256(&root.join("big.bin"));
    let (_server, addr) = sockit_server(&sandbox, &root, &["--allow-write", "--allow-create"]);
    let port = addr.port().to_string();
    let got = client.join("big.bin");
    run(Command::new("tftp").args([
        "-m",
        "binary",
        "127.0.0.1",
        &port,
        "-c",
        "get",
        "big.bin",
        got.to_str().unwrap(),
    ]));
    assert_eq!(sha256(&got), want, "get");
    run(Command::new("tftp").args([
        "-m",
        "binary",
        "127.0.0.1",
        &port,
        "-c",
        "put",
        got.to_str().unwrap(),
        "back.bin",
    ]));
    assert_eq!(sha256(&root.join("back.bin")), want, "put");
}

#[test]
fn the_seed_python_client_downloads() {
    if !peer_available("python3", &["--version"]) {
        return;
    }
    let sandbox = Sandbox::new();
    let (root, client) = dirs(&sandbox);
    // Over 65,536 blocks would take the seed's client long; 1,000 blocks
    // (and a file whose size is a multiple of 512) show the rules.
    let data = random_file(&root.join("test.jpg"), 512 * 1000, 5);
    let (_server, addr) = sockit_server(&sandbox, &root, &[]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/seed_tftp_client.py");
    let got = client.join("test.jpg");
    let out = run(Command::new("python3").arg(script).args([
        "127.0.0.1",
        &addr.port().to_string(),
        "test.jpg",
        got.to_str().unwrap(),
    ]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(std::fs::read(&got).unwrap(), data);
}

// ---- sockit's client, independent servers ----

fn sockit_client(sandbox: &Sandbox, args: &[&str]) -> Output {
    sandbox.cmd().arg("tftp").args(args).output().unwrap()
}

/// get and put through sockit's client against `server`, with each set of options.
fn client_round_trips(sandbox: &Sandbox, root: &Path, client: &Path, server: SocketAddr, option_sets: &[&[&str]]) {
    let data = std::fs::read(root.join("src.bin")).unwrap();
    for (i, opts) in option_sets.iter().enumerate() {
        let got = client.join(format!("got{i}.bin"));
        let out = sockit_client(
            sandbox,
            &[
                &["get", &server.to_string(), "src.bin", got.to_str().unwrap()][..],
                opts,
            ]
            .concat(),
        );
        assert!(
            out.status.success(),
            "get {opts:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(std::fs::read(&got).unwrap() == data, "get {opts:?}");
        let remote = format!("put{i}.bin");
        // tftpd-hpa -c and atftpd create files; allow them to.
        let out = sockit_client(
            sandbox,
            &[&["put", &server.to_string(), got.to_str().unwrap(), &remote][..], opts].concat(),
        );
        assert!(
            out.status.success(),
            "put {opts:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // atftpd and tftpd-hpa acknowledge the last block before they close
        // the file: wait (bounded) until their write lands.
        let target = root.join(&remote);
        let started = Instant::now();
        while std::fs::read(&target).ok().as_deref() != Some(&data[..]) {
            assert!(
                started.elapsed() < PATIENCE,
                "put {opts:?}: the server's file never matched"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[test]
fn client_against_tftpd_hpa() {
    let sandbox = Sandbox::new();
    let (root, client) = dirs(&sandbox);
    random_file(&root.join("src.bin"), 700_000, 6);
    let Some((_daemon, addr)) = tftpd_hpa(&root, &[]) else {
        return;
    };
    // tftpd-hpa ignores windowsize: its OACK leaves it out and the client
    // runs lock-step.
    let sets: &[&[&str]] = &[
        &["--no-options"],
        &[],
        &["--blksize", "1468"],
        &["--blksize", "65464", "--windowsize", "16"],
    ];
    client_round_trips(&sandbox, &root, &client, addr, sets);
    let sink = client.join("sink.bin");
    let out = sockit_client(
        &sandbox,
        &[
            "get",
            &addr.to_string(),
            "src.bin",
            sink.to_str().unwrap(),
            "--windowsize",
            "8",
            "--json",
        ],
    );
    let summary: serde_json::Value =
        serde_json::from_slice(out.stdout.lines().last().unwrap().unwrap().as_bytes()).unwrap();
    assert_eq!(summary["windowsize"], 1, "{summary}");
}

#[test]
fn client_against_atftpd() {
    let sandbox = Sandbox::new();
    let (root, client) = dirs(&sandbox);
    random_file(&root.join("src.bin"), 700_000, 7);
    let Some((_daemon, addr)) = atftpd(&root) else { return };
    let sets: &[&[&str]] = &[&["--no-options"], &["--blksize", "1468", "--windowsize", "16"]];
    client_round_trips(&sandbox, &root, &client, addr, sets);
}

#[test]
fn netascii_matches_tftp_hpa() {
    if !peer_available("tftp", &["-V"]) {
        return;
    }
    let sandbox = Sandbox::new();
    let (root, client) = dirs(&sandbox);
    let mut text = String::new();
    for i in 0..2000 {
        text.push_str(&format!("line {i}\n"));
        if i % 9 == 0 {
            text.push_str("bare\rcarriage\n");
        }
    }
    std::fs::write(root.join("t.txt"), &text).unwrap();
    let Some((_hpa, hpa)) = tftpd_hpa(&root, &[]) else {
        return;
    };
    let (_server, ours) = sockit_server(&sandbox, &root, &[]);
    // tftp-hpa's client in netascii, from tftpd-hpa and from sockit: the
    // same bytes come out (and they are the original text).
    let from_hpa = client.join("hpa.txt");
    let from_ours = client.join("ours.txt");
    for (server, out) in [(hpa, &from_hpa), (ours, &from_ours)] {
        run(Command::new("tftp").args([
            "-m",
            "netascii",
            "127.0.0.1",
            &server.port().to_string(),
            "-c",
            "get",
            "t.txt",
            out.to_str().unwrap(),
        ]));
    }
    assert_eq!(std::fs::read(&from_ours).unwrap(), std::fs::read(&from_hpa).unwrap());
    assert_eq!(std::fs::read_to_string(&from_ours).unwrap(), text);
    // sockit's client in netascii from tftpd-hpa gets the text too.
    let got = client.join("mine.txt");
    let out = sockit_client(
        &sandbox,
        &[
            "get",
            &hpa.to_string(),
            "t.txt",
            got.to_str().unwrap(),
            "--mode",
            "netascii",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(&got).unwrap(), text);
}

// ---- refusals and hostile input ----

#[test]
fn names_outside_the_root_are_refused() {
    let sandbox = Sandbox::new();
    let (root, _) = dirs(&sandbox);
    std::fs::write(sandbox.path("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(sandbox.path("secret.txt"), root.join("link.txt")).unwrap();
    std::fs::write(root.join("ok.txt"), "fine").unwrap();
    let (_server, addr) = sockit_server(&sandbox, &root, &[]);
    for name in [
        "../secret.txt",
        "/../secret.txt",
        "a/../../secret.txt",
        "link.txt",
        ".sockit/tftp-partial/x",
        "..\\secret.txt",
    ] {
        assert_eq!(error_code(&request(addr, &rrq(name))), 2, "{name}");
    }
    assert_eq!(error_code(&request(addr, &rrq("missing.txt"))), 1);
    // A leading slash means the root, as with tftpd -s.
    let reply = request(addr, &rrq("/ok.txt"));
    assert_eq!(&reply[..4], &[0, 3, 0, 1]);
    assert_eq!(&reply[4..], b"fine");
    // mail mode is refused with ERROR 4.
    assert_eq!(error_code(&request(addr, b"\0\x01ok.txt\0mail\0")), 4);
}

#[test]
fn writes_need_allow_write_and_creating_needs_allow_create() {
    let sandbox = Sandbox::new();
    let (root, _) = dirs(&sandbox);
    std::fs::write(root.join("exists.bin"), "old").unwrap();
    let (_ro, ro) = sockit_server(&sandbox, &root, &[]);
    assert_eq!(error_code(&request(ro, &wrq("exists.bin"))), 2);
    let (_rw, rw) = sockit_server(&sandbox, &root, &["--allow-write"]);
    assert_eq!(
        error_code(&request(rw, &wrq("new.bin"))),
        1,
        "no creating without --allow-create"
    );
    assert_eq!(request(rw, &wrq("exists.bin")), [0, 4, 0, 0], "overwriting is allowed");
    assert_eq!(
        std::fs::read(root.join("exists.bin")).unwrap(),
        b"old",
        "unchanged until an upload completes"
    );
}

#[test]
fn an_upload_over_the_limit_leaves_nothing() {
    if !peer_available("tftp", &["-V"]) {
        return;
    }
    let sandbox = Sandbox::new();
    let (root, client) = dirs(&sandbox);
    let src = client.join("big.bin");
    random_file(&src, 50_000, 8);
    let (_server, addr) = sockit_server(
        &sandbox,
        &root,
        &["--allow-write", "--allow-create", "--max-upload", "20000"],
    );
    // With tsize the refusal is immediate (ERROR 3).
    let out = sockit_client(&sandbox, &["put", &addr.to_string(), src.to_str().unwrap(), "big.bin"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("file too large"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without tsize (tftp-hpa) the upload is cut off as it passes the limit.
    run(Command::new("tftp").args([
        "-m",
        "binary",
        "127.0.0.1",
        &addr.port().to_string(),
        "-c",
        "put",
        src.to_str().unwrap(),
        "big2.bin",
    ]));
    assert!(!root.join("big.bin").exists() && !root.join("big2.bin").exists());
    let partials: Vec<_> = std::fs::read_dir(root.join(".sockit/tftp-partial")).unwrap().collect();
    assert!(partials.is_empty(), "partial uploads are removed: {partials:?}");
}

fn alive(child: &mut Child) -> bool {
    child.try_wait().unwrap().is_none()
}

#[test]
fn junk_at_the_listen_port_leaves_the_server_serving() {
    let sandbox = Sandbox::new();
    let (root, _) = dirs(&sandbox);
    std::fs::write(root.join("ok.txt"), "fine").unwrap();
    let (mut server, addr) = sockit_server(&sandbox, &root, &[]);
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    // Malformed packets of every length 0-600, each opcode, then 1,000
    // random datagrams.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for len in 0..=600usize {
        let mut p: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if len >= 2 {
            p[0] = 0;
            p[1] = (len % 7) as u8;
        }
        s.send_to(&p, addr).unwrap();
    }
    for _ in 0..1000 {
        let len = (next() % 1500) as usize;
        let p: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        s.send_to(&p, addr).unwrap();
    }
    assert!(alive(&mut server.0));
    let reply = request(addr, &rrq("ok.txt"));
    assert_eq!(&reply[..4], &[0, 3, 0, 1]);
    assert_eq!(&reply[4..], b"fine");
}

#[test]
fn an_ack_flood_for_old_blocks_changes_nothing() {
    let sandbox = Sandbox::new();
    let (root, _) = dirs(&sandbox);
    let data = random_file(&root.join("f.bin"), 512 * 300 + 17, 9);
    let (_server, addr) = sockit_server(&sandbox, &root, &[]);
    // A client that acknowledges each block, then repeats a burst of old
    // ACKs: every DATA must still arrive exactly once (no Sorcerer's Apprentice).
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.send_to(&rrq("f.bin"), addr).unwrap();
    let mut got = Vec::new();
    let mut seen = std::collections::HashMap::<u16, usize>::new();
    let mut buf = [0u8; 1024];
    loop {
        let (n, tid) = s.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..2], &[0, 3]);
        let block = u16::from_be_bytes([buf[2], buf[3]]);
        *seen.entry(block).or_default() += 1;
        if seen[&block] == 1 {
            got.extend_from_slice(&buf[4..n]);
        }
        s.send_to(&[0, 4, buf[2], buf[3]], tid).unwrap();
        for old in 0..5u16 {
            let stale = block.saturating_sub(old + 1).to_be_bytes();
            s.send_to(&[0, 4, stale[0], stale[1]], tid).unwrap();
        }
        if n < 516 {
            break;
        }
    }
    assert!(got == data);
    assert!(
        seen.values().all(|&c| c == 1),
        "each block sent once: {:?}",
        seen.iter().filter(|(_, c)| **c > 1).collect::<Vec<_>>()
    );
}

#[test]
fn a_config_file_runs_tftp() {
    let sandbox = Sandbox::new();
    let (root, _) = dirs(&sandbox);
    std::fs::write(root.join("ok.txt"), "fine").unwrap();
    let config = format!(
        "[[service]]\nkind = \"tftp\"\nlisten = \"127.0.0.1:0\"\nroot = \"{}\"\n",
        root.display()
    );
    std::fs::create_dir_all(sandbox.path("work")).unwrap();
    std::fs::write(sandbox.path("work/sockit.toml"), config).unwrap();
    let (child, found) = start_listeners(&sandbox, &["serve", "--config", "sockit.toml"], 1);
    let _server = KillOnDrop(child);
    assert_eq!(found[0].2, "tftp, auth: none, read-only");
    let reply = request(found[0].1.parse().unwrap(), &rrq("ok.txt"));
    assert_eq!(&reply[4..], b"fine");
}

#[test]
fn client_errors_are_clear() {
    let sandbox = Sandbox::new();
    let (root, client) = dirs(&sandbox);
    let (_server, addr) = sockit_server(&sandbox, &root, &[]);
    let target = client.join("nothing.bin");
    let out = sockit_client(
        &sandbox,
        &["get", &addr.to_string(), "nothing.bin", target.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("sockit: tftp get nothing.bin") && err.contains("file not found"),
        "{err}"
    );
    assert!(!target.exists(), "a failed download leaves no file");
    assert!(std::fs::read_dir(&client).unwrap().next().is_none(), "nor a partial");
    // Nothing listening: the retries run out.
    let port = free_udp_port();
    let out = sockit_client(
        &sandbox,
        &[
            "get",
            &format!("127.0.0.1:{port}"),
            "x",
            "--timeout",
            "1",
            "--retries",
            "1",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn the_transfer_limit_and_duplicate_requests() {
    let sandbox = Sandbox::new();
    let (root, _) = dirs(&sandbox);
    std::fs::write(root.join("a.txt"), vec![b'a'; 2000]).unwrap();
    let (_server, addr) = sockit_server(&sandbox, &root, &["--max-transfers", "1", "--timeout", "5"]);
    // The first client asks twice and never acknowledges: one transfer
    // runs, and it answers once (the retransmission is 5 s away).
    let first = UdpSocket::bind("127.0.0.1:0").unwrap();
    first.send_to(&rrq("a.txt"), addr).unwrap();
    first.send_to(&rrq("a.txt"), addr).unwrap();
    first.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut buf = [0u8; 1024];
    let (n, _) = first.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..4], &[0, 3, 0, 1]);
    assert_eq!(n, 516);
    first.set_read_timeout(Some(Duration::from_millis(700))).unwrap();
    assert!(
        first.recv_from(&mut buf).is_err(),
        "the duplicate request got no second answer"
    );
    // A second client while the one transfer runs: ERROR 0, server busy.
    assert_eq!(error_code(&request(addr, &rrq("a.txt"))), 0);
}

#[test]
fn the_client_falls_back_when_options_are_refused() {
    // A server that refuses any option with ERROR 8, as some embedded ones do.
    let listen = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = listen.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        listen.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut requests = Vec::new();
        for _ in 0..2 {
            let (n, client) = listen.recv_from(&mut buf).unwrap();
            requests.push(buf[..n].to_vec());
            let tid = UdpSocket::bind("127.0.0.1:0").unwrap();
            tid.set_read_timeout(Some(PATIENCE)).unwrap();
            let with_options = buf[..n].ends_with(b"\0") && buf[..n].windows(7).any(|w| w == b"blksize");
            if with_options {
                tid.send_to(b"\0\x05\0\x08no options here\0", client).unwrap();
            } else {
                tid.send_to(b"\0\x03\0\x01plain", client).unwrap();
                let (n, _) = tid.recv_from(&mut buf).unwrap();
                assert_eq!(&buf[..n], &[0, 4, 0, 1]);
            }
        }
        requests
    });
    let sandbox = Sandbox::new();
    let (_, client) = dirs(&sandbox);
    let got = client.join("f.txt");
    let out = sockit_client(
        &sandbox,
        &[
            "get",
            &addr.to_string(),
            "f.txt",
            got.to_str().unwrap(),
            "--blksize",
            "1468",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(&got).unwrap(), b"plain");
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused the options"));
    let requests = server.join().unwrap();
    assert!(requests[1].ends_with(b"f.txt\0octet\0"), "the retry is plain RFC 1350");
}

/// A named pipe in the root: its RRQ is refused at once, other transfers
/// go on, and SIGTERM still stops the server. Under `serve --config`, pipe
/// requests (one per core and more) never freeze the daemon's other
/// services.
#[test]
fn a_named_pipe_never_freezes_the_server() {
    let sandbox = Sandbox::new();
    let (root, _) = dirs(&sandbox);
    std::fs::write(root.join("ok.txt"), "fine").unwrap();
    assert!(
        Command::new("mkfifo")
            .arg(root.join("pipe"))
            .status()
            .unwrap()
            .success()
    );
    let (mut server, addr) = sockit_server(&sandbox, &root, &[]);
    let started = Instant::now();
    for _ in 0..8 {
        assert_eq!(error_code(&request(addr, &rrq("pipe"))), 2, "access violation");
    }
    assert_eq!(&request(addr, &rrq("ok.txt"))[4..], b"fine");
    assert!(started.elapsed() < Duration::from_secs(20));
    let child = &mut server.0;
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "SIGTERM did not stop the server");
        std::thread::sleep(Duration::from_millis(20));
    }

    let config = format!(
        "[[service]]\nkind = \"tftp\"\nudp = \"127.0.0.1:0\"\nroot = \"{}\"\n\n\
         [[service]]\nkind = \"echo\"\nudp = \"127.0.0.1:0\"\n",
        root.display()
    );
    std::fs::create_dir_all(sandbox.path("work")).unwrap();
    std::fs::write(sandbox.path("work/sockit.toml"), config).unwrap();
    let (child, found) = start_listeners(&sandbox, &["serve", "--config", "sockit.toml"], 2);
    let _daemon = KillOnDrop(child);
    let tftp: SocketAddr = found
        .iter()
        .find(|f| f.2.starts_with("tftp"))
        .unwrap()
        .1
        .parse()
        .unwrap();
    let echo: SocketAddr = found
        .iter()
        .find(|f| f.2.starts_with("echo"))
        .unwrap()
        .1
        .parse()
        .unwrap();
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..8 {
        s.send_to(&rrq("pipe"), tftp).unwrap();
    }
    assert_eq!(request(echo, b"still here"), b"still here");
    assert_eq!(&request(tftp, &rrq("ok.txt"))[4..], b"fine");
}

/// Read requests nobody acknowledges (their source may be forged) cost
/// almost nothing: the file is read a block at a time, only once the peer
/// answers. 256 of them with `blksize 8` once held 718 MiB.
#[test]
fn unanswered_requests_cost_almost_no_memory() {
    let sandbox = Sandbox::new();
    let (root, _) = dirs(&sandbox);
    random_file(&root.join("f.bin"), 256 * 1024, 3);
    let (server, addr) = sockit_server(&sandbox, &root, &["--max-per-peer", "300", "--max-transfers", "300"]);
    let rss = || -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", server.0.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
    };
    let before = rss();
    let mut sockets = Vec::new();
    for i in 0..256 {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut req = rrq("f.bin");
        if i % 2 == 0 {
            req.extend_from_slice(b"blksize\x008\x00");
        }
        s.send_to(&req, addr).unwrap();
        sockets.push(s);
    }
    // Every request was answered (OACK or DATA 1), so every transfer runs.
    for s in &sockets {
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut buf = [0u8; 1024];
        s.recv_from(&mut buf).unwrap();
    }
    let grew = rss().saturating_sub(before);
    assert!(
        grew < 64 * 1024 * 1024,
        "256 unanswered transfers took {} MiB",
        grew >> 20
    );
}

#[test]
fn one_address_cannot_take_every_transfer_slot() {
    let sandbox = Sandbox::new();
    let (root, _) = dirs(&sandbox);
    std::fs::write(root.join("ok.txt"), "fine").unwrap();
    let (_server, addr) = sockit_server(&sandbox, &root, &["--max-per-peer", "2"]);
    let mut held = Vec::new();
    for _ in 0..2 {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        s.send_to(&rrq("ok.txt"), addr).unwrap();
        let mut buf = [0u8; 64];
        let (n, _) = s.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..2], &[0, 3], "DATA: {:?}", &buf[..n]);
        held.push(s); // never acknowledged: the transfer holds its slot
    }
    assert_eq!(
        error_code(&request(addr, &rrq("ok.txt"))),
        0,
        "the third from 127.0.0.1 is refused"
    );
    let other = UdpSocket::bind("127.0.0.2:0").unwrap();
    other.set_read_timeout(Some(PATIENCE)).unwrap();
    other.send_to(&rrq("ok.txt"), addr).unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = other.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[4..n], b"fine", "another address is served");
}

/// A link planted where the client writes its partial (a shared download
/// folder) is removed, never written through; so is one at the target.
#[test]
fn the_client_never_writes_through_a_planted_link() {
    let sandbox = Sandbox::new();
    let (root, client) = dirs(&sandbox);
    std::fs::write(root.join("fw.bin"), "firmware").unwrap();
    let victim = sandbox.path("victim");
    std::fs::write(&victim, "precious").unwrap();
    std::os::unix::fs::symlink(&victim, client.join(".fw.bin.sockit-part")).unwrap();
    let (_server, addr) = sockit_server(&sandbox, &root, &[]);
    let target = client.join("fw.bin");
    let out = sockit_client(
        &sandbox,
        &["get", &addr.to_string(), "fw.bin", target.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "firmware");
    std::fs::remove_file(&target).unwrap();
    std::os::unix::fs::symlink(&victim, &target).unwrap();
    let out = sockit_client(
        &sandbox,
        &["get", &addr.to_string(), "fw.bin", target.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(!std::fs::symlink_metadata(&target).unwrap().is_symlink());
}
