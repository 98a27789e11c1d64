//! keyward-core: the keybox — one data key K, many independent slots that open it — and the
//! crash-atomic store that keeps it.
//!
//! The contracts every function here keeps: K is never mutated (changes return new copies); a
//! key is checked against its fingerprint before it is handed out; a wrong secret or a damaged
//! file is an error, never a plausible-but-wrong key; secrets are zeroized on drop and never in
//! `Debug` output; every change on disk is old-or-new atomic. This crate knows nothing of
//! terminals, prompts or exit codes: it takes and returns values, and reaches files only through
//! [`store::Fs`].

#![deny(unsafe_code)]
#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]

pub mod aead;
pub mod class;
pub mod encoding;
pub mod error;
pub mod escrow;
pub mod fingerprint;
pub mod kdf;
pub mod keybox;
pub mod memory;
pub mod operations;
pub mod random;
pub mod recovery_code;
pub mod secret;
pub mod shamir;
pub mod slot;
pub mod store;

pub use class::{Classify, ErrorClass};
pub use error::{Error, IntegrityFailure, Result};
pub use fingerprint::{ExpectedFingerprint, Fingerprint};
pub use keybox::{Keybox, UnlockedKeybox};
pub use recovery_code::RecoveryCode;
pub use secret::{DataKey, KeyfileContents, Passphrase};
pub use slot::{NewSlot, SlotId, SlotKind, SlotParams, Unlocker};
pub use store::Store;
