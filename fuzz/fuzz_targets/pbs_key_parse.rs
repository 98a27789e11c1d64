//! The Proxmox Backup key-file parser on arbitrary bytes: it must never panic, and an accepted
//! file must read back identically from its own serialisation (the client's compact form).

#![no_main]

use keyward_pbs::PbsKeyFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(file) = PbsKeyFile::parse(data) {
        let again = PbsKeyFile::parse(&file.to_bytes()).expect("a written key file parses");
        assert_eq!(again, file, "a key file must survive its own serialisation");
    }
});
