//! Where the served files live, as the front ends see it: the operations
//! every backend offers in the same shape, with the same refusals. Two
//! implementations: the local folder ([`FileStore`]: its Sandbox and
//! staging) and an object store ([`ObjectRoot`]).
//!
//! Transfers are not here. Each backend moves bytes its own way (a local
//! upload is a staged file behind a writer thread, sent with sendfile-sized
//! reads; an object-store upload is a multipart upload fed part by part),
//! and each front end drives those directly, so the local path stays
//! exactly as fast as it was. [`ServedRoot`] is a root of either kind with
//! the settings its front ends share, for the one that serves both (the
//! page).

use std::future::Future;
use std::sync::Arc;

use sockit_proto::files::{Entry, ErrorCode};
use sockit_proto::path::RelPath;

use super::listing::{Listing, ListingLimits, entry_of};
use super::object::ObjectRoot;
use super::staging::KeptPartial;
use super::store::{FileServiceConfig, FileStore, Operation, Refusal};

/// The operations on names that every backend offers alike.
pub trait Storage: Send + Sync {
    /// What `path` is: a file or a folder, its size and time.
    fn stat(&self, path: &RelPath) -> impl Future<Output = Result<Entry, Refusal>> + Send;
    /// One folder's entries, refused past the listing limits.
    fn list(&self, path: &RelPath, limits: ListingLimits) -> impl Future<Output = Result<Vec<Entry>, Refusal>> + Send;
    /// Renames a file or a folder, never over an existing name.
    fn rename(&self, from: &RelPath, to: &RelPath) -> impl Future<Output = Result<(), Refusal>> + Send;
    /// Makes a folder and those above it.
    fn make_dirs(&self, path: &RelPath) -> impl Future<Output = Result<(), Refusal>> + Send;
    /// Removes a file, an empty folder, or with `recursive` a whole tree.
    fn remove(&self, path: &RelPath, recursive: bool) -> impl Future<Output = Result<(), Refusal>> + Send;
    /// Where a resume of `path` of `filesize` bytes continues (0: from
    /// the start); `busy` while an upload of it runs here.
    fn kept_len(&self, path: &RelPath, filesize: u64) -> impl Future<Output = Result<u64, Refusal>> + Send;
    /// The interrupted uploads kept for a resume.
    fn partials(&self) -> impl Future<Output = Result<Vec<KeptPartial>, Refusal>> + Send;
    /// Drops a kept upload; `not_found` when there is none.
    fn remove_partial(&self, path: &RelPath) -> impl Future<Output = Result<(), Refusal>> + Send;
}

fn busy() -> Refusal {
    Refusal::new(ErrorCode::Busy, "an upload of this file is already running")
}

fn no_partial() -> Refusal {
    Refusal::new(ErrorCode::NotFound, "no kept partial upload of that file")
}

impl Storage for FileStore {
    async fn stat(&self, path: &RelPath) -> Result<Entry, Refusal> {
        let stat = self.sandbox.stat(path).await?;
        Ok(entry_of(path.to_string(), &stat))
    }

    async fn list(&self, path: &RelPath, limits: ListingLimits) -> Result<Vec<Entry>, Refusal> {
        let base = path.clone();
        let listed = self
            .sandbox
            .run(move |tree| {
                let mut listing = match Listing::open(tree, &base, false, limits) {
                    Ok(l) => l,
                    Err(e) => return Ok(Err(e)),
                };
                let mut entries = Vec::new();
                loop {
                    match listing.next_page(tree) {
                        Ok((page, done)) => {
                            entries.extend(serde_json::from_slice::<Vec<Entry>>(&page).unwrap_or_default());
                            if done {
                                return Ok(Ok(entries));
                            }
                        }
                        Err(e) => return Ok(Err(e)),
                    }
                }
            })
            .await?;
        Ok(listed?)
    }

    async fn rename(&self, from: &RelPath, to: &RelPath) -> Result<(), Refusal> {
        FileStore::rename(self, from, to).await
    }

    async fn make_dirs(&self, path: &RelPath) -> Result<(), Refusal> {
        let path = path.clone();
        Ok(self.sandbox.run(move |t| t.make_dirs(&path)).await?)
    }

    async fn remove(&self, path: &RelPath, recursive: bool) -> Result<(), Refusal> {
        let path = path.clone();
        Ok(self.sandbox.run(move |t| t.remove(&path, recursive)).await?)
    }

    async fn kept_len(&self, path: &RelPath, filesize: u64) -> Result<u64, Refusal> {
        let claim = self.staging.claim(path).ok_or_else(busy)?;
        let staging = self.staging.clone();
        Ok(self
            .sandbox
            .run(move |_| Ok(staging.kept_len(&claim, filesize)))
            .await?)
    }

