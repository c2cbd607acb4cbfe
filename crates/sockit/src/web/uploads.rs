//! Resumable uploads from the page: open, then chunks in order, each
//! checked against its SHA-256 before a byte of it is written.
//!
//! An open upload holds its staging claim and its writer between chunks,
//! so a chunk costs one request and nothing is re-read. Left idle (the tab
//! closed, the network gone) it is kept as a partial, exactly like an
//! interrupted `put --verify`, and the next `open` of the same path and
//! size continues from it: after a reload, or a server restart. The page
//! continues a kept partial only when its last bytes (up to
//! [`TAIL_PROOF`]) hash like the same range of its own file.
//!
//! On an object store the chunks feed a multipart upload, which gathers
//! them into parts (the page's chunks are smaller than S3's smallest
//! part). What is kept is the parts the store acknowledged, recorded in
//! the upload's manifest with the SHA-256 of their last bytes, so the
//! resume works the same from any server that shares the store.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Json;
use axum::extract::Query;
use axum::http::HeaderMap;
use bytes::Bytes;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use tokio::time::Instant;

use sockit_proto::checksum::hex;
use sockit_proto::files::{ErrorCode, Put};
use sockit_proto::path::RelPath;
use sockit_proto::web::{ChunkStored, PathRequest, TAIL_PROOF, UploadState};

use super::State;
use super::files::rel;
use super::reply::{ApiError, ApiResult};
use crate::disk::DiskWriter;
use crate::files::object::{ObjectRoot, ObjectUpload};
use crate::files::staging::Upload;
use crate::files::storage::ServedRoot;
use crate::files::{Access, FileStore, Operation, Refusal, Storage as _};

/// How long an open upload waits for its next chunk before it is kept as
/// a partial and its slot freed: a chunk takes well under a second on a
/// LAN, so a minute of silence means the page is gone.
pub const DEFAULT_UPLOAD_IDLE: Duration = Duration::from_secs(60);
/// Chunks received at once, server-wide: each is held whole (at most
/// MAX_CHUNK, 16 MiB) until its hash is checked, so this bounds that memory
/// at 128 MiB; more senders wait their turn.
const CHUNKS_AT_ONCE: usize = 8;
/// How long a chunk waits for a part buffer on an object store before it
/// is refused `busy` (and its upload kept for the page's retry).
const BUFFER_WAIT: Duration = Duration::from_secs(10);
/// The header carrying a chunk's SHA-256 (lowercase hex).
pub const CHUNK_SHA256_HEADER: &str = "x-sockit-sha256";

#[derive(Debug, Deserialize)]
pub struct OpenRequest {
    pub path: String,
    pub size: u64,
    /// Discard whatever the server holds and start from 0 (the page's file
    /// is not the one whose start the server kept).
    #[serde(default)]
    pub restart: bool,
}

#[derive(Debug, Deserialize)]
pub struct ChunkQuery {
    pub path: String,
    pub offset: u64,
}

/// Where an open upload's bytes go.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "one per open upload (64 at most), held in its slot between chunks"
)]
enum Sink {
    /// The staging's partial, behind its writer thread.
    Local {
        store: Arc<FileStore>,
        upload: Upload,
        writer: DiskWriter,
    },
    Object(ObjectUpload),
}

/// One upload between its chunks.
#[derive(Debug)]
struct Open {
    put: Put,
    sink: Sink,
    offset: u64,
    /// The last bytes held (at least TAIL_PROOF of them, when there are
    /// that many), for the resume check.
    tail: VecDeque<Bytes>,
    /// What a kept upload on an object store proved at its offset (its
    /// bytes are in the store, not here).
    kept_proof: Option<UploadState>,
    touched: Instant,
    /// Listed on the dashboard while open.
    shown: crate::stats::Transfer,
    /// A write began and has not ended: its request was dropped midway
    /// (the client went), so what the sink holds is unknown past the
    /// last whole chunk. Such an upload is only kept, never continued.
    writing: bool,
}

impl Open {
    fn state(&self) -> UploadState {
        if let Some(proof) = self.kept_proof.as_ref().filter(|p| p.offset == self.offset) {
            return proof.clone();
        }
        let want = TAIL_PROOF.min(self.offset);
        if want == 0 {
            return UploadState {
                offset: self.offset,
                tail_sha256: None,
                tail_len: 0,
            };
        }
        let mut joined: Vec<u8> = self.tail.iter().flat_map(|b| b.iter().copied()).collect();
        let cut = joined.len().saturating_sub(usize::try_from(want).unwrap_or(usize::MAX));
        joined.drain(..cut);
        UploadState {
            offset: self.offset,
            tail_sha256: Some(hex(&Sha256::digest(&joined))),
            tail_len: joined.len() as u64,
        }
    }

