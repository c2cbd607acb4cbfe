//! Files on an object store (docs/protocol.md §3.6): where the served
//! folder lives (`s3://bucket/prefix`), how an upload is cut into the parts
//! of a multipart upload, and the manifest that lets any server continue an
//! interrupted one.
//!
//! An object store has no rename and no partial files. An upload is a
//! multipart upload of its final key, which stays invisible until it is
//! completed, and it is completed only once the whole file arrived and
//! matched its hash. What an interrupted upload kept is its finished parts,
//! listed with their ETags in a manifest object under the private prefix
//! `.sockit/uploads/`, with the hash of the bytes they hold: a resume on any
//! server proves its prefix against that hash, and the bytes it sends
//! against a hash of just them, because no server can read back the parts of
//! an unfinished upload to hash the whole file.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::path::{RESERVED_DIR, RelPath};
#[cfg(doc)]
use crate::web::TAIL_PROOF;

/// The smallest part an S3 multipart upload accepts (all but the last).
pub const MIN_PART: u64 = 5 << 20;
/// The part size for files that fit 10,000 of them.
pub const PART: u64 = 16 << 20;
/// S3's limit on the parts of one upload.
pub const MAX_PARTS: u64 = 10_000;
/// The largest object S3 stores (5 TiB).
pub const MAX_OBJECT: u64 = 5 << 40;
/// A manifest larger than this is not ours.
pub const MAX_MANIFEST: usize = 2 << 20;
const MAX_ETAG: usize = 256;
const MAX_UPLOAD_ID: usize = 1024;

/// Where an object-store root is: `s3://bucket` or `s3://bucket/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreUrl {
    pub bucket: String,
    /// The key prefix every name is stored under, without slashes at
    /// either end; empty for the whole bucket.
    pub prefix: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreUrlError {
    #[error("not an object-store URL: it must start with s3://")]
    Scheme,
    #[error("the bucket name must be 3 to 63 lowercase letters, digits, dots or hyphens")]
    Bucket,
    #[error("the prefix has an empty, '.' or '..' segment")]
    Prefix,
}

impl StoreUrl {
    /// Whether `root` names an object store rather than a local folder.
    pub fn is_store(root: &str) -> bool {
        root.contains("://")
    }

    pub fn parse(url: &str) -> Result<Self, StoreUrlError> {
        let rest = url.strip_prefix("s3://").ok_or(StoreUrlError::Scheme)?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if !valid_bucket {
            return Err(StoreUrlError::Bucket);
        }
        let prefix = prefix.trim_matches('/');
        if !prefix.is_empty()
            && prefix
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == ".." || s.chars().any(char::is_control))
        {
            return Err(StoreUrlError::Prefix);
        }
        Ok(Self {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}", self.bucket)?;
        if !self.prefix.is_empty() {
            write!(f, "/{}", self.prefix)?;
        }
        Ok(())
    }
}

/// The private segments under the root where manifests live, as path
/// components (the first is the one name no peer may use).
pub fn manifest_dir() -> [&'static str; 2] {
    [RESERVED_DIR, "uploads"]
}

/// The manifest's name for an upload of `path`: the SHA-256 of the path,
/// so one flat folder holds every upload, no name needs escaping, and a
/// long path still makes a short key (S3 keys end at 1,024 bytes). The
/// path itself is inside the manifest, and checked on reading.
pub fn manifest_name(path: &RelPath) -> String {
    use sha2::Digest as _;
    format!(
        "{}.json",
        crate::checksum::hex(&sha2::Sha256::digest(path.to_string().as_bytes()))
    )
}

/// How an upload of `filesize` bytes is cut into parts: equal parts of
/// `part_size` and a shorter last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartPlan {
    pub filesize: u64,
    pub part_size: u64,
}

impl PartPlan {
    /// 16 MiB parts, larger (in whole MiB) for a file that would need more
    /// than 10,000 of them; `None` past the largest object.
    pub fn for_size(filesize: u64) -> Option<Self> {
        if filesize > MAX_OBJECT {
            return None;
        }
        let needed = filesize.div_ceil(MAX_PARTS).next_multiple_of(1 << 20);
        Some(Self {
            filesize,
            part_size: needed.max(PART),
        })
    }

