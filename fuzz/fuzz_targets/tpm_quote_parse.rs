//! The TPM quote reader (what a peer reads of a quote, with no TSS) on arbitrary bytes: it must
//! never panic, and what it accepts names PCRs its bitmaps can hold.

#![no_main]

use keyward_tpm2::Quoted;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(quoted) = Quoted::parse(data) {
        for (_, pcrs) in &quoted.selection {
            assert!(pcrs.iter().all(|&pcr| pcr < 32) && pcrs.is_sorted());
        }
    }
});
