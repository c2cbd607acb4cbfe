//! The HMAC challenge/response handshake (docs/protocol.md §2) as a layer in
//! front of any TCP service, and where keys come from.
//!
//! The server side runs before a service sees the stream; on a wrong answer
//! the connection is closed with nothing sent. Keys come from a file, never
//! from argv; the default key file is created on first use with mode 0600.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use rand::RngCore as _;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use sockit_proto::auth::{BOUND_LEN, BoundRole, CHALLENGE_LEN, Digest, Key, bound_proof, verify_bound_proof};

use crate::Error;
use crate::stream::Stream;

/// What a server demands, or a client proves, on connect.
#[derive(Debug, Clone)]
pub struct Auth {
    pub key: Key,
    pub digest: Digest,
}

/// Server side: challenge, read exactly the answer's length, compare in
/// constant time. The caller bounds this with the handshake deadline.
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, auth: &Auth) -> Result<(), Error> {
    let mut challenge = [0u8; CHALLENGE_LEN];
    rand::rng().fill_bytes(&mut challenge);
    stream
        .write_all(&challenge)
        .await
        .map_err(Error::io("sending the challenge"))?;
    let mut answer = vec![0u8; auth.digest.answer_len()];
    stream.read_exact(&mut answer).await.map_err(Error::read_exact(
        "reading the challenge answer",
        "reading the challenge answer",
    ))?;
    if auth.digest.verify(&auth.key, &challenge, &answer) {
        Ok(())
    } else {
        Err(Error::AuthFailed)
    }
}

/// Client side: read the challenge, send the answer. A server that rejects
/// it closes the connection, which the client sees on its next read.
pub async fn answer<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, auth: &Auth) -> Result<(), Error> {
    let mut challenge = [0u8; CHALLENGE_LEN];
    let mut got = 0;
    while got < CHALLENGE_LEN {
        let n = stream
            .read(challenge.get_mut(got..).unwrap_or_default())
            .await
            .map_err(Error::io("reading the auth challenge"))?;
        if n == 0 {
            if crate::tls::is_tls_alert(challenge.get(..got).unwrap_or_default()) {
                return Err(Error::Tls("the server speaks TLS: add --tls".into()));
            }
            return Err(Error::Closed {
                op: "waiting for the auth challenge (does the server use --tls, or --insecure-no-auth?)",
            });
        }
        got += n;
    }
    // A room or service without a key speaks first in text: 32 bytes of a
    // welcome are not a challenge, and answering them would eat the line.
    if !sockit_proto::auth::looks_like_challenge(&challenge) {
        return Err(Error::NotKeyed);
    }
    let answer = auth.digest.answer(&auth.key, &challenge);
    stream
        .write_all(&answer)
        .await
        .map_err(Error::io("sending the auth answer"))
}

/// Server side on a connection that may be TLS: the channel-bound, two-way
/// handshake inside TLS, the classic one on plain TCP.
pub async fn accept_on(stream: &mut Stream, auth: &Auth) -> Result<(), Error> {
    match stream.exporter().map_err(Error::io("reading the TLS exporter"))? {
        Some(exporter) => accept_bound(stream, auth, &exporter).await,
        None => accept(stream, auth).await,
    }
}

/// Client side on a connection that may be TLS; inside TLS the server
/// must prove the key too before this returns.
pub async fn answer_on(stream: &mut Stream, auth: &Auth) -> Result<(), Error> {
    match stream.exporter().map_err(Error::io("reading the TLS exporter"))? {
        Some(exporter) => answer_bound(stream, auth, &exporter).await,
        None => answer(stream, auth).await,
    }
}

/// The bound handshake, server side (docs/protocol.md §2.1): nonce out,
/// the client's nonce and proof in, and only if that proof is right, the
/// server's proof out.
pub async fn accept_bound<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    auth: &Auth,
    exporter: &[u8],
) -> Result<(), Error> {
    let mut server_nonce = [0u8; BOUND_LEN];
    rand::rng().fill_bytes(&mut server_nonce);
    stream
        .write_all(&server_nonce)
        .await
        .map_err(Error::io("sending the challenge"))?;
    let mut answer = [0u8; 2 * BOUND_LEN];
    stream.read_exact(&mut answer).await.map_err(Error::read_exact(
        "reading the challenge answer",
        "reading the challenge answer",
    ))?;
    let (client_nonce, proof) = answer.split_at(BOUND_LEN);
    if !verify_bound_proof(
        &auth.key,
        BoundRole::Client,
        &server_nonce,
        client_nonce,
        exporter,
        proof,
    ) {
        return Err(Error::AuthFailed);
    }
    let ours = bound_proof(&auth.key, BoundRole::Server, &server_nonce, client_nonce, exporter);
    stream
        .write_all(&ours)
        .await
        .map_err(Error::io("sending the server's proof"))?;
    stream.flush().await.map_err(Error::io("sending the server's proof"))
}

