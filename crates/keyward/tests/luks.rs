//! `keyward luks` on real LUKS2 image files, checked with the `cryptsetup` CLI itself: seed
//! 001's story (enroll, rotate, the old passphrase dead, a fresh machine opening the volume),
//! kill -9 at random moments of a rotation, hand-made header anomalies, and the refusals.

mod util;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use keyward_luks::testing::{
    FAST_ARGS as FAST_KDF, USER_PASSPHRASE, cryptsetup_ok, dump, keyslots, keyward_tokens,
};
use serde_json::Value;
use util::Dir;

/// A LUKS2 image `name` in `dir` with the user's passphrase in keyslot 0.
fn new_volume(dir: &Dir, name: &str) -> std::path::PathBuf {
    keyward_luks::testing::new_volume(&dir.path(name))
}

/// Whether `passphrase` opens `image`, as `cryptsetup open --test-passphrase` judges.
fn opens(image: &Path, passphrase: &[u8]) -> bool {
    keyward_luks::testing::opens(image, passphrase, None)
}

/// keyward's passphrase for `image`, through `keyward luks passphrase --out -`.
fn keyward_passphrase(dir: &Dir, image: &Path) -> Vec<u8> {
    let out = dir.ok(["luks", "passphrase", image.to_str().expect("path"), "--out", "-"]);
    assert_eq!(out.output.stdout.len(), 64, "64 hex digits, no newline{}", out.report());
    out.output.stdout.clone()
}

/// A keybox with the canary key and a plain slot, and an image enrolled with keyward.
fn enrolled(name: &str) -> (Dir, std::path::PathBuf) {
    let dir = Dir::new(name);
    dir.init_plain_canary();
    let image = new_volume(&dir, "volume.img");
    dir.write("user-passphrase", USER_PASSPHRASE);
    let mut args = vec!["luks", "enroll", "volume.img", "--luks-key-file", "user-passphrase"];
    args.extend(FAST_KDF);
    dir.ok(args);
    (dir, image)
}

/// exactly one keyward token, committed and assigned to its keyslot only; the user's keyslot
/// and keyward's and no other; keyward's passphrase and the user's both open the volume.
fn assert_one_pair(dir: &Dir, image: &Path) -> u64 {
    let passphrase = keyward_passphrase(dir, image);
    let dump = dump(image);
    let tokens = keyward_tokens(&dump);
    assert_eq!(tokens.len(), 1, "one keyward token: {dump}");
    let token = &tokens[0];
    assert_eq!(token["state"], "committed", "{token}");
    let keyslot = token["keyslot"].to_string();
    assert_eq!(token["keyslots"], serde_json::json!([keyslot]), "{token}");
    assert_eq!(keyslots(&dump), vec!["0".to_string(), keyslot], "no keyslot leaked: {dump}");
    assert!(opens(image, &passphrase), "keyward's passphrase opens the volume");
    assert!(opens(image, USER_PASSPHRASE), "the user's passphrase still opens the volume");
    token["sequence"].as_u64().expect("sequence")
}