    async fn partials(&self) -> Result<Vec<KeptPartial>, Refusal> {
        let staging = self.staging.clone();
        Ok(self.sandbox.run(move |_| Ok(staging.list()?)).await?)
    }

    async fn remove_partial(&self, path: &RelPath) -> Result<(), Refusal> {
        let (staging, path) = (self.staging.clone(), path.clone());
        match self.sandbox.run(move |_| Ok(staging.remove(&path)?)).await? {
            true => Ok(()),
            false => Err(no_partial()),
        }
    }
}

impl Storage for ObjectRoot {
    async fn stat(&self, path: &RelPath) -> Result<Entry, Refusal> {
        ObjectRoot::stat(self, path).await
    }

    async fn list(&self, path: &RelPath, limits: ListingLimits) -> Result<Vec<Entry>, Refusal> {
        ObjectRoot::list(self, path, false, limits).await
    }

    async fn rename(&self, from: &RelPath, to: &RelPath) -> Result<(), Refusal> {
        ObjectRoot::rename(self, from, to).await
    }

    async fn make_dirs(&self, path: &RelPath) -> Result<(), Refusal> {
        ObjectRoot::make_dirs(self, path).await
    }

    async fn remove(&self, path: &RelPath, recursive: bool) -> Result<(), Refusal> {
        ObjectRoot::remove(self, path, recursive).await
    }

    async fn kept_len(&self, path: &RelPath, filesize: u64) -> Result<u64, Refusal> {
        if self.is_uploading(path) {
            return Err(busy());
        }
        ObjectRoot::kept_len(self, path, filesize).await
    }

    async fn partials(&self) -> Result<Vec<KeptPartial>, Refusal> {
        ObjectRoot::partials(self).await
    }

    async fn remove_partial(&self, path: &RelPath) -> Result<(), Refusal> {
        match ObjectRoot::remove_partial(self, path).await? {
            true => Ok(()),
            false => Err(no_partial()),
        }
    }
}

/// A served root, local or on an object store, with the settings every
/// front end on it shares (access mode, limits, the dashboard's figures).
#[derive(Debug, Clone)]
pub enum ServedRoot {
    Local(Arc<FileStore>),
    Object {
        root: Arc<ObjectRoot>,
        config: Arc<FileServiceConfig>,
    },
}

impl ServedRoot {
    pub fn config(&self) -> &FileServiceConfig {
        match self {
            Self::Local(store) => store.config(),
            Self::Object { config, .. } => config,
        }
    }

    /// Refuses what the access mode does not allow.
    pub fn allow(&self, op: Operation) -> Result<(), Refusal> {
        self.config().access.check(op)
    }

    /// The root as its operator named it: a folder, or `s3://bucket/prefix`.
    pub fn shown(&self) -> String {
        match self {
            Self::Local(store) => store.root().display().to_string(),
            Self::Object { root, .. } => root.url().to_string(),
        }
    }
}

/// Each operation goes to the backend the root is on.
macro_rules! on_backend {
    ($root:expr, $s:ident => $call:expr) => {
        match $root {
            ServedRoot::Local($s) => $call,
            ServedRoot::Object { root: $s, .. } => $call,
        }
    };
}

impl Storage for ServedRoot {
    async fn stat(&self, path: &RelPath) -> Result<Entry, Refusal> {
        on_backend!(self, s => Storage::stat(&**s, path).await)
    }

    async fn list(&self, path: &RelPath, limits: ListingLimits) -> Result<Vec<Entry>, Refusal> {
        on_backend!(self, s => Storage::list(&**s, path, limits).await)
    }

    async fn rename(&self, from: &RelPath, to: &RelPath) -> Result<(), Refusal> {
        on_backend!(self, s => Storage::rename(&**s, from, to).await)
    }

    async fn make_dirs(&self, path: &RelPath) -> Result<(), Refusal> {
        on_backend!(self, s => Storage::make_dirs(&**s, path).await)
    }

    async fn remove(&self, path: &RelPath, recursive: bool) -> Result<(), Refusal> {
        on_backend!(self, s => Storage::remove(&**s, path, recursive).await)
    }

    async fn kept_len(&self, path: &RelPath, filesize: u64) -> Result<u64, Refusal> {
        on_backend!(self, s => Storage::kept_len(&**s, path, filesize).await)
    }

    async fn partials(&self) -> Result<Vec<KeptPartial>, Refusal> {
        on_backend!(self, s => Storage::partials(&**s).await)
    }

    async fn remove_partial(&self, path: &RelPath) -> Result<(), Refusal> {
        on_backend!(self, s => Storage::remove_partial(&**s, path).await)
    }
}
