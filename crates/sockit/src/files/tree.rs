//! Folder transfers (`put -r`, `get -r`) as one pipelined operation
//! (docs/protocol.md §3.4).
//!
//! One connection carries the whole tree. A writer keeps up to [`WINDOW`]
//! requests ahead of the replies (folders, files with their bodies, gets)
//! while a reader takes the replies in the same order, so a tree of small
//! files pays one round trip in all rather than one per file. The server
//! answers strictly in order, so the reader always knows which request the
//! next reply belongs to.
//!
//! Small files (one chunk, [`SMALL_FILE`]) are read or written whole on the
//! blocking pool, ahead of the socket; large ones stream through their own
//! transfer thread as single transfers do. A refused file is reported and
//! the rest go on. If the connection breaks, every file in the window is
//! reported as unconfirmed: nothing but a complete, verified file is ever
//! under its final name on either side, so `--resume` can finish the tree.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use sockit_proto::checksum::StreamHash;
use sockit_proto::files::{EntryKind, ErrorCode, Put, Reply, ReplyTo, Request};
use sockit_proto::frame::encode_header;
use sockit_proto::path::RelPath;

use super::client::{
    Download, FileClient, Progress, Transfer, TreeSummary, open_kept_partial, open_local, read_reply, receive_body,
    receive_download,
};
use crate::Error;
use crate::conn::FramedConn;
use crate::disk::DiskReader;
use crate::partial::partial_path;

/// Requests in flight at once: enough to hide the round trip behind the
/// files of the window (64 small files are tens of microseconds of disk
/// each), and a bound on what is read ahead into memory (64 × 256 KiB).
pub const WINDOW: usize = 64;
/// Files up to this size go whole, in one write; larger ones stream.
pub const SMALL_FILE: u64 = crate::files::service::SMALL_FILE;

/// One entry of a local tree, as walked.
#[derive(Debug, Clone)]
struct Local {
    rel: RelPath,
    /// `None` for a folder.
    size: Option<u64>,
}

/// What the writer sends next for an upload.
#[derive(Debug)]
enum Outgoing {
    Folder(RelPath),
    /// A small file, read whole, with its XXH3.
    Whole {
        target: RelPath,
        source: PathBuf,
        data: Vec<u8>,
        xxh3: String,
    },
    /// A file to stream from disk (large, or resumed at `offset`).
    Stream {
        target: RelPath,
        source: PathBuf,
        offset: u64,
    },
    /// A local file that could not be read: reported, never sent.
    Unreadable {
        target: RelPath,
        error: Error,
    },
}

/// A request sent whose reply the reader awaits.
#[derive(Debug)]
enum Awaited {
    Folder(RelPath),
    File {
        target: RelPath,
        source: PathBuf,
        size: u64,
        offset: u64,
        xxh3: String,
        started: Instant,
    },
    /// Nothing on the wire: a local failure, reported in its place.
    Failed {
        target: RelPath,
        error: Error,
    },
}

/// Progress shared by the writer and the reader of one pipelined transfer.
/// The lock is held only inside each call, never across an await.
struct Shared<'a>(Mutex<&'a mut dyn Progress>);

impl Shared<'_> {
    fn with<T>(&self, f: impl FnOnce(&mut dyn Progress) -> T) -> T {
        let mut p = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut **p)
    }
}

/// A per-file view of the shared progress: bytes count towards the tree,
/// a file's own start and end draw nothing.
struct Within<'s, 'a>(&'s Shared<'a>);

impl Progress for Within<'_, '_> {
    fn advance(&mut self, bytes: u64) {
        self.0.with(|p| p.advance(bytes));
    }
    fn cancelled(&self) -> bool {
        self.0.with(|p| p.cancelled())
    }
}

/// The reader's record, shared back with the caller once both halves end.
#[derive(Debug, Default)]
struct Outcome {
    summary: TreeSummary,
    /// Resumed uploads refused because the kept partial was someone else's:
    /// sent again from the start afterwards.
    restart: Vec<(RelPath, PathBuf)>,
}

