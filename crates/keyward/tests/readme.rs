//! The README runs as written: every ```sh block of README.md (the tour), in order, as one bash
//! script, exactly as it is: not a character added or changed. The script runs the way a careful reader
//! pastes it — `bash -e -o pipefail`, so the first line that fails stops it — with this build's
//! `keyward` first on the PATH and no terminal, in a network namespace of its own: the tour's
//! servers listen on the fixed ports it names, and other servers of a CI machine cannot be in
//! the way. The ```bash block at the top, the two set-up commands, is not run here: the second
//! is what runs this test (`.ci/run`), and the first's `keyward demo` has a test of its own
//! (`crates/keyward/tests/cli.rs`).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const README: &str = include_str!("../../../README.md");
/// The most the whole README may take; it is killed (and the test fails) after that.
const LIMIT: Duration = Duration::from_secs(600);

/// The bodies of the ```sh blocks, in order.
fn shell_blocks(text: &str) -> Vec<Vec<&str>> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in text.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(Vec::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(body), _) => body.push(line),
            (None, _) => {}
        }
    }
    blocks
}

/// Puts the process in a network namespace of its own with its loopback up (run in the child
/// before it executes bash; needs root, as the tests do).
fn own_network() -> std::io::Result<()> {
    // SAFETY: unshare, socket, ioctl and close are async-signal-safe and take no pointers but
    // `request`, a zeroed ifreq that lives through the calls.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNET) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut request: libc::ifreq = std::mem::zeroed();
        for (to, from) in request.ifr_name.iter_mut().zip(b"lo\0") {
            *to = *from as libc::c_char;
        }
        let up = libc::ioctl(fd, libc::SIOCGIFFLAGS, &raw mut request) == 0 && {
            request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(fd, libc::SIOCSIFFLAGS, &raw const request) == 0
        };
        let error = std::io::Error::last_os_error();
        libc::close(fd);
        if up { Ok(()) } else { Err(error) }
    }
}

#[test]
fn every_shell_block_of_the_readme_runs_exactly_as_written() {
    let blocks = shell_blocks(README);
    assert!(blocks.len() >= 4, "the README has its shell blocks");
    let script: String = blocks.iter().flatten().map(|line| format!("{line}\n")).collect();
    let home = tempfile::Builder::new().prefix("keyward-readme-").tempdir().expect("tempdir");
    let keyward = std::path::Path::new(env!("CARGO_BIN_EXE_keyward"));
    let path = format!(
        "{}:{}",
        keyward.parent().expect("bin folder").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // Output to files, not pipes: a full pipe would stall the script.
    let (out_path, err_path) = (home.path().join("stdout.txt"), home.path().join("stderr.txt"));
    let mut command = Command::new("bash");
    command
        .args(["-e", "-o", "pipefail", "-x", "-c", &script])
        .current_dir(home.path())
        .env_clear()
        .env("PATH", path)
        .env("HOME", home.path())
        // The tour's throwaway home (`mktemp -d`) is made in this test's folder.
        .env("TMPDIR", home.path())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"));
    // SAFETY: setsid (a process group of its own, so whatever the script leaves running is
    // stopped below) and own_network use only async-signal-safe calls.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            libc::setsid();
            own_network()
        });
    }
    let mut child = command
        .spawn()
        .expect("bash runs in a network namespace of its own (the tests run as root)");
    let started = Instant::now();
    let group = child.id() as libc::pid_t;
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait());
    });
    let status = finished.recv_timeout(LIMIT).ok().and_then(Result::ok);
    // The script stops what it started; after a failure, this does.
    // SAFETY: kill takes no pointers; the group is the script's own (setsid above).
    unsafe {
        libc::kill(-group, libc::SIGKILL);
    }
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert!(
        status.is_some_and(|s| s.success()),
        "the README did not run as written ({status:?} after {:?}); bash's trace says which line\n--- stdout\n{stdout}\n--- stderr (with bash's trace)\n{stderr}",
        started.elapsed()
    );
}
