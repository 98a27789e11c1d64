//! One test per hole a security review, a hostile test run or a trial as a new user found (in
//! the style of ripgrep's tests/regression.rs): each shows the hole is closed.

mod util;

use util::{CANARY_PASSPHRASE, Dir};

#[test]
fn kdf_settings_below_the_floor_are_refused() {
    let dir = Dir::new("kdf-floor");
    let code = dir.init_with_code();
    assert!(!code.is_empty());
    dir.write("pass.txt", CANARY_PASSPHRASE.as_bytes());
    let enroll = |kdf: &[&str]| {
        let opens = ["--unlock-code-file", "code.txt", "--passphrase-file", "pass.txt"];
        dir.keyward().args(["enroll", "passphrase"]).args(opens).args(kdf).run()
    };
    for kdf in [["--kdf-memory-mib", "1"], ["--kdf-memory-mib", "18"], ["--kdf-time-ms", "0"]] {
        enroll(&kdf).assert_exit_code(2).assert_one_line_error();
    }
    // The cheapest settings allowed still give OWASP's floor: m = 19 MiB, t ≥ 2.
    enroll(&["--kdf-time-ms", "10", "--kdf-memory-mib", "19"]).assert_success();
    let list: serde_json::Value =
        serde_json::from_str(&dir.ok(["list", "--json"]).stdout()).expect("json");
    let kdf = list["slots"][1]["kdf"].as_str().expect("kdf").to_string();
    let passes: u32 = kdf
        .split_whitespace()
        .find_map(|w| w.strip_prefix("t="))
        .and_then(|t| t.parse().ok())
        .expect("t=");
    assert!(kdf.contains("m=19 MiB") && passes >= 2, "{kdf}");
}

#[test]
fn stdin_named_twice_is_a_usage_error_and_nothing_is_made() {
    let dir = Dir::new("stdin-twice");
    let out = dir
        .keyward()
        .args(["init", "--with", "passphrase", "--import", "-", "--passphrase-file", "-"])
        .stdin(b"0123456789abcdef0123456789abcdef")
        .run();
    out.assert_exit_code(2).assert_one_line_error();
    assert!(out.stderr().contains("stdin"), "{}", out.report());
    assert!(!dir.keybox().exists(), "no keybox was made{}", out.report());
}

