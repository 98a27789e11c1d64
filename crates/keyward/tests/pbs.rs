//! Proxmox Backup keys through the real binary: import from every test vector, export as a PBS
//! key file, the PBS-native escrow blob, and offline recovery on an empty machine.

mod util;

use base64::Engine as _;
use util::Dir;

const PASSPHRASE: &[u8] = b"pbs-test-passphrase";
const RANDOM_KEY: &str = "fce4dbaf33e7ba220994a0cd2e897c88f3bee5dc5a3f135734ca875cadc76c85";
const RANDOM_FP: &str = "da:57:40:7c:5d:7f:9b:fa:d3:a4:a5:3c:38:49:be:43:79:dd:76:7e:09:6e:f6:79:a7:de:ef:bf:53:cc:50:f3";
const UPSTREAM_FP: &str = "0e:ab:d4:46:0b:6e:b9:ca:34:50:23:de:e2:b7:78:c7:90:e5:4a:16:83:b9:65:9c:0a:57:ae:19:90:90:15:9b";

/// testdata/pbs-keys/vectors.json: (file, raw key hex, PBS fingerprint, encrypted).
fn vectors() -> Vec<(String, String, String, bool)> {
    let list = json(&vector("vectors.json"));
    list.as_array()
        .expect("a list")
        .iter()
        .map(|v| {
            let text = |k: &str| v[k].as_str().expect("a string").to_string();
            (text("file"), text("key"), text("fingerprint"), !v["salt"].is_null())
        })
        .collect()
}

