//! The assistant's desk: the sessions the web page opens (TCP client, TCP
//! server, UDP), each the same engine as `sockit nc`, running in the
//! server so they outlive a reload of the page.
//!
//! A session's events go into a log (the last [`LOG_ENTRIES`] entries, at
//! most [`LOG_BYTES`] of data) and out to every page watching it. This
//! module knows nothing of HTTP: the web layer turns requests into calls
//! here and log entries into WebSocket messages.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use sockit_proto::assist::append::Append;
use sockit_proto::assist::compose::Composer;
use sockit_proto::assist::messages::FrameMode;
use sockit_proto::assist::profile::Profile;
use sockit_proto::assist::rules::RuleSet;
use sockit_proto::assist::text::TextEncoding;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::answer::AutoReply;
use super::{CloseReason, Control, NcEvent, NcOptions, PeerId, Session, Stats};

/// Sessions open at once: each may hold sockets and clients; a page that
/// opens more is refused until it closes some.
pub const DEFAULT_MAX_SESSIONS: usize = 16;
/// Log entries kept per session for a page that (re)loads.
pub const LOG_ENTRIES: usize = 2000;
/// Data bytes kept in a session's log; the oldest entries go first.
pub const LOG_BYTES: usize = 8 << 20;
/// Live entries a watching page may fall behind before it is told it
/// missed some.
const LIVE_BACKLOG: usize = 1024;
/// Inputs queued towards a session's peers.
const INPUT_QUEUE: usize = 64;
/// Fastest periodic send.
pub const MIN_INTERVAL: Duration = Duration::from_millis(1);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeskError {
    #[error("{0} sessions are open: close one first")]
    Full(usize),
    #[error("no session {0}")]
    NoSession(u64),
    #[error("the session has ended")]
    Ended,
    #[error("{0}")]
    Bad(String),
    #[error("cannot open the session: {0}")]
    Open(String),
}

/// What kind of session to open, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Spec {
    TcpClient {
        target: SocketAddr,
    },
    TcpServer {
        bind: SocketAddr,
    },
    /// Bound at `bind`; with a target, sends go there, else to whoever
    /// sent last (and to one chosen peer by id).
    Udp {
        bind: SocketAddr,
        target: Option<SocketAddr>,
    },
}

/// One thing that happened, as the page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// Counts from 1 in the session, so a page can tell replayed entries
    /// from live ones.
    pub seq: u64,
    /// Unix time in milliseconds.
    pub at: i64,
    pub kind: EntryKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_id: Option<PeerId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<SocketAddr>,
    /// The bytes, for `in` and `out`.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "as_base64")]
    pub data: Option<Bytes>,
    /// Words, for everything else.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

fn as_base64<S: serde::Serializer>(data: &Option<Bytes>, s: S) -> Result<S::Ok, S::Error> {
    use base64::Engine as _;
    match data {
        Some(d) => s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(d)),
        None => s.serialize_none(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    In,
    Out,
    Listening,
    Connected,
    Closed,
    Answered,
    Note,
    Ended,
}

/// A peer of the session, as its client list shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PeerInfo {
    pub id: PeerId,
    pub addr: SocketAddr,
}

/// A session's state at a glance.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub id: u64,
    #[serde(flatten)]
    pub spec: Spec,
    /// Where it listens or sends from, once known.
    pub local: Option<SocketAddr>,
    pub peers: Vec<PeerInfo>,
    pub ended: bool,
    pub rx_bytes: u64,
    pub rx_messages: u64,
    pub tx_bytes: u64,
    pub tx_messages: u64,
    pub rules_on: bool,
    pub periodic: bool,
}

/// What to send.
#[derive(Debug, Clone, Default)]
pub struct ToSend {
    pub text: String,
    pub hex: bool,
    pub append: Vec<Append>,
    pub encoding: TextEncoding,
    /// One peer (a server's client, a UDP peer); `None`: every peer.
    pub to: Option<PeerId>,
}

/// The sessions of one server.
#[derive(Debug, Clone)]
pub struct Desk {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    max: usize,
    next: AtomicU64,
    sessions: Mutex<BTreeMap<u64, Arc<Running>>>,
    profile: Profile,
    closing: CancellationToken,
}

/// A running session.
#[derive(Debug)]
pub struct Running {
    id: u64,
    spec: Spec,
    input: mpsc::Sender<Bytes>,
    control: mpsc::Sender<Control>,
    rules: watch::Sender<Option<Arc<AutoReply>>>,
    rules_text: Mutex<String>,
    stats: Arc<Stats>,
    log: Mutex<Log>,
    live: broadcast::Sender<Arc<Entry>>,
    state: Mutex<State>,
    stop: CancellationToken,
    periodic: Mutex<Option<CancellationToken>>,
    /// `{{seq}}` of the page's sends.
    sends: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    local: Option<SocketAddr>,
    peers: BTreeMap<PeerId, SocketAddr>,
    ended: bool,
}

