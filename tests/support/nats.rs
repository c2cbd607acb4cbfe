//! A NATS server with JetStream (Debian's `nats-server`) for the tests,
//! on a free loopback port, its store in the sandbox.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use super::{KillOnDrop, Sandbox, peer_available};

#[derive(Debug)]
pub struct Nats {
    pub server: KillOnDrop,
    /// `nats://127.0.0.1:PORT`
    pub url: String,
}

impl Nats {
    /// `None` (the test skips) when nats-server is missing outside CI.
    pub fn start(sandbox: &Sandbox) -> Option<Nats> {
        if !peer_available("nats-server", &["--version"]) {
            return None;
        }
        let store = sandbox.path("nats");
        let mut child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", "-1", "-js", "-sd"])
            .arg(&store)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut log = BufReader::new(child.stderr.take().unwrap());
        let server = KillOnDrop(child);
        // It announces its bound port: "Listening for client connections on 127.0.0.1:PORT".
        let mut line = String::new();
        let url = loop {
            line.clear();
            assert!(
                log.read_line(&mut line).unwrap() > 0,
                "nats-server ended before listening"
            );
            if let Some((_, addr)) = line.trim().split_once("Listening for client connections on ") {
                break format!("nats://{addr}");
            }
        };
        std::thread::spawn(move || for _ in log.lines() {});
        Some(Nats { server, url })
    }
}