    fn remember(&mut self, chunk: Bytes) {
        self.tail.push_back(chunk);
        let mut total: u64 = self.tail.iter().map(|b| b.len() as u64).sum();
        while let Some(front) = self.tail.front() {
            if total - (front.len() as u64) < TAIL_PROOF {
                break;
            }
            total -= front.len() as u64;
            self.tail.pop_front();
        }
    }

    /// Keeps what was written for a later resume (or drops it, and with it
    /// the partial, if the disk failed).
    async fn keep(self) {
        match self.sink {
            Sink::Local { store, upload, writer } => {
                if writer.finish().await.is_ok() {
                    store.keep(upload).await;
                }
            }
            Sink::Object(upload) => upload.keep().await,
        }
    }

    /// Drops the upload and what it holds, done when the name is free.
    async fn discard(self) {
        match self.sink {
            Sink::Local { .. } => {}
            Sink::Object(upload) => upload.abort().await,
        }
    }

    /// Takes the next chunk. `Err(Some)`: the store refused it; `Err(None)`:
    /// the disk write failed, and finishing reports why.
    async fn write(&mut self, chunk: Bytes) -> Result<(), Option<Refusal>> {
        self.writing = true;
        let written = match &mut self.sink {
            Sink::Local { writer, .. } => writer.write(chunk).await.then_some(()).ok_or(None),
            Sink::Object(upload) => upload.write(&chunk).await.map_err(Some),
        };
        self.writing = false;
        written
    }

    /// Stores the whole file: its XXH3 when this server saw all of it.
    async fn finish(self) -> Result<Option<String>, Refusal> {
        match self.sink {
            Sink::Local { store, upload, writer } => {
                let done = writer.finish().await;
                Ok(Some(store.finish_upload(&self.put, upload, done, None).await?))
            }
            Sink::Object(upload) => upload.finish_proven().await,
        }
    }
}

type Slot = Arc<tokio::sync::Mutex<Option<Open>>>;

/// The open uploads, one slot per path.
#[derive(Debug)]
pub struct Uploads {
    open: Mutex<HashMap<RelPath, Slot>>,
    max: usize,
    idle: Duration,
    /// Chunks being received at once (each is held in memory whole).
    chunks: tokio::sync::Semaphore,
}

impl Uploads {
    pub fn new(max: usize, idle: Duration) -> Self {
        Self {
            open: Mutex::default(),
            max,
            idle,
            chunks: tokio::sync::Semaphore::new(CHUNKS_AT_ONCE),
        }
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<RelPath, Slot>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The path's slot, made if there is room.
    fn slot(&self, path: &RelPath) -> ApiResult<Slot> {
        let mut slots = self.slots();
        if let Some(slot) = slots.get(path) {
            return Ok(Arc::clone(slot));
        }
        if slots.len() >= self.max {
            return Err(ApiError::new(ErrorCode::Busy, "too many uploads at once; try again"));
        }
        let slot = Slot::default();
        slots.insert(path.clone(), Arc::clone(&slot));
        Ok(slot)
    }

    fn existing(&self, path: &RelPath) -> Option<Slot> {
        self.slots().get(path).cloned()
    }

    fn forget(&self, path: &RelPath, slot: &Slot) {
        let mut slots = self.slots();
        if slots.get(path).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            slots.remove(path);
        }
    }

    /// Keeps and frees every upload idle past the deadline.
    pub async fn keep_idle(&self) {
        self.keep_where(|open| open.touched.elapsed() >= self.idle).await;
    }

    /// Keeps every open upload (shutdown).
    pub async fn keep_all(&self) {
        self.keep_where(|_| true).await;
    }

    async fn keep_where(&self, due: impl Fn(&Open) -> bool) {
        let slots: Vec<(RelPath, Slot)> = self.slots().iter().map(|(p, s)| (p.clone(), Arc::clone(s))).collect();
        for (path, slot) in slots {
            // A slot in use is not idle.
            let Ok(mut guard) = slot.try_lock() else { continue };
            if guard.as_ref().is_none_or(&due) {
                if let Some(open) = guard.take() {
                    tracing::info!(%path, offset = open.offset, "web upload idle: kept for a resume");
                    open.keep().await;
                }
                drop(guard);
                self.forget(&path, &slot);
            }
        }
    }
}

