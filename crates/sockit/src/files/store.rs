//! What every front end of the file service shares: the served folder
//! (its Sandbox), the staging of uploads, the access mode, and the steps
//! of an upload from claim to commit. The framed service
//! ([`super::service`]) and the web front end (`crate::web`) both run on one
//! `FileStore`, so an upload in one is a conflict in the other, and a file
//! put by one is what the other serves.
//!
//! Nothing here knows a wire format: failures are [`Refusal`]s with the
//! stable codes, which each front end renders its own way.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use sockit_proto::checksum::{Md5Hash, StreamHash};
use sockit_proto::files::{ErrorCode, Put};
use sockit_proto::frame::FrameLimits;
use sockit_proto::path::RelPath;

use super::listing::{ListingError, ListingLimits};
use super::staging::{Claim, PartialLimits, Staging, Upload};
use crate::Error;
use crate::disk::{DiskWriter, Hashes, WriteOptions};
use crate::exec::ExecLimits;
use crate::sandbox::{Gate, Sandbox, SandboxError, Tree};

#[derive(Debug, Clone)]
pub struct FileServiceConfig {
    pub root: PathBuf,
    pub frame_limits: FrameLimits,
    pub listing: ListingLimits,
    pub partials: PartialLimits,
    /// Flush every upload to disk (file, then folder) before confirming it.
    pub fsync: bool,
    /// Bounds filesystem work: operations at once, and a deadline each.
    pub gate: Gate,
    /// `Some` only with `--allow-exec`: remote exec and its limits.
    pub exec: Option<ExecLimits>,
    /// Who may read and who may write, for every front end alike.
    pub access: Access,
    /// Where transfers in progress are reported (the dashboard).
    pub stats: crate::stats::Stats,
}

impl FileServiceConfig {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            frame_limits: FrameLimits::default(),
            listing: ListingLimits::default(),
            partials: PartialLimits::default(),
            fsync: false,
            gate: Gate::default(),
            exec: None,
            access: Access::ReadWrite,
            stats: crate::stats::Stats::default(),
        }
    }
}

/// Who may do what with the served folder (`--read-only`,
/// `--upload-only`), the same for the framed service and the web.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Access {
    #[default]
    ReadWrite,
    /// Listing and downloading only: nothing is written or removed.
    ReadOnly,
    /// A drop box: uploads only, never replacing a file; nothing is
    /// listed, read or removed.
    UploadOnly,
}

/// What a request does to the served folder, for the access check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// ls, stat, get, download, the kept partials' list.
    Read,
    /// put and its resume.
    Upload,
    /// mkdir, rename, rm, removing a kept partial.
    Change,
}

impl Access {
    /// Refuses what this mode does not allow.
    pub fn check(self, op: Operation) -> Result<(), Refusal> {
        match (self, op) {
            (Self::ReadOnly, Operation::Upload | Operation::Change) => {
                Err(Refusal::new(ErrorCode::PermissionDenied, "this server is read-only"))
            }
            (Self::UploadOnly, Operation::Read | Operation::Change) => Err(Refusal::new(
                ErrorCode::PermissionDenied,
                "this server only takes uploads",
            )),
            _ => Ok(()),
        }
    }
}

/// A failed request as the peer will see it.
#[derive(Debug)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
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
            SandboxError::NotRegular => Refusal::new(
                ErrorCode::PermissionDenied,
                "not a regular file (a pipe, device or socket)",
            ),
            SandboxError::Timeout(_) => Refusal::new(ErrorCode::Busy, "the server's disk is not answering; try again"),
            SandboxError::Io(e) => refusal(&e),
        }
    }
}

impl From<ListingError> for Refusal {
    fn from(e: ListingError) -> Self {
        match e {
            ListingError::Sandbox(e) => e.into(),
            too_much => Refusal::new(ErrorCode::TooLarge, too_much.to_string()),
        }
    }
}

/// The one mapping from filesystem errors to wire errors.
pub fn refusal(e: &io::Error) -> Refusal {
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
        K::ResourceBusy => (ErrorCode::Busy, "an upload of this file is running"),
        _ if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            (ErrorCode::BadPath, "too many levels of symbolic links")
        }
        _ => {
            tracing::warn!(error = %e, "i/o error");
            (ErrorCode::Io, "server i/o error")
        }
    };
    Refusal::new(code, message)
}

