//! The node's owner task: the UDP socket, the protocol machine, the peer
//! list and the files offered. Everything else talks to it over channels.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use sockit_proto::assist::text::TextEncoding;
use sockit_proto::broadcast::targets;
use sockit_proto::ipmsg::{Config, Event, FileEntry, FileRequest, Node, Peer, extra::FILE_REGULAR};

use super::transfer::{self, Offered};
use crate::Error;
use crate::server::{ServerConfig, TcpServer};
use crate::udp::MAX_DATAGRAM;

/// Messages whose attachments stay downloadable; older offers are
/// withdrawn first (IPMSG keeps offers until the sender's window closes).
const MAX_OFFERS: usize = 256;

/// Events waiting for the consumer; the node waits when it falls behind.
const EVENT_QUEUE: usize = 1024;

/// Longest wait on leaving for the wall clock to pass the packet numbers
/// used (see `Owner::leave`).
const MAX_NUMBER_WAIT: Duration = Duration::from_secs(5);

/// Tries at finding a port free for both UDP and TCP when asked for port 0.
const PORT_TRIES: usize = 16;

#[derive(Debug, Clone)]
pub struct IpmsgOptions {
    pub bind: SocketAddr,
    pub user: String,
    pub host: String,
    pub nick: String,
    pub group: String,
    /// Hosts announced to directly (DIALUP), besides the broadcast addresses.
    pub peers: Vec<SocketAddr>,
    /// Announce to the broadcast addresses the bind address covers.
    pub broadcast: bool,
    /// The port broadcast announcements go to.
    pub broadcast_port: u16,
    pub legacy: TextEncoding,
    pub force_encoding: Option<TextEncoding>,
    pub retry_interval: Duration,
    pub max_attempts: u32,
}

/// What the node reports: protocol events and served files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEvent {
    Ipmsg(Event),
    FileServed { to: SocketAddr, name: String, bytes: u64 },
    FileServeFailed { to: SocketAddr, reason: String },
}

#[derive(Debug)]
enum Request {
    Send {
        to: SocketAddr,
        text: String,
        files: Vec<Offered>,
        reply: oneshot::Sender<Result<u64, Error>>,
    },
    Peers(oneshot::Sender<Vec<Peer>>),
    Announce,
    Absent(bool),
    /// A GETFILEDATA packet for downloading one of a peer's files.
    FileRequestPacket {
        request: FileRequest,
        reply: oneshot::Sender<Vec<u8>>,
    },
    /// Which of our offered files a TCP peer may fetch.
    FindOffer {
        from: IpAddr,
        request: FileRequest,
        reply: oneshot::Sender<Option<Offered>>,
    },
    Leave(oneshot::Sender<()>),
}

/// A handle on a running node; cheap to clone.
#[derive(Debug, Clone)]
pub struct IpmsgHandle {
    local: SocketAddr,
    requests: mpsc::Sender<Request>,
}

/// Binds UDP and TCP on one address and starts the node, which announces
/// itself at once. Events arrive on the returned receiver.
pub async fn start(options: IpmsgOptions) -> Result<(IpmsgHandle, mpsc::Receiver<NodeEvent>), Error> {
    let (udp, tcp) = bind_pair(options.bind)?;
    let local = udp.local_addr().map_err(Error::io("reading the bound address"))?;
    udp.set_broadcast(true).map_err(Error::io("setting SO_BROADCAST"))?;
    let interfaces = crate::broadcast::interfaces().unwrap_or_default();
    let broadcast_to = match local.ip() {
        IpAddr::V4(ip) if options.broadcast => targets(ip, &interfaces)
            .unwrap_or_default()
            .into_iter()
            .map(|b| SocketAddr::new(IpAddr::V4(b), options.broadcast_port))
            .collect(),
        _ => Vec::new(),
    };
    let mut config = Config::new(&options.user, &options.host, local);
    config.nick = options.nick.clone();
    config.group = options.group.clone();
    config.own_ips = interfaces.iter().map(|i| IpAddr::V4(i.ip)).collect();
    config.legacy = options.legacy;
    config.force_encoding = options.force_encoding;
    config.retry_interval = options.retry_interval;
    config.max_attempts = options.max_attempts;
    config.software = format!("sockit {}", env!("CARGO_PKG_VERSION"));
    let wall = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let node = Node::new(config, Instant::now().into_std(), wall);

    let (requests_tx, requests_rx) = mpsc::channel(64);
    let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
    let handle = IpmsgHandle {
        local,
        requests: requests_tx,
    };
    let owner = Owner {
        node,
        socket: udp,
        broadcast_to,
        dial: options.peers,
        offers: BTreeMap::new(),
        events: events_tx.clone(),
    };
    let stop = CancellationToken::new();
    let files = transfer::OfferService::new(handle.weak(), events_tx);
    tokio::spawn(tcp.run(std::sync::Arc::new(files), stop.clone()));
    tokio::spawn(owner.run(requests_rx, stop));
    Ok((handle, events_rx))
}

