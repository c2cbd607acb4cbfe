//! The IPMSG node as a library: it lives as long as a handle does.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::time::Duration;

use tokio::net::UdpSocket;

use sockit::ipmsg::{IpmsgOptions, start};
use sockit_proto::assist::text::TextEncoding;
use sockit_proto::ipmsg::{Mode, Packet};

/// Only a hang reaches this.
const PATIENCE: Duration = Duration::from_secs(30);

async fn next_mode(peer: &UdpSocket) -> Mode {
    let mut buf = [0u8; 2048];
    let n = tokio::time::timeout(PATIENCE, peer.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    Packet::decode(&buf[..n]).unwrap().command.mode
}

#[tokio::test]
async fn dropping_the_last_handle_says_goodbye_and_stops_the_node() {
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let options = IpmsgOptions {
        bind: "127.0.0.1:0".parse().unwrap(),
        user: "alice".into(),
        host: "box".into(),
        nick: "Alice".into(),
        group: String::new(),
        peers: vec![peer.local_addr().unwrap()],
        broadcast: false,
        broadcast_port: 2425,
        legacy: TextEncoding::Gbk,
        force_encoding: None,
        retry_interval: Duration::from_secs(1),
        max_attempts: 3,
    };
    let (node, events) = start(options).await.unwrap();
    let tcp = node.local_addr();
    assert_eq!(next_mode(&peer).await, Mode::BrEntry);
    drop((node, events));
    // Its own file server holds no handle, so the node notices it is no
    // longer wanted, says goodbye, and closes its file port.
    assert_eq!(next_mode(&peer).await, Mode::BrExit);
    let closed = tokio::time::timeout(PATIENCE, async {
        while tokio::net::TcpStream::connect(tcp).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(closed.is_ok(), "the file port closed");
}
