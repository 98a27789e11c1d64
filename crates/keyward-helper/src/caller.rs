//! The caller's side: find the helper beside this executable, start it, call it.

use std::io;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::frame::{self, FrameError};

/// Why a helper could not be used.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    /// The executable is not beside this one.
    #[error(
        "keyward's helper `{name}` is not installed beside {beside}: install it with keyward \
         (`cargo install --path crates/keyward` installs keyward with its helpers)"
    )]
    NotInstalled {
        /// The helper's name.
        name: &'static str,
        /// Where it was looked for.
        beside: String,
    },
    /// It would not start.
    #[error("cannot start keyward's helper `{name}`: {error}")]
    Start {
        /// The helper's name.
        name: &'static str,
        /// Why.
        error: io::Error,
    },
    /// It stopped, or answered with something that is not an answer.
    #[error("keyward's helper `{name}` failed: {reason}")]
    Failed {
        /// The helper's name.
        name: &'static str,
        /// What happened.
        reason: String,
    },
    /// It is from another build of keyward.
    #[error(
        "keyward's helper `{name}` speaks another version ({found}) than this keyward: install \
         keyward and its helpers from one build"
    )]
    OtherVersion {
        /// The helper's name.
        name: &'static str,
        /// The version it wrote.
        found: u32,
    },
}

/// Where the helper `name` is: beside this executable. Nothing else is searched: the helper is
/// handed secrets, so it is the one installed with keyward, not one the environment names.
/// (Built with the `test-support` feature, a test program in cargo's `deps` folder also looks
/// one folder up, where cargo puts the executables.)
pub fn locate(name: &'static str) -> Result<PathBuf, HelperError> {
    let exe = std::env::current_exe().map_err(|error| HelperError::NotInstalled {
        name,
        beside: format!("this program ({error})"),
    })?;
    let dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    #[allow(unused_mut)]
    let mut places = vec![dir.join(name)];
    #[cfg(feature = "test-support")]
    if dir.file_name().is_some_and(|d| d == "deps")
        && let Some(up) = dir.parent()
    {
        places.push(up.join(name));
    }
    places
        .into_iter()
        .find(|place| place.is_file())
        .ok_or_else(|| HelperError::NotInstalled { name, beside: dir.display().to_string() })
}

/// A running helper. Dropping it closes its input, upon which it releases what it holds (a
/// TPM's sessions, a device) and exits; the drop waits for that.
pub struct Helper {
    name: &'static str,
    child: Child,
    to: Option<ChildStdin>,
    from: Option<ChildStdout>,
}

impl std::fmt::Debug for Helper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Helper({}, pid {})", self.name, self.child.id())
    }
}

impl Helper {
    /// Starts the helper `name` (see [`locate`]). It inherits this process's environment and
    /// standard error, and takes no arguments.
    pub fn start(name: &'static str) -> Result<Helper, HelperError> {
        let path = locate(name)?;
        let mut child = Command::new(&path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|error| HelperError::Start { name, error })?;
        let (Some(to), Some(from)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(HelperError::Failed { name, reason: "no pipes to it".into() });
        };
        Ok(Helper { name, child, to: Some(to), from: Some(from) })
    }

    /// Makes one call and reads its answer.
    pub fn call<A: DeserializeOwned>(&mut self, call: &impl Serialize) -> Result<A, HelperError> {
        let name = self.name;
        let (Some(to), Some(from)) = (self.to.as_mut(), self.from.as_mut()) else {
            return Err(HelperError::Failed { name, reason: "it failed before".into() });
        };
        match frame::write(to, call) {
            Ok(()) => {}
            Err(error @ FrameError::Unwritable(_)) => {
                return Err(HelperError::Failed { name, reason: error.to_string() });
            }
            Err(error) => return Err(self.stopped(error)),
        }
        match frame::read::<A>(from) {
            Ok(Some(answer)) => Ok(answer),
            Ok(None) => Err(self.stopped(FrameError::Closed)),
            Err(FrameError::Version(found)) => {
                Err(HelperError::OtherVersion { name: self.name, found })
            }
            Err(error) => Err(self.stopped(error)),
        }
    }

    /// The helper failed mid-call: said with how it ended, if it has.
    fn stopped(&mut self, error: FrameError) -> HelperError {
        self.to = None;
        self.from = None;
        let ended = match self.child.try_wait() {
            Ok(Some(status)) => format!(" ({status})"),
            _ => String::new(),
        };
        HelperError::Failed { name: self.name, reason: format!("{error}{ended}") }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        // Both pipes closed first: a helper still writing gets EPIPE rather than waiting on us.
        self.to = None;
        self.from = None;
        let _ = self.child.wait();
    }
}
