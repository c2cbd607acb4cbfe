//! How the web front end answers: refusals as JSON with the file service's
//! stable codes and the HTTP status that fits, and the security headers on
//! every response.

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use sockit_proto::files::ErrorCode;
use sockit_proto::web::Refused;

use crate::files::Refusal;
use crate::sandbox::SandboxError;

/// A refused request: a status and the JSON body every refusal has.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: Refused,
}

impl ApiError {
    pub fn new(code: ErrorCode, error: impl Into<String>) -> Self {
        Self {
            status: status_of(code),
            body: Refused {
                code,
                error: error.into(),
            },
        }
    }

    pub fn bad_request(error: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, error)
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }
}

/// The one mapping from the file service's codes to HTTP statuses.
fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::BadRequest | ErrorCode::BadPath | ErrorCode::UnknownCommand => StatusCode::BAD_REQUEST,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::AlreadyExists
        | ErrorCode::IsADirectory
        | ErrorCode::NotADirectory
        | ErrorCode::NotEmpty
        | ErrorCode::Busy => StatusCode::CONFLICT,
        ErrorCode::ChecksumMismatch => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::NoSpace => StatusCode::INSUFFICIENT_STORAGE,
        ErrorCode::PermissionDenied => StatusCode::FORBIDDEN,
        ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::Io | ErrorCode::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        Self::new(r.code, r.message)
    }
}

impl From<SandboxError> for ApiError {
    fn from(e: SandboxError) -> Self {
        Refusal::from(e).into()
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> Self {
        Refusal::from(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The page's rules for the browser: run only our own scripts and styles,
/// never inside another site's frame, send no referrer.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
                           connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(PAGE_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}
