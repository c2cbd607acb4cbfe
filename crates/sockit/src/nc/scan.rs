//! `-z` port checks: is anything listening, for one port or a range.
//!
//! TCP: a completed connect is open, a reset (RST) is closed, silence
//! until the deadline (or an ICMP "prohibited") is filtered. UDP: a reply
//! is open, ICMP port-unreachable is closed, silence is open|filtered —
//! UDP cannot tell a quiet service from a firewall.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{NcOptions, udp};

/// Checks in flight at once: fast on a LAN, and far below the descriptor
/// limit and the listen backlogs of the hosts being checked.
pub const DEFAULT_PARALLEL: usize = 128;

/// How long a check waits when `-w` is not given.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PortState {
    Open,
    Closed,
    Filtered,
    OpenOrFiltered,
}

impl PortState {
    pub fn as_str(self) -> &'static str {
        match self {
            PortState::Open => "open",
            PortState::Closed => "closed",
            PortState::Filtered => "filtered",
            PortState::OpenOrFiltered => "open|filtered",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortReport {
    pub addr: SocketAddr,
    pub protocol: &'static str,
    pub state: PortState,
    /// How long the answer took, in milliseconds.
    pub millis: u64,
}

/// Checks every port of `target`'s address, at most `parallel` at once,
/// and returns the reports in port order.
pub async fn check(
    target: std::net::IpAddr,
    ports: &[u16],
    udp: bool,
    opts: &NcOptions,
    parallel: usize,
) -> Vec<PortReport> {
    let wait = opts.timeout.unwrap_or(DEFAULT_WAIT);
    let gate = Arc::new(Semaphore::new(parallel.max(1)));
    let mut tasks = JoinSet::new();
    for &port in ports {
        let addr = SocketAddr::new(target, port);
        let gate = Arc::clone(&gate);
        let source = opts.source;
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let started = Instant::now();
            let state = if udp {
                check_udp(addr, wait).await
            } else {
                check_tcp(addr, source, wait).await
            };
            let millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            PortReport {
                addr,
                protocol: if udp { "udp" } else { "tcp" },
                state,
                millis,
            }
        });
    }
    let mut reports = Vec::with_capacity(ports.len());
    while let Some(done) = tasks.join_next().await {
        if let Ok(report) = done {
            reports.push(report);
        }
    }
    reports.sort_by_key(|r| r.addr.port());
    reports
}

async fn check_tcp(addr: SocketAddr, source: Option<SocketAddr>, wait: Duration) -> PortState {
    let opts = NcOptions {
        timeout: Some(wait),
        source: source.map(|s| SocketAddr::new(s.ip(), 0)),
        ..NcOptions::default()
    };
    match super::tcp::open(&[addr], &opts).await {
        Ok(_) => PortState::Open,
        Err(crate::Error::Connect { source, .. }) if source.kind() == io::ErrorKind::ConnectionRefused => {
            PortState::Closed
        }
        Err(_) => PortState::Filtered,
    }
}

async fn check_udp(addr: SocketAddr, wait: Duration) -> PortState {
    let local = if addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let Ok(local) = local.parse::<SocketAddr>() else {
        return PortState::Filtered;
    };
    let Ok(socket) = udp::bind(local) else {
        return PortState::Filtered;
    };
    if socket.connect(addr).await.is_err() {
        return PortState::Filtered;
    }
    // An empty datagram: echo-like services answer it, and a closed port
    // draws ICMP port-unreachable, which the connected socket reports.
    if let Err(e) = socket.send(&[]).await {
        return if e.kind() == io::ErrorKind::ConnectionRefused {
            PortState::Closed
        } else {
            PortState::Filtered
        };
    }
    let mut buf = [0u8; 1];
    match tokio::time::timeout(wait, socket.recv(&mut buf)).await {
        Ok(Ok(_)) => PortState::Open,
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => PortState::Closed,
        Ok(Err(_)) => PortState::Filtered,
        Err(_) => PortState::OpenOrFiltered,
    }
}
