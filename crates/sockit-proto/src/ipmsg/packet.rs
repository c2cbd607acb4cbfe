//! The IPMSG datagram: `version:packet-no:user:host:command:extra`, the
//! extra section ending in NUL (H. Shirouzu, "IP Messenger communication
//! protocol", §1 "Command"). Fields stay bytes here: which encoding they
//! are in depends on the command's flags and on the peer (see `text`).

use std::fmt;

use super::command::Command;

/// The protocol version every implementation writes and reads.
pub const PROTOCOL_VERSION: u32 = 1;

/// The UDP (and file transfer TCP) port IPMSG, FeiQ and iptux use.
pub const DEFAULT_PORT: u16 = 2425;

/// The largest packet we send: iptux and IPMSG 2.x read into 8 KiB
/// buffers and cut longer datagrams short.
pub const MAX_SEND_PACKET: usize = 8192;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("fewer than six ':'-separated fields")]
    MissingFields,
    #[error("version field {0:?} does not start with a number")]
    BadVersion(String),
    #[error("packet number {0:?} is not a decimal number")]
    BadPacketNo(String),
    #[error("command {0:?} is not a decimal number")]
    BadCommand(String),
    #[error("packet of {0} bytes is over the {MAX_SEND_PACKET}-byte limit peers read")]
    TooLong(usize),
}

/// The version field. FeiQ writes `1_lbt6_0#128#<MAC>#...`: the protocol
/// version, `_`, then its own client tag, which is kept but not interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub number: u32,
    pub tag: Option<String>,
}

impl Version {
    pub const PLAIN: Version = Version {
        number: PROTOCOL_VERSION,
        tag: None,
    };

    fn parse(field: &[u8]) -> Result<Version, PacketError> {
        let text = String::from_utf8_lossy(field);
        let digits = text.bytes().take_while(u8::is_ascii_digit).count();
        let number = text
            .get(..digits)
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| PacketError::BadVersion(text.to_string()))?;
        let rest = text.get(digits..).unwrap_or("");
        let tag = match rest.strip_prefix('_') {
            Some(tag) if !tag.is_empty() => Some(tag.to_string()),
            _ if rest.is_empty() => None,
            _ => Some(rest.to_string()),
        };
        Ok(Version { number, tag })
    }

    /// FeiQ's tag begins `lbt`; its peers are assumed to speak GBK.
    pub fn is_feiq(&self) -> bool {
        self.tag.as_deref().is_some_and(|t| t.starts_with("lbt"))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tag {
            Some(tag) => write!(f, "{}_{}", self.number, tag),
            None => write!(f, "{}", self.number),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub version: Version,
    pub packet_no: u64,
    pub user: Vec<u8>,
    pub host: Vec<u8>,
    pub command: Command,
    /// Everything after the fifth ':', NULs included; its layout depends on
    /// the mode (see `extra`).
    pub extra: Vec<u8>,
}

impl Packet {
    /// Decodes one datagram. Total: any bytes give a packet or an error.
    pub fn decode(bytes: &[u8]) -> Result<Packet, PacketError> {
        let mut fields = bytes.splitn(6, |&b| b == b':');
        let mut next = || fields.next().ok_or(PacketError::MissingFields);
        let version = Version::parse(next()?)?;
        let packet_no = decimal(next()?).ok_or_else(|| PacketError::BadPacketNo(lossy(bytes, 1)))?;
        let user = next()?.to_vec();
        let host = next()?.to_vec();
        let number = next()?;
        let number = decimal(number)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| PacketError::BadCommand(String::from_utf8_lossy(number).into_owned()))?;
        let extra = next()?.to_vec();
        Ok(Packet {
            version,
            packet_no,
            user,
            host,
            command: Command::from_number(number),
            extra,
        })
    }

    /// Encodes the packet, ending the extra section with NUL as every
    /// implementation expects. A ':' in the user or host name would shift
    /// every later field, so it is written as '_'.
    pub fn encode(&self) -> Result<Vec<u8>, PacketError> {
        let mut out = Vec::with_capacity(64 + self.user.len() + self.host.len() + self.extra.len());
        out.extend_from_slice(format!("{}:{}:", self.version, self.packet_no).as_bytes());
        out.extend(self.user.iter().map(|&b| if b == b':' { b'_' } else { b }));
        out.push(b':');
        out.extend(self.host.iter().map(|&b| if b == b':' { b'_' } else { b }));
        out.extend_from_slice(format!(":{}:", self.command.number()).as_bytes());
        out.extend_from_slice(&self.extra);
        if out.last() != Some(&0) {
            out.push(0);
        }
        if out.len() > MAX_SEND_PACKET {
            return Err(PacketError::TooLong(out.len()));
        }
        Ok(out)
    }

    /// The extra section split at NUL, without the trailing empty pieces.
    pub fn extra_parts(&self) -> Vec<&[u8]> {
        let mut parts: Vec<&[u8]> = self.extra.split(|&b| b == 0).collect();
        while parts.last().is_some_and(|p| p.is_empty()) {
            parts.pop();
        }
        parts
    }
}

