//! The web listener's HTTP API, from curl: login and sessions, CSRF and
//! Origin rules, traversal, files moving between curl and the framed
//! clients, resumable uploads across a restart, the access modes, and a
//! token that never reaches the log.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use sha2::{Digest as _, Sha256};

use support::web::{Reply, Web};
use support::{Sandbox, Server, peer_available, write};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn code(reply: &Reply) -> String {
    reply.json()["code"].as_str().unwrap_or_default().to_owned()
}

fn curl_ok() -> bool {
    peer_available("curl", &["--version"])
}

#[test]
fn the_token_logs_in_and_nothing_else_does() {
    if !curl_ok() {
        return;
    }
    let sb = Sandbox::new();
    let srv = Server::start(&sb, &[]);
    let web = Web::of(&srv);
    assert_eq!(web.token.len(), 32, "{:?}", srv.web_url);
    let jar = sb.path("jar");
    let jar = jar.to_str().unwrap();

    // No session: 401 for the API and files; the page itself loads and
    // learns it must show the login.
    let r = web.curl(&[], "/api/ls");
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(code(&r), "permission_denied");
    assert_eq!(web.curl(&[], "/files/x").status, 401);
    assert_eq!(web.curl(&[], "/").status, 200);
    assert_eq!(web.curl(&[], "/api/session").json()["logged_in"], false);

    // A wrong token is refused; the right one gets a session cookie.
    let login = |token: &str| {
        let body = format!("{{\"token\":\"{token}\"}}");
        web.curl(
            &["-c", jar, "-H", "Content-Type: application/json", "-d", &body],
            "/api/login",
        )
    };
    assert_eq!(login("00112233445566778899aabbccddeeff").status, 401);
    let r = login(&web.token);
    assert_eq!(r.status, 200, "{}", r.text());
    let cookie = r.header("set-cookie").unwrap();
    for attr in ["sockit_session=", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert_eq!(web.curl(&["-b", jar], "/api/session").json()["logged_in"], true);
    assert_eq!(web.curl(&["-b", jar], "/api/ls").status, 200);

    // CSRF: with the cookie alone a change is refused; X-Sockit (which no
    // other site's page can add) or a Bearer token lets it through.
    let mkdir = |extra: &[&str], name: &str| {
        let body = format!("{{\"path\":\"{name}\"}}");
        let mut args = vec!["-H", "Content-Type: application/json", "-d", body.as_str()];
        args.extend_from_slice(extra);
        web.curl(&args, "/api/mkdir")
    };
    let r = mkdir(&["-b", jar], "a");
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("X-Sockit"), "{}", r.text());
    assert_eq!(mkdir(&["-b", jar, "-H", "X-Sockit: 1"], "a").status, 204);
    let bearer = web.bearer();
    assert_eq!(mkdir(&["-H", &bearer], "b").status, 204);
    assert!(sb.path("work/sockit-data/a").is_dir() && sb.path("work/sockit-data/b").is_dir());

    // Another site's page: refused, a WebSocket upgrade included.
    let r = web.curl(&["-b", jar, "-H", "Origin: http://evil.example"], "/api/ls");
    assert_eq!(r.status, 403, "{}", r.text());
    let upgrade = [
        "-b",
        jar,
        "-H",
        "Origin: http://evil.example",
        "-H",
        "Connection: Upgrade",
        "-H",
        "Upgrade: websocket",
        "-H",
        "Sec-WebSocket-Version: 13",
        "-H",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    ];
    assert_eq!(web.curl(&upgrade, "/api/ls").status, 403);
    let own = format!("Origin: {}", web.base);
    assert_eq!(web.curl(&["-b", jar, "-H", &own], "/api/ls").status, 200);

    // Logging out forgets the cookie.
    assert_eq!(
        web.curl(
            &["-b", jar, "-c", jar, "-X", "POST", "-H", "X-Sockit: 1"],
            "/api/logout"
        )
        .status,
        204
    );
    assert_eq!(web.curl(&["-b", jar], "/api/ls").status, 401);

    // The token and a session outlive a restart: they come from the key.
    let r = login(&web.token);
    assert_eq!(r.status, 200);
    drop(srv);
    let again = Server::start(&sb, &[]);
    let web2 = Web::of(&again);
    assert_eq!(web2.token, web.token);
    assert_eq!(web2.curl(&["-b", jar], "/api/ls").status, 200);
    // sockit web-url prints the same token.
    let out = sb.cmd().args(["web-url"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&web.token));
}

