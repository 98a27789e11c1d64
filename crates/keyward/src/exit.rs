//! Errors of the CLI and the one place they become exit codes. The table is in the README and is
//! stable: scripts depend on it.

use std::io::ErrorKind;

use keyward_core::Error as CoreError;

/// Everything a command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// From the library.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The command was called in a way that cannot work.
    #[error("{0}")]
    Usage(String),
    /// Writing our own output (stdout) failed.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

/// The stable exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// Success.
    Ok = 0,
    /// A bug or an unexpected system failure.
    Internal = 1,
    /// Wrong arguments or missing input.
    Usage = 2,
    /// Wrong code, passphrase or key file.
    AuthenticationFailed = 3,
    /// Corrupt or tampered keybox or blob.
    Integrity = 4,
    /// A recovered key has the wrong fingerprint.
    FingerprintMismatch = 5,
    /// A keybox, slot or file does not exist.
    NotFound = 6,
    /// The keybox exists, the lock is held, or it changed concurrently.
    Conflict = 7,
    /// A server or device cannot be reached (the hub and peer commands return it).
    #[allow(dead_code)]
    Unavailable = 8,
    /// Refused by policy (permissions, last slot, rate limit, approval needed).
    Refused = 9,
}

impl CliError {
    /// The exit code for this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Usage(_) => ExitCode::Usage,
            CliError::Output(_) => ExitCode::Internal,
            CliError::Core(e) => match e {
                CoreError::WrongSecret { .. } | CoreError::BadRecoveryCode(_) => {
                    ExitCode::AuthenticationFailed
                }
                CoreError::Integrity { .. } => ExitCode::Integrity,
                CoreError::FingerprintMismatch { .. } => ExitCode::FingerprintMismatch,
                CoreError::KeyboxNotFound(_)
                | CoreError::SlotNotFound(_)
                | CoreError::NoSlotOfKind(_) => ExitCode::NotFound,
                CoreError::KeyboxExists(_)
                | CoreError::LockHeld(_)
                | CoreError::ConcurrentChange { .. }
                | CoreError::OutputExists(_) => ExitCode::Conflict,
                CoreError::InsecurePermissions { .. } | CoreError::LastSlot(_) => ExitCode::Refused,
                CoreError::InvalidInput(_) | CoreError::NoUnattendedSlot => ExitCode::Usage,
                CoreError::Io { source, .. } if source.kind() == ErrorKind::NotFound => {
                    ExitCode::NotFound
                }
                CoreError::Io { .. } | CoreError::Random(_) => ExitCode::Internal,
                _ => ExitCode::Internal,
            },
        }
    }
}

/// Shorthand for a usage error.
pub fn usage(message: impl Into<String>) -> CliError {
    CliError::Usage(message.into())
}

/// The CLI's result type.
pub type CliResult<T = ()> = Result<T, CliError>;
