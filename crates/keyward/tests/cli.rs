//! Command behaviour: refusals, exit codes, outputs and formats.

mod util;

use std::os::unix::fs::PermissionsExt;

use util::{CANARY_KEY, Dir};

#[test]
fn every_single_bit_flip_of_the_keybox_is_rejected_by_unlock() {
    let dir = Dir::new("flips");
    dir.init_keyfile_canary();
    let original = dir.read("keybox.json");
    // The library test flips every bit; through the real binary, one bit in every byte
    // (rotating through the bit positions) keeps the test to a few seconds.
    for (i, _) in original.iter().enumerate() {
        let mut flipped = original.clone();
        flipped[i] ^= 1 << (i % 8);
        std::fs::write(dir.keybox(), &flipped).expect("write flipped keybox");
        let out = dir.keyward().args(["unlock", "--keyfile", "slot.key", "--out", "out.key"]).run();
        assert!(
            out.code() == 3 || out.code() == 4,
            "a flip at byte {i} must exit 3 or 4{}",
            out.report()
        );
        assert!(!dir.path("out.key").exists(), "no key may be written from a flipped keybox");
    }
    std::fs::write(dir.keybox(), &original).expect("restore");
    dir.ok(["unlock", "--keyfile", "slot.key", "--out", "out.key"]);
    assert_eq!(dir.read("out.key"), CANARY_KEY);
}

#[test]
fn init_refuses_an_existing_keybox() {
    let dir = Dir::new("exists");
    dir.ok(["init", "--with", "plain"]);
    let before = dir.sha256("keybox.json");
    dir.keyward()
        .args(["init", "--with", "plain"])
        .run()
        .assert_exit_code(7)
        .assert_one_line_error();
    assert_eq!(dir.sha256("keybox.json"), before);
}

#[test]
fn a_new_code_with_nowhere_to_go_is_refused_before_anything_changes() {
    let dir = Dir::new("no-code-dest");
    let out = dir.keyward().args(["init", "--with", "recovery-code"]).run();
    out.assert_exit_code(2).assert_one_line_error();
    assert!(out.stderr().contains("--code-out"), "the error says what to do{}", out.report());
    assert!(!dir.keybox().exists(), "no keybox may be created");
}

#[test]
fn code_out_refuses_to_overwrite_and_leaves_nothing_behind() {
    let dir = Dir::new("code-out");
    dir.write("code.txt", b"keep me");
    dir.keyward()
        .args(["init", "--with", "recovery-code", "--code-out", "code.txt"])
        .run()
        .assert_exit_code(7);
    assert_eq!(dir.read("code.txt"), b"keep me");
    assert!(!dir.keybox().exists());
}

#[test]
fn the_last_slot_cannot_be_removed() {
    let dir = Dir::new("last-slot");
    dir.ok(["init", "--with", "plain"]);
    dir.keyward().args(["remove", "1"]).run().assert_exit_code(9).assert_one_line_error();
}

#[test]
fn unlock_never_overwrites_without_force() {
    let dir = Dir::new("force");
    dir.init_plain_canary();
    dir.write("out.key", b"precious");
    dir.keyward()
        .args(["unlock", "--out", "out.key"])
        .run()
        .assert_exit_code(7)
        .assert_one_line_error();
    assert_eq!(dir.read("out.key"), b"precious");
    dir.ok(["unlock", "--out", "out.key", "--force"]);
    assert_eq!(dir.read("out.key"), CANARY_KEY);
    assert_eq!(dir.mode("out.key"), 0o600);
}

#[test]
fn unlock_formats() {
    let dir = Dir::new("formats");
    dir.init_plain_canary();
    let hex = dir.keyward().args(["unlock", "--out", "-", "--format", "hex"]).run();
    let expected: String = CANARY_KEY.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex.stdout(), format!("{expected}\n"));
    let b64 = dir.keyward().args(["unlock", "--out", "-", "--format", "base64"]).run();
    assert_eq!(b64.stdout().trim(), "Q0FOQVJZLUsta2V5d2FyZC0wMTIzNDU2Nzg5YWJjZGU=");
}

