//! The passphrase slot: the passphrase's bytes through argon2id, calibrated when the slot is made
//! (see [`crate::kdf::calibrate_argon2id`]) and stored per slot.

use crate::error::IntegrityFailure;
use crate::kdf::{KdfParams, Kek};
use crate::secret::Passphrase;

pub(super) fn kek(kdf: &KdfParams, passphrase: &Passphrase) -> Result<Kek, IntegrityFailure> {
    kdf.derive(passphrase.expose())
}