#[test]
fn enroll_rotate_and_a_fresh_machine_opening_the_volume_with_the_recovered_key() {
    let dir = Dir::new("luks-story");
    dir.init_with_code();
    let image = new_volume(&dir, "volume.img");
    dir.write("user-passphrase", USER_PASSPHRASE);
    let mut enroll = vec!["luks", "enroll", "volume.img", "--luks-key-file", "user-passphrase"];
    enroll.extend(FAST_KDF);
    enroll.extend(["--unlock-code-file", "code.txt"]);
    let out = dir.ok(enroll);
    assert!(out.stdout().contains("keyward's keyslot 1"), "{}", out.report());
    let before = dir.ok([
        "luks",
        "passphrase",
        "volume.img",
        "--out",
        "pass-1",
        "--unlock-code-file",
        "code.txt",
    ]);
    assert_eq!(dir.mode("pass-1"), 0o600, "{}", before.report());
    let first = dir.read("pass-1");
    assert!(opens(&image, &first));

    let status = dir.ok(["--json", "luks", "status", "volume.img"]);
    let status: Value = serde_json::from_str(&status.stdout()).expect("status JSON");
    assert_eq!(status["state"], "enrolled");
    assert_eq!(status["keyward"]["keyslot"], 1);
    assert_eq!(status["keyslots_without_token"], serde_json::json!([0]));

    let mut rotate = vec!["luks", "rotate", "volume.img", "--unlock-code-file", "code.txt"];
    rotate.extend(FAST_KDF);
    dir.ok(rotate);
    dir.ok([
        "luks",
        "passphrase",
        "volume.img",
        "--out",
        "pass-2",
        "--unlock-code-file",
        "code.txt",
    ]);
    let second = dir.read("pass-2");
    assert!(opens(&image, &second), "the new passphrase opens the volume");
    assert!(!opens(&image, &first), "the old keyward passphrase is dead");
    assert!(opens(&image, USER_PASSPHRASE));

    // A fresh machine: nothing but the escrow blob, the code and the volume.
    let blob = dir.ok([
        "--json",
        "escrow",
        "export-blob",
        "--code-file",
        "code.txt",
        "--out",
        "blob.json",
    ]);
    let blob: Value = serde_json::from_str(&blob.stdout()).expect("export-blob JSON");
    // The blob is a Proxmox Backup key file: its fingerprint is the PBS one.
    let fingerprint = blob["pbs_fingerprint_short"].as_str().expect("fingerprint").to_string();
    let fresh = Dir::new("luks-fresh");
    std::fs::copy(&image, fresh.path("volume.img")).expect("copy volume");
    std::fs::copy(dir.path("blob.json"), fresh.path("blob.json")).expect("copy blob");
    std::fs::copy(dir.path("code.txt"), fresh.path("code.txt")).expect("copy code");
    fresh.ok([
        "recover",
        "--blob",
        "blob.json",
        "--code-file",
        "code.txt",
        "--expect-fingerprint",
        &fingerprint,
        "--into-keybox",
        "keybox.json",
    ]);
    fresh.write("new-passphrase", b"a passphrase for the new machine");
    let mut add = vec!["luks", "add-passphrase", "volume.img", "--new-key-file", "new-passphrase"];
    add.extend(FAST_KDF);
    add.extend(["--unlock-code-file", "code.txt"]);
    let added = fresh.ok(add);
    assert!(added.stdout().contains("keyslot"), "{}", added.report());
    assert!(opens(&fresh.path("volume.img"), b"a passphrase for the new machine"));
}

#[test]
fn a_rotation_killed_at_random_moments_is_finished_or_rolled_back_by_the_next_command() {
    let (dir, image) = enrolled("luks-kill");
    // Seeded from the clock, printed, so a failing run can be replayed.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    eprintln!("kill-9 delays seeded with {seed}");
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    // How long an uninterrupted rotation takes here, to aim the kills inside it.
    let mut rotate = vec!["luks", "rotate", "volume.img"];
    rotate.extend(FAST_KDF);
    let started = Instant::now();
    dir.ok(&rotate);
    let span = started.elapsed().as_micros().max(1000) as u64;
    let mut sequence = assert_one_pair(&dir, &image);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut killed = 0;
    for round in 0..12 {
        assert!(Instant::now() < deadline, "the kill loop ran over two minutes");
        let (mut child, _) = dir.keyward().args(&rotate).spawn();
        std::thread::sleep(Duration::from_micros(next() % span));
        let _ = child.kill();
        let status = child.wait().expect("wait");
        killed += usize::from(!status.success());
        // The next command settles whatever the killed one left.
        let now = assert_one_pair(&dir, &image);
        assert!(
            now == sequence || now == sequence + 1,
            "round {round}: sequence {sequence} became {now}"
        );
        sequence = now;
    }
    eprintln!("{killed} of 12 rotations killed before they finished");
}

