//! What a local user can plant in a served folder or a download folder:
//! named pipes, devices, symlinks (to the root, out of it, swapped in
//! mid-request). Each must be refused or stepped around promptly, never
//! hang a server, and never let a peer's bytes land outside the root or a
//! client's bytes outside its chosen folder.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use common::{PATIENCE, TestServer, code, read_reply, send, spawn_tcp};
use sockit::files::{FileClient, NoProgress};
use sockit_proto::path::RelPath;

fn rel(s: &str) -> RelPath {
    RelPath::parse(s).unwrap()
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

async fn honest_round_trip(srv: &TestServer) {
    let mut c = srv.client().await;
    let src = srv.local("honest.txt");
    std::fs::write(&src, b"honest").unwrap();
    c.put(&src, &rel("honest.txt"), false, &mut NoProgress).await.unwrap();
    let dst = srv.local("honest.back");
    c.get(&rel("honest.txt"), &dst, false, &mut NoProgress).await.unwrap();
    assert_eq!(std::fs::read(dst).unwrap(), b"honest");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_named_pipe_is_refused_at_once_and_never_holds_a_thread() {
    // Every request from one address here: the per-address cap is raised.
    let srv = TestServer::start(common::Options {
        max_per_peer: 1000,
        ..common::Options::default()
    })
    .await;
    mkfifo(&srv.root.join("pipe"));
    let started = Instant::now();
    // More requests than tokio's blocking pool has threads: if any of them
    // blocked in open(2), the later ones (and the honest client) would hang.
    let mut tasks = Vec::new();
    for _ in 0..600 {
        let addr = srv.addr;
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            send(&mut s, &json!({"cmd":"get","filename":"pipe"}), b"").await;
            let reply = read_reply(&mut s).await.unwrap();
            code(&reply)
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), "permission_denied");
    }
    let mut s = srv.raw().await;
    send(&mut s, &json!({"cmd":"stat","path":"pipe"}), b"").await;
    assert_eq!(
        code(&read_reply(&mut s).await.unwrap()),
        "ok",
        "stat may describe a pipe"
    );
    honest_round_trip(&srv).await;
    assert!(started.elapsed() < PATIENCE);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_onto_a_named_pipe_replaces_nothing_and_never_blocks() {
    let srv = TestServer::plain().await;
    mkfifo(&srv.root.join("pipe"));
    let src = srv.local("x");
    std::fs::write(&src, b"data").unwrap();
    let mut c = srv.client().await;
    // The upload is staged, then renamed over the name: the pipe is
    // replaced, never opened (nobody would ever read the other end).
    let put = tokio::time::timeout(PATIENCE, c.put(&src, &rel("pipe"), false, &mut NoProgress)).await;
    put.expect("a put onto a pipe must not hang").unwrap();
    assert_eq!(std::fs::read(srv.root.join("pipe")).unwrap(), b"data");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_device_in_the_root_is_not_served() {
    let srv = TestServer::plain().await;
    std::os::unix::fs::symlink("/dev/zero", srv.root.join("zero-out")).unwrap();
    // A device node inside the root (as root can make one): the link above
    // leaves the root; this one is a real character device in it.
    let made = std::process::Command::new("mknod")
        .args([srv.root.join("zero").to_str().unwrap(), "c", "1", "5"])
        .status()
        .is_ok_and(|s| s.success());
    let mut s = srv.raw().await;
    send(&mut s, &json!({"cmd":"get","filename":"zero-out"}), b"").await;
    assert_eq!(code(&read_reply(&mut s).await.unwrap()), "bad_path");
    if made {
        send(&mut s, &json!({"cmd":"get","filename":"zero"}), b"").await;
        assert_eq!(code(&read_reply(&mut s).await.unwrap()), "permission_denied");
    } else {
        assert!(std::env::var("CI").is_err(), "CI runs as root and can mknod");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_download_service_refuses_a_named_pipe_at_once() {
    let dir = tempfile::tempdir().unwrap();
    mkfifo(&dir.path().join("pipe"));
    std::fs::write(dir.path().join("real"), b"real bytes").unwrap();
    let service = sockit::download::Download::new(dir.path()).unwrap();
    let (addr, _stop) = spawn_tcp(service, None);
    for _ in 0..20 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"pipe").await.unwrap();
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got))
            .await
            .expect("a pipe must be refused, not waited on")
            .unwrap();
        assert!(got.is_empty());
    }
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"real").await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(PATIENCE, s.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, b"real bytes");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_link_to_the_root_does_not_reach_the_private_folder() {
    let srv = TestServer::plain().await;
    std::os::unix::fs::symlink(".", srv.root.join("current")).unwrap();
    // Leave a partial behind, as an interrupted upload would.
    let mut s = srv.raw().await;
    send(
        &mut s,
        &json!({"cmd":"put","filename":"secret.bin","filesize":100,"verify":"xxh3"}),
        &[7u8; 40],
    )
    .await;
    drop(s);
    let partials = srv.root.join(".sockit/partial");
    let deadline = Instant::now() + PATIENCE;
    // The partial's other files can appear first; wait for the data itself.
    let part_name = loop {
        let found = std::fs::read_dir(&partials)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .find(|n| n.ends_with(".part"));
        if let Some(name) = found {
            break name;
        }
        assert!(Instant::now() < deadline, "the partial was never kept");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };

    let mut c = srv.client().await;
    let listed = c.ls(&rel("current"), false).await.unwrap();
    assert!(listed.iter().all(|e| e.path != ".sockit"), "{listed:?}");
    let listed = c.ls(&rel("current"), true).await.unwrap();
    assert!(listed.iter().all(|e| !e.path.contains(".sockit")), "{listed:?}");

    let mut s = srv.raw().await;
    for (req, want) in [
        (json!({"cmd":"ls","path":"current/.sockit"}), "bad_path"),
        (json!({"cmd":"ls","path":"current/.sockit/partial"}), "bad_path"),
        (
            json!({"cmd":"get","filename":format!("current/.sockit/partial/{part_name}")}),
            "bad_path",
        ),
        (json!({"cmd":"stat","path":"current/.sockit"}), "bad_path"),
        (
            json!({"cmd":"rm","path":"current/.sockit","recursive":true}),
            "bad_path",
        ),
        (json!({"cmd":"mkdir","path":"current/.sockit/x"}), "bad_path"),
        (
            json!({"cmd":"rm","path":"current/current/.sockit/partial","recursive":true}),
            "bad_path",
        ),
    ] {
        send(&mut s, &req, b"").await;
        assert_eq!(code(&read_reply(&mut s).await.unwrap()), want, "{req}");
    }
    send(
        &mut s,
        &json!({"cmd":"put","filename":"current/.sockit/partial/evil","filesize":2}),
        b"xx",
    )
    .await;
    assert_eq!(code(&read_reply(&mut s).await.unwrap()), "bad_path");
    assert!(partials.join(&part_name).exists(), "the kept partial is untouched");
    // Uploads through the link land in the root, and keep working.
    let src = srv.local("via");
    std::fs::write(&src, b"via the link").unwrap();
    c.put(&src, &rel("current/via.txt"), false, &mut NoProgress)
        .await
        .unwrap();
    assert_eq!(std::fs::read(srv.root.join("via.txt")).unwrap(), b"via the link");
    honest_round_trip(&srv).await;
}