#[test]
fn files_move_between_curl_and_the_framed_clients() {
    if !curl_ok() {
        return;
    }
    let sb = Sandbox::new();
    let srv = Server::start(&sb, &[]);
    let web = Web::of(&srv);
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    write(&sb.path("work/big.bin"), &big);

    // sockit put, then curl downloads it whole, in part, and resumed.
    sb.assert_cmd()
        .args(["put", &srv.addr, "big.bin", "in/big.bin"])
        .assert()
        .success();
    let r = web.authed(&[], "/files/in/big.bin");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, big);
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert_eq!(r.header("content-security-policy"), Some("sandbox"));
    assert!(r.header("content-disposition").unwrap().starts_with("attachment"));
    let r = web.authed(&["-H", "Range: bytes=1000-1999"], "/files/in/big.bin");
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 1000-1999/3000000"));
    assert_eq!(r.body, &big[1000..2000]);
    let r = web.authed(&["-H", "Range: bytes=3000000-"], "/files/in/big.bin");
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */3000000"));
    // curl -C - continues a download from what it has.
    let partial = sb.path("work/resumed.bin");
    std::fs::write(&partial, &big[..1_234_567]).unwrap();
    let bearer = web.bearer();
    let status = std::process::Command::new("curl")
        .args(["-sS", "-f", "-C", "-", "-H", &bearer, "-o"])
        .arg(&partial)
        .arg(web.url("/files/in/big.bin"))
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(std::fs::read(&partial).unwrap(), big);
    // HEAD: the size, no body.
    let r = web.authed(&["-I"], "/files/in/big.bin");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("3000000"));

    // curl -T uploads; sockit get fetches the same bytes.
    let r = web.authed(&["-T", sb.path("work/big.bin").to_str().unwrap()], "/files/up/copy.bin");
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["size"], 3_000_000);
    sb.assert_cmd()
        .args(["get", &srv.addr, "up/copy.bin", "-o", "fetched.bin"])
        .assert()
        .success();
    assert_eq!(std::fs::read(sb.path("work/fetched.bin")).unwrap(), big);

    // A folder as one streamed .zip that Python's zipfile reads back,
    // big file and planted pipe (left out) included.
    write(&sb.path("work/sockit-data/in/sub/small.txt"), b"small");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(sb.path("work/sockit-data/in/sub/pipe"))
            .status()
            .unwrap()
            .success()
    );
    let r = web.authed(&[], "/api/zip?path=in");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/zip"));
    std::fs::write(sb.path("in.zip"), &r.body).unwrap();
    let listing = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile, hashlib\nz = zipfile.ZipFile(sys.argv[1])\nfor i in z.infolist(): print(i.filename, hashlib.sha256(z.read(i)).hexdigest())",
        ])
        .arg(sb.path("in.zip"))
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
    assert!(listing.contains(&format!("in/big.bin {}", sha256(&big))), "{listing}");
    assert!(
        listing.contains(&format!("in/sub/small.txt {}", sha256(b"small"))),
        "{listing}"
    );
    assert!(!listing.contains("pipe"), "{listing}");
    assert_eq!(web.authed(&[], "/api/zip?path=in/big.bin").status, 409);
    std::fs::remove_file(sb.path("work/sockit-data/in/sub/pipe")).unwrap();

    // Listing, rename (never over a name), remove.
    let r = web.authed(&[], "/api/ls?path=up");
    assert_eq!(r.json()[0]["path"], "copy.bin");
    let json = ["-H", "Content-Type: application/json", "-d"];
    let rename = |from: &str, to: &str| {
        let body = format!("{{\"from\":\"{from}\",\"to\":\"{to}\"}}");
        let mut args = json.to_vec();
        args.push(&body);
        web.authed(&args, "/api/rename")
    };
    assert_eq!(rename("up/copy.bin", "up/renamed.bin").status, 204);
    assert_eq!(
        rename("up/renamed.bin", "in/big.bin").status,
        409,
        "rename never replaces"
    );
    let r = web.authed(&["-X", "DELETE"], "/files/up/renamed.bin");
    assert_eq!(r.status, 204);
    let r = web.authed(&["-X", "DELETE"], "/files/in");
    assert_eq!(r.status, 409, "a folder with files needs recursive: {}", r.text());
    assert_eq!(web.authed(&["-X", "DELETE"], "/files/in?recursive=true").status, 204);
    assert!(!sb.path("work/sockit-data/in").exists());

    // A page in the served folder is downloaded, never run as ours.
    write(&sb.path("work/sockit-data/page.html"), b"<script>alert(1)</script>");
    let r = web.authed(&[], "/files/page.html?inline=true");
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert!(r.header("content-disposition").unwrap().starts_with("attachment"));
    // A named pipe planted in the root is refused at once, never opened
    // for reading (that would wait for a writer forever).
    let fifo = sb.path("work/sockit-data/pipe");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let r = web.authed(&[], "/files/pipe");
    assert_eq!(r.status, 403, "{}", r.text());
    // An upload without a length is refused.
    let r = web.authed(&["-T", "-", "-H", "Transfer-Encoding: chunked"], "/files/nolen.bin");
    assert_eq!(r.status, 411, "{}", r.text());
}

