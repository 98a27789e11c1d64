//! The keybox: one data key K, its fingerprint, and the slots that open it. [`Keybox`] is a parsed
//! file whose checksum and structure are sound; [`UnlockedKeybox`] is one whose slot opened, whose
//! key has the recorded fingerprint and whose header MAC verified. Only an unlocked keybox can be
//! changed, and every change returns a new, self-verified copy: the old one and K are untouched.

pub mod format;
mod mac;

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::aead;
use crate::encoding;
use crate::error::{Error, IntegrityFailure, Result};
use crate::fingerprint::Fingerprint;
use crate::kdf::Kek;
use crate::random;
use crate::secret::DataKey;
use crate::slot::{
    Channel, DeviceError, NewSlot, OpenContext, SealContext, SecretSource, Slot, SlotError, SlotId,
    SlotParams, Unlocker,
};

pub use format::{KeyboxHeader, PbsRecord, SlotRecord, TokenRecord};

/// What a new keybox holds besides its first slot.
#[derive(Debug)]
pub struct NewKeybox<'a> {
    /// The data key.
    pub key: DataKey,
    /// A name for people.
    pub label: &'a str,
    /// The first slot's label (default `KIND-1`).
    pub slot_label: Option<&'a str>,
    /// Proxmox Backup facts, for a key imported from a PBS key file.
    pub pbs: Option<PbsRecord>,
}

impl<'a> NewKeybox<'a> {
    /// A keybox for `key` with no foreign-format record.
    pub fn new(key: DataKey, label: &'a str, slot_label: Option<&'a str>) -> Self {
        NewKeybox { key, label, slot_label, pbs: None }
    }
}

/// A keybox's random 16-byte id, stored as lower-case hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyboxId([u8; 16]);

impl KeyboxId {
    fn generate() -> Result<Self> {
        Ok(KeyboxId(random::array()?))
    }
}

impl fmt::Display for KeyboxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&encoding::to_hex(&self.0))
    }
}

impl FromStr for KeyboxId {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = encoding::from_hex(s).ok_or("keybox id is not lower-case hex")?;
        Ok(KeyboxId(bytes.try_into().map_err(|_| "keybox id is not 16 bytes")?))
    }
}

impl Serialize for KeyboxId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for KeyboxId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// What a slot's wrapped key is bound to: this keybox, this slot id, this kind and parameters.
#[derive(Serialize)]
struct SlotBinding<'a> {
    domain: &'static str,
    keybox: &'a KeyboxId,
    slot: SlotId,
    protection: &'a SlotParams,
}

/// The associated data a slot's wrapped key is bound to (also used by escrow blobs).
pub(crate) fn binding(keybox: &KeyboxId, slot: SlotId, protection: &SlotParams) -> Vec<u8> {
    let b = SlotBinding { domain: "keyward slot v1", keybox, slot, protection };
    serde_json::to_vec(&b).unwrap_or_default()
}

