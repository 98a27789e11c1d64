//! `keyward-server`: the executable that runs `hub …` and `peer …`, to which `keyward` hands
//! those commands (src/lib.rs says why). It is found beside keyward's own executable only,
//! like the helpers, never on the PATH.

use std::os::unix::process::CommandExt as _;

/// Its file name, beside `keyward`.
const SERVER: &str = "keyward-server";

/// Set on the hand-over to the version of the keyward that handed the command over: the server
/// refuses one of another version, and a `keyward` that finds it set was started in the
/// server's place.
const HANDED_OVER_BY: &str = "KEYWARD_HANDED_OVER_BY";

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why a command could not be handed to `keyward-server`.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// It is not beside keyward.
    #[error(
        "`keyward-server`, which runs `hub …` and `peer …`, is not installed beside {beside}: \
         install it with keyward, from one build (`cargo install --path crates/keyward` installs both)"
    )]
    Missing {
        /// Where it was looked for.
        beside: String,
    },
    /// It is there but would not start.
    #[error("cannot start `keyward-server`: {0}; reinstall keyward with it, from one build")]
    WouldNotStart(std::io::Error),
    /// What is installed as `keyward-server` is keyward itself (a copy or a link).
    #[error(
        "the `keyward-server` beside keyward is keyward itself: install keyward-server from \
         keyward's build (`cargo install --path crates/keyward` installs both)"
    )]
    KeywardInItsPlace,
    /// It is of another version than the keyward that handed the command over.
    #[error(
        "`keyward-server` {server} is not of keyward {keyward}'s build: install both from one \
         build (`cargo install --path crates/keyward`)"
    )]
    OtherVersion {
        /// keyward's version.
        keyward: String,
        /// The server's.
        server: &'static str,
    },
}

/// Replaces this process with `keyward-server`, given the same arguments; returns only if that
/// fails. Called before anything is read or asked for, so nothing is lost; the process keeps its
/// pid, environment and descriptors (a systemd unit's main process stays the same).
pub fn hand_over() -> ServerError {
    if std::env::var_os(HANDED_OVER_BY).is_some() {
        // keyward was started by a keyward handing over: it stands where the server should.
        return ServerError::KeywardInItsPlace;
    }
    let server = match keyward_helper::locate(SERVER) {
        Ok(path) => path,
        Err(keyward_helper::HelperError::NotInstalled { beside, .. }) => {
            return ServerError::Missing { beside };
        }
        Err(other) => return ServerError::WouldNotStart(std::io::Error::other(other.to_string())),
    };
    // argv[0] stays `keyward`, which clap's usage lines name.
    let error = std::process::Command::new(server)
        .arg0("keyward")
        .args(std::env::args_os().skip(1))
        .env(HANDED_OVER_BY, VERSION)
        .exec();
    ServerError::WouldNotStart(error)
}

/// In `keyward-server`: refuses a command handed over by a keyward of another version (its
/// options may mean something else here). Run directly, it has nothing to check.
pub fn check_handed_over() -> Result<(), ServerError> {
    match std::env::var_os(HANDED_OVER_BY) {
        Some(by) if by != VERSION => Err(ServerError::OtherVersion {
            keyward: by.to_string_lossy().into_owned(),
            server: VERSION,
        }),
        _ => Ok(()),
    }
}
