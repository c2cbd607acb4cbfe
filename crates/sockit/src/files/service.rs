//! The file service's server side: one connection, its requests answered
//! in order. A client may pipeline (send requests before the replies to
//! earlier ones arrive); the server reads one request at a time, and only
//! the disk work of a few small puts and gets ([`AHEAD`]) runs ahead of
//! their replies, so what waits is in the socket buffers, never here
//! (docs/protocol.md §3.4).
//!
//! Every request gets a reply header; failures are mapped to stable wire
//! codes in one place ([`refusal`]), so a peer never sees OS error text or
//! an absolute path. A refused upload's body is still read and discarded,
//! so the connection stays usable and a classic client that never reads
//! replies is not cut off mid-send.

use std::collections::VecDeque;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use futures_util::stream::FuturesOrdered;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::Instrument as _;

use sockit_proto::checksum::StreamHash;
use sockit_proto::exec::{Command, Opening, Outcome, classic_reply};
use sockit_proto::files::{ErrorCode, ExecReply, Put, Reply as Answer, Request};
use sockit_proto::frame::{FrameEvent, encode_header, header_bytes};
use sockit_proto::path::RelPath;

use super::listing::Listing;
use super::staging::Claim;
use super::storage::Storage;
use super::store::{FileServiceConfig, FileStore, Operation, Refusal, WholeUpload, refusal};
use crate::Error;
use crate::conn::{FramedConn, Pace};
use crate::disk::DiskReader;
use crate::exec::{self, ExecError};
use crate::sandbox::Opened;
use crate::server::{ConnContext, Service};

pub use super::listing::{DEFAULT_MAX_LISTING, DEFAULT_MAX_LISTING_BYTES};
pub use super::staging::DEFAULT_PARTIAL_MAX_AGE;

/// How long 1-3 bytes must be followed by silence to count as a classic
/// client's short command (`ls`), and how long a raw command may pause
/// mid-line. A framed client sends its 4-byte prefix at once, so this only
/// ever delays classic clients, by this much.
pub const CLASSIC_PAUSE: Duration = Duration::from_millis(50);
/// Longest raw command line a classic client may send.
pub const MAX_RAW_COMMAND: usize = 8 * 1024;

/// The framed protocol's server, over a [`FileStore`] it may share with
/// the web front end.
#[derive(Debug)]
pub struct FileService {
    store: Arc<FileStore>,
}

pub(super) type Reply = Result<(), Refusal>;

/// Bodies up to this size are uploaded and downloaded whole, in memory,
/// with one trip to the blocking pool and no thread of their own; larger
/// ones stream through a transfer thread ([`crate::disk`]). One read chunk:
/// what a connection buffers anyway.
pub const SMALL_FILE: u64 = crate::conn::READ_CHUNK as u64;

impl FileService {
    /// Opens the root (creating it) and its private staging folder, and
    /// sweeps kept partial uploads past their bounds.
    pub fn new(config: FileServiceConfig) -> Result<Self, Error> {
        Ok(Self::on(Arc::new(FileStore::open(config)?)))
    }

    /// The framed service over a store shared with other front ends.
    pub fn on(store: Arc<FileStore>) -> Self {
        Self { store }
    }

    pub fn store(&self) -> &Arc<FileStore> {
        &self.store
    }

    pub fn root(&self) -> &Path {
        self.store.root()
    }