/// The current time as RFC 3339 UTC, to the second.
fn now() -> String {
    let t = time::OffsetDateTime::now_utc();
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A parsed keybox: checksum and structure verified, header MAC not yet (that needs K).
#[derive(Debug, Clone)]
pub struct Keybox {
    header: KeyboxHeader,
    mac: [u8; 32],
    /// Each slot as its kind read it when the file was parsed (`None`: a kind this build does
    /// not know), in the header's order.
    read: format::ReadSlots,
}

/// Two keyboxes are equal when their files are: the read slots follow from the header.
impl PartialEq for Keybox {
    fn eq(&self, other: &Self) -> bool {
        self.header == other.header && self.mac == other.mac
    }
}

impl Keybox {
    /// Parses file bytes; `path` is only used in error messages.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self> {
        let (header, mac, read) = format::decode(bytes, path)?;
        Ok(Keybox { header, mac, read })
    }

    /// The file bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        format::encode(&self.header, &self.mac)
    }

    /// The header (public facts: id, label, fingerprint, slots, tokens).
    pub fn header(&self) -> &KeyboxHeader {
        &self.header
    }

    /// The commit counter.
    pub fn generation(&self) -> u64 {
        self.header.generation
    }

    /// K's fingerprint as recorded.
    pub fn fingerprint(&self) -> Fingerprint {
        self.header.fingerprint
    }

    /// The slots.
    pub fn slots(&self) -> &[SlotRecord] {
        &self.header.slots
    }

    /// The slots with each as its kind read it (`None`: a kind this build does not know).
    pub fn read_slots(&self) -> impl Iterator<Item = (&SlotRecord, Option<&dyn Slot>)> {
        self.header.slots.iter().zip(self.read.iter().map(|read| read.as_deref()))
    }

    /// The slots that are offline fallbacks ([`Channel::is_offline_fallback`]).
    pub fn offline_fallbacks(&self) -> Vec<SlotId> {
        self.read_slots()
            .filter(|(_, read)| read.is_some_and(|r| r.channel().is_offline_fallback()))
            .map(|(record, _)| record.id)
            .collect()
    }

    /// Refuses to remove slot `id` when it is the last offline fallback and other slots remain
    /// (the TPM, token or peers left would be the only ways in: clevis#395); `Ok` for any other
    /// slot, and for the last slot of all (which [`UnlockedKeybox::remove_slot`] refuses).
    pub fn keeps_an_offline_fallback_without(&self, id: SlotId) -> Result<()> {
        let fallbacks = self.offline_fallbacks();
        if fallbacks == [id] && self.header.slots.len() > 1 {
            return Err(Error::LastOfflineFallback(id));
        }
        Ok(())
    }

    /// Slot `id` as its kind read it (`None`: no such slot, or a kind this build does not know).
    pub fn read_slot(&self, id: SlotId) -> Option<&dyn Slot> {
        self.read_slots().find(|(record, _)| record.id == id).and_then(|(_, read)| read)
    }

    /// Finds a slot by id ("2") or label.
    pub fn find_slot(&self, name: &str) -> Result<&SlotRecord> {
        let by_id = name.parse::<u32>().ok().map(SlotId);
        self.header
            .slots
            .iter()
            .find(|s| Some(s.id) == by_id)
            .or_else(|| self.header.slots.iter().find(|s| s.label == name))
            .ok_or_else(|| Error::SlotNotFound(name.to_string()))
    }

    /// Makes a new keybox holding `key`, with one slot opened by `first`. The result has been
    /// written to bytes, read back and opened with `first`, so it is known to work.
    pub fn create(new: NewKeybox<'_>, first: &dyn NewSlot) -> Result<UnlockedKeybox> {
        let NewKeybox { key, label, slot_label, pbs } = new;
        let header = KeyboxHeader {
            id: KeyboxId::generate()?,
            label: label.to_string(),
            created: now(),
            generation: 0,
            next_slot_id: 1,
            key_length: u32::try_from(key.expose().len()).unwrap_or(u32::MAX),
            fingerprint: key.fingerprint(),
            slots: Vec::new(),
            tokens: Vec::new(),
            pbs,
        };
        let empty = UnlockedKeybox {
            keybox: Keybox { header, mac: [0; 32], read: Vec::new() },
            key,
            opened_by: SlotId(0),
            slot_key: None,
        };
        let (created, id) = empty.add_slot(slot_label, first)?;
        Ok(UnlockedKeybox { opened_by: id, ..created })
    }

    /// Opens the keybox with one secret in hand, trying each slot it could open (or only
    /// `only`). Checks the key's fingerprint and the header MAC before returning.
    pub fn unlock(
        &self,
        unlocker: &Unlocker<'_>,
        only: Option<SlotId>,
        path: &Path,
    ) -> Result<UnlockedKeybox> {
        self.open_with(&mut { *unlocker }, Some(unlocker.channel()), only, path)
    }

    /// Opens the keybox through its slots, in id order (or only `only`): each slot asks
    /// `secrets` for what it needs, and the first whose KEK opens its wrapped key — to a key with
    /// the recorded fingerprint, under a sound header MAC — gives the result. A slot of a kind
    /// this build does not know is skipped; one whose device cannot be reached too (the next slot
    /// may open). `offered` is the one channel `secrets` answers, if it answers only one: it makes
    /// the error say which secret found no slot.
    pub fn open_with(
        &self,
        secrets: &mut dyn SecretSource,
        offered: Option<Channel>,
        only: Option<SlotId>,
        path: &Path,
    ) -> Result<UnlockedKeybox> {
        self.open_through_slots(secrets, offered, only, path, Opening::InUse)
    }

    /// [`Keybox::open_with`], for a use of the keybox or the proof of a copy (see [`Opening`]).
    fn open_through_slots(
        &self,
        secrets: &mut dyn SecretSource,
        offered: Option<Channel>,
        only: Option<SlotId>,
        path: &Path,
        opening: Opening,
    ) -> Result<UnlockedKeybox> {
        let named = match only {
            Some(id) => Some(self.slot(id)?),
            None => None,
        };
        // The first slot whose KEK did not open its wrapped key, and what it was opened with.
        let mut failed: Option<(SlotId, Channel)> = None;
        let mut unreachable: Option<Error> = None;
        for (record, slot) in self.read_slots().filter(|(s, _)| only.is_none_or(|id| s.id == id)) {
            let Some(slot) = slot else {
                if only.is_some() {
                    return Err(Error::UnknownKind {
                        slot: record.id,
                        kind: record.protection.kind.clone(),
                    });
                }
                continue;
            };
            if offered.is_some_and(|channel| channel != slot.channel()) {
                continue;
            }
            let mut ctx = OpenContext {
                slot: record.id,
                label: &record.label,
                fingerprint: self.header.fingerprint,
                generation: self.header.generation,
                secrets: &mut *secrets,
            };
            let kek = match slot.open(&mut ctx) {
                Ok(Some(kek)) => kek,
                Ok(None) => continue,
                // A device that answered "no" to a secret typed for it (a wrong PIN, a lockout)
                // ends the search: trying the same secret on the next device would spend its
                // retries too. One that needs nothing typed (changed PCRs) is remembered.
                Err(SlotError::Device(
                    e @ (DeviceError::PolicyMismatch(_) | DeviceError::LockedOut(_)),
                )) if slot.channel().is_typed() => {
                    return Err(Error::Slot { slot: record.id, source: e.into() });
                }
                Err(SlotError::Device(e)) => {
                    unreachable.get_or_insert(Error::Slot { slot: record.id, source: e.into() });
                    continue;
                }
                Err(e) => return Err(Error::from_slot(record.id, e, path)),
            };
            if let Some(unlocked) = self.open_slot(record, kek, path)? {
                if opening == Opening::InUse {
                    slot.opened(self.header.generation)
                        .map_err(|e| Error::from_slot(record.id, e, path))?;
                }
                return Ok(unlocked);
            }
            if slot.kek_is_vouched() {
                return Err(self.integrity(path, IntegrityFailure::SlotRecordChanged(record.id)));
            }
            failed.get_or_insert((record.id, slot.channel()));
        }
        if let Some((slot, channel)) = failed {
            let tried = match (offered, only) {
                (Some(_), None) => channel.describe().to_string(),
                _ => format!("{} for slot {slot}", channel.describe()),
            };
            return Err(Error::WrongSecret { tried });
        }
        if let Some(error) = unreachable {
            return Err(error);
        }
        Err(match (named, offered) {
            (Some(record), Some(channel)) => Error::WrongSecretKind {
                slot: record.id,
                kind: record.protection.kind.clone(),
                offered: channel.describe(),
            },
            (Some(record), None) => Error::SlotNeeds {
                slot: record.id,
                needs: self
                    .read_slot(record.id)
                    .map_or("a newer keyward", |s| s.channel().describe())
                    .to_string(),
            },
            (None, Some(channel)) => Error::NoSlotTakes(channel.describe()),
            (None, None) => Error::NoUnattendedSlot,
        })
    }

    /// Opens slot `key.slot` again with the KEK that opened it before (as a command does under
    /// the keybox lock, after it opened the slot once outside it: no second prompt, unseal or
    /// network round).
    pub fn reopen(&self, key: &SlotKey, path: &Path) -> Result<UnlockedKeybox> {
        let record = self.slot(key.slot)?;
        self.open_slot(record, key.kek.clone(), path)?.ok_or_else(|| Error::WrongSecret {
            tried: format!("the key that opened slot {} before (the slot changed since)", key.slot),
        })
    }

    /// Tries `kek` on one slot: `None` if it does not open the wrapped key; an integrity error
    /// if it opens to a key that is not K or the header MAC fails.
    fn open_slot(
        &self,
        record: &SlotRecord,
        kek: Kek,
        path: &Path,
    ) -> Result<Option<UnlockedKeybox>> {
        let ad = binding(&self.header.id, record.id, &record.protection);
        let Ok(bytes) = aead::open(&kek, &ad, &record.wrapped_key) else {
            return Ok(None);
        };
        let mismatch = || self.integrity(path, IntegrityFailure::SlotKeyMismatch(record.id));
        let key = DataKey::import(bytes).map_err(|_| mismatch())?;
        if key.fingerprint() != self.header.fingerprint {
            return Err(mismatch());
        }
        if !mac::verify(&key, &self.header, &self.mac) {
            return Err(self.integrity(path, IntegrityFailure::HeaderMac));
        }
        let slot_key = SlotKey { slot: record.id, kek };
        Ok(Some(UnlockedKeybox {
            keybox: self.clone(),
            key,
            opened_by: record.id,
            slot_key: Some(slot_key),
        }))
    }

    fn slot(&self, id: SlotId) -> Result<&SlotRecord> {
        Ok(&self.header.slots[slot_index(&self.header, id)?])
    }

    fn integrity(&self, path: &Path, what: IntegrityFailure) -> Error {
        Error::Integrity { path: path.to_path_buf(), what }
    }
}