#[derive(Debug)]
pub struct FileStore {
    pub(crate) sandbox: Sandbox,
    pub(crate) staging: Staging,
    pub(crate) config: FileServiceConfig,
}

impl FileStore {
    /// Opens the root (creating it) and its private staging folder, and
    /// sweeps kept partial uploads past their bounds.
    pub fn open(config: FileServiceConfig) -> Result<Self, Error> {
        let sandbox = Sandbox::with_gate(&config.root, config.gate.clone())
            .map_err(Error::file("cannot open root folder", &config.root))?;
        let staging_dir = sandbox.tree().private_dir("partial").map_err(Error::file(
            "cannot create staging folder",
            sandbox.root().join(".sockit/partial"),
        ))?;
        let staging = Staging::new(staging_dir, config.partials, config.fsync);
        Ok(Self {
            sandbox,
            staging,
            config,
        })
    }

    pub fn root(&self) -> &Path {
        self.sandbox.root()
    }

    pub fn config(&self) -> &FileServiceConfig {
        &self.config
    }

    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    pub fn staging(&self) -> &Staging {
        &self.staging
    }

    /// Refuses what the access mode does not allow.
    pub fn allow(&self, op: Operation) -> Result<(), Refusal> {
        self.config.access.check(op)
    }

    /// Renames within the served folder, never over an existing name.
    pub async fn rename(&self, from: &RelPath, to: &RelPath) -> Result<(), Refusal> {
        let (from, to) = (from.clone(), to.clone());
        self.sandbox.run(move |t| t.rename(&from, &to)).await?;
        Ok(())
    }

    /// Claims the path, makes its folders, refuses what cannot be stored,
    /// and opens the partial (fresh, or the kept one at the offset) behind
    /// a writer thread. A resume proves its prefix before a byte is added.
    pub async fn prepare_upload(&self, put: &Put) -> Result<(Upload, DiskWriter), Refusal> {
        if put.offset > 0 && !put.trailer {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                "an upload that resumes at an offset must ask for \"verify\"",
            ));
        }
        let claim = self
            .staging
            .claim(&put.path)
            .ok_or_else(|| Refusal::new(ErrorCode::Busy, "an upload of this file is already running"))?;
        let staging = self.staging.clone();
        let (path, filesize, offset) = (put.path.clone(), put.filesize, put.offset);
        let opened = self
            .sandbox
            .run(move |tree| {
                tree.place_for(&path)?;
                if free_bytes(&staging).is_some_and(|free| free < filesize.saturating_sub(offset)) {
                    return Ok(Err(Refusal::new(
                        ErrorCode::NoSpace,
                        "no space left on the server for this file",
                    )));
                }
                Ok(if offset == 0 {
                    Ok(staging.begin(claim, filesize)?)
                } else {
                    staging.resume(claim, filesize, offset)?.ok_or_else(|| {
                        Refusal::new(ErrorCode::BadRequest, "offset does not match the kept partial upload")
                    })
                })
            })
            .await??;
        let (upload, file) = opened;
        let options = WriteOptions {
            md5: put.md5.is_some(),
            fsync: self.config.fsync,
        };
        let writer = DiskWriter::open(file, put.offset, options).await?;
        if let Some(claimed) = &put.prefix_xxh3 {
            if *claimed != writer.prefix_hash() {
                // Someone else's interrupted upload of this name: leave it.
                let _ = writer.finish().await;
                self.keep(upload).await;
                return Err(Refusal::new(
                    ErrorCode::ChecksumMismatch,
                    "the kept partial upload is not the start of this file",
                ));
            }
        }
        Ok((upload, writer))
    }

    /// Uploads that arrived whole (small bodies, in memory), in order: each
    /// is checked against its client's claims, written to a partial and
    /// moved into place, all in one trip to the blocking pool. Each gets
    /// its stored hash or its own refusal; one failing stops none of the
    /// others.
    pub async fn store_whole(&self, uploads: Vec<WholeUpload>) -> Vec<Result<String, Refusal>> {
        let count = uploads.len();
        let (staging, fsync) = (self.staging.clone(), self.config.fsync);
        let replace = self.config.access != Access::UploadOnly;
        let stored = self
            .sandbox
            .run_to_end(move |tree| {
                Ok(uploads
                    .into_iter()
                    .map(|u| u.store(tree, &staging, fsync, replace))
                    .collect::<Vec<_>>())
            })
            .await;
        match stored {
            Ok(each) => each,
            // No slot in time: every one of them is refused alike.
            Err(e) => {
                let r = Refusal::from(e);
                (0..count)
                    .map(|_| Err(Refusal::new(r.code, r.message.clone())))
                    .collect()
            }
        }
    }

    /// Keeps the part of an interrupted small upload that arrived (it was
    /// only in memory) as a partial, for a resume to continue.
    pub async fn keep_whole(&self, put: &Put, claim: Claim, data: Vec<u8>) {
        let (staging, filesize) = (self.staging.clone(), put.filesize);
        let kept = self
            .sandbox
            .run(move |_| {
                let (upload, mut file) = staging.begin(claim, filesize)?;
                file.write_all(&data)?;
                upload.keep();
                Ok(())
            })
            .await;
        if let Err(e) = kept {
            tracing::info!(path = %put.path, error = %e, "cannot keep an interrupted upload");
        }
    }

    /// Keeps an interrupted upload's partial for a resume (and applies the
    /// bounds on kept partials, which lists the folder: off the runtime).
    pub async fn keep(&self, upload: Upload) {
        let _ = self
            .sandbox
            .run(move |_| {
                upload.keep();
                Ok(())
            })
            .await;
    }

    /// Checks what arrived against the client's claims and moves it into
    /// place; the stored file's hash on success. On any refusal the upload
    /// is dropped, and with it the partial.
    pub async fn finish_upload(
        &self,
        put: &Put,
        upload: Upload,
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
        // Where it goes is resolved again now, not trusted from before the
        // body: the folder may have changed meanwhile.
        let path = put.path.clone();
        let replace = self.config.access != Access::UploadOnly;
        self.sandbox
            .run_to_end(move |tree| {
                let place = tree.place_for(&path)?;
                if replace {
                    upload.commit(&place)?;
                } else {
                    upload.commit_new(&place)?;
                }
                Ok(())
            })
            .await?;
        Ok(ours.xxh3)
    }
}

