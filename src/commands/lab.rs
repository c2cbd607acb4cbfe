//! `sockit lab`: the course's echo server in each concurrency model.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};

use sockit::lab::{self, Model};

use crate::cli::{LabCommand, LabServeArgs};
use crate::exit;

pub async fn run(command: LabCommand) -> anyhow::Result<ExitCode> {
    match command {
        LabCommand::Serve(a) => serve(a).await,
        LabCommand::EchoStdio => {
            tokio::task::spawn_blocking(lab::process::echo_stdio)
                .await
                .context("the echo thread failed")?
                .context("echoing standard input")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn serve(args: LabServeArgs) -> anyhow::Result<ExitCode> {
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch for signals")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch for signals")?;
    let listener = bind(args.listen, args.backlog)?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let model = args.model;
    crate::outln!(
        "listening on tcp {addr} (lab echo, model: {}, auth: none)",
        model.name()
    )?;
    crate::outln!("like the course's: {}", model.course())?;
    crate::outln!("where it stops scaling: {}", model.limit())?;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    if model == Model::Async {
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        tokio::spawn(async move {
            let _ = done_tx.send(lab::asynchronous::serve(listener).await);
        });
    } else {
        let child = lab::process::Child {
            program: std::env::current_exe().context("finding this program for the process model")?,
            args: vec!["lab".into(), "echo-stdio".into()],
        };
        // A thread of its own, not the blocking pool: it runs until the
        // process ends, and the runtime must not wait for it.
        std::thread::Builder::new()
            .name(format!("lab-{}", model.name()))
            .spawn(move || {
                let _ = done_tx.send(lab::serve_blocking(model, listener, &child));
            })
            .context("starting the server thread")?;
    }
    tokio::select! {
        done = done_rx => {
            done.context("the server thread ended")?.context("the server failed")?;
            Ok(ExitCode::SUCCESS)
        }
        _ = interrupt.recv() => Ok(ExitCode::from(exit::INTERRUPTED)),
        _ = terminate.recv() => Ok(ExitCode::SUCCESS),
    }
}

/// A listening socket with the backlog asked for and SO_REUSEADDR, as the
/// course's servers set it.
fn bind(addr: SocketAddr, backlog: u32) -> anyhow::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket
        .bind(&addr.into())
        .with_context(|| format!("cannot listen on {addr}"))?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket.into())
}
