//! Subnet maths for `sockit ipcalc`: parsing `ADDR[/PREFIX|/MASK]`, the
//! IPv4 classes A-E as the seeds teach them, address kinds, network and
//! broadcast, host ranges and splitting into smaller subnets; IPv6 prefixes.
//!
//! Pure arithmetic on integers: nothing here resolves names or prints.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubnetError {
    #[error("'{0}' is not an IPv4 or IPv6 address")]
    BadAddress(String),
    #[error("'{0}' is not a prefix length or netmask")]
    BadMask(String),
    #[error("prefix /{prefix} is longer than the {bits} bits of the address")]
    PrefixTooLong { prefix: u32, bits: u32 },
    #[error("netmask {0} is not contiguous (its one bits must come first)")]
    NonContiguousMask(Ipv4Addr),
    #[error("a dotted netmask applies to IPv4 only; use /PREFIX for IPv6")]
    MaskOnIpv6,
    #[error("cannot split /{from} into /{into}: the new prefix must be at least as long")]
    BadSplit { from: u32, into: u32 },
    #[error("{0} and the network are not the same address family")]
    FamilyMismatch(IpAddr),
}

/// The classful class of an IPv4 address, from its leading bits (seed 004).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Class {
    /// Leading bit 0: 8 network bits (7 usable), 24 host bits.
    A,
    /// Leading bits 10: 16 network bits, 16 host bits.
    B,
    /// Leading bits 110: 24 network bits, 8 host bits.
    C,
    /// Leading bits 1110: multicast.
    D,
    /// Leading bits 1111: reserved for experiments.
    E,
}

impl Class {
    pub fn of(addr: Ipv4Addr) -> Class {
        match addr.octets()[0] {
            0..=127 => Class::A,
            128..=191 => Class::B,
            192..=223 => Class::C,
            224..=239 => Class::D,
            240..=255 => Class::E,
        }
    }

    /// The classful default prefix, used when no mask is given (as Debian's
    /// ipcalc does). Classes D and E have no host part: /4 covers the range.
    pub fn default_prefix(self) -> u32 {
        match self {
            Class::A => 8,
            Class::B => 16,
            Class::C => 24,
            Class::D | Class::E => 4,
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let letter = match self {
            Class::A => "A",
            Class::B => "B",
            Class::C => "C",
            Class::D => "D",
            Class::E => "E",
        };
        f.write_str(letter)
    }
}

/// What an address is for, from the IANA special-purpose registries
/// (RFC 6890 and the RFCs it lists).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// 0.0.0.0/8, :: — "this host on this network".
    Unspecified,
    /// RFC 1918 (10/8, 172.16/12, 192.168/16).
    Private,
    /// RFC 6598 carrier-grade NAT, 100.64/10.
    SharedCgnat,
    Loopback,
    /// 169.254/16, fe80::/10.
    LinkLocal,
    Multicast,
    /// 255.255.255.255.
    LimitedBroadcast,
    /// 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32.
    Documentation,
    /// 198.18/15 (RFC 2544).
    Benchmarking,
    /// 240/4 (class E) and other reserved blocks.
    Reserved,
    /// fc00::/7 (RFC 4193).
    UniqueLocal,
    /// ::ffff:0:0/96.
    Ipv4Mapped,
    /// Everything else: globally routable.
    Public,
}

