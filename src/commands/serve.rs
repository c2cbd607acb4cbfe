//! `sockit serve`: the file service on the one server skeleton.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;

use sockit::auth::{self, Auth};
use sockit::files::{FileService, FileServiceConfig};
use sockit::server::{ServerConfig, TcpServer};
use sockit_proto::frame::FrameLimits;

use super::digest;
use crate::UsageError;
use crate::cli::ServeArgs;
use crate::exit;

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let auth = server_auth(&args)?;
    let mut files = FileServiceConfig::new(&args.root);
    files.frame_limits = FrameLimits {
        max_header_len: args.max_header,
    };
    let service = FileService::new(files).context("cannot start the file service")?;
    let mut config = ServerConfig::new(args.listen, auth.clone());
    config.backlog = args.backlog;
    config.reuse_address = !args.no_reuse_address;
    config.max_connections = args.max_connections;
    config.handshake_timeout = Duration::from_secs(args.handshake_timeout);
    config.idle_timeout = Duration::from_secs(args.idle_timeout);
    config.drain_timeout = Duration::from_secs(args.drain_timeout);
    // Signal handlers go in before the address is announced: a supervisor
    // (or test) that reads the address may send SIGTERM right away.
    let signals = Signals::install().context("cannot watch for signals")?;
    let server = TcpServer::bind(config)?;

    // The first stdout line is the contract scripts and tests rely on.
    println!("listening on {}", server.local_addr());
    let auth_note = match &auth {
        Some(a) => format!("hmac-{}", a.digest.name()),
        None => "OFF (--insecure-no-auth)".to_owned(),
    };
    println!("serving {} (auth: {auth_note})", service.root().display());

    let shutdown = CancellationToken::new();
    let signal = tokio::spawn(signals.wait(shutdown.clone()));
    server.run(Arc::new(service), shutdown).await;
    let interrupted = signal.await.unwrap_or(false);
    Ok(if interrupted {
        ExitCode::from(exit::INTERRUPTED)
    } else {
        ExitCode::SUCCESS
    })
}

/// `--key-file`, or the per-user default key, created on first start.
fn server_auth(args: &ServeArgs) -> anyhow::Result<Option<Auth>> {
    if args.auth.insecure_no_auth {
        tracing::warn!(
            "authentication is OFF: anyone who can connect can read and write {}",
            args.root.display()
        );
        return Ok(None);
    }
    let key = match &args.auth.key_file {
        Some(path) => auth::load_key(path).context("cannot load the key")?,
        None => {
            let path = auth::default_key_path()
                .ok_or_else(|| UsageError("no HOME or XDG_CONFIG_HOME for the default key; pass --key-file".into()))?;
            let (key, created) = auth::load_or_create_key(&path).context("cannot set up the default key")?;
            if created {
                tracing::info!(path = %path.display(), "created a new key; clients on this machine use it by default");
            }
            key
        }
    };
    Ok(Some(Auth {
        key,
        digest: digest(args.auth.auth_digest),
    }))
}

/// SIGINT and SIGTERM, registered up front.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Cancels `shutdown` on the first signal; true for Ctrl-C (exit 130).
    async fn wait(mut self, shutdown: CancellationToken) -> bool {
        let interrupted = tokio::select! {
            _ = self.interrupt.recv() => true,
            _ = self.terminate.recv() => false,
        };
        tracing::info!("shutting down");
        shutdown.cancel();
        interrupted
    }
}