impl FileClient {
    /// Uploads a local folder's files and sub-folders under `remote`, as
    /// one pipelined operation.
    pub async fn put_tree(
        &mut self,
        local: &Path,
        remote: &RelPath,
        resume: bool,
        progress: &mut dyn Progress,
    ) -> Result<TreeSummary, Error> {
        let walked = walk_local(local.to_owned()).await?;
        let targets = walked
            .iter()
            .map(|l| join_under(remote, &l.rel).map_err(|e| Error::Usage(format!("{}: {e}", l.rel))))
            .collect::<Result<Vec<_>, _>>()?;
        self.mkdir(remote).await?;
        let files = walked.iter().filter(|l| l.size.is_some()).count() as u64;
        let bytes = walked.iter().filter_map(|l| l.size).sum();
        progress.tree_begin(files, bytes);

        let offsets = if resume {
            self.resume_offsets(&walked, &targets).await?
        } else {
            HashMap::new()
        };
        let plan: Vec<(Local, RelPath, u64)> = walked
            .into_iter()
            .zip(targets)
            .map(|(l, t)| {
                let offset = offsets.get(&t).copied().unwrap_or(0);
                (l, t, offset)
            })
            .collect();
        let (outgoing, items) = mpsc::channel(WINDOW);
        let reader = read_ahead(local.to_owned(), plan, outgoing);

        let shared = Shared(Mutex::new(progress));
        let first = std::mem::replace(&mut self.first_reply, false);
        let authenticated = self.authenticated;
        let (mut from_server, mut to_server) = self.conn.split();
        let (awaited_tx, awaited_rx) = mpsc::channel(WINDOW);
        let (sent, outcome) = tokio::join!(
            send_uploads(&mut to_server, items, awaited_tx, &shared),
            receive_uploads(&mut from_server, awaited_rx, &shared, first, authenticated),
        );
        drop(to_server);
        let state = from_server.into_read_state();
        self.conn.rejoin(state);
        let _ = reader.await;
        let progress = shared.0.into_inner().unwrap_or_else(PoisonError::into_inner);
        let Outcome { mut summary, restart } = outcome;
        summary.folders += 1; // `remote` itself
        if let Err(e) = sent {
            summary.interrupted.get_or_insert(e);
        }
        if summary.interrupted.is_none() {
            for (target, source) in restart {
                match self.put(&source, &target, false, &mut NoBar).await {
                    Ok(t) => {
                        progress.file_done(&t);
                        summary.files.push(t);
                    }
                    Err(e) => {
                        progress.file_failed(&target.to_string(), &e);
                        summary.failed.push((target.to_string(), e));
                    }
                }
            }
        }
        summary.not_sent = usize::try_from(files)
            .unwrap_or(usize::MAX)
            .saturating_sub(summary.files.len() + summary.failed.len());
        progress.tree_end();
        Ok(summary)
    }

    /// Asks, pipelined, how much of each file the server kept from an
    /// interrupted upload.
    async fn resume_offsets(&mut self, walked: &[Local], targets: &[RelPath]) -> Result<HashMap<RelPath, u64>, Error> {
        let asks: Vec<(RelPath, u64)> = walked
            .iter()
            .zip(targets)
            .filter_map(|(l, t)| l.size.map(|size| (t.clone(), size)))
            .collect();
        let first = std::mem::replace(&mut self.first_reply, false);
        let authenticated = self.authenticated;
        let (mut from_server, mut to_server) = self.conn.split();
        let (tx, mut rx) = mpsc::channel::<(RelPath, u64)>(WINDOW);
        let sending = async {
            // Owned here, so the reader sees the end once all are asked.
            let tx = tx;
            for (path, filesize) in asks {
                let request = Request::Resume {
                    path: path.clone(),
                    filesize,
                };
                if tx.send((path, filesize)).await.is_err() {
                    break;
                }
                to_server.write_header(&request.to_header()).await?;
            }
            Ok::<_, Error>(())
        };
        let receiving = async {
            let mut offsets = HashMap::new();
            let mut first = first;
            while let Some((path, filesize)) = rx.recv().await {
                match read_reply(
                    &mut from_server,
                    ReplyTo::Resume,
                    std::mem::take(&mut first),
                    authenticated,
                )
                .await
                {
                    Ok(Reply::ResumeAt { offset }) if offset > 0 => {
                        offsets.insert(path, offset.min(filesize));
                    }
                    // Busy or refused: that file starts over (and is
                    // reported if it is refused again).
                    Ok(_) | Err(Error::Remote(_)) => {}
                    Err(e) => {
                        rx.close();
                        return Err(e);
                    }
                }
            }
            Ok(offsets)
        };
        let (sent, offsets) = tokio::join!(sending, receiving);
        drop(to_server);
        let state = from_server.into_read_state();
        self.conn.rejoin(state);
        let offsets = offsets?;
        sent?;
        Ok(offsets)
    }