/// A slot and the KEK that opened it: lets a command open the slot again under the keybox lock.
#[derive(Clone)]
pub struct SlotKey {
    slot: SlotId,
    kek: Kek,
}

impl fmt::Debug for SlotKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlotKey").field("slot", &self.slot).finish_non_exhaustive()
    }
}

/// A keybox that is open: K is known, its fingerprint and the header MAC checked.
#[derive(Debug)]
pub struct UnlockedKeybox {
    keybox: Keybox,
    key: DataKey,
    opened_by: SlotId,
    /// The KEK that opened it, when a slot did (not for a keybox just made or changed).
    slot_key: Option<SlotKey>,
}

impl UnlockedKeybox {
    /// The data key.
    pub fn key(&self) -> &DataKey {
        &self.key
    }

    /// The keybox.
    pub fn keybox(&self) -> &Keybox {
        &self.keybox
    }

    /// The slot that opened it.
    pub fn opened_by(&self) -> SlotId {
        self.opened_by
    }

    /// The slot that opened it and its KEK, to open it again under the keybox lock.
    pub fn slot_key(&self) -> Option<&SlotKey> {
        self.slot_key.as_ref()
    }

    /// A copy with a new slot opened by `secret`, and the new slot's id.
    /// Without a label the slot is called `KIND-ID` (`passphrase-2`).
    pub fn add_slot(
        &self,
        label: Option<&str>,
        secret: &dyn NewSlot,
    ) -> Result<(UnlockedKeybox, SlotId)> {
        let mut header = self.keybox.header.clone();
        let id = SlotId(header.next_slot_id);
        let label = label.map_or_else(|| format!("{}-{id}", secret.kind()), str::to_string);
        if label.is_empty() || label.parse::<u32>().is_ok() {
            return Err(Error::BadLabel(label));
        }
        if header.slots.iter().any(|s| s.label == label) {
            return Err(Error::DuplicateLabel(label));
        }
        header.next_slot_id = header.next_slot_id.checked_add(1).ok_or(Error::SlotIdsExhausted)?;
        header.slots.push(self.seal_slot(id, label, secret, None)?);
        let next = self.commit_copy(header, id, secret)?;
        Ok((next, id))
    }

