//! `ncat` as a line-oriented peer: what a user types into netcat, and the
//! lines it prints, with bounded waits.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use super::KillOnDrop;

/// Longest wait for a line: generous for a loaded machine; only a hang
/// reaches it.
const PATIENCE: Duration = Duration::from_secs(60);

/// A line-oriented `ncat` peer (a chat member, a client of a listener).
pub struct NcMember {
    pub child: KillOnDrop,
    stdin: std::process::ChildStdin,
    lines: std::sync::mpsc::Receiver<String>,
}

impl NcMember {
    pub fn join(addr: &str) -> Self {
        let (host, port) = addr.rsplit_once(':').unwrap();
        let mut child = std::process::Command::new("ncat")
            .args([host, port])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(out)) {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child: KillOnDrop(child),
            stdin,
            lines,
        }
    }

    pub fn say(&mut self, line: &str) {
        std::io::Write::write_all(&mut self.stdin, format!("{line}\n").as_bytes()).unwrap();
    }

    /// Waits (bounded) for a line containing `text`; returns the lines up
    /// to and including it.
    pub fn expect(&self, text: &str) -> Vec<String> {
        let deadline = Instant::now() + PATIENCE;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(text);
                    seen.push(line);
                    if found {
                        return seen;
                    }
                }
                Err(_) => panic!("no line with {text:?}; saw {seen:#?}"),
            }
        }
    }
}
