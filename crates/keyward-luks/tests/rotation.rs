//! keyward's LUKS2 pair on real image files: made with `cryptsetup luksFormat`, changed through
//! libcryptsetup by keyward, and checked with the `cryptsetup` CLI itself (luksDump, open
//! --test-passphrase), never by keyward's own reading.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use keyward_core::DataKey;
use keyward_luks::{FaultHook, Kdf, KeyslotKdf, KeywardVolume, LuksError, NoFaults, Step, Volume};
use serde_json::Value;
use zeroize::Zeroizing;

const USER_PASSPHRASE: &[u8] = b"correct horse battery staple";

/// Keyslots cheap enough for tests that make dozens (argon2id, 4 passes, 32 MiB, one thread).
const FAST: KeyslotKdf = KeyslotKdf {
    kdf: Some(Kdf::Argon2id),
    iter_time_ms: None,
    memory_kib: Some(32 * 1024),
    parallel: Some(1),
    iterations: Some(4),
};

fn cryptsetup() -> Command {
    let found = Command::new("cryptsetup").arg("--version").output().map(|o| o.status.success());
    assert!(
        matches!(found, Ok(true)),
        "these tests need the cryptsetup CLI (apt-get install cryptsetup-bin; scripts/test-all.sh does)"
    );
    Command::new("cryptsetup")
}

/// A fresh 20 MiB LUKS2 image with the user's passphrase in keyslot 0.
fn new_volume(dir: &Path) -> PathBuf {
    let image = dir.join("volume.img");
    std::fs::File::create(&image).and_then(|f| f.set_len(20 << 20)).expect("image file");
    let status = cryptsetup()
        .args(["luksFormat", "--type", "luks2", "--batch-mode", "--key-file", "-"])
        .args(["--pbkdf", "argon2id", "--pbkdf-force-iterations", "4", "--pbkdf-memory", "32768"])
        .args(["--pbkdf-parallel", "1"])
        .arg(&image)
        .stdin(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().expect("stdin").write_all(USER_PASSPHRASE)?;
            child.wait()
        })
        .expect("cryptsetup luksFormat");
    assert!(status.success(), "luksFormat failed");
    image
}

fn key() -> DataKey {
    DataKey::import(Zeroizing::new((0u8..32).collect())).expect("key")
}

