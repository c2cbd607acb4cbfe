//! What a rule or a scenario step looks for in received bytes: exact bytes,
//! a substring, a regular expression with captures, or a hex pattern with
//! `??` wildcards.
//!
//! Regular expressions are compiled with a size limit, so a pattern with a
//! huge repetition (`a{1000}{1000}`) is refused when it is loaded instead
//! of taking the memory of a server that answers with it. The engine is
//! the `regex` crate's: matching time is linear in the input, whatever the
//! pattern.

use std::ops::Range;

use memchr::memmem;
use regex::bytes::{Regex, RegexBuilder};

use super::hex;
use super::template::CaptureUse;

/// Most memory one compiled pattern may take. Ordinary patterns need a
/// few KiB; a megabyte leaves room for long alternations and refuses the
/// exponential ones.
pub const MAX_REGEX_SIZE: usize = 1 << 20;
/// Longest pattern source accepted.
pub const MAX_PATTERN_LEN: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("regex /{pattern}/: {reason}")]
    Regex { pattern: String, reason: String },
    #[error("hex pattern '{pattern}': {reason}")]
    Hex { pattern: String, reason: String },
    #[error("a pattern is at most {MAX_PATTERN_LEN} bytes")]
    TooLong,
}

/// Where a match was, and its groups, as ranges of the searched bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Found {
    /// Group 0 is the whole match; a group that took no part is `None`.
    pub groups: Vec<Option<Range<usize>>>,
    /// Named groups: name and group number.
    pub names: Vec<(String, usize)>,
}

impl Found {
    fn whole(range: Range<usize>) -> Self {
        Self {
            groups: vec![Some(range)],
            names: Vec::new(),
        }
    }

    /// The whole match.
    pub fn span(&self) -> Range<usize> {
        self.groups.first().cloned().flatten().unwrap_or(0..0)
    }

    /// The groups as slices of `haystack` (the bytes that were searched).
    pub fn slices<'a>(&self, haystack: &'a [u8]) -> Vec<Option<&'a [u8]>> {
        self.groups
            .iter()
            .map(|g| g.as_ref().and_then(|r| haystack.get(r.clone())))
            .collect()
    }

    pub fn named_slices<'a, 'n>(&'n self, haystack: &'a [u8]) -> Vec<(&'n str, Option<&'a [u8]>)> {
        self.names
            .iter()
            .map(|(name, i)| {
                let slice = self.groups.get(*i).cloned().flatten().and_then(|r| haystack.get(r));
                (name.as_str(), slice)
            })
            .collect()
    }
}

/// A hex pattern: bytes, `??` for any one byte, and a trailing `*` for
/// anything after. Each `??` is a capture group, numbered from 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HexPattern {
    /// `None`: a wildcard.
    bytes: Vec<Option<u8>>,
    open_end: bool,
    source: String,
}

impl std::fmt::Display for HexPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.source.trim())
    }
}

impl HexPattern {
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let bad = |reason: String| PatternError::Hex {
            pattern: text.to_owned(),
            reason,
        };
        let mut body = text.trim();
        let open_end = body.ends_with('*');
        if open_end {
            body = body.trim_end_matches('*');
        }
        let mut bytes = Vec::new();
        // `??` may stand alone or sit inside a run of digits (`01??03`):
        // cut the text at each wildcard and read the pieces as hex.
        for (i, piece) in body.split("??").enumerate() {
            if i > 0 {
                bytes.push(None);
            }
            let parsed = hex::parse(piece).map_err(|e| bad(e.to_string()))?;
            bytes.extend(parsed.into_iter().map(Some));
        }
        if bytes.is_empty() && !open_end {
            return Err(bad("no bytes to match".into()));
        }
        Ok(Self {
            bytes,
            open_end,
            source: text.to_owned(),
        })
    }

    fn matches_at(&self, data: &[u8], at: usize) -> Option<Found> {
        let window = data.get(at..at.checked_add(self.bytes.len())?)?;
        let mut groups = vec![None];
        for (i, (want, got)) in self.bytes.iter().zip(window).enumerate() {
            match want {
                Some(b) if b != got => return None,
                Some(_) => {}
                None => groups.push(Some(at + i..at + i + 1)),
            }
        }
        let end = if self.open_end {
            data.len()
        } else {
            at + self.bytes.len()
        };
        if let Some(whole) = groups.first_mut() {
            *whole = Some(at..end);
        }
        Some(Found {
            groups,
            names: Vec::new(),
        })
    }

    /// The fewest bytes a message it matches has; with `open_end`, more
    /// are allowed.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn open_end(&self) -> bool {
        self.open_end
    }

    /// The whole message: the pattern's length exactly (or more with `*`).
    pub fn matches_whole(&self, data: &[u8]) -> Option<Found> {
        if data.len() == self.bytes.len() || (self.open_end && data.len() > self.bytes.len()) {
            self.matches_at(data, 0)
        } else {
            None
        }
    }

    /// The first place in `data` the pattern matches.
    pub fn find(&self, data: &[u8]) -> Option<Found> {
        let last = data.len().checked_sub(self.bytes.len())?;
        (0..=last).find_map(|at| self.matches_at(data, at))
    }
}