#[derive(Debug, Default)]
struct Log {
    entries: VecDeque<Arc<Entry>>,
    bytes: usize,
    next: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Desk {
    pub fn new(max: usize, profile: Profile) -> Self {
        Self {
            inner: Arc::new(Inner {
                max: max.max(1),
                next: AtomicU64::new(1),
                sessions: Mutex::new(BTreeMap::new()),
                profile,
                closing: CancellationToken::new(),
            }),
        }
    }

    pub fn profile(&self) -> &Profile {
        &self.inner.profile
    }

    pub fn max(&self) -> usize {
        self.inner.max
    }

    /// Ends every session (at shutdown).
    pub fn close_all(&self) {
        self.inner.closing.cancel();
    }

    pub fn list(&self) -> Vec<Summary> {
        lock(&self.inner.sessions).values().map(|s| s.summary()).collect()
    }

    pub fn get(&self, id: u64) -> Result<Arc<Running>, DeskError> {
        lock(&self.inner.sessions)
            .get(&id)
            .cloned()
            .ok_or(DeskError::NoSession(id))
    }

    /// Opens a session: binds or connects first, so a mistake is an error
    /// here rather than a session that ends at once.
    pub async fn open(&self, spec: Spec) -> Result<Summary, DeskError> {
        if lock(&self.inner.sessions).len() >= self.inner.max {
            return Err(DeskError::Full(self.inner.max));
        }
        let (rules_tx, rules_rx) = watch::channel(None);
        // A listener keeps every client and sends to all of them; input
        // never ends, and everything is shown.
        let opts = NcOptions {
            keep_listening: true,
            broadcast_to_all: true,
            half_close: false,
            report_sent: true,
            report_answers: true,
            auto_reply: Some(rules_rx),
            ..NcOptions::default()
        };
        let engine = Engine::start(&spec, &opts).await?;
        let (input_tx, input_rx) = mpsc::channel(INPUT_QUEUE);
        let (control_tx, control_rx) = mpsc::channel(INPUT_QUEUE);
        let (events_tx, events_rx) = mpsc::channel(LIVE_BACKLOG);
        let stats = Arc::new(Stats::default());
        let session = Session {
            input: input_rx,
            events: events_tx,
            stats: Arc::clone(&stats),
            control: Some(control_rx),
        };
        let id = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let running = Arc::new(Running {
            id,
            spec,
            input: input_tx,
            control: control_tx,
            rules: rules_tx,
            rules_text: Mutex::new(String::new()),
            stats,
            log: Mutex::new(Log::default()),
            live: broadcast::channel(LIVE_BACKLOG).0,
            state: Mutex::new(State::default()),
            stop: self.inner.closing.child_token(),
            periodic: Mutex::new(None),
            sends: AtomicU64::new(0),
        });
        lock(&running.state).local = engine.local();
        {
            // Checked again: other sessions may have opened while this one
            // connected. Refused here, its sockets close as it is dropped.
            let mut sessions = lock(&self.inner.sessions);
            if sessions.len() >= self.inner.max {
                return Err(DeskError::Full(self.inner.max));
            }
            sessions.insert(id, Arc::clone(&running));
        }
        tokio::spawn(record(Arc::clone(&running), events_rx));
        let stop = running.stop.clone();
        let ended = Arc::clone(&running);
        tokio::spawn(async move {
            let reason = tokio::select! {
                r = engine.run(&opts, session) => r,
                () = stop.cancelled() => Ok(CloseReason::Disconnected),
            };
            let text = match reason {
                Ok(CloseReason::Error(e)) | Err(DeskError::Open(e)) => format!("ended: {e}"),
                Ok(_) => "ended".to_owned(),
                Err(e) => format!("ended: {e}"),
            };
            ended.end(text);
        });
        Ok(running.summary())
    }

    /// Closes a session and forgets it.
    pub fn close(&self, id: u64) -> Result<(), DeskError> {
        let running = lock(&self.inner.sessions).remove(&id).ok_or(DeskError::NoSession(id))?;
        running.stop.cancel();
        if let Some(p) = lock(&running.periodic).take() {
            p.cancel();
        }
        Ok(())
    }

    /// What one send puts on the wire (a quick send by name, or text).
    pub fn compose(&self, running: &Running, out: &ToSend, quick: Option<&str>) -> Result<Bytes, DeskError> {
        let composer = Composer {
            encoding: out.encoding,
            send_hex: out.hex,
            append: out.append.clone(),
        };
        let seq = running.sends.fetch_add(1, Ordering::Relaxed) + 1;
        let (template, hex, append) = match quick {
            Some(name) => {
                let q = self
                    .inner
                    .profile
                    .find(name)
                    .ok_or_else(|| DeskError::Bad(format!("no quick send named '{name}'")))?;
                (q.template.clone(), q.hex, q.append.clone())
            }
            None => (
                composer
                    .template(&out.text)
                    .map_err(|e| DeskError::Bad(e.to_string()))?,
                out.hex,
                Vec::new(),
            ),
        };
        super::render_send(&composer, &template, hex, &append, seq).map_err(|e| DeskError::Bad(e.to_string()))
    }
}

/// How a session's sockets run: opened in [`Desk::open`], driven after.
enum Engine {
    Connect(crate::stream::Stream),
    Listen(tokio::net::TcpListener),
    Udp(tokio::net::UdpSocket, Option<SocketAddr>),
}

impl Engine {
    async fn start(spec: &Spec, opts: &NcOptions) -> Result<Self, DeskError> {
        let open = |e: crate::Error| DeskError::Open(e.to_string());
        Ok(match spec {
            Spec::TcpClient { target } => {
                let opts = NcOptions {
                    timeout: Some(CONNECT_TIMEOUT),
                    ..opts.clone()
                };
                Engine::Connect(super::tcp::connect_stream(&[*target], &opts).await.map_err(open)?)
            }
            Spec::TcpServer { bind } => Engine::Listen(super::tcp::bind(*bind, false).map_err(open)?),
            Spec::Udp { bind, target } => {
                let socket = super::udp::bind(*bind).map_err(open)?;
                if let Some(t) = target {
                    socket
                        .connect(t)
                        .await
                        .map_err(|e| DeskError::Open(format!("cannot send to {t}: {e}")))?;
                }
                Engine::Udp(socket, *target)
            }
        })
    }

