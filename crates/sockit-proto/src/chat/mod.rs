//! The chat room's line protocol: what a member types (text or a `/`
//! command), what the room says back, and the rules for nicks.
//!
//! Plain UTF-8 lines, so `nc` and `ncat` are clients as good as sockit's
//! own. Every line the room sends starts with a marker a script can match:
//!
//! | line | meaning |
//! |---|---|
//! | `<nick> text` | a message to the room |
//! | `* nick text` | an action (`/me`) |
//! | `*nick* text` | a private message to you |
//! | `-> nick: text` | your private message, as sent |
//! | `*** text` | the room: joins, leaves, nick changes, `/who`, `/help` |
//! | `!!! text` | an error about your last line |

use std::fmt;

use serde::{Deserialize, Serialize};

pub mod bus;

/// Longest line accepted from a member, in bytes (its newline excluded).
/// Longer lines are refused whole, with an error, never cut.
pub const MAX_LINE: usize = 4096;

/// Longest nick, in characters.
pub const MAX_NICK: usize = 24;

/// A validated nick: 1-24 characters, letters, digits and `-_.[]{}|^`,
/// not starting with a digit or `-` (so it cannot look like a number or a
/// flag). Unicode letters are allowed; comparison ignores case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Nick(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NickError {
    #[error("a nick cannot be empty")]
    Empty,
    #[error("a nick is at most {MAX_NICK} characters")]
    TooLong,
    #[error("'{0}' is not allowed in a nick (letters, digits and -_.[]{{}}|^ are)")]
    BadChar(char),
    #[error("a nick cannot start with a digit or '-'")]
    BadStart,
}

impl Nick {
    pub fn parse(text: &str) -> Result<Nick, NickError> {
        let mut chars = text.chars();
        let first = chars.next().ok_or(NickError::Empty)?;
        if text.chars().count() > MAX_NICK {
            return Err(NickError::TooLong);
        }
        if first.is_ascii_digit() || first == '-' {
            return Err(NickError::BadStart);
        }
        if let Some(bad) = text
            .chars()
            .find(|&c| !(c.is_alphanumeric() || "-_.[]{}|^".contains(c)))
        {
            return Err(NickError::BadChar(bad));
        }
        Ok(Nick(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key two nicks collide on: `Alice` and `alice` are the same nick.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

impl TryFrom<String> for Nick {
    type Error = NickError;

    fn try_from(text: String) -> Result<Nick, NickError> {
        Nick::parse(&text)
    }
}

impl From<Nick> for String {
    fn from(nick: Nick) -> String {
        nick.0
    }
}

impl fmt::Display for Nick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One line a member typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Say(String),
    Me(String),
    Nick(String),
    Who,
    Msg {
        to: String,
        text: String,
    },
    Quit,
    Help,
    /// An empty line: ignored.
    Nothing,
    /// `/something` the room does not know, or a command missing its argument.
    Bad(String),
}

impl Input {
    /// Parses one line (without its newline). `//text` sends `/text`.
    pub fn parse(line: &str) -> Input {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            return Input::Nothing;
        }
        let Some(command) = line.strip_prefix('/') else {
            return Input::Say(line.to_string());
        };
        if command.starts_with('/') {
            return Input::Say(command.to_string());
        }
        let (name, rest) = command.split_once(' ').unwrap_or((command, ""));
        let rest = rest.trim();
        match name.to_ascii_lowercase().as_str() {
            "me" if !rest.is_empty() => Input::Me(rest.to_string()),
            "nick" if !rest.is_empty() => Input::Nick(rest.to_string()),
            "who" | "names" => Input::Who,
            "msg" | "m" => match rest.split_once(' ') {
                Some((to, text)) if !text.trim().is_empty() => Input::Msg {
                    to: to.to_string(),
                    text: text.trim().to_string(),
                },
                _ => Input::Bad("usage: /msg NICK TEXT".into()),
            },
            "quit" | "exit" => Input::Quit,
            "help" => Input::Help,
            "me" => Input::Bad("usage: /me ACTION".into()),
            "nick" => Input::Bad("usage: /nick NAME".into()),
            other => Input::Bad(format!("unknown command /{other}; /help lists them")),
        }
    }
}

/// What the room sends: each renders to one line (without its newline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output<'a> {
    Said { from: &'a Nick, text: &'a str },
    Action { from: &'a Nick, text: &'a str },
    Private { from: &'a Nick, text: &'a str },
    PrivateSent { to: &'a Nick, text: &'a str },
    Notice(&'a str),
    Error(&'a str),
}

impl fmt::Display for Output<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::Said { from, text } => write!(f, "<{from}> {text}"),
            Output::Action { from, text } => write!(f, "* {from} {text}"),
            Output::Private { from, text } => write!(f, "*{from}* {text}"),
            Output::PrivateSent { to, text } => write!(f, "-> {to}: {text}"),
            Output::Notice(text) => write!(f, "*** {text}"),
            Output::Error(text) => write!(f, "!!! {text}"),
        }
    }
}

pub const HELP: &[&str] = &[
    "commands: /nick NAME, /who, /msg NICK TEXT, /me ACTION, /quit, /help",
    "a line starting with // sends a line starting with /",
];

/// Longest line a room sends: a member's longest line behind its sender's
/// nick and the room's decoration, with room to spare. A client refuses
/// more rather than buffer it.
pub const MAX_ROOM_LINE: usize = MAX_LINE + 1024;

