//! keyward's `tpm2` slot kind: a slot opened by this machine's TPM 2.0. The slot's
//! key-encryption key is sealed under the TPM's storage primary key to a policy of PCR values
//! and, optionally, a PIN (PolicyAuthValue, so wrong PINs count toward the TPM's
//! dictionary-attack lockout); sessions are salted and encrypt the secret on the bus. An NV
//! counter in the same TPM binds the keybox's generation, so an older copy of the file is
//! refused through this slot.
//!
//! The TSS work is done by keyward's tpm2 helper (crate `keyward-tpm2-tss`), a process of its
//! own that [`Tpm`] starts and speaks to over a pipe ([`helper`]): this crate does not link the
//! TSS, so neither does a keyward process that opens no tpm2 slot. A peer checks quotes
//! ([`verify_quote`]) without it.
//!
//! The kind is registered by the program that offers it (`keyward`'s `kinds.rs`). Its stored
//! parameters are specified in docs/format.md ("tpm2").

mod attest;
pub mod helper;
mod quoted;
mod slot;
#[cfg(feature = "test-support")]
pub mod testing;
mod tpm;

pub use attest::{Quote, QuoteError, pcr_digest, verify_quote};
pub use quoted::Quoted;
pub use slot::{NewTpm2, TPM2, Tpm2Kind, Tpm2Params, parse_pcrs, pcr_text};
pub use tpm::{
    Bank, Cause, DEFAULT_DEVICE, DEVICE_VARIABLE, HELPER, Lockout, ResponseCode, Sealed, Tpm,
    TpmFailure, Unreachable, may_use_device, name_device,
};
