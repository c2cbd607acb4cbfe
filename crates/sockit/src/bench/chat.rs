//! Room fan-out load for `sockit bench chat`: many members connect, a few
//! of them send, and every member counts what reaches it and how late.
//!
//! Works against any line-forwarding server (sockit's room, `ncat
//! --broker`): a message is found by its `bench:SENDER:SEQ:MICROS` token
//! wherever it sits in a line, so nick prefixes and notices do not matter.
//! Senders send as fast as the server takes their bytes; the report says
//! how many deliveries arrived per second, how late, and how many are
//! missing (lost, or dropped with a slow member).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use memchr::memmem;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc, watch};

use crate::Error;
use crate::auth::{self, Auth};

/// The line that proves a member is in the room: the first member sends it
/// once everyone has connected, and sending starts when every other member
/// has seen it. A connected socket is not yet a member (the server has
/// still to accept and register it), and lines sent before a member joins
/// rightly never reach it.
const SYNC: &str = "bench-sync";

/// What starts a counted line's token.
const TOKEN: &[u8] = b"bench:";

/// Per-member read buffer: many lines per read when the relay batches.
const READ_BUF: usize = 16 * 1024;

/// How often the sync line is repeated while members are still joining.
const SYNC_EVERY: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
pub struct ChatLoad {
    /// The room's servers: member i joins through the i-th (in turn).
    pub addrs: Vec<SocketAddr>,
    pub auth: Option<Auth>,
    pub members: usize,
    /// The first `senders` members send.
    pub senders: usize,
    /// Messages each sender sends.
    pub messages: usize,
    /// Lines a second from all senders together, spread evenly; `None`
    /// sends as fast as the server takes them.
    pub rate: Option<f64>,
    /// Longest wait for the deliveries once sending is done.
    pub drain: Duration,
    pub connect_parallelism: usize,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ChatReport {
    pub members: usize,
    pub senders: usize,
    pub sent: u64,
    /// Deliveries that should happen: each message to every member but its sender.
    pub expected: u64,
    pub delivered: u64,
    pub missing: u64,
    /// From the first send to the last delivery.
    pub seconds: f64,
    pub deliveries_per_sec: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub connect_failures: u64,
    /// Members that never saw the sync line (not in the room when sending began).
    pub unsynced: u64,
}

pub async fn chat(load: ChatLoad) -> Result<ChatReport, Error> {
    let gate = Arc::new(Semaphore::new(load.connect_parallelism.max(1)));
    let mut opening = Vec::with_capacity(load.members);
    if load.addrs.is_empty() {
        return Err(Error::Protocol("no room to join".into()));
    }
    for addr in load.addrs.iter().copied().cycle().take(load.members) {
        let gate = Arc::clone(&gate);
        let auth = load.auth.clone();
        opening.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await;
            let mut s = TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            if let Some(a) = &auth {
                auth::answer(&mut s, a).await.map_err(std::io::Error::other)?;
            }
            Ok::<_, std::io::Error>(s)
        }));
    }
    let mut streams = Vec::with_capacity(load.members);
    let mut connect_failures = 0;
    for task in opening {
        match task.await {
            Ok(Ok(s)) => streams.push(s),
            _ => connect_failures += 1,
        }
    }
    let senders = load.senders.min(streams.len());
    let epoch = Instant::now();
    let (go_tx, go) = watch::channel(false);
    let per_sender = load.messages as u64;
    let mut readers = Vec::with_capacity(streams.len());
    let mut writers = Vec::with_capacity(senders);
    // Write halves of members that only listen: kept open (dropping one
    // would half-close that member) until the run is over.
    let mut listening = Vec::new();
    let mut expected = 0u64;
    let member_count = streams.len();
    let (ready_tx, mut ready) = mpsc::channel::<()>(member_count.max(1));
    let mut sync_from = None;
    let sender_rate = per_sender_rate(load.rate, senders);
    let spawn_sender = |w, i| tokio::spawn(send_member(w, i, load.messages, sender_rate, epoch, go.clone()));
    for (i, stream) in streams.into_iter().enumerate() {
        let (r, w) = stream.into_split();
        let mine = senders as u64 * per_sender - if i < senders { per_sender } else { 0 };
        expected += mine;
        let reader = Reader {
            expected: mine,
            epoch,
            drain: load.drain,
            needs_sync: i != 0,
            ready: ready_tx.clone(),
            go: go.clone(),
        };
        readers.push(tokio::spawn(reader.run(r)));
        if i == 0 {
            sync_from = Some(w);
            continue;
        }
        if i < senders {
            writers.push(spawn_sender(w, i));
        } else {
            listening.push(w);
        }
    }
    drop(ready_tx);
    let mut synced = 0u64;
    if let Some(mut w) = sync_from {
        // Sent again and again: a member that joins after one sync line
        // waits for the next.
        let sync_deadline = tokio::time::Instant::now() + load.drain;
        let mut resend = tokio::time::interval(SYNC_EVERY);
        while synced < member_count as u64 {
            tokio::select! {
                _ = resend.tick() => {
                    let _ = w.write_all(format!("{SYNC}\n").as_bytes()).await;
                }
                got = tokio::time::timeout_at(sync_deadline, ready.recv()) => match got {
                    Ok(Some(())) => synced += 1,
                    _ => break,
                },
            }
        }
        if senders > 0 {
            writers.insert(0, spawn_sender(w, 0));
        } else {
            listening.push(w);
        }
    }
    let started = Instant::now();
    let _ = go_tx.send(true);
    let mut sent = 0u64;
    let mut sending = Vec::new();
    for w in writers {
        if let Ok((count, half)) = w.await {
            sent += count;
            sending.push(half);
        }
    }
    let mut delivered = 0u64;
    let mut latency = Histogram::<u64>::new(3).map_err(|e| Error::Protocol(e.to_string()))?;
    let mut last = started;
    for r in readers {
        if let Ok((count, hist, at)) = r.await {
            delivered += count;
            if let Some(h) = hist {
                let _ = latency.add(&h);
            }
            if let Some(at) = at {
                last = last.max(at);
            }
        }
    }
    drop((listening, sending));
    let seconds = (last - started).as_secs_f64().max(1e-9);
    Ok(ChatReport {
        members: load.members,
        senders,
        sent,
        expected,
        delivered,
        missing: expected.saturating_sub(delivered),
        seconds,
        deliveries_per_sec: delivered as f64 / seconds,
        p50_us: latency.value_at_quantile(0.5),
        p99_us: latency.value_at_quantile(0.99),
        max_us: latency.max(),
        connect_failures,
        unsynced: (member_count as u64).saturating_sub(synced),
    })
}

