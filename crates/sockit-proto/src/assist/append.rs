//! What `--append` adds to each send: a line ending, or a checksum over the
//! bytes composed so far (as serial-port and Modbus tools do).

use std::str::FromStr;

/// One suffix. Several may be given; each applies to the bytes before it,
/// so `sum8` then `crlf` sends `data, sum, CR, LF`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Append {
    Crlf,
    Lf,
    Cr,
    /// The sum of all bytes, modulo 256.
    Sum8,
    /// All bytes XORed together (a BCC check byte).
    Xor8,
    /// Modbus ASCII's LRC: the two's complement of the byte sum.
    Lrc,
    /// CRC-16/MODBUS (poly 0x8005 reflected, init 0xFFFF), low byte first
    /// as Modbus RTU sends it.
    Crc16Modbus,
    /// CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, not reflected; also
    /// called CRC-16/IBM-3740), high byte first.
    Crc16Ccitt,
    /// CRC-32 as zip, PNG and Ethernet compute it (CRC-32/ISO-HDLC), low
    /// byte first as Ethernet sends its FCS.
    Crc32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown --append '{0}' (expected crlf, lf, cr, sum8, xor8, lrc, crc16-modbus, crc16-ccitt or crc32)")]
pub struct UnknownAppend(pub String);

const CRC16_MODBUS: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_MODBUS);
const CRC16_CCITT: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_IBM_3740);
const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

impl Append {
    pub fn apply(self, data: &mut Vec<u8>) {
        match self {
            Append::Crlf => data.extend_from_slice(b"\r\n"),
            Append::Lf => data.push(b'\n'),
            Append::Cr => data.push(b'\r'),
            Append::Sum8 => data.push(sum8(data)),
            Append::Xor8 => data.push(xor8(data)),
            Append::Lrc => data.push(sum8(data).wrapping_neg()),
            Append::Crc16Modbus => {
                let crc = CRC16_MODBUS.checksum(data);
                data.extend_from_slice(&crc.to_le_bytes());
            }
            Append::Crc16Ccitt => {
                let crc = CRC16_CCITT.checksum(data);
                data.extend_from_slice(&crc.to_be_bytes());
            }
            Append::Crc32 => {
                let crc = CRC32.checksum(data);
                data.extend_from_slice(&crc.to_le_bytes());
            }
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Append::Crlf => "crlf",
            Append::Lf => "lf",
            Append::Cr => "cr",
            Append::Sum8 => "sum8",
            Append::Xor8 => "xor8",
            Append::Lrc => "lrc",
            Append::Crc16Modbus => "crc16-modbus",
            Append::Crc16Ccitt => "crc16-ccitt",
            Append::Crc32 => "crc32",
        }
    }
}

impl FromStr for Append {
    type Err = UnknownAppend;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "crlf" => Ok(Append::Crlf),
            "lf" => Ok(Append::Lf),
            "cr" => Ok(Append::Cr),
            "sum8" => Ok(Append::Sum8),
            "xor8" => Ok(Append::Xor8),
            "lrc" => Ok(Append::Lrc),
            "crc16-modbus" | "crc16" | "modbus" => Ok(Append::Crc16Modbus),
            "crc16-ccitt" | "ccitt" => Ok(Append::Crc16Ccitt),
            "crc32" => Ok(Append::Crc32),
            _ => Err(UnknownAppend(s.to_string())),
        }
    }
}

pub fn sum8(data: &[u8]) -> u8 {
    data.iter().fold(0u8, |acc, b| acc.wrapping_add(*b))
}

pub fn xor8(data: &[u8]) -> u8 {
    data.iter().fold(0u8, |acc, b| acc ^ b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(appends: &[Append], data: &[u8]) -> Vec<u8> {
        let mut out = data.to_vec();
        for a in appends {
            a.apply(&mut out);
        }
        out
    }

    #[test]
    fn line_endings() {
        assert_eq!(with(&[Append::Crlf], b"hi"), b"hi\r\n");
        assert_eq!(with(&[Append::Lf], b"hi"), b"hi\n");
        assert_eq!(with(&[Append::Cr], b"hi"), b"hi\r");
    }

    #[test]
    fn checksum_vectors() {
        // The standard check input of the CRC catalogue.
        assert_eq!(with(&[Append::Sum8], b"123456789"), b"123456789\xdd");
        assert_eq!(with(&[Append::Xor8], b"123456789"), b"123456789\x31");
        // CRC-16/MODBUS check value 0x4B37, sent low byte first.
        assert_eq!(with(&[Append::Crc16Modbus], b"123456789"), b"123456789\x37\x4b");
        // A Modbus RTU request: read 1 holding register at 0 from slave 1.
        assert_eq!(
            with(&[Append::Crc16Modbus], &[0x01, 0x03, 0x00, 0x00, 0x00, 0x01]),
            [0x01, 0x03, 0x00, 0x00, 0x00, 0x01, 0x84, 0x0a]
        );
        // CRC-16/CCITT-FALSE check value 0x29B1, high byte first.
        assert_eq!(with(&[Append::Crc16Ccitt], b"123456789"), b"123456789\x29\xb1");
        // CRC-32 check value 0xCBF43926, low byte first.
        assert_eq!(with(&[Append::Crc32], b"123456789"), b"123456789\x26\x39\xf4\xcb");
        // LRC: 0x100 - 0xDD. A Modbus ASCII frame's bytes 01 03 00 00 00 01 give 0xFB.
        assert_eq!(with(&[Append::Lrc], b"123456789"), b"123456789\x23");
        assert_eq!(with(&[Append::Lrc], &[1, 3, 0, 0, 0, 1]), [1, 3, 0, 0, 0, 1, 0xfb]);
        assert_eq!(with(&[Append::Sum8], &[0xff, 0x02]), [0xff, 0x02, 0x01]);
        assert_eq!(with(&[Append::Xor8], &[]), [0x00]);
    }

    #[test]
    fn suffixes_chain_in_order() {
        assert_eq!(with(&[Append::Sum8, Append::Crlf], b"\x01\x02"), b"\x01\x02\x03\r\n");
    }

    #[test]
    fn names_parse() {
        for a in [
            Append::Crlf,
            Append::Lf,
            Append::Cr,
            Append::Sum8,
            Append::Xor8,
            Append::Lrc,
            Append::Crc16Modbus,
            Append::Crc16Ccitt,
            Append::Crc32,
        ] {
            assert_eq!(a.name().parse::<Append>(), Ok(a));
        }
        assert!("crc64".parse::<Append>().is_err());
    }
}
