//! The assistant's engine from the command line: `nc --rules` answering
//! Python clients (TCP and UDP), `nc --script` grading sockit's own
//! services (the shipped examples) and failing against a wrong or slow
//! server, macros in periodic sends, and quick sends.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use support::{KillOnDrop, Sandbox, spawn_announced, start_listeners, write};

/// Runs a Python 3 program with ARGS; returns its stdout (it must exit 0).
fn python(program: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(program)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `sockit nc -l 127.0.0.1 0 ARGS` with stdin closed; its announced address.
fn listen(sandbox: &Sandbox, args: &[&str]) -> (KillOnDrop, SocketAddr) {
    let mut cmd = sandbox.cmd();
    cmd.args(["nc", "-l", "127.0.0.1", "0"]).args(args);
    let (mut child, first) = spawn_announced(&mut cmd);
    drop(child.stdin.take());
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || for _ in BufReader::new(out).lines() {});
    let addr = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .parse()
        .unwrap();
    (KillOnDrop(child), addr)
}

fn rules_file(sandbox: &Sandbox, text: &str) -> String {
    let path = sandbox.path("rules.toml");
    write(&path, text.as_bytes());
    path.to_str().unwrap().to_owned()
}

/// CRC-16/MODBUS written out in Python: an implementation independent of
/// the one under test.
const PY_CRC: &str = r#"
def crc16_modbus(data):
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return bytes([crc & 0xFF, crc >> 8])
"#;

#[test]
fn rules_answer_a_python_client_with_captures_seq_and_crc() {
    let sandbox = Sandbox::new();
    let rules = rules_file(
        &sandbox,
        r#"
        [[rule]]
        name = "ping"
        regex = '^PING (?P<token>\w+)$'
        reply = "PONG {{token}} #{{seq}}"
        [[rule]]
        name = "modbus"
        regex = '^READ (\d+)$'
        reply = "R{{1}}"
        append = ["crc16-modbus", "lf"]
        [[rule]]
        exact = "QUIT"
        reply = "bye"
        close = true
        "#,
    );
    let (_nc, addr) = listen(&sandbox, &["--rules", &rules]);
    let program = format!(
        r#"{PY_CRC}
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
s.sendall(b"PING abc\nPING xyz\nnothing matches this\nREAD 42\nQUIT\nPING late\n")
got = b""
while True:
    d = s.recv(4096)
    if not d:
        break
    got += d
want = b"PONG abc #1\nPONG xyz #2\n" + b"R42" + crc16_modbus(b"R42") + b"\n" + b"bye\n"
assert got == want, (got, want)
print("ok")
"#
    );
    assert_eq!(python(&program, &[&addr.port().to_string()]).trim(), "ok");
}

#[test]
fn rules_answer_length_framed_messages_and_udp_datagrams() {
    let sandbox = Sandbox::new();
    let rules = rules_file(
        &sandbox,
        r#"
        frame = "len32le"
        [[rule]]
        regex = '^hello (\w+)$'
        reply = "hi {{1}}, {{len}} bytes"
        [[rule]]
        hex = "01 ?? 03"
        reply_hex = "AA {{1}} {{hex:BB}}"
        "#,
    );
    let (_tcp, addr) = listen(&sandbox, &["--rules", &rules]);
    let program = r#"
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
msg = b"hello ann"
# The length prefix and the message in separate writes: framing, not reads, cuts messages.
s.sendall(struct.pack("<I", len(msg)))
s.sendall(msg + struct.pack("<I", 3) + b"\x01\x7f\x03")
def frame():
    head = b""
    while len(head) < 4:
        head += s.recv(4 - len(head))
    n = struct.unpack("<I", head)[0]
    body = b""
    while len(body) < n:
        body += s.recv(n - len(body))
    return body
assert frame() == b"hi ann, 9 bytes"
assert frame() == b"\xaa\x7f\xbb"
print("ok")
"#;
    assert_eq!(python(program, &[&addr.port().to_string()]).trim(), "ok");

    let (_udp, addr) = listen(&sandbox, &["-u", "-k", "--rules", &rules]);
    let program = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(20)
for name in (b"bob", b"eve"):
    s.sendto(b"hello " + name, ("127.0.0.1", int(sys.argv[1])))
    # A datagram is a whole message, answered without a length prefix.
    assert s.recv(100) == b"hi " + name + b", 9 bytes"
print("ok")
"#;
    assert_eq!(python(program, &[&addr.port().to_string()]).trim(), "ok");
}

