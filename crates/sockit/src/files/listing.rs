//! `ls`: a folder walk that produces its listing a page at a time.
//!
//! A listing is never built whole in memory: the walk holds one open folder
//! per level it has descended, and each call to [`Listing::next_page`]
//! produces at most about one page of JSON. A peer that never reads holds
//! one page, not the listing. Totals are capped in entries and bytes, and
//! the walk in depth (an open folder per level).
//!
//! Entries come in the order the filesystem gives them, parents before
//! their contents; clients sort for display. Symlinks are listed only when
//! they resolve inside the root (through the sandbox), and never descended.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt as _;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use sockit_proto::files::{Entry, EntryKind};
use sockit_proto::path::{RESERVED_DIR, RelPath};

use crate::sandbox::{SandboxError, Tree};

/// Entries one `ls` may return: 100,000 is about 10 MiB of JSON.
pub const DEFAULT_MAX_LISTING: usize = 100_000;
/// Bytes of JSON one `ls` may send in all (long paths make big entries).
pub const DEFAULT_MAX_LISTING_BYTES: u64 = 64 * 1024 * 1024;
/// JSON bytes per page: a page is what a listing holds in memory.
pub const PAGE_BYTES: usize = 64 * 1024;
/// Folder levels a recursive listing descends; each holds an open folder.
pub const MAX_DEPTH: usize = 128;

/// Why a listing stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ListingError {
    #[error("more than {0} entries; list a sub-folder")]
    TooManyEntries(usize),
    #[error("listing larger than {0} bytes; list a sub-folder")]
    TooManyBytes(u64),
    #[error("folders nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
}

#[derive(Debug, Clone, Copy)]
pub struct ListingLimits {
    pub max_entries: usize,
    pub max_bytes: u64,
}

impl Default for ListingLimits {
    fn default() -> Self {
        Self {
            max_entries: DEFAULT_MAX_LISTING,
            max_bytes: DEFAULT_MAX_LISTING_BYTES,
        }
    }
}

/// A walk in progress.
#[derive(Debug)]
pub struct Listing {
    /// The folder listed, relative to the root.
    base: RelPath,
    recursive: bool,
    limits: ListingLimits,
    levels: Vec<Level>,
    entries: usize,
    bytes: u64,
}

#[derive(Debug)]
struct Level {
    entries: Dir,
    /// Handle for `*at` calls on this folder's entries.
    dir: OwnedFd,
    /// Path of this folder relative to the folder listed ("" at the top).
    prefix: String,
    /// This folder is the root: its listing hides the private folder.
    is_root: bool,
}

impl Listing {
    /// Opens the folder `base` (which must be one) for listing.
    pub fn open(tree: &Tree, base: &RelPath, recursive: bool, limits: ListingLimits) -> Result<Self, ListingError> {
        let opened = tree.open_dir(base)?;
        let level = Level::new(opened.dir, String::new(), opened.is_root)?;
        Ok(Self {
            base: base.clone(),
            recursive,
            limits,
            levels: vec![level],
            entries: 0,
            bytes: 0,
        })
    }

    /// The next page: a JSON array of entries, and whether the walk is done.
    pub fn next_page(&mut self, tree: &Tree) -> Result<(Vec<u8>, bool), ListingError> {
        let mut page = Vec::with_capacity(PAGE_BYTES + 4096);
        page.push(b'[');
        let mut first = true;
        while page.len() < PAGE_BYTES {
            let Some(level) = self.levels.last_mut() else { break };
            let Some(item) = level.entries.next() else {
                self.levels.pop();
                continue;
            };
            let item = item.map_err(SandboxError::from)?;
            let name = item.file_name().to_bytes();
            if name == b"." || name == b".." || (level.is_root && name == RESERVED_DIR.as_bytes()) {
                continue;
            }
            // Not UTF-8: cannot be named in a JSON header.
            let Ok(name) = std::str::from_utf8(name) else { continue };
            let rel = if level.prefix.is_empty() {
                name.to_owned()
            } else {
                format!("{}/{name}", level.prefix)
            };
            let Some((stat, is_link)) = self.stat_entry(tree, &rel, name)? else {
                continue;
            };
            let entry = entry_of(rel.clone(), &stat);
            if self.recursive && entry.kind == EntryKind::Dir && !is_link {
                self.descend(name, rel)?;
            }
            let json = serde_json::to_vec(&entry).map_err(|e| SandboxError::Io(std::io::Error::other(e)))?;
            self.entries += 1;
            self.bytes += json.len() as u64 + 1;
            if self.entries > self.limits.max_entries {
                return Err(ListingError::TooManyEntries(self.limits.max_entries));
            }
            if self.bytes > self.limits.max_bytes {
                return Err(ListingError::TooManyBytes(self.limits.max_bytes));
            }
            if !first {
                page.push(b',');
            }
            first = false;
            page.extend_from_slice(&json);
        }
        page.push(b']');
        Ok((page, self.levels.is_empty()))
    }

