//! The `sockit` binary as a user runs it: real server process, real client
//! processes, exit codes and output.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use predicates::prelude::*;
use serde_json::Value;

use support::{KillOnDrop, Sandbox, Server, write};

#[test]
fn zero_config_serve_and_the_file_commands_work_together() {
    let sb = Sandbox::new();
    let srv = Server::start(&sb, &[]);
    assert!(srv.banner.contains("auth: hmac-sha256"), "{}", srv.banner);
    // serve created the default key; the client finds the same one.
    assert!(sb.path("config/sockit/key").exists());
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    write(&sb.path("work/data.bin"), &data);

    sb.assert_cmd()
        .args(["put", "data.bin", "--server", &srv.addr])
        .assert()
        .success()
        .stdout(predicate::str::contains("put data.bin").and(predicate::str::contains("verified")));
    sb.assert_cmd()
        .args(["put", "data.bin", "sub/copy.bin"])
        .env("SOCKIT_SERVER", &srv.addr)
        .assert()
        .success();
    let root = sb.path("work/sockit-data");
    assert_eq!(std::fs::read(root.join("sub/copy.bin")).unwrap(), data);

    let out = sb
        .assert_cmd()
        .args(["ls", "-r", "--server", &srv.addr])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let listing = String::from_utf8(out).unwrap();
    assert!(listing.contains("data.bin") && listing.contains("sub/") && listing.contains("sub/copy.bin"));
    assert!(!listing.contains(".sockit"));

    // `get NAME` writes into the current folder; -o picks another.
    std::fs::remove_file(sb.path("work/data.bin")).unwrap();
    sb.assert_cmd()
        .args(["get", "data.bin", "--server", &srv.addr])
        .assert()
        .success();
    assert_eq!(std::fs::read(sb.path("work/data.bin")).unwrap(), data);
    std::fs::create_dir_all(sb.path("dl")).unwrap();
    sb.assert_cmd()
        .args([
            "get",
            "sub/copy.bin",
            "-o",
            sb.path("dl").to_str().unwrap(),
            "--server",
            &srv.addr,
        ])
        .assert()
        .success();
    assert_eq!(std::fs::read(sb.path("dl/copy.bin")).unwrap(), data);

    sb.assert_cmd()
        .args(["stat", "sub/copy.bin", "--server", &srv.addr])
        .assert()
        .success()
        .stdout(predicate::str::contains("200000"));
    sb.assert_cmd()
        .args(["mkdir", "made/here", "--server", &srv.addr])
        .assert()
        .success();
    assert!(root.join("made/here").is_dir());
    sb.assert_cmd()
        .args(["rm", "-r", "made", "--server", &srv.addr])
        .assert()
        .success();
    assert!(!root.join("made").exists());
}

#[test]
fn json_output_is_one_event_per_line() {
    let sb = Sandbox::new();
    let srv = Server::start(&sb, &[]);
    write(&sb.path("work/a.txt"), b"hello");
    let out = sb
        .assert_cmd()
        .args(["put", "a.txt", "--json", "--server", &srv.addr])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let events: Vec<Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.first().unwrap()["event"], "start");
    let done = events.last().unwrap();
    assert_eq!((done["event"].as_str(), done["size"].as_u64()), (Some("done"), Some(5)));
    assert_eq!(done["verified"], true);

    let out = sb
        .assert_cmd()
        .args(["ls", "--json", "--server", &srv.addr])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let entry: Value = serde_json::from_slice(out.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(
        (entry["path"].as_str(), entry["type"].as_str()),
        (Some("a.txt"), Some("file"))
    );
}

