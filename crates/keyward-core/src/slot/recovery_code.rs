//! The recovery-code slot: the code's canonical text through argon2id.
//!
//! A code carries ~129 bits, so the KDF is not what keeps it safe; it is there as a margin and to
//! make online guessing at a hub or peer pointless. Its cost is fixed (not calibrated) so that a
//! blob made on a fast machine opens quickly on a small recovery box.

use serde_json::Value;

use crate::error::IntegrityFailure;
use crate::kdf::{KdfParams, Kek};
use crate::recovery_code::RecoveryCode;

use super::kdf_slot::{self, KdfSlot};
use super::{Channel, NewSlot, SealContext, Slot, SlotError, SlotKind, SlotParams, Unlocker};

/// The kind's name.
pub const RECOVERY_CODE: &str = "recovery-code";

/// Memory for the recovery-code KDF: 64 MiB.
const RECOVERY_CODE_M_KIB: u32 = 64 * 1024;
/// Passes for the recovery-code KDF.
const RECOVERY_CODE_T: u32 = 2;

/// The KDF for a new recovery-code slot, with a fresh salt.
pub fn default_recovery_code_kdf() -> crate::Result<KdfParams> {
    KdfParams::argon2id(RECOVERY_CODE_M_KIB, RECOVERY_CODE_T, 1)
}

/// Most work a recovery-code slot may ask for: 4 × what keyward writes. A code is opened on
/// whatever machine is left after a disaster, so its cost is bounded far below a passphrase's.
const MAX_RECOVERY_CODE_WORK_KIB: u64 = 4 * RECOVERY_CODE_M_KIB as u64 * RECOVERY_CODE_T as u64;

/// Bounds for a recovery-code slot's KDF: the general ones, and a much lower work limit.
fn validate(kdf: &KdfParams) -> Result<(), IntegrityFailure> {
    if !matches!(kdf, KdfParams::Argon2id { .. }) {
        return Err(IntegrityFailure::KdfOutOfBounds(format!(
            "a recovery-code slot uses argon2id, not {}",
            kdf.describe()
        )));
    }
    kdf.validate()?;
    if kdf.work_kib() > MAX_RECOVERY_CODE_WORK_KIB {
        return Err(IntegrityFailure::KdfOutOfBounds(format!(
            "a recovery-code slot asks for {} KiB of work (at most {MAX_RECOVERY_CODE_WORK_KIB})",
            kdf.work_kib()
        )));
    }
    Ok(())
}

/// The recovery-code kind.
#[derive(Debug)]
pub struct RecoveryCodeKind;

impl SlotKind for RecoveryCodeKind {
    fn name(&self) -> &'static str {
        RECOVERY_CODE
    }

    fn about(&self) -> &'static str {
        "Ten words from the EFF list (~129 bits), shown once"
    }

    fn read(&self, params: &Value) -> Result<Box<dyn Slot>, IntegrityFailure> {
        KdfSlot::read(RECOVERY_CODE, Channel::RecoveryCode, params, validate)
    }
}

/// A new recovery-code slot: a code (normally freshly generated) and its KDF.
#[derive(Debug)]
pub struct NewRecoveryCode {
    /// The code.
    pub code: RecoveryCode,
    /// The KDF, with a fresh salt.
    pub kdf: KdfParams,
}

impl NewSlot for NewRecoveryCode {
    fn kind(&self) -> &'static str {
        RECOVERY_CODE
    }

    fn seal(&self, _at: &SealContext) -> Result<(SlotParams, Kek), SlotError> {
        kdf_slot::seal(RECOVERY_CODE, &self.kdf, validate, self.code.canonical().as_bytes())
    }

    fn unlocker(&self) -> Unlocker<'_> {
        Unlocker::RecoveryCode(&self.code)
    }
}