    async fn handle<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        conn: &mut FramedConn<S>,
        request: Request,
        peer: std::net::SocketAddr,
    ) -> Result<(), Error> {
        if let Err(r) = self.store.allow(operation_of(&request)) {
            return refuse_request(conn, request, &r).await;
        }
        let outcome = match request {
            Request::Put(put) => return self.put(conn, put, peer).await,
            Request::Get { path, offset } => {
                conn.skip_body().await?;
                let step = self.start_get(path, offset).await;
                return self.finish(conn, step, peer).await;
            }
            Request::Ls { path, recursive } => match self.ls(conn, &path, recursive).await? {
                Ok(()) => return Ok(()),
                Err(r) => Err(r),
            },
            Request::Resume { path, filesize } => resume(&*self.store, conn, &path, filesize).await?,
            Request::Stat { path } => stat(&*self.store, conn, &path).await?,
            Request::Rm { path, recursive } => done(conn, self.store.remove(&path, recursive).await).await?,
            Request::Mkdir { path } => done(conn, self.store.make_dirs(&path).await).await?,
            Request::Partials => partials(&*self.store, conn).await?,
            Request::RmPartial { path } => done(conn, self.store.remove_partial(&path).await).await?,
            Request::Commit { .. } => Err(Refusal::new(ErrorCode::BadRequest, "commit without an upload")),
            Request::Exec(command) => self.exec(conn, &command).await?,
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
        if put.offset == 0 && put.filesize <= SMALL_FILE {
            let Some(claim) = self.store.staging.claim(&put.path) else {
                let busy = Refusal::new(ErrorCode::Busy, "an upload of this file is already running");
                send_refusal(conn, &busy).await?;
                return discard_upload(conn, &put).await;
            };
            let upload = self.read_small(conn, put, claim, peer).await?;
            let step = self.start_puts(vec![upload]).await;
            return self.finish(conn, step, peer).await;
        }
        let (upload, mut writer) = match self.store.prepare_upload(&put).await {
            Ok(p) => p,
            Err(r) => {
                send_refusal(conn, &r).await?;
                return discard_upload(conn, &put).await;
            }
        };

        let shown =
            self.store
                .config
                .stats
                .transfer("put", &put.path.to_string(), Some(peer), Some(put.filesize), put.offset);
        // Receive; the writer thread hashes every byte as it lands (one
        // pass). After a write error keep reading, so the peer gets a clean
        // refusal rather than a reset.
        let mut writing = true;
        loop {
            match conn.next_event().await {
                Ok(Some(FrameEvent::Body(chunk))) => {
                    shown.advance(chunk.len());
                    if writing {
                        writing = writer.write(chunk).await;
                    }
                }
                Ok(Some(FrameEvent::End)) => break,
                Ok(_) => return Err(Error::Protocol("frame out of order".into())),
                Err(e) => {
                    // Interrupted: a verified upload can be resumed from
                    // what was written (its resume must prove the prefix);
                    // a classic upload has no resume, so its partial goes.
                    let written = writer.finish().await;
                    if put.trailer && written.is_ok() {
                        self.store.keep(upload).await;
                    }
                    tracing::info!(path = %put.path, "upload interrupted");
                    return Err(e);
                }
            }
        }
        let written = writer.finish().await;

        let claimed = if put.trailer {
            match read_commit(conn).await {
                Ok((xxh3, _)) => Some(xxh3),
                Err(e) => {
                    // The whole body is in: keep it for a resume, which
                    // will send nothing but the proof and the commit.
                    if written.is_ok() && !matches!(e, Error::Protocol(_)) {
                        self.store.keep(upload).await;
                    }
                    return Err(e);
                }
            }
        } else {
            None
        };

        match self.store.finish_upload(&put, upload, written, claimed).await {
            Ok(xxh3) => {
                tracing::info!(path = %put.path, size = put.filesize, "upload stored");
                let reply = Answer::Stored {
                    size: put.filesize,
                    xxh3,
                };
                write_reply(conn, &reply).await?;
                conn.flush().await
            }
            Err(r) => {
                tracing::info!(path = %put.path, code = %r.code, "upload refused");
                send_refusal(conn, &r).await
            }
        }
    }

    /// A body of at most [`SMALL_FILE`] bytes, under its claim: read whole
    /// into memory, with its commit; checking, writing and moving it into
    /// place is [`Self::start_put`].
    async fn read_small<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        conn: &mut FramedConn<S>,
        put: Put,
        claim: Claim,
        peer: std::net::SocketAddr,
    ) -> Result<WholeUpload, Error> {
        let shown = self
            .store
            .config
            .stats
            .transfer("put", &put.path.to_string(), Some(peer), Some(put.filesize), 0);
        let mut body = Vec::with_capacity(usize::try_from(put.filesize).unwrap_or(0));
        let broke = loop {
            match conn.next_event().await {
                Ok(Some(FrameEvent::Body(chunk))) => {
                    shown.advance(chunk.len());
                    body.extend_from_slice(&chunk);
                }
                Ok(Some(FrameEvent::End)) => break None,
                Ok(_) => return Err(Error::Protocol("frame out of order".into())),
                Err(e) => break Some(e),
            }
        };
        let claimed = match broke {
            Some(e) => Err(e),
            None if put.trailer => read_commit(conn).await.map(|(xxh3, _)| Some(xxh3)),
            None => Ok(None),
        };
        match claimed {
            Ok(claimed) => Ok(WholeUpload {
                put,
                claim,
                data: body,
                claimed,
            }),
            Err(e) => {
                // Interrupted: a verified upload keeps what arrived for a
                // resume (which must prove it), as a streamed one does.
                if put.trailer && !matches!(e, Error::Protocol(_)) {
                    self.store.keep_whole(&put, claim, body).await;
                }
                tracing::info!(path = %put.path, "upload interrupted");
                Err(e)
            }
        }
    }

    /// Stores small uploads that arrived whole, in order, in one trip to
    /// the blocking pool, without holding the connection: nothing touches
    /// the disk before a body and its commit are in. Their replies come
    /// out as one write.
    fn start_puts(&self, uploads: Vec<WholeUpload>) -> Started {
        let store = Arc::clone(&self.store);
        Box::pin(async move {
            let paths: Vec<(RelPath, u64)> = uploads.iter().map(|u| (u.put.path.clone(), u.put.filesize)).collect();
            let mut out = bytes::BytesMut::new();
            for ((path, size), stored) in paths.into_iter().zip(store.store_whole(uploads).await) {
                let reply = match stored {
                    Ok(xxh3) => {
                        tracing::info!(path = %path, size, "upload stored");
                        Answer::Stored { size, xxh3 }
                    }
                    Err(r) => {
                        tracing::info!(path = %path, code = %r.code, "upload refused");
                        Answer::refused(r.code, &r.message)
                    }
                };
                encode_header(&reply.to_header(), &mut out);
            }
            Step::Write(out.to_vec())
        })
    }

    /// Opens a file to download; one of at most [`SMALL_FILE`] bytes is
    /// read whole and its reply, body and trailer made ready to write in
    /// one piece. A larger one streams in its turn.
    fn start_get(&self, path: RelPath, offset: u64) -> Started {
        let store = Arc::clone(&self.store);
        Box::pin(async move {
            let refused =
                |r: Refusal| Step::Write(header_bytes(&Answer::refused(r.code, &r.message).to_header()).to_vec());
            let past_end = || Refusal::new(ErrorCode::BadRequest, "offset is past the end of the file");
            match store.sandbox.open_small(&path, SMALL_FILE).await {
                Ok(Opened::Whole(data)) => {
                    let Some(rest) = usize::try_from(offset).ok().and_then(|o| data.get(o..)) else {
                        return refused(past_end());
                    };
                    let mut hash = StreamHash::new();
                    hash.update(&data);
                    let size = data.len() as u64;
                    let mut out = bytes::BytesMut::with_capacity(rest.len() + 128);
                    encode_header(&Answer::Sending { filesize: size, offset }.to_header(), &mut out);
                    out.extend_from_slice(rest);
                    encode_header(&Answer::Sent { xxh3: hash.hex() }.to_header(), &mut out);
                    Step::Write(out.to_vec())
                }
                Ok(Opened::File(_, size)) if offset > size => refused(past_end()),
                Ok(Opened::File(file, size)) => Step::Stream {
                    file,
                    size,
                    offset,
                    path,
                },
                Err(e) => refused(e.into()),
            }
        })
    }

    /// Writes a started request's reply, in its turn.
    async fn finish<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        conn: &mut FramedConn<S>,
        step: Step,
        peer: std::net::SocketAddr,
    ) -> Result<(), Error> {
        match step {
            Step::Write(bytes) => conn.write_all(&bytes).await,
            Step::Stream {
                file,
                size,
                offset,
                path,
            } => self.stream_get(conn, file, size, offset, &path, peer).await,
        }
    }

    /// Sends a large file's body from `offset`, then its trailer. An
    /// error ends the connection (it broke, or the file shrank mid-body).
    async fn stream_get<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        conn: &mut FramedConn<S>,
        file: std::fs::File,
        size: u64,
        offset: u64,
        path: &RelPath,
        peer: std::net::SocketAddr,
    ) -> Result<(), Error> {
        write_reply(conn, &Answer::Sending { filesize: size, offset }).await?;
        let mut reader = DiskReader::spawn(file, offset, size - offset);
        let shown = self
            .store
            .config
            .stats
            .transfer("get", &path.to_string(), Some(peer), Some(size), offset);
        while let Some(chunk) = reader.next().await {
            // A read error mid-body (the file shrank) breaks the promised
            // size: the only honest signal left is to cut the connection.
            let chunk = chunk.map_err(Error::file("reading", path.to_string()))?;
            conn.write_all(&chunk).await?;
            shown.advance(chunk.len());
            reader.recycle(chunk);
        }
        let xxh3 = reader
            .finish()
            .await
            .map_err(Error::file("reading", path.to_string()))?;
        write_reply(conn, &Answer::Sent { xxh3 }).await?;
        conn.flush().await
    }

    /// Takes a small put or a get into `ahead` (its disk work starts now,
    /// its reply is written in turn), or hands the request back to be
    /// handled in sequence once everything ahead of it is answered.
    async fn pipeline<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        conn: &mut FramedConn<S>,
        ahead: &mut Ahead,
        request: Request,
        peer: std::net::SocketAddr,
    ) -> Result<Option<Request>, Error> {
        match request {
            Request::Put(put)
                if put.offset == 0 && put.filesize <= SMALL_FILE && self.store.allow(Operation::Upload).is_ok() =>
            {
                // Effects keep request order: a put waits for the gets
                // ahead of it, and for an upload of the same name.
                if ahead.has_gets() || ahead.has_put(&put.path) {
                    self.flush(conn, ahead, peer).await?;
                }
                let claim = match self.store.staging.claim(&put.path) {
                    Some(c) => c,
                    None => return Ok(Some(Request::Put(put))), // Busy, in sequence
                };
                let upload = self.read_small(conn, put, claim, peer).await?;
                ahead.gather(upload);
                // More small uploads whose headers are already here join
                // this one's trip to the disk; the batch starts as soon as
                // the connection has nothing more in hand.
                if ahead.gathered_enough() || !conn.header_buffered() {
                    self.launch(ahead);
                }
            }
            Request::Get { path, offset } if self.store.allow(Operation::Read).is_ok() => {
                if ahead.has_puts() {
                    self.flush(conn, ahead, peer).await?;
                }
                conn.skip_body().await?;
                ahead.push(Kind::Get, self.start_get(path, offset));
            }
            other => return Ok(Some(other)),
        }
        while ahead.len() > AHEAD {
            let step = ahead.next().await;
            self.finish(conn, step, peer).await?;
        }
        Ok(None)
    }

    /// Starts the gathered small uploads as one batch.
    fn launch(&self, ahead: &mut Ahead) {
        let batch = std::mem::take(&mut ahead.gathering);
        if !batch.is_empty() {
            let paths = batch.iter().map(|u| u.put.path.clone()).collect();
            ahead.push(Kind::Puts(paths), self.start_puts(batch));
        }
    }

    /// Answers everything ahead, in order.
    async fn flush<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        conn: &mut FramedConn<S>,
        ahead: &mut Ahead,
        peer: std::net::SocketAddr,
    ) -> Result<(), Error> {
        self.launch(ahead);
        while ahead.has_started() {
            let step = ahead.next().await;
            self.finish(conn, step, peer).await?;
        }
        Ok(())
    }

    /// A framed exec: `{"status":"ok","data_size":N,"stdout_size":S,"exit_code":C,...}`
    /// then stdout and stderr.
    async fn exec<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        conn: &mut FramedConn<S>,
        command: &Command,
    ) -> Result<Reply, Error> {
        let Some(limits) = &self.store.config.exec else {
            return Ok(Err(Refusal::new(
                ErrorCode::PermissionDenied,
                "remote exec is disabled on this server (--allow-exec)",
            )));
        };
        // The request's body, if any, is the command's stdin: bounded, and
        // whole before the command starts.
        let stdin_len = conn.body_remaining();
        if stdin_len > exec::MAX_STDIN {
            return Ok(Err(Refusal::new(
                ErrorCode::TooLarge,
                format!("stdin over {} bytes", exec::MAX_STDIN),
            )));
        }
        let stdin = conn.read_body(stdin_len, exec::MAX_STDIN).await?;
        tracing::info!(?command, stdin = stdin.len(), "exec");
        match exec::run(command, &stdin, limits, self.store.sandbox.root(), conn.closed()).await {
            Ok(outcome) => {
                write_reply(conn, &Answer::Exec(ExecReply::of(&outcome))).await?;
                conn.write_all(&outcome.stdout).await?;
                conn.write_all(&outcome.stderr).await?;
                Ok(Ok(()))
            }
            Err(ExecError::Spawn(e)) if e.kind() == io::ErrorKind::NotFound => {
                Ok(Err(Refusal::new(ErrorCode::NotFound, "no such command")))
            }
            Err(ExecError::Spawn(e)) => Ok(Err(refusal(&e))),
            Err(ExecError::Abandoned) => Err(Error::Closed {
                op: "waiting for a command's output",
            }),
        }
    }

    /// The seeds' classic exec client: a bare command line in, then
    /// `struct.pack('i')` + `{"data_size":N}` + stderr-or-stdout out. With
    /// exec off it gets that same shape, saying so.
    async fn classic_exec<S: AsyncRead + AsyncWrite + Unpin>(&self, conn: &mut FramedConn<S>) -> Result<(), Error> {
        let raw = conn.take_raw(CLASSIC_PAUSE, MAX_RAW_COMMAND).await?;
        let line = String::from_utf8_lossy(&raw).trim().to_owned();
        let outcome = match &self.store.config.exec {
            None => Outcome {
                stderr: b"sockit: remote exec is disabled on this server\n".to_vec(),
                ..Outcome::default()
            },
            Some(_) if line.is_empty() => Outcome::default(),
            Some(limits) => {
                tracing::info!(command = %line, "exec (classic)");
                match exec::run(
                    &Command::Shell(line),
                    &[],
                    limits,
                    self.store.sandbox.root(),
                    conn.closed(),
                )
                .await
                {
                    Ok(o) => o,
                    Err(ExecError::Spawn(e)) => Outcome {
                        stderr: format!("sockit: cannot start the command: {}\n", refusal(&e).message).into_bytes(),
                        ..Outcome::default()
                    },
                    Err(ExecError::Abandoned) => {
                        return Err(Error::Closed {
                            op: "waiting for a command's output",
                        });
                    }
                }
            }
        };
        let (header, body) = classic_reply(&outcome);
        conn.write_header(&header).await?;
        conn.write_all(body).await
    }

    /// Streams a listing in pages: `{"status":"ok","data_size":N,"more":true}`
    /// and N bytes (a JSON array) per page, the last without `more`. A
    /// listing that outgrows its caps ends with an error frame instead.
    async fn ls<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        conn: &mut FramedConn<S>,
        path: &RelPath,
        recursive: bool,
    ) -> Result<Reply, Error> {
        conn.skip_body().await?;
        let (base, limits) = (path.clone(), self.store.config.listing);
        let mut listing = match self
            .store
            .sandbox
            .run(move |t| Ok(Listing::open(t, &base, recursive, limits)))
            .await
        {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => return Ok(Err(e.into())),
            Err(e) => return Ok(Err(e.into())),
        };
        loop {
            let page = self
                .store
                .sandbox
                .run(move |t| {
                    let page = listing.next_page(t);
                    Ok((listing, page))
                })
                .await;
            let (page, done) = match page {
                Ok((back, Ok(page))) => {
                    listing = back;
                    page
                }
                Ok((_, Err(e))) => return Ok(Err(e.into())),
                Err(e) => return Ok(Err(e.into())),
            };
            write_page(conn, &page, !done).await?;
            if done {
                return Ok(Ok(()));
            }
        }
    }
}

