//! The tpm2 slot against a real swtpm: each test starts its own swtpm on free loopback ports
//! with its state in the test's folder, and reaches it with a TCTI string; PCRs are changed and
//! the lockout set up with tpm2-tools. A machine without swtpm or tpm2-tools fails these tests,
//! naming the package; none is skipped.

mod util;

use keyward_tpm2::testing::Swtpm;
use util::{CANARY_KEY, CANARY_PASSPHRASE, Dir, Outcome};

/// A TPM of the test's own, with a known lockout (3 wrong PINs).
fn swtpm() -> Swtpm {
    let tpm = Swtpm::start();
    tpm.set_lockout(3);
    tpm
}

/// A keybox holding the canary key with a passphrase slot (slot 1), and a tpm2 slot (slot 2)
/// enrolled with `extra`.
fn keybox_with_tpm2(dir: &Dir, tpm: &Swtpm, extra: &[&str]) {
    dir.write("canary.key", CANARY_KEY);
    dir.write("passphrase.txt", CANARY_PASSPHRASE.as_bytes());
    dir.ok([
        "init",
        "--with",
        "passphrase",
        "--passphrase-file",
        "passphrase.txt",
        "--import",
        "canary.key",
        "--kdf-time-ms",
        "50",
        "--kdf-memory-mib",
        "19",
    ]);
    let tcti = tpm.tcti();
    let mut args = vec!["enroll", "tpm2", "--tpm2-device", &tcti];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--unlock-passphrase-file", "passphrase.txt"]);
    dir.ok(args);
}

/// `unlock --out - EXTRA`, with the environment naming the test's TPM (a TPM over the network
/// is used only when the environment names it).
fn unlock(dir: &Dir, tcti: &str, extra: &[&str]) -> Outcome {
    dir.keyward().env("KEYWARD_TPM2_DEVICE", tcti).args(["unlock", "--out", "-"]).args(extra).run()
}

fn assert_opens_to_canary(out: &Outcome) {
    out.assert_success();
    assert_eq!(out.output.stdout, CANARY_KEY, "{}", out.report());
}

#[test]
fn seed_004_the_tpm_opens_unattended_and_when_it_dies_the_passphrase_still_does() {
    let dir = Dir::new("tpm2-story");
    let tpm = swtpm();
    let tcti = tpm.tcti();
    keybox_with_tpm2(&dir, &tpm, &[]);
    let listing = dir.ok(["list"]).stdout();
    assert!(listing.contains("PCRs sha256:7") && listing.contains(&tpm.tcti()), "{listing}");

    // At boot: nobody there, the recorded TPM opens it.
    assert_opens_to_canary(&unlock(&dir, &tcti, &[]));
    assert_opens_to_canary(&unlock(&dir, &tcti, &["--slot", "tpm2-2"]));

    // The TPM dies: a new one (new state) answers at the same address.
    let port = tpm.port();
    drop(tpm);
    let _new = Swtpm::start_on(port);
    let before = dir.sha256("keybox.json");
    let failed = dir
        .keyward()
        .env("KEYWARD_TPM2_DEVICE", &tcti)
        .args(["unlock", "--slot", "tpm2-2", "--out", "k"])
        .run();
    failed.assert_exit_code(8).assert_one_line_error();
    assert!(failed.stderr().contains("cleared, or it is not the TPM"), "{}", failed.report());
    assert!(!dir.path("k").exists());
    assert_eq!(dir.sha256("keybox.json"), before);

    // The passphrase slot still opens the same key.
    assert_opens_to_canary(&unlock(&dir, &tcti, &["--passphrase-file", "passphrase.txt"]));
}

