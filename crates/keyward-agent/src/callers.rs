//! Who is calling, as the kernel says (SO_PEERCRED), and whom the agent serves.
//!
//! A caller is served when its identity is allowed — its uid matches a `uid:` rule, or its
//! primary or a supplementary gid a `gid:` rule; with neither kind of rule, only the agent's
//! own uid — and, if any `exe:` rule is given, its executable (`/proc/PID/exe`) is one of
//! theirs, with the SHA-256 a rule names.

#![allow(unsafe_code)] // getsockopt(SO_PEERCRED, SO_PEERPIDFD), pidfd calls; SAFETY notes at them

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

/// A caller, from the kernel's credentials of the socket's other end.
#[derive(Debug)]
pub struct Caller {
    /// Its process id.
    pub pid: u32,
    /// Its effective uid.
    pub uid: u32,
    /// Its effective gid.
    pub gid: u32,
    /// A handle on its process (`SO_PEERPIDFD`, or `pidfd_open` on a kernel without it): what
    /// is read through `/proc/PID` (its executable, its groups) is believed only if the handle
    /// says the process is still alive afterwards, so a pid reused by another process is never
    /// read as the caller's.
    process: Option<OwnedFd>,
}

impl Caller {
    /// The credentials of `stream`'s peer: uid and gid as they were at `connect`, from the
    /// kernel, with no race. Its process is not looked at yet ([`Caller::look_at_process`]):
    /// a caller refused by its uid costs no more.
    pub fn of(stream: &UnixStream) -> std::io::Result<Caller> {
        let cred = peer_credentials(stream)?;
        let pid = u32::try_from(cred.pid).map_err(|_| std::io::Error::other("no peer pid"))?;
        Ok(Caller { pid, uid: cred.uid, gid: cred.gid, process: None })
    }

    /// Takes a handle on the caller's process (`SO_PEERPIDFD`: the process that connected,
    /// whenever it is asked), before anything is read through its pid.
    pub fn look_at_process(&mut self, stream: &UnixStream) {
        if self.process.is_none() {
            let pid = libc::pid_t::try_from(self.pid).unwrap_or(0);
            self.process = peer_pidfd(stream).or_else(|| pidfd_open(pid));
        }
    }

    /// A caller whose credentials could not be read (for the audit line that says so).
    pub fn unknown() -> Caller {
        Caller { pid: 0, uid: u32::MAX, gid: u32::MAX, process: None }
    }

    /// Its executable, if it can be read and the process is still the one that connected.
    pub fn exe(&self) -> Option<PathBuf> {
        let exe = std::fs::read_link(format!("/proc/{}/exe", self.pid)).ok()?;
        self.still_there().then_some(exe)
    }

    /// Its supplementary groups, from /proc (empty if they cannot be read, or the process is
    /// gone).
    fn groups(&self) -> Vec<u32> {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        let groups = status
            .lines()
            .find_map(|line| line.strip_prefix("Groups:"))
            .map(|ids| ids.split_whitespace().filter_map(|id| id.parse().ok()).collect())
            .unwrap_or_default();
        if self.still_there() { groups } else { Vec::new() }
    }

    /// SHA-256 of its executable, read through /proc/PID/exe (the file it runs, even if the path
    /// now names another).
    fn exe_sha256(&self, digests: &ExeDigests) -> Option<[u8; 32]> {
        let file = File::open(format!("/proc/{}/exe", self.pid)).ok()?;
        let digest = digests.sha256(file)?;
        self.still_there().then_some(digest)
    }

