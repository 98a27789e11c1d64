//! The fingerprint gate: a key is used only once its fingerprint matches every fingerprint
//! that names it (contract 2) — the caller's `--expect-fingerprint`, a hub's, a restore
//! directive's, the agent's first key's.

use keyward_core::{Error as CoreError, ExpectedFingerprint, Fingerprint};

use crate::error::BoxResult;

/// Refuses `found` unless it matches every fingerprint `expected` names (each with where it came
/// from, for the message).
pub fn gate(found: &Fingerprint, expected: &[(String, ExpectedFingerprint)]) -> BoxResult {
    for (source, expected) in expected {
        if !found.matches(expected) {
            return Err(CoreError::FingerprintMismatch {
                expected: format!("{expected} ({source})"),
                found: found.to_string(),
            }
            .into());
        }
    }
    Ok(())
}
