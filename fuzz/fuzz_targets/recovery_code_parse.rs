//! The recovery-code reader on arbitrary text: it must never panic, and an accepted code must
//! read back identically from its canonical and display forms.

#![no_main]

use keyward_core::RecoveryCode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(code) = RecoveryCode::parse(text) {
        assert_eq!(RecoveryCode::parse(&code.canonical()).ok(), Some(code.clone()));
        assert_eq!(RecoveryCode::parse(&code.display_form()).ok(), Some(code));
    }
});
