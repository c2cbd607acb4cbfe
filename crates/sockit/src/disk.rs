//! File I/O for transfers: one blocking thread per transfer that reads (or
//! writes) and hashes, joined to the socket side by a bounded channel.
//!
//! Why not `tokio::fs`: it sends every read and write to the blocking pool
//! and copies through a buffer of its own, so a 1 GiB stream pays thousands
//! of hand-offs on its critical path. Here disk, hashing and socket overlap
//! on separate cores, and read buffers are recycled rather than reallocated
//! (fresh buffers cost page faults that outweigh the copy).
//!
//! This module owns no protocol: it moves bytes between a file and a
//! channel, and reports the hash of everything that passed.

use std::fs::File;
use std::io::{self, Read as _, Seek as _, SeekFrom, Write as _};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

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
}

/// Reads a file on its own thread: hashes the first `offset` bytes, then
/// hands out the next `len` bytes in chunks, hashing those too.
#[derive(Debug)]
pub struct DiskReader {
    chunks: mpsc::Receiver<io::Result<Vec<u8>>>,
    spare: mpsc::Sender<Vec<u8>>,
    task: JoinHandle<io::Result<String>>,
}

impl DiskReader {
    pub fn spawn(mut file: File, offset: u64, len: u64) -> Self {
        let (tx, chunks) = mpsc::channel(PIPE_DEPTH);
        let (spare, mut spare_rx) = mpsc::channel::<Vec<u8>>(PIPE_DEPTH + 1);
        let task = tokio::task::spawn_blocking(move || {
            let mut hash = StreamHash::new();
            file.seek(SeekFrom::Start(0))?;
            hash_prefix(&mut file, offset, &mut hash, None)?;
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
        Self { chunks, spare, task }
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
        self.task.await.map_err(io::Error::other)?
    }
}

/// Writes a file on its own thread. XXH3 is computed on the caller's side
/// as chunks pass (it runs at memory speed, and there it overlaps the disk
/// write instead of lengthening it); the slower MD5, needed only for a
/// classic header's `md5`, runs on the writer thread.
#[derive(Debug)]
pub struct DiskWriter {
    chunks: mpsc::Sender<Bytes>,
    hash: StreamHash,
    task: JoinHandle<io::Result<Option<String>>>,
}

impl DiskWriter {
    /// Hashes the `prefix` bytes already in `file` (a resumed transfer),
    /// then starts the thread that appends every chunk it is given.
    pub async fn open(file: File, prefix: u64, md5: bool) -> io::Result<Self> {
        let (mut file, hash, mut md5) = tokio::task::spawn_blocking(move || {
            let mut file = file;
            let mut hash = StreamHash::new();
            let mut md5 = md5.then(Md5Hash::new);
            file.seek(SeekFrom::Start(0))?;
            hash_prefix(&mut file, prefix, &mut hash, md5.as_mut())?;
            file.seek(SeekFrom::Start(prefix))?;
            Ok::<_, io::Error>((file, hash, md5))
        })
        .await
        .map_err(io::Error::other)??;
        let (chunks, mut rx) = mpsc::channel::<Bytes>(PIPE_DEPTH);
        let task = tokio::task::spawn_blocking(move || {
            while let Some(chunk) = rx.blocking_recv() {
                if let Some(m) = md5.as_mut() {
                    m.update(&chunk);
                }
                file.write_all(&chunk)?;
            }
            file.flush()?;
            Ok(md5.map(Md5Hash::hex))
        });
        Ok(Self { chunks, hash, task })
    }

    /// Hashes and queues a chunk. False once the writer has failed (its
    /// error comes from [`finish`](Self::finish)); the caller should stop
    /// writing but may keep reading the peer.
    pub async fn write(&mut self, chunk: Bytes) -> bool {
        self.hash.update(&chunk);
        self.chunks.send(chunk).await.is_ok()
    }

    /// Waits for every queued chunk to be written.
    pub async fn finish(self) -> io::Result<Hashes> {
        drop(self.chunks);
        let md5 = self.task.await.map_err(io::Error::other)??;
        Ok(Hashes {
            xxh3: self.hash.hex(),
            md5,
        })
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
        let mut w = DiskWriter::open(file, 6, true).await.unwrap();
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
        let mut w = DiskWriter::open(file, 0, false).await.unwrap();
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
