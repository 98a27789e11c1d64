//! Slots: independent ways to open one keybox. Each slot stores K wrapped under its own
//! key-encryption key (KEK); the kinds differ only in where the KEK comes from.
//!
//! The seam is two traits, after age's `Identity` joint:
//! - a [`SlotKind`] reads a slot's stored parameters (bounded, canonical) into a [`Slot`];
//! - a [`Slot`] opens: it asks the caller's [`SecretSource`] for what it needs (a passphrase, a
//!   key file, a PIN, a companion file), may do its own I/O (a device, the network), and answers
//!   "nothing here opens me" (`Ok(None)`), "I could not reach my device" ([`SlotError::Device`]),
//!   or a KEK to try.
//!
//! A new slot is made by a [`NewSlot`]. The keybox, the store and the commands work through these
//! traits only; the kinds live in their own modules (here) or crates, and are found by name in
//! the [`registry`]. A kind the registry does not know is kept byte for byte and skipped.

mod kdf_slot;
mod keyfile;
mod passphrase;
mod plain;
mod recovery_code;
pub mod registry;
mod retire;
mod source;

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::class::{Classify, ErrorClass};
use crate::error::IntegrityFailure;
use crate::kdf::{KdfError, Kek};

pub use keyfile::{KEYFILE, KeyfileKind, KeyfileParams, NewKeyfile};
pub use passphrase::{NewPassphrase, PASSPHRASE, PassphraseKind};
pub use plain::{NewPlain, PLAIN, PlainKind};
pub use recovery_code::{
    NewRecoveryCode, RECOVERY_CODE, RecoveryCodeKind, default_recovery_code_kdf,
};
pub use retire::{Dropped, RetireStage, Retirement};
pub use source::{Channel, Companion, OpenContext, OpenPurpose, SecretSource, Unlocker, Want};

/// A slot's number inside its keybox. Never reused within a keybox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SlotId(pub u32);

impl fmt::Display for SlotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A slot's kind and its parameters exactly as stored (`{"kind": …, "params": …}`). Bound into the
/// slot's AEAD associated data and covered by the header MAC, so weakening a parameter (a cheaper
/// KDF, another salt) makes the slot fail to open. Kept as JSON so that a kind this build does not
/// know survives a rewrite of the keybox unchanged.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotParams {
    /// The kind's name (`passphrase`, `tpm2`, …).
    pub kind: String,
    /// The kind's own parameters.
    pub params: Value,
}

/// Parameters may hold a stored KEK (a plain slot's): only the kind is printed.
impl fmt::Debug for SlotParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlotParams").field("kind", &self.kind).finish_non_exhaustive()
    }
}

impl SlotParams {
    /// Parameters of `kind` from a kind's typed parameter struct.
    pub fn new(kind: &str, params: &impl Serialize) -> Result<Self, IntegrityFailure> {
        let params = serde_json::to_value(params)
            .map_err(|e| IntegrityFailure::Inconsistent(format!("{kind} slot parameters: {e}")))?;
        Ok(SlotParams { kind: kind.to_string(), params })
    }

    /// Reads the parameters through their kind: `Ok(None)` for a kind this build does not know.
    /// (A keybox reads each slot once, when it is parsed: see `Keybox::read_slots`.)
    pub fn read(&self) -> Result<Option<Box<dyn Slot>>, IntegrityFailure> {
        registry::find(&self.kind).map(|kind| kind.read(&self.params)).transpose()
    }
}

/// One kind of slot, registered by name in the [`registry`].
pub trait SlotKind: Send + Sync + 'static {
    /// The name written in files and on the command line (`recovery-code`).
    fn name(&self) -> &'static str;

    /// One line for `--help`: what the kind is.
    fn about(&self) -> &'static str;

    /// Reads a slot's stored parameters: their shape, their bounds, and that they are exactly what
    /// this kind would write (anything else is damage or an edit: an integrity failure).
    fn read(&self, params: &Value) -> Result<Box<dyn Slot>, IntegrityFailure>;
}

/// One slot's parameters, read by its kind: how it opens and how it is shown.
pub trait Slot: fmt::Debug + Send + Sync {
    /// What the slot is opened with.
    fn channel(&self) -> Channel;

    /// Whether it opens with nobody there: no prompt, no file option (a plain slot, a key file at
    /// a recorded path, a TPM without a PIN).
    fn is_unattended(&self) -> bool {
        false
    }

    /// Whether reading the keybox file is enough to read K (a plain slot): the store then insists
    /// on a file nobody else can read, and `list` warns.
    fn file_is_the_secret(&self) -> bool {
        false
    }

