//! `sockit tftp serve|get|put`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;

use sockit::files::Progress as _;
use sockit::tftp::client::{self, ClientOptions, Summary};
use sockit::tftp::server::TftpConfig;
use sockit_proto::hostport::HostPort;
use sockit_proto::tftp::options::{Ask, Settings};
use sockit_proto::tftp::packet::Mode;
use sockit_proto::tftp::remap::{self, Rules};
use sockit_proto::tftp::transfer;

use super::lifecycle::Listeners;
use super::serve::tftp_note;
use crate::UsageError;
use crate::cli::{TftpClientArgs, TftpCommand, TftpMode, TftpServeArgs};
use crate::output::{Reporter, human_bytes, json_line};

pub async fn run(command: TftpCommand) -> anyhow::Result<ExitCode> {
    match command {
        TftpCommand::Serve(a) => serve(a).await,
        TftpCommand::Get(a) => {
            let last = a.remote.rsplit('/').next().unwrap_or(&a.remote).to_owned();
            let local = super::output_path(a.output.as_deref().or(a.local.as_deref()), &last)?;
            transfer(&a.server, a.remote, local, a.options, true).await
        }
        TftpCommand::Put(a) => {
            let name = || {
                a.local
                    .file_name()
                    .and_then(|n| n.to_str())
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        UsageError(format!(
                            "{} has no file name to use on the server; name it",
                            a.local.display()
                        ))
                    })
            };
            // A trailing `/` names a folder on the server to upload into.
            let remote = match &a.remote {
                Some(r) if r.ends_with('/') => format!("{r}{}", name()?),
                Some(r) => r.clone(),
                None => name()?,
            };
            transfer(&a.server, remote, a.local, a.options, false).await
        }
    }
}

async fn serve(args: TftpServeArgs) -> anyhow::Result<ExitCode> {
    if !(0.01..=255.0).contains(&args.timeout) {
        return Err(UsageError(format!("--timeout {}: expected 0.01 to 255 seconds", args.timeout)).into());
    }
    let mut config = TftpConfig::new(args.root);
    config.allow_write = args.allow_write;
    config.allow_create = args.allow_create;
    config.max_blksize = args.max_blksize;
    config.max_windowsize = args.max_windowsize;
    config.max_transfers = args.max_transfers;
    config.max_per_peer = args.max_per_peer;
    config.max_upload = args.max_upload;
    config.transfer = transfer::Config {
        timeout: Duration::from_secs_f64(args.timeout),
        max_retries: args.retries,
        dally: true,
    };
    config.single_port = args.single_port;
    config.rollover = args.rollover;
    config.allow_fragments = args.allow_fragments;
    config.remap = args.map_file.as_deref().map(load_map_file).transpose()?;
    let note = tftp_note(&config);
    let root = config.root.clone();
    let mut listeners = Listeners::new(&args.run_as)?;
    listeners.tftp(args.listen, config, note)?;
    crate::outln!("serving {}", std::fs::canonicalize(&root).unwrap_or(root).display())?;
    listeners.serve().await
}

/// Reads and checks a tftpd-hpa map file: every bad line is reported, and
/// any stops the server from starting, as tftpd-hpa does.
pub fn load_map_file(path: &std::path::Path) -> anyhow::Result<std::sync::Arc<Rules>> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).with_context(|| format!("cannot open the map file {}", path.display()))?;
    let mut text = String::new();
    file.take(remap::MAX_FILE as u64 + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read the map file {}", path.display()))?;
    if text.len() > remap::MAX_FILE {
        return Err(UsageError(format!(
            "{}: a map file is at most {} bytes",
            path.display(),
            remap::MAX_FILE
        ))
        .into());
    }
    let rules = Rules::parse(&text).map_err(|e| UsageError(format!("{}: {e}", path.display())))?;
    Ok(std::sync::Arc::new(rules))
}

