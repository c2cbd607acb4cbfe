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

use sockit::nc::{self, CloseReason, Family, NcEvent, NcOptions, NcTls, Session, Stats};
use sockit::tls::Trust;
use sockit_proto::assist::append::Append;
use sockit_proto::assist::compose::Composer;
use sockit_proto::hostport::HostPort;

use super::server_tls;
use crate::UsageError;
use crate::cli::{NcArgs, ServerTlsArgs};
use crate::exit;
use crate::nc_view::{Mode, View, ViewOptions};

/// Input chunks queued between stdin and the socket: enough to keep a
/// pipe streaming, small enough that a stalled peer stops stdin reads.
const INPUT_QUEUE: usize = 16;

/// Events queued for the display.
const EVENT_QUEUE: usize = 256;

/// Largest stdin read per send. For UDP each read is one datagram, so it
/// stays under the IPv4 UDP payload limit.
const TCP_READ: usize = 64 * 1024;
const UDP_READ: usize = 65_507;

/// How often `--stats` redraws its counters.
const STATS_EVERY: Duration = Duration::from_millis(500);

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
        tls: nc_tls(&args)?,
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

    let (input_tx, input_rx) = mpsc::channel::<Bytes>(INPUT_QUEUE);
    let (events_tx, events_rx) = mpsc::channel::<NcEvent>(EVENT_QUEUE);
    let stats = Arc::new(Stats::default());
    let session = Session {
        input: input_rx,
        events: events_tx,
        stats: Arc::clone(&stats),
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
    let display = tokio::spawn(show(View::new(view, tokio::io::stdout(), log), events_rx, done.clone()));
    let ticker = args
        .stats
        .then(|| tokio::spawn(draw_stats(Arc::clone(&stats), done.clone())));

    let chunk = if args.udp { UDP_READ } else { TCP_READ };
    match (&args.data, &args.data_file) {
        (None, None) => read_stdin(input_tx, composer, chunk),
        (text, file) => {
            let payload = payload(text.as_deref(), file.as_deref(), &composer)?;
            let count = args.count.unwrap_or(if args.interval.is_some() { u64::MAX } else { 1 });
            let every = Duration::from_millis(args.interval.unwrap_or(0));
            tokio::spawn(send_periodically(input_tx, payload, count, every));
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
    read_stdin(input_tx, composer, TCP_READ);
    tokio::select! {
        done = nc::unix::pump(stream, input_rx, tokio::io::stdout(), !args.no_shutdown) => done?,
        _ = tokio::signal::ctrl_c() => return Ok(ExitCode::from(exit::INTERRUPTED)),
    }
    Ok(ExitCode::SUCCESS)
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
    loop {
        let event = tokio::select! {
            biased;
            e = events.recv() => e,
            () = done.cancelled() => events.try_recv().ok(),
        };
        let Some(event) = event else { break };
        if view.show(&event).await.is_err() {
            // stdout is gone (a closed pipe): nothing more can be shown.
            break;
        }
        if events.is_empty() && view.flush().await.is_err() {
            break;
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
/// it, line by line when hex, an encoding or suffixes do.
fn read_stdin(tx: mpsc::Sender<Bytes>, composer: Composer, chunk: usize) {
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut stdin = stdin.lock();
        if !composer.transforms() {
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
        loop {
            line.clear();
            match stdin.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => match composer.line(&line) {
                    Ok(bytes) if bytes.is_empty() => {}
                    Ok(bytes) => {
                        if tx.blocking_send(Bytes::from(bytes)).is_err() {
                            break;
                        }
                    }
                    // A typo in one line must not end the session.
                    Err(e) => eprintln!("sockit: not sent: {e}"),
                },
            }
        }
    });
}

fn payload(text: Option<&str>, file: Option<&Path>, composer: &Composer) -> anyhow::Result<Bytes> {
    let bytes = match (text, file) {
        (Some(t), _) => composer
            .line(t.as_bytes())
            .map_err(|e| UsageError(format!("--data: {e}")))?,
        (None, Some(path)) => {
            let mut data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            composer.finish(&mut data);
            data
        }
        (None, None) => Vec::new(),
    };
    Ok(Bytes::from(bytes))
}

async fn send_periodically(tx: mpsc::Sender<Bytes>, payload: Bytes, count: u64, every: Duration) {
    let mut ticker = tokio::time::interval(every.max(Duration::from_millis(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for _ in 0..count {
        ticker.tick().await;
        if tx.send(payload.clone()).await.is_err() {
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
