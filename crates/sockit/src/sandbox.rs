//! The only path from a peer-supplied name to the filesystem.
//!
//! A [`RelPath`] has already passed the lexical rules (no `..`, no absolute
//! path, no NUL or backslash, not the private folder). Here every name is
//! resolved *under an open handle of the root*, one component at a time,
//! never by a path string walked again later:
//!
//! - The fast path is one `openat2` with `RESOLVE_BENEATH |
//!   RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`: the kernel itself refuses
//!   to leave the root.
//! - When the name goes through a symlink (or the kernel has no `openat2`),
//!   the walk is done here: each component is opened with `O_NOFOLLOW`
//!   relative to the previous one, and a symlink's target is read from the
//!   link just opened and spliced into the walk. `..` may climb back only as
//!   far as the root, and the private folder is refused wherever the walk
//!   stands at the root, so `current -> .` cannot reach it.
//!
//! Because each step opens relative to the handle of the step before, a
//! local user who swaps a folder for a symlink mid-request changes nothing:
//! the walk either sees the symlink (and checks where it leads) or holds
//! the real folder already. Files are opened with `O_NONBLOCK | O_NOFOLLOW`
//! and their type is checked on the open handle (`fstat`), so a named pipe
//! or a device is refused instead of blocking a thread in `open(2)`.
//!
//! Every operation runs on the blocking pool behind a [`Gate`]: at most
//! [`DEFAULT_DISK_OPS`] at once and a deadline each, so a hung filesystem
//! costs a refusal, not the runtime.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;
use tokio::sync::Semaphore;

use sockit_proto::path::{RESERVED_DIR, RelPath};

/// Filesystem operations in flight at once across a server. Each holds a
/// blocking-pool thread while it runs; this bound keeps the pool (512
/// threads) from ever being exhausted by peers, whatever the filesystem does.
pub const DEFAULT_DISK_OPS: usize = 64;
/// Longest a filesystem operation may take, waiting for a slot included,
/// before the peer is told the server is busy. Local disks answer in
/// milliseconds; this only fires on a hung network filesystem.
pub const DEFAULT_DISK_DEADLINE: Duration = Duration::from_secs(20);
/// Symlinks followed in one name, as the kernel's own limit (ELOOP).
const MAX_LINKS: u32 = 40;

/// Why a name cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("path leaves the served folder")]
    Escapes,
    #[error("not a regular file (a pipe, device or socket)")]
    NotRegular,
    #[error("the filesystem did not answer within {}s", .0.as_secs())]
    Timeout(Duration),
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl From<Errno> for SandboxError {
    fn from(e: Errno) -> Self {
        Self::Io(e.into())
    }
}

/// Bounds the filesystem work peers can cause: how many operations run at
/// once, and how long each may take.
#[derive(Debug, Clone)]
pub struct Gate {
    permits: Arc<Semaphore>,
    deadline: Duration,
}

impl Default for Gate {
    fn default() -> Self {
        Self::new(DEFAULT_DISK_OPS, DEFAULT_DISK_DEADLINE)
    }
}

impl Gate {
    pub fn new(ops: usize, deadline: Duration) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(ops.max(1))),
            deadline,
        }
    }

    /// Runs `op` to its end once a slot is free: the deadline covers only
    /// the wait for a slot. For an operation whose outcome the peer must
    /// hear truly (a commit): past a deadline it would still land, after
    /// the peer was told it had not.
    pub async fn run_to_end<T, F>(&self, op: F) -> Result<T, SandboxError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, SandboxError> + Send + 'static,
    {
        let permit = tokio::time::timeout(self.deadline, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| SandboxError::Timeout(self.deadline))?
            .map_err(io::Error::other)?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            op()
        })
        .await
        .map_err(io::Error::other)?
    }

    /// Runs `op` on the blocking pool once a slot is free. The slot stays
    /// taken until `op` returns, even past the deadline: a thread stuck in
    /// the kernel still counts against the bound.
    pub async fn run<T, F>(&self, op: F) -> Result<T, SandboxError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, SandboxError> + Send + 'static,
    {
        let work = async {
            let permit = self.permits.clone().acquire_owned().await.map_err(io::Error::other)?;
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                op()
            })
            .await
            .map_err(io::Error::other)?
        };
        tokio::time::timeout(self.deadline, work)
            .await
            .unwrap_or(Err(SandboxError::Timeout(self.deadline)))
    }
}

