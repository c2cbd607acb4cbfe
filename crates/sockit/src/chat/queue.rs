//! A member's outgoing queue, bounded in bytes: the room pushes chunks of
//! lines (shared between members), the member's writer takes them. Bytes,
//! not chunks, are what a slow member costs, and chunks vary from one line
//! to a batch of many.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use tokio::sync::mpsc;

/// The room's end.
#[derive(Debug)]
pub struct QueueTx {
    tx: mpsc::UnboundedSender<Bytes>,
    queued: Arc<AtomicUsize>,
    limit: usize,
}

/// The writer's end.
#[derive(Debug)]
pub struct QueueRx {
    rx: mpsc::UnboundedReceiver<Bytes>,
    queued: Arc<AtomicUsize>,
}

/// The member has `limit` bytes waiting already: it fell behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// A queue that holds at most `limit` bytes (and always at least one chunk).
pub fn queue(limit: usize) -> (QueueTx, QueueRx) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    (
        QueueTx {
            tx,
            queued: Arc::clone(&queued),
            limit,
        },
        QueueRx { rx, queued },
    )
}

impl QueueTx {
    /// Queues `chunk` unless that would pass the limit. A writer that has
    /// gone is not an error: the member is leaving anyway.
    pub fn push(&self, chunk: Bytes) -> Result<(), Full> {
        let len = chunk.len();
        let before = self.queued.load(Ordering::Acquire);
        if before > 0 && before + len > self.limit {
            return Err(Full);
        }
        self.queued.fetch_add(len, Ordering::AcqRel);
        let _ = self.tx.send(chunk);
        Ok(())
    }
}

impl QueueRx {
    pub async fn recv(&mut self) -> Option<Bytes> {
        let chunk = self.rx.recv().await?;
        self.queued.fetch_sub(chunk.len(), Ordering::AcqRel);
        Some(chunk)
    }

    pub fn try_recv(&mut self) -> Option<Bytes> {
        let chunk = self.rx.try_recv().ok()?;
        self.queued.fetch_sub(chunk.len(), Ordering::AcqRel);
        Some(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bounded_in_bytes_and_freed_as_taken() {
        let (tx, mut rx) = queue(10);
        assert_eq!(tx.push(Bytes::from_static(b"123456")), Ok(()));
        assert_eq!(tx.push(Bytes::from_static(b"12345")), Err(Full));
        assert_eq!(rx.recv().await.as_deref(), Some(&b"123456"[..]));
        assert_eq!(tx.push(Bytes::from_static(b"12345")), Ok(()));
        assert_eq!(tx.push(Bytes::from_static(b"12345")), Ok(()));
        assert_eq!(tx.push(Bytes::from_static(b"1")), Err(Full));
        assert!(rx.try_recv().is_some() && rx.try_recv().is_some() && rx.try_recv().is_none());
        // One chunk larger than the limit still goes to an empty queue.
        assert_eq!(tx.push(Bytes::from(vec![0u8; 100])), Ok(()));
    }
}