    fn local(&self) -> Option<SocketAddr> {
        match self {
            Engine::Connect(stream) => stream.local_addr().ok(),
            Engine::Listen(listener) => listener.local_addr().ok(),
            Engine::Udp(socket, _) => socket.local_addr().ok(),
        }
    }

    async fn run(self, opts: &NcOptions, mut session: Session) -> Result<CloseReason, DeskError> {
        let done = match self {
            Engine::Connect(stream) => Ok(super::tcp::run_stream(stream, opts, &mut session).await),
            Engine::Listen(listener) => super::tcp::serve(listener, opts, session).await,
            Engine::Udp(socket, Some(target)) => super::udp::run_connected(socket, target, opts, session).await,
            Engine::Udp(socket, None) => super::udp::serve(socket, opts, session).await,
        };
        done.map_err(|e| DeskError::Open(e.to_string()))
    }
}

/// How long a TCP client session may take to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl Running {
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn summary(&self) -> Summary {
        let state = lock(&self.state);
        let (rx_bytes, rx_messages, tx_bytes, tx_messages) = self.stats.snapshot();
        Summary {
            id: self.id,
            spec: self.spec.clone(),
            local: state.local,
            peers: state.peers.iter().map(|(&id, &addr)| PeerInfo { id, addr }).collect(),
            ended: state.ended,
            rx_bytes,
            rx_messages,
            tx_bytes,
            tx_messages,
            rules_on: self.rules.borrow().is_some(),
            periodic: lock(&self.periodic).as_ref().is_some_and(|p| !p.is_cancelled()),
        }
    }

    /// The log so far and a receiver of what comes next; entries in both
    /// are told apart by `seq`.
    pub fn watch(&self) -> (Vec<Arc<Entry>>, broadcast::Receiver<Arc<Entry>>) {
        let live = self.live.subscribe();
        let log = lock(&self.log).entries.iter().cloned().collect();
        (log, live)
    }

    pub fn clear_log(&self) {
        let mut log = lock(&self.log);
        log.entries.clear();
        log.bytes = 0;
    }

    /// Sends bytes to every peer, or to one.
    pub async fn send(&self, data: Bytes, to: Option<PeerId>) -> Result<(), DeskError> {
        if lock(&self.state).ended {
            return Err(DeskError::Ended);
        }
        let sent = match to {
            Some(id) => self.control.send(Control::SendTo(id, data)).await.is_ok(),
            None => self.input.send(data).await.is_ok(),
        };
        if sent { Ok(()) } else { Err(DeskError::Ended) }
    }

    pub async fn disconnect(&self, peer: PeerId) -> Result<(), DeskError> {
        self.control
            .send(Control::Disconnect(peer))
            .await
            .map_err(|_| DeskError::Ended)
    }

