//! keyward's LUKS2 commands over one volume, holding K. Every command first settles the
//! journal (finishing or rolling back what a stopped command left), then does its own steps,
//! each one libcryptsetup call followed by the fault hook, so a crash test can stop after any.

use keyward_core::{DataKey, Fingerprint};

use crate::backup::{self, HeaderBackup};
use crate::error::{LuksError, Result};
use crate::escrow;
use crate::header::Header;
use crate::journal::{Anomaly, Entry, Journal};
use crate::kdf::KeyslotKdf;
use crate::passphrase::KeyslotPassphrase;
use crate::token::{KeywardToken, TokenState};
use crate::volume::{Volume, VolumeKey};

/// One change to the header, in the order a rotation makes them (docs/formats/luks2-token.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// 1: the new pair's token, pending.
    WritePendingToken,
    /// 2: the new pair's keyslot (also the keyslot `add-passphrase` adds).
    AddKeyslot,
    /// 3: the new pair's token, committed and assigned to its keyslot.
    CommitToken,
    /// 4: the old pair's keyslot wiped (also `remove`'s first step).
    WipeOldKeyslot,
    /// 5: the old pair's token removed (also `remove`'s second step).
    RemoveOldToken,
    /// Settling: a pending token whose keyslot was never added, removed.
    RollBack,
    /// Settling: a committed token whose keyslot is gone, removed.
    RemoveOrphanedToken,
}

/// Asked after every step; answering `true` stops the command there, as a crash would.
pub trait FaultHook {
    /// Whether to stop after `step`.
    fn stop_after(&mut self, step: Step) -> bool;
}

/// The hook of every real run: never stops.
pub struct NoFaults;

impl FaultHook for NoFaults {
    fn stop_after(&mut self, _: Step) -> bool {
        false
    }
}

/// What settling did about a stopped command, for the user to be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repair {
    /// A pending pair whose keyslot was never added: its token removed.
    RolledBack {
        /// The sequence it would have had.
        sequence: u64,
    },
    /// A pending pair whose keyslot was added (and opens): committed.
    Committed {
        /// Its sequence.
        sequence: u64,
        /// Its keyslot.
        keyslot: u32,
    },
    /// The pair a finished rotation replaced: its keyslot wiped.
    WipedOld {
        /// Its sequence.
        sequence: u64,
        /// Its keyslot.
        keyslot: u32,
    },
    /// The pair a finished rotation replaced: its keyslot, still listed but wiped already (a
    /// destroy stopped midway), destroyed.
    FinishedWipe {
        /// Its sequence.
        sequence: u64,
        /// Its keyslot.
        keyslot: u32,
    },
    /// The pair a finished rotation replaced: its token removed.
    RemovedOldToken {
        /// Its sequence.
        sequence: u64,
    },
    /// A committed token whose keyslot was gone: removed.
    RemovedOrphan {
        /// The token.
        token: u32,
        /// The keyslot it named.
        keyslot: u32,
    },
}

impl std::fmt::Display for Repair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Repair::RolledBack { sequence } => write!(
                f,
                "rolled back an unfinished rotation to sequence {sequence} (its keyslot was never added)"
            ),
            Repair::Committed { sequence, keyslot } => {
                write!(
                    f,
                    "finished an unfinished rotation: keyslot {keyslot} (sequence {sequence}) committed"
                )
            }
            Repair::WipedOld { sequence, keyslot } => {
                write!(
                    f,
                    "finished an unfinished rotation: old keyslot {keyslot} (sequence {sequence}) wiped"
                )
            }
            Repair::FinishedWipe { sequence, keyslot } => {
                write!(
                    f,
                    "finished an unfinished rotation: old keyslot {keyslot} (sequence {sequence}), wiped already by a stopped destroy, removed"
                )
            }
            Repair::RemovedOldToken { sequence } => {
                write!(
                    f,
                    "finished an unfinished rotation: the token of sequence {sequence} removed"
                )
            }
            Repair::RemovedOrphan { token, keyslot } => write!(
                f,
                "removed keyward token {token}: its keyslot {keyslot} is gone (an unfinished `keyward luks remove`, or a keyslot killed by hand)"
            ),
        }
    }
}

