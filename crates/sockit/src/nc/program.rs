//! `nc -e PROG` / `-c 'SHELL LINE'`: a program with the connection as its
//! stdin and stdout, as ncat runs it. Its stderr stays the terminal's.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::process::Command;

use crate::Error;

/// How long a program may run on once its connection is finished both
/// ways, before it is killed: nothing can reach it or hear it any more.
pub const LINGER: Duration = Duration::from_secs(2);

/// What to run for each connection.
#[derive(Debug, Clone)]
pub enum Program {
    /// `-e`: a program and its arguments, run directly.
    Argv(Vec<String>),
    /// `-c`: a line for `sh -c`.
    Shell(String),
}

impl Program {
    fn command(&self) -> Result<Command, Error> {
        let mut cmd = match self {
            Program::Shell(line) => {
                let mut c = Command::new("sh");
                c.arg("-c").arg(line);
                c
            }
            Program::Argv(argv) => {
                let (program, args) = argv
                    .split_first()
                    .ok_or_else(|| Error::Usage("-e needs a program".into()))?;
                let mut c = Command::new(program);
                c.args(args);
                c
            }
        };
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .kill_on_drop(true);
        Ok(cmd)
    }
}

/// Runs `program` over one connection: what the peer sends is its stdin
/// (closed when the peer half-closes), its stdout goes to the peer (a
/// half-close when it ends). Returns the program's exit code.
pub async fn run<S>(program: &Program, conn: S, peer: Option<SocketAddr>) -> Result<Option<i32>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut cmd = program.command()?;
    if let Some(peer) = peer {
        cmd.env("NCAT_REMOTE_ADDR", peer.ip().to_string())
            .env("NCAT_REMOTE_PORT", peer.port().to_string());
    }
    let mut child = cmd.spawn().map_err(Error::io("starting the -e program"))?;
    let group = child
        .id()
        .and_then(|id| rustix::process::Pid::from_raw(i32::try_from(id).ok()?));
    let (mut stdin, mut stdout) = (child.stdin.take(), child.stdout.take());
    let (mut from_peer, mut to_peer) = tokio::io::split(conn);
    let inbound = async {
        if let Some(stdin) = &mut stdin {
            let _ = tokio::io::copy(&mut from_peer, stdin).await;
            let _ = stdin.shutdown().await;
        }
        drop(stdin.take());
    };
    let outbound = async {
        if let Some(stdout) = &mut stdout {
            let _ = tokio::io::copy(stdout, &mut to_peer).await;
        }
        let _ = to_peer.shutdown().await;
    };
    tokio::pin!(inbound, outbound);
    let (mut sent_all, mut exited) = (false, None);
    // Done when the program's output has all gone out and either it has
    // exited (ncat closes then, even if the peer is still talking) or the
    // peer has finished too.
    let mut heard_all = false;
    // Once the program has exited, its output has LINGER to drain: a
    // child it left behind may hold the pipe open.
    let mut drain_by = None;
    while !(sent_all && (exited.is_some() || heard_all)) {
        tokio::select! {
            () = &mut outbound, if !sent_all => sent_all = true,
            () = sleep_until(drain_by), if drain_by.is_some() => break,
            () = &mut inbound, if !heard_all => heard_all = true,
            status = child.wait(), if exited.is_none() => {
                exited = Some(status.map_err(Error::io("waiting for the -e program"))?);
                drain_by = Some(tokio::time::Instant::now() + LINGER);
            }
        }
    }
    let status = match exited {
        Some(status) => Some(status),
        None => tokio::time::timeout(LINGER, child.wait())
            .await
            .ok()
            .transpose()
            .ok()
            .flatten(),
    };
    // Whatever the program left running (a `-c` line's children) goes too.
    if let Some(pid) = group {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    let _ = child.kill().await;
    Ok(status.and_then(|s| s.code()))
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Accepts connections and runs `program` for each: one connection, or,
/// with `keep`, every one (each its own process, at most `max_clients` at
/// once; more are turned away) until the task is dropped.
pub async fn serve(
    listener: TcpListener,
    program: Program,
    keep: bool,
    max_clients: usize,
) -> Result<Option<i32>, Error> {
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(max_clients.max(1)));
    loop {
        let (conn, peer) = match listener.accept().await {
            Ok((conn, peer)) => (conn, super::canonical(peer)),
            Err(e) if keep => {
                // Out of descriptors or a reset in the queue: the listener
                // itself is fine.
                tracing::debug!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            Err(e) => return Err(Error::io("accepting")(e)),
        };
        let _ = conn.set_nodelay(true);
        if !keep {
            return run(&program, conn, Some(peer)).await;
        }
        let Ok(slot) = std::sync::Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!(%peer, "turned away: {max_clients} -e programs are running");
            continue;
        };
        let program = program.clone();
        tokio::spawn(async move {
            if let Err(e) = run(&program, conn, Some(peer)).await {
                tracing::warn!(%peer, error = %e, "-e program");
            }
            drop(slot);
        });
    }
}