/// Splits a byte stream into lines, refusing any longer than its maximum
/// ([`MAX_LINE`] unless told) without buffering it: the rest of an
/// over-long line is skipped.
#[derive(Debug)]
pub struct LineReader {
    buf: Vec<u8>,
    /// Inside an over-long line: drop bytes until its newline.
    skipping: bool,
    max: usize,
}

impl Default for LineReader {
    fn default() -> Self {
        Self::with_max(MAX_LINE)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Text(String),
    TooLong,
    NotUtf8,
}

impl LineReader {
    pub fn with_max(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            skipping: false,
            max,
        }
    }

    /// Feeds bytes; calls `each` for every complete line.
    pub fn push(&mut self, mut data: &[u8], mut each: impl FnMut(Line)) {
        while !data.is_empty() {
            match data.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    let (head, rest) = data.split_at(end);
                    data = rest.get(1..).unwrap_or_default();
                    if std::mem::take(&mut self.skipping) {
                        self.buf.clear();
                        continue;
                    }
                    if self.buf.len() + head.len() > self.max {
                        self.buf.clear();
                        each(Line::TooLong);
                        continue;
                    }
                    self.buf.extend_from_slice(head);
                    let bytes = std::mem::take(&mut self.buf);
                    each(match String::from_utf8(bytes) {
                        Ok(text) => Line::Text(text),
                        Err(_) => Line::NotUtf8,
                    });
                }
                None => {
                    if !self.skipping {
                        if self.buf.len() + data.len() > self.max {
                            self.buf.clear();
                            self.skipping = true;
                            each(Line::TooLong);
                        } else {
                            self.buf.extend_from_slice(data);
                        }
                    }
                    data = &[];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nicks() {
        assert_eq!(Nick::parse("alice").unwrap().as_str(), "alice");
        assert_eq!(Nick::parse("小明").unwrap().as_str(), "小明");
        assert_eq!(Nick::parse("[bot]_2").unwrap().as_str(), "[bot]_2");
        assert_eq!(Nick::parse(""), Err(NickError::Empty));
        assert_eq!(Nick::parse("a b"), Err(NickError::BadChar(' ')));
        assert_eq!(Nick::parse("1abc"), Err(NickError::BadStart));
        assert_eq!(Nick::parse("-x"), Err(NickError::BadStart));
        assert_eq!(Nick::parse(&"x".repeat(25)), Err(NickError::TooLong));
        assert_eq!(Nick::parse("Alice").unwrap().key(), Nick::parse("aLICE").unwrap().key());
    }

    #[test]
    fn inputs() {
        assert_eq!(Input::parse("hello"), Input::Say("hello".into()));
        assert_eq!(Input::parse("hello\r"), Input::Say("hello".into()));
        assert_eq!(Input::parse("//etc"), Input::Say("/etc".into()));
        assert_eq!(Input::parse("/me waves"), Input::Me("waves".into()));
        assert_eq!(Input::parse("/NICK bob"), Input::Nick("bob".into()));
        assert_eq!(Input::parse("/who"), Input::Who);
        assert_eq!(
            Input::parse("/msg bob hi there"),
            Input::Msg {
                to: "bob".into(),
                text: "hi there".into()
            }
        );
        assert!(matches!(Input::parse("/msg bob"), Input::Bad(_)));
        assert!(matches!(Input::parse("/nick"), Input::Bad(_)));
        assert!(matches!(Input::parse("/dance"), Input::Bad(_)));
        assert_eq!(Input::parse("/quit"), Input::Quit);
        assert_eq!(Input::parse("   "), Input::Nothing);
    }

    #[test]
    fn outputs() {
        let a = Nick::parse("alice").unwrap();
        assert_eq!(Output::Said { from: &a, text: "hi" }.to_string(), "<alice> hi");
        assert_eq!(
            Output::Action {
                from: &a,
                text: "waves"
            }
            .to_string(),
            "* alice waves"
        );
        assert_eq!(Output::Private { from: &a, text: "psst" }.to_string(), "*alice* psst");
        assert_eq!(
            Output::PrivateSent { to: &a, text: "psst" }.to_string(),
            "-> alice: psst"
        );
        assert_eq!(Output::Notice("bob joined").to_string(), "*** bob joined");
        assert_eq!(Output::Error("no such nick").to_string(), "!!! no such nick");
    }

    fn lines(pieces: &[&[u8]]) -> Vec<Line> {
        let mut r = LineReader::default();
        let mut out = Vec::new();
        for p in pieces {
            r.push(p, |l| out.push(l));
        }
        out
    }

    #[test]
    fn lines_across_reads_and_limits() {
        assert_eq!(
            lines(&[b"he", b"llo\nwor", b"ld\n"]),
            [Line::Text("hello".into()), Line::Text("world".into())]
        );
        assert_eq!(
            lines(&[b"\xff\xfe\n", b"ok\n"]),
            [Line::NotUtf8, Line::Text("ok".into())]
        );
        let long = vec![b'x'; MAX_LINE + 1];
        assert_eq!(lines(&[&long, b"\nnext\n"]), [Line::TooLong, Line::Text("next".into())]);
        let exact = vec![b'y'; MAX_LINE];
        assert_eq!(lines(&[&exact[..10], &exact[10..], b"\n"]).len(), 1);
        // An over-long line split across many reads is refused once.
        let pieces: Vec<&[u8]> = std::iter::repeat_n(&exact[..1000], 10).chain([&b"\n"[..]]).collect();
        assert_eq!(lines(&pieces), [Line::TooLong]);
    }
}
