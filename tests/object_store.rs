//! The file service on an object store (`--root s3://bucket/prefix`)
//! against a real S3 implementation (s3s-fs, started by each test on
//! loopback): put, get, ls, rm and mkdir through sockit's own client, with
//! sha256 checks of what comes back; an upload interrupted on one server
//! and resumed through another, invisible until it is complete; hostile
//! names that round-trip exactly and never leave the prefix.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use sockit::files::object::ObjectRoot;
use sockit::files::staging::PartialLimits;
use support::s3::S3;
use support::web::{Reply, Web};
use support::{Sandbox, Server, peer_available, write};

const PREFIX: &str = "team/drop";

/// A `sockit serve` on the store's bucket, without the page.
fn serve(sandbox: &Sandbox, s3: &S3, extra: &[&str]) -> Server {
    let mut cmd = sandbox.cmd();
    cmd.envs(s3.env())
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--insecure-no-auth", "--no-web"])
        .args(["--root", &format!("s3://bucket/{PREFIX}")])
        .args(extra);
    Server::start_cmd(&mut cmd)
}

/// A zero-configuration `sockit serve` on the store: the files service
/// and the page, with a key.
fn serve_with_page(sandbox: &Sandbox, s3: &S3) -> (Server, Web) {
    let mut cmd = sandbox.cmd();
    cmd.envs(s3.env())
        .arg("serve")
        .args(["--listen", "127.0.0.1:0"])
        .args(["--root", &format!("s3://bucket/{PREFIX}")]);
    let server = Server::start_announcing(&mut cmd, true);
    let web = Web::of(&server);
    (server, web)
}

