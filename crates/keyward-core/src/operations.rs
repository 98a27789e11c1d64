//! The mutating commands as library calls — init, enroll, remove, rotate — each one locked,
//! compare-and-swapped and self-verified. The CLI and the crash tests call exactly these.
//! `remove` and `rotate` tell the dropped slot's kind before and after the commit
//! ([`crate::slot::Slot::retire`]).

use std::path::Path;

use crate::error::{Error, Result};
use crate::keybox::{Keybox, NewKeybox, SlotKey, UnlockedKeybox};
use crate::slot::{
    Dropped, NewSlot, RetireStage, Retirement, SecretSource, Slot, SlotId, Unlocker,
};
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

/// Removes slot `target` (an id or label). Refuses the last slot. The slot's kind is told
/// before and after the commit; `secrets` gives it companion files and takes its notices.
pub fn remove(
    store: &Store<'_>,
    auth: &Authorization<'_>,
    target: &str,
    fallback: Fallback,
    secrets: &mut dyn SecretSource,
) -> Result<UnlockedKeybox> {
    let mut retiring = None;
    let committed = store.update(|current| {
        let id = current.find_slot(target)?.id;
        if fallback == Fallback::Keep {
            current.keeps_an_offline_fallback_without(id)?;
        }
        let next = auth.open(store, current)?.remove_slot(id)?;
        retiring = Retiring::before(current, id, Dropped::Removed, store.path(), secrets)?;
        Ok(next)
    });
    Retiring::after_commit(retiring, committed, store, secrets)
}

/// Whether a removal must leave an offline fallback (a recovery-code, passphrase or key-file
/// slot) when other slots remain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// Refuse to remove the last one ([`crate::Error::LastOfflineFallback`]).
    Keep,
    /// The owner said so (`--force`).
    MayGo,
}

/// Gives slot `target` a new secret; K and the slot's id, label and tokens stay. The old
/// parameters' kind is told before and after the commit, as for [`remove`].
pub fn rotate(
    store: &Store<'_>,
    auth: &Authorization<'_>,
    target: &str,
    secret: &dyn NewSlot,
    secrets: &mut dyn SecretSource,
) -> Result<UnlockedKeybox> {
    let mut retiring = None;
    let committed = store.update(|current| {
        let id = current.find_slot(target)?.id;
        let opened = auth.open(store, current)?;
        // Told before the new slot is sealed: a TPM slot's counter catches up with the current
        // file first, and the new one (on the same counter) is sealed past it.
        retiring = Retiring::before(current, id, Dropped::Replaced, store.path(), secrets)?;
        opened.rotate_slot(id, secret)
    });
    Retiring::after_commit(retiring, committed, store, secrets)
}

/// A slot a change drops, read from the current (opened, MAC-checked) file so its kind can be
/// told again after the commit.
struct Retiring {
    id: SlotId,
    slot: Box<dyn Slot>,
    dropped: Dropped,
    generation: u64,
}

impl Retiring {
    /// Tells the kind of slot `id` of `current` before the commit (`None`: a kind this build
    /// does not know, which has nothing to be told).
    fn before(
        current: &Keybox,
        id: SlotId,
        dropped: Dropped,
        path: &Path,
        secrets: &mut dyn SecretSource,
    ) -> Result<Option<Retiring>> {
        let record = current.find_slot(&id.to_string())?;
        let Some(slot) = record
            .protection
            .read()
            .map_err(|what| Error::Integrity { path: path.to_path_buf(), what })?
        else {
            return Ok(None);
        };
        let generation = current.generation();
        let mut at = Retirement {
            slot: id,
            dropped,
            generation,
            keybox: path,
            stage: RetireStage::BeforeCommit,
            secrets: &mut *secrets,
        };
        slot.retire(&mut at).map_err(|e| Error::from_slot(id, e, path))?;
        Ok(Some(Retiring { id, slot, dropped, generation }))
    }

    /// After `store.update` returned `committed`: the kind told the commit landed, if it did.
    /// A change that could not be synced to disk ([`Error::NotDurable`]) may not survive a
    /// power cut: the file before it may come back, and must still open, so the slot is not
    /// retired (and the person is told).
    fn after_commit(
        retiring: Option<Retiring>,
        committed: Result<UnlockedKeybox>,
        store: &Store<'_>,
        secrets: &mut dyn SecretSource,
    ) -> Result<UnlockedKeybox> {
        let Some(retiring) = retiring else { return committed };
        match committed {
            Ok(next) => {
                retiring.after(next.keybox(), store.path(), secrets);
                Ok(next)
            }
            Err(e @ Error::NotDurable { .. }) => {
                secrets.notice(&format!(
                    "slot {}: what it keeps outside the keybox (a TPM counter, shares at peers) \
                     was left as it was, since the change may not survive a power cut; a copy \
                     of the keybox from before it may still open through it",
                    retiring.id
                ));
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Tells the kind the commit landed. What it could not do is a warning: the change stays.
    fn after(self, committed: &Keybox, path: &Path, secrets: &mut dyn SecretSource) {
        let mut at = Retirement {
            slot: self.id,
            dropped: self.dropped,
            generation: self.generation,
            keybox: path,
            stage: RetireStage::Committed(committed),
            secrets: &mut *secrets,
        };
        if let Err(e) = self.slot.retire(&mut at) {
            secrets.notice(&Error::from_slot(self.id, e, path).to_string());
        }
    }
}