    /// How many parts the whole file takes (at least one: an empty file is
    /// one empty part).
    pub fn parts(&self) -> u64 {
        self.filesize.div_ceil(self.part_size).max(1)
    }

    /// Bytes in the part at `index` (0-based).
    pub fn part_len(&self, index: u64) -> u64 {
        let start = index.saturating_mul(self.part_size);
        self.filesize.saturating_sub(start).min(self.part_size)
    }

    /// How many parts a manifest may record: all but the last, so a
    /// resume always sends the last part and completes.
    pub fn keepable_parts(&self) -> u64 {
        self.parts() - 1
    }
}

/// What an interrupted multipart upload kept, stored as JSON in the store
/// itself, so whichever server a resume reaches can continue it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The path uploaded (its name is only a hash of it).
    pub path: String,
    /// The store's id of the multipart upload.
    pub upload_id: String,
    pub filesize: u64,
    pub part_size: u64,
    /// The ETag of each finished part, in order from the first.
    pub etags: Vec<String>,
    /// XXH3-128 (hex) of the bytes the finished parts hold.
    pub prefix_xxh3: String,
    /// SHA-256 (hex) of the last [`TAIL_PROOF`] bytes the finished parts
    /// hold: what the page compares with its own file before it resumes.
    /// Absent before the first part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail_sha256: Option<String>,
    /// Which server process last wrote it (a random id): the one that
    /// knows whether the upload still runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer: Option<String>,
    /// Unix seconds when the upload started, to sweep abandoned ones.
    pub started: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest larger than {MAX_MANIFEST} bytes")]
    TooLarge,
    #[error("manifest is not valid JSON: {0}")]
    Json(String),
    #[error("manifest does not describe an upload: {0}")]
    Invalid(&'static str),
}

impl Manifest {
    pub fn plan(&self) -> PartPlan {
        PartPlan {
            filesize: self.filesize,
            part_size: self.part_size,
        }
    }

