//! `nc --script`: a scenario's steps run over one connection, each with a
//! deadline, and a report of what held and what arrived instead.
//!
//! What the steps mean is `sockit_proto::assist::scenario`; this module
//! owns the socket and the clock. Every read is capped (at most
//! [`MAX_PENDING`] bytes wait to be matched) and every step has a
//! deadline, so a silent, chatty or stalled peer ends the run with a
//! failure rather than a hang.

use std::time::Duration;

use bytes::BytesMut;
use serde::Serialize;
use sockit_proto::assist::pattern::Found;
use sockit_proto::assist::scenario::{Action, Expectation, MAX_PENDING, Scenario, show_received};
use sockit_proto::assist::template::Context;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::time::Instant;

/// How long a send may wait for a peer that does not read.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Received bytes quoted in a failure.
const SHOWN: usize = 200;

/// One step's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// Counting from 1, as the file does.
    pub step: usize,
    pub name: String,
    pub ok: bool,
    /// Time the step took.
    pub millis: u64,
    /// For an expect: what matched. For a failure: what went wrong and
    /// what arrived instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Runs `scenario` over `conn`, reporting each step as it ends. Stops at
/// the first step that fails; returns whether every step held.
pub async fn run<S>(conn: S, scenario: &Scenario, mut on_step: impl FnMut(&StepReport)) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut runner = Runner {
        conn,
        pending: BytesMut::new(),
        peer_closed: false,
        sends: 0,
        captures: Vec::new(),
        names: Vec::new(),
    };
    for (i, step) in scenario.steps.iter().enumerate() {
        let started = Instant::now();
        let outcome = runner.step(&step.action).await;
        let report = StepReport {
            step: i + 1,
            name: step.name.clone(),
            ok: outcome.is_ok(),
            millis: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            detail: match outcome {
                Ok(detail) => detail,
                Err(why) => Some(why),
            },
        };
        on_step(&report);
        if !report.ok {
            return false;
        }
    }
    true
}

struct Runner<S> {
    conn: S,
    /// Received and not yet consumed by an expectation.
    pending: BytesMut,
    peer_closed: bool,
    sends: u64,
    /// The last expectation's groups, for `{{1}}` in later sends.
    captures: Vec<Option<Vec<u8>>>,
    names: Vec<(String, Option<Vec<u8>>)>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Runner<S> {
    /// `Ok(detail)` when the step held, `Err(why)` when not.
    async fn step(&mut self, action: &Action) -> Result<Option<String>, String> {
        match action {
            Action::Send { template, frame } => {
                self.sends += 1;
                let captures: Vec<Option<&[u8]>> = self.captures.iter().map(Option::as_deref).collect();
                let named: Vec<(&str, Option<&[u8]>)> =
                    self.names.iter().map(|(n, v)| (n.as_str(), v.as_deref())).collect();
                let mut ctx = Context {
                    seq: self.sends,
                    now: template.uses_clock().then(chrono::Local::now),
                    random: &mut |buf: &mut [u8]| rand::fill(buf),
                    received: None,
                    captures: &captures,
                    named: &named,
                };
                let data = frame.wrap_reply(template.render(&mut ctx));
                let sent = tokio::time::timeout(SEND_TIMEOUT, self.conn.write_all(&data)).await;
                match sent {
                    Ok(Ok(())) => Ok(Some(format!("{} bytes", data.len()))),
                    Ok(Err(e)) => Err(format!("sending failed: {e}")),
                    Err(_) => Err(format!(
                        "the peer read nothing for {} s while we sent",
                        SEND_TIMEOUT.as_secs()
                    )),
                }
            }
            Action::Expect { what, timeout } => self.expect(what, *timeout).await,
            Action::ExpectClosed { timeout } => self.expect_closed(*timeout).await,
            Action::Delay(d) => {
                tokio::time::sleep(*d).await;
                Ok(None)
            }
            Action::Close => match tokio::time::timeout(SEND_TIMEOUT, self.conn.shutdown()).await {
                Ok(Ok(())) => Ok(None),
                Ok(Err(e)) => Err(format!("closing failed: {e}")),
                Err(_) => Err("closing took too long".into()),
            },
        }
    }

    async fn expect(&mut self, what: &Expectation, timeout: Duration) -> Result<Option<String>, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = what.find(&self.pending) {
                let detail = show_received(self.pending.get(found.span()).unwrap_or_default(), SHOWN);
                self.keep_captures(&found);
                let _ = self.pending.split_to(found.span().end);
                return Ok(Some(format!("matched {detail}")));
            }
            if self.peer_closed {
                return Err(format!(
                    "expected {} but the peer closed; received instead: {}",
                    what.describe(),
                    show_received(&self.pending, SHOWN)
                ));
            }
            if self.pending.len() >= MAX_PENDING {
                return Err(format!(
                    "expected {} but {MAX_PENDING} bytes arrived without a match; received instead: {}",
                    what.describe(),
                    show_received(&self.pending, SHOWN)
                ));
            }
            if !self.read_until(deadline).await? {
                return Err(format!(
                    "expected {} within {} s; received instead: {}",
                    what.describe(),
                    timeout.as_secs_f64(),
                    show_received(&self.pending, SHOWN)
                ));
            }
        }
    }

    async fn expect_closed(&mut self, timeout: Duration) -> Result<Option<String>, String> {
        let deadline = Instant::now() + timeout;
        while !self.peer_closed {
            if self.pending.len() >= MAX_PENDING {
                self.pending.clear();
            }
            if !self.read_until(deadline).await? {
                return Err(format!("the peer did not close within {} s", timeout.as_secs_f64()));
            }
        }
        Ok(None)
    }

    /// One read before `deadline`: false when the deadline passed first.
    async fn read_until(&mut self, deadline: Instant) -> Result<bool, String> {
        let room = MAX_PENDING.saturating_sub(self.pending.len()).clamp(1, 64 * 1024);
        let mut buf = vec![0u8; room];
        match tokio::time::timeout_at(deadline, self.conn.read(&mut buf)).await {
            Err(_) => Ok(false),
            Ok(Ok(0)) => {
                self.peer_closed = true;
                Ok(true)
            }
            Ok(Ok(n)) => {
                self.pending.extend_from_slice(buf.get(..n).unwrap_or_default());
                Ok(true)
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                self.peer_closed = true;
                Ok(true)
            }
            Ok(Err(e)) => Err(format!("receiving failed: {e}")),
        }
    }

    fn keep_captures(&mut self, found: &Found) {
        self.captures = found
            .slices(&self.pending)
            .into_iter()
            .map(|s| s.map(<[u8]>::to_vec))
            .collect();
        self.names = found
            .named_slices(&self.pending)
            .into_iter()
            .map(|(n, s)| (n.to_owned(), s.map(<[u8]>::to_vec)))
            .collect();
    }
}
