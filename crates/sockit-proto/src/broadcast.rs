//! Where a broadcast goes: the rule that keeps a broadcast inside the
//! interfaces its bind address covers.
//!
//! - bound to a loopback address: loopback only (127.255.255.255), never
//!   another interface;
//! - bound to one interface's address: that interface's broadcast address;
//! - bound to 0.0.0.0: every interface's broadcast address except
//!   loopback's, not only 255.255.255.255 (which leaves by one interface,
//!   whichever the routing table picks).

use std::net::Ipv4Addr;

/// An interface's IPv4 address and its broadcast address, if it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterfaceAddr {
    pub ip: Ipv4Addr,
    pub broadcast: Option<Ipv4Addr>,
}

/// The loopback network's broadcast address.
pub const LOOPBACK_BROADCAST: Ipv4Addr = Ipv4Addr::new(127, 255, 255, 255);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("no interface has the address {0}")]
    NoSuchAddress(Ipv4Addr),
    #[error("the interface with {0} has no broadcast address")]
    NoBroadcast(Ipv4Addr),
    #[error("no interface with a broadcast address is up")]
    NoInterfaces,
}

pub fn targets(bind: Ipv4Addr, interfaces: &[InterfaceAddr]) -> Result<Vec<Ipv4Addr>, TargetError> {
    if bind.is_loopback() {
        return Ok(vec![LOOPBACK_BROADCAST]);
    }
    if bind.is_unspecified() {
        let mut all: Vec<Ipv4Addr> = interfaces
            .iter()
            .filter(|i| !i.ip.is_loopback())
            .filter_map(|i| i.broadcast)
            .collect();
        all.sort_unstable();
        all.dedup();
        return if all.is_empty() {
            Err(TargetError::NoInterfaces)
        } else {
            Ok(all)
        };
    }
    let owner = interfaces
        .iter()
        .find(|i| i.ip == bind)
        .ok_or(TargetError::NoSuchAddress(bind))?;
    owner.broadcast.map(|b| vec![b]).ok_or(TargetError::NoBroadcast(bind))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ifs() -> Vec<InterfaceAddr> {
        vec![
            InterfaceAddr {
                ip: Ipv4Addr::new(127, 0, 0, 1),
                broadcast: None,
            },
            InterfaceAddr {
                ip: Ipv4Addr::new(192, 168, 4, 75),
                broadcast: Some(Ipv4Addr::new(192, 168, 4, 255)),
            },
            InterfaceAddr {
                ip: Ipv4Addr::new(10, 1, 2, 3),
                broadcast: Some(Ipv4Addr::new(10, 1, 255, 255)),
            },
            InterfaceAddr {
                ip: Ipv4Addr::new(172, 16, 0, 9),
                broadcast: None,
            },
        ]
    }

    #[test]
    fn loopback_stays_on_loopback() {
        assert_eq!(
            targets(Ipv4Addr::new(127, 0, 0, 2), &ifs()),
            Ok(vec![LOOPBACK_BROADCAST])
        );
    }

    #[test]
    fn one_interface_or_all() {
        assert_eq!(
            targets(Ipv4Addr::new(10, 1, 2, 3), &ifs()),
            Ok(vec![Ipv4Addr::new(10, 1, 255, 255)])
        );
        assert_eq!(
            targets(Ipv4Addr::UNSPECIFIED, &ifs()),
            Ok(vec![Ipv4Addr::new(10, 1, 255, 255), Ipv4Addr::new(192, 168, 4, 255)])
        );
        assert_eq!(
            targets(Ipv4Addr::new(172, 16, 0, 9), &ifs()),
            Err(TargetError::NoBroadcast(Ipv4Addr::new(172, 16, 0, 9)))
        );
        assert_eq!(
            targets(Ipv4Addr::new(8, 8, 8, 8), &ifs()),
            Err(TargetError::NoSuchAddress(Ipv4Addr::new(8, 8, 8, 8)))
        );
        assert_eq!(
            targets(Ipv4Addr::UNSPECIFIED, &ifs()[..1]),
            Err(TargetError::NoInterfaces)
        );
    }
}
