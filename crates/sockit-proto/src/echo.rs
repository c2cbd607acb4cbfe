//! The echo services' one transformation: the seeds' "upper" echo, which
//! answers `msg.upper()`.
//!
//! TCP echo is a stream, so a UTF-8 character may be split across two reads.
//! [`Upper`] carries such a partial character over to the next chunk instead
//! of mangling it; bytes that are not UTF-8 pass through unchanged, as they
//! would through a byte-wise ASCII upper.

/// Streaming Unicode upper-casing: `'hello 你好'` → `'HELLO 你好'`.
#[derive(Debug, Default, Clone)]
pub struct Upper {
    /// The start of a UTF-8 sequence the last chunk ended in (at most 3 bytes).
    pending: Vec<u8>,
}

impl Upper {
    pub fn new() -> Self {
        Self::default()
    }

    /// Upper-cases `input`, appending to `out`. An incomplete UTF-8 sequence
    /// at the end is held back until the next call or [`finish`](Self::finish).
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let mut data = std::mem::take(&mut self.pending);
        data.extend_from_slice(input);
        let mut rest = data.as_slice();
        while !rest.is_empty() {
            match std::str::from_utf8(rest) {
                Ok(text) => {
                    push_upper(text, out);
                    return;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    // Safe: from_utf8 said these bytes are valid.
                    push_upper(std::str::from_utf8(valid).unwrap_or_default(), out);
                    match e.error_len() {
                        // Cut off at the end: wait for the rest.
                        None => {
                            self.pending = after.to_vec();
                            return;
                        }
                        // Not UTF-8: pass the bad bytes through.
                        Some(bad) => {
                            let (invalid, tail) = after.split_at(bad.min(after.len()));
                            out.extend_from_slice(invalid);
                            rest = tail;
                        }
                    }
                }
            }
        }
    }

    /// Flushes a trailing incomplete sequence unchanged.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.pending);
    }
}

fn push_upper(text: &str, out: &mut Vec<u8>) {
    if text.is_ascii() {
        out.extend(text.bytes().map(|b| b.to_ascii_uppercase()));
    } else {
        out.extend_from_slice(text.to_uppercase().as_bytes());
    }
}

/// Upper-cases one datagram. Upper case can be longer than lower case
/// (`'ŉ'` → `"ʼN"`), and a UDP reply must never be larger than its request,
/// so the result is cut at the last whole character that fits.
pub fn upper_datagram(request: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(request.len());
    let mut upper = Upper::new();
    upper.push(request, &mut out);
    upper.finish(&mut out);
    if out.len() > request.len() {
        let mut end = request.len();
        while end > 0 && out.get(end).is_some_and(|b| (0x80..0xc0).contains(b)) {
            end -= 1;
        }
        out.truncate(end);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn upper_all(chunks: &[&[u8]]) -> Vec<u8> {
        let mut u = Upper::new();
        let mut out = Vec::new();
        for c in chunks {
            u.push(c, &mut out);
        }
        u.finish(&mut out);
        out
    }

    #[test]
    fn upper_is_unicode_aware() {
        assert_eq!(upper_all(&["hello 你好".as_bytes()]), "HELLO 你好".as_bytes());
        assert_eq!(upper_all(&["straße ǆ ω".as_bytes()]), "STRASSE Ǆ Ω".as_bytes());
    }

    #[test]
    fn a_character_split_across_reads_survives() {
        let text = "é你".as_bytes(); // c3 a9 e4 bd a0
        for cut in 0..=text.len() {
            let (a, b) = text.split_at(cut);
            assert_eq!(upper_all(&[a, b]), "É你".as_bytes(), "cut at {cut}");
        }
    }

    #[test]
    fn invalid_bytes_pass_through() {
        assert_eq!(upper_all(&[b"ab\xffcd\xc3"]), b"AB\xffCD\xc3");
    }

    #[test]
    fn a_datagram_reply_is_never_longer_than_the_request() {
        // 'ŉ' (2 bytes) upper-cases to "ʼN" (3 bytes): cut to the whole 'ʼ'.
        assert_eq!(upper_datagram("ŉ".as_bytes()), "ʼ".as_bytes());
        assert_eq!(upper_datagram("hi ŉ".as_bytes()), "HI ʼ".as_bytes());
        assert_eq!(upper_datagram("ß".as_bytes()), b"SS");
        assert_eq!(upper_datagram("hello 你好".as_bytes()), "HELLO 你好".as_bytes());
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_output(s in "\\PC{0,40}", cut in any::<prop::sample::Index>()) {
            let bytes = s.as_bytes();
            let at = cut.index(bytes.len() + 1);
            let (a, b) = bytes.split_at(at);
            prop_assert_eq!(upper_all(&[a, b]), s.to_uppercase().into_bytes());
        }

        #[test]
        fn datagram_replies_are_bounded(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert!(upper_datagram(&bytes).len() <= bytes.len());
        }
    }
}
