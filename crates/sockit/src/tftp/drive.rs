//! Runs one transfer machine against its socket and file until it is done:
//! feeds file bytes in, sends what it transmits, waits for datagrams or its
//! deadline, and writes what it delivers.
//!
//! Why a blocking thread per transfer, in a tokio crate: TFTP is lock-step,
//! so a transfer's speed is one round trip per block. A thread that sleeps
//! in `recvfrom` wakes straight into the reply; an async task sleeps in
//! epoll, then reads, and crosses the runtime's wake-up machinery on every
//! block. Measured on these machines the async loop was 13% slower than
//! tftpd-hpa (which forks per transfer); the thread per transfer is not.
//! The file is read and written on the same thread, with large buffers.
//! Everything before (the Sandbox, negotiation) stays async.

use std::fs::File;
use std::io::{self, BufWriter, IoSlice, Read as _, Write as _};
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use rustix::net::addr::SocketAddrArg as _;
use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny, sendmmsg};
use tokio_util::sync::CancellationToken;

use sockit_proto::tftp::options::Settings;
use sockit_proto::tftp::packet::ErrorCode;
use sockit_proto::tftp::transfer::{Event, Failure, Stats, Transfer, Transmit};

use crate::udp::MAX_DATAGRAM;

/// File bytes read (and buffered for writing) at a time.
const FILE_CHUNK: usize = 256 * 1024;

/// How long a receive waits at most, so shutdown and retransmission
/// deadlines are noticed; retransmissions may be this much late.
const WAKE_EVERY: Duration = Duration::from_millis(50);

/// Where the file bytes come from or go.
#[derive(Debug)]
pub(crate) enum Disk {
    Read(File),
    Write(BufWriter<File>),
    /// Nothing left to move: the receiver's dally after completion.
    Done,
}

/// Told about a transfer's progress as it happens.
pub trait Observer: Send {
    fn negotiated(&mut self, _settings: &Settings) {}
    /// Bytes delivered or acknowledged so far; false stops the transfer
    /// (an upload over its size limit).
    fn progress(&mut self, _bytes: u64) -> bool {
        true
    }
}

