//! Streaming hashes that verify a transfer end to end in one pass.
//!
//! XXH3-128 is sockit's own check: it runs at memory speed, so hashing while
//! streaming costs almost nothing next to the copy. MD5 exists because the
//! seeds' classic header may carry `"md5"`; it is checked when present.

use md5::{Digest as _, Md5};
use twox_hash::XxHash3_128;

/// XXH3-128 over a stream of chunks, rendered as 32 lowercase hex digits.
#[derive(Clone)]
pub struct StreamHash {
    inner: XxHash3_128,
}

impl Default for StreamHash {
    fn default() -> Self {
        Self {
            inner: XxHash3_128::new(),
        }
    }
}

impl std::fmt::Debug for StreamHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamHash(xxh3-128)")
    }
}

impl StreamHash {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.inner.write(bytes);
    }

    pub fn hex(&self) -> String {
        format!("{:032x}", self.inner.finish_128())
    }
}

/// MD5 over a stream of chunks (the seeds' `"md5"` header field).
#[derive(Clone, Default)]
pub struct Md5Hash {
    inner: Md5,
}

impl std::fmt::Debug for Md5Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Md5Hash")
    }
}

impl Md5Hash {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.inner.update(bytes);
    }

    pub fn hex(self) -> String {
        hex(&self.inner.finalize())
    }
}

/// Lowercase hex of a byte string.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_matches_rfc1321_vectors() {
        // RFC 1321 §A.5
        let mut h = Md5Hash::new();
        h.update(b"abc");
        assert_eq!(h.hex(), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(Md5Hash::new().hex(), "d41d8cd98f00b204e9800998ecf8427e");
    }

    #[test]
    fn stream_hash_is_independent_of_chunking() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let mut whole = StreamHash::new();
        whole.update(&data);
        let mut parts = StreamHash::new();
        for chunk in data.chunks(333) {
            parts.update(chunk);
        }
        assert_eq!(whole.hex(), parts.hex());
        assert_eq!(whole.hex().len(), 32);
        // The XXH3-128 of the empty input (reference implementation).
        assert_eq!(StreamHash::new().hex(), "99aa06d3014798d86001c324468d497f");
    }
}
