//! The peers slot: K is split k-of-n (see [`crate::shamir`]) and each share is held by one peer
//! node; the slot records who the peers are, the threshold, the share set and the release
//! policy — never a share. Its wrapped key is K under a KEK derived from K itself with HKDF, so
//! the slot is a verifier: a key put together from shares opens it only if it is exactly K (and
//! then the header MAC is checked as after any unlock). Knowing the slot gives nothing without
//! K, as with the fingerprint, which is also a function of K alone.

use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::IntegrityFailure;
use crate::kdf::{KEK_LEN, Kek};
use crate::secret::DataKey;
use crate::shamir::MAX_SHARES;

const PEERS_INFO: &[u8] = b"keyward peers slot v1";
/// Longest peer field kept (a URL, a key, a certificate hash).
const MAX_FIELD: usize = 512;

/// Who may obtain a share from a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReleasePolicy {
    /// The owner's identity signature over the peer's nonce: the box itself, after a restart.
    Identity,
    /// An operator's release ticket: a fresh machine with an operator's approval.
    Operator,
    /// Both at once.
    Both,
    /// Either one: the box after a restart, or a fresh machine with a ticket.
    Either,
}

impl ReleasePolicy {
    /// Every policy, in display order.
    pub const ALL: [ReleasePolicy; 4] = [
        ReleasePolicy::Either,
        ReleasePolicy::Identity,
        ReleasePolicy::Operator,
        ReleasePolicy::Both,
    ];

    /// The name written in files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ReleasePolicy::Identity => "identity",
            ReleasePolicy::Operator => "operator",
            ReleasePolicy::Both => "both",
            ReleasePolicy::Either => "either",
        }
    }

    /// Whether a request carrying these proofs satisfies the policy.
    pub fn allows(self, owner_signed: bool, operator_ticket: bool) -> bool {
        match self {
            ReleasePolicy::Identity => owner_signed,
            ReleasePolicy::Operator => operator_ticket,
            ReleasePolicy::Both => owner_signed && operator_ticket,
            ReleasePolicy::Either => owner_signed || operator_ticket,
        }
    }
}

impl std::fmt::Display for ReleasePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ReleasePolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ReleasePolicy::ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| {
            format!("unknown policy `{s}` (known: either, identity, operator, both)")
        })
    }
}

/// One peer as the slot records it: what its card said when the share was stored.
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

/// Parameters of a peers slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeersParams {
    /// The name the peers know this box by (an operator's release ticket names it).
    pub owner: String,
    /// Shares needed to rebuild K.
    pub threshold: u8,
    /// The share set's id (32 hex digits); a re-share makes a new one.
    pub share_set: String,
    /// Who the peers release shares to.
    pub policy: ReleasePolicy,
    /// The peers, one share each.
    pub peers: Vec<PeerRecord>,
}

impl PeersParams {
    pub(super) fn validate(&self) -> Result<(), IntegrityFailure> {
        let bad = |what: &str| Err(IntegrityFailure::Inconsistent(format!("peers slot: {what}")));
        let n = self.peers.len();
        if self.owner.is_empty() || self.owner.len() > 64 {
            return bad("owner name is empty or too long");
        }
        if self.threshold < 2 || usize::from(self.threshold) > n || n > usize::from(MAX_SHARES) {
            return bad("threshold and peer count out of range");
        }
        if self.share_set.len() != 32 || !self.share_set.bytes().all(|b| b.is_ascii_hexdigit()) {
            return bad("share set id is not 32 hex digits");
        }
        for (i, peer) in self.peers.iter().enumerate() {
            let fields = [&peer.url, &peer.identity, &peer.seal_key, &peer.certificate];
            if fields.iter().any(|f| f.is_empty() || f.len() > MAX_FIELD) {
                return bad("a peer field is empty or too long");
            }
            if self.peers[..i].iter().any(|p| p.identity == peer.identity) {
                return bad("a peer is listed twice");
            }
        }
        Ok(())
    }

    pub(super) fn kek(&self, candidate: &DataKey) -> Result<Kek, IntegrityFailure> {
        self.validate()?;
        let mut kek = Zeroizing::new([0u8; KEK_LEN]);
        Hkdf::<Sha256>::new(Some(self.share_set.as_bytes()), candidate.expose())
            .expand(PEERS_INFO, kek.as_mut_slice())
            .map_err(|_| IntegrityFailure::Inconsistent("HKDF output length".into()))?;
        Ok(kek)
    }

    /// A one-line description for `list`.
    pub fn describe(&self) -> String {
        format!(
            "{}-of-{} peers, share set {}, release: {}",
            self.threshold,
            self.peers.len(),
            &self.share_set[..8.min(self.share_set.len())],
            self.policy
        )
    }
}
