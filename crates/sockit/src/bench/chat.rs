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
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, watch};

use crate::Error;
use crate::auth::{self, Auth};

#[derive(Debug, Clone)]
pub struct ChatLoad {
    pub addr: SocketAddr,
    pub auth: Option<Auth>,
    pub members: usize,
    /// The first `senders` members send.
    pub senders: usize,
    /// Messages each sender sends.
    pub messages: usize,
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
}

pub async fn chat(load: ChatLoad) -> Result<ChatReport, Error> {
    let gate = Arc::new(Semaphore::new(load.connect_parallelism.max(1)));
    let mut opening = Vec::with_capacity(load.members);
    for _ in 0..load.members {
        let gate = Arc::clone(&gate);
        let auth = load.auth.clone();
        let addr = load.addr;
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
    for (i, stream) in streams.into_iter().enumerate() {
        let (r, w) = stream.into_split();
        let mine = senders as u64 * per_sender - if i < senders { per_sender } else { 0 };
        expected += mine;
        readers.push(tokio::spawn(read_member(r, mine, epoch, load.drain, go.clone())));
        if i < senders {
            writers.push(tokio::spawn(send_member(w, i, load.messages, epoch, go.clone())));
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
    })
}

async fn send_member(
    mut w: tokio::net::tcp::OwnedWriteHalf,
    id: usize,
    messages: usize,
    epoch: Instant,
    mut go: watch::Receiver<bool>,
) -> (u64, tokio::net::tcp::OwnedWriteHalf) {
    let _ = go.wait_for(|g| *g).await;
    let mut sent = 0;
    let mut batch = Vec::with_capacity(64 * 1024);
    for seq in 0..messages {
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

/// Counts this member's deliveries until it has them all, or until the
/// connection closes, or `drain` passes with nothing new.
async fn read_member(
    r: tokio::net::tcp::OwnedReadHalf,
    expected: u64,
    epoch: Instant,
    drain: Duration,
    mut go: watch::Receiver<bool>,
) -> (u64, Option<Histogram<u64>>, Option<Instant>) {
    // Three significant digits is a valid precision, so this is always Some.
    let mut hist = Histogram::<u64>::new(3).ok();
    let mut lines = BufReader::new(r).lines();
    let mut count = 0;
    let mut last = None;
    // Reading starts at once, so the room's join notices never pile up
    // unread while the other members connect; the drain deadline applies
    // only once sending has begun.
    while count < expected {
        let next = if *go.borrow() {
            tokio::time::timeout(drain, lines.next_line()).await
        } else {
            tokio::select! {
                line = lines.next_line() => Ok(line),
                _ = go.changed() => continue,
            }
        };
        let line = match next {
            Ok(Ok(Some(line))) => line,
            _ => break,
        };
        // A relay that forwards raw reads (ncat --broker) may glue two
        // senders' lines together: count every whole token in the line.
        let now = epoch.elapsed().as_micros() as u64;
        for token in line.split("bench:").skip(1) {
            let Some(micros) = token_micros(token) else { continue };
            if let Some(h) = hist.as_mut() {
                let _ = h.record(now.saturating_sub(micros));
            }
            count += 1;
            last = Some(Instant::now());
        }
    }
    (count, hist, last)
}

/// The send time in `SENDER:SEQ:MICROS`, if the token is whole.
fn token_micros(token: &str) -> Option<u64> {
    let mut fields = token.splitn(3, ':');
    fields.next()?.parse::<usize>().ok()?;
    fields.next()?.parse::<usize>().ok()?;
    let micros = fields.next()?;
    let digits = micros
        .find(|c: char| !c.is_ascii_digit())
        .map_or(micros, |end| micros.get(..end).unwrap_or(""));
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::token_micros;

    #[test]
    fn tokens_glued_or_cut() {
        assert_eq!(token_micros("3:17:123456"), Some(123456));
        assert_eq!(token_micros("3:17:12bench"), Some(12));
        assert_eq!(token_micros("3:17"), None);
        assert_eq!(token_micros("x:17:5"), None);
    }
}
