//! The keyward escrow blob: a keybox's recovery-code slot, standing alone. It holds the slot's
//! KDF parameters and wrapped key together with what the slot's AEAD is bound to (keybox id,
//! slot id) and K's fingerprint, so a machine that has nothing but the blob and the recovery
//! code can open it — and nobody without the code can. It is made from the slot as stored (the
//! caller opens the keybox first, so the header MAC has vouched for the slot).
//!
//! Version 2 adds an unkeyed checksum over the rest, as the keybox has: a blob damaged on the
//! way (a flipped bit in the wrapped key) is then an integrity failure, told apart from a wrong
//! code, which the AEAD alone cannot do. Version 1 blobs are still read.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::encoding::base64_bytes;
use crate::error::{Error, IntegrityFailure, Result};
use crate::fingerprint::Fingerprint;
use crate::keybox::{KeyboxId, UnlockedKeybox};
use crate::recovery_code::RecoveryCode;
use crate::secret::DataKey;
use crate::slot::{OpenContext, RECOVERY_CODE, SlotId, SlotParams, Unlocker};

/// The `format` field of every escrow blob.
pub const BLOB_FORMAT: &str = "keyward-escrow-blob";
/// The version this code writes.
pub const BLOB_VERSION: u64 = 2;
/// The version before checksums, still read.
const BLOB_VERSION_1: u64 = 1;
/// No blob comes near this.
const MAX_BLOB_BYTES: usize = 64 * 1024;

/// An escrow blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscrowBlob {
    format: String,
    version: u64,
    /// The keybox the slot came from (bound into the wrapped key).
    pub keybox: KeyboxId,
    /// The slot's id in that keybox (bound into the wrapped key).
    pub slot: SlotId,
    /// K's fingerprint.
    pub fingerprint: Fingerprint,
    /// Length of K.
    pub key_length: u32,
    /// The slot's kind and KDF (always a recovery-code slot).
    pub protection: SlotParams,
    /// nonce ‖ ciphertext ‖ tag, as in the keybox.
    #[serde(with = "base64_bytes")]
    wrapped_key: Vec<u8>,
    /// Version 2: SHA-256 (hex) of the blob's bytes as written without this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checksum: Option<String>,
}

impl EscrowBlob {
    /// The blob of an opened keybox's recovery-code slot (the first one, or `slot`). Only an
    /// opened keybox will do: its header MAC has vouched for the slot, so a slot spliced in from
    /// an old copy of the file is never escrowed.
    pub fn from_keybox(unlocked: &UnlockedKeybox, slot: Option<SlotId>) -> Result<Self> {
        let keybox = unlocked.keybox();
        let record = keybox
            .slots()
            .iter()
            .filter(|s| slot.is_none_or(|id| s.id == id))
            .find(|s| s.protection.kind == RECOVERY_CODE)
            .ok_or_else(|| Error::NoSlotOfKind(RECOVERY_CODE.into()))?;
        Ok(EscrowBlob {
            format: BLOB_FORMAT.into(),
            version: BLOB_VERSION,
            keybox: keybox.header().id,
            slot: record.id,
            fingerprint: keybox.fingerprint(),
            key_length: keybox.header().key_length,
            protection: record.protection.clone(),
            wrapped_key: record.wrapped_key.clone(),
            checksum: None,
        })
    }

    /// Pretty JSON and a newline, as it stands.
    fn encode(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// The checksum of everything but the checksum.
    fn compute_checksum(&self) -> String {
        let unsummed = EscrowBlob { checksum: None, ..self.clone() };
        crate::encoding::to_hex(&Sha256::digest(unsummed.encode()))
    }

    /// The blob's bytes: pretty JSON and a newline (with its checksum, from version 2 on).
    pub fn to_bytes(&self) -> Vec<u8> {
        let checksum = (self.version != BLOB_VERSION_1).then(|| self.compute_checksum());
        EscrowBlob { checksum, ..self.clone() }.encode()
    }

    /// Reads a blob: shape, version, canonical form and parameter bounds. `origin` names it in
    /// errors.
    pub fn parse(bytes: &[u8], origin: &Path) -> Result<Self> {
        let fail = |what| Error::Integrity { path: origin.to_path_buf(), what };
        if bytes.len() > MAX_BLOB_BYTES {
            return Err(fail(IntegrityFailure::TooLarge(
                u64::try_from(bytes.len()).unwrap_or(u64::MAX),
            )));
        }
        let blob: EscrowBlob = serde_json::from_slice(bytes)
            .map_err(|e| fail(IntegrityFailure::Malformed(e.to_string())))?;
        if blob.format != BLOB_FORMAT {
            return Err(fail(IntegrityFailure::Malformed("not a keyward escrow blob".into())));
        }
        match (blob.version, &blob.checksum) {
            (BLOB_VERSION, Some(sum)) if *sum == blob.compute_checksum() => {}
            (BLOB_VERSION, _) => return Err(fail(IntegrityFailure::Checksum)),
            (BLOB_VERSION_1, None) => {}
            (BLOB_VERSION_1, Some(_)) => {
                return Err(fail(IntegrityFailure::Malformed(
                    "a version 1 blob has no checksum".into(),
                )));
            }
            (other, _) => return Err(fail(IntegrityFailure::UnsupportedVersion(other))),
        }
        if blob.encode() != bytes {
            return Err(fail(IntegrityFailure::NotCanonical));
        }
        if blob.protection.kind != RECOVERY_CODE {
            return Err(fail(IntegrityFailure::Inconsistent(
                "an escrow blob holds a recovery-code slot".into(),
            )));
        }
        blob.protection.read().map_err(fail)?;
        let key_len = usize::try_from(blob.key_length).unwrap_or(usize::MAX);
        if blob.wrapped_key.len() != crate::aead::NONCE_LEN + key_len + crate::aead::TAG_LEN {
            return Err(fail(IntegrityFailure::Inconsistent(
                "the wrapped key has the wrong length".into(),
            )));
        }
        Ok(blob)
    }

    /// Opens the blob with the recovery code. K comes back only if it has the blob's fingerprint.
    pub fn open(&self, code: &RecoveryCode, origin: &Path) -> Result<DataKey> {
        let slot = self
            .protection
            .read()
            .map_err(|what| Error::Integrity { path: origin.to_path_buf(), what })?
            .ok_or_else(|| Error::NoSlotOfKind(RECOVERY_CODE.into()))?;
        let mut ctx = OpenContext {
            slot: self.slot,
            label: "escrow",
            fingerprint: self.fingerprint,
            generation: 0,
            secrets: &mut Unlocker::RecoveryCode(code),
        };
        let kek = slot
            .open(&mut ctx)
            .map_err(|e| Error::from_slot(self.slot, e, origin))?
            .ok_or_else(|| Error::NoSlotOfKind(RECOVERY_CODE.into()))?;
        let ad = crate::keybox::binding(&self.keybox, self.slot, &self.protection);
        let bytes = crate::aead::open(&kek, &ad, &self.wrapped_key).map_err(|_| {
            Error::WrongSecret { tried: format!("the recovery code (for {})", origin.display()) }
        })?;
        let key = DataKey::import(bytes).map_err(|_| Error::Integrity {
            path: origin.to_path_buf(),
            what: IntegrityFailure::SlotKeyMismatch(self.slot),
        })?;
        if key.fingerprint() != self.fingerprint {
            return Err(Error::Integrity {
                path: origin.to_path_buf(),
                what: IntegrityFailure::SlotKeyMismatch(self.slot),
            });
        }
        Ok(key)
    }
}