    /// Downloads a remote folder into the local folder `local`, as one
    /// pipelined operation.
    pub async fn get_tree(
        &mut self,
        remote: &RelPath,
        local: &Path,
        resume: bool,
        progress: &mut dyn Progress,
    ) -> Result<TreeSummary, Error> {
        let entries = self.ls(remote, true).await?;
        let mut folders = vec![local.to_owned()];
        let mut wanted = Vec::new();
        for entry in entries {
            // A hostile server's names get the same checks as a peer's.
            let rel = RelPath::parse(&entry.path)
                .map_err(|e| Error::Protocol(format!("server sent a bad name {:?}: {e}", entry.path)))?;
            let dest = rel.components().fold(local.to_owned(), |p, c| p.join(c));
            match entry.kind {
                EntryKind::Dir => folders.push(dest),
                EntryKind::File => {
                    let source = join_under(remote, &rel).map_err(|e| Error::Protocol(e.to_string()))?;
                    wanted.push((source, dest, entry.size));
                }
                // Pipes and devices on the server are never served.
                EntryKind::Other => {}
            }
        }
        let folder_count = folders.len();
        let file_count = wanted.len();
        let dests: Vec<PathBuf> = wanted.iter().map(|w| w.1.clone()).collect();
        let kept = prepare_local(folders, dests, resume).await?;
        let bytes = wanted.iter().map(|w| w.2).sum();
        progress.tree_begin(wanted.len() as u64, bytes);

        let shared = Shared(Mutex::new(progress));
        let first = std::mem::replace(&mut self.first_reply, false);
        let authenticated = self.authenticated;
        let (mut from_server, mut to_server) = self.conn.split();
        let (awaited_tx, awaited_rx) = mpsc::channel(WINDOW);
        let requests = wanted
            .into_iter()
            .zip(kept)
            .map(|((source, dest, _), offset)| (source, dest, offset));
        let (sent, summary) = tokio::join!(
            send_gets(&mut to_server, requests, awaited_tx),
            receive_gets(&mut from_server, awaited_rx, &shared, first, authenticated),
        );
        drop(to_server);
        let state = from_server.into_read_state();
        self.conn.rejoin(state);
        let progress = shared.0.into_inner().unwrap_or_else(PoisonError::into_inner);
        let mut summary = summary;
        summary.folders = folder_count;
        summary.not_sent = file_count.saturating_sub(summary.files.len() + summary.failed.len());
        if let Err(e) = sent {
            summary.interrupted.get_or_insert(e);
        }
        progress.tree_end();
        Ok(summary)
    }
}

/// Progress that draws nothing (a retried file inside a tree's bar).
struct NoBar;
impl Progress for NoBar {}

/// `base` joined with every component of `rel`.
fn join_under(base: &RelPath, rel: &RelPath) -> Result<RelPath, sockit_proto::path::PathError> {
    rel.components().try_fold(base.clone(), |p, c| p.join(c))
}

/// Reads the tree's small files ahead of the socket, on a thread of its
/// own, in walk order; the channel's bound is the read-ahead.
fn read_ahead(
    local: PathBuf,
    plan: Vec<(Local, RelPath, u64)>,
    outgoing: mpsc::Sender<Outgoing>,
) -> tokio::task::JoinHandle<()> {
    tokio::task::spawn_blocking(move || {
        for (entry, target, offset) in plan {
            let source = entry.rel.components().fold(local.clone(), |p, c| p.join(c));
            let item = match entry.size {
                None => Outgoing::Folder(target),
                Some(size) if size > SMALL_FILE || offset > 0 => Outgoing::Stream { target, source, offset },
                Some(_) => match read_small(&source) {
                    Ok(Some((data, xxh3))) => Outgoing::Whole {
                        target,
                        source,
                        data,
                        xxh3,
                    },
                    // It grew past one chunk since the walk: stream it.
                    Ok(None) => Outgoing::Stream { target, source, offset },
                    Err(e) => Outgoing::Unreadable {
                        target,
                        error: Error::file("reading", &source)(e),
                    },
                },
            };
            if outgoing.blocking_send(item).is_err() {
                return; // the writer stopped
            }
        }
    })
}

