//! A box's side of its peers: their cards, the box's identity beside its keybox, its peers
//! slots, and the two workflows that place shares — enrolling a peers slot and re-sharing one.
//! Both note the share sets they create or replace in the share journal first
//! ([`crate::share_journal`]), so a crash or a failed commit leaves them to be cleaned up. The
//! splitting, sealing, asking and combining are keyward-peer's.

use std::path::Path;

use keyward_core::keybox::{SlotRecord, UnlockedKeybox};
use keyward_core::{Error as CoreError, Keybox, SlotId, Store, operations};
use keyward_peer::card::PeerCard;
use keyward_peer::distribute::{Owner, Split, delete_everywhere, distribute};
use keyward_peer::reshare::{self, ReshareError};
use keyward_peer::slot::{NewPeersSlot, PEERS, PeersParams};
use keyward_service::unix_now;

use crate::error::{BoxError, BoxResult, invalid};
use crate::runtime::block_on;
use crate::secrets::SecretFiles;
use crate::share_journal::{Cleanup, Disposal, PendingSet, ShareJournal};
use crate::unlock::authorization;

pub use keyward_peer::slot::PEER_TIMEOUT;

/// Reads a peer card file.
pub fn read_card(files: &SecretFiles, path: &Path) -> BoxResult<PeerCard> {
    let bytes = files.bytes(path)?;
    PeerCard::parse(&bytes).map_err(|source| BoxError::Card { path: path.to_path_buf(), source })
}

/// The peers slot named (or the keybox's only one) and its parameters.
pub fn peers_slot(keybox: &Keybox, name: Option<&str>) -> BoxResult<(SlotId, PeersParams)> {
    let named = |s: &&SlotRecord| name.is_none_or(|n| n == s.label || n == s.id.to_string());
    let mut found = Vec::new();
    for record in keybox.slots().iter().filter(named) {
        if let Some(params) = peers_params(record)? {
            found.push((record.id, params));
        }
    }
    let mut found = found.into_iter();
    match (found.next(), found.next()) {
        (Some(one), None) => Ok(one),
        (Some(_), Some(_)) => {
            Err(invalid("this keybox has several peers slots; name one with --slot"))
        }
        (None, _) => match name {
            Some(n) => Err(CoreError::SlotNotFound(format!("{n} (a peers slot)")).into()),
            None => Err(CoreError::NoSlotOfKind(PEERS.into()).into()),
        },
    }
}

/// A slot's peers parameters, if it is a peers slot.
pub fn peers_params(record: &SlotRecord) -> BoxResult<Option<PeersParams>> {
    PeersParams::of(&record.protection)
        .transpose()
        .map_err(|what| CoreError::Integrity { path: "the keybox".into(), what }.into())
}

/// The cards a peers slot recorded.
pub fn cards_of(params: &PeersParams) -> BoxResult<Vec<PeerCard>> {
    params
        .peers
        .iter()
        .map(|record| {
            PeerCard::from_record(record).map_err(|source| BoxError::Card {
                path: format!("the slot's record of {}", record.url).into(),
                source,
            })
        })
        .collect()
}

/// A peers slot enrolled, and the cleanup of older sets that followed.
#[derive(Debug)]
pub struct Enrolled {
    /// The keybox as committed.
    pub keybox: UnlockedKeybox,
    /// The new slot.
    pub slot: SlotId,
    /// Its parameters.
    pub params: PeersParams,
    /// What the cleanup after it did.
    pub cleanup: Cleanup,
}

/// Enrolls a peers slot in the keybox at `store`, opened as `opened`: the new set is noted in
/// the journal, `split` places K's shares at the peers, and the slot is committed. A commit
/// that fails (unless the file may already hold it: not durable) deletes the shares again.
pub fn enroll(
    store: &Store<'_>,
    opened: &UnlockedKeybox,
    split: Split<'_>,
    owner: &Owner,
    label: Option<&str>,
) -> BoxResult<Enrolled> {
    let journal = ShareJournal::beside(store.path());
    journal.note(PendingSet {
        share_set: split.share_set.to_string(),
        peers: split.cards.iter().map(PeerCard::to_record).collect(),
        since: unix_now(),
        disposal: Disposal::Placing,
    })?;
    let cards = split.cards;
    let key = opened.key();
    let params = block_on(distribute(key, split, owner, PEER_TIMEOUT))?;
    let secret = NewPeersSlot { key: key.clone(), params: params.clone() };
    let committed = authorization(opened)
        .and_then(|auth| Ok(operations::enroll(store, &auth, label, &secret)?));
    let (keybox, slot) = match committed {
        Ok(done) => done,
        Err(e) => {
            if !matches!(e, BoxError::Core(CoreError::NotDurable { .. })) {
                block_on(async {
                    delete_everywhere(cards, &owner.identity, &params.share_set, PEER_TIMEOUT)
                        .await;
                    Ok::<_, BoxError>(())
                })?;
            }
            return Err(e);
        }
    };
    let cleanup = journal.clean_up(keybox.keybox(), &owner.identity)?;
    Ok(Enrolled { keybox, slot, params, cleanup })
}

