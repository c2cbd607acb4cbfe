//! Two-way UDP chat (`sockit udpchat`): what is typed goes to one peer, and
//! whatever arrives, from anyone, is reported with its sender, both at once
//! (the course notes' chat with a sending thread and a receiving thread).
//!
//! Input arrives on a channel and every event leaves on another; this
//! module neither prints nor decodes text.

use std::io;
use std::net::SocketAddr;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::udp::MAX_DATAGRAM;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpChatEvent {
    Received {
        from: SocketAddr,
        data: Bytes,
    },
    Sent {
        to: SocketAddr,
        len: usize,
    },
    /// The peer's host said no one listens on its port (ICMP).
    PeerNotListening,
}

/// Runs until input ends or the event receiver goes away.
pub async fn run(
    socket: UdpSocket,
    peer: SocketAddr,
    mut input: mpsc::Receiver<Bytes>,
    events: mpsc::Sender<UdpChatEvent>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let event = tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok((n, from)) => UdpChatEvent::Received { from, data: Bytes::copy_from_slice(buf.get(..n).unwrap_or_default()) },
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => UdpChatEvent::PeerNotListening,
                Err(e) => {
                    tracing::debug!(error = %e, "udpchat receive failed");
                    continue;
                }
            },
            typed = input.recv() => match typed {
                Some(data) => match socket.send_to(&data, peer).await {
                    Ok(len) => UdpChatEvent::Sent { to: peer, len },
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => UdpChatEvent::PeerNotListening,
                    Err(e) => {
                        tracing::debug!(error = %e, "udpchat send failed");
                        continue;
                    }
                },
                None => return,
            },
        };
        if events.send(event).await.is_err() {
            return;
        }
    }
}
