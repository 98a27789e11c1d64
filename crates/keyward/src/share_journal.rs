//! The record of share sets that are at peers but may not stay there, kept beside the keybox
//! (`<keybox>.peers-pending.json`; not secret, written atomically). A split notes its new set
//! *before* placing it (`placing`), a re-share notes the old set it replaces (`replaced`) and
//! `remove` the set of the peers slot it removes (`removed`), each *before* the keybox commit,
//! so a crash at any step leaves a record of what to remove — and of the peers that hold it,
//! removed ones included. Every `peers` command then cleans up:
//!
//! - a `placing` set the keybox came to record is settled (the entry goes); one it does not
//!   record after [`GRACE_SECS`] was a crashed or failed split, and is deleted at its peers;
//! - a `replaced` set is deleted once the keybox records its replacement (or, after the grace,
//!   once it records neither: the slot is gone); if the keybox still records it after the
//!   grace, the re-share never committed, and the entry goes;
//! - a `removed` set is deleted once the keybox no longer records it (the same grace for a
//!   removal that never committed).
//!
//! A set the keybox records is never deleted, whatever the record says. The grace leaves a
//! split running in another process time to commit.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use keyward_core::Keybox;
use keyward_core::slot::{PeerRecord, SlotParams};
use keyward_core::store::{RealFs, write_secret_file};
use keyward_peer::card::PeerCard;
use keyward_peer::distribute::delete_everywhere;
use keyward_service::{SigningIdentity, unix_now};
use serde::{Deserialize, Serialize};

use crate::exit::{CliError, CliResult, usage};
use crate::peers_io::PEER_TIMEOUT;
use crate::runtime::block_on;

/// How long a noted split may take before its leftovers are cleaned up: 15 minutes.
pub const GRACE_SECS: i64 = 15 * 60;
const FORMAT: &str = "keyward-peers-pending";
const VERSION: u32 = 1;

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

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JournalFile {
    format: String,
    version: u32,
    sets: Vec<PendingSet>,
}

/// The journal of one keybox.
#[derive(Debug)]
pub struct ShareJournal {
    path: PathBuf,
}

/// What a cleanup did.
#[derive(Debug, Default)]
pub struct Cleanup {
    /// Sets deleted at every peer that held them.
    pub deleted: Vec<String>,
    /// Peers (URLs) that still hold a set to delete, with the set and the reason.
    pub failed: Vec<(String, String, String)>,
    /// Entries left for later (within the grace).
    pub waiting: Vec<PendingSet>,
}

/// Every share set a peers slot of `keybox` records.
pub fn recorded_sets(keybox: &Keybox) -> Vec<String> {
    keybox
        .slots()
        .iter()
        .filter_map(|s| match &s.protection {
            SlotParams::Peers(p) => Some(p.share_set.clone()),
            _ => None,
        })
        .collect()
}

impl ShareJournal {
    /// The journal beside `keybox`.
    pub fn beside(keybox: &Path) -> Self {
        let name = keybox.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        ShareJournal { path: keybox.with_file_name(format!("{name}.peers-pending.json")) }
    }

    /// The noted sets (none if there is no journal).
    pub fn load(&self) -> CliResult<Vec<PendingSet>> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(keyward_core::Error::io("cannot read", &self.path, e).into()),
        };
        let file: JournalFile = serde_json::from_slice(&bytes)
            .map_err(|e| usage(format!("{}: {e}", self.path.display())))?;
        if file.format != FORMAT || file.version != VERSION {
            return Err(usage(format!(
                "{} is not a journal this keyward reads",
                self.path.display()
            )));
        }
        Ok(file.sets)
    }

    fn save(&self, sets: Vec<PendingSet>) -> CliResult {
        if sets.is_empty() {
            return match std::fs::remove_file(&self.path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(keyward_core::Error::io("cannot remove", &self.path, e).into()),
            };
        }
        let file = JournalFile { format: FORMAT.into(), version: VERSION, sets };
        let mut bytes =
            serde_json::to_vec_pretty(&file).map_err(|e| CliError::Failed(e.to_string()))?;
        bytes.push(b'\n');
        Ok(write_secret_file(&RealFs, &self.path, &bytes, true)?)
    }

    /// Notes a set (durably, before the step it guards).
    pub fn note(&self, set: PendingSet) -> CliResult {
        let mut sets = self.load()?;
        sets.retain(|s| s.share_set != set.share_set);
        sets.push(set);
        self.save(sets)
    }

    /// Settles what can be settled, deleting at peers what must go (see the module doc).
    pub fn clean_up(&self, keybox: &Keybox, owner: &Arc<SigningIdentity>) -> CliResult<Cleanup> {
        let recorded = recorded_sets(keybox);
        let now = unix_now();
        let mut report = Cleanup::default();
        let mut kept = Vec::new();
        for mut set in self.load()? {
            let is_recorded = recorded.contains(&set.share_set);
            let old = now - set.since > GRACE_SECS;
            let delete = match &set.disposal {
                Disposal::Placing if is_recorded => continue,
                Disposal::Replaced { .. } | Disposal::Removed if is_recorded && old => continue,
                _ if is_recorded => false,
                Disposal::Placing => old,
                Disposal::Replaced { by } => old || recorded.contains(by),
                Disposal::Removed => true,
            };
            if !delete {
                report.waiting.push(set.clone());
                kept.push(set);
                continue;
            }
            let cards: Vec<PeerCard> =
                set.peers.iter().filter_map(|r| PeerCard::from_record(r).ok()).collect();
            let failed = block_on(async {
                Ok::<_, CliError>(
                    delete_everywhere(&cards, owner, &set.share_set, PEER_TIMEOUT).await,
                )
            })?;
            if failed.is_empty() {
                report.deleted.push(set.share_set.clone());
                continue;
            }
            for (peer, e) in &failed {
                report.failed.push((peer.clone(), set.share_set.clone(), e.to_string()));
            }
            set.peers.retain(|r| failed.iter().any(|(peer, _)| *peer == r.url));
            kept.push(set);
        }
        self.save(kept)?;
        Ok(report)
    }
}
