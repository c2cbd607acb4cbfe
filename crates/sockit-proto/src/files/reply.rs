//! The file service's replies, typed in both directions (docs/protocol.md
//! §3.1): the server builds a [`Reply`] and encodes it; the client decodes
//! the header it reads back into one.
//!
//! A reply header does not name its kind on the wire (the classic shape is
//! `{"status":"ok", ...fields}`), so what a header means depends on the
//! request it answers. Replies come back in request order, even when a
//! client pipelines, so a client always knows that: it decodes with the
//! [`ReplyTo`] of the oldest request still waiting, and [`ReplyTo::next`]
//! says whether the same request owes another frame (a download's trailer,
//! a listing's next page).

use serde_json::Value;

use super::{Entry, ErrorCode, RemoteError, truncate};
use crate::frame::{Header, size_field};

/// Longest error message a server sends (a hostile name echoed back stays
/// small).
pub const MAX_ERROR_MESSAGE: usize = 512;

/// One reply frame's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `{"status":"ok"}`: mkdir, rm, removing a kept partial.
    Done,
    /// An upload is in place and verified: its size and XXH3.
    Stored { size: u64, xxh3: String },
    /// Where a resumed upload continues (0: from the start).
    ResumeAt { offset: u64 },
    /// A download begins: `filesize - offset` body bytes follow, then a
    /// [`Reply::Sent`] trailer.
    Sending { filesize: u64, offset: u64 },
    /// A download's trailer: the XXH3 of the whole file.
    Sent { xxh3: String },
    /// `len` bytes of JSON follow: a page of a listing, or the kept
    /// partials. With `more`, another page follows.
    Page { len: u64, more: bool },
    /// What `stat` found.
    Stat(Entry),
    /// A command ran: stdout then stderr follow as the body.
    Exec(ExecReply),
    /// The request was refused; the connection stays usable.
    Refused(RemoteError),
}

/// A framed exec reply's fields (its body is stdout, then stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecReply {
    pub stdout_len: u64,
    pub stderr_len: u64,
    /// `None` when the command was killed (by a signal or the time limit).
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    /// Output went past the cap and was cut (with a marker).
    pub truncated: bool,
}

impl ExecReply {
    pub fn of(o: &crate::exec::Outcome) -> Self {
        Self {
            stdout_len: o.stdout.len() as u64,
            stderr_len: o.stderr.len() as u64,
            exit_code: o.exit_code,
            timed_out: o.timed_out,
            truncated: o.truncated,
        }
    }

    /// The body's length: stdout and stderr.
    pub fn body_len(&self) -> u64 {
        self.stdout_len.saturating_add(self.stderr_len)
    }

    /// Splits a body of [`Self::body_len`] bytes into stdout and stderr.
    pub fn split<'b>(&self, body: &'b [u8]) -> Option<(&'b [u8], &'b [u8])> {
        let at = usize::try_from(self.stdout_len).ok()?;
        (at <= body.len()).then(|| body.split_at(at))
    }
}

/// Which request a reply answers, and so how its header reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyTo {
    /// mkdir, rm, rm --partial: [`Reply::Done`].
    Plain,
    /// put (after its body and commit): [`Reply::Stored`].
    Put,
    /// resume: [`Reply::ResumeAt`].
    Resume,
    /// get: [`Reply::Sending`], then the body, then [`ReplyTo::GetTrailer`].
    Get,
    /// A download's trailer: [`Reply::Sent`].
    GetTrailer,
    /// ls and partials: [`Reply::Page`]s until one without `more`.
    Page,
    /// stat: [`Reply::Stat`].
    Stat,
    /// exec: [`Reply::Exec`].
    Exec,
}

impl ReplyTo {
    /// What the same request sends next after `reply`, if anything: the
    /// trailer after a download's body, the next page of a listing.
    pub fn next(self, reply: &Reply) -> Option<Self> {
        match (self, reply) {
            (Self::Get, Reply::Sending { .. }) => Some(Self::GetTrailer),
            (Self::Page, Reply::Page { more: true, .. }) => Some(Self::Page),
            _ => None,
        }
    }
}

