//! Where uploads live until they are complete and verified.
//!
//! An upload is written to `ROOT/.sockit/<area>/<id>.part` and renamed onto
//! its final name only after its checksum matched, so a file under its final
//! name is always whole. Beside it, `<id>.meta` records which path and size
//! the partial belongs to, so a later `resume` of the same file can continue
//! it. The folder is reached only through its own open handle, and every
//! partial is created with `O_CREAT | O_EXCL | O_NOFOLLOW`: a link planted
//! there is never written through.
//!
//! An [`Upload`] owns one partial from claim to end: it is committed onto a
//! name, kept for a resume, or discarded when dropped. Kept partials are
//! bounded in total bytes and count (oldest go first) and in age, and are
//! swept while the server runs, not only at start.
//!
//! Everything here does blocking I/O on our own fixed names: call it from a
//! blocking thread (the sandbox's gate), except `claim` and dropping.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read as _, Write as _};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, Dir, Mode, OFlags};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

use sockit_proto::checksum::StreamHash;
use sockit_proto::path::RelPath;

use crate::sandbox::Parent;

/// Total bytes of kept partials (interrupted uploads waiting for a resume)
/// before the oldest are deleted: enough to resume a few large uploads,
/// and a bound on what clients that never come back can hold.
pub const DEFAULT_MAX_PARTIAL_BYTES: u64 = 16 * 1024 * 1024 * 1024;
/// Kept partials at most, whatever their size.
pub const DEFAULT_MAX_PARTIALS: usize = 1000;
/// Age after which a partial nobody resumed is deleted.
pub const DEFAULT_PARTIAL_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often kept partials are swept while the server runs.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// The bounds on kept partials.
#[derive(Debug, Clone, Copy)]
pub struct PartialLimits {
    pub max_bytes: u64,
    pub max_count: usize,
    pub max_age: Duration,
}

impl Default for PartialLimits {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_PARTIAL_BYTES,
            max_count: DEFAULT_MAX_PARTIALS,
            max_age: DEFAULT_PARTIAL_MAX_AGE,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Staging {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: OwnedFd,
    /// The ids ([`id_of`]) of the paths being uploaded. Held while a
    /// sweep checks and deletes, so a partial cannot be claimed between.
    claims: Mutex<HashSet<String>>,
    limits: PartialLimits,
    /// Flush each partial and this folder to disk at the moments that
    /// matter (commit), so an acknowledged upload survives power loss.
    fsync: bool,
    last_sweep: Mutex<Instant>,
}

/// What a partial belongs to, stored beside it.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct PartialMeta {
    path: String,
    filesize: u64,
}

/// A kept partial as `ls --partials` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptPartial {
    pub path: String,
    /// Bytes kept so far.
    pub size: u64,
    /// The whole file's size.
    pub filesize: u64,
    pub mtime: i64,
}

/// Exclusive right to upload one path; released on drop.
#[derive(Debug)]
pub struct Claim {
    staging: Arc<Inner>,
    path: RelPath,
    id: String,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.staging
            .claims
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

impl Claim {
    pub fn path(&self) -> &RelPath {
        &self.path
    }
}

/// One upload's partial, from claim to end. Dropped without
/// [`commit`](Self::commit) or [`keep`](Self::keep), its partial is deleted.
#[derive(Debug)]
pub struct Upload {
    claim: Claim,
    id: String,
    done: bool,
    /// A record (`.meta`) was written beside the partial.
    meta: bool,
}

impl Staging {
    /// Opens `area` of the private folder through its own handle.
    pub fn new(dir: OwnedFd, limits: PartialLimits, fsync: bool) -> Self {
        let staging = Self {
            inner: Arc::new(Inner {
                dir,
                claims: Mutex::default(),
                limits,
                fsync,
                last_sweep: Mutex::new(Instant::now()),
            }),
        };
        staging.sweep();
        staging
    }

    /// Takes the upload claim on `path`, or `None` if an upload of it runs.
    pub fn claim(&self, path: &RelPath) -> Option<Claim> {
        let id = id_of(path);
        let mut claims = self.inner.claims.lock().unwrap_or_else(PoisonError::into_inner);
        claims.insert(id.clone()).then(|| Claim {
            staging: Arc::clone(&self.inner),
            path: path.clone(),
            id,
        })
    }

