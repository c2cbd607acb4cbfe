//! The file service's server side: one connection, one request at a time.
//!
//! Every request gets a reply header; failures are mapped to stable wire
//! codes in one place ([`refusal`]), so a peer never sees OS error text or
//! an absolute path. A refused upload's body is still read and discarded,
//! so the connection stays usable and a classic client that never reads
//! replies is not cut off mid-send.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::Instrument as _;

use sockit_proto::exec::{Command, Opening, Outcome, classic_reply, framed_reply};
use sockit_proto::files::{Entry, EntryKind, ErrorCode, Put, Request, error_reply, ok_reply};
use sockit_proto::frame::{FrameEvent, FrameLimits};
use sockit_proto::path::{RESERVED_DIR, RelPath};

use super::staging::Staging;
use crate::Error;
use crate::conn::FramedConn;
use crate::disk::{DiskReader, DiskWriter, Hashes};
use crate::exec::{self, ExecError, ExecLimits};
use crate::sandbox::{Sandbox, SandboxError};
use crate::server::{ConnContext, Service};

/// Entries one `ls` may return: a listing is built in memory and sent as
/// one body, so it needs a cap; 100,000 entries is about 10 MiB of JSON.
pub const DEFAULT_MAX_LISTING: usize = 100_000;
/// Age after which a partial upload nobody resumed is deleted at start-up.
pub const DEFAULT_PARTIAL_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// How long 1-3 bytes must be followed by silence to count as a classic
/// client's short command (`ls`), and how long a raw command may pause
/// mid-line. A framed client sends its 4-byte prefix at once, so this only
/// ever delays classic clients, by this much.
pub const CLASSIC_PAUSE: Duration = Duration::from_millis(50);
/// Longest raw command line a classic client may send.
pub const MAX_RAW_COMMAND: usize = 8 * 1024;

#[derive(Debug, Clone)]
pub struct FileServiceConfig {
    pub root: PathBuf,
    pub frame_limits: FrameLimits,
    pub max_listing: usize,
    pub partial_max_age: Duration,
    /// `Some` only with `--allow-exec`: remote exec and its limits.
    pub exec: Option<ExecLimits>,
}

impl FileServiceConfig {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            frame_limits: FrameLimits::default(),
            max_listing: DEFAULT_MAX_LISTING,
            partial_max_age: DEFAULT_PARTIAL_MAX_AGE,
            exec: None,
        }
    }
}

#[derive(Debug)]
pub struct FileService {
    sandbox: Sandbox,
    staging: Staging,
    config: FileServiceConfig,
}

/// A failed request as the peer will see it.
#[derive(Debug)]
struct Refusal {
    code: ErrorCode,
    message: String,
}

impl Refusal {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<io::Error> for Refusal {
    fn from(e: io::Error) -> Self {
        refusal(&e)
    }
}

impl From<SandboxError> for Refusal {
    fn from(e: SandboxError) -> Self {
        match e {
            SandboxError::Escapes => Refusal::new(ErrorCode::BadPath, "path leaves the served folder"),
            SandboxError::Io(e) => refusal(&e),
        }
    }
}

/// The one mapping from filesystem errors to wire errors.
fn refusal(e: &io::Error) -> Refusal {
    use io::ErrorKind as K;
    let (code, message) = match e.kind() {
        K::NotFound => (ErrorCode::NotFound, "no such file or folder"),
        K::PermissionDenied | K::ReadOnlyFilesystem => (ErrorCode::PermissionDenied, "permission denied"),
        K::AlreadyExists => (ErrorCode::AlreadyExists, "already exists"),
        K::IsADirectory => (ErrorCode::IsADirectory, "is a folder"),
        K::NotADirectory => (ErrorCode::NotADirectory, "a parent is not a folder"),
        K::DirectoryNotEmpty => (ErrorCode::NotEmpty, "folder is not empty"),
        K::StorageFull | K::QuotaExceeded => (ErrorCode::NoSpace, "no space left on the server"),
        K::FileTooLarge => (ErrorCode::TooLarge, "file too large for the server"),
        _ => {
            tracing::warn!(error = %e, "i/o error");
            (ErrorCode::Io, "server i/o error")
        }
    };
    Refusal::new(code, message)
}

type Reply = Result<(), Refusal>;

impl FileService {
    /// Opens the root (creating it) and its private staging folder, and
    /// sweeps partial uploads older than the configured age.
    pub fn new(config: FileServiceConfig) -> Result<Self, Error> {
        let sandbox = Sandbox::open(&config.root).map_err(Error::file("cannot open root folder", &config.root))?;
        let staging_dir = sandbox.private_dir().join("partial");
        let staging =
            Staging::new(staging_dir.clone()).map_err(Error::file("cannot create staging folder", staging_dir))?;
        staging.sweep(config.partial_max_age);
        Ok(Self {
            sandbox,
            staging,
            config,
        })
    }

