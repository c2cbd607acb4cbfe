//! The page: HTML, CSS and JavaScript from `crates/sockit/web/`, compiled
//! into the binary so a browser on a LAN with no internet gets all of it.
//! No third-party code: every line the browser runs is sockit's own.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use super::AppState;

const INDEX: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const ASSIST_JS: &str = include_str!("../../web/assist.js");
const SHA256_JS: &str = include_str!("../../web/sha256.js");
const APP_CSS: &str = include_str!("../../web/app.css");

pub fn routes() -> Router<std::sync::Arc<AppState>> {
    Router::new()
        .route("/", get(|| async { page(INDEX, "text/html; charset=utf-8") }))
        .route(
            "/app.js",
            get(|| async { page(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/assist.js",
            get(|| async { page(ASSIST_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/sha256.js",
            get(|| async { page(SHA256_JS, "text/javascript; charset=utf-8") }),
        )
        .route("/app.css", get(|| async { page(APP_CSS, "text/css; charset=utf-8") }))
}

fn page(body: &'static str, kind: &'static str) -> impl IntoResponse {
    // The page changes only with the binary: revalidate, never serve a
    // stale script to a new server.
    (
        [(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "no-cache")],
        body,
    )
}
