//! keyward's LUKS2 pair on real image files: made with `cryptsetup luksFormat`, changed through
//! libcryptsetup by keyward, and checked with the `cryptsetup` CLI itself (luksDump, open
//! --test-passphrase), never by keyward's own reading.

use std::path::Path;

use keyward_core::DataKey;
use keyward_luks::testing::{
    FAST, USER_PASSPHRASE, cryptsetup_ok, dump, keyslots, keyward_tokens, new_volume, opens,
};
use keyward_luks::{FaultHook, KeywardVolume, LuksError, NoFaults, Step, Volume};
use zeroize::Zeroizing;

fn key() -> DataKey {
    DataKey::import(Zeroizing::new((0u8..32).collect())).expect("key")
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
    let token = &tokens[0];
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
    let image = new_volume(&dir.path().join("volume.img"));
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
            let image = new_volume(&dir.path().join("volume.img"));
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
        let image = new_volume(&dir.path().join("volume.img"));
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
    let image = new_volume(&dir.path().join("volume.img"));
    let key = key();
    let mut hook = NoFaults;
    session(&image, &key, &mut hook).enroll(USER_PASSPHRASE, &FAST).expect("enroll");
    // The user's passphrase goes (by cryptsetup, which asks for a keyslot that stays):
    // keyward's keyslot is the last.
    let mut hook = NoFaults;
    let (_, passphrase) = session(&image, &key, &mut hook).passphrase().expect("passphrase");
    let kill = ["luksKillSlot", "--batch-mode", "--key-file", "-"];
    cryptsetup_ok(&kill, &image, &["0"], passphrase.expose());
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

/// Issue 22.3: a `kill -9` inside the old keyslot's destroy (after libcryptsetup wiped its area,
/// before it wrote the metadata without it) leaves the keyslot listed and opening nothing. Every
/// later command stopped at it; now, with the new keyslot proven, it is finished off.
#[test]
fn an_old_keyslot_wiped_by_a_stopped_destroy_is_finished_off() {
    let dir = tempfile::tempdir().expect("temp dir");
    let image = new_volume(&dir.path().join("volume.img"));
    let key = key();
    let mut hook = NoFaults;
    let enrolled = session(&image, &key, &mut hook).enroll(USER_PASSPHRASE, &FAST).expect("enroll");
    // Stopped after step 3: the new pair committed, the old keyslot still there.
    let mut hook = StopAfter { n: 3, seen: vec![] };
    let stopped = session(&image, &key, &mut hook).rotate(&FAST);
    assert!(matches!(stopped, Err(LuksError::Interrupted { step: Step::CommitToken, .. })));
    // What the destroy does first: the keyslot's area overwritten (its last pass writes 0xFF).
    let old = enrolled.record.keyslot.to_string();
    let area = &dump(&image)["keyslots"][&old]["area"];
    let offset: u64 = area["offset"].as_str().expect("offset").parse().expect("number");
    let size: usize = area["size"].as_str().expect("size").parse().expect("number");
    let mut file = std::fs::OpenOptions::new().write(true).open(&image).expect("image");
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(offset)).expect("seek");
    std::io::Write::write_all(&mut file, &vec![0xFF; size]).expect("wipe");
    drop(file);
    assert!(keyslots(&dump(&image)).contains(&old), "still listed");

    let mut hook = NoFaults;
    let mut volume = session(&image, &key, &mut hook);
    volume.settle().expect("settled");
    assert!(
        matches!(
            volume.repairs(),
            [
                keyward_luks::Repair::FinishedWipe { .. },
                keyward_luks::Repair::RemovedOldToken { .. }
            ]
        ),
        "{:?}",
        volume.repairs()
    );
    drop(volume);
    assert_eq!(assert_one_pair(&image, &key), 2);
}
