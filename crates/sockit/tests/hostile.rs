//! Hostile and broken peers: each refused with a clear error, nothing
//! written outside the root or under a final name, and the server keeps
//! serving honest clients.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use common::{Options, PATIENCE, TestServer, closed_by_server, code, frame, read_reply, send};
use sockit::Error;
use sockit::auth::{self, Auth};
use sockit::files::{FileClient, NoProgress};
use sockit_proto::auth::{CHALLENGE_LEN, Digest, Key};
use sockit_proto::path::RelPath;

/// An honest round trip, to show the server still serves.
async fn still_serves(srv: &TestServer) {
    let mut c = srv.client().await;
    let src = srv.local("honest.txt");
    std::fs::write(&src, b"honest").unwrap();
    c.put(&src, &RelPath::parse("honest.txt").unwrap(), false, &mut NoProgress)
        .await
        .unwrap();
    assert_eq!(std::fs::read(srv.root.join("honest.txt")).unwrap(), b"honest");
}

#[tokio::test(flavor = "multi_thread")]
async fn traversal_in_put_and_get_is_refused() {
    let srv = TestServer::plain().await;
    let outside = srv.dir.path().join("outside.txt");
    std::fs::write(&outside, b"secret").unwrap();
    let escape = srv.dir.path().join("escape");
    std::fs::create_dir(&escape).unwrap();
    std::os::unix::fs::symlink(&escape, srv.root.join("link-out")).unwrap();

    let names = [
        "../outside.txt",
        "../../etc/passwd",
        "/etc/passwd",
        "a/../../outside.txt",
        "..\\outside.txt",
        "C:/x",
        "link-out/planted",
        ".sockit/partial/x",
    ];
    let mut s = srv.raw().await;
    for name in names {
        send(&mut s, &json!({"cmd":"put","filename":name,"filesize":6}), b"pwned!").await;
        assert_eq!(code(&read_reply(&mut s).await.unwrap()), "bad_path", "put {name}");
        send(&mut s, &json!({"cmd":"get","filename":name}), b"").await;
        assert_eq!(code(&read_reply(&mut s).await.unwrap()), "bad_path", "get {name}");
    }
    assert_eq!(std::fs::read(&outside).unwrap(), b"secret");
    assert_eq!(std::fs::read_dir(&escape).unwrap().count(), 0);
    still_serves(&srv).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_2gib_header_length_is_refused_at_once() {
    let srv = TestServer::plain().await;
    let mut s = srv.raw().await;
    let started = Instant::now();
    s.write_all(&0x7fff_ffffu32.to_le_bytes()).await.unwrap();
    let reply = read_reply(&mut s).await.unwrap();
    assert_eq!(code(&reply), "bad_request");
    assert!(reply["message"].as_str().unwrap().contains("exceeds the limit"));
    assert!(closed_by_server(&mut s, PATIENCE).await);
    // Refused on the 4 prefix bytes: no waiting for (or allocating) 2 GiB.
    assert!(started.elapsed() < Duration::from_secs(5));
    still_serves(&srv).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unframeable_headers_get_an_error_then_a_close() {
    let srv = TestServer::plain().await;
    let cases: Vec<Vec<u8>> = vec![
        {
            let mut v = 8u32.to_le_bytes().to_vec();
            v.extend_from_slice(b"not json");
            v
        },
        frame(&json!([1, 2, 3])),
        frame(&json!("a string")),
        frame(&json!({"cmd":"put","filename":"n","filesize":-1})),
        frame(&json!({"cmd":"put","filename":"n","filesize":1u64 << 60})),
        frame(&json!({"cmd":"put","filename":"n","filesize":1.5})),
        frame(&json!({"cmd":"put","filename":"n","filesize":2,"data_size":2})),
        0u32.to_le_bytes().to_vec(),
    ];
    for bytes in cases {
        let mut s = srv.raw().await;
        s.write_all(&bytes).await.unwrap();
        let reply = read_reply(&mut s).await.unwrap();
        assert_eq!(code(&reply), "bad_request", "{bytes:?}");
        assert!(closed_by_server(&mut s, PATIENCE).await);
    }
    assert_eq!(std::fs::read_dir(&srv.root).unwrap().count(), 1, "only .sockit");
    still_serves(&srv).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_names_and_unknown_commands_are_refused_and_the_connection_lives() {
    let srv = TestServer::plain().await;
    let mut s = srv.raw().await;
    for (req, body, want) in [
        (json!({"cmd":"put","filename":"","filesize":2}), &b"xx"[..], "bad_path"),
        (
            json!({"cmd":"put","filename":"a\u{0}b","filesize":2}),
            b"xx",
            "bad_path",
        ),
        (json!({"cmd":"put","filesize":2}), b"xx", "bad_request"),
        (json!({"cmd":"format_disk"}), b"", "unknown_command"),
        (json!({"cmd":"rm","path":""}), b"", "bad_path"),
        (json!({"filename":"x"}), b"", "bad_request"),
        (json!({"cmd":"commit","xxh3":"00"}), b"", "bad_request"),
        (json!({"cmd":"ls","data_size":3}), b"abc", "ok"),
    ] {
        send(&mut s, &req, body).await;
        assert_eq!(code(&read_reply(&mut s).await.unwrap()), want, "{req}");
    }
    send(&mut s, &json!({"cmd":"put","filename":"ok.txt","filesize":2}), b"ok").await;
    assert_eq!(code(&read_reply(&mut s).await.unwrap()), "ok");
    assert_eq!(std::fs::read(srv.root.join("ok.txt")).unwrap(), b"ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_cut_off_mid_body_leaves_nothing_under_its_name() {
    let srv = TestServer::plain().await;
    std::fs::write(srv.root.join("existing"), b"old contents").unwrap();
    for verify in [false, true] {
        let mut s = srv.raw().await;
        let mut header = json!({"cmd":"put","filename":"existing","filesize":100_000});
        if verify {
            header["verify"] = json!("xxh3");
        }
        send(&mut s, &header, &[9u8; 50_000]).await;
        drop(s);
        // A new connection's request runs after the old one is torn down
        // only if we wait for the claim to go: retry until not busy.
        let mut probe = srv.raw().await;
        for _ in 0..500 {
            send(
                &mut probe,
                &json!({"cmd":"resume","filename":"existing","size":100_000}),
                b"",
            )
            .await;
            if code(&read_reply(&mut probe).await.unwrap()) != "busy" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The old file is untouched: the upload never reached its name.
        assert_eq!(std::fs::read(srv.root.join("existing")).unwrap(), b"old contents");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_key_is_closed_with_no_reply_and_right_keys_pass() {
    for digest in [Digest::Md5, Digest::Sha256] {
        let srv = TestServer::start(Options {
            auth: Some(digest),
            ..Options::default()
        })
        .await;
        still_serves(&srv).await;

        // A client with the wrong secret: closed, nothing served.
        let wrong = Auth {
            key: Key::from_file_text(b"linhaifeng bang bang bang1111").unwrap(),
            digest,
        };
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        auth::answer(&mut s, &wrong).await.unwrap();
        let _ = s.write_all(&frame(&json!({"cmd":"ls"}))).await;
        let mut buf = Vec::new();
        let read = tokio::time::timeout(PATIENCE, s.read_to_end(&mut buf)).await.unwrap();
        assert!(read.is_err() || buf.is_empty(), "no reply to a wrong key: {buf:?}");

        // The library client reports it as an auth problem.
        let mut config = srv.client_config();
        config.auth = Some(wrong);
        let mut c = FileClient::connect(&config).await.unwrap();
        let err = c.ls(&RelPath::root(), false).await.unwrap_err();
        assert!(matches!(err, Error::AuthRejected), "{err}");

        // A client that speaks no auth at all gets a clear message.
        let mut config = srv.client_config();
        config.auth = None;
        let mut c = FileClient::connect(&config).await.unwrap();
        let err = c.ls(&RelPath::root(), false).await;
        assert!(err.is_err());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_client_is_dropped_at_the_handshake_deadline() {
    let srv = TestServer::start(Options {
        auth: Some(Digest::Sha256),
        handshake_timeout: Duration::from_millis(300),
        ..Options::default()
    })
    .await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let mut challenge = [0u8; CHALLENGE_LEN];
    s.read_exact(&mut challenge).await.unwrap();
    assert!(closed_by_server(&mut s, PATIENCE).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_client_is_dropped_at_the_idle_deadline() {
    let srv = TestServer::start(Options {
        idle_timeout: Duration::from_millis(300),
        ..Options::default()
    })
    .await;
    let mut s = srv.raw().await;
    assert!(closed_by_server(&mut s, PATIENCE).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn three_hundred_idle_connections_do_not_stop_an_honest_client() {
    // All from one address here, so the per-address cap is raised: what is
    // tested is that idle connections cost the server nothing it needs.
    let srv = TestServer::start(Options {
        auth: Some(Digest::Sha256),
        max_per_peer: 400,
        ..Options::default()
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(TcpStream::connect(srv.addr).await.unwrap());
    }
    let started = Instant::now();
    still_serves(&srv).await;
    let mut c = srv.client().await;
    let dst = srv.local("back.txt");
    c.get(&RelPath::parse("honest.txt").unwrap(), &dst, false, &mut NoProgress)
        .await
        .unwrap();
    assert!(started.elapsed() < PATIENCE);
    // All 300 were accepted and are still held open (none was refused).
    let mut open = 0;
    for s in &mut idle {
        let mut c = [0u8; CHALLENGE_LEN];
        if s.read_exact(&mut c).await.is_ok() {
            open += 1;
        }
    }
    assert_eq!(open, 300);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_link_planted_where_a_partial_goes_is_not_written_through() {
    // A local user links the partial's name to a file of theirs (here
    // /dev/full, where every write fails): the upload replaces the link
    // with a file of its own and succeeds; the link's target is untouched.
    let srv = TestServer::plain().await;
    let name = RelPath::parse("full.bin").unwrap();
    let id = sockit::files::staging::id_of(&name);
    let victim = srv.dir.path().join("victim");
    std::fs::write(&victim, b"victim").unwrap();
    std::os::unix::fs::symlink(&victim, srv.root.join(format!(".sockit/partial/{id}.part"))).unwrap();
    std::os::unix::fs::symlink("/dev/full", srv.root.join(format!(".sockit/partial/{id}.meta"))).unwrap();
    let src = srv.local("full.bin");
    std::fs::write(&src, vec![1u8; 300_000]).unwrap();
    let mut c = srv.client().await;
    c.put(&src, &name, true, &mut NoProgress).await.unwrap();
    assert_eq!(std::fs::read(srv.root.join("full.bin")).unwrap(), vec![1u8; 300_000]);
    assert_eq!(std::fs::read(&victim).unwrap(), b"victim");
    still_serves(&srv).await;
}

/// A real size-limited filesystem: a 1 MiB tmpfs. Needs root (CI runs as
/// root); elsewhere the simulated test above covers the same path.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_tmpfs_is_a_clear_error_and_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "sockit-test", mnt.to_str().unwrap()])
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        assert!(
            std::env::var("CI").is_err(),
            "CI runs as root and must be able to mount a tmpfs"
        );
        eprintln!("skipping: cannot mount a tmpfs here (not root)");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    let srv = TestServer::start(Options {
        root: Some(mnt.clone()),
        ..Options::default()
    })
    .await;
    let src = srv.local("big.bin");
    std::fs::write(&src, vec![3u8; 3 * 1024 * 1024]).unwrap();
    let mut c = srv.client().await;
    let err = c
        .put(&src, &RelPath::parse("big.bin").unwrap(), false, &mut NoProgress)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Remote(r) if r.code == sockit_proto::files::ErrorCode::NoSpace),
        "{err}"
    );
    assert!(!mnt.join("big.bin").exists());
    // The failed upload's space was given back: a small file still fits.
    still_serves(&srv).await;
    srv.stop().await;
}

/// A connection from `ip` (any address in 127/8 is this host).
async fn connect_from(ip: &str, to: std::net::SocketAddr) -> Option<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{ip}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_clients_cannot_hold_every_slot() {
    let srv = TestServer::start(Options {
        max_connections: 6,
        max_per_peer: 4,
        request_timeout: Duration::from_secs(2),
        ..Options::default()
    })
    .await;
    // A slowloris from 127.0.0.1: each connection trickles a header one
    // byte at a time, well under the idle deadline.
    let header = frame(&json!({"cmd":"ls","path":""}));
    let mut slow = Vec::new();
    for _ in 0..4 {
        slow.push(connect_from("127.0.0.1", srv.addr).await.unwrap());
    }
    for s in &mut slow {
        s.write_all(&header[..1]).await.unwrap();
    }
    // Its fifth connection is closed at once: the address has its share.
    let mut fifth = connect_from("127.0.0.1", srv.addr).await.unwrap();
    assert!(closed_by_server(&mut fifth, PATIENCE).await);
    // An honest client from another address is served meanwhile.
    let mut honest = connect_from("127.0.0.2", srv.addr).await.unwrap();
    send(&mut honest, &json!({"cmd":"ls"}), b"").await;
    assert_eq!(code(&read_reply(&mut honest).await.unwrap()), "ok");
    // The tricklers are cut off at the request deadline, not the idle one.
    let started = Instant::now();
    for s in &mut slow {
        for byte in header.iter().skip(1).take(8) {
            if s.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        assert!(closed_by_server(s, PATIENCE).await);
    }
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_that_trickles_below_the_minimum_rate_is_cut_off() {
    let srv = TestServer::start(Options {
        min_rate: 10_000,
        rate_window: Duration::from_millis(500),
        ..Options::default()
    })
    .await;
    let mut s = srv.raw().await;
    send(
        &mut s,
        &json!({"cmd":"put","filename":"slow.bin","filesize":1_000_000,"verify":"xxh3"}),
        &[1u8; 100],
    )
    .await;
    let started = Instant::now();
    let mut cut = false;
    while started.elapsed() < Duration::from_secs(20) {
        if s.write_all(&[1u8; 10]).await.is_err() {
            cut = true;
            break;
        }
        let mut probe = [0u8; 1];
        if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(Duration::from_millis(100), s.read(&mut probe)).await {
            cut = true;
            break;
        }
    }
    assert!(cut, "a 100 bytes/s upload must be cut off at a 10,000 bytes/s minimum");
    assert!(!srv.root.join("slow.bin").exists());
    still_serves(&srv).await;
}
