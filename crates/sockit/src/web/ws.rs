//! What every WebSocket of the page shares: each message to the browser
//! has a deadline, so a browser that stops reading is dropped rather than
//! holding a task and its queue forever.

use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use futures_util::SinkExt as _;
use futures_util::stream::SplitSink;
use serde::Serialize;

/// Longest a message to the browser may take to leave.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);

pub type Sink = SplitSink<WebSocket, Message>;

/// Sends one message; false when it failed or the browser stopped reading.
pub async fn send(sink: &mut Sink, message: Message) -> bool {
    matches!(tokio::time::timeout(SEND_TIMEOUT, sink.send(message)).await, Ok(Ok(())))
}

/// Sends a value as one JSON text message.
pub async fn send_json<T: Serialize>(sink: &mut Sink, value: &T) -> bool {
    let json = serde_json::to_string(value).unwrap_or_default();
    send(sink, Message::Text(Utf8Bytes::from(json))).await
}

/// Closes the socket, waiting at most [`SEND_TIMEOUT`] for the browser.
pub async fn close(mut sink: Sink) {
    let _ = tokio::time::timeout(SEND_TIMEOUT, sink.close()).await;
}