#[test]
fn hand_made_tokens_and_keyslots_are_reported_or_repaired_never_used() {
    // Two keyward tokens: the committed one imported again.
    let (dir, image) = enrolled("luks-two-tokens");
    let token = cryptsetup_ok(&["token", "export", "--token-id", "0"], &image, &[], b"");
    cryptsetup_ok(&["token", "import"], &image, &[], &token);
    let bytes = std::fs::read(&image).expect("image");
    let status = dir.keyward().args(["luks", "status", "volume.img"]).run();
    status.assert_exit_code(4);
    assert!(status.stdout().contains("keyward: anomaly"), "{}", status.report());
    assert!(status.stderr().contains("tokens 0, 1 are all keyward's"), "{}", status.report());
    let refused = dir.keyward().args(["luks", "passphrase", "volume.img", "--out", "pass"]).run();
    refused.assert_exit_code(4).assert_one_line_error();
    assert!(!dir.path("pass").exists(), "no passphrase written");
    let mut rotate = vec!["luks", "rotate", "volume.img"];
    rotate.extend(FAST_KDF);
    dir.keyward().args(&rotate).run().assert_exit_code(4);
    assert!(std::fs::read(&image).expect("image") == bytes, "the header is unchanged");

    // A keyslot without its token: the token removed by hand. keyward does not use the
    // keyslot, and status names it among the keyslots with no token.
    let (dir, image) = enrolled("luks-no-token");
    cryptsetup_ok(&["token", "remove", "--token-id", "0"], &image, &[], b"");
    let status = dir.ok(["--json", "luks", "status", "volume.img"]);
    let status: Value = serde_json::from_str(&status.stdout()).expect("JSON");
    assert_eq!(status["state"], "not enrolled");
    assert_eq!(status["keyslots_without_token"], serde_json::json!([0, 1]));
    let refused = dir.keyward().args(["luks", "passphrase", "volume.img", "--out", "pass"]).run();
    refused.assert_exit_code(6).assert_one_line_error();
    assert!(!dir.path("pass").exists());
    // Unassigned instead (`token unassign`): an anomaly, named.
    let (dir, image) = enrolled("luks-unassigned");
    cryptsetup_ok(&["token", "unassign", "--token-id", "0", "--key-slot", "1"], &image, &[], b"");
    let refused = dir.keyward().args(["luks", "passphrase", "volume.img", "--out", "pass"]).run();
    refused.assert_exit_code(4).assert_one_line_error();
    assert!(refused.stderr().contains("cryptsetup token assign"), "{}", refused.report());

    // A token without its keyslot: keyward's keyslot killed by hand. Reported by status,
    // removed (and said so) by the next command holding the key, which then finds nothing.
    let (dir, image) = enrolled("luks-no-keyslot");
    cryptsetup_ok(
        &["luksKillSlot", "--batch-mode", "--key-file", "-"],
        &image,
        &["1"],
        USER_PASSPHRASE,
    );
    let status = dir.ok(["luks", "status", "volume.img"]);
    assert!(status.stdout().contains("token without its keyslot"), "{}", status.report());
    let gone = dir.keyward().args(["luks", "passphrase", "volume.img", "--out", "pass"]).run();
    gone.assert_exit_code(6);
    assert!(
        gone.stderr().contains("removed keyward token 0: its keyslot 1 is gone"),
        "{}",
        gone.report()
    );
    assert!(!dir.path("pass").exists());
    assert!(keyward_tokens(&dump(&image)).is_empty(), "the dead token is gone");
    // And the volume can be enrolled again.
    let mut enroll = vec!["luks", "enroll", "volume.img", "--luks-key-file", "user-passphrase"];
    enroll.extend(FAST_KDF);
    dir.ok(enroll);
    assert_eq!(assert_one_pair(&dir, &image), 1);
}

#[test]
fn the_last_keyslot_and_another_volumes_header_are_refused() {
    let (dir, image) = enrolled("luks-refusals");
    // Back up, then make keyward's keyslot the last one.
    let backup = dir.ok(["luks", "header-backup", "volume.img", "--out", "header.bak"]);
    assert!(backup.stdout().contains("keyward's keyslot 1 (sequence 1"), "{}", backup.report());
    assert_eq!(dir.mode("header.bak"), 0o600);
    // (cryptsetup asks for the passphrase of a keyslot that stays.)
    let passphrase = keyward_passphrase(&dir, &image);
    cryptsetup_ok(
        &["luksKillSlot", "--batch-mode", "--key-file", "-"],
        &image,
        &["0"],
        &passphrase,
    );
    let bytes = std::fs::read(&image).expect("image");
    let refused = dir.keyward().args(["luks", "remove", "volume.img"]).run();
    refused.assert_exit_code(9).assert_one_line_error();
    assert!(refused.stderr().contains("last"), "{}", refused.report());
    assert!(std::fs::read(&image).expect("image") == bytes, "nothing changed");

    // Another volume's backup is refused, and changes nothing.
    let other = new_volume(&dir, "other.img");
    let other_bytes = std::fs::read(&other).expect("image");
    let refused =
        dir.keyward().args(["luks", "header-restore", "other.img", "--from", "header.bak"]).run();
    refused.assert_exit_code(9).assert_one_line_error();
    assert!(refused.stderr().contains("is a header backup of volume"), "{}", refused.report());
    assert!(std::fs::read(&other).expect("image") == other_bytes);

    // This volume's backup goes back: the user's passphrase opens it again.
    assert!(!opens(&image, USER_PASSPHRASE));
    dir.ok(["luks", "header-restore", "volume.img", "--from", "header.bak"]);
    assert!(opens(&image, USER_PASSPHRASE));
    assert_eq!(assert_one_pair(&dir, &image), 1);

    // A damaged header: restored only when the UUID is named.
    let uuid = dump_uuid(&image);
    let mut file = std::fs::OpenOptions::new().write(true).open(&image).expect("image");
    file.write_all(&[0u8; 4096 * 2]).expect("wipe primary header");
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(16384)).expect("seek");
    file.write_all(&[0u8; 4096 * 2]).expect("wipe secondary header");
    drop(file);
    let refused =
        dir.keyward().args(["luks", "header-restore", "volume.img", "--from", "header.bak"]).run();
    refused.assert_exit_code(2).assert_one_line_error();
    assert!(refused.stderr().contains("--expect-uuid"), "{}", refused.report());
    dir.ok([
        "luks",
        "header-restore",
        "volume.img",
        "--from",
        "header.bak",
        "--expect-uuid",
        &uuid,
    ]);
    assert_eq!(assert_one_pair(&dir, &image), 1);
}

