//! TFTP as deployed for devices: replies from the address asked (in a
//! network namespace with two addresses), tftpd-hpa's remap rules compared
//! with tftpd-hpa itself, single-port mode with tftp-hpa, curl and atftp,
//! rollover to 1, the MTU cap, IPv6, and the transfer log.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::netns::{Lan, Netns};
use support::tftp::*;
use support::{KillOnDrop, Sandbox, peer_available, start_listeners};

/// Reads DATA 1 for `name` from `server`, sending from `from`: the reply's
/// source address and its payload.
fn first_block(from: &str, server: SocketAddr, name: &str) -> (SocketAddr, Vec<u8>) {
    let s = UdpSocket::bind(from).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.send_to(&rrq(name), server).unwrap();
    let mut buf = [0u8; 1024];
    let (n, source) = s.recv_from(&mut buf).unwrap();
    (source, buf[..n].to_vec())
}

// ---- the right source address ----

/// A server on 0.0.0.0 inside a namespace whose loopback has 10.x.0.1 and
/// 10.x.0.2. The route to either prefers .1 as source, so a client asking
/// .2 sends from .1, and a server that let the kernel pick its source
/// would answer from .1: the client would drop it.
#[test]
fn requests_are_answered_from_the_address_they_were_sent_to() {
    let Some(ns) = Netns::create("pk") else {
        support::netns::skip();
        return;
    };
    let subnet = format!("10.{}.{}", 200 + std::process::id() % 50, std::process::id() / 50 % 250);
    for host in [1, 2] {
        let addr = format!("{subnet}.{host}/24");
        assert!(support::netns::ip(&[
            "netns", "exec", &ns.name, "ip", "addr", "add", &addr, "dev", "lo"
        ]));
    }
    let sandbox = Sandbox::new();
    let (root, client) = dirs(&sandbox);
    let data = random_file(&root.join("boot.img"), 3000, 1);
    let mut cmd = ns.sockit();
    cmd.args(["tftp", "serve", "--listen", "0.0.0.0:0", "--root"])
        .arg(&root);
    let (child, port) = announced_port(cmd);
    let _server = KillOnDrop(child);
    for host in [1, 2] {
        let server = format!("{subnet}.{host}:{port}");
        // The raw check: DATA 1 comes from the address asked.
        let probe = format!(
            "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(30); \
             s.sendto(b'\\x00\\x01boot.img\\x00octet\\x00', ('{subnet}.{host}', {port})); \
             d, a = s.recvfrom(1024); print(a[0], d[:4].hex())"
        );
        let out = ns.command("python3").args(["-c", &probe]).output().unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert_eq!(said.trim(), format!("{subnet}.{host} 00030001"), "{out:?}");
        // sockit's client drops a reply from another address (ERROR 5).
        let got = client.join(format!("sockit-{host}"));
        let out = ns
            .sockit()
            .args(["tftp", "get", &server, "boot.img"])
            .arg(&got)
            .args(["--timeout", "2", "--retries", "2"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(std::fs::read(&got).unwrap(), data);
        if peer_available("tftp", &["-V"]) {
            let got = client.join(format!("hpa-{host}"));
            let out = ns
                .command("tftp")
                .args([
                    "-m",
                    "binary",
                    &format!("{subnet}.{host}"),
                    &port.to_string(),
                    "-c",
                    "get",
                    "boot.img",
                ])
                .arg(&got)
                .output()
                .unwrap();
            assert_eq!(std::fs::read(&got).unwrap_or_default(), data, "{out:?}");
        }
    }
}

/// Starts a `tftp serve` command and reads the port it announces.
fn announced_port(mut cmd: Command) -> (std::process::Child, u16) {
    use std::io::BufRead as _;
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr = line.split_whitespace().nth(3).unwrap_or_else(|| panic!("{line:?}"));
    let port = addr.rsplit(':').next().unwrap().parse().unwrap();
    std::thread::spawn(move || for _ in out.lines() {});
    (child, port)
}

// ---- single-port mode ----

#[test]
fn single_port_mode_answers_from_the_listening_port_for_every_client() {
    let sandbox = Sandbox::new();
    let (root, client) = dirs(&sandbox);
    let data = random_file(&root.join("fw.bin"), 700_000, 2);
    let (_server, addr) = sockit_server(&sandbox, &root, &["--single-port", "--allow-write", "--allow-create"]);
    let (source, block) = first_block("127.0.0.1:0", addr, "fw.bin");
    assert_eq!(source, addr, "DATA 1 comes from the listening port");
    assert_eq!(&block[..4], &[0, 3, 0, 1]);
    let port = addr.port().to_string();
    let url = format!("tftp://127.0.0.1:{port}/fw.bin");
    let mut clients: Vec<(&str, Command)> = Vec::new();
    if peer_available("tftp", &["-V"]) {
        let mut c = Command::new("tftp");
        c.args(["-m", "binary", "127.0.0.1", &port, "-c", "get", "fw.bin"])
            .arg(client.join("hpa"));
        clients.push(("hpa", c));
    }
    if peer_available("curl", &["--version"]) {
        let mut c = Command::new("curl");
        c.args(["-sS", "--tftp-blksize", "1468", "-o"])
            .arg(client.join("curl"))
            .arg(&url);
        clients.push(("curl", c));
    }
    if peer_available("atftp", &["--help"]) {
        let mut c = Command::new("atftp");
        c.args([
            "--option",
            "blksize 1468",
            "--option",
            "windowsize 16",
            "-g",
            "-r",
            "fw.bin",
            "-l",
        ])
        .arg(client.join("atftp"))
        .args(["127.0.0.1", &port]);
        clients.push(("atftp", c));
    }
    let mut c = sandbox.cmd();
    c.args(["tftp", "get", &addr.to_string(), "fw.bin"])
        .arg(client.join("sockit"))
        .args(["--blksize", "1468", "--windowsize", "16"]);
    clients.push(("sockit", c));
    // All at once: the kernel tells their datagrams apart by source.
    let running: Vec<_> = clients
        .iter_mut()
        .map(|(name, c)| (*name, c.stdin(Stdio::null()).stdout(Stdio::piped()).spawn().unwrap()))
        .collect();
    for (name, child) in running {
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            std::fs::read(client.join(name)).unwrap_or_default(),
            data,
            "{name}: {out:?}"
        );
    }
    // Uploads too, from sockit's client and tftp-hpa.
    let out = sandbox
        .cmd()
        .args(["tftp", "put", &addr.to_string()])
        .arg(client.join("sockit"))
        .arg("up-sockit.bin")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::read(root.join("up-sockit.bin")).unwrap(), data);
    if peer_available("tftp", &["-V"]) {
        run(Command::new("tftp")
            .args(["-m", "binary", "127.0.0.1", &port, "-c", "put"])
            .arg(client.join("sockit"))
            .arg("up-hpa.bin"));
        assert_eq!(std::fs::read(root.join("up-hpa.bin")).unwrap(), data);
    }
}

