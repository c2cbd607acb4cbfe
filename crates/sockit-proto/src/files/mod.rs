//! The file service's messages (docs/protocol.md §3): typed requests parsed
//! from frame headers, typed replies ([`reply`]), and the stable error
//! codes a peer sees.
//!
//! This module owns the mapping between JSON headers and types in both
//! directions. It knows nothing of sockets or disks; the server turns a
//! [`Request`] into filesystem work and the result back into a reply here.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::frame::{FrameError, Header, size_field};
use crate::path::{PathError, RelPath};

pub mod object;
mod reply;
pub use reply::{ExecReply, MAX_ERROR_MESSAGE, MalformedReply, Reply, ReplyTo};

/// The request a header carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Upload; the body (`filesize - offset` bytes) follows the header.
    Put(Put),
    /// How much of an interrupted upload of this file the server kept.
    /// The total travels as `"size"`: a `"filesize"` key would declare a body.
    Resume {
        path: RelPath,
        filesize: u64,
    },
    /// Download from `offset`; the reply's body is the rest of the file.
    Get {
        path: RelPath,
        offset: u64,
    },
    Ls {
        path: RelPath,
        recursive: bool,
    },
    Stat {
        path: RelPath,
    },
    Rm {
        path: RelPath,
        recursive: bool,
    },
    /// The interrupted uploads the server keeps for a resume.
    Partials,
    /// Deletes the kept partial of an interrupted upload of `path`.
    RmPartial {
        path: RelPath,
    },
    Mkdir {
        path: RelPath,
    },
    /// The trailer after a put body that asked for `"verify":"xxh3"`: the
    /// whole file's hash, computed by the client while it sent.
    Commit {
        xxh3: String,
        /// With a resumed upload: the XXH3-128 of the bytes sent after the
        /// offset, for a server that cannot hash the prefix it kept (an
        /// object store's unfinished parts cannot be read back).
        tail_xxh3: Option<String>,
    },
    /// Run a command (only where the server allows exec).
    Exec(crate::exec::Command),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Put {
    pub path: RelPath,
    /// The whole file's size.
    pub filesize: u64,
    /// Where this body starts: 0, or the offset a `resume` reply gave.
    pub offset: u64,
    /// The seeds' optional up-front MD5 of the whole file, lowercase hex.
    pub md5: Option<String>,
    /// A [`Request::Commit`] trailer follows the body.
    pub trailer: bool,
    /// With an `offset`: the XXH3 of the file's first `offset` bytes, which
    /// the server checks against the partial it kept before appending.
    pub prefix_xxh3: Option<String>,
}

/// Why a header is not a request this server can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("header has no \"cmd\" string")]
    MissingCommand,
    #[error("unknown command {0:?}")]
    UnknownCommand(String),
    #[error("field \"{0}\" is missing")]
    MissingField(&'static str),
    #[error("field \"{0}\" has the wrong type")]
    BadField(&'static str),
    #[error("bad path: {0}")]
    BadPath(#[from] PathError),
    #[error(transparent)]
    Frame(#[from] FrameError),
}

impl RequestError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::UnknownCommand(_) => ErrorCode::UnknownCommand,
            Self::BadPath(_) => ErrorCode::BadPath,
            _ => ErrorCode::BadRequest,
        }
    }
}

/// Stable machine-readable error codes. Clients branch on these, never on
/// the message text. [`ErrorCode::as_str`] is the one table of wire names;
/// serde and [`ErrorCode::from_name`] both go through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    BadRequest,
    UnknownCommand,
    BadPath,
    NotFound,
    AlreadyExists,
    IsADirectory,
    NotADirectory,
    NotEmpty,
    Busy,
    ChecksumMismatch,
    NoSpace,
    PermissionDenied,
    TooLarge,
    Io,
    /// A code this build does not know (a newer server).
    Unknown,
}

impl ErrorCode {
    /// Every code, for decoding by name and for tests.
    pub const ALL: [Self; 15] = [
        Self::BadRequest,
        Self::UnknownCommand,
        Self::BadPath,
        Self::NotFound,
        Self::AlreadyExists,
        Self::IsADirectory,
        Self::NotADirectory,
        Self::NotEmpty,
        Self::Busy,
        Self::ChecksumMismatch,
        Self::NoSpace,
        Self::PermissionDenied,
        Self::TooLarge,
        Self::Io,
        Self::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::UnknownCommand => "unknown_command",
            Self::BadPath => "bad_path",
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::IsADirectory => "is_a_directory",
            Self::NotADirectory => "not_a_directory",
            Self::NotEmpty => "not_empty",
            Self::Busy => "busy",
            Self::ChecksumMismatch => "checksum_mismatch",
            Self::NoSpace => "no_space",
            Self::PermissionDenied => "permission_denied",
            Self::TooLarge => "too_large",
            Self::Io => "io",
            Self::Unknown => "unknown",
        }
    }

    /// The code with this wire name; [`ErrorCode::Unknown`] for a name
    /// this build does not know.
    pub fn from_name(name: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == name)
            .unwrap_or(Self::Unknown)
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Ok(Self::from_name(&name))
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error reply as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("server refused: {message} ({code})")]
pub struct RemoteError {
    pub code: ErrorCode,
    pub message: String,
}

