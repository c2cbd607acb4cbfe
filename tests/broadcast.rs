//! UDP broadcast for real, inside two network namespaces this test creates
//! and joins with a veth pair: nothing leaves them. Skipped (with a
//! message) where namespaces cannot be made; required in CI.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use support::KillOnDrop;

/// Two namespaces joined by a veth pair, deleted on drop.
struct Lan {
    a: String,
    b: String,
    subnet: String,
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Lan {
    fn create() -> Option<Lan> {
        let id = std::process::id();
        let (a, b) = (format!("skbc-a-{id}"), format!("skbc-b-{id}"));
        // 10.(200 + pid % 50).(pid / 50 % 250).0/24: unlikely to collide
        // between concurrent runs, and private to the namespaces anyway.
        let subnet = format!("10.{}.{}", 200 + id % 50, id / 50 % 250);
        let lan = Lan { a, b, subnet };
        let (va, vb) = (format!("vba{}", id % 100_000), format!("vbb{}", id % 100_000));
        let steps: Vec<Vec<String>> = vec![
            vec!["netns".into(), "add".into(), lan.a.clone()],
            vec!["netns".into(), "add".into(), lan.b.clone()],
            vec![
                "link".into(),
                "add".into(),
                va.clone(),
                "type".into(),
                "veth".into(),
                "peer".into(),
                "name".into(),
                vb.clone(),
            ],
            vec!["link".into(), "set".into(), va.clone(), "netns".into(), lan.a.clone()],
            vec!["link".into(), "set".into(), vb.clone(), "netns".into(), lan.b.clone()],
        ];
        for step in &steps {
            let args: Vec<&str> = step.iter().map(String::as_str).collect();
            if !ip(&args) {
                return None;
            }
        }
        for (ns, dev, host) in [(&lan.a, &va, 1), (&lan.b, &vb, 2)] {
            let addr = format!("{}.{host}/24", lan.subnet);
            for args in [
                vec!["netns", "exec", ns, "ip", "link", "set", "lo", "up"],
                vec![
                    "netns",
                    "exec",
                    ns,
                    "ip",
                    "addr",
                    "add",
                    &addr,
                    "broadcast",
                    "+",
                    "dev",
                    dev,
                ],
                vec!["netns", "exec", ns, "ip", "link", "set", dev, "up"],
            ] {
                if !ip(&args) {
                    return None;
                }
            }
        }
        Some(lan)
    }
}

/// Runs `sockit ARGS` inside namespace `ns`.
fn sockit_in(ns: &str, args: &[&str]) -> std::process::Output {
    Command::new("ip")
        .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_sockit")])
        .args(args)
        .output()
        .unwrap()
}

impl Drop for Lan {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end inside it, and its peer.
        ip(&["netns", "del", &self.a]);
        ip(&["netns", "del", &self.b]);
    }
}

#[test]
fn a_broadcast_reaches_the_other_host_on_the_lan_only() {
    let Some(lan) = Lan::create() else {
        assert!(
            std::env::var("CI").is_err(),
            "network namespaces are required in CI (run as root)"
        );
        eprintln!("skipping: cannot create network namespaces here");
        return;
    };
    let sockit = env!("CARGO_BIN_EXE_sockit");
    // The port is fixed: each namespace has its own, and nothing else runs there.
    let mut listener = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lan.b,
            sockit,
            "broadcast",
            "listen",
            "--port",
            "7788",
            "--json",
        ])
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
