//! What one typed line (or `--data` payload) becomes on the wire: hex or
//! encoded text, then each `--append` in order.

use chrono::TimeZone;

use super::append::Append;
use super::hex::{self, HexError};
use super::template::{Context, Template, TemplateError};
use super::text::{TextEncoding, TextError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComposeError {
    #[error(transparent)]
    Hex(#[from] HexError),
    #[error(transparent)]
    Text(#[from] TextError),
    #[error("input is not UTF-8 text")]
    NotUtf8,
    #[error(transparent)]
    Template(#[from] TemplateError),
}

#[derive(Debug, Clone, Default)]
pub struct Composer {
    pub encoding: TextEncoding,
    pub send_hex: bool,
    pub append: Vec<Append>,
}

impl Composer {
    /// True when input must be read line by line and transformed; false
    /// when stdin can be piped through byte for byte.
    pub fn transforms(&self) -> bool {
        self.send_hex || !self.append.is_empty() || self.encoding != TextEncoding::Utf8
    }

    /// One typed line, with or without its ending. Without `--append` a
    /// text line keeps the ending it was typed with (as netcat sends it);
    /// with `--append` the suffixes replace it. A hex line is exactly the
    /// bytes it spells.
    pub fn line(&self, line: &[u8]) -> Result<Vec<u8>, ComposeError> {
        let (body, ending) = split_ending(line);
        let text = std::str::from_utf8(body).map_err(|_| ComposeError::NotUtf8)?;
        let mut out = if self.send_hex {
            hex::parse(text)?
        } else {
            self.encoding.encode(text)?
        };
        if self.append.is_empty() {
            if !self.send_hex {
                out.extend_from_slice(ending);
            }
        } else {
            self.finish(&mut out);
        }
        Ok(out)
    }

    /// A `--data` payload as a template, read as hex with `--send-hex`.
    pub fn template(&self, text: &str) -> Result<Template, ComposeError> {
        Ok(if self.send_hex {
            Template::parse_hex(text)?
        } else {
            Template::parse(text)?
        })
    }

    /// One send of a template: rendered, its text encoded (a hex
    /// template's bytes are taken as they are), then the suffixes:
    /// `append` when it names any, else the session's.
    pub fn render<Tz: TimeZone>(
        &self,
        template: &Template,
        hex: bool,
        append: &[Append],
        ctx: &mut Context<'_, Tz>,
    ) -> Result<Vec<u8>, ComposeError>
    where
        Tz::Offset: std::fmt::Display,
    {
        let rendered = template.render(ctx);
        let mut out = match (hex, self.encoding, String::from_utf8(rendered)) {
            (false, encoding, Ok(text)) if encoding != TextEncoding::Utf8 => encoding.encode(&text)?,
            (_, _, Ok(text)) => text.into_bytes(),
            // Bytes a macro inserted ({{hex:ff}}, a capture) go as they are.
            (_, _, Err(raw)) => raw.into_bytes(),
        };
        let suffixes = if append.is_empty() { &self.append } else { append };
        for a in suffixes {
            a.apply(&mut out);
        }
        Ok(out)
    }

    /// Applies the `--append` suffixes to a payload.
    pub fn finish(&self, out: &mut Vec<u8>) {
        for a in &self.append {
            a.apply(out);
        }
    }
}

fn split_ending(line: &[u8]) -> (&[u8], &[u8]) {
    for ending in [&b"\r\n"[..], b"\n"] {
        if let Some(body) = line.strip_suffix(ending) {
            return (body, ending);
        }
    }
    (line, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_keeps_its_ending() {
        let c = Composer {
            encoding: TextEncoding::Gbk,
            ..Composer::default()
        };
        assert_eq!(c.line("你好\n".as_bytes()).unwrap(), b"\xc4\xe3\xba\xc3\n");
        assert_eq!(c.line("你好".as_bytes()).unwrap(), b"\xc4\xe3\xba\xc3");
        assert_eq!(c.line(b"hi\r\n").unwrap(), b"hi\r\n");
    }

    #[test]
    fn appends_replace_the_ending() {
        let c = Composer {
            append: vec![Append::Crlf],
            ..Composer::default()
        };
        assert_eq!(c.line(b"AT\n").unwrap(), b"AT\r\n");
        let modbus = Composer {
            send_hex: true,
            append: vec![Append::Crc16Modbus],
            ..Composer::default()
        };
        assert_eq!(
            modbus.line(b"01 03 00 00 00 01\n").unwrap(),
            [1, 3, 0, 0, 0, 1, 0x84, 0x0a]
        );
    }

    #[test]
    fn templates_render_then_encode_then_append() {
        use chrono::Utc;
        let c = Composer {
            encoding: TextEncoding::Gbk,
            append: vec![Append::Crlf],
            ..Composer::default()
        };
        let mut random = |b: &mut [u8]| b.fill(0);
        let mut ctx = Context {
            seq: 3,
            now: Utc.timestamp_opt(0, 0).single(),
            random: &mut random,
            received: None,
            captures: &[],
            named: &[],
        };
        let t = c.template("你好 {{seq}}").unwrap();
        assert_eq!(c.render(&t, false, &[], &mut ctx).unwrap(), b"\xc4\xe3\xba\xc3 3\r\n");
        let own = c.render(&t, false, &[Append::Sum8], &mut ctx).unwrap();
        assert_eq!(own.len(), 7);
        let hex = Composer {
            send_hex: true,
            ..Composer::default()
        };
        let t = hex.template("01 {{hex:ff}}").unwrap();
        assert_eq!(hex.render(&t, true, &[], &mut ctx).unwrap(), [1, 0xff]);
        assert!(hex.template("zz").is_err());
    }

    #[test]
    fn hex_lines_are_exact_and_errors_are_clear() {
        let c = Composer {
            send_hex: true,
            ..Composer::default()
        };
        assert!(c.transforms());
        assert_eq!(c.line(b"01 02 ff\n").unwrap(), [1, 2, 255]);
        assert_eq!(
            c.line(b"01 0z\n").unwrap_err().to_string(),
            "'z' at column 5 is not a hex digit"
        );
        assert_eq!(Composer::default().line(b"\xff\n"), Err(ComposeError::NotUtf8));
        assert!(!Composer::default().transforms());
    }
}