#[test]
fn exit_codes_say_usage_failure_or_success() {
    let sb = Sandbox::new();
    let srv = Server::start(&sb, &[]);
    // 2: the user's mistake.
    sb.assert_cmd().args(["put", "--no-such-flag"]).assert().code(2);
    sb.assert_cmd()
        .args(["get", "../etc/passwd", "--server", &srv.addr])
        .assert()
        .code(2)
        .stderr(predicate::str::starts_with("sockit: bad remote name"));
    // 1: the operation failed.
    sb.assert_cmd()
        .args(["get", "missing.txt", "--server", &srv.addr])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no such file or folder (not_found)"));
    assert!(!sb.path("work/missing.txt").exists());
    assert!(
        !sb.path("work/.missing.txt.sockit-part").exists(),
        "a refused get leaves nothing"
    );
    sb.assert_cmd()
        .args(["put", "nonexistent-local", "--server", &srv.addr])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("nonexistent-local"));
    // Nothing listens on port 1.
    sb.assert_cmd()
        .args(["ls", "--server", "127.0.0.1:1"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("cannot connect to 127.0.0.1:1"));
    sb.assert_cmd().args(["--help"]).assert().success();
}

#[test]
fn a_client_without_the_key_is_told_what_to_do() {
    let server_side = Sandbox::new();
    let srv = Server::start(&server_side, &[]);
    let client_side = Sandbox::new();
    client_side
        .assert_cmd()
        .args(["ls", "--server", &srv.addr])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no key at").and(predicate::str::contains("--key-file")));
    write(&client_side.path("wrong.key"), b"not the key\n");
    client_side
        .assert_cmd()
        .args(["ls", "--server", &srv.addr, "--key-file"])
        .arg(client_side.path("wrong.key"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("wrong key"));
    // The same key, given as a file, works from another "machine".
    client_side
        .assert_cmd()
        .args(["ls", "--server", &srv.addr, "--key-file"])
        .arg(server_side.path("config/sockit/key"))
        .assert()
        .success();
    client_side
        .assert_cmd()
        .args(["ls", "--insecure-no-auth", "--server", &srv.addr])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("requires authentication"));
}

#[test]
fn folders_and_resume_from_the_command_line() {
    let sb = Sandbox::new();
    write(&sb.path("work/k"), b"shared secret\n");
    let srv = Server::start(&sb, &["--key-file", "k", "--root", "served"]);
    write(&sb.path("work/tree/a.txt"), b"a");
    write(&sb.path("work/tree/x/y/b.txt"), b"b");
    let k = ["--key-file", "k", "--server", &srv.addr];
    sb.assert_cmd()
        .args(["put", "-r", "tree"])
        .args(k)
        .assert()
        .success()
        .stdout(predicate::str::contains("2 files"));
    assert_eq!(std::fs::read(sb.path("work/served/tree/x/y/b.txt")).unwrap(), b"b");
    sb.assert_cmd()
        .args(["get", "-r", "tree", "-o", "back/"])
        .args(k)
        .assert()
        .success();
    assert_eq!(std::fs::read(sb.path("work/back/tree/x/y/b.txt")).unwrap(), b"b");

    // A download cut short earlier left its partial; --resume finishes it.
    let data: Vec<u8> = (0..500_000u32).map(|i| (i * 31 % 256) as u8).collect();
    write(&sb.path("work/served/big.bin"), &data);
    write(&sb.path("work/dl/.big.bin.sockit-part"), &data[..123_456]);
    sb.assert_cmd()
        .args(["get", "big.bin", "--resume", "-o", "dl"])
        .args(k)
        .assert()
        .success()
        .stdout(predicate::str::contains("resumed at"));
    assert_eq!(std::fs::read(sb.path("work/dl/big.bin")).unwrap(), data);
    assert!(!sb.path("work/dl/.big.bin.sockit-part").exists());
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let sb = Sandbox::new();
    let srv = Server::start(&sb, &["--insecure-no-auth"]);
    assert!(srv.banner.contains("auth: off"));
    let status = srv.signal("TERM");
    assert!(status.success(), "{status:?}");
}

