//! netascii (RFC 1350 §1, from the Telnet NVT of RFC 764): line ends are
//! CR LF on the wire and a bare CR is CR NUL. Local files use LF.
//!
//! Both directions are streaming: a CR at the end of one block and its LF
//! or NUL at the start of the next translate exactly as if they were
//! together.

/// Local bytes to netascii.
#[derive(Debug, Default, Clone)]
pub struct Encoder;

impl Encoder {
    pub fn encode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + input.len() / 16);
        for &b in input {
            match b {
                b'\n' => out.extend_from_slice(b"\r\n"),
                b'\r' => out.extend_from_slice(b"\r\0"),
                other => out.push(other),
            }
        }
    }
}

/// netascii to local bytes.
#[derive(Debug, Default, Clone)]
pub struct Decoder {
    /// The last block ended with a CR whose partner is still to come.
    pending_cr: bool,
}

impl Decoder {
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len());
        for &b in input {
            if std::mem::take(&mut self.pending_cr) {
                match b {
                    b'\n' => out.push(b'\n'),
                    0 => out.push(b'\r'),
                    // A bare CR followed by anything else: keep both, as
                    // lenient receivers (tftp-hpa) do.
                    b'\r' => {
                        out.push(b'\r');
                        self.pending_cr = true;
                    }
                    other => out.extend_from_slice(&[b'\r', other]),
                }
            } else if b == b'\r' {
                self.pending_cr = true;
            } else {
                out.push(b);
            }
        }
    }

    /// End of transfer: a trailing bare CR is kept.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if std::mem::take(&mut self.pending_cr) {
            out.push(b'\r');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        Encoder.encode(input, &mut out);
        out
    }

    fn decode_in_pieces(input: &[u8], cut: usize) -> Vec<u8> {
        let mut d = Decoder::default();
        let mut out = Vec::new();
        let (a, b) = input.split_at(cut);
        d.decode(a, &mut out);
        d.decode(b, &mut out);
        d.finish(&mut out);
        out
    }

    #[test]
    fn line_ends_and_bare_cr() {
        assert_eq!(encode(b"a\nb\rc"), b"a\r\nb\r\0c");
        assert_eq!(decode_in_pieces(b"a\r\nb\r\0c", 0), b"a\nb\rc");
    }

    #[test]
    fn every_cut_of_the_stream_decodes_the_same() {
        let local = b"line one\nline two\r\n\rend\r".to_vec();
        let wire = encode(&local);
        for cut in 0..=wire.len() {
            assert_eq!(decode_in_pieces(&wire, cut), local, "cut at {cut}");
        }
    }

    #[test]
    fn block_edge_cr_at_512() {
        // A CR LF that straddles the 512-byte boundary of two DATA blocks.
        let mut local = vec![b'x'; 511];
        local.push(b'\n');
        local.extend_from_slice(b"next");
        let wire = encode(&local);
        assert_eq!(&wire[511..513], b"\r\n");
        assert_eq!(decode_in_pieces(&wire, 512), local);
    }
}
