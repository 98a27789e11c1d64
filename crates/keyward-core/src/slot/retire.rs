//! The "slot removed" joint: what a kind is told when a commit drops one of its slots, and when.
//!
//! Most kinds keep everything in the keybox, and dropping the record is all there is to it. Two
//! keep state elsewhere: a TPM slot's rollback counter, which must move past the file that held
//! the slot (else a copy of that file, put back, still opens through the TPM), and a peers
//! slot's shares, which must be deleted at the peers. [`super::Slot::retire`] is called twice
//! around the commit so each can do its part where it is safe: before, only what leaves the
//! current file openable (a change that then fails loses nothing); after, the rest.

use std::path::Path;

use crate::keybox::Keybox;

use super::{SecretSource, SlotId};

/// Why a commit drops a slot's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// `remove`: the slot is gone.
    Removed,
    /// `rotate`, a reseal, a re-share: the slot keeps its id with new parameters.
    Replaced,
}

/// When a kind is told.
#[derive(Debug, Clone, Copy)]
pub enum RetireStage<'a> {
    /// Under the keybox lock, before the commit: only what leaves the current file openable
    /// (a journal entry, a counter moved up to what the current file expects). A failure stops
    /// the change, nothing committed.
    BeforeCommit,
    /// The commit landed; this is the keybox now. A failure cannot undo the change: it is told
    /// to the person as a warning.
    Committed(&'a Keybox),
}

/// A slot a commit drops, as its kind is told of it.
pub struct Retirement<'a> {
    /// The slot.
    pub slot: SlotId,
    /// Removed or replaced.
    pub dropped: Dropped,
    /// The generation of the last keybox file that holds the slot as it was.
    pub generation: u64,
    /// Where the keybox is (a kind's journal lives beside it).
    pub keybox: &'a Path,
    /// Before or after the commit.
    pub stage: RetireStage<'a>,
    /// Companion files (the box's identity, for its peers) and notices for the person.
    pub secrets: &'a mut dyn SecretSource,
}

impl std::fmt::Debug for Retirement<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retirement")
            .field("slot", &self.slot)
            .field("dropped", &self.dropped)
            .field("generation", &self.generation)
            .field("stage", &self.stage)
            .finish_non_exhaustive()
    }
}