#[test]
fn every_path_the_api_takes_refuses_traversal() {
    if !curl_ok() {
        return;
    }
    let sb = Sandbox::new();
    let srv = Server::start(&sb, &[]);
    let web = Web::of(&srv);
    write(&sb.path("work/secret.txt"), b"outside the root");
    write(&sb.path("work/sockit-data/ok.txt"), b"inside");
    let attacks = [
        "..",
        "../secret.txt",
        "a/../../secret.txt",
        "%2e%2e/secret.txt",
        "%2E%2E%2Fsecret.txt",
        "a%5c..%5c..%5csecret.txt",
        "..%5csecret.txt",
        ".sockit/partial",
        "%2esockit/partial",
        "/etc/passwd",
        "%2fetc%2fpasswd",
    ];
    for name in attacks {
        for (args, path) in [
            (vec![], format!("/files/{name}")),
            (vec![], format!("/api/ls?path={name}")),
            (vec!["-X", "DELETE"], format!("/files/{name}")),
            (vec!["-T", "/dev/null"], format!("/files/{name}")),
        ] {
            let r = web.authed(&args, &path);
            assert!(
                matches!(r.status, 400 | 404),
                "{args:?} {path}: {} {}",
                r.status,
                r.text()
            );
            assert!(!r.text().contains("outside the root"), "{path}");
        }
        let decoded = name
            .replace("%2e", ".")
            .replace("%2E", ".")
            .replace("%2F", "/")
            .replace("%2f", "/");
        let decoded = decoded.replace("%5c", "\\\\");
        for (endpoint, body) in [
            ("/api/mkdir", format!("{{\"path\":\"{decoded}\"}}")),
            ("/api/rm", format!("{{\"path\":\"{decoded}\"}}")),
            ("/api/rename", format!("{{\"from\":\"ok.txt\",\"to\":\"{decoded}\"}}")),
            ("/api/rename", format!("{{\"from\":\"{decoded}\",\"to\":\"x\"}}")),
            ("/api/upload/open", format!("{{\"path\":\"{decoded}\",\"size\":1}}")),
        ] {
            let r = web.authed(&["-H", "Content-Type: application/json", "-d", &body], endpoint);
            assert_eq!(r.status, 400, "{endpoint} {body}: {}", r.text());
            assert_eq!(code(&r), "bad_path", "{endpoint} {body}");
        }
    }
    assert_eq!(std::fs::read(sb.path("work/secret.txt")).unwrap(), b"outside the root");
    assert_eq!(std::fs::read(sb.path("work/sockit-data/ok.txt")).unwrap(), b"inside");
}

