//! The share journal's entries and what to do with each — sans-I/O (the CLI keeps the file,
//! beside the keybox, and does the deleting). A share set that is at peers but may not stay
//! there is noted *before* the step it guards: a split's new set before it is placed
//! ([`Disposal::Placing`]), the set a re-share replaces before the commit
//! ([`Disposal::Replaced`]), the set of a peers slot before the slot is removed
//! ([`Disposal::Removed`]). So a crash at any step leaves a record of what to remove, and of
//! the peers that hold it — removed peers included. [`decide`] says what the record means
//! against the sets the keybox records now.

use crate::slot::PeerRecord;
use serde::{Deserialize, Serialize};

/// How long a noted split may take before its leftovers are cleaned up: 15 minutes.
pub const GRACE_SECS: i64 = 15 * 60;
/// The journal file's format name.
pub const FORMAT: &str = "keyward-peers-pending";
/// The journal file's version.
pub const VERSION: u32 = 1;

/// Why a set is noted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Disposal {
    /// Being placed for a split not yet committed.
    Placing,
    /// Replaced by the set `by` in a re-share.
    Replaced {
        /// The replacement.
        by: String,
    },
    /// Its peers slot is being removed.
    Removed,
}

/// A noted share set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingSet {
    /// The set.
    pub share_set: String,
    /// The peers holding it.
    pub peers: Vec<PeerRecord>,
    /// When it was noted (Unix seconds).
    pub since: i64,
    /// Why.
    pub disposal: Disposal,
}

/// The journal file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Journal {
    format: String,
    version: u32,
    /// The noted sets.
    pub sets: Vec<PendingSet>,
}

/// Why a journal file was refused.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Not JSON of the journal's shape.
    #[error("not a share journal: {0}")]
    Malformed(String),
    /// Another format or version.
    #[error("a share journal this keyward does not read (format {format}, version {version})")]
    Version {
        /// The format found.
        format: String,
        /// The version found.
        version: u32,
    },
}

impl Journal {
    /// A journal of `sets`.
    pub fn new(sets: Vec<PendingSet>) -> Self {
        Journal { format: FORMAT.into(), version: VERSION, sets }
    }

    /// Reads a journal file's bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, JournalError> {
        let journal: Journal =
            serde_json::from_slice(bytes).map_err(|e| JournalError::Malformed(e.to_string()))?;
        if journal.format != FORMAT || journal.version != VERSION {
            return Err(JournalError::Version { format: journal.format, version: journal.version });
        }
        Ok(journal)
    }

    /// The file's bytes: pretty JSON and a newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }
}

/// What to do with a noted set now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nothing is left to do: drop the entry.
    Settled,
    /// Delete the set at its peers (then drop the entry).
    Delete,
    /// Not yet (a split may still be committing): keep the entry.
    Wait,
}

/// What to do with `set`, given the share sets the keybox's peers slots record and the time:
///
/// - a `placing` set the keybox records is settled; one it does not record after
///   [`GRACE_SECS`] was a crashed or failed split, and is deleted;
/// - a `replaced` set is deleted once the keybox records its replacement (or, after the grace,
///   records neither: the slot is gone); a `removed` set once the keybox no longer records it;
///   if the keybox still records either after the grace, the change never committed, and the
///   entry is settled.
///
/// A set the keybox records is never deleted, whatever the entry says.
pub fn decide(set: &PendingSet, recorded: &[String], now: i64) -> Decision {
    let is_recorded = recorded.contains(&set.share_set);
    // Saturating: the journal is a file, and a damaged `since` must not overflow.
    let old = now.saturating_sub(set.since) > GRACE_SECS;
    match &set.disposal {
        Disposal::Placing if is_recorded => Decision::Settled,
        Disposal::Replaced { .. } | Disposal::Removed if is_recorded && old => Decision::Settled,
        _ if is_recorded => Decision::Wait,
        Disposal::Placing if old => Decision::Delete,
        Disposal::Placing => Decision::Wait,
        Disposal::Replaced { by } if old || recorded.contains(by) => Decision::Delete,
        Disposal::Replaced { .. } => Decision::Wait,
        Disposal::Removed => Decision::Delete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(name: &str, since: i64, disposal: Disposal) -> PendingSet {
        PendingSet { share_set: name.into(), peers: Vec::new(), since, disposal }
    }

    #[test]
    fn a_recorded_set_is_never_deleted_and_a_leftover_goes_once_its_step_is_settled() {
        let now = 10_000;
        let young = now - 10;
        let old = now - GRACE_SECS - 1;
        let recorded = vec!["live".to_string()];
        let replaced = |by: &str| Disposal::Replaced { by: by.into() };
        for disposal in [Disposal::Placing, replaced("other"), Disposal::Removed] {
            for since in [young, old] {
                let d = decide(&set("live", since, disposal.clone()), &recorded, now);
                assert_ne!(d, Decision::Delete, "{disposal:?} since {since}");
            }
        }
        assert_eq!(decide(&set("new", young, Disposal::Placing), &recorded, now), Decision::Wait);
        assert_eq!(decide(&set("new", old, Disposal::Placing), &recorded, now), Decision::Delete);
        assert_eq!(decide(&set("old", young, replaced("live")), &recorded, now), Decision::Delete);
        assert_eq!(decide(&set("old", young, replaced("gone")), &recorded, now), Decision::Wait);
        assert_eq!(decide(&set("old", old, replaced("gone")), &recorded, now), Decision::Delete);
        assert_eq!(decide(&set("x", young, Disposal::Removed), &recorded, now), Decision::Delete);
        assert_eq!(decide(&set("live", old, replaced("x")), &recorded, now), Decision::Settled);
    }

    /// Issue 22.5: a journal entry with a damaged `since` made `now - since` overflow.
    #[test]
    fn a_damaged_time_in_the_journal_does_not_overflow() {
        for since in [i64::MIN, i64::MAX] {
            let decided = decide(&set("x", since, Disposal::Placing), &[], 0);
            assert!(matches!(decided, Decision::Delete | Decision::Wait), "{decided:?}");
        }
    }

    #[test]
    fn a_journal_reads_back_and_other_versions_are_refused() {
        let journal = Journal::new(vec![set("a", 1, Disposal::Placing)]);
        let again = Journal::parse(&journal.to_bytes()).expect("reads back");
        assert_eq!(again.sets, journal.sets);
        let text = String::from_utf8(journal.to_bytes()).expect("text");
        let other = text.replace("\"version\": 1", "\"version\": 2");
        assert!(Journal::parse(other.as_bytes()).is_err());
    }
}
