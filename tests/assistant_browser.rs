//! The assistant page in headless Chromium (WebDriver): a TCP client
//! session to sockit's echo server (hex both ways), a periodic UDP send
//! counted both ways, a TCP server session with two ncat clients (send to
//! one, then all), a rule answering a Python client, a reload that finds
//! the sessions still running; and, without `--web-assistant`, the page
//! and its API refused.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

#[path = "support/browser.rs"]
mod browser;
mod support;

use fantoccini::Locator;

use browser::Browser;
use support::ncat::NcMember;
use support::web::Web;
// browser.rs reaches KillOnDrop and peer_available through `super::`.
use support::{KillOnDrop, Sandbox, Server, peer_available, start_echo};

/// Types into a field, replacing what it held.
async fn fill(browser: &Browser, css: &str, text: &str) {
    let field = browser.wait_for(css).await;
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

async fn select(browser: &Browser, css: &str, value: &str) {
    browser.wait_for(css).await.select_by_value(value).await.unwrap();
}

async fn click(browser: &Browser, css: &str) {
    browser.wait_for(css).await.click().await.unwrap();
}

/// Opens a session from the form; returns its panel's title.
async fn open_session(browser: &Browser, kind: &str, field: &str, address: &str, title: &str) -> String {
    select(browser, "#as-kind", kind).await;
    fill(browser, field, address).await;
    click(browser, "#as-open button[type=submit]").await;
    browser.wait_text("#as-title", title).await
}

/// The port a server session listens on, from its panel.
async fn local_port(browser: &Browser) -> String {
    let state = browser.wait_text("#as-state", "local 127.0.0.1:").await;
    state.rsplit(':').next().unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_send_receive_answer_by_rule_and_survive_a_reload() {
    if !Browser::available() || !peer_available("ncat", &["--version"]) {
        return;
    }
    let sb = Sandbox::new();
    let (_echo, echo_tcp, echo_udp) = start_echo(&sb, &["--insecure-no-auth"]);
    let srv = Server::start(&sb, &["--web-assistant"]);
    let browser = Browser::start(&sb.path("downloads")).await;
    browser.goto(srv.web_url.as_deref().unwrap()).await;
    browser.wait_for("#entries").await;
    click(&browser, "#nav-assistant").await;

    // A TCP client to the echo server: hex out, hex back.
    open_session(&browser, "tcp-client", "#as-target", &echo_tcp, "TCP client").await;
    click(&browser, "#as-hex").await;
    fill(&browser, "#as-text", "01 02 7f ff").await;
    click(&browser, "#as-send-button").await;
    select(&browser, "#as-view", "hex").await;
    let shown = browser.wait_text("#as-log li.in", "01 02 7f ff").await;
    assert!(shown.contains("00000000"), "a hexdump with offsets: {shown}");
    browser.wait_text("#as-log li.out", "01 02 7f ff").await;
    click(&browser, "#as-hex").await;
    select(&browser, "#as-view", "text").await;

    // UDP to the echo server, five sends 30 ms apart: five each way.
    open_session(&browser, "udp", "#as-target", &echo_udp, "UDP").await;
    fill(&browser, "#as-text", "tick {{seq}}").await;
    fill(&browser, "#as-interval", "30").await;
    fill(&browser, "#as-count-n", "5").await;
    click(&browser, "#as-send-button").await;
    browser.wait_attr("#as-counters", "data-tx", "5").await;
    browser.wait_attr("#as-counters", "data-rx", "5").await;
    browser.wait_text("#as-log", "tick 5").await;
    fill(&browser, "#as-interval", "").await;
    fill(&browser, "#as-count-n", "").await;

    // A TCP server: two ncat clients, a line to the first only, then one
    // to everyone.
    open_session(&browser, "tcp-server", "#as-bind", "127.0.0.1:0", "TCP server").await;
    let port = local_port(&browser).await;
    let addr = format!("127.0.0.1:{port}");
    let first = NcMember::join(&addr);
    browser.wait_for("#as-peers .peer[data-peer=\"1\"]").await;
    let second = NcMember::join(&addr);
    browser.wait_for("#as-peers .peer[data-peer=\"2\"]").await;
    select(&browser, "#as-to", "1").await;
    fill(&browser, "#as-text", "only for the first\n").await;
    click(&browser, "#as-send-button").await;
    first.expect("only for the first");
    select(&browser, "#as-to", "").await;
    fill(&browser, "#as-text", "for everyone\n").await;
    click(&browser, "#as-send-button").await;
    first.expect("for everyone");
    // The second's first line is the one for everyone: it never got the other.
    assert_eq!(second.expect("for everyone"), ["for everyone"]);
    let mut first = first;
    first.say("hello from ncat");
    browser.wait_text("#as-log li.in", "hello from ncat").await;

    // Rules on the server session answer a Python client.
    click(&browser, "#as-rules-box summary").await;
    fill(
        &browser,
        "#as-rules",
        "[[rule]]\nregex = '^PING (\\d+)$'\nreply = \"PONG {{1}} #{{seq}}\"\n",
    )
    .await;
    click(&browser, "#as-rules-on").await;
    click(&browser, "#as-rules-apply").await;
    browser.wait_text("#as-rules-state", "on").await;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
s.sendall(b"PING 41\nPING 42\n")
got = b""
while got.count(b"\n") < 2:
    got += s.recv(100)
print(got.decode(), end="")
"#,
        )
        .arg(&port)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "PONG 41 #1\nPONG 42 #2\n");
    browser.wait_text("#as-log", "answered by rule 1").await;

    // A reload: the sessions ran on in the server, and the log is kept.
    browser.client.refresh().await.unwrap();
    browser.wait_for("#as-sessions li[data-id=\"3\"]").await;
    let listed = browser
        .client
        .find(Locator::Id("as-sessions"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        listed.contains("#1 TCP client") && listed.contains("#2 UDP") && listed.contains("#3 TCP server"),
        "{listed}"
    );
    click(&browser, "#as-sessions li[data-id=\"3\"]").await;
    browser.wait_text("#as-log", "only for the first").await;
    browser.wait_text("#as-log", "PONG 42 #2").await;
    // Still live after the reload.
    first.say("after the reload");
    browser.wait_text("#as-log", "after the reload").await;

    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    drop(second);
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_flag_the_page_and_its_api_are_refused() {
    let sb = Sandbox::new();
    let srv = Server::start(&sb, &[]);
    let url = srv.web_url.clone().unwrap();
    let web = Web::of(&srv);
    let base = web.url("");
    let reply = web.authed(&[], "/api/assist");
    assert_eq!(reply.status, 403, "{}", reply.text());
    assert!(reply.text().contains("--web-assistant"), "{}", reply.text());
    let reply = web.authed(
        &[
            "-H",
            "X-Sockit: 1",
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"kind":"tcp-server","bind":"127.0.0.1:0"}"#,
        ],
        "/api/assist/sessions",
    );
    assert_eq!(reply.status, 403);
    // With the flag, the API still needs the session like every route.
    let on = Server::start(&sb, &["--web-assistant"]);
    assert_eq!(Web::of(&on).curl(&[], "/api/assist").status, 401);
    assert_eq!(Web::of(&on).authed(&[], "/api/assist").status, 200);

    if !Browser::available() {
        return;
    }
    let browser = Browser::start(&sb.path("downloads")).await;
    browser.goto(&url).await;
    browser.wait_for("#entries").await;
    let link = browser.client.find(Locator::Id("nav-assistant")).await.unwrap();
    assert!(
        !link.is_displayed().await.unwrap(),
        "no Assistant link without the flag"
    );
    browser.goto(&format!("{base}/#assistant")).await;
    browser.wait_text("#as-off", "--web-assistant").await;
    browser.close().await;
}

#[test]
fn the_api_sends_a_file_to_one_client_and_disconnects_it() {
    use std::io::{Read as _, Write as _};
    let sb = Sandbox::new();
    let srv = Server::start(&sb, &["--web-assistant"]);
    let web = Web::of(&srv);
    let json = ["-H", "X-Sockit: 1", "-H", "Content-Type: application/json"];
    let post = |path: &str, body: &str| {
        let mut args = json.to_vec();
        args.extend(["-d", body]);
        web.authed(&args, path)
    };
    let opened = post("/api/assist/sessions", r#"{"kind":"tcp-server","bind":"127.0.0.1:0"}"#);
    assert_eq!(opened.status, 200, "{}", opened.text());
    let session = opened.json();
    let id = session["id"].as_u64().unwrap();
    let local = session["local"].as_str().unwrap().to_owned();

    let mut first = std::net::TcpStream::connect(&local).unwrap();
    let mut second = std::net::TcpStream::connect(&local).unwrap();
    for s in [&first, &second] {
        s.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    }
    // Both clients listed (the engine reports them as it accepts).
    let started = std::time::Instant::now();
    loop {
        let list = web.authed(&[], "/api/assist").json();
        let peers = list["sessions"][0]["peers"].as_array().unwrap().len();
        if peers == 2 {
            break;
        }
        assert!(started.elapsed() < browser::PATIENCE, "clients never listed: {list}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    // A file, as its bytes, to client 2 only.
    let file = sb.path("payload.bin");
    let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, &bytes).unwrap();
    let sent = web.authed(
        &["-H", "X-Sockit: 1", "--data-binary", &format!("@{}", file.display())],
        &format!("/api/assist/sessions/{id}/send-file?to=2"),
    );
    assert_eq!(sent.json()["bytes"], 100_000, "{}", sent.text());
    let mut got = vec![0u8; bytes.len()];
    second.read_exact(&mut got).unwrap();
    assert_eq!(got, bytes);

    // Client 1 is disconnected: it reads end of stream; client 2 stays.
    assert_eq!(
        post(&format!("/api/assist/sessions/{id}/disconnect"), r#"{"peer":1}"#).status,
        204
    );
    let mut rest = Vec::new();
    first.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "client 1 got {} bytes meant for client 2", rest.len());
    second.write_all(b"still here\n").unwrap();
    let sent = post(&format!("/api/assist/sessions/{id}/send"), r#"{"text":"ok\n"}"#);
    assert_eq!(sent.status, 200, "{}", sent.text());
    let mut line = [0u8; 3];
    second.read_exact(&mut line).unwrap();
    assert_eq!(&line, b"ok\n");

    // A bad rules file is refused, naming the rule; closing ends the session.
    let bad = web.authed(
        &[
            "-X",
            "PUT",
            "-H",
            "X-Sockit: 1",
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"toml":"[[rule]]\nregex = '('\n","on":true}"#,
        ],
        &format!("/api/assist/sessions/{id}/rules"),
    );
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("rule 1: regex"), "{}", bad.text());
    let closed = web.authed(
        &["-X", "DELETE", "-H", "X-Sockit: 1"],
        &format!("/api/assist/sessions/{id}"),
    );
    assert_eq!(closed.status, 204);
    let mut rest = Vec::new();
    second.read_to_end(&mut rest).unwrap();
    assert_eq!(
        web.authed(&[], "/api/assist").json()["sessions"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}
