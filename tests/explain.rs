//! `sockit explain` and `sockit lab capture`: traffic recorded by tcpdump
//! in a network namespace of the test's own (so no other test's packets
//! get in), explained, and checked field by field against tshark's
//! dissection of the same file.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use support::netns::{self, Netns};
use support::{KillOnDrop, Sandbox};

/// `sockit ARGS` inside the namespace, with the sandbox's environment.
fn sockit_in(ns: &Netns, sandbox: &Sandbox) -> Command {
    sandbox.inside(ns.sockit())
}

/// Starts a server and returns it with the first stdout line that
/// contains `marker` (its announcement).
fn start(cmd: &mut Command, marker: &str) -> (KillOnDrop, String) {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains(marker) {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the server ended before {marker:?}"
        );
    }
    std::thread::spawn(move || for _ in out.lines() {});
    (KillOnDrop(child), line.trim().to_owned())
}

fn events(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn peers_here() -> bool {
    support::peer_available("tcpdump", &["--version"]) && support::peer_available("tshark", &["--version"])
}

/// A put through the framed service (with auth), a TFTP download with
/// windowsize 4, and an IPMSG message, recorded in one `lab capture`.
/// `explain` names each protocol and step, and its TCP and UDP fields
/// agree with tshark's for every packet.
#[test]
fn explain_reads_a_put_a_windowed_tftp_download_and_an_ipmsg_message_as_tshark_does() {
    if !peers_here() {
        return;
    }
    let Some(ns) = Netns::create("ex") else {
        return netns::skip();
    };
    let sandbox = Sandbox::new();
    let root = sandbox.path("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(sandbox.path("work")).unwrap();
    let upload = support::tftp::random_file(&sandbox.path("work/upload.bin"), 300_000, 7);
    support::tftp::random_file(&root.join("fw.bin"), 20_000, 8);

    let (_files, banner) = start(
        sockit_in(&ns, &sandbox)
            .args(["serve", "--listen", "127.0.0.1:0", "--no-web", "--root"])
            .arg(&root),
        "listening on tcp",
    );
    let files_addr = banner.split_whitespace().nth(3).unwrap().to_owned();
    let (_tftp, banner) = start(
        sockit_in(&ns, &sandbox)
            .args(["tftp", "serve", "--listen", "127.0.0.1:0", "--root"])
            .arg(&root),
        "listening on",
    );
    let tftp_addr = banner.split_whitespace().nth(3).unwrap().to_owned();
    let tftp_port = tftp_addr.rsplit(':').next().unwrap().to_owned();
    let (_ipmsg, _) = start(
        sockit_in(&ns, &sandbox).args([
            "ipmsg",
            "listen",
            "--bind",
            "127.0.0.1:2425",
            "--json",
            "--user",
            "bob",
            "--host",
            "lab",
        ]),
        "listening",
    );

    let sockit = env!("CARGO_BIN_EXE_sockit");
    let script = format!(
        "{sockit} put {files_addr} upload.bin && \
         {sockit} tftp get {tftp_addr} fw.bin fw.got --blksize 1024 --windowsize 4 && \
         {sockit} ipmsg send --bind 127.0.0.1:2426 --user alice --host lab 127.0.0.1:2425 'hello, 你好'"
    );
    let out = sockit_in(&ns, &sandbox)
        .args(["lab", "capture", "-o", "session.pcap", "--", "sh", "-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("read them with: sockit explain session.pcap"), "{said}");
    let capture = sandbox.path("work/session.pcap");

    let out = sockit_in(&ns, &sandbox)
        .args(["explain", "session.pcap", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let events = events(&out);
    let packets: Vec<&Value> = events.iter().filter(|e| e["event"] == "packet").collect();
    let meanings = |kind: &str| -> Vec<&Value> {
        packets
            .iter()
            .flat_map(|p| p["meaning"].as_array().unwrap())
            .filter(|m| m["kind"] == kind)
            .collect()
    };

    // The framed put: handshake, auth, the put frame with the file's size,
    // every body byte, the commit, the reply and the four-way close.
    let framed: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "totals" && e["app"] == "framed")
        .collect();
    assert_eq!(framed.len(), 1, "{framed:?}");
    assert_eq!(framed[0]["ending"], "closed");
    let steps: Vec<u64> = meanings("handshake")
        .iter()
        .map(|m| m["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, [1, 2, 3], "one TCP conversation, one handshake");
    let closes: Vec<u64> = meanings("close")
        .iter()
        .flat_map(|m| m["steps"].as_array().unwrap().iter().map(|s| s.as_u64().unwrap()))
        .collect();
    assert_eq!(closes, [1, 2, 3, 4]);
    assert_eq!(meanings("auth_challenge")[0]["bytes"], 32);
    assert_eq!(meanings("auth_answer")[0]["bytes"], 32);
    let headers = meanings("frame_header");
    let put = headers
        .iter()
        .find(|h| h["header"].as_str().unwrap().contains(r#""cmd":"put""#))
        .unwrap();
    assert_eq!(put["body_len"], 300_000);
    let declared = put["header"].as_str().unwrap().len() as u64;
    assert_eq!(put["header_len"], declared, "the header's length is its JSON's");
    let body: u64 = meanings("frame_body")
        .iter()
        .filter(|b| b["of"] == 300_000)
        .map(|b| b["bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(body, upload.len() as u64);
    assert!(
        headers
            .iter()
            .any(|h| h["header"].as_str().unwrap().contains(r#""cmd":"commit""#))
    );
    assert!(
        headers
            .iter()
            .any(|h| h["header"].as_str().unwrap().contains(r#""status":"ok""#))
    );

    // TFTP: the request, the OACK, 20 DATA blocks in windows of 4, an ACK
    // per window, the last block short.
    let tftp = meanings("tftp");
    let names: Vec<&str> = tftp.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names[..2], ["RRQ", "OACK"]);
    let rrq = tftp[0];
    assert_eq!(rrq["file"], "fw.bin");
    assert!(
        rrq["options"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(["windowsize", "4"]))
    );
    let data: Vec<&&Value> = tftp.iter().filter(|t| t["name"] == "DATA").collect();
    assert_eq!(data.len(), 20);
    for (i, d) in data.iter().enumerate() {
        assert_eq!(d["block"], i + 1);
        assert_eq!(d["window"], serde_json::json!([i % 4 + 1, 4]));
    }
    assert_eq!(data[19]["data_len"], 20_000 - 19 * 1024);
    assert_eq!(data[19]["last"], true);
    let acks: Vec<u64> = tftp
        .iter()
        .filter(|t| t["name"] == "ACK")
        .map(|t| t["block"].as_u64().unwrap())
        .collect();
    assert_eq!(acks, [0, 4, 8, 12, 16, 20]);

    // IPMSG: the entry, its answer, the message and its receipt.
    let ipmsg = meanings("ipmsg");
    let modes: Vec<&str> = ipmsg.iter().map(|m| m["mode"].as_str().unwrap()).collect();
    assert_eq!(
        modes[..4],
        ["IPMSG_BR_ENTRY", "IPMSG_ANSENTRY", "IPMSG_SENDMSG", "IPMSG_RECVMSG"]
    );
    let message = ipmsg[2];
    assert_eq!(
        (message["user"].as_str(), message["text"].as_str()),
        (Some("alice"), Some("hello, 你好"))
    );
    assert_eq!(
        ipmsg[3]["text"],
        message["packet_no"].to_string(),
        "the receipt names the message"
    );

    // Field by field against tshark.
    let tshark = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(&capture)
        .args([
            "-d",
            &format!("udp.port=={tftp_port},tftp"),
            "-T",
            "fields",
            "-E",
            "separator=|",
        ])
        .args(
            [
                "frame.number",
                "tcp.srcport",
                "tcp.dstport",
                "tcp.seq",
                "tcp.ack",
                "tcp.flags",
                "tcp.len",
                "tcp.window_size_value",
                "udp.srcport",
                "udp.dstport",
                "udp.length",
                "tftp.opcode",
                "tftp.block",
            ]
            .iter()
            .flat_map(|f| ["-e", f]),
        )
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(tshark.status.success(), "{tshark:?}");
    let rows: Vec<Vec<String>> = String::from_utf8_lossy(&tshark.stdout)
        .lines()
        .map(|l| l.split('|').map(str::to_owned).collect())
        .collect();
    assert_eq!(rows.len(), packets.len(), "every frame explained");
    let mut tftp_checked = 0;
    for (row, p) in rows.iter().zip(&packets) {
        let field = |i: usize| row[i].as_str();
        assert_eq!(field(0), p["number"].to_string());
        let port = |v: &Value| v.as_str().unwrap().rsplit(':').next().unwrap().to_owned();
        if p["transport"] == "tcp" {
            let tcp = &p["tcp"];
            assert_eq!(
                (field(1), field(2)),
                (port(&p["src"]).as_str(), port(&p["dst"]).as_str())
            );
            assert_eq!(field(3), tcp["seq"].to_string(), "seq of {p}");
            let ack = if field(4).is_empty() { "0" } else { field(4) };
            assert_eq!(ack, tcp["ack"].to_string(), "ack of {p}");
            let flags = u8::from_str_radix(field(5).trim_start_matches("0x"), 16).unwrap();
            assert_eq!(u64::from(flags), tcp["flags_raw"].as_u64().unwrap(), "flags of {p}");
            assert_eq!(field(6), p["len"].to_string());
            assert_eq!(field(7), tcp["window"].to_string());
        } else {
            assert_eq!(
                (field(8), field(9)),
                (port(&p["src"]).as_str(), port(&p["dst"]).as_str())
            );
            assert_eq!(field(10), (p["len"].as_u64().unwrap() + 8).to_string());
            if !field(11).is_empty() {
                let t = p["meaning"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|m| m["kind"] == "tftp")
                    .unwrap();
                assert_eq!(field(11), t["opcode"].to_string(), "opcode of {p}");
                if !field(12).is_empty() {
                    assert_eq!(field(12), t["block"].to_string(), "block of {p}");
                }
                tftp_checked += 1;
            }
        }
    }
    assert!(
        tftp_checked >= 28,
        "tshark dissected the TFTP transfer too ({tftp_checked} packets)"
    );

    // The text ladder says the same for a person.
    let out = sockit_in(&ns, &sandbox)
        .args(["explain", "session.pcap"])
        .output()
        .unwrap();
    let ladder = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "handshake 1/3",
        "auth challenge",
        r#"frame: header"#,
        "body of 300000 B follows",
        "TFTP DATA block 4, 1024 B, window 4/4",
        "IPMSG_SENDMSG",
        "close 4/4",
    ] {
        assert!(ladder.contains(expected), "{expected:?} missing from\n{ladder}");
    }
}

/// A capture cut short, one with garbage in a packet header, one that is
/// not a capture, and a FIFO: a clear error each, never a panic or a hang;
/// what came before the damage is still explained.
#[test]
fn damaged_captures_and_special_files_get_a_clear_error() {
    let sandbox = Sandbox::new();
    let good = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/explain/tftp-window.pcap");
    let bytes = std::fs::read(&good).unwrap();

    let cut = sandbox.path("cut.pcap");
    std::fs::write(&cut, &bytes[..bytes.len() - 500]).unwrap();
    let out = sandbox.cmd().arg("explain").arg(&cut).arg("--json").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("damaged after frame"), "{said}");
    assert!(!said.contains("panicked"), "{said}");
    let explained = events(&out).iter().filter(|e| e["event"] == "packet").count();
    assert!(explained >= 20, "the frames before the cut are explained ({explained})");

    // A record length far past any snap length, right after the file header.
    let mut corrupt = bytes[..24].to_vec();
    corrupt.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 0x7f]);
    corrupt.extend_from_slice(&[0; 64]);
    let path = sandbox.path("corrupt.pcap");
    std::fs::write(&path, &corrupt).unwrap();
    let out = sandbox.cmd().arg("explain").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("damaged"), "{out:?}");

    let path = sandbox.path("notes.txt");
    std::fs::write(&path, "these are my notes, not a capture\n").unwrap();
    let out = sandbox.cmd().arg("explain").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a pcap or pcapng capture"),
        "{out:?}"
    );

    let fifo = sandbox.path("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let out = sandbox.cmd().arg("explain").arg(&fifo).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a regular file"),
        "{out:?}"
    );
}

/// Without tcpdump, `lab capture` says what to install.
#[test]
fn lab_capture_without_tcpdump_says_what_to_install() {
    let sandbox = Sandbox::new();
    let out = sandbox
        .cmd()
        .env("PATH", "/nonexistent")
        .args(["lab", "capture", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("apt install tcpdump"),
        "{out:?}"
    );
}