fn decimal(field: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(field).ok()?.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn lossy(bytes: &[u8], field: usize) -> String {
    let piece = bytes.split(|&b| b == b':').nth(field).unwrap_or_default();
    String::from_utf8_lossy(piece).into_owned()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ipmsg::command::{Mode, opt};

    #[test]
    fn the_course_notes_packet_decodes() {
        // The course notes' FeiQ example: version 1, packet 2334323, SENDMSG.
        let p = Packet::decode(b"1:2334323:taogang:laowang-pc:32:hello").unwrap();
        assert_eq!(p.version, Version::PLAIN);
        assert_eq!(p.packet_no, 2_334_323);
        assert_eq!(p.user, b"taogang");
        assert_eq!(p.host, b"laowang-pc");
        assert_eq!(p.command.mode, Mode::SendMsg);
        assert_eq!(p.command.opts, 0);
        assert_eq!(p.extra, b"hello");
    }

    #[test]
    fn feiq_version_field_keeps_its_tag() {
        let p = Packet::decode(
            b"1_lbt6_0#128#000C29D68D8F#0#0#0#4001#9:1334542470:Administrator:ADMIN-PC:6291459:nick\0group\0",
        )
        .unwrap();
        assert_eq!(p.version.number, 1);
        assert_eq!(p.version.tag.as_deref(), Some("lbt6_0#128#000C29D68D8F#0#0#0#4001#9"));
        assert!(p.version.is_feiq());
        assert_eq!(p.extra_parts(), vec![&b"nick"[..], &b"group"[..]]);
    }

    #[test]
    fn extra_may_hold_colons_and_nuls() {
        // ipmsg spec: the file list after the message text uses ':' inside.
        let bytes = b"1:7:u:h:2097440:see file\x000:a.txt:1f:5f5e1000:1:\x07\0";
        let p = Packet::decode(bytes).unwrap();
        assert!(p.command.has(opt::FILEATTACH));
        assert!(p.command.has(opt::SENDCHECK));
        assert_eq!(p.extra, &bytes[16..]);
        assert_eq!(p.encode().unwrap(), bytes);
    }

    #[test]
    fn malformed_packets_are_refused() {
        assert_eq!(Packet::decode(b"1:2:u:h:32"), Err(PacketError::MissingFields));
        assert!(matches!(
            Packet::decode(b"x:2:u:h:32:"),
            Err(PacketError::BadVersion(_))
        ));
        assert!(matches!(
            Packet::decode(b"1:-2:u:h:32:"),
            Err(PacketError::BadPacketNo(_))
        ));
        assert!(matches!(
            Packet::decode(b"1:2:u:h:99999999999:"),
            Err(PacketError::BadCommand(_))
        ));
        assert!(matches!(Packet::decode(b"1:2:u:h::"), Err(PacketError::BadCommand(_))));
    }

    #[test]
    fn encode_ends_with_nul_and_escapes_colons_in_names() {
        let p = Packet {
            version: Version::PLAIN,
            packet_no: 9,
            user: b"a:b".to_vec(),
            host: b"h".to_vec(),
            command: Command::new(Mode::BrEntry, opt::CAPUTF8),
            extra: b"nick\0group".to_vec(),
        };
        assert_eq!(p.encode().unwrap(), b"1:9:a_b:h:16777217:nick\0group\0");
    }

    #[test]
    fn oversized_packets_are_not_sent() {
        let p = Packet {
            version: Version::PLAIN,
            packet_no: 1,
            user: b"u".to_vec(),
            host: b"h".to_vec(),
            command: Command::new(Mode::SendMsg, 0),
            extra: vec![b'x'; MAX_SEND_PACKET],
        };
        assert!(matches!(p.encode(), Err(PacketError::TooLong(_))));
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Packet::decode(&bytes);
        }

        #[test]
        fn round_trip(packet_no in any::<u64>(), number in any::<u32>(),
                      user in "[a-z0-9_]{0,12}", host in "[a-z0-9.-]{0,12}",
                      extra in proptest::collection::vec(any::<u8>(), 0..100)) {
            let mut extra = extra;
            extra.push(0);
            let p = Packet { version: Version::PLAIN, packet_no, user: user.into_bytes(), host: host.into_bytes(),
                             command: Command::from_number(number), extra };
            prop_assert_eq!(Packet::decode(&p.encode().unwrap()).unwrap(), p);
        }
    }
}