/// A small file's bytes and XXH3; `None` if it is no longer small.
fn read_small(source: &Path) -> std::io::Result<Option<(Vec<u8>, String)>> {
    use std::io::Read as _;
    let file = std::fs::File::open(source)?;
    let mut data = Vec::new();
    file.take(SMALL_FILE + 1).read_to_end(&mut data)?;
    if data.len() as u64 > SMALL_FILE {
        return Ok(None);
    }
    let mut hash = StreamHash::new();
    hash.update(&data);
    Ok(Some((data, hash.hex())))
}

/// Small files' requests gathered into one write: at most this many bytes
/// or [`BATCH_FILES`] requests, and only what is already read.
const BATCH_BYTES: usize = 256 * 1024;
const BATCH_FILES: usize = 16;

/// The writer of an upload: each request in full (a small file's header,
/// body and commit together, and several small files in one write when
/// they are ready), then their records for the reader. The bounded
/// `awaited` channel is the window; a batch is written before its records
/// wait for room, so the reader never waits for a request not sent.
async fn send_uploads<W: AsyncWrite + Unpin>(
    conn: &mut FramedConn<W>,
    mut items: mpsc::Receiver<Outgoing>,
    awaited: mpsc::Sender<Awaited>,
    progress: &Shared<'_>,
) -> Result<(), Error> {
    let mut batch = Batch::default();
    loop {
        let item = match items.try_recv() {
            Ok(item) => item,
            Err(mpsc::error::TryRecvError::Empty) => {
                if !batch.flush(conn, &awaited, progress).await? {
                    return Ok(()); // the reader stopped: it says why
                }
                match items.recv().await {
                    Some(item) => item,
                    None => break,
                }
            }
            Err(mpsc::error::TryRecvError::Disconnected) => break,
        };
        if progress.with(|p| p.cancelled()) {
            return Err(Error::Cancelled);
        }
        match item {
            Outgoing::Folder(path) => {
                encode_header(&Request::Mkdir { path: path.clone() }.to_header(), &mut batch.out);
                batch.records.push(Awaited::Folder(path));
            }
            Outgoing::Whole {
                target,
                source,
                data,
                xxh3,
            } => {
                let put = put_request(&target, data.len() as u64, 0, None);
                encode_header(&put.to_header(), &mut batch.out);
                batch.out.extend_from_slice(&data);
                encode_header(
                    &Request::Commit {
                        xxh3: xxh3.clone(),
                        tail_xxh3: None,
                    }
                    .to_header(),
                    &mut batch.out,
                );
                batch.bytes += data.len() as u64;
                batch.records.push(Awaited::File {
                    target,
                    source,
                    size: data.len() as u64,
                    offset: 0,
                    xxh3,
                    started: Instant::now(),
                });
            }
            Outgoing::Stream { target, source, offset } => {
                if !batch.flush(conn, &awaited, progress).await? {
                    return Ok(());
                }
                let started = Instant::now();
                let record = match stream_file(conn, &target, &source, offset, progress).await {
                    Ok((size, xxh3)) => Awaited::File {
                        target,
                        source,
                        size,
                        offset,
                        xxh3,
                        started,
                    },
                    // Nothing of it went out: report it, go on.
                    Err(StreamError::Local(error)) => Awaited::Failed { target, error },
                    Err(StreamError::Connection(e)) => return Err(e),
                };
                batch.records.push(record);
            }
            Outgoing::Unreadable { target, error } => batch.records.push(Awaited::Failed { target, error }),
        }
        let full = batch.out.len() >= BATCH_BYTES || batch.records.len() >= BATCH_FILES;
        if full && !batch.flush(conn, &awaited, progress).await? {
            return Ok(());
        }
    }
    batch.flush(conn, &awaited, progress).await?;
    Ok(())
}