    /// Whether the process that connected is still alive (so `/proc/PID` was its). Without a
    /// handle (a kernel older than 5.3) nothing can tell, and the pid is believed.
    fn still_there(&self) -> bool {
        let Some(process) = &self.process else { return true };
        // SAFETY: pidfd_send_signal with signal 0 only checks that the process exists and may
        // be signalled; the descriptor is ours, the info pointer null.
        let sent = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                process.as_raw_fd(),
                0,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        // EPERM: alive, but not ours to signal (another user's process).
        sent == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
}

/// The peer's process as a pidfd, taken with its credentials (Linux 6.5 and later).
fn peer_pidfd(stream: &UnixStream) -> Option<OwnedFd> {
    let mut fd: libc::c_int = -1;
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>()).ok()?;
    // SAFETY: `fd` and `len` are valid for writes of an int and its length; the descriptor is
    // the stream's own open socket.
    let done = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERPIDFD,
            (&raw mut fd).cast(),
            &raw mut len,
        )
    };
    // SAFETY: on success the kernel made `fd`, a new descriptor nothing else owns.
    (done == 0 && fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A pidfd for `pid` (Linux 5.3 and later): a kernel without `SO_PEERPIDFD` has a window in
/// which the pid could be reused before this, which the liveness check narrows.
fn pidfd_open(pid: libc::pid_t) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags, no pointers (its descriptor is close-on-exec).
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = libc::c_int::try_from(fd).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: the kernel made `fd`, a new descriptor nothing else owns.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The uid of `stream`'s peer (a client checks who serves the socket with it).
pub fn peer_uid(stream: &UnixStream) -> std::io::Result<u32> {
    Ok(peer_credentials(stream)?.uid)
}

/// The kernel's record of the process at the other end of `stream`.
fn peer_credentials(stream: &UnixStream) -> std::io::Result<libc::ucred> {
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::ucred>())
        .map_err(|_| std::io::Error::other("ucred size"))?;
    // SAFETY: `cred` and `len` are valid for writes of a ucred and its length, and the
    // descriptor is the stream's own open socket.
    let done = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &raw mut len,
        )
    };
    if done != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(cred)
}

/// One `--allow` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// `uid:N`.
    Uid(u32),
    /// `gid:N`.
    Gid(u32),
    /// `exe:/absolute/path[@sha256hex]`.
    Exe {
        /// The executable's path.
        path: PathBuf,
        /// Its SHA-256, if the rule pins it.
        sha256: Option<[u8; 32]>,
    },
}

/// Why an `--allow` text is no rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// Not `uid:`, `gid:` or `exe:` with a value.
    #[error("`{0}` is not uid:N, gid:N or exe:/path[@sha256]")]
    NotARule(String),
    /// A pinned digest that is not 64 hex digits.
    #[error("`{0}` is not a SHA-256 in hex (64 digits)")]
    BadDigest(String),
    /// An executable named by a relative path.
    #[error("`{}` is not an absolute path", .0.display())]
    RelativePath(PathBuf),
}

/// Why a caller is not served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotAllowed {
    /// Neither its uid nor its groups are allowed.
    #[error("uid {uid} gid {gid} is not allowed")]
    Identity {
        /// Its uid.
        uid: u32,
        /// Its gid.
        gid: u32,
    },
    /// `exe:` rules are given and its executable cannot be read.
    #[error("its executable cannot be read")]
    ExeUnreadable,
    /// Its executable is none of the allowed ones (or has another SHA-256).
    #[error("the executable {} is not allowed", .0.display())]
    Exe(PathBuf),
}

/// Whom a socket must be reachable by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// The agent's own user only.
    OwnUser,
    /// Other users too (their credentials decide).
    Others,
}

impl FromStr for Rule {
    type Err = RuleError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || RuleError::NotARule(text.to_string());
        let (kind, value) = text.split_once(':').ok_or_else(bad)?;
        match kind {
            "uid" => value.parse().map(Rule::Uid).map_err(|_| bad()),
            "gid" => value.parse().map(Rule::Gid).map_err(|_| bad()),
            "exe" => {
                // `@` then hex digits pins the contents (64 of them); any other `@` is part of
                // the path.
                let hex_tail = value.rsplit_once('@').filter(|(_, hex)| {
                    !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit())
                });
                let (path, sha256) = match hex_tail {
                    Some((path, hex)) => {
                        let digest = keyward_core::encoding::from_hex(hex)
                            .and_then(|b| <[u8; 32]>::try_from(b).ok())
                            .ok_or_else(|| RuleError::BadDigest(hex.to_string()))?;
                        (path, Some(digest))
                    }
                    None => (value, None),
                };
                let path = PathBuf::from(path);
                if !path.is_absolute() {
                    return Err(RuleError::RelativePath(path));
                }
                Ok(Rule::Exe { path, sha256 })
            }
            _ => Err(bad()),
        }
    }
}

/// Executables hashed before, by the identity of their file: an allowed caller pinned by digest
/// costs one read of its executable, not one per connection (the agent meets callers on one
/// thread). A file is remembered by device, inode, size and ctime, and only once its ctime is
/// [`SETTLED`] old when the read begins and the same when it ends: any later change to it moves
/// its ctime past the one remembered (which nobody can set back), even on a file system whose
/// clock for it ticks once a second. A file changed within that time is read every time.
#[derive(Debug)]
struct ExeDigests {
    known: Mutex<HashMap<FileIdentity, [u8; 32]>>,
    /// How long a file must have stood unchanged to be remembered.
    settled: Duration,
}