impl Service for FileService {
    async fn serve<S>(&self, stream: S, ctx: ConnContext) -> Result<(), Error>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut conn = FramedConn::new(stream, self.store.config.frame_limits, ctx.idle_timeout).with_pace(Pace {
            request_timeout: ctx.request_timeout,
            min_rate: ctx.min_rate,
            rate_window: ctx.rate_window,
        });
        let mut ahead = Ahead::default();
        loop {
            // Between requests is the one place shutdown may cut in: an
            // upload in flight finishes (or is discarded) first. Replies
            // to requests ahead go out as their disk work ends, while the
            // next request is awaited.
            let opening = tokio::select! {
                biased;
                step = ahead.next(), if ahead.has_started() => {
                    self.finish(&mut conn, step, ctx.peer).await?;
                    continue;
                }
                o = conn.opening(self.store.config.frame_limits.max_header_len, CLASSIC_PAUSE) => o?,
                () = ctx.shutdown.cancelled() => return self.flush(&mut conn, &mut ahead, ctx.peer).await,
            };
            // Each request logs under a span naming the peer (the
            // connection's own span is debug-level; see server.rs).
            let span = tracing::info_span!("request", peer = %ctx.peer);
            match opening {
                None => return self.flush(&mut conn, &mut ahead, ctx.peer).await,
                Some(Opening::RawCommand) => {
                    self.flush(&mut conn, &mut ahead, ctx.peer).await?;
                    self.classic_exec(&mut conn).instrument(span).await?;
                    continue;
                }
                Some(_) => {}
            }
            let event = conn.next_event().await;
            let (header, _body_len) = match event {
                Ok(None) => return self.flush(&mut conn, &mut ahead, ctx.peer).await,
                Ok(Some(FrameEvent::Header { header, body_len })) => (header, body_len),
                Ok(Some(_)) => return Err(Error::Protocol("body without a header".into())),
                Err(Error::Frame(e)) => {
                    // The stream can no longer be cut into frames: say why, then close.
                    self.flush(&mut conn, &mut ahead, ctx.peer).await?;
                    let _ = write_reply(&mut conn, &Answer::refused(ErrorCode::BadRequest, &e.to_string())).await;
                    let _ = conn.shutdown().await;
                    return Err(Error::Frame(e));
                }
                Err(e) => return Err(e),
            };
            match Request::from_header(&header) {
                Ok(request) => {
                    let Some(request) = self.pipeline(&mut conn, &mut ahead, request, ctx.peer).await? else {
                        continue;
                    };
                    self.flush(&mut conn, &mut ahead, ctx.peer).await?;
                    self.handle(&mut conn, request, ctx.peer).instrument(span).await?;
                }
                Err(e) => {
                    self.flush(&mut conn, &mut ahead, ctx.peer).await?;
                    tracing::debug!(error = %e, "bad request");
                    write_reply(&mut conn, &Answer::refused(e.code(), &e.to_string())).await?;
                    conn.skip_body().await?;
                }
            }
        }
    }
}

