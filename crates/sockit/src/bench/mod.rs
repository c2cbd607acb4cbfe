//! Load generators for `sockit bench`: many clients doing lock-step
//! request/response against an echo server, latency into an HDR histogram;
//! and a holder of idle connections for scale tests.
//!
//! A benchmark never fails on slowness; it reports what it measured.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{Mutex, Semaphore};

use crate::Error;
use crate::auth::{self, Auth};

pub mod chat;

/// Connects allowed in flight at once while opening the load's connections:
/// a burst beyond the listen backlog only measures SYN retries.
pub const DEFAULT_CONNECT_PARALLELISM: usize = 200;
/// How long a UDP request waits for its echo before counting as lost.
const UDP_LOSS_TIMEOUT: Duration = Duration::from_millis(500);
/// One connect (and its authentication) may take this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Opening all of a load's connections may take this long: against a
/// server that stops accepting, connects beyond the listen backlog only
/// retry SYNs, and the rest are counted as failed, not waited for.
const CONNECT_PHASE_LIMIT: Duration = Duration::from_secs(30);
/// A request still in flight when the duration ends may wait this much
/// longer for its echo; a server that never answers is not waited for.
const REPLY_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct EchoLoad {
    pub addr: SocketAddr,
    pub auth: Option<Auth>,
    pub connections: usize,
    pub duration: Duration,
    pub udp: bool,
    pub payload: usize,
    pub connect_parallelism: usize,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct EchoReport {
    pub connections: usize,
    pub udp: bool,
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    pub requests_per_sec: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    /// Time to open (and authenticate) all connections.
    pub connect_seconds: f64,
    /// Connections that could not be opened.
    pub connect_failures: u64,
    /// Connections whose first echo did not come back within the duration:
    /// the server left them waiting (an iterative server serves one).
    pub starved_connections: u64,
}

/// Runs the load and reports. Every connection sends `payload` bytes and
/// waits for all of them to come back before sending again.
pub async fn echo(load: EchoLoad) -> Result<EchoReport, Error> {
    let payload: Arc<[u8]> = (0..load.payload)
        .map(|i| b'a' + (i % 26) as u8)
        .collect::<Vec<_>>()
        .into();
    let started_connect = Instant::now();
    let (conns, connect_failures) = open_all(
        load.addr,
        load.auth.as_ref(),
        load.udp,
        load.connections,
        load.connect_parallelism,
    )
    .await;
    let connect_seconds = started_connect.elapsed().as_secs_f64();

    let merged = Arc::new(Mutex::new(new_histogram()));
    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let starved = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let deadline = Instant::now() + load.duration;
    let give_up = tokio::time::Instant::now() + load.duration + REPLY_GRACE;
    let started = Instant::now();
    let mut workers = Vec::with_capacity(conns.len());
    for conn in conns {
        let payload = payload.clone();
        let merged = merged.clone();
        let errors = errors.clone();
        let starved = starved.clone();
        workers.push(tokio::spawn(async move {
            let mut hist = new_histogram();
            let mut conn = conn;
            let mut back = vec![0u8; payload.len().max(1)];
            let mut served_in_time = false;
            while Instant::now() < deadline {
                let t0 = Instant::now();
                let Ok(done) = tokio::time::timeout_at(give_up, conn.round_trip(&payload, &mut back)).await else {
                    break; // no echo even after the grace: left waiting
                };
                if done.is_err() {
                    errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if !conn.is_udp() {
                        break; // a broken TCP connection stays broken
                    }
                    continue;
                }
                let _ = hist.record(u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX));
                served_in_time |= Instant::now() <= deadline;
            }
            if !served_in_time {
                starved.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            let _ = merged.lock().await.add(&hist);
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let hist = merged.lock().await.clone();
    let requests = hist.len();
    Ok(EchoReport {
        connections: load.connections,
        udp: load.udp,
        requests,
        errors: errors.load(std::sync::atomic::Ordering::Relaxed),
        seconds,
        requests_per_sec: requests as f64 / seconds.max(f64::EPSILON),
        p50_us: hist.value_at_quantile(0.50),
        p99_us: hist.value_at_quantile(0.99),
        p999_us: hist.value_at_quantile(0.999),
        max_us: hist.max(),
        connect_seconds,
        connect_failures,
        starved_connections: starved.load(std::sync::atomic::Ordering::Relaxed),
    })
}

/// Opens `connections` TCP connections (authenticated if asked) and holds
/// them until `hold` passes; returns how many opened. For idle-scale runs.
pub async fn hold_idle(
    addr: SocketAddr,
    auth: Option<Auth>,
    connections: usize,
    parallelism: usize,
    ready: impl FnOnce(usize),
    hold: impl std::future::Future<Output = ()>,
) -> usize {
    let (held, _) = open_all(addr, auth.as_ref(), false, connections, parallelism).await;
    ready(held.len());
    hold.await;
    held.len()
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs to 60 s at 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

enum Conn {
    Tcp(TcpStream),
    Udp(UdpSocket),
}

impl Conn {
    fn is_udp(&self) -> bool {
        matches!(self, Self::Udp(_))
    }

    async fn round_trip(&mut self, payload: &[u8], back: &mut [u8]) -> std::io::Result<()> {
        match self {
            Self::Tcp(s) => {
                s.write_all(payload).await?;
                let want = back.get_mut(..payload.len()).unwrap_or_default();
                s.read_exact(want).await?;
                Ok(())
            }
            Self::Udp(s) => {
                s.send(payload).await?;
                match tokio::time::timeout(UDP_LOSS_TIMEOUT, s.recv(back)).await {
                    Ok(r) => r.map(drop),
                    Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
                }
            }
        }
    }
}

/// Opens `connections` connections, `parallelism` in flight at once, each
/// within `CONNECT_TIMEOUT` and all within `CONNECT_PHASE_LIMIT`; returns
/// those that opened and how many did not.
async fn open_all(
    addr: SocketAddr,
    auth: Option<&Auth>,
    udp: bool,
    connections: usize,
    parallelism: usize,
) -> (Vec<Conn>, u64) {
    let phase_ends = tokio::time::Instant::now() + CONNECT_PHASE_LIMIT;
    let gate = Arc::new(Semaphore::new(parallelism.max(1)));
    let mut opening = Vec::with_capacity(connections);
    for _ in 0..connections {
        let gate = gate.clone();
        let auth = auth.cloned();
        opening.push(tokio::spawn(async move {
            let _permit = tokio::time::timeout_at(phase_ends, gate.acquire_owned())
                .await
                .ok()?
                .ok()?;
            let until = phase_ends.min(tokio::time::Instant::now() + CONNECT_TIMEOUT);
            tokio::time::timeout_at(until, open(addr, auth.as_ref(), udp))
                .await
                .ok()?
                .ok()
        }));
    }
    let mut opened = Vec::with_capacity(connections);
    let mut failures = 0;
    for o in opening {
        match o.await.ok().flatten() {
            Some(c) => opened.push(c),
            None => failures += 1,
        }
    }
    (opened, failures)
}

async fn open(addr: SocketAddr, auth: Option<&Auth>, udp: bool) -> std::io::Result<Conn> {
    if udp {
        let local: SocketAddr = if addr.is_ipv4() {
            ([127, 0, 0, 1], 0).into()
        } else {
            (std::net::Ipv6Addr::LOCALHOST, 0).into()
        };
        let s = UdpSocket::bind(local).await?;
        s.connect(addr).await?;
        return Ok(Conn::Udp(s));
    }
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    if let Some(a) = auth {
        auth::answer(&mut s, a).await.map_err(std::io::Error::other)?;
    }
    Ok(Conn::Tcp(s))
}
