//! What a box-side workflow can fail with. The CLI maps each to its stable exit code; the agent
//! to a refusal on the wire.

use std::path::PathBuf;

use keyward_core::Error as CoreError;
use keyward_core::slot::SlotError;

/// A workflow's failure.
#[derive(Debug, thiserror::Error)]
pub enum BoxError {
    /// From keyward-core (a wrong secret, a damaged keybox, a slot's device).
    #[error(transparent)]
    Core(CoreError),
    /// The request cannot work as given (two secrets, a ticket for another box, no terminal to
    /// ask on): the text says what to give instead.
    #[error("{0}")]
    Invalid(String),
    /// A configuration file beside a keybox or in a server's folder cannot be used.
    #[error("{}: {problem}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong, and what to do.
        problem: String,
    },
    /// A Proxmox Backup key file (or PBS-form blob) could not be read or opened.
    #[error("{}: {source}", path.display())]
    Pbs {
        /// The file, or where the blob came from.
        path: PathBuf,
        /// What went wrong.
        source: keyward_pbs::PbsError,
    },
    /// The recovery code opens no escrow blob offered.
    #[error("the recovery code does not open {what}; check the code and run again{}",
        match ticket_uses_left {
            Some(0) => " (the ticket is used up: ask the operator for a new one)".to_string(),
            Some(n) => format!(" (the ticket allows {n} more fetch(es))"),
            None => String::new(),
        })]
    CodeOpensNothing {
        /// The blob, or how many versions.
        what: String,
        /// With a hub ticket: how many fetches it still allows.
        ticket_uses_left: Option<u32>,
    },
    /// A peer card cannot be used.
    #[error("{}: {source}; use the card `keyward peer init` wrote", path.display())]
    Card {
        /// The card file (or the slot's record of it).
        path: PathBuf,
        /// What is wrong.
        source: keyward_peer::card::CardError,
    },
    /// Shares could not be placed at every peer.
    #[error(transparent)]
    Distribute(#[from] keyward_peer::distribute::DistributeError),
    /// The key could not be put together from the peers' shares.
    #[error(transparent)]
    Gather(#[from] keyward_peer::recovery::GatherError),
    /// A hub or peer call failed.
    #[error(transparent)]
    Remote(#[from] keyward_service::client::ClientError),
    /// The async runtime for a client call could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// A workflow's result.
pub type BoxResult<T = ()> = Result<T, BoxError>;

impl BoxError {
    /// Which kind of failure it is.
    pub fn class(&self) -> keyward_core::ErrorClass {
        use keyward_core::ErrorClass;
        match self {
            BoxError::Core(e) => e.class(),
            BoxError::Invalid(_) | BoxError::Config { .. } => ErrorClass::Usage,
            BoxError::Pbs { source, .. } => source.class(),
            BoxError::CodeOpensNothing { .. } => ErrorClass::AuthenticationFailed,
            BoxError::Card { source, .. } => source.class(),
            BoxError::Distribute(e) => e.class(),
            BoxError::Gather(e) => e.class(),
            BoxError::Remote(e) => e.class(),
            BoxError::Runtime(_) => ErrorClass::Internal,
        }
    }
}

keyward_core::classify_by_method!(BoxError);

/// A core error; one of ours that went through a slot (met while answering it, see
/// [`crate::unlock`]) comes back out as itself.
impl From<CoreError> for BoxError {
    fn from(error: CoreError) -> Self {
        match error {
            CoreError::Slot { slot, source: SlotError::Other(other) } => {
                match other.downcast::<BoxError>() {
                    Ok(ours) => *ours,
                    Err(other) => {
                        BoxError::Core(CoreError::Slot { slot, source: SlotError::Other(other) })
                    }
                }
            }
            error => BoxError::Core(error),
        }
    }
}

impl From<BoxError> for SlotError {
    /// Handed through a slot unchanged: a core error as itself, ours boxed (and unboxed again by
    /// `From<CoreError> for BoxError`).
    fn from(error: BoxError) -> Self {
        match error {
            BoxError::Core(e) => e.into(),
            other => SlotError::Other(Box::new(other)),
        }
    }
}

/// The share journal's failures, as the workflows had them when the journal lived here.
impl From<keyward_peer::share_journal::ShareJournalError> for BoxError {
    fn from(error: keyward_peer::share_journal::ShareJournalError) -> Self {
        use keyward_peer::share_journal::ShareJournalError as J;
        match error {
            J::Core(e) => BoxError::Core(e),
            J::Unreadable { path, source } => {
                BoxError::Config { path, problem: source.to_string() }
            }
            J::Runtime(e) => BoxError::Runtime(e),
        }
    }
}

/// An [`BoxError::Invalid`] with this text.
pub fn invalid(text: impl Into<String>) -> BoxError {
    BoxError::Invalid(text.into())
}
