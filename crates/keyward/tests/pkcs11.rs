//! The pkcs11 slot against a real SoftHSM2 token: each test initialises its own token in its own
//! folder (`softhsm2-util --init-token`, `SOFTHSM2_CONF` pointing there). A machine without
//! SoftHSM2 fails these tests, naming the package; none is skipped.

mod util;

use std::path::PathBuf;
use std::process::Command;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use util::{CANARY_KEY, Dir, TestCommand};

const TOKEN: &str = "kw-test";
const PIN: &str = "CANARY-PIN-4711";
const SO_PIN: &str = "so-pin-87654321";
const MODULES: [&str; 2] =
    ["/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"];

/// A SoftHSM2 token store of the test's own, with one token labelled [`TOKEN`].
struct SoftHsm {
    conf: PathBuf,
    tokens: PathBuf,
    module: PathBuf,
}

impl SoftHsm {
    fn new(dir: &Dir) -> SoftHsm {
        let module = MODULES.iter().map(PathBuf::from).find(|m| m.exists()).unwrap_or_else(|| {
            panic!(
                "SoftHSM2's PKCS#11 module is not at {MODULES:?}: install the Debian package \
                 softhsm2 (scripts/test-all.sh does)"
            )
        });
        let tokens = dir.path("softhsm-tokens");
        std::fs::create_dir(&tokens).expect("token folder");
        let conf = dir.write(
            "softhsm2.conf",
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            )
            .as_bytes(),
        );
        let hsm = SoftHsm { conf, tokens, module };
        hsm.init_token(TOKEN);
        hsm
    }

    /// Initialises a token labelled `label` in the first free slot.
    fn init_token(&self, label: &str) {
        let status = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &self.conf)
            .args(["--init-token", "--free", "--label", label, "--so-pin", SO_PIN, "--pin", PIN])
            .output()
            .unwrap_or_else(|e| {
                panic!("softhsm2-util cannot run ({e}): install the Debian package softhsm2")
            });
        assert!(
            status.status.success(),
            "softhsm2-util: {}",
            String::from_utf8_lossy(&status.stderr)
        );
    }

    /// Every token gone, as if the HSM were wiped.
    fn wipe(&self) {
        std::fs::remove_dir_all(&self.tokens).expect("wipe tokens");
        std::fs::create_dir(&self.tokens).expect("token folder");
    }

    /// A `keyward` command that sees this token store.
    fn keyward(&self, dir: &Dir) -> TestCommand {
        dir.keyward().env("SOFTHSM2_CONF", &self.conf)
    }

    /// `enroll pkcs11` with `extra` options, authorised by the key-file slot.
    fn enroll(&self, dir: &Dir, extra: &[&str]) -> util::Outcome {
        let module = self.module.to_str().expect("utf-8");
        let mut args = vec!["enroll", "pkcs11", "--module", module, "--token", TOKEN];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--unlock-keyfile", "slot.key"]);
        self.keyward(dir).args(args).run()
    }

    /// A logged-in session on the token, for looking at (and planting) keys as another program.
    fn session(&self) -> (Pkcs11, Session) {
        // SAFETY of the test: each test is its own process (nextest), so the variable is read
        // only by this test's module.
        unsafe { std::env::set_var("SOFTHSM2_CONF", &self.conf) };
        let module = Pkcs11::new(&self.module).expect("load SoftHSM2");
        module.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)).expect("init");
        let slot = module
            .get_slots_with_token()
            .expect("slots")
            .into_iter()
            .find(|s| module.get_token_info(*s).expect("info").label().trim_end() == TOKEN)
            .expect("the test token");
        let session = module.open_rw_session(slot).expect("session");
        session.login(UserType::User, Some(&AuthPin::new(PIN.into()))).expect("login");
        (module, session)
    }

    /// Sets CKF_USER_PIN_LOCKED in the token's stored flags. SoftHSM2 keeps no retry counter, so
    /// it never locks a PIN itself; it does report a lock recorded in its token state, which is
    /// what a real token says after too many wrong PINs.
    fn lock_user_pin(&self) {
        self.set_token_flag(CKF_USER_PIN_LOCKED);
    }

    /// Sets `flag` in the (only) token's stored flags.
    fn set_token_flag(&self, flag: u64) {
        let token =
            std::fs::read_dir(&self.tokens).expect("tokens").next().expect("one").expect("entry");
        let path = token.path().join("token.object");
        let mut bytes = std::fs::read(&path).expect("token.object");
        let at = flags_at(&bytes);
        let flags = u64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        bytes[at..at + 8].copy_from_slice(&(flags | flag).to_be_bytes());
        std::fs::write(&path, bytes).expect("write token.object");
    }

    /// The folders of the tokens in the store, one per token.
    fn token_folders(&self) -> Vec<std::ffi::OsString> {
        std::fs::read_dir(&self.tokens)
            .expect("tokens")
            .map(|e| e.expect("entry").file_name())
            .collect()
    }
}