/// The header's JSON metadata, as `cryptsetup luksDump --dump-json-metadata` prints it.
fn dump(image: &Path) -> Value {
    let out = cryptsetup()
        .args(["luksDump", "--dump-json-metadata"])
        .arg(image)
        .output()
        .expect("luksDump");
    assert!(out.status.success(), "luksDump: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("luksDump JSON")
}

/// Whether `passphrase` opens the volume (in `keyslot`, if given), as `cryptsetup open
/// --test-passphrase` judges.
fn opens(image: &Path, passphrase: &[u8], keyslot: Option<u32>) -> bool {
    let mut command = cryptsetup();
    command.args(["open", "--test-passphrase", "--key-file", "-"]);
    if let Some(k) = keyslot {
        command.args(["--key-slot", &k.to_string()]);
    }
    let mut child = command
        .arg(image)
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("cryptsetup open");
    child.stdin.take().expect("stdin").write_all(passphrase).expect("write passphrase");
    child.wait().expect("wait").success()
}

/// The keyward tokens in the dump: (token id, JSON).
fn keyward_tokens(dump: &Value) -> Vec<(String, Value)> {
    dump["tokens"]
        .as_object()
        .expect("tokens")
        .iter()
        .filter(|(_, t)| t["type"] == "keyward")
        .map(|(id, t)| (id.clone(), t.clone()))
        .collect()
}

fn keyslots(dump: &Value) -> Vec<String> {
    dump["keyslots"].as_object().expect("keyslots").keys().cloned().collect()
}

fn session<'a>(image: &Path, key: &'a DataKey, hook: &'a mut dyn FaultHook) -> KeywardVolume<'a> {
    KeywardVolume::new(Volume::open(image).expect("open volume"), key, "kb-test", hook)
}

/// Stops after the `n`-th step (1-based) it is asked about; 0 never stops.
struct StopAfter {
    n: usize,
    seen: Vec<Step>,
}

impl FaultHook for StopAfter {
    fn stop_after(&mut self, step: Step) -> bool {
        self.seen.push(step);
        self.seen.len() == self.n
    }
}

/// The volume as `cryptsetup` sees it holds exactly one keyward pair: one token, committed,
/// assigned to its keyslot only; the keyslots are the user's and keyward's, none leaked; and
/// keyward's passphrase and the user's both open it. Returns keyward's sequence.
fn assert_one_pair(image: &Path, key: &DataKey) -> u64 {
    let dump = dump(image);
    let tokens = keyward_tokens(&dump);
    assert_eq!(tokens.len(), 1, "one keyward token: {dump}");
    let (_, token) = &tokens[0];
    assert_eq!(token["state"], "committed", "{token}");
    let keyslot = token["keyslot"].as_u64().expect("keyslot") as u32;
    assert_eq!(token["keyslots"], serde_json::json!([keyslot.to_string()]), "{token}");
    assert_eq!(
        keyslots(&dump),
        vec!["0".to_string(), keyslot.to_string()],
        "no keyslot leaked: {dump}"
    );
    let mut hook = NoFaults;
    let (_, passphrase) = session(image, key, &mut hook).passphrase().expect("keyward passphrase");
    assert!(
        opens(image, passphrase.expose(), Some(keyslot)),
        "keyward's passphrase opens its keyslot"
    );
    assert!(opens(image, USER_PASSPHRASE, Some(0)), "the user's passphrase still opens the volume");
    token["sequence"].as_u64().expect("sequence")
}

#[test]
fn enroll_then_rotate_leaves_one_pair_and_the_old_passphrase_dead_with_its_area_wiped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let image = new_volume(dir.path());
    let key = key();
    let mut hook = NoFaults;
    let enrolled = session(&image, &key, &mut hook).enroll(USER_PASSPHRASE, &FAST).expect("enroll");
    assert_eq!(enrolled.record.sequence, 1);
    assert_eq!(assert_one_pair(&image, &key), 1);
    let mut hook = NoFaults;
    let (_, old_passphrase) = session(&image, &key, &mut hook).passphrase().expect("passphrase");

    // Where the old keyslot's encrypted key material lies, and what it holds now.
    let before = dump(&image);
    let old = enrolled.record.keyslot.to_string();
    let area = &before["keyslots"][&old]["area"];
    let offset: usize = area["offset"].as_str().expect("offset").parse().expect("number");
    let size: usize = area["size"].as_str().expect("size").parse().expect("number");
    let old_area = std::fs::read(&image).expect("image")[offset..offset + size].to_vec();

    let mut hook = NoFaults;
    let rotation = session(&image, &key, &mut hook).rotate(&FAST).expect("rotate");
    assert_eq!((rotation.from.record.sequence, rotation.to.record.sequence), (1, 2));
    assert_ne!(rotation.from.record.keyslot, rotation.to.record.keyslot);
    assert_eq!(assert_one_pair(&image, &key), 2);
    assert!(
        !opens(&image, old_passphrase.expose(), None),
        "the old keyward passphrase opens nothing"
    );
    let now = std::fs::read(&image).expect("image")[offset..offset + size].to_vec();
    let same = old_area.iter().zip(&now).filter(|(a, b)| a == b).count();
    assert!(
        same * 50 < size,
        "the old keyslot area is overwritten ({same} of {size} bytes unchanged)"
    );

    // Enrolled once: a second enroll is refused and changes nothing.
    let mut hook = NoFaults;
    let again = session(&image, &key, &mut hook).enroll(USER_PASSPHRASE, &FAST);
    assert!(matches!(again, Err(LuksError::AlreadyEnrolled { .. })), "{again:?}");
    assert_eq!(dump(&image), dump(&image));
}