    /// Whether a KEK this slot gives is known good before it is tried: it comes from the slot's
    /// record itself (a plain slot), from a device that checked its own secret first (a TPM, a
    /// token), or from K (the peers'). Such a KEK that does not open the wrapped key means the
    /// record was changed — an integrity failure, not a wrong secret given.
    fn kek_is_vouched(&self) -> bool {
        false
    }

    /// KDF work one attempt on this slot costs, in KiB × passes (bounded keybox-wide).
    fn kdf_work_kib(&self) -> u64 {
        0
    }

    /// A one-line description for `list`.
    fn describe(&self) -> String;

    /// The slot's public facts for `list --json`, beyond kind and description.
    fn facts(&self) -> serde_json::Map<String, Value> {
        serde_json::Map::new()
    }

    /// The KEK to try on the slot's wrapped key. `Ok(None)`: nothing at hand opens this slot (no
    /// secret of its channel given, a key file not present), so the next slot is tried.
    fn open(&self, ctx: &mut OpenContext<'_>) -> Result<Option<Kek>, SlotError>;

    /// Called once the keybox opened through this slot and its header MAC held, with the
    /// keybox's generation: a TPM slot moves its rollback counter up to it here, never before
    /// the file is known to be genuine.
    fn opened(&self, _generation: u64) -> Result<(), SlotError> {
        Ok(())
    }

    /// Called when a commit drops this slot (removes it, or replaces its parameters: a rotate, a
    /// reseal), once before the commit and once after it ([`RetireStage`]). A kind that keeps
    /// state outside the keybox retires it here, so that a copy of an older keybox file cannot
    /// open through that state (a TPM counter moved past it) and nothing is left behind (shares
    /// at peers). The record is genuine: the keybox it came from opened and its MAC held.
    fn retire(&self, _at: &mut Retirement<'_>) -> Result<(), SlotError> {
        Ok(())
    }
}

/// Where a new slot is sealed.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct SealContext<'a> {
    /// The keybox generation the slot is committed in (a TPM slot binds it to a counter).
    pub generation: u64,
    /// The parameters of the slot this one replaces (a rotate, a reseal), as the current file
    /// holds them, MAC-checked: a TPM slot keeps its counter and moves it past that file.
    pub replacing: Option<&'a SlotParams>,
}

impl<'a> SealContext<'a> {
    /// The context of a new slot committed in `generation`.
    pub fn new(generation: u64) -> Self {
        SealContext { generation, replacing: None }
    }

    /// The context of a slot committed in `generation` in place of one with `old` parameters.
    pub fn replacing(generation: u64, old: &'a SlotParams) -> Self {
        SealContext { generation, replacing: Some(old) }
    }
}

/// A slot being created or rotated: its secret, ready to seal K under.
pub trait NewSlot: fmt::Debug {
    /// The kind's name.
    fn kind(&self) -> &'static str;

    /// The stored parameters (fresh salts, a sealed object) and the KEK they give. May do device
    /// I/O; called once per slot written.
    fn seal(&self, at: &SealContext<'_>) -> Result<(SlotParams, Kek), SlotError>;

    /// Something that opens the new slot, for the self-check before anything is committed.
    fn unlocker(&self) -> Unlocker<'_>;
}

/// Why a device (a TPM, a token, a set of peers) could not be used. The CLI maps each to one exit
/// code: absent and busy 8, locked out 9, policy mismatch 3.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// Not there: no device node, no module, no token, peers unreachable.
    #[error("{0}")]
    Absent(String),
    /// There, but in use or not answering in time.
    #[error("{0}")]
    Busy(String),
    /// It refuses every attempt for now: dictionary-attack lockout, a locked PIN, a peer's
    /// policy.
    #[error("{0}")]
    LockedOut(String),
    /// It answered, but its state does not satisfy the slot's policy (PCRs changed, a wrong PIN).
    #[error("{0}")]
    PolicyMismatch(String),
}

/// Why a slot could not give its KEK.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SlotError {
    /// The slot's device could not be used.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// The slot's stored parameters are damaged or out of bounds.
    #[error("{0}")]
    Params(IntegrityFailure),
    /// The KDF could not run (its memory), or its parameters are out of bounds.
    #[error(transparent)]
    Kdf(#[from] KdfError),
    /// A keyward error from the secret source or the kind (a file that cannot be read, a code
    /// that is not valid).
    #[error(transparent)]
    Core(Box<crate::Error>),
    /// Another failure of the kind's own (a peer protocol error), which knows its class.
    #[error("{0}")]
    Other(Box<dyn Classify>),
}

