//! `sockit lab`: the course's echo server in each concurrency model.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};

use sockit::lab::{self, Model};

use crate::cli::{LabCommand, LabServeArgs, LabStickyArgs};
use crate::exit;

pub async fn run(command: LabCommand) -> anyhow::Result<ExitCode> {
    match command {
        LabCommand::Serve(a) => serve(a).await,
        LabCommand::Sticky(a) => sticky(a).await,
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

/// One scene of the sticky-packet lesson.
struct Scene {
    name: &'static str,
    what: String,
    scenario: lab::sticky::Scenario,
}

async fn sticky(args: LabStickyArgs) -> anyhow::Result<ExitCode> {
    let (n, size, recv) = (usize::from(args.messages), args.size as usize, args.recv_size as usize);
    let base = lab::sticky::Scenario {
        messages: n,
        size,
        nodelay: args.nodelay,
        pause: Duration::ZERO,
        late_receiver: true,
        framed: false,
        recv_size: recv,
    };
    let nagle = if args.nodelay {
        "TCP_NODELAY on"
    } else {
        "TCP_NODELAY off"
    };
    let big = recv * 5 / 2;
    let scenes = [
        Scene {
            name: "back-to-back",
            what: format!("{n} messages of {size} bytes back to back; the receiver reads late; {nagle}"),
            scenario: base,
        },
        Scene {
            name: "paused",
            what: format!("{n} messages of {size} bytes, 20 ms apart; the receiver waits for each; {nagle}"),
            scenario: lab::sticky::Scenario {
                pause: Duration::from_millis(20),
                late_receiver: false,
                ..base
            },
        },
        Scene {
            name: "larger-than-a-read",
            what: format!("{} messages of {big} bytes, reads of {recv}; {nagle}", n.min(3)),
            scenario: lab::sticky::Scenario {
                messages: n.min(3),
                size: big,
                ..base
            },
        },
        Scene {
            name: "length-prefixed",
            what: format!("scene 1 again, each message after its 4-byte length; {nagle}"),
            scenario: lab::sticky::Scenario { framed: true, ..base },
        },
    ];
    for (i, scene) in scenes.iter().enumerate() {
        let scenario = scene.scenario;
        let outcome = tokio::task::spawn_blocking(move || lab::sticky::run(scenario))
            .await
            .context("the demonstration thread failed")?
            .context("running the demonstration over loopback")?;
        let reads = sockit_proto::lab::sticky::cut(&outcome.written, &outcome.reads);
        let tally = sockit_proto::lab::sticky::tally(&reads);
        if args.json {
            crate::output::json_line(&serde_json::json!({
                "event": "scene", "name": scene.name, "framed": scenario.framed,
                "nodelay": scenario.nodelay, "pause_ms": scenario.pause.as_millis() as u64,
                "late_receiver": scenario.late_receiver, "messages": scenario.messages,
                "size": scenario.size, "recv_size": scenario.recv_size, "reads": reads,
                "exact": tally.exact, "merged": tally.merged, "split": tally.split,
                "decoded": outcome.decoded.map(|d| d.0), "intact": outcome.decoded.map(|d| d.1),
            }))?;
            continue;
        }
        crate::outln!("{}. {}", i + 1, scene.what)?;
        for (k, read) in reads.iter().enumerate() {
            crate::outln!(
                "   read {:>2}: {:>6} bytes = {}",
                k + 1,
                read.bytes,
                describe(read, scenario.size, scenario.framed)
            )?;
        }
        let reads_n = plural(reads.len(), "read");
        let verdict = match outcome.decoded {
            Some((count, true)) => format!(
                "{} decoded from {reads_n}, each exactly as sent",
                plural(count, "message")
            ),
            Some((count, false)) => format!("{} decoded, NOT as sent", plural(count, "message")),
            None if tally.merged == 0 && tally.split == 0 => {
                format!(
                    "{reads_n} for {}: one message per read, this time",
                    plural(scenario.messages, "message")
                )
            }
            None => format!(
                "{reads_n} for {}: {} held more than one, {} arrived in pieces: the boundaries are lost",
                plural(scenario.messages, "message"),
                plural(tally.merged, "read"),
                plural(tally.split, "message"),
            ),
        };
        crate::outln!("   -> {verdict}\n")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// `msg000 msg001 msg002[0..5]`: the messages (or pieces) a read held.
fn describe(read: &sockit_proto::lab::sticky::Read, size: usize, framed: bool) -> String {
    const SHOWN: usize = 6;
    let prefix = if framed { 4 } else { 0 };
    let mut parts: Vec<String> = read
        .pieces
        .iter()
        .take(SHOWN)
        .map(|p| {
            if p.whole {
                format!("msg{:03}", p.message)
            } else {
                format!("msg{:03}[{}..{} of {}]", p.message, p.from, p.to, size + prefix)
            }
        })
        .collect();
    if read.pieces.len() > SHOWN {
        parts.push(format!("… ({} in all)", read.pieces.len()));
    }
    parts.join(" ")
}
