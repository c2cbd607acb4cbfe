//! TFTP packets (RFC 1350 §5, RFC 2347 §2 for options and OACK): total
//! decoding from one datagram, and encoding.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

/// Longest filename, mode or option string accepted: far beyond any real
/// path, and it keeps a malformed request from meaning much work.
pub const MAX_STRING: usize = 512;

/// Most options in one request or OACK (RFC 2347 names four; clients add a
/// few of their own).
pub const MAX_OPTIONS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    Rrq = 1,
    Wrq = 2,
    Data = 3,
    Ack = 4,
    Error = 5,
    Oack = 6,
}

/// Transfer modes (RFC 1350 §1). `mail` is obsolete and refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Octet,
    Netascii,
    Mail,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Octet => "octet",
            Mode::Netascii => "netascii",
            Mode::Mail => "mail",
        }
    }

    fn parse(text: &str) -> Option<Mode> {
        // Mode names are case-insensitive (RFC 1350 §5); "binary" is what
        // some old clients send for octet.
        match text.to_ascii_lowercase().as_str() {
            "octet" | "binary" => Some(Mode::Octet),
            "netascii" => Some(Mode::Netascii),
            "mail" => Some(Mode::Mail),
            _ => None,
        }
    }
}

/// Error codes (RFC 1350 §5, RFC 2347 §2 for 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    NotDefined = 0,
    FileNotFound = 1,
    AccessViolation = 2,
    DiskFull = 3,
    IllegalOperation = 4,
    UnknownTid = 5,
    FileExists = 6,
    NoSuchUser = 7,
    OptionsRefused = 8,
}

impl ErrorCode {
    fn from_u16(code: u16) -> ErrorCode {
        match code {
            1 => ErrorCode::FileNotFound,
            2 => ErrorCode::AccessViolation,
            3 => ErrorCode::DiskFull,
            4 => ErrorCode::IllegalOperation,
            5 => ErrorCode::UnknownTid,
            6 => ErrorCode::FileExists,
            7 => ErrorCode::NoSuchUser,
            8 => ErrorCode::OptionsRefused,
            // Unknown codes are kept readable as "not defined".
            _ => ErrorCode::NotDefined,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            ErrorCode::NotDefined => "error",
            ErrorCode::FileNotFound => "file not found",
            ErrorCode::AccessViolation => "access violation",
            ErrorCode::DiskFull => "disk full or allocation exceeded",
            ErrorCode::IllegalOperation => "illegal TFTP operation",
            ErrorCode::UnknownTid => "unknown transfer ID",
            ErrorCode::FileExists => "file already exists",
            ErrorCode::NoSuchUser => "no such user",
            ErrorCode::OptionsRefused => "option negotiation refused",
        };
        f.write_str(text)
    }
}

/// A request's options in the order sent, names lower-cased.
pub type Options = Vec<(String, String)>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub filename: String,
    pub mode: Mode,
    pub options: Options,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Rrq(Request),
    Wrq(Request),
    Data { block: u16, data: Bytes },
    Ack { block: u16 },
    Error { code: ErrorCode, message: String },
    Oack { options: Options },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("packet shorter than its opcode")]
    Short,
    #[error("unknown opcode {0}")]
    UnknownOpcode(u16),
    #[error("a string is not NUL-terminated")]
    Unterminated,
    #[error("a string is longer than {MAX_STRING} bytes")]
    TooLong,
    #[error("a string is not valid text")]
    NotText,
    #[error("unknown mode '{0}'")]
    UnknownMode(String),
    #[error("empty filename")]
    EmptyFilename,
    #[error("an option has no value")]
    OptionWithoutValue,
    #[error("more than {MAX_OPTIONS} options")]
    TooManyOptions,
    #[error("{0} packet has the wrong length")]
    BadLength(&'static str),
}

