//! The key's encryption inside a PBS key file: AES-256-GCM with a 16-byte IV and no associated
//! data, stored as IV ‖ tag ‖ ciphertext (the order proxmox-backup-client uses).

use aes_gcm::aead::consts::U16;
use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, Nonce, Tag};
use zeroize::Zeroizing;

/// AES-256-GCM with PBS's 16-byte IV.
type Aes256Gcm16 = AesGcm<Aes256, U16>;

/// IV length.
pub const IV_LEN: usize = 16;
/// Tag length.
pub const TAG_LEN: usize = 16;

/// Encrypts `key` under `kek` with `iv`; returns IV ‖ tag ‖ ciphertext, or `None` if the cipher
/// refuses (never for a 32-byte key; but never a default that could carry the plaintext).
pub fn seal(kek: &[u8; 32], iv: &[u8; IV_LEN], key: &[u8]) -> Option<Vec<u8>> {
    let cipher = Aes256Gcm16::new(&(*kek).into());
    let mut buffer = Zeroizing::new(key.to_vec());
    let nonce = Nonce::<U16>::from(*iv);
    let tag = cipher.encrypt_inout_detached(&nonce, b"", buffer.as_mut_slice().into()).ok()?;
    let mut out = Vec::with_capacity(IV_LEN + TAG_LEN + buffer.len());
    out.extend_from_slice(iv);
    out.extend_from_slice(&tag);
    out.extend_from_slice(&buffer);
    Some(out)
}

/// Decrypts IV ‖ tag ‖ ciphertext; `None` if the key is wrong or the data was changed.
pub fn open(kek: &[u8; 32], data: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let (iv, rest) = data.split_at_checked(IV_LEN)?;
    let (tag, ciphertext) = rest.split_at_checked(TAG_LEN)?;
    let cipher = Aes256Gcm16::new(&(*kek).into());
    let nonce = Nonce::<U16>::try_from(iv).ok()?;
    let tag = Tag::<U16>::try_from(tag).ok()?;
    let mut buffer = Zeroizing::new(ciphertext.to_vec());
    cipher.decrypt_inout_detached(&nonce, b"", buffer.as_mut_slice().into(), &tag).ok()?;
    Some(buffer)
}