/// A slot re-shared, and the cleanup that followed.
#[derive(Debug)]
pub struct Reshared {
    /// The slot's new parameters.
    pub params: PeersParams,
    /// What the cleanup after it did (old shares some peers did not confirm deleting).
    pub cleanup: Cleanup,
}

/// Re-shares peers slot `slot` (whose parameters are `old`) of the keybox at `store`: the new
/// set and the old one are noted in the journal before anything moves, the new split replaces
/// the old set, and the journal then settles the new set and deletes the old one. Earlier
/// leftovers are cleaned up first.
pub fn reshare(
    store: &Store<'_>,
    opened: &UnlockedKeybox,
    slot: SlotId,
    old: &PeersParams,
    split: Split<'_>,
    owner: &Owner,
) -> BoxResult<Reshared> {
    let journal = ShareJournal::beside(store.path());
    journal.clean_up(opened.keybox(), &owner.identity)?;
    let now = unix_now();
    journal.note(PendingSet {
        share_set: split.share_set.to_string(),
        peers: split.cards.iter().map(PeerCard::to_record).collect(),
        since: now,
        disposal: Disposal::Placing,
    })?;
    journal.note(PendingSet {
        share_set: old.share_set.clone(),
        peers: old.peers.clone(),
        since: now,
        disposal: Disposal::Replaced { by: split.share_set.to_string() },
    })?;
    let done = block_on(async {
        reshare::reshare(store, slot, opened.key(), old, split, owner, PEER_TIMEOUT, |_| {
            std::ops::ControlFlow::Continue(())
        })
        .await
        .map_err(|e| match e {
            ReshareError::Distribute(e) => BoxError::Distribute(e),
            ReshareError::Commit(e) => BoxError::from(e),
            ReshareError::Stopped(_) => {
                BoxError::Core(CoreError::Internal("a re-share stopped though nothing asked it to"))
            }
        })
    })?;
    let cleanup = journal.clean_up(&store.load()?, &owner.identity)?;
    Ok(Reshared { params: done.params, cleanup })
}

/// What one peer of a slot says of the slot's share set.
#[derive(Debug)]
pub struct PeerHolding {
    /// The peer's URL.
    pub url: String,
    /// Its answer: the current set's share it holds (if it does) and how many other sets of
    /// this box it keeps; or why it did not answer.
    pub answer: BoxResult<Holding>,
}

/// A peer's answer about a share set.
#[derive(Debug)]
pub struct Holding {
    /// The current set, if this peer holds a share of it.
    pub current: Option<keyward_peer::api::ShareSetInfo>,
    /// How many other sets of the box it keeps.
    pub other_sets: usize,
}

/// Asks every peer of `params` at once (each within [`PEER_TIMEOUT`]) which of the box's sets
/// it holds; in the slot's order. Changes nothing anywhere.
pub fn holdings(
    params: &PeersParams,
    identity: &std::sync::Arc<keyward_service::SigningIdentity>,
) -> BoxResult<Vec<PeerHolding>> {
    let cards = cards_of(params)?;
    let mut answers = block_on(async {
        let mut asks = tokio::task::JoinSet::new();
        for (i, card) in cards.iter().enumerate() {
            let (card, identity) = (card.clone(), identity.clone());
            asks.spawn(async move {
                let result = match keyward_peer::client::PeerClient::new(&card, PEER_TIMEOUT) {
                    Ok(client) => client.status(&identity).await,
                    Err(e) => Err(e),
                };
                (i, result)
            });
        }
        Ok::<_, BoxError>(asks.join_all().await)
    })?;
    answers.sort_by_key(|(i, _)| *i);
    Ok(answers
        .into_iter()
        .zip(&cards)
        .map(|((_, answer), card)| PeerHolding {
            url: card.url.clone(),
            answer: answer.map_err(BoxError::from).map(|status| {
                let mut current = None;
                let mut other_sets = 0;
                for set in status.sets {
                    if set.share_set == params.share_set {
                        current = Some(set);
                    } else {
                        other_sets += 1;
                    }
                }
                Holding { current, other_sets }
            }),
        })
        .collect())
}