/// A served folder: its open handle and the gate its operations pass.
#[derive(Debug, Clone)]
pub struct Sandbox {
    tree: Arc<Tree>,
    gate: Gate,
}

impl Sandbox {
    /// Opens (creating if needed) the root folder.
    pub fn open(root: &Path) -> io::Result<Self> {
        Self::with_gate(root, Gate::default())
    }

    pub fn with_gate(root: &Path, gate: Gate) -> io::Result<Self> {
        Ok(Self {
            tree: Arc::new(Tree::open(root)?),
            gate,
        })
    }

    /// The canonical root, for logs and as a working folder.
    pub fn root(&self) -> &Path {
        &self.tree.root_path
    }

    pub fn tree(&self) -> &Arc<Tree> {
        &self.tree
    }

    /// Runs `op` against the tree on the blocking pool, through the gate:
    /// the one way async code touches the served folder.
    pub async fn run<T, F>(&self, op: F) -> Result<T, SandboxError>
    where
        T: Send + 'static,
        F: FnOnce(&Tree) -> Result<T, SandboxError> + Send + 'static,
    {
        let tree = Arc::clone(&self.tree);
        self.gate.run(move || op(&tree)).await
    }

    /// Like [`run`](Self::run), but once started `op` is waited for to its
    /// end ([`Gate::run_to_end`]): for commits.
    pub async fn run_to_end<T, F>(&self, op: F) -> Result<T, SandboxError>
    where
        T: Send + 'static,
        F: FnOnce(&Tree) -> Result<T, SandboxError> + Send + 'static,
    {
        let tree = Arc::clone(&self.tree);
        self.gate.run_to_end(move || op(&tree)).await
    }

    /// Opens a regular file for reading, with its size.
    pub async fn open_file(&self, path: &RelPath) -> Result<(File, u64), SandboxError> {
        let path = path.clone();
        self.run(move |t| t.open_file(&path)).await
    }

    /// Opens a regular file; one of at most `max` bytes is read whole in
    /// the same trip to the blocking pool.
    pub async fn open_small(&self, path: &RelPath, max: u64) -> Result<Opened, SandboxError> {
        let path = path.clone();
        self.run(move |t| {
            let (file, size) = t.open_file(&path)?;
            if size > max {
                return Ok(Opened::File(file, size));
            }
            Ok(Opened::Whole(read_exactly(file, size)?))
        })
        .await
    }

    pub async fn stat(&self, path: &RelPath) -> Result<Stat, SandboxError> {
        let path = path.clone();
        self.run(move |t| t.stat(&path)).await
    }
}

/// A file opened by [`Sandbox::open_small`].
#[derive(Debug)]
pub enum Opened {
    /// Its whole content (it was small).
    Whole(Vec<u8>),
    /// The open file and its size, to stream.
    File(File, u64),
}

/// Reads exactly the `size` bytes a file had when opened: one that shrank
/// meanwhile is an error (the size was promised), one that grew is cut
/// there.
fn read_exactly(file: File, size: u64) -> io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut data = Vec::with_capacity(usize::try_from(size).map_err(io::Error::other)?);
    file.take(size).read_to_end(&mut data)?;
    if data.len() as u64 != size {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "file shrank while being read",
        ));
    }
    Ok(data)
}

/// The root's handle and the synchronous operations under it. Call these
/// only on a blocking thread (through [`Sandbox::run`]).
#[derive(Debug)]
pub struct Tree {
    root: OwnedFd,
    root_path: PathBuf,
}

