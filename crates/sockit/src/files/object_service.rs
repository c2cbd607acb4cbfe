//! The framed file protocol (docs/protocol.md §3) over an object-store
//! root: the same requests and replies as [`super::service`], run one after
//! another against [`ObjectRoot`]. The local service's pipelining exists to
//! overlap disk work on a small blocking pool; here every request is
//! already an await on the network, and the store's latency is per request.

use std::sync::Arc;

use futures_util::StreamExt as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::Instrument as _;

use sockit_proto::checksum::StreamHash;
use sockit_proto::exec::{Opening, Outcome, classic_reply};
use sockit_proto::files::{ErrorCode, Put, Reply as Answer, Request};
use sockit_proto::frame::FrameEvent;
use sockit_proto::path::RelPath;

use super::object::ObjectRoot;
use super::service::{
    CLASSIC_PAUSE, MAX_RAW_COMMAND, Reply, discard_upload, done, operation_of, partials, read_commit, refuse_request,
    resume, send_refusal, stat, write_page, write_reply,
};
use super::storage::Storage;
use super::store::{Access, FileServiceConfig, Refusal};
use crate::Error;
use crate::conn::{FramedConn, Pace};
use crate::server::{ConnContext, Service};

/// Bytes of listing JSON per page, as the local listing sends.
const PAGE_BYTES: usize = 64 * 1024;

/// The framed protocol's server over an object store.
#[derive(Debug)]
pub struct ObjectFileService {
    root: Arc<ObjectRoot>,
    config: FileServiceConfig,
}

impl ObjectFileService {
    /// Remote exec has no folder to run in here; `config.exec` must be
    /// `None` (the CLI refuses `--allow-exec` with an object root).
    pub fn new(root: Arc<ObjectRoot>, config: FileServiceConfig) -> Self {
        Self { root, config }
    }

    pub fn root(&self) -> &Arc<ObjectRoot> {
        &self.root
    }

    async fn handle<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        conn: &mut FramedConn<S>,
        request: Request,
        peer: std::net::SocketAddr,
    ) -> Result<(), Error> {
        if let Err(r) = self.config.access.check(operation_of(&request)) {
            return refuse_request(conn, request, &r).await;
        }
        let outcome = match request {
            Request::Put(put) => return self.put(conn, put, peer).await,
            Request::Get { path, offset } => {
                conn.skip_body().await?;
                self.get(conn, &path, offset, peer).await?
            }
            Request::Ls { path, recursive } => {
                conn.skip_body().await?;
                self.ls(conn, &path, recursive).await?
            }
            Request::Resume { path, filesize } => resume(&*self.root, conn, &path, filesize).await?,
            Request::Stat { path } => stat(&*self.root, conn, &path).await?,
            Request::Rm { path, recursive } => done(conn, Storage::remove(&*self.root, &path, recursive).await).await?,
            Request::Mkdir { path } => done(conn, Storage::make_dirs(&*self.root, &path).await).await?,
            Request::Partials => partials(&*self.root, conn).await?,
            Request::RmPartial { path } => done(conn, Storage::remove_partial(&*self.root, &path).await).await?,
            Request::Commit { .. } => Err(Refusal::new(ErrorCode::BadRequest, "commit without an upload")),
            Request::Exec(_) => Err(exec_off()),
        };
        conn.skip_body().await?;
        if let Err(r) = outcome {
            send_refusal(conn, &r).await?;
        }
        Ok(())
    }

    async fn put<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        conn: &mut FramedConn<S>,
        put: Put,
        peer: std::net::SocketAddr,
    ) -> Result<(), Error> {
        let started = match self.root.claim(&put.path) {
            None => Err(Refusal::new(
                ErrorCode::Busy,
                "an upload of this file is already running",
            )),
            Some(claim) => {
                let replace = self.config.access != Access::UploadOnly;
                self.root.begin_upload(&put, claim, replace).await
            }
        };
        let mut upload = match started {
            Ok(u) => u,
            Err(r) => {
                send_refusal(conn, &r).await?;
                return discard_upload(conn, &put).await;
            }
        };
        let shown =
            self.config
                .stats
                .transfer("put", &put.path.to_string(), Some(peer), Some(put.filesize), put.offset);
        // After a store error keep reading, so the peer gets a clean
        // refusal rather than a reset.
        let mut failed = None;
        loop {
            match conn.next_event().await {
                Ok(Some(FrameEvent::Body(chunk))) => {
                    shown.advance(chunk.len());
                    if failed.is_none() {
                        failed = upload.write(&chunk).await.err();
                    }
                }
                Ok(Some(FrameEvent::End)) => break,
                Ok(_) => return Err(Error::Protocol("frame out of order".into())),
                Err(e) => {
                    if failed.is_none() {
                        upload.keep().await;
                    }
                    tracing::info!(path = %put.path, "upload interrupted");
                    return Err(e);
                }
            }
        }
        let claimed = if put.trailer {
            match read_commit(conn).await {
                Ok(c) => Some(c),
                Err(e) => {
                    if failed.is_none() && !matches!(e, Error::Protocol(_)) {
                        upload.keep().await;
                    }
                    return Err(e);
                }
            }
        } else {
            None
        };
        let stored = match failed {
            Some(r) => Err(r),
            None => {
                let (whole, tail) = claimed.unzip();
                upload.finish(whole, tail.flatten()).await
            }
        };
        match stored {
            Ok(xxh3) => {
                tracing::info!(path = %put.path, size = put.filesize, "upload stored");
                write_reply(
                    conn,
                    &Answer::Stored {
                        size: put.filesize,
                        xxh3,
                    },
                )
                .await?;
                conn.flush().await
            }
            Err(r) => {
                tracing::info!(path = %put.path, code = %r.code, "upload refused");
                send_refusal(conn, &r).await
            }
        }
    }

    /// Sends the object from `offset`, then the whole file's XXH3: the
    /// prefix before `offset` is read and hashed first, never sent.
    async fn get<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        conn: &mut FramedConn<S>,
        path: &RelPath,
        offset: u64,
        peer: std::net::SocketAddr,
    ) -> Result<Reply, Error> {
        let reader = match self.root.open_read(path).await {
            Ok(r) => r,
            Err(r) => return Ok(Err(r)),
        };
        if offset > reader.size {
            return Ok(Err(Refusal::new(
                ErrorCode::BadRequest,
                "offset is past the end of the file",
            )));
        }
        let mut hash = StreamHash::new();
        let mut prefix = reader.bytes(0..offset);
        while let Some(piece) = prefix.next().await {
            match piece {
                Ok(piece) => hash.update(&piece.bytes),
                Err(r) => return Ok(Err(r)),
            }
        }
        write_reply(
            conn,
            &Answer::Sending {
                filesize: reader.size,
                offset,
            },
        )
        .await?;
        let shown = self
            .config
            .stats
            .transfer("get", &path.to_string(), Some(peer), Some(reader.size), offset);
        let mut body = reader.bytes(offset..reader.size);
        while let Some(piece) = body.next().await {
            // The promised size can no longer be kept: the only honest
            // signal left is to cut the connection.
            let piece = piece.map_err(|r| Error::Protocol(format!("reading {path}: {}", r.message)))?;
            hash.update(&piece.bytes);
            conn.write_all(&piece.bytes).await?;
            shown.advance(piece.bytes.len());
        }
        write_reply(conn, &Answer::Sent { xxh3: hash.hex() }).await?;
        conn.flush().await?;
        Ok(Ok(()))
    }

    /// A listing in pages of JSON arrays, as the local service sends it.
    async fn ls<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        conn: &mut FramedConn<S>,
        path: &RelPath,
        recursive: bool,
    ) -> Result<Reply, Error> {
        let entries = match self.root.list(path, recursive, self.config.listing).await {
            Ok(e) => e,
            Err(r) => return Ok(Err(r)),
        };
        let mut page = Vec::with_capacity(PAGE_BYTES + 4096);
        let mut entries = entries.iter().peekable();
        loop {
            page.clear();
            page.push(b'[');
            while page.len() < PAGE_BYTES {
                let Some(entry) = entries.next() else { break };
                if page.len() > 1 {
                    page.push(b',');
                }
                serde_json::to_writer(&mut page, entry).map_err(|e| Error::Protocol(e.to_string()))?;
            }
            page.push(b']');
            let more = entries.peek().is_some();
            write_page(conn, &page, more).await?;
            if !more {
                return Ok(Ok(()));
            }
        }
    }

    /// The seeds' classic exec client gets its reply shape, saying exec is
    /// off: an object store has no folder to run a command in.
    async fn classic_exec<S: AsyncRead + AsyncWrite + Unpin>(&self, conn: &mut FramedConn<S>) -> Result<(), Error> {
        conn.take_raw(CLASSIC_PAUSE, MAX_RAW_COMMAND).await?;
        let outcome = Outcome {
            stderr: b"sockit: remote exec is disabled on this server\n".to_vec(),
            ..Outcome::default()
        };
        let (header, body) = classic_reply(&outcome);
        conn.write_header(&header).await?;
        conn.write_all(body).await
    }
}