/// A rotation done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The pair rotated from (now wiped).
    pub from: Entry,
    /// The pair rotated to.
    pub to: Entry,
}

/// A volume opened with the keybox's key: keyward's commands on it.
pub struct KeywardVolume<'a> {
    volume: Volume,
    key: &'a DataKey,
    keybox: String,
    hook: &'a mut dyn FaultHook,
    repairs: Vec<Repair>,
}

/// More settling steps than any stopped command leaves (a rotation stopped after step 3 needs
/// two) means the header changes under us.
const MAX_SETTLING_STEPS: usize = 4;

impl<'a> KeywardVolume<'a> {
    /// keyward's commands on `volume` with `key`, the key of keybox `keybox`.
    pub fn new(
        volume: Volume,
        key: &'a DataKey,
        keybox: &str,
        hook: &'a mut dyn FaultHook,
    ) -> Self {
        KeywardVolume { volume, key, keybox: keybox.into(), hook, repairs: Vec::new() }
    }

    /// The fingerprint of the key it holds.
    pub fn fingerprint(&self) -> Fingerprint {
        self.key.fingerprint()
    }

    /// What settling repaired so far.
    pub fn repairs(&self) -> &[Repair] {
        &self.repairs
    }

    /// Finishes or rolls back whatever a stopped keyward command left, then returns keyward's
    /// pair, if the volume has one. Nothing is wiped that does not open with the passphrase
    /// keyward derives for it, and nothing is derived before the token's fingerprint is K's.
    pub fn settle(&mut self) -> Result<Option<Entry>> {
        for _ in 0..=MAX_SETTLING_STEPS {
            let journal = self.journal()?;
            match journal {
                Journal::Empty => return Ok(None),
                Journal::Settled(entry) => {
                    self.check_ours(&entry)?;
                    return Ok(Some(entry));
                }
                Journal::Orphaned(entry) => {
                    self.volume.remove_token(entry.token)?;
                    self.repaired(
                        Repair::RemovedOrphan { token: entry.token, keyslot: entry.record.keyslot },
                        Step::RemoveOrphanedToken,
                    )?;
                }
                Journal::Pending { committed, pending, keyslot_added } => {
                    if let Some(committed) = &committed {
                        self.check_ours(committed)?;
                    }
                    self.check_ours(&pending)?;
                    let record = &pending.record;
                    if keyslot_added {
                        self.check_opens(&pending)?;
                        self.volume.replace_token(pending.token, &record.committed())?;
                        self.repaired(
                            Repair::Committed {
                                sequence: record.sequence,
                                keyslot: record.keyslot,
                            },
                            Step::CommitToken,
                        )?;
                    } else {
                        self.volume.remove_token(pending.token)?;
                        self.repaired(
                            Repair::RolledBack { sequence: record.sequence },
                            Step::RollBack,
                        )?;
                    }
                }
                Journal::Superseded { old, new, old_keyslot_present } => {
                    self.check_ours(&old)?;
                    self.check_ours(&new)?;
                    // Nothing of the old pair goes before the new one is proven keyward's: its
                    // keyslot opens with the passphrase of its sequence. A token copied and edited
                    // by hand to name someone else's keyslot would otherwise have keyward wipe
                    // the keyslot that works.
                    self.check_opens(&new)?;
                    let record = &old.record;
                    if old_keyslot_present {
                        // A destroy stopped midway leaves the old keyslot listed with its area
                        // wiped: it opens nothing any more, and is finished off all the same.
                        let repair = if self.opens(&old)? {
                            Repair::WipedOld { sequence: record.sequence, keyslot: record.keyslot }
                        } else {
                            Repair::FinishedWipe {
                                sequence: record.sequence,
                                keyslot: record.keyslot,
                            }
                        };
                        self.volume.destroy_keyslot(record.keyslot)?;
                        self.repaired(repair, Step::WipeOldKeyslot)?;
                    } else {
                        self.volume.remove_token(old.token)?;
                        self.repaired(
                            Repair::RemovedOldToken { sequence: record.sequence },
                            Step::RemoveOldToken,
                        )?;
                    }
                }
            }
        }
        Err(LuksError::KeepsChanging { path: self.volume.path().into() })
    }

