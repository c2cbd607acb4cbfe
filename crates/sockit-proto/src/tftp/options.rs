//! Option negotiation: blksize (RFC 2348), timeout and tsize (RFC 2349),
//! windowsize (RFC 7440), through the OACK of RFC 2347.
//!
//! The server accepts, clamps or ignores each option it is offered and
//! answers with the ones it accepted; the client checks that answer against
//! what it asked, and refuses (ERROR 8) anything it did not ask for or
//! anything larger than it asked.

use super::packet::{Mode, Options};

/// RFC 1350's block size, used when no blksize is negotiated.
pub const DEFAULT_BLKSIZE: u16 = 512;
/// RFC 2348 §2: valid block sizes are 8 to 65464 octets.
pub const MIN_BLKSIZE: u16 = 8;
pub const MAX_BLKSIZE: u16 = 65464;

/// What a transfer runs with once negotiation is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub blksize: u16,
    /// Retransmission timeout in seconds, when negotiated (1-255).
    pub timeout: Option<u8>,
    pub windowsize: u16,
    /// The file's size, when the peer told it (RFC 2349 tsize).
    pub tsize: Option<u64>,
    pub rollover: Rollover,
}

/// `blksize=1468 windowsize=16 tsize=1048576`: what a log line shows.
impl std::fmt::Display for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "blksize={} windowsize={}", self.blksize, self.windowsize)?;
        if let Some(t) = self.timeout {
            write!(f, " timeout={t}")?;
        }
        if let Some(t) = self.tsize {
            write!(f, " tsize={t}")?;
        }
        if self.rollover == Rollover::One {
            f.write_str(" rollover=1")?;
        }
        Ok(())
    }
}

/// What follows block 65535. RFC 1350 says nothing; 0 is what tftpd-hpa,
/// atftpd and most clients do, and some boot ROMs expect 1. The
/// `rollover` option (from draft-ietf-tftpexts-rollover, used by PXE
/// firmware) lets a client say which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rollover {
    #[default]
    Zero,
    One,
}

/// Blocks in one turn of the counter after the first: 65536 with
/// rollover to 0, 65535 with rollover to 1 (0 is only ever the start).
const CYCLE_ZERO: i32 = 65_536;
const CYCLE_ONE: i32 = 65_535;

impl Rollover {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "0" => Some(Self::Zero),
            "1" => Some(Self::One),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Zero => "0",
            Self::One => "1",
        }
    }

    /// The wire number of block `n` (blocks count from 1; 0 is the
    /// handshake's ACK).
    pub fn wire(self, n: u64) -> u16 {
        match self {
            Self::Zero => (n & 0xffff) as u16,
            Self::One if n <= 65_535 => n as u16,
            Self::One => ((n - 65_536) % 65_535 + 1) as u16,
        }
    }

    /// How many blocks `to` is after `from` on the wire, between -32767
    /// and 32768: negative for an older block.
    pub fn delta(self, from: u16, to: u16) -> i32 {
        // With rollover to 1, 0 stands just before 1 (the start), so the
        // same modular distance holds in a cycle one shorter.
        let cycle = match self {
            Self::Zero => CYCLE_ZERO,
            Self::One => CYCLE_ONE,
        };
        let d = (i32::from(to) - i32::from(from)).rem_euclid(cycle);
        if d > cycle / 2 { d - cycle } else { d }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            blksize: DEFAULT_BLKSIZE,
            timeout: None,
            windowsize: 1,
            tsize: None,
            rollover: Rollover::Zero,
        }
    }
}

