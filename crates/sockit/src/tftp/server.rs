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

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use sockit_proto::path::RelPath;
use sockit_proto::tftp::options::{MAX_BLKSIZE, ServerLimits, negotiate};
use sockit_proto::tftp::packet::{ErrorCode, Mode, Packet, Request, error_packet};
use sockit_proto::tftp::transfer::{self, Transfer};

use super::drive::{self, Disk, Job};
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
struct Refusal(ErrorCode, &'static str);

impl TftpServer {
    /// Binds the request socket and opens the root.
    pub fn bind(addr: SocketAddr, config: TftpConfig) -> Result<Self, Error> {
        let sandbox = Sandbox::open(&config.root).map_err(Error::file("opening the root", &config.root))?;
        let staging_dir = sandbox
            .tree()
            .private_dir("tftp-partial")
            .map_err(Error::file("creating", sandbox.root().join(".sockit/tftp-partial")))?;
        let staging = Staging::new(staging_dir, PartialLimits::default(), false);
        let socket = super::bind_async(addr)?;
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
        let mut active: HashSet<SocketAddr> = HashSet::new();
        let mut per_ip: HashMap<IpAddr, usize> = HashMap::new();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<SocketAddr>();
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let received = tokio::select! {
                r = self.socket.recv_from(&mut buf) => r,
                Some(peer) = done_rx.recv() => {
                    active.remove(&peer);
                    if let Some(n) = per_ip.get_mut(&peer.ip()) {
                        *n -= 1;
                        if *n == 0 {
                            per_ip.remove(&peer.ip());
                        }
                    }
                    continue;
                }
                () = shutdown.cancelled() => break,
            };
            let (n, peer) = match received {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(error = %e, "tftp receive failed");
                    continue;
                }
            };
            let datagram = buf.get(..n).unwrap_or_default();
            let (request, is_read) = match Packet::decode(datagram) {
                Ok(Packet::Rrq(r)) => (r, true),
                Ok(Packet::Wrq(r)) => (r, false),
                // Junk, or a packet meant for a transfer: no answer, since
                // the source may be forged.
                _ => {
                    tracing::debug!(%peer, len = n, "tftp: not a request; ignored");
                    continue;
                }
            };
            if active.contains(&peer) {
                tracing::debug!(%peer, "tftp: duplicate request; the running transfer answers it");
                continue;
            }
            let from_ip = per_ip.get(&peer.ip()).copied().unwrap_or(0);
            if active.len() >= self.shared.config.max_transfers || from_ip >= self.shared.config.max_per_peer {
                self.refuse(peer, n, Refusal(ErrorCode::NotDefined, "server busy"))
                    .await;
                continue;
            }
            active.insert(peer);
            *per_ip.entry(peer.ip()).or_insert(0) += 1;
            let shared = Arc::clone(&self.shared);
            let (done, shutdown) = (done_tx.clone(), shutdown.clone());
            let local_ip = self.local_addr.ip();
            tracker.spawn(async move {
                serve_transfer(shared, local_ip, peer, request, is_read, n, &shutdown).await;
                let _ = done.send(peer);
            });
        }
        tracker.close();
        if tokio::time::timeout(DRAIN_TIMEOUT, tracker.wait()).await.is_err() {
            tracing::warn!("tftp: transfers still running after the drain timeout");
        }
    }

    async fn refuse(&self, peer: SocketAddr, request_len: usize, refusal: Refusal) {
        let _ = self.socket.send_to(&bounded_error(refusal, request_len), peer).await;
    }
}

async fn serve_transfer(
    shared: Arc<Shared>,
    local_ip: IpAddr,
    peer: SocketAddr,
    request: Request,
    is_read: bool,
    request_len: usize,
    shutdown: &CancellationToken,
) {
    let socket = match super::bind_blocking(SocketAddr::new(local_ip, 0)) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "tftp: no socket for a transfer");
            return;
        }
    };
    let name = request.filename.clone();
    let started = Instant::now();
    let refusal_socket = socket.try_clone();
    let outcome = if is_read {
        read(&shared, socket, peer, &request, shutdown).await
    } else {
        write(&shared, socket, peer, &request, shutdown).await
    };
    match outcome {
        Ok(bytes) => {
            let secs = started.elapsed().as_secs_f64();
            tracing::info!(%peer, file = %name, bytes, secs, op = if is_read { "read" } else { "write" }, "tftp transfer done");
        }
        Err(Some(refusal)) => {
            tracing::info!(%peer, file = %name, reason = refusal.1, "tftp request refused");
            if let Ok(s) = refusal_socket {
                let _ = s.send_to(&bounded_error(refusal, request_len), peer);
            }
        }
        Err(None) => {}
    }
}

/// The requested name as a path under the root. A leading `/` means the
/// root, as with `tftpd -s`.
fn parse_name(name: &str) -> Result<RelPath, Refusal> {
    RelPath::parse(name.trim_start_matches('/')).map_err(|_| Refusal(ErrorCode::AccessViolation, "access violation"))
}

