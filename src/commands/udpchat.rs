//! `sockit udpchat`: typed lines to the peer, arrivals shown with sender and time.

use std::process::ExitCode;

use bytes::Bytes;
use serde_json::json;
use tokio::sync::mpsc;

use sockit::udpchat::{self, UdpChatEvent};
use sockit_proto::assist::text::TextDecoder;

use crate::cli::UdpChatArgs;
use crate::output::json_line;

pub async fn run(args: UdpChatArgs) -> anyhow::Result<ExitCode> {
    let socket = sockit::nc::udp::bind(args.listen)?;
    let local = socket.local_addr()?;
    eprintln!("listening on udp {local} (udpchat, peer {})", args.peer);
    let (input_tx, input) = mpsc::channel::<Bytes>(64);
    let (events_tx, mut events) = mpsc::channel::<UdpChatEvent>(256);
    let encoding = args.encoding;
    super::read_stdin_lines(move |text| match encoding.encode(text) {
        Ok(bytes) => input_tx.blocking_send(Bytes::from(bytes)).is_ok(),
        // One line that cannot be encoded does not end the chat.
        Err(e) => {
            eprintln!("sockit: not sent: {e}");
            true
        }
    });
    let chat = tokio::spawn(udpchat::run(socket, args.peer, input, events_tx));
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break };
                show(&event, encoding, args.json);
                if crate::output::stdout_closed() {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::from(crate::exit::INTERRUPTED)),
        }
    }
    let _ = chat.await;
    Ok(ExitCode::SUCCESS)
}

fn show(event: &UdpChatEvent, encoding: sockit_proto::assist::text::TextEncoding, json: bool) {
    let time = chrono::Local::now().format("%H:%M:%S%.3f").to_string();
    match event {
        UdpChatEvent::Received { from, data } => {
            let (text, _) = TextDecoder::decode_message(encoding, data);
            if json {
                let _ = json_line(
                    &json!({"event": "message", "from": from.to_string(), "text": text, "bytes": data.len()}),
                );
            } else {
                let _ = crate::outln!("[{time}] {from}: {text}");
            }
        }
        UdpChatEvent::Sent { .. } => {}
        UdpChatEvent::PeerNotListening => {
            if json {
                let _ = json_line(&json!({"event": "peer-not-listening"}));
            } else {
                eprintln!("[{time}] the peer's host says nothing listens on that port");
            }
        }
    }
}
