//! What the two typed-secret kinds (recovery code, passphrase) share: parameters that are one KDF,
//! a KEK that is that KDF over the secret's bytes, and a slot that asks for its channel.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::error::IntegrityFailure;
use crate::kdf::{KdfParams, Kek};

use super::{Channel, OpenContext, Slot, SlotError, SlotParams, Unlocker, typed_params};

/// The stored parameters of a recovery-code or passphrase slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KdfSlotParams {
    /// The KDF that turns the secret into the KEK.
    kdf: KdfParams,
}

/// A slot whose KEK is a KDF over a typed secret.
#[derive(Debug)]
pub(super) struct KdfSlot {
    channel: Channel,
    kdf: KdfParams,
}

impl KdfSlot {
    /// Reads `params` for `kind`, with the kind's own bounds.
    pub(super) fn read(
        kind: &'static str,
        channel: Channel,
        params: &Value,
        validate: fn(&KdfParams) -> Result<(), IntegrityFailure>,
    ) -> Result<Box<dyn Slot>, IntegrityFailure> {
        let KdfSlotParams { kdf } = typed_params(kind, params)?;
        validate(&kdf)?;
        Ok(Box::new(KdfSlot { channel, kdf }))
    }
}

impl Slot for KdfSlot {
    fn channel(&self) -> Channel {
        self.channel
    }

    fn kdf_work_kib(&self) -> u64 {
        self.kdf.work_kib()
    }

    fn describe(&self) -> String {
        self.kdf.describe()
    }

    fn facts(&self) -> serde_json::Map<String, Value> {
        serde_json::Map::from_iter([("kdf".to_string(), Value::from(self.kdf.describe()))])
    }

    fn open(&self, ctx: &mut OpenContext<'_>) -> Result<Option<Kek>, SlotError> {
        let secret = match ctx.want(self.channel, None)? {
            Some(Unlocker::RecoveryCode(code)) if self.channel == Channel::RecoveryCode => {
                Zeroizing::new(code.canonical().as_bytes().to_vec())
            }
            Some(Unlocker::Passphrase(passphrase)) if self.channel == Channel::Passphrase => {
                Zeroizing::new(passphrase.expose().to_vec())
            }
            _ => return Ok(None),
        };
        Ok(Some(self.kdf.derive(&secret)?))
    }
}

/// The stored parameters and KEK of a new slot of `kind` with `kdf` over `secret`.
pub(super) fn seal(
    kind: &'static str,
    kdf: &KdfParams,
    validate: fn(&KdfParams) -> Result<(), IntegrityFailure>,
    secret: &[u8],
) -> Result<(SlotParams, Kek), SlotError> {
    validate(kdf).map_err(|what| SlotError::Kdf(crate::kdf::KdfError::Params(what)))?;
    let params = SlotParams::new(kind, &KdfSlotParams { kdf: kdf.clone() })?;
    Ok((params, kdf.derive(secret)?))
}
