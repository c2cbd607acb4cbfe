//! The dashboard's figures: `GET /api/stats` once as JSON, or
//! `/api/stats/live` as a WebSocket that sends them every second. They
//! come from [`crate::stats`], where every service reports.

use std::time::Duration;

use axum::Json;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::StreamExt as _;
use tokio_util::sync::CancellationToken;

use super::{State, ws};
use crate::stats::{Snapshot, Stats};

/// How often the dashboard is refreshed.
const EVERY: Duration = Duration::from_secs(1);

/// `GET /api/stats`.
pub async fn once(state: State) -> Json<Snapshot> {
    Json(state.config.stats.snapshot())
}

/// `GET /api/stats/live`: a WebSocket of snapshots.
pub async fn live(state: State, ws: WebSocketUpgrade) -> Response {
    let stats = state.config.stats.clone();
    let closing = state.closing.clone();
    ws.max_message_size(1024)
        .on_upgrade(move |socket| feed(socket, stats, closing))
}

async fn feed(socket: WebSocket, stats: Stats, closing: CancellationToken) {
    let (mut sink, mut stream) = socket.split();
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if !ws::send_json(&mut sink, &stats.snapshot()).await {
                    break;
                }
            }
            message = stream.next() => match message {
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            () = closing.cancelled() => break,
        }
    }
    ws::close(sink).await;
}
