//! Every command's `--json` output, checked line by line against
//! docs/json.schema.json by an independent validator (Python's jsonschema).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use std::io::{BufRead as _, BufReader};
use std::net::UdpSocket;
use std::process::Command;

use serde_json::Value;

use support::{KillOnDrop, Sandbox, Server, start_listeners, write};

/// Collects the JSON lines of many commands; `check` validates them all.
struct Lines(Vec<String>);

impl Lines {
    /// Runs `sockit ARGS` and keeps every stdout line (each must be JSON).
    fn run(&mut self, sb: &Sandbox, args: &[&str], stdin: &[u8]) -> Vec<Value> {
        let out = sb.assert_cmd().args(args).write_stdin(stdin).output().unwrap();
        self.take(args, &out.stdout)
    }

    fn take(&mut self, args: &[&str], stdout: &[u8]) -> Vec<Value> {
        let text = String::from_utf8(stdout.to_vec()).unwrap();
        assert!(!text.trim().is_empty(), "{args:?} printed no JSON");
        let mut values = Vec::new();
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{args:?}: {line:?}: {e}"));
            values.push(v);
            self.0.push(line.to_owned());
        }
        values
    }

    fn check(&self, sb: &Sandbox) {
        let lines = sb.path("lines.jsonl");
        std::fs::write(&lines, self.0.join("\n")).unwrap();
        let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/json.schema.json");
        let script = r#"
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema)
bad = 0
for n, line in enumerate(open(sys.argv[2], encoding="utf-8"), 1):
    for e in validator.iter_errors(json.loads(line)):
        bad += 1
        print(f"line {n}: {e.message} at {list(e.absolute_path)}: {line.strip()}")
print(f"{n} lines checked")
sys.exit(1 if bad else 0)
"#;
        let out = Command::new("python3")
            .args(["-c", script, schema])
            .arg(&lines)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn events(values: &[Value]) -> Vec<&str> {
    values.iter().map(|v| v["event"].as_str().unwrap()).collect()
}

