//! Starting the real `sockit` binary for tests: a hermetic environment (its
//! own config folder, so its own default key) and a server that announces
//! its bound address on its first stdout line.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub mod nats;
pub mod ncat;
pub mod netns;
pub mod s3;
pub mod tftp;
pub mod web;

pub fn sockit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sockit"))
}

/// Whether an independent peer can be run (`cmd probe...` starts). A
/// missing peer skips the test with a message, except in CI, where the
/// test script installs every peer and a missing one is a failure.
pub fn peer_available(cmd: &str, probe: &[&str]) -> bool {
    let ok = Command::new(cmd)
        .args(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !ok {
        assert!(
            std::env::var("CI").is_err(),
            "{cmd} is required for the interop tests in CI"
        );
        eprintln!("skipping: {cmd} not found");
    }
    ok
}

/// A temporary home for one test: config folder, server root, client folder.
#[derive(Debug)]
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A `sockit` command with this sandbox's environment and working folder.
    pub fn cmd(&self) -> Command {
        self.inside(sockit())
    }

    /// `c` (sockit, or sockit under a wrapper such as `ip netns exec`) with
    /// this sandbox's environment and working folder.
    pub fn inside(&self, mut c: Command) -> Command {
        let work = self.path("work");
        std::fs::create_dir_all(&work).unwrap();
        c.current_dir(work)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path("home"))
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env("SOCKIT_LOG", "warn");
        c
    }

    pub fn assert_cmd(&self) -> assert_cmd::Command {
        assert_cmd::Command::from_std(self.cmd())
    }
}

/// A server command that announces several listeners, one line each:
/// `listening on tcp|udp ADDR (SERVICE)`. Returns the server and, per
/// line, (protocol, address, service).
pub fn start_listeners(sandbox: &Sandbox, args: &[&str], lines: usize) -> (Child, Vec<(String, String, String)>) {
    let mut child = sandbox
        .cmd()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut found = Vec::new();
    for _ in 0..lines {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let rest = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected line {line:?}"));
        let mut parts = rest.splitn(3, ' ');
        let proto = parts.next().unwrap().to_owned();
        let addr = parts.next().unwrap().to_owned();
        let service = parts.next().unwrap_or("").trim_matches(['(', ')']).to_owned();
        found.push((proto, addr, service));
    }
    std::thread::spawn(move || for _ in out.lines() {});
    (child, found)
}

/// `sockit echo serve` on TCP and UDP (port 0) with `extra` flags; returns
/// the server (killed on drop) and its TCP and UDP addresses.
pub fn start_echo(sandbox: &Sandbox, extra: &[&str]) -> (KillOnDrop, String, String) {
    let mut args = vec!["echo", "serve", "--tcp", "127.0.0.1:0", "--udp", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let (child, found) = start_listeners(sandbox, &args, 2);
    let addr_of = |proto: &str| found.iter().find(|f| f.0 == proto).unwrap().1.clone();
    (KillOnDrop(child), addr_of("tcp"), addr_of("udp"))
}

/// A running server, killed (by its PID) when dropped.
#[derive(Debug)]
pub struct Server {
    pub child: Child,
    pub addr: String,
    /// The whole first line: `listening on tcp ADDR (files, auth: …, …)`.
    pub banner: String,
    /// The web listener's `web: URL` (with its `#token=…`), when it runs.
    pub web_url: Option<String>,
}

impl Server {
    /// Starts `sockit serve ARGS --listen 127.0.0.1:0` (and its web
    /// listener on `127.0.0.1:0`, unless ARGS say otherwise) and reads the
    /// addresses it announces.
    pub fn start(sandbox: &Sandbox, args: &[&str]) -> Self {
        let web = !args.iter().any(|a| *a == "--no-web" || *a == "--config");
        let mut cmd = sandbox.cmd();
        cmd.arg("serve").args(["--listen", "127.0.0.1:0"]).args(args);
        Self::start_announcing(&mut cmd, web)
    }

    pub fn start_cmd(cmd: &mut Command) -> Self {
        Self::start_announcing(cmd, false)
    }

    /// Starts a prepared `serve` command; with `web`, it also reads the web
    /// listener's two lines.
    pub fn start_announcing(cmd: &mut Command, web: bool) -> Self {
        let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut banner = String::new();
        out.read_line(&mut banner).unwrap();
        let addr = banner
            .strip_prefix("listening on tcp ")
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or_else(|| panic!("unexpected first line {banner:?}"))
            .to_owned();
        let web_url = web.then(|| {
            // `listening on tcp ADDR (web, …)`, then `web: URL`.
            let mut line = String::new();
            for _ in 0..2 {
                line.clear();
                out.read_line(&mut line).unwrap();
            }
            line.trim()
                .strip_prefix("web: ")
                .unwrap_or_else(|| panic!("unexpected web line {line:?}"))
                .to_owned()
        });
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in out.lines() {});
        Self {
            child,
            addr,
            banner,
            web_url,
        }
    }

    /// Sends a signal (`"TERM"`, `"INT"`) by PID and returns the exit status.
    pub fn signal(mut self, name: &str) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").arg(format!("-{name}")).arg(&pid).status().unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// Kills a child process (by its PID) when dropped.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns `cmd` with every stream piped and reads the first stderr line (a
/// listener's `listening on …`); the rest of stderr is drained, so the
/// child never blocks on it. Returns the child and that line, trimmed.
pub fn spawn_announced(cmd: &mut Command) -> (Child, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    err.read_line(&mut first).unwrap();
    std::thread::spawn(move || for _ in err.lines() {});
    (child, first.trim().to_owned())
}
