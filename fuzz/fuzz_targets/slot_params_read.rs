//! Every slot kind's parameter reader on arbitrary JSON: it must never panic, and what a kind
//! accepts it must describe without panicking. (The keybox parser reaches these only behind a
//! valid checksum; here the readers are hit directly.)

#![no_main]

use keyward_core::slot::{SlotKind, registry};
use libfuzzer_sys::fuzz_target;

/// The kinds that live outside keyward-core.
static KINDS: &[&dyn SlotKind] = &[
    &keyward_peer::slot::PeersKind,
    &keyward_pkcs11::Pkcs11Kind,
    &keyward_tpm2::Tpm2Kind,
];

fuzz_target!(|data: &[u8]| {
    let _ = registry::register(KINDS);
    let Ok(params) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    for kind in registry::all() {
        if let Ok(slot) = kind.read(&params) {
            let _ = (slot.describe(), slot.facts(), slot.is_unattended(), slot.channel());
        }
    }
});