    pub fn root(&self) -> &Path {
        self.sandbox.root()
    }

    async fn handle<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        conn: &mut FramedConn<S>,
        request: Request,
    ) -> Result<(), Error> {
        let outcome = match request {
            Request::Put(put) => return self.put(conn, put).await,
            Request::Get { path, offset } => match self.get(conn, &path, offset).await? {
                Ok(()) => return Ok(()),
                Err(r) => Err(r),
            },
            Request::Resume { path, filesize } => self.resume(conn, &path, filesize).await?,
            Request::Ls { path, recursive } => self.ls(conn, &path, recursive).await?,
            Request::Stat { path } => self.stat(conn, &path).await?,
            Request::Rm { path, recursive } => self.rm(conn, &path, recursive).await?,
            Request::Mkdir { path } => self.mkdir(conn, &path).await?,
            Request::Commit { .. } => Err(Refusal::new(ErrorCode::BadRequest, "commit without an upload")),
            Request::Exec(command) => self.exec(conn, &command).await?,
        };
        conn.skip_body().await?;
        if let Err(r) = outcome {
            send_refusal(conn, &r).await?;
        }
        Ok(())
    }

    async fn put<S: AsyncRead + AsyncWrite + Unpin>(&self, conn: &mut FramedConn<S>, put: Put) -> Result<(), Error> {
        let claim = self.staging.claim(&put.path);
        let prepared = match claim {
            None => Err(Refusal::new(
                ErrorCode::Busy,
                "an upload of this file is already running",
            )),
            Some(_) => self.prepare_upload(&put).await,
        };
        let (target, mut writer) = match prepared {
            Ok(p) => p,
            Err(r) => {
                send_refusal(conn, &r).await?;
                return discard_upload(conn, &put).await;
            }
        };

        // Receive; the writer thread hashes every byte as it lands (one
        // pass). After a write error keep reading, so the peer gets a clean
        // refusal rather than a reset.
        let mut writing = true;
        loop {
            match conn.next_event().await {
                Ok(Some(FrameEvent::Body(chunk))) => {
                    if writing {
                        writing = writer.write(chunk).await;
                    }
                }
                Ok(Some(FrameEvent::End)) => break,
                Ok(_) => return Err(Error::Protocol("frame out of order".into())),
                Err(e) => {
                    // Interrupted: a sockit client can resume from what was
                    // written; a classic upload has no resume, so drop it.
                    let written = writer.finish().await;
                    if !put.trailer || written.is_err() {
                        self.staging.discard(&put.path).await;
                    }
                    tracing::info!(path = %put.path, "upload interrupted");
                    return Err(e);
                }
            }
        }
        let written = writer.finish().await;

        let claimed = if put.trailer {
            let (header, body_len) = conn.expect_header("sending the upload's checksum").await?;
            match Request::from_header(&header) {
                Ok(Request::Commit { xxh3 }) if body_len == 0 => {
                    conn.skip_body().await?;
                    Some(xxh3)
                }
                _ => {
                    self.staging.discard(&put.path).await;
                    return Err(Error::Protocol("expected a commit after the upload".into()));
                }
            }
        } else {
            None
        };

        match self.finish_upload(&put, &target, written, claimed).await {
            Ok(xxh3) => {
                tracing::info!(path = %put.path, size = put.filesize, "upload stored");
                let reply = ok_reply([("size", put.filesize.into()), ("xxh3", xxh3.into())]);
                conn.write_header(&reply).await?;
                conn.flush().await
            }
            Err(r) => {
                self.staging.discard(&put.path).await;
                tracing::info!(path = %put.path, code = %r.code, "upload refused");
                send_refusal(conn, &r).await
            }
        }
    }

