//! The file service end to end: a real server on 127.0.0.1:0, the real
//! client, and raw frames where a test plays a classic or broken peer.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::time::Duration;

use serde_json::json;
use tokio::io::AsyncWriteExt as _;

use common::{Options, TestServer, closed_by_server, code, random_bytes, read_reply, send};
use sockit::Error;
use sockit::files::NoProgress;
use sockit::files::client::partial_path;
use sockit_proto::checksum::{Md5Hash, StreamHash};
use sockit_proto::files::{EntryKind, ErrorCode};
use sockit_proto::path::RelPath;

fn rel(s: &str) -> RelPath {
    RelPath::parse(s).unwrap()
}

fn xxh3(data: &[u8]) -> String {
    let mut h = StreamHash::new();
    h.update(data);
    h.hex()
}

#[tokio::test(flavor = "multi_thread")]
async fn put_get_ls_stat_rm_mkdir_round_trip() {
    let srv = TestServer::plain().await;
    let data = random_bytes(3 * 1024 * 1024 + 17, 1);
    let src = srv.local("src.bin");
    std::fs::write(&src, &data).unwrap();
    let mut c = srv.client().await;

    let t = c
        .put(&src, &rel("deep/er/a.bin"), false, &mut NoProgress)
        .await
        .unwrap();
    assert_eq!((t.size, t.offset, t.verified), (data.len() as u64, 0, true));
    assert_eq!(std::fs::read(srv.root.join("deep/er/a.bin")).unwrap(), data);

    let dst = srv.local("out.bin");
    let t = c
        .get(&rel("deep/er/a.bin"), &dst, false, &mut NoProgress)
        .await
        .unwrap();
    assert_eq!(t.xxh3, xxh3(&data));
    assert_eq!(std::fs::read(&dst).unwrap(), data);
    assert!(!partial_path(&dst).exists());

    c.mkdir(&rel("empty/sub")).await.unwrap();
    let listing = c.ls(&RelPath::root(), true).await.unwrap();
    let names: Vec<_> = listing.iter().map(|e| (e.path.as_str(), e.kind)).collect();
    assert_eq!(
        names,
        [
            ("deep", EntryKind::Dir),
            ("deep/er", EntryKind::Dir),
            ("deep/er/a.bin", EntryKind::File),
            ("empty", EntryKind::Dir),
            ("empty/sub", EntryKind::Dir),
        ]
    );
    let top = c.ls(&RelPath::root(), false).await.unwrap();
    assert_eq!(top.len(), 2, "{top:?}");

    let st = c.stat(&rel("deep/er/a.bin")).await.unwrap();
    assert_eq!((st.kind, st.size), (EntryKind::File, data.len() as u64));

    let err = c.rm(&rel("deep"), false).await.unwrap_err();
    assert!(
        matches!(&err, Error::Remote(r) if r.code == ErrorCode::NotEmpty),
        "{err}"
    );
    c.rm(&rel("deep"), true).await.unwrap();
    c.rm(&rel("empty/sub"), false).await.unwrap();
    assert!(!srv.root.join("deep").exists() && !srv.root.join("empty/sub").exists());

    let err = c.stat(&rel("deep")).await.unwrap_err();
    assert!(
        matches!(&err, Error::Remote(r) if r.code == ErrorCode::NotFound),
        "{err}"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_file_and_overwrite() {
    let srv = TestServer::plain().await;
    let mut c = srv.client().await;
    let src = srv.local("empty");
    std::fs::write(&src, b"").unwrap();
    c.put(&src, &rel("e"), false, &mut NoProgress).await.unwrap();
    assert_eq!(std::fs::read(srv.root.join("e")).unwrap(), b"");
    std::fs::write(&src, b"second").unwrap();
    c.put(&src, &rel("e"), false, &mut NoProgress).await.unwrap();
    assert_eq!(std::fs::read(srv.root.join("e")).unwrap(), b"second");
    let dst = srv.local("e-out");
    c.get(&rel("e"), &dst, false, &mut NoProgress).await.unwrap();
    assert_eq!(std::fs::read(dst).unwrap(), b"second");
}

#[tokio::test(flavor = "multi_thread")]
async fn classic_put_needs_no_reply_read_and_keeps_the_connection() {
    // The seed client: header, bytes, next header, bytes; it reads nothing.
    let srv = TestServer::plain().await;
    let mut s = srv.raw().await;
    send(&mut s, &json!({"cmd":"put","filename":"a.txt","filesize":5}), b"hello").await;
    send(&mut s, &json!({"cmd":"put","filename":"b.txt","filesize":3}), b"abc").await;
    s.shutdown().await.unwrap();
    // The server replied to both, then closed on our end of stream.
    assert_eq!(code(&read_reply(&mut s).await.unwrap()), "ok");
    assert_eq!(code(&read_reply(&mut s).await.unwrap()), "ok");
    assert!(read_reply(&mut s).await.is_none());
    assert_eq!(std::fs::read(srv.root.join("a.txt")).unwrap(), b"hello");
    assert_eq!(std::fs::read(srv.root.join("b.txt")).unwrap(), b"abc");
}

#[tokio::test(flavor = "multi_thread")]
async fn md5_in_the_classic_header_is_checked() {
    let srv = TestServer::plain().await;
    let mut md5 = Md5Hash::new();
    md5.update(b"hello");
    let good = md5.hex();
    let mut s = srv.raw().await;
    send(
        &mut s,
        &json!({"cmd":"put","filename":"good","filesize":5,"md5":good}),
        b"hello",
    )
    .await;
    assert_eq!(code(&read_reply(&mut s).await.unwrap()), "ok");
    send(
        &mut s,
        &json!({"cmd":"put","filename":"bad","filesize":5,"md5":good}),
        b"jello",
    )
    .await;
    assert_eq!(code(&read_reply(&mut s).await.unwrap()), "checksum_mismatch");
    assert!(srv.root.join("good").exists());
    assert!(!srv.root.join("bad").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_trailer_checksum_keeps_no_file() {
    let srv = TestServer::plain().await;
    let mut s = srv.raw().await;
    send(
        &mut s,
        &json!({"cmd":"put","filename":"x","filesize":4,"verify":"xxh3"}),
        b"data",
    )
    .await;
    send(&mut s, &json!({"cmd":"commit","xxh3": xxh3(b"DATA")}), b"").await;
    let reply = read_reply(&mut s).await.unwrap();
    assert_eq!(code(&reply), "checksum_mismatch");
    assert!(!srv.root.join("x").exists());
    // Nothing kept for resume either.
    send(&mut s, &json!({"cmd":"resume","filename":"x","size":4}), b"").await;
    assert_eq!(read_reply(&mut s).await.unwrap()["offset"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_upload_is_invisible_and_resumes() {
    let srv = TestServer::plain().await;
    let data = random_bytes(2_000_000, 2);
    {
        let mut s = srv.raw().await;
        send(
            &mut s,
            &json!({"cmd":"put","filename":"big.bin","filesize":data.len(),"verify":"xxh3"}),
            &data[..700_000],
        )
        .await;
        // Cut off mid-body; wait until the server has noticed.
        s.shutdown().await.unwrap();
        assert!(closed_by_server(&mut s, common::PATIENCE).await);
    }
    assert!(!srv.root.join("big.bin").exists());
    let mut c = srv.client().await;
    assert!(
        c.ls(&RelPath::root(), true).await.unwrap().is_empty(),
        "partial must not be listed"
    );
    let err = c
        .get(&rel("big.bin"), &srv.local("nope"), false, &mut NoProgress)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Remote(r) if r.code == ErrorCode::NotFound),
        "{err}"
    );
    assert!(
        !partial_path(&srv.local("nope")).exists(),
        "a refused get leaves nothing"
    );

    let src = srv.local("big.bin");
    std::fs::write(&src, &data).unwrap();
    let t = c.put(&src, &rel("big.bin"), true, &mut NoProgress).await.unwrap();
    assert_eq!(t.offset, 700_000, "resumed where the cut happened");
    assert_eq!(std::fs::read(srv.root.join("big.bin")).unwrap(), data);
}

#[tokio::test(flavor = "multi_thread")]
async fn resume_with_a_different_file_restarts_or_is_caught() {
    let srv = TestServer::plain().await;
    let data = random_bytes(100_000, 3);
    {
        let mut s = srv.raw().await;
        send(
            &mut s,
            &json!({"cmd":"put","filename":"f","filesize":data.len(),"verify":"xxh3"}),
            &data[..40_000],
        )
        .await;
        s.shutdown().await.unwrap();
        assert!(closed_by_server(&mut s, common::PATIENCE).await);
    }
    // Same size, different prefix: the client's resume offers the hash of
    // its own first 40,000 bytes, the server refuses to append to a partial
    // that does not match, and the client starts over from zero.
    let mut other = random_bytes(100_000, 4);
    other[99_999] ^= 1;
    let src = srv.local("f");
    std::fs::write(&src, &other).unwrap();
    let mut c = srv.client().await;
    let t = c.put(&src, &rel("f"), true, &mut NoProgress).await.unwrap();
    assert_eq!(t.offset, 0, "a partial of another file is never continued");
    assert_eq!(std::fs::read(srv.root.join("f")).unwrap(), other);
}

/// The raw rules behind resume: an offset needs `verify`, a claimed prefix
/// must match the kept partial, and a mismatch leaves that partial alone
/// for the upload that started it.
#[tokio::test(flavor = "multi_thread")]
async fn a_resume_must_prove_its_prefix_and_never_mixes_two_files() {
    let srv = TestServer::plain().await;
    let a = random_bytes(100_000, 5);
    let b = random_bytes(100_000, 6);
    {
        let mut s = srv.raw().await;
        send(
            &mut s,
            &json!({"cmd":"put","filename":"f","filesize":a.len(),"verify":"xxh3"}),
            &a[..40_000],
        )
        .await;
        s.shutdown().await.unwrap();
        assert!(closed_by_server(&mut s, common::PATIENCE).await);
    }
    let mut s = srv.raw().await;
    let resume = json!({"cmd":"resume","filename":"f","size":100_000});
    send(&mut s, &resume, b"").await;
    assert_eq!(read_reply(&mut s).await.unwrap()["offset"], 40_000);
    // B's tail with no verify: refused before a byte is appended.
    send(
        &mut s,
        &json!({"cmd":"put","filename":"f","filesize":100_000,"offset":40_000}),
        &b[40_000..],
    )
    .await;
    assert_eq!(code(&read_reply(&mut s).await.unwrap()), "bad_request");
    // B's tail claiming B's prefix: refused, A's partial kept.
    send(
        &mut s,
        &json!({"cmd":"put","filename":"f","filesize":100_000,"offset":40_000,"verify":"xxh3",
                "prefix_xxh3": xxh3(&b[..40_000])}),
        &b[40_000..],
    )
    .await;
    assert_eq!(code(&read_reply(&mut s).await.unwrap()), "checksum_mismatch");
    send(&mut s, &json!({"cmd":"commit","xxh3": xxh3(&b)}), b"").await;
    send(&mut s, &resume, b"").await;
    assert_eq!(
        read_reply(&mut s).await.unwrap()["offset"],
        40_000,
        "A's partial is intact"
    );
    // An old client with verify but no prefix: the whole-file check catches
    // the mix, and nothing is stored.
    send(
        &mut s,
        &json!({"cmd":"put","filename":"f","filesize":100_000,"offset":40_000,"verify":"xxh3"}),
        &b[40_000..],
    )
    .await;
    let mut mixed = a[..40_000].to_vec();
    mixed.extend_from_slice(&b[40_000..]);
    send(&mut s, &json!({"cmd":"commit","xxh3": xxh3(&b)}), b"").await;
    assert_eq!(code(&read_reply(&mut s).await.unwrap()), "checksum_mismatch");
    assert!(!srv.root.join("f").exists());
    assert_ne!(xxh3(&mixed), xxh3(&b));
    // A, resuming with the right proof, completes its own file.
    let src = srv.local("a");
    std::fs::write(&src, &a).unwrap();
    {
        let mut s = srv.raw().await;
        send(
            &mut s,
            &json!({"cmd":"put","filename":"f","filesize":a.len(),"verify":"xxh3"}),
            &a[..40_000],
        )
        .await;
        s.shutdown().await.unwrap();
        assert!(closed_by_server(&mut s, common::PATIENCE).await);
    }
    let mut c = srv.client().await;
    let t = c.put(&src, &rel("f"), true, &mut NoProgress).await.unwrap();
    assert_eq!(t.offset, 40_000);
    assert_eq!(std::fs::read(srv.root.join("f")).unwrap(), a);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_classic_upload_is_discarded() {
    let srv = TestServer::plain().await;
    let mut s = srv.raw().await;
    send(&mut s, &json!({"cmd":"put","filename":"c","filesize":1000}), &[7u8; 10]).await;
    s.shutdown().await.unwrap();
    assert!(closed_by_server(&mut s, common::PATIENCE).await);
    assert!(!srv.root.join("c").exists());
    let mut s = srv.raw().await;
    send(&mut s, &json!({"cmd":"resume","filename":"c","size":1000}), b"").await;
    assert_eq!(read_reply(&mut s).await.unwrap()["offset"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn get_resumes_from_the_local_partial_and_catches_a_corrupt_one() {
    let srv = TestServer::plain().await;
    let data = random_bytes(1_500_000, 5);
    std::fs::write(srv.root.join("g.bin"), &data).unwrap();
    let mut c = srv.client().await;
    let dst = srv.local("g.bin");
    std::fs::write(partial_path(&dst), &data[..600_000]).unwrap();
    let t = c.get(&rel("g.bin"), &dst, true, &mut NoProgress).await.unwrap();
    assert_eq!(t.offset, 600_000);
    assert_eq!(std::fs::read(&dst).unwrap(), data);

    // A partial that does not match the server's file.
    std::fs::remove_file(&dst).unwrap();
    let mut bad = data[..600_000].to_vec();
    bad[5] ^= 0xff;
    std::fs::write(partial_path(&dst), &bad).unwrap();
    let err = c.get(&rel("g.bin"), &dst, true, &mut NoProgress).await.unwrap_err();
    assert!(matches!(err, Error::ChecksumMismatch { .. }), "{err}");
    assert!(!dst.exists() && !partial_path(&dst).exists());

    // Without --resume a stale partial is ignored.
    std::fs::write(partial_path(&dst), &bad).unwrap();
    c.get(&rel("g.bin"), &dst, false, &mut NoProgress).await.unwrap();
    assert_eq!(std::fs::read(&dst).unwrap(), data);
}

#[tokio::test(flavor = "multi_thread")]
async fn folders_go_both_ways() {
    let srv = TestServer::plain().await;
    let tree = srv.local("tree");
    std::fs::create_dir_all(tree.join("a/b")).unwrap();
    std::fs::create_dir_all(tree.join("empty")).unwrap();
    std::fs::write(tree.join("top.txt"), b"top").unwrap();
    std::fs::write(tree.join("a/b/deep.bin"), random_bytes(300_000, 6)).unwrap();
    let mut c = srv.client().await;
    let up = c.put_tree(&tree, &rel("up"), false, &mut NoProgress).await.unwrap();
    assert_eq!((up.files.len(), up.failed.len()), (2, 0));
    assert!(srv.root.join("up/empty").is_dir());
    assert_eq!(std::fs::read(srv.root.join("up/top.txt")).unwrap(), b"top");

    let down = srv.local("down");
    let got = c.get_tree(&rel("up"), &down, false, &mut NoProgress).await.unwrap();
    assert_eq!(got.files.len(), 2);
    assert!(down.join("empty").is_dir());
    assert_eq!(
        std::fs::read(down.join("a/b/deep.bin")).unwrap(),
        std::fs::read(tree.join("a/b/deep.bin")).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_upload_per_path_at_a_time() {
    let srv = TestServer::plain().await;
    let mut first = srv.raw().await;
    // Past one chunk, so its bytes stream to a partial as they arrive.
    let whole: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
    send(
        &mut first,
        &json!({"cmd":"put","filename":"same","filesize":whole.len(),"verify":"xxh3"}),
        &whole[..5],
    )
    .await;
    // The first upload is running once its partial holds those 5 bytes.
    let id = sockit::files::staging::id_of(&rel("same"));
    let part = srv.root.join(".sockit/partial").join(format!("{id}.part"));
    let started = std::time::Instant::now();
    while std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0) < 5 {
        assert!(started.elapsed() < common::PATIENCE, "the first upload never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut second = srv.raw().await;
    send(
        &mut second,
        &json!({"cmd":"resume","filename":"same","size":whole.len()}),
        b"",
    )
    .await;
    assert_eq!(code(&read_reply(&mut second).await.unwrap()), "busy");
    send(&mut second, &json!({"cmd":"put","filename":"same","filesize":2}), b"zz").await;
    assert_eq!(code(&read_reply(&mut second).await.unwrap()), "busy");
    // The first finishes normally.
    first.write_all(&whole[5..]).await.unwrap();
    send(&mut first, &json!({"cmd":"commit","xxh3": xxh3(&whole)}), b"").await;
    assert_eq!(code(&read_reply(&mut first).await.unwrap()), "ok");
    assert_eq!(std::fs::read(srv.root.join("same")).unwrap(), whole);
}

#[tokio::test(flavor = "multi_thread")]
async fn folder_and_missing_names_get_clear_codes() {
    let srv = TestServer::plain().await;
    std::fs::create_dir_all(srv.root.join("d")).unwrap();
    let mut s = srv.raw().await;
    for (req, want) in [
        (json!({"cmd":"get","filename":"d"}), "is_a_directory"),
        (json!({"cmd":"get","filename":"missing"}), "not_found"),
        (json!({"cmd":"ls","path":"missing"}), "not_found"),
        (json!({"cmd":"rm","path":"missing"}), "not_found"),
        (json!({"cmd":"get","filename":"d/x","offset":5}), "not_found"),
    ] {
        send(&mut s, &req, b"").await;
        assert_eq!(code(&read_reply(&mut s).await.unwrap()), want, "{req}");
    }
    send(&mut s, &json!({"cmd":"put","filename":"d","filesize":1}), b"x").await;
    assert_eq!(code(&read_reply(&mut s).await.unwrap()), "is_a_directory");
    std::fs::write(srv.root.join("f"), b"abc").unwrap();
    send(&mut s, &json!({"cmd":"get","filename":"f","offset":4}), b"").await;
    assert_eq!(code(&read_reply(&mut s).await.unwrap()), "bad_request");
    send(&mut s, &json!({"cmd":"put","filename":"f/child","filesize":1}), b"x").await;
    let r = read_reply(&mut s).await.unwrap();
    assert!(
        ["not_a_directory", "already_exists"].contains(&code(&r).as_str()),
        "{r:?}"
    );
    // The connection survived every refusal.
    send(&mut s, &json!({"cmd":"stat","path":"f"}), b"").await;
    assert_eq!(read_reply(&mut s).await.unwrap()["size"], 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_mid_upload_never_leaves_a_half_file() {
    let srv = TestServer::start(Options {
        drain_timeout: Duration::from_millis(300),
        ..Options::default()
    })
    .await;
    let mut s = srv.raw().await;
    send(
        &mut s,
        &json!({"cmd":"put","filename":"inflight","filesize":1_000_000}),
        &[1u8; 1000],
    )
    .await;
    // Wait until the server is in the upload: it has made the partial.
    let staging = srv.root.join(".sockit/partial");
    let started = std::time::Instant::now();
    while std::fs::read_dir(&staging).unwrap().count() == 0 {
        assert!(started.elapsed() < common::PATIENCE, "the upload never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let root = srv.root.clone();
    srv.stop().await;
    assert!(!root.join("inflight").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn rm_of_a_symlink_removes_the_link_not_its_target() {
    let srv = TestServer::plain().await;
    std::fs::write(srv.root.join("target"), b"keep").unwrap();
    std::os::unix::fs::symlink(srv.root.join("target"), srv.root.join("link")).unwrap();
    let mut c = srv.client().await;
    c.rm(&rel("link"), false).await.unwrap();
    assert!(srv.root.join("target").exists());
    assert!(std::fs::symlink_metadata(srv.root.join("link")).is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn many_clients_transfer_at_once() {
    let srv = TestServer::plain().await;
    let mut tasks = Vec::new();
    for i in 0..16u64 {
        let config = srv.client_config();
        let src = srv.local(&format!("src-{i}"));
        let dst = srv.local(&format!("dst-{i}"));
        let data = random_bytes(400_000 + i as usize * 1000, 100 + i);
        std::fs::write(&src, &data).unwrap();
        tasks.push(tokio::spawn(async move {
            let mut c = sockit::files::FileClient::connect(&config).await.unwrap();
            let name = rel(&format!("many/{i}.bin"));
            c.put(&src, &name, false, &mut NoProgress).await.unwrap();
            c.get(&name, &dst, false, &mut NoProgress).await.unwrap();
            assert_eq!(std::fs::read(&dst).unwrap(), data);
        }));
    }
    for t in tasks {
        tokio::time::timeout(common::PATIENCE, t).await.unwrap().unwrap();
    }
    assert_eq!(std::fs::read_dir(srv.root.join("many")).unwrap().count(), 16);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listing_of_many_pages_arrives_whole_and_sorted() {
    let srv = TestServer::plain().await;
    let long = "l".repeat(150);
    for d in 0..3 {
        let dir = srv.root.join(format!("{long}{d}"));
        std::fs::create_dir(&dir).unwrap();
        for i in 0..1000 {
            std::fs::write(dir.join(format!("{long}{i:04}")), b"").unwrap();
        }
    }
    // Raw: more than one frame, every one but the last marked "more".
    let mut s = srv.raw().await;
    send(&mut s, &json!({"cmd":"ls","recursive":true}), b"").await;
    let mut frames = 0;
    loop {
        let reply = read_reply(&mut s).await.unwrap();
        frames += 1;
        if !reply.get("more").and_then(|m| m.as_bool()).unwrap_or(false) {
            break;
        }
    }
    assert!(frames > 3, "{frames} frames");
    let mut c = srv.client().await;
    let entries = c.ls(&RelPath::root(), true).await.unwrap();
    assert_eq!(entries.len(), 3003);
    assert!(entries.windows(2).all(|w| w[0].path < w[1].path), "sorted for display");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_fsync_uploads_and_resumes_work_the_same() {
    let srv = TestServer::start(Options {
        fsync: true,
        ..Options::default()
    })
    .await;
    let data = random_bytes(700_000, 11);
    let src = srv.local("synced.bin");
    std::fs::write(&src, &data).unwrap();
    let mut c = srv.client().await;
    c.put(&src, &rel("sub/synced.bin"), false, &mut NoProgress)
        .await
        .unwrap();
    assert_eq!(std::fs::read(srv.root.join("sub/synced.bin")).unwrap(), data);
    {
        let mut s = srv.raw().await;
        send(
            &mut s,
            &json!({"cmd":"put","filename":"half.bin","filesize":data.len(),"verify":"xxh3"}),
            &data[..300_000],
        )
        .await;
        s.shutdown().await.unwrap();
        assert!(closed_by_server(&mut s, common::PATIENCE).await);
    }
    let src = srv.local("half.bin");
    std::fs::write(&src, &data).unwrap();
    let t = c.put(&src, &rel("half.bin"), true, &mut NoProgress).await.unwrap();
    assert_eq!(t.offset, 300_000);
    assert_eq!(std::fs::read(srv.root.join("half.bin")).unwrap(), data);
}

/// A connection lost after the whole body but before the commit: the
/// complete partial is kept, and the resume sends nothing but the proof
/// and the commit.
#[tokio::test(flavor = "multi_thread")]
async fn a_complete_body_without_its_commit_is_kept_for_the_resume() {
    let srv = TestServer::plain().await;
    let data = random_bytes(200_000, 12);
    {
        let mut s = srv.raw().await;
        send(
            &mut s,
            &json!({"cmd":"put","filename":"whole.bin","filesize":data.len(),"verify":"xxh3"}),
            &data,
        )
        .await;
        s.shutdown().await.unwrap();
        assert!(closed_by_server(&mut s, common::PATIENCE).await);
    }
    assert!(!srv.root.join("whole.bin").exists());
    let src = srv.local("whole.bin");
    std::fs::write(&src, &data).unwrap();
    let mut c = srv.client().await;
    let t = c.put(&src, &rel("whole.bin"), true, &mut NoProgress).await.unwrap();
    assert_eq!(t.offset, data.len() as u64, "nothing was sent again");
    assert_eq!(std::fs::read(srv.root.join("whole.bin")).unwrap(), data);
}