/// Compiles a regular expression over bytes, with the size limits. `^` and
/// `$` match at line starts and ends (before `\n` or `\r\n`), as someone
/// testing a line protocol expects.
pub fn regex(pattern: &str) -> Result<Regex, PatternError> {
    if pattern.len() > MAX_PATTERN_LEN {
        return Err(PatternError::TooLong);
    }
    RegexBuilder::new(pattern)
        .multi_line(true)
        .crlf(true)
        .size_limit(MAX_REGEX_SIZE)
        .dfa_size_limit(MAX_REGEX_SIZE)
        .build()
        .map_err(|e| PatternError::Regex {
            pattern: pattern.to_owned(),
            reason: one_line(&e.to_string()),
        })
}

/// regex's errors draw the pattern over several lines; a rules file error
/// reads better as one.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("invalid")
        .trim_start_matches("error: ")
        .to_owned()
}

/// The groups of a regex match.
pub fn regex_found(re: &Regex, data: &[u8], from: usize) -> Option<Found> {
    let caps = re.captures_at(data, from)?;
    let groups = (0..caps.len()).map(|i| caps.get(i).map(|m| m.range())).collect();
    let names = re
        .capture_names()
        .enumerate()
        .filter_map(|(i, n)| n.map(|n| (n.to_owned(), i)))
        .collect();
    Some(Found { groups, names })
}

/// What a rule matches a message against.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// The whole message, byte for byte.
    Exact(Vec<u8>),
    /// Anywhere in the message.
    Contains(Box<memmem::Finder<'static>>),
    /// Anywhere in the message (anchor with `^...$`), with captures.
    Regex(Regex),
    /// The whole message, with `??` wildcards captured.
    Hex(HexPattern),
}

impl Matcher {
    pub fn exact(text: &str) -> Self {
        Matcher::Exact(text.as_bytes().to_vec())
    }

    pub fn contains(text: &str) -> Self {
        Matcher::Contains(Box::new(memmem::Finder::new(text.as_bytes()).into_owned()))
    }

    pub fn find(&self, message: &[u8]) -> Option<Found> {
        self.find_as_needed(message, CaptureUse::Groups)
    }

    /// As [`Matcher::find`], doing only the work `need` asks for: a regex
    /// already known to match need not run again when no capture is read,
    /// and finding the whole match is cheaper than finding its groups.
    /// (Exact, substring and hex matches cost the same either way.)
    pub fn find_as_needed(&self, message: &[u8], need: CaptureUse) -> Option<Found> {
        match self {
            Matcher::Regex(re) if need == CaptureUse::None => re.is_match(message).then(Found::default),
            Matcher::Regex(re) if need == CaptureUse::Whole => re.find(message).map(|m| Found::whole(m.range())),
            _ => self.find_all(message),
        }
    }

