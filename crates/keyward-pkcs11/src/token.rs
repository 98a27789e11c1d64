//! The token side: load a PKCS#11 module, find a token by label, log in, find or create the
//! wrapping key, and encrypt or decrypt a slot's secret with it — inside the token, so the
//! wrapping key never leaves it. Every PKCS#11 failure becomes a [`DeviceError`] the CLI maps to
//! an exit code (absent 8, locked out 9, a wrong PIN or an unfit key 3), or a [`TokenError`].

use std::path::Path;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::RawAuthPin;
use keyward_core::Passphrase;
use keyward_core::slot::{DeviceError, SlotError};
use secrecy::SecretBox;
use zeroize::Zeroizing;

/// Length of the wrapping key, in bytes (AES-256).
const WRAPPING_KEY_LEN: u64 = 32;
/// AES-GCM tag length, in bits.
const TAG_BITS: u64 = 128;
/// Associated data of every encryption: a slot's wrapped secret is for nothing else.
const AAD: &[u8] = b"keyward pkcs11 slot v1";

/// Which token and key a slot uses.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The PKCS#11 module (a shared library).
    pub module: &'a str,
    /// The token's label.
    pub token: &'a str,
    /// The token's serial number, when the slot recorded it: a token with the same label and
    /// another serial (a look-alike) is never given the PIN.
    pub serial: Option<&'a str>,
    /// The wrapping key's label.
    pub key_label: &'a str,
}

/// A failure of the token that is not one of the device family: the CLI reports it as an
/// internal error, with PKCS#11's own words.
#[derive(Debug, thiserror::Error)]
#[error("token \"{token}\": {what}: {source}")]
pub struct TokenError {
    token: String,
    what: &'static str,
    #[source]
    source: CkError,
}

impl TokenError {
    /// A token failure outside the device family: the token failing unexpectedly.
    pub fn class(&self) -> keyward_core::ErrorClass {
        keyward_core::ErrorClass::Internal
    }
}

keyward_core::classify_by_method!(TokenError);

/// Whether [`Token::wrapping_key`] found the key or made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrigin {
    /// It was in the token already (and is fit to wrap: AES-256, sensitive, not extractable).
    Existing,
    /// It was created now, inside the token.
    Created,
}

/// A logged-in session on one token.
pub struct Token<'a> {
    target: Target<'a>,
    /// Its serial number.
    serial: String,
    /// Whether it says the next wrong PIN locks it (CKF_USER_PIN_FINAL_TRY).
    final_pin_try: bool,
    /// Dropped before the module is finalised (a field order the `Drop` below relies on).
    session: Option<Session>,
    module: Pkcs11,
}