/// An upload whose body arrived whole, under its claim, with the hash its
/// client claimed in the commit (none for a classic upload).
#[derive(Debug)]
pub struct WholeUpload {
    pub put: Put,
    pub claim: Claim,
    pub data: Vec<u8>,
    pub claimed: Option<String>,
}

impl WholeUpload {
    /// Checks, writes and commits it (on a blocking thread).
    fn store(self, tree: &Tree, staging: &Staging, fsync: bool, replace: bool) -> Result<String, Refusal> {
        let mut hash = StreamHash::new();
        hash.update(&self.data);
        let ours = hash.hex();
        if let Some(claimed) = self.claimed.filter(|c| *c != ours) {
            return Err(Refusal::new(
                ErrorCode::ChecksumMismatch,
                format!("xxh3 mismatch: client sent {claimed}, server received {ours}"),
            ));
        }
        if let Some(claimed) = &self.put.md5 {
            let mut m = Md5Hash::new();
            m.update(&self.data);
            let md5 = m.hex();
            if *claimed != md5 {
                return Err(Refusal::new(
                    ErrorCode::ChecksumMismatch,
                    format!("md5 mismatch: header says {claimed}, server received {md5}"),
                ));
            }
        }
        // No free-space check up front, as for a streamed upload: one
        // chunk either fits or its write fails with ENOSPC, which is
        // refused as no_space all the same.
        let place = tree.place_for(&self.put.path)?;
        let (upload, mut file) = staging.begin_whole(self.claim)?;
        file.write_all(&self.data)?;
        if fsync {
            file.sync_all()?;
        }
        if replace {
            upload.commit(&place)?;
        } else {
            upload.commit_new(&place)?;
        }
        Ok(ours)
    }
}

/// Bytes free for an unprivileged writer on the staging folder's
/// filesystem; `None` when it cannot be told.
fn free_bytes(staging: &Staging) -> Option<u64> {
    let st = rustix::fs::fstatvfs(staging).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}
