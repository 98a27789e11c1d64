//! The plain slot: unattended unlock with no secret at all, like a Proxmox Backup key with
//! `kdf: none`. The KEK is stored in the slot itself, so the keybox file's permissions are the only
//! protection; `list` says so. It still goes through the same AEAD and binding as every slot, so a
//! plain slot cannot be edited or moved to another keybox unnoticed.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::encoding::base64_bytes;
use crate::error::IntegrityFailure;
use crate::kdf::{KEK_LEN, Kek};
use crate::random;

/// Parameters of a plain slot.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlainParams {
    /// The stored key-encryption key.
    #[serde(with = "base64_bytes")]
    pub kek: Vec<u8>,
}

/// The stored KEK opens the slot: it is as secret as K and never printed.
impl std::fmt::Debug for PlainParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlainParams { kek: <redacted> }")
    }
}

impl PlainParams {
    pub(super) fn fresh() -> crate::Result<Self> {
        Ok(PlainParams { kek: random::array::<KEK_LEN>()?.to_vec() })
    }

    pub(super) fn validate(&self) -> Result<(), IntegrityFailure> {
        if self.kek.len() == KEK_LEN {
            Ok(())
        } else {
            Err(IntegrityFailure::Inconsistent("plain slot key has the wrong length".into()))
        }
    }

    pub(super) fn kek(&self) -> Result<Kek, IntegrityFailure> {
        let bytes: [u8; KEK_LEN] = self.kek.as_slice().try_into().map_err(|_| {
            IntegrityFailure::Inconsistent("plain slot key has the wrong length".into())
        })?;
        Ok(Zeroizing::new(bytes))
    }
}
