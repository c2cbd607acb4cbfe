//! The figures every service reports to, in one place: each listener's
//! open connections and bytes, and each transfer in progress. The web
//! dashboard and `sockit serve --stats` read the same [`Snapshot`].
//!
//! Reporting costs an atomic add per read or write and a short lock when a
//! transfer starts or ends, never per byte; nothing here blocks a service.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The registry of one daemon; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    listeners: Mutex<Vec<Arc<Listener>>>,
    transfers: Mutex<BTreeMap<u64, Arc<TransferState>>>,
    next_transfer: AtomicU64,
}

/// One listener's counters.
#[derive(Debug)]
pub struct Listener {
    service: String,
    proto: &'static str,
    addr: SocketAddr,
    open: AtomicU64,
    total: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

impl Listener {
    /// A connection (or, for UDP, an exchange) began.
    pub fn opened(&self) {
        self.open.fetch_add(1, Ordering::Relaxed);
        self.total.fetch_add(1, Ordering::Relaxed);
    }

    pub fn closed(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn received(&self, n: usize) {
        self.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn sent(&self, n: usize) {
        self.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
    }
}

#[derive(Debug)]
struct TransferState {
    kind: &'static str,
    name: String,
    peer: Option<SocketAddr>,
    size: Option<u64>,
    done: AtomicU64,
    started_at: f64,
    started: Instant,
    /// Bytes that were already there (a resume): not counted in the rate.
    resumed_at: u64,
}

/// A transfer in progress, listed until dropped.
#[derive(Debug)]
pub struct Transfer {
    stats: Stats,
    id: u64,
    state: Arc<TransferState>,
}

impl Transfer {
    /// `n` more bytes moved.
    pub fn advance(&self, n: usize) {
        self.state.done.fetch_add(n as u64, Ordering::Relaxed);
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        self.stats
            .inner
            .transfers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

impl Stats {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a listener; its counters live as long as the daemon.
    pub fn listener(&self, service: &str, proto: &'static str, addr: SocketAddr) -> Arc<Listener> {
        let listener = Arc::new(Listener {
            service: service.to_owned(),
            proto,
            addr,
            open: AtomicU64::new(0),
            total: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
        });
        self.inner
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(&listener));
        listener
    }

    /// Lists a transfer (`kind`: put, get, web upload, web download, zip,
    /// tftp read, tftp write) until the returned guard is dropped. `done`
    /// is where it starts (a resume's offset).
    pub fn transfer(
        &self,
        kind: &'static str,
        name: &str,
        peer: Option<SocketAddr>,
        size: Option<u64>,
        done: u64,
    ) -> Transfer {
        let id = self.inner.next_transfer.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(TransferState {
            kind,
            name: name.to_owned(),
            peer,
            size,
            done: AtomicU64::new(done),
            started_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            started: Instant::now(),
            resumed_at: done,
        });
        self.inner
            .transfers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, Arc::clone(&state));
        Transfer {
            stats: self.clone(),
            id,
            state,
        }
    }

    /// Every figure now.
    pub fn snapshot(&self) -> Snapshot {
        let listeners = self
            .inner
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|l| ListenerFigures {
                service: l.service.clone(),
                proto: l.proto.to_owned(),
                addr: l.addr.to_string(),
                open: l.open.load(Ordering::Relaxed),
                total: l.total.load(Ordering::Relaxed),
                bytes_in: l.bytes_in.load(Ordering::Relaxed),
                bytes_out: l.bytes_out.load(Ordering::Relaxed),
            })
            .collect();
        let transfers = self
            .inner
            .transfers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(&id, t)| {
                let done = t.done.load(Ordering::Relaxed);
                let seconds = t.started.elapsed().as_secs_f64();
                let moved = done.saturating_sub(t.resumed_at) as f64;
                TransferFigures {
                    id,
                    kind: t.kind.to_owned(),
                    name: t.name.clone(),
                    peer: t.peer.map(|p| p.to_string()),
                    size: t.size,
                    done,
                    started: t.started_at,
                    bytes_per_second: if seconds > 0.0 { (moved / seconds) as u64 } else { 0 },
                }
            })
            .collect();
        Snapshot { listeners, transfers }
    }
}

/// What the dashboard shows: the JSON of `/api/stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub listeners: Vec<ListenerFigures>,
    pub transfers: Vec<TransferFigures>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerFigures {
    pub service: String,
    pub proto: String,
    pub addr: String,
    /// Connections open now (TCP).
    pub open: u64,
    /// Connections (TCP) or requests (UDP) since start.
    pub total: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferFigures {
    pub id: u64,
    pub kind: String,
    pub name: String,
    pub peer: Option<String>,
    /// The whole size, when known.
    pub size: Option<u64>,
    /// Bytes moved, a resume's kept bytes included.
    pub done: u64,
    /// Unix seconds.
    pub started: f64,
    pub bytes_per_second: u64,
}

/// A connection that counts its bytes into its listener.
#[derive(Debug)]
pub struct Counted<S> {
    inner: S,
    listener: Arc<Listener>,
}

impl<S> Counted<S> {
    pub fn new(inner: S, listener: Arc<Listener>) -> Self {
        Self { inner, listener }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            self.listener.received(buf.filled().len() - before);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = polled {
            self.listener.sent(n);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled {
            self.listener.sent(n);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn transfers_are_listed_while_they_run() {
        let stats = Stats::new();
        let l = stats.listener("files", "tcp", "127.0.0.1:1".parse().unwrap());
        l.opened();
        l.received(10);
        l.sent(5);
        let t = stats.transfer("put", "a.bin", None, Some(100), 40);
        t.advance(20);
        let snap = stats.snapshot();
        assert_eq!(snap.listeners[0].open, 1);
        assert_eq!((snap.listeners[0].bytes_in, snap.listeners[0].bytes_out), (10, 5));
        assert_eq!(snap.transfers.len(), 1);
        assert_eq!(snap.transfers[0].done, 60);
        drop(t);
        l.closed();
        let snap = stats.snapshot();
        assert!(snap.transfers.is_empty());
        assert_eq!((snap.listeners[0].open, snap.listeners[0].total), (0, 1));
    }
}