impl<'a> Token<'a> {
    /// Loads the module and opens a session on the token labelled `target.token`; nothing is
    /// asked yet, so a missing module or token is said before a PIN is prompted for.
    pub fn find(target: Target<'a>) -> Result<Self, SlotError> {
        if !Path::new(target.module).exists() {
            return Err(DeviceError::Absent(format!(
                "PKCS#11 module {} not found (install the token's module, or pass --module)",
                target.module
            ))
            .into());
        }
        check_module(Path::new(target.module))?;
        let module = Pkcs11::new(target.module).map_err(|e| {
            DeviceError::Absent(format!("cannot load PKCS#11 module {}: {e}", target.module))
        })?;
        match module.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            // Another part of this process uses the module already: that is fine.
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(fail(&target, "cannot initialise the module", e)),
        }
        let slots = module
            .get_slots_with_token()
            .map_err(|e| fail(&target, "cannot list the module's tokens", e))?;
        // The token with the label, and the serial if the slot recorded one; the serials of
        // tokens with the label but another serial, to name them.
        let mut found = None;
        let mut look_alikes = Vec::new();
        for slot in slots {
            let info =
                module.get_token_info(slot).map_err(|e| fail(&target, "cannot read a token", e))?;
            if info.label().trim_end() != target.token {
                continue;
            }
            let serial = info.serial_number().trim_end().to_string();
            if target.serial.is_none_or(|recorded| recorded == serial) {
                found = Some((slot, serial, info));
                break;
            }
            look_alikes.push(serial);
        }
        let Some((slot, serial, info)) = found else {
            return Err(match (target.serial, look_alikes.as_slice()) {
                (Some(recorded), [_, ..]) => DeviceError::Absent(format!(
                    "token \"{}\" in PKCS#11 module {} has serial {}, not {recorded}, the one this \
                     slot was enrolled with: another token with the same label, refused (its PIN \
                     is not sent); plug in the token enrolled, or open another slot",
                    target.token,
                    target.module,
                    look_alikes.join(", ")
                )),
                _ => DeviceError::Absent(format!(
                    "no token labelled \"{}\" in PKCS#11 module {} (is it plugged in?)",
                    target.token, target.module
                )),
            }
            .into());
        };
        if info.user_pin_locked() {
            return Err(locked(&target));
        }
        let session =
            module.open_rw_session(slot).map_err(|e| fail(&target, "cannot open a session", e))?;
        Ok(Token {
            target,
            serial,
            final_pin_try: info.user_pin_final_try(),
            session: Some(session),
            module,
        })
    }

    /// The token's serial number (recorded in a new slot).
    pub fn serial(&self) -> &str {
        &self.serial
    }

    /// Whether the token says the next wrong PIN locks it.
    pub fn final_pin_try(&self) -> bool {
        self.final_pin_try
    }

    /// Logs in as the token's user. A wrong PIN counts against the token's retry limit, as it
    /// would with any other program.
    pub fn log_in(&self, pin: &Passphrase) -> Result<(), SlotError> {
        let pin: RawAuthPin = SecretBox::new(Box::new(pin.expose().to_vec()));
        match self.session()?.login_with_raw(UserType::User, &pin) {
            Ok(()) => Ok(()),
            Err(CkError::Pkcs11(RvError::PinIncorrect | RvError::PinLenRange, _)) => {
                Err(DeviceError::PolicyMismatch(format!(
                    "wrong PIN for token \"{}\"; check it and run again (each wrong PIN counts \
                     toward the token's lockout)",
                    self.target.token
                ))
                .into())
            }
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => Err(locked(&self.target)),
            Err(e) => Err(fail(&self.target, "cannot log in", e)),
        }
    }

    /// The wrapping key, which must be there already.
    pub fn existing_key(&self) -> Result<ObjectHandle, SlotError> {
        self.find_key()?.ok_or_else(|| {
            DeviceError::Absent(format!(
                "token \"{}\" has no key labelled \"{}\" (was the token re-initialised?)",
                self.target.token, self.target.key_label
            ))
            .into()
        })
    }

    /// The wrapping key: the existing one if it is fit to wrap, else a new one made inside the
    /// token (AES-256, sensitive, never extractable, for encrypt and decrypt only).
    pub fn wrapping_key(&self) -> Result<(ObjectHandle, KeyOrigin), SlotError> {
        if let Some(key) = self.find_key()? {
            return Ok((key, KeyOrigin::Existing));
        }
        let label = self.target.key_label.as_bytes().to_vec();
        let template = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::Wrap(false),
            Attribute::Unwrap(false),
            Attribute::Sign(false),
            Attribute::Verify(false),
            Attribute::Derive(false),
            Attribute::ValueLen(WRAPPING_KEY_LEN.into()),
            Attribute::Label(label),
        ];
        let key = self
            .session()?
            .generate_key(&Mechanism::AesKeyGen, &template)
            .map_err(|e| fail(&self.target, "cannot create the wrapping key", e))?;
        Ok((key, KeyOrigin::Created))
    }

    /// Encrypts `secret` under `key` with AES-GCM inside the token.
    pub fn encrypt(
        &self,
        key: ObjectHandle,
        nonce: &[u8],
        secret: &[u8],
    ) -> Result<Vec<u8>, SlotError> {
        let mut nonce = nonce.to_vec();
        let params = GcmParams::new(&mut nonce, AAD, TAG_BITS.into())
            .map_err(|e| fail(&self.target, "AES-GCM parameters", e))?;
        self.session()?
            .encrypt(&Mechanism::AesGcm(params), key, secret)
            .map_err(|e| fail(&self.target, "cannot encrypt with the wrapping key", e))
    }

    /// Decrypts a slot's wrapped secret inside the token. A failure to authenticate means the key
    /// under this label is not the one the slot was sealed with.
    pub fn decrypt(
        &self,
        key: ObjectHandle,
        nonce: &[u8],
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SlotError> {
        let mut nonce = nonce.to_vec();
        let params = GcmParams::new(&mut nonce, AAD, TAG_BITS.into())
            .map_err(|e| fail(&self.target, "AES-GCM parameters", e))?;
        match self.session()?.decrypt(&Mechanism::AesGcm(params), key, wrapped) {
            Ok(secret) => Ok(Zeroizing::new(secret)),
            Err(CkError::Pkcs11(
                RvError::EncryptedDataInvalid
                | RvError::EncryptedDataLenRange
                | RvError::FunctionFailed
                | RvError::GeneralError,
                _,
            )) => Err(SlotError::Params(keyward_core::IntegrityFailure::Inconsistent(format!(
                "token \"{}\" does not open this pkcs11 slot's wrapped key with its key labelled \
                 \"{}\": the slot's record was changed, or the key was replaced",
                self.target.token, self.target.key_label
            )))),
            Err(e) => Err(fail(&self.target, "cannot decrypt with the wrapping key", e)),
        }
    }

    /// The one AES secret key labelled `key_label`, checked fit to wrap; `None` if there is none.
    fn find_key(&self) -> Result<Option<ObjectHandle>, SlotError> {
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Label(self.target.key_label.as_bytes().to_vec()),
        ];
        let session = self.session()?;
        let found = session
            .find_objects(&template)
            .map_err(|e| fail(&self.target, "cannot search for the wrapping key", e))?;
        let key = match found.as_slice() {
            [] => return Ok(None),
            [key] => *key,
            more => {
                return Err(DeviceError::PolicyMismatch(format!(
                    "token \"{}\" holds {} keys labelled \"{}\"; give the one keyward should use a \
                     label of its own",
                    self.target.token,
                    more.len(),
                    self.target.key_label
                ))
                .into());
            }
        };
        // Sensitive and never extractable since it was made (not imported with a known value),
        // a token object, usable only after the PIN.
        let wanted = [
            AttributeType::ValueLen,
            AttributeType::Sensitive,
            AttributeType::AlwaysSensitive,
            AttributeType::Extractable,
            AttributeType::NeverExtractable,
            AttributeType::Private,
            AttributeType::Token,
            AttributeType::Encrypt,
            AttributeType::Decrypt,
        ];
        let attributes = session
            .get_attributes(key, &wanted)
            .map_err(|e| fail(&self.target, "cannot read the wrapping key's attributes", e))?;
        let mut fit = attributes.len() == wanted.len();
        for attribute in &attributes {
            fit &= match attribute {
                Attribute::ValueLen(len) => u64::from(*len) == WRAPPING_KEY_LEN,
                Attribute::Sensitive(yes)
                | Attribute::AlwaysSensitive(yes)
                | Attribute::NeverExtractable(yes)
                | Attribute::Private(yes)
                | Attribute::Token(yes)
                | Attribute::Encrypt(yes)
                | Attribute::Decrypt(yes) => *yes,
                Attribute::Extractable(yes) => !*yes,
                _ => false,
            };
        }
        if !fit {
            return Err(DeviceError::PolicyMismatch(format!(
                "the key labelled \"{}\" in token \"{}\" is not fit to wrap: keyward needs an \
                 AES-256 token key, private, made sensitive and never extractable, that may encrypt \
                 and decrypt; \
                 choose another --key-label and keyward creates one",
                self.target.key_label, self.target.token
            ))
            .into());
        }
        Ok(Some(key))
    }

    fn session(&self) -> Result<&Session, SlotError> {
        self.session.as_ref().ok_or_else(|| {
            DeviceError::Absent(format!("no session on token \"{}\"", self.target.token)).into()
        })
    }
}

