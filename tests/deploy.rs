//! Deployment: a server that gives up root once its ports are bound
//! (`--user`), listeners handed over by systemd (socket activation, tried
//! with systemd-socket-activate), readiness reported through
//! NOTIFY_SOCKET, and the units in contrib/systemd.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use std::io::{BufRead as _, BufReader};
use std::net::TcpListener;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use support::tftp::{PATIENCE, random_file, run};
use support::{KillOnDrop, Sandbox, peer_available, start_listeners};

const NOBODY: u32 = 65_534;

fn is_root() -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    if !root {
        assert!(std::env::var("CI").is_err(), "the --user tests need root in CI");
        eprintln!("skipping: not root");
    }
    root
}

/// Every thread's real, effective, saved and filesystem uids and gids.
fn thread_ids(pid: u32) -> Vec<(Vec<u32>, Vec<u32>)> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|task| {
            let status = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
            let ids = |key: &str| -> Vec<u32> {
                let line = status.lines().find(|l| l.starts_with(key)).unwrap();
                line.split_whitespace().skip(1).map(|n| n.parse().unwrap()).collect()
            };
            (ids("Uid:"), ids("Gid:"))
        })
        .collect()
}

fn assert_all_nobody(pid: u32) -> usize {
    let threads = thread_ids(pid);
    for (uids, gids) in &threads {
        assert_eq!(uids, &[NOBODY; 4], "{threads:?}");
        assert!(gids.iter().all(|&g| g != 0), "{threads:?}");
    }
    threads.len()
}

fn owner(path: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).unwrap().uid()
}

#[test]
fn tftp_serve_as_nobody_drops_root_and_still_serves() {
    if !is_root() {
        return;
    }
    let sandbox = Sandbox::new();
    // Missing: the server makes it, for the user it will become.
    let served = sandbox.path("served");
    let (child, found) = start_listeners(
        &sandbox,
        &[
            "tftp",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--root",
            served.to_str().unwrap(),
            "--user",
            "nobody",
            "--allow-write",
            "--allow-create",
        ],
        1,
    );
    let server = KillOnDrop(child);
    let addr = found[0].1.clone();
    let local = sandbox.path("fw.bin");
    let data = random_file(&local, 150_000, 1);
    let out = sandbox
        .cmd()
        .args(["tftp", "put", &addr])
        .arg(&local)
        .arg("fw.bin")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_all_nobody(server.0.id());
    assert_eq!(std::fs::read(served.join("fw.bin")).unwrap(), data);
    assert_eq!(owner(&served.join("fw.bin")), NOBODY);
    assert_eq!(owner(&served), NOBODY);
    assert_eq!(owner(&served.join(".sockit/tftp-partial")), NOBODY);
    let back = sandbox.path("back.bin");
    let out = sandbox
        .cmd()
        .args(["tftp", "get", &addr, "fw.bin"])
        .arg(&back)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::read(&back).unwrap(), data);
}

/// `serve` runs on a multi-thread runtime whose threads exist before the
/// switch: every one of them must change.
#[test]
fn serve_as_nobody_drops_root_on_every_thread() {
    if !is_root() {
        return;
    }
    let sandbox = Sandbox::new();
    let served = sandbox.path("served");
    let (child, found) = start_listeners(
        &sandbox,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--root",
            served.to_str().unwrap(),
            "--insecure-no-auth",
            "--user",
            "nobody",
            "--group",
            "nogroup",
        ],
        2,
    );
    let server = KillOnDrop(child);
    let files = found.iter().find(|f| f.2.starts_with("files")).unwrap().1.clone();
    let local = sandbox.path("drop.bin");
    let data = random_file(&local, 300_000, 2);
    let out = sandbox
        .cmd()
        .args(["put", &files])
        .arg(&local)
        .arg("--insecure-no-auth")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let threads = assert_all_nobody(server.0.id());
    assert!(threads >= 2, "a multi-thread runtime: {threads} threads");
    assert_eq!(std::fs::read(served.join("drop.bin")).unwrap(), data);
    assert_eq!(owner(&served.join("drop.bin")), NOBODY);
}

