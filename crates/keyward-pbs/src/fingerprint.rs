//! The PBS key fingerprint, as `proxmox-backup-client key show` prints it:
//! SHA-256(FINGERPRINT_INPUT ‖ id_key), where FINGERPRINT_INPUT = SHA-256("Proxmox Backup
//! Encryption Key Fingerprint") and id_key = PBKDF2-HMAC-SHA256(key, "_id_key", 10 rounds, 32
//! bytes). It is a different value from keyward's own fingerprint of the same key.

use keyward_core::Fingerprint;
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
}