impl IpmsgHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Sends a message (and offers `files`, paths on this host); returns its
    /// packet number. Delivery is reported later as `Delivered` or
    /// `Undelivered`.
    pub async fn send(&self, to: SocketAddr, text: &str, files: &[PathBuf]) -> Result<u64, Error> {
        let mut offered = Vec::with_capacity(files.len());
        for (id, path) in files.iter().enumerate() {
            offered.push(offer(u32::try_from(id).unwrap_or(u32::MAX), path).await?);
        }
        let (reply, answer) = oneshot::channel();
        self.call(Request::Send {
            to,
            text: text.to_string(),
            files: offered,
            reply,
        })
        .await?;
        answer.await.map_err(|_| gone())?
    }

    pub async fn peers(&self) -> Result<Vec<Peer>, Error> {
        let (reply, answer) = oneshot::channel();
        self.call(Request::Peers(reply)).await?;
        answer.await.map_err(|_| gone())
    }

    /// Announces again (BR_ENTRY) to the broadcast addresses and listed hosts.
    pub async fn announce(&self) -> Result<(), Error> {
        self.call(Request::Announce).await
    }

    pub async fn set_absent(&self, absent: bool) -> Result<(), Error> {
        self.call(Request::Absent(absent)).await
    }

    /// Downloads one file a peer offered into the inbox, never overwriting: a
    /// name already taken gets a `.1`, `.2`, ... suffix.
    pub async fn download(
        &self,
        from: SocketAddr,
        packet_no: u64,
        file: &FileEntry,
        into: &transfer::Inbox,
    ) -> Result<transfer::Received, Error> {
        let request = FileRequest {
            packet_no,
            file_id: file.id,
            offset: 0,
        };
        let (reply, answer) = oneshot::channel();
        self.call(Request::FileRequestPacket { request, reply }).await?;
        let packet = answer.await.map_err(|_| gone())?;
        transfer::download(self.local, from, &packet, file, into).await
    }

    /// Says goodbye (BR_EXIT) and stops the node.
    pub async fn leave(&self) -> Result<(), Error> {
        let (reply, answer) = oneshot::channel();
        self.call(Request::Leave(reply)).await?;
        answer.await.map_err(|_| gone())
    }

    /// A handle that does not keep the node running: the node stops when
    /// the last full handle goes, so its own file server must not hold one.
    pub(super) fn weak(&self) -> WeakHandle {
        WeakHandle(self.requests.downgrade())
    }

    async fn call(&self, request: Request) -> Result<(), Error> {
        self.requests.send(request).await.map_err(|_| gone())
    }
}

#[derive(Debug, Clone)]
pub(super) struct WeakHandle(mpsc::WeakSender<Request>);

impl WeakHandle {
    /// Which offered file `from` may fetch, while the node still runs.
    pub(super) async fn find_offer(&self, from: IpAddr, request: FileRequest) -> Option<Offered> {
        let requests = self.0.upgrade()?;
        let (reply, answer) = oneshot::channel();
        requests.send(Request::FindOffer { from, request, reply }).await.ok()?;
        drop(requests);
        answer.await.ok().flatten()
    }
}

fn gone() -> Error {
    Error::Protocol("the ipmsg node has stopped".into())
}

async fn offer(id: u32, path: &Path) -> Result<Offered, Error> {
    let meta = tokio::fs::metadata(path).await.map_err(Error::file("reading", path))?;
    if !meta.is_file() {
        return Err(Error::Usage(format!("{} is not a file", path.display())));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Error::Usage(format!("{} has no file name", path.display())))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    Ok(Offered {
        entry: FileEntry {
            id,
            name,
            size: meta.len(),
            mtime,
            attr: FILE_REGULAR,
        },
        path: path.to_path_buf(),
    })
}

/// Binds UDP then TCP on the same port (IPMSG serves files on its message
/// port). With port 0 the kernel's UDP choice may be taken for TCP, so a
/// few ports are tried.
fn bind_pair(addr: SocketAddr) -> Result<(UdpSocket, TcpServer), Error> {
    let bind_err = |source| Error::Bind { addr, source };
    let mut last = None;
    for _ in 0..PORT_TRIES {
        let udp = std::net::UdpSocket::bind(addr).map_err(bind_err)?;
        udp.set_nonblocking(true).map_err(bind_err)?;
        let port = udp.local_addr().map_err(bind_err)?.port();
        let mut config = ServerConfig::new(SocketAddr::new(addr.ip(), port), None);
        config.max_connections = transfer::MAX_TRANSFERS;
        config.idle_timeout = transfer::IDLE_TIMEOUT;
        match TcpServer::bind(config) {
            Ok(tcp) => return Ok((UdpSocket::from_std(udp).map_err(bind_err)?, tcp)),
            Err(e) if addr.port() == 0 => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| bind_err(io::Error::from(io::ErrorKind::AddrInUse))))
}

