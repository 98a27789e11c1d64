//! The slot kinds this build knows, by name: keyward-core's own, and those a program registers at
//! start (the peers kind from keyward-peer, hardware kinds from their crates).
//!
//! A process-wide list, as rustls has a process-default crypto provider: a keybox is parsed in
//! many places (the store, the commands, the tests), and every one of them must see the same
//! kinds. It is set once, before the first keybox is read.

use std::sync::OnceLock;

use super::SlotKind;
use super::keyfile::KeyfileKind;
use super::passphrase::PassphraseKind;
use super::plain::PlainKind;
use super::recovery_code::RecoveryCodeKind;

/// keyward-core's own kinds, in display order.
static CORE: &[&dyn SlotKind] = &[&RecoveryCodeKind, &PassphraseKind, &KeyfileKind, &PlainKind];

/// Kinds a program added.
static ADDED: OnceLock<&'static [&'static dyn SlotKind]> = OnceLock::new();

/// A second registration with other kinds than the first.
#[derive(Debug, thiserror::Error)]
#[error("slot kinds were registered already, with others; register them once, at start")]
pub struct AlreadyRegistered;

/// Adds `kinds` to the core ones. Once per process; registering the same list again is a no-op
/// (every test of a crate may call it).
pub fn register(kinds: &'static [&'static dyn SlotKind]) -> Result<(), AlreadyRegistered> {
    let set = ADDED.get_or_init(|| kinds);
    let same =
        set.len() == kinds.len() && set.iter().zip(kinds.iter()).all(|(a, b)| a.name() == b.name());
    if same { Ok(()) } else { Err(AlreadyRegistered) }
}

/// Every kind known, core ones first.
pub fn all() -> impl Iterator<Item = &'static dyn SlotKind> {
    CORE.iter().chain(ADDED.get().copied().unwrap_or_default()).copied()
}

/// The kind called `name`, if this build knows it.
pub fn find(name: &str) -> Option<&'static dyn SlotKind> {
    all().find(|kind| kind.name() == name)
}
