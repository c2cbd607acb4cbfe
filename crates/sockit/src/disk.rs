//! File I/O for transfers: one thread per transfer that reads (or writes)
//! and hashes, joined to the socket side by a bounded channel.
//!
//! Why not `tokio::fs`: it sends every read and write to the blocking pool
//! and copies through a buffer of its own, so a 1 GiB stream pays thousands
//! of hand-offs on its critical path. Here disk, hashing and socket overlap
//! on separate cores, and read buffers are recycled rather than reallocated
//! (fresh buffers cost page faults that outweigh the copy).
//!
//! Why a thread of its own rather than the blocking pool: a transfer's
//! thread lives as long as its peer keeps the transfer going (a slow reader
//! for minutes). On the shared pool, enough such peers would leave no
//! thread for the short filesystem operations every request needs; those
//! run through the sandbox's gate, and transfers never compete with them.
//!
//! This module owns no protocol: it moves bytes between a file and a
//! channel, and reports the hash of everything that passed.

use std::fs::File;
use std::io::{self, Read as _, Seek as _, SeekFrom, Write as _};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use sockit_proto::checksum::{Md5Hash, StreamHash};

use crate::conn::READ_CHUNK;

/// Chunks in flight per transfer: enough to keep disk and socket busy at
/// once, and bounded so a slow side stalls the other instead of buffering
/// (4 × 256 KiB per transfer).
pub const PIPE_DEPTH: usize = 4;

/// The hashes of every byte a transfer moved, prefix included.
#[derive(Debug, Clone)]
pub struct Hashes {
    pub xxh3: String,
    pub md5: Option<String>,
    /// The XXH3 of the prefix alone (a resumed transfer's kept bytes).
    pub prefix_xxh3: String,
}

/// Runs `work` on a thread of its own; its result arrives on the receiver.
fn spawn_thread<T: Send + 'static>(name: &str, work: impl FnOnce() -> T + Send + 'static) -> oneshot::Receiver<T> {
    let (tx, rx) = oneshot::channel();
    let spawned = std::thread::Builder::new().name(name.to_owned()).spawn(move || {
        let _ = tx.send(work());
    });
    if let Err(e) = spawned {
        // No thread (out of memory or a thread limit): the receiver sees
        // the sender dropped, which callers report as an I/O error.
        tracing::warn!(error = %e, "cannot start a transfer thread");
    }
    rx
}

fn lost_thread(_: oneshot::error::RecvError) -> io::Error {
    io::Error::other("the transfer thread could not run")
}

/// Reads a file on its own thread: hashes the first `offset` bytes, then
/// hands out the next `len` bytes in chunks, hashing those too.
#[derive(Debug)]
pub struct DiskReader {
    chunks: mpsc::Receiver<io::Result<Vec<u8>>>,
    spare: mpsc::Sender<Vec<u8>>,
    prefix: Option<oneshot::Receiver<String>>,
    task: oneshot::Receiver<io::Result<String>>,
}

impl DiskReader {
    pub fn spawn(file: File, offset: u64, len: u64) -> Self {
        Self::start(file, offset, len, true)
    }

    /// Hands out `len` bytes from `offset` without hashing what comes
    /// before (an HTTP range: nothing to prove, and a range near the end
    /// of a big file must not read all of it first). The hash covers only
    /// the bytes handed out.
    pub fn range(file: File, offset: u64, len: u64) -> Self {
        Self::start(file, offset, len, false)
    }

    fn start(mut file: File, offset: u64, len: u64, hash_before: bool) -> Self {
        let (tx, chunks) = mpsc::channel(PIPE_DEPTH);
        let (spare, mut spare_rx) = mpsc::channel::<Vec<u8>>(PIPE_DEPTH + 1);
        let (prefix_tx, prefix) = oneshot::channel();
        let task = spawn_thread("sockit-read", move || {
            let mut hash = StreamHash::new();
            if hash_before {
                file.seek(SeekFrom::Start(0))?;
                hash_prefix(&mut file, offset, &mut hash, None)?;
            } else {
                file.seek(SeekFrom::Start(offset))?;
            }
            let _ = prefix_tx.send(hash.hex());
            let mut remaining = len;
            while remaining > 0 {
                let mut buf = spare_rx.try_recv().unwrap_or_default();
                let want = usize::try_from(remaining).map_or(READ_CHUNK, |r| r.min(READ_CHUNK));
                buf.resize(want, 0);
                if let Err(e) = file.read_exact(&mut buf) {
                    // The file shrank: the peer must learn the body is short.
                    let _ = tx.blocking_send(Err(io::Error::new(e.kind(), "file shrank while being sent")));
                    return Err(e);
                }
                hash.update(&buf);
                remaining -= want as u64;
                if tx.blocking_send(Ok(buf)).is_err() {
                    break; // the connection went away
                }
            }
            Ok(hash.hex())
        });
        Self {
            chunks,
            spare,
            prefix: Some(prefix),
            task,
        }
    }

