//! Splitting K and placing one sealed share at each peer: a fresh share set (new polynomial,
//! new id) every time, so shares of two sets never combine. Every peer must confirm before the
//! caller records the set in its keybox; if one does not, the shares already placed are deleted
//! again (best effort) and nothing is recorded.

use std::sync::Arc;
use std::time::Duration;

use crate::slot::{PeersParams, ReleasePolicy};
use keyward_core::{DataKey, shamir};
use keyward_service::SigningIdentity;
use tokio::task::JoinSet;

use crate::api::{Attestation, StoreShareRequest};
use crate::card::PeerCard;
use crate::client::PeerClient;
use crate::seal::{self, Purpose};
use keyward_service::client::ClientError;

/// Who the shares are for.
#[derive(Debug, Clone)]
pub struct Owner {
    /// The owner's identity (signs its requests; the `identity` policy checks it).
    pub identity: Arc<SigningIdentity>,
    /// The owner's name at the peers (a release ticket names it).
    pub name: String,
    /// The keybox id (hex).
    pub keybox_id: String,
    /// An operator's enrollment token for `name`, for peers that have not admitted it yet.
    pub enrollment: Option<String>,
}

/// Why the shares could not all be placed.
#[derive(Debug, thiserror::Error)]
pub enum DistributeError {
    /// Bad threshold, no key, or the system's randomness failed.
    #[error(transparent)]
    Core(#[from] keyward_core::Error),
    /// A share could not be sealed to a peer's key.
    #[error("cannot seal a share to {peer}: {reason}")]
    Seal {
        /// The peer.
        peer: String,
        /// Why.
        reason: String,
    },
    /// Some peers did not store their share (the others' were deleted again).
    #[error("{} of {} peers did not store their share: {}", failed.len(), total, list(failed))]
    NotStored {
        /// Peers and their errors.
        failed: Vec<(String, ClientError)>,
        /// How many peers there were.
        total: usize,
    },
}

impl DistributeError {
    /// Which kind of failure it is: for shares not stored, the first peer's failure that is not
    /// "unreachable" (a refusal says more), else unavailable.
    pub fn class(&self) -> keyward_core::ErrorClass {
        use keyward_core::ErrorClass;
        match self {
            DistributeError::Core(e) => e.class(),
            DistributeError::Seal { .. } => ErrorClass::Usage,
            DistributeError::NotStored { failed, .. } => failed
                .iter()
                .map(|(_, e)| e.class())
                .find(|class| *class != ErrorClass::Unavailable)
                .unwrap_or(ErrorClass::Unavailable),
        }
    }
}

fn list(failed: &[(String, ClientError)]) -> String {
    failed.iter().map(|(_, e)| e.to_string()).collect::<Vec<_>>().join("; ")
}

/// A fresh share set id (32 hex digits). The caller picks it before [`distribute`] so it can
/// note the set down first (a crash mid-way then leaves a record of what to clean up).
pub fn new_share_set() -> keyward_core::Result<String> {
    Ok(keyward_core::encoding::to_hex(&keyward_core::random::array::<16>()?))
}

/// What a split is: the peers, how many shares are needed, who they are released to, and the
/// new set's id.
#[derive(Debug, Clone, Copy)]
pub struct Split<'a> {
    /// One peer per share.
    pub cards: &'a [PeerCard],
    /// Shares needed.
    pub threshold: u8,
    /// Who the peers release to.
    pub policy: ReleasePolicy,
    /// The new set's id, from [`new_share_set`].
    pub share_set: &'a str,
    /// For the `tpm-quote` policy: what a release is checked against.
    pub attestation: Option<&'a Attestation>,
}

/// Splits `key` `threshold`-of-`cards.len()` as share set `split.share_set`, seals share i to
/// peer i and stores it there. Returns the slot parameters that record the new set.
pub async fn distribute(
    key: &DataKey,
    split: Split<'_>,
    owner: &Owner,
    timeout: Duration,
) -> Result<PeersParams, DistributeError> {
    let Split { cards, threshold, policy, share_set, attestation } = split;
    let share_set = share_set.to_string();
    let count = u8::try_from(cards.len()).unwrap_or(u8::MAX);
    let shares = shamir::split(key.expose(), threshold, count)?;
    let fingerprint = key.fingerprint().to_string();
    let owner_key = owner.identity.public().to_string();
    let mut uploads = JoinSet::new();
    for (card, share) in cards.iter().zip(&shares) {
        let mut request = StoreShareRequest {
            owner_name: owner.name.clone(),
            keybox_id: owner.keybox_id.clone(),
            share_set: share_set.clone(),
            threshold,
            policy,
            fingerprint: fingerprint.clone(),
            x: share.x,
            share: seal::Sealed { enc: String::new(), ct: String::new() },
            enrollment: owner.enrollment.clone(),
            attestation: attestation.cloned(),
        };
        request.share = seal::seal(
            &card.seal_key,
            Purpose::StoredShare,
            &request.binding(&owner_key),
            &share.to_bytes(),
        )
        .map_err(|e| DistributeError::Seal { peer: card.url.clone(), reason: e.to_string() })?;
        let (card, identity) = (card.clone(), owner.identity.clone());
        uploads.spawn(async move {
            let result = match PeerClient::new(&card, timeout) {
                Ok(client) => client.store_share(&identity, &request).await,
                Err(e) => Err(e),
            };
            (card, result)
        });
    }
    let mut stored = Vec::new();
    let mut failed = Vec::new();
    while let Some(joined) = uploads.join_next().await {
        match joined {
            Ok((card, Ok(()))) => stored.push(card),
            Ok((card, Err(e))) => failed.push((card.url, e)),
            Err(e) => failed.push((
                "a peer".into(),
                ClientError::Unavailable {
                    service: "peer",
                    url: "?".into(),
                    reason: e.to_string(),
                    may_have_arrived: true,
                },
            )),
        }
    }
    if !failed.is_empty() {
        delete_everywhere(&stored, &owner.identity, &share_set, timeout).await;
        return Err(DistributeError::NotStored { failed, total: cards.len() });
    }
    Ok(PeersParams {
        owner: owner.name.clone(),
        threshold,
        share_set,
        policy,
        peers: cards.iter().map(PeerCard::to_record).collect(),
    })
}

/// Deletes a share set at every peer listed; returns the peers that could not confirm it.
pub async fn delete_everywhere(
    cards: &[PeerCard],
    identity: &Arc<SigningIdentity>,
    share_set: &str,
    timeout: Duration,
) -> Vec<(String, ClientError)> {
    let mut deletions = JoinSet::new();
    for card in cards {
        let (card, identity, set) = (card.clone(), identity.clone(), share_set.to_string());
        deletions.spawn(async move {
            let result = match PeerClient::new(&card, timeout) {
                Ok(client) => client.delete(&identity, &set).await,
                Err(e) => Err(e),
            };
            (card.url, result)
        });
    }
    let mut failed = Vec::new();
    while let Some(joined) = deletions.join_next().await {
        match joined {
            Ok((_, Ok(()))) => {}
            // Already gone is what we wanted.
            Ok((_, Err(ClientError::Refused { status: 404, .. }))) => {}
            Ok((url, Err(e))) => failed.push((url, e)),
            // A deletion that did not finish (a panic) is not a deletion.
            Err(join) => failed.push((
                "a peer".into(),
                ClientError::Unavailable {
                    service: "peer",
                    url: "?".into(),
                    reason: join.to_string(),
                    may_have_arrived: true,
                },
            )),
        }
    }
    failed
}
