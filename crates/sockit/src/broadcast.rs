//! UDP broadcast: send one datagram to the broadcast address of every
//! interface the bind address covers (SO_BROADCAST), and listen for them.
//! Which addresses those are is `sockit_proto::broadcast::targets`.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use sockit_proto::broadcast::{InterfaceAddr, targets};

use crate::Error;
use crate::udp::MAX_DATAGRAM;

/// The interfaces' IPv4 addresses, from getifaddrs.
pub fn interfaces() -> Result<Vec<InterfaceAddr>, Error> {
    let all = if_addrs::get_if_addrs().map_err(Error::io("listing the interfaces"))?;
    Ok(all
        .into_iter()
        .filter(|i| i.is_oper_up())
        .filter_map(|i| match i.addr {
            if_addrs::IfAddr::V4(v4) => Some(InterfaceAddr {
                ip: v4.ip,
                broadcast: v4.broadcast,
            }),
            if_addrs::IfAddr::V6(_) => None,
        })
        .collect())
}

/// Sends `payload` from `bind` to port `port` of every broadcast address
/// `bind` covers; returns where it went.
pub async fn send(bind: SocketAddr, port: u16, payload: &[u8]) -> Result<Vec<SocketAddr>, Error> {
    let IpAddr::V4(bind_ip) = bind.ip() else {
        return Err(Error::Usage(
            "broadcast is IPv4 only (IPv6 has multicast instead)".into(),
        ));
    };
    let to = targets(bind_ip, &interfaces()?).map_err(|e| Error::Usage(e.to_string()))?;
    let socket = crate::nc::udp::bind(bind)?;
    socket.set_broadcast(true).map_err(Error::io("setting SO_BROADCAST"))?;
    let mut sent = Vec::with_capacity(to.len());
    for ip in to {
        let addr = SocketAddr::new(IpAddr::V4(ip), port);
        socket.send_to(payload, addr).await.map_err(|source| Error::Connect {
            addr: addr.to_string(),
            source,
        })?;
        sent.push(addr);
    }
    Ok(sent)
}

/// Binds a listener on `bind` (SO_BROADCAST and SO_REUSEADDR set, so
/// several listeners on one host can share the port).
pub fn listener(bind: SocketAddr) -> Result<UdpSocket, Error> {
    let socket = crate::nc::udp::bind(bind)?;
    socket.set_broadcast(true).map_err(Error::io("setting SO_BROADCAST"))?;
    Ok(socket)
}

/// Reports every datagram until the receiver goes away.
pub async fn listen(socket: UdpSocket, events: mpsc::Sender<(SocketAddr, Bytes)>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, from)) => {
                if events
                    .send((from, Bytes::copy_from_slice(buf.get(..n).unwrap_or_default())))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(e) => tracing::debug!(error = %e, "broadcast receive failed"),
        }
    }
}