#[test]
fn a_keybox_others_can_write_is_refused() {
    let dir = Dir::new("perms");
    dir.ok(["init", "--with", "plain"]);
    std::fs::set_permissions(dir.keybox(), std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let out = dir.keyward().args(["list"]).run();
    out.assert_exit_code(9).assert_one_line_error();
    assert!(out.stderr().contains("chmod go-w"), "the error says how to fix it{}", out.report());
}

#[test]
fn missing_keybox_is_not_found() {
    let dir = Dir::new("missing");
    let out = dir.keyward().args(["list"]).run();
    out.assert_exit_code(6).assert_one_line_error();
    assert!(out.stderr().contains("keyward init"), "{}", out.report());
}

#[test]
fn list_says_a_plain_slot_is_protected_by_permissions_only() {
    let dir = Dir::new("list-plain");
    dir.ok(["init", "--with", "plain"]);
    let out = dir.keyward().args(["list"]).run();
    out.assert_success();
    assert!(out.stdout().contains("UNATTENDED"), "{}", out.report());
    let json = dir.keyward().args(["list", "--json"]).run();
    let value: serde_json::Value = serde_json::from_str(&json.stdout()).expect("json");
    assert_eq!(value["slots"][0]["protected_by_file_permissions_only"], true);
    assert!(!json.stdout().contains("kek"), "a plain slot's stored key is never printed");
}

#[test]
fn no_secret_and_no_terminal_is_a_usage_error() {
    let dir = Dir::new("no-secret");
    dir.init_with_code();
    let out = dir.keyward().args(["unlock", "--out", "k"]).run();
    out.assert_exit_code(2).assert_one_line_error();
    assert!(!dir.path("k").exists());
}

#[test]
fn rotate_keeps_the_key_and_kills_the_old_code() {
    let dir = Dir::new("rotate");
    let old = dir.init_with_code();
    dir.enroll_passphrase();
    let fp = dir.keyward().args(["fingerprint"]).run().stdout();
    dir.ok(["rotate", "1", "--unlock-passphrase-file", "pass.txt", "--code-out", "new.txt"]);
    assert_eq!(
        dir.keyward().args(["fingerprint"]).run().stdout(),
        fp,
        "the key's fingerprint never changes"
    );
    dir.write("old.txt", old.as_bytes());
    dir.keyward()
        .args(["unlock", "--code-file", "old.txt", "--out", "k"])
        .run()
        .assert_exit_code(3);
    dir.ok(["unlock", "--code-file", "new.txt", "--out", "k"]);
    assert_eq!(dir.read("k"), CANARY_KEY);
}

#[test]
fn verify_fails_on_a_tampered_keybox() {
    let dir = Dir::new("verify");
    dir.ok(["init", "--with", "plain"]);
    dir.ok(["verify"]);
    let mut bytes = dir.read("keybox.json");
    let at = bytes.iter().position(|b| *b == b'"').expect("a quote");
    bytes[at + 1] ^= 0x01;
    std::fs::write(dir.keybox(), &bytes).expect("write");
    dir.keyward().args(["verify"]).run().assert_exit_code(4).assert_one_line_error();
}

#[test]
fn help_completions_and_man_page_come_from_the_definitions() {
    let dir = Dir::new("help");
    let help = dir.keyward().args(["--help"]).run();
    help.assert_success();
    for command in
        ["init", "enroll", "remove", "rotate", "list", "fingerprint", "verify", "unlock", "demo"]
    {
        assert!(help.stdout().contains(command), "--help lists {command}{}", help.report());
    }
    let bash = dir.keyward().args(["completions", "bash"]).run();
    assert!(bash.stdout().contains("keyward"), "{}", bash.report());
    let man = dir.keyward().args(["man"]).run();
    assert!(man.stdout().contains(".TH keyward"), "{}", man.report());
}

#[test]
fn demo_runs_end_to_end() {
    let dir = Dir::new("demo");
    let out = dir.keyward().args(["demo"]).run();
    out.assert_success();
    assert!(out.stdout().contains("All steps went as expected."), "{}", out.report());
}

#[test]
fn a_usage_error_is_one_line_with_exit_2() {
    let dir = Dir::new("usage");
    let out = dir.keyward().args(["unlock", "--no-such-option"]).run();
    out.assert_exit_code(2).assert_one_line_error();
    assert!(out.stderr().contains("--help"), "{}", out.report());
}

#[test]
fn verify_catches_an_edit_behind_a_recomputed_checksum() {
    let dir = Dir::new("verify-mac");
    dir.init_plain_canary();
    // An attacker who can write the file edits the label and recomputes the (unkeyed) checksum;
    // only the header MAC, keyed from K, can tell.
    let bytes = dir.read("keybox.json");
    let keybox = keyward_core::Keybox::parse(&bytes, &dir.keybox()).expect("parses");
    let mut header = keybox.header().clone();
    header.label = "edited by someone without K".into();
    let value: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
    let mac: [u8; 32] = keyward_core::encoding::from_base64(value["mac"].as_str().expect("mac"))
        .expect("base64")
        .try_into()
        .expect("32 bytes");
    std::fs::write(dir.keybox(), keyward_core::keybox::format::encode(&header, &mac))
        .expect("write");
    dir.ok(["list"]); // the file is well-formed: only an unlock can tell
    let out = dir.keyward().args(["verify", "--json"]).run();
    out.assert_exit_code(4);
    let report: serde_json::Value = serde_json::from_str(&out.stdout()).expect("json report");
    assert_eq!(report["header_mac"], "failed", "{}", out.report());
    dir.keyward().args(["unlock", "--out", "k"]).run().assert_exit_code(4);
    assert!(!dir.path("k").exists());
}

#[test]
fn expect_fingerprint_gates_the_output() {
    let dir = Dir::new("expect-fp");
    dir.init_plain_canary();
    let fp = dir.ok(["fingerprint", "--short"]).stdout().trim().to_string();
    dir.ok(["unlock", "--out", "k", "--expect-fingerprint", &fp]);
    assert_eq!(dir.read("k"), CANARY_KEY);
    let other = "00:11:22:33:44:55:66:77";
    let out = dir.keyward().args(["unlock", "--out", "k2", "--expect-fingerprint", other]).run();
    out.assert_exit_code(5).assert_one_line_error();
    assert!(!dir.path("k2").exists(), "no key is written on a fingerprint mismatch");
}

#[test]
fn numeric_labels_are_refused() {
    let dir = Dir::new("labels");
    dir.init_plain_canary();
    dir.keyward()
        .args(["enroll", "plain", "--label", "2"])
        .run()
        .assert_exit_code(2)
        .assert_one_line_error();
}

#[test]
fn a_plain_keybox_others_can_read_is_refused() {
    let dir = Dir::new("plain-readable");
    dir.init_plain_canary();
    std::fs::set_permissions(dir.keybox(), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = dir.keyward().args(["unlock", "--out", "k"]).run();
    out.assert_exit_code(9).assert_one_line_error();
    assert!(out.stderr().contains("chmod 600"), "{}", out.report());
    assert!(!dir.path("k").exists());
}

#[test]
fn a_changed_key_file_does_not_hide_another_unattended_slot() {
    let dir = Dir::new("unattended-order");
    dir.init_keyfile_canary();
    dir.ok(["enroll", "plain"]);
    dir.write("slot.key", &[0x33; 64]); // the key file at the recorded path changed
    dir.ok(["unlock", "--out", "k"]);
    assert_eq!(dir.read("k"), CANARY_KEY);
}

#[test]
fn no_command_is_one_line() {
    let dir = Dir::new("no-command");
    dir.keyward().run().assert_exit_code(2).assert_one_line_error();
}

/// Issue 22.6: `--help` and the man page listed exit codes by hand, and code 10 was missing
/// from both; they now come from the classes the errors use.
#[test]
fn help_and_man_page_list_every_exit_code() {
    let dir = Dir::new("help-exit-codes");
    // Words, not lines: both wrap their text.
    let words = |text: String| text.split_whitespace().collect::<Vec<_>>().join(" ");
    let help = words(dir.ok(["--help"]).stdout());
    let man = words(dir.ok(["man"]).stdout());
    for class in keyward_core::ErrorClass::ALL {
        let entry = format!("{} {}", class.exit_code(), class.name());
        assert!(help.contains(&entry), "--help lacks `{entry}`");
        assert!(man.contains(&entry), "the man page lacks `{entry}`");
    }
}

/// Issue 22.6: the README's servers were used on the line after `serve &`, before they
/// listened. `keyward wait` returns once a TCP server takes connections or a Unix socket is
/// there, and says so with exit 8 when nothing comes in time.
#[test]
fn wait_returns_once_a_server_listens_and_is_exit_8_when_none_does() {
    let dir = Dir::new("wait");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a listener");
    let address = listener.local_addr().expect("address").to_string();
    let closed = {
        let spare = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        spare.local_addr().expect("address").to_string()
    };
    dir.ok(["wait", &address]);
    let none = dir.keyward().args(["wait", &closed, "--timeout", "1s"]).run();
    none.assert_exit_code(8).assert_one_line_error();
    assert!(none.stderr().contains(&closed), "{}", none.report());
    // A socket appears a moment later: waited for, not connected to.
    let socket = dir.path("agent.sock");
    let later = socket.clone();
    let binder = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        std::os::unix::net::UnixListener::bind(later).expect("bind")
    });
    dir.ok(["wait", socket.to_str().expect("path"), "--timeout", "5s"]);
    drop(binder.join());
    dir.keyward().args(["wait", "127.0.0.1:notaport"]).run().assert_exit_code(2);
}

