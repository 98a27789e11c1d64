//! The configuration files' reader (keyward_box::config) on arbitrary bytes: never a panic, and
//! what it accepts writes back to bytes it reads again as the same. The operator's config.toml
//! (keyward_box::profile) and a box backup (keyward_box::backup) on the same bytes: never a panic.

#![no_main]

use std::path::Path;

use keyward_box::config::{self, ConfigFile, Enrollment, HubConfig, PeerConfig, Volumes};
use libfuzzer_sys::fuzz_target;

fn round_trip<T: ConfigFile + PartialEq + std::fmt::Debug>(data: &[u8]) {
    if let Ok(parsed) = config::parse::<T>(data, Path::new("fuzz")) {
        let bytes = config::to_bytes(&parsed).expect("a parsed config writes");
        assert_eq!(config::parse::<T>(&bytes, Path::new("fuzz")).expect("reads back"), parsed);
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<Enrollment>(data);
    round_trip::<HubConfig>(data);
    round_trip::<PeerConfig>(data);
    round_trip::<Volumes>(data);
    // A box backup's reader: never a panic.
    let _ = keyward_box::backup::read(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = keyward_box::profile::parse(text, Path::new("fuzz/config.toml"));
    }
});
