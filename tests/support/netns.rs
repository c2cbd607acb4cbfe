//! Network namespaces a test creates for itself (and deletes on drop), so
//! broadcasts and fixed ports stay inside them. Creating one needs root;
//! where that fails the test is skipped, except in CI, where it must run.
#![allow(dead_code)]

use std::process::{Command, Stdio};

pub fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Says why a namespace test does not run; fails instead in CI.
pub fn skip() {
    assert!(
        std::env::var("CI").is_err(),
        "network namespaces are required in CI (run as root)"
    );
    eprintln!("skipping: cannot create network namespaces here");
}

/// One namespace with its loopback up.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn create(tag: &str) -> Option<Netns> {
        let ns = Netns {
            name: format!("sk{tag}-{}", std::process::id()),
        };
        if !ip(&["netns", "add", &ns.name]) {
            return None;
        }
        ip(&["netns", "exec", &ns.name, "ip", "link", "set", "lo", "up"]).then_some(ns)
    }

    /// `program` run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    pub fn sockit(&self) -> Command {
        self.command(env!("CARGO_BIN_EXE_sockit"))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting a namespace deletes the interfaces inside it.
        ip(&["netns", "del", &self.name]);
    }
}

/// Two namespaces joined by a veth pair on a /24: hosts `SUBNET.1` (a) and
/// `SUBNET.2` (b), broadcast `SUBNET.255`.
#[derive(Debug)]
pub struct Lan {
    pub a: Netns,
    pub b: Netns,
    pub subnet: String,
    /// The veth ends: `devs.0` in a, `devs.1` in b.
    pub devs: (String, String),
}

impl Lan {
    /// Routes multicast (224.0.0.0/4) out of each host's veth, as a LAN's
    /// default route would.
    pub fn route_multicast(&self) -> bool {
        [(&self.a, &self.devs.0), (&self.b, &self.devs.1)]
            .iter()
            .all(|(ns, dev)| {
                ip(&[
                    "netns",
                    "exec",
                    &ns.name,
                    "ip",
                    "route",
                    "add",
                    "224.0.0.0/4",
                    "dev",
                    dev,
                ])
            })
    }

    pub fn create(tag: &str) -> Option<Lan> {
        let id = std::process::id();
        let a = Netns::create(&format!("{tag}a"))?;
        let b = Netns::create(&format!("{tag}b"))?;
        // 10.(200 + pid % 50).(pid / 50 % 250).0/24: unlikely to collide
        // between concurrent runs, and private to the namespaces anyway.
        let subnet = format!("10.{}.{}", 200 + id % 50, id / 50 % 250);
        let (va, vb) = (format!("v{tag}a{}", id % 100_000), format!("v{tag}b{}", id % 100_000));
        if !ip(&["link", "add", &va, "type", "veth", "peer", "name", &vb])
            || !ip(&["link", "set", &va, "netns", &a.name])
            || !ip(&["link", "set", &vb, "netns", &b.name])
        {
            return None;
        }
        for (ns, dev, host) in [(&a, &va, 1), (&b, &vb, 2)] {
            let addr = format!("{subnet}.{host}/24");
            let ok = ip(&[
                "netns",
                "exec",
                &ns.name,
                "ip",
                "addr",
                "add",
                &addr,
                "broadcast",
                "+",
                "dev",
                dev,
            ]) && ip(&["netns", "exec", &ns.name, "ip", "link", "set", dev, "up"]);
            if !ok {
                return None;
            }
        }
        Some(Lan {
            a,
            b,
            subnet,
            devs: (va, vb),
        })
    }
}