#[test]
fn a_tpm_that_is_gone_is_exit_8_naming_it() {
    let dir = Dir::new("tpm2-gone");
    let tpm = swtpm();
    let tcti = tpm.tcti();
    keybox_with_tpm2(&dir, &tpm, &[]);
    drop(tpm);
    let gone = unlock(&dir, &tcti, &["--slot", "tpm2-2"]);
    gone.assert_exit_code(8).assert_one_line_error();
    assert!(gone.stderr().contains(&tcti), "{}", gone.report());

    // A TPM over the network that the environment does not name is not used.
    let unnamed = dir.keyward().args(["unlock", "--slot", "tpm2-2", "--out", "-"]).run();
    unnamed.assert_exit_code(8).assert_one_line_error();
    assert!(unnamed.stderr().contains("set KEYWARD_TPM2_DEVICE"), "{}", unnamed.report());

    let no_device = dir
        .keyward()
        .args(["enroll", "tpm2", "--tpm2-device", "/dev/no-such-tpm"])
        .args(["--unlock-passphrase-file", "passphrase.txt"])
        .run();
    no_device.assert_exit_code(8).assert_one_line_error();
    assert!(no_device.stderr().contains("/dev/no-such-tpm"), "{}", no_device.report());
}

#[test]
fn tss_tracing_asked_for_logs_no_session_key_nor_what_the_tpm_unsealed() {
    let dir = Dir::new("tpm2-tss-log");
    let tpm = swtpm();
    let tcti = tpm.tcti();
    keybox_with_tpm2(&dir, &tpm, &[]);
    // At its trace level the TSS prints the session keys and the unsealed secret.
    let out = dir
        .keyward()
        .env("KEYWARD_TPM2_DEVICE", &tcti)
        .env("TSS2_LOG", "all+trace")
        .args(["unlock", "--slot", "tpm2-2", "--out", "-"])
        .run();
    assert_opens_to_canary(&out);
    let log = out.stderr();
    assert!(log.contains("would log secrets; logging all+warning instead"), "{}", out.report());
    for secret_line in ["Session Key", "Session Secret", "AES output", "session key"] {
        assert!(!log.contains(secret_line), "{secret_line} logged{}", out.report());
    }
}

#[test]
fn keyward_without_its_tpm2_helper_says_so_and_its_other_slots_still_open() {
    let dir = Dir::new("tpm2-no-helper");
    let tpm = swtpm();
    let tcti = tpm.tcti();
    keybox_with_tpm2(&dir, &tpm, &[]);
    // keyward copied alone: the helper is not beside it.
    let alone = dir.path("alone/keyward");
    std::fs::create_dir_all(dir.path("alone")).expect("folder");
    std::fs::copy(env!("CARGO_BIN_EXE_keyward"), &alone).expect("copy keyward");
    let before = dir.sha256("keybox.json");
    let failed = dir
        .keyward_at(&alone)
        .env("KEYWARD_TPM2_DEVICE", &tcti)
        .args(["unlock", "--slot", "tpm2-2", "--out", "k"])
        .run();
    failed.assert_exit_code(8).assert_one_line_error();
    assert!(
        failed.stderr().contains("helper `keyward-tpm2-helper` is not installed beside"),
        "{}",
        failed.report()
    );
    assert!(!dir.path("k").exists());
    assert_eq!(dir.sha256("keybox.json"), before);
    // Nothing else needs it.
    let opened = dir
        .keyward_at(&alone)
        .args(["unlock", "--slot", "1", "--passphrase-file", "passphrase.txt", "--out", "-"])
        .run();
    assert_opens_to_canary(&opened);
}

#[test]
fn changed_pcrs_are_exit_3_naming_them_and_reseal_binds_todays_values() {
    let dir = Dir::new("tpm2-pcrs");
    let tpm = swtpm();
    let tcti = tpm.tcti();
    keybox_with_tpm2(&dir, &tpm, &["--pcrs", "7+11"]);
    assert_opens_to_canary(&unlock(&dir, &tcti, &["--slot", "tpm2-2"]));

    tpm.extend(11);
    let before = dir.sha256("keybox.json");
    let changed =
        dir.keyward().env("KEYWARD_TPM2_DEVICE", &tcti).args(["unlock", "--out", "k"]).run();
    changed.assert_exit_code(3).assert_one_line_error();
    let message = changed.stderr();
    assert!(message.contains("PCR 11 (sha256) changed"), "{}", changed.report());
    assert!(!message.contains("PCR 7"), "only the changed PCR is named{}", changed.report());
    assert!(message.contains("keyward tpm2 reseal 2"), "the command to run{}", changed.report());
    assert!(!dir.path("k").exists());
    assert_eq!(dir.sha256("keybox.json"), before);

    // Reseal, authorised by the passphrase slot: the same device, PCR list and counter.
    let resealed =
        dir.ok(["tpm2", "reseal", "2", "--unlock-passphrase-file", "passphrase.txt"]).stdout();
    assert!(resealed.contains("sha256:7+11"), "{resealed}");
    assert_opens_to_canary(&unlock(&dir, &tcti, &[]));
    // And the passphrase still opens it after a change it did not see.
    tpm.extend(7);
    unlock(&dir, &tcti, &["--slot", "tpm2-2"]).assert_exit_code(3);
    assert_opens_to_canary(&unlock(&dir, &tcti, &["--passphrase-file", "passphrase.txt"]));
}