fn dump_uuid(image: &Path) -> String {
    String::from_utf8(cryptsetup_ok(&["luksUUID"], image, &[], b""))
        .expect("UUID")
        .trim()
        .to_string()
}

/// keyward's token 0 as `cryptsetup token export` gives it.
fn exported_token(image: &Path) -> Value {
    let bytes = cryptsetup_ok(&["token", "export", "--token-id", "0"], image, &[], b"");
    serde_json::from_slice(&bytes).expect("token JSON")
}

/// Every command that changes the volume, holding the key: each refuses with exit 4 and one
/// line naming `expected`, and the image is byte for byte what it was.
fn assert_every_change_refused(dir: &Dir, image: &Path, expected: &str) {
    let before = std::fs::read(image).expect("image");
    dir.write("added-passphrase", b"an added passphrase");
    let mut rotate = vec!["luks", "rotate", "volume.img"];
    rotate.extend(FAST_KDF);
    let mut add =
        vec!["luks", "add-passphrase", "volume.img", "--new-key-file", "added-passphrase"];
    add.extend(FAST_KDF);
    let passphrase = vec!["luks", "passphrase", "volume.img", "--out", "pass"];
    let remove = vec!["luks", "remove", "volume.img"];
    for args in [rotate, add, passphrase, remove] {
        let refused = dir.keyward().args(&args).run();
        refused.assert_exit_code(4).assert_one_line_error();
        assert!(refused.stderr().contains(expected), "{args:?}{}", refused.report());
        assert!(std::fs::read(image).expect("image") == before, "{args:?} changed nothing");
    }
    assert!(!dir.path("pass").exists(), "no passphrase written");
}

/// Issue 22.3: a second keyward token, committed at sequence n+1 and naming an existing keyslot
/// that keyward's passphrase does not open (the user's), made keyward wipe its own working
/// keyslot before noticing. The new keyslot must open first.
#[test]
fn a_forged_next_token_is_an_anomaly_and_keywards_keyslot_stays() {
    let (dir, image) = enrolled("luks-forged-next");
    let keyward = keyward_passphrase(&dir, &image);
    let user = dir.path("user-passphrase");
    let mut add_key =
        vec!["luksAddKey", "--batch-mode", "--key-file", user.to_str().expect("path")];
    add_key.extend(FAST_KDF);
    cryptsetup_ok(&add_key, &image, &["-"], b"a second user passphrase");
    assert_eq!(keyslots(&dump(&image)), ["0", "1", "2"]);
    let mut forged = exported_token(&image);
    forged["sequence"] = serde_json::json!(2);
    forged["keyslot"] = serde_json::json!(2);
    forged["keyslots"] = serde_json::json!(["2"]);
    cryptsetup_ok(&["token", "import"], &image, &[], forged.to_string().as_bytes());
    assert_every_change_refused(&dir, &image, "does not open with keyward's passphrase");
    assert!(keyward_tokens(&dump(&image)).len() == 2 && opens(&image, &keyward));
}

/// Issue 22.3: a token naming a keyslot that does not exist, while LUKS2 assigns it to keyward's
/// live keyslot, was taken for an orphan and deleted, leaking the keyslot.
#[test]
fn a_token_naming_a_missing_keyslot_but_assigned_to_the_live_one_is_an_anomaly() {
    for missing in [31, 32, 1000] {
        let (dir, image) = enrolled(&format!("luks-missing-keyslot-{missing}"));
        let keyward = keyward_passphrase(&dir, &image);
        let mut edited = exported_token(&image);
        edited["keyslot"] = serde_json::json!(missing);
        cryptsetup_ok(&["token", "remove", "--token-id", "0"], &image, &[], b"");
        cryptsetup_ok(&["token", "import"], &image, &[], edited.to_string().as_bytes());
        assert_every_change_refused(&dir, &image, "but LUKS2 assigns it to keyslots [1]");
        let status = dir.keyward().args(["luks", "status", "volume.img"]).run();
        status.assert_exit_code(4);
        assert!(opens(&image, &keyward), "the live keyslot is kept, with its name");
        assert_eq!(keyward_tokens(&dump(&image)).len(), 1, "the token is kept");
    }
}

