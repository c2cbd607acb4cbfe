//! The file API: listings, downloads with byte ranges, streamed uploads
//! (`curl -T`), and folder changes, all through the shared [`ServedRoot`]:
//! a local folder (its Sandbox, staging and access mode) or an object
//! store.
//!
//! A file is always served so that the browser cannot run it as part of
//! the page: `Content-Security-Policy: sandbox`, `nosniff`, and as an
//! attachment unless it is a type a browser only displays.

use std::fs::File;
use std::os::unix::fs::MetadataExt as _;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt as _;
use serde::Deserialize;

use sockit_proto::files::{Entry, EntryKind, ErrorCode, Put};
use sockit_proto::path::RelPath;
use sockit_proto::web::{ByteRange, PathRequest, Rename, Stored};

use super::State;
use super::reply::{ApiError, ApiResult};
use crate::disk::DiskReader;
use crate::files::object::{ObjectReader, ObjectRoot, Piece};
use crate::files::storage::ServedRoot;
use crate::files::{Access, FileStore, Operation, Refusal, Storage as _};

#[derive(Debug, Deserialize)]
pub struct PathQuery {
    #[serde(default)]
    pub path: String,
}

#[derive(Debug, Deserialize)]
pub struct FileQuery {
    /// Show it in the browser if it is a type a browser only displays.
    #[serde(default)]
    pub inline: bool,
    /// DELETE: a folder and everything in it.
    #[serde(default)]
    pub recursive: bool,
}

pub(super) fn rel(name: &str) -> ApiResult<RelPath> {
    RelPath::parse(name).map_err(|e| ApiError::new(ErrorCode::BadPath, format!("bad name {name:?}: {e}")))
}

fn rel_dir(name: &str) -> ApiResult<RelPath> {
    RelPath::parse_dir(name).map_err(|e| ApiError::new(ErrorCode::BadPath, format!("bad name {name:?}: {e}")))
}

/// `GET /api/ls?path=P`: one folder's entries.
pub async fn ls(state: State, Query(q): Query<PathQuery>) -> ApiResult<Json<Vec<Entry>>> {
    state.store.allow(Operation::Read)?;
    let base = rel_dir(&q.path)?;
    let entries = state.store.list(&base, state.store.config().listing).await?;
    Ok(Json(entries))
}

