//! What the agent and its client can fail with.

use std::path::PathBuf;

/// An agent or client failure.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// No agent answers at the socket (none runs, it died mid-request, or it is too busy).
    #[error("no answer from a key agent at {} ({reason}); check that one runs (`keyward agent serve`)", path.display())]
    NotRunning {
        /// The socket.
        path: PathBuf,
        /// What happened.
        reason: String,
    },
    /// The socket is there and this user may not connect to it: the agent runs for someone
    /// else.
    #[error("the key agent at {} does not serve this user (uid {uid}): its socket is not open to it; ask whoever runs it to allow it (`--allow uid:{uid}`), or run your own", path.display())]
    NotServed {
        /// The socket.
        path: PathBuf,
        /// This process's uid.
        uid: u32,
    },
    /// The agent did not answer within the client's deadline, or said it is too busy.
    #[error("the key agent at {} is busy ({reason}); nothing was handed over: try again", path.display())]
    Busy {
        /// The socket.
        path: PathBuf,
        /// What it said, or that it said nothing in time.
        reason: String,
    },
    /// Another agent serves at the socket (or something there cannot be checked).
    #[error("an agent already serves at {} (or it cannot be reached to check); stop it first, or choose another --socket", .0.display())]
    AlreadyServing(PathBuf),
    /// The agent refused this caller.
    #[error("the key agent refused this request: {0}")]
    Refused(String),
    /// The agent holds no key and could not open the keybox with nobody there.
    #[error(
        "the key agent holds no key and cannot open the keybox unattended ({0}); restart it with `keyward agent serve`, which may ask for a secret"
    )]
    Locked(String),
    /// The other side spoke something else than this protocol version.
    #[error(
        "the key agent's answer is not understood ({0}); are the agent and this keyward the same version?"
    )]
    Protocol(String),
    /// Setting up the socket or the process.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The system's answer.
        source: std::io::Error,
    },
    /// Another user's process serves the socket.
    #[error("the process serving {} runs as uid {uid}, not as this user or root; nothing was asked of it", socket.display())]
    Impostor {
        /// The socket.
        socket: PathBuf,
        /// The uid it runs as.
        uid: u32,
    },
    /// The options cannot work.
    #[error("{0}")]
    Invalid(String),
}

impl AgentError {
    /// Which kind of failure it is: no agent (or one that died mid-request) is unavailable,
    /// nothing having been handed over; a refusal, a locked agent or an impostor a refusal.
    pub fn class(&self) -> keyward_core::ErrorClass {
        use keyward_core::ErrorClass;
        match self {
            AgentError::NotRunning { .. } | AgentError::Busy { .. } => ErrorClass::Unavailable,
            AgentError::Refused(_)
            | AgentError::Locked(_)
            | AgentError::Impostor { .. }
            | AgentError::NotServed { .. } => ErrorClass::Refused,
            AgentError::AlreadyServing(_) => ErrorClass::Conflict,
            AgentError::Invalid(_) => ErrorClass::Usage,
            AgentError::Protocol(_) | AgentError::Io { .. } => ErrorClass::Internal,
        }
    }
}

keyward_core::classify_by_method!(AgentError);