struct Owner {
    node: Node,
    socket: UdpSocket,
    broadcast_to: Vec<SocketAddr>,
    dial: Vec<SocketAddr>,
    offers: BTreeMap<u64, (IpAddr, Vec<Offered>)>,
    events: mpsc::Sender<NodeEvent>,
}

impl Owner {
    async fn run(mut self, mut requests: mpsc::Receiver<Request>, stop: CancellationToken) {
        self.announce();
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            self.flush().await;
            let timeout = self.node.poll_timeout().map(Instant::from_std);
            tokio::select! {
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((n, from)) => {
                        let bytes = buf.get(..n).unwrap_or_default();
                        self.node.handle_datagram(Instant::now().into_std(), from, bytes);
                    }
                    Err(e) => tracing::debug!(error = %e, "ipmsg receive failed"),
                },
                () = sleep_until(timeout) => self.node.handle_timeout(Instant::now().into_std()),
                request = requests.recv() => match request {
                    Some(Request::Leave(done)) => {
                        self.leave().await;
                        let _ = done.send(());
                        break;
                    }
                    Some(request) => self.handle(request),
                    None => {
                        self.leave().await;
                        break;
                    }
                },
            }
        }
        stop.cancel();
    }

    fn announce(&mut self) {
        let now = Instant::now().into_std();
        self.node.announce(now, &self.broadcast_to, false);
        self.node.announce(now, &self.dial, true);
    }

    /// Says goodbye, then waits until the wall clock has passed the last
    /// packet number used: numbers start at the Unix time, so a node started
    /// next on this host (a second `ipmsg send`) would otherwise reuse them,
    /// and peers such as iptux silently drop a message whose number is not
    /// higher than the last they saw from this address.
    async fn leave(&mut self) {
        let mut to = self.broadcast_to.clone();
        to.extend(&self.dial);
        self.node.leave(Instant::now().into_std(), &to);
        self.flush().await;
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let free_at = Duration::from_secs(self.node.last_packet_no().saturating_add(1));
        if let Some(wait) = free_at.checked_sub(wall) {
            tokio::time::sleep(wait.min(MAX_NUMBER_WAIT)).await;
        }
    }

    fn handle(&mut self, request: Request) {
        let now = Instant::now().into_std();
        match request {
            Request::Send { to, text, files, reply } => {
                let entries: Vec<FileEntry> = files.iter().map(|f| f.entry.clone()).collect();
                let sent = self
                    .node
                    .send_message(now, to, &text, &entries)
                    .map_err(|e| Error::Usage(e.to_string()));
                if let Ok(packet_no) = sent {
                    if !files.is_empty() {
                        if self.offers.len() >= MAX_OFFERS {
                            self.offers.pop_first();
                        }
                        self.offers.insert(packet_no, (to.ip(), files));
                    }
                }
                let _ = reply.send(sent);
            }
            Request::Peers(reply) => {
                let _ = reply.send(self.node.peers().cloned().collect());
            }
            Request::Announce => self.announce(),
            Request::Absent(absent) => self.node.set_absent(now, absent),
            Request::FileRequestPacket { request, reply } => {
                let _ = reply.send(self.node.file_request(now, request));
            }
            Request::FindOffer { from, request, reply } => {
                let found = self
                    .offers
                    .get(&request.packet_no)
                    .filter(|(to, _)| *to == from)
                    .and_then(|(_, files)| files.iter().find(|f| f.entry.id == request.file_id))
                    .cloned();
                let _ = reply.send(found);
            }
            Request::Leave(_) => {}
        }
    }

    /// Sends what the machine queued and passes its events on.
    async fn flush(&mut self) {
        while let Some(t) = self.node.poll_transmit() {
            if let Err(e) = self.socket.send_to(&t.bytes, t.to).await {
                tracing::debug!(to = %t.to, error = %e, "ipmsg send failed");
            }
        }
        while let Some(event) = self.node.poll_event() {
            if let Event::Malformed { from, reason } = &event {
                tracing::debug!(%from, %reason, "ipmsg: malformed packet");
            }
            let _ = self.events.send(NodeEvent::Ipmsg(event)).await;
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