/// Requests gathered for one write, and their records in order.
#[derive(Default)]
struct Batch {
    out: BytesMut,
    records: Vec<Awaited>,
    /// File bytes in `out`, for the progress.
    bytes: u64,
}

impl Batch {
    /// Writes what is gathered, then hands its records to the reader.
    /// False once the reader has stopped.
    async fn flush<W: AsyncWrite + Unpin>(
        &mut self,
        conn: &mut FramedConn<W>,
        awaited: &mpsc::Sender<Awaited>,
        progress: &Shared<'_>,
    ) -> Result<bool, Error> {
        if !self.out.is_empty() {
            conn.write_all(&self.out).await?;
            self.out.clear();
        }
        let bytes = std::mem::take(&mut self.bytes);
        if bytes > 0 {
            progress.with(|p| p.advance(bytes));
        }
        for record in self.records.drain(..) {
            if awaited.send(record).await.is_err() {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

fn put_request(target: &RelPath, filesize: u64, offset: u64, prefix_xxh3: Option<String>) -> Request {
    Request::Put(Put {
        path: target.clone(),
        filesize,
        offset,
        md5: None,
        trailer: true,
        prefix_xxh3,
    })
}

/// Why a streamed file did not go.
enum StreamError {
    /// Before its header was sent (it cannot be opened or read): the
    /// connection is fine.
    Local(Error),
    /// Mid-request: the connection cannot be used any more.
    Connection(Error),
}

/// Streams one large (or resumed) file: header, body, commit. Its size
/// and XXH3.
async fn stream_file<W: AsyncWrite + Unpin>(
    conn: &mut FramedConn<W>,
    target: &RelPath,
    source: &Path,
    offset: u64,
    progress: &Shared<'_>,
) -> Result<(u64, String), StreamError> {
    let (file, filesize) = open_local(source).await.map_err(StreamError::Local)?;
    let offset = offset.min(filesize);
    let mut reader = DiskReader::spawn(file, offset, filesize - offset);
    let prefix = if offset > 0 {
        Some(
            reader
                .prefix_hash()
                .await
                .map_err(|e| StreamError::Local(Error::file("reading", source)(e)))?,
        )
    } else {
        None
    };
    let put = put_request(target, filesize, offset, prefix);
    conn.write_header(&put.to_header())
        .await
        .map_err(StreamError::Connection)?;
    // As `FileClient::put`: a resumed body is also proven on its own.
    let mut tail = (offset > 0).then(StreamHash::new);
    while let Some(chunk) = reader.next().await {
        // A read error mid-body breaks the promised size: the connection
        // must end, as a server's would.
        let chunk = chunk.map_err(|e| StreamError::Connection(Error::file("reading", source)(e)))?;
        if let Some(tail) = tail.as_mut() {
            tail.update(&chunk);
        }
        conn.write_all(&chunk).await.map_err(StreamError::Connection)?;
        progress.with(|p| p.advance(chunk.len() as u64));
        reader.recycle(chunk);
    }
    let xxh3 = reader
        .finish()
        .await
        .map_err(|e| StreamError::Connection(Error::file("reading", source)(e)))?;
    let commit = Request::Commit {
        xxh3: xxh3.clone(),
        tail_xxh3: tail.map(|t| t.hex()),
    };
    conn.write_header(&commit.to_header())
        .await
        .map_err(StreamError::Connection)?;
    Ok((filesize, xxh3))
}

/// The reader of an upload: each reply in request order.
async fn receive_uploads<R: AsyncRead + Unpin>(
    conn: &mut FramedConn<R>,
    mut awaited: mpsc::Receiver<Awaited>,
    progress: &Shared<'_>,
    mut first: bool,
    authenticated: bool,
) -> Outcome {
    let mut outcome = Outcome::default();
    while let Some(record) = awaited.recv().await {
        let (to, target) = match &record {
            Awaited::Folder(path) => (ReplyTo::Plain, path.clone()),
            Awaited::File { target, .. } => (ReplyTo::Put, target.clone()),
            Awaited::Failed { target, .. } => (ReplyTo::Plain, target.clone()),
        };
        if let Awaited::Failed { error, .. } = record {
            record_file(Err(error), target.to_string(), progress, &mut outcome.summary);
            continue;
        }
        let reply = read_reply(conn, to, std::mem::take(&mut first), authenticated).await;
        match (record, reply) {
            (Awaited::Folder(_), Ok(_)) => outcome.summary.folders += 1,
            (
                Awaited::File {
                    size,
                    offset,
                    xxh3,
                    started,
                    ..
                },
                Ok(Reply::Stored { xxh3: theirs, .. }),
            ) if theirs == xxh3 => {
                let t = Transfer {
                    name: target.to_string(),
                    size,
                    offset,
                    xxh3,
                    elapsed: started.elapsed(),
                    verified: true,
                };
                record_file(Ok(t), target.to_string(), progress, &mut outcome.summary);
            }
            (Awaited::File { offset, source, .. }, Err(Error::Remote(r)))
                if offset > 0 && r.code == ErrorCode::ChecksumMismatch =>
            {
                // Someone else's partial of that name: start it over.
                outcome.restart.push((target, source));
            }
            (_, Ok(_)) => {
                let e = Error::Protocol("server confirmed a different checksum".into());
                record_file(Err(e), target.to_string(), progress, &mut outcome.summary);
            }
            (_, Err(e @ Error::Remote(_))) => {
                record_file(Err(e), target.to_string(), progress, &mut outcome.summary);
            }
            (record, Err(e)) => {
                // The connection broke: this file and every one behind it
                // in the window are unconfirmed.
                awaited.close();
                let mut lost = Vec::new();
                if matches!(record, Awaited::File { .. }) {
                    lost.push(target.to_string());
                }
                while let Some(rest) = awaited.recv().await {
                    match rest {
                        Awaited::Folder(_) => {}
                        Awaited::File { target, .. } => lost.push(target.to_string()),
                        Awaited::Failed { target, error } => {
                            record_file(Err(error), target.to_string(), progress, &mut outcome.summary);
                        }
                    }
                }
                unconfirmed(lost, e, progress, &mut outcome.summary);
                break;
            }
        }
    }
    outcome
}

/// Every file and folder under `root`, parents before children, with the
/// files' sizes. Symlinks are followed for files only.
async fn walk_local(root: PathBuf) -> Result<Vec<Local>, Error> {
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
                    out.push(Local {
                        rel: child.clone(),
                        size: None,
                    });
                    pending.push((item.path(), child));
                } else if let Ok(meta) = std::fs::metadata(item.path()) {
                    if meta.is_file() {
                        out.push(Local {
                            rel: child,
                            size: Some(meta.len()),
                        });
                    }
                }
            }
        }
        Ok(out)
    })
    .await
    .map_err(|e| Error::Protocol(e.to_string()))?
}

