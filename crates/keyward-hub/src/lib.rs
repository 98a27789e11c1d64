//! keyward-hub: the escrow hub's protocol, as plain types and functions (sans-I/O, as rustls
//! does it): signing identities, signed requests, operator-signed statements (enrollment tokens,
//! recovery tickets, overwrite approvals) and the hash-chained audit log. The server and client
//! are thin shells around these; the peer crate reuses the signing and ticket code.
//!
//! The hub never holds anything that opens a key: it stores opaque blobs (K wrapped under a
//! recovery code it never sees) and the non-secret restore directive.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod api;
pub mod audit;
pub mod client;
mod error;
pub mod hub;
pub mod identity;
pub mod limits;
pub mod metrics;
pub mod request;
pub mod server;
pub mod statement;
pub mod store;
pub mod tls;

pub use error::AuthError;

/// Unix seconds now (0 if the clock is before 1970).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
pub use identity::{PublicKey, SigningIdentity};
