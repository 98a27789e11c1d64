//! The wire types of the hub's HTTP API, shared by server and client (docs/hub-api.md).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use keyward_service::PublicKey;
pub use keyward_service::api::ErrorResponse;

/// The escrow blob formats the hub takes.
pub const BLOB_FORMATS: [&str; 2] = ["keyward-escrow-blob", "pbs-key-file"];

/// The SHA-256 of a blob's bytes (hex): what an operator approves and a fresh machine checks.
pub fn blob_sha256(blob: &[u8]) -> String {
    keyward_core::encoding::to_hex(&Sha256::digest(blob))
}

/// Whether `text` is a blob SHA-256 as the API writes it: 64 lower-case hex digits.
pub fn is_blob_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `POST /v1/enroll`: a box registers its identity with an operator's enrollment token, or a
/// replacement machine takes an enrolled box's name over with an operator's takeover.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The box's name.
    #[serde(rename = "box")]
    pub box_name: String,
    /// The box's identity.
    pub public_key: PublicKey,
    /// The operator-signed enrollment token or takeover (statement text).
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
    /// keyward's fingerprint of the same key, when `fingerprint` is its PBS one: an approval may
    /// name either.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_fingerprint: Option<String>,
    /// Free, non-secret JSON for the fresh machine (backup repository, server certificate, …).
    pub directive: serde_json::Value,
}

/// The answer to a push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushResponse {
    /// The version the push got.
    pub version: u64,
    /// `active` (the box's first push) or `pending` (waits for an operator's approval).
    pub state: String,
    /// SHA-256 of the blob's bytes: what the operator's approval must name.
    pub blob_sha256: String,
}

/// One escrow version, as `GET /v1/escrows` lists it (no blob).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscrowVersion {
    /// Version number, from 1.
    pub version: u64,
    /// `active`, `pending`, `superseded` or `deleted`.
    pub state: String,
    /// Unix seconds.
    pub pushed_at: i64,
    /// The fingerprint the blob's key has.
    pub fingerprint: String,
    /// keyward's fingerprint of the key, when `fingerprint` is its PBS one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_fingerprint: Option<String>,
    /// SHA-256 of the blob's bytes (none for a deleted version).
    pub blob_sha256: Option<String>,
}

/// `GET /v1/escrows` (signed by the box) and `GET /v1/boxes/{box}/escrows` (signed by an
/// operator).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusResponse {
    /// The box.
    #[serde(rename = "box")]
    pub box_name: String,
    /// Every version, oldest first.
    pub versions: Vec<EscrowVersion>,
    /// The box's identity, as the hub knows it now (what a takeover replaces).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
}

/// `POST /v1/approvals`: an operator-signed overwrite approval.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    /// The approval (statement text).
    pub approval: String,
}

/// The answer to an approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApproveResponse {
    /// The version now active.
    pub version: u64,
    /// Always `active`.
    pub state: String,
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

/// One escrow version with its blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscrowCopy {
    /// The version.
    pub version: u64,
    /// `active`, `pending` or `superseded`.
    pub state: String,
    /// Unix seconds.
    pub pushed_at: i64,
    /// As pushed.
    pub blob_format: String,
    /// As pushed (base64).
    pub blob: String,
    /// SHA-256 of the blob's bytes; a client that finds another hash has a damaged copy.
    pub blob_sha256: String,
    /// As pushed.
    pub fingerprint: String,
    /// As pushed.
    pub directive: serde_json::Value,
}

/// The answer to a recovery: every version the hub still holds, newest first. A fresh machine
/// keeps the first that opens with the owner's code and has the expected fingerprint, so a
/// version a compromised box pushed under another code, even if approved, costs nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoverResponse {
    /// The box.
    #[serde(rename = "box")]
    pub box_name: String,
    /// Versions, newest first (deleted ones are gone).
    pub versions: Vec<EscrowCopy>,
    /// Which use of the ticket this was (from 1).
    pub ticket_use: u32,
    /// How many uses the ticket allows.
    pub ticket_uses: u32,
}

/// `GET /v1/escrows/active` (signed by the box): its own active escrow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveResponse {
    /// The box.
    #[serde(rename = "box")]
    pub box_name: String,
    /// The active version.
    pub escrow: EscrowCopy,
}

/// `POST /v1/headers` (signed by the box): a LUKS2 header backup of one of its volumes, sealed
/// under a key derived from the box's key (docs/formats/luks2-header-escrow.md). It replaces
/// the one the hub held for that volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderPushRequest {
    /// The volume's UUID.
    pub uuid: String,
    /// The fingerprint of the key it is sealed under.
    pub fingerprint: String,
    /// The sealed header, base64. Opaque to the hub.
    pub sealed: String,
    /// The header's state: SHA-256 over `keyward luks2 header state v1` ‖ 0 ‖ the header's
    /// JSON metadata (64 hex digits). The box compares it with its volume's header now to tell
    /// whether this copy is current; it tells nothing the header itself does not. Absent from
    /// boxes older than it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