impl Drop for Token<'_> {
    fn drop(&mut self) {
        // Sessions first, then the module, so the next `find` in this process starts afresh.
        self.session = None;
        let _ = self.module.clone().finalize();
    }
}

/// Refuses to load a module (code that runs in this process) that someone other than root or
/// this user could have put there: the module file and its folder must be owned by one of them
/// and writable by nobody else. The path comes from a slot record not yet known to be genuine
/// when a slot is opened (the MAC is checked after), so this is what stands between an edited
/// keybox and code execution.
fn check_module(path: &Path) -> Result<(), SlotError> {
    use std::os::unix::fs::MetadataExt;
    let io = |e| SlotError::from(keyward_core::Error::io("cannot inspect", path, e));
    let real = std::fs::canonicalize(path).map_err(io)?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    for checked in [Some(real.as_path()), real.parent()].into_iter().flatten() {
        let facts = std::fs::metadata(checked).map_err(io)?;
        let problem = if facts.uid() != 0 && facts.uid() != me {
            Some("owned by another user, and keyward would run its code")
        } else if facts.mode() & 0o022 != 0 {
            Some("writable by other users, and keyward would run its code")
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(keyward_core::Error::InsecurePermissions {
                path: checked.to_path_buf(),
                problem,
                fix: format!("chmod go-w {0} (and chown it to root)", checked.display()),
            }
            .into());
        }
    }
    Ok(())
}

