//! The share journal of a keybox, `<keybox>.peers-pending.json` (not secret; written atomically,
//! 0600): the file and the deleting around the journal's entries and decisions
//! ([`crate::journal::decide`] says what each noted set needs). Every change to the file happens
//! under its lock (`.<keybox>.peers-pending.lock`), so a `peers status` and a re-share running at
//! once cannot lose each other's entries.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keyward_core::Keybox;
use keyward_core::store::{Fs, LockGuard, RealFs, beside_keybox, write_secret_file};
use keyward_service::{SigningIdentity, unix_now};

use crate::card::PeerCard;
use crate::distribute::delete_everywhere;
use crate::journal::{Decision, Journal, JournalError, decide};
use crate::slot::{PEER_TIMEOUT, PeerRecord, PeersParams};

pub use crate::journal::{Disposal, PendingSet};

/// How long a command waits for another to finish with the journal.
const LOCK_WAIT: Duration = Duration::from_secs(60);

/// Why the share journal could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ShareJournalError {
    /// Its lock, reading or writing it.
    #[error(transparent)]
    Core(#[from] keyward_core::Error),
    /// It is not a journal this keyward reads.
    #[error("{}: {source}; move it aside and run `keyward peers status`", path.display())]
    Unreadable {
        /// The journal file.
        path: PathBuf,
        /// What is wrong.
        source: JournalError,
    },
    /// The async runtime for the peer calls could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

type Result<T = ()> = std::result::Result<T, ShareJournalError>;

impl ShareJournalError {
    /// Which kind of failure it is: a journal this keyward cannot read is a file to move aside.
    pub fn class(&self) -> keyward_core::ErrorClass {
        match self {
            ShareJournalError::Core(e) => e.class(),
            ShareJournalError::Unreadable { .. } => keyward_core::ErrorClass::Usage,
            ShareJournalError::Runtime(_) => keyward_core::ErrorClass::Internal,
        }
    }
}

keyward_core::classify_by_method!(ShareJournalError);

impl From<ShareJournalError> for keyward_core::slot::SlotError {
    fn from(error: ShareJournalError) -> Self {
        match error {
            ShareJournalError::Core(e) => e.into(),
            other => keyward_core::slot::SlotError::Other(Box::new(other)),
        }
    }
}

/// The journal of one keybox.
#[derive(Debug)]
pub struct ShareJournal {
    path: PathBuf,
    lock: PathBuf,
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
        .filter_map(|s| PeersParams::of(&s.protection)?.ok().map(|p| p.share_set))
        .collect()
}

impl ShareJournal {
    /// The journal beside `keybox`.
    pub fn beside(keybox: &Path) -> Self {
        ShareJournal {
            path: beside_keybox(keybox, "", ".peers-pending.json"),
            lock: beside_keybox(keybox, ".", ".peers-pending.lock"),
        }
    }

    /// Takes the journal's lock, waiting a while for another command to finish with it.
    fn locked(&self) -> Result<LockGuard> {
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            match RealFs.try_lock(&self.lock) {
                Ok(Some(guard)) => return Ok(guard),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Ok(None) => return Err(keyward_core::Error::LockHeld(self.path.clone()).into()),
                Err(e) => return Err(keyward_core::Error::io("cannot lock", &self.path, e).into()),
            }
        }
    }

    /// The noted sets (none if there is no journal).
    pub fn load(&self) -> Result<Vec<PendingSet>> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(keyward_core::Error::io("cannot read", &self.path, e).into()),
        };
        Journal::parse(&bytes)
            .map(|journal| journal.sets)
            .map_err(|source| ShareJournalError::Unreadable { path: self.path.clone(), source })
    }

    fn save(&self, sets: Vec<PendingSet>) -> Result {
        if sets.is_empty() {
            return match std::fs::remove_file(&self.path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(keyward_core::Error::io("cannot remove", &self.path, e).into()),
            };
        }
        Ok(write_secret_file(&RealFs, &self.path, &Journal::new(sets).to_bytes(), true)?)
    }

    /// Notes a set (durably, before the step it guards).
    pub fn note(&self, set: PendingSet) -> Result {
        let _lock = self.locked()?;
        let mut sets = self.load()?;
        sets.retain(|s| s.share_set != set.share_set);
        sets.push(set);
        self.save(sets)
    }

    /// Settles what can be settled against `keybox` and deletes at its peers what must go. The
    /// lock is held to read and to write the journal, not while the peers are asked, so a
    /// command noting a set meanwhile waits for neither; its entry is kept.
    pub fn clean_up(&self, keybox: &Keybox, owner: &Arc<SigningIdentity>) -> Result<Cleanup> {
        let recorded = recorded_sets(keybox);
        let now = unix_now();
        let mut report = Cleanup::default();
        let mut to_delete = Vec::new();
        {
            let _lock = self.locked()?;
            let mut kept = Vec::new();
            for set in self.load()? {
                match decide(&set, &recorded, now) {
                    Decision::Settled => {}
                    Decision::Wait => {
                        report.waiting.push(set.clone());
                        kept.push(set);
                    }
                    Decision::Delete => {
                        to_delete.push(set.clone());
                        kept.push(set);
                    }
                }
            }
            self.save(kept)?;
        }
        // What each set to delete still needs: nothing (gone everywhere), or these peers.
        let mut outcomes: Vec<(String, Option<Vec<PeerRecord>>)> = Vec::new();
        for set in to_delete {
            let failed = delete_set(&set, owner)?;
            if failed.is_empty() {
                report.deleted.push(set.share_set.clone());
                outcomes.push((set.share_set, None));
                continue;
            }
            for (peer, why) in &failed {
                report.failed.push((peer.clone(), set.share_set.clone(), why.clone()));
            }
            let still: Vec<_> = set
                .peers
                .iter()
                .filter(|r| failed.iter().any(|(peer, _)| *peer == r.url))
                .cloned()
                .collect();
            // A failure not tied to one peer (a task that did not finish) keeps them all.
            outcomes.push((set.share_set, Some(if still.is_empty() { set.peers } else { still })));
        }
        if outcomes.is_empty() {
            return Ok(report);
        }
        let _lock = self.locked()?;
        let mut sets = self.load()?;
        for (share_set, left) in outcomes {
            match left {
                None => sets.retain(|s| s.share_set != share_set),
                Some(peers) => {
                    if let Some(entry) = sets.iter_mut().find(|s| s.share_set == share_set) {
                        entry.peers = peers;
                    }
                }
            }
        }
        self.save(sets)?;
        Ok(report)
    }
}

/// Deletes `set` at each peer that holds it; the peers (URLs) that still do, with why. A record
/// that does not read as a card is a peer still holding the set.
fn delete_set(set: &PendingSet, owner: &Arc<SigningIdentity>) -> Result<Vec<(String, String)>> {
    let (cards, unreadable): (Vec<_>, Vec<_>) =
        set.peers.iter().map(|r| (r, PeerCard::from_record(r))).partition(|(_, c)| c.is_ok());
    let cards: Vec<PeerCard> = cards.into_iter().filter_map(|(_, c)| c.ok()).collect();
    let mut failed =
        crate::runtime::block_on(delete_everywhere(&cards, owner, &set.share_set, PEER_TIMEOUT))
            .map_err(ShareJournalError::Runtime)?
            .into_iter()
            .map(|(peer, e)| (peer, e.to_string()))
            .collect::<Vec<_>>();
    failed.extend(
        unreadable.into_iter().map(|(r, _)| (r.url.clone(), "its record is damaged".into())),
    );
    Ok(failed)
}
