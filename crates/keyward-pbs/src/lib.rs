//! keyward-pbs: Proxmox Backup client key files, byte-compatible with `proxmox-backup-client`.
//!
//! A PBS key file holds the 32-byte key that encrypts a client's backups, either in the clear
//! (`"kdf": null`, the unattended case) or AES-256-GCM-encrypted under a key derived from a
//! passphrase with scrypt or PBKDF2. This crate reads and writes them exactly as the client does
//! (docs/formats/pbs-key.md is the specification), computes the PBS fingerprint, and makes the
//! PBS-native escrow blob: the key file re-keyed to scrypt under a recovery code, which the backup
//! client itself can open with that code.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod crypt;
mod error;
pub mod escrow;
mod fingerprint;
mod key_file;
mod time;

pub use error::PbsError;
pub use fingerprint::{FingerprintKind, KeyFingerprints, pbs_fingerprint};
pub use key_file::{KEY_LEN, PbsKdf, PbsKeyFile};
pub use time::PbsTime;
