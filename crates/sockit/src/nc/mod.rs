//! The network debugging assistant's driver (`sockit nc`): a TCP client,
//! TCP listener (one client, or many with `keep_listening`), UDP peer, and
//! port checks.
//!
//! Input arrives on a channel (the binary reads stdin on its own thread);
//! everything that happens leaves as an [`NcEvent`] on another channel. This
//! module never prints and never decides how bytes look: encodings, hex and
//! message splitting are the binary's display, built on `sockit_proto::assist`.
//!
//! - [`answer`]: auto-replies by rules, per connection.
//! - [`desk`]: the assistant page's sessions, kept in the server.
//! - [`stream`]: one TCP connection: reading, writing, half-close, deadlines.
//! - [`tcp`]: connecting and listening.
//! - [`udp`]: the UDP peer, connected or listening for many peers.
//! - [`scan`]: `-z` port checks.
//! - [`script`]: `--script` scenarios over one connection.
//! - [`resolve`]: names to addresses through the system resolver.

pub mod answer;
pub mod desk;
pub mod program;
pub mod resolve;
pub mod scan;
pub mod script;
mod stream;
pub mod tcp;
pub mod udp;
pub mod unix;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use sockit_proto::assist::append::Append;
use sockit_proto::assist::compose::{ComposeError, Composer};
use sockit_proto::assist::template::{Context, Template};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long a listener keeps at most this many clients (`-k`): enough for a
/// classroom, bounded so a flood of connects cannot exhaust descriptors.
pub const DEFAULT_MAX_CLIENTS: usize = 256;

/// Sends queued per client in listen mode; a client that lets more pile up
/// is disconnected rather than stalling the others.
pub const CLIENT_QUEUE: usize = 64;

/// UDP peers remembered in `-k` listen mode (for `--broadcast-to-all`);
/// the oldest is forgotten first.
pub const MAX_UDP_PEERS: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Family {
    #[default]
    Any,
    V4,
    V6,
}

impl Family {
    pub fn admits(self, addr: &SocketAddr) -> bool {
        match self {
            Family::Any => true,
            Family::V4 => addr.is_ipv4(),
            Family::V6 => addr.is_ipv6(),
        }
    }
}

/// Everything that shapes a session; the defaults are netcat's.
#[derive(Debug, Clone)]
pub struct NcOptions {
    pub family: Family,
    /// `-s` / `-p` in client mode: the local address to send from.
    pub source: Option<SocketAddr>,
    /// `-w`: the limit on connecting, and on a session with no traffic.
    pub timeout: Option<Duration>,
    /// `-q`: quit this long after input ends, whether or not the peer has.
    pub quit_after_eof: Option<Duration>,
    /// Half-close the write side when input ends (off with `--no-shutdown`).
    pub half_close: bool,
    /// `-k`: keep listening after the first client.
    pub keep_listening: bool,
    /// In listen mode, input goes to every client instead of the newest.
    pub broadcast_to_all: bool,
    pub max_clients: usize,
    /// Report what was sent as [`NcEvent::Sent`] (for `>` lines in logs).
    pub report_sent: bool,
    /// Report each rule that answers as [`NcEvent::Answered`].
    pub report_answers: bool,
    /// Report what arrives as [`NcEvent::Received`] (off when nothing
    /// would show it: the counters are kept either way).
    pub report_received: bool,
    /// `--ssl`: TLS on every TCP connection.
    pub tls: Option<NcTls>,
    /// `--rules`: answer received messages by rule.
    pub auto_reply: Option<answer::AutoReplies>,
}

/// TLS for a session (`--ssl`, as ncat).
#[derive(Debug, Clone)]
pub enum NcTls {
    /// Connecting: how the server is trusted, and the name it was dialed by.
    Client { trust: crate::tls::Trust, host: String },
    /// Listening: the certificate shown to clients.
    Server(crate::tls::Acceptor),
}

impl Default for NcOptions {
    fn default() -> Self {
        Self {
            family: Family::Any,
            source: None,
            timeout: None,
            quit_after_eof: None,
            half_close: true,
            keep_listening: false,
            broadcast_to_all: false,
            max_clients: DEFAULT_MAX_CLIENTS,
            report_sent: false,
            report_answers: false,
            report_received: true,
            tls: None,
            auto_reply: None,
        }
    }
}

/// One send of a template (`--data`, a quick send, the page's send box):
/// rendered with the send's number as `{{seq}}`, the local clock and
/// fresh random bytes, then encoded and suffixed as `composer` says.
pub fn render_send(
    composer: &Composer,
    template: &Template,
    hex: bool,
    append: &[Append],
    seq: u64,
) -> Result<Bytes, ComposeError> {
    let mut ctx = Context {
        seq,
        now: template.uses_clock().then(chrono::Local::now),
        random: &mut |buf: &mut [u8]| rand::fill(buf),
        received: None,
        captures: &[],
        named: &[],
    };
    composer.render(template, hex, append, &mut ctx).map(Bytes::from)
}

/// A peer's number within one run: 1 for the first client, and so on.
pub type PeerId = u64;