/// A reply header this build cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed reply: {0}")]
pub struct MalformedReply(pub &'static str);

impl Reply {
    /// `{"status":"error","code":...,"message":...}`, the message cut to
    /// [`MAX_ERROR_MESSAGE`] bytes.
    pub fn refused(code: ErrorCode, message: &str) -> Self {
        Self::Refused(RemoteError {
            code,
            message: truncate(message, MAX_ERROR_MESSAGE),
        })
    }

    /// The header the server sends.
    pub fn to_header(&self) -> Header {
        let mut h = Header::new();
        let status = if matches!(self, Self::Refused(_)) {
            "error"
        } else {
            "ok"
        };
        h.insert("status".into(), status.into());
        let mut put = |k: &str, v: Value| {
            h.insert(k.to_owned(), v);
        };
        match self {
            Self::Done => {}
            Self::Stored { size, xxh3 } => {
                put("size", (*size).into());
                put("xxh3", xxh3.clone().into());
            }
            Self::ResumeAt { offset } => put("offset", (*offset).into()),
            Self::Sending { filesize, offset } => {
                put("filesize", (*filesize).into());
                put("offset", (*offset).into());
            }
            Self::Sent { xxh3 } => put("xxh3", xxh3.clone().into()),
            Self::Page { len, more } => {
                put("data_size", (*len).into());
                if *more {
                    put("more", true.into());
                }
            }
            Self::Stat(e) => {
                put("path", e.path.clone().into());
                put("type", e.kind.as_str().into());
                put("size", e.size.into());
                put("mtime", e.mtime.into());
            }
            Self::Exec(x) => {
                put("data_size", x.body_len().into());
                put("stdout_size", x.stdout_len.into());
                put("exit_code", x.exit_code.map_or(Value::Null, Value::from));
                put("timed_out", x.timed_out.into());
                put("truncated", x.truncated.into());
            }
            Self::Refused(e) => {
                put("code", e.code.as_str().into());
                put("message", e.message.clone().into());
            }
        }
        h
    }

    /// Reads a header as the reply to `to`. A refusal reads the same
    /// whatever it answers; a code this build does not know is
    /// [`ErrorCode::Unknown`].
    pub fn from_header(h: &Header, to: ReplyTo) -> Result<Self, MalformedReply> {
        match h.get("status").and_then(Value::as_str) {
            Some("ok") => {}
            Some("error") => {
                let code = h
                    .get("code")
                    .and_then(Value::as_str)
                    .map_or(ErrorCode::Unknown, ErrorCode::from_name);
                let message = h.get("message").and_then(Value::as_str).unwrap_or("");
                return Ok(Self::Refused(RemoteError {
                    code,
                    message: truncate(message, MAX_ERROR_MESSAGE),
                }));
            }
            _ => return Err(MalformedReply("no status")),
        }
        let size = |k: &'static str| size_field(h, k).map_err(|_| MalformedReply(k));
        let need = |k: &'static str| size(k)?.ok_or(MalformedReply(k));
        let text = |k: &'static str| {
            h.get(k)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or(MalformedReply(k))
        };
        let flag = |k: &'static str| match h.get(k) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(MalformedReply(k)),
        };
        Ok(match to {
            ReplyTo::Plain => Self::Done,
            ReplyTo::Put => Self::Stored {
                size: need("size")?,
                xxh3: text("xxh3")?,
            },
            ReplyTo::Resume => Self::ResumeAt {
                offset: size("offset")?.unwrap_or(0),
            },
            ReplyTo::Get => Self::Sending {
                filesize: need("filesize")?,
                offset: size("offset")?.unwrap_or(0),
            },
            ReplyTo::GetTrailer => Self::Sent { xxh3: text("xxh3")? },
            ReplyTo::Page => Self::Page {
                len: size("data_size")?.unwrap_or(0),
                more: flag("more")?,
            },
            ReplyTo::Stat => {
                Self::Stat(serde_json::from_value(Value::Object(h.clone())).map_err(|_| MalformedReply("stat fields"))?)
            }
            ReplyTo::Exec => {
                let body = size("data_size")?.unwrap_or(0);
                let stdout_len = need("stdout_size")?;
                let exit_code = match h.get("exit_code") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(
                        v.as_i64()
                            .and_then(|c| i32::try_from(c).ok())
                            .ok_or(MalformedReply("exit_code"))?,
                    ),
                };
                Self::Exec(ExecReply {
                    stdout_len,
                    stderr_len: body.checked_sub(stdout_len).ok_or(MalformedReply("stdout_size"))?,
                    exit_code,
                    timed_out: flag("timed_out")?,
                    truncated: flag("truncated")?,
                })
            }
        })
    }

    /// The reply, or its refusal as an error.
    pub fn accepted(self) -> Result<Self, RemoteError> {
        match self {
            Self::Refused(e) => Err(e),
            ok => Ok(ok),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::files::EntryKind;
    use crate::frame::{FrameDecoder, FrameEvent, FrameLimits, body_len, encode_header};
    use bytes::BytesMut;
    use proptest::prelude::*;

    fn every_reply() -> Vec<(Reply, ReplyTo)> {
        let mut all = vec![
            (Reply::Done, ReplyTo::Plain),
            (
                Reply::Stored {
                    size: 5,
                    xxh3: "ab".into(),
                },
                ReplyTo::Put,
            ),
            (Reply::ResumeAt { offset: 0 }, ReplyTo::Resume),
            (Reply::ResumeAt { offset: 9 }, ReplyTo::Resume),
            (
                Reply::Sending {
                    filesize: 10,
                    offset: 4,
                },
                ReplyTo::Get,
            ),
            (Reply::Sent { xxh3: "cd".into() }, ReplyTo::GetTrailer),
            (Reply::Page { len: 2, more: true }, ReplyTo::Page),
            (Reply::Page { len: 0, more: false }, ReplyTo::Page),
            (
                Reply::Stat(Entry {
                    path: "d/你好".into(),
                    kind: EntryKind::Dir,
                    size: 0,
                    mtime: -3,
                }),
                ReplyTo::Stat,
            ),
            (
                Reply::Exec(ExecReply {
                    stdout_len: 3,
                    stderr_len: 4,
                    exit_code: Some(-1),
                    timed_out: false,
                    truncated: true,
                }),
                ReplyTo::Exec,
            ),
            (
                Reply::Exec(ExecReply {
                    stdout_len: 0,
                    stderr_len: 0,
                    exit_code: None,
                    timed_out: true,
                    truncated: false,
                }),
                ReplyTo::Exec,
            ),
        ];
        for code in ErrorCode::ALL {
            all.push((Reply::refused(code, "why"), ReplyTo::Get));
        }
        all
    }

    #[test]
    fn every_reply_round_trips_through_its_header() {
        for (reply, to) in every_reply() {
            let h = reply.to_header();
            assert_eq!(Reply::from_header(&h, to).unwrap(), reply, "{h:?}");
        }
    }

    #[test]
    fn every_error_code_round_trips_by_name_and_unknown_codes_are_kept_apart() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_name(code.as_str()), code);
            let h = Reply::refused(code, "m").to_header();
            for to in [ReplyTo::Plain, ReplyTo::Put, ReplyTo::Stat] {
                assert_eq!(Reply::from_header(&h, to).unwrap().accepted().unwrap_err().code, code);
            }
        }
        assert_eq!(ErrorCode::from_name("quota_exceeded"), ErrorCode::Unknown);
    }

    #[test]
    fn the_body_a_reply_declares_is_the_one_the_frame_layer_reads() {
        for (reply, _) in every_reply() {
            let declared = match &reply {
                Reply::Sending { filesize, offset } => filesize - offset,
                Reply::Page { len, .. } => *len,
                Reply::Exec(x) => x.body_len(),
                _ => 0,
            };
            assert_eq!(body_len(&reply.to_header()).unwrap(), declared, "{reply:?}");
        }
    }

    #[test]
    fn malformed_replies_are_errors_not_panics() {
        let obj = |v: Value| match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        let cases = [
            (serde_json::json!({}), ReplyTo::Plain),
            (serde_json::json!({"status": 1}), ReplyTo::Plain),
            (serde_json::json!({"status": "ok"}), ReplyTo::Put),
            (
                serde_json::json!({"status": "ok", "size": -1, "xxh3": "a"}),
                ReplyTo::Put,
            ),
            (serde_json::json!({"status": "ok"}), ReplyTo::Get),
            (serde_json::json!({"status": "ok", "more": "yes"}), ReplyTo::Page),
            (serde_json::json!({"status": "ok", "path": 3}), ReplyTo::Stat),
            (
                serde_json::json!({"status": "ok", "data_size": 1, "stdout_size": 2}),
                ReplyTo::Exec,
            ),
            (
                serde_json::json!({"status": "ok", "stdout_size": 0, "exit_code": 1e20}),
                ReplyTo::Exec,
            ),
        ];
        for (h, to) in cases {
            assert!(Reply::from_header(&obj(h.clone()), to).is_err(), "{h}");
        }
    }

    /// One request's replies on the wire: headers with their bodies.
    fn frames_for(to: ReplyTo, refused: bool, body: &[u8], pages: usize) -> Vec<(Reply, Vec<u8>)> {
        if refused {
            return vec![(Reply::refused(ErrorCode::NotFound, "no"), Vec::new())];
        }
        match to {
            ReplyTo::Get => vec![
                (
                    Reply::Sending {
                        filesize: body.len() as u64 + 2,
                        offset: 2,
                    },
                    body.to_vec(),
                ),
                (Reply::Sent { xxh3: "x".into() }, Vec::new()),
            ],
            ReplyTo::Page => (0..=pages)
                .map(|i| {
                    (
                        Reply::Page {
                            len: body.len() as u64,
                            more: i < pages,
                        },
                        body.to_vec(),
                    )
                })
                .collect(),
            ReplyTo::Put => vec![(
                Reply::Stored {
                    size: 1,
                    xxh3: "y".into(),
                },
                Vec::new(),
            )],
            _ => vec![(Reply::Done, Vec::new())],
        }
    }

    proptest! {
        /// Pipelined replies, cut at arbitrary byte boundaries as TCP may
        /// deliver them, decode to the same sequence when read in request
        /// order with each request's `ReplyTo`.
        #[test]
        fn pipelined_replies_split_anywhere_decode_in_order(
            requests in proptest::collection::vec(
                (prop_oneof![Just(ReplyTo::Get), Just(ReplyTo::Page), Just(ReplyTo::Put), Just(ReplyTo::Plain)],
                 any::<bool>(), proptest::collection::vec(any::<u8>(), 0..40), 0usize..3),
                1..12),
            cuts in proptest::collection::vec(1usize..64, 1..40),
        ) {
            let mut wire = BytesMut::new();
            let mut expected = Vec::new();
            for (to, refused, body, pages) in &requests {
                for (reply, body) in frames_for(*to, *refused, body, *pages) {
                    encode_header(&reply.to_header(), &mut wire);
                    wire.extend_from_slice(&body);
                    expected.push((reply, body));
                }
            }
            let wire = wire.freeze();
            let mut decoder = FrameDecoder::new(FrameLimits::default());
            let mut buf = BytesMut::new();
            let mut pending: std::collections::VecDeque<ReplyTo> = requests.iter().map(|r| r.0).collect();
            let mut current: Option<ReplyTo> = None;
            let mut got: Vec<(Reply, Vec<u8>)> = Vec::new();
            let (mut at, mut cut) = (0, cuts.iter().cycle());
            loop {
                match decoder.decode(&mut buf).unwrap() {
                    Some(FrameEvent::Header { header, .. }) => {
                        let to = current.take().or_else(|| pending.pop_front()).unwrap();
                        let reply = Reply::from_header(&header, to).unwrap();
                        current = to.next(&reply);
                        got.push((reply, Vec::new()));
                    }
                    Some(FrameEvent::Body(b)) => got.last_mut().unwrap().1.extend_from_slice(&b),
                    Some(FrameEvent::End) => {}
                    None if at >= wire.len() => break,
                    None => {
                        let n = (*cut.next().unwrap()).min(wire.len() - at);
                        buf.extend_from_slice(&wire[at..at + n]);
                        at += n;
                    }
                }
            }
            prop_assert_eq!(got, expected);
            prop_assert!(pending.is_empty() && current.is_none());
        }
    }
}
