//! The served folder on an S3-compatible object store (`--root
//! s3://bucket/prefix`), through the `object_store` crate. The rules (keys,
//! parts, the resume manifest) are in `sockit_proto::files::object`; this is
//! the driver that runs them against a store.
//!
//! Folders are key prefixes. `mkdir` leaves a zero-byte marker object
//! ([`FOLDER_MARKER`]) so an empty folder exists; listings hide it. An
//! upload is a multipart upload of its final key, completed only after the
//! whole file arrived and matched its hash, so nothing is visible under its
//! name before that. Recursive removal deletes object by object and is not
//! atomic: a failure reports how many went first.

use std::collections::{BTreeSet, HashSet};
use std::future::Future;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt as _, TryStreamExt as _};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::list::{PaginatedListOptions, PaginatedListStore as _};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::{Path as Key, PathPart};
use object_store::{
    ClientConfigKey, GetOptions, GetRange, ObjectMeta, ObjectStore, ObjectStoreExt as _, PutMode, PutOptions,
    PutPayload, RetryConfig,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use sha2::{Digest as _, Sha256};

use sockit_proto::checksum::{Md5Hash, StreamHash, hex};
use sockit_proto::files::object::{MAX_MANIFEST, Manifest, PART, PartPlan, StoreUrl, manifest_dir, manifest_name};
use sockit_proto::files::{Entry, EntryKind, ErrorCode, Put};
use sockit_proto::path::{RESERVED_DIR, RelPath};
use sockit_proto::web::TAIL_PROOF;

use super::listing::ListingLimits;
use super::staging::{KeptPartial, PartialLimits};
use super::store::Refusal;
use crate::Error;

/// The zero-byte object that makes an empty folder exist.
pub const FOLDER_MARKER: &str = ".sockit-folder";
/// Each request to the store, retries included, ends by then: long
/// enough for a 16 MiB part at 64 KiB/s.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(300);
/// A download reads the object in ranges of this size, a few ahead of
/// the one being sent.
pub const READ_RANGE: u64 = 8 << 20;
const READS_AHEAD: usize = 3;
/// Keys held at once while a folder is removed or renamed.
const KEYS_PER_BATCH: usize = 1000;
/// Parts of one upload being sent to the store at once.
const PARTS_IN_FLIGHT: usize = 3;
/// Part buffers in memory across the whole server (16 MiB each): a bound
/// on what uploads hold, however many run.
pub const BUFFERS: usize = 32;
/// Ranges read ahead across the whole server (8 MiB each), for downloads.
/// Their own pool: downloads a client stopped reading hold theirs until
/// the idle deadline, and must not stall uploads meanwhile.
pub const READ_BUFFERS: usize = 32;
/// A kept upload whose manifest another server wrote this recently may
/// still be running there (a running one writes it with every part): the
/// count and byte bounds count it but never abandon it.
pub const LIVE_WINDOW: Duration = Duration::from_secs(600);
/// S3 copies at most this much in one request; a rename is a copy.
const MAX_COPY: u64 = 5 << 30;

/// Where the store is and who we are to it. Credentials come from the
/// usual `AWS_*` environment variables or the config file, never argv.
#[derive(Debug, Clone, Default)]
pub struct StoreConfig {
    /// `http://127.0.0.1:8014` for a local S3 server; unset for AWS.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Plain HTTP to the endpoint (a store on loopback).
    pub allow_http: Option<bool>,
}

/// The served folder on an object store.
#[derive(Debug)]
pub struct ObjectRoot {
    store: Arc<AmazonS3>,
    url: StoreUrl,
    base: Key,
    uploading: Mutex<HashSet<RelPath>>,
    buffers: Arc<Semaphore>,
    read_buffers: Arc<Semaphore>,
    /// The bounds on kept uploads, as on a local folder.
    limits: PartialLimits,
    /// This process among the servers on the store, as its manifests name
    /// it: a kept upload it wrote and does not run is certainly stopped.
    id: String,
}

/// The right to upload one path on this server; released on drop. Two
/// servers may still race on one name: the last to complete wins whole.
#[derive(Debug)]
pub struct UploadClaim {
    root: Arc<ObjectRoot>,
    path: RelPath,
}

impl Drop for UploadClaim {
    fn drop(&mut self) {
        if let Ok(mut set) = self.root.uploading.lock() {
            set.remove(&self.path);
        }
    }
}

impl ObjectRoot {
    /// Connects to the store. The environment's `AWS_*` settings apply
    /// first, the config's over them.
    pub fn open(url: &StoreUrl, config: &StoreConfig, limits: PartialLimits) -> Result<Arc<Self>, Error> {
        // Exactly one TLS provider is built in; reqwest needs it named.
        let _ = rustls::crypto::ring::default_provider().install_default();
        // Set key by key: replacing the client options would drop what the
        // environment put there (AWS_ALLOW_HTTP among them).
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&url.bucket)
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
                format!("{}s", STORE_TIMEOUT.as_secs()),
            )
            .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout), "5s")
            .with_retry(RetryConfig {
                max_retries: 2,
                retry_timeout: STORE_TIMEOUT,
                ..RetryConfig::default()
            });
        let endpoint = config
            .endpoint
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
        if let Some(e) = endpoint.or_else(|| std::env::var("AWS_ENDPOINT").ok()) {
            // object_store panics on a URI it cannot sign; say so instead.
            let bad = |why: &str| Error::Store {
                op: "connect",
                detail: format!("endpoint {e:?}: {why}"),
            };
            let parsed = url::Url::parse(&e).map_err(|err| bad(&err.to_string()))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
                return Err(bad("must be http:// or https:// and name a host"));
            }
            builder = builder.with_endpoint(parsed.as_str().trim_end_matches('/'));
        }
        if let Some(r) = &config.region {
            builder = builder.with_region(r);
        }
        if let Some(k) = &config.access_key_id {
            builder = builder.with_access_key_id(k);
        }
        if let Some(s) = &config.secret_access_key {
            builder = builder.with_secret_access_key(s);
        }
        if let Some(h) = config.allow_http {
            builder = builder.with_allow_http(h);
        }
        let store = builder.build().map_err(|e| Error::Store {
            op: "connect",
            detail: e.to_string(),
        })?;
        Ok(Arc::new(Self {
            store: Arc::new(store),
            url: url.clone(),
            base: Key::from(url.prefix.as_str()),
            uploading: Mutex::new(HashSet::new()),
            buffers: Arc::new(Semaphore::new(BUFFERS)),
            read_buffers: Arc::new(Semaphore::new(READ_BUFFERS)),
            limits,
            id: {
                let mut id = [0u8; 16];
                rand::RngCore::fill_bytes(&mut rand::rng(), &mut id);
                hex(&id)
            },
        }))
    }

    pub fn url(&self) -> &StoreUrl {
        &self.url
    }

    /// Proves the bucket answers (a listing of the private prefix), so a
    /// wrong endpoint or key fails at start, not at the first request.
    pub async fn check(&self) -> Result<(), Error> {
        self.store
            .list_with_delimiter(Some(&self.uploads_dir()))
            .await
            .map(drop)
            .map_err(|e| Error::Store {
                op: "list the bucket",
                detail: e.to_string(),
            })
    }

    /// The key of a path a peer named. Each segment is percent-encoded
    /// where S3 advises against a character, so every name round-trips.
    fn key(&self, path: &RelPath) -> Key {
        path.components()
            .fold(self.base.clone(), |key, part| key.join(PathPart::from(part)))
    }

    /// Where the manifests of kept uploads are.
    fn uploads_dir(&self) -> Key {
        manifest_dir()
            .iter()
            .fold(self.base.clone(), |key, part| key.join(*part))
    }

    fn manifest_key(&self, path: &RelPath) -> Key {
        self.uploads_dir().join(manifest_name(path))
    }

    /// A name as the peer sees it: the key's segments after `under`,
    /// decoded. `None` for what is not ours to show (the private prefix,
    /// folder markers, a key that is not valid UTF-8 once decoded).
    fn name_under(&self, under: &Key, key: &Key) -> Option<String> {
        let parts: Vec<String> = key
            .prefix_match(under)?
            .map(|p| {
                percent_encoding::percent_decode_str(p.as_ref())
                    .decode_utf8()
                    .map(|s| s.into_owned())
            })
            .collect::<Result<_, _>>()
            .ok()?;
        let hidden = parts.last().is_some_and(|p| p == FOLDER_MARKER)
            || (*under == self.base && parts.first().is_some_and(|p| p == RESERVED_DIR));
        (!parts.is_empty() && !hidden).then(|| parts.join("/"))
    }

    /// Refuses the one name an object root reserves.
    pub fn check_name(path: &RelPath) -> Result<(), Refusal> {
        if path.components().any(|c| c == FOLDER_MARKER) {
            return Err(Refusal::new(ErrorCode::BadPath, "that name is reserved"));
        }
        Ok(())
    }

    /// What a path is: a file (an object), a folder (a prefix with
    /// something under it, or a marker), or nothing.
    pub async fn stat(&self, path: &RelPath) -> Result<Entry, Refusal> {
        Self::check_name(path)?;
        let name = path.to_string();
        if path.is_root() {
            return Ok(folder_entry(name, 0));
        }
        // The folder check goes first: some stores (s3s-fs) answer a HEAD
        // of a key that is also a prefix with an error, not a 404.
        let key = self.key(path);
        if let Some(mtime) = self.folder_time(&key).await? {
            return Ok(folder_entry(name, mtime));
        }
        match self.store.head(&key).await {
            Ok(meta) => Ok(file_entry(name, &meta)),
            Err(e) => Err(store_refusal(&e)),
        }
    }

    /// When something is stored under `key/`: the time of the first.
    async fn folder_time(&self, key: &Key) -> Result<Option<i64>, Refusal> {
        match self.store.list(Some(key)).next().await {
            Some(Ok(meta)) => Ok(Some(meta.last_modified.timestamp())),
            Some(Err(e)) => Err(store_refusal(&e)),
            None => Ok(None),
        }
    }

    /// The entries under a folder, as the local listing gives them: names
    /// relative to it, folders before their contents when recursive.
    /// Bounded like a local listing.
    pub async fn list(&self, path: &RelPath, recursive: bool, limits: ListingLimits) -> Result<Vec<Entry>, Refusal> {
        let folder = self.stat(path).await?;
        if folder.kind != EntryKind::Dir {
            return Err(Refusal::new(ErrorCode::NotADirectory, "not a folder"));
        }
        let base = self.key(path);
        let mut entries = Vec::new();
        let too_many = || Refusal::new(ErrorCode::TooLarge, "listing larger than the server's limit");
        if recursive {
            let mut folders = BTreeSet::new();
            let mut objects = self.store.list(Some(&base));
            while let Some(meta) = objects.next().await {
                let meta = meta.map_err(|e| store_refusal(&e))?;
                let Some(name) = self.name_under(&base, &meta.location).or_else(|| {
                    // A marker still makes its folder exist.
                    let parent = meta.location.parent()?;
                    (meta.location.filename() == Some(FOLDER_MARKER) && parent != base)
                        .then(|| self.name_under(&base, &parent))
                        .flatten()
                        .map(|n| format!("{n}/"))
                }) else {
                    continue;
                };
                let (name, is_marker) = match name.strip_suffix('/') {
                    Some(n) => (n.to_owned(), true),
                    None => (name, false),
                };
                // Every folder on the way to a name is an entry of its own.
                let mut at = 0;
                while let Some(slash) = name[at..].find('/').map(|i| i + at) {
                    if folders.insert(name[..slash].to_owned()) {
                        entries.push(folder_entry(name[..slash].to_owned(), meta.last_modified.timestamp()));
                    }
                    at = slash + 1;
                }
                if is_marker {
                    if folders.insert(name.clone()) {
                        entries.push(folder_entry(name, meta.last_modified.timestamp()));
                    }
                } else {
                    entries.push(file_entry(name, &meta));
                }
                if entries.len() > limits.max_entries {
                    return Err(too_many());
                }
            }
        } else {
            // Page by page, so a huge folder is refused at the limit rather
            // than gathered whole first.
            let prefix = if base.as_ref().is_empty() {
                String::new()
            } else {
                format!("{base}{}", object_store::path::DELIMITER)
            };
            let mut token = None;
            loop {
                let options = PaginatedListOptions {
                    delimiter: Some(object_store::path::DELIMITER.into()),
                    page_token: token,
                    ..PaginatedListOptions::default()
                };
                let page = self
                    .store
                    .list_paginated(Some(&prefix), options)
                    .await
                    .map_err(|e| store_refusal(&e))?;
                for key in &page.result.common_prefixes {
                    if let Some(name) = self.name_under(&base, key) {
                        entries.push(folder_entry(name, 0));
                    }
                }
                for meta in &page.result.objects {
                    if let Some(name) = self.name_under(&base, &meta.location) {
                        entries.push(file_entry(name, meta));
                    }
                }
                if entries.len() > limits.max_entries {
                    return Err(too_many());
                }
                token = page.page_token;
                if token.is_none() {
                    break;
                }
            }
        }
        Ok(entries)
    }

    /// Opens a download from `offset`: the object's size, and its bytes
    /// from `from` on (a prefix to hash, or the body), read in ranges a few
    /// ahead. Every range asks for the same ETag, so an object replaced
    /// mid-download fails instead of mixing two versions.
    pub async fn open_read(&self, path: &RelPath) -> Result<ObjectReader, Refusal> {
        Self::check_name(path)?;
        let key = self.key(path);
        let meta = match self.store.head(&key).await {
            Ok(meta) => meta,
            Err(e) => {
                return Err(match self.folder_time(&key).await {
                    Ok(Some(_)) => Refusal::new(ErrorCode::IsADirectory, "is a folder"),
                    _ => store_refusal(&e),
                });
            }
        };
        Ok(ObjectReader {
            store: Arc::clone(&self.store),
            buffers: Arc::clone(&self.read_buffers),
            key,
            size: meta.size,
            mtime: meta.last_modified.timestamp(),
            e_tag: meta.e_tag,
        })
    }

    /// Whether an upload of `path` runs on this server.
    pub fn is_uploading(&self, path: &RelPath) -> bool {
        self.uploading.lock().is_ok_and(|set| set.contains(path))
    }

    /// Claims `path` for an upload on this server.
    pub fn claim(self: &Arc<Self>, path: &RelPath) -> Option<UploadClaim> {
        let mut set = self.uploading.lock().ok()?;
        set.insert(path.clone()).then(|| UploadClaim {
            root: Arc::clone(self),
            path: path.clone(),
        })
    }

    /// The manifest of a kept upload of `path`, if one names it.
    async fn manifest(&self, path: &RelPath) -> Result<Option<Manifest>, Refusal> {
        let read = self.read_manifest(&self.manifest_key(path)).await?;
        Ok(read.filter(|m| m.path == path.to_string()))
    }

    /// A manifest object, decoded; `None` when absent or not one of ours
    /// (too large, or not what `Manifest::decode` accepts).
    async fn read_manifest(&self, key: &Key) -> Result<Option<Manifest>, Refusal> {
        match self.store.get(key).await {
            Ok(got) if got.meta.size > MAX_MANIFEST as u64 => Ok(None),
            Ok(got) => {
                let bytes = got.bytes().await.map_err(|e| store_refusal(&e))?;
                Ok(Manifest::decode(&bytes).ok())
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_refusal(&e)),
        }
    }

    async fn write_manifest(&self, path: &RelPath, manifest: &Manifest) -> Result<(), Refusal> {
        let payload = PutPayload::from(manifest.encode());
        self.store
            .put(&self.manifest_key(path), payload)
            .await
            .map(drop)
            .map_err(|e| store_refusal(&e))
    }

    /// Abandons an upload's parts and its manifest (best effort: a store
    /// that fails now leaves them for its own lifecycle rules).
    async fn drop_upload(&self, key: &Key, path: &RelPath, upload_id: &str) {
        if let Err(e) = self.store.abort_multipart(key, &upload_id.to_owned()).await {
            tracing::info!(path = %path, error = %e, "cannot abort a multipart upload");
        }
        // Only its own: a newer upload of the name may have written one.
        if let Ok(Some(m)) = self.manifest(path).await {
            if m.upload_id == upload_id {
                let _ = self.store.delete(&self.manifest_key(path)).await;
            }
        }
    }

    /// Where a resume of `path` (of `filesize` bytes) continues: the bytes
    /// its kept parts hold, or 0.
    pub async fn kept_len(&self, path: &RelPath, filesize: u64) -> Result<u64, Refusal> {
        Ok(self.kept(path, filesize).await?.map_or(0, |m| m.offset()))
    }

    /// The kept upload of `path` at `filesize` bytes, if there is one.
    pub async fn kept(&self, path: &RelPath, filesize: u64) -> Result<Option<Manifest>, Refusal> {
        Self::check_name(path)?;
        Ok(self.manifest(path).await?.filter(|m| m.filesize == filesize))
    }

    /// Starts (or, at an offset, continues) an upload. A resume must prove
    /// its prefix against the manifest before a byte is taken.
    /// `replace` false (a drop box) refuses a name that exists.
    pub async fn begin_upload(
        self: &Arc<Self>,
        put: &Put,
        claim: UploadClaim,
        replace: bool,
    ) -> Result<ObjectUpload, Refusal> {
        Self::check_name(&put.path)?;
        if put.offset > 0 && !put.trailer {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                "an upload that resumes at an offset must ask for \"verify\"",
            ));
        }
        if put.offset > 0 && put.md5.is_some() {
            // The header's MD5 is of the whole file, and no server can
            // read the kept parts back to hash them.
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                "an object store cannot check md5 on a resumed upload; resume with verify alone",
            ));
        }
        let plan = PartPlan::for_size(put.filesize)
            .ok_or_else(|| Refusal::new(ErrorCode::TooLarge, "file too large for the object store"))?;
        let key = self.key(&put.path);
        if self.folder_time(&key).await?.is_some() {
            return Err(Refusal::new(ErrorCode::IsADirectory, "is a folder"));
        }
        let kept = self.manifest(&put.path).await?;
        let mut upload = ObjectUpload {
            root: Arc::clone(self),
            key,
            plan,
            put: put.clone(),
            claim: Some(claim),
            replace,
            upload_id: None,
            ledger: Arc::default(),
            next_part: 0,
            resumed: false,
            sending: JoinSet::new(),
            buffer: Vec::new(),
            permit: None,
            hash: StreamHash::new(),
            tail: None,
            md5: put.md5.is_some().then(Md5Hash::new),
            received: put.offset,
            done: false,
            buffer_wait: None,
        };
        if put.offset == 0 {
            if let Some(old) = kept {
                // A fresh upload replaces what an earlier one kept.
                upload.root.drop_upload(&upload.key, &put.path, &old.upload_id).await;
            }
            if plan.parts() > 1 {
                let id = self
                    .store
                    .create_multipart(&upload.key)
                    .await
                    .map_err(|e| store_refusal(&e))?;
                upload.upload_id = Some(id.clone());
                let manifest = Manifest {
                    path: put.path.to_string(),
                    upload_id: id,
                    filesize: put.filesize,
                    part_size: plan.part_size,
                    etags: Vec::new(),
                    prefix_xxh3: StreamHash::new().hex(),
                    tail_sha256: None,
                    writer: Some(self.id.clone()),
                    started: unix_now(),
                };
                // Written at once, so an upload whose server dies is still
                // found (to resume from nothing, or to sweep).
                self.write_manifest(&put.path, &manifest).await?;
                if put.trailer {
                    let mut ledger = upload.ledger.lock().await;
                    ledger.keepable = usize::try_from(plan.keepable_parts()).unwrap_or(usize::MAX);
                    ledger.manifest = Some(manifest);
                }
            }
            return Ok(upload);
        }
        let manifest = kept
            .filter(|m| m.filesize == put.filesize && m.offset() == put.offset)
            .ok_or_else(|| Refusal::new(ErrorCode::BadRequest, "offset does not match the kept partial upload"))?;
        if put.prefix_xxh3.as_deref() != Some(manifest.prefix_xxh3.as_str()) {
            return Err(Refusal::new(
                ErrorCode::ChecksumMismatch,
                "the kept partial upload is not the start of this file",
            ));
        }
        // Rewritten, so its age (the sweep's clock) starts again, naming
        // this server as the one running it.
        let manifest = Manifest {
            writer: Some(self.id.clone()),
            ..manifest
        };
        self.write_manifest(&put.path, &manifest).await?;
        upload.plan = manifest.plan();
        upload.upload_id = Some(manifest.upload_id.clone());
        upload.next_part = manifest.etags.len();
        upload.ledger.lock().await.etags = manifest.etags.clone();
        upload.resumed = true;
        upload.tail = Some(StreamHash::new());
        Ok(upload)
    }

    /// The kept partial uploads, from their manifests.
    pub async fn partials(&self) -> Result<Vec<KeptPartial>, Refusal> {
        let dir = self.uploads_dir();
        let metas: Vec<ObjectMeta> = self
            .store
            .list(Some(&dir))
            .try_collect()
            .await
            .map_err(|e| store_refusal(&e))?;
        let mut kept = Vec::new();
        for meta in metas {
            if let Some(m) = self.read_manifest(&meta.location).await? {
                kept.push(KeptPartial {
                    path: m.path.clone(),
                    size: m.offset(),
                    filesize: m.filesize,
                    mtime: meta.last_modified.timestamp(),
                });
            }
        }
        Ok(kept)
    }

    /// Applies the bounds on kept uploads, as the local staging does:
    /// newest first, a kept upload goes when its manifest was last written
    /// more than `max_age` ago (a running upload rewrites it with every
    /// part, a resume when it starts), or when it would pass `max_count`,
    /// or (with `count_bytes`, which reads every manifest) `max_bytes` of
    /// stored parts. Uploads running on this server are neither counted
    /// nor touched; one another server wrote within [`LIVE_WINDOW`]
    /// (perhaps running there) is counted but never abandoned for the
    /// count or the bytes. An old manifest that is not one of ours goes too. Best
    /// effort: what the store refuses now stays for the next sweep. The
    /// number abandoned.
    pub async fn sweep(&self, count_bytes: bool) -> usize {
        let listed: Result<Vec<ObjectMeta>, _> = self.store.list(Some(&self.uploads_dir())).try_collect().await;
        let Ok(mut metas) = listed else { return 0 };
        metas.sort_by_key(|m| std::cmp::Reverse(m.last_modified));
        let limits = self.limits;
        let cutoff = chrono::Utc::now() - chrono::Duration::from_std(limits.max_age).unwrap_or(chrono::Duration::MAX);
        let running: HashSet<String> = self
            .uploading
            .lock()
            .map(|set| set.iter().map(manifest_name).collect())
            .unwrap_or_default();
        let live_since = chrono::Utc::now() - chrono::Duration::from_std(LIVE_WINDOW).unwrap_or(chrono::Duration::MAX);
        let (mut count, mut bytes, mut swept) = (0usize, 0u64, 0);
        for meta in metas {
            if meta.location.filename().is_some_and(|n| running.contains(n)) {
                continue;
            }
            let too_old = meta.last_modified <= cutoff;
            let recent = meta.last_modified > live_since;
            if !too_old && !count_bytes && count < limits.max_count {
                count += 1;
                continue;
            }
            let m = match self.read_manifest(&meta.location).await {
                Ok(Some(m)) => m,
                Ok(None) => {
                    if too_old {
                        let _ = self.store.delete(&meta.location).await;
                    }
                    continue;
                }
                Err(_) => continue,
            };
            let Ok(path) = RelPath::parse(&m.path) else { continue };
            // Written lately by another server: it may be running there.
            let live = recent && m.writer.as_deref() != Some(self.id.as_str());
            let fits = live || (count < limits.max_count && bytes.saturating_add(m.offset()) <= limits.max_bytes);
            // Claimed here since the listing: a resume began; leave it.
            if (too_old || !fits) && !self.is_uploading(&path) {
                tracing::info!(%path, size = m.offset(), "abandoning a kept upload (age, count or bytes bound)");
                self.drop_upload(&self.key(&path), &path, &m.upload_id).await;
                swept += 1;
            } else {
                count += 1;
                bytes += m.offset();
            }
        }
        swept
    }

    /// Abandons a kept partial upload; false when there was none.
    pub async fn remove_partial(&self, path: &RelPath) -> Result<bool, Refusal> {
        match self.manifest(path).await? {
            Some(m) => {
                self.drop_upload(&self.key(path), path, &m.upload_id).await;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Makes a folder and those above it: a marker object in each that is
    /// not there yet. A file in the way is refused.
    pub async fn make_dirs(&self, path: &RelPath) -> Result<(), Refusal> {
        Self::check_name(path)?;
        let mut at = RelPath::root();
        for part in path.components() {
            at = at
                .join(part)
                .map_err(|_| Refusal::new(ErrorCode::BadPath, "bad folder name"))?;
            match self.stat(&at).await {
                Ok(e) if e.kind == EntryKind::Dir => continue,
                Ok(_) => return Err(Refusal::new(ErrorCode::AlreadyExists, "a file is in the way")),
                Err(r) if r.code == ErrorCode::NotFound => {}
                Err(r) => return Err(r),
            }
            let marker = self.key(&at).join(FOLDER_MARKER);
            self.store
                .put(&marker, PutPayload::new())
                .await
                .map_err(|e| store_refusal(&e))?;
        }
        Ok(())
    }

    /// Removes a file, an empty folder, or with `recursive` everything
    /// under a folder, one object at a time. Not atomic: on a failure the
    /// refusal says how many objects went first.
    pub async fn remove(&self, path: &RelPath, recursive: bool) -> Result<(), Refusal> {
        Self::check_name(path)?;
        if path.is_root() {
            return Err(Refusal::new(ErrorCode::PermissionDenied, "the root cannot be removed"));
        }
        let entry = self.stat(path).await?;
        let key = self.key(path);
        if entry.kind == EntryKind::File {
            return self.store.delete(&key).await.map_err(|e| store_refusal(&e));
        }
        let first = self.batch_under(&key, 2).await?;
        let only_marker = first
            .iter()
            .all(|m| m.location.filename() == Some(FOLDER_MARKER) && m.location.parent() == Some(key.clone()));
        if !recursive && !only_marker {
            return Err(Refusal::new(ErrorCode::NotEmpty, "folder is not empty"));
        }
        let mut removed = 0;
        let mut batches = Batches::default();
        while let Some(batch) = batches.next(self, &key).await? {
            for meta in batch {
                self.store.delete(&meta.location).await.map_err(|e| {
                    let r = store_refusal(&e);
                    Refusal::new(
                        r.code,
                        format!(
                            "{} ({removed} objects removed before it; removal is not atomic)",
                            r.message
                        ),
                    )
                })?;
                removed += 1;
            }
        }
        Ok(())
    }

    /// Renames a file (copy, then delete), or a folder object by object.
    /// Never over an existing name. A folder's rename is not atomic: on a
    /// failure the refusal says how many objects moved first.
    pub async fn rename(&self, from: &RelPath, to: &RelPath) -> Result<(), Refusal> {
        Self::check_name(from)?;
        Self::check_name(to)?;
        if from.is_root() || to.is_root() {
            return Err(Refusal::new(ErrorCode::PermissionDenied, "the root cannot be renamed"));
        }
        let inside = to.components().count() > from.components().count()
            && from.components().zip(to.components()).all(|(a, b)| a == b);
        if inside {
            return Err(Refusal::new(ErrorCode::BadRequest, "a folder cannot move into itself"));
        }
        if self.is_uploading(from) || self.is_uploading(to) {
            return Err(Refusal::new(ErrorCode::Busy, "an upload of this file is running"));
        }
        let entry = self.stat(from).await?;
        match self.stat(to).await {
            Ok(_) => return Err(Refusal::new(ErrorCode::AlreadyExists, "already exists")),
            Err(r) if r.code == ErrorCode::NotFound => {}
            Err(r) => return Err(r),
        }
        if self.stat(&to.parent()).await?.kind != EntryKind::Dir {
            return Err(Refusal::new(ErrorCode::NotADirectory, "not a folder"));
        }
        let (src, dst) = (self.key(from), self.key(to));
        if entry.kind == EntryKind::File {
            return self.move_object(&src, entry.size, &src, &dst).await;
        }
        let mut moved = 0;
        let mut batches = Batches::default();
        while let Some(batch) = batches.next(self, &src).await? {
            for meta in batch {
                self.move_object(&meta.location, meta.size, &src, &dst)
                    .await
                    .map_err(|r| {
                        Refusal::new(
                            r.code,
                            format!(
                                "{} ({moved} objects moved before it; a folder's rename is not atomic)",
                                r.message
                            ),
                        )
                    })?;
                moved += 1;
            }
        }
        Ok(())
    }

    /// Moves `key` (under `src`, `size` bytes) to the same place under `dst`.
    async fn move_object(&self, key: &Key, size: u64, src: &Key, dst: &Key) -> Result<(), Refusal> {
        if size > MAX_COPY {
            return Err(Refusal::new(
                ErrorCode::TooLarge,
                "an object store renames by copying, and copies at most 5 GiB at once; download and upload it instead",
            ));
        }
        let rest: Vec<PathPart<'static>> = key
            .prefix_match(src)
            .map(|parts| parts.map(|p| PathPart::from(p.as_ref().to_owned())).collect())
            .unwrap_or_default();
        let target = rest.into_iter().fold(dst.clone(), |k, part| k.join(part));
        self.store.copy(key, &target).await.map_err(|e| store_refusal(&e))?;
        self.store.delete(key).await.map_err(|e| store_refusal(&e))
    }

    /// Up to `n` objects under `key/`.
    async fn batch_under(&self, key: &Key, n: usize) -> Result<Vec<ObjectMeta>, Refusal> {
        self.store
            .list(Some(key))
            .take(n)
            .try_collect()
            .await
            .map_err(|e| store_refusal(&e))
    }
}

/// The keys under a prefix, a batch at a time, for work that takes each
/// away (a delete, a move): a folder of any size costs one batch of memory.
#[derive(Debug, Default)]
struct Batches {
    last: Option<Key>,
}

impl Batches {
    async fn next(&mut self, root: &ObjectRoot, key: &Key) -> Result<Option<Vec<ObjectMeta>>, Refusal> {
        let batch = root.batch_under(key, KEYS_PER_BATCH).await?;
        let Some(head) = batch.first().map(|m| m.location.clone()) else {
            return Ok(None);
        };
        if self.last.as_ref() == Some(&head) {
            return Err(Refusal::new(ErrorCode::Io, "the store still lists what was taken away"));
        }
        self.last = Some(head);
        Ok(Some(batch))
    }
}

/// A download's source: the object's size, and its bytes by range.
#[derive(Debug)]
pub struct ObjectReader {
    store: Arc<AmazonS3>,
    buffers: Arc<Semaphore>,
    key: Key,
    pub size: u64,
    /// Unix seconds of the last write.
    pub mtime: i64,
    e_tag: Option<String>,
}

impl ObjectReader {
    /// The store's tag for this version of the object.
    pub fn e_tag(&self) -> Option<&str> {
        self.e_tag.as_deref()
    }

    /// The bytes in `range`, in order, read [`READ_RANGE`] at a time with
    /// a few ranges in flight. Each piece holds its buffer permit until the
    /// caller drops it (once sent), so reads count against the server's
    /// buffers for as long as they are held.
    pub fn bytes(&self, range: Range<u64>) -> BoxStream<'static, Result<Piece, Refusal>> {
        let (start, end) = (range.start, range.end);
        let pieces = (start..end).step_by(usize::try_from(READ_RANGE).unwrap_or(usize::MAX));
        let (store, key, e_tag, buffers) = (
            Arc::clone(&self.store),
            self.key.clone(),
            self.e_tag.clone(),
            Arc::clone(&self.buffers),
        );
        stream::iter(pieces)
            .map(move |from| {
                let (store, key, e_tag, buffers) =
                    (Arc::clone(&store), key.clone(), e_tag.clone(), Arc::clone(&buffers));
                let to = from.saturating_add(READ_RANGE).min(end);
                async move {
                    let permit = buffers
                        .acquire_owned()
                        .await
                        .map_err(|_| Refusal::new(ErrorCode::Busy, "the server is shutting down"))?;
                    let options = GetOptions {
                        range: Some(GetRange::Bounded(from..to)),
                        if_match: e_tag,
                        ..GetOptions::default()
                    };
                    let got = store.get_opts(&key, options).await.map_err(|e| store_refusal(&e))?;
                    let bytes = got.bytes().await.map_err(|e| store_refusal(&e))?;
                    if bytes.len() as u64 == to - from {
                        Ok(Piece { bytes, _permit: permit })
                    } else {
                        Err(Refusal::new(ErrorCode::Io, "the object changed during the download"))
                    }
                }
            })
            .buffered(READS_AHEAD)
            .boxed()
    }
}

/// Bytes read from the store, holding their share of the server's buffers.
#[derive(Debug)]
pub struct Piece {
    pub bytes: Bytes,
    _permit: OwnedSemaphorePermit,
}

/// One upload in progress: its parts go to the store as they fill, a few
/// at a time, while the next one is received.
#[derive(Debug)]
pub struct ObjectUpload {
    root: Arc<ObjectRoot>,
    key: Key,
    plan: PartPlan,
    put: Put,
    /// Held until the upload is done with, its abort included.
    claim: Option<UploadClaim>,
    replace: bool,
    /// `None` for a file of one part: it is stored with a single put.
    upload_id: Option<String>,
    /// What the store acknowledged, shared with the part tasks.
    ledger: Arc<tokio::sync::Mutex<Ledger>>,
    next_part: usize,
    resumed: bool,
    sending: JoinSet<Result<(), Refusal>>,
    buffer: Vec<u8>,
    permit: Option<OwnedSemaphorePermit>,
    hash: StreamHash,
    /// With a resume: the hash of just the bytes received now.
    tail: Option<StreamHash>,
    md5: Option<Md5Hash>,
    received: u64,
    done: bool,
    /// How long a part buffer is waited for; `None`: as long as it takes.
    buffer_wait: Option<Duration>,
}

/// An upload's parts as the store acknowledged them, and the manifest
/// that records them. Each part's task enters its ETag as the store
/// answers, so progress is recorded even while the client is silent.
#[derive(Debug, Default)]
struct Ledger {
    /// ETags by part index (a resume starts with the kept ones); empty
    /// where a part is still in flight.
    etags: Vec<String>,
    /// The whole-file hash at the end of each part sent, by index.
    boundaries: Vec<String>,
    /// The SHA-256 of each sent part's last [`TAIL_PROOF`] bytes, by index.
    tails: Vec<String>,
    /// `Some` for a fresh `verify` upload: its manifest, kept up to date.
    /// A resumed upload records nothing new (its server did not hash the
    /// file from 0), so its next resume starts where this one did.
    manifest: Option<Manifest>,
    /// The most parts a manifest records: all but the last, which is only
    /// ever sent by the upload that completes.
    keepable: usize,
}

impl Ledger {
    fn stored_from_start(&self) -> usize {
        let stored = self.etags.iter().take_while(|e| !e.is_empty()).count();
        stored.min(self.keepable)
    }

    /// Enters a stored part, and writes the manifest when the parts
    /// stored from the start grew. The lock is held across the write, so
    /// manifests reach the store in order.
    async fn stored(&mut self, index: usize, etag: String, root: &ObjectRoot, path: &RelPath) {
        set_at(&mut self.etags, index, etag);
        let stored = self.stored_from_start();
        let last = stored.checked_sub(1);
        let hash = last.and_then(|i| self.boundaries.get(i)).cloned();
        let (Some(manifest), Some(hash)) = (self.manifest.as_mut(), hash) else {
            return;
        };
        if stored <= manifest.etags.len() {
            return;
        }
        manifest.etags = self.etags.get(..stored).unwrap_or_default().to_vec();
        manifest.prefix_xxh3 = hash;
        manifest.tail_sha256 = last.and_then(|i| self.tails.get(i)).cloned();
        if let Err(r) = root.write_manifest(path, manifest).await {
            tracing::info!(path = %path, error = %r.message, "cannot record an upload's progress");
        }
    }
}

impl ObjectUpload {
    /// Gives up with `busy` when a part buffer is not free within `wait`,
    /// for a sender that holds other shared resources meanwhile (the
    /// page's chunk slots). The upload is then only fit to keep.
    pub fn wait_for_buffers_at_most(&mut self, wait: Duration) {
        self.buffer_wait = Some(wait);
    }

    /// Takes the next bytes of the body.
    pub async fn write(&mut self, mut chunk: &[u8]) -> Result<(), Refusal> {
        while !chunk.is_empty() {
            if self.permit.is_none() {
                // A buffer takes one permit per 16 MiB it may hold (a part
                // is larger for a file past 160 GiB), all of them at most.
                let permits = self.plan.part_size.div_ceil(PART).min(BUFFERS as u64);
                let acquire = Arc::clone(&self.root.buffers).acquire_many_owned(u32::try_from(permits).unwrap_or(1));
                let acquired = match self.buffer_wait {
                    None => acquire.await,
                    Some(wait) => tokio::time::timeout(wait, acquire).await.map_err(|_| {
                        Refusal::new(ErrorCode::Busy, "the server's upload buffers are all in use; try again")
                    })?,
                };
                self.permit = Some(acquired.map_err(|_| Refusal::new(ErrorCode::Busy, "the server is shutting down"))?);
                let want = usize::try_from(self.plan.part_len(self.next_part as u64)).unwrap_or(0);
                self.buffer.reserve_exact(want);
            }
            let room = self.plan.part_size - self.received % self.plan.part_size;
            let take = chunk.len().min(usize::try_from(room).unwrap_or(usize::MAX));
            let (now, rest) = chunk.split_at(take);
            self.hash.update(now);
            if let Some(t) = &mut self.tail {
                t.update(now);
            }
            if let Some(m) = &mut self.md5 {
                m.update(now);
            }
            self.buffer.extend_from_slice(now);
            self.received += take as u64;
            chunk = rest;
            if self.received % self.plan.part_size == 0 && self.received < self.plan.filesize {
                self.send_part().await?;
            }
        }
        Ok(())
    }

    /// Sends the buffered part (a multipart upload's; never the last of a
    /// single-part file), waiting first if too many are in flight.
    async fn send_part(&mut self) -> Result<(), Refusal> {
        let Some(id) = self.upload_id.clone() else {
            return Ok(());
        };
        while self.sending.len() >= PARTS_IN_FLIGHT {
            self.collect_one().await?;
        }
        let index = self.next_part;
        self.next_part += 1;
        let data = Bytes::from(std::mem::take(&mut self.buffer));
        {
            let mut ledger = self.ledger.lock().await;
            if ledger.manifest.is_some() {
                // Parts are 5 MiB at least, so a part holds the whole proof.
                let proof = data
                    .len()
                    .saturating_sub(usize::try_from(TAIL_PROOF).unwrap_or(usize::MAX));
                let tail = hex(&Sha256::digest(data.get(proof..).unwrap_or_default()));
                set_at(&mut ledger.tails, index, tail);
                let hash = self.hash.hex();
                set_at(&mut ledger.boundaries, index, hash);
            }
        }
        let permit = self.permit.take();
        let (root, key, path, ledger) = (
            Arc::clone(&self.root),
            self.key.clone(),
            self.put.path.clone(),
            Arc::clone(&self.ledger),
        );
        self.sending.spawn(async move {
            let sent = root.store.put_part(&key, &id, index, PutPayload::from(data)).await;
            drop(permit);
            let part = sent.map_err(|e| store_refusal(&e))?;
            ledger.lock().await.stored(index, part.content_id, &root, &path).await;
            Ok(())
        });
        Ok(())
    }

    async fn collect_one(&mut self) -> Result<(), Refusal> {
        match self.sending.join_next().await {
            None => Ok(()),
            Some(Ok(sent)) => sent,
            Some(Err(_)) => Err(Refusal::new(ErrorCode::Io, "a part upload failed")),
        }
    }

    /// Completes an upload whose sender proved it piece by piece (the
    /// page: a SHA-256 per chunk, and its own check of the kept tail before
    /// it resumed). The stored file's XXH3 when this server saw all of it.
    pub async fn finish_proven(mut self) -> Result<Option<String>, Refusal> {
        self.check_length()?;
        let whole = self.tail.is_none().then(|| self.hash.hex());
        self.complete().await?;
        Ok(whole)
    }

    fn check_length(&self) -> Result<(), Refusal> {
        if self.received != self.plan.filesize {
            return Err(Refusal::new(ErrorCode::BadRequest, "the upload ended early"));
        }
        Ok(())
    }

    /// Checks what arrived against the client's claims and completes the
    /// upload, which makes it visible whole. The stored file's XXH3.
    pub async fn finish(mut self, claimed: Option<String>, tail_claimed: Option<String>) -> Result<String, Refusal> {
        self.check_length()?;
        let ours = self.hash.hex();
        let stored = match &self.tail {
            None => {
                if let Some(c) = claimed.as_ref().filter(|c| **c != ours) {
                    return Err(Refusal::new(
                        ErrorCode::ChecksumMismatch,
                        format!("xxh3 mismatch: client sent {c}, server received {ours}"),
                    ));
                }
                ours
            }
            // Resumed: the prefix was proven against the manifest, the
            // rest is proven here; the whole file is then the client's.
            Some(tail) => {
                let tail = tail.hex();
                match (tail_claimed, claimed) {
                    (Some(t), Some(whole)) if t == tail => whole,
                    (Some(t), _) => {
                        return Err(Refusal::new(
                            ErrorCode::ChecksumMismatch,
                            format!("xxh3 mismatch after the offset: client sent {t}, server received {tail}"),
                        ));
                    }
                    _ => {
                        return Err(Refusal::new(
                            ErrorCode::BadRequest,
                            "a resumed upload to an object store must send tail_xxh3 in its commit",
                        ));
                    }
                }
            }
        };
        if let (Some(claimed), Some(md5)) = (&self.put.md5, self.md5.take()) {
            let md5 = md5.hex();
            if *claimed != md5 {
                return Err(Refusal::new(
                    ErrorCode::ChecksumMismatch,
                    format!("md5 mismatch: header says {claimed}, server received {md5}"),
                ));
            }
        }
        self.complete().await?;
        Ok(stored)
    }

    /// Sends what is left and makes the object visible.
    async fn complete(&mut self) -> Result<(), Refusal> {
        match self.upload_id.clone() {
            None => {
                let data = Bytes::from(std::mem::take(&mut self.buffer));
                let mode = if self.replace {
                    PutMode::Overwrite
                } else {
                    PutMode::Create
                };
                let options = PutOptions {
                    mode,
                    ..PutOptions::default()
                };
                self.root
                    .store
                    .put_opts(&self.key, PutPayload::from(data), options)
                    .await
                    .map_err(|e| store_refusal(&e))?;
            }
            Some(id) => {
                self.send_part().await?;
                while !self.sending.is_empty() {
                    self.collect_one().await?;
                }
                // S3 completes without a condition: a drop box checks
                // first, which leaves a window for a racing upload.
                if !self.replace && self.root.store.head(&self.key).await.is_ok() {
                    return Err(Refusal::new(ErrorCode::AlreadyExists, "already exists"));
                }
                let parts = self
                    .ledger
                    .lock()
                    .await
                    .etags
                    .iter()
                    .map(|e| PartId { content_id: e.clone() })
                    .collect();
                self.root
                    .store
                    .complete_multipart(&self.key, &id, parts)
                    .await
                    .map_err(|e| store_refusal(&e))?;
                let _ = self.root.store.delete(&self.root.manifest_key(&self.put.path)).await;
            }
        }
        self.done = true;
        Ok(())
    }

    /// Keeps an interrupted `verify` upload for a resume: its manifest
    /// brought up to the parts stored from the start, once those in flight
    /// land. A resumed upload keeps the manifest it continued (its own new
    /// parts are sent again next time: only the first server hashed from
    /// 0). Without `verify` there is no resume, so the parts are aborted.
    pub async fn keep(mut self) {
        while !self.sending.is_empty() {
            if self.collect_one().await.is_err() {
                break;
            }
        }
        let Some(id) = self.upload_id.clone() else { return };
        self.done = true;
        if !self.put.trailer {
            self.root.drop_upload(&self.key, &self.put.path, &id).await;
            return;
        }
        // Kept: it counts against the bounds now, so the claim goes first.
        drop(self.claim.take());
        self.root.sweep(false).await;
    }
}

impl ObjectUpload {
    /// Abandons the upload and its parts now (a cancel): when this returns
    /// the name is free for the next upload.
    pub async fn abort(mut self) {
        if let Some(abort) = self.abandon() {
            abort.await;
        }
    }

    /// What abandoning the upload takes, unless it is done with: its part
    /// tasks end first (so none records the upload in a manifest after it
    /// is gone), then its parts and manifest go, then its claim.
    fn abandon(&mut self) -> Option<impl Future<Output = ()> + Send + 'static> {
        if self.done {
            return None;
        }
        self.done = true;
        let id = self.upload_id.clone()?;
        let (root, key, path) = (Arc::clone(&self.root), self.key.clone(), self.put.path.clone());
        let claim = self.claim.take();
        let mut sending = std::mem::take(&mut self.sending);
        sending.abort_all();
        Some(async move {
            while sending.join_next().await.is_some() {}
            root.drop_upload(&key, &path, &id).await;
            drop(claim);
        })
    }
}