fn per_sender_rate(rate: Option<f64>, senders: usize) -> Option<f64> {
    rate.map(|r| r / senders.max(1) as f64)
}

async fn send_member(
    mut w: tokio::net::tcp::OwnedWriteHalf,
    id: usize,
    messages: usize,
    rate: Option<f64>,
    epoch: Instant,
    mut go: watch::Receiver<bool>,
) -> (u64, tokio::net::tcp::OwnedWriteHalf) {
    let _ = go.wait_for(|g| *g).await;
    let started = Instant::now();
    let mut sent = 0;
    let mut batch = Vec::with_capacity(64 * 1024);
    for seq in 0..messages {
        if let Some(rate) = rate {
            // Line `seq` is due `seq / rate` seconds in; what is due goes
            // out together, so the pace holds above the timer's resolution.
            let due = started + Duration::from_secs_f64(seq as f64 / rate);
            if due > Instant::now() {
                if !batch.is_empty() {
                    if w.write_all(&batch).await.is_err() {
                        break;
                    }
                    batch.clear();
                }
                tokio::time::sleep_until(due.into()).await;
            }
        }
        let micros = epoch.elapsed().as_micros();
        batch.extend_from_slice(format!("bench:{id}:{seq}:{micros}\n").as_bytes());
        // Small batches: each line still carries its own send time.
        if batch.len() >= 512 || seq + 1 == messages {
            if w.write_all(&batch).await.is_err() {
                break;
            }
            batch.clear();
        }
        sent += 1;
    }
    let _ = w.flush().await;
    // Handed back, so the member stays in the room while the others read.
    (sent, w)
}

