//! Shared test fixtures: cheap KDF parameters and known secrets, so tests can open every slot.

#![allow(dead_code)]

use std::path::Path;

use keyward_core::kdf::KdfParams;
use keyward_core::slot::{NewKeyfile, NewPassphrase, NewRecoveryCode};
use keyward_core::{DataKey, KeyfileContents, Passphrase, RecoveryCode};
use zeroize::Zeroizing;

/// The canary key used across tests: recognisable bytes.
pub const CANARY_KEY: &[u8; 32] = b"CANARY-K-keyward-0123456789abcde";

/// The canary key as a `DataKey`.
pub fn canary_key() -> DataKey {
    DataKey::import(Zeroizing::new(CANARY_KEY.to_vec())).expect("canary key length is valid")
}

/// argon2id at the smallest cost: tests check logic, not strength.
pub fn cheap_kdf() -> KdfParams {
    KdfParams::argon2id(64, 1, 1).expect("cheap params are valid")
}

/// A recovery-code slot secret.
pub fn code_secret(code: &RecoveryCode) -> NewRecoveryCode {
    NewRecoveryCode { code: code.clone(), kdf: cheap_kdf() }
}

/// A passphrase slot secret.
pub fn passphrase_secret(text: &str) -> NewPassphrase {
    NewPassphrase { passphrase: passphrase(text), kdf: cheap_kdf() }
}

/// A passphrase.
pub fn passphrase(text: &str) -> Passphrase {
    Passphrase::new(Zeroizing::new(text.as_bytes().to_vec()))
}

/// Key-file contents.
pub fn keyfile(fill: u8) -> KeyfileContents {
    KeyfileContents::new(Zeroizing::new(vec![fill; 32])).expect("32 bytes is a valid key file")
}

/// A key-file slot secret (no recorded path).
pub fn keyfile_secret(fill: u8) -> NewKeyfile {
    NewKeyfile { contents: keyfile(fill), path: None }
}

/// Where test keyboxes live in a simulated file system.
pub fn sim_path() -> &'static Path {
    Path::new("/sim/keybox.json")
}