const CKF_USER_PIN_FINAL_TRY: u64 = 0x0002_0000;
const CKF_USER_PIN_LOCKED: u64 = 0x0004_0000;

/// Where a SoftHSM2 `token.object` keeps the token's flags: after the attribute's type (8
/// bytes) and its value kind (8: an unsigned long).
fn flags_at(bytes: &[u8]) -> usize {
    const CKA_OS_TOKENFLAGS: u64 = 0x8000_534b;
    let tag = CKA_OS_TOKENFLAGS.to_be_bytes();
    bytes.windows(8).position(|w| w == tag).expect("the flags attribute") + 16
}

fn keyfile_box_with_pin_file(dir: &Dir) {
    dir.init_keyfile_canary();
    dir.write("token.pin", format!("{PIN}\n").as_bytes());
}

fn unlock_through(hsm: &SoftHsm, dir: &Dir, slot: &str, extra: &[&str]) -> util::Outcome {
    let mut args = vec!["unlock", "--slot", slot, "--out", "-"];
    args.extend_from_slice(extra);
    hsm.keyward(dir).args(args).run()
}

#[test]
fn a_token_slot_opens_unattended_and_its_wrapping_key_never_leaves_the_token() {
    let dir = Dir::new("pkcs11-unattended");
    let hsm = SoftHsm::new(&dir);
    keyfile_box_with_pin_file(&dir);
    let enrolled = hsm.enroll(&dir, &["--pin-file", "token.pin"]);
    enrolled.assert_success();
    let listing = hsm.keyward(&dir).args(["list", "--json"]).run();
    listing.assert_success();
    let listing = listing.stdout();
    assert!(
        listing.contains("\"kind\": \"pkcs11\"") || listing.contains("\"kind\":\"pkcs11\""),
        "{listing}"
    );
    assert!(
        listing.contains(&dir.path("token.pin").display().to_string()),
        "the PIN file is recorded"
    );

    // Only the token slot left (the key file was the last offline fallback: --force), and a
    // plain `unlock` opens it with nobody there.
    hsm.keyward(&dir)
        .args(["remove", "keyfile-1", "--unlock-slot", "pkcs11-2", "--force"])
        .run()
        .assert_success();
    let unlocked = hsm.keyward(&dir).args(["unlock", "--out", "-"]).run();
    unlocked.assert_success();
    assert_eq!(unlocked.output.stdout, CANARY_KEY);

    // The key keyward created is in the token, sensitive and never extractable: its value cannot
    // be read by anyone who logs in.
    let (_module, session) = hsm.session();
    let keys = session
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(b"keyward".to_vec()),
        ])
        .expect("find");
    assert_eq!(keys.len(), 1, "one wrapping key");
    let attributes = session
        .get_attributes(
            keys[0],
            &[
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::NeverExtractable,
            ],
        )
        .expect("attributes");
    for attribute in &attributes {
        match attribute {
            Attribute::Sensitive(yes) | Attribute::NeverExtractable(yes) => {
                assert!(*yes, "{attribute:?}")
            }
            Attribute::Extractable(yes) => assert!(!*yes, "{attribute:?}"),
            other => panic!("{other:?}"),
        }
    }
    let value = session.get_attributes(keys[0], &[AttributeType::Value]).unwrap_or_default();
    assert!(value.is_empty(), "the wrapping key's value must not come out: {value:?}");

    // Nothing secret in the file or in what was printed.
    let keybox = dir.read("keybox.json");
    for canary in [CANARY_KEY.as_slice(), PIN.as_bytes()] {
        assert!(!keybox.windows(canary.len()).any(|w| w == canary), "a canary in the keybox");
        assert!(!enrolled.output.stderr.windows(canary.len()).any(|w| w == canary));
    }
}