#[test]
fn verify_checks_the_slot_named_and_reports_every_slot() {
    let dir = Dir::new("verify-slots");
    dir.init_with_code();
    dir.enroll_passphrase();
    // Without a secret: each slot is listed, the two that need one as not checked.
    let report: serde_json::Value =
        serde_json::from_str(&dir.ok(["verify", "--json"]).stdout()).expect("json");
    let results: Vec<&str> = report["slots"]
        .as_array()
        .expect("slots")
        .iter()
        .map(|s| s["result"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(results, ["not-checked", "not-checked"], "{report}");
    assert_eq!(report["header_mac"], "not-checked");
    // The slot named is the one checked; not checkable without its secret is not a pass.
    dir.keyward()
        .args(["verify", "--slot", "pass"])
        .run()
        .assert_exit_code(2)
        .assert_one_line_error();
    dir.ok(["verify", "--slot", "pass", "--passphrase-file", "pass.txt"]);
    let wrong = dir.keyward().args(["verify", "--slot", "pass", "--code-file", "code.txt"]).run();
    wrong.assert_exit_code(2).assert_one_line_error();
    assert!(wrong.stderr().contains("passphrase slot"), "says why{}", wrong.report());
    // With the code: slot 1 opens, the passphrase slot is still named as not checked.
    let report: serde_json::Value =
        serde_json::from_str(&dir.ok(["verify", "--code-file", "code.txt", "--json"]).stdout())
            .expect("json");
    assert_eq!(report["slots"][0]["result"], "ok");
    assert_eq!(report["slots"][1]["result"], "not-checked");
    assert_eq!(report["header_mac"], "ok");
    // A secret that opens none of its slots is a wrong secret, not a pass.
    dir.write("wrong-pass.txt", b"not the passphrase at all");
    let wrong =
        dir.keyward().args(["verify", "--passphrase-file", "wrong-pass.txt", "--json"]).run();
    wrong.assert_exit_code(3).assert_one_line_error();
    let report: serde_json::Value = serde_json::from_str(&wrong.stdout()).expect("json");
    assert_eq!(report["ok"], false, "a script reading the report sees the failure too");
    // So does a slot named that could not be checked.
    let unchecked = dir.keyward().args(["verify", "--slot", "pass", "--json"]).run();
    unchecked.assert_exit_code(2);
    let report: serde_json::Value = serde_json::from_str(&unchecked.stdout()).expect("json");
    assert_eq!(report["ok"], false);
}

/// Issue 24.1 (verify and the drill are one workflow): a code given opens its slot, and a second
/// code slot it does not open is "not checked" (it needs its own code), not broken; a key-file
/// slot is proven beside the code, and is named broken once its file is gone; a PIN given without
/// a slot named is refused before any device is tried.
#[test]
fn verify_with_a_secret_proves_the_other_slots_too_and_excuses_only_another_code() {
    let dir = Dir::new("verify-given");
    dir.init_with_code();
    let second = [
        "enroll",
        "recovery-code",
        "--label",
        "second",
        "--code-out",
        "code2.txt",
        "--kdf-time-ms",
        "20",
        "--kdf-memory-mib",
        "19",
        "--unlock-code-file",
        "code.txt",
    ];
    dir.ok(second);
    dir.ok(["enroll", "keyfile", "--keyfile", "slot.key", "--unlock-code-file", "code.txt"]);
    let report = |out: &str| -> Vec<String> {
        let report: serde_json::Value = serde_json::from_str(out).expect("json");
        report["slots"]
            .as_array()
            .expect("slots")
            .iter()
            .map(|s| s["result"].as_str().unwrap_or("").to_string())
            .collect()
    };
    let out = dir.ok(["verify", "--code-file", "code.txt", "--json"]).stdout();
    assert_eq!(report(&out), ["ok", "not-checked", "ok"], "{out}");
    let text = dir.ok(["verify", "--code-file", "code.txt"]).stdout();
    assert!(
        text.contains("needs its own recovery code (the one given opens another slot)"),
        "{text}"
    );
    std::fs::remove_file(dir.path("slot.key")).expect("the key file goes");
    let out = dir.keyward().args(["verify", "--code-file", "code.txt", "--json"]).run();
    out.assert_exit_code(6).assert_one_line_error();
    assert_eq!(report(&out.stdout()), ["ok", "not-checked", "failed"], "{}", out.report());
    dir.write("pin.txt", b"1234");
    dir.keyward().args(["verify", "--pin-file", "pin.txt"]).run().assert_exit_code(2);
}

#[test]
fn a_broken_unattended_slot_is_named_and_verify_fails() {
    let dir = Dir::new("verify-broken");
    dir.init_keyfile_canary();
    dir.ok(["verify"]);
    std::fs::remove_file(dir.path("slot.key")).expect("the key file goes");
    let out = dir.keyward().args(["verify"]).run();
    out.assert_exit_code(6).assert_one_line_error();
    assert!(out.stderr().contains("slot.key"), "names the missing key file{}", out.report());
    assert!(out.stdout().contains("slot 1") && out.stdout().contains("FAILED"), "{}", out.report());
}

#[test]
fn a_damaged_escrow_blob_is_an_integrity_failure_not_a_wrong_code() {
    use keyward_core::escrow::EscrowBlob;
    use keyward_core::{Keybox, RecoveryCode, Unlocker};
    let dir = Dir::new("blob-damage");
    let code = RecoveryCode::parse(&dir.init_with_code()).expect("code");
    let keybox = Keybox::parse(&dir.read("keybox.json"), &dir.keybox()).expect("keybox");
    let unlocked =
        keybox.unlock(&Unlocker::RecoveryCode(&code), None, &dir.keybox()).expect("opens");
    let blob = EscrowBlob::from_keybox(&unlocked, None).expect("blob").to_bytes();
    let text = String::from_utf8(blob).expect("text");
    // One character of the wrapped key's base64 changed, as a bad disk or transfer would.
    let at = text.find("\"wrapped_key\": \"").expect("wrapped key") + 20;
    let mut damaged = text.into_bytes();
    damaged[at] = if damaged[at] == b'A' { b'B' } else { b'A' };
    dir.write("blob.json", &damaged);
    let fp = keybox.fingerprint().to_string();
    let out = dir
        .keyward()
        .args([
            "recover",
            "--blob",
            "blob.json",
            "--code-file",
            "code.txt",
            "--expect-fingerprint",
            &fp,
        ])
        .args(["--out", "k.bin"])
        .run();
    out.assert_exit_code(4).assert_one_line_error();
    assert!(!dir.path("k.bin").exists());
}

#[test]
fn commands_without_force_do_not_suggest_it() {
    let dir = Dir::new("no-force-hint");
    let operator = dir.ok(["operator", "keygen", "--out", "op.key"]).stdout().trim().to_string();
    dir.ok(["hub", "init", "--data", "hub", "--operator", &operator]);
    let again = dir.keyward().args(["hub", "init", "--data", "hub", "--operator", &operator]).run();
    again.assert_exit_code(7).assert_one_line_error();
    assert!(!again.stderr().contains("--force"), "hub init has no --force{}", again.report());
    dir.init_plain_canary();
    dir.write("keybox.json.hub.json", b"{}");
    dir.ok(["operator", "enroll-token", "--box", "b", "--key", "op.key", "--out", "t.txt"]);
    let enroll = dir
        .keyward()
        .args(["escrow", "enroll", "--box", "b", "--token-file", "t.txt"])
        .args(["--hub", "https://127.0.0.1:1", "--hub-fingerprint", &"ab".repeat(32)])
        .run();
    enroll.assert_exit_code(7).assert_one_line_error();
    assert!(
        !enroll.stderr().contains("--force"),
        "escrow enroll has no --force{}",
        enroll.report()
    );
}

/// Issue 22.5: `Store::load` followed a symbolic link at the keybox path — reading one file
/// while a commit would rename a new one over the link (and reading whatever a link planted in a
/// shared folder points at). A link is refused, never followed, and left as it is.
#[test]
fn a_symbolic_link_at_the_keybox_path_is_refused_not_followed() {
    let dir = Dir::new("keybox-symlink");
    dir.init_plain_canary();
    std::fs::rename(dir.keybox(), dir.path("real.json")).expect("move the keybox");
    std::os::unix::fs::symlink(dir.path("real.json"), dir.keybox()).expect("symlink");
    let before = dir.sha256("real.json");
    for args in [vec!["unlock", "--out", "k"], vec!["enroll", "plain"], vec!["list"]] {
        let refused = dir.keyward().args(&args).run();
        refused.assert_exit_code(2).assert_one_line_error();
        assert!(refused.stderr().contains("symbolic link"), "{args:?}{}", refused.report());
        assert!(std::fs::symlink_metadata(dir.keybox()).expect("link").is_symlink());
    }
    assert!(!dir.path("k").exists());
    assert_eq!(dir.sha256("real.json"), before, "the file the link names is unchanged");
}

/// Issue 22.5: recovery is fingerprint-gated whatever the source: `recover` without
/// `--expect-fingerprint` is a usage error before any code is read or any hub asked.
#[test]
fn recover_without_an_expected_fingerprint_is_refused_before_anything_is_asked() {
    let dir = Dir::new("recover-no-fingerprint");
    for source in [
        vec!["--blob", "blob.json"],
        vec!["--hub", "https://127.0.0.1:9", "--box", "b", "--ticket-file", "t.txt"],
    ] {
        let refused = dir
            .keyward()
            .args(["recover"])
            .args(&source)
            .args(["--code-file", "-", "--out", "k"])
            .stdin(b"never read")
            .run();
        refused.assert_exit_code(2).assert_one_line_error();
        assert!(refused.stderr().contains("--expect-fingerprint"), "{}", refused.report());
        assert!(!dir.path("k").exists());
    }
}

/// Issue 22.6: Ctrl-D at a prompt was an "internal error" (exit 1); it is the person choosing
/// not to answer: a usage exit, and nothing written.
#[test]
fn ctrl_d_at_a_prompt_is_a_usage_exit() {
    let dir = Dir::new("ctrl-d");
    dir.init_with_code();
    let (shown, status) = dir
        .keyward()
        .args(["unlock", "--slot", "1", "--out", "k"])
        .at_terminal("Recovery code (keybox ", b"\x04");
    assert_eq!(status.code(), Some(2), "{shown}");
    assert!(shown.contains("nothing was typed"), "{shown}");
    assert!(!dir.path("k").exists());
}

/// Issue 22.6: `keyward completions bash | head -1` aborted (exit 134) on the closed pipe. A
/// reader that goes away ends keyward quietly, by SIGPIPE as any Unix tool, also for a key
/// written with `--out -`.
#[test]
fn a_closed_pipe_ends_keyward_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let dir = Dir::new("closed-pipe");
    dir.init_plain_canary();
    for args in [
        vec!["completions", "bash"],
        vec!["man"],
        vec!["list"],
        vec!["unlock", "--out", "-"],
        vec!["demo"],
    ] {
        // The reader goes away before anything is written (before keyward starts: dropping it
        // after the spawn raced a keyward that starts in a millisecond).
        let (child, line) = dir.keyward().args(&args).spawn_into_closed_pipe();
        let out = util::Outcome::from_child(child, line, dir.root());
        assert_eq!(out.output.status.signal(), Some(libc::SIGPIPE), "{args:?}{}", out.report());
        assert!(out.stderr().is_empty(), "{args:?}: quiet{}", out.report());
    }
}

/// A small tmpfs mounted for one test (root only: the tests run as root, as CI does), unmounted
/// when dropped.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(at: std::path::PathBuf) -> SmallDisk {
        std::fs::create_dir(&at).expect("mount point");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs"])
            .arg(&at)
            .status();
        assert!(
            mounted.is_ok_and(|s| s.success()),
            "this test mounts a 256 KiB tmpfs to fill it: it needs root (scripts/test-all.sh runs as root)"
        );
        SmallDisk(at)
    }

    /// Fills it to the last byte.
    fn fill(&self) {
        use std::io::Write;
        let mut filler = std::fs::File::create(self.0.join("filler")).expect("filler");
        while filler.write_all(&[0u8; 4096]).is_ok() {}
        while filler.write_all(&[0u8; 1]).is_ok() {}
    }

    fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// Issue 22.6: a full disk must say nothing was changed and leave no temporary file behind