    /// `keyward luks header-backup --push`: a backup of the settled header, sealed under K for
    /// the escrow hub ([`crate::escrow`]). Only a header whose keyward keyslot opens with the
    /// passphrase derived for it is sealed, so what a fresh machine restores opens with the
    /// key it recovered.
    /// Returns the backup, keyward's pair in it, and the sealed bytes.
    pub fn sealed_header_backup(&mut self) -> Result<(HeaderBackup, Entry, Vec<u8>)> {
        let (entry, _) = self.passphrase()?;
        let (backup, sealed) = self.sealed_header()?;
        Ok((backup, entry, sealed))
    }

    /// A backup of the header as it is, sealed under K: what a change pushes to the hub right
    /// after it (its own steps proved keyward's keyslot, or removed it). Returns the backup and
    /// the sealed bytes.
    pub fn sealed_header(&mut self) -> Result<(HeaderBackup, Vec<u8>)> {
        let backup = backup::back_up(&mut self.volume)?;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        let sealed_at = now.map_or(0, |d| d.as_secs());
        let sealed = escrow::seal(self.key, &backup, sealed_at).map_err(|source| {
            LuksError::HeaderEscrow { what: self.volume.path().display().to_string(), source }
        })?;
        Ok((backup, sealed))
    }

    /// `keyward luks enroll`: adds keyward's keyslot (sequence 1 of a new enrollment) with its
    /// token, the volume key taken from the keyslot `existing` opens.
    pub fn enroll(&mut self, existing: &[u8], kdf: &KeyslotKdf) -> Result<Entry> {
        if let Some(entry) = self.settle()? {
            return Err(LuksError::AlreadyEnrolled {
                path: self.volume.path().into(),
                keyslot: entry.record.keyslot,
                token: entry.token,
            });
        }
        let volume_key = self
            .volume
            .volume_key(None, existing)?
            .ok_or_else(|| LuksError::WrongPassphrase { path: self.volume.path().into() })?;
        let enrollment = keyward_core::random::array::<16>().map_err(LuksError::Random)?;
        self.add_pair(&volume_key, &keyward_core::encoding::to_hex(&enrollment), 1, kdf)
    }

    /// `keyward luks rotate`: steps 1–5, from keyward's pair n to a new pair n+1 on another
    /// keyslot; the old passphrase opens nothing afterwards.
    pub fn rotate(&mut self, kdf: &KeyslotKdf) -> Result<Rotation> {
        let from = self.enrolled()?;
        let volume_key = self.our_volume_key(&from)?;
        let to =
            self.add_pair(&volume_key, &from.record.enrollment, from.record.sequence + 1, kdf)?;
        self.wipe_pair(&from)?;
        Ok(Rotation { from, to })
    }

    /// `keyward luks passphrase`: keyward's keyslot passphrase, checked to open its keyslot.
    pub fn passphrase(&mut self) -> Result<(Entry, KeyslotPassphrase)> {
        let entry = self.enrolled()?;
        let passphrase = self.passphrase_of(&entry.record);
        if !self.volume.opens(entry.record.keyslot, passphrase.expose())? {
            return Err(self.does_not_open(&entry));
        }
        Ok((entry, passphrase))
    }

    /// `keyward luks remove`: wipes keyward's keyslot, then removes its token; refused if it is
    /// the volume's last keyslot.
    pub fn remove(&mut self) -> Result<Entry> {
        let entry = self.enrolled()?;
        if self.volume.header()?.keyslots.len() <= 1 {
            return Err(LuksError::LastKeyslot {
                path: self.volume.path().into(),
                keyslot: entry.record.keyslot,
            });
        }
        self.check_opens(&entry).map_err(|_| self.does_not_open(&entry))?;
        self.wipe_pair(&entry)?;
        Ok(entry)
    }