impl Packet {
    /// Decodes one datagram. Any bytes give a packet or an error.
    pub fn decode(bytes: &[u8]) -> Result<Packet, PacketError> {
        let (opcode, rest) = split_u16(bytes).ok_or(PacketError::Short)?;
        match opcode {
            1 | 2 => {
                let request = decode_request(rest)?;
                Ok(if opcode == 1 {
                    Packet::Rrq(request)
                } else {
                    Packet::Wrq(request)
                })
            }
            3 => {
                let (block, data) = split_u16(rest).ok_or(PacketError::BadLength("DATA"))?;
                Ok(Packet::Data {
                    block,
                    data: Bytes::copy_from_slice(data),
                })
            }
            4 => match split_u16(rest) {
                Some((block, [])) => Ok(Packet::Ack { block }),
                _ => Err(PacketError::BadLength("ACK")),
            },
            5 => {
                let (code, rest) = split_u16(rest).ok_or(PacketError::BadLength("ERROR"))?;
                // Be lenient with a missing NUL: the message is for humans.
                let text = rest.strip_suffix(&[0]).unwrap_or(rest);
                let text = text.split(|&b| b == 0).next().unwrap_or_default();
                let mut message = String::from_utf8_lossy(text).into_owned();
                // Cut at a character boundary, after replacement (which can
                // make the text longer than the bytes were).
                let mut end = message.len().min(MAX_STRING);
                while !message.is_char_boundary(end) {
                    end -= 1;
                }
                message.truncate(end);
                Ok(Packet::Error {
                    code: ErrorCode::from_u16(code),
                    message,
                })
            }
            6 => Ok(Packet::Oack {
                options: decode_options(rest)?,
            }),
            other => Err(PacketError::UnknownOpcode(other)),
        }
    }

    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        match self {
            Packet::Rrq(r) | Packet::Wrq(r) => {
                out.put_u16(if matches!(self, Packet::Rrq(_)) {
                    Opcode::Rrq as u16
                } else {
                    Opcode::Wrq as u16
                });
                put_string(&mut out, &r.filename);
                put_string(&mut out, r.mode.as_str());
                put_options(&mut out, &r.options);
            }
            Packet::Data { block, data } => return data_packet(*block, data),
            Packet::Ack { block } => return ack_packet(*block),
            Packet::Error { code, message } => {
                out.put_u16(Opcode::Error as u16);
                out.put_u16(*code as u16);
                put_string(&mut out, message);
            }
            Packet::Oack { options } => {
                out.put_u16(Opcode::Oack as u16);
                put_options(&mut out, options);
            }
        }
        out.freeze()
    }
}

/// DATA without building a `Packet`: the hot path of every transfer.
pub fn data_packet(block: u16, data: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(4 + data.len());
    out.put_u16(Opcode::Data as u16);
    out.put_u16(block);
    out.put_slice(data);
    out.freeze()
}

pub fn ack_packet(block: u16) -> Bytes {
    let mut out = BytesMut::with_capacity(4);
    out.put_u16(Opcode::Ack as u16);
    out.put_u16(block);
    out.freeze()
}

pub fn error_packet(code: ErrorCode, message: &str) -> Bytes {
    Packet::Error {
        code,
        message: message.to_string(),
    }
    .encode()
}

fn split_u16(bytes: &[u8]) -> Option<(u16, &[u8])> {
    let (head, rest) = bytes.split_first_chunk::<2>()?;
    Some((u16::from_be_bytes(*head), rest))
}

/// Splits off one NUL-terminated string.
fn take_string(bytes: &[u8]) -> Result<(String, &[u8]), PacketError> {
    let end = bytes.iter().position(|&b| b == 0).ok_or(PacketError::Unterminated)?;
    if end > MAX_STRING {
        return Err(PacketError::TooLong);
    }
    let (text, rest) = bytes.split_at(end);
    let text = std::str::from_utf8(text).map_err(|_| PacketError::NotText)?;
    Ok((text.to_string(), rest.get(1..).unwrap_or_default()))
}

fn decode_request(bytes: &[u8]) -> Result<Request, PacketError> {
    let (filename, rest) = take_string(bytes)?;
    if filename.is_empty() {
        return Err(PacketError::EmptyFilename);
    }
    let (mode_text, rest) = take_string(rest)?;
    let mode = Mode::parse(&mode_text).ok_or(PacketError::UnknownMode(mode_text))?;
    Ok(Request {
        filename,
        mode,
        options: decode_options(rest)?,
    })
}

fn decode_options(mut bytes: &[u8]) -> Result<Options, PacketError> {
    let mut options = Options::new();
    while !bytes.is_empty() {
        if options.len() == MAX_OPTIONS {
            return Err(PacketError::TooManyOptions);
        }
        let (name, rest) = take_string(bytes)?;
        if rest.is_empty() {
            return Err(PacketError::OptionWithoutValue);
        }
        let (value, rest) = take_string(rest)?;
        // Option names are case-insensitive (RFC 2347 §2).
        options.push((name.to_ascii_lowercase(), value));
        bytes = rest;
    }
    Ok(options)
}

fn put_string(out: &mut BytesMut, text: &str) {
    out.put_slice(text.as_bytes());
    out.put_u8(0);
}

