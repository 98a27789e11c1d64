//! Operator-signed statements: an enrollment token (a box may enroll at a hub, or be admitted as
//! an owner at a peer), a takeover (a box's name moves to a replacement machine's identity, at
//! the hub and at each peer), a recovery ticket (a fresh machine may fetch a box's escrow), an
//! overwrite approval (a pending escrow version may become active), a deletion order (an escrow
//! version's blob is erased), a peer release ticket (a requester may get a box's key shares).
//! Each is JSON signed with the operator's key, carried as one line of text:
//! `kwst1.<base64url payload>.<base64url signature>`. Whoever redeems one counts its uses (the
//! hub and each peer record every id they accepted): most are single use; a ticket allows a few
//! uses, so a mistyped recovery code or fingerprint does not cost it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::addresses::{HubAddress, PeerRecord};
use crate::{AuthError, PublicKey, SigningIdentity};

const PREFIX: &str = "kwst1";
const DOMAIN: &[u8] = b"keyward-statement-v1\n";
/// Longest statement text accepted: a statement is a few hundred bytes, a release ticket that
/// carries the cards of sixteen peers about 7 KiB.
pub const MAX_TEXT: usize = 16 * 1024;
/// Most hubs a recovery ticket names.
pub const MAX_TICKET_HUBS: usize = 8;
/// Most uses a ticket may allow.
pub const MAX_TICKET_USES: u32 = 10;
/// Uses a ticket allows unless the operator says otherwise.
pub const DEFAULT_TICKET_USES: u32 = 3;

fn one_use() -> u32 {
    1
}

/// What an operator attests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Statement {
    /// The box named may enroll its identity, once.
    Enrollment {
        /// Box name.
        #[serde(rename = "box")]
        box_name: String,
        /// Random id; single use.
        id: String,
        /// Unix seconds after which it is void.
        expires: i64,
    },
    /// A fresh machine may fetch every escrow version the hub holds for this box, `uses`
    /// times (each fetch audited).
    Recovery {
        /// Box name.
        #[serde(rename = "box")]
        box_name: String,
        /// Random id; its uses are counted.
        id: String,
        /// Unix seconds after which it is void.
        expires: i64,
        /// How many fetches it allows (1 to [`MAX_TICKET_USES`]; 1 for tickets that do not say).
        #[serde(default = "one_use")]
        uses: u32,
        /// The hubs that hold the box's escrow, in the order to try them: the fresh machine
        /// needs nothing but the ticket to find them (a ticket without them names none).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        hubs: Vec<HubAddress>,
    },
    /// This pending escrow version of this box — exactly the blob with this SHA-256, holding
    /// the key with this fingerprint — may become the active one.
    Overwrite {
        /// Box name.
        #[serde(rename = "box")]
        box_name: String,
        /// The escrow version approved.
        version: u64,
        /// The fingerprint that version must claim (the key's, which never changes), full or
        /// short form.
        fingerprint: String,
        /// SHA-256 of the blob's bytes (hex): what the operator was shown.
        blob_sha256: String,
        /// Random id; single use.
        id: String,
        /// Unix seconds after which it is void.
        expires: i64,
    },
    /// The machine holding `requester`'s key may obtain this box's key shares from each peer
    /// that holds one, `uses` times per peer (peers accept only this kind for a release; a hub
    /// recovery ticket opens nothing at a peer). Naming the requester makes the ticket useless
    /// to anyone else — a peer that sees it cannot replay it to the others.
    PeerRelease {
        /// Box name, as the peers know it.
        #[serde(rename = "box")]
        box_name: String,
        /// The requester's Ed25519 key (`ed25519:…`): every release request with this ticket is
        /// signed with it.
        requester: PublicKey,
        /// Random id; its uses are counted at each peer.
        id: String,
        /// Unix seconds after which it is void.
        expires: i64,
        /// How many releases it allows at each peer (1 for tickets that do not say).
        #[serde(default = "one_use")]
        uses: u32,
        /// The peers that hold the box's shares, as their cards say: the fresh machine needs
        /// nothing but the ticket and its requester key to find them.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        peers: Vec<PeerRecord>,
    },
    /// The box name moves from exactly one identity to exactly another, once (at the hub; once
    /// at each peer): a replacement machine takes over a dead one's name, its escrow versions,
    /// header backups and share sets, and the old identity's requests are refused from then on.
    /// Naming the new identity makes it useless to anyone else; naming the one it replaces
    /// makes it void once the name has moved anywhere else (an older takeover cannot move it
    /// back).
    Takeover {
        /// Box name.
        #[serde(rename = "box")]
        box_name: String,
        /// The identity the name is bound to now, which it replaces (`operator escrow-status`
        /// shows it).
        replaces: PublicKey,
        /// The replacement machine's box identity (`ed25519:…`, `keyward escrow identity`).
        identity: PublicKey,
        /// Random id; single use where it is redeemed.
        id: String,
        /// Unix seconds after which it is void.
        expires: i64,
    },
    /// This escrow version of this box is to be erased (its blob and directive), whatever its
    /// state.
    Deletion {
        /// Box name.
        #[serde(rename = "box")]
        box_name: String,
        /// The escrow version to erase.
        version: u64,
        /// Random id; single use.
        id: String,
        /// Unix seconds after which it is void.
        expires: i64,
    },
}