/// Issue 22.2: `header-restore` wrote a LUKS2 header over an ext4 image and a LUKS1 volume
/// (exit 0) once `--expect-uuid` named the backup's UUID, which the refusal itself printed.
#[test]
fn a_header_is_never_restored_over_a_device_that_holds_something_else() {
    let (dir, image) = enrolled("luks-wrong-device");
    dir.ok(["luks", "header-backup", "volume.img", "--out", "header.bak"]);
    let uuid = dump_uuid(&image);
    let restore = |device: &str, expect: Option<&str>| {
        let mut args = vec!["luks", "header-restore", device, "--from", "header.bak"];
        if let Some(expect) = expect {
            args.extend(["--expect-uuid", expect]);
        }
        dir.keyward().args(args).run()
    };

    // An ext4 filesystem and a LUKS1 volume, each refused with or without the right UUID.
    let ext4 = dir.path("ext4.img");
    std::fs::File::create(&ext4).and_then(|f| f.set_len(20 << 20)).expect("image");
    let made = std::process::Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&ext4).status();
    assert!(
        made.is_ok_and(|s| s.success()),
        "mkfs.ext4 must run (apt-get install e2fsprogs; scripts/test-all.sh does)"
    );
    let luks1 = dir.path("luks1.img");
    std::fs::File::create(&luks1).and_then(|f| f.set_len(20 << 20)).expect("image");
    let format = ["luksFormat", "--type", "luks1", "--batch-mode", "--key-file", "-"];
    let mut format = format.to_vec();
    format.extend(["--pbkdf-force-iterations", "1000"]);
    cryptsetup_ok(&format, &luks1, &[], USER_PASSPHRASE);
    for (device, holds) in [("ext4.img", "type ext4"), ("luks1.img", "a LUKS1 header")] {
        let before = std::fs::read(dir.path(device)).expect("image");
        for expect in [Some(uuid.as_str()), None] {
            let refused = restore(device, expect);
            refused.assert_exit_code(9).assert_one_line_error();
            assert!(refused.stderr().contains(holds), "{device}{}", refused.report());
            assert!(!refused.stderr().contains(&uuid), "no UUID to paste{}", refused.report());
            assert!(
                std::fs::read(dir.path(device)).expect("image") == before,
                "{device} unchanged"
            );
        }
    }

    // A device that holds nothing: only with the volume named, and never printed to paste.
    let blank = dir.path("blank.img");
    std::fs::File::create(&blank).and_then(|f| f.set_len(20 << 20)).expect("image");
    let unnamed = restore("blank.img", None);
    unnamed.assert_exit_code(2).assert_one_line_error();
    assert!(unnamed.stderr().contains("--expect-uuid"), "{}", unnamed.report());
    let wrong = restore("blank.img", Some("00000000-1111-2222-3333-444444444444"));
    wrong.assert_exit_code(9).assert_one_line_error();
    for refused in [&unnamed, &wrong] {
        assert!(!refused.stderr().contains(&uuid), "no UUID to paste{}", refused.report());
    }
    assert!(std::fs::read(&blank).expect("image").iter().all(|b| *b == 0), "nothing written");
    dir.ok(["luks", "header-restore", "blank.img", "--from", "header.bak", "--expect-uuid", &uuid]);
    assert_eq!(dump_uuid(&blank), uuid);
}

/// A volume's path is bytes to keyward's LUKS2 helper, not text: one that is not UTF-8 reaches
/// the helper intact, and what refuses it is libcryptsetup's binding (which takes paths as text),
/// in keyward's one line naming the file, not a failed helper.
#[test]
fn a_volume_whose_path_is_not_utf8_reaches_the_helper_and_is_refused_in_one_line() {
    use std::os::unix::ffi::OsStrExt;
    let dir = Dir::new("luks-bytes-path");
    let image = dir.path("").join(std::ffi::OsStr::from_bytes(b"volume-\xff.img"));
    keyward_luks::testing::new_volume(&image);
    let status = dir.keyward().args(["luks".as_ref(), "status".as_ref(), image.as_os_str()]).run();
    status.assert_one_line_error();
    let message = status.stderr();
    assert!(message.contains("volume-\u{fffd}.img: cannot open it"), "{}", status.report());
    assert!(!message.contains("helper"), "{}", status.report());
}