#[test]
fn wrong_pins_count_toward_the_lockout_and_a_locked_tpm_is_exit_9() {
    let dir = Dir::new("tpm2-pin");
    let tpm = swtpm();
    let tcti = tpm.tcti();
    dir.write("pin.txt", b"CANARY-PIN-2468\n");
    keybox_with_tpm2(&dir, &tpm, &["--with-pin", "--pin-file", "pin.txt"]);
    assert!(dir.ok(["list"]).stdout().contains("PIN"));
    let keybox = dir.read("keybox.json");
    assert!(!keybox.windows(15).any(|w| w == b"CANARY-PIN-2468"), "the PIN is not stored");

    // No PIN and no terminal: the slot is not opened unattended.
    unlock(&dir, &tcti, &["--slot", "tpm2-2"]).assert_exit_code(2);
    assert_opens_to_canary(&unlock(&dir, &tcti, &["--slot", "tpm2-2", "--pin-file", "pin.txt"]));

    dir.write("wrong.txt", b"1357\n");
    for left in ["2 of 3", "1 of 3", "0 of 3"] {
        let wrong = unlock(&dir, &tcti, &["--slot", "tpm2-2", "--pin-file", "wrong.txt"]);
        wrong.assert_exit_code(3).assert_one_line_error();
        assert!(wrong.stderr().contains(&format!("{left} tries left")), "{}", wrong.report());
    }
    let locked = unlock(&dir, &tcti, &["--slot", "tpm2-2", "--pin-file", "pin.txt"]);
    locked.assert_exit_code(9).assert_one_line_error();
    assert!(
        locked.stderr().contains("dictionary-attack lockout after 3 failed PINs"),
        "{}",
        locked.report()
    );
    // Another slot still opens it.
    assert_opens_to_canary(&unlock(&dir, &tcti, &["--passphrase-file", "passphrase.txt"]));
}

#[test]
fn an_older_copy_of_the_keybox_is_refused_through_the_tpm_slot() {
    let dir = Dir::new("tpm2-rollback");
    let tpm = swtpm();
    let tcti = tpm.tcti();
    keybox_with_tpm2(&dir, &tpm, &[]);
    assert_opens_to_canary(&unlock(&dir, &tcti, &[]));
    let old = dir.read("keybox.json");

    // A change (a key file slot), then the TPM opens the new file: its counter moves up.
    dir.ok([
        "enroll",
        "keyfile",
        "--keyfile",
        "slot.key",
        "--unlock-passphrase-file",
        "passphrase.txt",
    ]);
    assert_opens_to_canary(&unlock(&dir, &tcti, &["--slot", "tpm2-2"]));
    let current = dir.read("keybox.json");

    // The old copy put back: the TPM slot refuses it.
    dir.write("keybox.json", &old);
    let refused = unlock(&dir, &tcti, &["--slot", "tpm2-2"]);
    refused.assert_exit_code(3).assert_one_line_error();
    assert!(
        refused.stderr().contains("older than one this TPM has opened"),
        "{}",
        refused.report()
    );
    assert!(refused.output.stdout.is_empty());

    // The current file still opens, as often as asked (the counter is not moved twice).
    dir.write("keybox.json", &current);
    for _ in 0..2 {
        assert_opens_to_canary(&unlock(&dir, &tcti, &["--slot", "tpm2-2"]));
    }
}

