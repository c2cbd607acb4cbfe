//! `sockit nc`: arguments into a session, stdin into the input channel,
//! events into the view.

use std::io::{BufRead as _, Read as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use sockit::nc::answer::AutoReply;
use sockit::nc::{self, CloseReason, Family, NcEvent, NcOptions, NcTls, Session, Stats};
use sockit::tls::Trust;
use sockit_proto::assist::append::Append;
use sockit_proto::assist::compose::Composer;
use sockit_proto::assist::messages::FrameMode;
use sockit_proto::assist::profile::{self, Profile};
use sockit_proto::assist::rules::{MAX_RULES_FILE, RuleSet};
use sockit_proto::assist::scenario::Scenario;
use sockit_proto::assist::template::Template;
use sockit_proto::hostport::HostPort;

use super::server_tls;
use crate::UsageError;
use crate::cli::{NcArgs, ServerTlsArgs};
use crate::exit;
use crate::nc_view::{Mode, View, ViewOptions};

/// Input chunks queued between stdin and the socket: enough to keep a
/// pipe streaming, small enough that a stalled peer stops stdin reads.
const INPUT_QUEUE: usize = 16;

/// Events queued for the display: a few milliseconds of a busy session.
const EVENT_QUEUE: usize = 4096;

/// The longest the display lets events gather before showing them.
const BATCH_EVERY: Duration = Duration::from_millis(2);

/// Largest stdin read per send. For UDP each read is one datagram, so it
/// stays under the IPv4 UDP payload limit.
const TCP_READ: usize = 64 * 1024;
const UDP_READ: usize = 65_507;

/// What the display holds before it must write: a batch of messages.
const STDOUT_BUFFER: usize = 64 * 1024;

/// How often `--stats` redraws its counters.
const STATS_EVERY: Duration = Duration::from_millis(500);

/// Largest scenario read: thousands of steps fit in far less.
const MAX_SCENARIO: usize = 4 << 20;

/// Largest quick-send profile read: hundreds of messages fit in far less.
const MAX_PROFILE: usize = 1 << 20;

pub async fn run(args: NcArgs, verbose: u8) -> anyhow::Result<ExitCode> {
    let family = match (args.ipv4, args.ipv6) {
        (true, _) => Family::V4,
        (_, true) => Family::V6,
        _ => Family::Any,
    };
    if args.zero_io {
        return scan(&args, family).await;
    }
    if args.unix {
        return run_unix(&args, verbose > 0).await;
    }
    if let Some(program) = program_of(&args) {
        return run_program(&args, family, program).await;
    }
    if let Some(path) = &args.script {
        return run_script(&args, family, path).await;
    }
    let auto_reply = match &args.rules {
        Some(path) => {
            let set = RuleSet::from_toml(&read_small(path, MAX_RULES_FILE, "rules")?)
                .map_err(|e| UsageError(format!("{}: {e}", path.display())))?;
            let frame = args.frame.or(set.frame).unwrap_or(FrameMode::Line);
            let (_, settings) = tokio::sync::watch::channel(Some(Arc::new(AutoReply {
                rules: Arc::new(set),
                frame,
            })));
            Some(settings)
        }
        None => None,
    };
    let profile = load_profile(&args)?;
    let mode = if args.json {
        Mode::Json
    } else if args.hex {
        Mode::Hex
    } else if args.timestamps
        || args.frame.is_some()
        // Many clients on a terminal: lines tagged by client. Redirected
        // (`nc -lk PORT > log`), the bytes as they came, as ncat writes them.
        || args.tags
        || (args.keep_open && !args.raw && std::io::IsTerminal::is_terminal(&std::io::stdout()))
    {
        Mode::Log
    } else {
        Mode::Raw
    };
    let opts = NcOptions {
        family,
        source: None,
        timeout: seconds(args.wait, "-w")?,
        quit_after_eof: seconds(args.quit_after_eof, "-q")?,
        half_close: !args.no_shutdown,
        keep_listening: args.keep_open,
        broadcast_to_all: args.broadcast_to_all,
        max_clients: args.max_clients.max(1),
        report_sent: args.hex || args.timestamps || args.frame.is_some() || args.json || args.log.is_some(),
        // Shown in log lines, JSON and -v notices; raw output has no place for them.
        report_answers: verbose > 0 || mode != Mode::Raw || args.log.is_some(),
        // Raw output into /dev/null shows nothing: a responder run that
        // way under load need not hand every read to the display.
        report_received: !(mode == Mode::Raw && args.log.is_none() && stdout_is_null()),
        tls: nc_tls(&args)?,
        auto_reply,
    };
    let opts = with_source(opts, &args);
    if args.keep_open && !args.listen {
        return Err(UsageError("-k needs -l".into()).into());
    }
    let mut append = args.append.clone();
    if args.crlf && append.last() != Some(&Append::Crlf) {
        append.push(Append::Crlf);
    }
    let composer = Composer {
        encoding: args.encoding,
        send_hex: args.send_hex,
        append,
    };
    let log = match &args.log {
        Some(path) => Some(std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?),
        None => None,
    };

    let (input_tx, input_rx) = mpsc::channel::<Bytes>(INPUT_QUEUE);
    let (events_tx, events_rx) = mpsc::channel::<NcEvent>(EVENT_QUEUE);
    let stats = Arc::new(Stats::default());
    let session = Session {
        input: input_rx,
        events: events_tx,
        stats: Arc::clone(&stats),
        control: None,
    };

    // Bind or resolve before reading any input, so a mistake is reported
    // at once and nothing typed is lost.
    let endpoint = endpoint(&args, family).await?;
    let announce_listen = matches!(&endpoint, Endpoint::Listen(addr, _) if addr.port() == 0);
    let view = ViewOptions {
        mode,
        timestamps: args.timestamps,
        encoding: args.encoding,
        frame: args.frame,
        many_peers: args.keep_open,
        verbose: verbose > 0,
        announce_listen,
    };
    let done = CancellationToken::new();
    // Buffered, and flushed whenever no event is waiting: a busy session
    // writes in batches instead of a blocking-pool hop per message.
    let stdout = tokio::io::BufWriter::with_capacity(STDOUT_BUFFER, tokio::io::stdout());
    let display = tokio::spawn(show(View::new(view, stdout, log), events_rx, done.clone()));
    let ticker = args
        .stats
        .then(|| tokio::spawn(draw_stats(Arc::clone(&stats), done.clone())));

    let chunk = if args.udp { UDP_READ } else { TCP_READ };
    match payload(&args, &composer, &profile)? {
        None => read_stdin(input_tx, composer, typed_profile(&args, profile), chunk),
        Some(payload) => {
            let count = args.count.unwrap_or(if args.interval.is_some() { u64::MAX } else { 1 });
            let every = Duration::from_millis(args.interval.unwrap_or(0));
            tokio::spawn(send_periodically(input_tx, payload, composer, count, every));
        }
    }

    let session_run = drive(endpoint, args.udp, &args.join, opts, session);
    let outcome = tokio::select! {
        r = session_run => Some(r),
        _ = tokio::signal::ctrl_c() => None,
    };
    done.cancel();
    let _ = display.await;
    if let Some(t) = ticker {
        let _ = t.await;
    }
    match outcome {
        None => Ok(ExitCode::from(exit::INTERRUPTED)),
        Some(Err(e)) => Err(e),
        Some(Ok(CloseReason::Error(e))) => {
            eprintln!("sockit: {e}");
            Ok(ExitCode::from(exit::FAILED))
        }
        Some(Ok(_)) => Ok(ExitCode::SUCCESS),
    }
}

enum Endpoint {
    Connect(Vec<SocketAddr>),
    /// Where to listen, and whether on both families (no address, no -4/-6).
    Listen(SocketAddr, bool),
}

async fn endpoint(args: &NcArgs, family: Family) -> anyhow::Result<Endpoint> {
    if args.listen {
        let (host, port) = match (args.target.as_slice(), args.port) {
            ([], Some(p)) => (None, p),
            ([port], None) => (None, parse_port(port)?),
            ([host], Some(p)) => (Some(host.as_str()), p),
            ([host, port], None) => (Some(host.as_str()), parse_port(port)?),
            _ => return Err(UsageError("with -l give PORT, -p PORT, or ADDR PORT".into()).into()),
        };
        let ip = match (host, args.source) {
            (Some(h), _) => h
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .map_err(|_| UsageError(format!("'{h}' is not an address to listen on")))?,
            (None, Some(s)) => s,
            // netcat's default: every interface; with neither -4 nor -6,
            // both families on one dual-stack socket (IPv4 only to join
            // an IPv4 group).
            (None, None) if family == Family::V4 || args.join.iter().any(IpAddr::is_ipv4) => {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            }
            (None, None) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let dual = host.is_none() && args.source.is_none() && family == Family::Any && ip.is_ipv6();
        return Ok(Endpoint::Listen(SocketAddr::new(ip, port), dual));
    }
    let (host, port) = match args.target.as_slice() {
        [host, port] => (host.clone(), parse_port(port)?),
        // HOST:PORT, [V6]:PORT: the form the other clients take.
        [one] => match HostPort::parse(one) {
            Ok(HostPort { host, port: Some(port) }) => (host, port),
            _ => return Err(UsageError(format!("give HOST PORT or HOST:PORT to connect to, not {one:?}")).into()),
        },
        _ => return Err(UsageError("give HOST PORT to connect to (or -l PORT to listen)".into()).into()),
    };
    let addrs = nc::resolve::socket_addrs(&host, port, family, args.numeric).await?;
    Ok(Endpoint::Connect(addrs))
}

async fn drive(
    endpoint: Endpoint,
    udp: bool,
    join: &[IpAddr],
    mut opts: NcOptions,
    session: Session,
) -> anyhow::Result<CloseReason> {
    Ok(match endpoint {
        Endpoint::Connect(addrs) => {
            if udp {
                nc::udp::connect(&addrs, &opts, session).await?
            } else {
                nc::tcp::connect(&addrs, &opts, session).await?
            }
        }
        Endpoint::Listen(addr, dual) => {
            opts.source = None;
            if udp {
                let socket = nc::udp::bind_listener(addr, dual)?;
                nc::udp::join(&socket, join)?;
                nc::udp::serve(socket, &opts, session).await?
            } else {
                nc::tcp::serve(nc::tcp::bind(addr, dual)?, &opts, session).await?
            }
        }
    })
}

/// `-U PATH`: a Unix-domain stream socket, bytes both ways (or an `-e`
/// program on it).
async fn run_unix(args: &NcArgs, verbose: bool) -> anyhow::Result<ExitCode> {
    let [path] = args.target.as_slice() else {
        return Err(UsageError("-U takes one PATH: the socket".into()).into());
    };
    let path = Path::new(path);
    if !args.listen {
        return unix_session(args, nc::unix::connect(path).await?).await;
    }
    let listener = nc::unix::Listener::bind(path)?;
    if verbose {
        eprintln!("listening on {}", path.display());
    }
    // Ctrl-C ends the wait too, and the socket file goes with the listener.
    let served = async {
        if !args.keep_open {
            return unix_session(args, listener.accept().await?).await;
        }
        let Some(program) = program_of(args) else {
            return Err(UsageError("-k with -U needs -e or -c (a program per client)".into()).into());
        };
        let slots = Arc::new(tokio::sync::Semaphore::new(args.max_clients.max(1)));
        loop {
            let conn = listener.accept().await?;
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                continue;
            };
            let program = program.clone();
            tokio::spawn(async move {
                let _ = nc::program::run(&program, conn, None).await;
                drop(slot);
            });
        }
    };
    tokio::select! {
        code = served => code,
        _ = tokio::signal::ctrl_c() => Ok(ExitCode::from(exit::INTERRUPTED)),
    }
}

/// One Unix-socket connection: an `-e` program, or stdin and stdout.
async fn unix_session(args: &NcArgs, stream: tokio::net::UnixStream) -> anyhow::Result<ExitCode> {
    if let Some(program) = program_of(args) {
        let code = nc::program::run(&program, stream, None).await?;
        return Ok(ExitCode::from(
            code.and_then(|c| u8::try_from(c).ok()).unwrap_or(exit::FAILED),
        ));
    }
    let (input_tx, input_rx) = mpsc::channel::<Bytes>(INPUT_QUEUE);
    let composer = Composer {
        encoding: args.encoding,
        send_hex: args.send_hex,
        append: args.append.clone(),
    };
    read_stdin(input_tx, composer, typed_profile(args, load_profile(args)?), TCP_READ);
    tokio::select! {
        done = nc::unix::pump(stream, input_rx, tokio::io::stdout(), !args.no_shutdown) => done?,
        _ = tokio::signal::ctrl_c() => return Ok(ExitCode::from(exit::INTERRUPTED)),
    }
    Ok(ExitCode::SUCCESS)
}

/// `--script FILE`: the scenario over one connection (made, or the first
/// accepted with -l), a line per step, exit 1 at the first that fails.
async fn run_script(args: &NcArgs, family: Family, path: &Path) -> anyhow::Result<ExitCode> {
    let text = read_small(path, MAX_SCENARIO, "scenario")?;
    let scenario = Scenario::from_toml(&text).map_err(|e| UsageError(format!("{}: {e}", path.display())))?;
    let opts = with_source(
        NcOptions {
            family,
            timeout: seconds(args.wait, "-w")?,
            tls: nc_tls(args)?,
            ..NcOptions::default()
        },
        args,
    );
    let stream = match endpoint(args, family).await? {
        Endpoint::Connect(addrs) => nc::tcp::connect_stream(&addrs, &opts).await?,
        Endpoint::Listen(addr, dual) => {
            let listener = nc::tcp::bind(addr, dual)?;
            // Tests and graders read this line for the bound port.
            eprintln!("listening on {}", listener.local_addr()?);
            nc::tcp::accept_one(listener, &opts).await?
        }
    };
    let total = scenario.steps.len();
    let json = args.json;
    let mut failed_at = None;
    let run = nc::script::run(stream, &scenario, |report| {
        if !report.ok {
            failed_at = Some(report.step);
        }
        let shown = if json {
            let mut line = serde_json::to_value(report).unwrap_or_default();
            if let Some(obj) = line.as_object_mut() {
                obj.insert("event".into(), "step".into());
            }
            crate::output::json_line(&line)
        } else {
            let mark = if report.ok { "ok  " } else { "FAIL" };
            let detail = report.detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default();
            crate::outln!(
                "{mark} {}/{total} {} ({} ms){detail}",
                report.step,
                report.name,
                report.millis
            )
        };
        // stdout gone: the run still decides the exit code.
        let _ = shown;
    });
    let passed = tokio::select! {
        passed = run => passed,
        _ = tokio::signal::ctrl_c() => return Ok(ExitCode::from(exit::INTERRUPTED)),
    };
    if json {
        crate::output::json_line(&serde_json::json!({
            "event": "result", "passed": passed, "steps": total, "failed_step": failed_at,
        }))?;
    } else if passed {
        crate::outln!("passed: {total} steps")?;
    } else if let Some(step) = failed_at {
        crate::outln!("failed at step {step} of {total}")?;
    }
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::FAILED)
    })
}

