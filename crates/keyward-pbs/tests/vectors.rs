//! keyward-pbs against the key-file vectors in testdata/pbs-keys (see its README for what was
//! checked against upstream): byte-for-byte round trips, decryption, fingerprints, re-sealing to
//! the same bytes, error text, and a property test through every kdf.

use keyward_core::DataKey;
use keyward_pbs::{PbsError, PbsKdf, PbsKeyFile, PbsTime, escrow, pbs_fingerprint};
use proptest::prelude::*;
use zeroize::Zeroizing;

const PASSPHRASE: &[u8] = b"pbs-test-passphrase";

const RANDOM_KEY: &str = "fce4dbaf33e7ba220994a0cd2e897c88f3bee5dc5a3f135734ca875cadc76c85";
const RANDOM_FP: &str = "da:57:40:7c:5d:7f:9b:fa:d3:a4:a5:3c:38:49:be:43:79:dd:76:7e:09:6e:f6:79:a7:de:ef:bf:53:cc:50:f3";
const UPSTREAM_FP: &str = "0e:ab:d4:46:0b:6e:b9:ca:34:50:23:de:e2:b7:78:c7:90:e5:4a:16:83:b9:65:9c:0a:57:ae:19:90:90:15:9b";

/// One key file of testdata/pbs-keys and what it must give (testdata/pbs-keys/vectors.json).
#[derive(serde::Deserialize)]
struct Vector {
    file: String,
    key: String,
    fingerprint: String,
    /// Salt and IV (hex) of an encrypted file.
    salt: Option<String>,
    iv: Option<String>,
}

fn vectors() -> Vec<Vector> {
    serde_json::from_slice(&read("vectors.json")).expect("testdata/pbs-keys/vectors.json")
}

fn read(name: &str) -> Vec<u8> {
    let path = format!("{}/../../testdata/pbs-keys/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn every_vector_round_trips_byte_for_byte() {
    for Vector { file: name, .. } in vectors() {
        let bytes = read(&name);
        let file = PbsKeyFile::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            file.to_bytes().as_slice(),
            bytes.as_slice(),
            "{name} must re-serialise to the same bytes"
        );
    }
}

#[test]
fn every_vector_opens_to_its_key_and_fingerprint() {
    for Vector { file: name, key, fingerprint: fp, salt, .. } in vectors() {
        let file = PbsKeyFile::parse(&read(&name)).expect("parse");
        let encrypted = salt.is_some();
        let passphrase = encrypted.then_some(PASSPHRASE);
        let opened = file.open(passphrase).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(opened.expose(), hex(&key).as_slice(), "{name}: raw key");
        assert_eq!(pbs_fingerprint(opened.expose()).to_string(), fp, "{name}: fingerprint");
        assert_eq!(
            file.fingerprint.map(|f| f.to_string()).as_deref(),
            Some(fp.as_str()),
            "{name}: stored fingerprint"
        );
        if encrypted {
            assert!(
                matches!(
                    file.open(Some(b"another passphrase")),
                    Err(PbsError::WrongPassphrase { .. })
                ),
                "{name}"
            );
            assert!(matches!(file.open(None), Err(PbsError::PassphraseNeeded { .. })), "{name}");
        }
    }
}

#[test]
fn resealing_with_the_vectors_salt_and_iv_gives_the_same_bytes() {
    for Vector { file: name, key, salt, iv, .. } in vectors() {
        let original = PbsKeyFile::parse(&read(&name)).expect("parse");
        let key = DataKey::import(Zeroizing::new(hex(&key))).expect("32 bytes");
        let (protection, iv) = match (salt, iv) {
            (None, _) | (_, None) => (None, [0u8; 16]),
            (Some(salt), Some(iv)) => {
                let kdf = match original.kdf.clone().expect("encrypted") {
                    PbsKdf::Scrypt { n, r, p, .. } => PbsKdf::Scrypt { n, r, p, salt: hex(&salt) },
                    PbsKdf::Pbkdf2 { iter, .. } => PbsKdf::Pbkdf2 { iter, salt: hex(&salt) },
                };
                (Some((kdf, PASSPHRASE)), hex(&iv).try_into().expect("16 bytes"))
            }
        };
        let mut resealed = PbsKeyFile::seal_with_iv(
            &key,
            protection,
            &iv,
            original.created.clone(),
            original.modified.clone(),
        )
        .expect("seal");
        resealed.hint = original.hint.clone();
        assert_eq!(
            resealed.to_bytes().as_slice(),
            read(&name).as_slice(),
            "{name}: resealed bytes"
        );
    }
}

