//! `sockit ipmsg` end to end: two sockit nodes on 127.0.0.1 and 127.0.0.2,
//! hand-written FeiQ packets from a plain UDP socket, hostile input, and
//! Debian's iptux under Xvfb in a network namespace this test creates.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use support::netns::{Lan, Netns};
use support::{KillOnDrop, Sandbox};

/// Longest wait for any one expected event; generous, since a slow machine
/// must not fail a test, and nothing waits this long when things work.
const WAIT: Duration = Duration::from_secs(30);

/// A running `sockit ipmsg listen --json`, its events read on a thread.
struct Listener {
    addr: SocketAddr,
    events: mpsc::Receiver<Value>,
    /// Events read while waiting for another, in arrival order.
    backlog: std::cell::RefCell<Vec<Value>>,
    child: KillOnDrop,
}

impl Listener {
    fn start(mut cmd: Command) -> Listener {
        let mut child = cmd
            .env("SOCKIT_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if tx.send(serde_json::from_str::<Value>(&line).unwrap()).is_err() {
                    break;
                }
            }
        });
        let first = events.recv_timeout(WAIT).expect("the node announces its address");
        assert_eq!(first["event"], "listening", "{first}");
        Listener {
            addr: first["addr"].as_str().unwrap().parse().unwrap(),
            events,
            backlog: std::cell::RefCell::default(),
            child: KillOnDrop(child),
        }
    }

    /// The first event, already read or still to come, that `matches`;
    /// panics after WAIT.
    fn wait_for(&self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        let mut backlog = self.backlog.borrow_mut();
        if let Some(i) = backlog.iter().position(&matches) {
            return backlog.remove(i);
        }
        let deadline = Instant::now() + WAIT;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.events.recv_timeout(left) {
                Ok(event) if matches(&event) => return event,
                Ok(event) => backlog.push(event),
                Err(_) => break,
            }
        }
        panic!("no {what} event; saw {backlog:?}");
    }

    /// Interrupts the node (by PID) as Ctrl-C would: it says goodbye and
    /// exits 130.
    fn interrupt(mut self) -> std::process::ExitStatus {
        let pid = self.child.0.id().to_string();
        Command::new("kill").args(["-INT", &pid]).status().unwrap();
        self.child.0.wait().unwrap()
    }

    /// Every event that arrives until `quiet` passes with none.
    fn drain(&self, quiet: Duration) -> Vec<Value> {
        std::iter::from_fn(|| self.events.recv_timeout(quiet).ok())
            .take(1000)
            .collect()
    }
}

fn listen(sandbox: &Sandbox, bind: &str, extra: &[&str]) -> Listener {
    let mut cmd = sandbox.cmd();
    cmd.args([
        "ipmsg", "listen", "--bind", bind, "--json", "--user", "bob", "--nick", "Bob",
    ])
    .args(extra);
    Listener::start(cmd)
}

#[test]
fn two_nodes_see_each_other_and_exchange_a_message_and_a_file() {
    let sb = Sandbox::new();
    let inbox = sb.path("inbox");
    let bob = listen(
        &sb,
        "127.0.0.2:0",
        &["--accept-files", "--inbox", inbox.to_str().unwrap()],
    );
    let file = sb.path("报告.bin");
    let body: Vec<u8> = (0..700_000u32).map(|i| (i * 7 % 251) as u8).collect();
    support::write(&file, &body);
    let sent = sb
        .cmd()
        .args([
            "ipmsg",
            "send",
            "--bind",
            "127.0.0.1:0",
            "--user",
            "alice",
            "--nick",
            "Alice",
        ])
        .args(["--file", file.to_str().unwrap(), "--serve-secs", "30"])
        // The peer as the first argument, as every client names its server.
        .args([&bob.addr.to_string(), "你好, Bob"])
        .output()
        .unwrap();
    assert!(sent.status.success(), "{}", String::from_utf8_lossy(&sent.stderr));
    let out = String::from_utf8_lossy(&sent.stdout);
    assert!(
        out.contains("+ Alice") || out.contains("+ Bob"),
        "the sender lists bob: {out}"
    );
    assert!(out.contains("received message"), "{out}");
    assert!(out.contains("fetched 报告.bin (700000 bytes)"), "{out}");

    let entry = bob.wait_for("entry", |e| e["event"] == "entry");
    assert_eq!(entry["nick"], "Alice");
    assert!(entry["from"].as_str().unwrap().starts_with("127.0.0.1:"));
    let message = bob.wait_for("message", |e| e["event"] == "message");
    assert_eq!(message["text"], "你好, Bob");
    assert_eq!(message["nick"], "Alice");
    assert_eq!(message["files"][0]["name"], "报告.bin");
    assert_eq!(message["files"][0]["size"], 700_000);
    let saved = bob.wait_for("file-received", |e| e["event"] == "file-received");
    assert_eq!(saved["bytes"], 700_000);
    assert_eq!(std::fs::read(inbox.join("报告.bin")).unwrap(), body);
    bob.wait_for("exit", |e| e["event"] == "exit" && e["nick"] == "Alice");
}