/// `-e PROG` (split on spaces, as ncat) or `-c LINE`.
fn program_of(args: &NcArgs) -> Option<nc::program::Program> {
    if let Some(line) = &args.sh_exec {
        return Some(nc::program::Program::Shell(line.clone()));
    }
    let argv = args.exec.as_ref()?.split_whitespace().map(str::to_owned).collect();
    Some(nc::program::Program::Argv(argv))
}

/// `-e`/`-c`: the program talks to the peer; sockit only carries bytes.
async fn run_program(args: &NcArgs, family: Family, program: nc::program::Program) -> anyhow::Result<ExitCode> {
    if args.keep_open && !args.listen {
        return Err(UsageError("-k needs -l".into()).into());
    }
    let code = match endpoint(args, family).await? {
        Endpoint::Listen(addr, dual) => {
            if !addr.ip().is_loopback() && !args.allow_exec {
                return Err(UsageError(format!(
                    "refusing -e/-c on {addr}: anyone who can connect would run it; listen on a loopback \
                     address, or add --allow-exec"
                ))
                .into());
            }
            let listener = nc::tcp::bind(addr, dual)?;
            eprintln!("listening on {}", listener.local_addr()?);
            let serving = nc::program::serve(listener, program, args.keep_open, args.max_clients);
            tokio::select! {
                code = serving => code?,
                _ = tokio::signal::ctrl_c() => return Ok(ExitCode::from(exit::INTERRUPTED)),
            }
        }
        Endpoint::Connect(addrs) => {
            let opts = with_source(
                NcOptions {
                    family,
                    timeout: seconds(args.wait, "-w")?,
                    ..NcOptions::default()
                },
                args,
            );
            let conn = nc::tcp::open(&addrs, &opts).await?;
            let peer = conn.peer_addr()?;
            nc::program::run(&program, conn, Some(peer)).await?
        }
    };
    Ok(ExitCode::from(
        code.and_then(|c| u8::try_from(c).ok()).unwrap_or(exit::FAILED),
    ))
}

