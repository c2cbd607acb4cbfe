//! `sockit broadcast send|listen`.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

use bytes::Bytes;
use serde_json::json;
use tokio::sync::mpsc;

use sockit_proto::assist::text::TextDecoder;

use crate::UsageError;
use crate::cli::BroadcastCommand;
use crate::output::json_line;

pub async fn run(command: BroadcastCommand) -> anyhow::Result<ExitCode> {
    match command {
        BroadcastCommand::Send {
            text,
            port,
            bind,
            encoding,
        } => {
            let payload = encoding.encode(&text).map_err(|e| UsageError(e.to_string()))?;
            let sent = sockit::broadcast::send(SocketAddr::new(IpAddr::V4(bind), 0), port, &payload).await?;
            for to in sent {
                crate::outln!("sent {} bytes to {to}", payload.len())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        BroadcastCommand::Listen {
            port,
            bind,
            listen,
            encoding,
            json,
        } => {
            let addr = listen.map_or(SocketAddr::new(IpAddr::V4(bind), port), SocketAddr::V4);
            let socket = sockit::broadcast::listener(addr)?;
            eprintln!("listening on udp {} (broadcast)", socket.local_addr()?);
            let (tx, mut rx) = mpsc::channel::<(SocketAddr, Bytes)>(256);
            tokio::spawn(sockit::broadcast::listen(socket, tx));
            loop {
                let (from, data) = tokio::select! {
                    got = rx.recv() => match got { Some(g) => g, None => break },
                    _ = tokio::signal::ctrl_c() => return Ok(ExitCode::from(crate::exit::INTERRUPTED)),
                };
                let (text, _) = TextDecoder::decode_message(encoding, &data);
                let time = chrono::Local::now().format("%H:%M:%S%.3f").to_string();
                if json {
                    json_line(
                        &json!({"event": "datagram", "from": from.to_string(), "bytes": data.len(), "text": text}),
                    )?;
                } else {
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "[{time}] {from}: {text}")?;
                    out.flush()?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
