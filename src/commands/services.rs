//! `sockit echo`, `sockit time`, `sockit download`: servers and clients of
//! the small classic services.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

use sockit::clients;
use sockit::clock::{TimeProtocol, TimeService};
use sockit::download::Download;
use sockit::echo::Echo;
use sockit::server::ServerConfig;
use sockit_proto::clock::rfc868_decode;

use super::lifecycle::Listeners;
use super::{client_dial, key_only_if_named, server_auth, server_auth_if_named, server_tls};
use crate::UsageError;
use crate::cli::{DownloadArgs, DownloadServe, EchoArgs, EchoServe, ListenerArgs, TimeArgs, TimeServe};
use crate::cli::{Proto, port};

/// Whether a service asks for a key when no `--key-file` is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keyed {
    /// The download service: its files are not for everyone.
    ByDefault,
    /// Echo and time, which only answer: no key unless one is named.
    IfNamed,
}

/// A TCP server config from the small services' flags (auth and TLS
/// included).
fn tcp_config(addr: SocketAddr, args: &ListenerArgs, keyed: Keyed) -> anyhow::Result<ServerConfig> {
    let auth = match keyed {
        Keyed::ByDefault => server_auth(&args.auth)?,
        Keyed::IfNamed => server_auth_if_named(&args.auth)?,
    };
    let mut config = ServerConfig::new(addr, auth);
    config.tls = server_tls(&args.tls, args.auth.key_file.as_deref())?;
    config.max_connections = args.max_connections;
    config.max_per_peer = args.max_per_peer;
    config.backlog = args.backlog;
    config.idle_timeout = Duration::from_secs(args.idle_timeout);
    config.reuse_address = !args.no_reuse_address;
    Ok(config)
}

pub async fn echo(args: EchoArgs) -> anyhow::Result<ExitCode> {
    if let Some(EchoServe::Serve {
        listen,
        mut tcp,
        mut udp,
        upper,
        listener,
    }) = args.serve
    {
        for l in listen {
            if l.proto != Some(Proto::Udp) {
                tcp.push(l.addr);
            }
            if l.proto != Some(Proto::Tcp) {
                udp.push(l.addr);
            }
        }
        if tcp.is_empty() && udp.is_empty() {
            let both = SocketAddr::from(([127, 0, 0, 1], port::ECHO));
            (tcp, udp) = (vec![both], vec![both]);
        }
        let mut listeners = Listeners::new(&listener.run_as)?;
        let service = Echo { upper };
        let name = if upper { "echo, upper" } else { "echo" };
        for addr in tcp {
            listeners.tcp(tcp_config(addr, &listener, Keyed::IfNamed)?, service, name, "")?;
        }
        for addr in udp {
            listeners.udp(addr, !listener.no_reuse_address, service, name)?;
        }
        return listeners.serve().await;
    }
    let addr = args
        .addr
        .ok_or_else(|| UsageError("name the server: sockit echo HOST[:PORT] TEXT".into()))?
        .with_default(port::ECHO);
    let text = args.text.join(" ");
    let timeout = Duration::from_secs(args.timeout.max(1));
    let reply = if args.udp {
        clients::udp_exchange(&addr, text.as_bytes(), timeout).await?
    } else {
        let dial = client_dial(&key_only_if_named(&args.auth), &args.tls)?;
        let max = clients::max_echo_reply(text.len());
        clients::tcp_exchange(&addr, &dial, text.as_bytes(), max, timeout).await?
    };
    print_reply(&reply)?;
    Ok(ExitCode::SUCCESS)
}

