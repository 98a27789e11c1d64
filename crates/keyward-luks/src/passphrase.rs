//! The passphrase of keyward's keyslot: derived from K, so any slot that opens the keybox (a
//! recovery code, the TPM, the peers, the hub) also opens the volume. It is bound to the
//! volume's UUID, to the enrollment (a random id in the token, so enrolling again after a
//! removal never brings back an earlier passphrase) and to the rotation's sequence number, so
//! every rotation makes a new one and no two volumes share one.

use std::fmt::Write;

use hkdf::Hkdf;
use keyward_core::DataKey;
use sha2::Sha256;
use zeroize::Zeroizing;

/// HKDF's salt; changing it changes every keyward keyslot passphrase.
const SALT: &[u8] = b"keyward luks2 v1";
/// What the derived bytes are for (the first part of HKDF's info).
const PURPOSE: &[u8] = b"keyward luks2 keyslot passphrase";
/// Bytes of key material in a passphrase (shown as twice as many hex digits).
const SECRET_LEN: usize = 32;

/// The passphrase of one keyward keyslot: 64 lowercase hex digits (256 bits), text so that it
/// can also be typed at `cryptsetup open`. Zeroized on drop; `Debug` never shows it.
pub struct KeyslotPassphrase(Zeroizing<String>);

impl KeyslotPassphrase {
    /// The passphrase for the keyward keyslot of `sequence` in `enrollment` on the volume
    /// `uuid`: HKDF-SHA256 of K, with info = purpose ‖ 0 ‖ uuid ‖ 0 ‖ enrollment ‖ 0 ‖
    /// sequence (8 bytes, big-endian).
    pub fn derive(key: &DataKey, uuid: &str, enrollment: &str, sequence: u64) -> Self {
        let mut info = Vec::with_capacity(PURPOSE.len() + uuid.len() + enrollment.len() + 11);
        for part in [PURPOSE, uuid.as_bytes(), enrollment.as_bytes()] {
            info.extend_from_slice(part);
            info.push(0);
        }
        info.extend_from_slice(&sequence.to_be_bytes());
        let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
        // Expanding 32 bytes from HKDF-SHA256 cannot fail (the limit is 255 × 32).
        let _ = Hkdf::<Sha256>::new(Some(SALT), key.expose()).expand(&info, secret.as_mut());
        let mut text = Zeroizing::new(String::with_capacity(2 * SECRET_LEN));
        for byte in secret.iter() {
            // Writing into a String cannot fail.
            let _ = write!(text, "{byte:02x}");
        }
        KeyslotPassphrase(text)
    }

    /// The passphrase's bytes, as libcryptsetup takes them (no trailing newline).
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for KeyslotPassphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyslotPassphrase(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> DataKey {
        DataKey::import(Zeroizing::new(vec![byte; 32])).expect("a 32-byte key")
    }

    #[test]
    fn the_passphrase_is_bound_to_the_key_the_volume_and_the_sequence() {
        let uuid = "0b4f7e0e-8c1f-4a4e-9a57-1d2a3b4c5d6e";
        let e = "5e1f0c2a9b8d7e6f5e1f0c2a9b8d7e6f";
        let first = KeyslotPassphrase::derive(&key(1), uuid, e, 1);
        assert_eq!(first.expose().len(), 64);
        assert!(first.expose().iter().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(first.expose(), KeyslotPassphrase::derive(&key(1), uuid, e, 1).expose());
        for other in [
            KeyslotPassphrase::derive(&key(2), uuid, e, 1),
            KeyslotPassphrase::derive(&key(1), uuid, e, 2),
            KeyslotPassphrase::derive(&key(1), uuid, "5e1f0c2a9b8d7e6f5e1f0c2a9b8d7e60", 1),
            KeyslotPassphrase::derive(&key(1), "0b4f7e0e-8c1f-4a4e-9a57-1d2a3b4c5d6f", e, 1),
        ] {
            assert_ne!(first.expose(), other.expose());
        }
        assert_eq!(format!("{first:?}"), "KeyslotPassphrase(<redacted>)");
    }
}
