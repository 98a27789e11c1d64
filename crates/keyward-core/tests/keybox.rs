//! The keybox format and its defences: round trips, every single-bit flip, and deliberate edits
//! by someone who can rewrite the file (and its unkeyed checksum) but does not know K.

mod common;

use std::path::Path;

use common::*;
use keyward_core::kdf::KdfParams;
use keyward_core::keybox::NewKeybox;
use keyward_core::keybox::format;
use keyward_core::slot::{KeyfileParams, NewPlain, SlotParams};
use keyward_core::{DataKey, Error, IntegrityFailure, Keybox, RecoveryCode, SlotId, Unlocker};
use proptest::prelude::*;
use zeroize::Zeroizing;

fn path() -> &'static Path {
    Path::new("test.keybox")
}

/// A keybox with a key-file slot (1), a plain slot (2), a passphrase slot (3) and a token.
fn sample() -> (Keybox, Vec<u8>) {
    let created =
        Keybox::create(NewKeybox::new(canary_key(), "sample", Some("kf")), &keyfile_secret(7))
            .expect("create");
    let (with_plain, _) = created.add_slot(Some("unattended"), &NewPlain).expect("add plain");
    let (with_pass, _) = with_plain
        .add_slot(Some("pass"), &passphrase_secret("a good passphrase"))
        .expect("add pass");
    let with_token = with_pass
        .add_token(SlotId(1), "example", serde_json::json!({"note": "bound to slot 1"}))
        .expect("add token");
    let bytes = with_token.keybox().to_bytes();
    (with_token.keybox().clone(), bytes)
}

/// Rewrites a keybox's header as an attacker would: edits it, then recomputes the checksum
/// (which anyone can), keeping the old MAC (which needs K).
fn tamper(keybox: &Keybox, edit: impl FnOnce(&mut format::KeyboxHeader)) -> Keybox {
    let mut header = keybox.header().clone();
    edit(&mut header);
    let mac = mac_of(keybox);
    Keybox::parse(&format::encode(&header, &mac), path()).expect("a tampered header still parses")
}

/// Opens `keybox` through its plain slot and returns the integrity failure that must result.
fn integrity_failure(keybox: &Keybox) -> IntegrityFailure {
    match keybox.unlock(&Unlocker::Unattended, None, path()) {
        Err(Error::Integrity { what, .. }) => what,
        other => panic!("expected an integrity error, got {other:?}"),
    }
}

fn mac_of(keybox: &Keybox) -> [u8; 32] {
    let value: serde_json::Value = serde_json::from_slice(&keybox.to_bytes()).expect("json");
    let text = value["mac"].as_str().expect("mac field");
    keyward_core::encoding::from_base64(text).expect("base64").try_into().expect("32 bytes")
}

#[test]
fn every_single_bit_flip_is_rejected() {
    let (_, bytes) = sample();
    let kf = keyfile(7);
    let pass = passphrase("a good passphrase");
    for bit in 0..bytes.len() * 8 {
        let mut flipped = bytes.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        match Keybox::parse(&flipped, path()) {
            Err(Error::Integrity { .. }) => {}
            Err(other) => panic!("bit {bit}: expected an integrity error, got {other:?}"),
            Ok(parsed) => {
                // Never reached today (the checksum catches every flip), but if it were, no
                // slot may then yield a key.
                for unlocker in
                    [Unlocker::Keyfile(&kf), Unlocker::Unattended, Unlocker::Passphrase(&pass)]
                {
                    assert!(
                        parsed.unlock(&unlocker, None, path()).is_err(),
                        "bit {bit} opened a flipped keybox"
                    );
                }
            }
        }
    }
}

#[test]
fn a_flip_anywhere_in_a_slot_is_caught_even_with_a_recomputed_checksum() {
    let (keybox, _) = sample();
    let kf = keyfile(7);
    let wrapped_len = keybox.slots()[0].wrapped_key.len();
    for bit in 0..wrapped_len * 8 {
        let bad = tamper(&keybox, |h| h.slots[0].wrapped_key[bit / 8] ^= 1 << (bit % 8));
        let err = bad
            .unlock(&Unlocker::Keyfile(&kf), None, path())
            .expect_err("flipped wrapped key must fail");
        assert!(matches!(err, Error::WrongSecret { .. }), "bit {bit}: {err:?}");
    }
}

