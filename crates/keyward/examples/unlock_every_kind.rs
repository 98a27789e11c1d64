//! As unlock_core_kinds, with every slot kind keyward offers registered (peers, tpm2, pkcs11),
//! as `keyward` registers them: what their clients (the peers' HTTPS client above all) add to
//! the start of a process that may open one. Timed by scripts/bench-startup.sh.
//!
//! Usage: unlock_every_kind KEYBOX

#[path = "common/unlock.rs"]
mod unlock;

use keyward_core::slot::{SlotKind, registry};

/// The kinds keyward adds to keyward-core's (crates/keyward/src/kinds.rs lists them with how
/// the CLI enrolls each, which this probe leaves out).
static ADDED: [&dyn SlotKind; 3] =
    [&keyward_peer::slot::PeersKind, &keyward_tpm2::Tpm2Kind, &keyward_pkcs11::Pkcs11Kind];

fn main() -> std::process::ExitCode {
    if registry::register(&ADDED).is_err() {
        eprintln!("error: the slot kinds were registered already");
        return std::process::ExitCode::FAILURE;
    }
    unlock::unlock()
}
