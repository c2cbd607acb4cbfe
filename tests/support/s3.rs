//! An S3-compatible server for the tests: `s3s-fs` (a real S3 HTTP
//! implementation over a folder, installed by scripts/test.sh) on a free
//! loopback port, with its own access key, its folder in the sandbox.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::{KillOnDrop, Sandbox, peer_available};

pub const ACCESS_KEY: &str = "sockit-test";
pub const SECRET_KEY: &str = "sockit-test-secret";

#[derive(Debug)]
pub struct S3 {
    pub server: KillOnDrop,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    /// The folder s3s-fs keeps its buckets in (one subfolder each).
    pub dir: PathBuf,
}

impl S3 {
    /// `None` (the test skips) when s3s-fs is missing outside CI. The
    /// bucket `bucket` exists.
    pub fn start(sandbox: &Sandbox) -> Option<S3> {
        if !peer_available("s3s-fs", &["--version"]) {
            return None;
        }
        let dir = sandbox.path("s3");
        std::fs::create_dir_all(dir.join("bucket")).unwrap();
        let mut child = Command::new("s3s-fs")
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut log = BufReader::new(child.stdout.take().unwrap());
        let server = KillOnDrop(child);
        // It announces its bound port: "server is running at http://127.0.0.1:PORT".
        let mut line = String::new();
        let endpoint = loop {
            line.clear();
            assert!(log.read_line(&mut line).unwrap() > 0, "s3s-fs ended before listening");
            if let Some((_, url)) = line.trim().split_once("server is running at ") {
                let url: String = url
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '/' | '.'))
                    .collect();
                break url;
            }
        };
        std::thread::spawn(move || for _ in log.lines() {});
        Some(S3 { server, endpoint, dir })
    }

    /// The environment a sockit server needs to reach this store (the
    /// usual AWS variables; never argv).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
            ("AWS_ENDPOINT", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
        ]
    }
}