impl Kind {
    pub fn of_v4(addr: Ipv4Addr) -> Kind {
        let [a, b, c, _] = addr.octets();
        match (a, b, c) {
            (0, _, _) => Kind::Unspecified,
            (10, _, _) => Kind::Private,
            (100, 64..=127, _) => Kind::SharedCgnat,
            (127, _, _) => Kind::Loopback,
            (169, 254, _) => Kind::LinkLocal,
            (172, 16..=31, _) => Kind::Private,
            (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Kind::Documentation,
            (192, 168, _) => Kind::Private,
            (198, 18..=19, _) => Kind::Benchmarking,
            (224..=239, _, _) => Kind::Multicast,
            _ if addr == Ipv4Addr::BROADCAST => Kind::LimitedBroadcast,
            (240..=255, _, _) => Kind::Reserved,
            _ => Kind::Public,
        }
    }

    pub fn of_v6(addr: Ipv6Addr) -> Kind {
        let bits = u128::from(addr);
        let in_prefix = |net: u128, prefix: u32| bits & mask128(prefix) == net;
        if addr.is_unspecified() {
            Kind::Unspecified
        } else if addr.is_loopback() {
            Kind::Loopback
        } else if in_prefix(0xffff_0000_0000, 96) {
            Kind::Ipv4Mapped
        } else if in_prefix(0xfe80 << 112, 10) {
            Kind::LinkLocal
        } else if in_prefix(0xfc00 << 112, 7) {
            Kind::UniqueLocal
        } else if in_prefix(0xff00 << 112, 8) {
            Kind::Multicast
        } else if in_prefix(0x2001_0db8 << 96, 32) {
            Kind::Documentation
        } else if in_prefix(0x2000 << 112, 3) {
            Kind::Public
        } else {
            Kind::Reserved
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Kind::Unspecified => "this network (unspecified)",
            Kind::Private => "private (RFC 1918)",
            Kind::SharedCgnat => "shared address space, carrier-grade NAT (RFC 6598)",
            Kind::Loopback => "loopback",
            Kind::LinkLocal => "link-local",
            Kind::Multicast => "multicast",
            Kind::LimitedBroadcast => "limited broadcast",
            Kind::Documentation => "documentation",
            Kind::Benchmarking => "benchmarking (RFC 2544)",
            Kind::Reserved => "reserved",
            Kind::UniqueLocal => "unique local (RFC 4193)",
            Kind::Ipv4Mapped => "IPv4-mapped",
            Kind::Public => "public",
        }
    }
}

/// An IPv4 address with its prefix length (0-32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    prefix: u32,
}

/// An IPv6 address with its prefix length (0-128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Net {
    addr: Ipv6Addr,
    prefix: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Net {
    V4(Ipv4Net),
    V6(Ipv6Net),
}

impl Net {
    /// Parses `ADDR`, `ADDR/PREFIX` or `ADDR/MASK`; a separate mask argument
    /// (`ipcalc 10.0.0.1 255.0.0.0`) is passed as `mask`. IPv4 masks may
    /// also be written as a wildcard (inverse mask, as Cisco ACLs do).
    /// With no mask, IPv4 takes its classful default and IPv6 /128.
    pub fn parse(input: &str, mask: Option<&str>) -> Result<Net, SubnetError> {
        let input = input.trim();
        let (addr_text, inline_mask) = match input.split_once('/') {
            Some((a, m)) => (a, Some(m)),
            None => (input, None),
        };
        let mask = match (inline_mask, mask) {
            (Some(_), Some(extra)) => return Err(SubnetError::BadMask(extra.to_string())),
            (m, None) | (None, m) => m,
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| SubnetError::BadAddress(addr_text.to_string()))?;
        match addr {
            IpAddr::V4(v4) => {
                let prefix = match mask {
                    Some(m) => parse_v4_mask(m)?,
                    None => Class::of(v4).default_prefix(),
                };
                Ok(Net::V4(Ipv4Net::new(v4, prefix)?))
            }
            IpAddr::V6(v6) => {
                let prefix = match mask {
                    Some(m) if m.contains('.') => return Err(SubnetError::MaskOnIpv6),
                    Some(m) => parse_prefix(m, 128)?,
                    None => 128,
                };
                Ok(Net::V6(Ipv6Net::new(v6, prefix)?))
            }
        }
    }
}

impl Ipv4Net {
    pub fn new(addr: Ipv4Addr, prefix: u32) -> Result<Ipv4Net, SubnetError> {
        if prefix > 32 {
            return Err(SubnetError::PrefixTooLong { prefix, bits: 32 });
        }
        Ok(Ipv4Net { addr, prefix })
    }

    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    pub fn prefix(&self) -> u32 {
        self.prefix
    }

