//! The PBS key fingerprint, as `proxmox-backup-client key show` prints it:
//! SHA-256(FINGERPRINT_INPUT ‖ id_key), where FINGERPRINT_INPUT = SHA-256("Proxmox Backup
//! Encryption Key Fingerprint") and id_key = PBKDF2-HMAC-SHA256(key, "_id_key", 10 rounds, 32
//! bytes). It is a different value from keyward's own fingerprint of the same key.

use keyward_core::{ExpectedFingerprint, Fingerprint};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

const FINGERPRINT_LABEL: &[u8] = b"Proxmox Backup Encryption Key Fingerprint";
const ID_KEY_SALT: &[u8] = b"_id_key";
const ID_KEY_ROUNDS: u32 = 10;

/// The PBS fingerprint of `key`.
pub fn pbs_fingerprint(key: &[u8]) -> Fingerprint {
    // PBKDF2 straight from the crate, not keyward-core's KdfParams: this is a fixed derivation
    // with a 7-byte salt and 10 rounds, not a passphrase KDF, and core's bounds (rightly) refuse
    // such parameters for anything that protects a secret.
    let mut id_key = Zeroizing::new([0u8; 32]);
    pbkdf2::pbkdf2_hmac::<Sha256>(key, ID_KEY_SALT, ID_KEY_ROUNDS, id_key.as_mut_slice());
    let mut hasher = Sha256::new();
    hasher.update(Sha256::digest(FINGERPRINT_LABEL));
    hasher.update(id_key.as_slice());
    Fingerprint::from_bytes(hasher.finalize().into())
}

/// Both fingerprints a key goes by: keyward's own, and — for a key of a Proxmox Backup key's
/// length — the one `proxmox-backup-client key show` prints. Wherever a person names a key by
/// its fingerprint, either is taken: they are two hashes of the same key, so naming either
/// names it (a short form gets two chances at 2^-64 instead of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyFingerprints {
    /// keyward's fingerprint.
    pub keyward: Fingerprint,
    /// The PBS fingerprint, for a 32-byte key.
    pub pbs: Option<Fingerprint>,
}

/// Which of a key's fingerprints a person named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FingerprintKind {
    /// keyward's.
    Keyward,
    /// Proxmox Backup's.
    Pbs,
}

impl KeyFingerprints {
    /// The fingerprints of `key`.
    pub fn of(key: &[u8]) -> Self {
        KeyFingerprints {
            keyward: Fingerprint::of(key),
            pbs: (key.len() == crate::KEY_LEN).then(|| pbs_fingerprint(key)),
        }
    }

    /// Which of them `expected` names, if either.
    pub fn named_by(&self, expected: &ExpectedFingerprint) -> Option<FingerprintKind> {
        if self.keyward.matches(expected) {
            return Some(FingerprintKind::Keyward);
        }
        self.pbs.filter(|pbs| pbs.matches(expected)).map(|_| FingerprintKind::Pbs)
    }
}

impl std::fmt::Display for KeyFingerprints {
    /// `KEYWARD (keyward's; PBS: PBS)`, or keyward's alone.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.pbs {
            Some(pbs) => write!(f, "{} (keyward's; its PBS fingerprint is {pbs})", self.keyward),
            None => write!(f, "{}", self.keyward),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_upstream_test_value() {
        // proxmox-backup, pbs-key-config/src/lib.rs, test `fingerprint_checks`: key bytes 0..31.
        let key: Vec<u8> = (0u8..32).collect();
        assert_eq!(
            pbs_fingerprint(&key).to_string(),
            "0e:ab:d4:46:0b:6e:b9:ca:34:50:23:de:e2:b7:78:c7:90:e5:4a:16:83:b9:65:9c:0a:57:ae:19:90:90:15:9b"
        );
    }

    #[test]
    fn either_fingerprint_names_the_key_in_either_form() {
        let key: Vec<u8> = (0u8..32).collect();
        let both = KeyFingerprints::of(&key);
        let pbs = both.pbs.expect("a 32-byte key has one");
        let full = |fp: Fingerprint| fp.to_string().parse::<ExpectedFingerprint>().expect("fp");
        let short = |fp: Fingerprint| fp.short().parse::<ExpectedFingerprint>().expect("fp");
        assert_eq!(both.named_by(&full(both.keyward)), Some(FingerprintKind::Keyward));
        assert_eq!(both.named_by(&short(both.keyward)), Some(FingerprintKind::Keyward));
        assert_eq!(both.named_by(&full(pbs)), Some(FingerprintKind::Pbs));
        assert_eq!(both.named_by(&short(pbs)), Some(FingerprintKind::Pbs));
        let other = KeyFingerprints::of(&[7u8; 32]);
        assert_eq!(other.named_by(&full(both.keyward)), None);
        assert_eq!(other.named_by(&short(pbs)), None);
        assert_eq!(KeyFingerprints::of(&[1u8; 64]).pbs, None, "not a PBS key's length");
    }
}