    /// `keyward luks add-passphrase`: a new ordinary keyslot holding `passphrase`, opened
    /// through keyward's keyslot. Returns its number.
    pub fn add_passphrase(&mut self, passphrase: &[u8], kdf: &KeyslotKdf) -> Result<u32> {
        let entry = self.enrolled()?;
        let volume_key = self.our_volume_key(&entry)?;
        if self.volume.header()?.free_keyslot().is_none() {
            return Err(LuksError::NoFreeKeyslot { path: self.volume.path().into() });
        }
        let keyslot = self.volume.add_keyslot(None, &volume_key, passphrase, kdf)?;
        self.stop_if_asked(Step::AddKeyslot)?;
        Ok(keyslot)
    }

    /// Steps 1–3: a pending token naming a free keyslot, the keyslot, the token committed.
    fn add_pair(
        &mut self,
        volume_key: &VolumeKey,
        enrollment: &str,
        sequence: u64,
        kdf: &KeyslotKdf,
    ) -> Result<Entry> {
        let keyslot = self
            .volume
            .header()?
            .free_keyslot()
            .ok_or_else(|| LuksError::NoFreeKeyslot { path: self.volume.path().into() })?;
        let pending = KeywardToken {
            state: TokenState::Pending,
            sequence,
            keyslot,
            enrollment: enrollment.into(),
            keybox: self.keybox.clone(),
            fingerprint: self.key.fingerprint(),
            assigned: vec![],
        };
        let token = self.volume.add_token(&pending)?;
        self.stop_if_asked(Step::WritePendingToken)?;
        let passphrase = self.passphrase_of(&pending);
        self.volume.add_keyslot(Some(keyslot), volume_key, passphrase.expose(), kdf)?;
        self.stop_if_asked(Step::AddKeyslot)?;
        let committed = pending.committed();
        self.volume.replace_token(token, &committed)?;
        self.stop_if_asked(Step::CommitToken)?;
        Ok(Entry { token, record: committed })
    }

    /// Steps 4–5: the pair's keyslot wiped, then its token removed.
    fn wipe_pair(&mut self, entry: &Entry) -> Result<()> {
        self.volume.destroy_keyslot(entry.record.keyslot)?;
        self.stop_if_asked(Step::WipeOldKeyslot)?;
        self.volume.remove_token(entry.token)?;
        self.stop_if_asked(Step::RemoveOldToken)
    }

    /// keyward's settled pair, or "not enrolled".
    fn enrolled(&mut self) -> Result<Entry> {
        self.settle()?.ok_or_else(|| LuksError::NotEnrolled { path: self.volume.path().into() })
    }

    /// The volume key, from keyward's keyslot of `entry` (one KDF, of that keyslot only).
    fn our_volume_key(&mut self, entry: &Entry) -> Result<VolumeKey> {
        let passphrase = self.passphrase_of(&entry.record);
        match self.volume.volume_key(Some(entry.record.keyslot), passphrase.expose())? {
            Some(key) => Ok(key),
            None => Err(self.does_not_open(entry)),
        }
    }

    fn journal(&mut self) -> Result<Journal> {
        let header: Header = self.volume.header()?;
        Journal::read(&header)
            .map_err(|anomaly| LuksError::Anomaly { path: self.volume.path().into(), anomaly })
    }

    /// The fingerprint gate: nothing is derived from K for a token of another key.
    fn check_ours(&self, entry: &Entry) -> Result<()> {
        let ours: Fingerprint = self.key.fingerprint();
        if entry.record.fingerprint == ours {
            Ok(())
        } else {
            Err(LuksError::OtherKey {
                path: self.volume.path().into(),
                theirs: entry.record.fingerprint,
                ours,
            })
        }
    }

