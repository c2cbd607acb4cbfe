//! Folder transfers as one pipelined operation (docs/protocol.md §3.4):
//! the real `sockit` binary on both sides, a server on 127.0.0.1:0, and a
//! raw socket where a test plays a client that pipelines or never reads.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use support::{Sandbox, Server, write};

/// `count` files of 100 B to 8 KiB in folders of 100, from a fixed seed.
fn make_tree(root: &Path, count: usize, seed: u64) {
    let mut state = seed;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        state >> 33
    };
    for i in 0..count {
        let len = 100 + (next() % 8093) as usize;
        let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        write(&root.join(format!("d{:02}/f{i:04}.bin", i / 100)), &data);
    }
}

/// Every regular file under `root` (the private folder left out) by its
/// relative path, with its SHA-256.
fn digests(root: &Path) -> BTreeMap<String, String> {
    fn walk(dir: &Path, base: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            if rel == ".sockit" {
                continue;
            }
            if entry.file_type().unwrap().is_dir() {
                walk(&path, base, out);
            } else {
                let sum = Sha256::digest(std::fs::read(&path).unwrap());
                out.insert(rel, sum.iter().map(|b| format!("{b:02x}")).collect());
            }
        }
    }
    let mut out = BTreeMap::new();
    if root.exists() {
        walk(root, root, &mut out);
    }
    out
}

fn client(sb: &Sandbox, srv: &Server, args: &[&str]) -> Command {
    let mut c = sb.cmd();
    c.args(args).args(["--server", &srv.addr, "--insecure-no-auth"]);
    c
}

fn json_lines(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn two_thousand_small_files_go_up_and_down_with_every_sha256_equal() {
    let sb = Sandbox::new();
    let srv = Server::start(&sb, &["--insecure-no-auth", "--no-web", "--root", "srv"]);
    let src = sb.path("work/tree");
    make_tree(&src, 2000, 1);
    let want = digests(&src);

    let up = client(&sb, &srv, &["put", "-r", "tree", "--json"]).output().unwrap();
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    let events = json_lines(&up.stdout);
    // One `done` event per file as it lands, then the summary.
    let done = events.iter().filter(|e| e["event"] == "done").count();
    assert_eq!(done, 2000);
    let summary = events.last().unwrap();
    assert_eq!(
        (
            &summary["event"],
            &summary["files"],
            &summary["failed"],
            &summary["folders"]
        ),
        (&json!("summary"), &json!(2000), &json!(0), &json!(21))
    );
    assert_eq!(digests(&sb.path("work/srv/tree")), want);

    let down = client(&sb, &srv, &["get", "-r", "tree", "-o", "back"])
        .output()
        .unwrap();
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    assert!(String::from_utf8_lossy(&down.stdout).contains("2000 files"));
    assert_eq!(digests(&sb.path("work/back")), want);
    // No partial is left beside any file.
    assert!(
        !digests(&sb.path("work/back"))
            .keys()
            .any(|k| k.contains(".sockit-part")),
        "a partial was left behind"
    );
}

#[test]
fn a_refused_file_mid_window_fails_alone_and_the_rest_land() {
    let sb = Sandbox::new();
    let srv = Server::start(&sb, &["--insecure-no-auth", "--no-web", "--root", "srv"]);
    let src = sb.path("work/tree");
    make_tree(&src, 300, 2);
    // A folder on the server where the tree has a file, mid-window: the
    // upload of that one name is refused.
    std::fs::create_dir_all(sb.path("work/srv/tree/d01/f0150.bin/inside")).unwrap();

    let up = client(&sb, &srv, &["put", "-r", "tree", "--json"]).output().unwrap();
    assert_eq!(up.status.code(), Some(1), "a failed file makes the exit code say so");
    let events = json_lines(&up.stdout);
    let errors: Vec<&Value> = events.iter().filter(|e| e["event"] == "error").collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["name"], "tree/d01/f0150.bin");
    assert!(
        errors[0]["message"].as_str().unwrap().contains("is_a_directory"),
        "{errors:?}"
    );
    let summary = events.last().unwrap();
    assert_eq!((&summary["files"], &summary["failed"]), (&json!(299), &json!(1)));

    let mut want = digests(&src);
    want.remove("d01/f0150.bin");
    let mut got = digests(&sb.path("work/srv/tree"));
    assert!(got.keys().all(|k| !k.starts_with("d01/f0150.bin")), "{got:?}");
    got.retain(|k, _| !k.starts_with("d01/f0150.bin"));
    assert_eq!(got, want);

    // The same on the way down: a name the server refuses (a pipe) fails
    // alone, the others arrive.
    let fifo = sb.path("work/srv/tree/d00/f0042.bin");
    std::fs::remove_file(&fifo).unwrap();
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let down = client(&sb, &srv, &["get", "-r", "tree", "-o", "back", "--json"])
        .output()
        .unwrap();
    let events = json_lines(&down.stdout);
    let summary = events.last().unwrap();
    // A pipe is listed as "other" and never asked for; the folder where a
    // file was is fetched as a folder.
    assert_eq!(summary["failed"], 0, "{events:?}");
    assert_eq!(summary["files"], 298);
    let mut want = digests(&src);
    want.remove("d01/f0150.bin");
    want.remove("d00/f0042.bin");
    assert_eq!(digests(&sb.path("work/back")), want);
}