/// The server's ceilings and defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    pub max_blksize: u16,
    pub max_windowsize: u16,
    /// The largest block that fits the route to the peer in one datagram
    /// (MTU less the IP, UDP and TFTP headers); see [`blksize_for_mtu`].
    pub route_blksize: Option<u16>,
    /// Grant a block larger than the route allows when the client asks for
    /// it: its datagrams are then fragmented, which some boot ROMs drop.
    pub allow_fragments: bool,
    /// What follows block 65535 unless the client asks.
    pub rollover: Rollover,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_blksize: MAX_BLKSIZE,
            max_windowsize: 64,
            route_blksize: None,
            allow_fragments: false,
            rollover: Rollover::Zero,
        }
    }
}

/// The largest TFTP block that one datagram of `mtu` bytes carries:
/// less 20 (IPv4) or 40 (IPv6) bytes of IP header, 8 of UDP and 4 of TFTP.
pub fn blksize_for_mtu(mtu: u32, ipv6: bool) -> u16 {
    let headers = if ipv6 { 40 + 8 + 4 } else { 20 + 8 + 4 };
    clamp_u16(mtu.saturating_sub(headers), MAX_BLKSIZE).max(MIN_BLKSIZE)
}

/// Negotiated settings and the OACK to send (none when nothing was accepted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiation {
    pub settings: Settings,
    pub oack: Options,
}

/// Server side. `file_size` is the size to report for a read in octet mode.
pub fn negotiate(
    requested: &Options,
    mode: Mode,
    is_read: bool,
    file_size: Option<u64>,
    limits: ServerLimits,
) -> Negotiation {
    let mut settings = Settings {
        rollover: limits.rollover,
        ..Settings::default()
    };
    let mut oack = Options::new();
    let mut seen: Vec<&str> = Vec::new();
    for (name, value) in requested {
        // The first of a repeated option counts.
        if seen.contains(&name.as_str()) {
            continue;
        }
        seen.push(name);
        match name.as_str() {
            "blksize" => {
                // Below 8 is invalid and ignored; above the limit is clamped
                // (RFC 2348: the server may answer with a smaller size).
                // Fragmented datagrams only when allowed: the route's MTU
                // caps the block otherwise.
                if let Some(asked) = value.parse::<u32>().ok().filter(|&v| v >= u32::from(MIN_BLKSIZE)) {
                    let ceiling = match limits.route_blksize {
                        Some(route) if !limits.allow_fragments => limits.max_blksize.min(route),
                        _ => limits.max_blksize,
                    };
                    let size = clamp_u16(asked, ceiling.clamp(MIN_BLKSIZE, MAX_BLKSIZE));
                    settings.blksize = size;
                    oack.push((name.clone(), size.to_string()));
                }
            }
            "timeout" => {
                // RFC 2349: 1-255 seconds; the server must use it as asked or ignore it.
                if let Some(secs) = value.parse::<u8>().ok().filter(|&s| s >= 1) {
                    settings.timeout = Some(secs);
                    oack.push((name.clone(), secs.to_string()));
                }
            }
            "tsize" => match (is_read, value.parse::<u64>()) {
                // A read asks with 0; the size in netascii is not known
                // without translating the whole file, so it is not offered.
                (true, Ok(_)) => {
                    if let (Some(size), Mode::Octet) = (file_size, mode) {
                        settings.tsize = Some(size);
                        oack.push((name.clone(), size.to_string()));
                    }
                }
                (false, Ok(size)) => {
                    settings.tsize = Some(size);
                    oack.push((name.clone(), size.to_string()));
                }
                (_, Err(_)) => {}
            },
            "windowsize" => {
                if let Some(asked) = value.parse::<u32>().ok().filter(|&v| v >= 1) {
                    let window = clamp_u16(asked, limits.max_windowsize.max(1));
                    settings.windowsize = window;
                    oack.push((name.clone(), window.to_string()));
                }
            }
            "rollover" => {
                if let Some(rollover) = Rollover::parse(value) {
                    settings.rollover = rollover;
                    oack.push((name.clone(), rollover.as_str().to_owned()));
                }
            }
            // Unknown options are ignored (RFC 2347 §2).
            _ => {}
        }
    }
    Negotiation { settings, oack }
}

