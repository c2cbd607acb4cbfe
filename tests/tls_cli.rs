//! TLS as a user meets it: `serve --tls` with the file commands, and
//! independent TLS peers against sockit's listeners: `openssl s_client`
//! against the echo service, `ncat --ssl` as a chat member beside
//! `sockit chat join --tls`.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use predicates::prelude::*;
use support::{KillOnDrop, Sandbox, Server, peer_available, start_listeners, write};

const PATIENCE: Duration = Duration::from_secs(30);

#[test]
fn serve_tls_and_the_file_commands_over_it() {
    let sb = Sandbox::new();
    let srv = Server::start(&sb, &["--tls", "--handshake-timeout", "1"]);
    assert!(srv.banner.contains("tls: sha256:"), "{}", srv.banner);
    assert!(sb.path("config/sockit/tls-cert.pem").exists());
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    write(&sb.path("work/data.bin"), &data);
    sb.assert_cmd()
        .args(["put", "data.bin", "--tls", "--server", &srv.addr])
        .assert()
        .success();
    std::fs::remove_file(sb.path("work/data.bin")).unwrap();
    sb.assert_cmd()
        .args(["get", "data.bin", "--tls", "--server", &srv.addr])
        .assert()
        .success();
    assert_eq!(std::fs::read(sb.path("work/data.bin")).unwrap(), data);
    // A client that forgets --tls is told what is wrong.
    sb.assert_cmd()
        .args(["ls", "--server", &srv.addr, "--timeout", "20"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("--tls"));
}

#[test]
fn openssl_s_client_talks_to_the_tls_echo_service() {
    if !peer_available("openssl", &["version"]) {
        return;
    }
    let sb = Sandbox::new();
    let (child, found) = start_listeners(
        &sb,
        &[
            "echo",
            "serve",
            "--tcp",
            "127.0.0.1:0",
            "--insecure-no-auth",
            "--tls",
            "--upper",
        ],
        1,
    );
    let _server = KillOnDrop(child);
    assert!(found[0].2.contains("tls: sha256:"), "{:?}", found[0]);
    let mut client = Command::new("openssl")
        .args(["s_client", "-quiet", "-connect", &found[0].1])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _guard_pid = client.id();
    client.stdin.as_mut().unwrap().write_all(b"hello over tls\n").unwrap();
    let mut out = BufReader::new(client.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "HELLO OVER TLS\n");
    let _client = KillOnDrop(client);
}

#[test]
fn ncat_ssl_and_sockit_tls_members_share_a_room() {
    if !peer_available("ncat", &["-h"]) {
        return;
    }
    let sb = Sandbox::new();
    let (child, found) = start_listeners(
        &sb,
        &[
            "chat",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--insecure-no-auth",
            "--tls",
        ],
        1,
    );
    let _room = KillOnDrop(child);
    let addr = found[0].1.clone();
    let (host, port) = addr.rsplit_once(':').unwrap();
    let mut ncat = Command::new("ncat")
        .args(["--ssl", host, port])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut ncat_out = BufReader::new(ncat.stdout.take().unwrap());
    let mut line = String::new();
    ncat_out.read_line(&mut line).unwrap();
    assert!(line.starts_with("*** welcome"), "{line}");
    ncat.stdin.as_mut().unwrap().write_all(b"/nick ncatter\n").unwrap();
    let mut member = sb
        .cmd()
        .args([
            "chat",
            "join",
            &addr,
            "--nick",
            "tlsuser",
            "--insecure-no-auth",
            "--tls",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut member_out = BufReader::new(member.stdout.take().unwrap());
    let until = |out: &mut BufReader<std::process::ChildStdout>, needle: &str| {
        let started = Instant::now();
        loop {
            let mut l = String::new();
            assert!(out.read_line(&mut l).unwrap() > 0, "stream ended before {needle:?}");
            if l.contains(needle) {
                return;
            }
            assert!(started.elapsed() < PATIENCE);
        }
    };
    until(&mut ncat_out, "tlsuser");
    ncat.stdin.as_mut().unwrap().write_all(b"hi from ncat\n").unwrap();
    until(&mut member_out, "<ncatter> hi from ncat");
    member.stdin.as_mut().unwrap().write_all(b"hi from sockit\n").unwrap();
    until(&mut ncat_out, "<tlsuser> hi from sockit");
    // The member pinned the room's certificate on first use.
    let known = std::fs::read_to_string(sb.path("config/sockit/known_servers")).unwrap();
    assert!(known.contains(&addr), "{known}");
    drop(KillOnDrop(ncat));
    drop(KillOnDrop(member));
}