/// The bound handshake, client side: the server's proof is checked before
/// any request goes out. A server that does not know the key, or a relay
/// between two TLS sessions, fails here.
pub async fn answer_bound<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    auth: &Auth,
    exporter: &[u8],
) -> Result<(), Error> {
    let mut server_nonce = [0u8; BOUND_LEN];
    stream.read_exact(&mut server_nonce).await.map_err(Error::read_exact(
        "reading the auth challenge",
        "waiting for the auth challenge (does the server use --insecure-no-auth?)",
    ))?;
    let mut client_nonce = [0u8; BOUND_LEN];
    rand::rng().fill_bytes(&mut client_nonce);
    let proof = bound_proof(&auth.key, BoundRole::Client, &server_nonce, &client_nonce, exporter);
    let mut answer = client_nonce.to_vec();
    answer.extend_from_slice(&proof);
    stream
        .write_all(&answer)
        .await
        .map_err(Error::io("sending the auth answer"))?;
    stream.flush().await.map_err(Error::io("sending the auth answer"))?;
    let mut theirs = [0u8; BOUND_LEN];
    if stream.read_exact(&mut theirs).await.is_err() {
        // The server closes without a word on a wrong answer.
        return Err(Error::AuthRejected);
    }
    if !verify_bound_proof(
        &auth.key,
        BoundRole::Server,
        &server_nonce,
        &client_nonce,
        exporter,
        &theirs,
    ) {
        return Err(Error::ServerUnproven);
    }
    Ok(())
}

/// Reads a key file: the secret as text, trailing whitespace stripped.
pub fn load_key(path: &Path) -> Result<Key, Error> {
    let text = std::fs::read(path).map_err(Error::file("cannot read key file", path))?;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "key file is readable by other users; chmod 600 it");
        }
    }
    Key::from_file_text(&text).map_err(|source| Error::Key {
        path: path.to_owned(),
        source,
    })
}

/// `$XDG_CONFIG_HOME/sockit/key`, else `$HOME/.config/sockit/key`.
pub fn default_key_path() -> Option<PathBuf> {
    Some(config_dir()?.join("key"))
}

/// sockit's per-user folder: `$XDG_CONFIG_HOME/sockit`, else
/// `$HOME/.config/sockit`.
pub fn config_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("sockit"))
}

/// Loads the key at `path`, creating it with 32 random bytes (as hex text,
/// mode 0600) if it does not exist yet. Returns whether it was created.
pub fn load_or_create_key(path: &Path) -> Result<(Key, bool), Error> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(Error::file("cannot create key folder", dir))?;
    }
    let mut random = [0u8; 32];
    rand::rng().fill_bytes(&mut random);
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(Key::file_text_from_random(&random).as_bytes()));
    match created {
        Ok(()) => Ok((load_key(path)?, true)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok((load_key(path)?, false)),
        Err(e) => Err(Error::File {
            op: "cannot create key file",
            path: path.to_owned(),
            source: e,
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn auth(secret: &[u8], digest: Digest) -> Auth {
        Auth {
            key: Key::from_file_text(secret).unwrap(),
            digest,
        }
    }

    #[tokio::test]
    async fn right_key_passes_and_wrong_key_fails() {
        for digest in [Digest::Md5, Digest::Sha256] {
            let (mut a, mut b) = tokio::io::duplex(256);
            let server = auth(b"k1", digest);
            let good = auth(b"k1", digest);
            let (s, c) = tokio::join!(accept(&mut a, &server), answer(&mut b, &good));
            assert!(s.is_ok() && c.is_ok());
            let (mut a, mut b) = tokio::io::duplex(256);
            let wrong = auth(b"k2", digest);
            let (s, _) = tokio::join!(accept(&mut a, &server), answer(&mut b, &wrong));
            assert!(matches!(s, Err(Error::AuthFailed)));
        }
    }

    #[tokio::test]
    async fn client_that_hangs_up_mid_answer_is_a_close() {
        let (mut a, mut b) = tokio::io::duplex(256);
        let server = auth(b"k", Digest::Sha256);
        let client = async move {
            let mut c = [0u8; CHALLENGE_LEN];
            b.read_exact(&mut c).await.unwrap();
            b.write_all(&[1, 2, 3]).await.unwrap();
            drop(b);
        };
        let (s, ()) = tokio::join!(accept(&mut a, &server), client);
        assert!(matches!(s, Err(Error::Closed { .. })));
    }

    #[test]
    fn default_key_is_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cfg/sockit/key");
        let (k1, created) = load_or_create_key(&path).unwrap();
        assert!(created);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (k2, created) = load_or_create_key(&path).unwrap();
        assert!(!created);
        assert_eq!(k1, k2);
    }
}