/// The kinds of statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementKind {
    /// See [`Statement::Enrollment`].
    Enrollment,
    /// See [`Statement::Recovery`].
    Recovery,
    /// See [`Statement::Overwrite`].
    Overwrite,
    /// See [`Statement::Deletion`].
    Deletion,
    /// See [`Statement::Takeover`].
    Takeover,
    /// See [`Statement::PeerRelease`].
    PeerRelease,
}

impl std::fmt::Display for StatementKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StatementKind::Enrollment => "an enrollment token",
            StatementKind::Recovery => "a recovery ticket",
            StatementKind::Overwrite => "an overwrite approval",
            StatementKind::Deletion => "a deletion order",
            StatementKind::PeerRelease => "a peer release ticket",
            StatementKind::Takeover => "a takeover",
        })
    }
}

impl Statement {
    /// The kind.
    pub fn kind(&self) -> StatementKind {
        match self {
            Statement::Enrollment { .. } => StatementKind::Enrollment,
            Statement::Recovery { .. } => StatementKind::Recovery,
            Statement::Overwrite { .. } => StatementKind::Overwrite,
            Statement::Deletion { .. } => StatementKind::Deletion,
            Statement::PeerRelease { .. } => StatementKind::PeerRelease,
            Statement::Takeover { .. } => StatementKind::Takeover,
        }
    }

    /// The box it is about.
    pub fn box_name(&self) -> &str {
        match self {
            Statement::Enrollment { box_name, .. }
            | Statement::Recovery { box_name, .. }
            | Statement::Overwrite { box_name, .. }
            | Statement::Deletion { box_name, .. }
            | Statement::PeerRelease { box_name, .. }
            | Statement::Takeover { box_name, .. } => box_name,
        }
    }

    /// Its single-use id.
    pub fn id(&self) -> &str {
        match self {
            Statement::Enrollment { id, .. }
            | Statement::Recovery { id, .. }
            | Statement::Overwrite { id, .. }
            | Statement::Deletion { id, .. }
            | Statement::PeerRelease { id, .. }
            | Statement::Takeover { id, .. } => id,
        }
    }

    fn expires(&self) -> i64 {
        match self {
            Statement::Enrollment { expires, .. }
            | Statement::Recovery { expires, .. }
            | Statement::Overwrite { expires, .. }
            | Statement::Deletion { expires, .. }
            | Statement::PeerRelease { expires, .. }
            | Statement::Takeover { expires, .. } => *expires,
        }
    }

    /// How many times it may be redeemed where it is redeemed: a ticket's `uses` (bounded by
    /// [`MAX_TICKET_USES`]), once for everything else.
    pub fn uses(&self) -> u32 {
        match self {
            Statement::Recovery { uses, .. } | Statement::PeerRelease { uses, .. } => {
                (*uses).clamp(1, MAX_TICKET_USES)
            }
            Statement::Enrollment { .. }
            | Statement::Overwrite { .. }
            | Statement::Deletion { .. }
            | Statement::Takeover { .. } => 1,
        }
    }

    /// A fresh random id for a new statement.
    pub fn fresh_id() -> keyward_core::Result<String> {
        Ok(keyward_core::encoding::to_hex(&keyward_core::random::array::<16>()?))
    }
}

/// The signed payload.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    signer: PublicKey,
    statement: Statement,
}

/// A statement whose signature and expiry have been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedStatement {
    /// The statement.
    pub statement: Statement,
    /// The operator who signed it.
    pub signer: PublicKey,
}

/// Reads a statement without checking anything: only to show a person what it says (which box)
/// before it is sent. Never a basis for a decision.
pub fn peek(text: &str) -> Option<Statement> {
    let payload = text.trim().split('.').nth(1)?;
    let json = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<Payload>(&json).ok().map(|p| p.statement)
}