#[test]
fn rule_delays_once_and_bad_rule_files() {
    let sandbox = Sandbox::new();
    let rules = rules_file(
        &sandbox,
        r#"
        [[rule]]
        exact = "hi"
        reply = "first"
        once = true
        [[rule]]
        exact = "hi"
        reply = "later"
        delay = 0.3
        [[rule]]
        exact = "now"
        reply = "now"
        "#,
    );
    let (_nc, addr) = listen(&sandbox, &["--rules", &rules]);
    let program = r#"
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
s.sendall(b"hi\n")
assert s.recv(100) == b"first\n"
started = time.monotonic()
s.sendall(b"hi\nnow\n")
got = b""
while got.count(b"\n") < 2:
    got += s.recv(100)
# The delayed reply goes out after the immediate one that came later.
assert got == b"now\nlater\n", got
assert time.monotonic() - started >= 0.29
print("ok")
"#;
    assert_eq!(python(program, &[&addr.port().to_string()]).trim(), "ok");

    let bad = rules_file(&sandbox, "[[rule]]\nexact = 'a'\n[[rule]]\nregex = '(x{1000}){1000}'\n");
    sandbox
        .assert_cmd()
        .args(["nc", "-l", "127.0.0.1", "0", "--rules", &bad])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("rule 2: regex"));
}

/// Runs `sockit nc ADDR --script FILE ARGS`; returns (exit code, stdout).
fn script(sandbox: &Sandbox, addr: &str, file: &Path, args: &[&str]) -> (i32, String) {
    let out = sandbox
        .cmd()
        .args(["nc", addr, "--script"])
        .arg(file)
        .args(args)
        .output()
        .unwrap();
    (out.status.code().unwrap(), String::from_utf8(out.stdout).unwrap())
}

fn example(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/scenarios")
        .join(name)
}

