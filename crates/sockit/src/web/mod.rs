//! The web front end (docs/protocol.md §11): an HTTP/1.1 listener that
//! serves the page and a JSON API over the same [`ServedRoot`] as the
//! framed file service.
//!
//! It runs inside the one server skeleton ([`crate::server`]) like every
//! TCP service, so connection permits, per-address caps, TLS and shutdown
//! are the same; hyper parses HTTP on each connection, under a header
//! deadline and an idle deadline ([`idle::IdleStream`]). Authentication is
//! the page's own (a token trade for a session cookie, [`session`]), not
//! the framed handshake. The page itself (HTML, CSS and JavaScript, all
//! ours) is compiled in from `crates/sockit/web/` ([`assets`]).

mod archive;
mod assets;
mod assist;
mod chat;
mod files;
mod idle;
mod live;
mod reply;
mod session;
mod uploads;
mod ws;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::Instrument as _;

use sockit_proto::auth::Key;

use crate::Error;
use crate::files::storage::ServedRoot;
use crate::server::{ConnContext, Service};

pub use session::web_url;
pub use uploads::DEFAULT_UPLOAD_IDLE;

/// hyper's read buffer, which also caps a request's header block: a
/// browser's request with cookies is a few KiB, and a body read in pieces
/// this large costs a quarter of the system calls of 64 KiB ones.
pub const MAX_BUF_BYTES: usize = 256 * 1024;
/// Resumable uploads open at once (each holds a writer thread and up to
/// one chunk of memory); more wait with `busy`.
pub const DEFAULT_MAX_UPLOADS: usize = 64;

#[derive(Debug, Clone)]
pub struct WebConfig {
    /// `None` only with `--insecure-no-auth`: every request is let in.
    pub key: Option<Key>,
    /// The listener speaks TLS: cookies are marked `Secure`.
    pub tls: bool,
    /// How long an open resumable upload may wait for its next chunk
    /// before its partial is kept for a later resume and its slot freed.
    pub upload_idle: Duration,
    pub max_uploads: usize,
    /// The chat room browsers join at `/api/chat` (shared with the TCP
    /// chat listeners); `None`: no chat.
    pub room: Option<crate::chat::Room>,
    /// Bytes a chat member may have waiting before it counts as fallen
    /// behind.
    pub member_backlog: usize,
    /// The daemon's figures, for the dashboard.
    pub stats: crate::stats::Stats,
    /// The assistant page's sessions (`--web-assistant`); `None`: off.
    pub assistant: Option<crate::nc::desk::Desk>,
}

impl WebConfig {
    pub fn new(key: Option<Key>) -> Self {
        Self {
            key,
            tls: false,
            upload_idle: DEFAULT_UPLOAD_IDLE,
            max_uploads: DEFAULT_MAX_UPLOADS,
            room: None,
            member_backlog: crate::chat::DEFAULT_MEMBER_BACKLOG,
            stats: crate::stats::Stats::default(),
            assistant: None,
        }
    }
}

/// What every handler shares.
#[derive(Debug)]
struct AppState {
    config: WebConfig,
    store: ServedRoot,
    uploads: uploads::Uploads,
    /// Cancelled at shutdown: WebSocket members (which outlive their HTTP
    /// connection) say goodbye and leave.
    closing: tokio_util::sync::CancellationToken,
}

/// The peer's address, for the chat room and the log.
#[derive(Debug, Clone, Copy)]
struct Peer(std::net::SocketAddr);

type State = axum::extract::State<Arc<AppState>>;

/// The web listener's service: one hyper connection per TCP connection.
#[derive(Debug, Clone)]
pub struct WebService {
    router: Router,
    state: Arc<AppState>,
}

