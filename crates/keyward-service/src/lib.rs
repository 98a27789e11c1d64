//! keyward-service: what the escrow hub and the peer providers share, written once so that a
//! fix made here holds for both. The protocol pieces are plain types and functions (sans-I/O, as
//! rustls does it): signing identities, signed requests, operator-signed statements, the bounded
//! nonce table and the rate limiter. Around them sit the thin shells that do I/O: pinned-TLS
//! HTTPS for clients ([`client`]), the request shell for servers ([`shell`]: lockout, rate
//! limits, refusal counts, metrics, read timeouts, connection limits) and SQL helpers
//! ([`store`]).
//!
//! Nothing here opens a key: the services it serves store only what they cannot open.

#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod addresses;
pub mod api;
pub mod client;
mod error;
pub mod identity;
pub mod limits;
pub mod metrics;
pub mod names;
pub mod nonces;
pub mod refusals;
pub mod request;
pub mod shell;
pub mod source;
pub mod statement;
pub mod store;
pub mod text;
pub mod tls;

pub use error::{AuthError, ServiceError};
pub use identity::{PublicKey, SigningIdentity};
pub use source::SourcePrefix;

/// Unix seconds now (0 if the clock is before 1970).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
