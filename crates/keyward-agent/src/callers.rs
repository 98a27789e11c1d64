//! Who is calling, as the kernel says (SO_PEERCRED), and whom the agent serves.
//!
//! A caller is served when its identity is allowed — its uid matches a `uid:` rule, or its
//! primary or a supplementary gid a `gid:` rule; with neither kind of rule, only the agent's
//! own uid — and, if any `exe:` rule is given, its executable (`/proc/PID/exe`) is one of
//! theirs, with the SHA-256 a rule names.

#![allow(unsafe_code)] // getsockopt(SO_PEERCRED); its SAFETY note is at the call

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// A caller, from the kernel's credentials of the socket's other end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Its process id.
    pub pid: u32,
    /// Its effective uid.
    pub uid: u32,
    /// Its effective gid.
    pub gid: u32,
    /// Its executable, if it could be read.
    pub exe: Option<PathBuf>,
}

impl Caller {
    /// The credentials of `stream`'s peer, and its executable.
    pub fn of(stream: &UnixStream) -> std::io::Result<Caller> {
        let cred = peer_credentials(stream)?;
        let pid = u32::try_from(cred.pid).map_err(|_| std::io::Error::other("no peer pid"))?;
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
        Ok(Caller { pid, uid: cred.uid, gid: cred.gid, exe })
    }

    /// Its supplementary groups, from /proc (empty if they cannot be read).
    fn groups(&self) -> Vec<u32> {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("Groups:"))
            .map(|ids| ids.split_whitespace().filter_map(|id| id.parse().ok()).collect())
            .unwrap_or_default()
    }

    /// SHA-256 of its executable, read through /proc/PID/exe (the file it runs, even if the path
    /// now names another).
    fn exe_sha256(&self) -> Option<[u8; 32]> {
        let mut file = std::fs::File::open(format!("/proc/{}/exe", self.pid)).ok()?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match file.read(&mut buf) {
                Ok(0) => return Some(hasher.finalize().into()),
                Ok(n) => hasher.update(&buf[..n]),
                Err(_) => return None,
            }
        }
    }
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

/// Whom the agent serves.
#[derive(Debug, Clone)]
pub struct Allowlist {
    identities: Vec<Rule>,
    executables: Vec<Rule>,
    own_uid: u32,
}

impl Allowlist {
    /// The rules given; the agent's own uid stands in for absent identity rules.
    pub fn new(rules: &[Rule], own_uid: u32) -> Self {
        let (executables, identities) =
            rules.iter().cloned().partition(|rule| matches!(rule, Rule::Exe { .. }));
        Allowlist { identities, executables, own_uid }
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
        let Some(exe) = &caller.exe else {
            return Err(NotAllowed::ExeUnreadable);
        };
        let mut digest = None;
        let fits =
            |path: &Path, sha256: &Option<[u8; 32]>, digest: &mut Option<Option<[u8; 32]>>| {
                path == exe
                    && sha256.is_none_or(|want| {
                        *digest.get_or_insert_with(|| caller.exe_sha256()) == Some(want)
                    })
            };
        let allowed = self.executables.iter().any(|rule| match rule {
            Rule::Exe { path, sha256 } => fits(path, sha256, &mut digest),
            _ => false,
        });
        if allowed { Ok(()) } else { Err(NotAllowed::Exe(exe.clone())) }
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
        let me = Caller { pid: std::process::id(), uid: 7, gid: 8, exe: Some("/bin/a".into()) };
        assert!(Allowlist::new(&[], 7).check(&me).is_ok());
        assert!(Allowlist::new(&[], 9).check(&me).is_err());
        assert!(Allowlist::new(&[Rule::Gid(8)], 0).check(&me).is_ok());
        let exe = |path: &str| Rule::Exe { path: path.into(), sha256: None };
        assert!(Allowlist::new(&[exe("/bin/a")], 7).check(&me).is_ok());
        assert!(Allowlist::new(&[exe("/bin/b")], 7).check(&me).is_err());
        assert!(Allowlist::new(&[Rule::Uid(1), exe("/bin/a")], 7).check(&me).is_err());
    }
}
