//! A simulated file system for crash tests. It counts every mutating step; told to crash at step
//! N, that step and every later one fail, as if the power went. [`SimFs::after_power_cut`] then
//! gives the disk as it would be found on reboot: file contents as of their last fsync, and the
//! folder either as of its last fsync or with every rename already applied (both happen on real
//! file systems, so tests check both).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use super::fs::{FileFacts, Fs, LockGuard};

#[derive(Debug, Clone, Default)]
struct Inode {
    data: Vec<u8>,
    synced: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
struct State {
    inodes: Vec<Inode>,
    /// The folder as the running process sees it.
    entries: BTreeMap<PathBuf, usize>,
    /// The folder as of its last fsync.
    durable_entries: BTreeMap<PathBuf, usize>,
    steps: usize,
    crash_at: Option<usize>,
    crashed: bool,
}

/// Which folder state survives the power cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FolderAfterCrash {
    /// Only what the last folder fsync made durable.
    AsLastSynced,
    /// Every rename, link and removal already applied.
    AsLastSeen,
}

/// An in-memory file system that can lose power.
#[derive(Debug, Default)]
pub struct SimFs {
    state: RefCell<State>,
}

impl SimFs {
    /// An empty file system.
    pub fn new() -> Self {
        SimFs::default()
    }

    /// Adds a durable file.
    pub fn put(&self, path: &Path, data: &[u8]) {
        let mut s = self.state.borrow_mut();
        let inode = s.inodes.len();
        s.inodes.push(Inode { data: data.to_vec(), synced: data.to_vec() });
        s.entries.insert(path.to_path_buf(), inode);
        s.durable_entries.insert(path.to_path_buf(), inode);
    }

    /// Makes step `n` (0-based) and every later mutating step fail.
    pub fn crash_at(&self, n: usize) {
        self.state.borrow_mut().crash_at = Some(n);
    }

    /// How many mutating steps have run.
    pub fn steps(&self) -> usize {
        self.state.borrow().steps
    }

    /// Whether the simulated power cut happened.
    pub fn crashed(&self) -> bool {
        self.state.borrow().crashed
    }

    /// The disk as found after the power cut.
    pub fn after_power_cut(&self, folder: FolderAfterCrash) -> SimFs {
        let s = self.state.borrow();
        let entries = match folder {
            FolderAfterCrash::AsLastSynced => &s.durable_entries,
            FolderAfterCrash::AsLastSeen => &s.entries,
        };
        let fresh = SimFs::new();
        for (path, inode) in entries {
            fresh.put(path, &s.inodes[*inode].synced);
        }
        fresh
    }

    /// The files present, with their contents as the running process sees them.
    pub fn files(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let s = self.state.borrow();
        s.entries.iter().map(|(p, i)| (p.clone(), s.inodes[*i].data.clone())).collect()
    }

    /// Counts a mutating step, failing it if the power is (or now goes) out.
    fn step(&self) -> io::Result<()> {
        let mut s = self.state.borrow_mut();
        if s.crashed || s.crash_at == Some(s.steps) {
            s.crashed = true;
            return Err(io::Error::other("simulated power cut"));
        }
        s.steps += 1;
        Ok(())
    }

    fn alive(&self) -> io::Result<()> {
        if self.state.borrow().crashed {
            Err(io::Error::other("simulated power cut"))
        } else {
            Ok(())
        }
    }
}

fn not_found() -> io::Error {
    io::Error::from(io::ErrorKind::NotFound)
}

impl Fs for SimFs {
    fn read(&self, path: &Path, limit: u64) -> io::Result<Vec<u8>> {
        self.alive()?;
        let s = self.state.borrow();
        let data = &s.inodes[*s.entries.get(path).ok_or_else(not_found)?].data;
        Ok(data[..data.len().min(usize::try_from(limit).unwrap_or(usize::MAX))].to_vec())
    }

    fn facts(&self, path: &Path) -> io::Result<FileFacts> {
        self.alive()?;
        let s = self.state.borrow();
        if s.entries.contains_key(path) {
            Ok(FileFacts { mode: 0o100600, owner: 0 })
        } else if s.entries.keys().any(|p| p.parent() == Some(path)) || path == Path::new("/sim") {
            Ok(FileFacts { mode: 0o040700, owner: 0 })
        } else {
            Err(not_found())
        }
    }

    fn entry_facts(&self, path: &Path) -> io::Result<FileFacts> {
        self.facts(path)
    }

    fn current_uid(&self) -> u32 {
        0
    }

    fn create_private_dir(&self, _path: &Path) -> io::Result<()> {
        self.alive()
    }

    fn write_new(&self, path: &Path, data: &[u8], _mode: u32) -> io::Result<()> {
        self.step()?;
        let mut s = self.state.borrow_mut();
        if s.entries.contains_key(path) {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        let inode = s.inodes.len();
        s.inodes.push(Inode { data: data.to_vec(), synced: Vec::new() });
        s.entries.insert(path.to_path_buf(), inode);
        Ok(())
    }

    fn sync_file(&self, path: &Path) -> io::Result<()> {
        self.step()?;
        let mut s = self.state.borrow_mut();
        let inode = *s.entries.get(path).ok_or_else(not_found)?;
        let data = s.inodes[inode].data.clone();
        s.inodes[inode].synced = data;
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.step()?;
        let mut s = self.state.borrow_mut();
        let inode = s.entries.remove(from).ok_or_else(not_found)?;
        s.entries.insert(to.to_path_buf(), inode);
        Ok(())
    }

    fn link(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.step()?;
        let mut s = self.state.borrow_mut();
        if s.entries.contains_key(to) {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        let inode = *s.entries.get(from).ok_or_else(not_found)?;
        s.entries.insert(to.to_path_buf(), inode);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.step()?;
        let mut s = self.state.borrow_mut();
        s.entries.remove(path).map(|_| ()).ok_or_else(not_found)
    }

    /// The simulator models one folder, so syncing any folder makes every entry durable.
    fn sync_dir(&self, _path: &Path) -> io::Result<()> {
        self.step()?;
        let mut s = self.state.borrow_mut();
        s.durable_entries = s.entries.clone();
        Ok(())
    }

    fn try_lock(&self, _path: &Path) -> io::Result<Option<LockGuard>> {
        self.alive()?;
        Ok(Some(Box::new(())))
    }
}
