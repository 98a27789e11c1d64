//! The key agent (`keyward agent serve`): it holds one keybox's key K, unlocked, in locked memory
//! that is left out of core dumps, for a bounded time (the TTL), and hands it over a Unix
//! socket to callers it allows by their kernel-checked credentials (SO_PEERCRED: uid, gid and,
//! if asked, the executable and its SHA-256). When the time is up K is wiped; the next request
//! opens the keybox again through a slot that opens with nobody there (the "re-request from the
//! root of trust"), or is refused. Every access is one audit line.
//!
//! The wire protocol is in docs/formats/agent.md.

pub mod callers;
pub mod client;
mod connections;
pub mod error;
pub mod holder;
pub mod protocol;
pub mod server;
pub mod socket;
pub mod tally;

pub use error::AgentError;