    /// Starts sending `data` (rendered afresh each time by `render`) every
    /// `every`, `count` times; replaces a periodic send already running.
    pub fn start_periodic(
        self: &Arc<Self>,
        every: Duration,
        count: u64,
        to: Option<PeerId>,
        mut render: impl FnMut() -> Result<Bytes, DeskError> + Send + 'static,
    ) {
        let token = self.stop.child_token();
        if let Some(old) = lock(&self.periodic).replace(token.clone()) {
            old.cancel();
        }
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every.max(MIN_INTERVAL));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for _ in 0..count {
                tokio::select! {
                    _ = ticker.tick() => {}
                    () = token.cancelled() => return,
                }
                let sent = match render() {
                    Ok(data) => me.send(data, to).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = sent {
                    me.push(
                        EntryKind::Note,
                        None,
                        None,
                        None,
                        Some(format!("periodic send stopped: {e}")),
                    );
                    break;
                }
            }
            token.cancel();
        });
    }

    pub fn stop_periodic(&self) {
        if let Some(p) = lock(&self.periodic).take() {
            p.cancel();
        }
    }

    /// Replaces the session's rules (TOML, as `nc --rules` reads), or
    /// turns them off. The text is kept for the page either way.
    pub fn set_rules(&self, text: &str, on: bool) -> Result<(), DeskError> {
        let set = RuleSet::from_toml(text).map_err(|e| DeskError::Bad(e.to_string()))?;
        let frame = set.frame.unwrap_or(FrameMode::Line);
        *lock(&self.rules_text) = text.to_owned();
        let rules = on.then(|| {
            Arc::new(AutoReply {
                rules: Arc::new(set),
                frame,
            })
        });
        self.rules.send_replace(rules);
        Ok(())
    }

    pub fn rules_text(&self) -> String {
        lock(&self.rules_text).clone()
    }

    fn end(&self, text: String) {
        lock(&self.state).ended = true;
        self.push(EntryKind::Ended, None, None, None, Some(text));
    }

    fn push(
        &self,
        kind: EntryKind,
        peer_id: Option<PeerId>,
        peer: Option<SocketAddr>,
        data: Option<Bytes>,
        text: Option<String>,
    ) {
        let entry = {
            let mut log = lock(&self.log);
            log.next += 1;
            let entry = Arc::new(Entry {
                seq: log.next,
                at: chrono::Utc::now().timestamp_millis(),
                kind,
                peer_id,
                peer,
                data,
                text,
            });
            log.bytes += entry.data.as_ref().map_or(0, Bytes::len);
            log.entries.push_back(Arc::clone(&entry));
            while log.entries.len() > LOG_ENTRIES || log.bytes > LOG_BYTES {
                let Some(old) = log.entries.pop_front() else { break };
                log.bytes -= old.data.as_ref().map_or(0, Bytes::len);
            }
            entry
        };
        // Nobody watching is fine: the log keeps it.
        let _ = self.live.send(entry);
    }
}

/// Turns the engine's events into log entries and the client list.
async fn record(running: Arc<Running>, mut events: mpsc::Receiver<NcEvent>) {
    while let Some(event) = events.recv().await {
        let r = &running;
        match event {
            NcEvent::Listening(addr) => {
                lock(&r.state).local = Some(addr);
                r.push(
                    EntryKind::Listening,
                    None,
                    None,
                    None,
                    Some(format!("listening on {addr}")),
                );
            }
            NcEvent::Connected { id, peer, local } => {
                {
                    let mut state = lock(&r.state);
                    state.local.get_or_insert(local);
                    state.peers.insert(id, peer);
                }
                r.push(EntryKind::Connected, Some(id), Some(peer), None, None);
            }
            NcEvent::Received { id, peer, data } => r.push(EntryKind::In, Some(id), Some(peer), Some(data), None),
            NcEvent::Sent { id, peer, data } => r.push(EntryKind::Out, Some(id), Some(peer), Some(data), None),
            NcEvent::Answered { id, peer, rule } => {
                r.push(EntryKind::Answered, Some(id), Some(peer), None, Some(rule));
            }
            NcEvent::Note { id, peer, text } => r.push(EntryKind::Note, Some(id), Some(peer), None, Some(text)),
            NcEvent::Closed { id, peer, reason } => {
                lock(&r.state).peers.remove(&id);
                r.push(EntryKind::Closed, Some(id), Some(peer), None, Some(close_text(&reason)));
            }
            NcEvent::Refused { peer } => {
                r.push(
                    EntryKind::Note,
                    None,
                    Some(peer),
                    None,
                    Some("turned away: too many clients".into()),
                );
            }
            NcEvent::InputDone => {}
        }
    }
}

fn close_text(reason: &CloseReason) -> String {
    match reason {
        CloseReason::PeerClosed => "closed by the peer".into(),
        CloseReason::QuitAfterEof => "closed after input ended".into(),
        CloseReason::Idle => "idle too long".into(),
        CloseReason::TooSlow => "it stopped reading".into(),
        CloseReason::Error(e) => e.clone(),
        CloseReason::ByRule(rule) => format!("closed by {rule}"),
        CloseReason::Disconnected => "disconnected".into(),
    }
}
