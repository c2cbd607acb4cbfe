//! One connection type for every TCP service and client: plain TCP, or TLS
//! on either side. Services and clients are written once against it; the
//! server skeleton and `connect` decide which it is.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use sockit_proto::auth::{EXPORTER_LABEL, EXPORTER_LEN};

/// A connected stream, encrypted or not.
#[derive(Debug)]
pub enum Stream {
    Plain(TcpStream),
    TlsClient(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    TlsServer(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Stream {
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Self::Plain(s) => s,
            Self::TlsClient(s) => s.get_ref().0,
            Self::TlsServer(s) => s.get_ref().0,
        }
    }

    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.tcp().peer_addr()
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp().local_addr()
    }

    pub fn is_tls(&self) -> bool {
        !matches!(self, Self::Plain(_))
    }

    /// The TLS exporter value the auth handshake binds to (RFC 8446 §7.5);
    /// `None` for plain TCP. On a TLS stream that cannot export, an error:
    /// falling back to the one-way handshake there would fail open.
    pub fn exporter(&self) -> io::Result<Option<[u8; EXPORTER_LEN]>> {
        let out = [0u8; EXPORTER_LEN];
        let exported = match self {
            Self::Plain(_) => return Ok(None),
            Self::TlsClient(s) => s.get_ref().1.export_keying_material(out, EXPORTER_LABEL, None),
            Self::TlsServer(s) => s.get_ref().1.export_keying_material(out, EXPORTER_LABEL, None),
        };
        exported.map(Some).map_err(io::Error::other)
    }
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::TlsClient(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Self::TlsServer(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::TlsClient(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Self::TlsServer(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::TlsClient(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            Self::TlsServer(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            Self::TlsClient(s) => s.is_write_vectored(),
            Self::TlsServer(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::TlsClient(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Self::TlsServer(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::TlsClient(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Self::TlsServer(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl Stream {
    /// Separate reading and writing halves. Plain TCP splits without a lock
    /// (each half owns its side of the socket); TLS shares its session
    /// state, so its halves take turns through tokio's lock.
    pub fn split(self) -> (ReadSide, WriteSide) {
        match self {
            Self::Plain(s) => {
                let (r, w) = s.into_split();
                (ReadSide::Plain(r), WriteSide::Plain(w))
            }
            tls => {
                let (r, w) = tokio::io::split(tls);
                (ReadSide::Tls(r), WriteSide::Tls(w))
            }
        }
    }
}

/// The reading half of a [`Stream`].
#[derive(Debug)]
pub enum ReadSide {
    Plain(tokio::net::tcp::OwnedReadHalf),
    Tls(tokio::io::ReadHalf<Stream>),
}

/// The writing half of a [`Stream`]; shutting it down half-closes.
#[derive(Debug)]
pub enum WriteSide {
    Plain(tokio::net::tcp::OwnedWriteHalf),
    Tls(tokio::io::WriteHalf<Stream>),
}

impl AsyncRead for ReadSide {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for WriteSide {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
