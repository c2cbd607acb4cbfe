//! Who may use the web front end: the login token (in the URL's fragment,
//! which a browser never sends), traded once for a session cookie; or the
//! token as `Authorization: Bearer` (curl). Requests that change anything
//! must also carry the `X-Sockit` header unless they carry an
//! `Authorization` header (CSRF), and no request may come from another
//! site's page (`Origin`), which also covers WebSocket hijacking.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use sockit_proto::auth::Key;
use sockit_proto::files::ErrorCode;
use sockit_proto::web::{self, CSRF_HEADER, Login, SESSION_COOKIE, SESSION_LIFETIME_SECS, Session};

use super::State;
use super::reply::{ApiError, ApiResult};
use crate::files::Access;

/// The URL a user opens: the token rides in the fragment, so it reaches
/// the page's script and never a request line or a log.
pub fn web_url(scheme: &str, addr: SocketAddr, key: Option<&Key>) -> String {
    match key {
        Some(key) => format!("{scheme}://{addr}/#token={}", web::token(key)),
        None => format!("{scheme}://{addr}/"),
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn session_of(state: &super::AppState) -> Session {
    let access = state.store.config().access;
    Session {
        logged_in: true,
        read_only: access == Access::ReadOnly,
        upload_only: access == Access::UploadOnly,
        chunk: web::PAGE_CHUNK,
        chat: state.config.room.is_some(),
        assistant: state.config.assistant.is_some(),
    }
}

/// `POST /api/login`: a right token gets a session cookie.
pub async fn login(state: State, Json(login): Json<Login>) -> ApiResult<Response> {
    let Some(key) = &state.config.key else {
        return Ok(Json(session_of(&state)).into_response());
    };
    if !web::token_matches(key, &login.token) {
        tracing::info!("web login refused: wrong token");
        return Err(ApiError::new(ErrorCode::PermissionDenied, "wrong token").with_status(StatusCode::UNAUTHORIZED));
    }
    let value = web::session_value(key, now().saturating_add(SESSION_LIFETIME_SECS));
    let secure = if state.config.tls { "; Secure" } else { "" };
    let cookie =
        format!("{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_LIFETIME_SECS}{secure}");
    let mut response = Json(session_of(&state)).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(response)
}

/// `POST /api/logout`: the browser forgets its cookie.
pub async fn logout() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let gone = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    if let Ok(v) = HeaderValue::from_str(&gone) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

/// `GET /api/session`: whether this browser is logged in, and what the
/// page may offer. Always 200, so a page that is not logged in yet has no
/// failed request to show in its console.
pub async fn current(state: State, headers: HeaderMap) -> Json<Session> {
    let mut session = session_of(&state);
    session.logged_in = check(&state, &Method::GET, &headers).is_ok();
    Json(session)
}

/// How a request proved itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// `--insecure-no-auth`.
    Open,
    Bearer,
    Cookie,
}

/// The guard in front of every API route and file.
pub async fn require(state: State, request: Request, next: Next) -> Response {
    match check(&state, request.method(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

fn check(state: &super::AppState, method: &Method, headers: &HeaderMap) -> ApiResult<()> {
    if !same_origin(headers) {
        return Err(ApiError::new(
            ErrorCode::PermissionDenied,
            "request from another site's page",
        ));
    }
    let via = match &state.config.key {
        // Open, a page another site loads under its own name, resolved to
        // this address (DNS rebinding), would be same-origin: only names
        // that cannot be rebound are answered.
        None if !unbindable_host(headers) => {
            return Err(ApiError::new(
                ErrorCode::PermissionDenied,
                "without auth the page answers only to an IP address or localhost (not a DNS name)",
            ));
        }
        None => Via::Open,
        Some(key) => {
            if bearer(headers).is_some_and(|t| web::token_matches(key, t)) {
                Via::Bearer
            } else if cookie(headers, SESSION_COOKIE).is_some_and(|v| web::session_valid(key, v, now())) {
                Via::Cookie
            } else {
                return Err(ApiError::new(
                    ErrorCode::PermissionDenied,
                    "log in first (the token from sockit serve)",
                )
                .with_status(StatusCode::UNAUTHORIZED));
            }
        }
    };
    let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    // A browser adds neither header to a cross-site request without a
    // CORS preflight, which sockit never grants.
    let deliberate = headers.contains_key(CSRF_HEADER) || headers.contains_key(header::AUTHORIZATION);
    if !safe && via != Via::Bearer && !deliberate {
        return Err(ApiError::new(
            ErrorCode::PermissionDenied,
            "a request that changes something needs the X-Sockit header",
        ));
    }
    Ok(())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Host` that no other site can point at us: an IP address or
/// `localhost`, with or without a port.
fn unbindable_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let name = if let Some(v6) = host.strip_prefix('[') {
        return v6
            .split_once(']')
            .is_some_and(|(ip, _)| ip.parse::<std::net::Ipv6Addr>().is_ok());
    } else {
        host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                name
            } else {
                host
            }
        })
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::Ipv4Addr>().is_ok()
}

/// No `Origin` (curl, a same-origin GET), or one naming this very host.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return true;
    };
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or("");
    origin_host.eq_ignore_ascii_case(host)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn origins_must_name_this_host() {
        assert!(same_origin(&headers(&[("host", "127.0.0.1:8081")])));
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:8081"),
            ("origin", "http://127.0.0.1:8081")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8081"),
            ("origin", "http://evil.example")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8081"),
            ("origin", "null")
        ])));
        assert!(!same_origin(&headers(&[("origin", "http://127.0.0.1:8081")])));
    }

    #[test]
    fn only_names_that_cannot_be_rebound_pass_without_auth() {
        for ok in [
            "127.0.0.1:8081",
            "10.0.0.5",
            "localhost:8081",
            "LOCALHOST",
            "[::1]:8081",
            "[fe80::1]",
        ] {
            assert!(unbindable_host(&headers(&[("host", ok)])), "{ok}");
        }
        for bad in [
            "evil.example:8081",
            "files.lan",
            "127.0.0.1.nip.io:80",
            "[::1",
            "[zz]:1",
        ] {
            assert!(!unbindable_host(&headers(&[("host", bad)])), "{bad}");
        }
        assert!(!unbindable_host(&HeaderMap::new()));
    }

    #[test]
    fn cookies_are_found_among_others() {
        let h = headers(&[("cookie", "a=1; sockit_session=5.abc; b=2")]);
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("5.abc"));
        assert_eq!(cookie(&headers(&[("cookie", "a=1")]), SESSION_COOKIE), None);
    }
}