    /// Resolves the target, creates its folders and opens the partial
    /// (fresh, or reopened at the offset) behind a writer thread.
    async fn prepare_upload(&self, put: &Put) -> Result<(PathBuf, DiskWriter), Refusal> {
        let target = self.sandbox.resolve(&put.path).await?;
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        if tokio::fs::metadata(&target).await.is_ok_and(|m| m.is_dir()) {
            return Err(Refusal::new(ErrorCode::IsADirectory, "a folder has that name"));
        }
        let file = if put.offset == 0 {
            self.staging.begin(&put.path, put.filesize).await?
        } else {
            self.staging
                .reopen(&put.path, put.filesize, put.offset)
                .await
                .ok_or_else(|| Refusal::new(ErrorCode::BadRequest, "offset does not match the kept partial upload"))?
        };
        let writer = DiskWriter::open(file.into_std().await, put.offset, put.md5.is_some()).await?;
        Ok((target, writer))
    }

    /// Checks what arrived against the client's claims and moves it into
    /// place; the stored file's hash on success.
    async fn finish_upload(
        &self,
        put: &Put,
        target: &Path,
        written: io::Result<Hashes>,
        claimed: Option<String>,
    ) -> Result<String, Refusal> {
        let ours = written?;
        if let Some(claimed) = claimed {
            if claimed != ours.xxh3 {
                return Err(Refusal::new(
                    ErrorCode::ChecksumMismatch,
                    format!("xxh3 mismatch: client sent {claimed}, server received {}", ours.xxh3),
                ));
            }
        }
        if let (Some(claimed), Some(md5)) = (&put.md5, &ours.md5) {
            if claimed != md5 {
                return Err(Refusal::new(
                    ErrorCode::ChecksumMismatch,
                    format!("md5 mismatch: header says {claimed}, server received {md5}"),
                ));
            }
        }
        self.staging.commit(&put.path, target).await?;
        Ok(ours.xxh3)
    }