/// What a client asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ask {
    pub blksize: Option<u16>,
    pub timeout: Option<u8>,
    pub windowsize: Option<u16>,
    /// For a write, the size being sent; for a read, `Some(0)` asks for it.
    pub tsize: Option<u64>,
    pub rollover: Option<Rollover>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OackError {
    #[error("the server answered option '{0}', which was not asked for")]
    Unrequested(String),
    #[error("the server answered {name} {value}, which is not acceptable")]
    BadValue { name: String, value: String },
}

impl Ask {
    pub fn is_empty(&self) -> bool {
        *self == Ask::default()
    }

    pub fn to_options(self) -> Options {
        let mut options = Options::new();
        if let Some(b) = self.blksize {
            options.push(("blksize".into(), b.to_string()));
        }
        if let Some(t) = self.timeout {
            options.push(("timeout".into(), t.to_string()));
        }
        if let Some(s) = self.tsize {
            options.push(("tsize".into(), s.to_string()));
        }
        if let Some(w) = self.windowsize {
            options.push(("windowsize".into(), w.to_string()));
        }
        if let Some(r) = self.rollover {
            options.push(("rollover".into(), r.as_str().into()));
        }
        options
    }

    /// Client side: the settings an OACK grants, or why it is refused.
    pub fn accept(&self, oack: &Options) -> Result<Settings, OackError> {
        let mut settings = Settings::default();
        for (name, value) in oack {
            let bad = || OackError::BadValue {
                name: name.clone(),
                value: value.clone(),
            };
            match name.as_str() {
                "blksize" => {
                    let asked = self.blksize.ok_or_else(|| OackError::Unrequested(name.clone()))?;
                    let size = value.parse::<u16>().map_err(|_| bad())?;
                    if !(MIN_BLKSIZE..=asked).contains(&size) {
                        return Err(bad());
                    }
                    settings.blksize = size;
                }
                "timeout" => {
                    let asked = self.timeout.ok_or_else(|| OackError::Unrequested(name.clone()))?;
                    if value.parse::<u8>().ok() != Some(asked) {
                        return Err(bad());
                    }
                    settings.timeout = Some(asked);
                }
                "tsize" => {
                    self.tsize.ok_or_else(|| OackError::Unrequested(name.clone()))?;
                    settings.tsize = Some(value.parse::<u64>().map_err(|_| bad())?);
                }
                "windowsize" => {
                    let asked = self.windowsize.ok_or_else(|| OackError::Unrequested(name.clone()))?;
                    let window = value.parse::<u16>().map_err(|_| bad())?;
                    if !(1..=asked).contains(&window) {
                        return Err(bad());
                    }
                    settings.windowsize = window;
                }
                "rollover" => {
                    self.rollover.ok_or_else(|| OackError::Unrequested(name.clone()))?;
                    settings.rollover = Rollover::parse(value).ok_or_else(bad)?;
                }
                _ => return Err(OackError::Unrequested(name.clone())),
            }
        }
        Ok(settings)
    }
}

