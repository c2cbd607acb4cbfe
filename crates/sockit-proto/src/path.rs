//! Peer-supplied names parsed into relative paths that cannot leave a root.
//!
//! This module owns the *lexical* rules (docs/protocol.md §4): what a name
//! may contain. Whether the resolved path stays under the root once symlinks
//! are followed is the file sandbox's job, which needs the filesystem.

use std::fmt;

/// Longest name accepted, in bytes: Linux's PATH_MAX.
pub const MAX_PATH_LEN: usize = 4096;
/// Longest single component, in bytes: Linux's NAME_MAX.
pub const MAX_COMPONENT_LEN: usize = 255;
/// The server's private folder under its root (partial uploads live there);
/// no peer-supplied path may name it.
pub const RESERVED_DIR: &str = ".sockit";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path is empty")]
    Empty,
    #[error("path is longer than {MAX_PATH_LEN} bytes")]
    TooLong,
    #[error("path component is longer than {MAX_COMPONENT_LEN} bytes")]
    ComponentTooLong,
    #[error("path contains a NUL byte")]
    Nul,
    #[error("path contains a backslash")]
    Backslash,
    #[error("path is absolute")]
    Absolute,
    #[error("path has a drive prefix")]
    DrivePrefix,
    #[error("path contains \"..\"")]
    ParentDir,
    #[error("path names the server's reserved folder")]
    Reserved,
}

/// A validated path relative to a root: '/'-separated components, none of
/// which is empty, ".", ".." or contains NUL or a backslash. It may be empty
/// (the root itself) only when built by [`RelPath::parse_dir`].
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelPath {
    components: Vec<String>,
}

impl RelPath {
    /// Parses a name that must designate something below the root.
    pub fn parse(name: &str) -> Result<Self, PathError> {
        let path = Self::parse_dir(name)?;
        if path.components.is_empty() {
            return Err(PathError::Empty);
        }
        Ok(path)
    }

    /// Parses a folder name where "", "." and "/" all mean the root.
    pub fn parse_dir(name: &str) -> Result<Self, PathError> {
        if name.len() > MAX_PATH_LEN {
            return Err(PathError::TooLong);
        }
        if name.contains('\0') {
            return Err(PathError::Nul);
        }
        if name.contains('\\') {
            return Err(PathError::Backslash);
        }
        if name.starts_with('/') && !name.trim_start_matches('/').is_empty() {
            return Err(PathError::Absolute);
        }
        let mut components = Vec::new();
        for part in name.split('/') {
            match part {
                "" | "." => continue,
                ".." => return Err(PathError::ParentDir),
                _ if part.len() > MAX_COMPONENT_LEN => return Err(PathError::ComponentTooLong),
                _ => components.push(part.to_owned()),
            }
        }
        if let Some(first) = components.first() {
            if has_drive_prefix(first) {
                return Err(PathError::DrivePrefix);
            }
            if first == RESERVED_DIR {
                return Err(PathError::Reserved);
            }
        }
        Ok(Self { components })
    }

    /// The root itself.
    pub fn root() -> Self {
        Self { components: Vec::new() }
    }

    pub fn is_root(&self) -> bool {
        self.components.is_empty()
    }

    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.components.iter().map(String::as_str)
    }

    /// The last component ("" for the root).
    pub fn file_name(&self) -> &str {
        self.components.last().map_or("", String::as_str)
    }

    /// The folder holding this path (the root for a top-level name).
    pub fn parent(&self) -> Self {
        let mut components = self.components.clone();
        components.pop();
        Self { components }
    }

    /// This path with one more component; `name` must itself be a single
    /// valid component.
    pub fn join(&self, name: &str) -> Result<Self, PathError> {
        let child = Self::parse(name)?;
        if child.components.len() != 1 {
            return Err(PathError::Backslash);
        }
        let mut components = self.components.clone();
        components.extend(child.components);
        Ok(Self { components })
    }
}

/// "C:" or "c:..." as the first component: a Windows drive, refused so a
/// name means the same thing on every platform.
fn has_drive_prefix(first: &str) -> bool {
    let bytes = first.as_bytes();
    matches!(bytes, [letter, b':', ..] if letter.is_ascii_alphabetic())
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.components.join("/"))
    }
}

impl fmt::Debug for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RelPath({:?})", self.to_string())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_and_nested_names_are_accepted_and_normalised() {
        assert_eq!(RelPath::parse("a.txt").unwrap().to_string(), "a.txt");
        assert_eq!(RelPath::parse("dir//sub/./f").unwrap().to_string(), "dir/sub/f");
        assert_eq!(RelPath::parse("dir/").unwrap().to_string(), "dir");
        assert_eq!(RelPath::parse("你好.txt").unwrap().file_name(), "你好.txt");
        assert_eq!(RelPath::parse("ab:c").unwrap().to_string(), "ab:c");
    }

    #[test]
    fn escapes_and_bad_bytes_are_refused() {
        let cases = [
            ("", PathError::Empty),
            (".", PathError::Empty),
            ("../etc/passwd", PathError::ParentDir),
            ("a/../../b", PathError::ParentDir),
            ("/etc/passwd", PathError::Absolute),
            ("..\\..\\x", PathError::Backslash),
            ("a\0b", PathError::Nul),
            ("C:/Windows", PathError::DrivePrefix),
            ("c:x", PathError::DrivePrefix),
            (".sockit/partial/x", PathError::Reserved),
        ];
        for (name, want) in cases {
            assert_eq!(RelPath::parse(name), Err(want), "{name:?}");
        }
        assert_eq!(RelPath::parse(&"a".repeat(256)), Err(PathError::ComponentTooLong));
        assert_eq!(RelPath::parse(&"a/".repeat(2049)), Err(PathError::TooLong));
    }

    #[test]
    fn folder_names_may_mean_the_root() {
        for name in ["", ".", "/", "//"] {
            assert!(RelPath::parse_dir(name).unwrap().is_root(), "{name:?}");
        }
    }

    #[test]
    fn join_takes_exactly_one_component() {
        let dir = RelPath::parse("d").unwrap();
        assert_eq!(dir.join("f").unwrap().to_string(), "d/f");
        assert!(dir.join("..").is_err());
        assert!(dir.join("a/b").is_err());
    }

    proptest! {
        #[test]
        fn a_parsed_path_never_contains_an_escape(name in "[a-z./\\\\:\\x00]{0,24}") {
            if let Ok(p) = RelPath::parse_dir(&name) {
                for c in p.components() {
                    prop_assert!(c != ".." && c != "." && !c.is_empty());
                    prop_assert!(!c.contains('/') && !c.contains('\\') && !c.contains('\0'));
                }
                // Display form parses back to the same path.
                prop_assert_eq!(RelPath::parse_dir(&p.to_string()).unwrap(), p);
            }
        }
    }
}
