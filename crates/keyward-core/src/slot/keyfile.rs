//! The key-file slot: HKDF-SHA256 over the file's contents with a per-slot salt. A key file is
//! meant to be high-entropy (keyward generates 64 random bytes), so no slow KDF is needed.

use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::encoding::base64_bytes;
use crate::error::IntegrityFailure;
use crate::kdf::{KEK_LEN, Kek, SALT_LEN};
use crate::random;
use crate::secret::KeyfileContents;

const KEYFILE_INFO: &[u8] = b"keyward keyfile slot v1";

/// Parameters of a key-file slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyfileParams {
    /// HKDF salt.
    #[serde(with = "base64_bytes")]
    pub salt: Vec<u8>,
    /// Absolute path of the key file, for unattended unlock; absent if it is given each time.
    pub path: Option<String>,
}

impl KeyfileParams {
    pub(super) fn fresh(path: Option<String>) -> crate::Result<Self> {
        Ok(KeyfileParams { salt: random::array::<SALT_LEN>()?.to_vec(), path })
    }

    pub(super) fn validate(&self) -> Result<(), IntegrityFailure> {
        if self.salt.len() != SALT_LEN {
            return Err(IntegrityFailure::Inconsistent(
                "keyfile slot salt has the wrong length".into(),
            ));
        }
        if self.path.as_deref().is_some_and(|p| !p.starts_with('/')) {
            return Err(IntegrityFailure::Inconsistent("keyfile slot path is not absolute".into()));
        }
        Ok(())
    }

    pub(super) fn kek(&self, contents: &KeyfileContents) -> Result<Kek, IntegrityFailure> {
        self.validate()?;
        let mut kek = Zeroizing::new([0u8; KEK_LEN]);
        Hkdf::<Sha256>::new(Some(&self.salt), contents.expose())
            .expand(KEYFILE_INFO, kek.as_mut_slice())
            .map_err(|_| IntegrityFailure::Inconsistent("HKDF output length".into()))?;
        Ok(kek)
    }
}
