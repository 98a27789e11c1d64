//! Where a service is and which certificate to trust there: a hub's URL with its pin, and a
//! peer as a keybox records it from its card. Tickets carry them inside what the operator
//! signs (a fresh machine then needs nothing else to find its way home), the box's hub
//! enrollment and the operator's profiles list them.

use serde::{Deserialize, Serialize};

/// A hub: its URL and the SHA-256 of its certificate (the pin, colon hex), as `keyward hub
/// init` printed it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubAddress {
    /// `https://HOST:PORT`.
    pub url: String,
    /// The certificate's SHA-256 (colon hex, or plain hex).
    pub fingerprint: String,
}

impl std::fmt::Display for HubAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

/// A peer, as a keybox's peers slot records it and a release ticket carries it: what its card
/// said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerRecord {
    /// Where it listens (`https://…`).
    pub url: String,
    /// Its Ed25519 signing key (`ed25519:…`): the peer's name.
    pub identity: String,
    /// Its X25519 key that shares are sealed to (base64).
    pub seal_key: String,
    /// SHA-256 of its TLS certificate (hex), which clients pin.
    pub certificate: String,
}
