//! The plain slot: unattended unlock with no secret at all, like a Proxmox Backup key with
//! `kdf: none`. The KEK is stored in the slot itself, so the keybox file's permissions are the only
//! protection; `list` says so. It still goes through the same AEAD and binding as every slot, so a
//! plain slot cannot be edited or moved to another keybox unnoticed.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::encoding::base64_bytes;
use crate::error::IntegrityFailure;
use crate::kdf::{KEK_LEN, Kek};
use crate::random;

use super::{
    Channel, NewSlot, OpenContext, SealContext, Slot, SlotError, SlotKind, SlotParams, Unlocker,
    typed_params,
};

/// The kind's name.
pub const PLAIN: &str = "plain";

/// Parameters of a plain slot.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainParams {
    /// The stored key-encryption key.
    #[serde(with = "base64_bytes")]
    kek: Vec<u8>,
}

/// The stored KEK opens the slot: it is as secret as K and never printed.
impl std::fmt::Debug for PlainParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlainParams { kek: <redacted> }")
    }
}

impl PlainParams {
    fn kek(&self) -> Result<Kek, IntegrityFailure> {
        let bytes: [u8; KEK_LEN] = self.kek.as_slice().try_into().map_err(|_| {
            IntegrityFailure::Inconsistent("plain slot key has the wrong length".into())
        })?;
        Ok(Zeroizing::new(bytes))
    }
}

/// The plain kind.
#[derive(Debug)]
pub struct PlainKind;

impl SlotKind for PlainKind {
    fn name(&self) -> &'static str {
        PLAIN
    }

    fn about(&self) -> &'static str {
        "Unattended: protected by file permissions only"
    }

    fn read(&self, params: &Value) -> Result<Box<dyn Slot>, IntegrityFailure> {
        let params: PlainParams = typed_params(PLAIN, params)?;
        params.kek()?;
        Ok(Box::new(params))
    }
}

impl Slot for PlainParams {
    fn channel(&self) -> Channel {
        Channel::Nothing
    }

    fn is_unattended(&self) -> bool {
        true
    }

    fn file_is_the_secret(&self) -> bool {
        true
    }

    // The KEK is in the record itself.
    fn kek_is_vouched(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        "UNATTENDED: anyone who can read the keybox file can read the key".into()
    }

    fn open(&self, ctx: &mut OpenContext<'_>) -> Result<Option<Kek>, SlotError> {
        match ctx.want(Channel::Nothing, None)? {
            Some(Unlocker::Unattended) => Ok(Some(self.kek()?)),
            _ => Ok(None),
        }
    }
}

/// A new plain slot (its KEK is drawn when it is sealed).
#[derive(Debug, Clone, Copy)]
pub struct NewPlain;

impl NewSlot for NewPlain {
    fn kind(&self) -> &'static str {
        PLAIN
    }

    fn seal(&self, _at: &SealContext) -> Result<(SlotParams, Kek), SlotError> {
        let params = PlainParams { kek: random::array::<KEK_LEN>()?.to_vec() };
        let kek = params.kek()?;
        Ok((SlotParams::new(PLAIN, &params)?, kek))
    }

    fn unlocker(&self) -> Unlocker<'_> {
        Unlocker::Unattended
    }
}
