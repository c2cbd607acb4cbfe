//! Which of this host's addresses a request was sent to, so that a server
//! bound to 0.0.0.0 or :: answers from that same address.
//!
//! Without this the kernel picks the reply's source by the route back, and
//! on a host with several addresses (an alias, a second network) a device
//! that asked 10.0.0.2 gets its DATA from 10.0.0.1 and drops it: a TFTP
//! client only accepts the reply from the address it asked (RFC 1350 §4
//! names the TID by port, and firmware checks the address too). tftpd-hpa
//! and xinetd solve it the same way: IP_PKTINFO and IPV6_RECVPKTINFO on
//! the request socket, and the transfer's socket bound to that address.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd};

use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn, SockaddrIn6, SockaddrStorage, recvmsg, sendmsg,
    setsockopt, sockopt,
};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// A datagram read from the request socket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Received {
    pub len: usize,
    pub peer: SocketAddr,
    /// The local address it was sent to, when the kernel said.
    pub local: Option<IpAddr>,
}

/// Asks the kernel to tell, for every datagram, the address it was sent
/// to. An IPv6 socket that also takes IPv4 (dual stack) needs both.
pub(crate) fn enable(socket: &impl AsFd, ipv6: bool) -> io::Result<()> {
    if ipv6 {
        setsockopt(socket, sockopt::Ipv6RecvPacketInfo, &true)?;
        // Best effort: a v6-only socket refuses the IPv4 option.
        let _ = setsockopt(socket, sockopt::Ipv4PacketInfo, &true);
    } else {
        setsockopt(socket, sockopt::Ipv4PacketInfo, &true)?;
    }
    Ok(())
}

/// Receives one datagram with the address it was sent to.
pub(crate) async fn recv(socket: &UdpSocket, buf: &mut [u8]) -> io::Result<Received> {
    socket.async_io(Interest::READABLE, || recv_now(socket, buf)).await
}

fn recv_now(socket: &UdpSocket, buf: &mut [u8]) -> io::Result<Received> {
    // Room for either kind of packet info.
    let mut control = nix::cmsg_space!(nix::libc::in6_pktinfo, nix::libc::in_pktinfo);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<SockaddrStorage>(socket.as_raw_fd(), &mut iov, Some(&mut control), MsgFlags::empty())
        .map_err(io::Error::from)?;
    let peer = msg
        .address
        .as_ref()
        .and_then(socket_addr)
        .ok_or_else(|| io::Error::other("a datagram with no source address"))?;
    let mut local = None;
    if let Ok(cmsgs) = msg.cmsgs() {
        for cmsg in cmsgs {
            match cmsg {
                // ipi_spec_dst is the address a reply should come from:
                // the destination for unicast, the interface's address for
                // a broadcast request.
                ControlMessageOwned::Ipv4PacketInfo(info) => {
                    local = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(info.ipi_spec_dst.s_addr))));
                }
                ControlMessageOwned::Ipv6PacketInfo(info) => {
                    let addr = Ipv6Addr::from(info.ipi6_addr.s6_addr);
                    // A multicast request is answered from the route's choice.
                    if !addr.is_multicast() {
                        local = Some(IpAddr::V6(addr));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(Received {
        len: msg.bytes,
        peer,
        local,
    })
}

/// Sends `data` to `peer` from the local address `from` (the one the
/// request came to), on the request socket.
pub(crate) fn send_from(socket: &UdpSocket, data: &[u8], peer: SocketAddr, from: Option<IpAddr>) -> io::Result<()> {
    let iov = [IoSlice::new(data)];
    let v4;
    let v6;
    let control: Vec<ControlMessage<'_>> = match from {
        Some(IpAddr::V4(ip)) if peer.is_ipv4() || is_v4_mapped(peer) => {
            v4 = nix::libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: nix::libc::in_addr {
                    s_addr: u32::from(ip).to_be(),
                },
                ipi_addr: nix::libc::in_addr { s_addr: 0 },
            };
            vec![ControlMessage::Ipv4PacketInfo(&v4)]
        }
        Some(IpAddr::V6(ip)) if peer.is_ipv6() => {
            v6 = nix::libc::in6_pktinfo {
                ipi6_addr: nix::libc::in6_addr { s6_addr: ip.octets() },
                ipi6_ifindex: 0,
            };
            vec![ControlMessage::Ipv6PacketInfo(&v6)]
        }
        _ => Vec::new(),
    };
    let fd = socket.as_raw_fd();
    let sent = match peer {
        SocketAddr::V4(p) => sendmsg(fd, &iov, &control, MsgFlags::empty(), Some(&SockaddrIn::from(p))),
        SocketAddr::V6(p) => sendmsg(fd, &iov, &control, MsgFlags::empty(), Some(&SockaddrIn6::from(p))),
    };
    sent.map(drop).map_err(io::Error::from)
}

fn is_v4_mapped(addr: SocketAddr) -> bool {
    matches!(addr, SocketAddr::V6(a) if a.ip().to_ipv4_mapped().is_some())
}

fn socket_addr(storage: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = storage.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::new(v4.ip(), v4.port())));
    }
    let v6 = storage.as_sockaddr_in6()?;
    Some(SocketAddr::V6(SocketAddrV6::new(
        v6.ip(),
        v6.port(),
        v6.flowinfo(),
        v6.scope_id(),
    )))
}
