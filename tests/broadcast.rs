//! UDP broadcast for real, inside two network namespaces this test creates
//! and joins with a veth pair: nothing leaves them. Skipped (with a
//! message) where namespaces cannot be made; required in CI.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use std::io::{BufRead as _, BufReader};
use std::process::Stdio;

use support::KillOnDrop;
use support::netns::{Lan, Netns};

/// Runs `sockit ARGS` inside namespace `ns`.
fn sockit_in(ns: &Netns, args: &[&str]) -> std::process::Output {
    ns.sockit().args(args).output().unwrap()
}

#[test]
fn a_broadcast_reaches_the_other_host_on_the_lan_only() {
    let Some(lan) = Lan::create("bc") else {
        support::netns::skip();
        return;
    };
    // The port is fixed: each namespace has its own, and nothing else runs there.
    let mut listener = lan
        .b
        .sockit()
        .args(["broadcast", "listen", "--port", "7788", "--json"])
        .env("SOCKIT_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(listener.stderr.take().unwrap());
    let mut first = String::new();
    err.read_line(&mut first).unwrap();
    assert!(first.starts_with("listening on udp 0.0.0.0:7788"), "{first}");
    let mut out = BufReader::new(listener.stdout.take().unwrap());
    let _listener = KillOnDrop(listener);

    // From every interface of host A: its one LAN, not 255.255.255.255 and
    // not loopback.
    let sent = sockit_in(&lan.a, &["broadcast", "send", "--port", "7788", "hello lan"]);
    assert!(sent.status.success(), "{}", String::from_utf8_lossy(&sent.stderr));
    let want = format!("sent 9 bytes to {}.255:7788\n", lan.subnet);
    assert_eq!(String::from_utf8_lossy(&sent.stdout), want);
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let got: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(got["text"], "hello lan");
    assert!(
        got["from"].as_str().unwrap().starts_with(&format!("{}.1:", lan.subnet)),
        "{got}"
    );

    // Bound to A's loopback, the broadcast stays on A's loopback: B hears
    // nothing of it, and hears the next LAN broadcast as the next line.
    let sent = sockit_in(
        &lan.a,
        &["broadcast", "send", "--bind", "127.0.0.1", "--port", "7788", "local"],
    );
    assert_eq!(
        String::from_utf8_lossy(&sent.stdout),
        "sent 5 bytes to 127.255.255.255:7788\n"
    );
    let bound = format!("{}.1", lan.subnet);
    let sent = sockit_in(
        &lan.a,
        &["broadcast", "send", "--bind", &bound, "--port", "7788", "second"],
    );
    assert!(sent.status.success());
    line.clear();
    out.read_line(&mut line).unwrap();
    let got: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(got["text"], "second", "the loopback broadcast never crossed");
}

#[test]
fn nc_joins_a_multicast_group_across_the_lan() {
    let Some(lan) = Lan::create("mc") else {
        support::netns::skip();
        return;
    };
    assert!(lan.route_multicast());
    // b joins the group; -v announces the socket once it has joined.
    let (mut listener, first) = support::spawn_announced(lan.b.sockit().args([
        "nc",
        "-v",
        "-u",
        "-l",
        "-w",
        "10",
        "--join",
        "239.7.7.7",
        "7799",
    ]));
    assert!(first.starts_with("listening on 0.0.0.0:7799"), "{first}");
    let mut out = BufReader::new(listener.stdout.take().unwrap());
    let _listener = KillOnDrop(listener);
    // a sends to the group address, not to b.
    let mut sender = lan
        .a
        .sockit()
        .args(["nc", "-u", "-q", "0", "239.7.7.7", "7799"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(sender.stdin.as_mut().unwrap(), "组播 hello\n".as_bytes()).unwrap();
    drop(sender.stdin.take());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "组播 hello\n");
    assert!(sender.wait().unwrap().success());
}
