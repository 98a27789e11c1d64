//! The contracts of BRIEF §2 that the CLI keeps, one test each, named after them. (C5, crash
//! atomicity, is simulated at every step in keyward-core's tests/crash.rs; here the real-process
//! half: concurrent writers.)

mod util;

use base64::Engine as _;
use util::{CANARY_KEY, CANARY_PASSPHRASE, Dir};

/// C1: the imported key file is byte-identical after every command, and every unlock returns it.
#[test]
fn c1_import_source_is_byte_identical_after_every_command() {
    let dir = Dir::new("c1");
    dir.write("canary.key", CANARY_KEY);
    let before = dir.sha256("canary.key");
    let steps: Vec<Vec<&str>> = vec![
        vec!["init", "--with", "keyfile", "--import", "canary.key", "--keyfile", "slot.key"],
        vec!["enroll", "recovery-code", "--code-out", "code.txt"],
        vec![
            "enroll",
            "passphrase",
            "--passphrase-file",
            "pass.txt",
            "--kdf-time-ms",
            "20",
            "--kdf-memory-mib",
            "19",
        ],
        vec!["rotate", "2", "--code-out", "code2.txt"],
        vec!["list"],
        vec!["verify"],
        vec!["fingerprint"],
        vec!["unlock", "--out", "out.key"],
        vec!["remove", "3"],
    ];
    dir.write("pass.txt", CANARY_PASSPHRASE.as_bytes());
    for step in steps {
        dir.keyward().args(&step).run().assert_success();
        assert_eq!(dir.sha256("canary.key"), before, "the import source changed after {step:?}");
    }
    assert_eq!(dir.read("out.key"), CANARY_KEY, "unlock must return the imported key unchanged");
    // Import from stdin too: the key arrives intact.
    let other = Dir::new("c1-stdin");
    other
        .keyward()
        .args(["init", "--with", "plain", "--import", "-"])
        .stdin(CANARY_KEY)
        .run()
        .assert_success();
    other.ok(["unlock", "--out", "k"]);
    assert_eq!(other.read("k"), CANARY_KEY);
}

/// C3: a wrong code, passphrase or key file fails with exit 3, one line, no output file, and the
/// keybox byte-identical.
#[test]
fn c3_wrong_secret_fails_closed_with_no_output_file() {
    let dir = Dir::new("c3");
    dir.init_with_code();
    dir.enroll_passphrase();
    dir.ok(["enroll", "keyfile", "--keyfile", "slot.key", "--unlock-code-file", "code.txt"]);
    let keybox_before = dir.sha256("keybox.json");

    // A valid-looking code that is not this keybox's.
    let elsewhere = Dir::new("c3-other");
    let other_code = elsewhere.init_with_code();
    dir.write("wrong-code.txt", other_code.as_bytes());
    dir.write("wrong-pass.txt", b"not the passphrase at all");
    dir.write("wrong.key", &[0x5a; 64]);
    dir.write(
        "typo-code.txt",
        b"abacus abdomen abdominal abide abiding abilitx able abnormal aboard abolish",
    );

    for (option, file) in [
        ("--code-file", "wrong-code.txt"),
        ("--passphrase-file", "wrong-pass.txt"),
        ("--keyfile", "wrong.key"),
        ("--code-file", "typo-code.txt"),
    ] {
        let out = dir.keyward().args(["unlock", option, file, "--out", "out.key"]).run();
        out.assert_exit_code(3).assert_one_line_error();
        assert!(
            !dir.path("out.key").exists(),
            "no output file may exist after {option} {file}{}",
            out.report()
        );
        assert_eq!(
            dir.sha256("keybox.json"),
            keybox_before,
            "the keybox changed after {option} {file}"
        );
    }
    let typo = dir.keyward().args(["unlock", "--code-file", "typo-code.txt", "--out", "-"]).run();
    assert!(
        typo.stderr().contains("word 6") && !typo.stderr().contains("ability"),
        "a code read from a file is named by position, without neighbour words{}",
        typo.report()
    );
    assert!(typo.output.stdout.is_empty(), "nothing on stdout after a failure{}", typo.report());

    // The same for changes: a wrong authorisation changes nothing.
    let out =
        dir.keyward().args(["enroll", "plain", "--unlock-passphrase-file", "wrong-pass.txt"]).run();
    out.assert_exit_code(3);
    assert_eq!(dir.sha256("keybox.json"), keybox_before);

    // A new code or key file written for a change that was then refused is removed again.
    for new in [
        ["enroll", "recovery-code", "--code-out", "new-code.txt"],
        ["enroll", "keyfile", "--keyfile", "new-slot.key"],
    ] {
        let out =
            dir.keyward().args(new).args(["--unlock-passphrase-file", "wrong-pass.txt"]).run();
        out.assert_exit_code(3);
        assert!(
            !dir.path(new[3]).exists(),
            "{} must not outlive a refused enroll{}",
            new[3],
            out.report()
        );
    }
    assert_eq!(dir.sha256("keybox.json"), keybox_before);
}

