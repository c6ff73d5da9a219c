//! Keeping a data directory private: it holds metadata, card fingerprints and key digests, so it is 0700 and its files 0600.
//!
//! sled creates its files with the process's umask (usually 0644). The directory's own mode is
//! what keeps other users out of everything inside it, including files sled creates later; the
//! files already there are tightened too, so that a directory copied or made before this rule
//! does not stay readable.

use std::io;
use std::path::Path;

/// What a data directory and its subdirectories are set to: the owner only.
pub const PRIVATE_DIRECTORY_MODE: u32 = 0o700;
/// What the files in a data directory are set to: the owner reads and writes.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// Create `directory` (and its parents) if missing, then make it and everything in it private.
pub fn create_private_directory(directory: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(PRIVATE_DIRECTORY_MODE)
            .create(directory)?;
        restrict_tree(directory)
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(directory)
    }
}

/// Take group and other permissions off `directory`, its files and its subdirectories (sled's
/// `blobs/`), without following symbolic links.
#[cfg(unix)]
fn restrict_tree(directory: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut pending = vec![directory.to_path_buf()];
    while let Some(path) = pending.pop() {
        let metadata = std::fs::symlink_metadata(&path)?;
        let wanted = if metadata.is_dir() {
            PRIVATE_DIRECTORY_MODE
        } else if metadata.is_file() {
            PRIVATE_FILE_MODE
        } else {
            continue;
        };
        if metadata.permissions().mode() & 0o777 != wanted {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(wanted))?;
        }
        if metadata.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                pending.push(entry?.path());
            }
        }
    }
    Ok(())
}

/// Create (or replace) `path` with `contents`, readable by the owner only from the start.
pub fn write_private_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(PRIVATE_FILE_MODE);
        let mut file = options.open(path)?;
        // `mode` applies only when the file is created; an older file is tightened here.
        file.set_permissions(std::fs::Permissions::from_mode(PRIVATE_FILE_MODE))?;
        file.write_all(contents)?;
        file.sync_all()
    }
    #[cfg(not(unix))]
    {
        let mut file = options.open(path)?;
        file.write_all(contents)?;
        file.sync_all()
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_directory_and_an_old_one_end_up_private() {
        let root = tempfile::tempdir().unwrap();
        let fresh = root.path().join("fresh/data");
        create_private_directory(&fresh).unwrap();
        assert_eq!(mode(&fresh), PRIVATE_DIRECTORY_MODE);

        let old = root.path().join("old");
        std::fs::create_dir_all(old.join("blobs")).unwrap();
        std::fs::write(old.join("db"), b"x").unwrap();
        std::fs::write(old.join("blobs/1"), b"x").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(old.join("db"), std::fs::Permissions::from_mode(0o644)).unwrap();
        create_private_directory(&old).unwrap();
        assert_eq!(mode(&old), PRIVATE_DIRECTORY_MODE);
        assert_eq!(mode(&old.join("blobs")), PRIVATE_DIRECTORY_MODE);
        assert_eq!(mode(&old.join("db")), PRIVATE_FILE_MODE);
        assert_eq!(mode(&old.join("blobs/1")), PRIVATE_FILE_MODE);

        let file = root.path().join("keys.json");
        write_private_file(&file, b"{}").unwrap();
        assert_eq!(mode(&file), PRIVATE_FILE_MODE);
        assert_eq!(std::fs::read(&file).unwrap(), b"{}");
    }
}
