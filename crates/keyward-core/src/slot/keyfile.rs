//! The key-file slot: HKDF-SHA256 over the file's contents with a per-slot salt. A key file is
//! meant to be high-entropy (keyward generates 64 random bytes), so no slow KDF is needed. A slot
//! that records the file's path opens unattended.

use std::path::Path;

use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::encoding::base64_bytes;
use crate::error::IntegrityFailure;
use crate::kdf::{KEK_LEN, Kek, SALT_LEN};
use crate::random;
use crate::secret::KeyfileContents;

use super::{
    Channel, NewSlot, OpenContext, SealContext, Slot, SlotError, SlotKind, SlotParams, Unlocker,
    typed_params,
};

/// The kind's name.
pub const KEYFILE: &str = "keyfile";

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
    fn validate(&self) -> Result<(), IntegrityFailure> {
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

    fn kek(&self, contents: &KeyfileContents) -> Result<Kek, IntegrityFailure> {
        let mut kek = Zeroizing::new([0u8; KEK_LEN]);
        Hkdf::<Sha256>::new(Some(&self.salt), contents.expose())
            .expand(KEYFILE_INFO, kek.as_mut_slice())
            .map_err(|_| IntegrityFailure::Inconsistent("HKDF output length".into()))?;
        Ok(kek)
    }
}

/// The key-file kind.
#[derive(Debug)]
pub struct KeyfileKind;

impl SlotKind for KeyfileKind {
    fn name(&self) -> &'static str {
        KEYFILE
    }

    fn about(&self) -> &'static str {
        "The contents of a key file (an existing file, or a new random one)"
    }

    fn read(&self, params: &Value) -> Result<Box<dyn Slot>, IntegrityFailure> {
        let params: KeyfileParams = typed_params(KEYFILE, params)?;
        params.validate()?;
        Ok(Box::new(params))
    }
}

impl Slot for KeyfileParams {
    fn channel(&self) -> Channel {
        Channel::KeyFile
    }

    fn is_unattended(&self) -> bool {
        self.path.is_some()
    }

    fn describe(&self) -> String {
        match &self.path {
            Some(path) => format!("hkdf-sha256, key file {path}"),
            None => "hkdf-sha256, key file given at unlock".into(),
        }
    }

    fn facts(&self) -> serde_json::Map<String, Value> {
        serde_json::Map::from_iter([("keyfile_path".to_string(), Value::from(self.path.clone()))])
    }

    fn open(&self, ctx: &mut OpenContext<'_>) -> Result<Option<Kek>, SlotError> {
        let recorded = self.path.as_deref().map(Path::new);
        let Some(Unlocker::Keyfile(contents)) = ctx.want(Channel::KeyFile, recorded)? else {
            return Ok(None);
        };
        Ok(Some(self.kek(contents)?))
    }
}

/// A new key-file slot: the file's contents and, for unattended use, where the file lives.
#[derive(Debug)]
pub struct NewKeyfile {
    /// The file's contents.
    pub contents: KeyfileContents,
    /// The absolute path recorded in the slot, so `unlock` can read it without being told.
    pub path: Option<String>,
}

impl NewSlot for NewKeyfile {
    fn kind(&self) -> &'static str {
        KEYFILE
    }

    fn seal(&self, _at: &SealContext) -> Result<(SlotParams, Kek), SlotError> {
        let params =
            KeyfileParams { salt: random::array::<SALT_LEN>()?.to_vec(), path: self.path.clone() };
        params.validate()?;
        let kek = params.kek(&self.contents)?;
        Ok((SlotParams::new(KEYFILE, &params)?, kek))
    }

    fn unlocker(&self) -> Unlocker<'_> {
        Unlocker::Keyfile(&self.contents)
    }
}
