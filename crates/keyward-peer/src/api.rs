//! The peer's HTTP API, as the types that cross the wire (docs/peer-api.md), and the bytes that
//! signatures and seals bind. Shared by the server and the client.

use crate::slot::ReleasePolicy;
use serde::{Deserialize, Serialize};

use crate::seal::{SealPublicKey, Sealed};

/// `POST /v1/shares`, signed by the owner: store one share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreShareRequest {
    /// The owner's name (a release ticket names it); bound to the first identity that used it.
    pub owner_name: String,
    /// The owner's keybox id (hex).
    pub keybox_id: String,
    /// The share set (32 hex digits).
    pub share_set: String,
    /// Shares needed.
    pub threshold: u8,
    /// Who may obtain the share.
    pub policy: ReleasePolicy,
    /// The key's fingerprint (colon hex), what a recovery checks against.
    pub fingerprint: String,
    /// The share's x coordinate.
    pub x: u8,
    /// `x ‖ y`, sealed to this peer's key, bound by [`stored_binding`].
    pub share: Sealed,
    /// An operator's enrollment token for `owner_name` (`kwst1.…`): needed the first time an
    /// owner stores a share at this peer, which then admits that name for this owner's
    /// identity. Or an operator's takeover of `owner_name` by this owner's identity: the name
    /// moves from the identity it is bound to (a dead machine's) to this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrollment: Option<String>,
    /// For the `tpm-quote` policy: the box's TPM attestation key and the PCR state a release
    /// needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<Attestation>,
}

/// What a `tpm-quote` share is released against: quotes by this key, over these PCRs, with this
/// digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attestation {
    /// The attestation key, SEC1 uncompressed P-256 point (base64).
    pub key: String,
    /// The PCR selection, as `sha256:7+11`.
    pub pcrs: String,
    /// SHA-256 over the PCR values in order (hex), what the quote's PCR digest must be.
    pub pcr_digest: String,
}

/// A TPM quote answering a release nonce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuoteProof {
    /// The TPMS_ATTEST the TPM signed (base64).
    pub attest: String,
    /// Its ECDSA P-256 signature, r ‖ s (base64).
    pub signature: String,
}

impl StoreShareRequest {
    /// What the sealed share is bound to: every field a peer keeps beside it, so a share moved
    /// to another set, owner or policy no longer opens.
    pub fn binding(&self, owner: &str) -> Vec<u8> {
        stored_binding(owner, self)
    }
}

/// The associated data of a stored share.
pub fn stored_binding(owner: &str, share: &StoreShareRequest) -> Vec<u8> {
    let fields = (
        "keyward-peer-share-v1",
        owner,
        &share.owner_name,
        &share.keybox_id,
        &share.share_set,
        share.threshold,
        share.policy.name(),
        &share.fingerprint,
        share.x,
    );
    // A share with an attestation binds it too (a share without one binds what it always did).
    match &share.attestation {
        None => serde_json::to_vec(&fields),
        Some(a) => serde_json::to_vec(&(fields, &a.key, &a.pcrs, &a.pcr_digest)),
    }
    .unwrap_or_default()
}

/// One share set a peer holds for an owner (`GET /v1/shares`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareSetInfo {
    /// The share set.
    pub share_set: String,
    /// The owner's name.
    pub owner_name: String,
    /// The keybox id.
    pub keybox_id: String,
    /// Shares needed.
    pub threshold: u8,
    /// Release policy.
    pub policy: ReleasePolicy,
    /// The key's fingerprint.
    pub fingerprint: String,
    /// The share's x.
    pub x: u8,
    /// When it was stored (Unix seconds).
    pub stored_at: i64,
    /// When it was last released for a use (a restart, a recovery), if ever.
    pub last_released: Option<i64>,
    /// How often it was released for a use (absent from a peer of an older keyward, which did
    /// not count).
    #[serde(default)]
    pub releases: Option<u64>,
    /// When a drill last had it released, if ever.
    #[serde(default)]
    pub last_drilled: Option<i64>,
    /// How often drills had it released (absent from a peer of an older keyward).
    #[serde(default)]
    pub drills: Option<u64>,
}

/// `GET /v1/shares`: the sets the signing owner has here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusResponse {
    /// Oldest first.
    pub sets: Vec<ShareSetInfo>,
}

/// `POST /v1/shares/delete`, signed by the owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteSharesRequest {
    /// The share set to delete.
    pub share_set: String,
}

/// `GET /v1/nonce?for=ASKED`: a single-use challenge for a release of `ASKED` (a share set, or
/// an owner name), as [`ReleaseRequest::asked`] will say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NonceQuery {
    /// What the release will ask for.
    #[serde(rename = "for")]
    pub asked: String,
}

/// The answer to `GET /v1/nonce`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NonceResponse {
    /// Random, hex.
    pub nonce: String,
    /// Unix seconds after which it is void.
    pub expires: i64,
    /// When the set asked for is released only to a TPM quote: the PCRs to quote
    /// (`sha256:7+11`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote_pcrs: Option<String>,
}