/// Answers a request the access mode does not allow. Its body (and an
/// upload's commit) is read and dropped, so the connection stays in step.
pub(super) async fn refuse_request<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut FramedConn<S>,
    request: Request,
    r: &Refusal,
) -> Result<(), Error> {
    if let Request::Put(put) = request {
        send_refusal(conn, r).await?;
        return discard_upload(conn, &put).await;
    }
    conn.skip_body().await?;
    send_refusal(conn, r).await
}

/// Sends `{"status":"ok"}` for a success; a refusal is the caller's.
pub(super) async fn done<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut FramedConn<S>,
    outcome: Reply,
) -> Result<Reply, Error> {
    if outcome.is_ok() {
        write_reply(conn, &Answer::Done).await?;
    }
    Ok(outcome)
}

/// `resume`: where an interrupted upload continues.
pub(super) async fn resume<S: AsyncRead + AsyncWrite + Unpin>(
    storage: &impl Storage,
    conn: &mut FramedConn<S>,
    path: &RelPath,
    filesize: u64,
) -> Result<Reply, Error> {
    Ok(match storage.kept_len(path, filesize).await {
        Ok(offset) => Ok(write_reply(conn, &Answer::ResumeAt { offset }).await?),
        Err(r) => Err(r),
    })
}

