//! Message templates with macros, for everything the assistant sends: a
//! rule's reply, a periodic send, a scenario step, a quick send.
//!
//! A template is text with `{{...}}` macros:
//!
//! | macro | becomes |
//! |---|---|
//! | `{{seq}}` | the session's counter (1, 2, 3, ...) |
//! | `{{time:%H:%M:%S}}` | the local time in a strftime format |
//! | `{{unix}}` | seconds since 1970 |
//! | `{{rand:N}}` | N random bytes as hex (1-64) |
//! | `{{len}}` | the byte length of the message being answered (0 if none) |
//! | `{{hex:0A0D}}` | those bytes, raw (also for a literal `{{`: `{{hex:7B7B}}`) |
//! | `{{0}}` .. `{{9}}` | a capture of the rule's match (`{{0}}`: all of it); empty if it did not take part |
//! | `{{name}}` | a named capture |
//!
//! Parsing checks everything once (an unknown macro, bad hex, a bad time
//! format are errors with the macro named), so rendering cannot fail and
//! never panics. The caller passes the clock, the random bytes and the
//! captures in: this module does no I/O.

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, TimeZone};

use super::hex;

/// Most random bytes one `{{rand:N}}` asks for.
pub const MAX_RAND: usize = 64;
/// Longest strftime output a `{{time:...}}` may produce: a timestamp, not a
/// way to make a reply of any size.
pub const MAX_TIME_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("a macro opened with {{{{ at byte {0} has no closing }}}}")]
    Unclosed(usize),
    #[error("unknown macro {{{{{0}}}}} (seq, time:FMT, unix, rand:N, len, hex:BYTES, 0-9, or a capture name)")]
    Unknown(String),
    #[error("{{{{hex:{0}}}}}: {1}")]
    BadHex(String, String),
    #[error("{{{{rand:{0}}}}}: N must be 1 to {MAX_RAND}")]
    BadRand(String),
    #[error("{{{{time:{0}}}}}: not a strftime format")]
    BadTime(String),
    #[error("hex template: {0}")]
    HexText(String),
}

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Bytes(Vec<u8>),
    Seq,
    Time(String),
    Unix,
    Rand(usize),
    Len,
    Capture(usize),
    Named(String),
}

/// A parsed template: render it as often as needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

/// How much of a match a template reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CaptureUse {
    None,
    Whole,
    Groups,
}

/// What a rendering may draw on.
pub struct Context<'a, Tz: TimeZone> {
    pub seq: u64,
    /// The clock, when the template reads it ([`Template::uses_clock`]);
    /// without it, time macros render nothing.
    pub now: Option<DateTime<Tz>>,
    /// Fills a buffer with random bytes (the caller's RNG).
    pub random: &'a mut dyn FnMut(&mut [u8]),
    /// The message being answered, if any (for `{{len}}`).
    pub received: Option<&'a [u8]>,
    /// The rule's captures by number (`None`: did not take part).
    pub captures: &'a [Option<&'a [u8]>],
    /// The rule's named captures.
    pub named: &'a [(&'a str, Option<&'a [u8]>)],
}

impl<Tz: TimeZone> std::fmt::Debug for Context<'_, Tz> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("seq", &self.seq)
            .field("received", &self.received.map(<[u8]>::len))
            .finish_non_exhaustive()
    }
}

