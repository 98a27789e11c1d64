//! The keybox parser on arbitrary bytes: it must never panic, and whatever it accepts must
//! re-serialise to exactly the input (the file has one canonical form).

#![no_main]

use std::path::Path;

use keyward_core::Keybox;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(keybox) = Keybox::parse(data, Path::new("fuzz")) {
        assert_eq!(keybox.to_bytes(), data, "an accepted keybox must be in canonical form");
    }
});