/// Signs `statement` with an operator's identity; returns the one-line text form.
pub fn issue(operator: &SigningIdentity, statement: Statement) -> String {
    let payload = Payload { signer: operator.public(), statement };
    // Serializing strings and integers cannot fail.
    let json = serde_json::to_vec(&payload).unwrap_or_default();
    let mut message = DOMAIN.to_vec();
    message.extend_from_slice(&json);
    let signature = operator.sign(&message);
    format!("{PREFIX}.{}.{}", URL_SAFE_NO_PAD.encode(&json), URL_SAFE_NO_PAD.encode(signature))
}

/// Parses a statement, checks that a trusted operator signed it and that it has not expired.
pub fn verify(text: &str, trusted: &[PublicKey], now: i64) -> Result<VerifiedStatement, AuthError> {
    let text = text.trim();
    if text.len() > MAX_TEXT {
        return Err(AuthError::Malformed("statement (too long)"));
    }
    let mut parts = text.split('.');
    let (Some(PREFIX), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed("statement"));
    };
    let json =
        URL_SAFE_NO_PAD.decode(payload).map_err(|_| AuthError::Malformed("statement payload"))?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| AuthError::Malformed("statement signature"))?;
    let parsed: Payload =
        serde_json::from_slice(&json).map_err(|_| AuthError::Malformed("statement payload"))?;
    if !trusted.contains(&parsed.signer) {
        return Err(AuthError::UnknownSigner);
    }
    let mut message = DOMAIN.to_vec();
    message.extend_from_slice(&json);
    parsed.signer.verify(&message, &signature)?;
    let expires = parsed.statement.expires();
    if now > expires {
        // Saturating: a statement signed with a hostile expiry (i64::MIN) must not overflow.
        return Err(AuthError::Expired { secs_ago: now.saturating_sub(expires) });
    }
    Ok(VerifiedStatement { statement: parsed.statement, signer: parsed.signer })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recovery(expires: i64) -> Statement {
        Statement::Recovery {
            box_name: "pve-07".into(),
            id: "ab".repeat(16),
            expires,
            uses: 3,
            hubs: Vec::new(),
        }
    }

    #[test]
    fn issue_and_verify() {
        let op = SigningIdentity::generate().expect("rng");
        let text = issue(&op, recovery(2000));
        let ok = verify(&text, &[op.public()], 1000).expect("verifies");
        assert_eq!(ok.statement, recovery(2000));
        assert_eq!(verify(&text, &[op.public()], 2001), Err(AuthError::Expired { secs_ago: 1 }));
        let stranger = SigningIdentity::generate().expect("rng");
        assert_eq!(verify(&text, &[stranger.public()], 1000), Err(AuthError::UnknownSigner));
    }

    /// Issue 22.5: a statement signed (by a trusted key) with the lowest expiry there is made
    /// `now - expires` overflow.
    #[test]
    fn an_expiry_at_the_edge_of_time_is_expired_without_overflow() {
        let op = SigningIdentity::generate().expect("rng");
        let text = issue(&op, recovery(i64::MIN));
        assert_eq!(
            verify(&text, &[op.public()], 1_000),
            Err(AuthError::Expired { secs_ago: i64::MAX })
        );
        let far = issue(&op, recovery(i64::MAX));
        assert!(verify(&far, &[op.public()], i64::MAX).is_ok());
    }

    #[test]
    fn a_ticket_without_uses_allows_one_and_uses_are_bounded() {
        let old = r#"{"kind":"recovery","box":"b","id":"00","expires":5}"#;
        let statement: Statement = serde_json::from_str(old).expect("an older ticket reads");
        assert_eq!(statement.uses(), 1);
        let greedy = Statement::Recovery {
            box_name: "b".into(),
            id: "00".into(),
            expires: 5,
            uses: 1000,
            hubs: Vec::new(),
        };
        assert_eq!(greedy.uses(), MAX_TICKET_USES);
    }

    #[test]
    fn any_change_to_the_text_is_refused() {
        let op = SigningIdentity::generate().expect("rng");
        let text = issue(&op, recovery(2000));
        for i in 0..text.len() {
            let mut bytes = text.clone().into_bytes();
            bytes[i] ^= 0x01;
            let Ok(changed) = String::from_utf8(bytes) else { continue };
            assert!(
                verify(&changed, &[op.public()], 1000).is_err(),
                "a change at {i} must be refused"
            );
        }
    }
}
