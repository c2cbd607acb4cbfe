//! A folder as one `.zip`, streamed as it is made: never built in memory
//! or on disk first, so a folder of any size costs a few buffers.
//!
//! A thread of its own walks the folder through the Sandbox (a listing of
//! open folders, each file opened `O_NOFOLLOW | O_NONBLOCK` and typed on
//! its handle, so a planted pipe or link is skipped, never waited on), or
//! on an object store through the runtime (its listing, then each object
//! in ranges), and writes the archive into a bounded channel that the
//! response body drains: a client that stops reading stops the thread.
//! Entries are
//! stored, not compressed: most of what people share is compressed
//! already, and two shared cores are better spent moving bytes.

use std::io::{self, Read as _, Write};
use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use chrono::{Datelike as _, Timelike as _};
use tokio::sync::mpsc;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use sockit_proto::files::{Entry, EntryKind};
use sockit_proto::path::RelPath;

use crate::files::listing::{Listing, ListingLimits};
use crate::files::object::ObjectRoot;
use crate::sandbox::Tree;

/// The folder an archive is made of.
pub enum Folder {
    Local(Arc<Tree>),
    /// Read through the runtime, from the archive's own thread.
    Object(Arc<ObjectRoot>, tokio::runtime::Handle),
}

/// Bytes gathered before a piece of the archive is handed to the body.
const PIECE: usize = 256 * 1024;
/// Pieces in flight between the thread and the socket (1 MiB).
const DEPTH: usize = 4;

/// The archive of `base` as a response body; `top` is the folder name its
/// entries sit under (empty for the root).
pub fn zip_body(
    folder: Folder,
    base: RelPath,
    top: String,
    limits: ListingLimits,
    shown: crate::stats::Transfer,
) -> Body {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(DEPTH);
    let errors = tx.clone();
    let spawned = std::thread::Builder::new().name("sockit-zip".into()).spawn(move || {
        let out = Pieces {
            tx,
            buf: Vec::with_capacity(PIECE),
            shown,
        };
        if let Err(e) = write_zip(&folder, &base, &top, limits, out) {
            // The body ends with an error: the client sees a cut response,
            // never a short archive that looks whole.
            tracing::info!(folder = %base, error = %e, "zip download ended early");
            let _ = errors.blocking_send(Err(e));
        }
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start a zip thread");
    }
    let pieces = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|piece| (piece, rx)) });
    Body::from_stream(pieces)
}

fn write_zip(folder: &Folder, base: &RelPath, top: &str, limits: ListingLimits, out: Pieces) -> io::Result<()> {
    let mut zip = ZipWriter::new_stream(out);
    let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    let name_of = |path: &str| {
        if top.is_empty() {
            path.to_owned()
        } else {
            format!("{top}/{path}")
        }
    };
    if !top.is_empty() {
        zip.add_directory(format!("{top}/"), stored).map_err(io::Error::other)?;
    }
    let mut add = |entry: Entry| -> io::Result<()> {
        let options = stored.last_modified_time(zip_time(entry.mtime));
        match entry.kind {
            EntryKind::Dir => {
                zip.add_directory(format!("{}/", name_of(&entry.path)), options)
                    .map_err(io::Error::other)?;
            }
            EntryKind::File => {
                let full = if base.is_root() {
                    entry.path.clone()
                } else {
                    format!("{base}/{}", entry.path)
                };
                let Ok(path) = RelPath::parse(&full) else {
                    return Ok(());
                };
                // Gone or swapped for something else since the listing:
                // left out, as a pipe or device would be.
                let Some((file, size)) = folder.open(&path) else {
                    return Ok(());
                };
                zip.start_file(name_of(&entry.path), options.large_file(size >= u64::from(u32::MAX)))
                    .map_err(io::Error::other)?;
                let copied = io::copy(&mut file.take(size), &mut zip)?;
                if copied != size {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while zipped"));
                }
            }
            EntryKind::Other => {}
        }
        Ok(())
    };
    match folder {
        Folder::Local(tree) => {
            let mut listing = Listing::open(tree, base, true, limits).map_err(io::Error::other)?;
            loop {
                let (page, done) = listing.next_page(tree).map_err(io::Error::other)?;
                let entries: Vec<Entry> = serde_json::from_slice(&page).map_err(io::Error::other)?;
                for entry in entries {
                    add(entry)?;
                }
                if done {
                    break;
                }
            }
        }
        Folder::Object(root, rt) => {
            let entries = rt
                .block_on(root.list(base, true, limits))
                .map_err(|r| io::Error::other(r.message))?;
            for entry in entries {
                add(entry)?;
            }
        }
    }
    let mut out = zip.finish().map_err(io::Error::other)?.into_inner();
    out.flush()
}

impl Folder {
    /// A file's bytes and size; `None` when it is not a file (any more).
    fn open(&self, path: &RelPath) -> Option<(Box<dyn io::Read + '_>, u64)> {
        match self {
            Self::Local(tree) => {
                let (file, size) = tree.open_file(path).ok()?;
                Some((Box::new(file), size))
            }
            Self::Object(root, rt) => {
                let reader = rt.block_on(root.open_read(path)).ok()?;
                let size = reader.size;
                let pieces = reader.bytes(0..size);
                Some((
                    Box::new(ObjectBytes {
                        rt,
                        pieces,
                        piece: Bytes::new(),
                    }),
                    size,
                ))
            }
        }
    }
}

/// An object's bytes as a blocking reader, for the archive's thread.
struct ObjectBytes<'a> {
    rt: &'a tokio::runtime::Handle,
    pieces: futures_util::stream::BoxStream<'static, Result<crate::files::object::Piece, crate::files::Refusal>>,
    piece: Bytes,
}

impl io::Read for ObjectBytes<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use futures_util::StreamExt as _;
        if self.piece.is_empty() {
            match self.rt.block_on(self.pieces.next()) {
                None => return Ok(0),
                Some(Ok(p)) => self.piece = p.bytes,
                Some(Err(r)) => return Err(io::Error::other(r.message)),
            }
        }
        let n = buf.len().min(self.piece.len());
        let taken = self.piece.split_to(n);
        if let Some(to) = buf.get_mut(..n) {
            to.copy_from_slice(&taken);
        }
        Ok(n)
    }
}

fn zip_time(mtime: i64) -> DateTime {
    chrono::DateTime::from_timestamp(mtime, 0)
        .and_then(|t| {
            let (y, mo, d) = (u16::try_from(t.year()).ok()?, t.month(), t.day());
            DateTime::from_date_and_time(y, mo as u8, d as u8, t.hour() as u8, t.minute() as u8, t.second() as u8).ok()
        })
        .unwrap_or_default()
}

/// The archive's bytes, handed over in pieces through the channel.
struct Pieces {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
    shown: crate::stats::Transfer,
}

impl Pieces {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE)));
        self.shown.advance(piece.len());
        self.tx
            .blocking_send(Ok(piece))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client stopped reading"))
    }
}

impl Write for Pieces {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= PIECE {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}