/// The one mapping from sandbox failures to TFTP errors.
fn sandbox_refusal(e: &SandboxError) -> Refusal {
    match e {
        SandboxError::Escapes => Refusal(ErrorCode::AccessViolation, "access violation"),
        SandboxError::NotRegular => Refusal(ErrorCode::AccessViolation, "not a regular file"),
        SandboxError::Timeout(_) => Refusal(ErrorCode::NotDefined, "server busy"),
        SandboxError::Io(e) => open_refusal(e),
    }
}

fn check_mode(request: &Request) -> Result<(), Refusal> {
    if request.mode == Mode::Mail {
        return Err(Refusal(ErrorCode::IllegalOperation, "mail mode is not supported"));
    }
    Ok(())
}

fn limits(config: &TftpConfig) -> ServerLimits {
    ServerLimits {
        max_blksize: config.max_blksize,
        max_windowsize: config.max_windowsize,
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

/// Serves a read: `Ok(bytes sent)`, `Err(Some)` to refuse, `Err(None)`
/// when the transfer itself failed (already logged).
async fn read(
    shared: &Shared,
    socket: std::net::UdpSocket,
    peer: SocketAddr,
    request: &Request,
    shutdown: &CancellationToken,
) -> Result<u64, Option<Refusal>> {
    check_mode(request)?;
    let path = parse_name(&request.filename)?;
    // Off the runtime, with a deadline; a pipe or device is refused on the
    // open handle instead of blocking in open(2).
    let (file, size) = shared
        .sandbox
        .open_file(&path)
        .await
        .map_err(|e| Some(sandbox_refusal(&e)))?;
    let n = negotiate(&request.options, request.mode, true, Some(size), limits(&shared.config));
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
    match outcome.result {
        Ok(()) => Ok(outcome.stats.bytes),
        Err(f) => {
            tracing::info!(%peer, file = %request.filename, error = %f, "tftp read failed");
            Err(None)
        }
    }
}

async fn write(
    shared: &Shared,
    socket: std::net::UdpSocket,
    peer: SocketAddr,
    request: &Request,
    shutdown: &CancellationToken,
) -> Result<u64, Option<Refusal>> {
    check_mode(request)?;
    if !shared.config.allow_write {
        return Err(Some(Refusal(ErrorCode::AccessViolation, "writes are disabled")));
    }
    let path = parse_name(&request.filename)?;
    let n = negotiate(&request.options, request.mode, false, None, limits(&shared.config));
    if let (Some(size), Some(max)) = (n.settings.tsize, shared.config.max_upload) {
        if size > max {
            return Err(Some(Refusal(ErrorCode::DiskFull, "file too large")));
        }
    }
    let Some(claim) = shared.staging.claim(&path) else {
        return Err(Some(Refusal(
            ErrorCode::AccessViolation,
            "an upload of this file is running",
        )));
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
                    return Ok(Err(Refusal(ErrorCode::FileNotFound, "no such folder")));
                }
                Err(e) => return Err(e),
            };
            match rustix::fs::statat(&place.dir, place.name.as_str(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile => {
                    return Ok(Err(Refusal(ErrorCode::AccessViolation, "not a file")));
                }
                Ok(_) => {}
                Err(_) if allow_create => {}
                Err(_) => {
                    return Ok(Err(Refusal(
                        ErrorCode::FileNotFound,
                        "file not found (creating is disabled)",
                    )));
                }
            }
            Ok(Ok(staging.begin(claim, tsize.unwrap_or(0))?))
        })
        .await;
    let (upload, part) = match staged {
        Ok(Ok(s)) => s,
        Ok(Err(refusal)) => return Err(Some(refusal)),
        Err(e) => return Err(Some(sandbox_refusal(&e))),
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
    if let Err(reason) = &stored {
        tracing::info!(%peer, file = %request.filename, error = %reason, "tftp write failed; nothing kept");
        if outcome.result.is_ok() {
            job.transfer.abort(ErrorCode::DiskFull, "could not store the file");
        }
    }
    // Sends the last ACK (or the ERROR) and dallies: a repeated last block
    // is answered until the peer is satisfied.
    let _ = drive::run_on_thread(job, false).await;
    stored.map(|()| outcome.stats.bytes).map_err(|_| None)
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
        std::io::ErrorKind::PermissionDenied => Refusal(ErrorCode::AccessViolation, "access violation"),
        _ => Refusal(ErrorCode::FileNotFound, "file not found"),
    }
}

/// ERROR for a refused request, never longer than the request that caused
/// it (its source address may be forged). The text goes along when it
/// fits; otherwise the code alone says what happened.
fn bounded_error(refusal: Refusal, request_len: usize) -> Bytes {
    let Refusal(code, text) = refusal;
    // 4 bytes of opcode and code, and the NUL.
    let fits = text.len() + 5 <= request_len;
    error_packet(code, if fits { text } else { "" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_never_longer_than_the_request() {
        for len in 0..64 {
            let e = bounded_error(Refusal(ErrorCode::FileNotFound, "file not found"), len);
            assert!(e.len() <= len.max(5), "{len}: {}", e.len());
        }
        assert_eq!(
            &bounded_error(Refusal(ErrorCode::AccessViolation, "access violation"), 100)[..],
            b"\x00\x05\x00\x02access violation\x00"
        );
    }
}