impl Template {
    /// A text template: what is outside the macros is sent as its UTF-8
    /// bytes.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        Self::parse_with(text, |t| Ok(t.as_bytes().to_vec()))
    }

    /// A hex template (`01 03 {{1}} {{seq}}`): what is outside the macros
    /// is hex (as `--send-hex` reads it); the macros insert their bytes as
    /// in a text template.
    pub fn parse_hex(text: &str) -> Result<Self, TemplateError> {
        Self::parse_with(text, |t| {
            hex::parse(t).map_err(|e| TemplateError::HexText(e.to_string()))
        })
    }

    fn parse_with(
        text: &str,
        literal_of: impl Fn(&str) -> Result<Vec<u8>, TemplateError>,
    ) -> Result<Self, TemplateError> {
        let mut pieces = Vec::new();
        let mut literal = Vec::new();
        let mut rest = text;
        let mut at = 0;
        while let Some(open) = rest.find("{{") {
            literal.extend_from_slice(&literal_of(rest.get(..open).unwrap_or_default())?);
            let after = rest.get(open + 2..).unwrap_or_default();
            let close = after.find("}}").ok_or(TemplateError::Unclosed(at + open))?;
            let name = after.get(..close).unwrap_or_default().trim();
            let piece = macro_of(name)?;
            if let Piece::Bytes(b) = piece {
                literal.extend_from_slice(&b);
            } else {
                if !literal.is_empty() {
                    pieces.push(Piece::Bytes(std::mem::take(&mut literal)));
                }
                pieces.push(piece);
            }
            let consumed = open + 2 + close + 2;
            at += consumed;
            rest = rest.get(consumed..).unwrap_or_default();
        }
        literal.extend_from_slice(&literal_of(rest)?);
        if !literal.is_empty() {
            pieces.push(Piece::Bytes(literal));
        }
        Ok(Self { pieces })
    }

    /// Whether rendering depends on anything but the text (the counter,
    /// the clock, chance, a capture): a constant template can be sent
    /// without rendering.
    pub fn is_constant(&self) -> bool {
        self.pieces.iter().all(|p| matches!(p, Piece::Bytes(_)))
    }

    /// Whether rendering reads the clock (`{{time:..}}`, `{{unix}}`): if
    /// not, the caller need not.
    pub fn uses_clock(&self) -> bool {
        self.pieces.iter().any(|p| matches!(p, Piece::Time(_) | Piece::Unix))
    }

    /// Which captures rendering reads: none, only the whole match
    /// (`{{0}}`), or groups. A matcher can skip the work it need not do.
    pub fn captures_used(&self) -> CaptureUse {
        self.pieces.iter().fold(CaptureUse::None, |acc, p| match p {
            Piece::Capture(0) => acc.max(CaptureUse::Whole),
            Piece::Capture(_) | Piece::Named(_) => CaptureUse::Groups,
            _ => acc,
        })
    }

    /// The capture names the template refers to (`{{user}}`), so a rule
    /// can check that its pattern defines them.
    pub fn capture_names(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Named(n) => Some(n.as_str()),
            _ => None,
        })
    }

    pub fn render<Tz: TimeZone>(&self, ctx: &mut Context<'_, Tz>) -> Vec<u8>
    where
        Tz::Offset: std::fmt::Display,
    {
        let mut out = Vec::new();
        for piece in &self.pieces {
            match piece {
                Piece::Bytes(b) => out.extend_from_slice(b),
                Piece::Seq => out.extend_from_slice(ctx.seq.to_string().as_bytes()),
                Piece::Unix => {
                    if let Some(now) = &ctx.now {
                        out.extend_from_slice(now.timestamp().to_string().as_bytes());
                    }
                }
                Piece::Time(format) => {
                    // Checked when parsed, so this only fails on a time
                    // chrono cannot show; then nothing is written.
                    let text = ctx
                        .now
                        .as_ref()
                        .and_then(|now| crate::clock::format_request(format.as_bytes(), now, MAX_TIME_LEN).ok());
                    if let Some(text) = text {
                        out.extend_from_slice(text.as_bytes());
                    }
                }
                Piece::Rand(n) => {
                    let mut buf = vec![0u8; *n];
                    (ctx.random)(&mut buf);
                    out.extend_from_slice(crate::checksum::hex(&buf).as_bytes());
                }
                Piece::Len => {
                    let len = ctx.received.map_or(0, <[u8]>::len);
                    out.extend_from_slice(len.to_string().as_bytes());
                }
                Piece::Capture(i) => {
                    if let Some(Some(c)) = ctx.captures.get(*i) {
                        out.extend_from_slice(c);
                    }
                }
                Piece::Named(name) => {
                    if let Some((_, Some(c))) = ctx.named.iter().find(|(n, _)| n == name) {
                        out.extend_from_slice(c);
                    }
                }
            }
        }
        out
    }
}