pub async fn time(args: TimeArgs) -> anyhow::Result<ExitCode> {
    if let Some(TimeServe::Serve {
        udp,
        daytime,
        rfc868,
        listener,
    }) = args.serve
    {
        if udp.is_none() && daytime.is_none() && rfc868.is_none() {
            return Err(UsageError("name at least one of --udp, --daytime, --rfc868".into()).into());
        }
        let mut listeners = Listeners::new(&listener.run_as)?;
        let reuse = !listener.no_reuse_address;
        if let Some(addr) = udp {
            let service = TimeService {
                protocol: TimeProtocol::Strftime,
            };
            listeners.udp(addr, reuse, service, "time")?;
        }
        for (addr, protocol, name) in [
            (daytime, TimeProtocol::Daytime, "daytime"),
            (rfc868, TimeProtocol::Rfc868, "rfc868"),
        ] {
            if let Some(addr) = addr {
                let service = TimeService { protocol };
                listeners.tcp(tcp_config(addr, &listener, Keyed::IfNamed)?, service, name, "")?;
                listeners.udp(addr, reuse, service, name)?;
            }
        }
        return listeners.serve().await;
    }
    let default_port = if args.rfc868 {
        port::RFC868
    } else if args.daytime {
        port::DAYTIME
    } else {
        port::TIME
    };
    let addr = args
        .addr
        .ok_or_else(|| UsageError("name the server: sockit time HOST[:PORT] [FORMAT]".into()))?
        .with_default(default_port);
    let timeout = Duration::from_secs(args.timeout.max(1));
    let reply = if args.tcp {
        if !(args.rfc868 || args.daytime) {
            return Err(UsageError("--tcp goes with --daytime or --rfc868; the classic service is UDP".into()).into());
        }
        let dial = client_dial(&key_only_if_named(&args.auth), &args.tls)?;
        clients::tcp_exchange(&addr, &dial, b"", clients::MAX_TIME_REPLY, timeout).await?
    } else {
        let request = if args.rfc868 || args.daytime {
            String::new()
        } else {
            args.format.unwrap_or_default()
        };
        clients::udp_exchange(&addr, request.as_bytes(), timeout).await?
    };
    if args.rfc868 {
        let four: [u8; 4] = reply
            .as_slice()
            .try_into()
            .map_err(|_| anyhow::anyhow!("an RFC 868 reply is 4 bytes, got {}", reply.len()))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
        let unix = rfc868_decode(four, now);
        crate::outln!("{unix} (unix seconds; {} seconds since 1900)", u32::from_be_bytes(four))?;
        return Ok(ExitCode::SUCCESS);
    }
    // The classic service answers a bad format with an `error: ` line in
    // place of the time: that is a failure, told on stderr.
    if !args.daytime {
        if let Some(why) = reply.strip_prefix(b"error: ") {
            anyhow::bail!(
                "the server refused the format: {}",
                String::from_utf8_lossy(why).trim_end()
            );
        }
    }
    print_reply(&reply)?;
    Ok(ExitCode::SUCCESS)
}

pub async fn download(args: DownloadArgs) -> anyhow::Result<ExitCode> {
    if let Some(DownloadServe::Serve { listen, root, listener }) = args.serve {
        let mut listeners = Listeners::new(&listener.run_as)?;
        let service = Download::new(&root)?;
        let root = format!("root: {}", service.root().display());
        listeners.tcp(
            tcp_config(listen, &listener, Keyed::ByDefault)?,
            service,
            "download",
            &root,
        )?;
        return listeners.serve().await;
    }
    let (Some(addr), Some(name)) = (args.addr, args.name) else {
        return Err(UsageError("usage: sockit download HOST[:PORT] NAME [-o PATH]".into()).into());
    };
    let addr = addr.with_default(port::DOWNLOAD);
    let last = name
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty() && *n != "." && *n != "..");
    let dest = match (args.output.as_deref(), last) {
        (out, Some(last)) => super::output_path(out, last)?,
        (Some(out), None) => out.to_path_buf(),
        (None, None) => return Err(UsageError(format!("cannot name a local file after {name:?}; use -o")).into()),
    };
    let dial = client_dial(&args.auth, &args.tls)?;
    let timeout = Duration::from_secs(args.timeout.max(1));
    let bytes = clients::download(&addr, &dial, &name, &dest, args.max_size, timeout)
        .await
        .with_context(|| format!("cannot download {name}"))?;
    crate::outln!("download {name}: {bytes} bytes to {}", dest.display())?;
    Ok(ExitCode::SUCCESS)
}

/// Prints a reply as text (invalid UTF-8 passes through as bytes).
fn print_reply(reply: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(reply)?;
    if !reply.ends_with(b"\n") {
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}
