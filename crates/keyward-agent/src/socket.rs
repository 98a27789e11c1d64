//! Where the agent listens: the default socket path of a keybox, a socket systemd passed in
//! (socket activation), or one bound here.

#![allow(unsafe_code)] // taking over the descriptor systemd passed; its SAFETY note is at the call

use std::os::fd::FromRawFd;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use keyward_core::store::{RealFs, create_private_folder};
use sha2::{Digest, Sha256};

use crate::callers::Audience;
use crate::error::AgentError;

/// Connections the kernel queues for the agent before it accepts them. Short on purpose: the
/// agent accepts as fast as callers come, and under a flood of callers it refuses, a long queue
/// of theirs is a long wait for everyone else (a client's connect waits for room in turn; see
/// scripts/bench-agent-flood.sh).
const BACKLOG: i32 = 8;

/// The first descriptor systemd passes (sd_listen_fds(3)).
const LISTEN_FDS_START: i32 = 3;

/// Which keybox an agent's socket is for.
#[derive(Debug, Clone, Copy)]
pub enum KeyboxIs<'a> {
    /// The user's default keybox (`$XDG_CONFIG_HOME/keyward/keybox.json`): the shipped units'
    /// socket.
    TheDefault,
    /// Another keybox, at this path.
    Named(&'a Path),
}

/// The default socket of the agent for a keybox: `$XDG_RUNTIME_DIR/keyward/agent.sock` for the
/// user's default keybox — the socket the shipped units listen on — and
/// `$XDG_RUNTIME_DIR/keyward/agent-HASH.sock` for any other, HASH the first 16 hex digits of
/// the SHA-256 of its absolute path (one agent per keybox, and a path that fits a socket
/// address).
pub fn default_socket(keybox: KeyboxIs<'_>) -> Result<PathBuf, AgentError> {
    let runtime = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| {
            AgentError::Invalid(
                "XDG_RUNTIME_DIR is not set; give the agent's socket with --socket PATH".into(),
            )
        })?;
    let folder = runtime.join("keyward");
    let KeyboxIs::Named(keybox) = keybox else {
        return Ok(folder.join("agent.sock"));
    };
    let absolute = std::path::absolute(keybox).map_err(|source| AgentError::Io {
        what: "cannot resolve",
        path: keybox.to_path_buf(),
        source,
    })?;
    let digest = Sha256::digest(absolute.as_os_str().as_encoded_bytes());
    let hash = keyward_core::encoding::to_hex(&digest[..8]);
    Ok(folder.join(format!("agent-{hash}.sock")))
}

/// A listening socket, and the path to remove at exit if it was bound here.
#[derive(Debug)]
pub struct Listening {
    /// The socket.
    pub listener: UnixListener,
    /// The socket file bound here (not one systemd owns).
    pub bound: Option<BoundSocket>,
}

/// A socket file this process bound: its path, and the file's identity, so that only it is
/// removed (not a later agent's socket at the same path).
#[derive(Debug, Clone)]
pub struct BoundSocket {
    /// The path.
    pub path: PathBuf,
    dev: u64,
    ino: u64,
}

