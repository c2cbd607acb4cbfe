//! A download's partial file, beside its target: `dir/.NAME.sockit-part`.
//!
//! Every client that downloads (`get`, `tftp get`, `download`) writes
//! there first and renames onto the target only when the file is whole.
//! The folder may be shared with other local users, so a partial is never
//! opened through a symlink: a fresh one is created with `O_CREAT | O_EXCL
//! | O_NOFOLLOW` after removing whatever had its name (a link is removed,
//! not its target), and a kept one is reopened with `O_NOFOLLOW` and must
//! be a regular file. The final rename replaces a link at the target's
//! name; it never writes through it.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::{CWD, FileType, Mode, OFlags};
use rustix::io::Errno;

/// `dir/.name.sockit-part`: hidden, beside the target, same filesystem.
pub fn partial_path(local: &Path) -> PathBuf {
    let name = local
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    local.with_file_name(format!(".{name}.sockit-part"))
}

/// A new, empty partial, replacing anything that had its name.
pub fn create_fresh(partial: &Path) -> io::Result<File> {
    match std::fs::remove_file(partial) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let fd = rustix::fs::openat(
        CWD,
        partial,
        OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )?;
    Ok(File::from(fd))
}

/// The kept partial and its length, to resume from; `None` when there is
/// none. A symlink or anything but a regular file there is an error.
pub fn open_kept(partial: &Path) -> io::Result<Option<(File, u64)>> {
    let fd = match rustix::fs::openat(
        CWD,
        partial,
        OFlags::RDWR | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(Errno::LOOP) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the partial download is a symlink; refusing to write through it",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let st = rustix::fs::fstat(&fd)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the partial download is not a regular file",
        ));
    }
    rustix::fs::fcntl_setfl(&fd, OFlags::empty())?;
    Ok(Some((File::from(fd), u64::try_from(st.st_size).unwrap_or(0))))
}

/// Whether `local` is a device or pipe the user named (`/dev/null`, a FIFO
/// of their own), written to directly: there is no file to put in place,
/// and a rename would replace the device. A symlink counts only under
/// `/dev` (`/dev/stdout`): elsewhere it may be planted.
pub fn is_direct_target(local: &Path) -> bool {
    let Ok(own) = std::fs::symlink_metadata(local) else {
        return false;
    };
    if own.is_symlink() {
        return local.starts_with("/dev") && std::fs::metadata(local).is_ok_and(|m| !m.is_file() && !m.is_dir());
    }
    !own.is_file() && !own.is_dir()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::io::Write as _;

    use super::*;

    #[test]
    fn a_planted_link_is_removed_or_refused_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let part = partial_path(&dir.path().join("doc"));
        std::os::unix::fs::symlink(&victim, &part).unwrap();
        assert!(open_kept(&part).is_err());
        let mut f = create_fresh(&part).unwrap();
        f.write_all(b"new").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert_eq!(open_kept(&part).unwrap().unwrap().1, 3);
        assert!(is_direct_target(Path::new("/dev/null")));
        assert!(!is_direct_target(&part));
    }
}