/// `POST /api/upload/open`: where an upload of this path and size stands,
/// opening it (fresh, or from the kept partial) if it is not open.
pub async fn open(
    state: State,
    axum::Extension(peer): axum::Extension<super::Peer>,
    Json(req): Json<OpenRequest>,
) -> ApiResult<Json<UploadState>> {
    state.store.allow(Operation::Upload)?;
    let path = rel(&req.path)?;
    let slot = state.uploads.slot(&path)?;
    let mut guard = slot.lock().await;
    if guard.as_ref().is_some_and(|open| open.writing) {
        // Cut off mid-write: kept as it stands, then opened from that.
        if let Some(open) = guard.take() {
            open.keep().await;
        }
    }
    if let Some(open) = guard.as_mut() {
        if open.put.filesize == req.size && !req.restart {
            open.touched = Instant::now();
            return Ok(Json(open.state()));
        }
    }
    // Another size (another file of that name) or a restart: what is open
    // goes, and with it its partial.
    if let Some(open) = guard.take() {
        open.discard().await;
    }
    let started = match &state.store {
        ServedRoot::Local(store) => start(store, &path, req.size, req.restart).await,
        ServedRoot::Object { root, config } => start_object(root, config.access, &path, req.size, req.restart).await,
    };
    let stats = &state.store.config().stats;
    let started = started.map(|(put, sink, tail, proof)| {
        let shown = stats.transfer(
            "web upload",
            &path.to_string(),
            Some(peer.0),
            Some(req.size),
            put.offset,
        );
        Open {
            offset: put.offset,
            put,
            sink,
            tail,
            kept_proof: proof,
            touched: Instant::now(),
            shown,
            writing: false,
        }
    });
    match started {
        Ok(open) => {
            let answer = open.state();
            *guard = Some(open);
            Ok(Json(answer))
        }
        Err(e) => {
            drop(guard);
            state.uploads.forget(&path, &slot);
            Err(e)
        }
    }
}

/// Opens the upload: from the kept partial when there is one of this size
/// (and no restart), else from nothing.
async fn start(store: &Arc<FileStore>, path: &RelPath, size: u64, restart: bool) -> ApiResult<Started> {
    let claim = store
        .staging()
        .claim(path)
        .ok_or_else(|| ApiError::new(ErrorCode::Busy, "an upload of this file is already running"))?;
    let staging = store.staging().clone();
    let (kept, tail) = store
        .sandbox()
        .run(move |_| {
            let mut kept = staging.kept_len(&claim, size);
            if restart && kept > 0 {
                staging.remove(claim.path())?;
                kept = 0;
            }
            let tail = if kept > 0 {
                staging.kept_tail(&claim, kept, TAIL_PROOF)?
            } else {
                Vec::new()
            };
            Ok((kept, tail))
        })
        .await?;
    let put = Put {
        path: path.clone(),
        filesize: size,
        offset: kept,
        md5: None,
        // A resume must ask for verification; the page's is per chunk.
        trailer: true,
        prefix_xxh3: None,
    };
    let (upload, writer) = store.prepare_upload(&put).await?;
    Ok((
        put,
        Sink::Local {
            store: Arc::clone(store),
            upload,
            writer,
        },
        VecDeque::from([Bytes::from(tail)]),
        None,
    ))
}

/// An upload as opened: where it goes, the tail it holds (local) or what
/// its kept parts proved (object store).
type Started = (Put, Sink, VecDeque<Bytes>, Option<UploadState>);

/// Opens the upload on an object store: from the kept multipart upload
/// when there is one of this size that recorded its tail (and no
/// restart), else from nothing.
async fn start_object(
    root: &Arc<ObjectRoot>,
    access: Access,
    path: &RelPath,
    size: u64,
    restart: bool,
) -> ApiResult<Started> {
    let claim = root
        .claim(path)
        .ok_or_else(|| ApiError::new(ErrorCode::Busy, "an upload of this file is already running"))?;
    let mut kept = root.kept(path, size).await?;
    // A kept upload that recorded no tail cannot be proven to the page.
    let unprovable = kept.as_ref().is_some_and(|m| m.offset() > 0 && m.tail_sha256.is_none());
    if (restart || unprovable) && kept.take().is_some() {
        root.remove_partial(path).await?;
    }
    let offset = kept.as_ref().map_or(0, |m| m.offset());
    let put = Put {
        path: path.clone(),
        filesize: size,
        offset,
        md5: None,
        trailer: true,
        // The page proves the prefix itself, against the kept tail.
        prefix_xxh3: kept.as_ref().map(|m| m.prefix_xxh3.clone()),
    };
    let proof = kept.filter(|m| m.offset() > 0).map(|m| UploadState {
        offset: m.offset(),
        tail_len: TAIL_PROOF.min(m.offset()),
        tail_sha256: m.tail_sha256,
    });
    let mut upload = root.begin_upload(&put, claim, access != Access::UploadOnly).await?;
    // A chunk waiting for a part buffer holds one of the few chunk slots;
    // past this it gives up, so the uploads holding buffers can go on.
    upload.wait_for_buffers_at_most(BUFFER_WAIT);
    Ok((put, Sink::Object(upload), VecDeque::new(), proof))
}