fn macro_of(name: &str) -> Result<Piece, TemplateError> {
    if let Some(format) = name.strip_prefix("time:") {
        let bad = StrftimeItems::new(format).any(|i| matches!(i, Item::Error));
        if bad || format.is_empty() || format.len() > MAX_TIME_LEN {
            return Err(TemplateError::BadTime(format.to_owned()));
        }
        return Ok(Piece::Time(format.to_owned()));
    }
    if let Some(n) = name.strip_prefix("rand:") {
        return match n.trim().parse::<usize>() {
            Ok(k) if (1..=MAX_RAND).contains(&k) => Ok(Piece::Rand(k)),
            _ => Err(TemplateError::BadRand(n.to_owned())),
        };
    }
    if let Some(bytes) = name.strip_prefix("hex:") {
        return hex::parse(bytes)
            .map(Piece::Bytes)
            .map_err(|e| TemplateError::BadHex(bytes.to_owned(), e.to_string()));
    }
    match name.as_bytes() {
        b"seq" => Ok(Piece::Seq),
        b"unix" => Ok(Piece::Unix),
        b"len" => Ok(Piece::Len),
        &[digit] if digit.is_ascii_digit() => Ok(Piece::Capture(usize::from(digit - b'0'))),
        _ if is_capture_name(name) => Ok(Piece::Named(name.to_owned())),
        _ => Err(TemplateError::Unknown(name.to_owned())),
    }
}