#[test]
fn the_agent_opens_the_keybox_again_through_the_tpm_once_its_key_is_wiped() {
    let dir = Dir::new("tpm2-agent");
    let tpm = swtpm();
    let tcti = tpm.tcti();
    keybox_with_tpm2(&dir, &tpm, &[]);
    let socket = dir.path("agent.sock");
    let socket_text = socket.to_str().expect("utf-8").to_string();
    let (mut child, _) = dir
        .keyward()
        .env("KEYWARD_TPM2_DEVICE", &tcti)
        .args(["agent", "serve", "--ttl", "60s", "--socket", &socket_text])
        .spawn();
    util::wait_for_socket(&socket, &mut child, String::new);
    let _agent = util::KilledOnDrop(child);
    let client = |args: &[&str]| dir.keyward().args(args).args(["--socket", &socket_text]).run();
    // Started unattended through the TPM; wiped; the next request asks the TPM again.
    client(&["agent", "lock"]).assert_success();
    let again = client(&["agent", "get", "--out", "-"]);
    assert_opens_to_canary(&again);
    // The TPM gone: the wiped agent cannot open the keybox, and says so (exit 9).
    client(&["agent", "lock"]).assert_success();
    drop(tpm);
    let refused = client(&["agent", "get", "--out", "k"]);
    refused.assert_exit_code(9).assert_one_line_error();
    assert!(!dir.path("k").exists());
}

/// Issue 22.1: a copy of the keybox from before a reseal, a rotate or a remove of its tpm2 slot
/// never opens through the TPM again — even when commits in between left the counter behind the
/// file (every commit not followed by an open through the TPM does).
mod old_copies_after_the_slot_changed {
    use super::*;

    /// A keybox with a tpm2 slot (slot 2, `extra` options) and a commit after it that the TPM
    /// did not see (a key file enrolled through the passphrase). Returns the file as it is then.
    fn behind_the_counter(dir: &Dir, tpm: &Swtpm, extra: &[&str]) -> Vec<u8> {
        keybox_with_tpm2(dir, tpm, extra);
        dir.ok([
            "enroll",
            "keyfile",
            "--keyfile",
            "slot.key",
            "--unlock-passphrase-file",
            "passphrase.txt",
        ]);
        dir.read("keybox.json")
    }

    /// The NV index of the tpm2 slot (slot 2), as `list --json` shows it.
    fn nv_index(dir: &Dir) -> String {
        let listing: serde_json::Value =
            serde_json::from_str(&dir.ok(["list", "--json"]).stdout()).expect("list --json");
        listing["slots"][1]["nv_index"].as_str().expect("a tpm2 slot's nv_index").to_string()
    }

    /// Checks that the TPM slot refuses `old` (opened with `old_pin`) and opens the current
    /// file (with `unlock_args`); the current file is put back afterwards.
    fn assert_only_the_current_file_opens(
        dir: &Dir,
        tcti: &str,
        old: &[u8],
        old_pin: Option<&str>,
        unlock_args: &[&str],
    ) {
        let current = dir.read("keybox.json");
        assert_refused_through_the_tpm(dir, tcti, old, old_pin);
        dir.write("keybox.json", &current);
        assert_opens_to_canary(&unlock(dir, tcti, unlock_args));
    }

    /// Puts `old` back and checks the TPM slot refuses it (exit 3), writing nothing.
    fn assert_refused_through_the_tpm(dir: &Dir, tcti: &str, old: &[u8], pin: Option<&str>) {
        dir.write("keybox.json", old);
        let mut args = vec!["unlock", "--slot", "tpm2-2", "--out", "k"];
        if let Some(pin) = pin {
            args.extend_from_slice(&["--pin-file", pin]);
        }
        let refused = dir.keyward().env("KEYWARD_TPM2_DEVICE", tcti).args(&args).run();
        refused.assert_exit_code(3).assert_one_line_error();
        assert!(!dir.path("k").exists(), "nothing written{}", refused.report());
        assert_eq!(dir.read("keybox.json"), old, "the file is left as it was");
    }