impl WebService {
    pub fn new(config: WebConfig, store: ServedRoot) -> Self {
        let uploads = uploads::Uploads::new(config.max_uploads, config.upload_idle);
        let state = Arc::new(AppState {
            config,
            store,
            uploads,
            closing: tokio_util::sync::CancellationToken::new(),
        });
        let api = Router::new()
            .route("/logout", post(session::logout))
            .route("/chat", get(chat::join))
            .route("/stats", get(live::once))
            .route("/stats/live", get(live::live))
            .route("/ls", get(files::ls))
            .route("/zip", get(files::zip))
            .route("/mkdir", post(files::mkdir))
            .route("/rename", post(files::rename))
            .route("/rm", post(files::rm))
            .route("/upload/open", post(uploads::open))
            .route("/upload/chunk", put(uploads::chunk).layer(DefaultBodyLimit::disable()))
            .route("/upload/cancel", post(uploads::cancel))
            .route("/assist", get(assist::overview))
            .route("/assist/sessions", post(assist::open))
            .route("/assist/sessions/{id}", axum::routing::delete(assist::close))
            .route("/assist/sessions/{id}/events", get(assist::events))
            .route("/assist/sessions/{id}/send", post(assist::send))
            .route(
                "/assist/sessions/{id}/send-file",
                post(assist::send_file).layer(DefaultBodyLimit::max(assist::MAX_SEND_FILE)),
            )
            .route("/assist/sessions/{id}/stop", post(assist::stop))
            .route("/assist/sessions/{id}/disconnect", post(assist::disconnect))
            .route("/assist/sessions/{id}/clear", post(assist::clear))
            .route("/assist/sessions/{id}/rules", get(assist::rules).put(assist::set_rules));
        let files = Router::new().route(
            "/{*path}",
            get(files::download)
                .head(files::download)
                .put(files::upload)
                .delete(files::delete)
                .layer(DefaultBodyLimit::disable()),
        );
        // Everything but the page and the login needs a session.
        let guarded =
            Router::new()
                .nest("/api", api)
                .nest("/files", files)
                .route_layer(axum::middleware::from_fn_with_state(
                    Arc::clone(&state),
                    session::require,
                ));
        let router = Router::new()
            .route("/api/login", post(session::login))
            .route("/api/session", get(session::current))
            .merge(guarded)
            .merge(assets::routes())
            .layer(axum::middleware::from_fn(reply::security_headers))
            .with_state(Arc::clone(&state));
        Self { router, state }
    }

    /// Keeps open uploads' partials for a resume: call at shutdown.
    pub async fn shutdown(&self) {
        self.state.closing.cancel();
        if let Some(desk) = &self.state.config.assistant {
            desk.close_all();
        }
        self.state.uploads.keep_all().await;
    }

    /// Keeps (and frees) uploads left idle, every half idle period; runs
    /// until dropped.
    pub async fn sweep_uploads(self) {
        let every = (self.state.config.upload_idle / 2).max(Duration::from_millis(100));
        loop {
            tokio::time::sleep(every).await;
            self.state.uploads.keep_idle().await;
        }
    }
}

impl Service for WebService {
    async fn serve<S>(&self, stream: S, ctx: ConnContext) -> Result<(), Error>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let peer = ctx.peer;
        let service = tower::util::MapRequest::new(
            self.router.clone(),
            move |req: hyper::Request<hyper::body::Incoming>| {
                let mut req = req.map(axum::body::Body::new);
                req.extensions_mut().insert(Peer(peer));
                req
            },
        );
        let io = TokioIo::new(idle::IdleStream::new(stream, ctx.idle_timeout));
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(ctx.request_timeout)
            .max_buf_size(MAX_BUF_BYTES);
        let conn = builder
            .serve_connection(io, TowerToHyperService::new(service))
            .with_upgrades();
        let mut conn = std::pin::pin!(conn);
        // What the handlers log names the peer.
        let span = tracing::info_span!("web", peer = %ctx.peer);
        let served = async {
            tokio::select! {
            r = conn.as_mut() => r,
            () = ctx.shutdown.cancelled() => {
                // Finish the request in flight, then close.
                conn.as_mut().graceful_shutdown();
                conn.await
            }
            }
        }
        .instrument(span)
        .await;
        served.map_err(|e| Error::Protocol(format!("http: {e}")))
    }
}
