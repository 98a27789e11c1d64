//! A helper's frames (docs/formats/helper.md) on arbitrary bytes, read as the tpm2 helper reads
//! a call and as the tpm2 kind reads an answer: never a panic, and what is read writes back to a
//! frame that reads the same.

#![no_main]

use keyward_helper::frame;
use keyward_tpm2::helper::{Answer, Call};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(call)) = frame::read::<Call>(&mut &data[..]) {
        let mut again = Vec::new();
        frame::write(&mut again, &call).expect("a call read writes back");
        frame::read::<Call>(&mut again.as_slice()).expect("and reads again");
    }
    let _ = frame::read::<Answer>(&mut &data[..]);
});
