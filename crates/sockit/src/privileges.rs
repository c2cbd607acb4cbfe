//! Giving up root once the ports are bound (`--user`, `--group`).
//!
//! Port 69 (or any below 1024) needs root to bind; nothing after that
//! does. So a server started as root binds, then switches the whole
//! process to the named user before it serves a single request, as
//! tftpd-hpa's `-u` does, and refuses to start when that fails.
//!
//! - The switch goes through glibc's `setgroups`/`setgid`/`setuid` (the
//!   `nix` wrappers), which apply to every thread of the process: the
//!   runtime's threads already exist, and a raw per-thread syscall would
//!   leave them as root. [`drop_to`] then reads every thread's
//!   credentials back from /proc to be sure.
//! - Folders sockit creates while still root (the served folder when it
//!   was missing, and its private `.sockit` folders) are handed to the
//!   user as they are made, so the server can still write there after
//!   the switch: call [`will_run_as`] before opening any root.

use std::os::fd::AsFd;
use std::sync::OnceLock;

use nix::unistd::{Gid, Group, Uid, User};

/// Who the process will run as once its ports are bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("no user {0} on this system")]
    NoUser(String),
    #[error("no group {0} on this system")]
    NoGroup(String),
    #[error("looking up {0}: {1}")]
    Lookup(String, nix::Error),
    #[error("only root can switch to user {0}; start as root, or leave out --user")]
    NotRoot(String),
    #[error("switching to user {user}: {op} failed: {source}")]
    Switch {
        user: String,
        op: &'static str,
        source: nix::Error,
    },
    #[error("after switching to user {user}, thread {thread} still runs as uid {uid}")]
    Incomplete { user: String, thread: String, uid: u32 },
}

/// Looks up `user` (a name or a number) and `group` (default: the user's
/// own group).
pub fn lookup(user: &str, group: Option<&str>) -> Result<Identity, PrivilegeError> {
    let found = match user.parse::<u32>() {
        Ok(uid) => User::from_uid(Uid::from_raw(uid)),
        Err(_) => User::from_name(user),
    }
    .map_err(|e| PrivilegeError::Lookup(user.to_owned(), e))?
    .ok_or_else(|| PrivilegeError::NoUser(user.to_owned()))?;
    let gid = match group {
        None => found.gid,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => Gid::from_raw(gid),
            Err(_) => {
                Group::from_name(g)
                    .map_err(|e| PrivilegeError::Lookup(g.to_owned(), e))?
                    .ok_or_else(|| PrivilegeError::NoGroup(g.to_owned()))?
                    .gid
            }
        },
    };
    Ok(Identity {
        user: found.name,
        uid: found.uid.as_raw(),
        gid: gid.as_raw(),
    })
}

static FUTURE: OnceLock<Identity> = OnceLock::new();

/// Declares who the process will run as, so folders made before the switch
/// are made theirs. Call before any root is opened.
pub fn will_run_as(identity: &Identity) {
    let _ = FUTURE.set(identity.clone());
}

/// Hands a folder sockit just created to the future user, when the
/// process is root and one was declared. Best effort: a failure shows
/// later as a clear permission error, not as a hidden one here.
pub(crate) fn hand_over(dir: impl AsFd) {
    let Some(id) = FUTURE.get() else { return };
    if !rustix::process::geteuid().is_root() {
        return;
    }
    let owner = rustix::fs::Uid::from_raw(id.uid);
    let group = rustix::fs::Gid::from_raw(id.gid);
    // By the handle itself (which may be O_PATH): no name to be swapped.
    if let Err(e) = rustix::fs::chownat(dir, "", Some(owner), Some(group), rustix::fs::AtFlags::EMPTY_PATH) {
        tracing::warn!(user = %id.user, error = %e, "cannot hand a folder to the server's user");
    }
}

/// Switches every thread of the process to `identity`, for good. Running
/// as that user already is fine; anyone else but root is refused.
pub fn drop_to(identity: &Identity) -> Result<(), PrivilegeError> {
    let (uid, gid) = (Uid::from_raw(identity.uid), Gid::from_raw(identity.gid));
    let switch = |op: &'static str| {
        move |source| PrivilegeError::Switch {
            user: identity.user.clone(),
            op,
            source,
        }
    };
    if !Uid::effective().is_root() {
        if Uid::effective() == uid && Gid::effective() == gid {
            return Ok(());
        }
        return Err(PrivilegeError::NotRoot(identity.user.clone()));
    }
    // Groups first: once the uid is gone, so is the right to change them.
    nix::unistd::setgroups(&[gid]).map_err(switch("setgroups"))?;
    nix::unistd::setgid(gid).map_err(switch("setgid"))?;
    nix::unistd::setuid(uid).map_err(switch("setuid"))?;
    // There is no way back: a switch that could be undone was not one.
    if identity.uid != 0 && nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err(PrivilegeError::Switch {
            user: identity.user.clone(),
            op: "setuid (root could be taken back)",
            source: nix::Error::EPERM,
        });
    }
    verify_every_thread(identity)
}

/// Reads each thread's real, effective, saved and filesystem uids back.
fn verify_every_thread(identity: &Identity) -> Result<(), PrivilegeError> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        // No /proc: glibc's process-wide setuid is all there is to go on.
        return Ok(());
    };
    for task in tasks.flatten() {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        let uids = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .map(|l| {
                l.split_whitespace()
                    .filter_map(|n| n.parse::<u32>().ok())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        if let Some(&uid) = uids.iter().find(|&&u| u != identity.uid) {
            return Err(PrivilegeError::Incomplete {
                user: identity.user.clone(),
                thread: task.file_name().to_string_lossy().into_owned(),
                uid,
            });
        }
    }
    Ok(())
}
