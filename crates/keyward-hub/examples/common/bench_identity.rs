//! Shared by the benchmark programs: the deterministic identity of seeded box number `i`.

use keyward_service::SigningIdentity;
use sha2::{Digest, Sha256};

/// Box `i`'s name.
pub fn box_name(i: u64) -> String {
    format!("bench-{i}")
}

/// Box `i`'s identity (seed = SHA-256("keyward bench box" ‖ i)).
pub fn box_identity(i: u64) -> SigningIdentity {
    let mut hasher = Sha256::new();
    hasher.update(b"keyward bench box");
    hasher.update(i.to_le_bytes());
    SigningIdentity::from_seed(&hasher.finalize().into())
}
