//! Where uploads live until they are complete and verified.
//!
//! An upload is written to `ROOT/.sockit/partial/<id>.part` and renamed onto
//! its final name only after its checksum matched, so a file under its final
//! name is always whole. Beside it, `<id>.meta` records which path and size
//! the partial belongs to, so a later `resume` of the same file can continue
//! it. Only one upload per path runs at a time (a claim).

use std::collections::HashSet;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::fs::File;

use sockit_proto::checksum::StreamHash;
use sockit_proto::path::RelPath;

#[derive(Debug)]
pub struct Staging {
    dir: PathBuf,
    claims: Arc<Mutex<HashSet<RelPath>>>,
}

/// What a partial belongs to, stored beside it.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct PartialMeta {
    path: String,
    filesize: u64,
}

/// Exclusive right to upload one path; released on drop.
#[derive(Debug)]
pub struct Claim {
    claims: Arc<Mutex<HashSet<RelPath>>>,
    path: RelPath,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.claims
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.path);
    }
}

impl Staging {
    pub fn new(dir: PathBuf) -> io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            dir,
            claims: Arc::default(),
        })
    }

    /// Takes the upload claim on `path`, or `None` if an upload of it runs.
    pub fn claim(&self, path: &RelPath) -> Option<Claim> {
        let mut claims = self.claims.lock().unwrap_or_else(PoisonError::into_inner);
        claims.insert(path.clone()).then(|| Claim {
            claims: self.claims.clone(),
            path: path.clone(),
        })
    }

    pub fn part_path(&self, path: &RelPath) -> PathBuf {
        self.dir.join(format!("{}.part", id_of(path)))
    }

    fn meta_path(&self, path: &RelPath) -> PathBuf {
        self.dir.join(format!("{}.meta", id_of(path)))
    }

    /// Bytes kept from an interrupted upload of `path` with this total size;
    /// 0 (and the stale partial removed) when there is none that fits.
    pub async fn kept_len(&self, path: &RelPath, filesize: u64) -> u64 {
        let meta = tokio::fs::read(self.meta_path(path)).await.ok();
        let wanted = PartialMeta {
            path: path.to_string(),
            filesize,
        };
        let fits = meta
            .and_then(|m| serde_json::from_slice::<PartialMeta>(&m).ok())
            .is_some_and(|m| m == wanted);
        let len = tokio::fs::metadata(self.part_path(path)).await.map(|m| m.len());
        match (fits, len) {
            (true, Ok(len)) if len <= filesize => len,
            _ => {
                self.discard(path).await;
                0
            }
        }
    }

    /// Starts a fresh partial for `path`.
    pub async fn begin(&self, path: &RelPath, filesize: u64) -> io::Result<File> {
        let meta = PartialMeta {
            path: path.to_string(),
            filesize,
        };
        let meta = serde_json::to_vec(&meta).map_err(io::Error::other)?;
        tokio::fs::write(self.meta_path(path), meta).await?;
        File::create(self.part_path(path)).await
    }

    /// Reopens a kept partial to append at `offset`, which must be its length.
    pub async fn reopen(&self, path: &RelPath, filesize: u64, offset: u64) -> Option<File> {
        if self.kept_len(path, filesize).await != offset {
            return None;
        }
        tokio::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .open(self.part_path(path))
            .await
            .ok()
    }

    /// Moves a complete, verified partial onto its final name.
    pub async fn commit(&self, path: &RelPath, target: &std::path::Path) -> io::Result<()> {
        tokio::fs::rename(self.part_path(path), target).await?;
        let _ = tokio::fs::remove_file(self.meta_path(path)).await;
        Ok(())
    }

    /// Removes the partial of `path`, if any.
    pub async fn discard(&self, path: &RelPath) {
        let _ = tokio::fs::remove_file(self.part_path(path)).await;
        let _ = tokio::fs::remove_file(self.meta_path(path)).await;
    }

    /// Removes partials untouched for `max_age`: uploads nobody resumed.
    pub fn sweep(&self, max_age: Duration) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let now = SystemTime::now();
        for entry in entries.flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > max_age);
            if old {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// Partial names: a hash of the path, so any path (deep, long, odd bytes)
/// maps to one short, fixed file name in one folder.
fn id_of(path: &RelPath) -> String {
    let mut h = StreamHash::new();
    h.update(path.to_string().as_bytes());
    h.hex()
}
