//! The framed protocol (docs/protocol.md §1): a 4-byte little-endian header
//! length, a UTF-8 JSON object of exactly that many bytes, then a body whose
//! size the header declares.
//!
//! This module owns cutting frames out of a byte buffer and encoding them.
//! It never waits for, or allocates, more than the limits allow: a header
//! length is checked before its bytes are awaited, and bodies are handed out
//! in chunks as they arrive instead of being collected.

use bytes::{Buf, Bytes, BytesMut};
use serde_json::{Map, Value};

/// A decoded header: always a JSON object.
pub type Header = Map<String, Value>;

/// Size of the length prefix: Python's `struct.pack('i', n)`.
pub const PREFIX_LEN: usize = 4;

/// Default cap on a header's length. Real headers are under 1 KiB; 64 KiB
/// leaves room for long paths while refusing a hostile 2 GiB prefix at once.
pub const DEFAULT_MAX_HEADER_LEN: u32 = 64 * 1024;

/// Largest body a header may declare: 2^53 - 1, the largest integer every
/// JSON implementation (including JavaScript's) represents exactly.
pub const MAX_BODY_LEN: u64 = (1 << 53) - 1;

/// Why a byte stream is not a valid sequence of frames.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("header length is zero")]
    EmptyHeader,
    #[error("header length {len} exceeds the limit of {max} bytes")]
    HeaderTooLong { len: u32, max: u32 },
    #[error("header is not valid JSON: {0}")]
    NotJson(String),
    #[error("header is JSON but not an object")]
    NotObject,
    #[error("field \"{0}\" must be a non-negative integer below 2^53")]
    BadSize(&'static str),
    #[error("header declares both \"data_size\" and \"filesize\"")]
    AmbiguousSize,
    #[error("offset {offset} is past filesize {filesize}")]
    OffsetPastEnd { offset: u64, filesize: u64 },
}

/// Limits a decoder enforces before reading further.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    pub max_header_len: u32,
}

impl Default for FrameLimits {
    fn default() -> Self {
        Self {
            max_header_len: DEFAULT_MAX_HEADER_LEN,
        }
    }
}

/// One step of a decoded stream.
#[derive(Debug, Clone, PartialEq)]
pub enum FrameEvent {
    /// A header and the number of body bytes that follow it.
    Header { header: Header, body_len: u64 },
    /// The next piece of the current body (never empty).
    Body(Bytes),
    /// The current body is complete (also sent for an empty body).
    End,
}

/// Incremental decoder. State lives here and in the caller's buffer, so a
/// `decode` that returns `Ok(None)` can be retried after more bytes arrive,
/// and dropping a pending read loses nothing (cancel-safe).
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    limits: FrameLimits,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    Body { remaining: u64 },
}

impl FrameDecoder {
    pub fn new(limits: FrameLimits) -> Self {
        Self {
            limits,
            state: State::Header,
        }
    }

    /// True between frames: an end of stream here is a clean close.
    pub fn is_idle(&self) -> bool {
        self.state == State::Header
    }

    /// Body bytes still expected for the current frame.
    pub fn body_remaining(&self) -> u64 {
        match self.state {
            State::Header => 0,
            State::Body { remaining } => remaining,
        }
    }

    /// Cuts the next event out of `buf`; `Ok(None)` means more bytes are needed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<FrameEvent>, FrameError> {
        match self.state {
            State::Header => {
                let Some(header) = decode_header(buf, self.limits)? else {
                    return Ok(None);
                };
                let body_len = body_len(&header)?;
                self.state = State::Body { remaining: body_len };
                Ok(Some(FrameEvent::Header { header, body_len }))
            }
            State::Body { remaining: 0 } => {
                self.state = State::Header;
                Ok(Some(FrameEvent::End))
            }
            State::Body { remaining } => {
                if buf.is_empty() {
                    return Ok(None);
                }
                let take = usize::try_from(remaining).map_or(buf.len(), |r| r.min(buf.len()));
                let chunk = buf.split_to(take).freeze();
                self.state = State::Body {
                    remaining: remaining - take as u64,
                };
                Ok(Some(FrameEvent::Body(chunk)))
            }
        }
    }
}

