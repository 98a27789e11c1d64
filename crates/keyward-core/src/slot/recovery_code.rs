//! The recovery-code slot: the code's canonical text through argon2id.
//!
//! A code carries ~129 bits, so the KDF is not what keeps it safe; it is there as a margin and to
//! make online guessing at a hub or peer pointless. Its cost is fixed (not calibrated) so that a
//! blob made on a fast machine opens quickly on a small recovery box.

use crate::error::IntegrityFailure;
use crate::kdf::{KdfParams, Kek};
use crate::recovery_code::RecoveryCode;

/// Memory for the recovery-code KDF: 64 MiB.
const RECOVERY_CODE_M_KIB: u32 = 64 * 1024;
/// Passes for the recovery-code KDF.
const RECOVERY_CODE_T: u32 = 2;

/// The KDF for a new recovery-code slot, with a fresh salt.
pub fn default_recovery_code_kdf() -> crate::Result<KdfParams> {
    KdfParams::argon2id(RECOVERY_CODE_M_KIB, RECOVERY_CODE_T, 1)
}

pub(super) fn kek(kdf: &KdfParams, code: &RecoveryCode) -> Result<Kek, IntegrityFailure> {
    kdf.derive(code.canonical().as_bytes())
}
