//! The mutating commands as library calls — init, enroll, remove, rotate — each one locked,
//! compare-and-swapped and self-verified. The CLI and the crash tests call exactly these.

use crate::error::Result;
use crate::keybox::{Keybox, NewKeybox, SlotKey, UnlockedKeybox};
use crate::slot::{NewSlot, SlotId, Unlocker};
use crate::store::Store;

/// Who authorises a change. The change re-reads the keybox under its lock and opens it again
/// with this, so a keybox changed in between is opened as it is now.
#[derive(Debug)]
pub enum Authorization<'a> {
    /// A secret, and optionally the one slot to try it on.
    Secret {
        /// The secret.
        unlocker: Unlocker<'a>,
        /// Only this slot, if set.
        slot: Option<SlotId>,
    },
    /// A slot the caller opened already (through prompts, a device or the network) and the
    /// KEK it gave: nothing is asked a second time.
    Opened(&'a SlotKey),
}

impl Authorization<'_> {
    fn open(&self, store: &Store<'_>, keybox: &Keybox) -> Result<UnlockedKeybox> {
        match self {
            Authorization::Secret { unlocker, slot } => {
                keybox.unlock(unlocker, *slot, store.path())
            }
            Authorization::Opened(key) => keybox.reopen(key, store.path()),
        }
    }
}

/// Creates a keybox holding `key` with one slot; refuses if the keybox exists.
pub fn init(store: &Store<'_>, new: NewKeybox<'_>, first: &dyn NewSlot) -> Result<UnlockedKeybox> {
    store.create_with(|| Keybox::create(new, first))
}

/// Adds a slot opened by `secret`. Returns the new keybox and the slot's id.
pub fn enroll(
    store: &Store<'_>,
    auth: &Authorization<'_>,
    label: Option<&str>,
    secret: &dyn NewSlot,
) -> Result<(UnlockedKeybox, SlotId)> {
    let mut new_id = SlotId(0);
    let next = store.update(|current| {
        let (next, id) = auth.open(store, current)?.add_slot(label, secret)?;
        new_id = id;
        Ok(next)
    })?;
    Ok((next, new_id))
}

/// Removes slot `target` (an id or label). Refuses the last slot.
pub fn remove(store: &Store<'_>, auth: &Authorization<'_>, target: &str) -> Result<UnlockedKeybox> {
    store.update(|current| {
        let id = current.find_slot(target)?.id;
        auth.open(store, current)?.remove_slot(id)
    })
}

/// Gives slot `target` a new secret; K and the slot's id, label and tokens stay.
pub fn rotate(
    store: &Store<'_>,
    auth: &Authorization<'_>,
    target: &str,
    secret: &dyn NewSlot,
) -> Result<UnlockedKeybox> {
    store.update(|current| {
        let id = current.find_slot(target)?.id;
        auth.open(store, current)?.rotate_slot(id, secret)
    })
}
