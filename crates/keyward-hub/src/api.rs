//! The wire types of the hub's HTTP API, shared by server and client (docs/hub-api.md).

use serde::{Deserialize, Serialize};

use crate::PublicKey;

/// `POST /v1/enroll`: a box registers its identity with an operator's enrollment token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The box's name.
    #[serde(rename = "box")]
    pub box_name: String,
    /// The box's identity.
    pub public_key: PublicKey,
    /// The operator-signed enrollment token (statement text).
    pub token: String,
}

/// `POST /v1/escrows` (signed by the box): a new escrow version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    /// `keyward-escrow-blob` or `pbs-key-file`.
    pub blob_format: String,
    /// The blob's bytes, base64. Opaque to the hub.
    pub blob: String,
    /// The fingerprint a recovered key must have (keyward's, or PBS's for a PBS blob).
    pub fingerprint: String,
    /// Free, non-secret JSON for the fresh machine (backup repository, server certificate, …).
    pub directive: serde_json::Value,
}

/// The answer to a push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushResponse {
    /// The version the push got.
    pub version: u64,
    /// `active` (the first push) or `pending` (waits for an operator's approval).
    pub state: String,
}

/// One escrow version, as `GET /v1/escrows` lists it (no blob).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscrowVersion {
    /// Version number, from 1.
    pub version: u64,
    /// `active`, `pending` or `superseded`.
    pub state: String,
    /// Unix seconds.
    pub pushed_at: i64,
    /// The fingerprint the blob's key has.
    pub fingerprint: String,
}

/// `GET /v1/escrows` (signed by the box).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusResponse {
    /// The box.
    #[serde(rename = "box")]
    pub box_name: String,
    /// Every version, oldest first.
    pub versions: Vec<EscrowVersion>,
}

/// `POST /v1/approvals`: an operator-signed overwrite approval.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    /// The approval (statement text).
    pub approval: String,
}

/// `POST /v1/deletions`: an operator-signed deletion order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteRequest {
    /// The order (statement text).
    pub deletion: String,
}

/// The answer to a deletion: what was erased.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteResponse {
    /// The box.
    #[serde(rename = "box")]
    pub box_name: String,
    /// The version erased.
    pub version: u64,
    /// Always `deleted`.
    pub state: String,
}

/// `POST /v1/recoveries`: a fresh machine redeems a recovery ticket.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoverRequest {
    /// The ticket (statement text).
    pub ticket: String,
}

/// The answer to a recovery: the active escrow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoverResponse {
    /// The box.
    #[serde(rename = "box")]
    pub box_name: String,
    /// The version served.
    pub version: u64,
    /// As pushed.
    pub blob_format: String,
    /// As pushed.
    pub blob: String,
    /// As pushed.
    pub fingerprint: String,
    /// As pushed.
    pub directive: serde_json::Value,
}

/// Every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// A stable code: `malformed`, `unauthenticated`, `refused`, `rate-limited`, `not-found`,
    /// `conflict`, `internal`.
    pub error: String,
    /// One line for a person.
    pub message: String,
}