fn locked(target: &Target<'_>) -> SlotError {
    DeviceError::LockedOut(format!(
        "the user PIN of token \"{}\" is locked after too many wrong PINs; the token's security \
         officer must unlock it (or open another slot)",
        target.token
    ))
    .into()
}

/// A PKCS#11 failure: the device family where it is one, else the token's own words.
fn fail(target: &Target<'_>, what: &'static str, error: CkError) -> SlotError {
    match error {
        CkError::Pkcs11(RvError::TokenNotPresent | RvError::DeviceRemoved, _) => {
            DeviceError::Absent(format!("token \"{}\" was removed ({what})", target.token)).into()
        }
        CkError::Pkcs11(RvError::PinLocked, _) => locked(target),
        CkError::Pkcs11(RvError::DeviceError | RvError::DeviceMemory, _) => {
            DeviceError::Busy(format!("token \"{}\" failed: {what}: {error}", target.token)).into()
        }
        source => {
            SlotError::Other(Box::new(TokenError { token: target.token.to_string(), what, source }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target<'static> {
        Target { module: "/m.so", token: "t", serial: None, key_label: "k" }
    }

    #[test]
    fn pkcs11_failures_map_to_the_device_family() {
        let rv = |rv| CkError::Pkcs11(rv, cryptoki::context::Function::Login);
        let device = |e: SlotError| match e {
            SlotError::Device(d) => Some(d),
            _ => None,
        };
        assert!(matches!(
            device(fail(&target(), "x", rv(RvError::TokenNotPresent))),
            Some(DeviceError::Absent(_))
        ));
        assert!(matches!(
            device(fail(&target(), "x", rv(RvError::PinLocked))),
            Some(DeviceError::LockedOut(_))
        ));
        assert!(device(fail(&target(), "x", rv(RvError::MechanismInvalid))).is_none());
    }

    #[test]
    fn a_missing_module_is_absent_and_named() {
        let error = Token::find(target()).err().expect("no such module");
        match error {
            SlotError::Device(DeviceError::Absent(text)) => {
                assert!(text.contains("/m.so"), "{text}")
            }
            other => panic!("{other:?}"),
        }
    }
}
