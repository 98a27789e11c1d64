//! The crash-atomic keybox store.
//!
//! Commit protocol: write a temp file beside the keybox → fsync it → rename it over the keybox
//! (or hard-link it into place when the keybox must not exist yet) → fsync the folder. A power
//! cut at any step leaves the old file or the new one, never a mix. Read-modify-write runs under
//! an exclusive lock on a sibling lock file, and the generation read must still be the one on disk
//! at commit time (compare-and-swap), so two writers never lose each other's change.

pub mod fs;
pub mod sim;

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::keybox::format::MAX_KEYBOX_BYTES;
use crate::keybox::{Keybox, UnlockedKeybox};

pub use fs::{FileFacts, Fs, LockGuard, RealFs};

/// File-type bits of `st_mode`, and the value for a regular file.
const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;

/// How long a command waits for another keyward command to release the lock by default.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(30);

/// A keybox file, read and written through an [`Fs`].
pub struct Store<'fs> {
    fs: &'fs dyn Fs,
    path: PathBuf,
    lock_wait: Duration,
}

/// Proof that the store's lock is held; released on drop.
pub struct StoreLock {
    _guard: LockGuard,
}

impl<'fs> Store<'fs> {
    /// The keybox at `path`.
    pub fn new(fs: &'fs dyn Fs, path: impl Into<PathBuf>) -> Self {
        Store { fs, path: path.into(), lock_wait: DEFAULT_LOCK_WAIT }
    }

