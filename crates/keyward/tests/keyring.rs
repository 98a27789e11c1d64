//! `unlock --to-keyring` against the real kernel keyring: a `user` key reads back as K and is
//! gone after its timeout; a `logon` key is there but cannot be read by user space.

mod util;

use std::time::{Duration, Instant};

use keyutils::keytypes::{Logon, User, logon};
use keyutils::{Keyring, SpecialKeyring};
use util::{CANARY_KEY, Dir};

/// A description no other test (or run) uses.
fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{name}-{}-{nanos}", std::process::id())
}

fn user_keyring() -> Keyring {
    Keyring::attach_or_create(SpecialKeyring::User).expect("the user keyring")
}

#[test]
fn a_user_key_reads_back_as_the_key_and_is_gone_after_its_timeout() {
    let dir = Dir::new("keyring-user");
    dir.init_plain_canary();
    let description = format!("keyward-test:{}", unique("user"));
    let out = dir.ok([
        "unlock",
        "--to-keyring",
        "@u",
        "--key-type",
        "user",
        "--description",
        &description,
        "--timeout",
        "2s",
    ]);
    assert!(!out.output.stdout.windows(8).any(|w| w == &CANARY_KEY[..8]), "K is not printed");
    let key =
        user_keyring().search_for_key::<User, _, _>(description.as_str(), None).expect("loaded");
    assert_eq!(key.read().expect("a user key reads back"), CANARY_KEY);

    // Expired within a bounded wait (the kernel garbage-collects expired keys lazily; a search
    // no longer finds one).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if user_keyring().search_for_key::<User, _, _>(description.as_str(), None).is_err() {
            break;
        }
        assert!(Instant::now() < deadline, "the key outlived its timeout by 8 s");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_logon_key_is_there_for_the_kernel_but_cannot_be_read() {
    let dir = Dir::new("keyring-logon");
    dir.init_plain_canary();
    let name = unique("logon");
    let description = format!("keyward-test:{name}");
    let out = dir.ok(["unlock", "--to-keyring", "@u", "--description", &description, "--json"]);
    let report: serde_json::Value = serde_json::from_str(&out.stdout()).expect("json");
    assert_eq!(report["key_type"], "logon");
    assert_eq!(report["timeout_s"], 120);
    let logon = logon::Description { subtype: "keyward-test".into(), description: name.into() };
    let key = user_keyring().search_for_key::<Logon, _, _>(logon, None).expect("loaded");
    assert!(key.read().is_err(), "a logon key must not read back");
    key.invalidate().expect("clean up");
}

#[test]
fn bad_keyring_requests_are_refused_before_anything_is_loaded() {
    let dir = Dir::new("keyring-bad");
    dir.init_plain_canary();
    for args in [
        vec!["unlock", "--to-keyring", "@x"],
        vec!["unlock", "--to-keyring", "@u", "--timeout", "0s"],
        vec!["unlock", "--to-keyring", "@u", "--timeout", "2d"],
        vec!["unlock", "--to-keyring", "@u", "--description", "no-service"],
        vec!["unlock", "--to-keyring", "@u", "--format", "hex"],
        vec!["unlock", "--to-keyring", "@u", "--out", "k.bin"],
    ] {
        let out = dir.keyward().args(&args).run();
        out.assert_exit_code(2);
        assert!(!dir.path("k.bin").exists());
    }
}

/// Issue 22.5: the key was added to the shared keyring first and given its timeout after, so a
/// kill in between left K there with no expiry. A debugger stops `unlock` at the very call
/// that sets the timeout and kills it: nothing is left in the keyring.
#[test]
fn a_kill_before_the_timeout_is_set_leaves_no_key_without_an_expiry() {
    let dir = Dir::new("keyring-kill");
    dir.init_plain_canary();
    let description = format!("keyward-test:{}", unique("killed"));
    let gdb = std::path::Path::new("/usr/bin/gdb");
    assert!(gdb.exists(), "this test needs gdb (apt-get install gdb; scripts/test-all.sh does)");
    // KEYCTL_SET_TIMEOUT is 15; the syscall's first argument is in rdi (x0 on arm64).
    let first_argument = if cfg!(target_arch = "aarch64") { "$x0" } else { "$rdi" };
    let out = std::process::Command::new(gdb)
        .args(["-batch", "-nx", "-ex", "set pagination off", "-ex", "catch syscall keyctl"])
        .args(["-ex", &format!("condition 1 {first_argument} == 15"), "-ex", "run", "-ex", "kill"])
        .arg("--args")
        .arg(env!("CARGO_BIN_EXE_keyward"))
        .args(["unlock", "--to-keyring", "@u", "--key-type", "user"])
        .args(["--description", &description, "--timeout", "1h"])
        .env("KEYWARD_KEYBOX", dir.keybox())
        .env("HOME", dir.root())
        .output()
        .expect("gdb runs");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("Catchpoint 1 (call to syscall keyctl)"), "stopped at the call: {said}");
    let left = user_keyring().search_for_key::<User, _, _>(description.as_str(), None);
    if let Ok(key) = &left {
        let _ = key.clone().invalidate();
    }
    assert!(left.is_err(), "K was left in the user keyring without a timeout");
}