#[test]
fn a_message_nobody_acknowledges_is_sent_the_set_number_of_times_then_exits_1() {
    let sb = Sandbox::new();
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    silent.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let to = silent.local_addr().unwrap().to_string();
    let started = Instant::now();
    let sent = sb
        .cmd()
        .args(["ipmsg", "send", "--bind", "127.0.0.1:0", "--to", &to])
        .args(["--retry-ms", "100", "--attempts", "3", "anyone?"])
        .output()
        .unwrap();
    assert_eq!(sent.status.code(), Some(1), "{}", String::from_utf8_lossy(&sent.stderr));
    assert!(String::from_utf8_lossy(&sent.stderr).contains("did not acknowledge the message after 3 sends"));
    assert!(started.elapsed() >= Duration::from_millis(300));
    let mut copies = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok(n) = silent.recv(&mut buf) {
        let packet = String::from_utf8_lossy(&buf[..n]).into_owned();
        if packet.contains(":anyone?") {
            copies.push(packet);
        }
    }
    assert_eq!(copies.len(), 3, "{copies:?}");
    assert!(copies.windows(2).all(|w| w[0] == w[1]), "a resend is the same packet");
}

fn evil_recv(socket: &UdpSocket) -> String {
    let mut buf = [0u8; 2048];
    let n = socket.recv(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// The mode byte of a packet's command.
fn mode(packet: &str) -> u32 {
    packet.split(':').nth(4).unwrap().parse::<u32>().unwrap() & 0xff
}

fn gbk(text: &str) -> Vec<u8> {
    sockit_proto::assist::text::TextEncoding::Gbk.encode(text).unwrap()
}

/// A FeiQ peer written by hand: its extended version field, GBK text with
/// its style suffix, a duplicate, and a broadcast message.
#[test]
fn a_feiq_peer_is_listed_answered_and_acknowledged_once_per_message() {
    let sb = Sandbox::new();
    let bob = listen(&sb, "127.0.0.1:0", &[]);
    let feiq = UdpSocket::bind("127.0.0.3:0").unwrap();
    feiq.set_read_timeout(Some(WAIT)).unwrap();
    let version = "1_lbt6_0#128#000C29D68D8F#0#0#0#4001#9";
    let entry = format!("{version}:1700000000:Administrator:ADMIN-PC:6291457:飞秋\0工作组\0");
    feiq.send_to(&gbk(&entry), bob.addr).unwrap();
    let mut buf = [0u8; 2048];
    let (n, from) = feiq.recv_from(&mut buf).unwrap();
    assert_eq!(from, bob.addr);
    let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert_eq!(
        answer.split(':').nth(4).unwrap().parse::<u32>().unwrap() & 0xff,
        3,
        "ANSENTRY: {answer}"
    );
    let listed = bob.wait_for("entry", |e| e["event"] == "entry");
    assert_eq!(listed["nick"], "飞秋");
    assert_eq!(listed["group"], "工作组");
    assert_eq!(listed["version"], version);

    let mut msg = format!("{version}:1700000001:Administrator:ADMIN-PC:288:").into_bytes();
    msg.extend(gbk("晚上好{/font;-16777216;12;0;0;0;0;宋体;0;}"));
    msg.push(0);
    feiq.send_to(&msg, bob.addr).unwrap();
    feiq.send_to(&msg, bob.addr).unwrap();
    for _ in 0..2 {
        let n = feiq.recv(&mut buf).unwrap();
        let ack = String::from_utf8_lossy(&buf[..n]).into_owned();
        let fields: Vec<&str> = ack.split(':').collect();
        assert_eq!(fields[4].parse::<u32>().unwrap() & 0xff, 0x21, "RECVMSG: {ack}");
        assert_eq!(fields[5], "1700000001\0");
    }
    let message = bob.wait_for("message", |e| e["event"] == "message");
    assert_eq!(message["text"], "晚上好");
    // Broadcast messages are shown but never acknowledged.
    let all = format!("{version}:1700000002:Administrator:ADMIN-PC:1312:everyone\0");
    feiq.send_to(all.as_bytes(), bob.addr).unwrap();
    let broadcast = bob.wait_for("message", |e| e["event"] == "message");
    assert_eq!(broadcast["text"], "everyone");
    assert_eq!(broadcast["broadcast"], true);
    let mut later = bob.drain(Duration::from_millis(300));
    later.extend(bob.backlog.take());
    assert!(
        later.iter().all(|e| e["event"] != "message"),
        "the duplicate was not shown: {later:?}"
    );
    feiq.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    assert!(feiq.recv(&mut buf).is_err(), "no ack for the broadcast message");
}

#[test]
fn hostile_packets_and_file_requests_are_refused_and_the_node_keeps_working() {
    let sb = Sandbox::new();
    let inbox = sb.path("inbox");
    let bob = listen(
        &sb,
        "127.0.0.1:0",
        &[
            "--accept-files",
            "--inbox",
            inbox.to_str().unwrap(),
            "--max-file",
            "1000000",
        ],
    );
    let evil = UdpSocket::bind("127.0.0.4:0").unwrap();
    evil.set_read_timeout(Some(WAIT)).unwrap();
    for junk in [&b""[..], b":::::", b"1:x:u:h:32:", b"\xff\xfe\xfd", &[b':'; 5000][..]] {
        evil.send_to(junk, bob.addr).unwrap();
    }
    // A file offer whose name climbs out of the inbox.
    let offer = "1:1700000000:u:h:2097440:take this\x000:../../escape.txt:5:0:1:\x07\0";
    evil.send_to(offer.as_bytes(), bob.addr).unwrap();
    let refused = bob.wait_for("refusal", |e| e["event"] == "error");
    assert!(
        refused["message"].as_str().unwrap().contains("refused file name"),
        "{refused}"
    );
    let ack = evil_recv(&evil);
    assert_eq!(mode(&ack), 0x21, "the offer itself is acknowledged: {ack}");
    assert!(!sb.path("escape.txt").exists() && !inbox.parent().unwrap().join("escape.txt").exists());

    // An offer over --max-file is refused before a byte is fetched.
    let big = "1:1700000001:u:h:2097440:big\x000:huge.bin:10000000000:0:1:\x07\0";
    evil.send_to(big.as_bytes(), bob.addr).unwrap();
    let refused = bob.wait_for("refusal", |e| e["event"] == "error" && e["name"] == "huge.bin");
    assert!(refused["message"].as_str().unwrap().contains("--max-file"), "{refused}");
    assert_eq!(mode(&evil_recv(&evil)), 0x21);

    // Asking for a file that was never offered gets nothing but a close.
    let mut tcp = TcpStream::connect(bob.addr).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    tcp.write_all(b"1:5:u:h:96:6553f100:0:0\0").unwrap();
    let mut rest = Vec::new();
    tcp.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());

    // Still answering.
    evil.send_to(b"1:9:u:h:1:still\0\0", bob.addr).unwrap();
    let answer = evil_recv(&evil);
    assert_eq!(mode(&answer), 3, "ANSENTRY: {answer}");
    bob.wait_for("entry", |e| e["event"] == "entry" && e["nick"] == "still");
}

#[test]
fn nodes_on_a_lan_find_each_other_by_broadcast() {
    let Some(lan) = Lan::create("ipm") else {
        support::netns::skip();
        return;
    };
    let mut cmd = lan.b.sockit();
    cmd.args(["ipmsg", "listen", "--json", "--user", "bob"]);
    let bob = Listener::start(cmd);
    assert_eq!(bob.addr.to_string(), "0.0.0.0:2425");
    // Alice is told of nobody: her BR_ENTRY goes to the LAN's broadcast
    // address, Bob hears it and answers, and each lists the other.
    let mut cmd = lan.a.sockit();
    cmd.args(["ipmsg", "listen", "--json", "--user", "alice"]);
    let alice = Listener::start(cmd);
    let entry = bob.wait_for("alice's entry", |e| e["event"] == "entry");
    assert_eq!(entry["user"], "alice");
    assert_eq!(entry["from"], format!("{}.1:2425", lan.subnet));
    let answer = alice.wait_for("bob's answer", |e| e["event"] == "entry");
    assert_eq!(answer["user"], "bob");
    assert_eq!(answer["from"], format!("{}.2:2425", lan.subnet));
}

/// iptux, an independent IPMSG implementation, headless under Xvfb inside
/// a namespace of its own: its start-up BR_ENTRY reaches `sockit ipmsg
/// listen`, and it acknowledges messages sent in UTF-8 and in GBK, and its
/// chat log shows both decoded.
#[test]
fn iptux_sees_sockit_and_acknowledges_utf8_and_gbk() {
    if !support::peer_available("iptux", &["--version"]) || !support::peer_available("Xvfb", &["-help"]) {
        return;
    }
    let Some(ns) = Netns::create("ipx") else {
        support::netns::skip();
        return;
    };
    let sb = Sandbox::new();
    let config_home = sb.path("xdg");
    std::fs::create_dir_all(config_home.join("iptux/log")).unwrap();
    let config = config_home.join("iptux.json");
    std::fs::write(
        &config,
        r#"{"bind_ip":"127.0.0.2","nick_name":"iptux-peer","open_chat":true,"record_log":true,
           "preference_encode":"utf-8","candidacy_encode":"gb18030,utf-16"}"#,
    )
    .unwrap();
    // iptux sends everything to port 2425, so sockit takes that port.
    let mut cmd = ns.sockit();
    cmd.args([
        "ipmsg",
        "listen",
        "--bind",
        "127.0.0.1:2425",
        "--json",
        "--user",
        "sockit-user",
    ]);
    let listener = Listener::start(cmd);

    let display = format!(":{}", 100 + std::process::id() % 400);
    let mut xvfb = ns.command("Xvfb");
    xvfb.args([&display, "-nolisten", "tcp", "-displayfd", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut xvfb: Child = xvfb.spawn().unwrap();
    let mut ready = String::new();
    BufReader::new(xvfb.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    let _xvfb = KillOnDrop(xvfb);
    assert!(!ready.trim().is_empty(), "Xvfb reports its display when ready");

    // Its debug log dumps every packet; shown when the test fails.
    let iptux_log = sb.path("iptux.log");
    let iptux = ns
        .command("iptux")
        .args(["-c", config.to_str().unwrap(), "--log", "DEBUG"])
        .env("HOME", sb.path("home"))
        .env("XDG_CONFIG_HOME", &config_home)
        .env("DISPLAY", &display)
        .stdout(std::fs::File::create(&iptux_log).unwrap())
        .stderr(std::fs::File::create(sb.path("iptux.err")).unwrap())
        .spawn()
        .unwrap();
    let _iptux = KillOnDrop(iptux);
    let entry = listener.wait_for("iptux's entry", |e| {
        e["event"] == "entry" && e["from"] == "127.0.0.2:2425"
    });
    assert_eq!(entry["nick"], "iptux-peer");
    assert!(entry["version"].as_str().unwrap().contains("iptux"), "{entry}");
    // Stopped as a user would, so that it waits for the clock to pass its
    // packet numbers: iptux drops numbers it has seen from this address.
    assert_eq!(listener.interrupt().code(), Some(130));

    for (encoding, text) in [("utf-8", "hello from sockit, 你好"), ("gbk", "GBK 也行")] {
        let sent = ns
            .sockit()
            .args([
                "ipmsg",
                "send",
                "--bind",
                "127.0.0.1",
                "--no-broadcast",
                "--encoding",
                encoding,
            ])
            // iptux adds a peer to its list on its GUI thread, and a message
            // from a peer not listed yet is acknowledged but not shown. `send`
            // waits one retry interval for the answer to its entry (which
            // comes once the peer is listed); a loaded machine needs longer.
            .args(["--retry-ms", "3000"])
            .args(["--user", "sockit-user", "--to", "127.0.0.2", text])
            .output()
            .unwrap();
        assert!(
            sent.status.success(),
            "iptux acknowledged the {encoding} message: {}",
            String::from_utf8_lossy(&sent.stderr)
        );
        assert!(String::from_utf8_lossy(&sent.stdout).contains("received message"));
    }
    // iptux's own log shows both texts decoded (it writes as it receives).
    let log = config_home.join("iptux/log/communicate.log");
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("hello from sockit, 你好") && text.contains("GBK 也行") {
            break;
        }
        let debug = std::fs::read_to_string(&iptux_log).unwrap_or_default()
            + &std::fs::read_to_string(sb.path("iptux.err")).unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "iptux's log lacks the messages:\n{text}\niptux:\n{debug}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The interactive mode: typed commands, an unknown one reported without
/// ending the session, and /quit saying goodbye while stdin is still open.
#[test]
fn interactive_commands_send_list_and_quit() {
    let sb = Sandbox::new();
    let bob = listen(&sb, "127.0.0.2:0", &[]);
    let mut alice = sb
        .cmd()
        .args(["ipmsg", "--bind", "127.0.0.1:0", "--no-broadcast", "--user", "alice"])
        .args(["--peer", &bob.addr.to_string()])
        .env("SOCKIT_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = alice.stdin.take().unwrap();
    let (tx, shown) = mpsc::channel();
    let out = BufReader::new(alice.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let wait_shown = |what: &str| {
        let deadline = Instant::now() + WAIT;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match shown.recv_timeout(left) {
                Ok(line) if line.contains(what) => return line,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!("alice never showed {what:?}");
    };
    bob.wait_for("alice's entry", |e| e["event"] == "entry" && e["user"] == "alice");
    wait_shown("+ Bob");
    writeln!(stdin, "/list\n/msg bob 你好\n/bogus").unwrap();
    assert!(wait_shown("  1  Bob").contains(&bob.addr.to_string()));
    bob.wait_for("the message", |e| e["event"] == "message" && e["text"] == "你好");
    wait_shown("received message");
    writeln!(stdin, "/quit").unwrap();
    bob.wait_for("alice's exit", |e| e["event"] == "exit");
    // stdin stays open: /quit alone ended the session.
    let out = alice.wait_with_output().unwrap();
    drop(stdin);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown command /bogus"), "{stderr}");
}

#[test]
fn a_config_file_runs_an_ipmsg_node_and_a_broadcast_log() {
    let sb = Sandbox::new();
    let config = "[[service]]\nkind = \"ipmsg\"\nlisten = \"127.0.0.1:0\"\nnick = \"daemon\"\n\n\
                  [[service]]\nkind = \"broadcast\"\nlisten = \"127.0.0.1:0\"\n";
    support::write(&sb.path("work/sockit.toml"), config.as_bytes());
    let mut serve = sb
        .cmd()
        .env_remove("SOCKIT_LOG")
        .args(["-v", "serve", "--config", "sockit.toml"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(serve.stdout.take().unwrap());
    let mut lines = Vec::new();
    for _ in 0..3 {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        lines.push(line.trim().to_owned());
    }
    let addr_of = |service: &str| {
        let line = lines
            .iter()
            .find(|l| l.starts_with("listening on udp") && l.contains(&format!("({service},")))
            .unwrap();
        line.split(' ').nth(3).unwrap().to_owned()
    };
    let (node, bcast) = (addr_of("ipmsg"), addr_of("broadcast"));
    let mut err = BufReader::new(serve.stderr.take().unwrap());
    let _serve = support::KillOnDrop(serve);
    // The node acknowledges a message: send exits 0 only on RECVMSG.
    let sent = sb
        .cmd()
        .args([
            "ipmsg",
            "send",
            &node,
            "hello daemon",
            "--bind",
            "127.0.0.2:0",
            "--no-broadcast",
        ])
        .output()
        .unwrap();
    assert!(sent.status.success(), "{}", String::from_utf8_lossy(&sent.stderr));
    // The broadcast log records a datagram.
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(b"to the log", &bcast)
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..200 {
        let mut line = String::new();
        if err.read_line(&mut line).unwrap() == 0 {
            break;
        }
        seen.push(line.clone());
        if line.contains("to the log") {
            break;
        }
    }
    let log = seen.concat();
    assert!(log.contains("hello daemon"), "{log}");
    assert!(log.contains("broadcast") && log.contains("to the log"), "{log}");
}
