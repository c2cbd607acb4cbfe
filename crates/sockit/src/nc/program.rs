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
            .kill_on_drop(true);
        Ok(cmd)
    }
}

/// Runs `program` over one connection: what the peer sends is its stdin
/// (closed when the peer half-closes), its stdout goes to the peer (a
/// half-close when it ends). Returns the program's exit code.
pub async fn run<S>(program: &Program, conn: S, peer: SocketAddr) -> Result<Option<i32>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut cmd = program.command()?;
    cmd.env("NCAT_REMOTE_ADDR", peer.ip().to_string())
        .env("NCAT_REMOTE_PORT", peer.port().to_string());
    let mut child = cmd.spawn().map_err(Error::io("starting the -e program"))?;
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
    tokio::join!(inbound, outbound);
    let status = match tokio::time::timeout(LINGER, child.wait()).await {
        Ok(status) => status.map_err(Error::io("waiting for the -e program"))?,
        Err(_) => {
            let _ = child.kill().await;
            return Ok(None);
        }
    };
    Ok(status.code())
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
        let (conn, peer) = listener.accept().await.map_err(Error::io("accepting"))?;
        let _ = conn.set_nodelay(true);
        if !keep {
            return run(&program, conn, peer).await;
        }
        let Ok(slot) = std::sync::Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!(%peer, "turned away: {max_clients} -e programs are running");
            continue;
        };
        let program = program.clone();
        tokio::spawn(async move {
            if let Err(e) = run(&program, conn, peer).await {
                tracing::warn!(%peer, error = %e, "-e program");
            }
            drop(slot);
        });
    }
}
