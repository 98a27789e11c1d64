//! The keyward escrow blob: every single-bit flip is refused when it is read — by its checksum,
//! before any KDF runs — so a damaged blob is an integrity failure, never a "wrong code", and a
//! version 1 blob (without a checksum) still opens.

mod common;

use std::path::Path;

use common::*;
use keyward_core::escrow::EscrowBlob;
use keyward_core::keybox::NewKeybox;
use keyward_core::slot::{NewRecoveryCode, default_recovery_code_kdf};
use keyward_core::{Error, IntegrityFailure, Keybox, RecoveryCode};

fn blob_and_code() -> (Vec<u8>, RecoveryCode) {
    let code = RecoveryCode::generate().expect("rng");
    let secret =
        NewRecoveryCode { code: code.clone(), kdf: default_recovery_code_kdf().expect("kdf") };
    let created =
        Keybox::create(NewKeybox::new(canary_key(), "escrow", None), &secret).expect("create");
    let blob = EscrowBlob::from_keybox(&created, None).expect("blob");
    (blob.to_bytes(), code)
}

#[test]
fn every_single_bit_flip_of_an_escrow_blob_is_refused_when_read() {
    let (bytes, code) = blob_and_code();
    let origin = Path::new("blob.json");
    let blob = EscrowBlob::parse(&bytes, origin).expect("the blob reads back");
    assert_eq!(blob.open(&code, origin).expect("opens").expose(), canary_key().expose());
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut flipped = bytes.clone();
            flipped[i] ^= 1 << bit;
            match EscrowBlob::parse(&flipped, origin) {
                Err(Error::Integrity { .. }) => {}
                other => panic!("a flip at byte {i} bit {bit} read as {other:?}"),
            }
        }
    }
}

#[test]
fn a_version_1_blob_without_a_checksum_still_opens() {
    let (bytes, code) = blob_and_code();
    // The same text a version 1 writer made: its version, and no checksum (the last field).
    let text = String::from_utf8(bytes).expect("text");
    let without = text.find(",\n  \"checksum\"").map(|at| format!("{}\n}}\n", &text[..at]));
    let old = without.expect("a checksum field").replacen("\"version\": 2", "\"version\": 1", 1);
    let old = old.into_bytes();
    let origin = Path::new("old.json");
    let blob = EscrowBlob::parse(&old, origin).expect("a version 1 blob reads");
    assert_eq!(blob.open(&code, origin).expect("opens").expose(), canary_key().expose());
    // Nor may a version 2 blob drop its checksum.
    let stripped =
        String::from_utf8(old).expect("text").replacen("\"version\": 1", "\"version\": 2", 1);
    assert!(matches!(
        EscrowBlob::parse(stripped.as_bytes(), origin),
        Err(Error::Integrity { what: IntegrityFailure::Checksum, .. })
    ));
}
