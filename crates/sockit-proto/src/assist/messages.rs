//! `--frame`: splitting what arrives on a stream into messages for display.
//!
//! - `line`: up to each `\n` (a trailing `\r` is part of the ending).
//! - `len32le`: the seeds' 4-byte little-endian length, then that many bytes.
//! - `json-frame`: sockit's full framed protocol (docs/protocol.md §1):
//!   the JSON header, then its body in pieces.
//! - `raw`: whatever one read returned (for rules: each read is a message).
//!
//! Each mode caps what it buffers, so a hostile or mistaken peer cannot
//! make the display hold unbounded memory.

use std::str::FromStr;

use bytes::{Buf, Bytes, BytesMut};

use crate::frame::{FrameDecoder, FrameError, FrameEvent, FrameLimits, Header};

/// Longest line shown as one message; a longer one is shown in pieces.
pub const MAX_LINE: usize = 64 * 1024;

/// Largest `len32le` message accepted: far above the seeds' messages,
/// small enough that a wrong guess at the framing fails fast.
pub const MAX_LEN32: u32 = 16 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameMode {
    Line,
    Len32Le,
    JsonFrame,
    Raw,
}

impl FrameMode {
    pub fn name(self) -> &'static str {
        match self {
            FrameMode::Line => "line",
            FrameMode::Len32Le => "len32le",
            FrameMode::JsonFrame => "json-frame",
            FrameMode::Raw => "raw",
        }
    }

    /// A rule's reply framed as this session frames its messages: a line
    /// gets `\n` (unless it already ends in one, as with `append =
    /// ["crlf"]`), a length-framed reply its 4-byte little-endian length
    /// (a framed-protocol reply is a header with no body), raw goes as is.
    pub fn wrap_reply(self, mut reply: Vec<u8>) -> Vec<u8> {
        match self {
            FrameMode::Line => {
                if reply.last() != Some(&b'\n') {
                    reply.push(b'\n');
                }
                reply
            }
            FrameMode::Len32Le | FrameMode::JsonFrame => {
                let len = u32::try_from(reply.len()).unwrap_or(u32::MAX);
                let mut out = Vec::with_capacity(4 + reply.len());
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(&reply);
                out
            }
            FrameMode::Raw => reply,
        }
    }
}

impl FromStr for FrameMode {
    type Err = SplitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "line" => Ok(FrameMode::Line),
            "len32le" => Ok(FrameMode::Len32Le),
            "json-frame" => Ok(FrameMode::JsonFrame),
            "raw" => Ok(FrameMode::Raw),
            _ => Err(SplitError::UnknownMode(s.to_string())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("unknown --frame '{0}' (expected line, len32le, json-frame or raw)")]
    UnknownMode(String),
    #[error("length prefix {len} exceeds {MAX_LEN32} bytes: the stream is not len32le framed")]
    TooLong { len: u32 },
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("the stream ended inside a message ({0} bytes pending)")]
    Truncated(usize),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A line without its ending; `complete` is false for a piece of an
    /// over-long line or a last line with no ending.
    Line { text: Bytes, complete: bool },
    /// One length-prefixed message.
    Sized(Bytes),
    /// A framed-protocol header and the body length it announces.
    FrameHeader { header: Header, body_len: u64 },
    /// The next piece of a framed-protocol body.
    FrameBody(Bytes),
}

impl Message {
    /// What a rule matches: a line without its ending, a sized message, a
    /// framed-protocol header as JSON text. Body pieces are not matched.
    pub fn payload(&self) -> Option<Bytes> {
        match self {
            Message::Line { text, .. } => Some(text.clone()),
            Message::Sized(data) => Some(data.clone()),
            Message::FrameHeader { header, .. } => serde_json::to_vec(header).ok().map(Bytes::from),
            Message::FrameBody(_) => None,
        }
    }
}

#[derive(Debug)]
pub struct Splitter {
    mode: FrameMode,
    buf: BytesMut,
    frames: FrameDecoder,
}

impl Splitter {
    pub fn new(mode: FrameMode) -> Self {
        Self {
            mode,
            buf: BytesMut::new(),
            frames: FrameDecoder::new(FrameLimits::default()),
        }
    }

    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole message, `Ok(None)` when more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Message>, SplitError> {
        match self.mode {
            FrameMode::Line => Ok(self.next_line()),
            FrameMode::Len32Le => self.next_sized(),
            FrameMode::JsonFrame => self.next_frame(),
            FrameMode::Raw => Ok((!self.buf.is_empty()).then(|| Message::Sized(self.buf.split().freeze()))),
        }
    }

    /// Called at end of stream: a last line without its ending is still a
    /// message; a cut-off binary message is an error.
    pub fn finish(&mut self) -> Result<Option<Message>, SplitError> {
        if self.buf.is_empty() && (self.mode != FrameMode::JsonFrame || self.frames.is_idle()) {
            return Ok(None);
        }
        match self.mode {
            FrameMode::Line => Ok(Some(Message::Line {
                text: self.buf.split().freeze(),
                complete: false,
            })),
            FrameMode::Raw => Ok(Some(Message::Sized(self.buf.split().freeze()))),
            _ => Err(SplitError::Truncated(self.buf.len())),
        }
    }