    /// Bytes kept from an interrupted upload of the claimed path with this
    /// total size; 0 (and a stale partial removed) when none fits.
    pub fn kept_len(&self, claim: &Claim, filesize: u64) -> u64 {
        let id = id_of(&claim.path);
        match self.inner.kept(&id) {
            Some((meta, len))
                if meta.path == claim.path.to_string() && meta.filesize == filesize && len <= filesize =>
            {
                len
            }
            _ => {
                self.inner.remove(&id);
                0
            }
        }
    }

    /// Starts a fresh partial for the claimed path (replacing any kept one).
    pub fn begin(&self, claim: Claim, filesize: u64) -> io::Result<(Upload, File)> {
        self.inner.maybe_sweep();
        let id = id_of(&claim.path);
        self.inner.remove(&id);
        let meta = serde_json::to_vec(&PartialMeta {
            path: claim.path.to_string(),
            filesize,
        })
        .map_err(io::Error::other)?;
        let upload = Upload {
            claim,
            id,
            done: false,
            meta: true,
        };
        let mut meta_file = self.inner.create(&format!("{}.meta", upload.id))?;
        meta_file.write_all(&meta)?;
        let part = self.inner.create(&format!("{}.part", upload.id))?;
        Ok((upload, part))
    }

    /// Starts a partial for an upload that arrived whole in memory (a small
    /// one): no record beside it, as it is never kept for a resume.
    pub fn begin_whole(&self, claim: Claim) -> io::Result<(Upload, File)> {
        let id = id_of(&claim.path);
        let name = format!("{id}.part");
        let part = match self.inner.create(&name) {
            // A kept partial of an earlier upload of this name: replaced.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                self.inner.remove(&id);
                self.inner.create(&name)?
            }
            created => created?,
        };
        let upload = Upload {
            claim,
            id,
            done: false,
            meta: false,
        };
        Ok((upload, part))
    }