/// A regex group name: a letter or `_`, then letters, digits or `_`.
fn is_capture_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::Utc;
    use proptest::prelude::*;

    fn render(t: &str, seq: u64, received: Option<&[u8]>, captures: &[Option<&[u8]>]) -> Vec<u8> {
        let mut counter = 0u8;
        let mut random = |buf: &mut [u8]| {
            for b in buf {
                counter = counter.wrapping_add(1);
                *b = counter;
            }
        };
        let named = [("user", Some(&b"ann"[..])), ("none", None)];
        let mut ctx = Context {
            seq,
            now: Some(Utc.with_ymd_and_hms(2026, 12, 2, 8, 30, 5).unwrap()),
            random: &mut random,
            received,
            captures,
            named: &named,
        };
        Template::parse(t).unwrap().render(&mut ctx)
    }

    #[test]
    fn every_macro_renders() {
        let caps: [Option<&[u8]>; 3] = [Some(b"GET 7"), Some(b"7"), None];
        assert_eq!(render("PING {{seq}}", 3, None, &[]), b"PING 3");
        assert_eq!(
            render("{{time:%H:%M:%S}} {{unix}}", 0, None, &[]),
            b"08:30:05 1796200205"
        );
        assert_eq!(render("{{rand:3}}", 0, None, &[]), b"010203");
        assert_eq!(render("len={{len}}", 0, Some(b"hello"), &[]), b"len=5");
        assert_eq!(render("len={{len}}", 0, None, &[]), b"len=0");
        assert_eq!(render("OK{{hex:0D 0A}}", 0, None, &[]), b"OK\r\n");
        assert_eq!(render("[{{0}}|{{1}}|{{2}}|{{9}}]", 0, None, &caps), b"[GET 7|7||]");
        assert_eq!(render("hi {{user}}{{none}}", 0, None, &[]), b"hi ann");
        assert_eq!(render("{{hex:7B7B}}literal", 0, None, &[]), b"{{literal");
        assert_eq!(render("no macros at all", 0, None, &[]), b"no macros at all");
        assert_eq!(render("", 0, None, &[]), b"");
        assert!(Template::parse("plain {{hex:41}}").unwrap().is_constant());
        assert!(!Template::parse("{{seq}}").unwrap().is_constant());
    }

    #[test]
    fn templates_say_what_they_read() {
        let t = |s: &str| Template::parse(s).unwrap();
        assert!(t("{{time:%H}}").uses_clock() && t("{{unix}}").uses_clock());
        assert!(!t("{{seq}} {{0}}").uses_clock());
        assert_eq!(t("plain {{seq}}").captures_used(), CaptureUse::None);
        assert_eq!(t("{{0}}!").captures_used(), CaptureUse::Whole);
        assert_eq!(t("{{0}} {{2}}").captures_used(), CaptureUse::Groups);
        assert_eq!(t("{{user}}").captures_used(), CaptureUse::Groups);
    }

    #[test]
    fn hex_templates_read_hex_between_macros() {
        let caps: [Option<&[u8]>; 2] = [None, Some(b"\x07\x08")];
        let mut random = |buf: &mut [u8]| buf.fill(0);
        let mut ctx = Context {
            seq: 12,
            now: Some(Utc.with_ymd_and_hms(2026, 12, 2, 8, 30, 5).unwrap()),
            random: &mut random,
            received: None,
            captures: &caps,
            named: &[],
        };
        let t = Template::parse_hex("01 03 {{1}} 0x0a,{{seq}}").unwrap();
        assert_eq!(t.render(&mut ctx), b"\x01\x03\x07\x08\x0a12");
        assert!(matches!(Template::parse_hex("01 0g"), Err(TemplateError::HexText(_))));
        assert!(Template::parse_hex("").unwrap().is_constant());
    }

    #[test]
    fn bad_templates_name_the_macro() {
        use TemplateError::*;
        let err = |t: &str| Template::parse(t).unwrap_err();
        assert_eq!(err("a {{seq"), Unclosed(2));
        assert_eq!(err("{{nope-nope}}"), Unknown("nope-nope".into()));
        assert!(matches!(err("{{hex:0G}}"), BadHex(..)));
        assert_eq!(err("{{rand:0}}"), BadRand("0".into()));
        assert_eq!(err("{{rand:65}}"), BadRand("65".into()));
        assert_eq!(err("{{time:%Q}}"), BadTime("%Q".into()));
        assert!(err("{{nope-nope}}").to_string().contains("unknown macro {{nope-nope}}"));
    }

    proptest! {
        /// Any text either parses or is refused; a parsed one always
        /// renders, whatever the context.
        #[test]
        fn never_panics(text in "\\PC{0,64}", seq in any::<u64>(), recv in proptest::collection::vec(any::<u8>(), 0..16)) {
            if let Ok(t) = Template::parse(&text) {
                let mut random = |buf: &mut [u8]| buf.fill(0xAB);
                let caps: [Option<&[u8]>; 1] = [Some(&recv)];
                let mut ctx = Context {
                    seq,
                    now: Some(Utc.timestamp_opt(i64::from(u32::MAX), 0).unwrap()),
                    random: &mut random,
                    received: Some(&recv),
                    captures: &caps,
                    named: &[],
                };
                let _ = t.render(&mut ctx);
            }
        }

        /// Text without braces comes back byte for byte.
        #[test]
        fn plain_text_is_itself(text in "[^{}]{0,64}") {
            prop_assert_eq!(render(&text, 1, None, &[]), text.as_bytes());
        }

        /// A capture substitutes exactly its bytes.
        #[test]
        fn captures_substitute_exactly(cap in proptest::collection::vec(any::<u8>(), 0..32)) {
            let caps: [Option<&[u8]>; 2] = [None, Some(&cap)];
            let mut want = b"<".to_vec();
            want.extend_from_slice(&cap);
            want.push(b'>');
            prop_assert_eq!(render("<{{1}}>", 0, None, &caps), want);
        }
    }
}