#[test]
fn errors_name_the_field() {
    let unknown = br#"{"kdf":{"Argon2":{"salt":"AA=="}},"created":"2024-06-05T15:06:40+00:00","modified":"2024-06-05T15:06:40+00:00","data":"AA=="}"#;
    let err = PbsKeyFile::parse(unknown).expect_err("unknown kdf");
    assert!(err.to_string().contains("`kdf`") && err.to_string().contains("Argon2"), "{err}");

    let full = read("random-kdf-scrypt.json");
    let err = PbsKeyFile::parse(&full[..full.len() / 2]).expect_err("truncated");
    assert!(err.to_string().contains("truncated"), "{err}");

    let short_data = String::from_utf8(read("random-kdf-scrypt.json")).expect("text").replace(
        "K8Gu1AmADvgFOLMtBLDOfuTs2kd//aB9YlwOh+QkDJ/NRe2fFsd1ZLHQUzrjHrhu25NA5WqmqpwGRHMHEHZMeA==",
        "K8Gu1AmA",
    );
    let err = PbsKeyFile::parse(short_data.as_bytes()).expect_err("short data");
    assert!(err.to_string().contains("`data`"), "{err}");

    let wrong_fp = String::from_utf8(read("random-kdf-none.json"))
        .expect("text")
        .replace(RANDOM_FP, UPSTREAM_FP);
    let err = PbsKeyFile::parse(wrong_fp.as_bytes())
        .expect("parses")
        .open(None)
        .expect_err("fingerprint");
    let text = err.to_string();
    assert!(
        text.contains("0e:ab:d4:46:0b:6e:b9:ca") && text.contains("da:57:40:7c:5d:7f:9b:fa"),
        "{text}"
    );
}

#[test]
fn a_hostile_scrypt_cost_is_refused_before_any_work() {
    let scrypt = String::from_utf8(read("random-kdf-scrypt.json")).expect("text");
    // 4 GiB of scrypt memory: more than the client itself allows (1025 MiB).
    let hostile = scrypt.replace("\"n\":65536", "\"n\":4194304");
    let err = PbsKeyFile::parse(hostile.as_bytes()).expect_err("n=2^22, r=8 must be refused");
    assert!(err.to_string().contains("`kdf`") && err.to_string().contains("1025 MiB"), "{err}");
    // 1 GiB is a file the client would open, but far costlier than any escrow blob keyward
    // writes: recovery refuses it before deriving anything.
    let costly = scrypt.replace("\"n\":65536", "\"n\":1048576");
    let blob = PbsKeyFile::parse(costly.as_bytes()).expect("the client would read it");
    let code = keyward_core::RecoveryCode::generate().expect("rng");
    assert!(matches!(escrow::open(&blob, &code), Err(PbsError::EscrowCostTooHigh { .. })));
}

#[test]
fn a_wrong_passphrase_shows_the_files_hint() {
    let file = PbsKeyFile::parse(&read("random-kdf-scrypt-hint.json")).expect("parse");
    let err = file.open(Some(b"not it")).expect_err("wrong passphrase");
    assert!(err.to_string().contains("usual test pass"), "{err}");
}

#[test]
fn the_escrow_blob_opens_with_the_code_and_nothing_else() {
    let key = DataKey::import(Zeroizing::new(hex(RANDOM_KEY))).expect("key");
    let code = keyward_core::RecoveryCode::generate().expect("rng");
    let created = PbsTime::parse("created", "2024-06-05T15:06:40+00:00").expect("time");
    let blob = escrow::seal(&key, &code, created.clone(), PbsTime::now(time::UtcOffset::UTC))
        .expect("seal");
    assert_eq!(blob.created, created, "created is kept from the import");
    assert!(
        matches!(blob.kdf, Some(PbsKdf::Scrypt { n: 65536, r: 8, p: 1, .. })),
        "as change-passphrase --kdf scrypt"
    );
    let reread = PbsKeyFile::parse(&blob.to_bytes()).expect("parse");
    // The passphrase proxmox-backup-client would be typed: the canonical code.
    assert_eq!(
        reread.open(Some(code.canonical().as_bytes())).expect("open").expose(),
        key.expose()
    );
    let other = keyward_core::RecoveryCode::generate().expect("rng");
    assert!(matches!(escrow::open(&reread, &other), Err(PbsError::WrongPassphrase { .. })));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn random_keys_survive_every_kdf(key in proptest::array::uniform32(any::<u8>()), which in 0u8..3) {
        let key = DataKey::import(Zeroizing::new(key.to_vec())).expect("32 bytes");
        let salt = vec![7u8; 32];
        // Cheap parameters: the property is about the format, not the cost.
        let protection = match which {
            0 => None,
            1 => Some((PbsKdf::Scrypt { n: 1024, r: 8, p: 1, salt }, &b"prop passphrase"[..])),
            _ => Some((PbsKdf::Pbkdf2 { iter: 1000, salt }, &b"prop passphrase"[..])),
        };
        let encrypted = protection.is_some();
        let now = PbsTime::now(time::UtcOffset::UTC);
        let file = PbsKeyFile::seal(&key, protection, now.clone(), now).expect("seal");
        let bytes = file.to_bytes();
        let parsed = PbsKeyFile::parse(&bytes).expect("parse");
        let again = parsed.to_bytes();
        prop_assert_eq!(again.as_slice(), bytes.as_slice());
        let opened = parsed.open(encrypted.then_some(&b"prop passphrase"[..])).expect("open");
        prop_assert_eq!(opened.expose(), key.expose());
    }
}
