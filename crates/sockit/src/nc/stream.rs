//! One TCP connection of a session: input written as it arrives, what the
//! peer sends reported as it arrives, both at once (writing never waits for
//! reading, so a peer that echoes a large upload cannot deadlock us).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, WriteHalf};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{CloseReason, IdleClock, NcEvent, PeerId, Stats, quit_deadline};
use crate::stream::Stream;

/// Bytes asked of the kernel per read: large enough to pipe a file at
/// loopback speed, and only grown into as data arrives.
const READ_CHUNK: usize = 64 * 1024;

#[derive(Debug, Clone, Copy)]
pub(super) struct ConnRules {
    pub half_close: bool,
    pub idle: Option<Duration>,
    pub quit_after_eof: Option<Duration>,
    pub report_sent: bool,
}

/// Who a connection reports as and to: its number, the event channel,
/// the counters, and its rules.
#[derive(Debug, Clone, Copy)]
pub(super) struct Link<'a> {
    pub id: PeerId,
    pub events: &'a mpsc::Sender<NcEvent>,
    pub stats: &'a Stats,
    pub rules: ConnRules,
}

/// Runs one connection until the peer closes, a deadline passes or
/// `cancel` fires; reports Connected first and Closed last.
pub(super) async fn run(
    stream: Stream,
    link: Link<'_>,
    input: &mut mpsc::Receiver<Bytes>,
    cancel: &CancellationToken,
) -> CloseReason {
    let (Ok(peer), Ok(local)) = (
        stream.peer_addr().map(super::canonical),
        stream.local_addr().map(super::canonical),
    ) else {
        return CloseReason::Error("the connection closed at once".into());
    };
    let id = link.id;
    let _ = link.events.send(NcEvent::Connected { id, peer, local }).await;
    let reason = exchange(stream, peer, link, input, cancel).await;
    let _ = link
        .events
        .send(NcEvent::Closed {
            id,
            peer,
            reason: reason.clone(),
        })
        .await;
    reason
}

async fn exchange(
    stream: Stream,
    peer: SocketAddr,
    link: Link<'_>,
    input: &mut mpsc::Receiver<Bytes>,
    cancel: &CancellationToken,
) -> CloseReason {
    let Link {
        id,
        events,
        stats,
        rules,
    } = link;
    let (mut reader, writer) = tokio::io::split(stream);
    let activity = AtomicU64::new(0);
    let mut idle = IdleClock::new(rules.idle, &activity);
    let pump = pump_input(input, writer, peer, link, &activity);
    tokio::pin!(pump);
    let mut pumping = true;
    // The peer's end-of-stream ends only what it sends: our input keeps
    // going until it ends too (as ncat and nc.openbsd do), so a peer that
    // half-closes first still gets everything.
    let mut reading = true;
    // Kept so that --no-shutdown leaves the write side open until the end.
    let mut _open_writer: Option<WriteHalf<Stream>> = None;
    let mut quit_at: Option<Instant> = None;
    let mut buf = BytesMut::new();
    loop {
        if !reading && !pumping {
            return CloseReason::PeerClosed;
        }
        if buf.capacity() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        tokio::select! {
            read = reader.read_buf(&mut buf), if reading => match read {
                Ok(0) => reading = false,
                // A TLS peer that closes without close_notify (ncat and
                // openssl do) has still finished sending, as far as a
                // byte stream can tell.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => reading = false,
                Ok(n) => {
                    activity.fetch_add(1, Ordering::Relaxed);
                    stats.received(n);
                    let data = buf.split().freeze();
                    let _ = events.send(NcEvent::Received { id, peer, data }).await;
                }
                Err(e) => return CloseReason::Error(e.to_string()),
            },
            pumped = &mut pump, if pumping => {
                pumping = false;
                match pumped {
                    Ok(writer) => {
                        _open_writer = writer;
                        let _ = events.send(NcEvent::InputDone).await;
                        quit_at = rules.quit_after_eof.map(|q| Instant::now() + q);
                    }
                    // A write that fails (the peer closed for good, or reset)
                    // is input that was not delivered: an error, never a
                    // quiet success.
                    Err(e) => return CloseReason::Error(format!("sending failed: {e}")),
                }
            }
            () = quit_deadline(quit_at) => return CloseReason::QuitAfterEof,
            expired = idle.expired(&activity) => if expired {
                return CloseReason::Idle;
            },
            () = cancel.cancelled() => return CloseReason::TooSlow,
        }
    }
}

/// Writes input until it ends, then half-closes (or hands the writer back
/// to be held open).
async fn pump_input(
    input: &mut mpsc::Receiver<Bytes>,
    mut writer: WriteHalf<Stream>,
    peer: SocketAddr,
    link: Link<'_>,
    activity: &AtomicU64,
) -> std::io::Result<Option<WriteHalf<Stream>>> {
    while let Some(chunk) = input.recv().await {
        writer.write_all(&chunk).await?;
        activity.fetch_add(1, Ordering::Relaxed);
        link.stats.sent(chunk.len());
        if link.rules.report_sent {
            let _ = link
                .events
                .send(NcEvent::Sent {
                    id: link.id,
                    peer,
                    data: chunk,
                })
                .await;
        }
    }
    if link.rules.half_close {
        writer.shutdown().await?;
        Ok(None)
    } else {
        Ok(Some(writer))
    }
}
