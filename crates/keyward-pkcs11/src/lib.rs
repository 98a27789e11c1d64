//! keyward's `pkcs11` slot kind: a slot opened by a PKCS#11 token (an HSM, a smart card, a
//! SoftHSM2 token in tests). The slot's key-encryption key is encrypted with AES-256-GCM by a
//! key that lives in the token and cannot leave it; only the ciphertext is in the keybox.
//!
//! The kind is registered by the program that offers it (`keyward`'s `kinds.rs`); keyward-core
//! knows nothing of it. Its stored parameters are specified in docs/format.md ("pkcs11").

mod slot;
mod token;

pub use slot::{NewPkcs11, PKCS11, Pkcs11Kind, Pkcs11Params};
pub use token::{KeyOrigin, TokenError};