pub(super) async fn stat<S: AsyncRead + AsyncWrite + Unpin>(
    storage: &impl Storage,
    conn: &mut FramedConn<S>,
    path: &RelPath,
) -> Result<Reply, Error> {
    Ok(match storage.stat(path).await {
        Ok(entry) => Ok(write_reply(conn, &Answer::Stat(entry)).await?),
        Err(r) => Err(r),
    })
}

/// The kept partial uploads, as one JSON array.
pub(super) async fn partials<S: AsyncRead + AsyncWrite + Unpin>(
    storage: &impl Storage,
    conn: &mut FramedConn<S>,
) -> Result<Reply, Error> {
    let kept = match storage.partials().await {
        Ok(k) => k,
        Err(r) => return Ok(Err(r)),
    };
    let body = serde_json::to_vec(&kept).map_err(|e| Error::Protocol(e.to_string()))?;
    write_page(conn, &body, false).await?;
    Ok(Ok(()))
}

/// One page of JSON: `{"status":"ok","data_size":N[,"more":true]}` and N bytes.
pub(super) async fn write_page<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut FramedConn<S>,
    body: &[u8],
    more: bool,
) -> Result<(), Error> {
    let header = Answer::Page {
        len: body.len() as u64,
        more,
    };
    write_reply(conn, &header).await?;
    conn.write_all(body).await
}

