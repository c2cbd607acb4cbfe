//! The TFTP server: one listening socket for requests, and for every
//! transfer a task with its own socket (a new TID, RFC 1350 §4).
//!
//! - Every name goes through the [`Sandbox`]: no `..`, nothing outside the
//!   root, no symlink out of it. A leading `/` means the root, as with
//!   `tftpd -s`.
//! - Read-only unless `allow_write`; new files only with `allow_create`.
//!   Uploads are written under the private folder and renamed into place
//!   when the last block has arrived, so no one sees half a file.
//! - A request from a client TID whose transfer is still running is a
//!   duplicate and is answered once, by that transfer.
//! - The request's source address may be forged, so a refusal is never
//!   longer than the request (no amplification), junk gets no answer, and
//!   the first reply is retransmitted only a few times until the peer
//!   answers (see `UNVERIFIED_RETRIES`).
//! - At most `max_transfers` run at once, and `max_per_peer` from one
//!   address, so one host cannot take every slot; more are refused with
//!   ERROR 0. A transfer whose peer has not answered yet holds one block
//!   (with options, none) until it does.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use sockit_proto::path::RelPath;
use sockit_proto::tftp::options::{MAX_BLKSIZE, Rollover, ServerLimits, Settings, blksize_for_mtu, negotiate};
use sockit_proto::tftp::packet::{ErrorCode, Mode, Packet, Request, error_packet};
use sockit_proto::tftp::remap::{Context, Remapped, Rules};
use sockit_proto::tftp::transfer::{self, Transfer};

use super::drive::{self, Disk, Job};
use super::pktinfo;
use crate::Error;
use crate::files::staging::{PartialLimits, Staging};
use crate::sandbox::{Sandbox, SandboxError};
use crate::udp::MAX_DATAGRAM;

/// Transfers at once: plenty for a lab of devices booting together, and a
/// bound on sockets and window buffers.
pub const DEFAULT_MAX_TRANSFERS: usize = 256;

/// Transfers one address may run at once: a device boots with one or two,
/// and 16 of the 256 slots leaves room for many devices.
pub const DEFAULT_MAX_PER_PEER: usize = 16;

/// The largest window granted. 64 blocks of 1468 bytes is ~94 KiB in
/// flight; of 65464 bytes, 4 MiB, the socket buffer.
pub const DEFAULT_MAX_WINDOWSIZE: u16 = 64;

/// How long shutdown waits for transfers in flight.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct TftpConfig {
    pub root: PathBuf,
    pub allow_write: bool,
    pub allow_create: bool,
    pub max_blksize: u16,
    pub max_windowsize: u16,
    pub max_transfers: usize,
    pub max_per_peer: usize,
    /// Largest upload accepted (checked against tsize and while writing).
    pub max_upload: Option<u64>,
    pub transfer: transfer::Config,
    /// Every transfer answers from the listening port (for NAT, firewalls
    /// and containers) instead of a new port of its own.
    pub single_port: bool,
    /// What follows block 65535 unless the client asks.
    pub rollover: Rollover,
    /// Grant a block larger than the route's MTU allows when a client asks.
    pub allow_fragments: bool,
    /// tftpd-hpa remap rules applied to every requested name.
    pub remap: Option<Arc<Rules>>,
    /// Where transfers in progress are reported (the dashboard).
    pub stats: crate::stats::Stats,
}

impl TftpConfig {
    pub fn new(root: PathBuf) -> Self {
        Self {
            root,
            allow_write: false,
            allow_create: false,
            max_blksize: MAX_BLKSIZE,
            max_windowsize: DEFAULT_MAX_WINDOWSIZE,
            max_transfers: DEFAULT_MAX_TRANSFERS,
            max_per_peer: DEFAULT_MAX_PER_PEER,
            max_upload: None,
            transfer: transfer::Config::default(),
            single_port: false,
            rollover: Rollover::Zero,
            allow_fragments: false,
            remap: None,
            stats: crate::stats::Stats::default(),
        }
    }
}

