//! `sockit lab`: the course's echo server in each concurrency model.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};

use sockit::lab::{self, Model};

use crate::cli::{LabCaptureArgs, LabCommand, LabCompareArgs, LabLoad, LabServeArgs, LabStickyArgs};
use crate::exit;

pub async fn run(command: LabCommand) -> anyhow::Result<ExitCode> {
    match command {
        LabCommand::Serve(a) => serve(a).await,
        LabCommand::Sticky(a) => sticky(a).await,
        LabCommand::Compare(a) => compare(a).await,
        LabCommand::Capture(a) => capture(a).await,
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

async fn capture(args: LabCaptureArgs) -> anyhow::Result<ExitCode> {
    let plan = lab::capture::Plan {
        output: args.output.clone(),
        interface: args.interface,
        filter: args.filter.map(|f| vec![f]).unwrap_or_default(),
        buffer_kib: args.buffer.saturating_mul(1024),
        linger: Duration::from_secs_f64(args.linger.clamp(0.0, 60.0)),
        command: args.command,
    };
    // The command runs in the foreground with this terminal; tcpdump and
    // the waiting are blocking work.
    let outcome = tokio::task::spawn_blocking(move || lab::capture::run(&plan))
        .await
        .context("the capture thread failed")??;
    let packets = outcome
        .packets
        .map(|n| format!("{n} packets"))
        .unwrap_or_else(|| "packets".into());
    eprintln!(
        "sockit: captured {packets} to {}; read them with: sockit explain {}",
        args.output.display(),
        args.output.display()
    );
    if let Some(dropped @ 1..) = outcome.dropped {
        eprintln!(
            "sockit: warning: the kernel dropped {dropped} packets that tcpdump could not keep up with; \
             the capture has gaps (a larger --buffer, or a slower transfer, helps)"
        );
    }
    Ok(match outcome.status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::from(exit::INTERRUPTED),
    })
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

/// One load against one model.
#[derive(Debug, serde::Serialize)]
struct Measurement {
    model: &'static str,
    connections: usize,
    requests_per_sec: f64,
    p50_us: u64,
    p99_us: u64,
    cpu_us_per_request: Option<f64>,
    connect_failures: u64,
    connect_seconds: f64,
    errors: u64,
    /// Connections that got no echo within the duration.
    starved: u64,
}

/// What a model came to over every load.
#[derive(Debug, serde::Serialize)]
struct ModelSummary {
    model: &'static str,
    rss_bytes: u64,
    rss_per_idle_connection: Option<f64>,
    idle_connections: usize,
    /// The first load at which it did worse with more clients: under half
    /// its best rate so far, failed connects, or nothing served.
    stops_scaling_at: Option<usize>,
    limit: &'static str,
    /// A load left out because the model would not fit in memory.
    not_run: Option<NotRun>,
}

#[derive(Debug, serde::Serialize)]
struct NotRun {
    connections: usize,
    reason: String,
}

/// Descriptors kept free for everything that is not a client connection.
const SPARE_FDS: u64 = 256;

/// `max`: as many client connections as both ends can hold. The clients
/// live in this process and the server in a child, each with the same
/// descriptor limit; every client also takes a local port.
fn most_connections() -> usize {
    let fds = lab::measure::raise_fd_limit().saturating_sub(SPARE_FDS);
    let ports = lab::measure::ephemeral_ports().saturating_sub(SPARE_FDS);
    usize::try_from(fds.min(ports)).unwrap_or(usize::MAX).max(1)
}

/// Why `connections` clients would not fit: the idle phase measured what
/// one costs the model, and a load that would take more than half the
/// memory still available is not started (a process or thread per client
/// at tens of thousands of clients).
fn too_big(connections: usize, per_idle: Option<f64>, available: Option<u64>) -> Option<String> {
    let needed = per_idle? * connections as f64;
    let available = available? as f64;
    (needed > available / 2.0).then(|| {
        format!(
            "not run: {connections} connections would need about {} (half of the available {} is the ceiling)",
            crate::output::human_bytes(needed as u64),
            crate::output::human_bytes(available as u64)
        )
    })
}

async fn compare(args: LabCompareArgs) -> anyhow::Result<ExitCode> {
    let models = if args.models.is_empty() {
        Model::ALL.to_vec()
    } else {
        args.models.clone()
    };
    let program = std::env::current_exe().context("finding this program to start the models")?;
    let duration = Duration::from_secs_f64(args.duration.clamp(0.1, 3600.0));
    let most = most_connections();
    let mut loads: Vec<usize> = args
        .connections
        .iter()
        .map(|l| match l {
            LabLoad::Connections(c) => *c,
            LabLoad::Max => most,
        })
        .collect();
    loads.dedup();
    let total = (models.len() * (loads.len() + 1)) as u64;
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) && !args.json {
        indicatif::ProgressBar::with_draw_target(Some(total), indicatif::ProgressDrawTarget::stderr()).with_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} loads, about {eta} left: {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        )
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut measurements = Vec::new();
    let mut summaries = Vec::new();
    for model in models {
        let mut server = tokio::process::Command::new(&program)
            .args([
                "lab",
                "serve",
                "--model",
                model.name(),
                "--listen",
                "127.0.0.1:0",
                "--backlog",
                "4096",
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting a model's server")?;
        let pid = server.id().context("the model's server has no process id")?;
        let addr = announced_addr(&mut server).await?;
        let base_rss = lab::measure::rss_with_children(pid);
        bar.set_message(format!("{}: {} idle connections", model.name(), args.idle));
        let idle_rss = std::sync::Arc::new(std::sync::Mutex::new(None));
        let held = {
            let idle_rss = std::sync::Arc::clone(&idle_rss);
            sockit::bench::hold_idle(
                addr,
                None,
                args.idle,
                sockit::bench::DEFAULT_CONNECT_PARALLELISM,
                |_| {},
                async move {
                    // Time for the server to accept what the kernel queued.
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    if let Ok(mut r) = idle_rss.lock() {
                        *r = Some(lab::measure::rss_with_children(pid));
                    }
                },
            )
            .await
        };
        bar.inc(1);
        let idle_rss = idle_rss.lock().ok().and_then(|r| *r).unwrap_or(base_rss);
        let per_idle = (held > 0).then(|| idle_rss.saturating_sub(base_rss) as f64 / held as f64);
        let mut rates: Vec<(usize, f64, u64)> = Vec::new();
        let mut not_run = None;
        for &connections in &loads {
            let tasks = model
                .task_per_connection()
                .then(lab::measure::tasks_available)
                .flatten();
            let reason = too_big(connections, per_idle, lab::measure::memory_available())
                .or_else(|| too_many_tasks(connections, tasks));
            if let Some(reason) = reason {
                not_run = Some(NotRun { connections, reason });
                bar.inc(1);
                continue;
            }
            bar.set_message(format!("{}: {connections} connections", model.name()));
            let cpu_before = lab::measure::cpu_time(pid);
            let report = sockit::bench::echo(sockit::bench::EchoLoad {
                addr,
                auth: None,
                connections: connections.max(1),
                duration,
                udp: false,
                payload: args.payload.max(1),
                connect_parallelism: sockit::bench::DEFAULT_CONNECT_PARALLELISM,
            })
            .await?;
            // The process model's children are counted once reaped.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let cpu = cpu_before
                .zip(lab::measure::cpu_time(pid))
                .map(|(a, b)| b.saturating_sub(a));
            let m = Measurement {
                model: model.name(),
                connections,
                requests_per_sec: report.requests_per_sec,
                p50_us: report.p50_us,
                p99_us: report.p99_us,
                cpu_us_per_request: cpu
                    .filter(|_| report.requests > 0)
                    .map(|c| c.as_secs_f64() * 1e6 / report.requests as f64),
                connect_failures: report.connect_failures,
                connect_seconds: report.connect_seconds,
                errors: report.errors,
                starved: report.starved_connections,
            };
            rates.push((connections, m.requests_per_sec, m.connect_failures + m.starved));
            if args.json {
                crate::output::json_line(&crate::output::named("measurement", serde_json::to_value(&m)?))?;
            }
            measurements.push(m);
            bar.inc(1);
        }
        let _ = server.kill().await;
        let summary = ModelSummary {
            model: model.name(),
            rss_bytes: base_rss,
            rss_per_idle_connection: per_idle,
            idle_connections: held,
            stops_scaling_at: stops_scaling_at(&rates).or(not_run.as_ref().map(|n| n.connections)),
            limit: model.limit(),
            not_run,
        };
        if args.json {
            crate::output::json_line(&crate::output::named("model", serde_json::to_value(&summary)?))?;
        }
        summaries.push(summary);
    }
    bar.finish_and_clear();
    if let Some(path) = &args.csv {
        std::fs::write(path, csv(&measurements, &summaries)).with_context(|| format!("writing {}", path.display()))?;
    }
    for path in &args.chart {
        write_chart(path, &measurements).with_context(|| format!("writing {}", path.display()))?;
    }
    if !args.json {
        print_table(&measurements, &summaries)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Requests/s and p99 latency against connections, one line per model.
fn write_chart(path: &std::path::Path, measurements: &[Measurement]) -> anyhow::Result<()> {
    let lines = |value: fn(&Measurement) -> f64| -> Vec<crate::chart::Line> {
        let mut lines: Vec<crate::chart::Line> = Vec::new();
        for m in measurements {
            let point = (m.connections as f64, value(m));
            match lines.iter_mut().find(|l| l.name == m.model) {
                Some(line) => line.points.push(point),
                None => lines.push(crate::chart::Line {
                    name: m.model.to_owned(),
                    points: vec![point],
                }),
            }
        }
        lines
    };
    let rates = lines(|m| m.requests_per_sec);
    let p99 = lines(|m| m.p99_us as f64);
    let svg = crate::chart::svg(&[
        crate::chart::Panel {
            title: "requests per second",
            y_label: "req/s",
            lines: &rates,
            // Rates bunch at the top; the bottom right is empty.
            legend: plotters::chart::SeriesLabelPosition::LowerRight,
        },
        crate::chart::Panel {
            title: "p99 latency",
            y_label: "µs",
            lines: &p99,
            // Latency grows with load, leaving the top left empty.
            legend: plotters::chart::SeriesLabelPosition::UpperLeft,
        },
    ])?;
    let is_png = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("png"));
    let bytes = if is_png {
        crate::chart::png(&svg)?
    } else {
        svg.into_bytes()
    };
    std::fs::write(path, bytes)?;
    Ok(())
}

/// The first number of connections at which a model, given more clients,
/// did worse: under half its best rate so far, clients failed to connect
/// or left unserved, or no request served at all.
fn stops_scaling_at(rates: &[(usize, f64, u64)]) -> Option<usize> {
    let mut best = 0.0_f64;
    for &(connections, rate, failed) in rates {
        if rate == 0.0 || failed > 0 || rate < best / 2.0 {
            return Some(connections);
        }
        best = best.max(rate);
    }
    None
}

/// The `listening on tcp ADDR` line a model's server prints first.
async fn announced_addr(server: &mut tokio::process::Child) -> anyhow::Result<SocketAddr> {
    use tokio::io::AsyncBufReadExt as _;
    let out = server.stdout.take().context("the model's server has no output")?;
    let mut lines = tokio::io::BufReader::new(out).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .context("the model's server did not announce itself")??
        .context("the model's server ended before it listened")?;
    let addr = line.split_whitespace().nth(3).context("an unexpected announcement")?;
    // The rest of its output is not needed, but must not block it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    addr.parse()
        .with_context(|| format!("an unexpected address in {line:?}"))
}

fn csv(measurements: &[Measurement], summaries: &[ModelSummary]) -> String {
    let mut out = String::from(
        "model,connections,requests_per_sec,p50_us,p99_us,cpu_us_per_request,connect_failures,starved,errors,rss_per_idle_connection\n",
    );
    for m in measurements {
        let per_idle = summaries
            .iter()
            .find(|s| s.model == m.model)
            .and_then(|s| s.rss_per_idle_connection)
            .map(|b| format!("{b:.0}"))
            .unwrap_or_default();
        let cpu = m.cpu_us_per_request.map(|c| format!("{c:.2}")).unwrap_or_default();
        out.push_str(&format!(
            "{},{},{:.0},{},{},{cpu},{},{},{},{per_idle}\n",
            m.model, m.connections, m.requests_per_sec, m.p50_us, m.p99_us, m.connect_failures, m.starved, m.errors
        ));
    }
    out
}

fn print_table(measurements: &[Measurement], summaries: &[ModelSummary]) -> anyhow::Result<()> {
    crate::outln!(
        "{:<12} {:>6} {:>10} {:>9} {:>9} {:>11} {:>8} {:>8}",
        "model",
        "conns",
        "req/s",
        "p50 µs",
        "p99 µs",
        "CPU µs/req",
        "failed",
        "starved"
    )?;
    for m in measurements {
        let cpu = m
            .cpu_us_per_request
            .map(|c| format!("{c:.1}"))
            .unwrap_or_else(|| "-".into());
        crate::outln!(
            "{:<12} {:>6} {:>10.0} {:>9} {:>9} {:>11} {:>8} {:>8}",
            m.model,
            m.connections,
            m.requests_per_sec,
            m.p50_us,
            m.p99_us,
            cpu,
            m.connect_failures,
            m.starved
        )?;
    }
    crate::outln!("")?;
    crate::outln!(
        "{:<12} {:>10} {:>14}  {:<16} limit",
        "model",
        "RSS",
        "RSS/idle conn",
        "stops scaling at"
    )?;
    for s in summaries {
        let per = s
            .rss_per_idle_connection
            .map(|b| crate::output::human_bytes(b as u64))
            .unwrap_or_else(|| "-".into());
        let stops = s
            .stops_scaling_at
            .map(|c| format!("{c} connections"))
            .unwrap_or_else(|| "-".into());
        crate::outln!(
            "{:<12} {:>10} {:>14}  {:<16} {}",
            s.model,
            crate::output::human_bytes(s.rss_bytes),
            per,
            stops,
            s.limit
        )?;
    }
    for s in summaries {
        if let Some(n) = &s.not_run {
            crate::outln!("{}: {}", s.model, n.reason)?;
        }
    }
    Ok(())
}

/// Why a model with a process or thread per client cannot take
/// `connections` of them: the system would run out of PIDs (pid_max is
/// 32,768 on many machines), which hurts every other program too. Three
/// quarters of what is left is the ceiling.
fn too_many_tasks(connections: usize, available: Option<u64>) -> Option<String> {
    let available = available?;
    (connections as u64 > available / 4 * 3).then(|| {
        format!("not run: {connections} connections would need as many processes or threads; the system can start {available} more")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_load_that_would_take_over_half_the_free_memory_is_not_run() {
        const GIB: u64 = 1 << 30;
        // A process per client at about 1 MiB each: 20,000 clients need
        // about 20 GiB.
        let per_client = Some(1024.0 * 1024.0);
        assert!(too_big(1000, per_client, Some(16 * GIB)).is_none());
        let reason = too_big(20_000, per_client, Some(16 * GIB)).unwrap();
        assert!(reason.contains("20000 connections"), "{reason}");
        assert!(too_big(20_000, per_client, Some(64 * GIB)).is_none());
        // Unmeasured cost or unknown memory: run it.
        assert!(too_big(20_000, None, Some(GIB)).is_none());
        assert!(too_big(20_000, per_client, None).is_none());
    }

    #[test]
    fn a_load_that_would_take_most_of_the_free_pids_is_not_run() {
        assert!(too_many_tasks(1000, Some(30_000)).is_none());
        let reason = too_many_tasks(19_744, Some(25_000)).unwrap();
        assert!(reason.contains("the system can start 25000 more"), "{reason}");
        assert!(too_many_tasks(19_744, None).is_none());
    }

    #[test]
    fn a_model_stops_scaling_where_it_halves_fails_or_serves_nothing() {
        assert_eq!(stops_scaling_at(&[(1, 10.0, 0), (10, 50.0, 0), (100, 60.0, 0)]), None);
        assert_eq!(
            stops_scaling_at(&[(1, 10.0, 0), (10, 50.0, 0), (100, 20.0, 0)]),
            Some(100)
        );
        assert_eq!(stops_scaling_at(&[(1, 10.0, 0), (10, 50.0, 3)]), Some(10));
        assert_eq!(stops_scaling_at(&[(1, 0.0, 0)]), Some(1));
    }
}
