//! The passphrase slot: the passphrase's bytes through argon2id, calibrated when the slot is made
//! (see [`crate::kdf::calibrate_argon2id`]) and stored per slot.

use crate::error::IntegrityFailure;
use crate::kdf::{KdfError, KdfParams, Kek};
use crate::secret::Passphrase;

/// keyward's own slots use argon2id only; scrypt and PBKDF2 are for foreign formats.
pub(super) fn validate(kdf: &KdfParams) -> Result<(), IntegrityFailure> {
    if !matches!(kdf, KdfParams::Argon2id { .. }) {
        return Err(IntegrityFailure::KdfOutOfBounds(format!(
            "a passphrase slot uses argon2id, not {}",
            kdf.describe()
        )));
    }
    kdf.validate()
}

pub(super) fn kek(kdf: &KdfParams, passphrase: &Passphrase) -> Result<Kek, KdfError> {
    validate(kdf)?;
    kdf.derive(passphrase.expose())
}
