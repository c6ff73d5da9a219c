//! Making sled's writes survive power loss: sled's `flush()` only calls `sync_file_range`, so we fdatasync ourselves.
//!
//! See `shared/spec/durability.md`: `sync_file_range` neither flushes the device cache nor the
//! file's metadata, and sled's data file grows by appending. After every `flush()` we
//! `fdatasync` a separately opened descriptor of `<dir>/db` (any descriptor of the inode will do).
//! sled also writes values too large for a log segment (over 128 KiB with the default 512 KiB
//! segments) to files under `<dir>/blobs/` with no sync at all, so new blob files, and the blob
//! directory that names them, are synced too.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// Syncs what sled wrote, after sled's own flush.
#[derive(Debug)]
pub struct DurableSync {
    data_file: File,
    blobs_directory: PathBuf,
    synced_blobs: HashSet<OsString>,
}

impl DurableSync {
    /// Open the data file of the sled database in `directory` and make its directory entries durable.
    pub fn open(directory: &Path) -> io::Result<Self> {
        let data_file = File::open(directory.join("db"))?;
        let blobs_directory = directory.join("blobs");
        let mut synced_blobs = HashSet::new();
        if blobs_directory.is_dir() {
            for entry in std::fs::read_dir(&blobs_directory)? {
                let entry = entry?;
                File::open(entry.path())?.sync_all()?;
                synced_blobs.insert(entry.file_name());
            }
            sync_directory(&blobs_directory)?;
        }
        // The database may have just been created: persist the names of its files.
        sync_directory(directory)?;
        Ok(DurableSync {
            data_file,
            blobs_directory,
            synced_blobs,
        })
    }

    /// Make everything sled has flushed durable. Call right after `sled::Db::flush()`.
    pub fn sync(&mut self) -> io::Result<()> {
        self.data_file.sync_data()?;
        self.sync_new_blobs()
    }

    fn sync_new_blobs(&mut self) -> io::Result<()> {
        let entries = match std::fs::read_dir(&self.blobs_directory) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(error),
        };
        let mut synced_any = false;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            if self.synced_blobs.contains(&name) {
                continue;
            }
            match File::open(entry.path()) {
                Ok(file) => file.sync_all()?,
                // sled removes blobs it no longer needs; a vanished one needs no sync.
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(error) => return Err(error),
            }
            self.synced_blobs.insert(name);
            synced_any = true;
        }
        if synced_any {
            sync_directory(&self.blobs_directory)?;
        }
        Ok(())
    }
}

/// fsync a directory so that the files created in it survive a crash.
pub fn sync_directory(directory: &Path) -> io::Result<()> {
    File::open(directory)?.sync_all()
}
