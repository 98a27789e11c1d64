//! Where secrets may land (contract 4): a new 0600 file, a regular file of the caller's own with
//! `--force`, or a descriptor the caller names — never a FIFO, device or symlink someone else
//! planted, and never raw bytes on a terminal. Errors name the user's path, not a temp file.

mod util;

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use util::{CANARY_KEY, Dir};

/// The uid of `nobody`: another user, for files "someone else" planted.
const OTHER_UID: u32 = 65534;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A shared, sticky folder like /tmp (mode 1777) inside the test's folder.
fn sticky_folder(dir: &Dir) -> std::path::PathBuf {
    let shared = dir.path("shared");
    std::fs::create_dir(&shared).expect("mkdir");
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    shared
}

fn mkfifo(path: &Path) {
    let c_path = std::ffi::CString::new(path.to_str().expect("utf-8")).expect("c string");
    // SAFETY: a valid NUL-terminated path; mkfifo only creates the node.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o666) }, 0, "mkfifo");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).expect("chmod");
}

fn chown_to_other(path: &Path) {
    std::os::unix::fs::lchown(path, Some(OTHER_UID), Some(OTHER_UID)).expect("chown");
}

#[test]
fn a_planted_fifo_gets_nothing_even_with_force() {
    let dir = Dir::new("fifo");
    dir.init_plain_canary();
    let shared = sticky_folder(&dir);
    let fifo = shared.join("key.bin");
    mkfifo(&fifo);
    if is_root() {
        chown_to_other(&fifo);
    }
    // The other user's `cat`: a reader that is already waiting (non-blocking here, so the test
    // never hangs).
    let mut listener = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .expect("open the fifo for reading");
    for force in [false, true] {
        let mut cmd = dir.keyward().args(["unlock", "--out", "shared/key.bin"]);
        if force {
            cmd = cmd.args(["--force"]);
        }
        let out = cmd.run();
        out.assert_exit_code(7).assert_one_line_error();
        // Named for what it is, and --force (which would not help) is not suggested.
        assert!(out.stderr().contains("FIFO"), "says why{}", out.report());
        assert!(!out.stderr().contains("pass --force"), "{}", out.report());
    }
    let mut got = Vec::new();
    let read = listener.read_to_end(&mut got);
    assert!(got.is_empty(), "the planted pipe received {} bytes ({read:?})", got.len());
    assert!(std::fs::symlink_metadata(&fifo).expect("still there").file_type().is_fifo());
}

#[test]
fn a_planted_symlink_gets_nothing_and_its_target_is_untouched() {
    let dir = Dir::new("symlink");
    dir.init_plain_canary();
    let shared = sticky_folder(&dir);
    let target = dir.write("victim.txt", b"the victim's file\n");
    let link = shared.join("key.bin");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    if is_root() {
        chown_to_other(&link);
    }
    for force in [false, true] {
        let mut cmd = dir.keyward().args(["unlock", "--out", "shared/key.bin"]);
        if force {
            cmd = cmd.args(["--force"]);
        }
        cmd.run().assert_exit_code(7).assert_one_line_error();
    }
    assert_eq!(dir.read("victim.txt"), b"the victim's file\n", "the link's target is untouched");
    assert!(std::fs::symlink_metadata(&link).expect("there").file_type().is_symlink());
}

#[test]
fn force_replaces_only_a_regular_file_of_ones_own() {
    let dir = Dir::new("force");
    dir.init_plain_canary();
    dir.write("mine.bin", b"old");
    dir.ok(["unlock", "--out", "mine.bin", "--force"]);
    assert_eq!(dir.read("mine.bin"), CANARY_KEY);
    assert_eq!(dir.mode("mine.bin"), 0o600);
    if is_root() {
        let shared = sticky_folder(&dir);
        let theirs = shared.join("theirs.bin");
        std::fs::write(&theirs, b"theirs").expect("write");
        chown_to_other(&theirs);
        let out = dir.keyward().args(["unlock", "--out", "shared/theirs.bin", "--force"]).run();
        out.assert_exit_code(7).assert_one_line_error();
        assert!(out.stderr().contains("another user"), "{}", out.report());
        assert_eq!(std::fs::read(&theirs).expect("read"), b"theirs");
    }
}

