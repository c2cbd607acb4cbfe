//! The page in headless Chromium (WebDriver): logging in from the printed
//! URL, uploads of files and a folder, an upload resumed after the server
//! restarts, downloads, and a console without errors.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

#[path = "support/browser.rs"]
mod browser;
mod support;

use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

use browser::{Browser, PATIENCE};
use support::web::Web;
// browser.rs reaches KillOnDrop and peer_available through `super::`.
use support::ncat::NcMember;
use support::s3::S3;
use support::{KillOnDrop, Sandbox, Server, peer_available, write};

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The page's console must stay clean: no script errors, no failed loads.
async fn assert_clean_console(browser: &Browser) {
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
}

/// Waits (bounded) for the transfer row of `path` to reach `state`.
async fn transfer_state(browser: &Browser, path: &str, state: &str) -> String {
    let css = format!("#transfer-list li[data-path=\"{path}\"][data-state=\"{state}\"] .status");
    browser.wait_for(&css).await.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_printed_url_logs_in_and_the_page_moves_files_both_ways() {
    if !Browser::available() {
        return;
    }
    let sb = Sandbox::new();
    let srv = Server::start(&sb, &[]);
    write(&sb.path("work/put.txt"), b"from sockit put");
    sb.assert_cmd().args(["put", &srv.addr, "put.txt"]).assert().success();
    let browser = Browser::start(&sb.path("downloads")).await;

    // The URL as printed: the page logs in and lists the file.
    browser.goto(srv.web_url.as_deref().unwrap()).await;
    browser.wait_for("#entries tr[data-name=\"put.txt\"]").await;
    let url = browser.client.current_url().await.unwrap();
    assert!(!url.as_str().contains("token"), "the token left the address bar: {url}");

    // Two files and a folder through the page's inputs.
    let a: Vec<u8> = (0..5_000_000u32).map(|i| (i % 241) as u8).collect();
    write(&sb.path("pick/a.bin"), &a);
    write(&sb.path("pick/b.txt"), "二 files, one 文件夹\n".as_bytes());
    write(&sb.path("pick/album/x.jpg"), b"x");
    write(&sb.path("pick/album/deep/y.jpg"), b"yy");
    browser
        .pick("#pick-files", &[&sb.path("pick/a.bin"), &sb.path("pick/b.txt")])
        .await;
    transfer_state(&browser, "a.bin", "done").await;
    transfer_state(&browser, "b.txt", "done").await;
    browser.pick("#pick-folder", &[&sb.path("pick/album")]).await;
    transfer_state(&browser, "album/x.jpg", "done").await;
    transfer_state(&browser, "album/deep/y.jpg", "done").await;
    let served = sb.path("work/sockit-data");
    for name in ["a.bin", "b.txt", "album/x.jpg", "album/deep/y.jpg"] {
        let picked = std::fs::read(sb.path(&format!("pick/{name}"))).unwrap();
        let stored = std::fs::read(served.join(name)).unwrap();
        assert_eq!(sha256(&stored), sha256(&picked), "{name}");
    }
    // The framed client fetches what the page uploaded.
    sb.assert_cmd()
        .args(["get", "-r", &srv.addr, "album", "-o", "fetched/"])
        .assert()
        .success();
    assert_eq!(std::fs::read(sb.path("work/fetched/album/deep/y.jpg")).unwrap(), b"yy");
    // The row shows the stored file's XXH3, as `put` reports it.
    let row = browser.wait_for("#transfer-list li[data-path=\"a.bin\"]").await;
    assert_eq!(row.attr("data-xxh3").await.unwrap().unwrap().len(), 32);

    // A download through the page's link.
    browser
        .wait_for("#entries tr[data-name=\"a.bin\"] a")
        .await
        .click()
        .await
        .unwrap();
    assert_eq!(sha256(&browser.downloaded("a.bin").await), sha256(&a));

    // A folder as one .zip, unpacked by Python's zipfile (an independent
    // reader): the same bytes.
    browser
        .wait_for("#entries tr[data-name=\"album\"] a.zip")
        .await
        .click()
        .await
        .unwrap();
    let zip = browser.downloaded("album.zip").await;
    std::fs::write(sb.path("album.zip"), &zip).unwrap();
    let unpacked = sb.path("unzipped");
    let status = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])",
        ])
        .arg(sb.path("album.zip"))
        .arg(&unpacked)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(std::fs::read(unpacked.join("album/x.jpg")).unwrap(), b"x");
    assert_eq!(std::fs::read(unpacked.join("album/deep/y.jpg")).unwrap(), b"yy");

    // Folders: into one and back by the breadcrumbs.
    browser
        .wait_for("#entries tr[data-name=\"album\"] a")
        .await
        .click()
        .await
        .unwrap();
    browser.wait_for("#entries tr[data-name=\"deep\"]").await;
    browser
        .wait_for("#crumbs li:first-child a")
        .await
        .click()
        .await
        .unwrap();
    browser.wait_for("#entries tr[data-name=\"put.txt\"]").await;

    assert_clean_console(&browser).await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_by_a_restart_resumes_from_the_servers_offset() {
    if !Browser::available() || !peer_available("curl", &["--version"]) {
        return;
    }
    let sb = Sandbox::new();
    let srv = Server::start(&sb, &[]);
    let (files_addr, web_url) = (srv.addr.clone(), srv.web_url.clone().unwrap());
    let web = Web::from_url(&web_url);
    let web_addr = web.base.trim_start_matches("http://").to_owned();
    // Big enough that the page is still sending when the server stops.
    let big: Vec<u8> = (0..400u32 << 20 >> 2).flat_map(|i| i.to_le_bytes()).collect();
    write(&sb.path("pick/big.bin"), &big);
    let browser = Browser::start(&sb.path("downloads")).await;
    browser.goto(&web_url).await;
    browser.wait_for("#entries").await;
    browser.pick("#pick-files", &[&sb.path("pick/big.bin")]).await;

    // Stop the server once part of the file is in its staging.
    let staging = sb.path("work/sockit-data/.sockit/partial");
    let started = Instant::now();
    loop {
        let held: u64 = std::fs::read_dir(&staging)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
                    .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0);
        if held >= 8 << 20 {
            break;
        }
        assert!(started.elapsed() < PATIENCE, "the upload never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(srv.signal("TERM").success());
    // The page gives up on a server that is gone...
    let failed = transfer_state(&browser, "big.bin", "failed").await;
    assert!(failed.contains("failed"), "{failed}");

    // ...and, the server back on the same addresses, picking the same
    // file again continues from what the server kept.
    let _srv = Server::start_announcing(
        sb.cmd().args(["serve", "--listen", &files_addr, "--web", &web_addr]),
        true,
    );
    browser.pick("#pick-files", &[&sb.path("pick/big.bin")]).await;
    let css = "#transfer-list li[data-path=\"big.bin\"][data-state=\"done\"] .status";
    let done = browser.wait_for(css).await.text().await.unwrap();
    let resumed_at = done
        .split("resumed at ")
        .nth(1)
        .unwrap_or_else(|| panic!("not resumed: {done}"));
    assert!(!resumed_at.starts_with("0 B"), "{done}");
    let stored = std::fs::read(sb.path("work/sockit-data/big.bin")).unwrap();
    assert_eq!(sha256(&stored), sha256(&big));
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_an_object_store_the_page_uploads_and_resumes_from_the_parts_the_store_holds() {
    if !Browser::available() {
        return;
    }
    let sb = Sandbox::new();
    let Some(s3) = S3::start(&sb) else { return };
    let serve = |listen: &str, web: &str| {
        let mut cmd = sb.cmd();
        cmd.envs(s3.env())
            .args(["serve", "--root", "s3://bucket/drop", "--listen", listen, "--web", web]);
        Server::start_announcing(&mut cmd, true)
    };
    let srv = serve("127.0.0.1:0", "127.0.0.1:0");
    let (files_addr, web_url) = (srv.addr.clone(), srv.web_url.clone().unwrap());
    let web_addr = Web::from_url(&web_url).base.trim_start_matches("http://").to_owned();
    // Many 16 MiB parts, so the page is still sending when the server stops.
    let big: Vec<u8> = (0..160u32 << 20 >> 2)
        .flat_map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes())
        .collect();
    write(&sb.path("pick/big.bin"), &big);
    write(&sb.path("pick/small.txt"), b"small");
    sb.assert_cmd().args(["mkdir", &files_addr, "docs"]).assert().success();
    let browser = Browser::start(&sb.path("downloads")).await;
    browser.goto(&web_url).await;
    // A folder on a store is a prefix, with no time of its own: none shown.
    let cells = browser.wait_for("#entries tr[data-name=\"docs\"]").await;
    let modified = cells.find(fantoccini::Locator::Css("td:nth-child(3)")).await.unwrap();
    assert_eq!(modified.text().await.unwrap(), "");
    browser.pick("#pick-files", &[&sb.path("pick/small.txt")]).await;
    transfer_state(&browser, "small.txt", "done").await;
    browser.wait_for("#entries tr[data-name=\"small.txt\"]").await;
    assert_clean_console(&browser).await;
    browser.pick("#pick-files", &[&sb.path("pick/big.bin")]).await;

    // Stop the server once the store acknowledged a part: its manifest
    // then names one.
    let manifests = s3.dir.join("bucket/drop/.sockit/uploads");
    let started = Instant::now();
    loop {
        let recorded = std::fs::read_dir(&manifests)
            .map(|d| {
                d.filter_map(Result::ok)
                    .any(|e| std::fs::read_to_string(e.path()).is_ok_and(|m| m.contains("\"etags\":[\"")))
            })
            .unwrap_or(false);
        if recorded {
            break;
        }
        assert!(started.elapsed() < PATIENCE, "no part was ever stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(srv.signal("TERM").success());
    transfer_state(&browser, "big.bin", "failed").await;

    // A server on the same addresses (any server on the store would do)
    // continues from the parts the store holds.
    let _srv = serve(&files_addr, &web_addr);
    browser.pick("#pick-files", &[&sb.path("pick/big.bin")]).await;
    let done = transfer_state(&browser, "big.bin", "done").await;
    assert!(done.contains("every chunk checked"), "{done}");
    let resumed_at = done
        .split("resumed at ")
        .nth(1)
        .unwrap_or_else(|| panic!("not resumed: {done}"));
    assert!(!resumed_at.starts_with("0 B"), "{done}");
    let stored = std::fs::read(s3.dir.join("bucket/drop/big.bin")).unwrap();
    assert_eq!(sha256(&stored), sha256(&big));
    // Downloaded back through the page's link: ranged reads of the store.
    browser
        .wait_for("#entries tr[data-name=\"big.bin\"] a")
        .await
        .click()
        .await
        .unwrap();
    assert_eq!(sha256(&browser.downloaded("big.bin").await), sha256(&big));
    // The requests the outage failed are logged; nothing else is.
    let errors: Vec<String> = browser
        .console_errors()
        .await
        .into_iter()
        .filter(|e| !e.contains("Failed to load resource"))
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_and_nc_members_share_the_room_and_late_joiners_see_history() {
    if !Browser::available() || !peer_available("ncat", &["--version"]) {
        return;
    }
    let sb = Sandbox::new();
    // A keyless TCP room (nc speaks no handshake) and a keyed web listener,
    // one room between them.
    write(
        &sb.path("work/sockit.toml"),
        b"[[service]]\nkind = \"chat\"\nlisten = \"127.0.0.1:0\"\ninsecure_no_auth = true\n\n\
          [[service]]\nkind = \"web\"\nlisten = \"127.0.0.1:0\"\n",
    );
    let mut serve = sb
        .cmd()
        .args(["serve", "--config", "sockit.toml"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(serve.stdout.take().unwrap());
    let _serve = KillOnDrop(serve);
    let mut read_line = || {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut out, &mut line).unwrap();
        line.trim().to_owned()
    };
    let chat_line = read_line();
    assert!(chat_line.contains("(chat, auth: off"), "{chat_line}");
    let chat_addr = chat_line.split(' ').nth(3).unwrap().to_owned();
    assert!(read_line().contains("(web, auth: token"));
    let url = read_line().strip_prefix("web: ").unwrap().to_owned();

    let mut alice = NcMember::join(&chat_addr);
    alice.expect("welcome, guest1");
    alice.say("/nick alice");
    alice.expect("guest1 is now known as alice");
    alice.say("hello from nc");

    let browser = Browser::start(&sb.path("downloads")).await;
    browser.goto(&url).await;
    browser.wait_for("#entries").await;
    browser.wait_for("#nav-chat").await.click().await.unwrap();
    // History first, then the room as it goes.
    browser.wait_for("#chat-lines li:nth-child(3)").await;
    let history = browser
        .client
        .find(fantoccini::Locator::Id("chat-lines"))
        .await
        .unwrap();
    let text = history.text().await.unwrap();
    assert!(text.contains("the last 1 lines said here:"), "{text}");
    assert!(text.contains("<alice> hello from nc"), "{text}");
    // The browser is listed with alice.
    let present = browser.wait_for("#present li:nth-child(2)").await;
    drop(present);
    let here = browser
        .client
        .find(fantoccini::Locator::Id("present"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(here.contains("alice") && here.contains("guest2"), "{here}");

    // Browser to nc...
    let input = browser.wait_for("#chat-input").await;
    input.send_keys("hi from the browser, 你好\n").await.unwrap();
    alice.expect("<guest2> hi from the browser, 你好");
    // ...and nc to the browser.
    alice.say("second line");
    browser.wait_for("#chat-lines li:nth-child(5)").await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let text = history.text().await.unwrap();
        if text.contains("<alice> second line") {
            break;
        }
        assert!(Instant::now() < deadline, "the browser never showed nc's line: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A late nc member gets the history, the browser's line included.
    let bob = NcMember::join(&chat_addr);
    let seen = bob.expect("<alice> second line");
    let seen = seen.join("\n");
    assert!(seen.contains("the last 3 lines said here:"), "{seen}");
    assert!(
        seen.contains("<alice> hello from nc\n<guest2> hi from the browser, 你好\n<alice> second line"),
        "{seen}"
    );
    drop(alice.child);
    assert_clean_console(&browser).await;
    browser.close().await;
}

/// A one-connection TCP relay to `upstream` that passes the client's bytes
/// at about `rate` bytes per second, so a transfer through it stays in
/// progress long enough to be watched. Returns its address.
fn slow_relay(upstream: String, rate: usize) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let Ok((client, _)) = listener.accept() else { return };
        let server = std::net::TcpStream::connect(upstream).unwrap();
        let (mut client_r, mut server_w) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        let (mut server_r, mut client_w) = (server, client);
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut server_r, &mut client_w);
        });
        let chunk = (rate / 20).max(1);
        let mut buf = vec![0u8; chunk];
        loop {
            let n = match std::io::Read::read(&mut client_r, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if std::io::Write::write_all(&mut server_w, &buf[..n]).is_err() {
                break;
            }
            // Pacing is the point of this relay.
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = server_w.shutdown(std::net::Shutdown::Write);
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_a_put_in_progress() {
    if !Browser::available() || !peer_available("curl", &["--version"]) {
        return;
    }
    let sb = Sandbox::new();
    let log = sb.path("stats.log");
    let srv = Server::start_announcing(
        sb.cmd()
            .args(["serve", "--listen", "127.0.0.1:0", "--stats", "1"])
            .stderr(std::fs::File::create(&log).unwrap()),
        true,
    );
    let web = Web::of(&srv);
    write(&sb.path("work/big.bin"), &vec![5u8; 64 << 20]);
    // A big put, slowed to 2 MiB/s on its way: running for half a minute.
    let relay = slow_relay(srv.addr.clone(), 2 << 20);
    let put = KillOnDrop(sb.cmd().args(["put", &relay, "big.bin"]).spawn().unwrap());

    let browser = Browser::start(&sb.path("downloads")).await;
    browser.goto(srv.web_url.as_deref().unwrap()).await;
    browser.wait_for("#entries").await;
    browser.wait_for("#nav-dashboard").await.click().await.unwrap();
    let row = browser
        .wait_for("#live-transfers li[data-kind=\"put\"][data-name=\"big.bin\"] .status")
        .await;
    let text = row.text().await.unwrap();
    assert!(text.contains("of 64.0 MiB"), "{text}");
    browser.wait_for("#service-rows tr[data-service=\"files\"]").await;
    browser.wait_for("#service-rows tr[data-service=\"web\"]").await;
    // The same figures as JSON, and on serve's stderr with --stats.
    let stats = web.authed(&[], "/api/stats").json();
    let transfers = stats["transfers"].as_array().unwrap();
    assert!(
        transfers
            .iter()
            .any(|t| t["kind"] == "put" && t["name"] == "big.bin" && t["size"] == 64 << 20)
    );
    let deadline = Instant::now() + PATIENCE;
    loop {
        let printed = std::fs::read_to_string(&log).unwrap();
        if printed.contains("sockit: stats: put big.bin with 127.0.0.1:") {
            assert!(printed.contains("sockit: stats: files tcp"), "{printed}");
            break;
        }
        assert!(Instant::now() < deadline, "no --stats line: {printed}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(put);
    assert_clean_console(&browser).await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_token_the_page_shows_the_login_and_takes_a_pasted_one() {
    if !Browser::available() {
        return;
    }
    let sb = Sandbox::new();
    let srv = Server::start(&sb, &[]);
    let web = Web::of(&srv);
    let browser = Browser::start(&sb.path("downloads")).await;
    browser.goto(&format!("{}/", web.base)).await;
    browser.wait_for("#login:not([hidden]) #token").await;
    assert!(
        browser
            .client
            .find(fantoccini::Locator::Id("files"))
            .await
            .unwrap()
            .attr("hidden")
            .await
            .unwrap()
            .is_some(),
        "files shown without a session"
    );
    // A wrong token is told so; the right one, pasted, logs in.
    browser
        .wait_for("#token")
        .await
        .send_keys("0123456789abcdef0123456789abcdef\n")
        .await
        .unwrap();
    let error = browser.wait_for("#login-error").await;
    let deadline = Instant::now() + PATIENCE;
    while error.text().await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no login error shown");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(error.text().await.unwrap().contains("not this server's"));
    let token = browser.wait_for("#token").await;
    token.clear().await.unwrap();
    token.send_keys(&format!("{}\n", web.token)).await.unwrap();
    browser.wait_for("#files:not([hidden]) #entries").await;
    browser.close().await;
}
