//! A captured frame down to its TCP segment or UDP datagram.

use std::net::{IpAddr, SocketAddr};

use etherparse::{EtherType, NetSlice, SlicedPacket, TransportSlice};
use serde::Serialize;

/// tcpdump.org link types this reads.
mod link {
    pub const NULL: u32 = 0;
    pub const ETHERNET: u32 = 1;
    pub const RAW: u32 = 101;
    pub const LOOP: u32 = 108;
    pub const LINUX_SLL: u32 = 113;
    pub const IPV4: u32 = 228;
    pub const IPV6: u32 = 229;
    pub const LINUX_SLL2: u32 = 276;
}

/// The TCP header fields the ladder shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TcpHeader {
    /// As on the wire; the ladder shows them relative to each side's
    /// initial sequence number, as Wireshark does.
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    pub window: u16,
}

/// The flags byte, low bit FIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;

    pub fn has(self, flag: u8) -> bool {
        self.0 & flag != 0
    }

    /// `SYN,ACK`, in Wireshark's order.
    pub fn names(self) -> Vec<&'static str> {
        [
            (Self::CWR, "CWR"),
            (Self::ECE, "ECE"),
            (Self::URG, "URG"),
            (Self::SYN, "SYN"),
            (Self::FIN, "FIN"),
            (Self::RST, "RST"),
            (Self::PSH, "PSH"),
            (Self::ACK, "ACK"),
        ]
        .into_iter()
        .filter(|(f, _)| self.has(*f))
        .map(|(_, n)| n)
        .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp(TcpHeader),
    Udp,
}

/// A TCP segment or UDP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub transport: Transport,
    pub payload: &'a [u8],
}

/// Why a frame is not a TCP segment or UDP datagram this can follow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Skip {
    #[error("link type {0} is not one this reads (Ethernet, Linux cooked, raw IP, BSD loopback)")]
    Link(u32),
    #[error("not IP: {0}")]
    NotIp(String),
    #[error("neither TCP nor UDP")]
    OtherTransport,
    #[error("an IP fragment (not reassembled)")]
    Fragment,
    #[error("undecodable: {0}")]
    Malformed(String),
}

/// Decodes one frame of the given link type. Total: any bytes give a
/// packet or the reason there is none.
pub fn decode(link: u32, data: &[u8]) -> Result<Packet<'_>, Skip> {
    let sliced = match link {
        link::ETHERNET => SlicedPacket::from_ethernet(data),
        link::RAW | link::IPV4 | link::IPV6 => SlicedPacket::from_ip(data),
        link::LINUX_SLL => SlicedPacket::from_linux_sll(data),
        // SLL2: protocol type (2 bytes), reserved (2), interface (4),
        // ARPHRD (2), packet type (1), address length (1), address (8).
        link::LINUX_SLL2 => {
            let (Some(kind), Some(rest)) = (super::apps::be16(data, 0), data.get(20..)) else {
                return Err(Skip::Malformed("shorter than a Linux cooked (v2) header".into()));
            };
            SlicedPacket::from_ether_type(EtherType(kind), rest)
        }
        // BSD loopback: a 4-byte address family in the capturing host's
        // byte order (NULL) or big-endian (LOOP); the IP version tells.
        link::NULL | link::LOOP => match data.get(4..) {
            Some(rest) => SlicedPacket::from_ip(rest),
            None => return Err(Skip::Malformed("shorter than a loopback header".into())),
        },
        other => return Err(Skip::Link(other)),
    }
    .map_err(|e| Skip::Malformed(e.to_string()))?;
    let (src_ip, dst_ip, fragmented): (IpAddr, IpAddr, bool) = match &sliced.net {
        Some(NetSlice::Ipv4(ip)) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
            ip.is_payload_fragmented(),
        ),
        Some(NetSlice::Ipv6(ip)) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
            ip.is_payload_fragmented(),
        ),
        Some(NetSlice::Arp(_)) => return Err(Skip::NotIp("ARP".into())),
        None => return Err(Skip::NotIp("no network layer".into())),
    };
    if fragmented {
        return Err(Skip::Fragment);
    }
    match sliced.transport {
        Some(TransportSlice::Tcp(tcp)) => Ok(Packet {
            src: SocketAddr::new(src_ip, tcp.source_port()),
            dst: SocketAddr::new(dst_ip, tcp.destination_port()),
            transport: Transport::Tcp(TcpHeader {
                seq: tcp.sequence_number(),
                ack: tcp.acknowledgment_number(),
                flags: TcpFlags(tcp.header_slice().get(13).copied().unwrap_or(0)),
                window: tcp.window_size(),
            }),
            payload: tcp.payload(),
        }),
        Some(TransportSlice::Udp(udp)) => Ok(Packet {
            src: SocketAddr::new(src_ip, udp.source_port()),
            dst: SocketAddr::new(dst_ip, udp.destination_port()),
            transport: Transport::Udp,
            payload: udp.payload(),
        }),
        _ => Err(Skip::OtherTransport),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_named_in_wiresharks_order() {
        assert_eq!(TcpFlags(0x12).names(), ["SYN", "ACK"]);
        assert_eq!(TcpFlags(0x19).names(), ["FIN", "PSH", "ACK"]);
    }

    #[test]
    fn an_ethernet_udp_frame_decodes_to_its_ports_and_payload() {
        let builder = etherparse::PacketBuilder::ethernet2([0; 6], [0; 6])
            .ipv4([127, 0, 0, 1], [127, 0, 0, 2], 64)
            .udp(4000, 69);
        let mut frame = Vec::new();
        builder.write(&mut frame, b"hello").unwrap();
        let p = decode(link::ETHERNET, &frame).unwrap();
        assert_eq!(p.src, "127.0.0.1:4000".parse().unwrap());
        assert_eq!(p.dst, "127.0.0.2:69".parse().unwrap());
        assert_eq!(p.payload, b"hello");
        assert_eq!(p.transport, Transport::Udp);
        assert!(matches!(decode(link::ETHERNET, &frame[..20]), Err(Skip::Malformed(_))));
        assert!(matches!(decode(9999, &frame), Err(Skip::Link(9999))));
    }
}
