//! The web front end's rules, with no I/O: the login token, session
//! cookies, HTTP byte ranges, and the JSON API's messages in both
//! directions (docs/protocol.md §11).
//!
//! The token and the session cookie are both MACs under the sockit key, so
//! they survive a restart without any state on disk, and a new key (a new
//! `~/.config/sockit/key`) logs every browser out.

use serde::{Deserialize, Serialize};

use crate::auth::{Key, labelled_mac};
use crate::checksum::hex;
use crate::files::ErrorCode;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "sockit_session";
/// The header every request that changes something must carry when it is
/// authenticated by the cookie: a cross-site page cannot set it without a
/// CORS preflight, which sockit never grants (CSRF).
pub const CSRF_HEADER: &str = "x-sockit";
/// How long a browser stays logged in: a month, as a file-drop tab is
/// kept open for days; a new key ends every session sooner.
pub const SESSION_LIFETIME_SECS: i64 = 30 * 24 * 3600;
/// Largest chunk of a resumable upload the server takes in one request:
/// it is held in memory until its SHA-256 is checked, so nothing
/// unverified reaches the partial file.
pub const MAX_CHUNK: u64 = 16 * 1024 * 1024;
/// The chunk size the page uses: big enough that a request per chunk costs
/// little, small enough that a dropped connection loses little.
pub const PAGE_CHUNK: u64 = 4 * 1024 * 1024;
/// How much of a kept partial's end the server hashes for a resuming page,
/// so the page continues only a partial that is the start of its own file.
pub const TAIL_PROOF: u64 = 1024 * 1024;

const TOKEN_LABEL: &[u8] = b"sockit web token v1";
const SESSION_LABEL: &[u8] = b"sockit web session v1";
/// 128 bits of the MAC, as 32 hex digits: unguessable, short enough to
/// paste.
const TOKEN_HEX_LEN: usize = 32;

/// The login token for a key: the same on every start with that key.
pub fn token(key: &Key) -> String {
    let mut t = hex(&labelled_mac(key, TOKEN_LABEL, b""));
    t.truncate(TOKEN_HEX_LEN);
    t
}

/// Whether `candidate` is the key's token, compared in constant time.
pub fn token_matches(key: &Key, candidate: &str) -> bool {
    constant_time_eq(token(key).as_bytes(), candidate.trim().as_bytes())
}

/// A session cookie's value, valid until `expires` (Unix seconds):
/// `EXPIRES.MAC`.
pub fn session_value(key: &Key, expires: i64) -> String {
    format!("{expires}.{}", session_mac(key, expires))
}

/// Whether a cookie value is a session this key issued that has not
/// expired at `now` (Unix seconds).
pub fn session_valid(key: &Key, value: &str, now: i64) -> bool {
    let Some((expires, mac)) = value.split_once('.') else {
        return false;
    };
    let Ok(expires) = expires.parse::<i64>() else {
        return false;
    };
    now < expires && constant_time_eq(session_mac(key, expires).as_bytes(), mac.as_bytes())
}

fn session_mac(key: &Key, expires: i64) -> String {
    let mut m = hex(&labelled_mac(key, SESSION_LABEL, expires.to_string().as_bytes()));
    m.truncate(TOKEN_HEX_LEN);
    m
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What a `Range` header asks of a file of a known size (RFC 9110 §14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// No range, or one sockit answers with the whole file (several
    /// ranges, another unit, a malformed header: all allowed by §14.2).
    Whole,
    /// Bytes `start..=end`.
    Part { start: u64, end: u64 },
    /// A range that starts past the end: 416.
    Unsatisfiable,
}

impl ByteRange {
    /// Reads a `Range` header for a file of `size` bytes. Total: any text
    /// gives an answer.
    pub fn parse(header: Option<&str>, size: u64) -> Self {
        let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
            return Self::Whole;
        };
        if spec.contains(',') {
            return Self::Whole;
        }
        let Some((first, last)) = spec.trim().split_once('-') else {
            return Self::Whole;
        };
        let (first, last) = (first.trim(), last.trim());
        let parse = |s: &str| s.parse::<u64>().ok();
        match (first.is_empty(), last.is_empty()) {
            // `-N`: the last N bytes.
            (true, false) => match parse(last) {
                Some(0) => Self::Unsatisfiable,
                Some(n) if size > 0 => Self::Part {
                    start: size.saturating_sub(n),
                    end: size - 1,
                },
                Some(_) => Self::Unsatisfiable,
                None => Self::Whole,
            },
            // `N-` and `N-M`.
            (false, _) => {
                let Some(start) = parse(first) else {
                    return Self::Whole;
                };
                let end = if last.is_empty() { Some(u64::MAX) } else { parse(last) };
                match end {
                    None => Self::Whole,
                    Some(end) if end < start => Self::Whole,
                    Some(_) if start >= size => Self::Unsatisfiable,
                    Some(end) => Self::Part {
                        start,
                        end: end.min(size - 1),
                    },
                }
            }
            (true, true) => Self::Whole,
        }
    }
}

