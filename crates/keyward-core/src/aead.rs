//! Key wrapping: XChaCha20-Poly1305 with a random 24-byte nonce stored in front of the
//! ciphertext. The random nonce is why XChaCha is used: 192 bits make collisions a non-issue
//! for keys that wrap many times over their life.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::random;

/// Nonce length in bytes.
pub const NONCE_LEN: usize = 24;
/// Tag length in bytes.
pub const TAG_LEN: usize = 16;

/// Opening failed: wrong key, or the ciphertext or its associated data were changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFailed;

/// Encrypts `plaintext` under `key`, binding `associated_data`. Returns nonce ‖ ciphertext ‖ tag.
pub fn seal(key: &[u8; 32], associated_data: &[u8], plaintext: &[u8]) -> crate::Result<Vec<u8>> {
    let nonce_bytes = random::array::<NONCE_LEN>()?;
    let nonce = XNonce::from(nonce_bytes);
    let cipher = XChaCha20Poly1305::new(&(*key).into());
    let ciphertext = cipher
        .encrypt(&nonce, Payload { msg: plaintext, aad: associated_data })
        .map_err(|_| crate::Error::Internal("a key too long to wrap"))?;
    let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    out.extend_from_slice(&nonce_bytes);
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

/// Decrypts what [`seal`] produced; any change to key, data or associated data fails.
pub fn open(
    key: &[u8; 32],
    associated_data: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, OpenFailed> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(OpenFailed);
    }
    let (nonce_bytes, ciphertext) = sealed.split_at(NONCE_LEN);
    let nonce = XNonce::try_from(nonce_bytes).map_err(|_| OpenFailed)?;
    let cipher = XChaCha20Poly1305::new(&(*key).into());
    cipher
        .decrypt(&nonce, Payload { msg: ciphertext, aad: associated_data })
        .map(Zeroizing::new)
        .map_err(|_| OpenFailed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_change_fails() {
        let key = [9u8; 32];
        let sealed = seal(&key, b"ad", b"secret").expect("seal");
        assert_eq!(open(&key, b"ad", &sealed).expect("open").as_slice(), b"secret");
        assert_eq!(open(&[8u8; 32], b"ad", &sealed), Err(OpenFailed));
        assert_eq!(open(&key, b"AD", &sealed), Err(OpenFailed));
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert_eq!(open(&key, b"ad", &bad), Err(OpenFailed), "flip at byte {i} must fail");
        }
    }
}