/// Creates the download's folders, and with `resume` finds how much of
/// each file a kept partial holds (0: none), in one trip to the blocking
/// pool.
async fn prepare_local(folders: Vec<PathBuf>, dests: Vec<PathBuf>, resume: bool) -> Result<Vec<u64>, Error> {
    tokio::task::spawn_blocking(move || {
        for folder in &folders {
            std::fs::create_dir_all(folder).map_err(Error::file("cannot create", folder))?;
        }
        Ok(dests
            .iter()
            .map(|dest| {
                if !resume {
                    return 0;
                }
                crate::partial::open_kept(&partial_path(dest))
                    .ok()
                    .flatten()
                    .map_or(0, |(_, len)| len)
            })
            .collect())
    })
    .await
    .map_err(|e| Error::Protocol(e.to_string()))?
}

/// A download in the window.
#[derive(Debug)]
struct Wanted {
    source: RelPath,
    dest: PathBuf,
    offset: u64,
    started: Instant,
}

/// The writer of a download: one `get` per file, its record first. The
/// headers of a window go out together, in one write.
async fn send_gets<W: AsyncWrite + Unpin>(
    conn: &mut FramedConn<W>,
    requests: impl Iterator<Item = (RelPath, PathBuf, u64)>,
    awaited: mpsc::Sender<Wanted>,
) -> Result<(), Error> {
    let mut out = BytesMut::new();
    for (source, dest, offset) in requests {
        let request = Request::Get {
            path: source.clone(),
            offset,
        };
        let record = Wanted {
            source,
            dest,
            offset,
            started: Instant::now(),
        };
        match awaited.try_send(record) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(record)) => {
                // The window is full: send what is gathered, then wait.
                if !out.is_empty() {
                    conn.write_all(&out).await?;
                    out.clear();
                }
                if awaited.send(record).await.is_err() {
                    return Ok(());
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return Ok(()), // the reader says why
        }
        encode_header(&request.to_header(), &mut out);
    }
    if !out.is_empty() {
        conn.write_all(&out).await?;
    }
    Ok(())
}

