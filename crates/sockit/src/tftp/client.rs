//! The TFTP client: `get` and `put`, with options when asked for, and the
//! fallback to plain RFC 1350 when the server refuses them with ERROR 8
//! (a server that ignores options needs no fallback: it simply sends no
//! OACK, and the transfer runs with the defaults).
//!
//! A download is written beside its destination and renamed into place
//! once the last block has arrived; a failed one leaves nothing behind.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use sockit_proto::tftp::options::{Ask, Settings};
use sockit_proto::tftp::packet::{ErrorCode, Mode};
use sockit_proto::tftp::transfer::{self, Failure, Transfer};

use super::drive::{self, Disk, Job, Observer, Outcome};
use crate::Error;

#[derive(Debug, Clone, Copy)]
pub struct ClientOptions {
    pub ask: Ask,
    pub mode: Mode,
    pub config: transfer::Config,
}

/// What a finished transfer reports.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub bytes: u64,
    pub elapsed: Duration,
    pub retransmits: u64,
    pub settings: Settings,
    /// The server refused the options (ERROR 8) and the transfer was
    /// retried as plain RFC 1350.
    pub fell_back: bool,
}

/// Downloads `remote` into `local`.
pub async fn get(
    server: SocketAddr,
    remote: &str,
    local: &Path,
    opts: ClientOptions,
    mut observer: Box<dyn Observer>,
) -> Result<Summary, Error> {
    let direct = crate::partial::is_direct_target(local);
    let part = if direct {
        local.to_path_buf()
    } else {
        crate::partial::partial_path(local)
    };
    let (mut result, back) = get_once(server, remote, local, &part, opts, observer).await;
    observer = back;
    if let Some(plain) = fallback(&result, opts) {
        result = get_once(server, remote, local, &part, plain, observer)
            .await
            .0
            .map(Summary::fell_back);
    }
    if result.is_err() && !direct {
        let _ = tokio::fs::remove_file(&part).await;
    }
    result
}

/// Uploads `local` as `remote`.
pub async fn put(
    server: SocketAddr,
    local: &Path,
    remote: &str,
    opts: ClientOptions,
    observer: Box<dyn Observer>,
) -> Result<Summary, Error> {
    let (result, observer) = put_once(server, local, remote, opts, observer).await;
    match fallback(&result, opts) {
        Some(plain) => put_once(server, local, remote, plain, observer)
            .await
            .0
            .map(Summary::fell_back),
        None => result,
    }
}

/// The options to retry with when the server refused ours with ERROR 8:
/// none at all.
fn fallback(result: &Result<Summary, Error>, opts: ClientOptions) -> Option<ClientOptions> {
    match result {
        Err(Error::Tftp(Failure::Remote {
            code: ErrorCode::OptionsRefused,
            ..
        })) if !opts.ask.is_empty() => Some(ClientOptions {
            ask: Ask::default(),
            ..opts
        }),
        _ => None,
    }
}

impl Summary {
    fn fell_back(mut self) -> Self {
        self.fell_back = true;
        self
    }
}

type Attempt = (Result<Summary, Error>, Box<dyn Observer>);

async fn get_once(
    server: SocketAddr,
    remote: &str,
    local: &Path,
    part: &Path,
    opts: ClientOptions,
    observer: Box<dyn Observer>,
) -> Attempt {
    let opened = super::bind_blocking(unspecified(server)).and_then(|socket| {
        let file = if part == local {
            std::fs::OpenOptions::new().write(true).open(part)
        } else {
            crate::partial::create_fresh(part)
        }
        .map_err(Error::file("creating", part))?;
        Ok((socket, file))
    });
    let (socket, file) = match opened {
        Ok(o) => o,
        Err(e) => return (Err(e), observer),
    };
    let started = Instant::now();
    let transfer = Transfer::client(started, server, remote, opts.mode, opts.ask, true, opts.config);
    let job = Job {
        socket,
        transfer,
        disk: Disk::Write(drive::writer(file)),
        observer,
        shutdown: CancellationToken::new(),
    };
    let (mut job, outcome) = drive::run_on_thread(job, true).await;
    let mut finished = summarize(&outcome, started, job.transfer.settings());
    if finished.is_ok() && part != local {
        if let Err(e) = tokio::fs::rename(part, local).await {
            job.transfer
                .abort(ErrorCode::AccessViolation, "the client could not store the file");
            finished = Err(Error::file("renaming into place", local)(e));
        }
    }
    // Sends the last ACK (or the ERROR); the client does not dally unless
    // configured to (see `transfer::Config::dally`).
    job.disk = Disk::Done;
    let (job, _) = drive::run_on_thread(job, false).await;
    (finished, job.observer)
}

async fn put_once(
    server: SocketAddr,
    local: &Path,
    remote: &str,
    opts: ClientOptions,
    observer: Box<dyn Observer>,
) -> Attempt {
    let opened = std::fs::File::open(local)
        .map_err(Error::file("opening", local))
        .and_then(|file| {
            let len = file.metadata().map_err(Error::file("reading", local))?.len();
            Ok((file, len, super::bind_blocking(unspecified(server))?))
        });
    let (file, len, socket) = match opened {
        Ok(o) => o,
        Err(e) => return (Err(e), observer),
    };
    let mut ask = opts.ask;
    if !ask.is_empty() && opts.mode == Mode::Octet {
        // Tell the server the size up front, so it can refuse at once.
        ask.tsize = Some(len);
    }
    let started = Instant::now();
    let transfer = Transfer::client(started, server, remote, opts.mode, ask, false, opts.config);
    let job = Job {
        socket,
        transfer,
        disk: Disk::Read(file),
        observer,
        shutdown: CancellationToken::new(),
    };
    let (job, outcome) = drive::run_on_thread(job, false).await;
    (summarize(&outcome, started, job.transfer.settings()), job.observer)
}

fn summarize(outcome: &Outcome, started: Instant, settings: Settings) -> Result<Summary, Error> {
    if let Some(e) = &outcome.disk_error {
        return Err(Error::Io {
            op: "reading or writing the file",
            source: io::Error::new(e.kind(), e.to_string()),
        });
    }
    outcome.result.clone().map_err(Error::Tftp)?;
    let finished = outcome.completed_at.unwrap_or_else(Instant::now);
    Ok(Summary {
        bytes: outcome.stats.bytes,
        elapsed: finished - started,
        retransmits: outcome.stats.retransmits,
        settings,
        fell_back: false,
    })
}

fn unspecified(server: SocketAddr) -> SocketAddr {
    let ip = if server.is_ipv4() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    };
    SocketAddr::new(ip, 0)
}