    /// Where a resume of this upload continues.
    pub fn offset(&self) -> u64 {
        self.etags.len() as u64 * self.part_size
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Total: anything a store hands back is checked before it is used.
    pub fn decode(bytes: &[u8]) -> Result<Self, ManifestError> {
        if bytes.len() > MAX_MANIFEST {
            return Err(ManifestError::TooLarge);
        }
        let m: Self = serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
        let plan = PartPlan::for_size(m.filesize).ok_or(ManifestError::Invalid("file too large"))?;
        if m.part_size < MIN_PART || m.part_size < plan.part_size {
            return Err(ManifestError::Invalid("part size"));
        }
        if RelPath::parse(&m.path).is_err() {
            return Err(ManifestError::Invalid("path"));
        }
        if m.etags.len() as u64 > m.plan().keepable_parts() {
            return Err(ManifestError::Invalid("more parts than the file leaves room for"));
        }
        if m.upload_id.is_empty() || m.upload_id.len() > MAX_UPLOAD_ID {
            return Err(ManifestError::Invalid("upload id"));
        }
        if m.etags.iter().any(|e| e.is_empty() || e.len() > MAX_ETAG) {
            return Err(ManifestError::Invalid("etag"));
        }
        if !is_hex(&m.prefix_xxh3, 32) {
            return Err(ManifestError::Invalid("prefix hash"));
        }
        if m.tail_sha256.as_ref().is_some_and(|t| !is_hex(t, 64)) {
            return Err(ManifestError::Invalid("tail hash"));
        }
        if m.writer.as_ref().is_some_and(|w| !is_hex(w, 32)) {
            return Err(ManifestError::Invalid("writer"));
        }
        Ok(m)
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = StoreUrl::parse("s3://my-bucket/a/b/").unwrap();
        assert_eq!((u.bucket.as_str(), u.prefix.as_str()), ("my-bucket", "a/b"));
        assert_eq!(u.to_string(), "s3://my-bucket/a/b");
        assert_eq!(StoreUrl::parse("s3://bkt").unwrap().prefix, "");
        assert_eq!(StoreUrl::parse("/srv/files"), Err(StoreUrlError::Scheme));
        assert_eq!(StoreUrl::parse("gs://bkt"), Err(StoreUrlError::Scheme));
        assert_eq!(StoreUrl::parse("s3://Bad_Bucket"), Err(StoreUrlError::Bucket));
        assert_eq!(StoreUrl::parse("s3://ab"), Err(StoreUrlError::Bucket));
        assert_eq!(StoreUrl::parse("s3://bkt/a//b"), Err(StoreUrlError::Prefix));
        assert_eq!(StoreUrl::parse("s3://bkt/a/../b"), Err(StoreUrlError::Prefix));
        assert!(StoreUrl::is_store("s3://bkt") && !StoreUrl::is_store("./files"));
    }

    #[test]
    fn plans() {
        let p = PartPlan::for_size(40 << 20).unwrap();
        assert_eq!((p.part_size, p.parts(), p.part_len(2)), (PART, 3, 8 << 20));
        assert_eq!(p.part_len(3), 0);
        let empty = PartPlan::for_size(0).unwrap();
        assert_eq!((empty.parts(), empty.part_len(0)), (1, 0));
        // A file needing more than 10,000 parts of 16 MiB gets bigger ones.
        let huge = PartPlan::for_size(1 << 40).unwrap();
        assert!(huge.parts() <= MAX_PARTS && huge.part_size % (1 << 20) == 0);
        assert!(PartPlan::for_size(MAX_OBJECT + 1).is_none());
        // A manifest never records the last part.
        assert_eq!(p.keepable_parts(), 2);
        let exact = PartPlan::for_size(32 << 20).unwrap();
        assert_eq!(exact.keepable_parts(), 1);
        assert_eq!(empty.keepable_parts(), 0);
    }

    fn manifest() -> Manifest {
        Manifest {
            path: "a/b.bin".into(),
            upload_id: "abc".into(),
            filesize: 40 << 20,
            part_size: PART,
            etags: vec!["\"e1\"".into()],
            prefix_xxh3: "0123456789abcdef0123456789abcdef".into(),
            tail_sha256: Some("ab".repeat(32)),
            writer: Some("cd".repeat(16)),
            started: 1,
        }
    }

    #[test]
    fn manifests_round_trip_and_refuse_what_is_not_one() {
        let m = manifest();
        assert_eq!(Manifest::decode(&m.encode()).unwrap(), m);
        assert_eq!(m.offset(), PART);
        let bad = |f: fn(&mut Manifest)| {
            let mut m = manifest();
            f(&mut m);
            Manifest::decode(&m.encode())
        };
        assert!(bad(|m| m.part_size = 1 << 20).is_err());
        assert!(bad(|m| m.etags = vec!["x".into(); 3]).is_err());
        assert!(bad(|m| m.etags = vec![String::new()]).is_err());
        assert!(bad(|m| m.upload_id.clear()).is_err());
        assert!(bad(|m| m.path = "../x".into()).is_err());
        assert!(bad(|m| m.etags = vec!["x".into(); 2]).is_ok());
        assert!(bad(|m| m.prefix_xxh3 = "zz".into()).is_err());
        assert!(bad(|m| m.tail_sha256 = Some("ab".into())).is_err());
        assert!(
            bad(|m| m.tail_sha256 = None).is_ok(),
            "a manifest before its first part has none"
        );
        assert!(bad(|m| m.writer = Some("server-1".into())).is_err());
        assert!(bad(|m| m.filesize = MAX_OBJECT + 1).is_err());
        assert!(Manifest::decode(b"{}").is_err());
        assert!(Manifest::decode(b"\xff").is_err());
        assert!(Manifest::decode(&vec![b' '; MAX_MANIFEST + 1]).is_err());
    }

    #[test]
    fn manifest_names_are_flat() {
        let name = manifest_name(&RelPath::parse("a/b c").unwrap());
        assert!(!name.contains('/') && name.ends_with(".json"));
        let long = RelPath::parse(&"x/".repeat(1500)).unwrap();
        assert_eq!(manifest_name(&long).len(), 64 + 5);
        assert_ne!(name, manifest_name(&RelPath::parse("a/b d").unwrap()));
    }
}
