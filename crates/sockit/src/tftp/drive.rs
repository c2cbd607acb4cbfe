//! Runs one transfer machine against its socket and file until it is done:
//! feeds file bytes in, sends what it transmits, waits for datagrams or its
//! deadline, and writes what it delivers.

use std::time::Instant;

use bytes::BytesMut;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use sockit_proto::tftp::options::Settings;
use sockit_proto::tftp::packet::ErrorCode;
use sockit_proto::tftp::transfer::{Event, Failure, Stats, Transfer};

use crate::disk::{DiskReader, DiskWriter};
use crate::udp::MAX_DATAGRAM;

/// Received bytes gathered before a write: one hand-off to the disk thread
/// per 256 KiB instead of one per block (a wake-up per 512-byte block
/// costs more than the block).
const WRITE_BATCH: usize = 256 * 1024;

/// Where the file bytes come from or go.
#[derive(Debug)]
pub(crate) enum Disk {
    Read(DiskReader),
    // Boxed: the writer carries its hash state, and the other variants
    // are small.
    Write(Box<DiskWriter>),
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

/// A no-op observer for servers.
#[derive(Debug)]
pub(crate) struct Quiet;

impl Observer for Quiet {}

#[derive(Debug)]
pub(crate) struct Outcome {
    pub result: Result<(), Failure>,
    pub stats: Stats,
    /// When the last byte was delivered or acknowledged (before any dally).
    pub completed_at: Option<Instant>,
    /// A local disk failure, which the peer was told about.
    pub disk_error: Option<std::io::Error>,
}

/// Runs until the transfer is finished, or with `until_complete` until its
/// outcome is decided, with its last ACK or ERROR still unsent: the caller
/// puts the file in place (or removes it), then calls again with
/// [`Disk::Done`] to send it and dally.
pub(crate) async fn run(
    socket: &UdpSocket,
    transfer: &mut Transfer,
    disk: &mut Disk,
    observer: &mut dyn Observer,
    shutdown: &CancellationToken,
    until_complete: bool,
) -> Outcome {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut result: Option<Result<(), Failure>> = None;
    let mut completed_at = None;
    let mut disk_error = None;
    let mut batch = BytesMut::new();
    loop {
        if let Disk::Read(reader) = disk {
            while transfer.wants_data() {
                match reader.next().await {
                    Some(Ok(chunk)) => {
                        transfer.push_data(Instant::now(), &chunk);
                        reader.recycle(chunk);
                    }
                    Some(Err(e)) => {
                        transfer.abort(ErrorCode::NotDefined, "read error on the server");
                        disk_error = Some(e);
                        break;
                    }
                    None => transfer.end_data(Instant::now()),
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
                    batch.extend_from_slice(&bytes);
                    if batch.len() >= WRITE_BATCH && !flush(disk, &mut batch).await {
                        transfer.abort(ErrorCode::DiskFull, "disk full or write error");
                    }
                }
                Event::Complete => {
                    if !flush(disk, &mut batch).await {
                        transfer.abort(ErrorCode::DiskFull, "disk full or write error");
                        continue;
                    }
                    completed_at = Some(Instant::now());
                    result = Some(Ok(()));
                }
                Event::Failed(f) => {
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
        while let Some(tx) = transfer.poll_transmit() {
            if let Err(e) = socket.send_to(&tx.data, tx.to).await {
                // Loss is the protocol's to handle; the timer resends.
                tracing::debug!(to = %tx.to, error = %e, "tftp send failed");
            }
        }
        if transfer.is_finished() {
            break;
        }
        let deadline = transfer.poll_timeout();
        tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok((n, from)) => transfer.handle_datagram(Instant::now(), from, buf.get(..n).unwrap_or_default()),
                // An ICMP error for an earlier send: the timer covers it.
                Err(e) => tracing::debug!(error = %e, "tftp receive failed"),
            },
            () = sleep_until(deadline) => transfer.handle_timeout(Instant::now()),
            () = shutdown.cancelled() => transfer.abort(ErrorCode::NotDefined, "shutting down"),
        }
    }
    Outcome {
        result: result.unwrap_or(Err(Failure::Aborted("ended without completing".into()))),
        stats: transfer.stats(),
        completed_at,
        disk_error,
    }
}

/// Hands the gathered bytes to the disk thread; false once it has failed.
async fn flush(disk: &mut Disk, batch: &mut BytesMut) -> bool {
    if batch.is_empty() {
        return true;
    }
    let chunk = batch.split().freeze();
    match disk {
        Disk::Write(writer) => writer.write(chunk).await,
        Disk::Read(_) | Disk::Done => true,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}