impl SlotError {
    /// Which kind of failure it is.
    pub fn class(&self) -> ErrorClass {
        match self {
            SlotError::Device(e) => e.class(),
            SlotError::Params(_) => ErrorClass::Integrity,
            SlotError::Kdf(e) => e.class(),
            SlotError::Core(e) => e.class(),
            SlotError::Other(e) => e.class(),
        }
    }
}

impl DeviceError {
    /// Which kind of failure it is: a device not there or busy is unavailable, one that locks
    /// us out a refusal, one whose state does not satisfy the slot's policy (changed PCRs, a
    /// wrong PIN) an authentication failure.
    pub fn class(&self) -> ErrorClass {
        match self {
            DeviceError::Absent(_) | DeviceError::Busy(_) => ErrorClass::Unavailable,
            DeviceError::LockedOut(_) => ErrorClass::Refused,
            DeviceError::PolicyMismatch(_) => ErrorClass::AuthenticationFailed,
        }
    }
}

impl From<IntegrityFailure> for SlotError {
    fn from(what: IntegrityFailure) -> Self {
        SlotError::Params(what)
    }
}

impl From<crate::Error> for SlotError {
    fn from(error: crate::Error) -> Self {
        SlotError::Core(Box::new(error))
    }
}

/// Reads `params` into a kind's typed parameters, refusing unknown fields and anything that is
/// not exactly what the kind writes back (a missing optional field, an integer written as a
/// float): the file's canonical-form rule, applied to each slot.
pub fn typed_params<T: Serialize + serde::de::DeserializeOwned>(
    kind: &str,
    params: &Value,
) -> Result<T, IntegrityFailure> {
    let bad = |e: String| IntegrityFailure::Inconsistent(format!("{kind} slot parameters: {e}"));
    let typed: T = serde_json::from_value(params.clone()).map_err(|e| bad(e.to_string()))?;
    let rewritten = serde_json::to_vec(&typed).map_err(|e| bad(e.to_string()))?;
    // Bytes, not values: two JSON objects with their fields in another order are equal values.
    if rewritten != serde_json::to_vec(params).unwrap_or_default() {
        return Err(bad("not in canonical form".into()));
    }
    Ok(typed)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parameters_must_be_exactly_what_their_kind_writes() {
        let salt = crate::encoding::to_base64(&[1u8; crate::kdf::SALT_LEN]);
        let kind = registry::find(KEYFILE).expect("a core kind");
        kind.read(&json!({ "salt": salt, "path": null })).expect("as written");
        for edited in [
            json!({ "salt": salt }),
            json!({ "path": null, "salt": salt }),
            json!({ "salt": salt, "path": null, "extra": 1 }),
            json!({ "salt": salt, "path": "relative/key" }),
        ] {
            assert!(kind.read(&edited).is_err(), "{edited} must be refused");
        }
    }

    #[test]
    fn a_kind_is_found_by_name_and_an_unknown_one_is_not() {
        for name in [RECOVERY_CODE, PASSPHRASE, KEYFILE, PLAIN] {
            assert_eq!(registry::find(name).map(|k| k.name()), Some(name));
        }
        let unknown = SlotParams { kind: "fido2".into(), params: json!({ "any": [1, 2] }) };
        assert!(matches!(unknown.read(), Ok(None)));
    }

    #[test]
    fn a_second_registration_must_be_the_same_list() {
        #[derive(Debug)]
        struct Extra(&'static str);
        impl SlotKind for Extra {
            fn name(&self) -> &'static str {
                self.0
            }
            fn about(&self) -> &'static str {
                "a test kind"
            }
            fn read(&self, _: &Value) -> Result<Box<dyn Slot>, IntegrityFailure> {
                Err(IntegrityFailure::Inconsistent("never read".into()))
            }
        }
        static ONE: &[&dyn SlotKind] = &[&Extra("extra-one")];
        static TWO: &[&dyn SlotKind] = &[&Extra("extra-two")];
        registry::register(ONE).expect("first");
        registry::register(ONE).expect("the same again");
        assert!(registry::register(TWO).is_err());
        assert!(registry::find("extra-one").is_some() && registry::find("extra-two").is_none());
    }

    #[test]
    fn plain_parameters_are_never_printed() {
        let (params, _) = NewPlain.seal(&SealContext::new(1)).expect("seal");
        let shown = format!("{params:?}");
        let kek = params.params["kek"].as_str().expect("kek");
        assert!(!shown.contains(kek), "{shown}");
    }
}