fn vector(name: &str) -> Vec<u8> {
    let path = format!("{}/../../testdata/pbs-keys/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).expect("valid JSON")
}

/// Imports a vector into a fresh keybox with a recovery-code slot (code in code.txt).
fn import(dir: &Dir, name: &str, encrypted: bool) {
    dir.write("src.json", &vector(name));
    dir.write("pass.txt", PASSPHRASE);
    let mut args = vec![
        "init",
        "--import-pbs",
        "src.json",
        "--with",
        "recovery-code",
        "--code-out",
        "code.txt",
    ];
    if encrypted {
        args.extend(["--pbs-passphrase-file", "pass.txt"]);
    }
    dir.ok(args);
}

#[test]
fn every_vector_imports_with_its_pbs_fingerprint_and_exports_its_key() {
    for (name, key, fp, encrypted) in vectors() {
        let dir = Dir::new("pbs-vector");
        import(&dir, &name, encrypted);
        assert_eq!(dir.read("src.json"), vector(&name), "C1: {name} is byte-identical after init");
        let list = json(&dir.ok(["list", "--json"]).output.stdout);
        assert_eq!(list["pbs"]["fingerprint"], fp.as_str(), "{name}: stored PBS fingerprint");
        assert_eq!(
            dir.ok(["fingerprint", "--pbs", "--short"]).stdout().trim(),
            &fp[..23],
            "{name}"
        );

        dir.ok([
            "unlock",
            "--code-file",
            "code.txt",
            "--format",
            "pbs",
            "--kdf",
            "none",
            "--out",
            "out.json",
        ]);
        let written = json(&dir.read("out.json"));
        let original = json(&vector(&name));
        assert_eq!(written["kdf"], serde_json::Value::Null, "{name}");
        assert_eq!(written["created"], original["created"], "{name}: created is kept");
        assert_ne!(written["modified"], original["modified"], "{name}: modified is fresh");
        assert_eq!(written["fingerprint"], fp.as_str(), "{name}");
        let data = written["data"].as_str().expect("data");
        let decoded = base64::engine::general_purpose::STANDARD.decode(data).expect("base64");
        assert_eq!(hex(&decoded), key, "{name}: the written file holds the key");
        dir.ok(["unlock", "--code-file", "code.txt", "--out", "raw.key"]);
        assert_eq!(hex(&dir.read("raw.key")), key, "{name}: raw key");
        assert_eq!(dir.mode("out.json"), 0o600);
    }
}

#[test]
fn an_encrypted_vector_refuses_another_passphrase() {
    for (name, ..) in vectors().into_iter().filter(|v| v.3) {
        let dir = Dir::new("pbs-wrong-pass");
        dir.write("src.json", &vector(&name));
        dir.write("wrong.txt", b"not-the-passphrase");
        let out = dir
            .keyward()
            .args([
                "init",
                "--import-pbs",
                "src.json",
                "--with",
                "plain",
                "--pbs-passphrase-file",
                "wrong.txt",
            ])
            .run();
        out.assert_exit_code(3).assert_one_line_error();
        assert!(!dir.keybox().exists(), "{name}: no keybox from a wrong passphrase");
        assert_eq!(dir.read("src.json"), vector(&name), "C1: {name} is byte-identical");
    }
}

#[test]
fn unlock_writes_an_scrypt_pbs_file_that_opens_with_its_passphrase() {
    let dir = Dir::new("pbs-scrypt-out");
    import(&dir, "random-kdf-none.json", false);
    dir.write("new-pass.txt", b"a new pbs passphrase");
    let args = ["unlock", "--code-file", "code.txt", "--format", "pbs", "--kdf", "scrypt"];
    dir.ok(args.iter().copied().chain([
        "--pbs-passphrase-file",
        "new-pass.txt",
        "--out",
        "enc.json",
    ]));
    let written = json(&dir.read("enc.json"));
    assert_eq!(written["kdf"]["Scrypt"]["n"], 65536);
    // Reading it back needs that passphrase, and gives the same key.
    let other = Dir::new("pbs-scrypt-in");
    other.write("enc.json", &dir.read("enc.json"));
    other.write("new-pass.txt", b"a new pbs passphrase");
    other.ok([
        "init",
        "--import-pbs",
        "enc.json",
        "--pbs-passphrase-file",
        "new-pass.txt",
        "--with",
        "plain",
    ]);
    other.ok(["unlock", "--out", "raw.key"]);
    assert_eq!(hex(&other.read("raw.key")), RANDOM_KEY);
}

#[test]
fn c1_the_imported_file_is_byte_identical_after_import_export_and_recovery() {
    let dir = Dir::new("pbs-c1");
    import(&dir, "random-kdf-scrypt.json", true);
    let before = dir.sha256("src.json");
    dir.ok(["escrow", "export-blob", "--code-file", "code.txt", "--out", "blob.json"]);
    assert_eq!(dir.sha256("src.json"), before, "after export-blob");
    let blob_before = dir.sha256("blob.json");
    dir.ok([
        "recover",
        "--blob",
        "blob.json",
        "--code-file",
        "code.txt",
        "--expect-fingerprint",
        RANDOM_FP,
        "--out",
        "k.json",
    ]);
    assert_eq!(dir.sha256("src.json"), before, "after recover");
    assert_eq!(dir.sha256("blob.json"), blob_before, "recover only reads the blob");
}

#[test]
fn recovery_fails_closed_on_a_wrong_code_or_fingerprint() {
    let dir = Dir::new("pbs-fail-closed");
    import(&dir, "random-kdf-none.json", false);
    dir.ok(["escrow", "export-blob", "--code-file", "code.txt", "--out", "blob.json"]);
    let blob_before = dir.sha256("blob.json");

    let elsewhere = Dir::new("pbs-other-code");
    dir.write("wrong-code.txt", elsewhere.init_with_code().as_bytes());
    let out = dir
        .keyward()
        .args(["recover", "--blob", "blob.json", "--code-file", "wrong-code.txt"])
        .args(["--expect-fingerprint", RANDOM_FP, "--out", "k.json"])
        .run();
    out.assert_exit_code(3).assert_one_line_error();
    assert!(!dir.path("k.json").exists(), "no output file after a wrong code{}", out.report());
    assert_eq!(dir.sha256("blob.json"), blob_before, "the blob is unchanged");

    let out = dir
        .keyward()
        .args(["recover", "--blob", "blob.json", "--code-file", "code.txt"])
        .args(["--expect-fingerprint", &UPSTREAM_FP[..23], "--out", "k.json"])
        .run();
    out.assert_exit_code(5).assert_one_line_error();
    let stderr = out.stderr();
    assert!(
        stderr.contains(&RANDOM_FP[..23]) && stderr.contains(&UPSTREAM_FP[..23]),
        "names the fingerprints found and expected{}",
        out.report()
    );
    assert!(!dir.path("k.json").exists(), "no output file after a fingerprint mismatch");
}

#[test]
fn export_then_recover_on_an_empty_machine_installs_the_same_key() {
    let dir = Dir::new("pbs-export");
    import(&dir, "random-kdf-pbkdf2.json", true);
    dir.ok(["escrow", "export-blob", "--code-file", "code.txt", "--out", "blob.json"]);
    let blob = json(&dir.read("blob.json"));
    assert_eq!(blob["kdf"]["Scrypt"]["n"], 65536, "the blob is a PBS scrypt key file");
    assert_eq!(blob["fingerprint"], RANDOM_FP);

    // A fresh machine: nothing but the blob and the code.
    let fresh = Dir::new("pbs-fresh");
    fresh.write("blob.json", &dir.read("blob.json"));
    fresh.write("code.txt", &dir.read("code.txt"));
    let recover = [
        "recover",
        "--blob",
        "blob.json",
        "--code-file",
        "code.txt",
        "--expect-fingerprint",
        &RANDOM_FP[..23],
    ];
    fresh.ok(recover.iter().copied().chain(["--install"]));
    let installed = ".config/proxmox-backup/encryption-key.json";
    let key_file = json(&fresh.read(installed));
    assert_eq!(key_file["kdf"], serde_json::Value::Null);
    assert_eq!(key_file["fingerprint"], RANDOM_FP);
    assert_eq!(fresh.mode(installed), 0o600);
    assert_eq!(fresh.mode(".config/proxmox-backup"), 0o700);

    // An existing key is never overwritten without --force.
    fresh.write(installed, b"{\"the\":\"operator's own key\"}");
    let out = fresh.keyward().args(recover).args(["--install"]).run();
    out.assert_exit_code(7).assert_one_line_error();
    assert_eq!(fresh.read(installed), b"{\"the\":\"operator's own key\"}");
    fresh.ok(recover.iter().copied().chain(["--install", "--force"]));
    assert_eq!(json(&fresh.read(installed))["fingerprint"], RANDOM_FP);

    // And the raw key is the one imported.
    fresh.ok(recover.iter().copied().chain(["--out", "raw.key", "--format", "raw"]));
    assert_eq!(hex(&fresh.read("raw.key")), RANDOM_KEY);
}

#[test]
fn a_bad_key_file_is_named_with_its_field() {
    let dir = Dir::new("pbs-bad-file");
    let unknown = String::from_utf8(vector("random-kdf-scrypt.json"))
        .expect("text")
        .replace("\"Scrypt\"", "\"Argon2\"");
    dir.write("unknown.json", unknown.as_bytes());
    let out = dir.keyward().args(["init", "--import-pbs", "unknown.json", "--with", "plain"]).run();
    out.assert_exit_code(4).assert_one_line_error();
    assert!(out.stderr().contains("`kdf`") && out.stderr().contains("Argon2"), "{}", out.report());

    let full = vector("random-kdf-none.json");
    dir.write("truncated.json", &full[..full.len() - 20]);
    let out =
        dir.keyward().args(["init", "--import-pbs", "truncated.json", "--with", "plain"]).run();
    out.assert_exit_code(4).assert_one_line_error();
    assert!(out.stderr().contains("truncated"), "{}", out.report());
    assert!(!dir.keybox().exists());
}

#[test]
fn a_key_that_is_not_32_bytes_is_not_written_as_a_pbs_file() {
    let dir = Dir::new("pbs-length");
    dir.ok(["init", "--with", "plain", "--bytes", "64"]);
    let out = dir.keyward().args(["unlock", "--format", "pbs", "--out", "k.json"]).run();
    out.assert_exit_code(2).assert_one_line_error();
    assert!(!dir.path("k.json").exists());
}

#[test]
fn a_pbs_passphrase_without_scrypt_is_refused_not_ignored() {
    let dir = Dir::new("pbs-options");
    import(&dir, "random-kdf-none.json", false);
    dir.write("new-pass.txt", b"a new pbs passphrase");
    for args in [
        vec!["--format", "pbs", "--pbs-passphrase-file", "new-pass.txt"],
        vec!["--format", "raw", "--kdf", "scrypt"],
    ] {
        let out = dir
            .keyward()
            .args(["unlock", "--code-file", "code.txt", "--out", "k"])
            .args(args)
            .run();
        out.assert_exit_code(2).assert_one_line_error();
        assert!(!dir.path("k").exists(), "nothing is written{}", out.report());
    }
}