    /// The last `n` bytes (fewer if it is shorter) of the kept partial of
    /// the claimed path, which must be `len` long: what a resuming web page
    /// checks against its own file before continuing it.
    pub fn kept_tail(&self, claim: &Claim, len: u64, n: u64) -> io::Result<Vec<u8>> {
        let id = id_of(&claim.path);
        let part = rustix::fs::openat(
            &self.inner.dir,
            format!("{id}.part").as_str(),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let n = n.min(len);
        let mut tail = vec![0u8; usize::try_from(n).map_err(io::Error::other)?];
        std::os::unix::fs::FileExt::read_exact_at(&File::from(part), &mut tail, len - n)?;
        Ok(tail)
    }

    /// Reopens the kept partial of the claimed path to continue at
    /// `offset`, which must be its length; `None` when it does not fit.
    pub fn resume(&self, claim: Claim, filesize: u64, offset: u64) -> io::Result<Option<(Upload, File)>> {
        if offset == 0 || self.kept_len(&claim, filesize) != offset {
            return Ok(None);
        }
        let id = id_of(&claim.path);
        let part = rustix::fs::openat(
            &self.inner.dir,
            format!("{id}.part").as_str(),
            OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let upload = Upload {
            claim,
            id,
            done: false,
            meta: true,
        };
        Ok(Some((upload, File::from(part))))
    }

    /// Every kept partial, for `ls --partials`: interrupted uploads, not
    /// the ones being written now.
    pub fn list(&self) -> io::Result<Vec<KeptPartial>> {
        let mut out = Vec::new();
        for (id, _, mtime) in self.inner.parts()? {
            if self
                .inner
                .claims
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(&id)
            {
                continue;
            }
            if let Some((meta, len)) = self.inner.kept(&id) {
                out.push(KeptPartial {
                    path: meta.path,
                    size: len,
                    filesize: meta.filesize,
                    mtime: unix_seconds(mtime),
                });
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Deletes the kept partial of `path`. False when there is none; an
    /// error when its upload is running.
    pub fn remove(&self, path: &RelPath) -> io::Result<bool> {
        let Some(_claim) = self.claim(path) else {
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                "an upload of this file is running",
            ));
        };
        let id = id_of(path);
        let existed = self.inner.kept(&id).is_some();
        self.inner.remove(&id);
        Ok(existed)
    }

    /// Deletes partials past their age, then the oldest until the rest fit
    /// the byte and count bounds. Partials being written are left alone.
    pub fn sweep(&self) {
        *self.inner.last_sweep.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
        self.inner.enforce_limits(None);
    }
}

impl Upload {
    pub fn path(&self) -> &RelPath {
        &self.claim.path
    }

    /// Moves the complete, verified partial onto its final place. With
    /// fsync, the file's data was flushed by its writer; here the rename
    /// itself is made durable by flushing the folder it landed in.
    pub fn commit(self, place: &Parent) -> io::Result<()> {
        self.commit_with(place, rustix::fs::RenameFlags::empty())
    }

    /// [`Self::commit`], refused (`AlreadyExists`) if the name is taken: a
    /// drop box never replaces what someone else left.
    pub fn commit_new(self, place: &Parent) -> io::Result<()> {
        self.commit_with(place, rustix::fs::RenameFlags::NOREPLACE)
    }

    fn commit_with(mut self, place: &Parent, flags: rustix::fs::RenameFlags) -> io::Result<()> {
        let staging = &self.claim.staging;
        rustix::fs::renameat_with(
            &staging.dir,
            format!("{}.part", self.id).as_str(),
            &place.dir,
            place.name.as_str(),
            flags,
        )?;
        self.done = true;
        if staging.fsync {
            rustix::fs::fsync(&place.dir).or_else(|e| match e {
                // An O_PATH handle cannot be fsynced on older kernels: open
                // the folder itself.
                Errno::BADF => rustix::fs::openat(&place.dir, ".", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
                    .and_then(rustix::fs::fsync),
                e => Err(e),
            })?;
        }
        if self.meta {
            staging.remove_file(&format!("{}.meta", self.id));
        }
        Ok(())
    }

    /// Moves the complete partial onto the first of `names` that is free,
    /// never replacing anything (a received attachment); the name it took.
    pub fn commit_unique(
        mut self,
        tree: &crate::sandbox::Tree,
        names: impl IntoIterator<Item = RelPath>,
    ) -> io::Result<RelPath> {
        let staging = Arc::clone(&self.claim.staging);
        let part = format!("{}.part", self.id);
        for name in names {
            let place = tree.parent(&name, false).map_err(|e| match e {
                crate::sandbox::SandboxError::Io(e) => e,
                other => io::Error::new(io::ErrorKind::PermissionDenied, other.to_string()),
            })?;
            match rustix::fs::renameat_with(
                &staging.dir,
                part.as_str(),
                &place.dir,
                place.name.as_str(),
                rustix::fs::RenameFlags::NOREPLACE,
            ) {
                Ok(()) => {
                    self.done = true;
                    staging.remove_file(&format!("{}.meta", self.id));
                    return Ok(name);
                }
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(io::Error::new(io::ErrorKind::AlreadyExists, "no free name"))
    }

    /// Leaves the partial for a later resume (an interrupted upload that
    /// can prove its prefix), within the bounds on kept partials.
    pub fn keep(mut self) {
        self.done = true;
        self.claim.staging.enforce_limits(Some(&self.id));
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.done {
            self.claim.staging.remove(&self.id);
        }
    }
}

impl Inner {
    fn create(&self, name: &str) -> io::Result<File> {
        let fd = rustix::fs::openat(
            &self.dir,
            name,
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )?;
        Ok(File::from(fd))
    }

    fn remove_file(&self, name: &str) {
        let _ = rustix::fs::unlinkat(&self.dir, name, AtFlags::empty());
    }

    fn remove(&self, id: &str) {
        self.remove_file(&format!("{id}.part"));
        self.remove_file(&format!("{id}.meta"));
    }

    /// A partial's record and current length, if both are there and sane.
    fn kept(&self, id: &str) -> Option<(PartialMeta, u64)> {
        let open = |name: String| {
            rustix::fs::openat(
                &self.dir,
                name.as_str(),
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .ok()
        };
        let mut meta = Vec::new();
        File::from(open(format!("{id}.meta"))?)
            .take(4096)
            .read_to_end(&mut meta)
            .ok()?;
        let meta: PartialMeta = serde_json::from_slice(&meta).ok()?;
        let part = open(format!("{id}.part"))?;
        let st = rustix::fs::fstat(&part).ok()?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
            return None;
        }
        Some((meta, u64::try_from(st.st_size).ok()?))
    }

    /// `(id, size, mtime)` of every `.part` in the folder.
    fn parts(&self) -> io::Result<Vec<(String, u64, SystemTime)>> {
        let dir = rustix::fs::openat(
            &self.dir,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut out = Vec::new();
        for entry in Dir::new(dir.try_clone()?)? {
            let entry = entry?;
            let Some(id) = OsStr::from_bytes(entry.file_name().to_bytes())
                .to_str()
                .and_then(|n| n.strip_suffix(".part"))
            else {
                continue;
            };
            let Ok(st) = rustix::fs::statat(&dir, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW) else {
                continue;
            };
            let mtime = UNIX_EPOCH
                + Duration::new(
                    u64::try_from(st.st_mtime).unwrap_or(0),
                    u32::try_from(st.st_mtime_nsec).unwrap_or(0),
                );
            out.push((id.to_owned(), u64::try_from(st.st_size).unwrap_or(0), mtime));
        }
        Ok(out)
    }

    fn maybe_sweep(&self) {
        let due = {
            let mut last = self.last_sweep.lock().unwrap_or_else(PoisonError::into_inner);
            let due = last.elapsed() >= SWEEP_EVERY;
            if due {
                *last = Instant::now();
            }
            due
        };
        if due {
            self.enforce_limits(None);
        }
    }

    /// `keeping`: the partial being kept right now, which counts although
    /// its claim is still held. Each deletion happens under the claims
    /// lock, after checking the partial is not claimed: an upload that
    /// takes a partial meanwhile keeps it.
    fn enforce_limits(&self, keeping: Option<&str>) {
        let Ok(mut parts) = self.parts() else { return };
        // Newest first: what is dropped from the end is the oldest.
        parts.sort_by_key(|p| std::cmp::Reverse(p.2));
        let now = SystemTime::now();
        let mut bytes = 0u64;
        let mut count = 0usize;
        for (id, size, mtime) in parts {
            let claims = self.claims.lock().unwrap_or_else(PoisonError::into_inner);
            if claims.contains(&id) && Some(id.as_str()) != keeping {
                continue; // being written: neither counted nor touched
            }
            let too_old = now.duration_since(mtime).is_ok_and(|age| age > self.limits.max_age);
            let fits = bytes.saturating_add(size) <= self.limits.max_bytes && count < self.limits.max_count;
            if too_old || !fits {
                tracing::info!(partial = %id, size, "deleting a kept partial upload (age or --max-partial-bytes)");
                self.remove(&id);
            } else {
                bytes += size;
                count += 1;
            }
            drop(claims);
        }
        self.remove_orphan_records();
    }

    /// Deletes `.meta` records whose partial is gone (and is not being
    /// started this moment).
    fn remove_orphan_records(&self) {
        let Ok(dir) = rustix::fs::openat(
            &self.dir,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            return;
        };
        let Ok(entries) = Dir::new(dir) else { return };
        for entry in entries.flatten() {
            let name = OsStr::from_bytes(entry.file_name().to_bytes())
                .to_string_lossy()
                .into_owned();
            let Some(id) = name.strip_suffix(".meta") else { continue };
            let claims = self.claims.lock().unwrap_or_else(PoisonError::into_inner);
            let part = format!("{id}.part");
            if !claims.contains(id) && rustix::fs::statat(&self.dir, part.as_str(), AtFlags::SYMLINK_NOFOLLOW).is_err()
            {
                self.remove_file(&name);
            }
        }
    }
}

impl AsFd for Staging {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.inner.dir.as_fd()
    }
}

fn unix_seconds(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Partial names: a hash of the path, so any path (deep, long, odd bytes)
/// maps to one short, fixed file name in one folder.
pub fn id_of(path: &RelPath) -> String {
    let mut h = StreamHash::new();
    h.update(path.to_string().as_bytes());
    h.hex()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::sandbox::Sandbox;

    fn staging(limits: PartialLimits) -> (tempfile::TempDir, Sandbox, Staging) {
        let dir = tempfile::tempdir().unwrap();
        let sb = Sandbox::open(&dir.path().join("root")).unwrap();
        let st = Staging::new(sb.tree().private_dir("partial").unwrap(), limits, false);
        (dir, sb, st)
    }

    fn rel(s: &str) -> RelPath {
        RelPath::parse(s).unwrap()
    }

    #[test]
    fn an_upload_is_committed_kept_or_discarded_and_claims_exclude() {
        let (_d, sb, st) = staging(PartialLimits::default());
        let claim = st.claim(&rel("a")).unwrap();
        assert!(st.claim(&rel("a")).is_none(), "one upload per path");
        let (up, mut f) = st.begin(claim, 5).unwrap();
        f.write_all(b"hello").unwrap();
        let place = sb.tree().place_for(&rel("a")).unwrap();
        up.commit(&place).unwrap();
        assert_eq!(std::fs::read(sb.root().join("a")).unwrap(), b"hello");
        assert!(st.list().unwrap().is_empty());

        let (up, mut f) = st.begin(st.claim(&rel("b")).unwrap(), 10).unwrap();
        f.write_all(b"half").unwrap();
        up.keep();
        let listed = st.list().unwrap();
        assert_eq!(
            (listed[0].path.as_str(), listed[0].size, listed[0].filesize),
            ("b", 4, 10)
        );
        let claim = st.claim(&rel("b")).unwrap();
        assert_eq!(st.kept_len(&claim, 10), 4);
        assert!(
            st.resume(claim, 10, 3).unwrap().is_none(),
            "the offset must be the kept length"
        );
        let (up, _f) = st.resume(st.claim(&rel("b")).unwrap(), 10, 4).unwrap().unwrap();
        drop(up);
        assert!(st.list().unwrap().is_empty(), "a dropped upload is discarded");
    }

    #[test]
    fn a_planted_link_in_the_staging_folder_is_never_written_through() {
        let (d, _sb, st) = staging(PartialLimits::default());
        let victim = d.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let id = id_of(&rel("x"));
        std::os::unix::fs::symlink(&victim, d.path().join(format!("root/.sockit/partial/{id}.part"))).unwrap();
        std::os::unix::fs::symlink(&victim, d.path().join(format!("root/.sockit/partial/{id}.meta"))).unwrap();
        let claim = st.claim(&rel("x")).unwrap();
        assert_eq!(st.kept_len(&claim, 4), 0, "a link is not a kept partial");
        let (_up, mut f) = st.begin(claim, 4).unwrap();
        f.write_all(b"new!").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
    }

    #[test]
    fn a_sweep_never_touches_a_claimed_partial() {
        let limits = PartialLimits {
            max_bytes: u64::MAX,
            max_count: usize::MAX,
            max_age: Duration::ZERO,
        };
        let (_d, _sb, st) = staging(limits);
        let (up, mut f) = st.begin(st.claim(&rel("p")).unwrap(), 10).unwrap();
        f.write_all(b"12345").unwrap();
        // Kept while over age: gone at once, as it is kept.
        up.keep();
        assert!(st.list().unwrap().is_empty());
        let (up, mut f) = st.begin(st.claim(&rel("q")).unwrap(), 10).unwrap();
        f.write_all(b"12345").unwrap();
        // Being written (claimed): a sweep, over age or not, leaves it.
        st.sweep();
        let part = format!("{}.part", id_of(&rel("q")));
        assert!(rustix::fs::statat(&st, part.as_str(), AtFlags::empty()).is_ok());
        drop(up);
    }

    #[test]
    fn kept_partials_are_bounded_oldest_first() {
        let limits = PartialLimits {
            max_bytes: 10,
            max_count: 2,
            max_age: Duration::from_secs(3600),
        };
        let (_d, _sb, st) = staging(limits);
        for (name, len) in [("old", 4), ("mid", 4), ("new", 4)] {
            let (up, mut f) = st.begin(st.claim(&rel(name)).unwrap(), 100).unwrap();
            f.write_all(&vec![0u8; len]).unwrap();
            drop(f);
            up.keep();
            std::thread::sleep(Duration::from_millis(20)); // distinct mtimes
        }
        let names: Vec<String> = st.list().unwrap().into_iter().map(|p| p.path).collect();
        assert_eq!(names, ["mid", "new"]);
        // One partial larger than the whole bound is not kept at all.
        let (up, mut f) = st.begin(st.claim(&rel("huge")).unwrap(), 100).unwrap();
        f.write_all(&[0u8; 11]).unwrap();
        up.keep();
        assert!(st.list().unwrap().iter().all(|p| p.path != "huge"));
        assert!(st.remove(&rel("mid")).unwrap());
        assert!(!st.remove(&rel("mid")).unwrap());
    }
}