    /// A copy whose slot `id` opens with `secret` instead (same K, fresh salt and nonce). The slot
    /// keeps its id, label and tokens.
    pub fn rotate_slot(&self, id: SlotId, secret: &dyn NewSlot) -> Result<UnlockedKeybox> {
        let mut header = self.keybox.header.clone();
        let index = slot_index(&header, id)?;
        let old = &header.slots[index];
        if old.protection.kind != secret.kind() {
            // A slot keeps its kind; to change kind, enroll a new slot and remove this one.
            return Err(Error::SlotKindMismatch {
                slot: id,
                kind: old.protection.kind.clone(),
                offered: secret.kind().to_string(),
            });
        }
        header.slots[index] =
            self.seal_slot(id, old.label.clone(), secret, Some(&old.protection))?;
        self.commit_copy(header, id, secret)
    }

    /// A copy without slot `id` and its tokens. Refuses the last slot.
    pub fn remove_slot(&self, id: SlotId) -> Result<UnlockedKeybox> {
        let mut header = self.keybox.header.clone();
        let index = slot_index(&header, id)?;
        if header.slots.len() == 1 {
            return Err(Error::LastSlot(id));
        }
        header.slots.remove(index);
        header.tokens.retain(|t| t.slot != id);
        let opened_by = if self.opened_by == id { SlotId(0) } else { self.opened_by };
        let mut next = self.seal_header(header)?;
        next.opened_by = opened_by;
        Ok(next)
    }