#[test]
fn a_wrong_pin_is_exit_3_and_changes_nothing() {
    let dir = Dir::new("pkcs11-wrong-pin");
    let hsm = SoftHsm::new(&dir);
    dir.init_keyfile_canary();
    // A PIN from stdin is not recorded: the slot asks for it at every unlock.
    hsm.keyward(&dir)
        .args([
            "enroll",
            "pkcs11",
            "--module",
            hsm.module.to_str().expect("utf-8"),
            "--token",
            TOKEN,
        ])
        .args(["--pin-file", "-", "--unlock-keyfile", "slot.key"])
        .stdin(PIN.as_bytes())
        .run()
        .assert_success();
    assert!(hsm.keyward(&dir).args(["list"]).run().stdout().contains("PIN asked at unlock"));
    let before = dir.sha256("keybox.json");

    dir.write("wrong.pin", b"000000\n");
    let wrong = hsm
        .keyward(&dir)
        .args(["unlock", "--slot", "pkcs11-2", "--pin-file", "wrong.pin", "--out", "k"])
        .run();
    wrong.assert_exit_code(3).assert_one_line_error();
    assert!(wrong.stderr().contains("wrong PIN for token \"kw-test\""), "{}", wrong.report());
    assert!(!dir.path("k").exists(), "no output file");
    assert_eq!(dir.sha256("keybox.json"), before, "the keybox is unchanged");

    // No PIN and nobody to ask: a usage error, not a guess.
    let nobody = unlock_through(&hsm, &dir, "pkcs11-2", &[]);
    nobody.assert_exit_code(2).assert_one_line_error();

    dir.write("right.pin", format!("{PIN}\n").as_bytes());
    let right = unlock_through(&hsm, &dir, "pkcs11-2", &["--pin-file", "right.pin"]);
    right.assert_success();
    assert_eq!(right.output.stdout, CANARY_KEY);
}