fn clamp_u16(value: u32, max: u16) -> u16 {
    u16::try_from(value.min(u32::from(max))).unwrap_or(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ServerLimits = ServerLimits {
        max_blksize: MAX_BLKSIZE,
        max_windowsize: 64,
        route_blksize: None,
        allow_fragments: false,
        rollover: Rollover::Zero,
    };

    #[test]
    fn rollover_numbers_and_distances() {
        for r in [Rollover::Zero, Rollover::One] {
            assert_eq!(r.wire(1), 1);
            assert_eq!(r.wire(65_535), 65_535);
            assert_eq!(r.delta(65_535, r.wire(65_536)), 1, "{r:?}");
            assert_eq!(r.delta(r.wire(65_536), 65_535), -1, "{r:?}");
            assert_eq!(r.delta(0, 1), 1);
            assert_eq!(r.delta(10, 10), 0);
            assert_eq!(r.delta(65_530, r.wire(65_530 + 64)), 64);
        }
        assert_eq!(Rollover::Zero.wire(65_536), 0);
        assert_eq!(Rollover::One.wire(65_536), 1);
        assert_eq!(Rollover::One.wire(65_536 + 65_534), 65_535);
        assert_eq!(Rollover::One.wire(65_536 + 65_535), 1);
        assert_eq!(Rollover::Zero.wire(131_072), 0);
    }

    #[test]
    fn the_route_caps_the_block_unless_fragments_are_allowed() {
        let route = blksize_for_mtu(1500, false);
        assert_eq!(route, 1468);
        assert_eq!(blksize_for_mtu(1500, true), 1448);
        assert_eq!(blksize_for_mtu(65_536, false), MAX_BLKSIZE);
        let capped = ServerLimits {
            route_blksize: Some(route),
            ..LIMITS
        };
        let asked = opts(&[("blksize", "65464")]);
        let n = negotiate(&asked, Mode::Octet, true, Some(1), capped);
        assert_eq!(n.settings.blksize, 1468);
        let n = negotiate(
            &asked,
            Mode::Octet,
            true,
            Some(1),
            ServerLimits {
                allow_fragments: true,
                ..capped
            },
        );
        assert_eq!(n.settings.blksize, 65_464);
        // A smaller ask is granted as asked either way.
        let n = negotiate(&opts(&[("blksize", "1024")]), Mode::Octet, true, Some(1), capped);
        assert_eq!(n.settings.blksize, 1024);
    }

    #[test]
    fn rollover_is_the_servers_default_unless_the_client_asks() {
        let one = ServerLimits {
            rollover: Rollover::One,
            ..LIMITS
        };
        let n = negotiate(&opts(&[]), Mode::Octet, true, Some(1), one);
        assert_eq!((n.settings.rollover, n.oack.len()), (Rollover::One, 0));
        let n = negotiate(&opts(&[("rollover", "0")]), Mode::Octet, true, Some(1), one);
        assert_eq!(n.settings.rollover, Rollover::Zero);
        assert_eq!(n.oack, opts(&[("rollover", "0")]));
        let n = negotiate(&opts(&[("rollover", "2")]), Mode::Octet, true, Some(1), LIMITS);
        assert!(n.oack.is_empty(), "an invalid value is ignored");
        let ask = Ask {
            rollover: Some(Rollover::One),
            ..Ask::default()
        };
        assert_eq!(ask.accept(&opts(&[("rollover", "1")])).unwrap().rollover, Rollover::One);
        assert!(ask.accept(&opts(&[("rollover", "x")])).is_err());
        assert!(Ask::default().accept(&opts(&[("rollover", "1")])).is_err());
    }

    fn opts(pairs: &[(&str, &str)]) -> Options {
        pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    type Pairs = &'static [(&'static str, &'static str)];

    /// The negotiation table: what the server answers to each offer.
    #[test]
    fn server_negotiation_table() {
        let cases: &[(Pairs, bool, Mode, Pairs, Settings)] = &[
            // Nothing asked: no OACK, RFC 1350 defaults.
            (&[], true, Mode::Octet, &[], Settings::default()),
            (
                &[("blksize", "1468")],
                true,
                Mode::Octet,
                &[("blksize", "1468")],
                Settings {
                    blksize: 1468,
                    ..Settings::default()
                },
            ),
            // Clamped to 65464 (RFC 2348), ignored below 8 or unparsable.
            (
                &[("blksize", "70000")],
                true,
                Mode::Octet,
                &[("blksize", "65464")],
                Settings {
                    blksize: 65464,
                    ..Settings::default()
                },
            ),
            (&[("blksize", "7")], true, Mode::Octet, &[], Settings::default()),
            (&[("blksize", "big")], true, Mode::Octet, &[], Settings::default()),
            // Timeout 1-255 accepted as is, else ignored (RFC 2349).
            (
                &[("timeout", "3")],
                true,
                Mode::Octet,
                &[("timeout", "3")],
                Settings {
                    timeout: Some(3),
                    ..Settings::default()
                },
            ),
            (&[("timeout", "0")], true, Mode::Octet, &[], Settings::default()),
            (&[("timeout", "256")], true, Mode::Octet, &[], Settings::default()),
            // tsize: the file's size on a read (octet only), echoed on a write.
            (
                &[("tsize", "0")],
                true,
                Mode::Octet,
                &[("tsize", "1234")],
                Settings {
                    tsize: Some(1234),
                    ..Settings::default()
                },
            ),
            (&[("tsize", "0")], true, Mode::Netascii, &[], Settings::default()),
            (
                &[("tsize", "99")],
                false,
                Mode::Octet,
                &[("tsize", "99")],
                Settings {
                    tsize: Some(99),
                    ..Settings::default()
                },
            ),
            // windowsize 1-65535, clamped to the server's limit (RFC 7440).
            (
                &[("windowsize", "16")],
                true,
                Mode::Octet,
                &[("windowsize", "16")],
                Settings {
                    windowsize: 16,
                    ..Settings::default()
                },
            ),
            (
                &[("windowsize", "65535")],
                true,
                Mode::Octet,
                &[("windowsize", "64")],
                Settings {
                    windowsize: 64,
                    ..Settings::default()
                },
            ),
            (&[("windowsize", "0")], true, Mode::Octet, &[], Settings::default()),
            // Unknown options are ignored; a repeated option counts once.
            (
                &[("multicast", ""), ("blksize", "1024"), ("blksize", "2048")],
                true,
                Mode::Octet,
                &[("blksize", "1024")],
                Settings {
                    blksize: 1024,
                    ..Settings::default()
                },
            ),
        ];
        for (asked, is_read, mode, answer, settings) in cases {
            let n = negotiate(&opts(asked), *mode, *is_read, Some(1234), LIMITS);
            assert_eq!(n.oack, opts(answer), "{asked:?}");
            assert_eq!(n.settings, *settings, "{asked:?}");
        }
        let small = ServerLimits {
            max_blksize: 1024,
            max_windowsize: 4,
            ..LIMITS
        };
        let n = negotiate(
            &opts(&[("blksize", "1468"), ("windowsize", "16")]),
            Mode::Octet,
            true,
            None,
            small,
        );
        assert_eq!(n.oack, opts(&[("blksize", "1024"), ("windowsize", "4")]));
    }

    #[test]
    fn client_checks_the_oack() {
        let ask = Ask {
            blksize: Some(1468),
            timeout: Some(2),
            windowsize: Some(16),
            tsize: Some(0),
            rollover: None,
        };
        assert_eq!(
            ask.to_options(),
            opts(&[
                ("blksize", "1468"),
                ("timeout", "2"),
                ("tsize", "0"),
                ("windowsize", "16")
            ])
        );
        let granted = ask
            .accept(&opts(&[("blksize", "1024"), ("tsize", "5000"), ("windowsize", "8")]))
            .unwrap();
        assert_eq!(
            granted,
            Settings {
                blksize: 1024,
                timeout: None,
                windowsize: 8,
                tsize: Some(5000),
                rollover: Rollover::Zero,
            }
        );
        // Larger than asked, not asked, or a changed timeout: refused.
        assert!(ask.accept(&opts(&[("blksize", "2000")])).is_err());
        assert!(ask.accept(&opts(&[("windowsize", "17")])).is_err());
        assert!(ask.accept(&opts(&[("timeout", "3")])).is_err());
        assert_eq!(
            Ask::default().accept(&opts(&[("blksize", "512")])),
            Err(OackError::Unrequested("blksize".into()))
        );
        assert!(ask.accept(&opts(&[("color", "blue")])).is_err());
    }
}
