//! The connection handshake of seed 001 §13: the server sends a random
//! challenge, the client answers with its HMAC under a shared key, the server
//! compares in constant time.
//!
//! Inside TLS the handshake is bound to the channel and runs both ways
//! ([`BoundRole`]): each side proves the key over both nonces and a TLS
//! exporter value (RFC 8446 §7.5). A man in the middle holds two TLS
//! sessions with two different exporter values, so neither proof survives
//! the relay, and no certificate needs pinning.
//!
//! This module owns the arithmetic and the key's form; the socket dance and
//! where the random bytes come from belong to the caller.

use hmac::{Hmac, Mac};
use md5::Md5;
use sha2::Sha256;

/// Length of the server's challenge: the seed's `os.urandom(32)`.
pub const CHALLENGE_LEN: usize = 32;

/// Whether the first bytes a keyless client got are an auth challenge
/// rather than the service's answer: exactly [`CHALLENGE_LEN`] bytes that
/// are not text. 32 random bytes pass as text about once in 10^13.
pub fn looks_like_challenge(first: &[u8]) -> bool {
    first.len() == CHALLENGE_LEN && !is_text(first)
}

/// Valid UTF-8 with no control characters but tab, CR, LF and ESC (a room
/// may colour its lines): what the line services send, and what random
/// bytes almost never are. A character cut off at the end still counts.
pub fn is_text(bytes: &[u8]) -> bool {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) if e.error_len().is_none() => bytes
            .get(..e.valid_up_to())
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or_default(),
        Err(_) => return false,
    };
    !text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\r' | '\n' | '\u{1b}'))
}

/// Which HMAC the client must answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Digest {
    /// HMAC-MD5, 16-byte answer: Python's `hmac.new(key, msg)` before 3.8,
    /// what the seeds' classic clients send.
    Md5,
    /// HMAC-SHA256, 32-byte answer: sockit's default.
    #[default]
    Sha256,
}

impl Digest {
    /// Bytes in a client's answer.
    pub fn answer_len(self) -> usize {
        match self {
            Self::Md5 => 16,
            Self::Sha256 => 32,
        }
    }

    /// The answer an honest client sends for `challenge`.
    pub fn answer(self, key: &Key, challenge: &[u8]) -> Vec<u8> {
        match self {
            Self::Md5 => mac::<Hmac<Md5>>(key, challenge).finalize().into_bytes().to_vec(),
            Self::Sha256 => mac::<Hmac<Sha256>>(key, challenge).finalize().into_bytes().to_vec(),
        }
    }

    /// Constant-time check of a client's answer.
    pub fn verify(self, key: &Key, challenge: &[u8], answer: &[u8]) -> bool {
        match self {
            Self::Md5 => mac::<Hmac<Md5>>(key, challenge).verify_slice(answer).is_ok(),
            Self::Sha256 => mac::<Hmac<Sha256>>(key, challenge).verify_slice(answer).is_ok(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Md5 => "md5",
            Self::Sha256 => "sha256",
        }
    }
}

/// The TLS exporter label of the bound handshake (RFC 8446 §7.5).
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-sockit-auth";
/// Bytes of exporter output the proofs cover.
pub const EXPORTER_LEN: usize = 32;
/// Length of each side's nonce and proof (HMAC-SHA256).
pub const BOUND_LEN: usize = 32;

/// Who a bound proof speaks for. The role is part of what is signed, so a
/// proof cannot be reflected back at its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoundRole {
    Client,
    Server,
}

impl BoundRole {
    fn label(self) -> &'static [u8] {
        match self {
            Self::Client => b"sockit auth v1 client",
            Self::Server => b"sockit auth v1 server",
        }
    }
}

/// The channel-bound handshake, inside TLS (docs/protocol.md §2.1):
///
/// 1. server → client: `server_nonce` (32 random bytes);
/// 2. client → server: `client_nonce` (32 random bytes), then the client's
///    proof;
/// 3. server → client: the server's proof, sent only if the client's was
///    right (otherwise the server closes without a word).
///
/// A proof is HMAC-SHA256(key, role label ‖ server_nonce ‖ client_nonce ‖
/// exporter), where exporter is 32 bytes of the TLS exporter with
/// [`EXPORTER_LABEL`] and no context.
pub fn bound_proof(key: &Key, role: BoundRole, server_nonce: &[u8], client_nonce: &[u8], exporter: &[u8]) -> Vec<u8> {
    bound_mac(key, role, server_nonce, client_nonce, exporter)
        .finalize()
        .into_bytes()
        .to_vec()
}

/// Constant-time check of a bound proof.
pub fn verify_bound_proof(
    key: &Key,
    role: BoundRole,
    server_nonce: &[u8],
    client_nonce: &[u8],
    exporter: &[u8],
    proof: &[u8],
) -> bool {
    bound_mac(key, role, server_nonce, client_nonce, exporter)
        .verify_slice(proof)
        .is_ok()
}

fn bound_mac(key: &Key, role: BoundRole, server_nonce: &[u8], client_nonce: &[u8], exporter: &[u8]) -> Hmac<Sha256> {
    let mut m = mac::<Hmac<Sha256>>(key, role.label());
    m.update(server_nonce);
    m.update(client_nonce);
    m.update(exporter);
    m
}