/// The answer to a header push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderPushResponse {
    /// The volume's UUID.
    pub uuid: String,
    /// SHA-256 of the sealed bytes.
    pub sha256: String,
    /// Whether it replaced an earlier header backup of the volume.
    pub replaced: bool,
    /// The volume whose header backup the hub dropped to make room (the box's oldest), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evicted: Option<String>,
}

/// What the hub holds of one volume's header backup, without the sealed bytes: what `GET
/// /v1/headers` (signed by the box) lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderSummary {
    /// The volume's UUID.
    pub uuid: String,
    /// The fingerprint of the key it is sealed under, as pushed.
    pub fingerprint: String,
    /// When it was pushed (Unix seconds).
    pub pushed_at: i64,
    /// SHA-256 of the sealed bytes.
    pub sha256: String,
    /// The header's state as pushed (see [`HeaderPushRequest::state`]), if the box sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

/// The answer to `GET /v1/headers`: the box's header backups, by UUID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderListResponse {
    /// The box.
    #[serde(rename = "box")]
    pub box_name: String,
    /// Its header backups.
    pub headers: Vec<HeaderSummary>,
}

/// `POST /v1/recoveries/headers`: a fresh machine fetches a volume's header backup with the
/// recovery ticket of its box.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderRecoverRequest {
    /// The ticket (statement text).
    pub ticket: String,
    /// The volume's UUID; without one, the box's only volume (a fresh machine whose header is
    /// too damaged to read its UUID from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
}

/// A volume's header backup, as the hub holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderCopy {
    /// The volume's UUID.
    pub uuid: String,
    /// As pushed.
    pub fingerprint: String,
    /// Unix seconds.
    pub pushed_at: i64,
    /// As pushed (base64).
    pub sealed: String,
    /// SHA-256 of the sealed bytes; a client that finds another hash has a damaged copy.
    pub sha256: String,
}

/// The answer to a header recovery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderRecoverResponse {
    /// The box.
    #[serde(rename = "box")]
    pub box_name: String,
    /// The header backup.
    pub header: HeaderCopy,
}

/// The version of a drill report this hub reads.
pub const DRILL_REPORT_VERSION: u32 = 1;
/// The most paths one drill report may name.
pub const MAX_DRILL_PATHS: usize = 64;

/// `POST /v1/drills` (signed by the box): what the box's last `keyward drill` found of each of
/// its recovery paths. Evidence, not a secret: ids, states and the words of the drill's lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillReport {
    /// [`DRILL_REPORT_VERSION`].
    pub version: u32,
    /// Each path, as the drill found it.
    pub paths: Vec<DrillPath>,
}

/// One path of a drill report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillPath {
    /// Its stable id (`slot:2`, `escrow`, `luks:UUID`, `offline-fallback`).
    pub id: String,
    /// What it is, for people.
    pub name: String,
    /// `ok`, `broken` or `not_proven`.
    pub state: String,
    /// What was shown, why it is broken, or what it needs.
    pub detail: String,
}

/// The answer to a drill report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillRecorded {
    /// When the hub recorded it (Unix seconds, the hub's clock).
    pub at: i64,
    /// How many paths.
    pub paths: usize,
}

/// One path of a box's last drill as the hub holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillPathAt {
    /// The path.
    #[serde(flatten)]
    pub path: DrillPath,
    /// When its report came (Unix seconds).
    pub at: i64,
}

/// One box as `GET /v1/fleet` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetBox {
    /// The box.
    #[serde(rename = "box")]
    pub box_name: String,
    /// Its escrow versions (no blobs).
    pub versions: Vec<EscrowVersion>,
    /// Its header backups (no sealed bytes).
    pub headers: Vec<HeaderSummary>,
    /// Its last drill, path by path (empty: it never reported one).
    pub drill: Vec<DrillPathAt>,
}

/// `GET /v1/fleet?after=B&limit=N` (signed by an operator): one page of the boxes the hub
/// knows, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetQuery {
    /// Only the boxes whose names sort after this one (the last page's `next`).
    #[serde(default)]
    pub after: Option<String>,
    /// At most this many (and never more than [`crate::hub::FLEET_PAGE`]).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// `GET /v1/fleet`'s answer: one page of boxes, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetResponse {
    /// The boxes, by name.
    pub boxes: Vec<FleetBox>,
    /// Whether there are more boxes after this page (`next` says where they begin).
    pub truncated: bool,
    /// While there are more: the name to ask `after` for the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `GET /v1/audit?since=T&box=B` (signed by an operator): the audit log's records since `since`
/// (Unix seconds), of one box if named, the newest [`crate::hub::MAX_AUDIT_RECORDS`], oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditResponse {
    /// The records.
    pub records: Vec<crate::audit::AuditRecord>,
}

/// The query of `GET /v1/audit`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Unix seconds: records from then on.
    #[serde(default)]
    pub since: i64,
    /// One box's records only.
    #[serde(default, rename = "box")]
    pub box_name: Option<String>,
}