/// `--ssl`: the listener's certificate, or how a server is trusted.
fn nc_tls(args: &NcArgs) -> anyhow::Result<Option<NcTls>> {
    if !args.ssl {
        return Ok(None);
    }
    if args.listen {
        let tls = ServerTlsArgs {
            tls: true,
            tls_cert: args.ssl_cert.clone(),
            tls_key: args.ssl_key.clone(),
        };
        return Ok(server_tls(&tls, None)?.map(NcTls::Server));
    }
    let host = args.target.first().cloned().unwrap_or_default();
    let trust = match &args.ssl_trustfile {
        Some(ca) => Trust::Ca(ca.clone()),
        None => Trust::Anyone,
    };
    Ok(Some(NcTls::Client { trust, host }))
}

/// Whether stdout is /dev/null (the same character device).
fn stdout_is_null() -> bool {
    use std::os::fd::AsFd as _;
    use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
    let Ok(out) = std::io::stdout().as_fd().try_clone_to_owned() else {
        return false;
    };
    match (std::fs::File::from(out).metadata(), std::fs::metadata("/dev/null")) {
        (Ok(out), Ok(null)) => out.file_type().is_char_device() && out.rdev() == null.rdev(),
        _ => false,
    }
}

/// Applies the source options once the endpoint is known (client mode).
fn with_source(mut opts: NcOptions, args: &NcArgs) -> NcOptions {
    if !args.listen && (args.source.is_some() || args.port.is_some()) {
        let ip = args.source.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        opts.source = Some(SocketAddr::new(ip, args.port.unwrap_or(0)));
    }
    opts
}