/// Opens an upload as the page does and returns the server's state.
fn open_upload(web: &Web, path: &str, size: usize, restart: bool) -> serde_json::Value {
    let body = format!("{{\"path\":\"{path}\",\"size\":{size},\"restart\":{restart}}}");
    let r = web.authed(
        &["-H", "Content-Type: application/json", "-d", &body],
        "/api/upload/open",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn send_chunk(web: &Web, sb: &Sandbox, path: &str, offset: usize, bytes: &[u8], sha: &str) -> Reply {
    let file = sb.path("chunk.bin");
    std::fs::write(&file, bytes).unwrap();
    let data = format!("@{}", file.display());
    let sha = format!("X-Sockit-Sha256: {sha}");
    web.authed(
        &["-X", "PUT", "--data-binary", &data, "-H", &sha],
        &format!("/api/upload/chunk?path={path}&offset={offset}"),
    )
}

#[test]
fn resumable_uploads_check_every_chunk_and_survive_a_restart() {
    if !curl_ok() {
        return;
    }
    let sb = Sandbox::new();
    let srv = Server::start(&sb, &[]);
    let web = Web::of(&srv);
    const MIB: usize = 1 << 20;
    let file: Vec<u8> = (0..3 * MIB + 12_345).map(|i| (i * 13 % 253) as u8).collect();
    let chunk = |i: usize| &file[i * MIB..((i + 1) * MIB).min(file.len())];

    let state = open_upload(&web, "dir/up.bin", file.len(), false);
    assert_eq!(state["offset"], 0);
    // A damaged chunk is refused and nothing of it is kept.
    let r = send_chunk(&web, &sb, "dir/up.bin", 0, chunk(0), &sha256(b"something else"));
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(code(&r), "checksum_mismatch");
    assert_eq!(open_upload(&web, "dir/up.bin", file.len(), false)["offset"], 0);
    for i in 0..2 {
        let r = send_chunk(&web, &sb, "dir/up.bin", i * MIB, chunk(i), &sha256(chunk(i)));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["offset"], (i + 1) * MIB);
        assert_eq!(r.json()["done"], false);
    }
    // A framed put of the same name meanwhile is told the upload runs.
    write(&sb.path("work/other.bin"), b"other");
    sb.assert_cmd()
        .args(["put", &srv.addr, "other.bin", "dir/up.bin"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("already running"));
    assert!(
        !sb.path("work/sockit-data/dir/up.bin").exists(),
        "nothing visible before the end"
    );

    // The server stops; the upload is kept and continues after a restart
    // from the server's offset, proven by the tail's hash.
    assert!(srv.signal("TERM").success());
    let srv = Server::start(&sb, &[]);
    let web = Web::of(&srv);
    let state = open_upload(&web, "dir/up.bin", file.len(), false);
    assert_eq!(state["offset"], 2 * MIB, "{state}");
    assert_eq!(state["tail_len"], MIB);
    assert_eq!(state["tail_sha256"], sha256(chunk(1)));
    // The wrong offset is refused with what the server holds.
    let r = send_chunk(&web, &sb, "dir/up.bin", 0, chunk(0), &sha256(chunk(0)));
    assert_eq!(r.status, 409, "{}", r.text());
    let r = send_chunk(&web, &sb, "dir/up.bin", 2 * MIB, chunk(2), &sha256(chunk(2)));
    assert_eq!(r.json()["done"], false);
    let r = send_chunk(&web, &sb, "dir/up.bin", 3 * MIB, chunk(3), &sha256(chunk(3)));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["done"], true);
    assert_eq!(r.json()["xxh3"].as_str().unwrap().len(), 32);
    assert_eq!(std::fs::read(sb.path("work/sockit-data/dir/up.bin")).unwrap(), file);

    // Restart discards what the server held (another file of that name).
    let state = open_upload(&web, "dir/second.bin", 10, false);
    assert_eq!(state["offset"], 0);
    let r = send_chunk(&web, &sb, "dir/second.bin", 0, &[1; 5], &sha256(&[1; 5]));
    assert_eq!(r.json()["offset"], 5);
    let state = open_upload(&web, "dir/second.bin", 10, true);
    assert_eq!(state["offset"], 0);
    // Cancel drops the upload and its partial.
    let r = web.authed(
        &[
            "-H",
            "Content-Type: application/json",
            "-d",
            "{\"path\":\"dir/second.bin\"}",
        ],
        "/api/upload/cancel",
    );
    assert_eq!(r.status, 204);
    let r = send_chunk(&web, &sb, "dir/second.bin", 0, &[1; 5], &sha256(&[1; 5]));
    assert_eq!(r.status, 409, "{}", r.text());
    // A chunk over 16 MiB is refused before it is held.
    assert_eq!(open_upload(&web, "huge.bin", 40 << 20, false)["offset"], 0);
    let r = send_chunk(&web, &sb, "huge.bin", 0, &vec![0u8; (16 << 20) + 1], "00");
    assert_eq!(r.status, 413, "{}", r.text());
    // An empty file is one empty chunk.
    assert_eq!(open_upload(&web, "empty.txt", 0, false)["offset"], 0);
    let r = send_chunk(&web, &sb, "empty.txt", 0, &[], &sha256(&[]));
    assert_eq!(r.json()["done"], true, "{}", r.text());
    assert_eq!(std::fs::read(sb.path("work/sockit-data/empty.txt")).unwrap(), b"");
}

#[test]
fn read_only_and_upload_only_hold_for_the_web_and_the_framed_service() {
    if !curl_ok() {
        return;
    }
    let sb = Sandbox::new();
    write(&sb.path("work/sockit-data/shared.txt"), b"shared");
    write(&sb.path("work/new.txt"), b"new");
    let json = |body: &str| {
        vec![
            "-H".to_owned(),
            "Content-Type: application/json".to_owned(),
            "-d".to_owned(),
            body.to_owned(),
        ]
    };

    let srv = Server::start(&sb, &["--read-only"]);
    assert!(srv.banner.contains("read-only"), "{}", srv.banner);
    let web = Web::of(&srv);
    assert_eq!(web.authed(&[], "/files/shared.txt").text(), "shared");
    assert_eq!(web.authed(&[], "/api/ls").status, 200);
    let new = sb.path("work/new.txt");
    let refused = [
        web.authed(&["-T", new.to_str().unwrap()], "/files/new.txt"),
        web.authed(&["-X", "DELETE"], "/files/shared.txt"),
        web.authed(
            &json("{\"path\":\"d\"}").iter().map(String::as_str).collect::<Vec<_>>(),
            "/api/mkdir",
        ),
        web.authed(
            &json("{\"path\":\"new.txt\",\"size\":3}")
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            "/api/upload/open",
        ),
    ];
    for r in refused {
        assert_eq!(r.status, 403, "{}", r.text());
        assert!(r.text().contains("read-only"), "{}", r.text());
    }
    sb.assert_cmd()
        .args(["put", &srv.addr, "new.txt"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("read-only"));
    sb.assert_cmd().args(["rm", &srv.addr, "shared.txt"]).assert().code(1);
    sb.assert_cmd()
        .args(["get", &srv.addr, "shared.txt", "-o", "got.txt"])
        .assert()
        .success();
    drop(srv);

    let srv = Server::start(&sb, &["--upload-only"]);
    assert!(srv.banner.contains("upload-only"), "{}", srv.banner);
    let web = Web::of(&srv);
    assert_eq!(web.authed(&[], "/api/ls").status, 403);
    assert_eq!(web.authed(&[], "/files/shared.txt").status, 403);
    assert_eq!(web.authed(&["-X", "DELETE"], "/files/shared.txt").status, 403);
    assert_eq!(
        web.authed(&["-T", new.to_str().unwrap()], "/files/dropped.txt").status,
        201
    );
    // A drop box never replaces what is there.
    let r = web.authed(&["-T", new.to_str().unwrap()], "/files/shared.txt");
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(
        std::fs::read(sb.path("work/sockit-data/shared.txt")).unwrap(),
        b"shared"
    );
    sb.assert_cmd().args(["put", &srv.addr, "new.txt"]).assert().success();
    sb.assert_cmd()
        .args(["put", &srv.addr, "new.txt", "shared.txt"])
        .assert()
        .code(1);
    sb.assert_cmd()
        .args(["ls", &srv.addr])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("only takes uploads"));
    sb.assert_cmd().args(["get", &srv.addr, "shared.txt"]).assert().code(1);
    assert_eq!(std::fs::read(sb.path("work/sockit-data/new.txt")).unwrap(), b"new");
}

#[test]
fn the_token_never_reaches_the_log() {
    if !curl_ok() {
        return;
    }
    let sb = Sandbox::new();
    let log = sb.path("server.log");
    let srv = Server::start_announcing(
        sb.cmd()
            .env_remove("SOCKIT_LOG")
            .args(["serve", "--listen", "127.0.0.1:0", "-vvv", "--log-file"])
            .arg(&log),
        true,
    );
    let web = Web::of(&srv);
    let body = format!("{{\"token\":\"{}\"}}", web.token);
    let jar = sb.path("jar");
    let jar = jar.to_str().unwrap();
    assert_eq!(
        web.curl(
            &["-c", jar, "-H", "Content-Type: application/json", "-d", &body],
            "/api/login"
        )
        .status,
        200
    );
    write(&sb.path("work/a.txt"), b"abc");
    assert_eq!(
        web.authed(&["-T", sb.path("work/a.txt").to_str().unwrap()], "/files/a.txt")
            .status,
        201
    );
    assert_eq!(web.authed(&[], "/files/a.txt").status, 200);
    assert_eq!(web.curl(&["-b", jar], "/api/ls").status, 200);
    let wrong = "{\"token\":\"ffffffffffffffffffffffffffffffff\"}";
    assert_eq!(
        web.curl(&["-H", "Content-Type: application/json", "-d", wrong], "/api/login")
            .status,
        401
    );
    assert!(srv.signal("TERM").success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("web upload stored"), "the log has the requests: {text}");
    assert!(!text.contains(&web.token), "the token is in the log");
    // Nor is the session cookie's value.
    let jar_text = std::fs::read_to_string(jar).unwrap();
    let session = jar_text.lines().find(|l| l.contains("sockit_session")).unwrap();
    let value = session.split('\t').next_back().unwrap();
    assert!(!text.contains(value), "the session cookie is in the log");
}

#[test]
fn over_tls_the_page_is_https_and_its_cookie_secure() {
    if !curl_ok() {
        return;
    }
    let sb = Sandbox::new();
    let srv = Server::start(&sb, &["--tls"]);
    let url = srv.web_url.clone().unwrap();
    assert!(url.starts_with("https://"), "{url}");
    let web = Web::from_url(&url);
    let body = format!("{{\"token\":\"{}\"}}", web.token);
    let r = web.curl(
        &["-k", "-H", "Content-Type: application/json", "-d", &body],
        "/api/login",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("set-cookie").unwrap().contains("Secure"));
    let bearer = web.bearer();
    assert_eq!(web.curl(&["-k", "-H", &bearer], "/api/ls").status, 200);
    // Plain HTTP to the TLS listener gets no page.
    let plain = web.base.replacen("https://", "http://", 1);
    let r = support::web::curl(&[], &format!("{plain}/"));
    assert_ne!(r.status, 200);
}

#[test]
fn web_url_prints_the_address_and_a_qr_code() {
    let sb = Sandbox::new();
    // No key yet: say how to get one.
    sb.assert_cmd()
        .args(["web-url"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("run `sockit serve` once"));
    let printed = sb
        .assert_cmd()
        .args(["serve", "--print-web-url", "--web", "10.1.2.3:8081"])
        .assert()
        .success();
    let serve_url = String::from_utf8_lossy(&printed.get_output().stdout).trim().to_owned();
    assert!(serve_url.starts_with("http://10.1.2.3:8081/#token="), "{serve_url}");
    let out = sb
        .assert_cmd()
        .args(["web-url", "--web", "10.1.2.3:8081", "--qr"])
        .assert()
        .success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(serve_url.as_str()),
        "the same token from serve and web-url"
    );
    // A QR code in half blocks: a square of lines, each as wide as the next.
    let code: Vec<&str> = lines.filter(|l| !l.is_empty()).collect();
    assert!(code.len() >= 10, "{text}");
    assert!(code.iter().all(|l| l.chars().count() == code[0].chars().count()));
    assert!(
        code.iter()
            .any(|l| l.contains('█') || l.contains('▀') || l.contains('▄'))
    );
}

#[test]
fn without_auth_only_addresses_that_cannot_be_rebound_are_answered() {
    if !curl_ok() {
        return;
    }
    let sb = Sandbox::new();
    write(&sb.path("work/sockit-data/a.txt"), b"open");
    let srv = Server::start(&sb, &["--insecure-no-auth"]);
    let web = Web::of(&srv);
    assert!(web.token.is_empty());
    assert_eq!(web.curl(&[], "/files/a.txt").text(), "open");
    let port = web.base.rsplit(':').next().unwrap();
    let localhost = format!("Host: localhost:{port}");
    assert_eq!(web.curl(&["-H", &localhost], "/files/a.txt").status, 200);
    // A page of another site, its name rebound to this address.
    let rebound = format!("Host: evil.example:{port}");
    let r = web.curl(&["-H", &rebound], "/files/a.txt");
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("IP address or localhost"), "{}", r.text());
    // Without a key the CSRF rule still holds: a change needs X-Sockit.
    let a = sb.path("work/sockit-data/a.txt");
    assert_eq!(web.curl(&["-T", a.to_str().unwrap()], "/files/b.txt").status, 403);
    assert_eq!(
        web.curl(&["-T", a.to_str().unwrap(), "-H", "X-Sockit: 1"], "/files/b.txt")
            .status,
        201
    );
    // With a key, a name is fine: the token is what is needed.
    drop(srv);
    let srv = Server::start(&sb, &[]);
    let web = Web::of(&srv);
    let port = web.base.rsplit(':').next().unwrap();
    let named = format!("Host: files.lan:{port}");
    assert_eq!(web.authed(&["-H", &named], "/files/a.txt").status, 200);
}

