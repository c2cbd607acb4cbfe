//! TFTP peers and helpers the TFTP tests share: sockit's server, the
//! independent daemons (tftpd-hpa, atftpd), raw requests.
#![allow(dead_code, clippy::unwrap_used, clippy::indexing_slicing)]

use std::io::{BufRead as _, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

use super::{KillOnDrop, Sandbox, peer_available, start_listeners};

pub const PATIENCE: Duration = Duration::from_secs(60);

pub fn random_file(path: &Path, len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect();
    std::fs::write(path, &data).unwrap();
    data
}

pub fn sha256(path: &Path) -> String {
    let mut h = Sha256::new();
    h.update(std::fs::read(path).unwrap());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `sockit tftp serve` on port 0 with `extra` flags; returns it and its address.
pub fn sockit_server(sandbox: &Sandbox, root: &Path, extra: &[&str]) -> (KillOnDrop, SocketAddr) {
    let mut args = vec![
        "tftp",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--root",
        root.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let (child, found) = start_listeners(sandbox, &args, 1);
    assert_eq!(found[0].0, "udp");
    (KillOnDrop(child), found[0].1.parse().unwrap())
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap()
}

pub fn dirs(sandbox: &Sandbox) -> (PathBuf, PathBuf) {
    let root = sandbox.path("root");
    let client = sandbox.path("client");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&client).unwrap();
    (root, client)
}

/// tftpd-hpa in the foreground on a free port, serving `root`, with
/// `extra` flags.
pub fn tftpd_hpa(root: &Path, extra: &[&str]) -> Option<(KillOnDrop, SocketAddr)> {
    if !peer_available("in.tftpd", &["-V"]) {
        return None;
    }
    let port = free_udp_port();
    let user = if rustix_is_root() { "nobody" } else { "root" };
    open_up(root);
    let child = Command::new("in.tftpd")
        .args([
            "-L",
            "-a",
            &format!("127.0.0.1:{port}"),
            "-s",
            "-c",
            "-u",
            user,
            "-B",
            "65464",
        ])
        .args(extra)
        .arg(root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Some((KillOnDrop(child), format!("127.0.0.1:{port}").parse().unwrap()))
}

/// atftpd, unpacked by scripts/test.sh (it conflicts with tftpd-hpa as a package).
pub fn atftpd(root: &Path) -> Option<(KillOnDrop, SocketAddr)> {
    let bin = std::env::var_os("SOCKIT_ATFTPD")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/peers/atftpd/usr/sbin/atftpd"));
    if !bin.exists() {
        assert!(
            std::env::var("CI").is_err(),
            "atftpd is required in CI (scripts/test.sh unpacks it)"
        );
        eprintln!("skipping: atftpd not unpacked at {}", bin.display());
        return None;
    }
    let port = free_udp_port();
    open_up(root);
    let (user, group) = if rustix_is_root() {
        ("nobody", "nogroup")
    } else {
        ("root", "root")
    };
    let mut child = Command::new(bin)
        .args([
            "--daemon",
            "--no-fork",
            "--port",
            &port.to_string(),
            "--bind-address",
            "127.0.0.1",
        ])
        .args(["--user", user, "--group", group, "--logfile", "-"])
        .arg(root)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // atftpd logs once it is serving; wait for that line (bounded).
    let out = child.stdout.take().unwrap();
    let mut lines = BufReader::new(out).lines();
    let started = Instant::now();
    while started.elapsed() < PATIENCE {
        match lines.next() {
            Some(Ok(l)) if l.contains("atftpd started") || l.contains("Trace") || l.contains("port") => break,
            Some(Ok(_)) => {}
            _ => break,
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Some((KillOnDrop(child), format!("127.0.0.1:{port}").parse().unwrap()))
}

pub fn rustix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// The daemons drop to nobody: the root must be theirs to read and write.
pub fn open_up(root: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o777)).unwrap();
    for entry in std::fs::read_dir(root).unwrap() {
        std::fs::set_permissions(entry.unwrap().path(), std::fs::Permissions::from_mode(0o666)).unwrap();
    }
}

/// Sends one request and returns the first reply (from whichever port).
pub fn request(server: SocketAddr, packet: &[u8]) -> Vec<u8> {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.send_to(packet, server).unwrap();
    let mut buf = [0u8; 1024];
    let (n, _) = s.recv_from(&mut buf).unwrap();
    buf[..n].to_vec()
}

pub fn rrq(name: &str) -> Vec<u8> {
    [&[0, 1][..], name.as_bytes(), b"\0octet\0"].concat()
}

pub fn wrq(name: &str) -> Vec<u8> {
    [&[0, 2][..], name.as_bytes(), b"\0octet\0"].concat()
}

pub fn error_code(reply: &[u8]) -> u16 {
    assert_eq!(&reply[..2], &[0, 5], "an ERROR packet: {reply:?}");
    u16::from_be_bytes([reply[2], reply[3]])
}
