//! The sealed LUKS2 header backup (keyward_luks::escrow) on arbitrary bytes: its label, the
//! whole sealed form under a fixed key, and the opened contents it rebuilds a backup from.
//! Never a panic; a rebuilt backup is never larger than LUKS2 headers are, and the areas it
//! was given are where they said.

#![no_main]

use keyward_core::DataKey;
use keyward_luks::escrow::{self, MAX_BACKUP_BYTES};
use libfuzzer_sys::fuzz_target;
use zeroize::Zeroizing;

fuzz_target!(|data: &[u8]| {
    let _ = escrow::label(data);
    let key = DataKey::import(Zeroizing::new(vec![7u8; 32])).expect("a 32-byte key");
    assert!(escrow::open(&key, data).is_err(), "nothing but a seal under the key opens");
    if let Ok(bytes) = escrow::rebuild(data) {
        assert!(bytes.len() as u64 <= MAX_BACKUP_BYTES);
        // The first area (offset and size after the length and count) is where it said.
        if data.len() >= 28 {
            let offset = u64::from_be_bytes(data[12..20].try_into().expect("8 bytes")) as usize;
            let size = u64::from_be_bytes(data[20..28].try_into().expect("8 bytes")) as usize;
            assert_eq!(&bytes[offset..offset + size], &data[28..28 + size]);
        }
    }
});