async fn show<W: tokio::io::AsyncWrite + Unpin>(
    mut view: View<W>,
    mut events: mpsc::Receiver<NcEvent>,
    done: CancellationToken,
) {
    let mut batch = Vec::with_capacity(EVENT_QUEUE);
    loop {
        let received = tokio::select! {
            biased;
            n = events.recv_many(&mut batch, EVENT_QUEUE) => n,
            () = done.cancelled() => {
                while let Ok(e) = events.try_recv() {
                    batch.push(e);
                }
                0
            }
        };
        for event in batch.drain(..) {
            if view.show(&event).await.is_err() {
                // stdout is gone (a closed pipe): nothing more can be shown.
                return;
            }
        }
        if view.flush().await.is_err() || received == 0 {
            break;
        }
        // A lone message was shown at once. Under load, let the next ones
        // gather for a moment: one wake-up and one write per batch, not
        // per message, so showing a busy session costs the session little.
        tokio::select! {
            () = tokio::time::sleep(BATCH_EVERY) => {}
            () = done.cancelled() => {}
        }
    }
    let _ = view.flush().await;
}

async fn draw_stats(stats: Arc<Stats>, done: CancellationToken) {
    let line = |s: &Stats| {
        let (rb, rm, tb, tm) = s.snapshot();
        format!("rx {rb} bytes / {rm} msgs   tx {tb} bytes / {tm} msgs")
    };
    loop {
        tokio::select! {
            () = tokio::time::sleep(STATS_EVERY) => eprint!("\r{}", line(&stats)),
            () = done.cancelled() => break,
        }
    }
    eprintln!("\r{}", line(&stats));
}

