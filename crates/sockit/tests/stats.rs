//! The figures services report (sockit::stats): a TFTP transfer and a
//! framed upload are listed while they run and gone when they end.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::sync::mpsc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use sockit::stats::Stats;
use sockit::tftp::client::{self, ClientOptions};
use sockit::tftp::drive::Observer;
use sockit::tftp::server::{TftpConfig, TftpServer};
use sockit_proto::tftp::options::Ask;
use sockit_proto::tftp::packet::Mode;

/// Pauses the client once its first bytes arrived, until the test lets it go, so
/// the server's transfer is caught in progress.
struct PauseOnce {
    reached: Option<mpsc::Sender<()>>,
    go: mpsc::Receiver<()>,
}

impl Observer for PauseOnce {
    fn progress(&mut self, bytes: u64) -> bool {
        if bytes == 0 {
            return true;
        }
        if let Some(reached) = self.reached.take() {
            let _ = reached.send(());
            let _ = self.go.recv_timeout(Duration::from_secs(60));
        }
        true
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tftp_read_is_listed_while_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("fw.bin"), vec![9u8; 4 << 20]).unwrap();
    let stats = Stats::new();
    let mut config = TftpConfig::new(root);
    config.stats = stats.clone();
    let server = TftpServer::bind("127.0.0.1:0".parse().unwrap(), config).unwrap();
    let addr = server.local_addr();
    let stop = CancellationToken::new();
    tokio::spawn(server.run(stop.clone()));

    let (reached_tx, reached) = mpsc::channel();
    let (go_tx, go) = mpsc::channel();
    let observer = Box::new(PauseOnce {
        reached: Some(reached_tx),
        go,
    });
    let opts = ClientOptions {
        ask: Ask {
            blksize: Some(1428),
            tsize: Some(0),
            ..Ask::default()
        },
        mode: Mode::Octet,
        config: Default::default(),
    };
    let local = dir.path().join("got.bin");
    let getting = tokio::spawn({
        let local = local.clone();
        async move { client::get(addr, "fw.bin", &local, opts, observer).await }
    });
    tokio::task::spawn_blocking(move || reached.recv_timeout(Duration::from_secs(60)).unwrap())
        .await
        .unwrap();
    let snapshot = stats.snapshot();
    let shown = snapshot.transfers.iter().find(|t| t.kind == "tftp read").unwrap();
    assert_eq!(shown.name, "fw.bin");
    assert_eq!(shown.size, Some(4 << 20));
    assert!(shown.peer.is_some());
    go_tx.send(()).unwrap();
    getting.await.unwrap().unwrap();
    assert_eq!(std::fs::read(&local).unwrap().len(), 4 << 20);
    // Gone once done (the server's side ends with the last ACK).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !stats.snapshot().transfers.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "still listed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.cancel();
}