/// A file's identity and the time of its last change (see [`ExeDigests`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FileIdentity {
    dev: u64,
    ino: u64,
    size: u64,
    ctime: (i64, i64),
}

impl FileIdentity {
    fn of(facts: &std::fs::Metadata) -> Self {
        FileIdentity {
            dev: facts.dev(),
            ino: facts.ino(),
            size: facts.size(),
            ctime: (facts.ctime(), facts.ctime_nsec()),
        }
    }
}

/// How long an executable must have stood unchanged before its digest is remembered: more than
/// the coarsest timestamp clock of a Linux file system (one second).
const SETTLED: Duration = Duration::from_secs(2);

/// Executables remembered at most; the memory is emptied when it is full.
const EXE_DIGESTS_KEPT: usize = 64;

impl ExeDigests {
    fn new(settled: Duration) -> Self {
        ExeDigests { known: Mutex::default(), settled }
    }

    /// The SHA-256 of `file`'s contents, remembered if it may be (see [`ExeDigests`]).
    fn sha256(&self, mut file: File) -> Option<[u8; 32]> {
        let began = SystemTime::now();
        let before = FileIdentity::of(&file.metadata().ok()?);
        if let Some(digest) = self.known().get(&before) {
            return Some(*digest);
        }
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => hasher.update(&buf[..n]),
                Err(_) => return None,
            }
        }
        let digest: [u8; 32] = hasher.finalize().into();
        let (seconds, nanos) = before.ctime;
        let changed = u64::try_from(seconds).ok().map(|s| {
            UNIX_EPOCH
                + Duration::from_secs(s)
                + Duration::from_nanos(u64::try_from(nanos).unwrap_or(0))
        });
        let settled = changed.is_some_and(|at| at + self.settled <= began);
        let after = file.metadata().ok().map(|facts| FileIdentity::of(&facts));
        if settled && after == Some(before) {
            let mut known = self.known();
            if known.len() >= EXE_DIGESTS_KEPT {
                known.clear();
            }
            known.insert(before, digest);
        }
        Some(digest)
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashMap<FileIdentity, [u8; 32]>> {
        self.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Whom the agent serves.
#[derive(Debug)]
pub struct Allowlist {
    identities: Vec<Rule>,
    executables: Vec<Rule>,
    own_uid: u32,
    digests: ExeDigests,
}

impl Allowlist {
    /// The rules given; the agent's own uid stands in for absent identity rules.
    pub fn new(rules: &[Rule], own_uid: u32) -> Self {
        let (executables, identities) =
            rules.iter().cloned().partition(|rule| matches!(rule, Rule::Exe { .. }));
        Allowlist { identities, executables, own_uid, digests: ExeDigests::new(SETTLED) }
    }

    /// Whom the socket must be reachable by: others too, if anyone but the agent's own uid may
    /// be served.
    pub fn audience(&self) -> Audience {
        if self.identities.iter().any(|rule| *rule != Rule::Uid(self.own_uid)) {
            Audience::Others
        } else {
            Audience::OwnUser
        }
    }

    /// Whether deciding needs more than the caller's uid and gid (its groups or executable,
    /// read through its process).
    pub fn reads_process(&self) -> bool {
        !self.executables.is_empty() || self.identities.iter().any(|r| matches!(r, Rule::Gid(_)))
    }

    /// `Ok` if `caller` is served, else why not.
    pub fn check(&self, caller: &Caller) -> Result<(), NotAllowed> {
        let identity = if self.identities.is_empty() {
            caller.uid == self.own_uid
        } else {
            let groups = if self.identities.iter().any(|r| matches!(r, Rule::Gid(_))) {
                caller.groups()
            } else {
                Vec::new()
            };
            self.identities.iter().any(|rule| match rule {
                Rule::Uid(uid) => caller.uid == *uid,
                Rule::Gid(gid) => caller.gid == *gid || groups.contains(gid),
                Rule::Exe { .. } => false,
            })
        };
        if !identity {
            return Err(NotAllowed::Identity { uid: caller.uid, gid: caller.gid });
        }
        if self.executables.is_empty() {
            return Ok(());
        }
        let Some(exe) = caller.exe() else {
            return Err(NotAllowed::ExeUnreadable);
        };
        let mut digest = None;
        let fits = |path: &Path,
                    sha256: &Option<[u8; 32]>,
                    digest: &mut Option<Option<[u8; 32]>>| {
            path == exe.as_path()
                && sha256.is_none_or(|want| {
                    *digest.get_or_insert_with(|| caller.exe_sha256(&self.digests)) == Some(want)
                })
        };
        let allowed = self.executables.iter().any(|rule| match rule {
            Rule::Exe { path, sha256 } => fits(path, sha256, &mut digest),
            _ => false,
        });
        if allowed { Ok(()) } else { Err(NotAllowed::Exe(exe)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_read_as_written_and_others_are_refused() {
        assert_eq!("uid:1000".parse(), Ok(Rule::Uid(1000)));
        assert_eq!("gid:27".parse(), Ok(Rule::Gid(27)));
        assert_eq!(
            "exe:/usr/bin/pbs".parse(),
            Ok(Rule::Exe { path: "/usr/bin/pbs".into(), sha256: None })
        );
        let pinned: Rule = format!("exe:/bin/x@{}", "ab".repeat(32)).parse().expect("pinned");
        assert_eq!(pinned, Rule::Exe { path: "/bin/x".into(), sha256: Some([0xab; 32]) });
        assert_eq!(
            "exe:/opt/a@b/x".parse(),
            Ok(Rule::Exe { path: "/opt/a@b/x".into(), sha256: None })
        );
        for bad in ["uid:x", "user:1", "exe:relative", "exe:/bin/x@12", "1000"] {
            assert!(bad.parse::<Rule>().is_err(), "{bad}");
        }
    }

    #[test]
    fn identity_and_executable_rules_both_hold() {
        // This test's own process, as its own caller.
        let me = Caller { pid: std::process::id(), uid: 7, gid: 8, process: None };
        let exe = std::env::current_exe().expect("this test's executable");
        assert!(Allowlist::new(&[], 7).check(&me).is_ok());
        assert!(Allowlist::new(&[], 9).check(&me).is_err());
        assert!(Allowlist::new(&[Rule::Gid(8)], 0).check(&me).is_ok());
        let rule = |path: &Path| Rule::Exe { path: path.into(), sha256: None };
        assert!(Allowlist::new(&[rule(&exe)], 7).check(&me).is_ok());
        assert!(Allowlist::new(&[rule(Path::new("/bin/b"))], 7).check(&me).is_err());
        assert!(Allowlist::new(&[Rule::Uid(1), rule(&exe)], 7).check(&me).is_err());
        // A process that is gone: nothing read through its pid is believed, though the pid
        // may name another process by then.
        let mut child = std::process::Command::new("sleep").arg("0.1").spawn().expect("sleep");
        let pid = libc::pid_t::try_from(child.id()).expect("pid");
        let process = pidfd_open(pid);
        assert!(process.is_some(), "pidfd_open works here");
        let caller = Caller { pid: child.id(), uid: 7, gid: 8, process };
        assert!(caller.still_there());
        child.wait().expect("reaped");
        assert!(!caller.still_there() && caller.exe().is_none() && caller.groups().is_empty());
        // The handle comes with the credentials where the kernel has SO_PEERPIDFD (6.5+).
        let (ours, _theirs) = UnixStream::pair().expect("a socket pair");
        let mut peer = Caller::of(&ours).expect("credentials");
        peer.look_at_process(&ours);
        assert!(peer.process.is_some() && peer.still_there());
        assert_eq!(peer.exe(), std::env::current_exe().ok());
    }

    /// Review of issue 22.4: an allowed caller pinned by digest had its executable read on
    /// every connection. It is read once, and again only when the file changed.
    #[test]
    fn an_executable_is_hashed_once_until_it_changes_and_only_once_it_has_settled() {
        let folder = std::env::temp_dir().join(format!("keyward-digests-{}", std::process::id()));
        std::fs::create_dir_all(&folder).expect("folder");
        let path = folder.join("tool");
        let digest_of = |bytes: &[u8]| -> [u8; 32] { Sha256::digest(bytes).into() };
        let open = || File::open(&path).expect("open");
        std::fs::write(&path, b"version one").expect("write");

        // Just written: read every time, not remembered.
        let careful = ExeDigests::new(SETTLED);
        assert_eq!(careful.sha256(open()), Some(digest_of(b"version one")));
        assert!(careful.known().is_empty());

        // (Any age counts as settled here.) Remembered, and read again once it changed: same
        // size, new contents, a ctime a tick of the coarse clock later at least.
        let digests = ExeDigests::new(Duration::ZERO);
        assert_eq!(digests.sha256(open()), Some(digest_of(b"version one")));
        assert_eq!(digests.sha256(open()), Some(digest_of(b"version one")));
        assert_eq!(digests.known().len(), 1, "remembered");
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&path, b"version two").expect("rewrite");
        assert_eq!(digests.sha256(open()), Some(digest_of(b"version two")));
        std::fs::remove_dir_all(&folder).expect("clean up");
    }
}