#[test]
fn an_unknown_user_stops_the_server_before_it_serves() {
    let sandbox = Sandbox::new();
    let out = sandbox
        .cmd()
        .args([
            "tftp",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--user",
            "no-such-user-here",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no user no-such-user-here"));
    assert!(out.stdout.is_empty(), "nothing was announced");
}

// ---- socket activation ----

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// sockit under systemd-socket-activate, which binds `listen` (UDP with
/// `datagram`), names the socket `name`, and starts sockit on the first
/// connection or datagram. Returns once the activator is listening.
fn activated(sandbox: &Sandbox, listen: &str, datagram: bool, name: &str, notify: &Path, args: &[&str]) -> Child {
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.args(["-l", listen, &format!("--fdname={name}")]);
    if datagram {
        cmd.arg("-d");
    }
    cmd.arg(format!("--setenv=NOTIFY_SOCKET={}", notify.display()))
        .arg(format!("--setenv=XDG_CONFIG_HOME={}", sandbox.path("config").display()))
        .arg("--setenv=SOCKIT_LOG=warn")
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_sockit"))
        .args(args)
        .current_dir(sandbox.path(""))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    // The activator says when it listens; that is its readiness.
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(line.starts_with("Listening on"), "{line:?}");
    std::thread::spawn(move || for _ in err.lines() {});
    child
}

/// What sockit announced it listens on (its stdout), once it runs.
fn announced(child: &mut Child) -> String {
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    std::thread::spawn(move || for _ in out.lines() {});
    line
}

fn notifications(socket: &UnixDatagram, until: &str) -> String {
    socket.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut all = String::new();
    let mut buf = [0u8; 4096];
    while !all.contains(until) {
        let n = socket.recv(&mut buf).unwrap();
        all.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    all
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    child.wait().unwrap()
}

#[test]
fn socket_activation_serves_files_on_the_inherited_tcp_socket() {
    if !peer_available("systemd-socket-activate", &["--version"]) {
        return;
    }
    let sandbox = Sandbox::new();
    let notify_path = sandbox.path("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    let port = free_tcp_port();
    let served = sandbox.path("served");
    let mut child = activated(
        &sandbox,
        &format!("127.0.0.1:{port}"),
        false,
        "files",
        &notify_path,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--root",
            served.to_str().unwrap(),
            "--insecure-no-auth",
        ],
    );
    let local = sandbox.path("up.bin");
    let data = random_file(&local, 200_000, 3);
    // The first connection starts sockit, which takes the socket.
    let out = sandbox
        .cmd()
        .args(["put", &format!("127.0.0.1:{port}")])
        .arg(&local)
        .arg("--insecure-no-auth")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::read(served.join("up.bin")).unwrap(), data);
    let line = announced(&mut child);
    assert!(line.contains(&format!("tcp 127.0.0.1:{port} (files")), "{line}");
    assert!(notifications(&notify, "READY=1").contains("READY=1"));
    let status = terminate(&mut child);
    assert!(status.success(), "{status:?}");
    assert!(notifications(&notify, "STOPPING=1").contains("STOPPING=1"));
}

#[test]
fn socket_activation_serves_tftp_on_the_inherited_udp_socket() {
    if !peer_available("systemd-socket-activate", &["--version"]) || !peer_available("tftp", &["-V"]) {
        return;
    }
    let sandbox = Sandbox::new();
    let notify_path = sandbox.path("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    let port = support::tftp::free_udp_port();
    let served = sandbox.path("served");
    std::fs::create_dir_all(&served).unwrap();
    let data = random_file(&served.join("boot.img"), 100_000, 4);
    // The configured address is not the inherited one: the name decides.
    let mut child = activated(
        &sandbox,
        &format!("127.0.0.1:{port}"),
        true,
        "tftp",
        &notify_path,
        &[
            "tftp",
            "serve",
            "--listen",
            "127.0.0.1:69",
            "--root",
            served.to_str().unwrap(),
        ],
    );
    let got = sandbox.path("got.img");
    // The first request starts sockit; it stays queued on the socket.
    let out = run(Command::new("tftp")
        .args(["-m", "binary", "127.0.0.1", &port.to_string(), "-c", "get", "boot.img"])
        .arg(&got));
    assert_eq!(std::fs::read(&got).unwrap_or_default(), data, "{out:?}");
    let line = announced(&mut child);
    assert!(line.contains(&format!("udp 127.0.0.1:{port} (tftp")), "{line}");
    assert!(notifications(&notify, "READY=1").contains("READY=1"));
    let status = terminate(&mut child);
    assert!(status.success(), "{status:?}");
}

#[test]
fn the_systemd_units_verify() {
    if !peer_available("systemd-analyze", &["--version"]) {
        return;
    }
    let sandbox = Sandbox::new();
    let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/systemd");
    let dir = sandbox.path("units");
    std::fs::create_dir_all(&dir).unwrap();
    for unit in ["sockit.service", "sockit.socket", "sockit-tftp.socket"] {
        let text = std::fs::read_to_string(units.join(unit)).unwrap();
        // Verify checks that ExecStart's program exists: the one built here.
        let text = text.replace("/usr/local/bin/sockit", env!("CARGO_BIN_EXE_sockit"));
        std::fs::write(dir.join(unit), text).unwrap();
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(["sockit.service", "sockit.socket", "sockit-tftp.socket"].map(|u| dir.join(u)))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
    // The config the service runs is one sockit accepts.
    let out = Sandbox::new()
        .cmd()
        .args(["serve", "--print-config", "--config"])
        .arg(units.join("sockit.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("kind = \"tftp\"") && printed.contains("kind = \"files\""));
}