/// Stops the server (by its PID) while `put -r` has requests in flight;
/// what is under a final name is whole, and `--resume` finishes the tree.
#[test]
fn a_server_killed_mid_window_leaves_only_whole_files_and_resume_finishes_the_tree() {
    let sb = Sandbox::new();
    let root = sb.path("work/srv");
    let srv = Server::start(
        &sb,
        &["--insecure-no-auth", "--no-web", "--root", root.to_str().unwrap()],
    );
    let src = sb.path("work/tree");
    make_tree(&src, 2000, 3);
    // A few files past one chunk, so streamed uploads are in the window too.
    for i in 0..5 {
        let big: Vec<u8> = (0..700_000u32).map(|b| (b * 31 + i) as u8).collect();
        write(&src.join(format!("d10/big{i}.bin")), &big);
    }
    let want = digests(&src);

    let mut put = client(&sb, &srv, &["put", "-r", "tree", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut events = BufReader::new(put.stdout.take().unwrap()).lines();
    let mut confirmed = Vec::new();
    while confirmed.len() < 100 {
        let line = events.next().unwrap().unwrap();
        let event: Value = serde_json::from_str(&line).unwrap();
        if event["event"] == "done" {
            confirmed.push(event["name"].as_str().unwrap().to_owned());
        }
    }
    // Freeze it at once (the client cannot get far past this point), then
    // kill it.
    let pid = srv.child.id().to_string();
    assert!(Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    srv.signal("KILL");
    let rest: Vec<Value> = events.map(|l| serde_json::from_str(&l.unwrap()).unwrap()).collect();
    let status = put.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    let summary = rest.last().unwrap();
    assert_eq!(summary["event"], "summary");
    assert!(summary["interrupted"].is_string(), "{summary}");
    assert!(
        summary["not_sent"].as_u64().unwrap() > 0,
        "the server died mid-tree: {summary}"
    );
    let unconfirmed = rest
        .iter()
        .filter(|e| e["event"] == "error" && e["message"].as_str().unwrap().starts_with("not confirmed"))
        .count();
    assert!(unconfirmed > 0, "the files in the window are reported: {rest:?}");

    // Everything under a final name is a whole file of the tree, and every
    // confirmed file is there.
    let landed = digests(&root.join("tree"));
    for (name, sum) in &landed {
        assert_eq!(want.get(name), Some(sum), "{name} is not a whole file of the tree");
    }
    for name in &confirmed {
        assert!(
            landed.contains_key(name.strip_prefix("tree/").unwrap()),
            "{name} was confirmed"
        );
    }
    assert!(landed.len() < want.len());

    let srv = Server::start(
        &sb,
        &["--insecure-no-auth", "--no-web", "--root", root.to_str().unwrap()],
    );
    let again = client(&sb, &srv, &["put", "-r", "tree", "--resume"]).output().unwrap();
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(digests(&root.join("tree")), want);
}

fn frame(header: &Value, body: &[u8]) -> Vec<u8> {
    let h = header.to_string().into_bytes();
    let mut out = (h.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(body);
    out
}

fn xxh3(data: &[u8]) -> String {
    let mut h = sockit_proto::checksum::StreamHash::new();
    h.update(data);
    h.hex()
}

/// Reads one reply header (and returns it with its declared body).
fn read_frame(s: &mut TcpStream) -> (Value, Vec<u8>) {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut header = vec![0u8; u32::from_le_bytes(len) as usize];
    s.read_exact(&mut header).unwrap();
    let header: Value = serde_json::from_slice(&header).unwrap();
    let body_len = header["data_size"]
        .as_u64()
        .or_else(|| Some(header["filesize"].as_u64()? - header["offset"].as_u64().unwrap_or(0)))
        .unwrap_or(0);
    let mut body = vec![0u8; body_len as usize];
    s.read_exact(&mut body).unwrap();
    (header, body)
}

#[test]
fn pipelined_requests_take_effect_in_order() {
    let sb = Sandbox::new();
    let srv = Server::start(&sb, &["--insecure-no-auth", "--no-web", "--root", "srv"]);
    let mut s = TcpStream::connect(&srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let put = |body: &[u8]| {
        let mut w = frame(
            &json!({"cmd": "put", "filename": "same.txt", "filesize": body.len(), "verify": "xxh3"}),
            body,
        );
        w.extend(frame(&json!({"cmd": "commit", "xxh3": xxh3(body)}), b""));
        w
    };
    // All at once, before reading a reply: put, get, put again, get, rm,
    // get. Each sees the effects of those before it.
    let mut wire = put(b"first");
    wire.extend(frame(&json!({"cmd": "get", "filename": "same.txt"}), b""));
    wire.extend(put(b"second, longer"));
    wire.extend(frame(&json!({"cmd": "get", "filename": "same.txt"}), b""));
    wire.extend(frame(&json!({"cmd": "rm", "path": "same.txt"}), b""));
    wire.extend(frame(&json!({"cmd": "get", "filename": "same.txt"}), b""));
    s.write_all(&wire).unwrap();

    let (stored, _) = read_frame(&mut s);
    assert_eq!((&stored["status"], &stored["size"]), (&json!("ok"), &json!(5)));
    let (_, body) = read_frame(&mut s);
    assert_eq!(body, b"first");
    let (trailer, _) = read_frame(&mut s);
    assert_eq!(trailer["xxh3"], xxh3(b"first"));
    let (stored, _) = read_frame(&mut s);
    assert_eq!(stored["size"], 14);
    let (_, body) = read_frame(&mut s);
    assert_eq!(body, b"second, longer");
    read_frame(&mut s);
    let (removed, _) = read_frame(&mut s);
    assert_eq!(removed, json!({"status": "ok"}));
    let (gone, _) = read_frame(&mut s);
    assert_eq!((&gone["status"], &gone["code"]), (&json!("error"), &json!("not_found")));
}

/// A client that pipelines 10,000 gets of a 200 KB file and never reads a
/// reply: the server answers until the socket is full, then waits; it
/// never gathers replies (2 GB here) in memory.
#[test]
fn ten_thousand_pipelined_requests_never_read_keep_the_server_bounded() {
    let sb = Sandbox::new();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    write(&sb.path("work/srv/f.bin"), &data);
    let srv = Server::start(&sb, &["--insecure-no-auth", "--no-web", "--root", "srv"]);
    let status = PathBuf::from(format!("/proc/{}/status", srv.child.id()));
    let peak = || -> u64 {
        let text = std::fs::read_to_string(&status).unwrap();
        let line = text.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let before = peak();

    let mut s = TcpStream::connect(&srv.addr).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
    let request = frame(&json!({"cmd": "get", "filename": "f.bin"}), b"");
    let wire: Vec<u8> = std::iter::repeat_n(request, 10_000).flatten().collect();
    // The server stops reading once its replies fill the socket, so this
    // write stalls and times out: that is the point.
    let written = s.write(&wire).unwrap_or(0);
    let mut sent = written;
    while sent < wire.len() {
        match s.write(&wire[sent..]) {
            Ok(n) => sent += n,
            Err(_) => break,
        }
    }
    let after = peak();
    assert!(
        after.saturating_sub(before) < 64 * 1024,
        "server peak RSS grew by {} KiB",
        after - before
    );
    drop(s);

    // And it still serves others.
    let mut other = TcpStream::connect(&srv.addr).unwrap();
    other.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    other
        .write_all(&frame(&json!({"cmd": "stat", "path": "f.bin"}), b""))
        .unwrap();
    let (stat, _) = read_frame(&mut other);
    assert_eq!(stat["size"], 200_000);
}