/// Where a walk ends: the folder holding the last component.
#[derive(Debug)]
pub struct Parent {
    pub dir: OwnedFd,
    /// The last component, to use with `*at` calls on `dir`.
    pub name: String,
    /// `dir` is the root itself (so `name` must not be the private folder,
    /// which the walk has already checked).
    pub at_root: bool,
}

/// A folder opened for listing.
#[derive(Debug)]
pub struct OpenDir {
    pub dir: OwnedFd,
    /// It is the root: its listing must hide the private folder.
    pub is_root: bool,
}

/// What the walk opens at its end.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// The object itself, with these flags (a final symlink is followed).
    Open(OFlags),
    /// The folder holding it; with `follow`, a final symlink is followed
    /// first (put and mkdir land where the link points).
    Parent { follow: bool },
}

#[derive(Debug)]
enum Walked {
    Opened { fd: OwnedFd, is_root: bool },
    Parent(Parent),
}

/// Whether the kernel has `openat2`; cleared at the first ENOSYS.
static HAVE_OPENAT2: AtomicBool = AtomicBool::new(true);

impl Tree {
    fn open(root: &Path) -> io::Result<Self> {
        // create_dir_all's own error for a file here is "File exists".
        if root.exists() && !root.is_dir() {
            return Err(io::Error::new(io::ErrorKind::NotADirectory, "not a folder"));
        }
        let created = !root.exists();
        std::fs::create_dir_all(root)?;
        let root_path = std::fs::canonicalize(root)?;
        let root = rustix::fs::open(&root_path, dir_flags(), Mode::empty())?;
        if created {
            crate::privileges::hand_over(&root);
        }
        Ok(Self { root, root_path })
    }

    pub fn root_path(&self) -> &Path {
        &self.root_path
    }

    /// Opens a regular file for reading. The type is checked on the open
    /// handle: nothing else can have been swapped in between.
    pub fn open_file(&self, path: &RelPath) -> Result<(File, u64), SandboxError> {
        // A look first, through O_PATH, which opens nothing: a device node
        // is refused before an open(2) that could have side effects.
        check_regular(self.stat(path)?.st_mode)?;
        let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY;
        let fd = self.open_object(path, flags)?.0;
        // Again on the handle opened: something may have been swapped in.
        let stat = rustix::fs::fstat(&fd)?;
        check_regular(stat.st_mode)?;
        // Regular files never block; clear O_NONBLOCK so reads are plain.
        rustix::fs::fcntl_setfl(&fd, OFlags::empty())?;
        Ok((File::from(fd), u64::try_from(stat.st_size).unwrap_or(0)))
    }

    /// What `path` is, following a final symlink that stays inside.
    pub fn stat(&self, path: &RelPath) -> Result<Stat, SandboxError> {
        let fd = self.open_object(path, OFlags::PATH)?.0;
        Ok(rustix::fs::fstat(&fd)?)
    }

    /// Opens a folder for reading its entries.
    pub fn open_dir(&self, path: &RelPath) -> Result<OpenDir, SandboxError> {
        let (dir, is_root) = self.open_object(path, OFlags::RDONLY | OFlags::DIRECTORY)?;
        Ok(OpenDir { dir, is_root })
    }

    /// The folder holding `path` and its last name. With `follow`, a final
    /// symlink that stays inside is followed first.
    pub fn parent(&self, path: &RelPath, follow: bool) -> Result<Parent, SandboxError> {
        match self.walk(path, Want::Parent { follow }, false)? {
            Walked::Parent(p) => Ok(p),
            // The name led back to a folder itself (a link to `.`).
            Walked::Opened { .. } => Err(io::Error::from(io::ErrorKind::IsADirectory).into()),
        }
    }

    /// Creates `path` and any missing parents as folders.
    pub fn make_dirs(&self, path: &RelPath) -> Result<(), SandboxError> {
        if path.is_root() {
            return Ok(());
        }
        match self.walk(path, Want::Open(OFlags::PATH | OFlags::DIRECTORY), true)? {
            Walked::Opened { .. } => Ok(()),
            Walked::Parent(_) => Err(io::Error::from(io::ErrorKind::NotADirectory).into()),
        }
    }