    /// The XXH3 of the first `offset` bytes, once they are hashed: what a
    /// resumed upload offers as proof that it continues the same file.
    pub async fn prefix_hash(&mut self) -> io::Result<String> {
        match self.prefix.take() {
            Some(rx) => match rx.await {
                Ok(h) => Ok(h),
                Err(_) => Err(self.chunks.recv().await.and_then(Result::err).unwrap_or_else(|| {
                    io::Error::new(io::ErrorKind::UnexpectedEof, "file shorter than the resume offset")
                })),
            },
            None => Err(io::Error::other("prefix hash already taken")),
        }
    }

    /// The next chunk; `None` once all `len` bytes were handed out.
    pub async fn next(&mut self) -> Option<io::Result<Vec<u8>>> {
        self.chunks.recv().await
    }

    /// Gives a sent chunk's buffer back for the next read.
    pub fn recycle(&self, buf: Vec<u8>) {
        let _ = self.spare.try_send(buf);
    }

    /// The hash of the prefix and every byte handed out.
    pub async fn finish(self) -> io::Result<String> {
        drop(self.chunks);
        self.task.await.map_err(lost_thread)?
    }
}

/// Writes a file on its own thread. XXH3 is computed on the caller's side
/// as chunks pass (it runs at memory speed, and there it overlaps the disk
/// write instead of lengthening it); the slower MD5, needed only for a
/// classic header's `md5`, runs on the writer thread.
#[derive(Debug)]
pub struct DiskWriter {
    chunks: mpsc::Sender<Vec<Bytes>>,
    hash: StreamHash,
    prefix_xxh3: String,
    task: oneshot::Receiver<io::Result<Option<String>>>,
}

/// How a [`DiskWriter`] treats its file.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteOptions {
    /// Compute MD5 too (a classic header's `md5`).
    pub md5: bool,
    /// Flush the data to disk before reporting it written.
    pub fsync: bool,
}

impl DiskWriter {
    /// Hashes the `prefix` bytes already in `file` (a resumed transfer),
    /// then starts the thread that appends every chunk it is given.
    pub async fn open(file: File, prefix: u64, options: WriteOptions) -> io::Result<Self> {
        let ready = spawn_thread("sockit-hash", move || {
            let mut file = file;
            let mut hash = StreamHash::new();
            let mut md5 = options.md5.then(Md5Hash::new);
            file.seek(SeekFrom::Start(0))?;
            hash_prefix(&mut file, prefix, &mut hash, md5.as_mut())?;
            file.seek(SeekFrom::Start(prefix))?;
            Ok::<_, io::Error>((file, hash, md5))
        });
        let (mut file, hash, mut md5) = ready.await.map_err(lost_thread)??;
        let prefix_xxh3 = hash.hex();
        let (chunks, mut rx) = mpsc::channel::<Vec<Bytes>>(PIPE_DEPTH);
        let task = spawn_thread("sockit-write", move || {
            while let Some(batch) = rx.blocking_recv() {
                if let Some(m) = md5.as_mut() {
                    for chunk in &batch {
                        m.update(chunk);
                    }
                }
                write_all_vectored(&mut file, batch)?;
            }
            file.flush()?;
            if options.fsync {
                file.sync_all()?;
            }
            Ok(md5.map(Md5Hash::hex))
        });
        Ok(Self {
            chunks,
            hash,
            prefix_xxh3,
            task,
        })
    }

    /// The XXH3 of the bytes that were already in the file.
    pub fn prefix_hash(&self) -> &str {
        &self.prefix_xxh3
    }

    /// Hashes and queues a chunk. False once the writer has failed (its
    /// error comes from [`finish`](Self::finish)); the caller should stop
    /// writing but may keep reading the peer.
    pub async fn write(&mut self, chunk: Bytes) -> bool {
        self.write_batch(vec![chunk]).await
    }