pub(super) async fn write_reply<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut FramedConn<S>,
    reply: &Answer,
) -> Result<(), Error> {
    conn.write_header(&reply.to_header()).await
}

pub(super) async fn send_refusal<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut FramedConn<S>,
    r: &Refusal,
) -> Result<(), Error> {
    write_reply(conn, &Answer::refused(r.code, &r.message)).await?;
    conn.flush().await
}

/// Started requests (a get, or a batch of small puts) whose disk work may
/// run ahead of the one being answered, per connection. Measured on 5,000
/// small files over loopback, one put per trip to the pool: 1 in flight
/// halves nothing; 2 to 4 took put -r from 0.45 s to 0.28 s; 8 was slower
/// again, as parallel creates and renames in one folder contend for its
/// lock in the kernel. Batching the puts then took it to 0.14 s.
pub const AHEAD: usize = 4;

/// A started request's outcome, written in its turn.
#[derive(Debug)]
enum Step {
    /// A whole reply (with a small download's body and trailer).
    Write(Vec<u8>),
    /// A download past one chunk: streamed when its turn comes.
    Stream {
        file: std::fs::File,
        size: u64,
        offset: u64,
        path: RelPath,
    },
}

/// A started request: its disk work runs on the blocking pool as soon as
/// it is first polled, which the connection does while it reads on.
type Started = std::pin::Pin<Box<dyn std::future::Future<Output = Step> + Send>>;