/// (a part-written temp file of a secret stayed).
#[test]
fn a_full_disk_changes_nothing_and_leaves_no_temporary_files() {
    let dir = Dir::new("disk-full");
    let disk = SmallDisk::mount(dir.path("small"));
    let keybox = disk.0.join("keybox.json");
    let on_disk = || dir.keyward().env("KEYWARD_KEYBOX", &keybox);
    dir.write("canary.key", util::CANARY_KEY);
    let init = ["init", "--with", "keyfile", "--import", "canary.key", "--keyfile", "slot.key"];
    on_disk().args(init).run().assert_success();
    disk.fill();
    let before = std::fs::read(&keybox).expect("keybox");
    let entries = disk.entries();
    let out_key = disk.0.join("out.key");
    for args in [vec!["enroll", "plain"], vec!["unlock", "--out", out_key.to_str().expect("path")]]
    {
        let full = on_disk().args(&args).run();
        full.assert_exit_code(1).assert_one_line_error();
        let said = full.stderr();
        assert!(said.contains("disk is full") && said.contains("nothing was changed"), "{said}");
        assert_eq!(std::fs::read(&keybox).expect("keybox"), before, "{args:?}: keybox unchanged");
        assert_eq!(disk.entries(), entries, "{args:?}: no file left behind");
    }
}
