//! The `pkcs11` kind: the slot's key-encryption key is a random secret that a non-extractable
//! AES-256 key inside a PKCS#11 token encrypted (AES-GCM); the slot stores only that ciphertext.
//! Opening logs in with the token's PIN and decrypts inside the token — seed 002's "pass the
//! encrypted share to the root of trust for decryption and never reveal the key".
//!
//! A slot that records the path of a PIN file opens unattended; without one the PIN is asked
//! for, as a passphrase would be.

use std::path::Path;

use keyward_core::encoding::base64_bytes;
use keyward_core::kdf::{KEK_LEN, Kek};
use keyward_core::slot::{
    Channel, DeviceError, NewSlot, OpenContext, SealContext, Slot, SlotError, SlotKind, SlotParams,
    Unlocker, typed_params,
};
use keyward_core::{IntegrityFailure, Passphrase, random};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::token::{KeyOrigin, Target, Token};

/// The kind's name.
pub const PKCS11: &str = "pkcs11";

/// AES-GCM nonce length, in bytes.
const NONCE_LEN: usize = 12;
/// The wrapped secret: the KEK and a 16-byte tag.
const WRAPPED_LEN: usize = KEK_LEN + 16;
/// Longest module path kept.
const MAX_PATH: usize = 4096;
/// Longest token label (PKCS#11 pads token labels to 32 bytes).
const MAX_TOKEN_LABEL: usize = 32;
/// Longest key label kept.
const MAX_KEY_LABEL: usize = 128;
/// Longest token serial number (PKCS#11 pads them to 16 bytes).
const MAX_SERIAL: usize = 16;

/// Parameters of a pkcs11 slot (docs/format.md, "pkcs11").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Params {
    /// Absolute path of the PKCS#11 module.
    pub module: String,
    /// The token's label.
    pub token: String,
    /// The token's serial number: a token with the label and another serial is refused. Absent
    /// from slots enrolled before keyward recorded it (checked by label only; rotate the slot
    /// to record it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// The wrapping key's label in the token.
    pub key_label: String,
    /// Absolute path of a file holding the PIN, for unattended unlock; absent if the PIN is
    /// asked for.
    pub pin_file: Option<String>,
    /// The AES-GCM nonce of the wrapped KEK.
    #[serde(with = "base64_bytes")]
    pub nonce: Vec<u8>,
    /// The KEK encrypted by the wrapping key (ciphertext and tag).
    #[serde(with = "base64_bytes")]
    pub wrapped_kek: Vec<u8>,
}

impl Pkcs11Params {
    fn validate(&self) -> Result<(), IntegrityFailure> {
        let bad = |what: &str| IntegrityFailure::Inconsistent(format!("pkcs11 slot {what}"));
        let absolute = |path: &str| path.starts_with('/') && path.len() <= MAX_PATH;
        if !absolute(&self.module) {
            return Err(bad("module path is not absolute"));
        }
        if self.pin_file.as_deref().is_some_and(|path| !absolute(path)) {
            return Err(bad("PIN file path is not absolute"));
        }
        if self.token.is_empty() || self.token.len() > MAX_TOKEN_LABEL {
            return Err(bad("token label is empty or longer than 32 bytes"));
        }
        if self.serial.as_deref().is_some_and(|s| s.is_empty() || s.len() > MAX_SERIAL) {
            return Err(bad("token serial is empty or longer than 16 bytes"));
        }
        if self.key_label.is_empty() || self.key_label.len() > MAX_KEY_LABEL {
            return Err(bad("key label is empty or longer than 128 bytes"));
        }
        if self.nonce.len() != NONCE_LEN || self.wrapped_kek.len() != WRAPPED_LEN {
            return Err(bad("wrapped key has the wrong length"));
        }
        Ok(())
    }

    fn target(&self) -> Target<'_> {
        Target {
            module: &self.module,
            token: &self.token,
            serial: self.serial.as_deref(),
            key_label: &self.key_label,
        }
    }
}

/// The pkcs11 kind.
#[derive(Debug)]
pub struct Pkcs11Kind;

impl SlotKind for Pkcs11Kind {
    fn name(&self) -> &'static str {
        PKCS11
    }

    fn about(&self) -> &'static str {
        "A PKCS#11 token (an HSM, a smart card): a key inside it that never leaves it"
    }

    fn read(&self, params: &Value) -> Result<Box<dyn Slot>, IntegrityFailure> {
        let params: Pkcs11Params = typed_params(PKCS11, params)?;
        params.validate()?;
        Ok(Box::new(params))
    }
}

impl Slot for Pkcs11Params {
    fn channel(&self) -> Channel {
        Channel::Pin
    }

    fn is_unattended(&self) -> bool {
        self.pin_file.is_some()
    }

    // The token checked the PIN before it decrypted the KEK (and its AES-GCM tag held).
    fn kek_is_vouched(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        let pin = match &self.pin_file {
            Some(path) => format!("PIN file {path}"),
            None => "PIN asked at unlock".into(),
        };
        format!("token \"{}\", key \"{}\", {pin} ({})", self.token, self.key_label, self.module)
    }

    fn facts(&self) -> serde_json::Map<String, Value> {
        serde_json::Map::from_iter([
            ("module".to_string(), Value::from(self.module.clone())),
            ("token".to_string(), Value::from(self.token.clone())),
            ("serial".to_string(), Value::from(self.serial.clone())),
            ("key_label".to_string(), Value::from(self.key_label.clone())),
            ("pin_file".to_string(), Value::from(self.pin_file.clone())),
        ])
    }

