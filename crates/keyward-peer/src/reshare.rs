//! Re-sharing: a new polynomial and a new share set replace the old ones, crash-safely. The
//! order is what keeps a usable set at every moment:
//!
//! 1. the new shares are stored at every new peer (the old set is untouched and still the one
//!    the keybox records);
//! 2. the keybox's peers slot switches to the new set in one atomic commit;
//! 3. the old shares are deleted at every old peer.
//!
//! A crash before 2 leaves the old set recorded and whole (the new shares are orphans that
//! combine only among themselves, to the same K); a crash after 2 leaves the new set recorded
//! and whole. Shares of the two sets never combine: each set is its own random polynomial.

use std::ops::ControlFlow;
use std::time::Duration;

use crate::slot::{NewPeersSlot, PeersParams};
use keyward_core::operations::{self, Authorization};
use keyward_core::slot::Unlocker;
use keyward_core::{DataKey, SlotId, Store};

use crate::card::PeerCard;
use crate::distribute::{DistributeError, Owner, Split, delete_everywhere, distribute};
use keyward_service::client::ClientError;

/// The points between the steps, where a caller (a crash test) may stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReshareStep {
    /// Every new peer holds its new share; the keybox still records the old set.
    NewSharesStored,
    /// The keybox records the new set; the old shares are still at the old peers.
    Committed,
}

/// What a re-share did.
#[derive(Debug)]
pub struct Reshared {
    /// The new slot parameters.
    pub params: PeersParams,
    /// Old peers that did not confirm deleting their old share.
    pub undeleted: Vec<(String, ClientError)>,
}

/// Why a re-share stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReshareError {
    /// The new shares could not all be stored; nothing changed.
    #[error(transparent)]
    Distribute(#[from] DistributeError),
    /// The keybox commit failed (the new shares were deleted again, unless the commit happened
    /// but could not be made durable).
    #[error(transparent)]
    Commit(#[from] keyward_core::Error),
    /// The caller stopped it at this step.
    #[error("stopped after {0:?}")]
    Stopped(ReshareStep),
}

/// Re-shares `key` (already checked by the caller) held in peers slot `slot` of `store`'s
/// keybox, whose current parameters are `old`, as `split` (its policy is the old one's).
#[allow(clippy::too_many_arguments)]
pub async fn reshare(
    store: &Store<'_>,
    slot: SlotId,
    key: &DataKey,
    old: &PeersParams,
    split: Split<'_>,
    owner: &Owner,
    timeout: Duration,
    mut step: impl FnMut(ReshareStep) -> ControlFlow<()>,
) -> Result<Reshared, ReshareError> {
    let split = Split { policy: old.policy, ..split };
    let cards = split.cards;
    let params = distribute(key, split, owner, timeout).await?;
    if step(ReshareStep::NewSharesStored).is_break() {
        return Err(ReshareError::Stopped(ReshareStep::NewSharesStored));
    }
    let auth = Authorization::Secret { unlocker: Unlocker::Reconstructed(key), slot: Some(slot) };
    let secret = NewPeersSlot { key: key.clone(), params: params.clone() };
    // The old set is this function's to delete (below), not the kind's: nothing to hand it.
    let nothing = &mut Unlocker::Unattended;
    if let Err(e) = operations::rotate(store, &auth, &slot.to_string(), &secret, nothing) {
        if !matches!(e, keyward_core::Error::NotDurable { .. }) {
            delete_everywhere(cards, &owner.identity, &params.share_set, timeout).await;
        }
        return Err(e.into());
    }
    if step(ReshareStep::Committed).is_break() {
        return Err(ReshareError::Stopped(ReshareStep::Committed));
    }
    let old_cards: Vec<PeerCard> =
        old.peers.iter().filter_map(|record| PeerCard::from_record(record).ok()).collect();
    let undeleted = delete_everywhere(&old_cards, &owner.identity, &old.share_set, timeout).await;
    Ok(Reshared { params, undeleted })
}
