//! The passphrase slot: the passphrase's bytes through argon2id, calibrated when the slot is made
//! (see [`crate::kdf::calibrate_argon2id`]) and stored per slot.

use serde_json::Value;

use crate::error::IntegrityFailure;
use crate::kdf::{KdfParams, Kek};
use crate::secret::Passphrase;

use super::kdf_slot::{self, KdfSlot};
use super::{Channel, NewSlot, SealContext, Slot, SlotError, SlotKind, SlotParams, Unlocker};

/// The kind's name.
pub const PASSPHRASE: &str = "passphrase";

/// keyward's own slots use argon2id only; scrypt and PBKDF2 are for foreign formats.
fn validate(kdf: &KdfParams) -> Result<(), IntegrityFailure> {
    if !matches!(kdf, KdfParams::Argon2id { .. }) {
        return Err(IntegrityFailure::KdfOutOfBounds(format!(
            "a passphrase slot uses argon2id, not {}",
            kdf.describe()
        )));
    }
    kdf.validate()
}

/// The passphrase kind.
#[derive(Debug)]
pub struct PassphraseKind;

impl SlotKind for PassphraseKind {
    fn name(&self) -> &'static str {
        PASSPHRASE
    }

    fn about(&self) -> &'static str {
        "A passphrase through argon2id calibrated to --kdf-time-ms"
    }

    fn read(&self, params: &Value) -> Result<Box<dyn Slot>, IntegrityFailure> {
        KdfSlot::read(PASSPHRASE, Channel::Passphrase, params, validate)
    }
}

/// A new passphrase slot: the passphrase and its (calibrated) KDF.
#[derive(Debug)]
pub struct NewPassphrase {
    /// The passphrase.
    pub passphrase: Passphrase,
    /// The KDF, with a fresh salt.
    pub kdf: KdfParams,
}

impl NewSlot for NewPassphrase {
    fn kind(&self) -> &'static str {
        PASSPHRASE
    }

    fn seal(&self, _at: &SealContext) -> Result<(SlotParams, Kek), SlotError> {
        kdf_slot::seal(PASSPHRASE, &self.kdf, validate, self.passphrase.expose())
    }

    fn unlocker(&self) -> Unlocker<'_> {
        Unlocker::Passphrase(&self.passphrase)
    }
}