/// Small uploads gathered into one trip to the disk: at most this many,
/// and at most [`BATCH_BYTES`] of bodies.
pub const BATCH_FILES: usize = 16;
pub const BATCH_BYTES: usize = 1024 * 1024;

/// What a started entry of [`Ahead`] is.
#[derive(Debug)]
enum Kind {
    /// A batch of small uploads, these paths in order.
    Puts(Vec<RelPath>),
    Get,
}

/// The requests of one connection whose disk work runs ahead of their
/// replies, oldest first, polled together (no task of their own), and the
/// small uploads being gathered into the next batch.
#[derive(Default)]
struct Ahead {
    work: FuturesOrdered<Started>,
    kinds: VecDeque<Kind>,
    gathering: Vec<WholeUpload>,
}

impl std::fmt::Debug for Ahead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ahead")
            .field("kinds", &self.kinds)
            .field("gathering", &self.gathering.len())
            .finish_non_exhaustive()
    }
}

impl Ahead {
    fn push(&mut self, kind: Kind, work: Started) {
        self.kinds.push_back(kind);
        self.work.push_back(work);
    }

    fn gather(&mut self, upload: WholeUpload) {
        self.gathering.push(upload);
    }

    fn gathered_enough(&self) -> bool {
        self.gathering.len() >= BATCH_FILES || self.gathering.iter().map(|u| u.data.len()).sum::<usize>() >= BATCH_BYTES
    }