#[test]
fn a_missing_module_token_or_key_is_exit_8_naming_it() {
    let dir = Dir::new("pkcs11-absent");
    let hsm = SoftHsm::new(&dir);
    keyfile_box_with_pin_file(&dir);
    // A copy of the module, so it can disappear.
    let module = dir.path("libsofthsm2-copy.so");
    std::fs::copy(&hsm.module, &module).expect("copy module");
    let module_text = module.to_str().expect("utf-8");
    hsm.keyward(&dir)
        .args([
            "enroll",
            "pkcs11",
            "--module",
            module_text,
            "--token",
            TOKEN,
            "--pin-file",
            "token.pin",
        ])
        .args(["--unlock-keyfile", "slot.key"])
        .run()
        .assert_success();
    hsm.enroll(&dir, &["--pin-file", "token.pin", "--key-label", "second"]).assert_success();

    // A module others could have written is not loaded (it is code keyward would run).
    std::fs::set_permissions(&module, std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .expect("chmod");
    let writable = unlock_through(&hsm, &dir, "pkcs11-2", &[]);
    writable.assert_exit_code(9).assert_one_line_error();
    assert!(writable.stderr().contains("writable by other users"), "{}", writable.report());

    std::fs::remove_file(&module).expect("remove module");
    let gone = unlock_through(&hsm, &dir, "pkcs11-2", &[]);
    gone.assert_exit_code(8).assert_one_line_error();
    assert!(gone.stderr().contains(module_text), "names the module{}", gone.report());

    // The key the slot was sealed under deleted from its token (as re-initialising a hardware
    // token does; a re-initialised SoftHSM2 token has another serial, and reads as a
    // look-alike, tested below).
    {
        let (_module, session) = hsm.session();
        let second = Attribute::Label(b"second".to_vec());
        for key in session.find_objects(&[second]).expect("find") {
            session.destroy_object(key).expect("delete the key");
        }
    }
    let no_key = unlock_through(&hsm, &dir, "pkcs11-3", &[]);
    no_key.assert_exit_code(8).assert_one_line_error();
    assert!(no_key.stderr().contains("no key labelled \"second\""), "{}", no_key.report());

    // No token of that label at all.
    hsm.wipe();
    hsm.init_token("another");
    let no_token = unlock_through(&hsm, &dir, "pkcs11-3", &[]);
    no_token.assert_exit_code(8).assert_one_line_error();
    assert!(no_token.stderr().contains("no token labelled \"kw-test\""), "{}", no_token.report());

    // The other slots still open the key.
    let by_file = hsm.keyward(&dir).args(["unlock", "--keyfile", "slot.key", "--out", "-"]).run();
    by_file.assert_success();
    assert_eq!(by_file.output.stdout, CANARY_KEY);
}

#[test]
fn a_locked_pin_is_exit_9() {
    let dir = Dir::new("pkcs11-locked");
    let hsm = SoftHsm::new(&dir);
    keyfile_box_with_pin_file(&dir);
    hsm.enroll(&dir, &["--pin-file", "token.pin"]).assert_success();
    hsm.lock_user_pin();
    let locked = unlock_through(&hsm, &dir, "pkcs11-2", &[]);
    locked.assert_exit_code(9).assert_one_line_error();
    assert!(locked.stderr().contains("PIN of token \"kw-test\" is locked"), "{}", locked.report());
}

#[test]
fn an_extractable_key_is_refused_and_a_fit_one_is_shared() {
    let dir = Dir::new("pkcs11-existing");
    let hsm = SoftHsm::new(&dir);
    keyfile_box_with_pin_file(&dir);
    {
        let (_module, session) = hsm.session();
        session
            .generate_key(
                &Mechanism::AesKeyGen,
                &[
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sensitive(false),
                    Attribute::Extractable(true),
                    Attribute::Encrypt(true),
                    Attribute::Decrypt(true),
                    Attribute::ValueLen(32.into()),
                    Attribute::Label(b"loose".to_vec()),
                ],
            )
            .expect("an extractable key");
    }
    let before = dir.sha256("keybox.json");
    let refused = hsm.enroll(&dir, &["--pin-file", "token.pin", "--key-label", "loose"]);
    refused.assert_exit_code(3).assert_one_line_error();
    assert!(refused.stderr().contains("not fit to wrap"), "{}", refused.report());
    assert_eq!(dir.sha256("keybox.json"), before);

    // Two slots under one wrapping key: the second finds the key the first created.
    hsm.enroll(&dir, &["--pin-file", "token.pin"]).assert_success();
    hsm.enroll(&dir, &["--pin-file", "token.pin"]).assert_success();
    for slot in ["pkcs11-2", "pkcs11-3"] {
        let opened = unlock_through(&hsm, &dir, slot, &[]);
        opened.assert_success();
        assert_eq!(opened.output.stdout, CANARY_KEY);
    }
    let (_module, session) = hsm.session();
    let keys = session
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
        ])
        .expect("find");
    assert_eq!(keys.len(), 2, "the planted key and one keyward key");
}