/// A folder entry, as `ls` and `stat` report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Relative to the folder listed (for `stat`: the path asked about).
    pub path: String,
    #[serde(rename = "type")]
    pub kind: EntryKind,
    pub size: u64,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Dir,
    /// A named pipe, device or socket: listed, never served.
    Other,
}

impl EntryKind {
    /// The wire name, as serde writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Dir => "dir",
            Self::Other => "other",
        }
    }
}

impl Request {
    /// Parses a request header (the frame layer has already checked sizes).
    pub fn from_header(h: &Header) -> Result<Self, RequestError> {
        let cmd = h
            .get("cmd")
            .and_then(Value::as_str)
            .ok_or(RequestError::MissingCommand)?;
        Ok(match cmd {
            "put" => Self::Put(Put {
                path: RelPath::parse(str_field(h, "filename")?)?,
                filesize: size_field(h, "filesize")?.ok_or(RequestError::MissingField("filesize"))?,
                offset: size_field(h, "offset")?.unwrap_or(0),
                md5: opt_str_field(h, "md5")?.map(str::to_ascii_lowercase),
                trailer: match opt_str_field(h, "verify")? {
                    None => false,
                    Some("xxh3") => true,
                    Some(_) => return Err(RequestError::BadField("verify")),
                },
                prefix_xxh3: opt_str_field(h, "prefix_xxh3")?.map(str::to_ascii_lowercase),
            }),
            "resume" => Self::Resume {
                path: RelPath::parse(str_field(h, "filename")?)?,
                filesize: size_field(h, "size")?.ok_or(RequestError::MissingField("size"))?,
            },
            "get" => Self::Get {
                path: RelPath::parse(str_field(h, "filename")?)?,
                offset: size_field(h, "offset")?.unwrap_or(0),
            },
            "ls" => Self::Ls {
                path: RelPath::parse_dir(opt_str_field(h, "path")?.unwrap_or(""))?,
                recursive: bool_field(h, "recursive")?,
            },
            "stat" => Self::Stat {
                path: RelPath::parse(str_field(h, "path")?)?,
            },
            "rm" if bool_field(h, "partial")? => Self::RmPartial {
                path: RelPath::parse(str_field(h, "path")?)?,
            },
            "rm" => Self::Rm {
                path: RelPath::parse(str_field(h, "path")?)?,
                recursive: bool_field(h, "recursive")?,
            },
            "partials" => Self::Partials,
            "mkdir" => Self::Mkdir {
                path: RelPath::parse(str_field(h, "path")?)?,
            },
            "commit" => Self::Commit {
                xxh3: str_field(h, "xxh3")?.to_ascii_lowercase(),
                tail_xxh3: opt_str_field(h, "tail_xxh3")?.map(str::to_ascii_lowercase),
            },
            "exec" => Self::Exec(exec_command(h)?),
            other => return Err(RequestError::UnknownCommand(truncate(other, 64))),
        })
    }

    /// The header a client sends for this request.
    pub fn to_header(&self) -> Header {
        let mut h = Header::new();
        let mut put = |k: &str, v: Value| {
            h.insert(k.to_owned(), v);
        };
        match self {
            Self::Put(p) => {
                put("cmd", "put".into());
                put("filename", p.path.to_string().into());
                put("filesize", p.filesize.into());
                if p.offset > 0 {
                    put("offset", p.offset.into());
                }
                if let Some(md5) = &p.md5 {
                    put("md5", md5.clone().into());
                }
                if p.trailer {
                    put("verify", "xxh3".into());
                }
                if let Some(prefix) = &p.prefix_xxh3 {
                    put("prefix_xxh3", prefix.clone().into());
                }
            }
            Self::Resume { path, filesize } => {
                put("cmd", "resume".into());
                put("filename", path.to_string().into());
                put("size", (*filesize).into());
            }
            Self::Get { path, offset } => {
                put("cmd", "get".into());
                put("filename", path.to_string().into());
                if *offset > 0 {
                    put("offset", (*offset).into());
                }
            }
            Self::Ls { path, recursive } => {
                put("cmd", "ls".into());
                put("path", path.to_string().into());
                if *recursive {
                    put("recursive", true.into());
                }
            }
            Self::Stat { path } => {
                put("cmd", "stat".into());
                put("path", path.to_string().into());
            }
            Self::Rm { path, recursive } => {
                put("cmd", "rm".into());
                put("path", path.to_string().into());
                if *recursive {
                    put("recursive", true.into());
                }
            }
            Self::Partials => put("cmd", "partials".into()),
            Self::RmPartial { path } => {
                put("cmd", "rm".into());
                put("path", path.to_string().into());
                put("partial", true.into());
            }
            Self::Mkdir { path } => {
                put("cmd", "mkdir".into());
                put("path", path.to_string().into());
            }
            Self::Commit { xxh3, tail_xxh3 } => {
                put("cmd", "commit".into());
                put("xxh3", xxh3.clone().into());
                if let Some(tail) = tail_xxh3 {
                    put("tail_xxh3", tail.clone().into());
                }
            }
            Self::Exec(crate::exec::Command::Shell(line)) => {
                put("cmd", "exec".into());
                put("command", line.clone().into());
            }
            Self::Exec(crate::exec::Command::Argv(argv)) => {
                put("cmd", "exec".into());
                put("argv", argv.clone().into());
            }
        }
        h
    }
}