    pub fn mask(&self) -> Ipv4Addr {
        Ipv4Addr::from(mask32(self.prefix))
    }

    pub fn wildcard(&self) -> Ipv4Addr {
        Ipv4Addr::from(!mask32(self.prefix))
    }

    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & mask32(self.prefix))
    }

    /// The directed broadcast address; /31 (RFC 3021 point-to-point) and
    /// /32 have none.
    pub fn broadcast(&self) -> Option<Ipv4Addr> {
        (self.prefix <= 30).then(|| Ipv4Addr::from(u32::from(self.addr) | !mask32(self.prefix)))
    }

    /// First and last usable host. In a /31 both addresses are hosts
    /// (RFC 3021); a /32 is the one host itself.
    pub fn hosts(&self) -> (Ipv4Addr, Ipv4Addr) {
        let net = u32::from(self.network());
        let last = net | !mask32(self.prefix);
        if self.prefix >= 31 {
            (Ipv4Addr::from(net), Ipv4Addr::from(last))
        } else {
            (Ipv4Addr::from(net + 1), Ipv4Addr::from(last - 1))
        }
    }

    /// Usable hosts: 2^(32-prefix) minus network and broadcast, except
    /// /31 (2) and /32 (1).
    pub fn host_count(&self) -> u64 {
        let size = 1u64 << (32 - self.prefix);
        if self.prefix >= 31 { size } else { size - 2 }
    }

    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & mask32(self.prefix) == u32::from(self.network())
    }

    /// The subnets of length `prefix` this network splits into, lazily (a
    /// /8 split into /30s is four million of them).
    pub fn split(&self, prefix: u32) -> Result<impl DoubleEndedIterator<Item = Ipv4Net> + use<>, SubnetError> {
        if prefix > 32 {
            return Err(SubnetError::PrefixTooLong { prefix, bits: 32 });
        }
        if prefix < self.prefix {
            return Err(SubnetError::BadSplit {
                from: self.prefix,
                into: prefix,
            });
        }
        let start = u64::from(u32::from(self.network()));
        let count = 1u64 << (prefix - self.prefix);
        let step = 1u64 << (32 - prefix);
        Ok((0..count).map(move |i| Ipv4Net {
            // start + i*step stays within the parent network, below 2^32.
            addr: Ipv4Addr::from(u32::try_from(start + i * step).unwrap_or(u32::MAX)),
            prefix,
        }))
    }

    pub fn class(&self) -> Class {
        Class::of(self.addr)
    }

    pub fn kind(&self) -> Kind {
        Kind::of_v4(self.addr)
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Ipv6Net {
    pub fn new(addr: Ipv6Addr, prefix: u32) -> Result<Ipv6Net, SubnetError> {
        if prefix > 128 {
            return Err(SubnetError::PrefixTooLong { prefix, bits: 128 });
        }
        Ok(Ipv6Net { addr, prefix })
    }

    pub fn addr(&self) -> Ipv6Addr {
        self.addr
    }

    pub fn prefix(&self) -> u32 {
        self.prefix
    }

    pub fn network(&self) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.addr) & mask128(self.prefix))
    }

    pub fn last(&self) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.addr) | !mask128(self.prefix))
    }

    /// log2 of the number of addresses; the count itself overflows u128 at /0.
    pub fn size_bits(&self) -> u32 {
        128 - self.prefix
    }

    pub fn contains(&self, addr: Ipv6Addr) -> bool {
        u128::from(addr) & mask128(self.prefix) == u128::from(self.network())
    }

    pub fn split(&self, prefix: u32) -> Result<impl Iterator<Item = Ipv6Net> + use<>, SubnetError> {
        if prefix > 128 {
            return Err(SubnetError::PrefixTooLong { prefix, bits: 128 });
        }
        if prefix < self.prefix {
            return Err(SubnetError::BadSplit {
                from: self.prefix,
                into: prefix,
            });
        }
        let start = u128::from(self.network());
        let new_bits = prefix - self.prefix;
        // More than 2^64 subnets cannot be listed anyway; cap the iterator.
        let count = if new_bits >= 64 { u64::MAX } else { 1u64 << new_bits };
        let step_shift = 128 - prefix;
        Ok((0..count).map(move |i| Ipv6Net {
            addr: Ipv6Addr::from(start | u128::from(i).checked_shl(step_shift).unwrap_or(0)),
            prefix,
        }))
    }

    pub fn kind(&self) -> Kind {
        Kind::of_v6(self.addr)
    }
}