#[test]
fn a_pin_file_others_can_read_is_refused_at_enroll_and_at_unlock() {
    let dir = Dir::new("pkcs11-pin-mode");
    let hsm = SoftHsm::new(&dir);
    keyfile_box_with_pin_file(&dir);
    std::fs::set_permissions(
        dir.path("token.pin"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .expect("chmod");
    let before = dir.sha256("keybox.json");
    let refused = hsm.enroll(&dir, &["--pin-file", "token.pin"]);
    refused.assert_exit_code(9).assert_one_line_error();
    assert!(refused.stderr().contains("chmod 600"), "{}", refused.report());
    assert_eq!(dir.sha256("keybox.json"), before);

    // Recorded while private, then opened up: refused at unlock too, never read.
    std::fs::set_permissions(
        dir.path("token.pin"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");
    hsm.enroll(&dir, &["--pin-file", "token.pin"]).assert_success();
    std::fs::set_permissions(
        dir.path("token.pin"),
        std::os::unix::fs::PermissionsExt::from_mode(0o640),
    )
    .expect("chmod");
    let opened_up = unlock_through(&hsm, &dir, "pkcs11-2", &[]);
    opened_up.assert_exit_code(9).assert_one_line_error();
    assert!(opened_up.stderr().contains("holds a slot's PIN"), "{}", opened_up.report());
}

/// Issue 22.5: a token was found by its label only, so a look-alike token with the same label
/// got the PIN. The slot records the token's serial, picks the token by it, and refuses a
/// look-alike without reading or sending the PIN.
#[test]
fn a_look_alike_token_with_the_same_label_is_refused_before_its_pin_is_read() {
    let dir = Dir::new("pkcs11-look-alike");
    let hsm = SoftHsm::new(&dir);
    keyfile_box_with_pin_file(&dir);
    hsm.enroll(&dir, &["--pin-file", "token.pin"]).assert_success();
    let listing: serde_json::Value =
        serde_json::from_str(&hsm.keyward(&dir).args(["list", "--json"]).run().stdout())
            .expect("list --json");
    let serial = listing["slots"][1]["serial"].as_str().expect("a recorded serial").to_string();
    let genuine = hsm.token_folders();
    assert_eq!(genuine.len(), 1);

    // A second token with the same label beside it: the slot still opens through its own.
    hsm.init_token(TOKEN);
    let look_alike: Vec<_> =
        hsm.token_folders().into_iter().filter(|f| !genuine.contains(f)).collect();
    assert_eq!(look_alike.len(), 1);
    let opened = unlock_through(&hsm, &dir, "pkcs11-2", &[]);
    opened.assert_success();
    assert_eq!(opened.output.stdout, CANARY_KEY);

    // The genuine token gone, the look-alike alone: refused, naming the serial enrolled,
    // before the recorded PIN file is even read (a folder in its place would fail the read).
    std::fs::remove_dir_all(hsm.tokens.join(&genuine[0])).expect("unplug the genuine token");
    std::fs::remove_file(dir.path("token.pin")).expect("remove the PIN file");
    std::fs::create_dir(dir.path("token.pin")).expect("a folder in its place");
    let before = dir.sha256("keybox.json");
    let refused = unlock_through(&hsm, &dir, "pkcs11-2", &[]);
    refused.assert_exit_code(8).assert_one_line_error();
    assert!(
        refused.stderr().contains(&serial) && refused.stderr().contains("its PIN is not sent"),
        "{}",
        refused.report()
    );
    assert!(refused.output.stdout.is_empty());
    assert_eq!(dir.sha256("keybox.json"), before);
}

/// Issue 22.5: a recorded PIN file was tried even when the token reported its final PIN try.
#[test]
fn on_the_final_pin_try_the_recorded_pin_file_is_not_tried() {
    let dir = Dir::new("pkcs11-final-try");
    let hsm = SoftHsm::new(&dir);
    keyfile_box_with_pin_file(&dir);
    hsm.enroll(&dir, &["--pin-file", "token.pin"]).assert_success();
    hsm.set_token_flag(CKF_USER_PIN_FINAL_TRY);
    let refused = unlock_through(&hsm, &dir, "pkcs11-2", &[]);
    refused.assert_exit_code(9).assert_one_line_error();
    assert!(
        refused.stderr().contains("does not try the recorded PIN file"),
        "{}",
        refused.report()
    );
    // The person gives the PIN: tried, and it opens.
    let given = unlock_through(&hsm, &dir, "pkcs11-2", &["--pin-file", "token.pin"]);
    given.assert_success();
    assert_eq!(given.output.stdout, CANARY_KEY);
}

/// Issue 22.5: pkcs11 slot parameters edited (the checksum made anew) ended in exit 1. The
/// wrapped key or its nonce changed is an integrity failure (exit 4), nothing written.
#[test]
fn tampered_pkcs11_slot_parameters_are_integrity_failures() {
    let dir = Dir::new("pkcs11-tampered");
    let hsm = SoftHsm::new(&dir);
    keyfile_box_with_pin_file(&dir);
    hsm.enroll(&dir, &["--pin-file", "token.pin"]).assert_success();
    let original = dir.read("keybox.json");
    for field in ["nonce", "wrapped_kek"] {
        for at in [0, 3, 11] {
            dir.write("keybox.json", &original);
            dir.tamper_slot_params(1, |params| {
                let text = params[field].as_str().expect("base64");
                let mut bytes = keyward_core::encoding::from_base64(text).expect("bytes");
                bytes[at] ^= 0x01;
                params[field] = keyward_core::encoding::to_base64(&bytes).into();
            });
            let out = unlock_through(&hsm, &dir, "pkcs11-2", &[]);
            out.assert_exit_code(4).assert_one_line_error();
            assert!(out.output.stdout.is_empty(), "{field}[{at}]: nothing written");
        }
    }
    dir.write("keybox.json", &original);
    let opened = unlock_through(&hsm, &dir, "pkcs11-2", &[]);
    opened.assert_success();
    assert_eq!(opened.output.stdout, CANARY_KEY);
}