#[test]
fn a_descriptor_named_explicitly_is_written_into() {
    let dir = Dir::new("descriptor");
    dir.init_plain_canary();
    for out in ["-", "/dev/stdout", "/dev/fd/1"] {
        let run = dir.keyward().args(["unlock", "--out", out]).run();
        run.assert_success();
        assert_eq!(run.output.stdout, CANARY_KEY, "--out {out}{}", run.report());
    }
    let stderr = dir.keyward().args(["unlock", "--out", "/dev/fd/2"]).run();
    stderr.assert_exit_code(2).assert_one_line_error();
}

#[test]
fn raw_key_bytes_are_not_written_to_a_terminal() {
    let dir = Dir::new("tty");
    dir.init_plain_canary();
    // `script` gives the command a terminal for stdout (util-linux, on every Debian).
    let run = |format: &str| {
        std::process::Command::new("script")
            .args(["-qec"])
            .arg(format!(
                "{} --keybox {} unlock --out - --format {format}",
                env!("CARGO_BIN_EXE_keyward"),
                dir.keybox().display()
            ))
            .arg("/dev/null")
            .env("HOME", dir.root())
            .stdin(std::process::Stdio::null())
            .output()
            .expect("script (util-linux) runs")
    };
    let raw = run("raw");
    let shown = String::from_utf8_lossy(&raw.stdout);
    assert_eq!(raw.status.code(), Some(2), "refused on a terminal: {shown}");
    assert!(shown.contains("--format hex"), "says what to do instead: {shown}");
    assert!(!raw.stdout.windows(CANARY_KEY.len()).any(|w| w == CANARY_KEY), "no key bytes shown");
    let hex = run("hex");
    assert_eq!(hex.status.code(), Some(0), "{}", String::from_utf8_lossy(&hex.stdout));
}

#[test]
fn errors_name_the_users_path_and_a_missing_folder() {
    let dir = Dir::new("paths");
    dir.init_plain_canary();
    let out = dir.keyward().args(["unlock", "--out", "no/such/folder/key.bin"]).run();
    out.assert_exit_code(6).assert_one_line_error();
    let stderr = out.stderr();
    assert!(
        stderr.contains("no/such/folder/key.bin") && stderr.contains("does not exist"),
        "{}",
        out.report()
    );
    assert!(!stderr.contains(".tmp"), "no temp file is named{}", out.report());
    // A folder given as the keybox is called a folder, not damaged.
    let folder = dir.keyward().args(["--keybox", "shared-not-a-file", "list"]);
    std::fs::create_dir(dir.path("shared-not-a-file")).expect("mkdir");
    let out = folder.run();
    out.assert_exit_code(2).assert_one_line_error();
    assert!(
        out.stderr().contains("is a folder") && !out.stderr().contains("damaged"),
        "{}",
        out.report()
    );
}

#[test]
fn the_force_hint_is_given_only_where_force_exists() {
    let dir = Dir::new("hints");
    dir.init_plain_canary();
    dir.write("taken.bin", b"x");
    let unlock = dir.keyward().args(["unlock", "--out", "taken.bin"]).run();
    unlock.assert_exit_code(7);
    assert!(unlock.stderr().contains("--force"), "{}", unlock.report());
    dir.write("op.key", b"x");
    let keygen = dir.keyward().args(["operator", "keygen", "--out", "op.key"]).run();
    keygen.assert_exit_code(7).assert_one_line_error();
    assert!(!keygen.stderr().contains("--force"), "keygen has no --force{}", keygen.report());
}