impl fmt::Display for Ipv6Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The eight groups written out in full: `2001:0db8:0000:...`.
pub fn expanded_v6(addr: Ipv6Addr) -> String {
    let groups: Vec<String> = addr.segments().iter().map(|g| format!("{g:04x}")).collect();
    groups.join(":")
}

/// Dotted binary as the seeds draw it (`11000000.10101000.00000001.00001010`),
/// with a space where the network part ends, as Debian's ipcalc does.
pub fn binary_v4(addr: Ipv4Addr, prefix: u32) -> String {
    let bits = u32::from(addr);
    let mut out = String::with_capacity(36);
    for position in 0..32u32 {
        if position > 0 && position % 8 == 0 {
            out.push('.');
        }
        if position > 0 && position == prefix {
            out.push(' ');
        }
        out.push(if bits & (0x8000_0000 >> position) != 0 {
            '1'
        } else {
            '0'
        });
    }
    out
}

fn parse_prefix(text: &str, bits: u32) -> Result<u32, SubnetError> {
    let prefix: u32 = text.parse().map_err(|_| SubnetError::BadMask(text.to_string()))?;
    if prefix > bits {
        return Err(SubnetError::PrefixTooLong { prefix, bits });
    }
    Ok(prefix)
}

fn parse_v4_mask(text: &str) -> Result<u32, SubnetError> {
    if !text.contains('.') {
        return parse_prefix(text, 32);
    }
    let mask: Ipv4Addr = text.parse().map_err(|_| SubnetError::BadMask(text.to_string()))?;
    let bits = u32::from(mask);
    if bits.leading_ones() + bits.trailing_zeros() == 32 {
        return Ok(bits.leading_ones());
    }
    // A wildcard (inverse mask) such as 0.0.0.255.
    let inverse = !bits;
    if inverse.leading_ones() + inverse.trailing_zeros() == 32 {
        return Ok(inverse.leading_ones());
    }
    Err(SubnetError::NonContiguousMask(mask))
}

fn mask32(prefix: u32) -> u32 {
    u32::MAX.checked_shl(32 - prefix).unwrap_or(0)
}