/// Everything one transfer owns while it runs on its thread.
pub(crate) struct Job {
    pub socket: UdpSocket,
    pub transfer: Transfer,
    pub disk: Disk,
    pub observer: Box<dyn Observer>,
    pub shutdown: CancellationToken,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("transfer", &self.transfer)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub(crate) struct Outcome {
    pub result: Result<(), Failure>,
    pub stats: Stats,
    /// When the last byte was delivered or acknowledged (before any dally).
    pub completed_at: Option<Instant>,
    /// A local disk failure, which the peer was told about.
    pub disk_error: Option<io::Error>,
}

/// Runs `job` on a blocking thread; hands it back with the outcome.
pub(crate) async fn run_on_thread(mut job: Job, until_complete: bool) -> (Job, Outcome) {
    let handle = tokio::task::spawn_blocking(move || {
        let outcome = run(&mut job, until_complete);
        (job, outcome)
    });
    match handle.await {
        Ok(done) => done,
        // The thread panicked: a bug; surface it rather than hide it.
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Runs until the transfer is finished, or with `until_complete` until its
/// outcome is decided, with its last ACK or ERROR still unsent: the caller
/// puts the file in place (or removes it), then runs it again with
/// [`Disk::Done`] to send that and dally.
pub(crate) fn run(job: &mut Job, until_complete: bool) -> Outcome {
    let Job {
        socket,
        transfer,
        disk,
        observer,
        shutdown,
    } = job;
    let mut buf = vec![0u8; MAX_DATAGRAM.max(FILE_CHUNK)];
    let mut result: Option<Result<(), Failure>> = None;
    let mut completed_at = None;
    let mut disk_error = None;
    let mut outgoing: Vec<Transmit> = Vec::new();
    // Best effort: without a timeout a lost datagram would be waited on
    // forever, so a failure here ends the transfer below.
    let _ = socket.set_read_timeout(Some(WAKE_EVERY));
    loop {
        if let Disk::Read(file) = disk {
            loop {
                let want = transfer.data_wanted(FILE_CHUNK);
                if want == 0 {
                    break;
                }
                match read_some(file, buf.get_mut(..want).unwrap_or_default()) {
                    Ok(0) => transfer.end_data(Instant::now()),
                    Ok(n) => transfer.push_data(Instant::now(), buf.get(..n).unwrap_or_default()),
                    Err(e) => {
                        transfer.abort(ErrorCode::NotDefined, "read error");
                        disk_error = Some(e);
                        break;
                    }
                }
            }
        }
        if !observer.progress(transfer.stats().bytes) {
            transfer.abort(ErrorCode::DiskFull, "file too large");
        }
        while let Some(event) = transfer.poll_event() {
            match event {
                Event::Negotiated(s) => observer.negotiated(&s),
                Event::Data(bytes) => {
                    if let Disk::Write(w) = disk {
                        if let Err(e) = w.write_all(&bytes) {
                            transfer.abort(ErrorCode::DiskFull, "disk full or write error");
                            disk_error = Some(e);
                        }
                    }
                }
                Event::Complete => {
                    if let Disk::Write(w) = disk {
                        if let Err(e) = w.flush() {
                            transfer.abort(ErrorCode::DiskFull, "disk full or write error");
                            disk_error = Some(e);
                            continue;
                        }
                    }
                    completed_at = Some(Instant::now());
                    result = Some(Ok(()));
                }
                Event::Failed(f) => {
                    // A failure after completion (shutdown during the
                    // dally) does not undo the completed transfer.
                    if result.is_none() {
                        result = Some(Err(f));
                    }
                }
            }
        }
        if until_complete && result.is_some() {
            // Decided: the caller puts the file in place (or removes it)
            // before the last ACK or the ERROR goes out, so the peer never
            // hears "done" before the file is there.
            break;
        }
        outgoing.extend(std::iter::from_fn(|| transfer.poll_transmit()));
        send_all(socket, &outgoing);
        outgoing.clear();
        if transfer.is_finished() {
            break;
        }
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => transfer.handle_datagram(Instant::now(), from, buf.get(..n).unwrap_or_default()),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            // An ICMP error for an earlier send: the timer covers it.
            Err(e) => tracing::debug!(error = %e, "tftp receive failed"),
        }
        let now = Instant::now();
        if transfer.poll_timeout().is_some_and(|deadline| deadline <= now) {
            transfer.handle_timeout(now);
        }
        if shutdown.is_cancelled() {
            transfer.abort(ErrorCode::NotDefined, "shutting down");
        }
    }
    Outcome {
        result: result.unwrap_or(Err(Failure::Aborted("ended without completing".into()))),
        stats: transfer.stats(),
        completed_at,
        disk_error,
    }
}

/// Datagrams handed to the kernel in one `sendmmsg`.
const SEND_BATCH: usize = 64;

/// Sends every datagram. A window goes out in one `sendmmsg`: the receiver
/// then wakes once to a queue of blocks rather than once per block (which,
/// with both ends on one CPU, is a context switch per block).
fn send_all(socket: &UdpSocket, outgoing: &[Transmit]) {
    let mut rest = outgoing;
    while rest.len() > 1 {
        let (batch, _) = rest.split_at(rest.len().min(SEND_BATCH));
        let addrs: Vec<SocketAddrAny> = batch.iter().map(|t| t.to.as_any()).collect();
        let iovs: Vec<[IoSlice<'_>; 1]> = batch.iter().map(|t| [IoSlice::new(&t.data)]).collect();
        let mut controls: Vec<SendAncillaryBuffer<'_, '_, '_>> =
            batch.iter().map(|_| SendAncillaryBuffer::default()).collect();
        let mut msgs: Vec<MMsgHdr<'_>> = addrs
            .iter()
            .zip(&iovs)
            .zip(controls.iter_mut())
            .map(|((addr, iov), control)| MMsgHdr::new_with_addr(addr, iov, control))
            .collect();
        match sendmmsg(socket, &mut msgs, SendFlags::empty()) {
            Ok(n) if n > 0 => rest = rest.get(n..).unwrap_or_default(),
            // Not supported, or a failure for the first datagram: fall back
            // to one at a time, which reports each failure.
            _ => break,
        }
    }
    for tx in rest {
        if let Err(e) = socket.send_to(&tx.data, tx.to) {
            // Loss is the protocol's to handle; the timer resends.
            tracing::debug!(to = %tx.to, error = %e, "tftp send failed");
        }
    }
}

/// Reads up to `buf.len()` bytes, retrying interrupted reads; 0 means end
/// of file.
fn read_some(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match file.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// A buffered writer for a received file.
pub(crate) fn writer(file: File) -> BufWriter<File> {
    BufWriter::with_capacity(FILE_CHUNK, file)
}
