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

use super::answer::{Answerer, AutoReplies, Schedule, until};
use super::{CloseReason, IdleClock, NcEvent, PeerId, Stats, quit_deadline};
use crate::stream::Stream;

/// Bytes asked of the kernel per read: large enough to pipe a file at
/// loopback speed, and only grown into as data arrives.
const READ_CHUNK: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub(super) struct ConnRules {
    pub half_close: bool,
    pub idle: Option<Duration>,
    pub quit_after_eof: Option<Duration>,
    pub report_sent: bool,
    pub auto_reply: Option<AutoReplies>,
}

/// Who a connection reports as and to: its number, the event channel,
/// the counters, and its rules.
#[derive(Debug, Clone, Copy)]
pub(super) struct Link<'a> {
    pub id: PeerId,
    pub events: &'a mpsc::Sender<NcEvent>,
    pub stats: &'a Stats,
    pub rules: &'a ConnRules,
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
    // Auto-replies reach the writer through their own queue, beside input.
    let mut answerer = rules.auto_reply.clone().map(Answerer::new);
    let (mut reply_tx, replies) = match answerer {
        Some(_) => {
            let (tx, rx) = mpsc::channel::<Outgoing>(REPLY_QUEUE);
            (Some(tx), Some(rx))
        }
        None => (None, None),
    };
    let mut schedule: Schedule<Outgoing> = Schedule::default();
    let mut planned = Vec::new();
    let mut closing_rule: Option<String> = None;
    let pump = pump(Some(input), replies, writer, peer, link, &activity);
    tokio::pin!(pump);
    let mut pumping = true;
    // The peer's end-of-stream ends only what it sends: our input keeps
    // going until it ends too (as ncat and nc.openbsd do), so a peer that
    // half-closes first still gets everything.
    let mut reading = true;
    // Kept so that --no-shutdown leaves the write side open until the end.
    let mut _open_writer: Option<WriteHalf<Stream>> = None;
    let mut quit_at: Option<Instant> = None;
    let mut input_done = false;
    let mut buf = BytesMut::new();
    loop {
        if !reading && schedule.is_empty() {
            // Nothing more can be answered: let the writer finish.
            reply_tx = None;
        }
        if !reading && !pumping {
            return CloseReason::PeerClosed;
        }
        if buf.capacity() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        let next_due = schedule.next_due();
        tokio::select! {
            read = reader.read_buf(&mut buf), if reading && !schedule.is_full() && closing_rule.is_none() => match read {
                Ok(0) => reading = false,
                // A TLS peer that closes without close_notify (ncat and
                // openssl do) has still finished sending, as far as a
                // byte stream can tell.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => reading = false,
                Ok(n) => {
                    activity.fetch_add(1, Ordering::Relaxed);
                    stats.received(n);
                    let data = buf.split().freeze();
                    if let Some(answerer) = &mut answerer {
                        if let Err(e) = answerer.stream(&data, &mut planned) {
                            let text = format!("rules: {e}");
                            let _ = events.send(NcEvent::Note { id, peer, text }).await;
                        }
                    }
                    let _ = events.send(NcEvent::Received { id, peer, data }).await;
                    for plan in planned.drain(..) {
                        let _ = events.send(NcEvent::Answered { id, peer, rule: plan.rule.clone() }).await;
                        if let Some(bytes) = plan.bytes {
                            schedule.push(plan.delay, Outgoing::Data(bytes));
                        }
                        if plan.close {
                            schedule.push(plan.delay, Outgoing::Close);
                            closing_rule = Some(plan.rule);
                            // Nothing the peer sends after this is answered.
                            break;
                        }
                    }
                }
                Err(e) => return CloseReason::Error(e.to_string()),
            },
            permit = reserve_when_due(reply_tx.as_ref(), next_due), if next_due.is_some() => match permit {
                Some(permit) => {
                    if let Some(item) = schedule.pop() {
                        permit.send(item);
                    }
                }
                // The writer is gone: what is scheduled cannot be sent.
                None => {
                    while schedule.pop().is_some() {}
                }
            },
            pumped = &mut pump, if pumping => match pumped {
                Ok(Pumped::InputEnded { writer, replies }) => {
                    input_done = true;
                    let _ = events.send(NcEvent::InputDone).await;
                    quit_at = rules.quit_after_eof.map(|q| Instant::now() + q);
                    // Input is done but rules still answer: the writer
                    // carries on with their replies alone.
                    pump.set(self::pump(None, Some(replies), writer, peer, link, &activity));
                }
                Ok(Pumped::Finished(writer)) => {
                    pumping = false;
                    _open_writer = writer;
                    if !input_done {
                        input_done = true;
                        let _ = events.send(NcEvent::InputDone).await;
                        quit_at = rules.quit_after_eof.map(|q| Instant::now() + q);
                    }
                }
                Ok(Pumped::ClosedByRule) => {
                    return CloseReason::ByRule(closing_rule.unwrap_or_default());
                }
                // A write that fails (the peer closed for good, or reset)
                // is input that was not delivered: an error, never a
                // quiet success.
                Err(e) => return CloseReason::Error(format!("sending failed: {e}")),
            },
            () = quit_deadline(quit_at) => return CloseReason::QuitAfterEof,
            expired = idle.expired(&activity) => if expired {
                return CloseReason::Idle;
            },
            () = cancel.cancelled() => return CloseReason::TooSlow,
        }
    }
}

