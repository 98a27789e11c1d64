//! LUKS2 image files for tests (feature `test-support`), for this crate's tests and the CLI's:
//! made with `cryptsetup luksFormat` and checked with the `cryptsetup` CLI itself (luksDump,
//! open --test-passphrase), never through keyward's own reading. A machine without the
//! cryptsetup CLI fails the test, naming the package.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::kdf::{Kdf, KeyslotKdf};

/// The user's passphrase, in keyslot 0 of every [`new_volume`].
pub const USER_PASSPHRASE: &[u8] = b"correct horse battery staple";

/// Keyslots cheap enough for tests that make dozens: argon2id, 4 passes, 32 MiB, one thread.
pub const FAST: KeyslotKdf = KeyslotKdf {
    kdf: Some(Kdf::Argon2id),
    iter_time_ms: None,
    memory_kib: Some(32 * 1024),
    parallel: Some(1),
    iterations: Some(4),
};

/// [`FAST`] as options of `cryptsetup` and `keyward luks`.
pub const FAST_ARGS: [&str; 8] = [
    "--pbkdf",
    "argon2id",
    "--pbkdf-force-iterations",
    "4",
    "--pbkdf-memory",
    "32768",
    "--pbkdf-parallel",
    "1",
];

/// A `cryptsetup` command; fails the test if the CLI is missing.
pub fn cryptsetup() -> Command {
    let found = Command::new("cryptsetup").arg("--version").output().map(|o| o.status.success());
    assert!(
        matches!(found, Ok(true)),
        "these tests need the cryptsetup CLI (apt-get install cryptsetup-bin; scripts/test-all.sh does)"
    );
    Command::new("cryptsetup")
}

/// Runs `cryptsetup ARGS IMAGE TAIL` with `stdin`, asserting success; returns stdout.
pub fn cryptsetup_ok(args: &[&str], image: &Path, tail: &[&str], stdin: &[u8]) -> Vec<u8> {
    let mut child = cryptsetup()
        .args(args)
        .arg(image)
        .args(tail)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cryptsetup");
    child.stdin.take().expect("stdin").write_all(stdin).expect("stdin");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "cryptsetup {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// A new 20 MiB LUKS2 image at `image` with [`USER_PASSPHRASE`] in keyslot 0.
pub fn new_volume(image: &Path) -> PathBuf {
    std::fs::File::create(image).and_then(|f| f.set_len(20 << 20)).expect("image file");
    let mut args = vec!["luksFormat", "--type", "luks2", "--batch-mode", "--key-file", "-"];
    args.extend(FAST_ARGS);
    cryptsetup_ok(&args, image, &[], USER_PASSPHRASE);
    image.to_path_buf()
}

/// The header's JSON metadata, as `cryptsetup luksDump --dump-json-metadata` prints it.
pub fn dump(image: &Path) -> Value {
    serde_json::from_slice(&cryptsetup_ok(&["luksDump", "--dump-json-metadata"], image, &[], b""))
        .expect("luksDump JSON")
}

/// The keyward tokens of a [`dump`].
pub fn keyward_tokens(dump: &Value) -> Vec<Value> {
    let tokens = dump["tokens"].as_object().expect("tokens");
    tokens.values().filter(|t| t["type"] == "keyward").cloned().collect()
}

/// The keyslot numbers of a [`dump`].
pub fn keyslots(dump: &Value) -> Vec<String> {
    dump["keyslots"].as_object().expect("keyslots").keys().cloned().collect()
}

/// Whether `passphrase` opens `image` (in `keyslot`, if given), as `cryptsetup open
/// --test-passphrase` judges.
pub fn opens(image: &Path, passphrase: &[u8], keyslot: Option<u32>) -> bool {
    let mut command = cryptsetup();
    command.args(["open", "--test-passphrase", "--key-file", "-"]);
    if let Some(k) = keyslot {
        command.args(["--key-slot", &k.to_string()]);
    }
    let mut child =
        command.arg(image).stdin(Stdio::piped()).stderr(Stdio::null()).spawn().expect("cryptsetup");
    child.stdin.take().expect("stdin").write_all(passphrase).expect("write passphrase");
    child.wait().expect("wait").success()
}