    fn next_line(&mut self) -> Option<Message> {
        let search = self.buf.len().min(MAX_LINE);
        match self.buf.get(..search).and_then(|b| b.iter().position(|&c| c == b'\n')) {
            Some(end) => {
                let mut line = self.buf.split_to(end + 1);
                line.truncate(end);
                if line.last() == Some(&b'\r') {
                    line.truncate(end - 1);
                }
                Some(Message::Line {
                    text: line.freeze(),
                    complete: true,
                })
            }
            None if self.buf.len() >= MAX_LINE => Some(Message::Line {
                text: self.buf.split_to(MAX_LINE).freeze(),
                complete: false,
            }),
            None => None,
        }
    }

    fn next_sized(&mut self) -> Result<Option<Message>, SplitError> {
        let Some(prefix) = self.buf.get(..4).and_then(|p| <[u8; 4]>::try_from(p).ok()) else {
            return Ok(None);
        };
        let len = u32::from_le_bytes(prefix);
        if len > MAX_LEN32 {
            return Err(SplitError::TooLong { len });
        }
        // len is at most MAX_LEN32, which fits every usize sockit runs on.
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        self.buf.advance(4);
        Ok(Some(Message::Sized(self.buf.split_to(len).freeze())))
    }

    fn next_frame(&mut self) -> Result<Option<Message>, SplitError> {
        Ok(match self.frames.decode(&mut self.buf)? {
            None | Some(FrameEvent::End) => None,
            Some(FrameEvent::Header { header, body_len }) => Some(Message::FrameHeader { header, body_len }),
            Some(FrameEvent::Body(piece)) => Some(Message::FrameBody(piece)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(mode: FrameMode, pieces: &[&[u8]]) -> Vec<Message> {
        let mut s = Splitter::new(mode);
        let mut out = Vec::new();
        for p in pieces {
            s.push(p);
            while let Some(m) = s.next_message().unwrap() {
                out.push(m);
            }
        }
        out.extend(s.finish().unwrap());
        out
    }

    fn line(text: &str, complete: bool) -> Message {
        Message::Line {
            text: Bytes::copy_from_slice(text.as_bytes()),
            complete,
        }
    }

    #[test]
    fn lines_across_pieces() {
        assert_eq!(
            all(FrameMode::Line, &[b"he", b"llo\r\nwor", b"ld\n\nlast"]),
            [
                line("hello", true),
                line("world", true),
                line("", true),
                line("last", false)
            ]
        );
    }

    #[test]
    fn over_long_lines_come_in_pieces() {
        let long = vec![b'a'; MAX_LINE + 10];
        let msgs = all(FrameMode::Line, &[&long, b"\n"]);
        assert_eq!(msgs.len(), 2);
        assert!(matches!(&msgs[0], Message::Line { text, complete: false } if text.len() == MAX_LINE));
        assert!(matches!(&msgs[1], Message::Line { text, complete: true } if text.len() == 10));
    }

    #[test]
    fn len32le_messages() {
        let msgs = all(FrameMode::Len32Le, &[b"\x03\x00\x00", b"\x00abc\x00\x00", b"\x00\x00"]);
        assert_eq!(
            msgs,
            [Message::Sized(Bytes::from_static(b"abc")), Message::Sized(Bytes::new())]
        );
        let mut s = Splitter::new(FrameMode::Len32Le);
        s.push(b"GET / HTTP/1.1\r\n");
        assert!(matches!(s.next_message(), Err(SplitError::TooLong { .. })));
        let mut cut = Splitter::new(FrameMode::Len32Le);
        cut.push(b"\x05\x00\x00\x00ab");
        assert_eq!(cut.next_message(), Ok(None));
        assert_eq!(cut.finish(), Err(SplitError::Truncated(6)));
    }

    #[test]
    fn raw_reads_are_messages_and_replies_are_framed() {
        assert_eq!(
            all(FrameMode::Raw, &[b"ab", b"", b"c"]),
            [
                Message::Sized(Bytes::from_static(b"ab")),
                Message::Sized(Bytes::from_static(b"c"))
            ]
        );
        assert_eq!(FrameMode::Line.wrap_reply(b"hi".to_vec()), b"hi\n");
        assert_eq!(FrameMode::Line.wrap_reply(b"hi\r\n".to_vec()), b"hi\r\n");
        assert_eq!(FrameMode::Len32Le.wrap_reply(b"hi".to_vec()), b"\x02\0\0\0hi");
        assert_eq!(FrameMode::Raw.wrap_reply(b"hi".to_vec()), b"hi");
        for m in [
            FrameMode::Line,
            FrameMode::Len32Le,
            FrameMode::JsonFrame,
            FrameMode::Raw,
        ] {
            assert_eq!(m.name().parse::<FrameMode>(), Ok(m));
        }
    }

    #[test]
    fn json_frames() {
        let header = br#"{"cmd":"put","filename":"a","filesize":3}"#;
        let mut wire = (header.len() as u32).to_le_bytes().to_vec();
        wire.extend_from_slice(header);
        wire.extend_from_slice(b"xyz");
        let msgs = all(FrameMode::JsonFrame, &[&wire[..7], &wire[7..]]);
        assert!(matches!(&msgs[0], Message::FrameHeader { body_len: 3, .. }));
        assert_eq!(msgs[1], Message::FrameBody(Bytes::from_static(b"xyz")));
        assert_eq!(msgs.len(), 2);
    }
}