/// Replies queued between the rules and the writer.
const REPLY_QUEUE: usize = 64;

/// What the writer sends besides input.
#[derive(Debug)]
enum Outgoing {
    Data(Bytes),
    /// A rule closes the connection: shut down once what is before it is
    /// written.
    Close,
}

/// How the writer stopped.
enum Pumped {
    /// Input ended while rules may still answer: the writer and the reply
    /// queue, to carry on with.
    InputEnded {
        writer: WriteHalf<Stream>,
        replies: mpsc::Receiver<Outgoing>,
    },
    /// Everything is written; the writer is handed back when it is to be
    /// held open (`--no-shutdown`).
    Finished(Option<WriteHalf<Stream>>),
    ClosedByRule,
}

/// A slot in the reply queue once the next scheduled reply is due.
async fn reserve_when_due(
    tx: Option<&mpsc::Sender<Outgoing>>,
    due: Option<Instant>,
) -> Option<mpsc::Permit<'_, Outgoing>> {
    until(due).await;
    tx?.reserve().await.ok()
}

/// Writes input and replies as they come. With `input`, returns when it
/// ends (handing the writer back if replies may still come); without,
/// when the replies end. Then half-closes (or hands the writer back to be
/// held open).
async fn pump<'a>(
    mut input: Option<&'a mut mpsc::Receiver<Bytes>>,
    mut replies: Option<mpsc::Receiver<Outgoing>>,
    mut writer: WriteHalf<Stream>,
    peer: SocketAddr,
    link: Link<'a>,
    activity: &'a AtomicU64,
) -> std::io::Result<Pumped> {
    loop {
        let next = tokio::select! {
            chunk = recv(input.as_deref_mut()), if input.is_some() => match chunk {
                Some(data) => Outgoing::Data(data),
                None => match replies {
                    Some(replies) => return Ok(Pumped::InputEnded { writer, replies }),
                    None => break,
                },
            },
            reply = recv(replies.as_mut()), if replies.is_some() => match reply {
                Some(reply) => reply,
                None if input.is_some() => {
                    replies = None;
                    continue;
                }
                None => break,
            },
        };
        match next {
            Outgoing::Data(chunk) => {
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
            Outgoing::Close => {
                writer.shutdown().await?;
                return Ok(Pumped::ClosedByRule);
            }
        }
    }
    if link.rules.half_close {
        writer.shutdown().await?;
        Ok(Pumped::Finished(None))
    } else {
        Ok(Pumped::Finished(Some(writer)))
    }
}

async fn recv<T>(rx: Option<&mut mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
