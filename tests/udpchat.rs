//! `sockit udpchat` against a plain UDP peer: both directions at once,
//! the sender's address on each line, and GBK on the wire.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use support::{KillOnDrop, Sandbox};

#[test]
fn typed_lines_go_out_and_arrivals_show_their_sender() {
    let sandbox = Sandbox::new();
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let peer_addr = peer.local_addr().unwrap().to_string();
    let (mut child, first) = support::spawn_announced(sandbox.cmd().args([
        "udpchat",
        "--listen",
        "127.0.0.1:0",
        "--peer",
        &peer_addr,
        "--encoding",
        "gbk",
    ]));
    let addr: SocketAddr = first.split_whitespace().nth(3).unwrap().parse().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let _child = KillOnDrop(child);

    // 你好 typed (UTF-8 terminal) leaves as GBK.
    stdin.write_all("你好\n".as_bytes()).unwrap();
    stdin.flush().unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = peer.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], &[0xc4, 0xe3, 0xba, 0xc3]);
    assert_eq!(from, addr);
    // GBK from the peer, and from a stranger, are shown with their senders.
    peer.send_to(&[0xd4, 0xd9, 0xbc, 0xfb], addr).unwrap();
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(
        line.ends_with(&format!("] {}: 再见\n", peer.local_addr().unwrap())),
        "{line}"
    );
    assert!(
        line.starts_with('[') && line.as_bytes()[9] == b'.',
        "a [HH:MM:SS.mmm] stamp: {line}"
    );
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    stranger.send_to(b"hi", addr).unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    assert!(
        line.ends_with(&format!("] {}: hi\n", stranger.local_addr().unwrap())),
        "{line}"
    );
}