#[test]
fn ctrl_c_stops_the_server_with_exit_130() {
    let sb = Sandbox::new();
    let srv = Server::start(&sb, &["--insecure-no-auth"]);
    let status = srv.signal("INT");
    assert_eq!(status.code(), Some(130), "{status:?}");
}

#[test]
fn a_busy_port_is_a_clear_error() {
    let sb = Sandbox::new();
    let srv = Server::start(&sb, &["--insecure-no-auth"]);
    sb.assert_cmd()
        .args(["serve", "--insecure-no-auth", "--listen", &srv.addr])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!("cannot listen on {}", srv.addr)));
}

#[test]
fn echo_time_and_download_clients_talk_to_their_servers() {
    let sb = Sandbox::new();
    let (_echo, tcp, udp) = support::start_echo(&sb, &["--upper"]);
    let (tcp, udp) = (&tcp, &udp);
    // TCP echo is behind the default key, which serve created.
    sb.assert_cmd()
        .args(["echo", tcp, "hello", "你好"])
        .assert()
        .success()
        .stdout("HELLO 你好\n");
    sb.assert_cmd()
        .args(["echo", udp, "--udp", "hello"])
        .assert()
        .success()
        .stdout("HELLO\n");

    let (time, found) = support::start_listeners(
        &sb,
        &[
            "time",
            "serve",
            "--udp",
            "127.0.0.1:0",
            "--rfc868",
            "127.0.0.1:0",
            "--insecure-no-auth",
        ],
        3,
    );
    let _time = KillOnDrop(time);
    let strftime = &found.iter().find(|f| f.2.starts_with("time,")).unwrap().1;
    let rfc868_tcp = &found
        .iter()
        .find(|f| f.2.starts_with("rfc868,") && f.0 == "tcp")
        .unwrap()
        .1;
    sb.assert_cmd()
        .args(["time", strftime, "%Y"])
        .assert()
        .success()
        .stdout(predicate::str::is_match(r"^20\d\d\n$").unwrap());
    sb.assert_cmd()
        .args(["time", rfc868_tcp, "--rfc868", "--tcp", "--insecure-no-auth"])
        .assert()
        .success()
        .stdout(predicate::str::contains("seconds since 1900"));

    write(&sb.path("work/pub/a.txt"), b"payload");
    let (dl, found) = support::start_listeners(
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
    let _dl = KillOnDrop(dl);
    let addr = &found[0].1;
    sb.assert_cmd()
        .args(["download", addr, "a.txt", "-o", "got.txt", "--insecure-no-auth"])
        .assert()
        .success();
    assert_eq!(std::fs::read(sb.path("work/got.txt")).unwrap(), b"payload");
    sb.assert_cmd()
        .args(["download", addr, "missing.txt", "--insecure-no-auth"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("the server sent nothing"));
    assert!(!sb.path("work/missing.txt").exists());
}

#[test]
fn exec_prints_both_streams_and_exits_with_the_remote_code() {
    let sb = Sandbox::new();
    let srv = Server::start(&sb, &["--allow-exec"]);
    sb.assert_cmd()
        .args([
            "exec",
            "--server",
            &srv.addr,
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 7",
        ])
        .assert()
        .code(7)
        .stdout("out\n")
        .stderr("err\n");
    let plain = Server::start(&sb, &[]);
    sb.assert_cmd()
        .args(["exec", "--server", &plain.addr, "--", "id"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("remote exec is disabled"));
}

#[test]
fn one_daemon_runs_the_services_a_config_names() {
    let sb = Sandbox::new();
    write(
        &sb.path("work/sockit.toml"),
        br#"
[defaults]
insecure_no_auth = true
idle_timeout = 30

[[service]]
kind = "files"
listen = "127.0.0.1:0"
root = "files-root"

[[service]]
kind = "echo"
tcp = "127.0.0.1:0"
udp = "127.0.0.1:0"
upper = true

[[service]]
kind = "time"
udp = "127.0.0.1:0"

[[service]]
kind = "download"
listen = "127.0.0.1:0"
root = "files-root"
"#,
    );
    let printed = sb
        .assert_cmd()
        .args(["serve", "--config", "sockit.toml", "--print-config"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let printed = String::from_utf8(printed).unwrap();
    assert_eq!(printed.matches("[[service]]").count(), 4);
    assert!(
        printed.contains("idle_timeout = 30"),
        "defaults are folded in: {printed}"
    );

    let (mut child, found) = support::start_listeners(&sb, &["serve", "--config", "sockit.toml"], 5);
    let addr = |kind: &str, proto: &str| {
        found
            .iter()
            .find(|f| f.2.starts_with(kind) && f.0 == proto)
            .map(|f| f.1.clone())
            .unwrap()
    };
    write(&sb.path("work/a.txt"), b"via config");
    let no_auth = ["--insecure-no-auth"];
    sb.assert_cmd()
        .args(["put", "a.txt", "--server", &addr("files", "tcp")])
        .args(no_auth)
        .assert()
        .success();
    sb.assert_cmd()
        .args(["download", &addr("download", "tcp"), "a.txt", "-o", "back.txt"])
        .args(no_auth)
        .assert()
        .success();
    assert_eq!(std::fs::read(sb.path("work/back.txt")).unwrap(), b"via config");
    sb.assert_cmd()
        .args(["echo", &addr("echo", "tcp"), "abc"])
        .args(no_auth)
        .assert()
        .success()
        .stdout("ABC\n");
    sb.assert_cmd()
        .args(["echo", &addr("echo", "udp"), "--udp", "xyz"])
        .assert()
        .success()
        .stdout("XYZ\n");
    sb.assert_cmd()
        .args(["time", &addr("time", "udp"), "%Y"])
        .assert()
        .success()
        .stdout(predicate::str::is_match(r"^20\d\d\n$").unwrap());

    // SIGTERM stops every service cleanly.
    let pid = child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_bad_config_is_refused_with_file_line_and_key() {
    let sb = Sandbox::new();
    let cases: [(&str, &[u8], &str); 4] = [
        (
            "typo.toml",
            b"[[service]]\nkind = \"files\"\nlisten = \"127.0.0.1:0\"\nlisen = \"x\"\n",
            "typo.toml, line 4: unknown field `lisen`",
        ),
        (
            "addr.toml",
            b"[[service]]\nkind = \"echo\"\ntcp = \"localhost:port\"\n",
            "addr.toml, line 3",
        ),
        (
            "stray.toml",
            b"[[service]]\nkind = \"time\"\nudp = \"127.0.0.1:0\"\nroot = \"/\"\n",
            "line 2: key `root` does not apply",
        ),
        ("empty.toml", b"", "no [[service]] tables"),
    ];
    for (name, text, want) in cases {
        write(&sb.path(&format!("work/{name}")), text);
        sb.assert_cmd()
            .args(["serve", "--config", name])
            .assert()
            .code(2)
            .stderr(predicate::str::contains(want));
    }
    sb.assert_cmd()
        .args(["serve", "--config", "nope.toml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot read nope.toml"));
}

#[test]
fn bench_echo_reports_requests_and_latency_over_tcp_and_udp() {
    let sb = Sandbox::new();
    let (echo, found) = support::start_listeners(
        &sb,
        &[
            "echo",
            "serve",
            "--tcp",
            "127.0.0.1:0",
            "--udp",
            "127.0.0.1:0",
            "--insecure-no-auth",
        ],
        2,
    );
    let _echo = KillOnDrop(echo);
    for (proto, extra) in [("tcp", &[][..]), ("udp", &["--udp"][..])] {
        let addr = &found.iter().find(|f| f.0 == proto).unwrap().1;
        let out = sb
            .assert_cmd()
            .args([
                "bench",
                "echo",
                addr,
                "--connections",
                "4",
                "--duration",
                "1",
                "--json",
                "--insecure-no-auth",
            ])
            .args(extra)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let report: Value = serde_json::from_slice(&out).unwrap();
        // A shape check, not a speed check: it ran, it measured, nothing failed.
        assert!(report["requests"].as_u64().unwrap() > 0, "{report}");
        assert_eq!(report["connections"], 4);
        assert_eq!(report["connect_failures"], 0);
        assert_eq!(report["udp"], proto == "udp");
        assert!(report["p50_us"].as_u64().unwrap() <= report["p99_us"].as_u64().unwrap());
    }
}

/// `sockit bench echo ADDR` for one second at `connections`, its report.
fn bench_echo_json(sb: &Sandbox, addr: &str, connections: usize) -> Value {
    let out = sb
        .assert_cmd()
        .args(["bench", "echo", addr, "--duration", "1", "--json", "--insecure-no-auth"])
        .args(["--connections", &connections.to_string()])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    serde_json::from_slice(&out).unwrap()
}

/// A server that accepts but never answers, and one that never accepts:
/// `bench echo` ends soon after its duration either way, reporting the
/// clients it left waiting and the connects that failed.
#[test]
fn bench_echo_does_not_wait_for_a_server_that_never_answers_or_accepts() {
    let sb = Sandbox::new();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let held = std::thread::spawn(move || {
        let mut kept = Vec::new();
        for _ in 0..8 {
            kept.push(silent.accept().unwrap().0);
        }
        kept
    });
    let started = std::time::Instant::now();
    let report = bench_echo_json(&sb, &addr, 8);
    assert_eq!(report["starved_connections"], 8, "{report}");
    assert_eq!(report["requests"], 0);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "it waited for replies that never came"
    );
    drop(held.join().unwrap());

    // A backlog of one that nobody accepts from: the kernel completes a
    // couple of handshakes and drops the other SYNs.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&"127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap().into())
        .unwrap();
    socket.listen(1).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap().to_string();
    let started = std::time::Instant::now();
    let report = bench_echo_json(&sb, &addr, 20);
    let failed = report["connect_failures"].as_u64().unwrap();
    assert!(failed >= 10, "{report}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(40),
        "connects were waited for without end"
    );
    drop(socket);
}

#[test]
fn kept_partials_can_be_listed_and_removed_and_hostile_names_cannot_fake_lines() {
    let sb = Sandbox::new();
    let srv = Server::start(&sb, &["--insecure-no-auth"]);
    // An interrupted verified upload, as a dropped connection leaves it
    // (past one chunk: a smaller one is not kept, it is sent again whole).
    {
        use std::io::Write as _;
        let mut s = std::net::TcpStream::connect(&srv.addr).unwrap();
        let header = br#"{"cmd":"put","filename":"big.iso","filesize":1000000,"verify":"xxh3"}"#;
        s.write_all(&(header.len() as u32).to_le_bytes()).unwrap();
        s.write_all(header).unwrap();
        s.write_all(&[0u8; 300]).unwrap();
    }
    let partials = || {
        let out = sb
            .assert_cmd()
            .args([
                "ls",
                "--partials",
                "--json",
                "--insecure-no-auth",
                "--server",
                &srv.addr,
            ])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        String::from_utf8(out).unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut listed = partials();
    while !listed.contains("big.iso") {
        assert!(
            std::time::Instant::now() < deadline,
            "the partial never showed: {listed}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
        listed = partials();
    }
    let p: Value = serde_json::from_str(listed.lines().next().unwrap()).unwrap();
    assert_eq!(
        (p["size"].as_u64(), p["filesize"].as_u64()),
        (Some(300), Some(1_000_000))
    );
    sb.assert_cmd()
        .args([
            "rm",
            "--partial",
            "big.iso",
            "--insecure-no-auth",
            "--server",
            &srv.addr,
        ])
        .assert()
        .success();
    assert_eq!(partials(), "");
    sb.assert_cmd()
        .args([
            "rm",
            "--partial",
            "big.iso",
            "--insecure-no-auth",
            "--server",
            &srv.addr,
        ])
        .assert()
        .failure()
        .stderr(predicate::str::contains("no kept partial"));

    // A name with a newline and an ANSI escape is shown escaped, on one line.
    let root = sb.path("work/sockit-data");
    std::fs::write(root.join("evil\n-          9  2026-01-01 00:00  fake\u{1b}[2J"), b"x").unwrap();
    let out = sb
        .assert_cmd()
        .args(["ls", "--insecure-no-auth", "--server", &srv.addr])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.contains("evil\\n-") && out.contains("fake\\x1b[2J") && !out.contains('\u{1b}'),
        "{out}"
    );
}

#[test]
fn zero_and_absurd_limits_are_refused_by_flag_and_by_config_alike() {
    let sb = Sandbox::new();
    for args in [
        &["serve", "--max-connections", "0"][..],
        &["serve", "--idle-timeout", "0"],
        &["serve", "--handshake-timeout", "0"],
        &["serve", "--max-header", "0"],
        &["serve", "--max-per-peer", "0"],
        &["serve", "--request-timeout", "0"],
        &["serve", "--max-connections", "99999999999"],
        &["echo", "serve", "--max-connections", "0"],
        &["chat", "serve", "--idle-timeout", "0"],
        &["tftp", "serve", "--max-transfers", "0"],
    ] {
        let out = sb.cmd().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("must be at"), "{args:?}: {err}");
    }
    write(
        &sb.path("work/sockit.toml"),
        b"[[service]]\nkind = \"files\"\nlisten = \"127.0.0.1:0\"\nidle_timeout = 0\n",
    );
    let out = sb.cmd().args(["serve", "--config", "sockit.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 4") && err.contains("idle_timeout must be at least 1"),
        "{err}"
    );
}

/// Runs `sockit ARGS` with stdout read for one line, then closed (as
/// `| head -1` does); returns the exit status and stderr.
fn first_line_then_close(sb: &Sandbox, args: &[&str]) -> (std::process::ExitStatus, String, String) {
    use std::io::{BufRead as _, Read as _};
    let mut child = sb
        .cmd()
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    drop(out);
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    (child.wait().unwrap(), first, err)
}

#[test]
fn a_closed_stdout_ends_the_command_quietly_with_exit_0_and_no_partial() {
    let sb = Sandbox::new();
    let srv = Server::start(&sb, &["--insecure-no-auth"]);
    // Sparse: half a gigabyte to send, none to write first.
    let big = std::fs::File::create(sb.path("work/sockit-data/b.bin")).unwrap();
    big.set_len(512 * 1024 * 1024).unwrap();
    std::fs::create_dir_all(sb.path("dl")).unwrap();
    let dl = sb.path("dl");
    let (status, first, err) = first_line_then_close(
        &sb,
        &[
            "get",
            "b.bin",
            "--json",
            "--insecure-no-auth",
            "--server",
            &srv.addr,
            "-o",
            dl.to_str().unwrap(),
        ],
    );
    assert!(status.success(), "{status}: {err}");
    assert!(first.contains("\"start\""), "{first}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!dl.join(".b.bin.sockit-part").exists(), "the partial was left behind");

    for args in [
        &["ipcalc", "10.0.0.0/8", "--split", "30"][..],
        &["nc", "-z", "127.0.0.1", "1-65535"],
    ] {
        let (status, first, err) = first_line_then_close(&sb, args);
        assert!(status.success(), "{args:?}: {status}: {err}");
        assert!(!first.is_empty(), "{args:?}");
        assert!(err.is_empty() || !err.contains("panicked"), "{args:?}: {err}");
    }
}
