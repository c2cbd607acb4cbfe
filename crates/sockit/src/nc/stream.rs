//! One TCP connection of a session: input written as it arrives, what the
//! peer sends reported as it arrives, both at once (writing never waits for
//! reading, so a peer that echoes a large upload cannot deadlock us).

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::future::Either;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::answer::{Answerer, AutoReplies, MAX_SCHEDULED, Schedule, until};
use super::{CloseReason, IdleClock, NcEvent, PeerId, Stats, quit_deadline};
use crate::stream::{Stream, WriteSide};

/// Bytes asked of the kernel per read: large enough to pipe a file at
/// loopback speed, and only grown into as data arrives.
const READ_CHUNK: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub(super) struct ConnRules {
    pub half_close: bool,
    pub idle: Option<Duration>,
    pub quit_after_eof: Option<Duration>,
    pub report_sent: bool,
    pub report_answers: bool,
    pub report_received: bool,
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
pub(super) async fn run(stream: Stream, link: Link<'_>, input: &mut mpsc::Receiver<Bytes>, stop: &Stop) -> CloseReason {
    let (Ok(peer), Ok(local)) = (
        stream.peer_addr().map(super::canonical),
        stream.local_addr().map(super::canonical),
    ) else {
        return CloseReason::Error("the connection closed at once".into());
    };
    let id = link.id;
    let _ = link.events.send(NcEvent::Connected { id, peer, local }).await;
    let reason = exchange(stream, peer, link, input, stop).await;
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
    stop: &Stop,
) -> CloseReason {
    let Link {
        id,
        events,
        stats,
        rules,
    } = link;
    let (mut reader, writer) = stream.split();
    let activity = AtomicU64::new(0);
    let mut idle = IdleClock::new(rules.idle, &activity);
    // One cancellation waiter for the connection's life, not one per read.
    let stopped = stop.token.cancelled();
    tokio::pin!(stopped);
    // Auto-replies reach the writer through their own queue, beside input.
    let mut answerer = rules.auto_reply.clone().map(Answerer::new);
    let replies = Replies::default();
    let mut schedule: Schedule<Outgoing> = Schedule::default();
    let mut planned = Vec::new();
    let mut closing_rule: Option<String> = None;
    let pump = pump(
        Some(input),
        answerer.is_some().then_some(&replies),
        writer,
        peer,
        link,
        &activity,
    );
    tokio::pin!(pump);
    let mut pumping = true;
    // The peer's end-of-stream ends only what it sends: our input keeps
    // going until it ends too (as ncat and nc.openbsd do), so a peer that
    // half-closes first still gets everything.
    let mut reading = true;
    // Kept so that --no-shutdown leaves the write side open until the end.
    let mut _open_writer: Option<WriteSide> = None;
    let mut quit_at: Option<Instant> = None;
    let mut input_done = false;
    let mut buf = BytesMut::new();
    loop {
        if !reading && schedule.is_empty() {
            // Nothing more can be answered: let the writer finish.
            replies.open.store(false, Ordering::Relaxed);
        }
        if !reading && !pumping {
            return CloseReason::PeerClosed;
        }
        if buf.capacity() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        let next_due = schedule.next_due();
        // In a fixed order (no random pick per turn): the writer first, so
        // replies drain before more is read; then due replies; then the
        // peer; then the deadlines.
        tokio::select! {
            biased;
            pumped = &mut pump, if pumping => match pumped {
                Ok(Pumped::InputEnded(writer)) => {
                    input_done = true;
                    let _ = events.send(NcEvent::InputDone).await;
                    quit_at = rules.quit_after_eof.map(|q| Instant::now() + q);
                    // Input is done but rules still answer: the writer
                    // carries on with their replies alone.
                    pump.set(self::pump(None, Some(&replies), writer, peer, link, &activity));
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
            () = until(next_due), if next_due.is_some() => {
                if let Some(item) = schedule.pop() {
                    replies.push(item);
                }
            },
            read = reader.read_buf(&mut buf), if reading && replies.has_room(&schedule) && closing_rule.is_none() => match read {
                Ok(0) => reading = false,
                // A TLS peer that closes without close_notify (ncat and
                // openssl do) has still finished sending, as far as a
                // byte stream can tell.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => reading = false,
                Ok(n) => {
                    activity.fetch_add(1, Ordering::Relaxed);
                    stats.received(n);
                    if let Some(answerer) = &mut answerer {
                        if let Err(e) = answerer.stream(&buf, &mut planned) {
                            let text = format!("rules: {e}");
                            let _ = events.send(NcEvent::Note { id, peer, text }).await;
                        }
                    }
                    if rules.report_received {
                        let data = buf.split().freeze();
                        let _ = events.send(NcEvent::Received { id, peer, data }).await;
                    } else {
                        // Nobody shows it: the buffer is reused as it is.
                        buf.clear();
                    }
                    for plan in planned.drain(..) {
                        if rules.report_answers {
                            let _ = events.send(NcEvent::Answered { id, peer, rule: plan.rule.clone() }).await;
                        }
                        // An immediate reply with nothing scheduled before it
                        // goes straight to the writer, without the clock.
                        let mut send = |item| {
                            if plan.delay.is_zero() && schedule.is_empty() {
                                replies.push(item);
                            } else {
                                schedule.push(plan.delay, item);
                            }
                        };
                        if let Some(bytes) = plan.bytes {
                            send(Outgoing::Data(bytes));
                        }
                        if plan.close {
                            send(Outgoing::Close);
                            closing_rule = Some(plan.rule);
                            // Nothing the peer sends after this is answered.
                            break;
                        }
                    }
                }
                Err(e) => return CloseReason::Error(e.to_string()),
            },
            () = quit_deadline(quit_at) => return CloseReason::QuitAfterEof,
            expired = idle.expired(&activity) => if expired {
                return CloseReason::Idle;
            },
            () = &mut stopped => return stop.reason(),
        }
    }
}

/// Ends a connection from outside: it fell too far behind, or its
/// session's owner hung up on it. One token for both, so a connection
/// polls one waiter.
#[derive(Debug, Default)]
pub(super) struct Stop {
    token: CancellationToken,
    kicked: AtomicBool,
}

impl Stop {
    pub fn too_slow(&self) {
        self.token.cancel();
    }

    pub fn disconnect(&self) {
        self.kicked.store(true, Ordering::Relaxed);
        self.token.cancel();
    }

    fn reason(&self) -> CloseReason {
        if self.kicked.load(Ordering::Relaxed) {
            CloseReason::Disconnected
        } else {
            CloseReason::TooSlow
        }
    }
}

/// What the writer sends besides input.
#[derive(Debug)]
enum Outgoing {
    Data(Bytes),
    /// A rule closes the connection: shut down once what is before it is
    /// written.
    Close,
}

/// Replies due, waiting for the writer. The reading loop and the writer
/// are polled by the same task, and the loop polls the writer again after
/// every push before the task sleeps, so the queue needs no waker: a
/// channel here would wake the task for every reply, and each wake-up
/// would rouse an idle runtime thread to steal it. (The lock is never
/// contended: one task holds both ends.)
#[derive(Debug)]
struct Replies {
    queue: Mutex<VecDeque<Outgoing>>,
    /// False once nothing more can be answered.
    open: AtomicBool,
}

impl Default for Replies {
    fn default() -> Self {
        Self {
            queue: Mutex::new(VecDeque::new()),
            open: AtomicBool::new(true),
        }
    }
}

impl Replies {
    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Outgoing>> {
        self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn push(&self, item: Outgoing) {
        self.queue().push_back(item);
    }

    fn pop(&self) -> Option<Outgoing> {
        self.queue().pop_front()
    }

    fn is_open(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }

    /// Reading stops while this many replies wait (scheduled or due): a
    /// peer that sends faster than it reads is slowed, not buffered.
    fn has_room(&self, schedule: &Schedule<Outgoing>) -> bool {
        schedule.len() + self.queue().len() < MAX_SCHEDULED
    }

    /// Ready when a reply waits or no more will come; never registers a
    /// waker (see the type's comment).
    fn ready(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |_| {
            if !self.queue().is_empty() || !self.is_open() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }
}

/// How the writer stopped.
enum Pumped {
    /// Input ended while rules may still answer: the writer, to carry on
    /// with their replies.
    InputEnded(WriteSide),
    /// Everything is written; the writer is handed back when it is to be
    /// held open (`--no-shutdown`).
    Finished(Option<WriteSide>),
    ClosedByRule,
}

/// Writes input and replies as they come. With `input`, returns when it
/// ends (handing the writer back if replies may still come); without,
/// when the replies end. Then half-closes (or hands the writer back to be
/// held open).
async fn pump<'a>(
    mut input: Option<&'a mut mpsc::Receiver<Bytes>>,
    replies: Option<&'a Replies>,
    mut writer: WriteSide,
    peer: SocketAddr,
    link: Link<'a>,
    activity: &'a AtomicU64,
) -> std::io::Result<Pumped> {
    let mut replies_open = replies.is_some();
    loop {
        let next = match replies.and_then(Replies::pop) {
            Some(reply) => reply,
            None if replies_open && replies.is_some_and(|r| !r.is_open()) => {
                replies_open = false;
                if input.is_none() {
                    break;
                }
                continue;
            }
            None => tokio::select! {
                biased;
                chunk = recv(input.as_deref_mut()), if input.is_some() => match chunk {
                    Some(data) => Outgoing::Data(data),
                    None if replies_open => return Ok(Pumped::InputEnded(writer)),
                    None => break,
                },
                () = replies.map_or_else(|| Either::Right(std::future::pending()), |r| Either::Left(r.ready())), if replies_open => continue,
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