fn put_options(out: &mut BytesMut, options: &Options) {
    for (name, value) in options {
        put_string(out, name);
        put_string(out, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> Options {
        pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn rrq_as_the_seed_packs_it() {
        // struct.pack("!H8sb5sb", 1, b"test.jpg", 0, b"octet", 0): RFC 1350 §5 figure 5-1.
        let wire = b"\x00\x01test.jpg\x00octet\x00";
        let packet = Packet::decode(wire).unwrap();
        let want = Packet::Rrq(Request {
            filename: "test.jpg".into(),
            mode: Mode::Octet,
            options: vec![],
        });
        assert_eq!(packet, want);
        assert_eq!(&want.encode()[..], wire);
    }

    #[test]
    fn requests_with_options_round_trip() {
        // RFC 2347 §2: options follow the mode, each name and value NUL-terminated.
        let wire = b"\x00\x02up.bin\x00NETASCII\x00BLKSIZE\x001468\x00tsize\x001000\x00";
        let packet = Packet::decode(wire).unwrap();
        let Packet::Wrq(request) = &packet else {
            panic!("not a WRQ")
        };
        assert_eq!(request.mode, Mode::Netascii);
        assert_eq!(request.options, opts(&[("blksize", "1468"), ("tsize", "1000")]));
        assert_eq!(Packet::decode(&packet.encode()).unwrap(), packet);
    }

    #[test]
    fn data_ack_error_oack_fixtures() {
        // RFC 1350 §5 figures 5-2 to 5-4.
        assert_eq!(
            Packet::decode(b"\x00\x03\x00\x01abc").unwrap(),
            Packet::Data {
                block: 1,
                data: Bytes::from_static(b"abc")
            }
        );
        assert_eq!(
            Packet::decode(b"\x00\x03\xff\xff").unwrap(),
            Packet::Data {
                block: 65535,
                data: Bytes::new()
            }
        );
        assert_eq!(
            Packet::decode(b"\x00\x04\x12\x34").unwrap(),
            Packet::Ack { block: 0x1234 }
        );
        assert_eq!(
            Packet::decode(b"\x00\x05\x00\x01File not found\x00").unwrap(),
            Packet::Error {
                code: ErrorCode::FileNotFound,
                message: "File not found".into()
            }
        );
        // RFC 2347 §2: OACK, opcode 6.
        assert_eq!(
            Packet::decode(b"\x00\x06blksize\x00512\x00").unwrap(),
            Packet::Oack {
                options: opts(&[("blksize", "512")])
            }
        );
        assert_eq!(&data_packet(2, b"xy")[..], b"\x00\x03\x00\x02xy");
        assert_eq!(&ack_packet(0)[..], b"\x00\x04\x00\x00");
        assert_eq!(
            &error_packet(ErrorCode::UnknownTid, "unknown transfer ID")[..],
            b"\x00\x05\x00\x05unknown transfer ID\x00"
        );
    }

    #[test]
    fn malformed_packets_are_errors() {
        assert_eq!(Packet::decode(b""), Err(PacketError::Short));
        assert_eq!(Packet::decode(b"\x00"), Err(PacketError::Short));
        assert_eq!(Packet::decode(b"\x00\x09"), Err(PacketError::UnknownOpcode(9)));
        assert_eq!(Packet::decode(b"\x00\x01a\x00octet"), Err(PacketError::Unterminated));
        assert_eq!(
            Packet::decode(b"\x00\x01\x00octet\x00"),
            Err(PacketError::EmptyFilename)
        );
        assert_eq!(
            Packet::decode(b"\x00\x01a\x00tar\x00"),
            Err(PacketError::UnknownMode("tar".into()))
        );
        assert_eq!(
            Packet::decode(b"\x00\x01a\x00octet\x00blksize\x00"),
            Err(PacketError::OptionWithoutValue)
        );
        assert_eq!(Packet::decode(b"\x00\x04\x00"), Err(PacketError::BadLength("ACK")));
        assert_eq!(
            Packet::decode(b"\x00\x04\x00\x01\x00"),
            Err(PacketError::BadLength("ACK"))
        );
        assert_eq!(Packet::decode(b"\x00\x03\x00"), Err(PacketError::BadLength("DATA")));
        let long = [&b"\x00\x01"[..], &[b'a'; 600], b"\x00octet\x00"].concat();
        assert_eq!(Packet::decode(&long), Err(PacketError::TooLong));
        let mut many = b"\x00\x01a\x00octet\x00".to_vec();
        for i in 0..=MAX_OPTIONS {
            many.extend_from_slice(format!("o{i}\x001\x00").as_bytes());
        }
        assert_eq!(Packet::decode(&many), Err(PacketError::TooManyOptions));
    }

    #[test]
    fn an_error_text_that_is_not_utf8_round_trips() {
        // Found by fuzzing: replacement characters make the text longer
        // than its bytes, so the cut must come after replacement.
        let wire = [&b"\x00\x05\xcb\xcb"[..], &[0xcb; 600]].concat();
        let packet = Packet::decode(&wire).unwrap();
        let Packet::Error { message, .. } = &packet else {
            panic!("not an error")
        };
        assert!(message.len() <= MAX_STRING);
        assert_eq!(Packet::decode(&packet.encode()).unwrap(), packet);
    }

    #[test]
    fn every_short_length_is_handled() {
        for len in 0..=600 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            let _ = Packet::decode(&bytes);
            for opcode in 1..=6u8 {
                let mut b = bytes.clone();
                if b.len() >= 2 {
                    b[0] = 0;
                    b[1] = opcode;
                }
                let _ = Packet::decode(&b);
            }
        }
    }
}
