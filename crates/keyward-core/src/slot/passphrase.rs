//! The passphrase slot: the passphrase's bytes through argon2id, calibrated when the slot is made
//! (see [`crate::kdf::calibrate_argon2id`]) and stored per slot.

use crate::kdf::{KdfError, KdfParams, Kek};
use crate::secret::Passphrase;

pub(super) fn kek(kdf: &KdfParams, passphrase: &Passphrase) -> Result<Kek, KdfError> {
    kdf.derive(passphrase.expose())
}