/// Reads stdin on its own thread: byte for byte when nothing transforms
/// it, line by line when hex, an encoding or suffixes do, or when quick
/// sends can be typed (`/send NAME`: on a terminal, or with `--profile`;
/// a pipe from a file stays bytes). A line is read at most `chunk` bytes
/// at a time, so a long one cannot fill memory.
fn read_stdin(tx: mpsc::Sender<Bytes>, composer: Composer, profile: Option<Profile>, chunk: usize) {
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut stdin = stdin.lock();
        let profile = profile.unwrap_or_default();
        if !composer.transforms() && profile.sends.is_empty() {
            let mut buf = vec![0u8; chunk];
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx
                            .blocking_send(Bytes::copy_from_slice(buf.get(..n).unwrap_or_default()))
                            .is_err()
                        {
                            break;
                        }
                    }
                }
            }
            return;
        }
        let mut line = Vec::new();
        let mut quick_sends = 0;
        loop {
            line.clear();
            let limit = u64::try_from(chunk).unwrap_or(u64::MAX);
            match std::io::Read::by_ref(&mut stdin)
                .take(limit)
                .read_until(b'\n', &mut line)
            {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let composed = match profile::command(&line).filter(|_| !profile.sends.is_empty()) {
                        Some(name) => match profile.find(name) {
                            Some(send) => {
                                quick_sends += 1;
                                nc::render_send(&composer, &send.template, send.hex, &send.append, quick_sends)
                                    .map(Vec::from)
                            }
                            None => {
                                eprintln!(
                                    "sockit: no quick send named '{name}' (the profile has: {})",
                                    profile.names().join(", ")
                                );
                                continue;
                            }
                        },
                        None if composer.transforms() => composer.line(&line),
                        None => Ok(line.clone()),
                    };
                    match composed {
                        Ok(bytes) if bytes.is_empty() => {}
                        Ok(bytes) => {
                            if tx.blocking_send(Bytes::from(bytes)).is_err() {
                                break;
                            }
                        }
                        // A typo in one line must not end the session.
                        Err(e) => eprintln!("sockit: not sent: {e}"),
                    }
                }
            }
        }
    });
}