    fn open(&self, ctx: &mut OpenContext<'_>) -> Result<Option<Kek>, SlotError> {
        // The token first: a missing one (or a look-alike) is said without asking for a PIN.
        let token = Token::find(self.target())?;
        // On its final try, the token's last PIN is not spent on a recorded file (which may be
        // what failed before): only a PIN the person gives now is tried.
        let final_try = token.final_pin_try() && self.pin_file.is_some();
        let recorded = self.pin_file.as_deref().map(Path::new).filter(|_| !final_try);
        let pin = match ctx.want(Channel::Pin, recorded) {
            Ok(Some(Unlocker::Pin(pin))) => pin,
            Ok(_) if !final_try => return Ok(None),
            Err(e) if !final_try => return Err(e),
            Ok(_) | Err(_) => {
                return Err(DeviceError::LockedOut(format!(
                    "token \"{}\" says one more wrong PIN locks it, so keyward does not try the \
                     recorded PIN file; give the PIN yourself (--pin-file F, or at a terminal) \
                     after checking the file, or open another slot",
                    self.token
                ))
                .into());
            }
        };
        token.log_in(pin)?;
        let key = token.existing_key()?;
        let secret = token.decrypt(key, &self.nonce, &self.wrapped_kek)?;
        if secret.len() != KEK_LEN {
            return Err(DeviceError::PolicyMismatch(format!(
                "token \"{}\" gave back a secret of the wrong length",
                self.token
            ))
            .into());
        }
        let mut kek = Zeroizing::new([0u8; KEK_LEN]);
        kek.copy_from_slice(&secret);
        Ok(Some(kek))
    }
}

/// What a new pkcs11 slot uses: the token, its PIN, and where the PIN lives for unattended
/// unlock.
#[derive(Debug)]
pub struct NewPkcs11 {
    /// Absolute path of the PKCS#11 module.
    pub module: String,
    /// The token's label.
    pub token: String,
    /// The wrapping key's label.
    pub key_label: String,
    /// The token's user PIN.
    pub pin: Passphrase,
    /// The absolute path recorded in the slot, so `unlock` reads the PIN without asking.
    pub pin_file: Option<String>,
}

impl NewPkcs11 {
    /// The token by its label: the first found is the one enrolled, and its serial recorded.
    fn target(&self) -> Target<'_> {
        Target {
            module: &self.module,
            token: &self.token,
            serial: None,
            key_label: &self.key_label,
        }
    }

    /// Logs in and makes sure the wrapping key is there, creating it inside the token if it is
    /// not; says which. Done once before sealing, so the caller can tell the person.
    pub fn prepare_key(&self) -> Result<KeyOrigin, SlotError> {
        let token = Token::find(self.target())?;
        token.log_in(&self.pin)?;
        Ok(token.wrapping_key()?.1)
    }
}

impl NewSlot for NewPkcs11 {
    fn kind(&self) -> &'static str {
        PKCS11
    }

    fn seal(&self, _at: &SealContext) -> Result<(SlotParams, Kek), SlotError> {
        let token = Token::find(self.target())?;
        token.log_in(&self.pin)?;
        let key = token.existing_key()?;
        let kek = Zeroizing::new(random::array::<KEK_LEN>()?);
        let nonce = random::array::<NONCE_LEN>()?.to_vec();
        let wrapped_kek = token.encrypt(key, &nonce, kek.as_slice())?;
        let params = Pkcs11Params {
            module: self.module.clone(),
            token: self.token.clone(),
            serial: Some(token.serial().to_string()),
            key_label: self.key_label.clone(),
            pin_file: self.pin_file.clone(),
            nonce,
            wrapped_kek,
        };
        params.validate()?;
        Ok((SlotParams::new(PKCS11, &params)?, kek))
    }

    fn unlocker(&self) -> Unlocker<'_> {
        Unlocker::Pin(&self.pin)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn stored() -> Value {
        json!({
            "module": "/usr/lib/softhsm/libsofthsm2.so",
            "token": "keyward",
            "key_label": "keyward-kek",
            "pin_file": null,
            "nonce": keyward_core::encoding::to_base64(&[1; NONCE_LEN]),
            "wrapped_kek": keyward_core::encoding::to_base64(&[2; WRAPPED_LEN]),
        })
    }

    #[test]
    fn parameters_are_bounded_and_canonical() {
        Pkcs11Kind.read(&stored()).expect("as written");
        let edits: [(&str, Value); 6] = [
            ("module", json!("relative/lib.so")),
            ("pin_file", json!("pin")),
            ("token", json!("")),
            ("token", json!("x".repeat(33))),
            ("nonce", json!(keyward_core::encoding::to_base64(&[1; 8]))),
            ("wrapped_kek", json!(keyward_core::encoding::to_base64(&[2; 32]))),
        ];
        for (field, value) in edits {
            let mut edited = stored();
            edited[field] = value;
            assert!(Pkcs11Kind.read(&edited).is_err(), "{field} edit must be refused");
        }
        let mut extra = stored();
        extra["slot"] = json!(0);
        assert!(Pkcs11Kind.read(&extra).is_err());
    }

    #[test]
    fn a_recorded_pin_file_makes_the_slot_unattended() {
        let slot = Pkcs11Kind.read(&stored()).expect("read");
        assert!(!slot.is_unattended());
        let mut with_file = stored();
        with_file["pin_file"] = json!("/etc/keyward/token.pin");
        assert!(Pkcs11Kind.read(&with_file).expect("read").is_unattended());
    }
}