fn exec_off() -> Refusal {
    Refusal::new(
        ErrorCode::PermissionDenied,
        "remote exec is disabled on this server (its root is an object store)",
    )
}

impl Service for ObjectFileService {
    async fn serve<S>(&self, stream: S, ctx: ConnContext) -> Result<(), Error>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut conn = FramedConn::new(stream, self.config.frame_limits, ctx.idle_timeout).with_pace(Pace {
            request_timeout: ctx.request_timeout,
            min_rate: ctx.min_rate,
            rate_window: ctx.rate_window,
        });
        loop {
            // Between requests is the one place shutdown may cut in.
            let opening = tokio::select! {
                biased;
                o = conn.opening(self.config.frame_limits.max_header_len, CLASSIC_PAUSE) => o?,
                () = ctx.shutdown.cancelled() => return conn.flush().await,
            };
            let span = tracing::info_span!("request", peer = %ctx.peer);
            match opening {
                None => return conn.flush().await,
                Some(Opening::RawCommand) => {
                    self.classic_exec(&mut conn).instrument(span).await?;
                    continue;
                }
                Some(_) => {}
            }
            let header = match conn.next_event().await {
                Ok(None) => return conn.flush().await,
                Ok(Some(FrameEvent::Header { header, .. })) => header,
                Ok(Some(_)) => return Err(Error::Protocol("body without a header".into())),
                Err(Error::Frame(e)) => {
                    let _ = write_reply(&mut conn, &Answer::refused(ErrorCode::BadRequest, &e.to_string())).await;
                    let _ = conn.shutdown().await;
                    return Err(Error::Frame(e));
                }
                Err(e) => return Err(e),
            };
            match Request::from_header(&header) {
                Ok(request) => {
                    self.handle(&mut conn, request, ctx.peer).instrument(span).await?;
                    conn.flush().await?;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "bad request");
                    write_reply(&mut conn, &Answer::refused(e.code(), &e.to_string())).await?;
                    conn.skip_body().await?;
                }
            }
        }
    }
}