#[test]
fn shipped_scenarios_pass_against_sockit_services() {
    let sandbox = Sandbox::new();
    let (_echo, echo, _) = support::start_echo(&sandbox, &["--insecure-no-auth"]);
    let (upper, found) = start_listeners(
        &sandbox,
        &["echo", "serve", "--tcp", "127.0.0.1:0", "--upper", "--insecure-no-auth"],
        1,
    );
    let _upper = KillOnDrop(upper);
    let upper = found[0].1.clone();
    let (time, found) = start_listeners(
        &sandbox,
        &[
            "time",
            "serve",
            "--daytime",
            "127.0.0.1:0",
            "--rfc868",
            "127.0.0.1:0",
            "--insecure-no-auth",
        ],
        4,
    );
    let _time = KillOnDrop(time);
    let tcp = |service: &str| {
        found
            .iter()
            .find(|f| f.0 == "tcp" && f.2.starts_with(service))
            .unwrap_or_else(|| panic!("no tcp {service} in {found:?}"))
            .1
            .clone()
    };
    let (daytime, rfc868) = (tcp("daytime"), tcp("rfc868"));
    let (chat, found) = start_listeners(
        &sandbox,
        &["chat", "serve", "--listen", "127.0.0.1:0", "--insecure-no-auth"],
        1,
    );
    let _chat = KillOnDrop(chat);
    let chat = found[0].1.clone();
    let files = support::Server::start(&sandbox, &["--insecure-no-auth", "--no-web", "--root", "root"]);

    for (file, addr) in [
        ("echo.toml", &echo),
        ("upper-echo.toml", &upper),
        ("daytime.toml", &daytime),
        ("rfc868.toml", &rfc868),
        ("chat.toml", &chat),
        ("files.toml", &files.addr),
    ] {
        let (code, out) = script(&sandbox, addr, &example(file), &[]);
        assert_eq!(code, 0, "{file} against {addr}:\n{out}");
        assert!(out.ends_with("steps\n"), "{file}: {out}");
    }
    // Each scenario grades its own kind of server: the echo one fails the
    // upper-case server, at the first line.
    let (code, out) = script(&sandbox, &upper, &example("echo.toml"), &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL 2/"), "{out}");
    assert!(out.contains(r#"received instead: "HELLO 1\n""#), "{out}");
}

#[test]
fn scripts_fail_clearly_against_a_wrong_or_slow_server() {
    let sandbox = Sandbox::new();
    // A server that answers, but wrongly, and one that answers too late.
    let wrong = rules_file(
        &sandbox,
        "[[rule]]\nexact = 'hello'\nreply = 'HELLO'\n[[rule]]\nexact = 'slow'\nreply = 'slow'\ndelay = 3\n",
    );
    let (_server, addr) = listen(&sandbox, &["-k", "--rules", &wrong]);
    let addr = addr.to_string();
    let grade = sandbox.path("grade.toml");
    write(
        &grade,
        b"[[step]]\nsend = \"hello\\n\"\n[[step]]\nexpect = '^hello$'\ntimeout = 1\n",
    );
    let (code, out) = script(&sandbox, &addr, &grade, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(r#"FAIL 2/2 expect /^hello$/"#) && out.contains(r#"within 1 s; received instead: "HELLO\n""#),
        "{out}"
    );
    assert!(out.ends_with("failed at step 2 of 2\n"), "{out}");

    let slow = sandbox.path("slow.toml");
    write(
        &slow,
        b"[[step]]\nsend = \"slow\\n\"\n[[step]]\nexpect = '^slow$'\ntimeout = 0.5\n",
    );
    let (code, out) = script(&sandbox, &addr, &slow, &["--json"]);
    assert_eq!(code, 1, "{out}");
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0]["event"], "step");
    assert_eq!(lines[0]["ok"], true);
    assert_eq!(lines[1]["ok"], false);
    assert!(lines[1]["millis"].as_u64().unwrap() >= 500, "{out}");
    assert!(
        lines[1]["detail"].as_str().unwrap().contains(r#"received instead: """#),
        "{out}"
    );
    assert_eq!(lines[2]["event"], "result");
    assert_eq!(lines[2]["passed"], false);
    assert_eq!(lines[2]["failed_step"], 2);

    // A scenario file with a mistake is a usage error naming the step.
    let bad = sandbox.path("bad.toml");
    write(&bad, b"[[step]]\nsend = 'a'\n[[step]]\nexpect = 'b'\nsend = 'c'\n");
    let out = sandbox
        .cmd()
        .args(["nc", &addr, "--script"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("step 2: give exactly one"));
}

#[test]
fn a_script_in_listen_mode_grades_a_client() {
    let sandbox = Sandbox::new();
    let grade = sandbox.path("client.toml");
    write(
        &grade,
        b"[[step]]\nexpect = '^HELO (\\w+)$'\n[[step]]\nsend = \"250 hello {{1}}\\n\"\n[[step]]\nexpect_closed = true\n",
    );
    let mut cmd = sandbox.cmd();
    cmd.args(["nc", "-l", "127.0.0.1", "0", "--script"]).arg(&grade);
    let (mut child, first) = spawn_announced(&mut cmd);
    let port = first.rsplit(':').next().unwrap().to_owned();
    let program = r#"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
s.sendall(b"HELO student\r\n")
got = s.recv(100)
s.close()
print(got.decode().strip())
"#;
    assert_eq!(python(program, &[&port]).trim(), "250 hello student");
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert!(child.wait().unwrap().success(), "{out}");
    assert!(out.ends_with("passed: 3 steps\n"), "{out}");
}

/// Reads lines from a child's stdout until `n` have arrived.
fn lines_of(child: &mut Child, n: usize) -> Vec<String> {
    let out = BufReader::new(child.stdout.take().unwrap());
    out.lines().take(n).map(Result::unwrap).collect()
}

#[test]
fn macros_count_in_periodic_sends_and_quick_sends_go_by_name() {
    let sandbox = Sandbox::new();
    let (_echo, echo, _) = support::start_echo(&sandbox, &["--insecure-no-auth"]);
    let out = sandbox
        .cmd()
        .args([
            "nc",
            &echo,
            "--data",
            "PING {{seq}} {{hex:21}}\n",
            "--interval",
            "5",
            "--count",
            "5",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "PING 1 !\nPING 2 !\nPING 3 !\nPING 4 !\nPING 5 !\n"
    );

    let profile = sandbox.path("assistant.toml");
    write(
        &profile,
        b"[[send]]\nname = 'greet'\ntext = \"hello #{{seq}}\\n\"\n[[send]]\nname = 'reg'\nhex = '01 03 00 10 00 01'\nappend = ['crc16-modbus']\n",
    );
    let profile = profile.to_str().unwrap();
    // By name on the command line, as bytes on the wire (the echo shows them).
    let out = sandbox
        .cmd()
        .args(["nc", &echo, "--profile", profile, "--send", "reg", "--hex"])
        .output()
        .unwrap();
    let shown = String::from_utf8(out.stdout).unwrap();
    assert!(shown.contains("01 03 00 10 00 01 85 cf"), "{shown}");

    // Typed in a session; other lines go as they are, and a name that is
    // not in the profile is refused without ending the session.
    let mut child = sandbox
        .cmd()
        .args(["nc", &echo, "--profile", profile])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"/send greet\nplain line\n/send nope\n/send greet\n")
        .unwrap();
    drop(stdin);
    let lines = lines_of(&mut child, 3);
    assert_eq!(lines, ["hello #1", "plain line", "hello #2"]);
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(child.wait().unwrap().success());
    assert!(
        err.contains("no quick send named 'nope' (the profile has: greet, reg)"),
        "{err}"
    );

    // The per-user profile is found without --profile.
    write(
        &sandbox.path("config/sockit/assistant.toml"),
        b"[[send]]\nname = 'hi'\ntext = 'hi there'\n",
    );
    let out = sandbox.cmd().args(["nc", &echo, "--send", "hi"]).output().unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "hi there");
    // A pipe is bytes, not commands, unless --profile asks: netcat's data
    // must arrive unchanged.
    let mut piped = sandbox
        .cmd()
        .args(["nc", &echo])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    piped.stdin.take().unwrap().write_all(b"/send hi\n").unwrap();
    let out = piped.wait_with_output().unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "/send hi\n");
    let out = sandbox.cmd().args(["nc", &echo, "--send", "nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
