//! The box-side workflows of keyward, without a command line or a terminal: how a keybox is
//! opened (the unlock plan), how a key is recovered from escrow blobs (the fingerprint gate),
//! what is pushed to the hub, how a peers slot is enrolled and re-shared, and the
//! configuration files kept beside a keybox. The CLI and the agent call the same code;
//! what differs between them is only who answers a slot that asks for a person
//! ([`secrets::Person`]).

pub mod backup;
pub mod config;
pub mod drill;
pub mod error;
pub mod escrow;
pub mod fingerprint;
pub mod fleet;
pub mod identity;
pub mod peers;
pub mod profile;
pub mod recovery;
pub mod runtime;
pub mod secrets;
pub mod sheet;
pub mod unlock;

pub use error::{BoxError, BoxResult};
pub use keyward_peer::share_journal;