#[test]
fn a_slow_header_and_a_download_never_read_are_cut_off() {
    use std::io::{Read as _, Write as _};
    use std::time::{Duration, Instant};
    let sb = Sandbox::new();
    write(&sb.path("work/sockit-data/big.bin"), &vec![1u8; 64 << 20]);
    let srv = Server::start(&sb, &["--request-timeout", "2", "--idle-timeout", "2"]);
    let web = Web::of(&srv);
    let addr = web.base.trim_start_matches("http://").to_owned();

    // A slowloris: a header trickled a byte at a time is cut off at the
    // request deadline, not held open.
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ").unwrap();
    let started = Instant::now();
    let cut = loop {
        // Pacing is the attack.
        std::thread::sleep(Duration::from_millis(200));
        if slow.write_all(b"a").is_err() {
            break started.elapsed();
        }
        slow.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
        let mut byte = [0u8; 1];
        match slow.read(&mut byte) {
            Ok(_) => break started.elapsed(),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break started.elapsed(),
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "a slow header was never cut off"
        );
    };
    assert!(cut >= Duration::from_secs(1), "cut too early: {cut:?}");

    // A client that asks for 64 MiB and never reads: the server gives up
    // once its writes stall past the idle deadline.
    let mut stalled = std::net::TcpStream::connect(&addr).unwrap();
    let request = format!(
        "GET /files/big.bin HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\r\n",
        web.token
    );
    stalled.write_all(request.as_bytes()).unwrap();
    // Long enough for the server's writes to stall and its deadline to pass.
    std::thread::sleep(Duration::from_secs(5));
    stalled.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match stalled.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    assert!(
        got < 64 << 20,
        "the whole file arrived: the stalled download was never cut"
    );
    // And the server goes on serving.
    assert_eq!(web.authed(&["-r", "0-9"], "/files/big.bin").body, vec![1u8; 10]);
}
