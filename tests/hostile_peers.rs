//! The red-team checks of tests/hostile/: hostile peers written in Python
//! (standard library only, as a student would) against a live
//! `sockit serve --config` running files (with exec), echo, chat, TFTP and
//! the one-shot download on 127.0.0.1. Each script is one test, against a
//! server of its own.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{KillOnDrop, Sandbox, peer_available, start_listeners};

/// A script that runs longer has hung: it is killed and the test fails.
const SCRIPT_LIMIT: Duration = Duration::from_secs(120);

fn run_check(script: &str) {
    if !peer_available("python3", &["--version"]) {
        return;
    }
    let sb = Sandbox::new();
    let root = sb.path("root");
    std::fs::create_dir_all(&root).unwrap();
    let key = sb.path("key");
    std::fs::write(&key, "hostile peers do not know this\n").unwrap();
    let config = format!(
        r#"[defaults]
key_file = "{key}"
request_timeout = 2

[[service]]
kind = "files"
listen = "127.0.0.1:0"
root = "{root}"
allow_exec = true
exec_timeout = 1

[[service]]
kind = "echo"
tcp = "127.0.0.1:0"
udp = "127.0.0.1:0"

[[service]]
kind = "chat"
listen = "127.0.0.1:0"

[[service]]
kind = "tftp"
udp = "127.0.0.1:0"
root = "{root}"

[[service]]
kind = "download"
listen = "127.0.0.1:0"
root = "{root}"
"#,
        key = key.display(),
        root = root.display()
    );
    std::fs::create_dir_all(sb.path("work")).unwrap();
    std::fs::write(sb.path("work/sockit.toml"), config).unwrap();
    let (child, found) = start_listeners(&sb, &["serve", "--config", "sockit.toml"], 6);
    let pid = child.id();
    let _server = KillOnDrop(child);
    let find = |service: &str, proto: &str| {
        found
            .iter()
            .find(|(p, _, s)| p == proto && s.starts_with(service))
            .map(|(_, a, _)| a.clone())
            .unwrap_or_else(|| panic!("no {proto} {service} in {found:?}"))
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile");
    let mut check = Command::new("python3")
        .arg(dir.join(script))
        .current_dir(&dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("SOCKIT_FILES", find("files", "tcp"))
        .env("SOCKIT_ECHO_TCP", find("echo", "tcp"))
        .env("SOCKIT_ECHO_UDP", find("echo", "udp"))
        .env("SOCKIT_CHAT", find("chat", "tcp"))
        .env("SOCKIT_TFTP", find("tftp", "udp"))
        .env("SOCKIT_DOWNLOAD", find("download", "tcp"))
        .env("SOCKIT_ROOT", &root)
        .env("SOCKIT_KEY", &key)
        .env("SOCKIT_PID", pid.to_string())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = check.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > SCRIPT_LIMIT {
            let _ = check.kill();
            panic!("{script} hung for {SCRIPT_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{script}: the server did not hold ({status})");
}

macro_rules! checks {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_check(concat!(stringify!($name), ".py"));
            }
        )*
    };
}

checks!(
    fifo_in_root,
    link_to_root,
    slowloris,
    tftp_unanswered,
    resume_without_proof,
    listing_never_read,
    chat_half_close,
    chat_escapes,
    exec_escape,
    junk,
);