#[test]
fn an_edited_label_fails_the_header_mac() {
    let (keybox, _) = sample();
    let bad = tamper(&keybox, |h| h.label = "edited".into());
    assert_eq!(integrity_failure(&bad), IntegrityFailure::HeaderMac);
}

#[test]
fn a_deleted_slot_fails_the_header_mac() {
    let (keybox, _) = sample();
    let bad = tamper(&keybox, |h| h.slots.retain(|s| s.id != SlotId(3)));
    assert_eq!(integrity_failure(&bad), IntegrityFailure::HeaderMac);
}

#[test]
fn a_rolled_back_generation_fails_the_header_mac() {
    let (keybox, _) = sample();
    let bad = tamper(&keybox, |h| h.generation -= 1);
    assert_eq!(integrity_failure(&bad), IntegrityFailure::HeaderMac);
}

/// Edits the KDF of a recovery-code or passphrase slot's stored parameters, as an attacker with
/// write access to the file could.
fn edit_kdf(protection: &mut SlotParams, edit: impl FnOnce(&mut KdfParams)) {
    let mut kdf: KdfParams =
        serde_json::from_value(protection.params["kdf"].clone()).expect("a KDF slot");
    edit(&mut kdf);
    protection.params["kdf"] = serde_json::to_value(&kdf).expect("KDF params");
}

#[test]
fn a_weakened_kdf_does_not_open_the_slot() {
    let (keybox, _) = sample();
    let bad = tamper(&keybox, |h| {
        edit_kdf(&mut h.slots[2].protection, |kdf| {
            if let KdfParams::Argon2id { m_kib, .. } = kdf {
                *m_kib = 8;
            }
        });
    });
    let pass = passphrase("a good passphrase");
    let err =
        bad.unlock(&Unlocker::Passphrase(&pass), None, path()).expect_err("downgrade must fail");
    assert!(matches!(err, Error::WrongSecret { .. }), "{err:?}");
}

#[test]
fn a_hostile_work_factor_is_refused_before_any_work() {
    let (keybox, _) = sample();
    let bytes = {
        let mut header = keybox.header().clone();
        edit_kdf(&mut header.slots[2].protection, |kdf| {
            if let KdfParams::Argon2id { m_kib, t, .. } = kdf {
                *m_kib = 4 * 1024 * 1024;
                *t = 1000;
            }
        });
        format::encode(&header, &mac_of(&keybox))
    };
    let err = Keybox::parse(&bytes, path()).expect_err("hostile parameters must be refused");
    assert!(
        matches!(err, Error::Integrity { what: IntegrityFailure::KdfOutOfBounds(_), .. }),
        "{err:?}"
    );
}

#[test]
fn swapped_wrapped_keys_do_not_open() {
    let (keybox, _) = sample();
    let other =
        Keybox::create(NewKeybox::new(canary_key(), "other", Some("kf")), &keyfile_secret(7))
            .expect("create");
    // The same K and the same key file, but another keybox: the binding to the keybox id holds.
    let bad =
        tamper(&keybox, |h| h.slots[0].wrapped_key = other.keybox().slots()[0].wrapped_key.clone());
    let kf = keyfile(7);
    assert!(matches!(
        bad.unlock(&Unlocker::Keyfile(&kf), None, path()),
        Err(Error::WrongSecret { .. })
    ));
}

#[test]
fn a_changed_fingerprint_is_a_slot_key_mismatch() {
    let (keybox, _) = sample();
    let bad = tamper(&keybox, |h| {
        h.fingerprint = keyward_core::Fingerprint::of(b"some other key, not K at all");
    });
    assert_eq!(integrity_failure(&bad), IntegrityFailure::SlotKeyMismatch(SlotId(2)));
}

#[test]
fn wrong_secrets_are_wrong_secret_errors() {
    let (keybox, _) = sample();
    let wrong_pass = passphrase("not the passphrase");
    let wrong_kf = keyfile(8);
    for unlocker in [Unlocker::Passphrase(&wrong_pass), Unlocker::Keyfile(&wrong_kf)] {
        assert!(matches!(keybox.unlock(&unlocker, None, path()), Err(Error::WrongSecret { .. })));
    }
    let code = RecoveryCode::generate().expect("rng");
    assert!(matches!(
        keybox.unlock(&Unlocker::RecoveryCode(&code), None, path()),
        Err(Error::NoSlotTakes(_))
    ));
}

