//! `sockit serve`: the file service on the one server skeleton.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use sockit::exec::ExecLimits;
use sockit::files::{FileService, FileServiceConfig};
use sockit::server::{ServerConfig, TcpServer};
use sockit_proto::frame::FrameLimits;

use super::lifecycle::Signals;
use super::server_auth;
use crate::UsageError;
use crate::cli::ServeArgs;
use crate::exit;

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let auth = server_auth(&args.auth)?;
    if args.allow_exec && auth.is_none() && !args.listen.ip().is_loopback() {
        return Err(UsageError(format!(
            "refusing --allow-exec with --insecure-no-auth on {}: anyone who can connect could run commands; \
             use a key, or listen on a loopback address",
            args.listen
        ))
        .into());
    }
    let mut files = FileServiceConfig::new(&args.root);
    files.frame_limits = FrameLimits {
        max_header_len: args.max_header,
    };
    if args.allow_exec {
        files.exec = Some(ExecLimits {
            timeout: Duration::from_secs(args.exec_timeout),
            max_output: args.exec_max_output,
        });
    }
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
    let exec_note = if args.allow_exec { ", exec: ON" } else { "" };
    println!("serving {} (auth: {auth_note}{exec_note})", service.root().display());

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
