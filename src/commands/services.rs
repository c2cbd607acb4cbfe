//! `sockit echo`, `sockit time`, `sockit download`: servers and clients of
//! the small classic services.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
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
use super::{client_dial, server_auth, server_tls, tls_note};
use crate::UsageError;
use crate::cli::{DownloadArgs, DownloadServe, EchoArgs, EchoServe, ListenerArgs, TimeArgs, TimeServe};

/// A TCP server config from the small services' flags (auth and TLS
/// included).
fn tcp_config(addr: SocketAddr, args: &ListenerArgs) -> anyhow::Result<ServerConfig> {
    let auth = server_auth(&args.auth)?;
    let mut config = ServerConfig::new(addr, auth);
    config.tls = server_tls(&args.tls, args.auth.key_file.as_deref())?;
    config.max_connections = args.max_connections;
    config.max_per_peer = args.max_per_peer;
    config.backlog = args.backlog;
    config.idle_timeout = Duration::from_secs(args.idle_timeout);
    config.reuse_address = !args.no_reuse_address;
    Ok(config)
}

/// The default port of both echo listeners when none is named.
const DEFAULT_ECHO: &str = "127.0.0.1:8007";

pub async fn echo(args: EchoArgs) -> anyhow::Result<ExitCode> {
    if let Some(EchoServe::Serve {
        tcp,
        udp,
        upper,
        listener,
    }) = args.serve
    {
        let (tcp, udp) = match (tcp, udp) {
            (None, None) => {
                let both = DEFAULT_ECHO.parse().ok();
                (both, both)
            }
            some => some,
        };
        let mut listeners = Listeners::new()?;
        let service = Echo { upper };
        let name = if upper { "echo, upper" } else { "echo" };
        if let Some(addr) = tcp {
            let config = tcp_config(addr, &listener)?;
            let tls = tls_note(config.tls.as_ref());
            let bound = listeners.tcp(config, service)?;
            crate::outln!("listening on tcp {bound} ({name}{tls})")?;
        }
        if let Some(addr) = udp {
            let bound = listeners.udp(addr, !listener.no_reuse_address, service)?;
            crate::outln!("listening on udp {bound} ({name})")?;
        }
        return Ok(listeners.serve().await);
    }
    let addr = args
        .addr
        .ok_or_else(|| UsageError("name the server: sockit echo HOST:PORT TEXT".into()))?;
    let text = args.text.join(" ");
    let timeout = Duration::from_secs(args.timeout.max(1));
    let reply = if args.udp {
        clients::udp_exchange(&addr, text.as_bytes(), timeout).await?
    } else {
        let dial = client_dial(&args.auth, &args.tls)?;
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
        let mut listeners = Listeners::new()?;
        let reuse = !listener.no_reuse_address;
        if let Some(addr) = udp {
            let service = TimeService {
                protocol: TimeProtocol::Strftime,
            };
            let bound = listeners.udp(addr, reuse, service)?;
            crate::outln!("listening on udp {bound} (time)")?;
        }
        for (addr, protocol, name) in [
            (daytime, TimeProtocol::Daytime, "daytime"),
            (rfc868, TimeProtocol::Rfc868, "rfc868"),
        ] {
            if let Some(addr) = addr {
                let service = TimeService { protocol };
                let config = tcp_config(addr, &listener)?;
                let tls = tls_note(config.tls.as_ref());
                let bound = listeners.tcp(config, service)?;
                crate::outln!("listening on tcp {bound} ({name}{tls})")?;
                let bound = listeners.udp(addr, reuse, service)?;
                crate::outln!("listening on udp {bound} ({name})")?;
            }
        }
        return Ok(listeners.serve().await);
    }
    let addr = args
        .addr
        .ok_or_else(|| UsageError("name the server: sockit time HOST:PORT [FORMAT]".into()))?;
    let timeout = Duration::from_secs(args.timeout.max(1));
    let reply = if args.tcp {
        if !(args.rfc868 || args.daytime) {
            return Err(UsageError("--tcp goes with --daytime or --rfc868; the classic service is UDP".into()).into());
        }
        let dial = client_dial(&args.auth, &args.tls)?;
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
    print_reply(&reply)?;
    Ok(ExitCode::SUCCESS)
}

pub async fn download(args: DownloadArgs) -> anyhow::Result<ExitCode> {
    if let Some(DownloadServe::Serve { listen, root, listener }) = args.serve {
        let mut listeners = Listeners::new()?;
        let service = Download::new(&root)?;
        let name = format!("download, {}", service.root().display());
        let config = tcp_config(listen, &listener)?;
        let tls = tls_note(config.tls.as_ref());
        let bound = listeners.tcp(config, service)?;
        crate::outln!("listening on tcp {bound} ({name}{tls})")?;
        return Ok(listeners.serve().await);
    }
    let (Some(addr), Some(name)) = (args.addr, args.name) else {
        return Err(UsageError("usage: sockit download HOST:PORT NAME [-o FILE]".into()).into());
    };
    let dest = match args.output {
        Some(p) => p,
        None => {
            let last = name
                .rsplit('/')
                .next()
                .filter(|n| !n.is_empty() && *n != "." && *n != "..");
            PathBuf::from(last.ok_or_else(|| UsageError(format!("cannot name a local file after {name:?}; use -o")))?)
        }
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
