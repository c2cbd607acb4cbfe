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

use support::s3::S3;
use support::{Sandbox, Server, write};

const PREFIX: &str = "team/drop";

/// A `sockit serve` on the store's bucket, without the page.
fn serve(sandbox: &Sandbox, s3: &S3, extra: &[&str]) -> Server {
    let mut cmd = sandbox.cmd();
    cmd.envs(s3.env())
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--insecure-no-auth"])
        .args(["--root", &format!("s3://bucket/{PREFIX}")])
        .args(extra);
    Server::start_cmd(&mut cmd)
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
    let config = sockit::files::object::StoreConfig {
        endpoint: Some(s3.endpoint.clone()),
        region: Some("us-east-1".into()),
        access_key_id: Some(support::s3::ACCESS_KEY.into()),
        secret_access_key: Some(support::s3::SECRET_KEY.into()),
        allow_http: Some(true),
    };
    let url = sockit_proto::files::object::StoreUrl::parse(&format!("s3://bucket/{PREFIX}")).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let root = rt
        .block_on(async { sockit::files::object::ObjectRoot::open(&url, &config) })
        .unwrap();
    assert_eq!(rt.block_on(root.sweep(Duration::from_secs(3600))), 0);
    assert!(ok(client(&sandbox, &server, &["ls", "--partials", "--json"])).contains("old.bin"));
    assert_eq!(rt.block_on(root.sweep(Duration::ZERO)), 1);
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
    // The page does not serve an object store yet: a config asking for it
    // is refused, naming the way out.
    let config = sandbox.path("web.toml");
    write(
        &config,
        b"[[service]]\nkind = \"web\"\nlisten = \"127.0.0.1:0\"\ninsecure_no_auth = true\nroot = \"s3://bucket/x\"\n",
    );
    let out = sandbox
        .cmd()
        .envs(s3.env())
        .args(["serve", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--no-web"), "{err}");
}