    /// The folder that will hold `path` (created with its parents), its
    /// last name, and a check that no folder already has that name.
    pub fn place_for(&self, path: &RelPath) -> Result<Parent, SandboxError> {
        // Most uploads land in a folder that exists: one walk in the
        // kernel. Only a missing folder costs the walk that creates it.
        let place = match self.parent(path, true) {
            Err(SandboxError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {
                self.make_dirs(&path.parent())?;
                self.parent(path, true)?
            }
            found => found?,
        };
        match rustix::fs::statat(&place.dir, place.name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                Err(io::Error::from(io::ErrorKind::IsADirectory).into())
            }
            Ok(_) | Err(Errno::NOENT) => Ok(place),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes `path`: a symlink itself, never its target; a folder only
    /// when empty unless `recursive`.
    pub fn remove(&self, path: &RelPath, recursive: bool) -> Result<(), SandboxError> {
        let Parent { dir, name, .. } = self.parent(path, false)?;
        let st = rustix::fs::statat(&dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
            return Ok(rustix::fs::unlinkat(&dir, name.as_str(), AtFlags::empty())?);
        }
        if recursive {
            remove_tree(dir.as_fd(), &name)?;
        }
        Ok(rustix::fs::unlinkat(&dir, name.as_str(), AtFlags::REMOVEDIR)?)
    }

    /// Renames `from` (a link itself, not its target) to `to`, whose
    /// folder must exist; never over an existing name.
    pub fn rename(&self, from: &RelPath, to: &RelPath) -> Result<(), SandboxError> {
        let from = self.parent(from, false)?;
        let to = self.parent(to, false)?;
        rustix::fs::renameat_with(
            &from.dir,
            from.name.as_str(),
            &to.dir,
            to.name.as_str(),
            rustix::fs::RenameFlags::NOREPLACE,
        )?;
        Ok(())
    }

    /// Opens (creating) a folder of the server's own under the private
    /// folder, never following a link planted there.
    /// Both are the server's own: a server that gives up root after
    /// binding (`--user`) gets them.
    pub fn private_dir(&self, area: &str) -> io::Result<OwnedFd> {
        let private = open_or_make_dir(self.root.as_fd(), RESERVED_DIR, Mode::from_raw_mode(0o700))?;
        crate::privileges::hand_over(&private);
        let dir = open_or_make_dir(private.as_fd(), area, Mode::from_raw_mode(0o700))?;
        crate::privileges::hand_over(&dir);
        Ok(dir)
    }

    /// Opens `path` itself; true when it turned out to be the root.
    fn open_object(&self, path: &RelPath, flags: OFlags) -> Result<(OwnedFd, bool), SandboxError> {
        match self.walk(path, Want::Open(flags), false)? {
            Walked::Opened { fd, is_root } => Ok((fd, is_root)),
            Walked::Parent(_) => Err(io::Error::from(io::ErrorKind::NotFound).into()),
        }
    }

    fn walk(&self, path: &RelPath, want: Want, create_dirs: bool) -> Result<Walked, SandboxError> {
        if !create_dirs && HAVE_OPENAT2.load(Ordering::Relaxed) {
            match self.walk_in_kernel(path, want) {
                Ok(Some(done)) => return Ok(done),
                Ok(None) => {}
                Err(e) => return Err(e),
            }
        }
        self.walk_by_hand(path, want, create_dirs)
    }

    /// One `openat2` that refuses every symlink: `Ok(None)` when the name
    /// went through one (or the kernel lacks openat2), for the walk by hand.
    fn walk_in_kernel(&self, path: &RelPath, want: Want) -> Result<Option<Walked>, SandboxError> {
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        let open = |rel: &str, flags: OFlags| {
            let rel = if rel.is_empty() { "." } else { rel };
            rustix::fs::openat2(
                &self.root,
                rel,
                flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
                resolve,
            )
        };
        let outcome = match want {
            Want::Open(flags) => open(&path.to_string(), flags).and_then(|fd| {
                // O_PATH | O_NOFOLLOW opens a final symlink itself (with
                // O_DIRECTORY a symlink is ENOTDIR instead).
                if opens_links(flags) && is_symlink(&fd).map_err(|_| Errno::IO)? {
                    return Err(Errno::LOOP);
                }
                Ok(Walked::Opened {
                    fd,
                    is_root: path.is_root(),
                })
            }),
            Want::Parent { follow } => {
                let parent = path.parent();
                open(&parent.to_string(), dir_flags()).and_then(|dir| {
                    let name = path.file_name().to_owned();
                    if follow {
                        // A final symlink needs the walk by hand.
                        match rustix::fs::readlinkat(&dir, name.as_str(), Vec::new()) {
                            Ok(_) => return Err(Errno::LOOP),
                            Err(Errno::INVAL | Errno::NOENT) => {}
                            Err(e) => return Err(e),
                        }
                    }
                    Ok(Walked::Parent(Parent {
                        dir,
                        name,
                        at_root: parent.is_root(),
                    }))
                })
            }
        };
        match outcome {
            Ok(w) => Ok(Some(w)),
            // A symlink on the way (ENOTDIR: one opened as a folder), or
            // a rename raced the lookup: the walk by hand decides.
            Err(Errno::LOOP | Errno::NOTDIR | Errno::AGAIN | Errno::XDEV) => Ok(None),
            Err(Errno::NOSYS | Errno::PERM | Errno::INVAL | Errno::TOOBIG) => {
                HAVE_OPENAT2.store(false, Ordering::Relaxed);
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The walk component by component, following symlinks only while they
    /// stay under the root, and never onto the private folder.
    fn walk_by_hand(&self, path: &RelPath, want: Want, create_dirs: bool) -> Result<Walked, SandboxError> {
        // Folders below the root that the walk stands in; empty = the root.
        let mut stack: Vec<OwnedFd> = Vec::new();
        let mut queue: VecDeque<Vec<u8>> = path.components().map(|c| c.as_bytes().to_vec()).collect();
        let mut links = 0u32;
        while let Some(name) = queue.pop_front() {
            match name.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    stack.pop().ok_or(SandboxError::Escapes)?;
                    continue;
                }
                _ => {}
            }
            let at_root = stack.is_empty();
            if at_root && name == RESERVED_DIR.as_bytes() {
                return Err(SandboxError::Escapes);
            }
            let is_last = queue.iter().all(|c| c.is_empty() || c == b".");
            let dir = stack.last().map_or(self.root.as_fd(), AsFd::as_fd);
            let os_name = OsStr::from_bytes(&name);
            if is_last {
                if let Want::Parent { follow } = want {
                    let target = if follow { read_link(dir, os_name)? } else { None };
                    match target {
                        Some(target) => {
                            links = follow_link(&self.root_path, target, &mut stack, &mut queue, links)?;
                            continue;
                        }
                        None => {
                            let name = String::from_utf8(name).map_err(|_| SandboxError::Escapes)?;
                            let dir = match stack.pop() {
                                Some(d) => d,
                                None => self.root.try_clone()?,
                            };
                            return Ok(Walked::Parent(Parent { dir, name, at_root }));
                        }
                    }
                }
            }
            let flags = match want {
                Want::Open(flags) if is_last => flags,
                _ => dir_flags(),
            };
            let mut opened =
                rustix::fs::openat(dir, os_name, flags | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty());
            if create_dirs && matches!(opened, Err(Errno::NOENT)) {
                match rustix::fs::mkdirat(dir, os_name, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                opened = rustix::fs::openat(dir, os_name, flags | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty());
            }
            let fd = match opened {
                // O_PATH | O_NOFOLLOW opens a final symlink itself: follow
                // it below.
                Ok(fd) if opens_links(flags) && is_symlink(&fd)? => None,
                Ok(fd) => Some(fd),
                // A symlink met with O_NOFOLLOW (ELOOP), or with O_DIRECTORY
                // too (ENOTDIR): read it from its folder.
                Err(Errno::LOOP | Errno::NOTDIR) => None,
                Err(e) => return Err(e.into()),
            };
            match fd {
                Some(fd) if is_last => return Ok(Walked::Opened { fd, is_root: false }),
                Some(fd) => stack.push(fd),
                None => match read_link(dir, os_name)? {
                    Some(target) => links = follow_link(&self.root_path, target, &mut stack, &mut queue, links)?,
                    None => return Err(io::Error::from(io::ErrorKind::NotADirectory).into()),
                },
            }
        }
        // The name ended on a folder already in hand (through `.` or `..`).
        let is_root = stack.is_empty();
        let dir = stack.last().map_or(self.root.as_fd(), AsFd::as_fd);
        match want {
            Want::Open(flags) => {
                let fd = rustix::fs::openat(dir, ".", flags | OFlags::CLOEXEC, Mode::empty())?;
                Ok(Walked::Opened { fd, is_root })
            }
            Want::Parent { .. } => Err(io::Error::from(io::ErrorKind::IsADirectory).into()),
        }
    }
}

/// Splices a symlink's target into the walk. An absolute target must lie
/// under the root (it restarts there); `..` in a relative one may climb
/// only as far as the root, which the walk checks as it pops.
fn follow_link(
    root_path: &Path,
    target: Vec<u8>,
    stack: &mut Vec<OwnedFd>,
    queue: &mut VecDeque<Vec<u8>>,
    links: u32,
) -> Result<u32, SandboxError> {
    let links = links + 1;
    if links > MAX_LINKS {
        return Err(io::Error::from_raw_os_error(Errno::LOOP.raw_os_error()).into());
    }
    let target_path = Path::new(OsStr::from_bytes(&target));
    let relative = if target_path.is_absolute() {
        let inside = target_path.strip_prefix(root_path).map_err(|_| SandboxError::Escapes)?;
        stack.clear();
        inside.as_os_str().as_bytes().to_vec()
    } else {
        target
    };
    for part in relative.split(|&b| b == b'/').rev() {
        queue.push_front(part.to_vec());
    }
    Ok(links)
}

/// The target of `name` in `dir` if it is a symlink.
fn read_link(dir: BorrowedFd<'_>, name: &OsStr) -> Result<Option<Vec<u8>>, SandboxError> {
    match rustix::fs::readlinkat(dir, name, Vec::new()) {
        Ok(target) => Ok(Some(target.into_bytes())),
        Err(Errno::INVAL | Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn check_regular(mode: rustix::fs::RawMode) -> Result<(), SandboxError> {
    match FileType::from_raw_mode(mode) {
        FileType::RegularFile => Ok(()),
        FileType::Directory => Err(io::Error::from(io::ErrorKind::IsADirectory).into()),
        _ => Err(SandboxError::NotRegular),
    }
}

fn is_symlink(fd: &OwnedFd) -> io::Result<bool> {
    let st = rustix::fs::fstat(fd)?;
    Ok(FileType::from_raw_mode(st.st_mode) == FileType::Symlink)
}

/// Whether an open with these flags and O_NOFOLLOW returns a symlink
/// itself rather than failing on it.
fn opens_links(flags: OFlags) -> bool {
    flags.contains(OFlags::PATH) && !flags.contains(OFlags::DIRECTORY)
}

fn dir_flags() -> OFlags {
    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC
}

/// A folder of the server's own, made if missing; a symlink there is an
/// error, never followed.
fn open_or_make_dir(parent: BorrowedFd<'_>, name: &str, mode: Mode) -> io::Result<OwnedFd> {
    match rustix::fs::mkdirat(parent, name, mode) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(rustix::fs::openat(
        parent,
        name,
        dir_flags() | OFlags::NOFOLLOW,
        Mode::empty(),
    )?)
}

/// Empties the folder `name` in `parent` without following any symlink in
/// it (they are removed, not their targets). Iterative: a planted deep tree
/// cannot overflow the stack.
fn remove_tree(parent: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    let open = |at: BorrowedFd<'_>, n: &OsStr| -> io::Result<OwnedFd> {
        Ok(rustix::fs::openat(
            at,
            n,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?)
    };
    // Each level: the open folder and the name it has in the level above.
    let mut levels: Vec<(OwnedFd, Vec<u8>)> = vec![(open(parent, OsStr::new(name))?, name.as_bytes().to_vec())];
    while let Some((dir, _)) = levels.last() {
        let mut child_dir = None;
        for entry in Dir::read_from(dir)? {
            let entry = entry?;
            let entry_name = entry.file_name().to_bytes();
            if entry_name == b"." || entry_name == b".." {
                continue;
            }
            let entry_name = OsStr::from_bytes(entry_name);
            match rustix::fs::unlinkat(dir, entry_name, AtFlags::empty()) {
                Ok(()) => {}
                Err(Errno::ISDIR | Errno::PERM) => match rustix::fs::unlinkat(dir, entry_name, AtFlags::REMOVEDIR) {
                    Ok(()) => {}
                    Err(Errno::NOTEMPTY | Errno::EXIST) => {
                        child_dir = Some((open(dir.as_fd(), entry_name)?, entry_name.as_bytes().to_vec()));
                        break;
                    }
                    Err(e) => return Err(e.into()),
                },
                Err(e) => return Err(e.into()),
            }
        }
        match child_dir {
            Some(child) => levels.push(child),
            None => {
                // Empty now: remove it from the level above (the top level
                // is removed by the caller).
                let Some((_, emptied)) = levels.pop() else { break };
                if let Some((above, _)) = levels.last() {
                    rustix::fs::unlinkat(above, OsStr::from_bytes(&emptied), AtFlags::REMOVEDIR)?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn rel(s: &str) -> RelPath {
        RelPath::parse(s).unwrap()
    }

    fn tree() -> (tempfile::TempDir, Tree) {
        let dir = tempfile::tempdir().unwrap();
        let t = Tree::open(&dir.path().join("root")).unwrap();
        (dir, t)
    }

    fn escapes<T: std::fmt::Debug>(r: Result<T, SandboxError>) -> bool {
        matches!(r, Err(SandboxError::Escapes))
    }

    #[test]
    fn files_open_under_the_root_and_folders_are_made() {
        let (_d, t) = tree();
        t.make_dirs(&rel("a/b")).unwrap();
        std::fs::write(t.root_path().join("a/b/f.txt"), b"hi").unwrap();
        let (_, size) = t.open_file(&rel("a/b/f.txt")).unwrap();
        assert_eq!(size, 2);
        assert!(
            matches!(t.open_file(&rel("a/b")), Err(SandboxError::Io(e)) if e.kind() == io::ErrorKind::IsADirectory)
        );
        assert!(matches!(t.open_file(&rel("nope")), Err(SandboxError::Io(e)) if e.kind() == io::ErrorKind::NotFound));
    }

    #[test]
    fn symlinks_pointing_out_are_refused_and_inside_followed() {
        let (dir, t) = tree();
        let root = t.root_path().to_owned();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("out")).unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), root.join("secret-link")).unwrap();
        std::os::unix::fs::symlink("../outside/secret", root.join("relative-out")).unwrap();
        std::os::unix::fs::symlink("/nonexistent/x", root.join("dangling")).unwrap();
        for name in ["out/secret", "secret-link", "relative-out", "dangling"] {
            assert!(escapes(t.open_file(&rel(name))), "{name}");
        }
        assert!(escapes(t.parent(&rel("out/new-file"), true)));
        assert!(escapes(t.parent(&rel("secret-link"), true)));
        std::fs::create_dir(root.join("real")).unwrap();
        std::fs::write(root.join("real/f"), b"inside").unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("alias")).unwrap();
        std::os::unix::fs::symlink("real/f", root.join("f-link")).unwrap();
        std::os::unix::fs::symlink("../real/f", root.join("real/up-and-back")).unwrap();
        for name in ["alias/f", "f-link", "real/up-and-back", "alias/up-and-back"] {
            assert_eq!(t.open_file(&rel(name)).unwrap().1, 6, "{name}");
        }
        // Removing a link removes the link only.
        t.remove(&rel("alias"), true).unwrap();
        assert!(root.join("real/f").exists());
    }

    #[test]
    fn the_private_folder_is_unreachable_through_any_link() {
        let (_d, t) = tree();
        let root = t.root_path().to_owned();
        t.private_dir("partial").unwrap();
        std::fs::write(root.join(".sockit/partial/x.part"), b"p").unwrap();
        std::os::unix::fs::symlink(".", root.join("current")).unwrap();
        std::os::unix::fs::symlink(root.join(".sockit"), root.join("priv")).unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::os::unix::fs::symlink("..", root.join("sub/up")).unwrap();
        for name in [
            "current/.sockit/partial/x.part",
            "priv/partial/x.part",
            "sub/up/.sockit/partial/x.part",
        ] {
            assert!(escapes(t.open_file(&rel(name))), "{name}");
            assert!(escapes(t.stat(&rel(name))), "{name}");
        }
        assert!(escapes(t.remove(&rel("current/.sockit"), true)));
        assert!(escapes(t.make_dirs(&rel("current/.sockit/y"))));
        assert!(escapes(t.parent(&rel("sub/up/.sockit"), false)));
        assert!(t.open_dir(&rel("current")).unwrap().is_root);
        assert!(!t.open_dir(&rel("sub")).unwrap().is_root);
        assert!(root.join(".sockit/partial/x.part").exists());
    }

    #[test]
    fn special_files_are_refused_on_the_open_handle() {
        let (_d, t) = tree();
        let fifo = t.root_path().join("pipe");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let started = std::time::Instant::now();
        assert!(matches!(t.open_file(&rel("pipe")), Err(SandboxError::NotRegular)));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(t.stat(&rel("pipe")).is_ok());
    }

    #[test]
    fn the_walk_by_hand_is_as_strict_as_the_kernel() {
        let (dir, t) = tree();
        let root = t.root_path().to_owned();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/f"), b"x").unwrap();
        std::fs::create_dir(dir.path().join("outside")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside"), root.join("a/out")).unwrap();
        for create in [false, true] {
            let w = t.walk_by_hand(&rel("a/b/f"), Want::Open(OFlags::RDONLY), create);
            assert!(matches!(w, Ok(Walked::Opened { .. })));
            assert!(escapes(t.walk_by_hand(
                &rel("a/out/x"),
                Want::Open(OFlags::PATH),
                create
            )));
        }
        // Loops end with ELOOP, not a hang.
        std::os::unix::fs::symlink("loop2", root.join("loop1")).unwrap();
        std::os::unix::fs::symlink("loop1", root.join("loop2")).unwrap();
        assert!(matches!(t.open_file(&rel("loop1")), Err(SandboxError::Io(_))));
    }

    #[test]
    fn remove_tree_does_not_follow_links_inside() {
        let (dir, t) = tree();
        let root = t.root_path().to_owned();
        let outside = dir.path().join("keep");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("k"), b"k").unwrap();
        let mut deep = root.join("top");
        for i in 0..50 {
            deep = deep.join(format!("d{i}"));
        }
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(deep.join("f"), b"f").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("top/d0/link")).unwrap();
        t.remove(&rel("top"), true).unwrap();
        assert!(!root.join("top").exists());
        assert!(outside.join("k").exists());
    }

    #[tokio::test]
    async fn an_operation_run_to_its_end_reports_its_real_outcome() {
        let gate = Gate::new(1, Duration::from_millis(100));
        let r = gate
            .run_to_end(|| {
                std::thread::sleep(Duration::from_millis(300));
                Ok(7)
            })
            .await;
        assert_eq!(r.unwrap(), 7);
    }

    #[tokio::test]
    async fn the_gate_gives_up_at_its_deadline() {
        let gate = Gate::new(1, Duration::from_millis(100));
        let r = gate
            .run(|| {
                std::thread::sleep(Duration::from_millis(400));
                Ok(())
            })
            .await;
        assert!(matches!(r, Err(SandboxError::Timeout(_))));
    }
}
