//! Auto-replies in a session (`nc --rules`, the assistant page): received
//! bytes cut into messages, each offered to the rules, and the replies
//! scheduled for their delays.
//!
//! Which rules answer is decided in `sockit_proto::assist::rules`; this
//! module holds the per-connection state (framing, counter, `once` rules)
//! and the clock. The rules may be replaced while a session runs (the
//! page edits them): every connection picks the new set up at its next
//! message.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sockit_proto::assist::messages::{FrameMode, SplitError, Splitter};
use sockit_proto::assist::rules::{Responder, RuleSet};
use tokio::sync::watch;
use tokio::time::Instant;

/// Replies waiting for their delay, per connection (or per UDP socket).
/// A peer whose messages outrun a long delay is not read until they drain.
pub const MAX_SCHEDULED: usize = 1024;

/// The rules a session answers with, and how it cuts messages.
#[derive(Debug)]
pub struct AutoReply {
    pub rules: Arc<RuleSet>,
    pub frame: FrameMode,
}

/// A session's current auto-reply settings: `None` is off.
pub type AutoReplies = watch::Receiver<Option<Arc<AutoReply>>>;

/// A reply a rule decided on, and when it is due.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The rule's name, for the log.
    pub rule: String,
    /// Framed as the session frames messages; `None` when the rule only
    /// closes or swallows.
    pub bytes: Option<Bytes>,
    pub delay: Duration,
    pub close: bool,
}

/// One connection's answering state.
#[derive(Debug)]
pub struct Answerer {
    settings: AutoReplies,
    current: Option<Current>,
}

#[derive(Debug)]
struct Current {
    frame: FrameMode,
    responder: Responder,
    splitter: Splitter,
}

impl Answerer {
    pub fn new(mut settings: AutoReplies) -> Self {
        let current = current_of(&settings.borrow_and_update());
        Self { settings, current }
    }

    fn refresh(&mut self) {
        if self.settings.has_changed().unwrap_or(false) {
            self.current = current_of(&self.settings.borrow_and_update());
        }
    }

    /// Offers what arrived on a stream to the rules. A stream that breaks
    /// the framing (a length prefix over the limit) is reported, and
    /// answering starts afresh with the next bytes.
    pub fn stream(&mut self, data: &[u8], out: &mut Vec<Planned>) -> Result<(), SplitError> {
        self.refresh();
        let Some(current) = &mut self.current else {
            return Ok(());
        };
        if current.frame == FrameMode::Raw {
            // Each read is a message: nothing to cut, nothing to keep.
            out.extend(plan(current, data, FrameMode::Raw));
            return Ok(());
        }
        current.splitter.push(data);
        loop {
            match current.splitter.next_message() {
                Ok(Some(message)) => {
                    if let Some(payload) = message.payload() {
                        let frame = current.frame;
                        out.extend(plan(current, &payload, frame));
                    }
                }
                Ok(None) => return Ok(()),
                Err(e) => {
                    current.splitter = Splitter::new(current.frame);
                    return Err(e);
                }
            }
        }
    }

    /// Offers one datagram (a whole message, whatever the framing).
    pub fn datagram(&mut self, data: &[u8]) -> Option<Planned> {
        self.refresh();
        let current = self.current.as_mut()?;
        // A datagram is its own frame: a reply goes as the rule wrote it.
        plan(current, data, FrameMode::Raw)
    }
}

fn current_of(settings: &Option<Arc<AutoReply>>) -> Option<Current> {
    settings.as_ref().map(|s| Current {
        frame: s.frame,
        responder: Responder::new(Arc::clone(&s.rules)),
        splitter: Splitter::new(s.frame),
    })
}

fn plan(current: &mut Current, message: &[u8], frame: FrameMode) -> Option<Planned> {
    let action = current
        .responder
        .answer(message, chrono::Local::now, &mut |buf| rand::fill(buf))?;
    let rule = current
        .responder
        .rules()
        .rules()
        .get(action.rule)
        .map(|r| r.name.clone())
        .unwrap_or_default();
    Some(Planned {
        rule,
        bytes: action.reply.map(|r| Bytes::from(frame.wrap_reply(r))),
        delay: action.delay,
        close: action.close,
    })
}

/// Replies in the order they fall due (equal deadlines keep their order).
#[derive(Debug)]
pub struct Schedule<T> {
    queue: VecDeque<(Instant, T)>,
}

impl<T> Default for Schedule<T> {
    fn default() -> Self {
        Self { queue: VecDeque::new() }
    }
}

impl<T> Schedule<T> {
    pub fn push(&mut self, delay: Duration, item: T) {
        let due = Instant::now() + delay;
        let at = self.queue.partition_point(|(d, _)| *d <= due);
        self.queue.insert(at, (due, item));
    }

    pub fn next_due(&self) -> Option<Instant> {
        self.queue.front().map(|(d, _)| *d)
    }

    pub fn pop(&mut self) -> Option<T> {
        self.queue.pop_front().map(|(_, item)| item)
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.queue.len() >= MAX_SCHEDULED
    }
}

/// Waits until `due`; at once when it has passed (no trip through the
/// timer, which would cost a tick on every immediate reply).
pub async fn until(due: Option<Instant>) {
    match due {
        Some(due) if due > Instant::now() => tokio::time::sleep_until(due).await,
        Some(_) => {}
        None => std::future::pending().await,
    }
}