/// 1,000 random datagrams from 50 source ports while a transfer runs: the
/// transfer completes, and the server still serves afterwards.
#[test]
fn single_port_mode_shrugs_off_random_datagrams() {
    let sandbox = Sandbox::new();
    let (root, client) = dirs(&sandbox);
    let data = random_file(&root.join("f.bin"), 2_000_000, 3);
    let (mut server, addr) = sockit_server(&sandbox, &root, &["--single-port"]);
    let mut transfer = sandbox
        .cmd()
        .args(["tftp", "get", &addr.to_string(), "f.bin"])
        .arg(client.join("during"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let sockets: Vec<UdpSocket> = (0..50).map(|_| UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..1000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 600) as usize;
        let mut datagram: Vec<u8> = (0..len).map(|k| (x >> (k % 56)) as u8).collect();
        // A third look like TFTP: an opcode 1-6 in front.
        if i % 3 == 0 && len >= 4 {
            datagram[0] = 0;
            datagram[1] = (x % 7) as u8;
        }
        let _ = sockets[i % 50].send_to(&datagram, addr);
    }
    let status = transfer.wait().unwrap();
    assert!(status.success());
    assert_eq!(std::fs::read(client.join("during")).unwrap(), data);
    assert!(server.0.try_wait().unwrap().is_none(), "the server is still running");
    let out = sandbox
        .cmd()
        .args(["tftp", "get", &addr.to_string(), "f.bin"])
        .arg(client.join("after"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::read(client.join("after")).unwrap(), data);
}

// ---- remap rules, against tftpd-hpa itself ----

/// A map file in tftpd-hpa's syntax, with what PXE setups use.
const MAP: &str = r"# PXE ROMs ask with backslashes and in any case
rg \\ /
ri ^/?pxelinux\.0$ pxelinux.0
ri ^/?boot/(vmlinuz|initrd\.img)$ boot/\L\1
r ^/?pxelinux\.cfg/default$ cfg/\x
r ^whoami$ ip-\i.txt
e ^/?readme\.txt$        # ends here when it matches
r ^readme(.*)$ nope\1
a \.key$
a ^private/ Go\ away
rG ^latest$ boot/vmlinuz
r ^spaced$ a\ b.txt
r ^hashed$ hash\#x.txt
ri ^upper\.txt$ \U\0
r ^old/(.*)$ new/\1
rs ^v1/(.*)$ \1
a~ ^[[:alnum:]/._\ \#-]+$
";

/// What a tftp-hpa client got: the file's bytes, or the error code.
#[derive(Debug, PartialEq, Eq)]
enum Got {
    File(String),
    Refused(u16),
}

fn hpa_get(server: SocketAddr, name: &str, out: &Path) -> Got {
    let _ = std::fs::remove_file(out);
    let o = run(Command::new("tftp")
        .args([
            "-m",
            "binary",
            "127.0.0.1",
            &server.port().to_string(),
            "-c",
            "get",
            name,
        ])
        .arg(out));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    match said.split("Error code ").nth(1) {
        Some(rest) => Got::Refused(rest.split(':').next().unwrap().trim().parse().unwrap()),
        None => Got::File(sha256(out)),
    }
}

/// Waits until a server answers on `addr` (tftpd-hpa cannot announce
/// itself): asks for a file that does not exist until an ERROR comes.
fn wait_for(addr: SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 512];
    while started.elapsed() < PATIENCE {
        let _ = s.send_to(&rrq("no-such-file-here"), addr);
        if s.recv_from(&mut buf).is_ok() {
            return;
        }
    }
    panic!("no answer from {addr}");
}

#[test]
fn remap_rules_serve_what_tftpd_hpa_serves() {
    if !peer_available("in.tftpd", &["-V"]) || !peer_available("tftp", &["-V"]) {
        return;
    }
    let sandbox = Sandbox::new();
    let (root, client) = dirs(&sandbox);
    for (i, file) in [
        "pxelinux.0",
        "boot/vmlinuz",
        "boot/initrd.img",
        "cfg/7F000001",
        "ip-127.0.0.1.txt",
        "readme.txt",
        "server.key",
        "private/notes.txt",
        "a b.txt",
        "hash#x.txt",
        "UPPER.TXT",
        "new/cfg.txt",
        "nested/dir/file.txt",
        "old/gone.txt",
    ]
    .iter()
    .enumerate()
    {
        let path = root.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        random_file(&path, 100 + i * 517, i as u64 + 10);
    }
    let map = sandbox.path("tftpd.map");
    std::fs::write(&map, MAP).unwrap();
    let Some((_hpa, hpa)) = tftpd_hpa(&root, &["-m", map.to_str().unwrap()]) else {
        return;
    };
    // tftpd-hpa serves as nobody, and only files anyone may read (its
    // helper opened the top level only).
    make_world_readable(&root);
    let (_ours, ours) = sockit_server(&sandbox, &root, &["--map-file", map.to_str().unwrap()]);
    wait_for(hpa);
    let names = [
        "pxelinux.0",
        "PXELINUX.0",
        "/PXELinux.0",
        "\\pxelinux.0",
        "boot\\VMLINUZ",
        "/boot/INITRD.IMG",
        "BOOT\\initrd.img",
        "pxelinux.cfg/default",
        "/pxelinux.cfg/default",
        "pxelinux.cfg\\default",
        "whoami",
        "readme.txt",
        "readme.md",
        "Readme.txt",
        "server.key",
        "private/notes.txt",
        "latest",
        "spaced",
        "hashed",
        "upper.txt",
        "Upper.Txt",
        "old/cfg.txt",
        "v1/readme.txt",
        "v1/v1/pxelinux.0",
        "bad$name",
        "what?",
        "missing.bin",
        "nested/dir/file.txt",
        "/nested/dir/file.txt",
        "nested\\dir\\file.txt",
        "NESTED/dir/file.txt",
        "a b.txt",
        "hash#x.txt",
        "ip-127.0.0.1.txt",
        "old/gone.txt",
    ];
    assert!(names.len() >= 30);
    let (mut served, mut refused) = (0, 0);
    for (i, name) in names.iter().enumerate() {
        let theirs = hpa_get(hpa, name, &client.join(format!("hpa-{i}")));
        let mine = hpa_get(ours, name, &client.join(format!("ours-{i}")));
        assert_eq!(mine, theirs, "{name}");
        match mine {
            Got::File(_) => served += 1,
            Got::Refused(_) => refused += 1,
        }
    }
    // The comparison means something only if both kinds happen.
    assert!(served >= 15 && refused >= 8, "{served} served, {refused} refused");
}

fn make_world_readable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            make_world_readable(&path);
        } else {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
}

#[test]
fn hostile_remap_rules_are_bounded_and_the_root_still_holds() {
    let sandbox = Sandbox::new();
    let (root, _client) = dirs(&sandbox);
    std::fs::write(root.join("ok.txt"), "fine").unwrap();
    let map = sandbox.path("hostile.map");
    std::fs::write(
        &map,
        // A rewrite that always matches again; a restart that doubles the
        // name; an empty match repeated for ever.
        "rg ^loop$ loop\nrs ^g(.+)$ g\\1\\1\nrg ^y(x*) y\\1\nr ^escape$ ../../etc/passwd\nr ^abs$ /etc/passwd\n",
    )
    .unwrap();
    let (mut server, addr) = sockit_server(&sandbox, &root, &["--map-file", map.to_str().unwrap()]);
    for name in ["loop", "gx", "y"] {
        let started = Instant::now();
        let reply = request(addr, &rrq(name));
        assert_eq!(error_code(&reply), 2, "{name} refused as access violation");
        assert!(started.elapsed() < Duration::from_secs(10), "{name}: bounded");
    }
    // A rewritten name is still confined to the root.
    assert_eq!(error_code(&request(addr, &rrq("escape"))), 2);
    // `/etc/passwd` means ROOT/etc/passwd, as with tftpd -s: not there.
    assert_eq!(error_code(&request(addr, &rrq("abs"))), 1);
    let (_, block) = first_block("127.0.0.1:0", addr, "ok.txt");
    assert_eq!(&block[4..], b"fine");
    assert!(server.0.try_wait().unwrap().is_none());
}

#[test]
fn a_bad_map_file_stops_the_server_with_every_bad_line() {
    let sandbox = Sandbox::new();
    let (root, _) = dirs(&sandbox);
    let map = sandbox.path("bad.map");
    std::fs::write(&map, "r ^ok$ fine\nA ^foo$\nr ^(foo$ b\nr~ ^x$ y\n").unwrap();
    let out = sandbox
        .cmd()
        .args(["tftp", "serve", "--listen", "127.0.0.1:0", "--root"])
        .arg(&root)
        .arg("--map-file")
        .arg(&map)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for line in ["line 2", "line 3", "line 4"] {
        assert!(err.contains(line), "{err}");
    }
    assert!(!err.contains("line 1"), "{err}");
}

// ---- large files and odd clients ----

#[test]
fn rollover_1_from_the_server_and_when_a_client_asks() {
    if !peer_available("python3", &["--version"]) {
        return;
    }
    let sandbox = Sandbox::new();
    let (root, client) = dirs(&sandbox);
    // 65,538 blocks of 8 bytes: past the wrap.
    let data = random_file(&root.join("big.bin"), 8 * 65_537 + 5, 4);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/tftp_rollover_get.py");
    let get = |addr: SocketAddr, expect: &str, ask: &[&str], out: &str| {
        let o = run(Command::new("python3")
            .arg(&script)
            .args(["127.0.0.1", &addr.port().to_string(), "big.bin"])
            .arg(client.join(out))
            .arg(expect)
            .args(ask));
        assert!(o.status.success(), "{o:?}");
        assert_eq!(std::fs::read(client.join(out)).unwrap(), data);
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    };
    let (_one, one) = sockit_server(&sandbox, &root, &["--rollover", "1"]);
    assert_eq!(get(one, "1", &[], "one"), "after 65535: 1");
    let (_zero, zero) = sockit_server(&sandbox, &root, &[]);
    assert_eq!(get(zero, "0", &[], "zero"), "after 65535: 0");
    assert_eq!(get(zero, "1", &["--ask-rollover", "1"], "asked"), "after 65535: 1");
}

/// Over a veth with MTU 1500, a client asking for 65464-byte blocks gets
/// 1468 unless the server allows fragments.
#[test]
fn the_route_mtu_caps_the_block_size_unless_fragments_are_allowed() {
    let Some(lan) = Lan::create("mt") else {
        support::netns::skip();
        return;
    };
    let sandbox = Sandbox::new();
    let (root, client) = dirs(&sandbox);
    let data = random_file(&root.join("f.bin"), 300_000, 6);
    for (flags, want) in [(&[][..], 1468), (&["--allow-fragments"][..], 65464)] {
        let mut cmd = lan.a.sockit();
        cmd.args(["tftp", "serve", "--listen", "0.0.0.0:0", "--root"])
            .arg(&root)
            .args(flags);
        let (child, port) = announced_port(cmd);
        let _server = KillOnDrop(child);
        let got = client.join(format!("f-{want}"));
        let out = lan
            .b
            .sockit()
            .args(["tftp", "get", &format!("{}.1:{port}", lan.subnet), "f.bin"])
            .arg(&got)
            .args(["--blksize", "65464", "--json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let done = stdout.lines().find(|l| l.contains("\"done\"")).unwrap();
        let done: serde_json::Value = serde_json::from_str(done).unwrap();
        assert_eq!(done["blksize"], want, "{flags:?}");
        assert_eq!(std::fs::read(&got).unwrap(), data);
    }
}

#[test]
fn ipv6_with_tftp_hpa_curl_and_sockit() {
    let sandbox = Sandbox::new();
    let (root, client) = dirs(&sandbox);
    if UdpSocket::bind("[::1]:0").is_err() {
        assert!(std::env::var("CI").is_err(), "IPv6 loopback is required in CI");
        eprintln!("skipping: no IPv6 loopback");
        return;
    }
    let data = random_file(&root.join("v6.bin"), 200_000, 7);
    let (child, found) = start_listeners(
        &sandbox,
        &[
            "tftp",
            "serve",
            "--listen",
            "[::1]:0",
            "--root",
            root.to_str().unwrap(),
            "--single-port",
        ],
        1,
    );
    let _server = KillOnDrop(child);
    let addr: SocketAddr = found[0].1.parse().unwrap();
    assert!(addr.is_ipv6());
    let port = addr.port().to_string();
    let out = sandbox
        .cmd()
        .args(["tftp", "get", &addr.to_string(), "v6.bin"])
        .arg(client.join("sockit"))
        .args(["--blksize", "1428"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::read(client.join("sockit")).unwrap(), data);
    if peer_available("tftp", &["-V"]) {
        run(Command::new("tftp")
            .args(["-6", "-m", "binary", "::1", &port, "-c", "get", "v6.bin"])
            .arg(client.join("hpa")));
        assert_eq!(std::fs::read(client.join("hpa")).unwrap_or_default(), data);
    }
    if peer_available("curl", &["--version"]) {
        let o = run(Command::new("curl")
            .args(["-sS", "-o"])
            .arg(client.join("curl"))
            .arg(format!("tftp://[::1]:{port}/v6.bin")));
        assert_eq!(std::fs::read(client.join("curl")).unwrap_or_default(), data, "{o:?}");
    }
}

// ---- the transfer log ----

#[test]
fn every_transfer_is_one_json_log_line() {
    let sandbox = Sandbox::new();
    let (root, client) = dirs(&sandbox);
    random_file(&root.join("f.bin"), 5000, 8);
    let map = sandbox.path("m.map");
    std::fs::write(&map, "r ^alias$ f.bin\n").unwrap();
    let log = sandbox.path("log.jsonl");
    let mut cmd = sandbox.cmd();
    // The sandbox quiets the log to warnings; this test reads it.
    cmd.env("SOCKIT_LOG", "info")
        .args(["tftp", "serve", "--listen", "127.0.0.1:0", "--root"])
        .arg(&root)
        .arg("--map-file")
        .arg(&map)
        .args(["--json-log", "--log-file"])
        .arg(&log);
    let (child, port) = announced_port(cmd);
    let mut server = KillOnDrop(child);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let out = sandbox
        .cmd()
        .args(["tftp", "get", &addr.to_string(), "alias"])
        .arg(client.join("got"))
        .args(["--blksize", "1024"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(error_code(&request(addr, &rrq("missing"))), 1);
    // SIGTERM: the server drains and flushes its log.
    assert!(
        Command::new("kill")
            .args(["-TERM", &server.0.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    server.0.wait().unwrap();
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let transfers: Vec<&serde_json::Value> = lines.iter().filter(|l| l["message"] == "tftp transfer").collect();
    assert_eq!(transfers.len(), 2, "{lines:?}");
    let done = transfers[0];
    assert_eq!(done["file"], "f.bin");
    assert_eq!(done["asked"], "alias");
    assert_eq!(done["op"], "read");
    assert_eq!(done["blksize"], 1024);
    assert_eq!(done["bytes"], 5000);
    assert_eq!(done["result"], "ok");
    assert!(done["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(done["secs"].as_f64().is_some() && done["rate"].as_u64().is_some());
    assert!(transfers[1]["result"].as_str().unwrap().starts_with("refused"));
}