    /// Sets how long to wait for the lock before giving up with [`Error::LockHeld`].
    pub fn with_lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    /// The keybox path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn folder(&self) -> PathBuf {
        parent_folder(&self.path)
    }

    fn sibling(&self, suffix: &str) -> PathBuf {
        let name =
            self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        self.folder().join(format!(".{name}.{suffix}"))
    }

    /// Whether a keybox file exists.
    pub fn exists(&self) -> bool {
        self.fs.facts(&self.path).is_ok()
    }

    /// Reads and parses the keybox, after checking that no other user can change it (and, if it
    /// has a plain slot, read it).
    pub fn load(&self) -> Result<Keybox> {
        // The entry itself: a symbolic link is refused, not followed. A commit renames a new
        // file over the path, so reading through a link would read one file and write another
        // (and a link planted in a shared folder would have us read a file of its maker's).
        let facts = match self.fs.entry_facts(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::KeyboxNotFound(self.path.clone()));
            }
            Err(e) => return Err(Error::io("cannot read", &self.path, e)),
        };
        if facts.mode & S_IFMT != S_IFREG {
            return Err(Error::NotAKeyboxFile {
                path: self.path.clone(),
                what: kind_of(facts.mode),
            });
        }
        self.check_private(&self.path, facts, false)?;
        let folder = self.folder();
        let folder_facts =
            self.fs.facts(&folder).map_err(|e| Error::io("cannot read", &folder, e))?;
        self.check_private(&folder, folder_facts, true)?;
        // One byte past the limit is enough for the parser to say "too large".
        let bytes = self
            .fs
            .read(&self.path, MAX_KEYBOX_BYTES + 1)
            .map_err(|e| Error::io("cannot read", &self.path, e))?;
        let keybox = Keybox::parse(&bytes, &self.path)?;
        let has_plain =
            keybox.read_slots().any(|(_, read)| read.is_some_and(|slot| slot.file_is_the_secret()));
        if has_plain && facts.mode & 0o044 != 0 {
            return Err(Error::InsecurePermissions {
                path: self.path.clone(),
                problem: "readable by other users, and its plain slot makes that reading the key",
                fix: format!("chmod 600 {}", self.path.display()),
            });
        }
        Ok(keybox)
    }

    /// Refuses a file or folder another user could write (a sticky folder such as /tmp is
    /// tolerated: others can add files there, but not replace ours).
    fn check_private(&self, path: &Path, facts: FileFacts, is_dir: bool) -> Result<()> {
        let uid = self.fs.current_uid();
        if facts.owner != uid && facts.owner != 0 {
            return Err(Error::InsecurePermissions {
                path: path.to_path_buf(),
                problem: "owned by another user",
                fix: format!("chown {uid} {}", path.display()),
            });
        }
        let sticky = facts.mode & 0o1000 != 0;
        if facts.mode & 0o022 != 0 && !(is_dir && sticky) {
            return Err(Error::InsecurePermissions {
                path: path.to_path_buf(),
                problem: "writable by other users",
                fix: format!("chmod go-w {}", path.display()),
            });
        }
        Ok(())
    }

    /// Takes the store's exclusive lock, waiting up to the lock wait.
    pub fn lock(&self) -> Result<StoreLock> {
        let folder = self.folder();
        self.fs
            .create_private_dir(&folder)
            .map_err(|e| Error::io("cannot create folder", &folder, e))?;
        let lock_path = self.sibling("lock");
        let deadline = Instant::now() + self.lock_wait;
        loop {
            match self
                .fs
                .try_lock(&lock_path)
                .map_err(|e| Error::io("cannot lock", &self.path, e))?
            {
                Some(guard) => return Ok(StoreLock { _guard: guard }),
                None if Instant::now() >= deadline => {
                    return Err(Error::LockHeld(self.path.clone()));
                }
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Writes a new keybox; refuses (and changes nothing) if one exists.
    pub fn create(&self, _lock: &StoreLock, keybox: &Keybox) -> Result<()> {
        if self.exists() {
            return Err(Error::KeyboxExists(self.path.clone()));
        }
        let temp = self.write_temp(&keybox.to_bytes())?;
        match self.fs.link(&temp, &self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let _ = self.fs.remove(&temp);
                return Err(Error::KeyboxExists(self.path.clone()));
            }
            Err(e) => {
                let _ = self.fs.remove(&temp);
                return Err(Error::io("cannot create", &self.path, e));
            }
        }
        // The keybox is in place from here on: a failure now must not read as "nothing changed".
        let not_durable = |source| Error::NotDurable { path: self.path.clone(), source };
        self.fs.sync_dir(&self.folder()).map_err(not_durable)?;
        self.fs.remove(&temp).map_err(not_durable)?;
        self.fs.sync_dir(&self.folder()).map_err(not_durable)
    }

    /// Replaces the keybox, if its generation on disk is still `expected_generation`.
    pub fn replace(
        &self,
        _lock: &StoreLock,
        expected_generation: u64,
        keybox: &Keybox,
    ) -> Result<()> {
        let found = self.load()?.generation();
        if found != expected_generation {
            return Err(Error::ConcurrentChange {
                path: self.path.clone(),
                expected: expected_generation,
                found,
            });
        }
        let temp = self.write_temp(&keybox.to_bytes())?;
        if let Err(e) = self.fs.rename(&temp, &self.path) {
            let _ = self.fs.remove(&temp);
            return Err(Error::io("cannot replace", &self.path, e));
        }
        // The new keybox is in place from here on (see `create`).
        self.fs
            .sync_dir(&self.folder())
            .map_err(|source| Error::NotDurable { path: self.path.clone(), source })
    }

    /// Writes and fsyncs the temp file, clearing a stale one a crash may have left.
    fn write_temp(&self, bytes: &[u8]) -> Result<PathBuf> {
        // Errors name the keybox: the temp file is ours, not something the user knows of.
        let temp = self.sibling("tmp");
        match self.fs.remove(&temp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("cannot write", &self.path, e)),
        }
        self.fs
            .write_new(&temp, bytes, SECRET_MODE)
            .map_err(|e| Error::io("cannot write", &self.path, e))?;
        if let Err(e) = self.fs.sync_file(&temp) {
            let _ = self.fs.remove(&temp);
            return Err(Error::io("cannot write", &self.path, e));
        }
        Ok(temp)
    }

    /// Creates the keybox built by `build` under the lock; `build` runs only if none exists.
    pub fn create_with(
        &self,
        build: impl FnOnce() -> Result<UnlockedKeybox>,
    ) -> Result<UnlockedKeybox> {
        let lock = self.lock()?;
        if self.exists() {
            return Err(Error::KeyboxExists(self.path.clone()));
        }
        let created = build()?;
        self.create(&lock, created.keybox())?;
        Ok(created)
    }

    /// Read-modify-write under the lock: loads the keybox, lets `change` make a new version from
    /// it, and commits that version only if nobody else committed in between.
    pub fn update(
        &self,
        change: impl FnOnce(&Keybox) -> Result<UnlockedKeybox>,
    ) -> Result<UnlockedKeybox> {
        let lock = self.lock()?;
        let current = self.load()?;
        let next = change(&current)?;
        self.replace(&lock, current.generation(), next.keybox())?;
        Ok(next)
    }
}

