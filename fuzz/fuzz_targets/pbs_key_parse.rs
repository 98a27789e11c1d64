//! The Proxmox Backup key-file parser on arbitrary bytes: it must never panic, and an accepted
//! file, once written in the client's compact form, must read back to exactly those bytes.

#![no_main]

use keyward_pbs::PbsKeyFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(file) = PbsKeyFile::parse(data) {
        let written = file.to_bytes();
        let again = PbsKeyFile::parse(&written).expect("a written key file parses");
        assert_eq!(again.to_bytes(), written, "the compact form must be a fixed point");
    }
});
