//! An acknowledged upload survives `kill -9` of the server at any moment:
//! uploads run while the server is killed at random points and restarted;
//! afterwards every upload the server confirmed is whole under its name,
//! and nothing under a final name is anything but a whole file that was
//! sent (never a torn or mixed one). `--fsync` makes the same hold across
//! a power loss; that is documented, and its cost measured in
//! BENCHMARKS.md, since a test cannot pull the plug.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sockit::files::{ClientConfig, FileClient, NoProgress};
use sockit_proto::path::RelPath;
use support::{Sandbox, Server};

/// Rounds of kill and restart, bounded in count and in time.
const ROUNDS: usize = 16;
const BUDGET: Duration = Duration::from_secs(90);

/// Deterministic bytes for upload `n` (xorshift), of a size that varies
/// from empty to a couple of MiB, so kills land in every phase.
fn payload(n: u64) -> Vec<u8> {
    let mut x = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let len = (x % (2 * 1024 * 1024)) as usize;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn start(sb: &Sandbox, root: &Path) -> Server {
    Server::start(sb, &["--insecure-no-auth", "--root", root.to_str().unwrap()])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_uploads_survive_kill_9_and_nothing_torn_is_ever_visible() {
    let sb = Sandbox::new();
    let root = sb.path("root");
    let src_dir = sb.path("src");
    std::fs::create_dir_all(&src_dir).unwrap();
    // name -> the payload number last *sent* under it, and whether the
    // server confirmed it.
    let sent: Arc<Mutex<HashMap<String, (u64, bool)>>> = Arc::default();
    let started = Instant::now();
    let mut next = 0u64;
    let mut kills = 0;
    for round in 0..ROUNDS {
        if started.elapsed() > BUDGET {
            break;
        }
        let srv = start(&sb, &root);
        let addr = srv.addr.clone();
        let (sent_c, src_c) = (Arc::clone(&sent), src_dir.clone());
        let first = next;
        // Uploads until the server dies under them. Names repeat across
        // rounds, so overwrites are killed mid-way too.
        let uploader = tokio::spawn(async move {
            let config = ClientConfig::new(addr, None);
            let Ok(mut client) = FileClient::connect(&config).await else {
                return 0;
            };
            let mut n = first;
            loop {
                let name = format!("f{}", n % 37);
                let local = src_c.join(format!("p{n}"));
                std::fs::write(&local, payload(n)).unwrap();
                sent_c.lock().unwrap().insert(name.clone(), (n, false));
                let put = client
                    .put(&local, &RelPath::parse(&name).unwrap(), false, &mut NoProgress)
                    .await;
                n += 1;
                match put {
                    Ok(_) => {
                        sent_c.lock().unwrap().insert(name, (n - 1, true));
                    }
                    Err(_) => return n - first,
                }
            }
        });
        // Kill at a point that moves every round: 20 to ~700 ms in.
        let delay = 20 + (round as u64 * 97) % 700;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let status = srv.signal("KILL");
        assert!(!status.success());
        kills += 1;
        next += tokio::time::timeout(Duration::from_secs(30), uploader)
            .await
            .unwrap()
            .unwrap()
            + 1;
        check(&root, &sent.lock().unwrap());
    }
    assert!(kills >= 5, "only {kills} kills ran in the budget");
    // A last server, alive: what was kept for a resume is invisible, and a
    // fresh upload over any of these names still works.
    let srv = start(&sb, &root);
    check(&root, &sent.lock().unwrap());
    let mut client = FileClient::connect(&ClientConfig::new(srv.addr.clone(), None))
        .await
        .unwrap();
    let local = src_dir.join("after");
    std::fs::write(&local, b"after the storm").unwrap();
    client
        .put(&local, &RelPath::parse("f0").unwrap(), false, &mut NoProgress)
        .await
        .unwrap();
    assert_eq!(std::fs::read(root.join("f0")).unwrap(), b"after the storm");
}

/// Every confirmed upload is whole; every file under a final name is a
/// whole payload that was sent under that name (the last one confirmed,
/// or one in flight whose commit landed before the kill).
fn check(root: &Path, sent: &HashMap<String, (u64, bool)>) {
    for entry in std::fs::read_dir(root).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if name == ".sockit" {
            continue;
        }
        let got = std::fs::read(entry.path()).unwrap();
        let Some(&(last, _)) = sent.get(&name) else {
            panic!("{name} was never sent");
        };
        // It must equal one payload ever sent under this name, whole.
        let whole = (0..=last).filter(|n| format!("f{}", n % 37) == name).any(|n| {
            let p = payload(n);
            p.len() == got.len() && p == got
        });
        assert!(whole, "{name} ({} bytes) is not a whole payload", got.len());
    }
    for (name, &(n, confirmed)) in sent {
        if confirmed {
            let got = std::fs::read(root.join(name)).unwrap_or_else(|_| panic!("confirmed {name} is gone"));
            assert!(got == payload(n), "confirmed {name} is not payload {n}");
        }
    }
}