fn mask128(prefix: u32) -> u128 {
    u128::MAX.checked_shl(128 - prefix).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(input: &str) -> Ipv4Net {
        match Net::parse(input, None).unwrap() {
            Net::V4(n) => n,
            Net::V6(_) => panic!("not v4"),
        }
    }

    fn v6(input: &str) -> Ipv6Net {
        match Net::parse(input, None).unwrap() {
            Net::V6(n) => n,
            Net::V4(_) => panic!("not v6"),
        }
    }

    fn a(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn class_c_private_24() {
        let n = v4("192.168.1.10/24");
        assert_eq!(n.mask(), a("255.255.255.0"));
        assert_eq!(n.wildcard(), a("0.0.0.255"));
        assert_eq!(n.network(), a("192.168.1.0"));
        assert_eq!(n.broadcast(), Some(a("192.168.1.255")));
        assert_eq!(n.hosts(), (a("192.168.1.1"), a("192.168.1.254")));
        assert_eq!(n.host_count(), 254);
        assert_eq!(n.class(), Class::C);
        assert_eq!(n.kind(), Kind::Private);
    }

    #[test]
    fn point_to_point_31_has_two_hosts_and_no_broadcast() {
        let n = v4("10.1.2.3/31");
        assert_eq!(n.network(), a("10.1.2.2"));
        assert_eq!(n.broadcast(), None);
        assert_eq!(n.hosts(), (a("10.1.2.2"), a("10.1.2.3")));
        assert_eq!(n.host_count(), 2);
    }

    #[test]
    fn host_route_32() {
        let n = v4("10.1.2.3/32");
        assert_eq!(n.network(), a("10.1.2.3"));
        assert_eq!(n.broadcast(), None);
        assert_eq!(n.hosts(), (a("10.1.2.3"), a("10.1.2.3")));
        assert_eq!(n.host_count(), 1);
        assert_eq!(n.wildcard(), a("0.0.0.0"));
    }

    #[test]
    fn everything_0() {
        let n = v4("0.0.0.0/0");
        assert_eq!(n.mask(), a("0.0.0.0"));
        assert_eq!(n.broadcast(), Some(a("255.255.255.255")));
        assert_eq!(n.hosts(), (a("0.0.0.1"), a("255.255.255.254")));
        assert_eq!(n.host_count(), 4_294_967_294);
        assert!(n.contains(a("8.8.8.8")));
    }

    #[test]
    fn classes_by_leading_bits() {
        for (addr, class) in [
            ("0.0.0.0", Class::A),
            ("127.255.255.255", Class::A),
            ("128.0.0.0", Class::B),
            ("191.255.0.1", Class::B),
            ("192.0.0.0", Class::C),
            ("223.255.255.255", Class::C),
            ("224.0.0.1", Class::D),
            ("239.1.1.1", Class::D),
            ("240.0.0.1", Class::E),
            ("255.255.255.255", Class::E),
        ] {
            assert_eq!(Class::of(a(addr)), class, "{addr}");
        }
    }

    #[test]
    fn classful_default_prefix_when_no_mask() {
        assert_eq!(v4("10.2.3.4").prefix(), 8);
        assert_eq!(v4("172.16.3.4").prefix(), 16);
        assert_eq!(v4("192.168.3.4").prefix(), 24);
        assert_eq!(v4("224.1.2.3").prefix(), 4);
    }

    #[test]
    fn kinds() {
        for (addr, kind) in [
            ("0.1.2.3", Kind::Unspecified),
            ("10.0.0.1", Kind::Private),
            ("172.31.255.255", Kind::Private),
            ("172.32.0.0", Kind::Public),
            ("100.64.0.1", Kind::SharedCgnat),
            ("127.0.0.1", Kind::Loopback),
            ("169.254.1.1", Kind::LinkLocal),
            ("192.0.2.5", Kind::Documentation),
            ("198.18.0.1", Kind::Benchmarking),
            ("224.0.0.251", Kind::Multicast),
            ("240.0.0.1", Kind::Reserved),
            ("255.255.255.255", Kind::LimitedBroadcast),
            ("8.8.8.8", Kind::Public),
        ] {
            assert_eq!(Kind::of_v4(a(addr)), kind, "{addr}");
        }
    }

    #[test]
    fn dotted_and_wildcard_masks() {
        assert_eq!(
            Net::parse("172.16.5.4", Some("255.255.240.0")).unwrap(),
            Net::V4(v4("172.16.5.4/20"))
        );
        assert_eq!(v4("172.16.5.4/255.255.240.0").prefix(), 20);
        assert_eq!(v4("10.0.0.1/0.0.0.255").prefix(), 24);
        assert_eq!(v4("10.0.0.1/0.0.0.0").prefix(), 0);
        assert_eq!(v4("10.0.0.1/255.255.255.255").prefix(), 32);
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        assert_eq!(
            Net::parse("300.1.1.1/24", None),
            Err(SubnetError::BadAddress("300.1.1.1".into()))
        );
        assert_eq!(
            Net::parse("10.0.0.1/33", None),
            Err(SubnetError::PrefixTooLong { prefix: 33, bits: 32 })
        );
        assert_eq!(
            Net::parse("10.0.0.1/255.0.255.0", None),
            Err(SubnetError::NonContiguousMask(a("255.0.255.0")))
        );
        assert_eq!(Net::parse("10.0.0.1/x", None), Err(SubnetError::BadMask("x".into())));
        assert_eq!(Net::parse("::1/255.0.0.0", None), Err(SubnetError::MaskOnIpv6));
        assert_eq!(Net::parse("", None), Err(SubnetError::BadAddress(String::new())));
        assert!(Net::parse("10.0.0.1/8", Some("255.0.0.0")).is_err());
        let msg = Net::parse("10.0.0.1/33", None).unwrap_err().to_string();
        assert_eq!(msg, "prefix /33 is longer than the 32 bits of the address");
    }

    #[test]
    fn split_lists_every_subnet_in_order() {
        let subnets: Vec<String> = v4("192.168.0.0/24").split(26).unwrap().map(|n| n.to_string()).collect();
        assert_eq!(
            subnets,
            [
                "192.168.0.0/26",
                "192.168.0.64/26",
                "192.168.0.128/26",
                "192.168.0.192/26"
            ]
        );
        let mut all = v4("0.0.0.0/0").split(32).unwrap();
        assert_eq!(all.size_hint(), (1 << 32, Some(1 << 32)));
        assert_eq!(all.next_back().unwrap().to_string(), "255.255.255.255/32");
        assert_eq!(all.next().unwrap().to_string(), "0.0.0.0/32");
        assert!(v4("10.0.0.0/24").split(16).is_err());
    }

    #[test]
    fn contains() {
        let n = v4("10.0.0.0/8");
        assert!(n.contains(a("10.255.0.1")));
        assert!(!n.contains(a("11.0.0.0")));
    }

    #[test]
    fn binary_view_marks_the_prefix() {
        assert_eq!(binary_v4(a("192.168.1.10"), 24), "11000000.10101000.00000001. 00001010");
        assert_eq!(
            binary_v4(a("255.255.240.0"), 20),
            "11111111.11111111.1111 0000.00000000"
        );
        assert_eq!(binary_v4(a("10.0.0.0"), 32), "00001010.00000000.00000000.00000000");
        assert_eq!(binary_v4(a("10.0.0.0"), 0), "00001010.00000000.00000000.00000000");
    }

    #[test]
    fn ipv6() {
        let n = v6("2001:db8:abcd:12::1/64");
        assert_eq!(n.network().to_string(), "2001:db8:abcd:12::");
        assert_eq!(n.last().to_string(), "2001:db8:abcd:12:ffff:ffff:ffff:ffff");
        assert_eq!(expanded_v6(n.addr()), "2001:0db8:abcd:0012:0000:0000:0000:0001");
        assert_eq!(n.kind(), Kind::Documentation);
        assert_eq!(n.size_bits(), 64);
        assert_eq!(v6("::1").prefix(), 128);
        assert_eq!(v6("::1").kind(), Kind::Loopback);
        assert_eq!(v6("fe80::1/64").kind(), Kind::LinkLocal);
        assert_eq!(v6("fd00::1/8").kind(), Kind::UniqueLocal);
        assert_eq!(v6("ff02::1").kind(), Kind::Multicast);
        assert_eq!(v6("::ffff:10.0.0.1").kind(), Kind::Ipv4Mapped);
        assert_eq!(v6("2606:4700::1111").kind(), Kind::Public);
        assert_eq!(v6("::").kind(), Kind::Unspecified);
        let halves: Vec<String> = v6("2001:db8::/32").split(34).unwrap().map(|n| n.to_string()).collect();
        assert_eq!(
            halves,
            [
                "2001:db8::/34",
                "2001:db8:4000::/34",
                "2001:db8:8000::/34",
                "2001:db8:c000::/34"
            ]
        );
        assert!(v6("::/0").contains("2001:db8::1".parse().unwrap()));
        let mut huge = v6("::/0").split(128).unwrap();
        assert_eq!(huge.nth(1).unwrap().to_string(), "::1/128");
    }
}