async fn transfer(
    server: &HostPort,
    remote: String,
    local: PathBuf,
    args: TftpClientArgs,
    is_get: bool,
) -> anyhow::Result<ExitCode> {
    let server = server_addr(server).await?;
    let mode = match args.mode {
        TftpMode::Octet => Mode::Octet,
        TftpMode::Netascii => Mode::Netascii,
    };
    let ask = if args.no_options {
        Ask::default()
    } else {
        Ask {
            blksize: args.blksize,
            timeout: args.timeout,
            windowsize: args.windowsize,
            // A read asks for the size (for the progress bar); a write
            // states it (set by the client from the file).
            tsize: (mode == Mode::Octet && is_get).then_some(0),
            rollover: args.rollover,
        }
    };
    let config = transfer::Config {
        timeout: args
            .timeout
            .map_or(transfer::DEFAULT_TIMEOUT, |s| Duration::from_secs(u64::from(s))),
        max_retries: args.retries,
        dally: args.dally,
    };
    let opts = ClientOptions { ask, mode, config };
    let verb = if is_get { "get" } else { "put" };
    let progress = Box::new(TftpProgress::new(args.json, verb, &remote));
    // The progress bar is cleared when the client drops the observer.
    let result = if is_get {
        client::get(server, &remote, &local, opts, progress).await
    } else {
        client::put(server, &local, &remote, opts, progress).await
    };
    let direction = if is_get { "from" } else { "to" };
    let summary = result.with_context(|| format!("tftp {verb} {remote} {direction} {server} failed"))?;
    report(verb, &remote, &summary, args.json)?;
    Ok(ExitCode::SUCCESS)
}

/// The server's address; port 69 when left out.
async fn server_addr(server: &HostPort) -> anyhow::Result<SocketAddr> {
    let port = server.port.unwrap_or(crate::cli::port::TFTP);
    let addrs = sockit::nc::resolve::socket_addrs(&server.host, port, sockit::nc::Family::Any, false).await?;
    addrs.into_iter().next().context("no address for the server")
}

fn report(verb: &str, name: &str, s: &Summary, json: bool) -> std::io::Result<()> {
    let secs = s.elapsed.as_secs_f64();
    let rate = if secs > 0.0 { s.bytes as f64 / secs } else { 0.0 };
    let Settings {
        blksize, windowsize, ..
    } = s.settings;
    if json {
        return json_line(&json!({
            "event": "done", "op": verb, "name": name, "bytes": s.bytes, "seconds": secs,
            "bytes_per_second": rate, "retransmits": s.retransmits, "blksize": blksize,
            "windowsize": windowsize, "fell_back": s.fell_back,
        }));
    }
    if s.fell_back {
        eprintln!("sockit: note: the server refused the options (ERROR 8); sent as plain RFC 1350");
    }
    crate::outln!(
        "{verb} {name}: {} in {secs:.2}s ({}/s), blksize {blksize}, windowsize {windowsize}, {} retransmissions",
        human_bytes(s.bytes),
        human_bytes(rate as u64),
        s.retransmits
    )
}

/// Progress for a TFTP transfer, through the same reporter as file transfers.
struct TftpProgress {
    reporter: Reporter,
    name: String,
    shown: u64,
    started: bool,
}

impl TftpProgress {
    fn new(json: bool, op: &'static str, name: &str) -> Self {
        Self {
            reporter: Reporter::new(json, op),
            name: name.to_string(),
            shown: 0,
            started: false,
        }
    }
}

impl Drop for TftpProgress {
    fn drop(&mut self) {
        self.reporter.end();
    }
}

impl sockit::tftp::drive::Observer for TftpProgress {
    fn negotiated(&mut self, settings: &Settings) {
        if !self.started {
            self.started = true;
            self.reporter.begin(&self.name, settings.tsize.unwrap_or(0), 0);
        }
    }

    fn progress(&mut self, bytes: u64) -> bool {
        if bytes > self.shown {
            self.reporter.advance(bytes - self.shown);
            self.shown = bytes;
        }
        true
    }
}
