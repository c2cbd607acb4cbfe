//! The assistant page's API (docs/protocol.md §11.8): sessions opened from
//! the browser, run by [`crate::nc::desk`] in the server.
//!
//! Off unless the server was started with `--web-assistant`: it lets a
//! browser open sockets from the server's host, so it is refused (403)
//! otherwise, on top of the session every API route needs.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use sockit_proto::assist::append::Append;
use sockit_proto::assist::text::TextEncoding;
use sockit_proto::files::ErrorCode;

use super::reply::{ApiError, ApiResult};
use super::{State, ws};
use crate::nc::desk::{Desk, DeskError, Running, Spec, Summary, ToSend};
use crate::nc::{Family, PeerId};

/// Largest file the page may send in one go.
pub const MAX_SEND_FILE: usize = 16 << 20;
/// How often a watching page gets the session's counters and peers.
const SUMMARY_EVERY: Duration = Duration::from_millis(500);

fn desk(state: &State) -> ApiResult<&Desk> {
    state.config.assistant.as_ref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::PermissionDenied,
            "the assistant is off: start sockit serve with --web-assistant",
        )
    })
}

fn session(state: &State, id: u64) -> ApiResult<Arc<Running>> {
    desk(state)?.get(id).map_err(refusal)
}

fn refusal(e: DeskError) -> ApiError {
    match e {
        DeskError::NoSession(_) => ApiError::new(ErrorCode::NotFound, e.to_string()),
        DeskError::Full(_) => ApiError::new(ErrorCode::Busy, e.to_string()),
        DeskError::Ended => ApiError::new(ErrorCode::Busy, e.to_string()).with_status(StatusCode::GONE),
        DeskError::Bad(_) | DeskError::Open(_) => ApiError::bad_request(e.to_string()),
    }
}

#[derive(Debug, Serialize)]
pub struct Overview {
    max: usize,
    sessions: Vec<Summary>,
    quick: Vec<QuickButton>,
}

#[derive(Debug, Serialize)]
struct QuickButton {
    name: String,
    source: String,
    hex: bool,
}

/// `GET /api/assist`: the sessions and the quick sends.
pub async fn overview(state: State) -> ApiResult<Json<Overview>> {
    let desk = desk(&state)?;
    let quick = desk
        .profile()
        .sends
        .iter()
        .map(|q| QuickButton {
            name: q.name.clone(),
            source: q.source.clone(),
            hex: q.hex,
        })
        .collect();
    Ok(Json(Overview {
        max: desk.max(),
        sessions: desk.list(),
        quick,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenRequest {
    kind: String,
    /// HOST:PORT to connect or send to.
    #[serde(default)]
    target: String,
    /// ADDR:PORT to listen on or send from.
    #[serde(default)]
    bind: String,
}

/// `POST /api/assist/sessions`: open one.
pub async fn open(state: State, Json(req): Json<OpenRequest>) -> ApiResult<Json<Summary>> {
    let desk = desk(&state)?;
    let bind = || -> ApiResult<std::net::SocketAddr> {
        let text = if req.bind.trim().is_empty() {
            "0.0.0.0:0"
        } else {
            req.bind.trim()
        };
        text.parse()
            .map_err(|_| ApiError::bad_request(format!("'{text}' is not ADDR:PORT to bind")))
    };
    let spec = match req.kind.as_str() {
        "tcp-client" => Spec::TcpClient {
            target: resolve(&req.target).await?,
        },
        "tcp-server" => Spec::TcpServer { bind: bind()? },
        "udp" => Spec::Udp {
            bind: bind()?,
            target: if req.target.trim().is_empty() {
                None
            } else {
                Some(resolve(&req.target).await?)
            },
        },
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown kind '{other}' (tcp-client, tcp-server or udp)"
            )));
        }
    };
    desk.open(spec).await.map(Json).map_err(refusal)
}

async fn resolve(target: &str) -> ApiResult<std::net::SocketAddr> {
    let hp = sockit_proto::hostport::HostPort::parse(target.trim())
        .ok()
        .and_then(|hp| Some((hp.host, hp.port?)))
        .ok_or_else(|| ApiError::bad_request(format!("'{target}' is not HOST:PORT")))?;
    let addrs = crate::nc::resolve::socket_addrs(&hp.0, hp.1, Family::Any, false)
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    addrs
        .first()
        .copied()
        .ok_or_else(|| ApiError::bad_request(format!("no address for '{target}'")))
}