/// A small download read whole, waiting to be checked and written.
#[derive(Debug)]
struct Landing {
    name: String,
    dest: PathBuf,
    data: Vec<u8>,
    /// The server's XXH3 of it.
    xxh3: String,
    started: Instant,
}

impl Landing {
    fn land(self) -> Result<Transfer, Error> {
        let mut hash = StreamHash::new();
        hash.update(&self.data);
        let ours = hash.hex();
        if ours != self.xxh3 {
            return Err(Error::ChecksumMismatch {
                name: self.name,
                expected: self.xxh3,
                actual: ours,
            });
        }
        land_whole(&self.dest, &self.data)?;
        Ok(Transfer {
            name: self.name,
            size: self.data.len() as u64,
            offset: 0,
            xxh3: ours,
            elapsed: self.started.elapsed(),
            verified: true,
        })
    }
}

/// Checks and writes small downloads on one blocking thread for the whole
/// tree, behind the socket by at most a window. Results come back on a
/// channel the reader drains as it goes: no wake-up per file.
struct Lander {
    jobs: mpsc::Sender<Landing>,
    results: std::sync::mpsc::Receiver<(String, Result<Transfer, Error>)>,
    thread: tokio::task::JoinHandle<()>,
}

impl Lander {
    fn start() -> Self {
        let (jobs, mut rx) = mpsc::channel::<Landing>(WINDOW);
        let (done, results) = std::sync::mpsc::channel();
        let thread = tokio::task::spawn_blocking(move || {
            while let Some(job) = rx.blocking_recv() {
                let name = job.name.clone();
                if done.send((name, job.land())).is_err() {
                    return;
                }
            }
        });
        Self { jobs, results, thread }
    }

    /// Reports what has landed so far.
    fn drain(&self, progress: &Shared<'_>, summary: &mut TreeSummary) {
        while let Ok((name, result)) = self.results.try_recv() {
            record_file(result, name, progress, summary);
        }
    }

    /// Waits for every write, and reports them.
    async fn finish(self, progress: &Shared<'_>, summary: &mut TreeSummary) {
        drop(self.jobs);
        let _ = self.thread.await;
        while let Ok((name, result)) = self.results.try_recv() {
            record_file(result, name, progress, summary);
        }
    }
}

/// The reader of a download: each file's reply, body and trailer in
/// request order. Small files are checked and written by the [`Lander`];
/// large ones stream as single gets do.
async fn receive_gets<R: AsyncRead + Unpin>(
    conn: &mut FramedConn<R>,
    mut awaited: mpsc::Receiver<Wanted>,
    progress: &Shared<'_>,
    mut first: bool,
    authenticated: bool,
) -> TreeSummary {
    let mut summary = TreeSummary::default();
    let lander = Lander::start();
    while let Some(w) = awaited.recv().await {
        let name = w.source.to_string();
        let got = if w.offset > 0 {
            receive_large(conn, &w, progress, std::mem::take(&mut first), authenticated).await
        } else {
            receive_small_or_large(conn, &w, progress, std::mem::take(&mut first), authenticated).await
        };
        match got {
            Ok(Received::Done(t)) => record_file(Ok(t), name, progress, &mut summary),
            Ok(Received::Landing(job)) => {
                if lander.jobs.send(job).await.is_err() {
                    let e = Error::Protocol("the download's writer thread stopped".into());
                    record_file(Err(e), name, progress, &mut summary);
                }
            }
            Err(e @ (Error::Remote(_) | Error::ChecksumMismatch { .. } | Error::File { .. })) => {
                record_file(Err(e), name, progress, &mut summary);
            }
            Err(e) => {
                awaited.close();
                let mut lost = vec![name];
                while let Some(rest) = awaited.recv().await {
                    lost.push(rest.source.to_string());
                }
                unconfirmed(lost, e, progress, &mut summary);
                break;
            }
        }
        lander.drain(progress, &mut summary);
    }
    lander.finish(progress, &mut summary).await;
    summary
}

