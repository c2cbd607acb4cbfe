//! The "sticky packet" (粘包) lesson: TCP delivers a byte stream, not the
//! sender's messages. Given the sizes of the messages written and of the
//! chunks each `recv` returned, [`cut`] says what each read held: one
//! whole message, several merged, or pieces of messages split across
//! reads. [`LengthPrefixed`] is the cure the course teaches: a 4-byte
//! big-endian length before each message (`struct.pack('!I', len)`), so
//! the receiver can take back exactly the messages that were sent.

use serde::Serialize;

/// A piece of one message inside one read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Piece {
    /// Which message, counted from 0.
    pub message: usize,
    /// The piece's byte range within that message.
    pub from: usize,
    pub to: usize,
    /// The piece is the whole message.
    pub whole: bool,
}

/// What one read returned, in terms of the messages sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Read {
    pub bytes: usize,
    pub pieces: Vec<Piece>,
}

impl Read {
    /// More than one message (or part of one) in this read.
    pub fn merged(&self) -> bool {
        self.pieces.len() > 1
    }

    /// Exactly one whole message: what the sender meant.
    pub fn exact(&self) -> bool {
        matches!(self.pieces.as_slice(), [p] if p.whole)
    }
}

/// Tallies over all reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Reads that held exactly one whole message.
    pub exact: usize,
    /// Reads that held pieces of two or more messages.
    pub merged: usize,
    /// Messages that arrived over two or more reads.
    pub split: usize,
}

/// Maps reads of `reads[i]` bytes onto messages of `messages[j]` bytes,
/// sent back to back. Bytes past the last message (there should be none)
/// are left out.
pub fn cut(messages: &[usize], reads: &[usize]) -> Vec<Read> {
    let mut out = Vec::with_capacity(reads.len());
    let mut message = 0;
    let mut offset = 0;
    for &bytes in reads {
        let mut left = bytes;
        let mut pieces = Vec::new();
        while left > 0 {
            let Some(&size) = messages.get(message) else { break };
            let take = left.min(size - offset);
            pieces.push(Piece {
                message,
                from: offset,
                to: offset + take,
                whole: offset == 0 && take == size,
            });
            offset += take;
            left -= take;
            if offset == size {
                message += 1;
                offset = 0;
            }
        }
        out.push(Read { bytes, pieces });
    }
    out
}

pub fn tally(reads: &[Read]) -> Tally {
    let mut t = Tally::default();
    let mut pieces_of: std::collections::BTreeMap<usize, usize> = std::collections::BTreeMap::new();
    for r in reads {
        if r.exact() {
            t.exact += 1;
        }
        if r.merged() {
            t.merged += 1;
        }
        for p in &r.pieces {
            *pieces_of.entry(p.message).or_default() += 1;
        }
    }
    t.split = pieces_of.values().filter(|&&n| n > 1).count();
    t
}

/// The largest message [`LengthPrefixed`] accepts: the prefix is read from
/// the peer, so it is capped before anything is allocated.
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// A message with its 4-byte big-endian length in front.
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 4);
    out.extend_from_slice(&u32::try_from(message.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(message);
    out
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("a length prefix of {0} bytes is over the {MAX_MESSAGE}-byte limit")]
    TooLong(usize),
}

/// Takes a byte stream in chunks as they come and gives back the messages,
/// whole, however the stream was cut.
#[derive(Debug, Default)]
pub struct LengthPrefixed {
    buf: Vec<u8>,
}

impl LengthPrefixed {
    /// Adds a chunk; returns every message completed by it.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Vec<u8>>, FrameError> {
        self.buf.extend_from_slice(chunk);
        let mut messages = Vec::new();
        while let Some(&[a, b, c, d]) = self.buf.get(..4) {
            let len = usize::try_from(u32::from_be_bytes([a, b, c, d])).unwrap_or(usize::MAX);
            if len > MAX_MESSAGE {
                return Err(FrameError::TooLong(len));
            }
            if self.buf.len() < 4 + len {
                break;
            }
            messages.push(self.buf.get(4..4 + len).unwrap_or_default().to_vec());
            self.buf.drain(..4 + len);
        }
        Ok(messages)
    }

    /// Bytes held that do not make a whole message yet.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_cut_into_whole_merged_and_split_messages() {
        // Three 5-byte messages; reads of 12 and 3: the first read merges
        // two whole messages and a piece of the third.
        let reads = cut(&[5, 5, 5], &[12, 3]);
        assert_eq!(reads[0].pieces.len(), 3);
        assert!(reads[0].merged() && !reads[0].exact());
        assert_eq!(
            reads[0].pieces[2],
            Piece {
                message: 2,
                from: 0,
                to: 2,
                whole: false
            }
        );
        assert_eq!(
            reads[1].pieces[0],
            Piece {
                message: 2,
                from: 2,
                to: 5,
                whole: false
            }
        );
        assert_eq!(
            tally(&reads),
            Tally {
                exact: 0,
                merged: 1,
                split: 1
            }
        );
        let each = cut(&[5, 5], &[5, 5]);
        assert_eq!(
            tally(&each),
            Tally {
                exact: 2,
                merged: 0,
                split: 0
            }
        );
    }

    #[test]
    fn length_prefixed_messages_come_out_whole_however_the_stream_is_cut() {
        let messages: Vec<Vec<u8>> = (0..20).map(|i| vec![i as u8; i * 37 % 300]).collect();
        let stream: Vec<u8> = messages.iter().flat_map(|m| frame(m)).collect();
        for step in [1, 3, 7, 64, 1000, stream.len()] {
            let mut d = LengthPrefixed::default();
            let mut got = Vec::new();
            for chunk in stream.chunks(step) {
                got.extend(d.push(chunk).unwrap_or_default());
            }
            assert_eq!(got, messages, "chunks of {step}");
            assert_eq!(d.pending(), 0);
        }
        let mut d = LengthPrefixed::default();
        assert_eq!(
            d.push(&u32::MAX.to_be_bytes()),
            Err(FrameError::TooLong(u32::MAX as usize))
        );
    }
}