/// What `--data`, `--data-file` or `--send` sends each time.
enum Payload {
    /// A file's bytes, with the appends.
    Fixed(Bytes),
    /// Rendered afresh for every send, so `{{seq}}` counts.
    Template {
        template: Template,
        hex: bool,
        append: Vec<Append>,
    },
}

fn payload(args: &NcArgs, composer: &Composer, profile: &Profile) -> anyhow::Result<Option<Payload>> {
    if let Some(text) = &args.data {
        let template = composer
            .template(data_text(text, composer).as_ref())
            .map_err(|e| UsageError(format!("--data: {e}")))?;
        return Ok(Some(Payload::Template {
            template,
            hex: composer.send_hex,
            append: Vec::new(),
        }));
    }
    if let Some(path) = &args.data_file {
        let mut data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        composer.finish(&mut data);
        return Ok(Some(Payload::Fixed(Bytes::from(data))));
    }
    if let Some(name) = &args.send_name {
        let Some(send) = profile.find(name) else {
            let why = if profile.sends.is_empty() {
                format!(
                    "--send {name}: no quick sends loaded (write them in ~/.config/sockit/assistant.toml or pass --profile)"
                )
            } else {
                format!(
                    "--send {name}: no such quick send (the profile has: {})",
                    profile.names().join(", ")
                )
            };
            return Err(UsageError(why).into());
        };
        return Ok(Some(Payload::Template {
            template: send.template.clone(),
            hex: send.hex,
            append: send.append.clone(),
        }));
    }
    Ok(None)
}

/// `--data` as a typed line: with `--append` (or hex) a trailing newline
/// is replaced by the suffixes, as for typed input; without, it is kept.
fn data_text<'a>(text: &'a str, composer: &Composer) -> std::borrow::Cow<'a, str> {
    let body = text.strip_suffix('\n').map(|b| b.strip_suffix('\r').unwrap_or(b));
    match body {
        Some(body) if composer.send_hex || !composer.append.is_empty() => body.into(),
        _ => text.into(),
    }
}

/// The quick sends `/send NAME` may name on stdin: with `--profile`, or
/// when stdin is a terminal; never for a pipe the user did not ask to be
/// read as commands.
fn typed_profile(args: &NcArgs, profile: Profile) -> Option<Profile> {
    (args.profile.is_some() || std::io::IsTerminal::is_terminal(&std::io::stdin())).then_some(profile)
}

/// `--profile FILE`, else the per-user profile if there is one.
fn load_profile(args: &NcArgs) -> anyhow::Result<Profile> {
    match &args.profile {
        Some(path) => read_profile(path),
        None => user_profile(),
    }
}

/// The per-user quick sends (`~/.config/sockit/assistant.toml`), if any:
/// `nc`'s, and the assistant page's buttons.
pub(super) fn user_profile() -> anyhow::Result<Profile> {
    match sockit::auth::config_dir().map(|d| d.join("assistant.toml")) {
        Some(path) if path.is_file() => read_profile(&path),
        _ => Ok(Profile::default()),
    }
}