impl BoundSocket {
    /// Removes the socket file if it is still the one bound here.
    pub fn remove_if_ours(&self) {
        use std::os::unix::fs::MetadataExt;
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|facts| facts.dev() == self.dev && facts.ino() == self.ino);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The socket systemd passed, if this process was started by socket activation
/// (`LISTEN_PID` is this process and `LISTEN_FDS` is at least 1).
pub fn activated() -> Option<UnixListener> {
    let pid: u32 = std::env::var("LISTEN_PID").ok()?.parse().ok()?;
    let fds: u32 = std::env::var("LISTEN_FDS").ok()?.parse().ok()?;
    if pid != std::process::id() || fds == 0 {
        return None;
    }
    // Not inherited by anything this process starts (a PKCS#11 module that forks, say).
    // SAFETY: F_SETFD on descriptor 3 only sets its close-on-exec flag; it fails harmlessly if
    // the descriptor is not open.
    if unsafe { libc::fcntl(LISTEN_FDS_START, libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
        return None;
    }
    // SAFETY: systemd passed descriptor 3 to this process (checked by LISTEN_PID above), and
    // nothing else in this process owns it.
    let listener = unsafe { UnixListener::from_raw_fd(LISTEN_FDS_START) };
    // It must be a Unix socket: one with a local address of that family.
    listener.local_addr().ok().map(|_| listener)
}

/// Where a socket is bound, which decides its permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// The default folder ([`default_socket`]): made 0700, the socket 0600.
    DefaultFolder,
    /// A folder the operator chose, which must exist: the socket is 0666 for an audience of
    /// other users (their credentials decide), else 0600.
    Chosen(Audience),
}

/// A socket listening at `path` whose file has `mode` from the moment it exists: the mode is
/// set on the descriptor before `bind` makes the file (Linux gives the file the socket's mode,
/// less the umask, lifted for the call), so nobody can connect in between, and no `chmod` by
/// path can follow a link swapped in.
fn listen_with_mode(path: &Path, mode: libc::mode_t) -> std::io::Result<UnixListener> {
    use std::os::fd::{AsRawFd, OwnedFd};
    let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)?;
    // SAFETY: fchmod on the socket this function owns; no pointers.
    if unsafe { libc::fchmod(socket.as_raw_fd(), mode) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let address = socket2::SockAddr::unix(path)?;
    // The umask is the whole process's: lifted only for a mode that grants others anything (a
    // usual umask leaves 0600 as it is), and before the agent starts the threads that serve
    // (the one that waits for signals creates no files).
    let bound = if mode & 0o077 == 0 {
        socket.bind(&address)
    } else {
        // SAFETY: umask takes and returns a mode, no pointers; the old one is put back at once.
        let old = unsafe { libc::umask(0) };
        let bound = socket.bind(&address);
        // SAFETY: as above.
        unsafe { libc::umask(old) };
        bound
    };
    bound?;
    socket.listen(BACKLOG)?;
    Ok(UnixListener::from(OwnedFd::from(socket)))
}

/// Binds `path` in `place`. A socket left by an agent that is gone is replaced; one that answers
/// (or cannot be checked) is refused.
pub fn bind(path: &Path, place: Place) -> Result<Listening, AgentError> {
    let io = |what, source| AgentError::Io { what, path: path.to_path_buf(), source };
    if place == Place::DefaultFolder
        && let Some(folder) = path.parent()
    {
        create_private_folder(&RealFs, folder).map_err(|e| AgentError::Invalid(e.to_string()))?;
    }
    if let Ok(facts) = std::fs::symlink_metadata(path) {
        if !facts.file_type().is_socket() {
            return Err(AgentError::Invalid(format!(
                "{} exists and is not a socket; remove it or choose another --socket",
                path.display()
            )));
        }
        // Only a socket nobody listens on is stale; anything else may be a live agent (busy,
        // or not ours to reach).
        match UnixStream::connect(path) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            _ => return Err(AgentError::AlreadyServing(path.to_path_buf())),
        }
        std::fs::remove_file(path).map_err(|e| io("cannot remove the stale socket", e))?;
    }
    let mode = if place == Place::Chosen(Audience::Others) { 0o666 } else { 0o600 };
    let listener = listen_with_mode(path, mode).map_err(|e| io("cannot listen at", e))?;
    let facts = std::fs::symlink_metadata(path).map_err(|e| io("cannot read", e))?;
    use std::os::unix::fs::MetadataExt;
    if !facts.file_type().is_socket() || facts.mode() & 0o777 != mode {
        // A socket of ours with another mode is this one (a umask stricter than 0600): not left
        // behind. Anything else is someone else's, and left alone.
        // SAFETY: geteuid has no preconditions and cannot fail.
        if facts.file_type().is_socket() && facts.uid() == unsafe { libc::geteuid() } {
            let _ = std::fs::remove_file(path);
        }
        return Err(AgentError::Invalid(format!(
            "{} is not the socket just bound with mode {mode:o}; check the umask (it must leave \
             the owner read and write) and who else writes that folder",
            path.display()
        )));
    }
    let bound = BoundSocket { path: path.to_path_buf(), dev: facts.dev(), ino: facts.ino() };
    Ok(Listening { listener, bound: Some(bound) })
}