    #[test]
    fn a_reseal_moves_the_counter_past_the_file_it_replaces() {
        let dir = Dir::new("tpm2-old-after-reseal");
        let tpm = swtpm();
        let tcti = tpm.tcti();
        let old = behind_the_counter(&dir, &tpm, &[]);
        dir.ok(["tpm2", "reseal", "2", "--unlock-passphrase-file", "passphrase.txt"]);
        assert_only_the_current_file_opens(&dir, &tcti, &old, None, &["--slot", "tpm2-2"]);
    }

    /// Review of issue 22.1: the counter was moved past the current file when the new slot was
    /// sealed, before the commit; a reseal that then failed to commit left the current file
    /// refused through its own TPM. It moves only once the new file is in place.
    #[test]
    fn a_reseal_that_does_not_commit_leaves_the_current_file_opening_through_the_tpm() {
        let dir = Dir::new("tpm2-reseal-not-committed");
        let tpm = swtpm();
        let tcti = tpm.tcti();
        let current = behind_the_counter(&dir, &tpm, &[]);
        // A folder where the new keybox's temporary file goes: the commit cannot be made.
        std::fs::create_dir_all(dir.path(".keybox.json.tmp/in-the-way")).expect("a folder");
        let reseal = ["tpm2", "reseal", "2", "--unlock-passphrase-file", "passphrase.txt"];
        let failed = dir.keyward().args(reseal).run();
        failed.assert_exit_code(1).assert_one_line_error();
        assert_eq!(dir.read("keybox.json"), current, "nothing committed");
        std::fs::remove_dir_all(dir.path(".keybox.json.tmp")).expect("clear the way");
        assert_opens_to_canary(&unlock(&dir, &tcti, &["--slot", "tpm2-2"]));
        // Committed, the same reseal refuses the file it replaced.
        dir.ok(reseal);
        assert_only_the_current_file_opens(&dir, &tcti, &current, None, &["--slot", "tpm2-2"]);
    }

    #[test]
    fn a_reseal_of_a_pin_slot_refuses_the_old_file_with_the_old_pin() {
        let dir = Dir::new("tpm2-old-pin-after-reseal");
        let tpm = swtpm();
        let tcti = tpm.tcti();
        dir.write("pin.txt", b"CANARY-PIN-2468\n");
        dir.write("new-pin.txt", b"CANARY-PIN-1357\n");
        // A PIN slot is never opened unattended: every commit leaves the counter behind.
        let old = behind_the_counter(&dir, &tpm, &["--with-pin", "--pin-file", "pin.txt"]);
        dir.ok([
            "tpm2",
            "reseal",
            "2",
            "--pin-file",
            "new-pin.txt",
            "--unlock-passphrase-file",
            "passphrase.txt",
        ]);
        let new_pin = ["--slot", "tpm2-2", "--pin-file", "new-pin.txt"];
        assert_only_the_current_file_opens(&dir, &tcti, &old, Some("pin.txt"), &new_pin);
    }

    #[test]
    fn a_rotate_with_a_pin_keeps_the_counter_and_moves_it_past_the_old_file() {
        let dir = Dir::new("tpm2-old-after-rotate");
        let tpm = swtpm();
        let tcti = tpm.tcti();
        dir.write("pin.txt", b"CANARY-PIN-2468\n");
        let old = behind_the_counter(&dir, &tpm, &[]);
        let before = nv_index(&dir);
        dir.ok([
            "rotate",
            "2",
            "--tpm2-device",
            &tcti,
            "--with-pin",
            "--pin-file",
            "pin.txt",
            "--unlock-passphrase-file",
            "passphrase.txt",
        ]);
        assert_eq!(nv_index(&dir), before, "the same TPM: the same counter, no NV space spent");
        // The old file's slot needs no PIN: it would open unattended if the counter let it.
        let pin = ["--slot", "tpm2-2", "--pin-file", "pin.txt"];
        assert_only_the_current_file_opens(&dir, &tcti, &old, None, &pin);
    }