    /// Answers with the body or a refusal. `Ok(Err(_))` is a refusal the
    /// caller sends; `Err` ends the connection (it broke mid-body).
    async fn get<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        conn: &mut FramedConn<S>,
        path: &RelPath,
        offset: u64,
    ) -> Result<Reply, Error> {
        let target = match self.sandbox.resolve(path).await {
            Ok(t) => t,
            Err(e) => return Ok(Err(e.into())),
        };
        let file = match tokio::fs::File::open(&target).await {
            Ok(f) => f,
            Err(e) => return Ok(Err(e.into())),
        };
        let size = match file.metadata().await {
            Ok(m) if m.is_dir() => return Ok(Err(Refusal::new(ErrorCode::IsADirectory, "is a folder"))),
            Ok(m) => m.len(),
            Err(e) => return Ok(Err(e.into())),
        };
        if offset > size {
            return Ok(Err(Refusal::new(
                ErrorCode::BadRequest,
                "offset is past the end of the file",
            )));
        }
        conn.skip_body().await?;
        conn.write_header(&ok_reply([("filesize", size.into()), ("offset", offset.into())]))
            .await?;
        let mut reader = DiskReader::spawn(file.into_std().await, offset, size - offset);
        while let Some(chunk) = reader.next().await {
            // A read error mid-body (the file shrank) breaks the promised
            // size: the only honest signal left is to cut the connection.
            let chunk = chunk.map_err(Error::file("reading", &target))?;
            conn.write_all(&chunk).await?;
            reader.recycle(chunk);
        }
        let xxh3 = reader.finish().await.map_err(Error::file("reading", &target))?;
        conn.write_header(&ok_reply([("xxh3", xxh3.into())])).await?;
        conn.flush().await?;
        Ok(Ok(()))
    }

    /// A framed exec: `{"status":"ok","data_size":N,"stdout_size":S,"exit_code":C,...}`
    /// then stdout and stderr.
    async fn exec<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        conn: &mut FramedConn<S>,
        command: &Command,
    ) -> Result<Reply, Error> {
        let Some(limits) = &self.config.exec else {
            return Ok(Err(Refusal::new(
                ErrorCode::PermissionDenied,
                "remote exec is disabled on this server (--allow-exec)",
            )));
        };
        tracing::info!(?command, "exec");
        match exec::run(command, limits, self.sandbox.root(), conn.closed()).await {
            Ok(outcome) => {
                conn.write_header(&framed_reply(&outcome)).await?;
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
        let outcome = match &self.config.exec {
            None => Outcome {
                stderr: b"sockit: remote exec is disabled on this server\n".to_vec(),
                ..Outcome::default()
            },
            Some(_) if line.is_empty() => Outcome::default(),
            Some(limits) => {
                tracing::info!(command = %line, "exec (classic)");
                match exec::run(&Command::Shell(line), limits, self.sandbox.root(), conn.closed()).await {
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

    async fn resume<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        conn: &mut FramedConn<S>,
        path: &RelPath,
        filesize: u64,
    ) -> Result<Reply, Error> {
        let Some(_claim) = self.staging.claim(path) else {
            return Ok(Err(Refusal::new(
                ErrorCode::Busy,
                "an upload of this file is already running",
            )));
        };
        let offset = self.staging.kept_len(path, filesize).await;
        conn.write_header(&ok_reply([("offset", offset.into())])).await?;
        Ok(Ok(()))
    }

    async fn ls<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        conn: &mut FramedConn<S>,
        path: &RelPath,
        recursive: bool,
    ) -> Result<Reply, Error> {
        let entries = match self.list(path, recursive).await {
            Ok(e) => e,
            Err(r) => return Ok(Err(r)),
        };
        let body = serde_json::to_vec(&entries).map_err(|e| Error::Protocol(e.to_string()))?;
        conn.write_header(&ok_reply([("data_size", body.len().into())])).await?;
        conn.write_all(&body).await?;
        Ok(Ok(()))
    }

    async fn list(&self, path: &RelPath, recursive: bool) -> Result<Vec<Entry>, Refusal> {
        let dir = self.sandbox.resolve(path).await?;
        if !tokio::fs::metadata(&dir).await?.is_dir() {
            return Err(Refusal::new(ErrorCode::NotADirectory, "not a folder"));
        }
        let mut entries = Vec::new();
        let mut pending = vec![(dir, String::new())];
        while let Some((dir, prefix)) = pending.pop() {
            let mut read = tokio::fs::read_dir(&dir).await?;
            while let Some(item) = read.next_entry().await? {
                let Ok(name) = item.file_name().into_string() else {
                    continue; // not UTF-8: cannot be named in a JSON header
                };
                if prefix.is_empty() && path.is_root() && name == RESERVED_DIR {
                    continue;
                }
                let full = item.path();
                let is_link = item.file_type().await?.is_symlink();
                if is_link && !self.sandbox.contains(&full).await {
                    continue;
                }
                let Ok(meta) = tokio::fs::metadata(&full).await else {
                    continue;
                };
                let rel = if prefix.is_empty() {
                    name
                } else {
                    format!("{prefix}/{name}")
                };
                let entry = entry(rel.clone(), &meta);
                // Links are listed but not walked: a link to a parent
                // would otherwise loop.
                if recursive && entry.kind == EntryKind::Dir && !is_link {
                    pending.push((full, rel));
                }
                entries.push(entry);
                if entries.len() > self.config.max_listing {
                    return Err(Refusal::new(
                        ErrorCode::TooLarge,
                        format!("more than {} entries; list a sub-folder", self.config.max_listing),
                    ));
                }
            }
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(entries)
    }

    async fn stat<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        conn: &mut FramedConn<S>,
        path: &RelPath,
    ) -> Result<Reply, Error> {
        let meta = match self.sandbox.resolve(path).await {
            Ok(p) => tokio::fs::metadata(p).await.map_err(Refusal::from),
            Err(e) => Err(e.into()),
        };
        let meta = match meta {
            Ok(m) => m,
            Err(r) => return Ok(Err(r)),
        };
        let e = entry(path.to_string(), &meta);
        let fields = serde_json::to_value(&e).map_err(|e| Error::Protocol(e.to_string()))?;
        let mut reply = ok_reply([]);
        if let Value::Object(map) = fields {
            reply.extend(map);
        }
        conn.write_header(&reply).await?;
        Ok(Ok(()))
    }

    async fn rm<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        conn: &mut FramedConn<S>,
        path: &RelPath,
        recursive: bool,
    ) -> Result<Reply, Error> {
        let removed = self.remove(path, recursive).await;
        if removed.is_ok() {
            conn.write_header(&ok_reply([])).await?;
        }
        Ok(removed)
    }

    async fn remove(&self, path: &RelPath, recursive: bool) -> Reply {
        // Resolve the parent, not the path: removing a symlink removes the
        // link itself, never what it points to.
        let target = self.sandbox.resolve(&path.parent()).await?.join(path.file_name());
        let meta = tokio::fs::symlink_metadata(&target).await?;
        if meta.is_dir() {
            if recursive {
                tokio::fs::remove_dir_all(&target).await?;
            } else {
                tokio::fs::remove_dir(&target).await?;
            }
        } else {
            tokio::fs::remove_file(&target).await?;
        }
        Ok(())
    }

    async fn mkdir<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        conn: &mut FramedConn<S>,
        path: &RelPath,
    ) -> Result<Reply, Error> {
        let made = match self.sandbox.resolve(path).await {
            Ok(dir) => tokio::fs::create_dir_all(dir).await.map_err(Refusal::from),
            Err(e) => Err(e.into()),
        };
        if made.is_ok() {
            conn.write_header(&ok_reply([])).await?;
        }
        Ok(made)
    }
}

impl Service for FileService {
    async fn serve<S>(&self, stream: S, ctx: ConnContext) -> Result<(), Error>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut conn = FramedConn::new(stream, self.config.frame_limits, ctx.idle_timeout);
        loop {
            // Between requests is the one place shutdown may cut in: an
            // upload in flight finishes (or is discarded) first.
            let opening = tokio::select! {
                o = conn.opening(self.config.frame_limits.max_header_len, CLASSIC_PAUSE) => o?,
                () = ctx.shutdown.cancelled() => return Ok(()),
            };
            // Each request logs under a span naming the peer (the
            // connection's own span is debug-level; see server.rs).
            let span = tracing::info_span!("request", peer = %ctx.peer);
            match opening {
                None => return Ok(()),
                Some(Opening::RawCommand) => {
                    self.classic_exec(&mut conn).instrument(span).await?;
                    continue;
                }
                Some(_) => {}
            }
            let event = conn.next_event().await;
            let (header, _body_len) = match event {
                Ok(None) => return Ok(()),
                Ok(Some(FrameEvent::Header { header, body_len })) => (header, body_len),
                Ok(Some(_)) => return Err(Error::Protocol("body without a header".into())),
                Err(Error::Frame(e)) => {
                    // The stream can no longer be cut into frames: say why, then close.
                    let _ = conn
                        .write_header(&error_reply(ErrorCode::BadRequest, &e.to_string()))
                        .await;
                    let _ = conn.shutdown().await;
                    return Err(Error::Frame(e));
                }
                Err(e) => return Err(e),
            };
            match Request::from_header(&header) {
                Ok(request) => self.handle(&mut conn, request).instrument(span).await?,
                Err(e) => {
                    tracing::debug!(error = %e, "bad request");
                    conn.write_header(&error_reply(e.code(), &e.to_string())).await?;
                    conn.skip_body().await?;
                }
            }
        }
    }
}

async fn send_refusal<S: AsyncRead + AsyncWrite + Unpin>(conn: &mut FramedConn<S>, r: &Refusal) -> Result<(), Error> {
    conn.write_header(&error_reply(r.code, &r.message)).await?;
    conn.flush().await
}

/// Reads and drops a refused upload's body and trailer.
async fn discard_upload<S: AsyncRead + AsyncWrite + Unpin>(conn: &mut FramedConn<S>, put: &Put) -> Result<(), Error> {
    conn.skip_body().await?;
    if put.trailer {
        conn.expect_header("sending the upload's checksum").await?;
        conn.skip_body().await?;
    }
    Ok(())
}

fn entry(path: String, meta: &std::fs::Metadata) -> Entry {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    Entry {
        path,
        kind: if meta.is_dir() { EntryKind::Dir } else { EntryKind::File },
        size: if meta.is_dir() { 0 } else { meta.len() },
        mtime,
    }
}