    /// Started entries (a batch counts once).
    fn len(&self) -> usize {
        self.kinds.len()
    }

    /// Some started work has an outcome to come.
    fn has_started(&self) -> bool {
        !self.kinds.is_empty()
    }

    fn has_gets(&self) -> bool {
        self.kinds.iter().any(|k| matches!(k, Kind::Get))
    }

    fn has_puts(&self) -> bool {
        !self.gathering.is_empty() || self.kinds.iter().any(|k| matches!(k, Kind::Puts(_)))
    }

    fn has_put(&self, path: &RelPath) -> bool {
        self.gathering.iter().any(|u| u.put.path == *path)
            || self
                .kinds
                .iter()
                .any(|k| matches!(k, Kind::Puts(paths) if paths.contains(path)))
    }

    /// The oldest started entry's outcome, once its work is done (the
    /// others progress meanwhile). Cancel-safe: an outcome leaves the
    /// queue only in the poll that returns it.
    async fn next(&mut self) -> Step {
        match self.work.next().await {
            Some(step) => {
                self.kinds.pop_front();
                step
            }
            None => std::future::pending().await,
        }
    }
}

/// The commit trailer after a verified upload's body: the client's XXH3.
/// The upload's trailer: the whole file's XXH3 and, after a resume, that
/// of the bytes sent.
pub(super) async fn read_commit<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut FramedConn<S>,
) -> Result<(String, Option<String>), Error> {
    let (header, body_len) = conn.expect_header("sending the upload's checksum").await?;
    match Request::from_header(&header) {
        Ok(Request::Commit { xxh3, tail_xxh3 }) if body_len == 0 => {
            conn.skip_body().await?;
            Ok((xxh3, tail_xxh3))
        }
        _ => Err(Error::Protocol("expected a commit after the upload".into())),
    }
}

/// Reads and drops a refused upload's body and trailer.
pub(super) async fn discard_upload<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut FramedConn<S>,
    put: &Put,
) -> Result<(), Error> {
    conn.skip_body().await?;
    if put.trailer {
        conn.expect_header("sending the upload's checksum").await?;
        conn.skip_body().await?;
    }
    Ok(())
}

/// What a request does to the served folder, for the access mode. Exec is
/// its own switch (`--allow-exec`), so it counts as a read here.
pub(super) fn operation_of(request: &Request) -> Operation {
    match request {
        Request::Put(_) | Request::Resume { .. } | Request::Commit { .. } => Operation::Upload,
        Request::Rm { .. } | Request::Mkdir { .. } | Request::RmPartial { .. } => Operation::Change,
        Request::Get { .. } | Request::Ls { .. } | Request::Stat { .. } | Request::Partials | Request::Exec(_) => {
            Operation::Read
        }
    }
}