    /// [`Self::write`] for several chunks at once: one hand-off to the
    /// writer thread and one vectored write for all of them. A body that
    /// arrives in small pieces (HTTP frames) is gathered into batches, so
    /// the thread hand-offs and write calls per byte stay as few as for
    /// the framed protocol's large chunks.
    pub async fn write_batch(&mut self, batch: Vec<Bytes>) -> bool {
        for chunk in &batch {
            self.hash.update(chunk);
        }
        self.chunks.send(batch).await.is_ok()
    }

    /// Waits for every queued chunk to be written.
    pub async fn finish(self) -> io::Result<Hashes> {
        drop(self.chunks);
        let md5 = self.task.await.map_err(lost_thread)??;
        Ok(Hashes {
            xxh3: self.hash.hex(),
            md5,
            prefix_xxh3: self.prefix_xxh3,
        })
    }
}

/// Writes every chunk, in as few `writev` calls as the kernel allows.
fn write_all_vectored(file: &mut File, batch: Vec<Bytes>) -> io::Result<()> {
    let mut pending: std::collections::VecDeque<Bytes> = batch.into_iter().filter(|c| !c.is_empty()).collect();
    while !pending.is_empty() {
        let slices: Vec<io::IoSlice<'_>> = pending.iter().map(|c| io::IoSlice::new(c)).collect();
        let written = file.write_vectored(&slices)?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        consume(&mut pending, written);
    }
    Ok(())
}

/// Drops the first `written` bytes of a queue of chunks after a vectored
/// write took them (whole chunks, then part of the next).
pub(crate) fn consume(chunks: &mut std::collections::VecDeque<Bytes>, mut written: usize) {
    while written > 0 {
        let Some(front) = chunks.front_mut() else { break };
        if written >= front.len() {
            written -= front.len();
            chunks.pop_front();
        } else {
            bytes::Buf::advance(front, written);
            written = 0;
        }
    }
}

fn hash_prefix(file: &mut File, len: u64, hash: &mut StreamHash, mut md5: Option<&mut Md5Hash>) -> io::Result<()> {
    let mut buf = vec![0u8; READ_CHUNK];
    let mut remaining = len;
    while remaining > 0 {
        let want = usize::try_from(remaining).map_or(buf.len(), |r| r.min(buf.len()));
        let chunk = buf.get_mut(..want).unwrap_or_default();
        file.read_exact(chunk)?;
        hash.update(chunk);
        if let Some(m) = md5.as_deref_mut() {
            m.update(chunk);
        }
        remaining -= want as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex_of(data: &[u8]) -> String {
        let mut h = StreamHash::new();
        h.update(data);
        h.hex()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn reader_hashes_the_prefix_and_hands_out_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..700_000u32).map(|i| (i % 241) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let mut r = DiskReader::spawn(File::open(&path).unwrap(), 100_000, 600_000);
        assert_eq!(r.prefix_hash().await.unwrap(), hex_of(&data[..100_000]));
        let mut got = Vec::new();
        while let Some(chunk) = r.next().await {
            let chunk = chunk.unwrap();
            got.extend_from_slice(&chunk);
            r.recycle(chunk);
        }
        assert_eq!(got, data[100_000..]);
        assert_eq!(r.finish().await.unwrap(), hex_of(&data));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn reader_reports_a_file_that_shrank() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, [1u8; 1000]).unwrap();
        let mut r = DiskReader::spawn(File::open(&path).unwrap(), 0, 5000);
        assert!(r.next().await.unwrap().is_err());
        assert!(r.finish().await.is_err());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn writer_appends_after_the_prefix_and_hashes_everything() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"hello ").unwrap();
        let file = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
        let mut w = DiskWriter::open(file, 6, WriteOptions { md5: true, fsync: true })
            .await
            .unwrap();
        assert_eq!(w.prefix_hash(), hex_of(b"hello "));
        assert!(w.write(Bytes::from_static(b"wor")).await);
        assert!(w.write(Bytes::from_static(b"ld")).await);
        let hashes = w.finish().await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello world");
        assert_eq!(hashes.xxh3, hex_of(b"hello world"));
        assert_eq!(hashes.md5.as_deref(), Some("5eb63bbbe01eeed093cb22bb8f5acdc3"));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_failing_writer_says_so_and_keeps_the_error() {
        let file = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
        let mut w = DiskWriter::open(file, 0, WriteOptions::default()).await.unwrap();
        let mut accepted = 0;
        for _ in 0..(PIPE_DEPTH * 4) {
            if !w.write(Bytes::from(vec![0u8; 4096])).await {
                break;
            }
            accepted += 1;
        }
        assert!(accepted < PIPE_DEPTH * 4, "writer must stop accepting after a failure");
        let err = w.finish().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
    }
}
