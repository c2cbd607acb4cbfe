//! Hex in both directions: `--send-hex` input (`01 02 ff`, `0x01,0x02`,
//! `0102ff`) and the hexdump shown for what arrives.

use std::fmt::Write as _;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    #[error("'{found}' at column {column} is not a hex digit")]
    NotHex { found: char, column: usize },
    #[error("odd number of hex digits in '{0}' (each byte takes two)")]
    OddDigits(String),
}

/// Bytes per hexdump line, as `hexdump -C` and NetAssist show them.
pub const LINE_BYTES: usize = 16;

/// Parses typed hex. Bytes may be separated by spaces, commas, colons or
/// dashes, and may carry a `0x` prefix; without separators digits pair up.
pub fn parse(text: &str) -> Result<Vec<u8>, HexError> {
    let mut out = Vec::new();
    let mut token = String::new();
    let mut pending: Option<u8> = None;
    let finish = |token: &mut String, pending: &mut Option<u8>| {
        if pending.take().is_some() {
            return Err(HexError::OddDigits(std::mem::take(token)));
        }
        token.clear();
        Ok(())
    };
    for (index, ch) in text.chars().enumerate() {
        if ch.is_whitespace() || matches!(ch, ',' | ':' | '-') {
            finish(&mut token, &mut pending)?;
            continue;
        }
        token.push(ch);
        if matches!(ch, 'x' | 'X') && token.len() == 2 && token.starts_with('0') {
            // The "0" was a prefix, not a digit.
            pending = None;
            continue;
        }
        let Some(value) = ch.to_digit(16) else {
            return Err(HexError::NotHex {
                found: ch,
                column: index + 1,
            });
        };
        // to_digit(16) is below 16, so the narrowing is exact.
        let nibble = u8::try_from(value).unwrap_or(0);
        match pending.take() {
            None => pending = Some(nibble),
            Some(high) => out.push(high << 4 | nibble),
        }
    }
    finish(&mut token, &mut pending)?;
    Ok(out)
}

/// Formats bytes as space-separated pairs: `01 02 ff`.
pub fn format(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len() * 3);
    for (i, b) in data.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// A hexdump whose offsets continue across calls, so a stream that
/// arrives in pieces reads as one dump.
#[derive(Debug, Default, Clone)]
pub struct HexDump {
    offset: u64,
}

impl HexDump {
    pub fn new() -> Self {
        Self::default()
    }

    /// One line per 16 bytes: offset, hex pairs, printable ASCII.
    pub fn lines(&mut self, data: &[u8]) -> Vec<String> {
        let mut lines = Vec::with_capacity(data.len().div_ceil(LINE_BYTES));
        for chunk in data.chunks(LINE_BYTES) {
            let mut line = format!("{:08x}  ", self.offset);
            for i in 0..LINE_BYTES {
                match chunk.get(i) {
                    Some(b) => {
                        let _ = write!(line, "{b:02x} ");
                    }
                    None => line.push_str("   "),
                }
                if i == 7 {
                    line.push(' ');
                }
            }
            line.push_str(" |");
            line.extend(chunk.iter().map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    char::from(b)
                } else {
                    '.'
                }
            }));
            line.push('|');
            lines.push(line);
            self.offset += chunk.len() as u64;
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_spellings() {
        assert_eq!(parse("01 02 ff").unwrap(), [1, 2, 255]);
        assert_eq!(parse("0102FF").unwrap(), [1, 2, 255]);
        assert_eq!(parse("0x01,0x02, 0xff").unwrap(), [1, 2, 255]);
        assert_eq!(parse("de:ad-be ef").unwrap(), [0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(parse("  ").unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn bad_hex_says_where() {
        assert_eq!(parse("01 0g"), Err(HexError::NotHex { found: 'g', column: 5 }));
        assert_eq!(parse("01 2"), Err(HexError::OddDigits("2".into())));
        assert_eq!(
            parse("你好"),
            Err(HexError::NotHex {
                found: '你', column: 1
            })
        );
        assert_eq!(parse("0xzz"), Err(HexError::NotHex { found: 'z', column: 3 }));
    }

    #[test]
    fn round_trip_all_bytes() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(parse(&format(&all)).unwrap(), all);
    }

    #[test]
    fn dump_lines_continue_offsets() {
        let mut dump = HexDump::new();
        let first = dump.lines(b"Hello, world!\r\n\x00\x01");
        assert_eq!(
            first,
            [
                "00000000  48 65 6c 6c 6f 2c 20 77  6f 72 6c 64 21 0d 0a 00  |Hello, world!...|",
                "00000010  01                                                |.|",
            ]
        );
        let next = dump.lines(b"ab");
        assert_eq!(
            next,
            ["00000011  61 62                                             |ab|"]
        );
    }
}