/// `PUT /api/upload/chunk?path=P&offset=O`: the next chunk, checked, then
/// written; the last one commits the file.
pub async fn chunk(
    state: State,
    Query(q): Query<ChunkQuery>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> ApiResult<Json<ChunkStored>> {
    state.store.allow(Operation::Upload)?;
    let path = rel(&q.path)?;
    // A chunk is held whole until its hash is checked: only so many at
    // once, so memory stays bounded however many clients send.
    let _permit = state
        .uploads
        .chunks
        .acquire()
        .await
        .map_err(|_| ApiError::new(ErrorCode::Busy, "the server is shutting down"))?;
    let limit = usize::try_from(sockit_proto::web::MAX_CHUNK).unwrap_or(usize::MAX);
    let body = axum::body::to_bytes(body, limit).await.map_err(|e| {
        ApiError::new(
            ErrorCode::TooLarge,
            format!("a chunk is at most {limit} bytes, and whole ({e})"),
        )
    })?;
    let not_open = || ApiError::new(ErrorCode::Busy, "this upload is not open; open it again");
    let slot = state.uploads.existing(&path).ok_or_else(not_open)?;
    let mut guard = slot.lock().await;
    if guard.as_ref().is_some_and(|open| open.writing) {
        // A write cut off midway: the upload is kept, and the page opens it
        // again to learn where it stands.
        if let Some(open) = guard.take() {
            open.keep().await;
        }
        drop(guard);
        state.uploads.forget(&path, &slot);
        return Err(not_open());
    }
    let open = guard.as_mut().ok_or_else(not_open)?;
    if q.offset != open.offset {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            format!("the server holds {} bytes, not {}", open.offset, q.offset),
        )
        .with_status(axum::http::StatusCode::CONFLICT));
    }
    let size = open.put.filesize;
    let len = body.len() as u64;
    if open.offset + len > size {
        return Err(ApiError::bad_request("the chunk goes past the file's size"));
    }
    if let Some(claimed) = headers.get(CHUNK_SHA256_HEADER).and_then(|v| v.to_str().ok()) {
        let ours = hex(&Sha256::digest(&body));
        if !claimed.trim().eq_ignore_ascii_case(&ours) {
            tracing::info!(%path, offset = q.offset, "web upload chunk refused: sha256 mismatch");
            return Err(ApiError::new(
                ErrorCode::ChecksumMismatch,
                format!("chunk at {} arrived damaged (sha256 {ours}); send it again", q.offset),
            ));
        }
    }
    open.touched = Instant::now();
    let written = open.write(body.clone()).await;
    if written.is_ok() {
        open.shown.advance(body.len());
        open.offset += len;
        open.remember(body);
    }
    if written.is_err() || open.offset == size {
        let Some(open) = guard.take() else {
            return Err(not_open());
        };
        drop(guard);
        state.uploads.forget(&path, &slot);
        if let Err(Some(refused)) = written {
            // The store failed, or its buffers stayed busy: what it
            // acknowledged is kept for the page's next try.
            open.keep().await;
            return Err(refused.into());
        }
        let xxh3 = open.finish().await?;
        tracing::info!(%path, size, "web upload stored");
        return Ok(Json(ChunkStored {
            offset: size,
            done: true,
            xxh3,
        }));
    }
    Ok(Json(ChunkStored {
        offset: open.offset,
        done: false,
        xxh3: None,
    }))
}

/// `POST /api/upload/cancel`: the upload and its partial go.
pub async fn cancel(state: State, Json(req): Json<PathRequest>) -> ApiResult<axum::http::StatusCode> {
    state.store.allow(Operation::Upload)?;
    let path = rel(&req.path)?;
    if let Some(slot) = state.uploads.existing(&path) {
        let mut guard = slot.lock().await;
        if let Some(open) = guard.take() {
            open.discard().await;
        }
        drop(guard);
        state.uploads.forget(&path, &slot);
    }
    match state.store.remove_partial(&path).await {
        Err(r) if r.code != ErrorCode::NotFound => Err(r.into()),
        _ => Ok(axum::http::StatusCode::NO_CONTENT),
    }
}