    #[test]
    fn a_remove_retires_the_counter_and_a_counter_defined_again_starts_past_it() {
        let dir = Dir::new("tpm2-old-after-remove");
        let tpm = swtpm();
        let tcti = tpm.tcti();
        let old = behind_the_counter(&dir, &tpm, &[]);
        let index = nv_index(&dir);
        let removed = dir
            .keyward()
            .env("KEYWARD_TPM2_DEVICE", &tcti)
            .args(["remove", "2", "--unlock-passphrase-file", "passphrase.txt"])
            .run();
        removed.assert_success();
        assert!(!removed.stderr().contains("warning"), "retired cleanly{}", removed.report());
        assert_refused_through_the_tpm(&dir, &tcti, &old, None);
        let message = dir
            .keyward()
            .env("KEYWARD_TPM2_DEVICE", &tcti)
            .args(["unlock", "--slot", "tpm2-2", "--out", "-"])
            .run()
            .stderr();
        assert!(message.contains("was retired"), "{message}");

        // The index was freed; one defined again (anyone with the owner's empty password may)
        // starts at the highest value a counter of this TPM had, so past the old file still.
        tpm.tools(&[
            "tpm2_nvdefine",
            &index,
            "-C",
            "o",
            "-s",
            "8",
            "-a",
            "nt=counter|authread|authwrite|no_da",
        ]);
        tpm.tools(&["tpm2_nvincrement", &index, "-C", &index]);
        assert_refused_through_the_tpm(&dir, &tcti, &old, None);
    }
}

/// Issue 22.5: tpm2 slot parameters edited (the checksum made anew) ended in exit 1. Whatever
/// the edit, the slot fails closed with nothing written; an edit the TPM's answer shows (the
/// sealed object's bytes, what only the AEAD binds) is an integrity failure, exit 4.
#[test]
fn tampered_tpm2_slot_parameters_fail_closed_as_integrity_failures() {
    let dir = Dir::new("tpm2-tampered");
    let tpm = swtpm();
    let tcti = tpm.tcti();
    keybox_with_tpm2(&dir, &tpm, &[]);
    let original = dir.read("keybox.json");
    let base64_flip = |field: &'static str, at: usize| {
        move |params: &mut serde_json::Value| {
            let text = params[field].as_str().expect("base64");
            let mut bytes = keyward_core::encoding::from_base64(text).expect("bytes");
            let at = at % bytes.len();
            bytes[at] ^= 0x5a;
            params[field] = keyward_core::encoding::to_base64(&bytes).into();
        }
    };
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let mut edits: Vec<(String, Edit)> = Vec::new();
    for field in ["public", "private"] {
        for at in [0, 1, 2, 5, 9, 17, 33, 47, 64, 80, 101, 127] {
            edits.push((format!("{field}[{at}]"), Box::new(base64_flip(field, at))));
        }
    }
    edits.push((
        "pcr_values".into(),
        Box::new(|p: &mut serde_json::Value| p["pcr_values"][0] = "ab".repeat(32).into()),
    ));
    edits.push((
        "nv_base".into(),
        Box::new(|p: &mut serde_json::Value| {
            p["nv_base"] = (p["nv_base"].as_u64().expect("u64") + 7).into()
        }),
    ));
    for (what, edit) in &edits {
        dir.write("keybox.json", &original);
        dir.tamper_slot_params(1, edit);
        let tampered = dir.read("keybox.json");
        let out = dir
            .keyward()
            .env("KEYWARD_TPM2_DEVICE", &tcti)
            .args(["unlock", "--slot", "tpm2-2", "--out", "k"])
            .run();
        out.assert_exit_code(4).assert_one_line_error();
        assert!(!dir.path("k").exists(), "{what}: nothing written");
        assert_eq!(dir.read("keybox.json"), tampered, "{what}: the file is left as it was");
    }
    // The counter was never moved by a tampered file: the genuine one still opens.
    dir.write("keybox.json", &original);
    assert_opens_to_canary(&unlock(&dir, &tcti, &["--slot", "tpm2-2"]));
}