/// HMAC-SHA256 of `label ‖ message` under the key: what the web front
/// end's token and session cookies are made of (see [`crate::web`]).
pub fn labelled_mac(key: &Key, label: &[u8], message: &[u8]) -> [u8; 32] {
    let mut m = mac::<Hmac<Sha256>>(key, label);
    m.update(message);
    m.finalize().into_bytes().into()
}

fn mac<M: Mac + hmac::digest::KeyInit>(key: &Key, challenge: &[u8]) -> M {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut m = <M as Mac>::new_from_slice(&key.0).unwrap_or_else(|_| unreachable!("hmac takes any key length"));
    m.update(challenge);
    m
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key is empty")]
    Empty,
}

/// The shared secret. Its `Debug` never shows the bytes, so it cannot leak
/// into a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(Vec<u8>);

impl Key {
    /// A key file's content: the secret as text, trailing whitespace (the
    /// newline an editor adds) stripped.
    pub fn from_file_text(text: &[u8]) -> Result<Self, KeyError> {
        let end = text.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(0, |i| i + 1);
        let secret = text.get(..end).unwrap_or_default();
        if secret.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(Self(secret.to_vec()))
    }

    /// The text to store for a freshly generated key, from caller-supplied
    /// random bytes.
    pub fn file_text_from_random(random: &[u8]) -> String {
        format!("{}\n", crate::checksum::hex(random))
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_challenge_is_told_from_an_answer() {
        let random: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(97).wrapping_add(3)).collect();
        assert!(super::looks_like_challenge(&random));
        assert!(!super::looks_like_challenge(b"an echo of exactly 32 bytes, ok!"));
        assert!(!super::looks_like_challenge(&random[..31]));
        assert!(!super::looks_like_challenge(b""));
        // A character cut at byte 32, and colours, are still text.
        let cut = "ab欢迎来到聊天室欢迎来到".as_bytes();
        assert!(cut.len() > 32 && !super::looks_like_challenge(&cut[..32]));
        assert!(!super::looks_like_challenge(b"\x1b[1m*** welcome\x1b[0m to the room!"));
    }
    use crate::checksum::hex;

    #[test]
    fn bound_proofs_depend_on_role_nonces_and_channel() {
        let key = Key::from_file_text(b"k").unwrap();
        let (s, c, e) = ([1u8; 32], [2u8; 32], [3u8; 32]);
        let proof = bound_proof(&key, BoundRole::Client, &s, &c, &e);
        assert!(verify_bound_proof(&key, BoundRole::Client, &s, &c, &e, &proof));
        // Reflected as the server's, from another channel, or under another
        // key: refused.
        assert!(!verify_bound_proof(&key, BoundRole::Server, &s, &c, &e, &proof));
        assert!(!verify_bound_proof(&key, BoundRole::Client, &s, &c, &[4u8; 32], &proof));
        assert!(!verify_bound_proof(&key, BoundRole::Client, &c, &s, &e, &proof));
        let other = Key::from_file_text(b"other").unwrap();
        assert!(!verify_bound_proof(&other, BoundRole::Client, &s, &c, &e, &proof));
        assert_eq!(proof.len(), BOUND_LEN);
    }

    #[test]
    fn hmac_md5_matches_rfc2104_vector() {
        // RFC 2104 Appendix, test 2: key "Jefe".
        let key = Key::from_file_text(b"Jefe\n").unwrap();
        let answer = Digest::Md5.answer(&key, b"what do ya want for nothing?");
        assert_eq!(hex(&answer), "750c783e6ab0b503eaa86e310a5db738");
    }

    #[test]
    fn hmac_sha256_matches_rfc4231_vector() {
        // RFC 4231 §4.3, test case 2.
        let key = Key::from_file_text(b"Jefe").unwrap();
        let answer = Digest::Sha256.answer(&key, b"what do ya want for nothing?");
        assert_eq!(
            hex(&answer),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn verify_accepts_only_the_right_answer() {
        let key = Key::from_file_text(b"linhaifeng bang bang bang").unwrap();
        let wrong = Key::from_file_text(b"linhaifeng bang bang bang1111").unwrap();
        let challenge = [7u8; CHALLENGE_LEN];
        for d in [Digest::Md5, Digest::Sha256] {
            let good = d.answer(&key, &challenge);
            assert_eq!(good.len(), d.answer_len());
            assert!(d.verify(&key, &challenge, &good));
            assert!(!d.verify(&key, &challenge, &d.answer(&wrong, &challenge)));
            assert!(!d.verify(&key, &challenge, &good[..good.len() - 1]));
        }
    }

    #[test]
    fn key_text_strips_trailing_whitespace_only() {
        assert_eq!(
            Key::from_file_text(b" k y \r\n\t").unwrap(),
            Key::from_file_text(b" k y").unwrap()
        );
        assert_eq!(Key::from_file_text(b" \n"), Err(KeyError::Empty));
        assert_eq!(
            format!("{:?}", Key::from_file_text(b"secret").unwrap()),
            "Key(<redacted>)"
        );
    }
}