    /// What an entry is; `None` for a symlink that leaves the root (or
    /// dangles), which is not listed. Link targets are checked through the
    /// sandbox, from the root, like any name a peer could send.
    fn stat_entry(&self, tree: &Tree, rel: &str, name: &str) -> Result<Option<(Stat, bool)>, ListingError> {
        let Some(level) = self.levels.last() else {
            return Ok(None);
        };
        let stat = match rustix::fs::statat(&level.dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(s) => s,
            // Gone since the folder was read.
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(SandboxError::from(e).into()),
        };
        if FileType::from_raw_mode(stat.st_mode) != FileType::Symlink {
            return Ok(Some((stat, false)));
        }
        let full = if self.base.is_root() {
            rel.to_owned()
        } else {
            format!("{}/{rel}", self.base)
        };
        let Ok(path) = RelPath::parse(&full) else {
            return Ok(None);
        };
        match tree.stat(&path) {
            Ok(target) => Ok(Some((target, true))),
            Err(_) => Ok(None),
        }
    }

    fn descend(&mut self, name: &str, rel: String) -> Result<(), ListingError> {
        if self.levels.len() >= MAX_DEPTH {
            return Err(ListingError::TooDeep);
        }
        let Some(level) = self.levels.last() else { return Ok(()) };
        let opened = rustix::fs::openat(
            &level.dir,
            OsStr::from_bytes(name.as_bytes()),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        );
        match opened {
            Ok(fd) => {
                self.levels.push(Level::new(fd, rel, false)?);
                Ok(())
            }
            // Removed, or swapped for a link, since it was read: skip it.
            Err(Errno::NOENT | Errno::LOOP | Errno::NOTDIR) => Ok(()),
            Err(e) => Err(SandboxError::from(e).into()),
        }
    }
}

impl Level {
    fn new(dir: OwnedFd, prefix: String, is_root: bool) -> Result<Self, SandboxError> {
        let entries = Dir::new(dir.try_clone()?)?;
        Ok(Self {
            entries,
            dir,
            prefix,
            is_root,
        })
    }
}

/// An entry as `ls` and `stat` report it.
pub fn entry_of(path: String, stat: &Stat) -> Entry {
    let kind = match FileType::from_raw_mode(stat.st_mode) {
        FileType::Directory => EntryKind::Dir,
        FileType::RegularFile => EntryKind::File,
        _ => EntryKind::Other,
    };
    Entry {
        path,
        kind,
        size: if kind == EntryKind::File {
            u64::try_from(stat.st_size).unwrap_or(0)
        } else {
            0
        },
        mtime: stat.st_mtime,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::sandbox::Sandbox;

    fn all(
        tree: &Tree,
        base: &str,
        recursive: bool,
        limits: ListingLimits,
    ) -> Result<(Vec<Entry>, usize), ListingError> {
        let mut l = Listing::open(tree, &RelPath::parse_dir(base).unwrap(), recursive, limits)?;
        let mut out = Vec::new();
        let mut pages = 0;
        loop {
            let (page, done) = l.next_page(tree)?;
            pages += 1;
            out.extend(serde_json::from_slice::<Vec<Entry>>(&page).unwrap());
            if done {
                return Ok((out, pages));
            }
        }
    }

    #[test]
    fn a_big_tree_comes_in_pages_and_the_caps_hold() {
        let dir = tempfile::tempdir().unwrap();
        let sb = Sandbox::open(&dir.path().join("root")).unwrap();
        let root = sb.root().to_owned();
        let long = "x".repeat(200);
        std::fs::create_dir_all(root.join(&long)).unwrap();
        for i in 0..2000 {
            std::fs::write(root.join(&long).join(format!("{long}{i}")), b"").unwrap();
        }
        std::fs::create_dir_all(root.join(".sockit/partial")).unwrap();
        let (entries, pages) = all(sb.tree(), "", true, ListingLimits::default()).unwrap();
        assert_eq!(entries.len(), 2001);
        assert!(pages > 5, "{pages} pages");
        assert!(entries.iter().all(|e| !e.path.starts_with(".sockit")));
        let small = ListingLimits {
            max_entries: 100,
            max_bytes: u64::MAX,
        };
        assert!(matches!(
            all(sb.tree(), "", true, small),
            Err(ListingError::TooManyEntries(100))
        ));
        let small = ListingLimits {
            max_entries: usize::MAX,
            max_bytes: 100_000,
        };
        assert!(matches!(
            all(sb.tree(), "", true, small),
            Err(ListingError::TooManyBytes(_))
        ));
    }

    #[test]
    fn links_inside_are_listed_not_descended_and_links_out_are_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let sb = Sandbox::open(&dir.path().join("root")).unwrap();
        let root = sb.root().to_owned();
        std::fs::create_dir(root.join("d")).unwrap();
        std::fs::write(root.join("d/f"), b"123").unwrap();
        std::os::unix::fs::symlink("d", root.join("alias")).unwrap();
        std::os::unix::fs::symlink(".", root.join("current")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("out")).unwrap();
        std::fs::create_dir_all(root.join(".sockit")).unwrap();
        let (mut entries, _) = all(sb.tree(), "", true, ListingLimits::default()).unwrap();
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        let names: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(names, ["alias", "current", "d", "d/f"]);
        let (entries, _) = all(sb.tree(), "current", false, ListingLimits::default()).unwrap();
        assert!(entries.iter().all(|e| e.path != ".sockit"));
    }
}