    /// A copy with a token added to slot `slot`.
    pub fn add_token(
        &self,
        slot: SlotId,
        token_type: &str,
        content: serde_json::Value,
    ) -> Result<UnlockedKeybox> {
        let mut header = self.keybox.header.clone();
        slot_index(&header, slot)?;
        header.tokens.push(TokenRecord { slot, token_type: token_type.to_string(), content });
        self.seal_header(header)
    }

    /// Seals `secret` as slot `id`, in place of a slot with parameters `replacing` if any.
    fn seal_slot(
        &self,
        id: SlotId,
        label: String,
        secret: &dyn NewSlot,
        replacing: Option<&SlotParams>,
    ) -> Result<SlotRecord> {
        let generation = self.keybox.header.generation + 1;
        let at = match replacing {
            Some(old) => SealContext::replacing(generation, old),
            None => SealContext::new(generation),
        };
        let (protection, kek) = secret.seal(&at).map_err(|e| Error::from_new_slot(id, e))?;
        if protection.kind != secret.kind() {
            return Err(Error::Internal("a new slot sealed parameters of another kind"));
        }
        let ad = binding(&self.keybox.header.id, id, &protection);
        let wrapped_key = aead::seal(&kek, &ad, self.key.expose())?;
        Ok(SlotRecord { id, label, created: now(), protection, wrapped_key })
    }

    /// Bumps the generation and MACs the header; then writes the result to bytes and reads it
    /// back, checking structure and MAC, so what we return is exactly what a reader will accept.
    fn seal_header(&self, mut header: KeyboxHeader) -> Result<UnlockedKeybox> {
        let path = Path::new("the new keybox");
        header.generation += 1;
        let mac = mac::compute(&self.key, &header);
        let reread = Keybox::parse(&format::encode(&header, &mac), path)?;
        if !mac::verify(&self.key, &reread.header, &reread.mac) {
            return Err(Error::Integrity { path: path.into(), what: IntegrityFailure::HeaderMac });
        }
        Ok(UnlockedKeybox {
            keybox: reread,
            key: self.key.clone(),
            opened_by: self.opened_by,
            slot_key: None,
        })
    }

    /// Seals the header, then proves the result: opens the changed slot of the re-read copy with
    /// its new secret and compares the fingerprint. Only a keybox that passed is returned, so nothing
    /// that would not open is ever committed.
    fn commit_copy(
        &self,
        header: KeyboxHeader,
        changed: SlotId,
        secret: &dyn NewSlot,
    ) -> Result<UnlockedKeybox> {
        let sealed = self.seal_header(header)?;
        let unlocker = secret.unlocker();
        let reopened = sealed.keybox.open_through_slots(
            &mut { unlocker },
            Some(unlocker.channel()),
            Some(changed),
            Path::new("the new keybox"),
            Opening::Proof,
        )?;
        if reopened.key.fingerprint() != self.key.fingerprint() {
            return Err(crate::error::fingerprint_mismatch(
                &self.key.fingerprint(),
                &reopened.key.fingerprint(),
            ));
        }
        Ok(UnlockedKeybox { opened_by: self.opened_by, slot_key: None, ..reopened })
    }
}

/// Why a keybox is opened: for use, or as the proof that a copy not yet committed opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opening {
    /// The keybox is used: the slot that opened it is told ([`Slot::opened`]; a TPM slot's
    /// counter moves up to the file).
    InUse,
    /// A new copy is proved before it is committed: nothing outside it may change, or a
    /// change that then fails would leave the current file behind (a TPM counter moved past
    /// it).
    Proof,
}

fn slot_index(header: &KeyboxHeader, id: SlotId) -> Result<usize> {
    header.slots.iter().position(|s| s.id == id).ok_or_else(|| Error::SlotNotFound(id.to_string()))
}