fn read_profile(path: &Path) -> anyhow::Result<Profile> {
    let text = read_small(path, MAX_PROFILE, "profile")?;
    Ok(Profile::from_toml(&text).map_err(|e| UsageError(format!("{}: {e}", path.display())))?)
}

/// A settings file read whole, refused when larger than `max`.
fn read_small(path: &Path, max: usize, what: &str) -> anyhow::Result<String> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open the {what} file {}", path.display()))?;
    let mut text = String::new();
    file.take(u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1))
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {} (it must be UTF-8 text)", path.display()))?;
    if text.len() > max {
        return Err(UsageError(format!(
            "{} is larger than {max} bytes: not a {what} file",
            path.display()
        ))
        .into());
    }
    Ok(text)
}

async fn send_periodically(tx: mpsc::Sender<Bytes>, payload: Payload, composer: Composer, count: u64, every: Duration) {
    let mut ticker = tokio::time::interval(every.max(Duration::from_millis(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for seq in 1..=count {
        ticker.tick().await;
        let data = match &payload {
            Payload::Fixed(data) => data.clone(),
            Payload::Template { template, hex, append } => {
                match nc::render_send(&composer, template, *hex, append, seq) {
                    Ok(data) => data,
                    Err(e) => {
                        eprintln!("sockit: not sent: {e}");
                        return;
                    }
                }
            }
        };
        if tx.send(data).await.is_err() {
            return;
        }
    }
}

async fn scan(args: &NcArgs, family: Family) -> anyhow::Result<ExitCode> {
    let [host, ports @ ..] = args.target.as_slice() else {
        return Err(UsageError("-z needs HOST PORTS... (each 80, 20-25 or 22,80,443)".into()).into());
    };
    if ports.is_empty() {
        return Err(UsageError("-z needs HOST PORTS... (each 80, 20-25 or 22,80,443)".into()).into());
    }
    let ports = parse_ports(&ports.join(","))?;
    let addrs = nc::resolve::socket_addrs(host, 0, family, args.numeric).await?;
    let target = addrs.first().map(SocketAddr::ip).context("no address to check")?;
    let opts = with_source(
        NcOptions {
            timeout: seconds(args.wait, "-w")?,
            ..NcOptions::default()
        },
        args,
    );
    let reports = nc::scan::check(target, &ports, args.udp, &opts, nc::scan::DEFAULT_PARALLEL).await;
    let mut any_open = false;
    for r in &reports {
        let open = r.state == nc::scan::PortState::Open;
        any_open |= open;
        if args.open_only && !open {
            continue;
        }
        if args.json {
            crate::output::json_line(&serde_json::json!({
                "event": "port",
                "host": r.addr.ip().to_string(),
                "port": r.addr.port(),
                "protocol": r.protocol,
                "state": r.state,
                "millis": r.millis,
            }))?;
        } else {
            crate::outln!("{} {}/{} {}", r.addr.ip(), r.addr.port(), r.protocol, r.state.as_str())?;
        }
    }
    Ok(if any_open {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::FAILED)
    })
}

fn parse_port(text: &str) -> anyhow::Result<u16> {
    text.parse()
        .map_err(|_| UsageError(format!("'{text}' is not a port (0-65535)")).into())
}

/// `80`, `20-25`, `22,80,443` or a mix; at most 65,536 ports.
fn parse_ports(text: &str) -> anyhow::Result<Vec<u16>> {
    let mut ports = Vec::new();
    for part in text.split(',') {
        match part.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi) = (parse_port(lo)?, parse_port(hi)?);
                if lo > hi {
                    return Err(UsageError(format!("port range {part} runs backwards")).into());
                }
                ports.extend(lo..=hi);
            }
            None => ports.push(parse_port(part)?),
        }
    }
    ports.sort_unstable();
    ports.dedup();
    Ok(ports)
}

fn seconds(value: Option<f64>, flag: &str) -> anyhow::Result<Option<Duration>> {
    match value {
        None => Ok(None),
        Some(s) if (0.0..1e9).contains(&s) => Ok(Some(Duration::from_secs_f64(s))),
        Some(s) => Err(UsageError(format!("{flag} {s}: expected a number of seconds")).into()),
    }
}