/// `POST /v1/release`: a proof over a nonce, and a one-time key to seal the answer to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    /// A nonce from `GET /v1/nonce`, asked for what this request asks.
    pub nonce: String,
    /// The requester's one-time X25519 key.
    pub ephemeral: SealPublicKey,
    /// The share set asked for (the owner knows it from its keybox). Without it, `owner_name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_set: Option<String>,
    /// Every current set of this owner (a fresh machine knows only the name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_name: Option<String>,
    /// The owner's signature over [`release_message`] for `share_set` (base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_signature: Option<String>,
    /// An operator's peer release ticket (`kwst1.…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    /// With a ticket: the signature of the requester it names over [`release_message`] for
    /// what this request asks (`share_set`, else `owner_name`), base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester_signature: Option<String>,
    /// For a `tpm-quote` set: the box's TPM quote over [`quote_challenge`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote: Option<QuoteProof>,
    /// Why the shares are asked for; absent is a use. Signed with the rest.
    #[serde(default, skip_serializing_if = "ReleasePurpose::is_use")]
    pub purpose: ReleasePurpose,
}

/// Why a release is asked for. The peer counts each apart (`GET /v1/shares` shows both), and
/// the purpose is inside what is signed and quoted, so a drill cannot be passed off as a use or
/// a use as a drill.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleasePurpose {
    /// The key is wanted: a restart, a recovery.
    #[default]
    Use,
    /// A drill proving the shares still rebuild the key; the key is wiped straight after.
    Drill,
}

impl ReleasePurpose {
    /// Whether it is the default purpose, a use (which requests leave out).
    pub fn is_use(&self) -> bool {
        *self == ReleasePurpose::Use
    }

    /// The name the peer's store and log give it.
    pub fn name(self) -> &'static str {
        match self {
            ReleasePurpose::Use => "use",
            ReleasePurpose::Drill => "drill",
        }
    }
}

impl From<keyward_core::slot::OpenPurpose> for ReleasePurpose {
    fn from(purpose: keyward_core::slot::OpenPurpose) -> Self {
        match purpose {
            keyward_core::slot::OpenPurpose::Use => ReleasePurpose::Use,
            keyward_core::slot::OpenPurpose::Drill => ReleasePurpose::Drill,
        }
    }
}

impl ReleaseRequest {
    /// What the request asks for: the share set, else the owner name.
    pub fn asked(&self) -> Option<&str> {
        self.share_set.as_deref().or(self.owner_name.as_deref())
    }

    /// What a signature over this request for `asked` signs ([`release_message`]).
    pub fn signed_message(&self, asked: &str) -> Vec<u8> {
        release_message(&self.nonce, asked, &self.ephemeral, self.purpose)
    }

    /// What a TPM quote for this request for `asked` is over ([`quote_challenge`]).
    pub fn quote_challenge(&self, asked: &str) -> Vec<u8> {
        quote_challenge(&self.nonce, asked, &self.ephemeral, self.purpose)
    }
}

/// What the owner (or a ticket's requester) signs to ask for shares: the peer's nonce, what is
/// asked (a share set, or an owner name), and the key the answer will be sealed to — so a
/// signature is good for one answer, to one key, once — under a domain that says why (a
/// drill's is its own).
pub fn release_message(
    nonce: &str,
    asked: &str,
    ephemeral: &SealPublicKey,
    purpose: ReleasePurpose,
) -> Vec<u8> {
    let domain = match purpose {
        ReleasePurpose::Use => "keyward-peer-release-v1",
        ReleasePurpose::Drill => "keyward-peer-drill-v1",
    };
    format!("{domain}\n{nonce}\n{asked}\n{ephemeral}").into_bytes()
}

/// What a TPM quote for a release is over (its qualifying data): SHA-256 of the same message the
/// owner signs, so a quote is good for one answer, to one key, once.
pub fn quote_challenge(
    nonce: &str,
    asked: &str,
    ephemeral: &SealPublicKey,
    purpose: ReleasePurpose,
) -> Vec<u8> {
    use sha2::Digest as _;
    let mut hash = sha2::Sha256::new();
    hash.update(b"keyward-peer-quote-v1\n");
    hash.update(release_message(nonce, asked, ephemeral, purpose));
    hash.finalize().to_vec()
}

/// One released share, sealed to the requester's one-time key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleasedShare {
    /// The share set.
    pub share_set: String,
    /// The keybox id.
    pub keybox_id: String,
    /// Shares needed.
    pub threshold: u8,
    /// The key's fingerprint as the owner stored it.
    pub fingerprint: String,
    /// The share's x.
    pub x: u8,
    /// `x ‖ y`, sealed to the requester's one-time key, bound by [`released_binding`].
    pub share: Sealed,
}

/// The associated data of a released share: the nonce (so a recorded answer is good for
/// nothing later) and what the share claims to be.
pub fn released_binding(nonce: &str, released: &ReleasedShare) -> Vec<u8> {
    serde_json::to_vec(&(
        "keyward-peer-release-v1",
        nonce,
        &released.share_set,
        &released.keybox_id,
        released.threshold,
        &released.fingerprint,
        released.x,
    ))
    .unwrap_or_default()
}

/// `POST /v1/release`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseResponse {
    /// The shares released (one per set asked for and allowed).
    pub shares: Vec<ReleasedShare>,
}

/// Every error answer (as the hub's).
pub use keyward_service::api::ErrorResponse;