/// `POST /api/mkdir`: a folder and its parents.
pub async fn mkdir(state: State, Json(req): Json<PathRequest>) -> ApiResult<StatusCode> {
    state.store.allow(Operation::Change)?;
    let path = rel(&req.path)?;
    state.store.make_dirs(&path).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/rename`: never over an existing name.
pub async fn rename(state: State, Json(req): Json<Rename>) -> ApiResult<StatusCode> {
    state.store.allow(Operation::Change)?;
    let (from, to) = (rel(&req.from)?, rel(&req.to)?);
    state.store.rename(&from, &to).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/rm`: a file, an empty folder, or a tree with `recursive`.
pub async fn rm(state: State, Json(req): Json<PathRequest>) -> ApiResult<StatusCode> {
    remove(&state, &req.path, req.recursive).await
}

/// `DELETE /files/PATH[?recursive=true]`.
pub async fn delete(state: State, Path(path): Path<String>, Query(q): Query<FileQuery>) -> ApiResult<StatusCode> {
    remove(&state, &path, q.recursive).await
}

async fn remove(state: &State, name: &str, recursive: bool) -> ApiResult<StatusCode> {
    state.store.allow(Operation::Change)?;
    let path = rel(name)?;
    state.store.remove(&path, recursive).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET`/`HEAD /files/PATH`: the file, or the part a `Range` asks for.
pub async fn download(
    state: State,
    axum::Extension(peer): axum::Extension<super::Peer>,
    method: Method,
    Path(name): Path<String>,
    Query(q): Query<FileQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    state.store.allow(Operation::Read)?;
    let path = rel(&name)?;
    let source = Source::open(&state.store, &path).await?;
    let (size, mtime, etag) = (source.size, source.mtime, source.etag.clone());
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    // If-Range: a range of a file that changed since would splice two
    // versions; send the whole new one instead.
    let if_range_ok = headers
        .get(header::IF_RANGE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v == etag || v == http_date(mtime));
    let range = if if_range_ok {
        ByteRange::parse(range_header, size)
    } else {
        ByteRange::Whole
    };
    let (status, start, len) = match range {
        ByteRange::Whole => (StatusCode::OK, 0, size),
        ByteRange::Part { start, end } => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        ByteRange::Unsatisfiable => {
            let mut r = ApiError::new(ErrorCode::BadRequest, "range past the end of the file")
                .with_status(StatusCode::RANGE_NOT_SATISFIABLE)
                .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(r);
        }
    };
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        let shown = state
            .store
            .config()
            .stats
            .transfer("web download", &name, Some(peer.0), Some(size), start);
        source.body(start, len, shown)
    };
    let mut response = Response::builder()
        .status(status)
        .header(header::CONTENT_LENGTH, len)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::ETAG, &etag)
        .header(header::LAST_MODIFIED, http_date(mtime))
        .header(header::CACHE_CONTROL, "no-cache")
        .header(header::CONTENT_SECURITY_POLICY, "sandbox");
    if status == StatusCode::PARTIAL_CONTENT {
        response = response.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{size}", start + len - 1),
        );
    }
    let file_name = name.rsplit('/').next().unwrap_or(&name);
    let shown = content_type(file_name);
    let (kind, disposition) = match shown {
        Some(kind) if q.inline => (kind, "inline"),
        Some(kind) => (kind, "attachment"),
        None => ("application/octet-stream", "attachment"),
    };
    response = response.header(header::CONTENT_TYPE, kind).header(
        header::CONTENT_DISPOSITION,
        format!("{disposition}; filename*=UTF-8''{}", attr_encode(file_name)),
    );
    response
        .body(body)
        .map_err(|e| ApiError::new(ErrorCode::Io, format!("cannot build the response: {e}")))
}

/// `GET /api/zip?path=P`: the folder P (and everything under it) as one
/// `.zip`, streamed as it is made.
pub async fn zip(
    state: State,
    axum::Extension(peer): axum::Extension<super::Peer>,
    Query(q): Query<PathQuery>,
) -> ApiResult<Response> {
    state.store.allow(Operation::Read)?;
    let base = rel_dir(&q.path)?;
    if state.store.stat(&base).await?.kind != EntryKind::Dir {
        return Err(ApiError::new(ErrorCode::NotADirectory, "not a folder"));
    }
    let top = if base.is_root() {
        String::new()
    } else {
        base.file_name().to_owned()
    };
    let file_name = format!("{}.zip", if top.is_empty() { "files" } else { top.as_str() });
    let shown = state
        .store
        .config()
        .stats
        .transfer("zip", &file_name, Some(peer.0), None, 0);
    let folder = match &state.store {
        ServedRoot::Local(store) => super::archive::Folder::Local(Arc::clone(store.sandbox().tree())),
        ServedRoot::Object { root, .. } => {
            super::archive::Folder::Object(Arc::clone(root), tokio::runtime::Handle::current())
        }
    };
    let body = super::archive::zip_body(folder, base, top, state.store.config().listing, shown);
    Response::builder()
        .header(header::CONTENT_TYPE, "application/zip")
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename*=UTF-8''{}", attr_encode(&file_name)),
        )
        .header(header::CONTENT_SECURITY_POLICY, "sandbox")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body)
        .map_err(|e| ApiError::new(ErrorCode::Io, format!("cannot build the response: {e}")))
}

/// A file to download, from either kind of root.
struct Source {
    origin: Origin,
    size: u64,
    /// Unix seconds.
    mtime: i64,
    etag: String,
}

enum Origin {
    File(File),
    Object(ObjectReader),
}

impl Source {
    async fn open(root: &ServedRoot, path: &RelPath) -> Result<Self, Refusal> {
        match root {
            ServedRoot::Local(store) => {
                let path = path.clone();
                let (file, size, (secs, nsecs)) = store
                    .sandbox()
                    .run(move |tree| {
                        let (file, size) = tree.open_file(&path)?;
                        let meta = file.metadata()?;
                        Ok((file, size, (meta.mtime(), meta.mtime_nsec())))
                    })
                    .await?;
                Ok(Self {
                    origin: Origin::File(file),
                    size,
                    mtime: secs,
                    etag: format!("\"{size:x}-{secs:x}.{nsecs:x}\""),
                })
            }
            ServedRoot::Object { root, .. } => {
                let reader = root.open_read(path).await?;
                let (size, mtime) = (reader.size, reader.mtime);
                // The store's own tag names this version; HTTP wants it quoted.
                let etag = match reader.e_tag() {
                    Some(t) if t.starts_with('"') || t.starts_with("W/\"") => t.to_owned(),
                    Some(t) => format!("\"{t}\""),
                    None => format!("\"{size:x}-{mtime:x}\""),
                };
                Ok(Self {
                    origin: Origin::Object(reader),
                    size,
                    mtime,
                    etag,
                })
            }
        }
    }

    /// `len` bytes from `start`; the transfer stays listed until the body
    /// is done or dropped.
    fn body(self, start: u64, len: u64, shown: crate::stats::Transfer) -> Body {
        match self.origin {
            Origin::File(file) => {
                let reader = DiskReader::range(file, start, len);
                let chunks = futures_util::stream::unfold((reader, shown), |(mut reader, shown)| async move {
                    let chunk = reader.next().await?;
                    if let Ok(c) = &chunk {
                        shown.advance(c.len());
                    }
                    Some((chunk.map(Bytes::from), (reader, shown)))
                });
                Body::from_stream(chunks)
            }
            Origin::Object(reader) => {
                let pieces = reader.bytes(start..start + len);
                // Each piece is held (and its buffer counted) until hyper
                // asks for the next, that is, until it was written out.
                let held: Option<Piece> = None;
                let chunks = futures_util::stream::unfold((pieces, held, shown), |(mut pieces, _, shown)| async move {
                    match pieces.next().await? {
                        Ok(piece) => {
                            shown.advance(piece.bytes.len());
                            let bytes = piece.bytes.clone();
                            Some((Ok(bytes), (pieces, Some(piece), shown)))
                        }
                        Err(r) => Some((Err(std::io::Error::other(r.message)), (pieces, None, shown))),
                    }
                });
                Body::from_stream(chunks)
            }
        }
    }
}

/// `PUT /files/PATH` (`curl -T FILE URL`): the body, streamed into the
/// staging and committed as `put` commits: whole or not at all.
pub async fn upload(
    state: State,
    axum::Extension(peer): axum::Extension<super::Peer>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    state.store.allow(Operation::Upload)?;
    let path = rel(&name)?;
    let Some(size) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return Err(ApiError::bad_request("an upload needs a Content-Length").with_status(StatusCode::LENGTH_REQUIRED));
    };
    let put = Put {
        path: path.clone(),
        filesize: size,
        offset: 0,
        md5: None,
        trailer: false,
        prefix_xxh3: None,
    };
    let shown = state
        .store
        .config()
        .stats
        .transfer("web upload", &name, Some(peer.0), Some(size), 0);
    let stream = body.into_data_stream();
    let xxh3 = match &state.store {
        ServedRoot::Local(store) => put_local(store, &put, stream, shown).await?,
        ServedRoot::Object { root, config } => put_object(root, config.access, &put, stream, shown).await?,
    };
    tracing::info!(%path, size, "web upload stored");
    let stored = Stored {
        path: path.to_string(),
        size,
        xxh3,
    };
    Ok((StatusCode::CREATED, Json(stored)).into_response())
}

/// The body into the local staging, committed whole or not at all.
async fn put_local(
    store: &FileStore,
    put: &Put,
    mut stream: axum::body::BodyDataStream,
    shown: crate::stats::Transfer,
) -> ApiResult<String> {
    let (path, size) = (&put.path, put.filesize);
    let (upload, mut writer) = store.prepare_upload(put).await?;
    let mut received = 0u64;
    let mut writing = true;
    // HTTP frames are tens of KiB: gathered into batches of BATCH bytes,
    // each one hand-off to the disk thread and one writev.
    let mut batch = Vec::new();
    let mut batched = 0;
    while let Some(frame) = stream.next().await {
        let Ok(bytes) = frame else {
            // The upload is dropped, and with it the partial.
            let _ = writer.finish().await;
            tracing::info!(%path, "web upload interrupted");
            return Err(ApiError::bad_request("the upload broke off"));
        };
        received += bytes.len() as u64;
        shown.advance(bytes.len());
        batched += bytes.len();
        batch.push(bytes);
        if batched >= BATCH {
            if writing {
                writing = writer.write_batch(std::mem::take(&mut batch)).await;
            }
            batch.clear();
            batched = 0;
        }
    }
    if writing && !batch.is_empty() {
        writer.write_batch(batch).await;
    }
    let written = writer.finish().await;
    if received != size {
        return Err(short_body(received, size));
    }
    Ok(store.finish_upload(put, upload, written, None).await?)
}

/// The body as a multipart upload, completed only once all of it arrived.
async fn put_object(
    root: &std::sync::Arc<ObjectRoot>,
    access: Access,
    put: &Put,
    mut stream: axum::body::BodyDataStream,
    shown: crate::stats::Transfer,
) -> ApiResult<String> {
    let claim = root
        .claim(&put.path)
        .ok_or_else(|| ApiError::new(ErrorCode::Busy, "an upload of this file is already running"))?;
    // Dropped unfinished, the upload's parts are aborted.
    let mut upload = root.begin_upload(put, claim, access != Access::UploadOnly).await?;
    let mut received = 0u64;
    while let Some(frame) = stream.next().await {
        let Ok(bytes) = frame else {
            tracing::info!(path = %put.path, "web upload interrupted");
            return Err(ApiError::bad_request("the upload broke off"));
        };
        received += bytes.len() as u64;
        if received > put.filesize {
            return Err(short_body(received, put.filesize));
        }
        shown.advance(bytes.len());
        upload.write(&bytes).await?;
    }
    if received != put.filesize {
        return Err(short_body(received, put.filesize));
    }
    Ok(upload.finish(None, None).await?)
}

fn short_body(received: u64, size: u64) -> ApiError {
    ApiError::bad_request(format!("{received} bytes arrived of the {size} announced"))
}

/// Bytes of an upload's body handed to the disk thread at once: the
/// framed service's chunk size.
const BATCH: usize = 256 * 1024;

/// An HTTP date (RFC 9110 §5.6.7) for Unix seconds.
fn http_date(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

/// The types a browser displays without running anything; everything else
/// is downloaded as bytes.
fn content_type(name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "txt" | "log" | "md" | "csv" | "rs" | "py" | "c" | "h" | "toml" | "json" | "yaml" | "yml" => {
            "text/plain; charset=utf-8"
        }
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "pdf" => "application/pdf",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "wav" => "audio/wav",
        _ => return None,
    })
}

/// RFC 8187's encoding of a file name for `filename*`.
fn attr_encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_encoded_for_the_header() {
        assert_eq!(attr_encode("a b.txt"), "a%20b.txt");
        assert_eq!(attr_encode("报告.pdf"), "%E6%8A%A5%E5%91%8A.pdf");
        assert_eq!(attr_encode("x\";y"), "x%22%3By");
    }

    #[test]
    fn only_display_types_are_shown() {
        assert_eq!(content_type("a.PNG"), Some("image/png"));
        assert_eq!(content_type("page.html"), None);
        assert_eq!(content_type("pic.svg"), None, "svg can carry script");
        assert_eq!(content_type("noext"), None);
    }
}
