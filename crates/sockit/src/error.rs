//! The library's one error type. Each variant carries the context a user
//! needs (which peer, path or operation); the binary adds what it was doing.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use sockit_proto::auth::KeyError;
use sockit_proto::files::{MalformedReply, RemoteError, RequestError};
use sockit_proto::frame::FrameError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("cannot listen on {addr}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("cannot connect to {addr}")]
    Connect { addr: String, source: io::Error },
    #[error("{op} failed")]
    Io { op: &'static str, source: io::Error },
    #[error("{op}: {}", path.display())]
    File {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("timed out after {}s while {op}", after.as_secs())]
    Timeout { op: &'static str, after: Duration },
    #[error("peer closed the connection while {op}")]
    Closed { op: &'static str },
    #[error("peer sent slower than {min_rate} bytes/s")]
    TooSlow { min_rate: u64 },
    #[error("protocol error")]
    Frame(#[from] FrameError),
    #[error("bad request")]
    Request(#[from] RequestError),
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error("unexpected reply: {0}")]
    Protocol(String),
    #[error("authentication failed")]
    AuthFailed,
    #[error("server closed the connection after the auth handshake (wrong key or --auth-digest?)")]
    AuthRejected,
    #[error("the server wants a key: pass --key-file (the server's key), or run the server with --insecure-no-auth")]
    AuthWanted,
    #[error("the server sent no auth challenge within {0:?}: it may run without a key; try without --key-file")]
    NoChallenge(Duration),
    #[error(
        "the server sent text where a key's challenge goes: it runs without a key; connect with --insecure-no-auth"
    )]
    NotKeyed,
    #[error("the server did not prove it holds the key: someone may be in the middle of this TLS connection")]
    ServerUnproven,
    #[error("{0}")]
    Tls(String),
    /// The chat bus (NATS) could not be reached or refused an operation.
    #[error("chat bus: {op}: {detail}")]
    Bus { op: &'static str, detail: String },
    /// The object store behind a `s3://` root could not be reached or
    /// refused an operation.
    #[error("object store: {op}: {detail}")]
    Store { op: &'static str, detail: String },
    #[error("stopped: nobody reads the output any more")]
    Cancelled,
    /// A pipelined request whose reply never came: the connection broke
    /// after it was sent. The server may or may not have acted on it (an
    /// upload is then either whole under its name or not there at all).
    #[error("not confirmed: {cause}")]
    Unconfirmed { cause: String },
    #[error("bad key in {}", path.display())]
    Key { path: PathBuf, source: KeyError },
    #[error("checksum mismatch for {name}: expected {expected}, got {actual}")]
    ChecksumMismatch {
        name: String,
        expected: String,
        actual: String,
    },
    #[error("the server sent nothing (no such file, or a wrong key?)")]
    NothingSent,
    #[error("cannot resolve '{name}'")]
    Resolve { name: String, source: io::Error },
    #[error("'{name}' has no {family} address")]
    NoAddress { name: String, family: &'static str },
    #[error(transparent)]
    Tftp(#[from] sockit_proto::tftp::transfer::Failure),
    #[error("{0}")]
    Usage(String),
}

impl From<MalformedReply> for Error {
    fn from(e: MalformedReply) -> Self {
        Self::Protocol(e.to_string())
    }
}

impl Error {
    pub(crate) fn io(op: &'static str) -> impl FnOnce(io::Error) -> Self {
        move |source| Self::Io { op, source }
    }

    /// For an exact read: the peer closing early is `Closed { op: closed }`
    /// (worth its own wording), anything else an I/O error during `op`.
    pub(crate) fn read_exact(op: &'static str, closed: &'static str) -> impl FnOnce(io::Error) -> Self {
        move |source| match source.kind() {
            io::ErrorKind::UnexpectedEof => Self::Closed { op: closed },
            _ => Self::Io { op, source },
        }
    }

    pub(crate) fn file(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::File { op, path, source }
    }

    /// True when the other side simply went away (reset, broken pipe, EOF):
    /// worth a debug line in a server log, not a warning.
    pub fn is_disconnect(&self) -> bool {
        match self {
            Self::Closed { .. } => true,
            Self::Io { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::UnexpectedEof
            ),
            _ => false,
        }
    }
}

/// Runs `fut` with a deadline, naming what timed out.
pub(crate) async fn deadline<T>(
    after: Duration,
    op: &'static str,
    fut: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::time::timeout(after, fut)
        .await
        .unwrap_or(Err(Error::Timeout { op, after }))
}
