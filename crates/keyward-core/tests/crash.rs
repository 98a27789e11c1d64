//! C5, crash-atomic: a simulated power cut at every write, fsync, rename, link and removal of
//! init, enroll, remove and rotate. Afterwards the keybox is the complete old one or the complete
//! new one — whichever it is opens with exactly that state's secrets, and has no orphaned slot.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::*;
use keyward_core::keybox::NewKeybox;
use keyward_core::operations::{self, Authorization, Fallback};
use keyward_core::slot::{NewPlain, NewRecoveryCode, SecretSource, SlotError, Want};
use keyward_core::store::sim::{FolderAfterCrash, SimFs};
use keyward_core::{Error, Keybox, RecoveryCode, Store, Unlocker};

/// The secrets of the test keyboxes, by slot label.
struct Secrets {
    old_code: RecoveryCode,
    new_code: RecoveryCode,
}

impl Secrets {
    /// Authorisation by the old recovery code, on whichever slot it opens.
    fn old_code_auth(&self) -> Authorization<'_> {
        Authorization::Secret { unlocker: Unlocker::RecoveryCode(&self.old_code), slot: None }
    }

    fn new() -> Self {
        Secrets {
            old_code: RecoveryCode::generate().expect("rng"),
            new_code: RecoveryCode::generate().expect("rng"),
        }
    }
}

/// A keybox state the disk may legitimately be in after the crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Absent,
    Old,
    New,
}

type Files = BTreeMap<PathBuf, Vec<u8>>;

fn sim_with(files: &Files) -> SimFs {
    let sim = SimFs::new();
    for (path, data) in files {
        sim.put(path, data);
    }
    sim
}

/// Starting point for enroll/remove/rotate: slot "code" (old code) and slot "kf" (key file 1).
fn base_files(secrets: &Secrets) -> Files {
    let sim = SimFs::new();
    let store = Store::new(&sim, sim_path());
    operations::init(
        &store,
        NewKeybox::new(canary_key(), "crash", Some("code")),
        &code_secret(&secrets.old_code),
    )
    .expect("init");
    let auth = secrets.old_code_auth();
    operations::enroll(&store, &auth, Some("kf"), &keyfile_secret(1)).expect("enroll");
    sim.files()
}

