//! A browser in the chat room: a WebSocket member is just another member
//! (a queue bounded in bytes, the room's nick rules, `/` commands and
//! slow-member policy), so it talks with `nc` members in the same room.
//!
//! The page sends each line as a text message; the server sends JSON:
//! `{"line": "..."}` for each line the room sends this member, and
//! `{"present": ["nick", ...]}` whenever who is here changes.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use serde::Serialize;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use sockit_proto::chat::{Line, MAX_LINE};
use sockit_proto::files::ErrorCode;

use super::reply::ApiError;
use super::{State, ws};
use crate::chat::Room;
use crate::chat::member::command_for;
use crate::chat::queue::queue;
use crate::chat::room::Command;

/// How often the server pings a browser member: a chat tab is quiet for
/// long spells, and the pongs keep the connection inside its idle deadline
/// (and tell a gone browser from a quiet one).
const PING_EVERY: Duration = Duration::from_secs(30);

/// What the server sends the page, one JSON object per message.
#[derive(Debug, Serialize)]
#[serde(rename_all = "lowercase")]
enum ToPage<'a> {
    Line(&'a str),
    Present(&'a [String]),
}

/// `GET /api/chat` (a WebSocket upgrade): join the room.
pub async fn join(state: State, axum::Extension(peer): axum::Extension<super::Peer>, ws: WebSocketUpgrade) -> Response {
    let Some(room) = state.config.room.clone() else {
        return ApiError::new(ErrorCode::NotFound, "no chat room on this server").into_response();
    };
    let backlog = state.config.member_backlog;
    let closing = state.closing.clone();
    ws.max_message_size(MAX_LINE * 4)
        .on_upgrade(move |socket| member(socket, room, peer.0, backlog, closing))
}

async fn member(socket: WebSocket, room: Room, peer: SocketAddr, backlog: usize, closing: CancellationToken) {
    let (queue_tx, mut queue) = queue(backlog);
    let kick = CancellationToken::new();
    let (reply_tx, reply) = oneshot::channel();
    let joined = room
        .send(Command::Join {
            peer,
            queue: queue_tx,
            kick: kick.clone(),
            reply: reply_tx,
        })
        .await;
    if !joined {
        return;
    }
    let Ok(id) = reply.await else { return };
    let (mut sink, mut stream) = socket.split();
    let mut present = room.present();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut goodbye = None;
    let now: Vec<String> = present.borrow_and_update().clone();
    if !ws::send_json(&mut sink, &ToPage::Present(&now)).await {
        let _ = room.send(Command::Leave { id }).await;
        return;
    }
    loop {
        tokio::select! {
            message = stream.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    // One message may hold several lines (a paste).
                    for line in text.as_str().split('\n') {
                        let line = if line.len() > MAX_LINE { Line::TooLong } else { Line::Text(line.to_owned()) };
                        if !room.send(command_for(id, line)).await {
                            break;
                        }
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    let _ = room.send(Command::Tell { id, line: "send text, not binary".into() }).await;
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
            },
            chunk = queue.recv() => {
                let Some(chunk) = chunk else {
                    goodbye = Some("*** bye");
                    break;
                };
                let text = String::from_utf8_lossy(&chunk);
                let mut ok = true;
                for line in text.lines() {
                    if !ws::send_json(&mut sink, &ToPage::Line(line)).await {
                        ok = false;
                        break;
                    }
                }
                if !ok {
                    break;
                }
            }
            changed = present.changed() => {
                if changed.is_err() {
                    break;
                }
                let now: Vec<String> = present.borrow_and_update().clone();
                if !ws::send_json(&mut sink, &ToPage::Present(&now)).await {
                    break;
                }
            }
            _ = ping.tick() => {
                if !ws::send(&mut sink, Message::Ping(Default::default())).await {
                    break;
                }
            }
            () = kick.cancelled() => {
                goodbye = Some("!!! you fell too far behind; disconnected");
                break;
            }
            () = closing.cancelled() => {
                goodbye = Some("*** the server is shutting down");
                break;
            }
        }
    }
    let _ = room.send(Command::Leave { id }).await;
    if let Some(text) = goodbye {
        let _ = ws::send_json(&mut sink, &ToPage::Line(text)).await;
    }
    ws::close(sink).await;
}