impl Drop for ObjectUpload {
    /// Refused or abandoned without `finish`, `keep` or `abort`: its parts
    /// are aborted in the background.
    fn drop(&mut self) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if let Some(abort) = self.abandon() {
            rt.spawn(abort);
        }
    }
}

/// Sets `list[index]`, growing the list as needed.
fn set_at(list: &mut Vec<String>, index: usize, value: String) {
    if list.len() <= index {
        list.resize(index + 1, String::new());
    }
    if let Some(slot) = list.get_mut(index) {
        *slot = value;
    }
}

fn folder_entry(path: String, mtime: i64) -> Entry {
    Entry {
        path,
        kind: EntryKind::Dir,
        size: 0,
        mtime,
    }
}

fn file_entry(path: String, meta: &ObjectMeta) -> Entry {
    Entry {
        path,
        kind: EntryKind::File,
        size: meta.size,
        mtime: meta.last_modified.timestamp(),
    }
}

/// The one mapping from store errors to wire errors; the store's own text
/// (which names the bucket and endpoint) goes to the log only.
pub fn store_refusal(e: &object_store::Error) -> Refusal {
    match e {
        object_store::Error::NotFound { .. } => Refusal::new(ErrorCode::NotFound, "no such file or folder"),
        object_store::Error::AlreadyExists { .. } => Refusal::new(ErrorCode::AlreadyExists, "already exists"),
        object_store::Error::Precondition { .. } => {
            Refusal::new(ErrorCode::Busy, "the file changed meanwhile; try again")
        }
        e => {
            tracing::warn!(error = %e, "object store error");
            Refusal::new(ErrorCode::Io, "object store error")
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
