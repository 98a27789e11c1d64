//! The keyward escrow blob parser on arbitrary bytes: it must never panic, and whatever it
//! accepts must re-serialise to exactly the input (one canonical form, its checksum included).

#![no_main]

use std::path::Path;

use keyward_core::escrow::EscrowBlob;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(blob) = EscrowBlob::parse(data, Path::new("fuzz")) {
        assert_eq!(blob.to_bytes(), data, "an accepted blob must be in canonical form");
    }
});
