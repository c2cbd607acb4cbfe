//! Talking to a server's web listener with curl (an independent HTTP
//! client), as a script or a user at a shell would.
#![allow(dead_code, clippy::unwrap_used)]

use std::process::Command;

use super::Server;

/// A web listener: its base URL (`http://127.0.0.1:PORT`) and token.
#[derive(Debug, Clone)]
pub struct Web {
    pub base: String,
    pub token: String,
}

/// One HTTP exchange as curl saw it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// Header lines, lowercase names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

impl Web {
    pub fn of(server: &Server) -> Self {
        Self::from_url(server.web_url.as_deref().expect("the server runs a web listener"))
    }

    pub fn from_url(url: &str) -> Self {
        let (base, token) = match url.split_once("/#token=") {
            Some((b, t)) => (b.to_owned(), t.to_owned()),
            None => (url.trim_end_matches('/').to_owned(), String::new()),
        };
        Self { base, token }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn bearer(&self) -> String {
        format!("Authorization: Bearer {}", self.token)
    }

    /// `curl --path-as-is -s ARGS URL`, with what came back.
    pub fn curl(&self, args: &[&str], path: &str) -> Reply {
        curl(args, &self.url(path))
    }

    /// The same, with the Bearer token.
    pub fn authed(&self, args: &[&str], path: &str) -> Reply {
        let bearer = self.bearer();
        let mut all = vec!["-H", bearer.as_str()];
        all.extend_from_slice(args);
        self.curl(&all, path)
    }
}

pub fn curl(args: &[&str], url: &str) -> Reply {
    let dir = tempfile::tempdir().unwrap();
    let head = dir.path().join("head");
    let body = dir.path().join("body");
    let out = Command::new("curl")
        .args(["--path-as-is", "-sS", "--max-time", "30", "-D"])
        .arg(&head)
        .arg("-o")
        .arg(&body)
        .args(["-w", "%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0);
    let head = std::fs::read_to_string(&head).unwrap_or_default();
    let headers = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: std::fs::read(&body).unwrap_or_default(),
    }
}