#[test]
fn every_json_line_matches_the_schema() {
    if !support::peer_available("python3", &["-c", "import jsonschema"]) {
        return;
    }
    let sb = Sandbox::new();
    let mut lines = Lines(Vec::new());
    let srv = Server::start(&sb, &["--allow-exec", "--root", "served"]);
    let s = srv.addr.as_str();
    write(&sb.path("work/a.txt"), b"hello");
    write(&sb.path("work/tree/b.txt"), b"b");

    // The file service: transfers, listings, management, exec, errors.
    let put = lines.run(&sb, &["put", "a.txt", "--json", "-s", s], b"");
    assert_eq!(events(&put), ["start", "done"]);
    assert_eq!(put[0]["command"], "put");
    lines.run(&sb, &["put", "-r", "tree", "--json", "-s", s], b"");
    lines.run(&sb, &["get", "a.txt", "-o", "dl/", "--json", "-s", s], b"");
    lines.run(&sb, &["get", "-r", "tree", "-o", "dl/", "--json", "-s", s], b"");
    let missing = lines.run(&sb, &["get", "nope.txt", "--json", "-s", s], b"");
    assert_eq!(events(&missing), ["error"]);
    assert_eq!(missing[0]["exit_code"], 1);
    lines.run(&sb, &["ls", "-r", "--json", "-s", s], b"");
    lines.run(&sb, &["stat", "a.txt", "--json", "-s", s], b"");
    lines.run(&sb, &["mkdir", "made", "--json", "-s", s], b"");
    lines.run(&sb, &["rm", "made", "--json", "-s", s], b"");
    lines.run(&sb, &["exec", "--json", "-s", s, "echo", "hi"], b"");
    let usage = lines.run(&sb, &["ls", "--json", "--key-file", "missing.key", "-s", s], b"");
    assert_eq!(usage[0]["exit_code"], 2);

    // TFTP: the same start / done events.
    let (tftp, found) = start_listeners(
        &sb,
        &[
            "tftp",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--root",
            "served",
            "--allow-write",
            "--allow-create",
        ],
        1,
    );
    let _tftp = KillOnDrop(tftp);
    let t = found[0].1.as_str();
    let got = lines.run(&sb, &["tftp", "get", t, "a.txt", "tftp-a.txt", "--json"], b"");
    assert_eq!(events(&got).last(), Some(&"done"));
    assert_eq!(got.last().unwrap()["command"], "tftp get");
    lines.run(&sb, &["tftp", "put", t, "a.txt", "up.txt", "--json"], b"");

    // nc: connected, data both ways, closed; and port reports.
    let (echo, found) = start_listeners(&sb, &["echo", "serve", "--tcp", "127.0.0.1:0"], 1);
    let _echo = KillOnDrop(echo);
    let (host, port) = found[0].1.rsplit_once(':').unwrap();
    let nc = lines.run(&sb, &["nc", host, port, "--json"], b"ping\n");
    let kinds = events(&nc);
    for want in ["connected", "data", "closed"] {
        assert!(kinds.contains(&want), "{kinds:?}");
    }
    lines.run(&sb, &["nc", "-z", host, port, "--json"], b"");
    // A scenario's report: this echo server wants its handshake first, so
    // the steps fail, and both kinds of step line are checked.
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/scenarios/echo.toml");
    let report = lines.run(&sb, &["nc", host, port, "--script", scenario, "--json", "-w", "1"], b"");
    assert_eq!(events(&report).last(), Some(&"result"), "{report:?}");
    lines.run(
        &sb,
        &["bench", "echo", &found[0].1, "-c", "1", "-d", "1", "--json"],
        b"",
    );

    // The network facts.
    lines.run(&sb, &["ipcalc", "192.168.1.10/24", "--json"], b"");
    lines.run(
        &sb,
        &[
            "ipcalc",
            "10.0.0.0/8",
            "--split",
            "10",
            "--contains",
            "10.1.2.3",
            "--json",
        ],
        b"",
    );
    lines.run(&sb, &["ipcalc", "2001:db8::1/64", "--json"], b"");
    lines.run(&sb, &["resolve", "localhost", "--json"], b"");
    lines.run(&sb, &["lab", "sticky", "--messages", "3", "--json"], b"");
    for capture in ["tftp-window.pcap", "ipmsg.pcap"] {
        let path = format!("{}/fuzz/seeds/explain/{capture}", env!("CARGO_MANIFEST_DIR"));
        lines.run(&sb, &["explain", &path, "--json"], b"");
    }

    // UDP listeners: a datagram each.
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = free_udp_port();
    let (mut listen, _) = support::spawn_announced(sb.cmd().args([
        "broadcast",
        "listen",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--json",
    ]));
    let mut out = BufReader::new(listen.stdout.take().unwrap());
    let _listen = KillOnDrop(listen);
    peer.send_to("广播 hello".as_bytes(), ("127.0.0.1", port)).unwrap();
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let got = lines.take(&["broadcast", "listen"], line.as_bytes());
    assert_eq!(
        (got[0]["event"].as_str(), got[0]["text"].as_str()),
        (Some("datagram"), Some("广播 hello"))
    );

    let peer_addr = peer.local_addr().unwrap().to_string();
    let (mut chat, banner) =
        support::spawn_announced(
            sb.cmd()
                .args(["udpchat", "--listen", "127.0.0.1:0", "--peer", &peer_addr, "--json"]),
        );
    let chat_addr = banner.split(' ').nth(3).unwrap().to_owned();
    let mut out = BufReader::new(chat.stdout.take().unwrap());
    let _chat = KillOnDrop(chat);
    peer.send_to(b"hi there", &chat_addr).unwrap();
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let got = lines.take(&["udpchat"], line.as_bytes());
    assert_eq!(got[0]["event"], "message");

    // ipmsg send to a host that never answers: undelivered, then the error.
    lines.run(
        &sb,
        &[
            "ipmsg",
            "send",
            "--to",
            "127.0.0.1:9",
            "--bind",
            "127.0.0.1:0",
            "--no-broadcast",
            "--attempts",
            "1",
            "--retry-ms",
            "100",
            "--json",
            "hello",
        ],
        b"",
    );

    lines.check(&sb);
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