/// `POST /api/login`: the page trades the token for a session cookie.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Login {
    pub token: String,
}

/// What the page learns about the server after logging in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// This browser holds a session (or the server needs none). When
    /// false, nothing else here is meaningful: show the login.
    pub logged_in: bool,
    /// Uploads are refused (`--read-only`).
    pub read_only: bool,
    /// Listing and downloading are refused (`--upload-only`, a drop box).
    pub upload_only: bool,
    /// The chunk size the page should use for uploads.
    pub chunk: u64,
    /// A chat room is open at `/api/chat`.
    pub chat: bool,
    /// The assistant page is on (`--web-assistant`).
    #[serde(default)]
    pub assistant: bool,
}

/// Every refusal's body, with the file service's stable codes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refused {
    pub code: ErrorCode,
    pub error: String,
}

/// `GET /api/upload?path=P&size=N`: where an upload of P (N bytes in all)
/// stands on the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadState {
    /// Bytes the server holds of it (0: start from the beginning).
    pub offset: u64,
    /// SHA-256 of the held bytes' last `tail_len` bytes (at most
    /// [`TAIL_PROOF`]): the page resumes only if its file has the same
    /// bytes there, and starts over otherwise.
    pub tail_sha256: Option<String>,
    pub tail_len: u64,
}

/// The answer to one chunk (`PUT /api/upload?path=P&size=N&offset=O`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkStored {
    /// Bytes held now: the next chunk's offset.
    pub offset: u64,
    /// The last chunk arrived: the file is in place.
    pub done: bool,
    /// The stored file's XXH3-128, once done.
    pub xxh3: Option<String>,
}

/// `PUT /files/PATH` (curl -T): the stored file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    pub path: String,
    pub size: u64,
    pub xxh3: String,
}

/// `POST /api/mkdir`, `POST /api/rm`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathRequest {
    pub path: String,
    #[serde(default)]
    pub recursive: bool,
}

/// `POST /api/rename`: within the served folder; never over an existing
/// name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rename {
    pub from: String,
    pub to: String,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn key(s: &str) -> Key {
        Key::from_file_text(s.as_bytes()).unwrap()
    }

    #[test]
    fn the_token_depends_on_the_key_alone() {
        let (a, b) = (key("one"), key("two"));
        assert_eq!(token(&a), token(&a.clone()));
        assert_ne!(token(&a), token(&b));
        assert_eq!(token(&a).len(), 32);
        assert!(token_matches(&a, &token(&a)));
        assert!(token_matches(&a, &format!(" {}\n", token(&a))));
        assert!(!token_matches(&b, &token(&a)));
        assert!(!token_matches(&a, &token(&a)[..31]));
        assert!(!token_matches(&a, ""));
    }

    #[test]
    fn sessions_expire_and_belong_to_their_key() {
        let (a, b) = (key("one"), key("two"));
        let v = session_value(&a, 1000);
        assert!(session_valid(&a, &v, 999));
        assert!(!session_valid(&a, &v, 1000), "expired");
        assert!(!session_valid(&b, &v, 999), "another key");
        // A forged expiry breaks the MAC.
        let forged = v.replacen("1000", "9999", 1);
        assert!(!session_valid(&a, &forged, 999));
        for junk in ["", ".", "x.y", "1000", "1000.", "-1.abc"] {
            assert!(!session_valid(&a, junk, 0), "{junk:?}");
        }
    }

    #[test]
    fn ranges_follow_rfc_9110() {
        use ByteRange::*;
        let r = |h: &str, size| ByteRange::parse(Some(h), size);
        assert_eq!(ByteRange::parse(None, 10), Whole);
        assert_eq!(r("bytes=0-4", 10), Part { start: 0, end: 4 });
        assert_eq!(r("bytes=5-", 10), Part { start: 5, end: 9 });
        assert_eq!(r("bytes=5-100", 10), Part { start: 5, end: 9 });
        assert_eq!(r("bytes=-3", 10), Part { start: 7, end: 9 });
        assert_eq!(r("bytes=-30", 10), Part { start: 0, end: 9 });
        assert_eq!(r("bytes=10-", 10), Unsatisfiable);
        assert_eq!(r("bytes=-0", 10), Unsatisfiable);
        assert_eq!(r("bytes=0-", 0), Unsatisfiable);
        assert_eq!(r("bytes=-5", 0), Unsatisfiable);
        // Answered with the whole file.
        for h in [
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes=4-2",
            "bytes=x-",
            "bytes=-",
            "bytes=1",
            "",
        ] {
            assert_eq!(r(h, 10), Whole, "{h:?}");
        }
    }
}