/// A local user flips a folder between a real folder and a symlink out of
/// the root while peers upload into it. Whatever the timing, no byte may
/// land outside the root.
#[tokio::test(flavor = "multi_thread")]
async fn a_folder_swapped_for_a_symlink_mid_request_never_leaks_an_upload() {
    let srv = TestServer::plain().await;
    let outside = srv.dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let inside = srv.root.join("d");
    let stash = srv.root.join("d.real");
    std::fs::create_dir(&inside).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, outside, inside, stash) = (stop.clone(), outside.clone(), inside.clone(), stash.clone());
        std::thread::spawn(move || {
            let mut flips = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // d: real folder -> symlink to outside -> real folder ...
                let _ = std::fs::rename(&inside, &stash);
                let _ = std::os::unix::fs::symlink(&outside, &inside);
                std::thread::yield_now();
                let _ = std::fs::remove_file(&inside);
                let _ = std::fs::rename(&stash, &inside);
                flips += 1;
            }
            flips
        })
    };
    let src = srv.local("payload");
    std::fs::write(&src, b"payload").unwrap();
    let mut c = srv.client().await;
    let started = Instant::now();
    let mut tries = 0;
    while tries < 400 && started.elapsed() < Duration::from_secs(20) {
        let _ = c.put(&src, &rel(&format!("d/f{tries}")), false, &mut NoProgress).await;
        let _ = c.mkdir(&rel(&format!("d/m{tries}"))).await;
        tries += 1;
        if c.ls(&RelPath::root(), false).await.is_err() {
            c = srv.client().await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let flips = swapper.join().unwrap();
    let leaked: Vec<_> = std::fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(leaked.is_empty(), "after {tries} tries and {flips} flips: {leaked:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn get_never_writes_through_a_planted_partial_link() {
    let srv = TestServer::plain().await;
    std::fs::write(srv.root.join("doc.txt"), b"from the server").unwrap();
    let victim = srv.dir.path().join("victim.txt");
    std::fs::write(&victim, b"precious").unwrap();
    let dl = srv.local("dl");
    std::fs::create_dir_all(&dl).unwrap();
    std::os::unix::fs::symlink(&victim, dl.join(".doc.txt.sockit-part")).unwrap();
    let mut c: FileClient = srv.client().await;
    // Resuming from a partial that is a link: refused, nothing written.
    let r = c.get(&rel("doc.txt"), &dl.join("doc.txt"), true, &mut NoProgress).await;
    assert!(r.is_err(), "a planted partial must be refused, got {r:?}");
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert!(!dl.join("doc.txt").exists());
    // A fresh download removes the link (not its target) and starts over.
    c.get(&rel("doc.txt"), &dl.join("doc.txt"), false, &mut NoProgress)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert_eq!(std::fs::read(dl.join("doc.txt")).unwrap(), b"from the server");
    // A link planted at the final name is replaced, not written through.
    std::fs::remove_file(dl.join("doc.txt")).unwrap();
    std::os::unix::fs::symlink(&victim, dl.join("doc.txt")).unwrap();
    c.get(&rel("doc.txt"), &dl.join("doc.txt"), false, &mut NoProgress)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert!(!std::fs::symlink_metadata(dl.join("doc.txt")).unwrap().is_symlink());
}