/// A rotation stopped after each of its steps, and the settling after it stopped again after
/// each of its own steps: the next command always ends with exactly one pair, the old one if
/// the new keyslot was never added, else the new one, and never a leaked keyslot.
#[test]
fn a_rotation_stopped_after_any_step_is_finished_or_rolled_back_by_the_next_command() {
    let key = key();
    let mut cases = 0;
    for stop in 1..=5 {
        for stop_settling in 0..=2 {
            let dir = tempfile::tempdir().expect("temp dir");
            let image = new_volume(dir.path());
            let mut hook = NoFaults;
            session(&image, &key, &mut hook).enroll(USER_PASSPHRASE, &FAST).expect("enroll");
            let mut hook = NoFaults;
            let (_, old_passphrase) =
                session(&image, &key, &mut hook).passphrase().expect("passphrase");

            let mut hook = StopAfter { n: stop, seen: vec![] };
            let stopped = session(&image, &key, &mut hook).rotate(&FAST);
            let last = *hook.seen.last().expect("a step");
            assert!(
                matches!(stopped, Err(LuksError::Interrupted { step, .. }) if step == last),
                "{stopped:?}"
            );

            // The next command is itself stopped after its first or second settling step.
            let mut hook = StopAfter { n: stop_settling, seen: vec![] };
            let settled = session(&image, &key, &mut hook).settle();
            if stop_settling > 0 && hook.seen.len() >= stop_settling {
                assert!(matches!(settled, Err(LuksError::Interrupted { .. })), "{settled:?}");
                // And the command after that one finishes the job.
                let mut hook = NoFaults;
                session(&image, &key, &mut hook).settle().expect("settle");
            } else {
                settled.expect("settle");
            }
            let sequence = assert_one_pair(&image, &key);
            let expected = if last == Step::WritePendingToken { 1 } else { 2 };
            assert_eq!(sequence, expected, "stopped after {last:?}, then {:?}", hook.seen);
            assert_eq!(opens(&image, old_passphrase.expose(), None), expected == 1);
            cases += 1;
        }
    }
    assert_eq!(cases, 15);
}

#[test]
fn an_enrollment_stopped_after_any_step_is_finished_or_rolled_back() {
    let key = key();
    for stop in 1..=3 {
        let dir = tempfile::tempdir().expect("temp dir");
        let image = new_volume(dir.path());
        let mut hook = StopAfter { n: stop, seen: vec![] };
        let stopped = session(&image, &key, &mut hook).enroll(USER_PASSPHRASE, &FAST);
        assert!(matches!(stopped, Err(LuksError::Interrupted { .. })), "{stopped:?}");
        let mut hook = NoFaults;
        let settled = session(&image, &key, &mut hook).settle().expect("settle");
        if stop == 1 {
            assert!(settled.is_none(), "rolled back to not enrolled");
            let dump = dump(&image);
            assert!(keyward_tokens(&dump).is_empty() && keyslots(&dump) == ["0"], "{dump}");
        } else {
            assert_eq!(assert_one_pair(&image, &key), 1);
        }
    }
}

#[test]
fn remove_wipes_the_pair_but_never_the_last_keyslot() {
    let dir = tempfile::tempdir().expect("temp dir");
    let image = new_volume(dir.path());
    let key = key();
    let mut hook = NoFaults;
    session(&image, &key, &mut hook).enroll(USER_PASSPHRASE, &FAST).expect("enroll");
    // The user's passphrase goes (by cryptsetup): keyward's keyslot is the last.
    let mut kill = cryptsetup();
    kill.args(["luksKillSlot", "--batch-mode", "--key-file", "-"])
        .arg(&image)
        .arg("0")
        .stdin(Stdio::piped());
    let mut child = kill.spawn().expect("luksKillSlot");
    let mut hook = NoFaults;
    let (_, passphrase) = session(&image, &key, &mut hook).passphrase().expect("passphrase");
    child.stdin.take().expect("stdin").write_all(passphrase.expose()).expect("write");
    assert!(child.wait().expect("wait").success());
    let before = std::fs::read(&image).expect("image");
    let mut hook = NoFaults;
    let refused = session(&image, &key, &mut hook).remove();
    assert!(matches!(refused, Err(LuksError::LastKeyslot { .. })), "{refused:?}");
    assert!(std::fs::read(&image).expect("image") == before, "nothing changed");

    // With a passphrase added through keyward's keyslot, the removal goes ahead.
    let mut hook = NoFaults;
    let added =
        session(&image, &key, &mut hook).add_passphrase(b"new passphrase", &FAST).expect("add");
    assert!(opens(&image, b"new passphrase", Some(added)));
    let mut hook = NoFaults;
    session(&image, &key, &mut hook).remove().expect("remove");
    let dump = dump(&image);
    assert!(keyward_tokens(&dump).is_empty(), "{dump}");
    assert_eq!(keyslots(&dump), vec![added.to_string()]);
    assert!(!opens(&image, passphrase.expose(), None));
}
