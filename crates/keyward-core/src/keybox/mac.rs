//! The header MAC: HMAC-SHA256 over the header, keyed from K. Checked after every unlock, it
//! catches what the slot AEADs cannot see: a slot deleted or swapped, a label or token edited, a
//! generation rolled back within the file, by someone who can write the file but does not know K.

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::secret::DataKey;

use super::format::{KeyboxHeader, mac_input};

const MAC_KEY_SALT: &[u8] = b"keyward v1";
const MAC_KEY_INFO: &[u8] = b"keyward keybox header mac";

fn mac_key(key: &DataKey) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    // 32 bytes is always a valid HKDF-SHA256 output length.
    let _ = Hkdf::<Sha256>::new(Some(MAC_KEY_SALT), key.expose())
        .expand(MAC_KEY_INFO, out.as_mut_slice());
    out
}

fn hmac(key: &DataKey) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this cannot fail.
    <Hmac<Sha256> as KeyInit>::new_from_slice(mac_key(key).as_slice())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
}

/// Computes the MAC of `header` under `key`.
pub fn compute(key: &DataKey, header: &KeyboxHeader) -> [u8; 32] {
    let mut mac = hmac(key);
    mac.update(&mac_input(header));
    mac.finalize().into_bytes().into()
}

/// Checks `tag` in constant time.
pub fn verify(key: &DataKey, header: &KeyboxHeader, tag: &[u8; 32]) -> bool {
    let mut mac = hmac(key);
    mac.update(&mac_input(header));
    mac.verify_slice(tag).is_ok()
}