struct Reader {
    expected: u64,
    epoch: Instant,
    drain: Duration,
    /// Wait for the sync line before reporting ready (all but its sender).
    needs_sync: bool,
    ready: mpsc::Sender<()>,
    go: watch::Receiver<bool>,
}

impl Reader {
    /// Counts this member's deliveries until it has them all, or until the
    /// connection closes, or `drain` passes with nothing new.
    ///
    /// Reads raw bytes and finds tokens with memchr rather than building a
    /// String per line: the load generator shares the machine with the
    /// server, and every cycle it spends is one the server does not get.
    async fn run(mut self, mut r: tokio::net::tcp::OwnedReadHalf) -> (u64, Option<Histogram<u64>>, Option<Instant>) {
        // Three significant digits is a valid precision, so this is always Some.
        let mut hist = Histogram::<u64>::new(3).ok();
        let mut buf = vec![0u8; READ_BUF];
        // Bytes after the last newline, kept for the next read.
        let mut held = 0usize;
        let mut count = 0;
        let mut last = None;
        let token = memmem::Finder::new(TOKEN);
        let sync = memmem::Finder::new(SYNC);
        // Reading starts at once, so the room's join notices never pile up
        // unread while the other members connect.
        let mut synced = !self.needs_sync;
        if synced {
            let _ = self.ready.send(()).await;
        }
        while count < self.expected {
            let room = buf.get_mut(held..).unwrap_or_default();
            if room.is_empty() {
                // A line longer than the buffer holds no whole token we
                // could use; drop it.
                held = 0;
                continue;
            }
            let read = if synced && *self.go.borrow() {
                // The drain deadline applies only once sending has begun.
                tokio::time::timeout(self.drain, r.read(room)).await
            } else if synced {
                tokio::select! {
                    n = r.read(room) => Ok(n),
                    _ = self.go.changed() => continue,
                }
            } else {
                tokio::time::timeout(self.drain, r.read(room)).await
            };
            let n = match read {
                Ok(Ok(n)) if n > 0 => n,
                _ => break,
            };
            let filled = held + n;
            let data = buf.get(..filled).unwrap_or_default();
            let whole = memchr::memrchr(b'\n', data).map_or(0, |i| i + 1);
            let lines = data.get(..whole).unwrap_or_default();
            if !synced && sync.find(lines).is_some() {
                synced = true;
                let _ = self.ready.send(()).await;
            }
            if synced {
                // A relay that forwards raw reads (ncat --broker) may glue
                // two senders' lines together: every whole token counts.
                let now = self.epoch.elapsed().as_micros() as u64;
                for at in token.find_iter(lines) {
                    let Some(micros) = lines.get(at + TOKEN.len()..).and_then(token_micros) else {
                        continue;
                    };
                    if let Some(h) = hist.as_mut() {
                        let _ = h.record(now.saturating_sub(micros));
                    }
                    count += 1;
                }
                if whole > 0 {
                    last = Some(Instant::now());
                }
            }
            buf.copy_within(whole..filled, 0);
            held = filled - whole;
        }
        (count, hist, last)
    }
}

/// The send time in `SENDER:SEQ:MICROS` (what follows `bench:`), if the
/// token is whole: it ends at the first byte that is not part of it.
fn token_micros(token: &[u8]) -> Option<u64> {
    let mut fields = token.splitn(3, |&b| b == b':');
    digits(fields.next()?)?;
    digits(fields.next()?)?;
    let micros = fields.next()?;
    let end = micros.iter().position(|b| !b.is_ascii_digit()).unwrap_or(micros.len());
    digits(micros.get(..end)?)
}

fn digits(field: &[u8]) -> Option<u64> {
    if field.is_empty() || field.len() > 19 || !field.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(field.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::token_micros;

    #[test]
    fn tokens_glued_or_cut() {
        assert_eq!(token_micros(b"3:17:123456"), Some(123456));
        assert_eq!(token_micros(b"3:17:12bench"), Some(12));
        assert_eq!(token_micros(b"3:17:12\n<x> bench:1"), Some(12));
        assert_eq!(token_micros(b"3:17"), None);
        assert_eq!(token_micros(b"x:17:5"), None);
        assert_eq!(token_micros(b"3:17:"), None);
    }
}