/// What kind of entry a file mode describes, in words, for refusals.
fn kind_of(mode: u32) -> &'static str {
    match mode & S_IFMT {
        0o120000 => "a symbolic link",
        0o010000 => "a FIFO (named pipe)",
        0o140000 => "a socket",
        0o020000 | 0o060000 => "a device",
        0o040000 => "a folder",
        _ => "not a regular file",
    }
}

/// The file named `<prefix><keybox's name><suffix>` in the keybox's folder: where the files that
/// belong to a keybox live (its hub enrollment, its identity, its journals).
pub fn beside_keybox(keybox: &Path, prefix: &str, suffix: &str) -> PathBuf {
    let name = keybox.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    keybox.with_file_name(format!("{prefix}{name}{suffix}"))
}

/// Refuses what is at `path` unless it is nothing or a regular file this user owns — judged
/// from the entry itself, never by following a link: the only things a secret may replace.
pub fn check_replaceable(fs: &dyn Fs, path: &Path) -> Result<()> {
    let refuse = |what| Err(Error::OutputNotReplaceable { path: path.to_path_buf(), what });
    match fs.entry_facts(path) {
        Ok(facts) if facts.mode & S_IFMT != S_IFREG => refuse(kind_of(facts.mode)),
        Ok(facts) if facts.owner != fs.current_uid() => refuse("a file owned by another user"),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("cannot write", path, e)),
    }
}

/// Writes a secret file (a key, a recovery code, a key file) crash-atomically with mode 0600:
/// a temp file beside it is written and fsynced, then hard-linked into place (refusing anything
/// already at `path`, a FIFO or symlink included) or, with `overwrite`, renamed over it — only
/// over a regular file this user owns, judged from the entry itself (never by following a
/// link); then the folder is fsynced. A secret thus only ever lands in a new file that this
/// process created 0600, never in a pipe, device or link another user planted. On any failure
/// the temp file is removed and `path` is untouched; errors name `path`, not the temp file.
pub fn write_secret_file(fs: &dyn Fs, path: &Path, data: &[u8], overwrite: bool) -> Result<()> {
    place_file(fs, path, data, overwrite, SECRET_MODE)
}

/// Replaces (or creates) a file that holds nothing secret and that another user reads (a
/// metrics textfile), mode 0644, by the same crash-atomic steps as [`write_secret_file`] with
/// `overwrite`: what is at `path` is replaced only if it is a regular file this user owns.
pub fn write_public_file(fs: &dyn Fs, path: &Path, data: &[u8]) -> Result<()> {
    place_file(fs, path, data, true, 0o644)
}

/// Mode of every file that holds key material.
const SECRET_MODE: u32 = 0o600;

/// The steps [`write_secret_file`] describes, for a file created with `mode`.
fn place_file(fs: &dyn Fs, path: &Path, data: &[u8], overwrite: bool, mode: u32) -> Result<()> {
    let folder = parent_folder(path);
    if overwrite {
        check_replaceable(fs, path)?;
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let suffix = crate::encoding::to_hex(&crate::random::array::<6>()?);
    let temp = folder.join(format!(".{name}.{suffix}.tmp"));
    fs.write_new(&temp, data, mode).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => {
            Error::MissingFolder { path: path.to_path_buf(), folder: folder.clone() }
        }
        _ => Error::io("cannot write", path, e),
    })?;
    let placed =
        fs.sync_file(&temp).map_err(|e| Error::io("cannot write", path, e)).and_then(|()| {
            if overwrite {
                fs.rename(&temp, path).map_err(|e| Error::io("cannot write", path, e))
            } else {
                match fs.link(&temp, path) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        Err(Error::OutputExists(path.to_path_buf()))
                    }
                    Err(e) => Err(Error::io("cannot write", path, e)),
                }
            }
        });
    if let Err(e) = placed {
        let _ = fs.remove(&temp);
        return Err(e);
    }
    if !overwrite {
        // The secret is in place under `path`; the second name goes.
        fs.remove(&temp).map_err(|e| Error::io("cannot finish writing", path, e))?;
    }
    fs.sync_dir(&folder).map_err(|e| Error::io("cannot sync the folder of", path, e))
}

/// Creates a folder for secret files (and missing parents) with mode 0700.
pub fn create_private_folder(fs: &dyn Fs, folder: &Path) -> Result<()> {
    fs.create_private_dir(folder).map_err(|e| Error::io("cannot create folder", folder, e))
}

/// The folder a file lives in (`.` for a bare file name).
fn parent_folder(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