/// The connection broke with `cause`: each of `names` was sent but never
/// confirmed.
fn unconfirmed(names: Vec<String>, cause: Error, progress: &Shared<'_>, summary: &mut TreeSummary) {
    for name in names {
        let why = Error::Unconfirmed {
            cause: cause.to_string(),
        };
        record_file(Err(why), name, progress, summary);
    }
    summary.interrupted = Some(cause);
}

/// Reports one file's outcome and adds it to the summary.
fn record_file(result: Result<Transfer, Error>, name: String, progress: &Shared<'_>, summary: &mut TreeSummary) {
    match result {
        Ok(t) => {
            progress.with(|p| p.file_done(&t));
            summary.files.push(t);
        }
        Err(e) => {
            progress.with(|p| p.file_failed(&name, &e));
            summary.failed.push((name, e));
        }
    }
}

enum Received {
    Done(Transfer),
    Landing(Landing),
}

/// A fresh download: a small body is read whole for the [`Lander`]; a
/// large one streams.
async fn receive_small_or_large<R: AsyncRead + Unpin>(
    conn: &mut FramedConn<R>,
    w: &Wanted,
    progress: &Shared<'_>,
    first: bool,
    authenticated: bool,
) -> Result<Received, Error> {
    let reply = read_reply(conn, ReplyTo::Get, first, authenticated).await?;
    let Reply::Sending { filesize, offset: 0 } = reply else {
        return Err(Error::Protocol("expected a download to start at 0".into()));
    };
    if filesize > SMALL_FILE {
        return stream_download(conn, w, filesize, progress, authenticated).await;
    }
    let data = conn.read_body(filesize, SMALL_FILE).await?;
    progress.with(|p| p.advance(filesize));
    let Reply::Sent { xxh3 } = read_reply(conn, ReplyTo::GetTrailer, false, authenticated).await? else {
        return Err(Error::Protocol("expected the download's checksum".into()));
    };
    Ok(Received::Landing(Landing {
        name: w.source.to_string(),
        dest: w.dest.clone(),
        data,
        xxh3,
        started: w.started,
    }))
}

/// Writes a verified file through a fresh partial beside it, then moves
/// it onto its name: never a partial file under the final name.
fn land_whole(dest: &Path, data: &[u8]) -> Result<(), Error> {
    use std::io::Write as _;
    let partial = partial_path(dest);
    let mut file = crate::partial::create_fresh(&partial).map_err(Error::file("cannot create", &partial))?;
    file.write_all(data).map_err(Error::file("writing", &partial))?;
    drop(file);
    std::fs::rename(&partial, dest).map_err(Error::file("cannot move into place", dest))
}

/// A large download whose `Sending` reply was already read: the body and
/// trailer through the single-get path (a partial and a writer thread).
async fn stream_download<R: AsyncRead + Unpin>(
    conn: &mut FramedConn<R>,
    w: &Wanted,
    filesize: u64,
    progress: &Shared<'_>,
    authenticated: bool,
) -> Result<Received, Error> {
    let download = Download {
        remote: &w.source,
        local: &w.dest,
        kept: None,
        started: w.started,
    };
    let mut within = Within(progress);
    receive_body(conn, download, filesize, 0, &mut within, authenticated)
        .await
        .map(Received::Done)
}

/// A resumed download: its kept partial continues, through the
/// single-get path.
async fn receive_large<R: AsyncRead + Unpin>(
    conn: &mut FramedConn<R>,
    w: &Wanted,
    progress: &Shared<'_>,
    first: bool,
    authenticated: bool,
) -> Result<Received, Error> {
    let kept = open_kept_partial(&partial_path(&w.dest)).await?;
    if kept.as_ref().map_or(0, |k| k.1) != w.offset {
        return Err(Error::Protocol("the kept partial changed during the download".into()));
    }
    let download = Download {
        remote: &w.source,
        local: &w.dest,
        kept,
        started: w.started,
    };
    let mut within = Within(progress);
    receive_download(conn, download, &mut within, first, authenticated)
        .await
        .map(Received::Done)
}
