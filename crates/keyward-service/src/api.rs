//! The wire types every service shares: the error answer.

use serde::{Deserialize, Serialize};

/// Every error answer, from the hub and from peers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// A stable code: `malformed`, `unauthenticated`, `refused`, `too-large`, `timeout`,
    /// `rate-limited`, `not-found`, `conflict`, `internal`.
    pub error: String,
    /// One line for a person.
    pub message: String,
}
