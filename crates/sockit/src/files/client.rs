//! The file service's client: one connection, requests in sequence.
//!
//! Downloads go to a hidden partial file beside the target and are renamed
//! into place only after the server's checksum matched what arrived, so an
//! interrupted `get` never leaves a truncated file under the final name and
//! `--resume` continues it. Names from the server (in `get -r`) pass the
//! same path rules as names from a client: a hostile server cannot write
//! outside the chosen folder.

use std::path::Path;
use std::time::{Duration, Instant};

use sockit_proto::checksum::StreamHash;
use sockit_proto::exec::{Command as ExecCommand, Outcome as ExecResult};
use sockit_proto::files::{Entry, ErrorCode, Put, Reply, ReplyTo, Request};
use sockit_proto::frame::{FrameEvent, FrameLimits, Header};
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
    /// A folder transfer of `files` files, `bytes` in all, starts: one
    /// progress for the whole tree. `advance` then counts the tree's bytes,
    /// and each file's own `begin` and `end` are not called.
    fn tree_begin(&mut self, _files: u64, _bytes: u64) {}
    /// A file of the tree is in place and verified.
    fn file_done(&mut self, _transfer: &Transfer) {}
    /// A file of the tree failed; the others go on.
    fn file_failed(&mut self, _name: &str, _error: &Error) {}
    fn tree_end(&mut self) {}
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
    /// Files that failed, with why (refused, unreadable, or unconfirmed
    /// when the connection broke); the rest still went.
    pub failed: Vec<(String, Error)>,
    /// Files never sent or asked for: the connection broke first.
    pub not_sent: usize,
    /// Why the transfer stopped early, if it did.
    pub interrupted: Option<Error>,
}