#[derive(Debug)]
pub struct TftpServer {
    socket: UdpSocket,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    config: TftpConfig,
    sandbox: Sandbox,
    staging: Staging,
}

/// Why a request is refused: the code and a short text for the peer.
#[derive(Debug)]
struct Refusal(ErrorCode, Cow<'static, str>);

/// A request that starts a transfer, as the listener received it.
#[derive(Debug)]
struct Start {
    request: Request,
    is_read: bool,
    /// Its length: a refusal is never longer (the source may be forged).
    len: usize,
    peer: SocketAddr,
    /// The address it was sent to; the transfer answers from there.
    local: Option<IpAddr>,
}

/// How a transfer ended, for its log line.
#[derive(Debug)]
struct Finished {
    settings: Settings,
    bytes: u64,
    result: Result<(), String>,
}

/// Datagrams a single-port transfer's socket caught before it was
/// connected: requests for the listener.
type Strays = mpsc::Sender<super::Stray>;

/// Requests that a transfer socket may pass back at once (single-port mode).
const STRAY_QUEUE: usize = 64;

impl TftpServer {
    /// Binds the request socket and opens the root.
    pub fn bind(addr: SocketAddr, config: TftpConfig) -> Result<Self, Error> {
        let socket = super::bind_requests(addr, config.single_port)?;
        Self::with_socket(socket, config)
    }

    /// Serves on a socket the service manager bound (socket activation).
    pub fn from_std(socket: std::net::UdpSocket, config: TftpConfig) -> Result<Self, Error> {
        Self::with_socket(super::adopt_requests(socket)?, config)
    }

    fn with_socket(socket: UdpSocket, config: TftpConfig) -> Result<Self, Error> {
        let sandbox = Sandbox::open(&config.root).map_err(Error::file("opening the root", &config.root))?;
        let staging_dir = sandbox
            .tree()
            .private_dir("tftp-partial")
            .map_err(Error::file("creating", sandbox.root().join(".sockit/tftp-partial")))?;
        let staging = Staging::new(staging_dir, PartialLimits::default(), false);
        let local_addr = socket.local_addr().map_err(Error::io("reading the bound address"))?;
        Ok(Self {
            socket,
            local_addr,
            shared: Arc::new(Shared {
                config,
                sandbox,
                staging,
            }),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown`, then waits (bounded) for transfers in flight.
    pub async fn run(self, shutdown: CancellationToken) {
        let tracker = TaskTracker::new();
        let mut slots = Slots::default();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<SocketAddr>();
        let (stray_tx, mut stray_rx) = mpsc::channel::<super::Stray>(STRAY_QUEUE);
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let (datagram, received) = tokio::select! {
                r = pktinfo::recv(&self.socket, &mut buf) => match r {
                    Ok(r) => (buf.get(..r.len).unwrap_or_default(), r),
                    Err(e) => {
                        tracing::debug!(error = %e, "tftp receive failed");
                        continue;
                    }
                },
                Some((datagram, peer)) = stray_rx.recv() => {
                    // Sent to the listening address, so answered from it.
                    let received = pktinfo::Received { len: datagram.len(), peer, local: None };
                    self.on_datagram(&datagram, received, &mut slots, &tracker, &done_tx, &stray_tx, &shutdown).await;
                    continue;
                }
                Some(peer) = done_rx.recv() => {
                    slots.release(peer);
                    continue;
                }
                () = shutdown.cancelled() => break,
            };
            self.on_datagram(datagram, received, &mut slots, &tracker, &done_tx, &stray_tx, &shutdown)
                .await;
        }
        tracker.close();
        if tokio::time::timeout(DRAIN_TIMEOUT, tracker.wait()).await.is_err() {
            tracing::warn!("tftp: transfers still running after the drain timeout");
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn on_datagram(
        &self,
        datagram: &[u8],
        received: pktinfo::Received,
        slots: &mut Slots,
        tracker: &TaskTracker,
        done: &mpsc::UnboundedSender<SocketAddr>,
        strays: &Strays,
        shutdown: &CancellationToken,
    ) {
        let peer = received.peer;
        let (request, is_read) = match Packet::decode(datagram) {
            Ok(Packet::Rrq(r)) => (r, true),
            Ok(Packet::Wrq(r)) => (r, false),
            // Junk, or a packet meant for a transfer: no answer, since
            // the source may be forged.
            _ => {
                tracing::debug!(%peer, len = datagram.len(), "tftp: not a request; ignored");
                return;
            }
        };
        if slots.active.contains(&peer) {
            tracing::debug!(%peer, "tftp: duplicate request; the running transfer answers it");
            return;
        }
        let config = &self.shared.config;
        if slots.active.len() >= config.max_transfers || slots.from(peer.ip()) >= config.max_per_peer {
            let refusal = bounded_error(Refusal(ErrorCode::NotDefined, "server busy".into()), datagram.len());
            let _ = pktinfo::send_from(&self.socket, &refusal, peer, received.local);
            return;
        }
        slots.take(peer);
        let start = Start {
            request,
            is_read,
            len: datagram.len(),
            peer,
            local: received.local,
        };
        let shared = Arc::clone(&self.shared);
        let (done, strays, shutdown) = (done.clone(), strays.clone(), shutdown.clone());
        let listen = self.local_addr;
        tracker.spawn(async move {
            serve_transfer(shared, listen, start, strays, &shutdown).await;
            let _ = done.send(peer);
        });
    }
}

/// The transfers running, by client TID, and how many from each address.
#[derive(Debug, Default)]
struct Slots {
    active: HashSet<SocketAddr>,
    per_ip: HashMap<IpAddr, usize>,
}

impl Slots {
    fn from(&self, ip: IpAddr) -> usize {
        self.per_ip.get(&ip).copied().unwrap_or(0)
    }

    fn take(&mut self, peer: SocketAddr) {
        self.active.insert(peer);
        *self.per_ip.entry(peer.ip()).or_insert(0) += 1;
    }

    fn release(&mut self, peer: SocketAddr) {
        self.active.remove(&peer);
        if let Some(n) = self.per_ip.get_mut(&peer.ip()) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&peer.ip());
            }
        }
    }
}

async fn serve_transfer(
    shared: Arc<Shared>,
    listen: SocketAddr,
    start: Start,
    strays: Strays,
    shutdown: &CancellationToken,
) {
    // A client on IPv4 reaching a dual-stack socket is served over IPv4.
    let peer = SocketAddr::new(start.peer.ip().to_canonical(), start.peer.port());
    let local_ip = answer_from(start.local, listen, peer);
    let socket = if shared.config.single_port {
        super::bind_connected(SocketAddr::new(local_ip, listen.port()), peer).map(|(socket, caught)| {
            for stray in caught {
                // Full: the client sends its request again.
                let _ = strays.try_send(stray);
            }
            socket
        })
    } else {
        super::bind_blocking(SocketAddr::new(local_ip, 0))
    };
    let socket = match socket {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "tftp: no socket for a transfer");
            return;
        }
    };
    let Start {
        mut request,
        is_read,
        len,
        ..
    } = start;
    let asked = request.filename.clone();
    let remapped = match remap(&shared.config, &asked, is_read, peer) {
        Ok(name) => name,
        Err(refusal) => {
            let op = if is_read { "read" } else { "write" };
            tracing::info!(%peer, op = %op, file = %asked, result = %format!("refused: {}", refusal.1), "tftp transfer");
            let _ = socket.send_to(&bounded_error(refusal, len), peer);
            return;
        }
    };
    request.filename = remapped;
    let route = request
        .options
        .iter()
        .any(|(name, _)| name == "blksize")
        .then(|| route_blksize(local_ip, peer))
        .flatten();
    let started = Instant::now();
    let refusal_socket = socket.try_clone();
    let outcome = if is_read {
        read(&shared, socket, peer, &request, route, shutdown).await
    } else {
        write(&shared, socket, peer, &request, route, shutdown).await
    };
    let op = if is_read { "read" } else { "write" };
    let name = &request.filename;
    // The name asked for, when the rules changed it.
    let asked = (asked != *name).then_some(asked);
    match outcome {
        Ok(done) => {
            let secs = started.elapsed().as_secs_f64();
            let rate = if secs > 0.0 {
                (done.bytes as f64 / secs) as u64
            } else {
                0
            };
            let Settings {
                blksize,
                windowsize,
                timeout,
                tsize,
                rollover,
            } = done.settings;
            let result = match &done.result {
                Ok(()) => "ok".to_owned(),
                Err(e) => format!("failed: {e}"),
            };
            tracing::info!(
                %peer, op = %op, file = %name, asked, blksize, windowsize, timeout, tsize,
                rollover = rollover.as_str(), bytes = done.bytes, secs, rate, result = %result,
                "tftp transfer"
            );
        }
        Err(refusal) => {
            tracing::info!(%peer, op = %op, file = %name, asked, result = %format!("refused: {}", refusal.1), "tftp transfer");
            if let Ok(s) = refusal_socket {
                let _ = s.send_to(&bounded_error(refusal, len), peer);
            }
        }
    }
}

/// The name after the map file's rules, or the refusal they decided.
fn remap(config: &TftpConfig, name: &str, is_read: bool, peer: SocketAddr) -> Result<String, Refusal> {
    let Some(rules) = &config.remap else {
        return Ok(name.to_owned());
    };
    match rules.apply(
        name,
        Context {
            is_read,
            client: peer.ip(),
        },
    ) {
        Remapped::Name(name) => Ok(name),
        Remapped::Denied(message) => Err(Refusal(
            ErrorCode::AccessViolation,
            message.map_or(Cow::Borrowed("access denied"), Cow::Owned),
        )),
        Remapped::Runaway => {
            tracing::warn!(%peer, file = %name, "tftp: the remap rules loop or grow the name without end; refused");
            Err(Refusal(ErrorCode::AccessViolation, "remap table failure".into()))
        }
    }
}

/// The address a transfer answers from: the one the request was sent to,
/// else the listening address (a specific one), else the route's choice.
fn answer_from(local: Option<IpAddr>, listen: SocketAddr, peer: SocketAddr) -> IpAddr {
    let unspecified = || match peer {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let ip = match local {
        Some(ip) => ip.to_canonical(),
        None if listen.ip().is_unspecified() => unspecified(),
        None => listen.ip().to_canonical(),
    };
    if ip.is_ipv4() == peer.is_ipv4() {
        ip
    } else {
        unspecified()
    }
}

/// The largest block that reaches `peer` in one datagram, from the MTU of
/// the route the kernel would use (a connected probe socket sends nothing).
fn route_blksize(local: IpAddr, peer: SocketAddr) -> Option<u16> {
    let probe = std::net::UdpSocket::bind(SocketAddr::new(local, 0)).ok()?;
    probe.connect(peer).ok()?;
    let mtu = if peer.is_ipv6() {
        rustix::net::sockopt::ipv6_mtu(&probe)
    } else {
        rustix::net::sockopt::ip_mtu(&probe)
    }
    .ok()?;
    Some(blksize_for_mtu(mtu, peer.is_ipv6()))
}

/// The requested name as a path under the root. A leading `/` means the
/// root, as with `tftpd -s`.
fn parse_name(name: &str) -> Result<RelPath, Refusal> {
    RelPath::parse(name.trim_start_matches('/'))
        .map_err(|_| Refusal(ErrorCode::AccessViolation, "access violation".into()))
}

/// The one mapping from sandbox failures to TFTP errors.
fn sandbox_refusal(e: &SandboxError) -> Refusal {
    match e {
        SandboxError::Escapes => Refusal(ErrorCode::AccessViolation, "access violation".into()),
        SandboxError::NotRegular => Refusal(ErrorCode::AccessViolation, "not a regular file".into()),
        SandboxError::Timeout(_) => Refusal(ErrorCode::NotDefined, "server busy".into()),
        SandboxError::Io(e) => open_refusal(e),
    }
}

fn check_mode(request: &Request) -> Result<(), Refusal> {
    if request.mode == Mode::Mail {
        return Err(Refusal(
            ErrorCode::IllegalOperation,
            "mail mode is not supported".into(),
        ));
    }
    Ok(())
}

fn limits(config: &TftpConfig, route_blksize: Option<u16>) -> ServerLimits {
    ServerLimits {
        max_blksize: config.max_blksize,
        max_windowsize: config.max_windowsize,
        route_blksize,
        allow_fragments: config.allow_fragments,
        rollover: config.rollover,
    }
}

fn oack_of(options: &sockit_proto::tftp::packet::Options) -> Option<Bytes> {
    (!options.is_empty()).then(|| {
        Packet::Oack {
            options: options.clone(),
        }
        .encode()
    })
}

/// Serves a read: how it ended, or why it was refused.
async fn read(
    shared: &Shared,
    socket: std::net::UdpSocket,
    peer: SocketAddr,
    request: &Request,
    route_blksize: Option<u16>,
    shutdown: &CancellationToken,
) -> Result<Finished, Refusal> {
    check_mode(request)?;
    let path = parse_name(&request.filename)?;
    // Off the runtime, with a deadline; a pipe or device is refused on the
    // open handle instead of blocking in open(2).
    let (file, size) = shared.sandbox.open_file(&path).await.map_err(|e| sandbox_refusal(&e))?;
    let n = negotiate(
        &request.options,
        request.mode,
        true,
        Some(size),
        limits(&shared.config, route_blksize),
    );
    let transfer = Transfer::server_read(
        Instant::now(),
        peer,
        request,
        n.settings,
        oack_of(&n.oack),
        shared.config.transfer,
    );
    let shown = shared
        .config
        .stats
        .transfer("tftp read", &request.filename, Some(peer), Some(size), 0);
    let job = Job {
        socket,
        transfer,
        disk: Disk::Read(file),
        observer: Box::new(Reported::new(shown, None)),
        shutdown: shutdown.clone(),
    };
    let (_, outcome) = drive::run_on_thread(job, false).await;
    let result = match (outcome.result, outcome.disk_error) {
        (_, Some(e)) => Err(format!("reading the file: {e}")),
        (result, None) => result.map_err(|f| f.to_string()),
    };
    Ok(Finished {
        settings: n.settings,
        bytes: outcome.stats.bytes,
        result,
    })
}

/// Receives a write: how it ended, or why it was refused.
async fn write(
    shared: &Shared,
    socket: std::net::UdpSocket,
    peer: SocketAddr,
    request: &Request,
    route_blksize: Option<u16>,
    shutdown: &CancellationToken,
) -> Result<Finished, Refusal> {
    check_mode(request)?;
    if !shared.config.allow_write {
        return Err(Refusal(ErrorCode::AccessViolation, "writes are disabled".into()));
    }
    let path = parse_name(&request.filename)?;
    let n = negotiate(
        &request.options,
        request.mode,
        false,
        None,
        limits(&shared.config, route_blksize),
    );
    if let (Some(size), Some(max)) = (n.settings.tsize, shared.config.max_upload) {
        if size > max {
            return Err(Refusal(ErrorCode::DiskFull, "file too large".into()));
        }
    }
    let Some(claim) = shared.staging.claim(&path) else {
        return Err(Refusal(
            ErrorCode::AccessViolation,
            "an upload of this file is running".into(),
        ));
    };
    let (staging, allow_create, tsize) = (shared.staging.clone(), shared.config.allow_create, n.settings.tsize);
    let target = path.clone();
    let staged = shared
        .sandbox
        .run(move |tree| {
            // TFTP never creates folders: the parent must exist.
            let place = match tree.parent(&target, true) {
                Ok(p) => p,
                Err(SandboxError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Ok(Err(Refusal(ErrorCode::FileNotFound, "no such folder".into())));
                }
                Err(e) => return Err(e),
            };
            match rustix::fs::statat(&place.dir, place.name.as_str(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile => {
                    return Ok(Err(Refusal(ErrorCode::AccessViolation, "not a file".into())));
                }
                Ok(_) => {}
                Err(_) if allow_create => {}
                Err(_) => {
                    return Ok(Err(Refusal(
                        ErrorCode::FileNotFound,
                        "file not found (creating is disabled)".into(),
                    )));
                }
            }
            Ok(Ok(staging.begin(claim, tsize.unwrap_or(0))?))
        })
        .await;
    let (upload, part) = match staged {
        Ok(Ok(s)) => s,
        Ok(Err(refusal)) => return Err(refusal),
        Err(e) => return Err(sandbox_refusal(&e)),
    };
    let transfer = Transfer::server_write(
        Instant::now(),
        peer,
        request,
        n.settings,
        oack_of(&n.oack),
        shared.config.transfer,
    );
    let shown = shared
        .config
        .stats
        .transfer("tftp write", &request.filename, Some(peer), n.settings.tsize, 0);
    let observer = Box::new(Reported::new(shown, shared.config.max_upload));
    let job = Job {
        socket,
        transfer,
        disk: Disk::Write(drive::writer(part)),
        observer,
        shutdown: shutdown.clone(),
    };
    let (mut job, outcome) = drive::run_on_thread(job, true).await;
    // Closes the file before it is moved into place.
    job.disk = Disk::Done;
    let stored = match (&outcome.result, &outcome.disk_error) {
        (Ok(()), None) => shared
            .sandbox
            .run_to_end(move |tree| {
                let place = tree.parent(&path, true)?;
                Ok(upload.commit(&place)?)
            })
            .await
            .map_err(|e| e.to_string()),
        // Dropping the upload deletes its partial, before the peer hears.
        (_, Some(e)) => {
            drop(upload);
            Err(e.to_string())
        }
        (Err(f), None) => {
            drop(upload);
            Err(f.to_string())
        }
    };
    if stored.is_err() && outcome.result.is_ok() {
        job.transfer.abort(ErrorCode::DiskFull, "could not store the file");
    }
    // Sends the last ACK (or the ERROR) and dallies: a repeated last block
    // is answered until the peer is satisfied.
    let _ = drive::run_on_thread(job, false).await;
    Ok(Finished {
        settings: n.settings,
        bytes: outcome.stats.bytes,
        result: stored.map_err(|e| format!("{e}; nothing kept")),
    })
}

/// Reports a transfer's progress (the dashboard), and stops an upload
/// that grows past `max_upload` (a client may send no tsize, or a false
/// one).
#[derive(Debug)]
struct Reported {
    shown: crate::stats::Transfer,
    reported: u64,
    max: Option<u64>,
}

impl Reported {
    fn new(shown: crate::stats::Transfer, max: Option<u64>) -> Self {
        Self {
            shown,
            reported: 0,
            max,
        }
    }
}

impl drive::Observer for Reported {
    fn progress(&mut self, bytes: u64) -> bool {
        let moved = bytes.saturating_sub(self.reported);
        self.shown.advance(usize::try_from(moved).unwrap_or(usize::MAX));
        self.reported = bytes;
        self.max.is_none_or(|max| bytes <= max)
    }
}

fn open_refusal(e: &std::io::Error) -> Refusal {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => Refusal(ErrorCode::AccessViolation, "access violation".into()),
        _ => Refusal(ErrorCode::FileNotFound, "file not found".into()),
    }
}

/// ERROR for a refused request, never longer than the request that caused
/// it (its source address may be forged). The text goes along when it
/// fits; otherwise the code alone says what happened.
fn bounded_error(refusal: Refusal, request_len: usize) -> Bytes {
    let Refusal(code, text) = refusal;
    // 4 bytes of opcode and code, and the NUL.
    let fits = text.len() + 5 <= request_len;
    error_packet(code, if fits { &text } else { "" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_never_longer_than_the_request() {
        for len in 0..64 {
            let e = bounded_error(Refusal(ErrorCode::FileNotFound, "file not found".into()), len);
            assert!(e.len() <= len.max(5), "{len}: {}", e.len());
        }
        assert_eq!(
            &bounded_error(Refusal(ErrorCode::AccessViolation, "access violation".into()), 100)[..],
            b"\x00\x05\x00\x02access violation\x00"
        );
    }
}