/// Cuts one length-prefixed JSON header out of `buf`.
///
/// The length is checked against the limit as soon as the 4 prefix bytes are
/// there, before any header byte is awaited. A prefix with the top bit set
/// (negative in Python's signed `'i'`) is simply too long.
pub fn decode_header(buf: &mut BytesMut, limits: FrameLimits) -> Result<Option<Header>, FrameError> {
    let Some(prefix) = buf.get(..PREFIX_LEN) else {
        return Ok(None);
    };
    let mut le = [0u8; PREFIX_LEN];
    le.copy_from_slice(prefix);
    let len = u32::from_le_bytes(le);
    if len == 0 {
        return Err(FrameError::EmptyHeader);
    }
    if len > limits.max_header_len {
        return Err(FrameError::HeaderTooLong {
            len,
            max: limits.max_header_len,
        });
    }
    let total = PREFIX_LEN + len as usize;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    buf.advance(PREFIX_LEN);
    let json = buf.split_to(len as usize);
    match serde_json::from_slice::<Value>(&json) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(_) => Err(FrameError::NotObject),
        Err(e) => Err(FrameError::NotJson(e.to_string())),
    }
}

/// The number of body bytes a header declares (docs/protocol.md §1):
/// `data_size` if present, else `filesize` minus `offset` (default 0), else 0.
pub fn body_len(header: &Header) -> Result<u64, FrameError> {
    let data_size = size_field(header, "data_size")?;
    let filesize = size_field(header, "filesize")?;
    match (data_size, filesize) {
        (Some(_), Some(_)) => Err(FrameError::AmbiguousSize),
        (Some(n), None) => Ok(n),
        (None, Some(filesize)) => {
            let offset = size_field(header, "offset")?.unwrap_or(0);
            filesize
                .checked_sub(offset)
                .ok_or(FrameError::OffsetPastEnd { offset, filesize })
        }
        (None, None) => Ok(0),
    }
}

/// Reads an optional size field: absent is `None`; anything but a
/// non-negative integer up to [`MAX_BODY_LEN`] is an error.
pub fn size_field(header: &Header, key: &'static str) -> Result<Option<u64>, FrameError> {
    match header.get(key) {
        None => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if n <= MAX_BODY_LEN => Ok(Some(n)),
            _ => Err(FrameError::BadSize(key)),
        },
    }
}

/// Encodes a header with its length prefix. The body, if any, is written
/// after it by the caller.
pub fn encode_header(header: &Header, dst: &mut BytesMut) {
    // A map of JSON values always serialises; the fallback never triggers.
    let json = serde_json::to_vec(header).unwrap_or_else(|_| b"{}".to_vec());
    let len = u32::try_from(json.len()).unwrap_or(u32::MAX);
    dst.reserve(PREFIX_LEN + json.len());
    dst.extend_from_slice(&len.to_le_bytes());
    dst.extend_from_slice(&json);
}