/// C4: the canary key, code and passphrase never appear on stdout or stderr of any command
/// (except `unlock --out -`, which asks for the key) nor in the keybox; secret files are 0600
/// in a 0700 folder.
#[test]
fn c4_canary_secrets_never_reach_output_or_the_keybox() {
    let dir = Dir::new("c4");
    dir.write("canary.key", CANARY_KEY);
    dir.write("pass.txt", CANARY_PASSPHRASE.as_bytes());
    // Every command, with the exit code it must give: a step that failed early would leak
    // nothing and prove nothing.
    let mut outputs = Vec::new();
    let mut run = |args: &[&str], expected: i32| {
        let read_only = ["list", "fingerprint", "verify"].contains(&args[0]);
        for json in [false, true] {
            let mut cmd = dir.keyward().args(args);
            if json {
                cmd = cmd.args(["--json"]);
            }
            let out = cmd.run();
            out.assert_exit_code(expected);
            outputs.push((args.join(" "), out.stdout() + &out.stderr()));
            if !read_only {
                break;
            }
        }
    };
    let init = "init --with recovery-code --import canary.key --code-out code.txt --keybox sub/keybox.json";
    run(&init.split(' ').collect::<Vec<_>>(), 0);
    std::fs::rename(dir.path("sub/keybox.json"), dir.keybox()).expect("move keybox");
    for (command, expected) in [
        (
            "enroll passphrase --unlock-code-file code.txt --passphrase-file pass.txt --kdf-time-ms 20 --kdf-memory-mib 19",
            0,
        ),
        ("enroll plain --unlock-passphrase-file pass.txt", 0),
        ("list", 0),
        ("fingerprint", 0),
        ("verify --code-file code.txt", 0),
        ("unlock --passphrase-file pass.txt --out k1", 0),
        ("unlock --code-file code.txt --out k2 --format hex", 0),
        ("unlock --out k3 --format base64", 0),
        ("unlock --passphrase-file code.txt --out k4", 3),
        ("unlock --code-file pass.txt --out k5", 3),
        ("rotate 1 --unlock-passphrase-file pass.txt --code-out code2.txt", 0),
        ("remove 3 --unlock-code-file code2.txt", 0),
    ] {
        run(&command.split(' ').collect::<Vec<_>>(), expected);
    }

    let code = String::from_utf8(dir.read("code.txt")).expect("text").trim().to_string();
    let code2 = String::from_utf8(dir.read("code2.txt")).expect("text").trim().to_string();
    let hex: String = CANARY_KEY.iter().map(|b| format!("{b:02x}")).collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(CANARY_KEY);
    let canaries = [
        ("key", String::from_utf8_lossy(CANARY_KEY).into_owned()),
        ("key as hex", hex),
        ("key as base64", b64),
        ("passphrase", CANARY_PASSPHRASE.to_string()),
        ("recovery code", code.clone()),
        ("rotated recovery code", code2),
    ];
    let keybox = String::from_utf8(dir.read("keybox.json")).expect("keybox is text");
    for (what, canary) in &canaries {
        for (command, text) in &outputs {
            assert!(
                !text.contains(canary.as_str()),
                "the {what} appeared in the output of `keyward {command}`:\n{text}"
            );
        }
        assert!(!keybox.contains(canary.as_str()), "the {what} appeared in the keybox");
    }
    // Partial leaks: no three consecutive code words in any output.
    let words: Vec<&str> = code.split(' ').collect();
    for window in words.windows(3) {
        let phrase = window.join(" ");
        for (command, text) in &outputs {
            assert!(!text.contains(&phrase), "part of the code appeared in `keyward {command}`");
        }
    }
    for file in ["keybox.json", "code.txt", "code2.txt", "k1", "k2", "k3"] {
        assert_eq!(dir.mode(file), 0o600, "{file} must be mode 0600\n{}", dir.listing());
    }
    assert_eq!(dir.mode("sub"), 0o700, "a folder keyward creates must be 0700");
    // And the one place the key may appear: asked for with --out -.
    let asked = dir.keyward().args(["unlock", "--passphrase-file", "pass.txt", "--out", "-"]).run();
    asked.assert_success();
    assert_eq!(asked.output.stdout, CANARY_KEY);
}

/// C5, real processes: two processes enrolling at once both land, or one is told exit 7 (lock
/// held or concurrent change); no change is ever lost.
#[test]
fn c5_two_processes_enrolling_at_once_lose_nothing() {
    let dir = Dir::new("c5-concurrent");
    dir.init_plain_canary();
    let mut expected_slots = 1;
    for round in 0..4 {
        let a = dir
            .keyward()
            .args([
                "enroll",
                "keyfile",
                "--label",
                &format!("a{round}"),
                "--keyfile",
                &format!("a{round}.key"),
            ])
            .spawn();
        let b = dir
            .keyward()
            .args([
                "enroll",
                "keyfile",
                "--label",
                &format!("b{round}"),
                "--keyfile",
                &format!("b{round}.key"),
            ])
            .spawn();
        for (child, line) in [a, b] {
            let out = util::Outcome::from_child(child, line, dir.root());
            match out.code() {
                0 => expected_slots += 1,
                7 => {}
                _ => panic!("a concurrent enroll must succeed or exit 7{}", out.report()),
            }
        }
        let list = dir.keyward().args(["list", "--json"]).run();
        list.assert_success();
        let value: serde_json::Value = serde_json::from_str(&list.stdout()).expect("json");
        let slots = value["slots"].as_array().expect("slots").len();
        assert_eq!(
            slots,
            expected_slots,
            "every enroll that said ok must be in the keybox{}",
            list.report()
        );
    }
}
