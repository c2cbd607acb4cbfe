//! `sockit chat serve|join`.

use std::io::BufRead as _;
use std::process::ExitCode;
use std::time::Duration;

use tokio::sync::mpsc;

use anyhow::Context as _;

use sockit::chat::bus::Bus;
use sockit::chat::{ChatService, Room};
use sockit::server::ServerConfig;
use sockit_proto::assist::text::{TextDecoder, TextEncoding};
use sockit_proto::chat::Nick;
use sockit_proto::chat::bus::RoomName;

use super::lifecycle::Listeners;
use super::{client_dial, server_auth, server_tls};
use crate::UsageError;
use crate::cli::{ChatCommand, ChatJoinArgs, ChatServeArgs};

pub async fn run(command: ChatCommand) -> anyhow::Result<ExitCode> {
    match command {
        ChatCommand::Serve(a) => serve(a).await,
        ChatCommand::Join(a) => join(a).await,
    }
}

async fn serve(args: ChatServeArgs) -> anyhow::Result<ExitCode> {
    let auth = server_auth(&args.auth)?;
    let mut config = ServerConfig::new(args.listen, auth);
    config.max_connections = args.max_connections;
    config.max_per_peer = args.max_per_peer;
    config.backlog = args.backlog;
    config.idle_timeout = Duration::from_secs(args.idle_timeout);
    config.tls = server_tls(&args.tls, args.auth.key_file.as_deref())?;
    let mut listeners = Listeners::new(&args.run_as)?;
    let room = match &args.bus {
        Some(bus) => room_on_bus(bus, args.room.as_deref()).await?,
        None => Room::spawn(),
    };
    listeners.tcp(config, ChatService::in_room(room, args.member_backlog), "chat", "")?;
    listeners.serve().await
}

/// A room shared with every server on the bus at `url` under `room`'s name
/// (`lobby` when not given).
pub async fn room_on_bus(url: &str, room: Option<&str>) -> anyhow::Result<Room> {
    let name = match room {
        Some(name) => RoomName::parse(name).map_err(|e| UsageError(format!("room: {e}")))?,
        None => RoomName::default(),
    };
    let bus = Bus::connect(url, &name)
        .await
        .with_context(|| format!("cannot share room {name} over {url}"))?;
    tracing::info!(%url, room = %name, server = %bus.me(), "the chat room is shared over the bus");
    Ok(Room::spawn_on(bus))
}

async fn join(args: ChatJoinArgs) -> anyhow::Result<ExitCode> {
    let nick = args
        .nick
        .as_deref()
        .map(Nick::parse)
        .transpose()
        .map_err(|e| UsageError(format!("--nick: {e}")))?;
    let dial = client_dial(&args.auth, &args.tls)?;
    let (input_tx, input) = mpsc::channel::<String>(64);
    let (output, mut lines) = mpsc::channel::<String>(256);
    let encoding = args.encoding;
    // stdin on its own thread: typed lines, decoded from the terminal's encoding.
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut raw = Vec::new();
        loop {
            raw.clear();
            match stdin.read_until(b'\n', &mut raw) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let (text, _) = TextDecoder::decode_message(encoding, &raw);
                    let text = text.trim_end_matches(['\n', '\r']).to_string();
                    if input_tx.blocking_send(text).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let printer = tokio::spawn(async move {
        use std::io::Write as _;
        while let Some(line) = lines.recv().await {
            // A room other than sockit's may relay escape sequences.
            let line = sockit_proto::display::escape(&line, true).into_owned();
            let shown = match encoding {
                TextEncoding::Utf8 => line.into_bytes(),
                // What the terminal cannot show becomes '?', not an error.
                other => other.encode(&line).unwrap_or_else(|_| {
                    line.chars()
                        .map(|c| other.encode(&c.to_string()).unwrap_or_else(|_| b"?".to_vec()))
                        .collect::<Vec<_>>()
                        .concat()
                }),
            };
            let mut out = std::io::stdout().lock();
            if out
                .write_all(&shown)
                .and_then(|()| out.write_all(b"\n"))
                .and_then(|()| out.flush())
                .is_err()
            {
                break;
            }
        }
    });
    let timeout = Duration::from_secs(args.timeout.max(1));
    let result = sockit::chat::client::join(
        &args.addr.with_default(crate::cli::port::CHAT),
        &dial,
        nick.as_ref(),
        input,
        output,
        timeout,
    )
    .await;
    let _ = printer.await;
    result?;
    Ok(ExitCode::SUCCESS)
}