/// An IPv4 peer of a dual-stack socket as people write it (`127.0.0.1`,
/// not `::ffff:127.0.0.1`).
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Whether a bind failed because the host has no IPv6 at all.
pub(crate) fn no_ipv6(err: &crate::Error) -> bool {
    matches!(err, crate::Error::Bind { source, .. }
        if source.raw_os_error() == Some(rustix::io::Errno::AFNOSUPPORT.raw_os_error())
            || source.kind() == std::io::ErrorKind::AddrNotAvailable)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NcEvent {
    Listening(SocketAddr),
    Connected {
        id: PeerId,
        peer: SocketAddr,
        local: SocketAddr,
    },
    Received {
        id: PeerId,
        peer: SocketAddr,
        data: Bytes,
    },
    Sent {
        id: PeerId,
        peer: SocketAddr,
        data: Bytes,
    },
    /// A rule matched a message from this peer (its reply, if any, is
    /// reported as `Sent` when it goes out).
    Answered {
        id: PeerId,
        peer: SocketAddr,
        rule: String,
    },
    /// Something worth showing that is not data (a rules problem).
    Note {
        id: PeerId,
        peer: SocketAddr,
        text: String,
    },
    /// Input has ended and the write side was shut down (or left open).
    InputDone,
    Closed {
        id: PeerId,
        peer: SocketAddr,
        reason: CloseReason,
    },
    /// A client was turned away because `max_clients` are connected.
    Refused {
        peer: SocketAddr,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed its side.
    PeerClosed,
    /// `-q` expired after input ended.
    QuitAfterEof,
    /// `-w` expired with no traffic either way.
    Idle,
    /// It fell more than [`CLIENT_QUEUE`] sends behind.
    TooSlow,
    /// ICMP said nothing listens there (UDP), or the connection was reset.
    Error(String),
    /// The named rule closed it.
    ByRule(String),
    /// Disconnected by the session's owner ([`Control::Disconnect`]).
    Disconnected,
}

/// Live counters for `--stats`, updated as bytes move.
#[derive(Debug, Default)]
pub struct Stats {
    pub rx_bytes: AtomicU64,
    pub rx_messages: AtomicU64,
    pub tx_bytes: AtomicU64,
    pub tx_messages: AtomicU64,
}

impl Stats {
    fn received(&self, len: usize) {
        self.rx_bytes.fetch_add(len as u64, Ordering::Relaxed);
        self.rx_messages.fetch_add(1, Ordering::Relaxed);
    }

    fn sent(&self, len: usize) {
        self.tx_bytes.fetch_add(len as u64, Ordering::Relaxed);
        self.tx_messages.fetch_add(1, Ordering::Relaxed);
    }

    /// (rx bytes, rx messages, tx bytes, tx messages)
    pub fn snapshot(&self) -> (u64, u64, u64, u64) {
        (
            self.rx_bytes.load(Ordering::Relaxed),
            self.rx_messages.load(Ordering::Relaxed),
            self.tx_bytes.load(Ordering::Relaxed),
            self.tx_messages.load(Ordering::Relaxed),
        )
    }
}

/// The channels a session runs between.
#[derive(Debug)]
pub struct Session {
    pub input: mpsc::Receiver<Bytes>,
    pub events: mpsc::Sender<NcEvent>,
    pub stats: Arc<Stats>,
    /// Orders for one peer of a listener (the assistant page's client
    /// list); `None` on the command line.
    pub control: Option<mpsc::Receiver<Control>>,
}

/// An order about one peer of a listening session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Send to this peer only.
    SendTo(PeerId, Bytes),
    /// Close this peer's connection (TCP) or forget it (UDP).
    Disconnect(PeerId),
}

impl Session {
    async fn emit(&self, event: NcEvent) {
        // The display went away: nothing left to show, the run is ending.
        let _ = self.events.send(event).await;
    }
}

/// `-w` as an idle deadline: it expires only when no byte moved for the
/// whole period, whichever direction. `activity` is any counter that
/// changes whenever a byte moves. One timer serves the whole session and
/// is re-armed only when it fires early: traffic costs a counter bump, not
/// a timer update per read.
#[derive(Debug)]
struct IdleClock {
    limit: Option<Duration>,
    seen: u64,
    timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl IdleClock {
    fn new(limit: Option<Duration>, activity: &AtomicU64) -> Self {
        Self {
            limit,
            seen: activity.load(Ordering::Relaxed),
            timer: limit.map(|l| Box::pin(tokio::time::sleep(l))),
        }
    }

    /// Sleeps until the deadline; true if nothing moved for the whole
    /// period, false if traffic moved the deadline on.
    async fn expired(&mut self, activity: &AtomicU64) -> bool {
        let (Some(limit), Some(timer)) = (self.limit, self.timer.as_mut()) else {
            return std::future::pending().await;
        };
        timer.as_mut().await;
        let now = activity.load(Ordering::Relaxed);
        if now == self.seen {
            return true;
        }
        self.seen = now;
        timer.as_mut().reset(Instant::now() + limit);
        false
    }
}

/// The `-q` deadline once input has ended; never while input is open.
async fn quit_deadline(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