/// `"command"` (a shell line) or `"argv"` (a non-empty list of strings).
fn exec_command(h: &Header) -> Result<crate::exec::Command, RequestError> {
    if let Some(line) = opt_str_field(h, "command")? {
        if line.trim().is_empty() {
            return Err(RequestError::BadField("command"));
        }
        return Ok(crate::exec::Command::Shell(line.to_owned()));
    }
    match h.get("argv") {
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(crate::exec::Command::Argv)
            .ok_or(RequestError::BadField("argv")),
        Some(_) => Err(RequestError::BadField("argv")),
        None => Err(RequestError::MissingField("command")),
    }
}

fn str_field<'h>(h: &'h Header, key: &'static str) -> Result<&'h str, RequestError> {
    opt_str_field(h, key)?.ok_or(RequestError::MissingField(key))
}

fn opt_str_field<'h>(h: &'h Header, key: &'static str) -> Result<Option<&'h str>, RequestError> {
    match h.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(RequestError::BadField(key)),
    }
}

fn bool_field(h: &Header, key: &'static str) -> Result<bool, RequestError> {
    match h.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(RequestError::BadField(key)),
    }
}

/// Cuts text echoed back to a peer, so a hostile name cannot make a big reply.
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", s.get(..end).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Header {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn the_seed_put_header_is_a_plain_put() {
        let h = obj(json!({"cmd":"put","filename":"a.txt","filesize":123123}));
        let Request::Put(p) = Request::from_header(&h).unwrap() else {
            panic!()
        };
        assert_eq!(p.path.to_string(), "a.txt");
        assert_eq!((p.filesize, p.offset, p.trailer), (123123, 0, false));
        assert_eq!(p.md5, None);
        let h = obj(json!({"cmd":"put","filename":"a","filesize":1,"md5":"ABCDEF"}));
        let Request::Put(p) = Request::from_header(&h).unwrap() else {
            panic!()
        };
        assert_eq!(p.md5.as_deref(), Some("abcdef"));
    }

    #[test]
    fn every_request_round_trips_through_its_header() {
        let p = |s: &str| RelPath::parse(s).unwrap();
        let requests = [
            Request::Put(Put {
                path: p("d/a.bin"),
                filesize: 10,
                offset: 4,
                md5: Some("00ff".into()),
                trailer: true,
                prefix_xxh3: Some("abcd".into()),
            }),
            Request::Partials,
            Request::RmPartial { path: p("d/a.bin") },
            Request::Resume {
                path: p("x"),
                filesize: 9,
            },
            Request::Get {
                path: p("x"),
                offset: 0,
            },
            Request::Get {
                path: p("x"),
                offset: 7,
            },
            Request::Ls {
                path: RelPath::root(),
                recursive: true,
            },
            Request::Ls {
                path: p("d"),
                recursive: false,
            },
            Request::Stat { path: p("d") },
            Request::Rm {
                path: p("d"),
                recursive: true,
            },
            Request::Mkdir { path: p("d/e") },
            Request::Commit {
                xxh3: "0123".into(),
                tail_xxh3: None,
            },
            Request::Commit {
                xxh3: "0123".into(),
                tail_xxh3: Some("45".into()),
            },
            Request::Exec(crate::exec::Command::Shell("ls -l | wc -l".into())),
            Request::Exec(crate::exec::Command::Argv(vec!["echo".into(), "a b".into()])),
        ];
        for r in requests {
            assert_eq!(Request::from_header(&r.to_header()).unwrap(), r);
        }
    }

    #[test]
    fn malformed_requests_map_to_stable_codes() {
        let cases = [
            (json!({}), ErrorCode::BadRequest),
            (json!({"cmd": 5}), ErrorCode::BadRequest),
            (json!({"cmd": "format_disk"}), ErrorCode::UnknownCommand),
            (json!({"cmd": "put", "filesize": 1}), ErrorCode::BadRequest),
            (json!({"cmd": "put", "filename": "a"}), ErrorCode::BadRequest),
            (json!({"cmd": "put", "filename": "", "filesize": 1}), ErrorCode::BadPath),
            (
                json!({"cmd": "put", "filename": "a\u{0}b", "filesize": 1}),
                ErrorCode::BadPath,
            ),
            (
                json!({"cmd": "get", "filename": "../../etc/passwd"}),
                ErrorCode::BadPath,
            ),
            (json!({"cmd": "get", "filename": 3}), ErrorCode::BadRequest),
            (json!({"cmd": "ls", "recursive": "yes"}), ErrorCode::BadRequest),
            (
                json!({"cmd": "put", "filename": "a", "filesize": -5}),
                ErrorCode::BadRequest,
            ),
            (
                json!({"cmd": "put", "filename": "a", "filesize": 1, "verify": "crc"}),
                ErrorCode::BadRequest,
            ),
        ];
        for (h, code) in cases {
            let err = Request::from_header(&obj(h.clone())).unwrap_err();
            assert_eq!(err.code(), code, "{h}: {err}");
        }
    }

    #[test]
    fn error_codes_serialise_as_their_wire_names() {
        for code in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), Value::from(code.as_str()));
            assert_eq!(serde_json::from_value::<ErrorCode>(code.as_str().into()).unwrap(), code);
        }
        assert_eq!(
            serde_json::from_value::<ErrorCode>("from_the_future".into()).unwrap(),
            ErrorCode::Unknown
        );
    }

    proptest::proptest! {
        /// Pipelined requests (puts with their bodies and commit trailers,
        /// gets, stats, mkdirs) sent back to back and cut anywhere, as TCP
        /// may deliver them, decode to the same requests and bodies.
        #[test]
        fn pipelined_requests_split_anywhere_decode_in_order(
            files in proptest::collection::vec(
                (0u8..4, "[a-z]{1,8}", proptest::collection::vec(proptest::prelude::any::<u8>(), 0..50)),
                1..16),
            cuts in proptest::collection::vec(1usize..80, 1..40),
        ) {
            use crate::frame::{FrameDecoder, FrameEvent, FrameLimits, encode_header};
            let mut wire = bytes::BytesMut::new();
            let mut expected = Vec::new();
            for (kind, name, body) in &files {
                let path = RelPath::parse(name).unwrap();
                let mut send = |r: Request, body: &[u8]| {
                    encode_header(&r.to_header(), &mut wire);
                    wire.extend_from_slice(body);
                    expected.push((r, body.to_vec()));
                };
                match kind {
                    0 => {
                        send(Request::Put(Put { path, filesize: body.len() as u64, offset: 0, md5: None,
                            trailer: true, prefix_xxh3: None }), body);
                        send(Request::Commit { xxh3: "ab".into(), tail_xxh3: None }, &[]);
                    }
                    1 => send(Request::Get { path, offset: 0 }, &[]),
                    2 => send(Request::Stat { path }, &[]),
                    _ => send(Request::Mkdir { path }, &[]),
                }
            }
            let wire = wire.freeze();
            let mut decoder = FrameDecoder::new(FrameLimits::default());
            let mut buf = bytes::BytesMut::new();
            let mut got: Vec<(Request, Vec<u8>)> = Vec::new();
            let (mut at, mut cut) = (0, cuts.iter().cycle());
            loop {
                match decoder.decode(&mut buf).unwrap() {
                    Some(FrameEvent::Header { header, .. }) => {
                        got.push((Request::from_header(&header).unwrap(), Vec::new()));
                    }
                    Some(FrameEvent::Body(b)) => got.last_mut().unwrap().1.extend_from_slice(&b),
                    Some(FrameEvent::End) => {}
                    None if at >= wire.len() => break,
                    None => {
                        let n = (*cut.next().unwrap()).min(wire.len() - at);
                        buf.extend_from_slice(wire.get(at..at + n).unwrap());
                        at += n;
                    }
                }
            }
            proptest::prop_assert_eq!(got, expected);
        }
    }

    #[test]
    fn echoed_text_is_bounded() {
        let long = "é".repeat(1000);
        let h = obj(json!({"cmd": long}));
        let RequestError::UnknownCommand(name) = Request::from_header(&h).unwrap_err() else {
            panic!()
        };
        assert!(name.len() <= 64 + 3);
    }
}