/// Runs the sockit client against `server` and returns its output.
fn client(sandbox: &Sandbox, server: &Server, args: &[&str]) -> Output {
    let mut cmd = sandbox.cmd();
    cmd.args(&args[..1])
        .args(["--insecure-no-auth", "-s", &server.addr])
        .args(&args[1..]);
    cmd.output().unwrap()
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn refused(out: Output) -> String {
    assert!(
        !out.status.success(),
        "unexpectedly succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

fn sha256(path: &Path) -> Vec<u8> {
    Sha256::digest(std::fs::read(path).unwrap()).to_vec()
}

/// Bytes no two files share: a counter run through sha256.
fn data(seed: u8, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut block = Sha256::digest([seed]).to_vec();
    while out.len() < len {
        block = Sha256::digest(&block).to_vec();
        out.extend_from_slice(&block);
    }
    out.truncate(len);
    out
}

/// The paths of `ls --json`'s entries.
fn listed(json_lines: &str) -> Vec<String> {
    json_lines
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["path"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// Where s3s-fs keeps an object's bytes.
fn stored(s3: &S3, key: &str) -> std::path::PathBuf {
    s3.dir.join("bucket").join(PREFIX).join(key)
}

#[test]
fn put_get_ls_stat_mkdir_rm_round_trip_through_the_store() {
    let sandbox = Sandbox::new();
    let Some(s3) = S3::start(&sandbox) else { return };
    let server = serve(&sandbox, &s3, &[]);
    assert!(
        server.banner.contains("root: s3://bucket/team/drop"),
        "{}",
        server.banner
    );

    // Empty, one byte, one read chunk and more, and three 16 MiB parts.
    let sizes = [0, 1, 300 << 10, (40 << 20) + 123];
    for (i, size) in sizes.iter().enumerate() {
        let local = sandbox.path(&format!("up/f{i}.bin"));
        write(&local, &data(i as u8, *size));
        ok(client(
            &sandbox,
            &server,
            &["put", local.to_str().unwrap(), &format!("f{i}.bin")],
        ));
        assert_eq!(std::fs::read(stored(&s3, &format!("f{i}.bin"))).unwrap().len(), *size);
    }
    for i in 0..sizes.len() {
        let back = sandbox.path(&format!("down/f{i}.bin"));
        ok(client(
            &sandbox,
            &server,
            &["get", &format!("f{i}.bin"), "-o", back.to_str().unwrap()],
        ));
        assert_eq!(
            sha256(&back),
            sha256(&sandbox.path(&format!("up/f{i}.bin"))),
            "f{i}.bin"
        );
    }
    // A download resumed from a partial copy still matches whole.
    let partial = sandbox.path("down/f3.bin");
    let whole = std::fs::read(&partial).unwrap();
    std::fs::remove_file(&partial).unwrap();
    write(&sandbox.path("down/.f3.bin.sockit-part"), &whole[..(20 << 20) + 7]);
    let out = ok(client(
        &sandbox,
        &server,
        &["get", "--resume", "f3.bin", "-o", partial.to_str().unwrap()],
    ));
    assert!(out.contains("resumed at 20.0 MiB"), "{out}");
    assert_eq!(std::fs::read(&partial).unwrap(), whole);

    // Folders are prefixes; an empty one exists through its marker.
    ok(client(&sandbox, &server, &["mkdir", "a/b/empty"]));
    let tree = sandbox.path("tree");
    write(&tree.join("one.txt"), b"one");
    write(&tree.join("deep/two.txt"), b"two");
    ok(client(
        &sandbox,
        &server,
        &["put", "-r", tree.to_str().unwrap(), "a/tree"],
    ));
    let listing = ok(client(&sandbox, &server, &["ls", "--json", "-r", "a"]));
    let names = listed(&listing);
    for want in ["b", "b/empty", "tree", "tree/one.txt", "tree/deep", "tree/deep/two.txt"] {
        assert!(names.iter().any(|n| n == want), "{want} missing from {names:?}");
    }
    assert!(!names.iter().any(|n| n.contains(".sockit")), "{names:?}");
    let top = ok(client(&sandbox, &server, &["ls"]));
    assert!(
        top.contains("f3.bin") && top.contains("a/") && !top.contains(".sockit"),
        "{top}"
    );
    let stat = ok(client(&sandbox, &server, &["stat", "--json", "f3.bin"]));
    assert!(stat.contains(&format!("{}", (40 << 20) + 123)), "{stat}");
    let back = sandbox.path("treeback");
    ok(client(
        &sandbox,
        &server,
        &["get", "-r", "a/tree", "-o", back.to_str().unwrap()],
    ));
    assert_eq!(std::fs::read(back.join("deep/two.txt")).unwrap(), b"two");

    // Removal: a non-empty folder needs -r; then everything under it goes.
    assert!(refused(client(&sandbox, &server, &["rm", "a"])).contains("not empty"));
    ok(client(&sandbox, &server, &["rm", "a/b/empty"]));
    ok(client(&sandbox, &server, &["rm", "-r", "a"]));
    ok(client(&sandbox, &server, &["rm", "f0.bin"]));
    let top = ok(client(&sandbox, &server, &["ls"]));
    assert!(
        !top.contains("a/") && !top.contains("f0.bin") && top.contains("f1.bin"),
        "{top}"
    );
    assert!(refused(client(&sandbox, &server, &["get", "f0.bin", "-o", "x"])).contains("not_found"));
    // Remote exec has no folder to run in.
    let exec = refused(client(&sandbox, &server, &["exec", "true"]));
    assert!(exec.contains("disabled"), "{exec}");
}

#[test]
fn the_course_notes_client_uploads_and_downloads_through_the_store() {
    let sandbox = Sandbox::new();
    let Some(s3) = S3::start(&sandbox) else { return };
    if !support::peer_available("python3", &["--version"]) {
        return;
    }
    let server = serve(&sandbox, &s3, &[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/seed_client.py");
    let (host, port) = server.addr.rsplit_once(':').unwrap();
    // A text file sent line by line, and one of two parts: the classic
    // header (no verify), one after the other on one connection.
    let text: Vec<u8> = (0..5000)
        .flat_map(|i| format!("line {i} 你好\n").into_bytes())
        .collect();
    write(&sandbox.path("seed/a.txt"), &text);
    write(&sandbox.path("seed/b.bin"), &data(4, (20 << 20) + 9));
    let out = std::process::Command::new("python3")
        .arg(script)
        .args([host, port])
        .args([sandbox.path("seed/a.txt"), sandbox.path("seed/b.bin")])
        .arg("--read-replies")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let replies = String::from_utf8(out.stdout).unwrap();
    assert_eq!(replies.matches("\"status\": \"ok\"").count(), 2, "{replies}");
    assert_eq!(std::fs::read(stored(&s3, "a.txt")).unwrap(), text);
    assert_eq!(sha256(&stored(&s3, "b.bin")), sha256(&sandbox.path("seed/b.bin")));
    let status = std::process::Command::new("python3")
        .arg(script)
        .args([host, port, "b.bin", "--get-into"])
        .arg(sandbox.path("seed/back.bin"))
        .stdin(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        sha256(&sandbox.path("seed/back.bin")),
        sha256(&sandbox.path("seed/b.bin"))
    );
}

/// Sends a `verify` put of `file` and the first `sent` of its bytes, and
/// leaves the connection open: a client whose link is about to die.
fn partial_put(addr: &str, name: &str, file: &[u8], sent: usize) -> TcpStream {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    let header = serde_json::json!({"cmd": "put", "filename": name, "filesize": file.len(), "verify": "xxh3"});
    let raw = serde_json::to_vec(&header).unwrap();
    conn.write_all(&(raw.len() as u32).to_le_bytes()).unwrap();
    conn.write_all(&raw).unwrap();
    conn.write_all(&file[..sent]).unwrap();
    conn.flush().unwrap();
    conn
}

/// The same, then the connection drops, as when the link dies.
fn interrupted_put(addr: &str, name: &str, file: &[u8], sent: usize) {
    drop(partial_put(addr, name, file, sent));
}

/// The kept uploads as `server` lists them, once one shows `want`. The
/// server receiving an upload records each part in the store's manifest
/// as the store acknowledges it; this asks until then (bounded: 30 s).
fn kept_upload(sandbox: &Sandbox, server: &Server, want: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let kept = ok(client(sandbox, server, &["ls", "--partials", "--json"]));
        if kept.contains(want) {
            return kept;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no kept upload with {want} in {kept}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_upload_interrupted_on_one_server_resumes_through_another_and_is_invisible_until_complete() {
    let sandbox = Sandbox::new();
    let Some(s3) = S3::start(&sandbox) else { return };
    let a = serve(&sandbox, &s3, &[]);
    let b = serve(&sandbox, &s3, &[]);
    let file = data(7, (50 << 20) + 5);
    let local = sandbox.path("big.bin");
    write(&local, &file);

    // Two whole parts and some of the third reach server A.
    interrupted_put(&a.addr, "big.bin", &file, (40 << 20) + 99);
    // A keeps what it stored once it sees the end of the stream; B learns
    // of it from the manifest in the store.
    let kept = kept_upload(&sandbox, &b, "\"size\":33554432");
    assert!(kept.contains("big.bin") && kept.contains("\"size\":33554432"), "{kept}");
    // Nothing under its name, through either server or in the store.
    assert!(!stored(&s3, "big.bin").exists());
    assert!(!ok(client(&sandbox, &a, &["ls"])).contains("big.bin"));
    assert!(refused(client(&sandbox, &b, &["stat", "big.bin"])).contains("not_found"));

    // The resume through B sends only what A did not store.
    let out = ok(client(
        &sandbox,
        &b,
        &["put", "--resume", local.to_str().unwrap(), "big.bin"],
    ));
    assert!(out.contains("resumed at 32.0 MiB"), "{out}");
    let back = sandbox.path("back.bin");
    ok(client(&sandbox, &a, &["get", "big.bin", "-o", back.to_str().unwrap()]));
    assert_eq!(sha256(&back), sha256(&local));
    assert_eq!(sha256(&stored(&s3, "big.bin")), sha256(&local));
    // The manifest is gone with the upload done.
    assert!(!ok(client(&sandbox, &a, &["ls", "--partials", "--json"])).contains("big.bin"));
}

#[test]
fn an_upload_survives_its_server_being_killed_and_resumes_through_another() {
    let sandbox = Sandbox::new();
    let Some(s3) = S3::start(&sandbox) else { return };
    let a = serve(&sandbox, &s3, &[]);
    let b = serve(&sandbox, &s3, &[]);
    let file = data(9, (40 << 20) + 17);
    let local = sandbox.path("crash.bin");
    write(&local, &file);
    // Two whole parts reach A, and the connection stays open: A records
    // its progress in the store as parts land, not only when it sees the
    // end of the stream.
    let conn = partial_put(&a.addr, "crash.bin", &file, (32 << 20) + 5);
    let kept = kept_upload(&sandbox, &b, "\"size\":33554432");
    assert!(kept.contains("crash.bin"), "{kept}");
    // Then A dies without a word (SIGKILL) with the upload open.
    assert!(!a.signal("KILL").success());
    drop(conn);
    assert!(!stored(&s3, "crash.bin").exists());
    let out = ok(client(
        &sandbox,
        &b,
        &["put", "--resume", local.to_str().unwrap(), "crash.bin"],
    ));
    assert!(out.contains("resumed at"), "{out}");
    assert_eq!(sha256(&stored(&s3, "crash.bin")), sha256(&local));
}

#[test]
fn a_kept_upload_of_another_file_is_never_mixed_into_this_one() {
    let sandbox = Sandbox::new();
    let Some(s3) = S3::start(&sandbox) else { return };
    let server = serve(&sandbox, &s3, &[]);
    let theirs = data(1, 40 << 20);
    interrupted_put(&server.addr, "same.bin", &theirs, (20 << 20) + 1);
    let mine = data(2, 40 << 20);
    let local = sandbox.path("same.bin");
    write(&local, &mine);
    let kept = kept_upload(&sandbox, &server, "\"size\":16777216");
    assert!(kept.contains("\"size\":16777216"), "{kept}");
    // The resume's proof fails, so the client starts over from 0.
    let out = ok(client(
        &sandbox,
        &server,
        &["put", "--resume", local.to_str().unwrap(), "same.bin"],
    ));
    assert!(!out.contains("resumed at"), "{out}");
    assert_eq!(sha256(&stored(&s3, "same.bin")), sha256(&local));
}

#[test]
fn kept_uploads_past_their_age_are_swept_and_younger_ones_stay() {
    let sandbox = Sandbox::new();
    let Some(s3) = S3::start(&sandbox) else { return };
    let server = serve(&sandbox, &s3, &[]);
    let file = data(3, (20 << 20) + 1);
    interrupted_put(&server.addr, "old.bin", &file, (16 << 20) + 3);
    kept_upload(&sandbox, &server, "\"size\":16777216");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let hour = bounded(&rt, &s3, |l| l.max_age = Duration::from_secs(3600));
    assert_eq!(rt.block_on(hour.sweep(true)), 0);
    assert!(ok(client(&sandbox, &server, &["ls", "--partials", "--json"])).contains("old.bin"));
    let now = bounded(&rt, &s3, |l| l.max_age = Duration::ZERO);
    assert_eq!(rt.block_on(now.sweep(true)), 1);
    assert!(!ok(client(&sandbox, &server, &["ls", "--partials", "--json"])).contains("old.bin"));
    // Its parts went with it: a resume now starts over.
    let local = sandbox.path("old.bin");
    write(&local, &file);
    let out = ok(client(
        &sandbox,
        &server,
        &["put", "--resume", local.to_str().unwrap(), "old.bin"],
    ));
    assert!(!out.contains("resumed at"), "{out}");
}

/// The store as the library opens it, with bounds on kept uploads.
fn bounded(
    rt: &tokio::runtime::Runtime,
    s3: &S3,
    bounds: impl FnOnce(&mut PartialLimits),
) -> std::sync::Arc<ObjectRoot> {
    let config = sockit::files::object::StoreConfig {
        endpoint: Some(s3.endpoint.clone()),
        region: Some("us-east-1".into()),
        access_key_id: Some(support::s3::ACCESS_KEY.into()),
        secret_access_key: Some(support::s3::SECRET_KEY.into()),
        allow_http: Some(true),
    };
    let url = sockit_proto::files::object::StoreUrl::parse(&format!("s3://bucket/{PREFIX}")).unwrap();
    let mut limits = PartialLimits::default();
    bounds(&mut limits);
    rt.block_on(async { ObjectRoot::open(&url, &config, limits) }).unwrap()
}

/// Keeps an interrupted `verify` upload of `name` holding one 16 MiB part,
/// through the library, as a broken connection would.
async fn keep_one_part(root: &std::sync::Arc<ObjectRoot>, name: &str, seed: u8) {
    let path = sockit_proto::path::RelPath::parse(name).unwrap();
    let put = sockit_proto::files::Put {
        path: path.clone(),
        filesize: 20 << 20,
        offset: 0,
        md5: None,
        trailer: true,
        prefix_xxh3: None,
    };
    let mut upload = root.begin_upload(&put, root.claim(&path).unwrap(), true).await.unwrap();
    upload.write(&data(seed, (16 << 20) + 1)).await.unwrap();
    upload.keep().await;
}

fn kept_names(rt: &tokio::runtime::Runtime, root: &ObjectRoot) -> Vec<String> {
    let mut names: Vec<String> = rt
        .block_on(root.partials())
        .unwrap()
        .into_iter()
        .map(|p| p.path)
        .collect();
    names.sort();
    names
}

/// Makes the manifest of the kept upload of `name` look last written
/// `minutes` ago, as if its upload had stopped then.
fn age_manifest(s3: &S3, name: &str, minutes: u64) {
    let manifest = sockit_proto::files::object::manifest_name(&sockit_proto::path::RelPath::parse(name).unwrap());
    let file = s3
        .dir
        .join("bucket")
        .join(PREFIX)
        .join(".sockit/uploads")
        .join(manifest);
    let then = std::time::SystemTime::now() - Duration::from_secs(minutes * 60);
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .set_modified(then)
        .unwrap();
}

#[test]
fn kept_uploads_past_the_count_or_bytes_bound_go_oldest_first() {
    let sandbox = Sandbox::new();
    let Some(s3) = S3::start(&sandbox) else { return };
    let rt = tokio::runtime::Runtime::new().unwrap();
    // At most two: keeping a third drops the oldest at once. The server
    // kept them itself, so it knows none still runs.
    let two = bounded(&rt, &s3, |l| l.max_count = 2);
    for (i, name) in ["a.bin", "b.bin", "c.bin"].iter().enumerate() {
        rt.block_on(keep_one_part(&two, name, i as u8));
    }
    assert_eq!(kept_names(&rt, &two), ["b.bin", "c.bin"]);
    // To another server, one written in the last minutes may be running
    // where it was written: counted, never dropped for the bounds.
    age_manifest(&s3, "b.bin", 50);
    let none = bounded(&rt, &s3, |l| l.max_count = 0);
    assert_eq!(rt.block_on(none.sweep(true)), 1, "only b, which stopped long ago");
    assert_eq!(kept_names(&rt, &none), ["c.bin"]);
    // At most 20 MiB of parts: the sweep keeps only the newest 16 MiB.
    rt.block_on(keep_one_part(&two, "d.bin", 4));
    age_manifest(&s3, "c.bin", 40);
    age_manifest(&s3, "d.bin", 30);
    let bytes = bounded(&rt, &s3, |l| l.max_bytes = 20 << 20);
    assert_eq!(
        rt.block_on(bytes.sweep(false)),
        0,
        "bytes are counted by the full sweep"
    );
    assert_eq!(rt.block_on(bytes.sweep(true)), 1);
    assert_eq!(kept_names(&rt, &bytes), ["d.bin"]);
    // An upload running here is neither counted nor dropped.
    let path = sockit_proto::path::RelPath::parse("d.bin").unwrap();
    let claim = none.claim(&path).unwrap();
    assert_eq!(rt.block_on(none.sweep(true)), 0);
    drop(claim);
    assert_eq!(rt.block_on(none.sweep(true)), 1);
    assert_eq!(kept_names(&rt, &none), Vec::<String>::new());
}

#[test]
fn a_resume_that_asks_for_md5_is_refused_before_the_kept_upload_is_touched() {
    let sandbox = Sandbox::new();
    let Some(s3) = S3::start(&sandbox) else { return };
    let server = serve(&sandbox, &s3, &[]);
    let file = data(5, (20 << 20) + 1);
    interrupted_put(&server.addr, "m.bin", &file, (16 << 20) + 3);
    kept_upload(&sandbox, &server, "\"size\":16777216");
    let mut conn = TcpStream::connect(&server.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let header = serde_json::json!({"cmd": "put", "filename": "m.bin", "filesize": file.len(),
        "offset": 16 << 20, "verify": "xxh3", "md5": "00000000000000000000000000000000"});
    let raw = serde_json::to_vec(&header).unwrap();
    conn.write_all(&(raw.len() as u32).to_le_bytes()).unwrap();
    conn.write_all(&raw).unwrap();
    let mut len = [0; 4];
    conn.read_exact(&mut len).unwrap();
    let mut reply = vec![0; u32::from_le_bytes(len) as usize];
    conn.read_exact(&mut reply).unwrap();
    let reply = String::from_utf8(reply).unwrap();
    assert!(reply.contains("bad_request") && reply.contains("md5"), "{reply}");
    drop(conn);
    assert!(ok(client(&sandbox, &server, &["ls", "--partials", "--json"])).contains("\"size\":16777216"));
}

#[test]
fn hostile_names_round_trip_exactly_and_stay_under_the_prefix() {
    let sandbox = Sandbox::new();
    let Some(s3) = S3::start(&sandbox) else { return };
    let server = serve(&sandbox, &s3, &[]);
    let names = [
        "100%.txt",
        "%2E%2E",
        "a?b#c",
        "x\\y",
        "quote\"s",
        "sp ace",
        "~tilde",
        "{braces}[and]<angles>|pipe^`",
        "日本語.txt",
        "emoji-🦀",
        "..hidden..",
        "dir/..x/y",
    ];
    for (i, name) in names.iter().enumerate() {
        let local = sandbox.path(&format!("n{i}"));
        let bytes = data(i as u8, 100 + i);
        write(&local, &bytes);
        let out = client(&sandbox, &server, &["put", local.to_str().unwrap(), name]);
        if name.contains('\\') {
            // The path grammar refuses a backslash on every root.
            refused(out);
            continue;
        }
        ok(out);
        let back = sandbox.path(&format!("b{i}"));
        ok(client(&sandbox, &server, &["get", name, "-o", back.to_str().unwrap()]));
        assert_eq!(std::fs::read(&back).unwrap(), bytes, "{name}");
    }
    let listing = ok(client(&sandbox, &server, &["ls", "--json", "-r"]));
    let listed = listed(&listing);
    for name in names.iter().filter(|n| !n.contains('\\')) {
        assert!(listed.iter().any(|l| l == name), "{name} missing from {listed:?}");
    }
    // A longer name uploaded in parts. (s3s-fs names its own files after
    // a key's base64, so it takes no key much longer than this; that a
    // manifest's key stays short for any path is a unit test in
    // sockit-proto.)
    let long = format!("long/{}/{}", "n".repeat(45), "m".repeat(45));
    let local = sandbox.path("long.bin");
    write(&local, &data(77, (17 << 20) + 3));
    ok(client(&sandbox, &server, &["put", local.to_str().unwrap(), &long]));
    assert_eq!(sha256(&stored(&s3, &long)), sha256(&local));
    // Names that would leave the root, or reach the private prefix or a
    // folder marker, are refused before the store is asked.
    for name in [
        "../escape",
        "/abs",
        ".sockit/uploads/x",
        "d/.sockit-folder",
        "a/../../b",
    ] {
        let local = sandbox.path("evil");
        write(&local, b"evil");
        let err = refused(client(&sandbox, &server, &["put", local.to_str().unwrap(), name]));
        assert!(err.contains("bad_path") || err.contains("path"), "{name}: {err}");
    }
    // Every byte the store holds is under the bucket's prefix.
    let mut stack = vec![s3.dir.join("bucket")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                assert!(
                    path.starts_with(s3.dir.join("bucket").join(PREFIX)),
                    "{}",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn a_wrong_key_or_a_bad_root_fails_at_start_with_a_clear_error() {
    let sandbox = Sandbox::new();
    let Some(s3) = S3::start(&sandbox) else { return };
    let run = |env: Vec<(&'static str, String)>, root: &str| {
        let mut cmd = sandbox.cmd();
        cmd.envs(env)
            .args(["serve", "--listen", "127.0.0.1:0", "--insecure-no-auth", "--root", root])
            .stdin(std::process::Stdio::null());
        let mut child = cmd
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut err = String::new();
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        (child.wait().unwrap(), err)
    };
    let mut wrong = s3.env();
    wrong[1].1 = "not-the-secret".into();
    let (status, err) = run(wrong, "s3://bucket/x");
    assert!(!status.success() && err.contains("object store"), "{err}");
    let (status, err) = run(s3.env(), "s3://Not_A_Bucket");
    assert!(!status.success() && err.contains("bucket name"), "{err}");
    // The download service (the course's one-shot sender) serves a local
    // folder only: a config putting it on a store is refused, saying so.
    let config = sandbox.path("download.toml");
    write(
        &config,
        b"[[service]]\nkind = \"download\"\nlisten = \"127.0.0.1:0\"\ninsecure_no_auth = true\nroot = \"s3://bucket/x\"\n",
    );
    let out = sandbox
        .cmd()
        .envs(s3.env())
        .args(["serve", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("serves a local folder"), "{err}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// A JSON POST to the page's API.
fn post(web: &Web, path: &str, body: &str) -> Reply {
    web.authed(&["-H", "Content-Type: application/json", "-d", body], path)
}

/// The names `/api/ls` lists in a folder.
fn page_names(web: &Web, folder: &str) -> Vec<String> {
    let r = web.authed(&[], &format!("/api/ls?path={folder}"));
    assert_eq!(r.status, 200, "{}", r.text());
    let mut names: Vec<String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn the_page_lists_downloads_uploads_renames_and_zips_on_the_store() {
    if !peer_available("curl", &["--version"]) {
        return;
    }
    let sandbox = Sandbox::new();
    let Some(s3) = S3::start(&sandbox) else { return };
    let (_server, web) = serve_with_page(&sandbox, &s3);

    // curl -T: three parts, stored whole, visible only once complete.
    let big = data(7, (40 << 20) + 5);
    let local = sandbox.path("big.bin");
    write(&local, &big);
    let r = web.authed(&["-T", local.to_str().unwrap()], "/files/in/big.bin");
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["size"], big.len());
    assert_eq!(std::fs::read(stored(&s3, "in/big.bin")).unwrap(), big);
    // A body shorter than announced stores nothing.
    let r = web.authed(
        &[
            "-X",
            "PUT",
            "-H",
            "Content-Length: 10",
            "--data-binary",
            "short",
            "--max-time",
            "5",
        ],
        "/files/in/short.bin",
    );
    assert_ne!(r.status, 201, "{}", r.text());
    assert!(!stored(&s3, "in/short.bin").exists());

    // Whole, a range (from the store's ranged reads), and HEAD.
    let r = web.authed(&[], "/files/in/big.bin");
    assert_eq!(r.status, 200);
    assert_eq!(sha256_hex(&r.body), sha256_hex(&big));
    let etag = r.header("etag").unwrap().to_owned();
    let from = (16 << 20) - 10;
    let range = format!("Range: bytes={from}-{}", from + 99);
    let r = web.authed(&["-H", &range], "/files/in/big.bin");
    assert_eq!(r.status, 206, "{}", r.text());
    assert_eq!(r.body, big[from..from + 100]);
    assert_eq!(
        r.header("content-range").unwrap(),
        format!("bytes {from}-{}/{}", from + 99, big.len())
    );
    // If-Range with a tag of another version gets the whole file.
    let r = web.authed(&["-H", &range, "-H", "If-Range: \"other\"", "-I"], "/files/in/big.bin");
    assert_eq!(r.status, 200);
    let r = web.authed(
        &["-H", &range, "-H", &format!("If-Range: {etag}"), "-I"],
        "/files/in/big.bin",
    );
    assert_eq!(r.status, 206);
    assert_eq!(web.authed(&[], "/files/in").status, 409, "a folder is not downloaded");
    assert_eq!(web.authed(&[], "/files/nothing.bin").status, 404);

    // Folders: mkdir, listing, rename of a file and of a folder.
    assert_eq!(post(&web, "/api/mkdir", r#"{"path":"in/sub/deep"}"#).status, 204);
    write(&sandbox.path("small.txt"), b"small");
    let small = sandbox.path("small.txt");
    let r = web.authed(&["-T", small.to_str().unwrap()], "/files/in/sub/small.txt");
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(page_names(&web, "in"), ["big.bin", "sub"]);
    assert_eq!(page_names(&web, "in/sub"), ["deep", "small.txt"]);
    let r = post(&web, "/api/rename", r#"{"from":"in/big.bin","to":"in/sub"}"#);
    assert_eq!(r.status, 409, "never over an existing name: {}", r.text());
    let r = post(&web, "/api/rename", r#"{"from":"in","to":"in/sub/inside"}"#);
    assert_eq!(r.status, 400, "{}", r.text());
    let r = post(&web, "/api/rename", r#"{"from":"in/sub","to":"in/moved"}"#);
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(page_names(&web, "in"), ["big.bin", "moved"]);
    assert_eq!(page_names(&web, "in/moved"), ["deep", "small.txt"]);
    assert_eq!(std::fs::read(stored(&s3, "in/moved/small.txt")).unwrap(), b"small");
    assert!(!stored(&s3, "in/sub/small.txt").exists());
    let r = post(
        &web,
        "/api/rename",
        r#"{"from":"in/moved/small.txt","to":"in/renamed.txt"}"#,
    );
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(web.authed(&[], "/files/in/renamed.txt").body, b"small");

    // The folder as one .zip, read back by Python's zipfile.
    let r = web.authed(&[], "/api/zip?path=in");
    assert_eq!(r.status, 200, "{}", r.text());
    std::fs::write(sandbox.path("in.zip"), &r.body).unwrap();
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sys, zipfile, hashlib\nz = zipfile.ZipFile(sys.argv[1])\nfor i in sorted(z.infolist(), key=lambda i: i.filename): print(i.filename, hashlib.sha256(z.read(i)).hexdigest())",
        )
        .arg(sandbox.path("in.zip"))
        .output()
        .unwrap();
    let listing = String::from_utf8(out.stdout).unwrap();
    let want = format!(
        "in/ {empty}\nin/big.bin {}\nin/moved/ {empty}\nin/moved/deep/ {empty}\nin/renamed.txt {}\n",
        sha256_hex(&big),
        sha256_hex(b"small"),
        empty = sha256_hex(b""),
    );
    assert_eq!(listing, want, "{}", String::from_utf8_lossy(&out.stderr));

    // rm: a non-empty folder only with recursive.
    assert_eq!(post(&web, "/api/rm", r#"{"path":"in"}"#).status, 409);
    assert_eq!(post(&web, "/api/rm", r#"{"path":"in","recursive":true}"#).status, 204);
    assert_eq!(page_names(&web, ""), Vec::<String>::new());
}

/// A chunk sent as the page sends it.
fn page_chunk(web: &Web, sandbox: &Sandbox, path: &str, offset: usize, bytes: &[u8]) -> Reply {
    let file = sandbox.path("chunk.bin");
    std::fs::write(&file, bytes).unwrap();
    let data = format!("@{}", file.display());
    let sha = format!("X-Sockit-Sha256: {}", sha256_hex(bytes));
    web.authed(
        &["-X", "PUT", "--data-binary", &data, "-H", &sha],
        &format!("/api/upload/chunk?path={path}&offset={offset}"),
    )
}

fn page_open(web: &Web, path: &str, size: usize, restart: bool) -> serde_json::Value {
    let r = post(
        web,
        "/api/upload/open",
        &format!(r#"{{"path":"{path}","size":{size},"restart":{restart}}}"#),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

#[test]
fn a_page_upload_left_on_one_server_resumes_through_another() {
    if !peer_available("curl", &["--version"]) {
        return;
    }
    let sandbox = Sandbox::new();
    let Some(s3) = S3::start(&sandbox) else { return };
    const MIB: usize = 1 << 20;
    let file = data(9, 40 * MIB + 777);
    let chunk = |i: usize| &file[i * MIB..((i + 1) * MIB).min(file.len())];
    let name = "up/page.bin";

    let (a, web_a) = serve_with_page(&sandbox, &s3);
    assert_eq!(page_open(&web_a, name, file.len(), false)["offset"], 0);
    // A damaged chunk is refused and nothing of it is taken.
    let mut damaged = chunk(0).to_vec();
    damaged[5] ^= 1;
    let sha = format!("X-Sockit-Sha256: {}", sha256_hex(chunk(0)));
    std::fs::write(sandbox.path("bad.bin"), &damaged).unwrap();
    let bad = format!("@{}", sandbox.path("bad.bin").display());
    let r = web_a.authed(
        &["-X", "PUT", "--data-binary", &bad, "-H", &sha],
        &format!("/api/upload/chunk?path={name}&offset=0"),
    );
    assert_eq!(r.status, 422, "{}", r.text());
    // 1 MiB chunks are gathered into 16 MiB parts: 20 sent, one part full.
    for i in 0..20 {
        let r = page_chunk(&web_a, &sandbox, name, i * MIB, chunk(i));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["offset"], (i + 1) * MIB);
    }
    assert!(!stored(&s3, name).exists(), "nothing visible before the end");
    // The server stops: what the store acknowledged is kept, in the store.
    assert!(a.signal("TERM").success());

    let (_b, web_b) = serve_with_page(&sandbox, &s3);
    let state = page_open(&web_b, name, file.len(), false);
    assert_eq!(state["offset"], 16 * MIB, "{state}");
    assert_eq!(state["tail_len"], MIB);
    assert_eq!(state["tail_sha256"], sha256_hex(chunk(15)), "the kept part's last MiB");
    let r = page_chunk(&web_b, &sandbox, name, 0, chunk(0));
    assert_eq!(r.status, 409, "{}", r.text());
    let mut last = None;
    for i in 16..41 {
        let r = page_chunk(&web_b, &sandbox, name, i * MIB, chunk(i));
        assert_eq!(r.status, 200, "{}", r.text());
        last = Some(r.json());
    }
    let last = last.unwrap();
    assert_eq!(last["done"], true, "{last}");
    assert_eq!(sha256(&stored(&s3, name)), Sha256::digest(&file).to_vec());
    let r = web_b.authed(&[], &format!("/files/{name}"));
    assert_eq!(sha256_hex(&r.body), sha256_hex(&file));
    assert_eq!(kept_uploads(&s3), 0, "the manifest goes with the upload");

    // A restart drops what was kept; cancel drops an open upload.
    let small = data(3, 20 * MIB);
    assert_eq!(page_open(&web_b, "up/again.bin", small.len(), false)["offset"], 0);
    for i in 0..17 {
        let part = &small[i * MIB..(i + 1) * MIB];
        assert_eq!(page_chunk(&web_b, &sandbox, "up/again.bin", i * MIB, part).status, 200);
    }
    let r = post(&web_b, "/api/upload/cancel", r#"{"path":"up/again.bin"}"#);
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(page_open(&web_b, "up/again.bin", small.len(), false)["offset"], 0);
}

/// Manifests of kept uploads in the store.
fn kept_uploads(s3: &S3) -> usize {
    std::fs::read_dir(s3.dir.join("bucket").join(PREFIX).join(".sockit/uploads"))
        .map(|d| d.count())
        .unwrap_or(0)
}