    fn find_all(&self, message: &[u8]) -> Option<Found> {
        match self {
            Matcher::Exact(want) => (message == want.as_slice()).then(|| Found::whole(0..message.len())),
            Matcher::Contains(finder) => finder
                .find(message)
                .map(|at| Found::whole(at..at + finder.needle().len())),
            Matcher::Regex(re) => regex_found(re, message, 0),
            Matcher::Hex(pattern) => pattern.matches_whole(message),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn groups(found: &Found, data: &[u8]) -> Vec<Option<Vec<u8>>> {
        found.slices(data).into_iter().map(|s| s.map(<[u8]>::to_vec)).collect()
    }

    #[test]
    fn hex_patterns_capture_wildcards() {
        let p = HexPattern::parse("01 03 ?? ??").unwrap();
        let f = p.matches_whole(&[1, 3, 0xab, 0xcd]).unwrap();
        assert_eq!(
            groups(&f, &[1, 3, 0xab, 0xcd]),
            [Some(vec![1, 3, 0xab, 0xcd]), Some(vec![0xab]), Some(vec![0xcd])]
        );
        assert!(p.matches_whole(&[1, 3, 0]).is_none());
        assert!(p.matches_whole(&[1, 3, 0, 0, 0]).is_none());
        assert!(p.matches_whole(&[1, 4, 0, 0]).is_none());
        let open = HexPattern::parse("01??03 *").unwrap();
        assert!(open.matches_whole(&[1, 2, 3, 4, 5]).is_some());
        assert!(open.matches_whole(&[1, 2, 3]).is_some());
        assert_eq!(p.find(&[9, 9, 1, 3, 7, 8, 9]).unwrap().span(), 2..6);
        assert!(HexPattern::parse("").is_err());
        assert!(HexPattern::parse("0g").is_err());
        assert!(HexPattern::parse("0 1").is_err());
    }

    #[test]
    fn matchers() {
        assert!(Matcher::exact("PING").find(b"PING").is_some());
        assert!(Matcher::exact("PING").find(b"PING!").is_none());
        assert_eq!(Matcher::contains("NG").find(b"PING").unwrap().span(), 2..4);
        let re = Matcher::Regex(regex(r"^GET (?P<key>\w+) (\d+)$").unwrap());
        let f = re.find(b"GET temp 42").unwrap();
        assert_eq!(
            groups(&f, b"GET temp 42"),
            [
                Some(b"GET temp 42".to_vec()),
                Some(b"temp".to_vec()),
                Some(b"42".to_vec())
            ]
        );
        assert_eq!(f.named_slices(b"GET temp 42"), [("key", Some(&b"temp"[..]))]);
        // Lines: ^ and $ work around \r\n too.
        let line = regex("^hello$").unwrap();
        assert!(line.is_match(b"x\r\nhello\r\n"));
    }

    #[test]
    fn huge_repetitions_are_refused() {
        let err = regex("(a{1000}){1000}").unwrap_err();
        assert!(matches!(err, PatternError::Regex { .. }), "{err}");
        assert!(!err.to_string().contains('\n'));
        assert!(regex("(").is_err());
        assert_eq!(
            regex(&"a".repeat(MAX_PATTERN_LEN + 1)).unwrap_err(),
            PatternError::TooLong
        );
    }

    proptest! {
        /// A hex pattern that spells some bytes, with wildcards anywhere,
        /// matches them and captures exactly the wildcard bytes.
        #[test]
        fn hex_pattern_captures_exactly(data in proptest::collection::vec(any::<u8>(), 1..24), mask in any::<u32>()) {
            let text: Vec<String> = data.iter().enumerate()
                .map(|(i, b)| if mask >> (i % 32) & 1 == 1 { "??".to_owned() } else { format!("{b:02x}") })
                .collect();
            let p = HexPattern::parse(&text.join(" ")).unwrap();
            let f = p.matches_whole(&data).unwrap();
            let wild: Vec<Vec<u8>> = data.iter().enumerate()
                .filter(|(i, _)| mask >> (i % 32) & 1 == 1)
                .map(|(_, b)| vec![*b]).collect();
            let got: Vec<Vec<u8>> = f.slices(&data).into_iter().skip(1).map(|s| s.unwrap().to_vec()).collect();
            prop_assert_eq!(got, wild);
        }

        /// Any regex source either compiles under the limits or is refused;
        /// matching never panics.
        #[test]
        fn regexes_never_panic(src in "\\PC{0,24}", data in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(re) = regex(&src) {
                let _ = Matcher::Regex(re).find(&data);
            }
        }
    }
}
