//! The only path from a peer-supplied name to the filesystem.
//!
//! A [`RelPath`] has already passed the lexical rules (no `..`, no absolute
//! path, no NUL or backslash). Here each existing component is checked: a
//! symlink is followed only if its target stays under the root. What does
//! not exist yet is appended as the validated components it is.
//!
//! Known limit: the check and the later open are two steps, so a local user
//! who can swap a folder for a symlink between them could race it. Peers
//! alone cannot create symlinks through sockit.

use std::io;
use std::path::{Path, PathBuf};

use sockit_proto::path::{RESERVED_DIR, RelPath};

/// Why a name cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("path leaves the served folder")]
    Escapes,
    #[error(transparent)]
    Io(#[from] io::Error),
}

#[derive(Debug, Clone)]
pub struct Sandbox {
    root: PathBuf,
}

impl Sandbox {
    /// Opens (creating if needed) the root folder.
    pub fn open(root: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(root)?;
        let root = std::fs::canonicalize(root)?;
        if !root.is_dir() {
            return Err(io::Error::new(io::ErrorKind::NotADirectory, "root is not a folder"));
        }
        Ok(Self { root })
    }

    /// The canonical root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The server's private folder (partial uploads), never reachable by a
    /// peer-supplied name.
    pub fn private_dir(&self) -> PathBuf {
        self.root.join(RESERVED_DIR)
    }

    /// Resolves `path` under the root, following only symlinks that stay
    /// inside. The result may not exist yet.
    pub async fn resolve(&self, path: &RelPath) -> Result<PathBuf, SandboxError> {
        let mut current = self.root.clone();
        let mut components = path.components();
        while let Some(name) = components.next() {
            let candidate = current.join(name);
            match tokio::fs::symlink_metadata(&candidate).await {
                Ok(meta) if meta.file_type().is_symlink() => {
                    let target = match tokio::fs::canonicalize(&candidate).await {
                        Ok(t) => t,
                        // A dangling link: refuse rather than create
                        // through it somewhere we cannot see.
                        Err(_) => return Err(SandboxError::Escapes),
                    };
                    if !target.starts_with(&self.root) || target.starts_with(self.private_dir()) {
                        return Err(SandboxError::Escapes);
                    }
                    current = target;
                }
                Ok(_) => current = candidate,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    current = candidate;
                    for rest in components.by_ref() {
                        current.push(rest);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
                    return Err(SandboxError::Io(e));
                }
                Err(e) => return Err(SandboxError::Io(e)),
            }
        }
        Ok(current)
    }

    /// Whether an already resolved absolute path (say, from a folder walk)
    /// is inside the root once symlinks are followed.
    pub async fn contains(&self, path: &Path) -> bool {
        match tokio::fs::canonicalize(path).await {
            Ok(p) => p.starts_with(&self.root) && !p.starts_with(self.private_dir()),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn rel(s: &str) -> RelPath {
        RelPath::parse(s).unwrap()
    }

    #[tokio::test]
    async fn names_resolve_under_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let sb = Sandbox::open(&dir.path().join("root")).unwrap();
        assert_eq!(sb.resolve(&rel("a/b.txt")).await.unwrap(), sb.root().join("a/b.txt"));
    }

    #[tokio::test]
    async fn symlinks_pointing_out_are_refused_and_inside_followed() {
        let dir = tempfile::tempdir().unwrap();
        let sb = Sandbox::open(&dir.path().join("root")).unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(&outside, sb.root().join("out")).unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), sb.root().join("secret-link")).unwrap();
        std::os::unix::fs::symlink("/nonexistent/x", sb.root().join("dangling")).unwrap();
        for name in ["out/secret", "out/new-file", "secret-link", "dangling"] {
            assert!(
                matches!(sb.resolve(&rel(name)).await, Err(SandboxError::Escapes)),
                "{name}"
            );
        }
        std::fs::create_dir(sb.root().join("real")).unwrap();
        std::os::unix::fs::symlink(sb.root().join("real"), sb.root().join("alias")).unwrap();
        assert_eq!(sb.resolve(&rel("alias/f")).await.unwrap(), sb.root().join("real/f"));
        std::os::unix::fs::symlink(sb.private_dir(), sb.root().join("priv")).unwrap();
        std::fs::create_dir_all(sb.private_dir()).unwrap();
        assert!(matches!(sb.resolve(&rel("priv/x")).await, Err(SandboxError::Escapes)));
    }
}
