//! keyward on LUKS2: a volume keyslot whose passphrase is derived from the data key K, so every
//! slot that opens the keybox opens the volume, and a `keyward` token in the header that names
//! the keyslot and is also the journal of its crash-safe, resumable rotation.
//!
//! - [`volume`]: the volume through libcryptsetup, one call per change, made by keyward's LUKS2
//!   helper in a process of its own ([`helper`], crate `keyward-luks-cryptsetup`): this crate
//!   does not link libcryptsetup;
//! - [`header`] and [`token`]: what keyward reads of the header, and its token's format;
//! - [`journal`]: which state a stopped command left (a pure function of the header);
//! - [`workflow`]: the commands (enroll, rotate, passphrase, remove, add-passphrase), each
//!   settling the journal first;
//! - [`backup`]: header backup and restore, refusing another volume's backup and any device
//!   that holds something else ([`probe`]);
//! - [`escrow`]: a header backup sealed under K for the escrow hub.
//!
//! Formats: docs/formats/luks2-token.md, docs/formats/luks2-header-escrow.md.

pub mod backup;
pub mod error;
pub mod escrow;
pub mod header;
pub mod helper;
pub mod journal;
pub mod kdf;
pub mod passphrase;
pub mod probe;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod token;
pub mod volume;
pub mod workflow;

pub use error::{LuksError, Result};
pub use kdf::{Kdf, KeyslotKdf};
pub use volume::Volume;
pub use workflow::{FaultHook, KeywardVolume, NoFaults, Repair, Rotation, Status, Step};