/// `DELETE /api/assist/sessions/{id}`.
pub async fn close(state: State, Path(id): Path<u64>) -> ApiResult<StatusCode> {
    desk(&state)?.close(id).map_err(refusal)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SendRequest {
    text: String,
    hex: bool,
    append: Vec<String>,
    encoding: Option<String>,
    to: Option<PeerId>,
    /// A quick send by name instead of `text`.
    quick: Option<String>,
    /// Repeat every this many milliseconds, `count` times.
    interval_ms: Option<u64>,
    count: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct SendReply {
    /// Bytes sent (for a periodic send, the first send's).
    bytes: usize,
    periodic: bool,
}

/// `POST /api/assist/sessions/{id}/send`.
pub async fn send(state: State, Path(id): Path<u64>, Json(req): Json<SendRequest>) -> ApiResult<Json<SendReply>> {
    let desk = desk(&state)?.clone();
    let running = session(&state, id)?;
    let out = ToSend {
        text: req.text,
        hex: req.hex,
        append: req
            .append
            .iter()
            .map(|a| a.parse::<Append>().map_err(|e| ApiError::bad_request(e.to_string())))
            .collect::<ApiResult<_>>()?,
        encoding: match req.encoding.as_deref() {
            None | Some("") => TextEncoding::Utf8,
            Some(e) => e
                .parse()
                .map_err(|e: sockit_proto::assist::text::TextError| ApiError::bad_request(e.to_string()))?,
        },
        to: req.to,
    };
    let quick = req.quick;
    let first = desk.compose(&running, &out, quick.as_deref()).map_err(refusal)?;
    let bytes = first.len();
    match req.interval_ms {
        Some(ms) => {
            let count = req.count.unwrap_or(u64::MAX).max(1);
            let mut first = Some(first);
            let runner = Arc::clone(&running);
            running.start_periodic(Duration::from_millis(ms), count, out.to, move || match first.take() {
                Some(data) => Ok(data),
                None => desk.compose(&runner, &out, quick.as_deref()),
            });
            Ok(Json(SendReply { bytes, periodic: true }))
        }
        None => {
            running.send(first, out.to).await.map_err(refusal)?;
            Ok(Json(SendReply { bytes, periodic: false }))
        }
    }
}

/// `POST /api/assist/sessions/{id}/stop`: stops a periodic send.
pub async fn stop(state: State, Path(id): Path<u64>) -> ApiResult<StatusCode> {
    session(&state, id)?.stop_periodic();
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
pub struct ToPeer {
    to: Option<PeerId>,
}

/// `POST /api/assist/sessions/{id}/send-file?to=N`: the body, as it is.
pub async fn send_file(
    state: State,
    Path(id): Path<u64>,
    axum::extract::Query(q): axum::extract::Query<ToPeer>,
    body: Bytes,
) -> ApiResult<Json<SendReply>> {
    let running = session(&state, id)?;
    let bytes = body.len();
    running.send(body, q.to).await.map_err(refusal)?;
    Ok(Json(SendReply { bytes, periodic: false }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerRequest {
    peer: PeerId,
}

/// `POST /api/assist/sessions/{id}/disconnect`.
pub async fn disconnect(state: State, Path(id): Path<u64>, Json(req): Json<PeerRequest>) -> ApiResult<StatusCode> {
    session(&state, id)?.disconnect(req.peer).await.map_err(refusal)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/assist/sessions/{id}/clear`: empties the kept log.
pub async fn clear(state: State, Path(id): Path<u64>) -> ApiResult<StatusCode> {
    session(&state, id)?.clear_log();
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    toml: String,
    on: bool,
}

/// `GET /api/assist/sessions/{id}/rules`.
pub async fn rules(state: State, Path(id): Path<u64>) -> ApiResult<Json<Rules>> {
    let running = session(&state, id)?;
    Ok(Json(Rules {
        toml: running.rules_text(),
        on: running.summary().rules_on,
    }))
}

/// `PUT /api/assist/sessions/{id}/rules`: load (or switch off) the rules.
pub async fn set_rules(state: State, Path(id): Path<u64>, Json(req): Json<Rules>) -> ApiResult<Json<Rules>> {
    let running = session(&state, id)?;
    running.set_rules(&req.toml, req.on).map_err(refusal)?;
    Ok(Json(req))
}

/// `GET /api/assist/sessions/{id}/events`: a WebSocket of the session's
/// log (what is kept, then as it happens) and its counters.
pub async fn events(state: State, Path(id): Path<u64>, ws: WebSocketUpgrade) -> Response {
    let running = match session(&state, id) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let closing = state.closing.clone();
    ws.max_message_size(1024)
        .on_upgrade(move |socket| watch(socket, running, closing))
}

/// What the server sends a watching page.
#[derive(Debug, Serialize)]
#[serde(rename_all = "lowercase")]
enum ToPage<'a> {
    Entry(&'a crate::nc::desk::Entry),
    Summary(&'a Summary),
    /// Entries the page fell too far behind to get.
    Missed(u64),
}

async fn watch(socket: WebSocket, running: Arc<Running>, closing: CancellationToken) {
    let (mut sink, mut stream) = socket.split();
    let (kept, mut live) = running.watch();
    let mut last = 0;
    for entry in &kept {
        last = entry.seq;
        if !ws::send_json(&mut sink, &ToPage::Entry(entry)).await {
            return;
        }
    }
    let mut tick = tokio::time::interval(SUMMARY_EVERY);
    loop {
        tokio::select! {
            entry = live.recv() => match entry {
                Ok(entry) if entry.seq <= last => {}
                Ok(entry) => {
                    last = entry.seq;
                    if !ws::send_json(&mut sink, &ToPage::Entry(&entry)).await {
                        break;
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    if !ws::send_json(&mut sink, &ToPage::Missed(n)).await {
                        break;
                    }
                }
                Err(RecvError::Closed) => break,
            },
            _ = tick.tick() => {
                if !ws::send_json(&mut sink, &ToPage::Summary(&running.summary())).await {
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
