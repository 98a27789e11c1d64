//! The fingerprint gate: a key is used only once its fingerprint matches every fingerprint
//! that names it (contract 2) — the caller's `--expect-fingerprint`, a hub's, a restore
//! directive's, the agent's first key's.

use keyward_core::{DataKey, Error as CoreError, ExpectedFingerprint};
use keyward_pbs::KeyFingerprints;

use crate::error::BoxResult;

/// Refuses `key` unless every fingerprint `expected` names (each with where it came from, for
/// the message) is one of its two — keyward's or, for a Proxmox Backup key, PBS's — in full or
/// short form. The refusal shows both of the key's and says in which form each was expected.
pub fn gate(key: &DataKey, expected: &[(String, ExpectedFingerprint)]) -> BoxResult {
    let found = KeyFingerprints::of(key.expose());
    for (source, expected) in expected {
        if found.named_by(expected).is_none() {
            let form = match expected {
                ExpectedFingerprint::Full(_) => "full",
                ExpectedFingerprint::Short(_) => "short",
            };
            return Err(CoreError::FingerprintMismatch {
                expected: format!("{expected} ({form} form, {source})"),
                found: found.to_string(),
            }
            .into());
        }
    }
    Ok(())
}