/// Runs `op` with a power cut at every step, and checks the disk with `judge` for both ways the
/// folder may come back. Also checks that the error told the truth (a "nothing changed" error
/// only while the change is not visible), and that the next command works on what the crash left
/// (`follow_up`, given the state it finds).
fn crash_at_every_step(
    start: &Files,
    op: impl Fn(&Store<'_>) -> Result<(), Error>,
    judge: impl Fn(Option<&Keybox>) -> State,
    follow_up: impl Fn(&Store<'_>, State) -> Result<(), Error>,
) {
    let dry = sim_with(start);
    op(&Store::new(&dry, sim_path())).expect("the operation succeeds without a crash");
    let steps = dry.steps();
    assert!(steps >= 4, "a commit has at least write, fsync, rename, fsync-folder; saw {steps}");
    let mut seen_before_the_end = Vec::new();
    for crash in 0..=steps {
        let sim = sim_with(start);
        sim.crash_at(crash);
        let result = op(&Store::new(&sim, sim_path()));
        assert_eq!(result.is_err(), crash < steps, "crash at step {crash} of {steps}");
        for folder in [FolderAfterCrash::AsLastSynced, FolderAfterCrash::AsLastSeen] {
            let after = sim.after_power_cut(folder);
            let store = Store::new(&after, sim_path());
            let keybox = match store.load() {
                Ok(k) => Some(k),
                Err(Error::KeyboxNotFound(_)) => None,
                Err(e) => {
                    panic!("crash at step {crash} ({folder:?}) left an unreadable keybox: {e}")
                }
            };
            let state = judge(keybox.as_ref());
            if crash == steps {
                assert_eq!(
                    state,
                    State::New,
                    "with no crash the new state must be durable ({folder:?})"
                );
            } else {
                seen_before_the_end.push(state);
            }
            if folder == FolderAfterCrash::AsLastSeen {
                // What the running process saw: "not durable" exactly when the change is there.
                let said_not_durable = matches!(result, Err(Error::NotDurable { .. }));
                if result.is_err() {
                    assert_eq!(
                        said_not_durable,
                        state == State::New,
                        "crash at step {crash}: the error ({result:?}) misreports a {state:?} keybox"
                    );
                }
            }
            follow_up(&store, state).unwrap_or_else(|e| {
                panic!("after a crash at step {crash} ({folder:?}) the next command failed: {e}")
            });
        }
    }
    assert!(seen_before_the_end.contains(&State::New), "late crashes already show the new state");
    assert!(
        seen_before_the_end.iter().any(|s| *s != State::New),
        "early crashes still show the old state"
    );
}

/// The usual next command: enroll one more (plain) slot, authorised by `auth`.
fn enroll_one_more(store: &Store<'_>, auth: &Authorization<'_>) -> Result<(), Error> {
    operations::enroll(store, auth, Some("after-crash"), &NewPlain)?;
    assert!(store.load()?.find_slot("after-crash").is_ok(), "the follow-up slot must be there");
    Ok(())
}

/// Which slots open, by label, with which secret; panics on anything that opens nothing.
fn opens(keybox: &Keybox, unlocker: &Unlocker<'_>, label: &str) -> bool {
    let slot = match keybox.find_slot(label) {
        Ok(s) => s.id,
        Err(_) => return false,
    };
    match keybox.unlock(unlocker, Some(slot), sim_path()) {
        Ok(unlocked) => {
            assert_eq!(unlocked.key().expose(), CANARY_KEY, "a slot opened to a different key");
            true
        }
        Err(Error::WrongSecret { .. }) => false,
        Err(e) => panic!("slot {label} is damaged: {e}"),
    }
}

fn labels(keybox: &Keybox) -> Vec<String> {
    keybox.slots().iter().map(|s| s.label.clone()).collect()
}

#[test]
fn c5_crash_at_every_step_of_init() {
    let secrets = Secrets::new();
    let init = |store: &Store<'_>| {
        operations::init(
            store,
            NewKeybox::new(canary_key(), "crash", Some("code")),
            &code_secret(&secrets.old_code),
        )
        .map(drop)
    };
    crash_at_every_step(
        &Files::new(),
        init,
        |keybox| match keybox {
            None => State::Absent,
            Some(k) => {
                assert_eq!(labels(k), ["code"]);
                assert!(opens(k, &Unlocker::RecoveryCode(&secrets.old_code), "code"));
                State::New
            }
        },
        |store, state| match state {
            // Nothing was created: init again, over whatever temp file the crash left.
            State::Absent => init(store),
            _ => enroll_one_more(store, &secrets.old_code_auth()),
        },
    );
}

#[test]
fn c5_crash_at_every_step_of_enroll() {
    let secrets = Secrets::new();
    let auth = secrets.old_code_auth();
    crash_at_every_step(
        &base_files(&secrets),
        |store| {
            operations::enroll(store, &auth, Some("pass"), &passphrase_secret("crash passphrase"))
                .map(drop)
        },
        |keybox| {
            let k = keybox.expect("enroll never loses the keybox");
            assert!(opens(k, &Unlocker::RecoveryCode(&secrets.old_code), "code"));
            assert!(opens(k, &Unlocker::Keyfile(&keyfile(1)), "kf"));
            match labels(k).as_slice() {
                [a, b] if a == "code" && b == "kf" => State::Old,
                [a, b, c] if a == "code" && b == "kf" && c == "pass" => {
                    assert!(opens(
                        k,
                        &Unlocker::Passphrase(&passphrase("crash passphrase")),
                        "pass"
                    ));
                    State::New
                }
                other => panic!("unexpected slots {other:?}"),
            }
        },
        |store, _| enroll_one_more(store, &auth),
    );
}

#[test]
fn c5_crash_at_every_step_of_remove() {
    let secrets = Secrets::new();
    let auth = secrets.old_code_auth();
    crash_at_every_step(
        &base_files(&secrets),
        |store| {
            operations::remove(store, &auth, "kf", Fallback::MayGo, &mut Unlocker::Unattended)
                .map(drop)
        },
        |keybox| {
            let k = keybox.expect("remove never loses the keybox");
            assert!(opens(k, &Unlocker::RecoveryCode(&secrets.old_code), "code"));
            match labels(k).as_slice() {
                [a, b] if a == "code" && b == "kf" => {
                    assert!(opens(k, &Unlocker::Keyfile(&keyfile(1)), "kf"));
                    State::Old
                }
                [a] if a == "code" => State::New,
                other => panic!("unexpected slots {other:?}"),
            }
        },
        |store, _| enroll_one_more(store, &auth),
    );
}

#[test]
fn c5_crash_at_every_step_of_rotate() {
    let secrets = Secrets::new();
    let auth = Authorization::Secret { unlocker: Unlocker::Keyfile(&keyfile(1)), slot: None };
    let new_secret = NewRecoveryCode { code: secrets.new_code.clone(), kdf: cheap_kdf() };
    crash_at_every_step(
        &base_files(&secrets),
        |store| {
            operations::rotate(store, &auth, "code", &new_secret, &mut Unlocker::Unattended)
                .map(drop)
        },
        |keybox| {
            let k = keybox.expect("rotate never loses the keybox");
            assert_eq!(labels(k), ["code", "kf"]);
            assert!(opens(k, &Unlocker::Keyfile(&keyfile(1)), "kf"));
            let old = opens(k, &Unlocker::RecoveryCode(&secrets.old_code), "code");
            let new = opens(k, &Unlocker::RecoveryCode(&secrets.new_code), "code");
            assert!(
                old != new,
                "exactly one of the old and new code opens the slot (old {old}, new {new})"
            );
            if new { State::New } else { State::Old }
        },
        |store, _| enroll_one_more(store, &auth),
    );
}

#[test]
fn a_stale_generation_is_refused_by_compare_and_swap() {
    let secrets = Secrets::new();
    let sim = sim_with(&base_files(&secrets));
    let store = Store::new(&sim, sim_path());
    let before = store.load().expect("load");
    let auth = secrets.old_code_auth();
    operations::enroll(&store, &auth, Some("pass"), &passphrase_secret("another passphrase"))
        .expect("enroll");
    // A writer that read `before` and commits now would lose the enroll: it must be refused.
    let lock = store.lock().expect("lock");
    let err =
        store.replace(&lock, before.generation(), &before).expect_err("stale write must fail");
    assert!(matches!(err, Error::ConcurrentChange { .. }), "{err:?}");
}

#[test]
fn init_refuses_an_existing_keybox_and_leaves_it_alone() {
    let secrets = Secrets::new();
    let files = base_files(&secrets);
    let sim = sim_with(&files);
    let store = Store::new(&sim, sim_path());
    let err = operations::init(
        &store,
        NewKeybox::new(canary_key(), "again", Some("code")),
        &code_secret(&secrets.new_code),
    )
    .expect_err("init over an existing keybox must fail");
    assert!(matches!(err, Error::KeyboxExists(_)), "{err:?}");
    assert_eq!(sim.files(), files, "nothing may change");
}

/// A remove that landed but could not be synced to disk may not survive a power cut: the
/// dropped slot's state outside the keybox is left alone (the file before may come back, and
/// must open), and the person is told so.
#[test]
fn a_remove_that_is_not_durable_leaves_the_slot_unretired_and_says_so() {
    struct Noted(Vec<String>);
    impl SecretSource for Noted {
        fn secret(&mut self, _: &Want<'_>) -> Result<Option<Unlocker<'_>>, SlotError> {
            Ok(None)
        }
        fn notice(&mut self, text: &str) {
            self.0.push(text.to_string());
        }
    }
    let secrets = Secrets::new();
    let auth = secrets.old_code_auth();
    let start = base_files(&secrets);
    let dry = sim_with(&start);
    operations::remove(
        &Store::new(&dry, sim_path()),
        &auth,
        "kf",
        Fallback::MayGo,
        &mut Noted(Vec::new()),
    )
    .expect("the remove succeeds without a crash");
    // The last step is the folder's fsync, after the rename.
    let sim = sim_with(&start);
    sim.crash_at(dry.steps() - 1);
    let mut noted = Noted(Vec::new());
    let result =
        operations::remove(&Store::new(&sim, sim_path()), &auth, "kf", Fallback::MayGo, &mut noted);
    assert!(matches!(result, Err(Error::NotDurable { .. })), "{result:?}");
    assert!(
        noted.0.iter().any(|n| n.contains("may not survive a power cut")),
        "notices: {:?}",
        noted.0
    );
}