    /// Whether the entry's keyslot opens with keyward's passphrase for it.
    fn opens(&mut self, entry: &Entry) -> Result<bool> {
        let passphrase = self.passphrase_of(&entry.record);
        self.volume.opens(entry.record.keyslot, passphrase.expose())
    }

    /// That the entry's keyslot opens with keyward's passphrase for it, else it is not ours.
    fn check_opens(&mut self, entry: &Entry) -> Result<()> {
        if self.opens(entry)? {
            Ok(())
        } else {
            Err(LuksError::Anomaly {
                path: self.volume.path().into(),
                anomaly: Anomaly::NotOurKeyslot {
                    token: entry.token,
                    keyslot: entry.record.keyslot,
                },
            })
        }
    }

    fn does_not_open(&self, entry: &Entry) -> LuksError {
        LuksError::KeyslotDoesNotOpen {
            path: self.volume.path().into(),
            keyslot: entry.record.keyslot,
        }
    }

    fn passphrase_of(&self, record: &KeywardToken) -> KeyslotPassphrase {
        KeyslotPassphrase::derive(self.key, self.volume.uuid(), &record.enrollment, record.sequence)
    }

    fn repaired(&mut self, repair: Repair, step: Step) -> Result<()> {
        self.repairs.push(repair);
        self.stop_if_asked(step)
    }

    fn stop_if_asked(&mut self, step: Step) -> Result<()> {
        if self.hook.stop_after(step) {
            Err(LuksError::Interrupted { path: self.volume.path().into(), step })
        } else {
            Ok(())
        }
    }
}

/// What `keyward luks status` shows: read without the key, changing nothing.
#[derive(Debug)]
pub struct Status {
    /// The volume's UUID.
    pub uuid: String,
    /// Its keyslots and tokens.
    pub header: Header,
    /// keyward's journal, or what is wrong with it.
    pub journal: std::result::Result<Journal, Anomaly>,
}

/// What a drill finds of keyward's keyslot on a volume, changing nothing (no settling).
#[derive(Debug)]
pub enum KeyslotCheck {
    /// keyward's settled keyslot opens with the passphrase derived from the key.
    Opens(Entry),
    /// keyward's settled keyslot does not open with it.
    DoesNotOpen(Entry),
    /// keyward's token names a keyslot that is gone (killed by hand, or a removal stopped).
    KeyslotGone(Entry),
    /// The volume has no keyward keyslot.
    NotEnrolled,
    /// A keyward command stopped midway (the next `keyward luks` command settles it), or the
    /// tokens are an anomaly: said, not proven.
    Unsettled(String),
}

/// Whether keyward's keyslot of `volume` opens with the passphrase `key` derives for it, as
/// `cryptsetup open --test-passphrase` (no activation, nothing written, nothing settled).
pub fn check_keyslot(volume: &mut Volume, key: &DataKey) -> Result<KeyslotCheck> {
    let header = volume.header()?;
    let entry = match Journal::read(&header) {
        Ok(Journal::Settled(entry)) => entry,
        Ok(Journal::Empty) => return Ok(KeyslotCheck::NotEnrolled),
        Ok(Journal::Orphaned(entry)) => return Ok(KeyslotCheck::KeyslotGone(entry)),
        Ok(_) => {
            return Ok(KeyslotCheck::Unsettled(
                "a keyward command stopped midway; the next `keyward luks` command finishes it"
                    .into(),
            ));
        }
        Err(anomaly) => return Ok(KeyslotCheck::Unsettled(anomaly.to_string())),
    };
    let record = &entry.record;
    let passphrase =
        KeyslotPassphrase::derive(key, volume.uuid(), &record.enrollment, record.sequence);
    Ok(match volume.opens(record.keyslot, passphrase.expose())? {
        true => KeyslotCheck::Opens(entry),
        false => KeyslotCheck::DoesNotOpen(entry),
    })
}

/// Reads the volume's keyslots, tokens and keyward journal.
pub fn status(volume: &mut Volume) -> Result<Status> {
    let header = volume.header()?;
    let journal = Journal::read(&header);
    Ok(Status { uuid: volume.uuid().into(), header, journal })
}
