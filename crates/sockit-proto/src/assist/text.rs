//! Text encodings for both directions of `sockit nc`: what you type is
//! encoded before it is sent, what arrives is decoded for display. The
//! seeds' peers (NetAssist, FeiQ, Windows Python) speak GBK/GB2312.

use std::fmt;
use std::str::FromStr;

use encoding_rs::{DecoderResult, EncoderResult, Encoding};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TextEncoding {
    #[default]
    Utf8,
    Gbk,
    /// Encoded and decoded as GBK, its superset, as browsers and Windows'
    /// code page 936 do: every GB2312 text decodes the same.
    Gb2312,
    Gb18030,
    ShiftJis,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("unknown encoding '{0}' (expected utf-8, gbk, gb2312, gb18030 or shift_jis)")]
    Unknown(String),
    #[error("'{ch}' cannot be written in {encoding}")]
    Unmappable { ch: char, encoding: TextEncoding },
}

impl TextEncoding {
    fn codec(self) -> &'static Encoding {
        match self {
            TextEncoding::Utf8 => encoding_rs::UTF_8,
            TextEncoding::Gbk | TextEncoding::Gb2312 => encoding_rs::GBK,
            TextEncoding::Gb18030 => encoding_rs::GB18030,
            TextEncoding::ShiftJis => encoding_rs::SHIFT_JIS,
        }
    }

    /// Encodes typed text, refusing characters the encoding lacks rather
    /// than sending HTML escapes or question marks in their place.
    pub fn encode(self, text: &str) -> Result<Vec<u8>, TextError> {
        if self == TextEncoding::Utf8 {
            return Ok(text.as_bytes().to_vec());
        }
        let mut encoder = self.codec().new_encoder();
        let mut out = Vec::with_capacity(text.len() * 2 + 8);
        let mut rest = text;
        loop {
            let (result, read) = encoder.encode_from_utf8_to_vec_without_replacement(rest, &mut out, true);
            rest = rest.get(read..).unwrap_or("");
            match result {
                EncoderResult::InputEmpty => return Ok(out),
                EncoderResult::OutputFull => out.reserve(rest.len() * 2 + 8),
                EncoderResult::Unmappable(ch) => return Err(TextError::Unmappable { ch, encoding: self }),
            }
        }
    }

    pub fn decoder(self) -> TextDecoder {
        TextDecoder {
            decoder: self.codec().new_decoder_without_bom_handling(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TextEncoding::Utf8 => "utf-8",
            TextEncoding::Gbk => "gbk",
            TextEncoding::Gb2312 => "gb2312",
            TextEncoding::Gb18030 => "gb18030",
            TextEncoding::ShiftJis => "shift_jis",
        }
    }
}

impl fmt::Display for TextEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TextEncoding {
    type Err = TextError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "utf-8" | "utf8" => Ok(TextEncoding::Utf8),
            "gbk" | "cp936" => Ok(TextEncoding::Gbk),
            "gb2312" => Ok(TextEncoding::Gb2312),
            "gb18030" => Ok(TextEncoding::Gb18030),
            "shift-jis" | "sjis" | "cp932" => Ok(TextEncoding::ShiftJis),
            _ => Err(TextError::Unknown(s.to_string())),
        }
    }
}

/// A streaming decoder: a character split across two reads is decoded
/// once both halves are here. Malformed bytes show as U+FFFD.
pub struct TextDecoder {
    decoder: encoding_rs::Decoder,
}

impl fmt::Debug for TextDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TextDecoder")
            .field("encoding", &self.decoder.encoding().name())
            .finish()
    }
}

impl TextDecoder {
    /// Decodes the next piece; `last` flushes a trailing partial character.
    pub fn decode(&mut self, bytes: &[u8], last: bool) -> String {
        let mut out = String::with_capacity(bytes.len() + 8);
        let mut rest = bytes;
        loop {
            let (result, read, _) = self.decoder.decode_to_string(rest, &mut out, last);
            rest = rest.get(read..).unwrap_or(&[]);
            match result {
                encoding_rs::CoderResult::InputEmpty => return out,
                encoding_rs::CoderResult::OutputFull => out.reserve(rest.len() * 3 + 8),
            }
        }
    }

    /// Decodes one whole message, reporting whether any byte was malformed.
    pub fn decode_message(encoding: TextEncoding, bytes: &[u8]) -> (String, bool) {
        let mut decoder = encoding.codec().new_decoder_without_bom_handling();
        let mut out = String::with_capacity(bytes.len() + 8);
        let mut rest = bytes;
        let mut malformed = false;
        loop {
            let (result, read) = decoder.decode_to_string_without_replacement(rest, &mut out, true);
            rest = rest.get(read..).unwrap_or(&[]);
            match result {
                DecoderResult::InputEmpty => return (out, malformed),
                DecoderResult::OutputFull => out.reserve(rest.len() * 3 + 8),
                DecoderResult::Malformed(_, _) => {
                    malformed = true;
                    out.push('\u{FFFD}');
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gbk_round_trip_of_nihao() {
        let bytes = TextEncoding::Gbk.encode("你好").unwrap();
        assert_eq!(bytes, [0xc4, 0xe3, 0xba, 0xc3]);
        assert_eq!(TextEncoding::Gb2312.encode("你好").unwrap(), bytes);
        assert_eq!(TextEncoding::Gbk.decoder().decode(&bytes, true), "你好");
    }

    #[test]
    fn other_encodings() {
        assert_eq!(TextEncoding::Utf8.encode("你好").unwrap(), "你好".as_bytes());
        assert_eq!(TextEncoding::ShiftJis.encode("日本").unwrap(), [0x93, 0xfa, 0x96, 0x7b]);
        // GB18030 reaches every code point; GBK does not.
        assert!(TextEncoding::Gb18030.encode("😀").is_ok());
        assert_eq!(
            TextEncoding::Gbk.encode("a😀"),
            Err(TextError::Unmappable {
                ch: '😀',
                encoding: TextEncoding::Gbk
            })
        );
    }

    #[test]
    fn a_character_split_across_reads_decodes_once() {
        let mut decoder = TextEncoding::Gbk.decoder();
        assert_eq!(decoder.decode(&[0xc4], false), "");
        assert_eq!(decoder.decode(&[0xe3, 0xba], false), "你");
        assert_eq!(decoder.decode(&[0xc3], true), "好");
        let mut utf8 = TextEncoding::Utf8.decoder();
        let bytes = "好".as_bytes();
        assert_eq!(utf8.decode(&bytes[..1], false), "");
        assert_eq!(utf8.decode(&bytes[1..], true), "好");
    }

    #[test]
    fn malformed_bytes_are_marked() {
        assert_eq!(
            TextDecoder::decode_message(TextEncoding::Utf8, b"a\xffb"),
            ("a\u{FFFD}b".to_string(), true)
        );
        assert_eq!(
            TextDecoder::decode_message(TextEncoding::Gbk, &[0xc4, 0xe3]),
            ("你".to_string(), false)
        );
    }

    #[test]
    fn names() {
        assert_eq!("GBK".parse(), Ok(TextEncoding::Gbk));
        assert_eq!("shift_jis".parse(), Ok(TextEncoding::ShiftJis));
        assert_eq!("UTF8".parse(), Ok(TextEncoding::Utf8));
        assert!("latin9".parse::<TextEncoding>().is_err());
    }
}