#[test]
fn the_key_comes_back_unchanged_through_every_slot() {
    let (keybox, _) = sample();
    let kf = keyfile(7);
    let pass = passphrase("a good passphrase");
    for unlocker in [Unlocker::Keyfile(&kf), Unlocker::Unattended, Unlocker::Passphrase(&pass)] {
        let unlocked = keybox.unlock(&unlocker, None, path()).expect("opens");
        assert_eq!(unlocked.key().expose(), CANARY_KEY);
    }
}

#[test]
fn the_last_slot_cannot_be_removed_and_tokens_go_with_their_slot() {
    let (keybox, _) = sample();
    let unlocked = keybox.unlock(&Unlocker::Unattended, None, path()).expect("opens");
    let without_1 = unlocked.remove_slot(SlotId(1)).expect("remove slot 1");
    assert!(without_1.keybox().header().tokens.is_empty(), "slot 1's token must go with it");
    let without_2 = without_1.remove_slot(SlotId(2)).expect("remove slot 2");
    assert!(matches!(without_2.remove_slot(SlotId(3)), Err(Error::LastSlot(SlotId(3)))));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn format_round_trip(
        label in "\\PC{0,40}",
        slot_label in "[a-z][a-z0-9 -]{0,19}",
        key in proptest::collection::vec(any::<u8>(), 16..200),
        fill in any::<u8>(),
    ) {
        let key = DataKey::import(Zeroizing::new(key)).expect("length in range");
        let created = Keybox::create(NewKeybox::new(key.clone(), &label, Some(&slot_label)), &keyfile_secret(fill)).expect("create");
        let (two, _) = created.add_slot(Some("plain"), &NewPlain).expect("add");
        let bytes = two.keybox().to_bytes();
        let parsed = Keybox::parse(&bytes, path()).expect("parses");
        prop_assert_eq!(&parsed, two.keybox());
        prop_assert_eq!(parsed.to_bytes(), bytes);
        let kf = keyfile(fill);
        let opened = parsed.unlock(&Unlocker::Keyfile(&kf), None, path()).expect("opens");
        prop_assert_eq!(opened.key().expose(), key.expose());
    }

    #[test]
    fn arbitrary_bytes_never_parse_into_a_keybox(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        prop_assert!(Keybox::parse(&bytes, path()).is_err());
    }
}

#[test]
fn a_slot_copied_whole_into_another_keybox_does_not_open() {
    // Same K, same key file, and the slot's own parameters and wrapped key copied verbatim:
    // only the binding to the keybox id tells them apart.
    let (keybox, _) = sample();
    let other =
        Keybox::create(NewKeybox::new(canary_key(), "other", Some("kf")), &keyfile_secret(7))
            .expect("create");
    let foreign = other.keybox().slots()[0].clone();
    assert_eq!(foreign.id, SlotId(1));
    let bad = tamper(&keybox, |h| h.slots[0] = foreign);
    let kf = keyfile(7);
    assert!(matches!(
        bad.unlock(&Unlocker::Keyfile(&kf), Some(SlotId(1)), path()),
        Err(Error::WrongSecret { .. })
    ));
}

#[test]
fn a_renumbered_slot_does_not_open() {
    let (keybox, _) = sample();
    let bad = tamper(&keybox, |h| {
        h.next_slot_id = 10;
        h.slots[2].id = SlotId(7);
    });
    let pass = passphrase("a good passphrase");
    assert!(matches!(
        bad.unlock(&Unlocker::Passphrase(&pass), None, path()),
        Err(Error::WrongSecret { .. })
    ));
}

#[test]
fn a_flip_in_a_slot_salt_does_not_open() {
    let (keybox, _) = sample();
    let kf = keyfile(7);
    for bit in 0..8 {
        let bad = tamper(&keybox, |h| {
            let protection = &mut h.slots[0].protection;
            let mut params: KeyfileParams =
                serde_json::from_value(protection.params.clone()).expect("keyfile params");
            params.salt[0] ^= 1 << bit;
            protection.params = serde_json::to_value(&params).expect("keyfile params");
        });
        assert!(matches!(
            bad.unlock(&Unlocker::Keyfile(&kf), None, path()),
            Err(Error::WrongSecret { .. })
        ));
    }
}
