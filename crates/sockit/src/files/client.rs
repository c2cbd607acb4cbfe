//! The file service's client: one connection, requests in sequence.
//!
//! Downloads go to a hidden partial file beside the target and are renamed
//! into place only after the server's checksum matched what arrived, so an
//! interrupted `get` never leaves a truncated file under the final name and
//! `--resume` continues it. Names from the server (in `get -r`) pass the
//! same path rules as names from a client: a hostile server cannot write
//! outside the chosen folder.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sockit_proto::exec::{Command as ExecCommand, Outcome as ExecResult, split_body};
use sockit_proto::files::{Entry, EntryKind, ErrorCode, Put, Request, more_pages, parse_reply};
use sockit_proto::frame::{FrameEvent, FrameLimits, Header, size_field};
use sockit_proto::path::RelPath;

use crate::Error;
use crate::auth::Auth;
use crate::clients::{self, Dial};
use crate::conn::FramedConn;
use crate::disk::{DiskReader, DiskWriter, WriteOptions};
use crate::files::staging::KeptPartial;
pub use crate::partial::partial_path;
use crate::stream::Stream;
use crate::tls::Trust;

/// Longest wait for the server by default: connect, each read, each write.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest `ls` body a client accepts (the server caps listings lower).
pub const MAX_LISTING_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port`.
    pub server: String,
    pub auth: Option<Auth>,
    /// TLS, and how the server's certificate is trusted.
    pub tls: Option<Trust>,
    pub timeout: Duration,
    pub frame_limits: FrameLimits,
}

impl ClientConfig {
    pub fn new(server: impl Into<String>, auth: Option<Auth>) -> Self {
        Self {
            server: server.into(),
            auth,
            tls: None,
            timeout: DEFAULT_TIMEOUT,
            frame_limits: FrameLimits::default(),
        }
    }
}

/// Receives transfer progress; the binary draws bars or prints JSON.
pub trait Progress: Send {
    /// A transfer of `name` starts; `done` bytes were already there (resume).
    fn begin(&mut self, _name: &str, _total: u64, _done: u64) {}
    fn advance(&mut self, _bytes: u64) {}
    fn end(&mut self) {}
    /// True once whoever watches no longer wants the transfer (its output
    /// was closed): the transfer stops with [`Error::Cancelled`], and a
    /// download removes its partial.
    fn cancelled(&self) -> bool {
        false
    }
}

/// Progress that goes nowhere.
#[derive(Debug, Default)]
pub struct NoProgress;
impl Progress for NoProgress {}

/// What one finished transfer did.
#[derive(Debug, Clone)]
pub struct Transfer {
    pub name: String,
    /// The file's whole size.
    pub size: u64,
    /// Where this transfer started (0 unless resumed).
    pub offset: u64,
    pub xxh3: String,
    pub elapsed: Duration,
    /// False only for a classic upload, which no reply confirms.
    pub verified: bool,
}

/// What a recursive transfer did.
#[derive(Debug, Default)]
pub struct TreeSummary {
    pub files: Vec<Transfer>,
    pub folders: usize,
    /// Files the server refused, with why; the rest still went.
    pub failed: Vec<(String, Error)>,
}

#[derive(Debug)]
pub struct FileClient {
    conn: FramedConn<Stream>,
    authenticated: bool,
    first_reply: bool,
}

impl FileClient {
    /// Connects, starts TLS when configured, and answers the auth
    /// challenge (inside TLS the server proves the key too).
    pub async fn connect(config: &ClientConfig) -> Result<Self, Error> {
        let dial = Dial {
            auth: config.auth.clone(),
            tls: config.tls.clone(),
        };
        let stream = clients::connect(&config.server, &dial, config.timeout).await?;
        Ok(Self {
            conn: FramedConn::new(stream, config.frame_limits, config.timeout),
            authenticated: config.auth.is_some(),
            first_reply: true,
        })
    }

    pub async fn stat(&mut self, path: &RelPath) -> Result<Entry, Error> {
        let reply = self.call(&Request::Stat { path: path.clone() }).await?;
        serde_json::from_value(serde_json::Value::Object(reply))
            .map_err(|e| Error::Protocol(format!("bad stat reply: {e}")))
    }

    pub async fn ls(&mut self, path: &RelPath, recursive: bool) -> Result<Vec<Entry>, Error> {
        self.send(&Request::Ls {
            path: path.clone(),
            recursive,
        })
        .await?;
        // Pages until one without "more"; the total is capped here too.
        let mut entries = Vec::new();
        let mut budget = MAX_LISTING_BYTES;
        loop {
            let (reply, body_len) = self.reply().await?;
            let body = self.conn.read_body(body_len, budget).await?;
            budget -= body_len;
            let page: Vec<Entry> =
                serde_json::from_slice(&body).map_err(|e| Error::Protocol(format!("bad listing: {e}")))?;
            entries.extend(page);
            if !more_pages(&reply) {
                break;
            }
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(entries)
    }

    /// The interrupted uploads the server keeps for a resume.
    pub async fn partials(&mut self) -> Result<Vec<KeptPartial>, Error> {
        self.send(&Request::Partials).await?;
        let (_, body_len) = self.reply().await?;
        let body = self.conn.read_body(body_len, MAX_LISTING_BYTES).await?;
        serde_json::from_slice(&body).map_err(|e| Error::Protocol(format!("bad list of partials: {e}")))
    }

    /// Deletes the server's kept partial upload of `path`.
    pub async fn rm_partial(&mut self, path: &RelPath) -> Result<(), Error> {
        self.call(&Request::RmPartial { path: path.clone() }).await.map(drop)
    }

    pub async fn rm(&mut self, path: &RelPath, recursive: bool) -> Result<(), Error> {
        self.call(&Request::Rm {
            path: path.clone(),
            recursive,
        })
        .await
        .map(drop)
    }

    pub async fn mkdir(&mut self, path: &RelPath) -> Result<(), Error> {
        self.call(&Request::Mkdir { path: path.clone() }).await.map(drop)
    }

    /// Uploads `local` as `remote`, verified by the server against the hash
    /// computed while sending. With `resume`, continues a kept partial,
    /// proving first that it holds this file's start; if it does not (an
    /// other client's upload of the same name), starts over.
    pub async fn put(
        &mut self,
        local: &Path,
        remote: &RelPath,
        resume: bool,
        progress: &mut dyn Progress,
    ) -> Result<Transfer, Error> {
        match self.put_once(local, remote, resume, progress).await {
            Err(Error::Remote(r)) if resume && r.code == ErrorCode::ChecksumMismatch => {
                self.put_once(local, remote, false, progress).await
            }
            other => other,
        }
    }

    async fn put_once(
        &mut self,
        local: &Path,
        remote: &RelPath,
        resume: bool,
        progress: &mut dyn Progress,
    ) -> Result<Transfer, Error> {
        let started = Instant::now();
        let (file, filesize) = open_local(local).await?;
        let offset = if resume {
            let reply = self
                .call(&Request::Resume {
                    path: remote.clone(),
                    filesize,
                })
                .await?;
            size_field(&reply, "offset")?.unwrap_or(0).min(filesize)
        } else {
            0
        };
        // The reader hashes the prefix the server already has without
        // sending it, then streams and hashes the rest.
        let mut reader = DiskReader::spawn(file, offset, filesize - offset);
        let prefix_xxh3 = if offset > 0 {
            Some(reader.prefix_hash().await.map_err(Error::file("reading", local))?)
        } else {
            None
        };
        let put = Request::Put(Put {
            path: remote.clone(),
            filesize,
            offset,
            md5: None,
            trailer: true,
            prefix_xxh3,
        });
        self.send(&put).await?;
        progress.begin(&remote.to_string(), filesize, offset);
        let xxh3 = self.stream_body(reader, local, progress).await?;
        self.send(&Request::Commit { xxh3: xxh3.clone() }).await?;
        let reply = self.reply().await;
        progress.end();
        let reply = reply?.0;
        if reply.get("xxh3").and_then(|v| v.as_str()) != Some(xxh3.as_str()) {
            return Err(Error::Protocol("server confirmed a different checksum".into()));
        }
        Ok(Transfer {
            name: remote.to_string(),
            size: filesize,
            offset,
            xxh3,
            elapsed: started.elapsed(),
            verified: true,
        })
    }

    /// Uploads the way the seeds' client does, for a classic server that
    /// never replies: `{"cmd":"put","filename":..,"filesize":..}` and the
    /// bytes, then end of stream. Nothing confirms it arrived.
    pub async fn put_classic(
        mut self,
        local: &Path,
        remote_name: &str,
        progress: &mut dyn Progress,
    ) -> Result<Transfer, Error> {
        let started = Instant::now();
        let (file, filesize) = open_local(local).await?;
        let mut header = Header::new();
        header.insert("cmd".into(), "put".into());
        header.insert("filename".into(), remote_name.into());
        header.insert("filesize".into(), filesize.into());
        self.conn.write_header(&header).await?;
        progress.begin(remote_name, filesize, 0);
        let reader = DiskReader::spawn(file, 0, filesize);
        let xxh3 = self.stream_body(reader, local, progress).await?;
        self.conn.shutdown().await?;
        progress.end();
        Ok(Transfer {
            name: remote_name.to_owned(),
            size: filesize,
            offset: 0,
            xxh3,
            elapsed: started.elapsed(),
            verified: false,
        })
    }

    /// Downloads `remote` to the file `local`, through a partial beside it.
    pub async fn get(
        &mut self,
        remote: &RelPath,
        local: &Path,
        resume: bool,
        progress: &mut dyn Progress,
    ) -> Result<Transfer, Error> {
        let started = Instant::now();
        let partial = partial_path(local);
        let kept = if resume {
            open_kept_partial(&partial).await?
        } else {
            None
        };
        let offset = kept.as_ref().map_or(0, |(_, len)| *len);
        self.send(&Request::Get {
            path: remote.clone(),
            offset,
        })
        .await?;
        let (reply, _) = self.reply().await?;
        let size = size_field(&reply, "filesize")?.unwrap_or(0);
        if size_field(&reply, "offset")?.unwrap_or(0) != offset {
            return Err(Error::Protocol("server started at a different offset".into()));
        }
        // Only now, with the server committed to sending, touch the disk:
        // a refused get leaves nothing behind.
        let file = match kept {
            Some((file, _)) => file,
            None => create_fresh_partial(&partial).await?,
        };
        progress.begin(&remote.to_string(), size, offset);
        let mut writer = DiskWriter::open(file, offset, WriteOptions::default())
            .await
            .map_err(Error::file("reading", &partial))?;
        let mut writing = true;
        loop {
            match self.conn.next_event().await {
                Ok(Some(FrameEvent::Body(chunk))) => {
                    progress.advance(chunk.len() as u64);
                    if progress.cancelled() {
                        let _ = writer.finish().await;
                        progress.end();
                        let _ = tokio::fs::remove_file(&partial).await;
                        return Err(Error::Cancelled);
                    }
                    if writing {
                        writing = writer.write(chunk).await;
                    }
                    if !writing {
                        break; // the error comes from finish()
                    }
                }
                Ok(Some(FrameEvent::End)) => break,
                Ok(_) => return Err(Error::Protocol("frame out of order".into())),
                Err(e) => {
                    // Keep what arrived: `--resume` continues from it.
                    let _ = writer.finish().await;
                    progress.end();
                    return Err(e);
                }
            }
        }
        progress.end();
        let ours = writer.finish().await.map_err(Error::file("writing", &partial))?.xxh3;
        let (trailer, _) = self.reply().await?;
        let theirs = trailer.get("xxh3").and_then(|v| v.as_str()).unwrap_or("").to_owned();
        if theirs != ours {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(Error::ChecksumMismatch {
                name: remote.to_string(),
                expected: theirs,
                actual: ours,
            });
        }
        tokio::fs::rename(&partial, local)
            .await
            .map_err(Error::file("cannot move into place", local))?;
        Ok(Transfer {
            name: remote.to_string(),
            size,
            offset,
            xxh3: ours,
            elapsed: started.elapsed(),
            verified: true,
        })
    }

    /// Uploads a local folder's files and sub-folders under `remote`.
    pub async fn put_tree(
        &mut self,
        local: &Path,
        remote: &RelPath,
        resume: bool,
        progress: &mut dyn Progress,
    ) -> Result<TreeSummary, Error> {
        let mut summary = TreeSummary::default();
        let walked = walk_local(local.to_owned()).await?;
        self.mkdir(remote).await?;
        summary.folders += 1;
        for (rel, is_dir) in walked {
            let mut target = remote.clone();
            for part in rel.components() {
                target = target.join(part).map_err(|e| Error::Usage(format!("{rel}: {e}")))?;
            }
            let source = rel.components().fold(local.to_owned(), |p, c| p.join(c));
            if is_dir {
                self.mkdir(&target).await?;
                summary.folders += 1;
                continue;
            }
            match self.put(&source, &target, resume, progress).await {
                Ok(t) => summary.files.push(t),
                Err(Error::Cancelled) => return Err(Error::Cancelled),
                Err(e @ (Error::Remote(_) | Error::File { .. })) => summary.failed.push((target.to_string(), e)),
                Err(e) => return Err(e),
            }
        }
        Ok(summary)
    }

    /// Downloads a remote folder into the local folder `local`.
    pub async fn get_tree(
        &mut self,
        remote: &RelPath,
        local: &Path,
        resume: bool,
        progress: &mut dyn Progress,
    ) -> Result<TreeSummary, Error> {
        let mut summary = TreeSummary::default();
        let entries = self.ls(remote, true).await?;
        tokio::fs::create_dir_all(local)
            .await
            .map_err(Error::file("cannot create", local))?;
        summary.folders += 1;
        for entry in entries {
            // A hostile server's names get the same checks as a peer's.
            let rel = RelPath::parse(&entry.path)
                .map_err(|e| Error::Protocol(format!("server sent a bad name {:?}: {e}", entry.path)))?;
            let dest = rel.components().fold(local.to_owned(), |p, c| p.join(c));
            let source = rel
                .components()
                .try_fold(remote.clone(), |p, c| p.join(c))
                .map_err(|e| Error::Protocol(e.to_string()))?;
            match entry.kind {
                EntryKind::Dir => {
                    tokio::fs::create_dir_all(&dest)
                        .await
                        .map_err(Error::file("cannot create", &dest))?;
                    summary.folders += 1;
                }
                EntryKind::File => {
                    if let Some(parent) = dest.parent() {
                        tokio::fs::create_dir_all(parent)
                            .await
                            .map_err(Error::file("cannot create", parent))?;
                    }
                    match self.get(&source, &dest, resume, progress).await {
                        Ok(t) => summary.files.push(t),
                        Err(e @ Error::Remote(_)) => summary.failed.push((source.to_string(), e)),
                        Err(e) => return Err(e),
                    }
                }
                // Pipes and devices on the server are never served.
                EntryKind::Other => {}
            }
        }
        Ok(summary)
    }

    /// Runs a command on the server (which must allow exec).
    /// Runs `command` on the server with `stdin` as its standard input
    /// (sent as the request's body; empty: the command reads end-of-file).
    pub async fn exec(&mut self, command: ExecCommand, stdin: &[u8], max_output: u64) -> Result<ExecResult, Error> {
        let mut header = Request::Exec(command).to_header();
        if !stdin.is_empty() {
            header.insert("data_size".into(), stdin.len().into());
        }
        self.conn.write_header(&header).await?;
        // In pieces, each under the connection's write deadline, as a put's
        // body goes.
        for piece in stdin.chunks(64 * 1024) {
            self.conn.write_all(piece).await?;
        }
        let (header, body_len) = self.reply().await?;
        let body = self.conn.read_body(body_len, max_output).await?;
        let (stdout, stderr) =
            split_body(&header, &body).ok_or_else(|| Error::Protocol("bad exec reply: stdout_size".into()))?;
        let flag = |k: &str| header.get(k).and_then(serde_json::Value::as_bool).unwrap_or(false);
        Ok(ExecResult {
            stdout: stdout.to_vec(),
            stderr: stderr.to_vec(),
            exit_code: header
                .get("exit_code")
                .and_then(serde_json::Value::as_i64)
                .and_then(|c| i32::try_from(c).ok()),
            timed_out: flag("timed_out"),
            truncated: flag("truncated"),
        })
    }

    /// Sends what `reader` hands out as a body; returns the XXH3 of the
    /// whole file up to the end (prefix included).
    async fn stream_body(
        &mut self,
        mut reader: DiskReader,
        local: &Path,
        progress: &mut dyn Progress,
    ) -> Result<String, Error> {
        while let Some(chunk) = reader.next().await {
            let chunk = chunk.map_err(Error::file("reading", local))?;
            self.conn.write_all(&chunk).await?;
            progress.advance(chunk.len() as u64);
            if progress.cancelled() {
                return Err(Error::Cancelled);
            }
            reader.recycle(chunk);
        }
        reader.finish().await.map_err(Error::file("reading", local))
    }

    async fn send(&mut self, request: &Request) -> Result<(), Error> {
        self.conn.write_header(&request.to_header()).await
    }

    async fn call(&mut self, request: &Request) -> Result<Header, Error> {
        self.send(request).await?;
        let (reply, body_len) = self.reply().await?;
        if body_len > 0 {
            self.conn.skip_body().await?;
        }
        Ok(reply)
    }

    /// The next reply header, or the server's refusal as an error.
    async fn reply(&mut self) -> Result<(Header, u64), Error> {
        let first = std::mem::replace(&mut self.first_reply, false);
        let (header, body_len) = match self.conn.expect_header("waiting for a reply").await {
            // The server closes on a wrong auth answer without a word; the
            // first read after the handshake is where that shows.
            Err(Error::Closed { .. } | Error::Io { .. }) if first && self.authenticated => {
                return Err(Error::AuthRejected);
            }
            // An auth server's first bytes are its random challenge, which
            // cannot be read as a frame.
            Err(Error::Frame(_)) if first && !self.authenticated => {
                return Err(Error::Protocol(
                    "the server did not answer with a frame; it probably requires authentication (drop --insecure-no-auth) or TLS (add --tls)"
                        .into(),
                ));
            }
            other => other?,
        };
        match parse_reply(header) {
            Ok(h) => Ok((h, body_len)),
            Err(e) => {
                if body_len > 0 {
                    self.conn.skip_body().await?;
                }
                Err(e.into())
            }
        }
    }
}

/// Opens a local file to send, with its size.
async fn open_local(local: &Path) -> Result<(std::fs::File, u64), Error> {
    let file = tokio::fs::File::open(local)
        .await
        .map_err(Error::file("cannot open", local))?;
    let size = file.metadata().await.map_err(Error::file("cannot stat", local))?.len();
    Ok((file.into_std().await, size))
}

/// The partial to resume from, if one was kept (never through a link).
async fn open_kept_partial(partial: &Path) -> Result<Option<(std::fs::File, u64)>, Error> {
    let at = partial.to_owned();
    tokio::task::spawn_blocking(move || crate::partial::open_kept(&at))
        .await
        .map_err(|e| Error::Protocol(e.to_string()))?
        .map_err(Error::file("cannot resume", partial))
}

/// A fresh partial to download into (a planted link at its name is
/// removed, never written through).
async fn create_fresh_partial(partial: &Path) -> Result<std::fs::File, Error> {
    let at = partial.to_owned();
    tokio::task::spawn_blocking(move || crate::partial::create_fresh(&at))
        .await
        .map_err(|e| Error::Protocol(e.to_string()))?
        .map_err(Error::file("cannot create", partial))
}

/// Every file and folder under `root`, parents before children, as
/// validated relative paths. Symlinks are followed for files only.
async fn walk_local(root: PathBuf) -> Result<Vec<(RelPath, bool)>, Error> {
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        let mut pending = vec![(root.clone(), RelPath::root())];
        while let Some((dir, rel)) = pending.pop() {
            let read = std::fs::read_dir(&dir).map_err(Error::file("cannot read folder", &dir))?;
            let mut items: Vec<_> = read.flatten().collect();
            items.sort_by_key(|e| e.file_name());
            for item in items {
                let name = item.file_name();
                let Some(name) = name.to_str() else { continue };
                let child = rel
                    .join(name)
                    .map_err(|e| Error::Usage(format!("{}: {e}", item.path().display())))?;
                let is_real_dir = item.file_type().is_ok_and(|t| t.is_dir());
                if is_real_dir {
                    out.push((child.clone(), true));
                    pending.push((item.path(), child));
                } else if std::fs::metadata(item.path()).is_ok_and(|m| m.is_file()) {
                    out.push((child, false));
                }
            }
        }
        Ok(out)
    })
    .await
    .map_err(|e| Error::Protocol(e.to_string()))?
}
