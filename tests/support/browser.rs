//! Headless Chromium through chromedriver (WebDriver), for the page's
//! tests: Debian's chromium and chromium-driver, installed by
//! scripts/test.sh; nothing is downloaded.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

use super::KillOnDrop;

/// Longest wait for anything the page should show: generous, because a
/// loaded 2-core machine can be slow; a test never depends on it being fast.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A chromedriver of our own, with one headless Chromium session.
pub struct Browser {
    pub client: Client,
    pub downloads: PathBuf,
    driver_url: String,
    _driver: KillOnDrop,
}

impl Browser {
    /// Whether chromium and chromedriver can run here (a skip outside CI).
    pub fn available() -> bool {
        super::peer_available("chromedriver", &["--version"]) && super::peer_available("chromium", &["--version"])
    }

    /// Starts chromedriver on a free port (it announces itself when ready)
    /// and a session whose downloads go to `downloads`.
    pub async fn start(downloads: &Path) -> Self {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let mut child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let driver = KillOnDrop(child);
        let mut line = String::new();
        loop {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "chromedriver exited");
            if line.contains("started successfully") {
                break;
            }
        }
        std::thread::spawn(move || for _ in out.lines() {});
        let driver_url = format!("http://127.0.0.1:{port}");
        std::fs::create_dir_all(downloads).unwrap();
        let caps = json!({
            "goog:chromeOptions": {
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
                         "--disable-dev-shm-usage"],
                "prefs": {
                    "download.default_directory": downloads.to_str().unwrap(),
                    "download.prompt_for_download": false,
                },
            },
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!()
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&driver_url)
            .await
            .unwrap();
        Self {
            client,
            downloads: downloads.to_owned(),
            driver_url,
            _driver: driver,
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    /// Waits (bounded) for an element matching a CSS selector.
    pub async fn wait_for(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
    }

    /// Waits (bounded) until the element matching `css` shows `needle` in
    /// its text; returns the text.
    pub async fn wait_text(&self, css: &str, needle: &str) -> String {
        let started = Instant::now();
        loop {
            if let Ok(e) = self.client.find(Locator::Css(css)).await {
                if let Ok(text) = e.text().await {
                    if text.contains(needle) {
                        return text;
                    }
                    assert!(started.elapsed() < PATIENCE, "{css} never showed {needle:?}: {text:?}");
                }
            }
            assert!(started.elapsed() < PATIENCE, "no {css} showing {needle:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (bounded) until `attr` of the element matching `css` is `want`.
    pub async fn wait_attr(&self, css: &str, attr: &str, want: &str) {
        let started = Instant::now();
        loop {
            let now = match self.client.find(Locator::Css(css)).await {
                Ok(e) => e.attr(attr).await.ok().flatten(),
                Err(_) => None,
            };
            if now.as_deref() == Some(want) {
                return;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "{css} {attr} stayed {now:?}, not {want:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sets the files an `<input type=file>` holds (several, one per line).
    pub async fn pick(&self, input_css: &str, paths: &[&Path]) {
        let input = self.client.find(Locator::Css(input_css)).await.unwrap();
        let list: Vec<String> = paths.iter().map(|p| p.to_str().unwrap().to_owned()).collect();
        input.send_keys(&list.join("\n")).await.unwrap();
    }

    /// The browser console's entries at SEVERE: JavaScript errors, failed
    /// loads. Read through chromedriver's log endpoint.
    pub async fn console_errors(&self) -> Vec<String> {
        let session = self.client.session_id().await.unwrap().unwrap();
        let out = Command::new("curl")
            .args([
                "-sS",
                "-X",
                "POST",
                "-H",
                "Content-Type: application/json",
                "-d",
                r#"{"type":"browser"}"#,
            ])
            .arg(format!("{}/session/{session}/se/log", self.driver_url))
            .output()
            .unwrap();
        let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        reply["value"]
            .as_array()
            .unwrap_or_else(|| panic!("no log from chromedriver: {reply}"))
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Waits (bounded) until a file named `name` is whole in the download
    /// folder (Chromium writes `.crdownload` until then).
    pub async fn downloaded(&self, name: &str) -> Vec<u8> {
        let path = self.downloads.join(name);
        let started = Instant::now();
        loop {
            let partial = std::fs::read_dir(&self.downloads)
                .unwrap()
                .any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".crdownload"));
            if path.exists() && !partial {
                return std::fs::read(&path).unwrap();
            }
            assert!(started.elapsed() < PATIENCE, "{name} never finished downloading");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}