/// Issue 23.8: every command line the shipped systemd units run (commented alternatives
/// included) is one keyward takes: each is run with `--help` appended, which clap reaches only
/// once every option before it parsed (docs/keyward-hub.service once named a `--database` that
/// does not exist).
#[test]
fn every_command_line_of_the_shipped_units_is_one_keyward_takes() {
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
    let mut checked = 0;
    for entry in std::fs::read_dir(&docs).expect("docs") {
        let path = entry.expect("entry").path();
        if !path.extension().is_some_and(|e| e == "service" || e == "socket") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("unit");
        for line in text.lines() {
            let line = line.trim_start_matches(['#', ' ']);
            let Some(command) = line.strip_prefix("ExecStart=") else { continue };
            let mut words = command.split_whitespace();
            let program = words.next().expect("a program");
            assert!(program.ends_with("/keyward"), "{}: {program}", path.display());
            // systemd's specifiers, as a user unit would have them.
            let args: Vec<String> =
                words.map(|w| w.replace("%t", "/run/user/1000").replace("%h", "/home/u")).collect();
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
                .args(&args)
                .arg("--help")
                .output()
                .expect("run keyward");
            assert!(
                out.status.success(),
                "{}: `keyward {}` is not a command line keyward takes: {}",
                path.display(),
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked >= 3, "the hub's two lines and the agent's: {checked}");
}

/// Issue 23.8: `keyward man --out DIR` writes a page per command, the ones the top page names.
#[test]
fn man_writes_a_page_for_every_command() {
    let dir = Dir::new("man-pages");
    dir.ok(["man", "--out", "man"]);
    for page in [
        "keyward.1",
        "keyward-init.1",
        "keyward-escrow-enroll.1",
        "keyward-operator-takeover.1",
        "keyward-status.1",
    ] {
        let text = String::from_utf8(dir.read(&format!("man/{page}"))).expect("roff");
        assert!(text.starts_with(".ie") || text.contains(".TH"), "{page}: {text}");
    }
    let top = String::from_utf8(dir.read("man/keyward.1")).expect("roff");
    assert!(top.contains("keyward\\-init(1)"), "the top page names the others");
}

/// Issue 23.8: with --json an error is a JSON object on stdout too, with its exit code and
/// class, whether the arguments parsed or not.
#[test]
fn with_json_an_error_is_a_json_object_on_stdout_too() {
    let dir = Dir::new("json-errors");
    for (args, code, class) in [
        (vec!["--json", "unlock", "--out", "k"], 6, "not found"),
        (vec!["--json", "no-such-command"], 2, "usage"),
    ] {
        let out = dir.keyward().args(&args).run();
        out.assert_exit_code(code).assert_one_line_error();
        let error: serde_json::Value = serde_json::from_str(&out.stdout()).expect("JSON on stdout");
        assert_eq!(error["error"]["exit_code"], code, "{error}");
        assert_eq!(error["error"]["class"], class, "{error}");
        assert!(error["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // Without --json, stdout stays empty.
    assert!(dir.keyward().args(["unlock", "--out", "k"]).run().stdout().is_empty());
}

/// Issue 23.8: a prompt names the keybox and why it asks, and at a terminal a wrong code is
/// asked again (three tries in all) by every command that opens the keybox, not only recover.
#[test]
fn a_prompt_names_the_keybox_and_why_and_a_wrong_code_is_asked_again() {
    let dir = Dir::new("prompt-again");
    let code = dir.init_with_code();
    let other = Dir::new("prompt-again-other");
    let wrong = other.init_with_code();
    let prompt = format!("Recovery code (keybox {}, ", dir.keybox().display());
    let typed = |text: &str| format!("{}\n", text.trim()).into_bytes();
    let (shown, status) = dir
        .keyward()
        .args(["unlock", "--out", "k.bin"])
        .at_terminal_answering(&prompt, &[&typed(&wrong), &typed(&wrong), &typed(&code)]);
    assert_eq!(status.code(), Some(0), "{shown}");
    assert!(shown.contains("to hand out its key"), "{shown}");
    assert_eq!(shown.matches("asked again").count(), 2, "{shown}");
    assert_eq!(dir.read("k.bin"), util::CANARY_KEY);
    // Three wrong: the command fails (exit 3) and nothing changes.
    let before = dir.read("keybox.json");
    let (shown, status) = dir
        .keyward()
        .args(["enroll", "plain"])
        .at_terminal_answering(&prompt, &[&typed(&wrong), &typed(&wrong), &typed(&wrong)]);
    assert_eq!(status.code(), Some(3), "{shown}");
    assert!(shown.contains("to authorise the new slot"), "{shown}");
    assert_eq!(dir.read("keybox.json"), before);
}

/// Issue 24.7: `remove` keeps the last slot that opens with no network and no device (a
/// recovery code, a passphrase, a key file) while other slots remain, unless `--force`
/// (clevis#395); `list` and `status` mark it.
#[test]
fn the_last_offline_fallback_is_kept_unless_forced_and_marked() {
    let dir = Dir::new("offline-fallback");
    dir.init_with_code();
    dir.ok(["enroll", "plain", "--unlock-code-file", "code.txt"]);
    let list = dir.ok(["list"]).stdout();
    assert!(list.contains("[the only offline fallback]"), "{list}");
    let status = dir.ok(["status"]).stdout();
    assert!(status.contains("[the only offline fallback]"), "{status}");
    let before = dir.read("keybox.json");
    let refused = dir.keyward().args(["remove", "1"]).run();
    refused.assert_exit_code(9).assert_one_line_error();
    assert!(refused.stderr().contains("--force"), "{}", refused.report());
    assert_eq!(dir.read("keybox.json"), before, "nothing changed");
    // Another fallback first, and the first one may go; or --force.
    dir.enroll_passphrase();
    let list: serde_json::Value =
        serde_json::from_str(&dir.ok(["list", "--json"]).stdout()).expect("json");
    assert_eq!(list["offline_fallbacks"], serde_json::json!([1, 3]), "{list}");
    dir.ok(["remove", "1"]);
    dir.keyward().args(["remove", "3"]).run().assert_exit_code(9);
    dir.ok(["remove", "3", "--force"]);
    let list = dir.ok(["list"]).stdout();
    assert!(list.contains("no slot opens with no network and no device"), "{list}");
}

/// Issue 24.1: the drill's systemd service and daily timer (docs/) pass `systemd-analyze
/// verify`, with the service running this build of keyward (the shipped one names
/// /usr/local/bin/keyward); their command line is checked by the test above too.
#[test]
fn the_drill_units_pass_systemd_analyze_verify() {
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
    let dir = Dir::new("drill-units");
    for unit in ["keyward-drill.service", "keyward-drill.timer"] {
        let text = std::fs::read_to_string(docs.join(unit)).expect("the unit");
        dir.write(
            unit,
            text.replace("/usr/local/bin/keyward", env!("CARGO_BIN_EXE_keyward")).as_bytes(),
        );
    }
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(dir.path("keyward-drill.service"))
        .arg(dir.path("keyward-drill.timer"))
        .output()
        .unwrap_or_else(|e| panic!("systemd-analyze (apt-get install systemd): {e}"));
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The QR code of a sheet's HTML, as a PBM image: the modules its SVG path draws
/// (`M{x} {y}h{w}v{w}H{x}V{y}` each), with the quiet zone the renderer leaves, 8 pixels a module.
fn qr_as_pbm(html: &str) -> String {
    let width: usize = html
        .split("viewBox=\"0 0 ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|w| w.parse().ok())
        .expect("the QR's viewBox");
    let path = html.split(" d=\"").nth(1).and_then(|d| d.split('"').next()).expect("the QR's path");
    let mut modules = Vec::new();
    let mut unit = 0;
    for square in path.split('M').filter(|s| !s.is_empty()) {
        let (at, rest) = square.split_once('h').expect("a square");
        let (x, y) = at.split_once(' ').expect("x y");
        unit = rest.split('v').next().and_then(|w| w.parse().ok()).expect("its width");
        modules.push((x.parse::<usize>().expect("x"), y.parse::<usize>().expect("y")));
    }
    let size = width / unit;
    let mut dark = vec![false; size * size];
    for (x, y) in modules {
        dark[(y / unit) * size + x / unit] = true;
    }
    let pixels = size * 8;
    let mut pbm = format!("P1\n{pixels} {pixels}\n");
    for y in 0..pixels {
        for x in 0..pixels {
            pbm.push_str(if dark[(y / 8) * size + x / 8] { "1 " } else { "0 " });
        }
        pbm.push('\n');
    }
    pbm
}

/// Issue 24.5: the recovery sheet holds the fingerprint, the code with each word's position,
/// and a QR code that decodes (zbar) back to the code; it is a new 0600 file, never over one
/// without --force, and only a code that opens the keybox is printed. `code check` names a word
/// not on the list by its position with the nearest list words.
#[test]
fn the_recovery_sheet_carries_the_code_and_its_qr_decodes_to_it() {
    let dir = Dir::new("sheet");
    let code = dir.init_with_code();
    let fingerprint = dir.ok(["fingerprint", "--short"]).stdout().trim().to_string();
    dir.ok(["sheet", "--out", "sheet.html", "--code-file", "code.txt"]);
    assert_eq!(dir.mode("sheet.html"), 0o600);
    let html = String::from_utf8(dir.read("sheet.html")).expect("html");
    assert!(html.contains(&fingerprint), "the fingerprint is on it");
    let words: Vec<&str> = code.split_whitespace().collect();
    for (i, word) in words.iter().enumerate() {
        assert!(html.contains(&format!("<small>{}</small>{word}</div>", i + 1)), "word {i}");
    }
    dir.write("qr.pbm", qr_as_pbm(&html).as_bytes());
    let decoded = std::process::Command::new("zbarimg")
        .args(["-q", "--raw"])
        .arg(dir.path("qr.pbm"))
        .output()
        .unwrap_or_else(|e| panic!("zbarimg (apt-get install zbar-tools): {e}"));
    assert!(decoded.status.success(), "{decoded:?}");
    assert_eq!(String::from_utf8_lossy(&decoded.stdout).trim(), words.join(" "));

    let again =
        dir.keyward().args(["sheet", "--out", "sheet.html", "--code-file", "code.txt"]).run();
    again.assert_exit_code(7).assert_one_line_error();
    dir.ok([
        "sheet",
        "--out",
        "sheet.html",
        "--code-file",
        "code.txt",
        "--force",
        "--format",
        "text",
    ]);
    let text = String::from_utf8(dir.read("sheet.html")).expect("text");
    assert!(text.contains(&format!(" 1. {}", words[0])), "{text}");
    let other = Dir::new("sheet-other");
    other.init_with_code();
    dir.write("other-code.txt", &other.read("code.txt"));
    let wrong =
        dir.keyward().args(["sheet", "--out", "wrong.html", "--code-file", "other-code.txt"]).run();
    wrong.assert_exit_code(3).assert_one_line_error();
    assert!(!dir.path("wrong.html").exists());

    dir.ok(["code", "check", "--code-file", "code.txt"]);
    let mut typo = words.clone();
    let misspelt = format!("{}x", words[3]);
    typo[3] = &misspelt;
    dir.write("typo.txt", typo.join(" ").as_bytes());
    let checked = dir.keyward().args(["code", "check", "--code-file", "typo.txt"]).run();
    assert_ne!(checked.code(), 0);
    assert!(checked.stderr().contains("word 4 is not on the word list"), "{}", checked.report());
    assert!(
        !checked.stderr().contains("did you mean"),
        "no neighbours from a file: {}",
        checked.report()
    );
}

/// Issue 24.6: `backup` keeps the keybox and the files beside it in one 0600 file, the secret
/// ones sealed under a key derived from K; `restore` opens it with any slot, checks the
/// fingerprint given, writes the files and then the keybox, never over another key's keybox and
/// over the same one only with --force; a changed byte is refused with nothing written.
#[test]
fn a_box_backup_restores_the_keybox_and_its_files_and_nothing_else() {
    let dir = Dir::new("box-backup");
    dir.init_with_code();
    let identity = dir.ok(["escrow", "identity"]).stdout();
    let fp = dir.ok(["fingerprint", "--short"]).stdout().trim().to_string();
    dir.ok(["backup", "--out", "box.backup", "--unlock-code-file", "code.txt"]);
    assert_eq!(dir.mode("box.backup"), 0o600);
    let backup = dir.read("box.backup");
    assert!(!String::from_utf8_lossy(&backup).contains("ed25519-secret"), "the identity is sealed");

    let fresh = Dir::new("box-backup-fresh");
    fresh.write("box.backup", &backup);
    fresh.write("code.txt", &dir.read("code.txt"));
    let restore_as = |fingerprint: &str, extra: &[&str]| {
        let mut args = vec!["restore", "--from", "box.backup", "--unlock-code-file", "code.txt"];
        args.extend(["--expect-fingerprint", fingerprint]);
        args.extend(extra);
        fresh.keyward().args(args).run()
    };
    let restore = |extra: &[&str]| restore_as(&fp, extra);
    let mismatch = restore_as("00:11:22:33:44:55:66:77", &[]);
    mismatch.assert_exit_code(5).assert_one_line_error();
    assert!(!fresh.path("keybox.json").exists(), "nothing written");
    // A file of this machine beside where the keybox goes is not written over without --force.
    fresh.write("keybox.json.box-key", b"a replacement machine's identity");
    restore(&[]).assert_exit_code(7);
    std::fs::remove_file(fresh.path("keybox.json.box-key")).expect("remove");
    restore(&[]).assert_success();
    assert_eq!(fresh.read("keybox.json"), dir.read("keybox.json"));
    assert_eq!(fresh.read("keybox.json.box-key"), dir.read("keybox.json.box-key"));
    assert_eq!(fresh.mode("keybox.json.box-key"), 0o600);
    assert_eq!(fresh.ok(["escrow", "identity"]).stdout(), identity, "the same identity");
    restore(&[]).assert_exit_code(7);
    restore(&["--force"]).assert_success();

    // Another key's keybox is never replaced.
    let other = Dir::new("box-backup-other");
    other.ok(["init", "--with", "recovery-code", "--code-out", "code.txt"]);
    other.write("box.backup", &backup);
    other.write("code-of-backup.txt", &dir.read("code.txt"));
    let before = other.read("keybox.json");
    let refused = other
        .keyward()
        .args([
            "restore",
            "--from",
            "box.backup",
            "--unlock-code-file",
            "code-of-backup.txt",
            "--force",
        ])
        .args(["--expect-fingerprint", &fp])
        .run();
    refused.assert_exit_code(5).assert_one_line_error();
    assert_eq!(other.read("keybox.json"), before);

    // A changed byte in the sealed part: refused, nothing written.
    let text = String::from_utf8(backup).expect("json");
    let sealed_at = text.find("\"sealed\": \"").expect("sealed") + 20;
    let mut changed = text.into_bytes();
    changed[sealed_at] = if changed[sealed_at] == b'A' { b'B' } else { b'A' };
    let third = Dir::new("box-backup-changed");
    third.write("box.backup", &changed);
    third.write("code.txt", &dir.read("code.txt"));
    let out = third
        .keyward()
        .args(["restore", "--from", "box.backup", "--unlock-code-file", "code.txt"])
        .args(["--expect-fingerprint", &fp])
        .run();
    out.assert_exit_code(4).assert_one_line_error();
    assert!(!third.path("keybox.json").exists());
}

/// The shared libraries `program` names (its ELF NEEDED entries), and the symbols it exports,
/// as readelf (binutils, which every Rust build has) reads them.
fn elf_needed_and_exports(program: &str) -> (Vec<String>, String) {
    let needed = readelf("-d", program)
        .lines()
        .filter(|line| line.contains("(NEEDED)"))
        .filter_map(|line| line.split('[').nth(1)?.split(']').next().map(str::to_string))
        .collect();
    (needed, readelf("--dyn-syms", program))
}

/// What `readelf FLAG -W PROGRAM` prints.
fn readelf(flag: &str, program: &str) -> String {
    let out = std::process::Command::new("readelf")
        .args([flag, "-W", program])
        .output()
        .expect("readelf cannot run: install the Debian package binutils");
    assert!(out.status.success(), "readelf {flag} {program}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn keyward_loads_no_tpm_stack_nor_libcryptsetup_and_its_helpers_do() {
    for program in [env!("CARGO_BIN_EXE_keyward"), env!("CARGO_BIN_EXE_keyward-server")] {
        let (needed, _) = elf_needed_and_exports(program);
        for stack in ["libtss2", "libcrypto", "libcryptsetup"] {
            assert!(!needed.iter().any(|lib| lib.starts_with(stack)), "{program} needs {needed:?}");
        }
    }
    let (needed, _) = elf_needed_and_exports(env!("CARGO_BIN_EXE_keyward-luks-helper"));
    assert!(needed.iter().any(|lib| lib.starts_with("libcryptsetup")), "{needed:?}");
    assert!(!needed.iter().any(|lib| lib.starts_with("libtss2")), "{needed:?}");
    let (needed, exports) = elf_needed_and_exports(env!("CARGO_BIN_EXE_keyward-tpm2-helper"));
    assert!(needed.iter().any(|lib| lib.starts_with("libtss2-esys")), "{needed:?}");
    // The TSS's calls bind to the helper's own context functions (openssl_context.rs).
    for symbol in [
        "OSSL_LIB_CTX_new",
        "OSSL_LIB_CTX_free",
        "OSSL_LIB_CTX_new_from_dispatch",
        "OSSL_LIB_CTX_new_child",
    ] {
        assert!(
            exports.lines().any(|line| line.contains(" FUNC ")
                && !line.contains(" UND ")
                && line.ends_with(symbol)),
            "the helper does not export {symbol}"
        );
    }
}

/// `hub …` and `peer …` run in `keyward-server`, to which `keyward` hands them: keyward holds
/// none of the servers' code (SQLite, axum), so no other command pays for loading it. Without
/// keyward-server beside it, with keyward itself in its place, or with one of another version,
/// those commands are exit 8 saying which, with nothing written, and every other command still
/// runs.
#[test]
fn the_servers_run_in_keyward_server_and_keyward_holds_none_of_their_code() {
    let keyward = readelf("--syms", env!("CARGO_BIN_EXE_keyward"));
    let server = readelf("--syms", env!("CARGO_BIN_EXE_keyward-server"));
    for marker in ["sqlite3_open_v2", "4axum"] {
        assert!(!keyward.contains(marker), "keyward holds {marker}");
        assert!(server.contains(marker), "keyward-server lacks {marker}");
    }

    let dir = Dir::new("no-server");
    let alone = dir.path("alone/keyward");
    std::fs::create_dir_all(dir.path("alone")).expect("folder");
    std::fs::copy(env!("CARGO_BIN_EXE_keyward"), &alone).expect("copy keyward");
    let hub_init = ["hub", "init", "--data", "hub", "--operator", "anyone"];
    let peer_init =
        ["peer", "init", "--data", "peer", "--url", "https://127.0.0.1:1", "--operator", "x"];
    let refused = |program: &std::path::Path, env: Option<&str>, expected: &str| {
        for command in [&hub_init[..], &peer_init[..]] {
            let mut cmd = dir.keyward_at(program);
            if let Some(version) = env {
                cmd = cmd.env("KEYWARD_HANDED_OVER_BY", version);
            }
            let out = cmd.args(command).run();
            out.assert_exit_code(8).assert_one_line_error();
            assert!(out.stderr().contains(expected), "{}", out.report());
        }
        assert!(!dir.path("hub").exists() && !dir.path("peer").exists());
    };
    refused(&alone, None, "`keyward-server`, which runs `hub …` and `peer …`, is not installed");
    // keyward itself in the server's place: said, not an endless chain of execs.
    std::fs::copy(env!("CARGO_BIN_EXE_keyward"), dir.path("alone/keyward-server")).expect("copy");
    refused(&alone, None, "the `keyward-server` beside keyward is keyward itself");
    // A server of another version than the keyward that handed the command over.
    let server = std::path::Path::new(env!("CARGO_BIN_EXE_keyward-server"));
    refused(server, Some("0.0.0-other"), "is not of keyward 0.0.0-other's build");

    // Every other command runs without it.
    std::fs::remove_file(dir.path("alone/keyward-server")).expect("remove");
    dir.keyward_at(&alone).args(["init", "--with", "plain"]).run().assert_exit_code(0);
    let opened = dir.keyward_at(&alone).args(["unlock", "--out", "-"]).run();
    opened.assert_exit_code(0);
    assert_eq!(opened.output.stdout.len(), 32);

    // Beside keyward, keyward-server takes the command over.
    let operator = dir.ok(["operator", "keygen", "--out", "operator.key"]).stdout();
    dir.ok(["hub", "init", "--data", "hub", "--operator", operator.trim()]);
    assert!(dir.path("hub").is_dir());
}

/// A helper from another build of keyward is named as such: given a frame of another version,
/// the helper answers with a frame of its own version and no body, and exits 2
/// (docs/formats/helper.md, "Frames").
#[test]
fn a_helper_answers_a_frame_of_another_version_with_its_own() {
    use std::io::{Read, Write};
    let mut helper = std::process::Command::new(env!("CARGO_BIN_EXE_keyward-luks-helper"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the helper");
    let call = br#"{"v":99,"body":{"call":"metadata"}}"#;
    let mut frame = (call.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(call);
    helper.stdin.take().expect("stdin").write_all(&frame).expect("write");
    let mut answer = Vec::new();
    helper.stdout.take().expect("stdout").read_to_end(&mut answer).expect("read");
    let status = helper.wait().expect("wait");
    assert_eq!(status.code(), Some(2));
    assert_eq!(&answer[4..], br#"{"v":1,"body":null}"#);
    assert_eq!(
        u32::from_be_bytes(answer[..4].try_into().expect("length")) as usize,
        answer.len() - 4
    );
}