/// Convenience: a header's encoded bytes.
pub fn header_bytes(header: &Header) -> Bytes {
    let mut buf = BytesMut::new();
    encode_header(header, &mut buf);
    buf.freeze()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn obj(v: Value) -> Header {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn decode_all(dec: &mut FrameDecoder, buf: &mut BytesMut) -> Result<Vec<FrameEvent>, FrameError> {
        let mut out = Vec::new();
        while let Some(ev) = dec.decode(buf)? {
            out.push(ev);
        }
        Ok(out)
    }

    /// Merges adjacent body chunks so that differently split inputs compare equal.
    fn normalise(events: Vec<FrameEvent>) -> Vec<FrameEvent> {
        let mut out: Vec<FrameEvent> = Vec::new();
        for ev in events {
            if let (FrameEvent::Body(b), Some(FrameEvent::Body(prev))) = (&ev, out.last_mut()) {
                let mut joined = BytesMut::from(&prev[..]);
                joined.extend_from_slice(b);
                *prev = joined.freeze();
                continue;
            }
            out.push(ev);
        }
        out
    }

    #[test]
    fn seed_put_header_decodes_like_python_struct_pack() {
        // What the seed client sends: struct.pack('i', len) + json.dumps(...)
        let json = br#"{"cmd": "put", "filename": "a.txt", "filesize": 3}"#;
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&(json.len() as i32).to_le_bytes());
        buf.extend_from_slice(json);
        buf.extend_from_slice(b"abc");
        let mut dec = FrameDecoder::new(FrameLimits::default());
        let events = decode_all(&mut dec, &mut buf).unwrap();
        assert_eq!(
            events,
            vec![
                FrameEvent::Header {
                    header: obj(json!({"cmd":"put","filename":"a.txt","filesize":3})),
                    body_len: 3
                },
                FrameEvent::Body(Bytes::from_static(b"abc")),
                FrameEvent::End,
            ]
        );
        assert!(dec.is_idle());
    }

    #[test]
    fn hostile_length_is_refused_before_any_header_byte_arrives() {
        let mut buf = BytesMut::from(&0x7fff_ffffu32.to_le_bytes()[..]);
        let err = decode_header(&mut buf, FrameLimits::default()).unwrap_err();
        assert_eq!(
            err,
            FrameError::HeaderTooLong {
                len: 0x7fff_ffff,
                max: DEFAULT_MAX_HEADER_LEN
            }
        );
        // Nothing was reserved for the announced size.
        assert!(buf.capacity() < 1024);
    }

    #[test]
    fn negative_python_length_is_too_long() {
        let mut buf = BytesMut::from(&(-1i32).to_le_bytes()[..]);
        assert!(matches!(
            decode_header(&mut buf, FrameLimits::default()),
            Err(FrameError::HeaderTooLong { .. })
        ));
    }

    #[test]
    fn zero_length_header_is_refused() {
        let mut buf = BytesMut::from(&[0u8, 0, 0, 0][..]);
        assert_eq!(
            decode_header(&mut buf, FrameLimits::default()),
            Err(FrameError::EmptyHeader)
        );
    }

    #[test]
    fn non_json_and_non_object_headers_are_refused() {
        for (json, want_object_err) in [(&b"not json"[..], false), (&b"[1,2]"[..], true), (&b"\"s\""[..], true)] {
            let mut buf = BytesMut::new();
            buf.extend_from_slice(&(json.len() as u32).to_le_bytes());
            buf.extend_from_slice(json);
            let err = decode_header(&mut buf, FrameLimits::default()).unwrap_err();
            assert_eq!(matches!(err, FrameError::NotObject), want_object_err, "{err}");
        }
    }

    #[test]
    fn sizes_must_be_non_negative_integers() {
        for bad in [json!(-1), json!(1.5), json!("12"), json!(MAX_BODY_LEN + 1), json!(null)] {
            let h = obj(json!({"cmd":"put","filesize": bad}));
            assert_eq!(body_len(&h), Err(FrameError::BadSize("filesize")));
        }
        let h = obj(json!({"data_size": 1, "filesize": 1}));
        assert_eq!(body_len(&h), Err(FrameError::AmbiguousSize));
        let h = obj(json!({"filesize": 10, "offset": 4}));
        assert_eq!(body_len(&h), Ok(6));
        let h = obj(json!({"filesize": 3, "offset": 4}));
        assert!(matches!(body_len(&h), Err(FrameError::OffsetPastEnd { .. })));
        assert_eq!(body_len(&obj(json!({"cmd":"ls"}))), Ok(0));
    }

    #[test]
    fn encoded_header_round_trips() {
        let h = obj(json!({"status":"ok","filesize":5,"name":"你好"}));
        let mut buf = BytesMut::from(&header_bytes(&h)[..]);
        assert_eq!(decode_header(&mut buf, FrameLimits::default()).unwrap(), Some(h));
        assert!(buf.is_empty());
    }

    fn arb_frames() -> impl Strategy<Value = Vec<(Header, Vec<u8>)>> {
        let frame = ("[a-z]{1,8}", proptest::collection::vec(any::<u8>(), 0..300)).prop_map(|(cmd, body)| {
            let mut h = Header::new();
            h.insert("cmd".into(), Value::String(cmd));
            h.insert("data_size".into(), Value::from(body.len() as u64));
            (h, body)
        });
        proptest::collection::vec(frame, 0..6)
    }

    proptest! {
        #[test]
        fn any_split_of_the_input_yields_the_same_frames(
            frames in arb_frames(),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let mut wire = BytesMut::new();
            for (h, body) in &frames {
                encode_header(h, &mut wire);
                wire.extend_from_slice(body);
            }
            let wire = wire.freeze();

            let mut whole = BytesMut::from(&wire[..]);
            let expected = normalise(decode_all(&mut FrameDecoder::new(FrameLimits::default()), &mut whole).unwrap());
            prop_assert_eq!(expected.len(), frames.len() * 3 - frames.iter().filter(|(_, b)| b.is_empty()).count());

            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
            points.sort_unstable();
            let mut dec = FrameDecoder::new(FrameLimits::default());
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            let mut start = 0;
            for end in points.into_iter().chain([wire.len()]) {
                buf.extend_from_slice(&wire[start..end]);
                start = end;
                got.extend(decode_all(&mut dec, &mut buf).unwrap());
            }
            prop_assert_eq!(normalise(got), expected);
            prop_assert!(dec.is_idle());
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut buf = BytesMut::from(&bytes[..]);
            let mut dec = FrameDecoder::new(FrameLimits { max_header_len: 64 });
            let _ = decode_all(&mut dec, &mut buf);
        }
    }
}
