//! The file-system seam. Every step of a commit (write, fsync, rename, link, remove, fsync of the
//! folder) is one call here, so a simulated file system can stop at any step and forget whatever
//! was not yet made durable (see [`super::sim`]).

use std::any::Any;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// What the store needs to know about a file or folder to judge its permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileFacts {
    /// Permission bits (and file type bits), as `st_mode`.
    pub mode: u32,
    /// Owner's uid.
    pub owner: u32,
}

/// A held lock; dropping it releases the lock.
pub type LockGuard = Box<dyn Any>;

/// The operations the store performs, one step each.
pub trait Fs {
    /// Reads a file, at most `limit` bytes of it; a symbolic link at `path` is refused.
    fn read(&self, path: &Path, limit: u64) -> io::Result<Vec<u8>>;
    /// Mode and owner of a file or folder (following symlinks).
    fn facts(&self, path: &Path) -> io::Result<FileFacts>;
    /// Mode and owner of the directory entry itself: a symlink is described, not followed, and
    /// nothing is opened for reading (a FIFO or device sees no open).
    fn entry_facts(&self, path: &Path) -> io::Result<FileFacts>;
    /// The effective uid of this process.
    fn current_uid(&self) -> u32;
    /// Creates a folder (and missing parents) with mode 0700.
    fn create_private_dir(&self, path: &Path) -> io::Result<()>;
    /// Creates a new file (with `mode`, failing if it exists) and writes `data` into it; if the
    /// write fails (a full disk), the file is removed again.
    fn write_new(&self, path: &Path, data: &[u8], mode: u32) -> io::Result<()>;
    /// fsync of a file's data and metadata.
    fn sync_file(&self, path: &Path) -> io::Result<()>;
    /// Atomically renames `from` over `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Creates `to` as a hard link to `from`; fails with `AlreadyExists` if `to` exists. This is
    /// the atomic "create, never replace" used for new keyboxes and output files.
    fn link(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// fsync of a folder, making renames, links and removals in it durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Tries to take an exclusive lock on `path` (created 0600 if missing); `None` if held.
    fn try_lock(&self, path: &Path) -> io::Result<Option<LockGuard>>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

impl Fs for RealFs {
    fn read(&self, path: &Path, limit: u64) -> io::Result<Vec<u8>> {
        // O_NONBLOCK: a FIFO swapped in after the caller checked the file type must not hang us;
        // O_NOFOLLOW: nor a symbolic link swapped in make us read another file.
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)?;
        let mut bytes = Vec::new();
        file.take(limit).read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    fn facts(&self, path: &Path) -> io::Result<FileFacts> {
        let meta = fs::metadata(path)?;
        Ok(FileFacts { mode: meta.mode(), owner: meta.uid() })
    }

    fn entry_facts(&self, path: &Path) -> io::Result<FileFacts> {
        // O_PATH: a handle on the entry, not an open of the file; O_NOFOLLOW: a symlink gives a
        // handle on the link itself. The facts come from that handle (fstat), so they describe
        // what is there now, not what a second look at the path might find.
        let handle = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)?;
        let meta = handle.metadata()?;
        Ok(FileFacts { mode: meta.mode(), owner: meta.uid() })
    }

    #[allow(unsafe_code)]
    fn current_uid(&self) -> u32 {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() }
    }

    fn create_private_dir(&self, path: &Path) -> io::Result<()> {
        fs::DirBuilder::new().recursive(true).mode(0o700).create(path)
    }

    fn write_new(&self, path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)?;
        file.write_all(data).inspect_err(|_| {
            // Ours since the create above: a part-written file is not left behind.
            let _ = fs::remove_file(path);
        })
    }

    fn sync_file(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn link(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::hard_link(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<LockGuard>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Box::new(file))),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }
}