#[derive(Debug)]
pub struct FileClient {
    pub(crate) conn: FramedConn<Stream>,
    pub(crate) authenticated: bool,
    /// No reply read yet: where a rejected key shows.
    pub(crate) first_reply: bool,
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
        match self.call(&Request::Stat { path: path.clone() }, ReplyTo::Stat).await? {
            Reply::Stat(entry) => Ok(entry),
            other => Err(unexpected(&other)),
        }
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
            let Reply::Page { len, more } = self.reply(ReplyTo::Page).await? else {
                return Err(Error::Protocol("expected a listing page".into()));
            };
            let body = self.conn.read_body(len, budget).await?;
            budget -= len;
            let page: Vec<Entry> =
                serde_json::from_slice(&body).map_err(|e| Error::Protocol(format!("bad listing: {e}")))?;
            entries.extend(page);
            if !more {
                break;
            }
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(entries)
    }

    /// The interrupted uploads the server keeps for a resume.
    pub async fn partials(&mut self) -> Result<Vec<KeptPartial>, Error> {
        self.send(&Request::Partials).await?;
        let Reply::Page { len, .. } = self.reply(ReplyTo::Page).await? else {
            return Err(Error::Protocol("expected the list of partials".into()));
        };
        let body = self.conn.read_body(len, MAX_LISTING_BYTES).await?;
        serde_json::from_slice(&body).map_err(|e| Error::Protocol(format!("bad list of partials: {e}")))
    }

    /// Deletes the server's kept partial upload of `path`.
    pub async fn rm_partial(&mut self, path: &RelPath) -> Result<(), Error> {
        self.call(&Request::RmPartial { path: path.clone() }, ReplyTo::Plain)
            .await
            .map(drop)
    }

    pub async fn rm(&mut self, path: &RelPath, recursive: bool) -> Result<(), Error> {
        self.call(
            &Request::Rm {
                path: path.clone(),
                recursive,
            },
            ReplyTo::Plain,
        )
        .await
        .map(drop)
    }

    pub async fn mkdir(&mut self, path: &RelPath) -> Result<(), Error> {
        self.call(&Request::Mkdir { path: path.clone() }, ReplyTo::Plain)
            .await
            .map(drop)
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
            let request = Request::Resume {
                path: remote.clone(),
                filesize,
            };
            match self.call(&request, ReplyTo::Resume).await? {
                Reply::ResumeAt { offset } => offset.min(filesize),
                other => return Err(unexpected(&other)),
            }
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
        // A resumed upload also proves the bytes it sends on their own, for
        // a server that cannot hash the prefix it kept (an object store).
        let mut tail = (offset > 0).then(StreamHash::new);
        let xxh3 = self.stream_body(reader, local, progress, tail.as_mut()).await?;
        let commit = Request::Commit {
            xxh3: xxh3.clone(),
            tail_xxh3: tail.map(|t| t.hex()),
        };
        self.send(&commit).await?;
        let reply = self.reply(ReplyTo::Put).await;
        progress.end();
        if !matches!(reply?, Reply::Stored { xxh3: theirs, .. } if theirs == xxh3) {
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
        let xxh3 = self.stream_body(reader, local, progress, None).await?;
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
        let first = std::mem::replace(&mut self.first_reply, false);
        let download = Download {
            remote,
            local,
            kept,
            started,
        };
        receive_download(&mut self.conn, download, progress, first, self.authenticated).await
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
        let Reply::Exec(reply) = self.reply(ReplyTo::Exec).await? else {
            return Err(Error::Protocol("expected an exec reply".into()));
        };
        let body = self.conn.read_body(reply.body_len(), max_output).await?;
        let (stdout, stderr) = reply
            .split(&body)
            .ok_or_else(|| Error::Protocol("bad exec reply: stdout_size".into()))?;
        Ok(ExecResult {
            stdout: stdout.to_vec(),
            stderr: stderr.to_vec(),
            exit_code: reply.exit_code,
            timed_out: reply.timed_out,
            truncated: reply.truncated,
        })
    }

    /// Sends what `reader` hands out as a body; returns the XXH3 of the
    /// whole file up to the end (prefix included).
    async fn stream_body(
        &mut self,
        mut reader: DiskReader,
        local: &Path,
        progress: &mut dyn Progress,
        mut tail: Option<&mut StreamHash>,
    ) -> Result<String, Error> {
        while let Some(chunk) = reader.next().await {
            let chunk = chunk.map_err(Error::file("reading", local))?;
            if let Some(tail) = tail.as_deref_mut() {
                tail.update(&chunk);
            }
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

    async fn call(&mut self, request: &Request, to: ReplyTo) -> Result<Reply, Error> {
        self.send(request).await?;
        let reply = self.reply(to).await?;
        self.conn.skip_body().await?;
        Ok(reply)
    }

    /// The next reply, read as the answer to `to`; the server's refusal
    /// (its body, if any, skipped) as an error.
    pub(crate) async fn reply(&mut self, to: ReplyTo) -> Result<Reply, Error> {
        read_reply(
            &mut self.conn,
            to,
            std::mem::replace(&mut self.first_reply, false),
            self.authenticated,
        )
        .await
    }
}

/// Reads the next reply off `conn` as the answer to `to`. `first`: no
/// reply has been read on this connection yet, which is where a rejected
/// key or a server that wants auth shows.
pub(crate) async fn read_reply<R: tokio::io::AsyncRead + Unpin>(
    conn: &mut FramedConn<R>,
    to: ReplyTo,
    first: bool,
    authenticated: bool,
) -> Result<Reply, Error> {
    let (header, body_len) = match conn.expect_header("waiting for a reply").await {
        // The server closes on a wrong auth answer without a word; the
        // first read after the handshake is where that shows.
        Err(Error::Closed { .. } | Error::Io { .. }) if first && authenticated => {
            return Err(Error::AuthRejected);
        }
        // An auth server's first bytes are its random challenge, which
        // cannot be read as a frame.
        Err(Error::Frame(_)) if first && !authenticated => {
            return Err(Error::Protocol(
                "the server did not answer with a frame; it probably requires authentication (drop --insecure-no-auth) or TLS (add --tls)"
                    .into(),
            ));
        }
        other => other?,
    };
    match Reply::from_header(&header, to)?.accepted() {
        Ok(reply) => Ok(reply),
        Err(refused) => {
            if body_len > 0 {
                conn.skip_body().await?;
            }
            Err(Error::Remote(refused))
        }
    }
}

/// A download whose `get` request is sent: where it goes, and the kept
/// partial it continues (its length was the request's offset).
pub(crate) struct Download<'a> {
    pub remote: &'a RelPath,
    pub local: &'a Path,
    pub kept: Option<(std::fs::File, u64)>,
    pub started: Instant,
}

/// Reads a download's reply, body and trailer into a partial beside the
/// target, and moves it into place once the server's checksum matches.
pub(crate) async fn receive_download<R: tokio::io::AsyncRead + Unpin>(
    conn: &mut FramedConn<R>,
    download: Download<'_>,
    progress: &mut dyn Progress,
    first: bool,
    authenticated: bool,
) -> Result<Transfer, Error> {
    let Reply::Sending {
        filesize: size,
        offset: from,
    } = read_reply(conn, ReplyTo::Get, first, authenticated).await?
    else {
        return Err(Error::Protocol("expected a download to start".into()));
    };
    receive_body(conn, download, size, from, progress, authenticated).await
}

/// A download's body and trailer, once its reply said it starts at `from`
/// of `size` bytes.
pub(crate) async fn receive_body<R: tokio::io::AsyncRead + Unpin>(
    conn: &mut FramedConn<R>,
    download: Download<'_>,
    size: u64,
    from: u64,
    progress: &mut dyn Progress,
    authenticated: bool,
) -> Result<Transfer, Error> {
    let Download {
        remote,
        local,
        kept,
        started,
    } = download;
    let partial = partial_path(local);
    let offset = kept.as_ref().map_or(0, |(_, len)| *len);
    if from != offset {
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
        match conn.next_event().await {
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
    let Reply::Sent { xxh3: theirs } = read_reply(conn, ReplyTo::GetTrailer, false, authenticated).await? else {
        return Err(Error::Protocol("expected the download's checksum".into()));
    };
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

/// A reply of a kind the request does not get.
fn unexpected(reply: &Reply) -> Error {
    Error::Protocol(format!("unexpected reply {reply:?}"))
}

/// Opens a local file to send, with its size.
pub(crate) async fn open_local(local: &Path) -> Result<(std::fs::File, u64), Error> {
    let file = tokio::fs::File::open(local)
        .await
        .map_err(Error::file("cannot open", local))?;
    let size = file.metadata().await.map_err(Error::file("cannot stat", local))?.len();
    Ok((file.into_std().await, size))
}

/// The partial to resume from, if one was kept (never through a link).
pub(crate) async fn open_kept_partial(partial: &Path) -> Result<Option<(std::fs::File, u64)>, Error> {
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
