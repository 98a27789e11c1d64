//! Test harness in the style of ripgrep's tests/util.rs: every test gets a fresh private folder
//! and runs the real `keyward` binary; a failed assertion prints the command, the folder's
//! listing, the exit status, stdout and stderr, so a CI log alone explains the failure.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use sha2::{Digest, Sha256};

/// The canary key: recognisable bytes that must never appear in any output or store.
pub const CANARY_KEY: &[u8; 32] = b"CANARY-K-keyward-0123456789abcde";
/// The canary passphrase.
pub const CANARY_PASSPHRASE: &str = "CANARY-P-correct-horse-battery";

/// A fresh folder for one test.
pub struct Dir {
    temp: tempfile::TempDir,
}

impl Dir {
    /// A new private folder (mode 0700).
    pub fn new(name: &str) -> Dir {
        let temp = tempfile::Builder::new()
            .prefix(&format!("keyward-test-{name}-"))
            .tempdir()
            .expect("tempdir");
        Dir { temp }
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        self.temp.path()
    }

    /// A path inside the folder.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.temp.path().join(rel)
    }

    /// The default keybox of this folder's commands.
    pub fn keybox(&self) -> PathBuf {
        self.path("keybox.json")
    }

    /// Writes a file (mode 0600).
    pub fn write(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path(rel);
        std::fs::write(&path, bytes).expect("write test file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        path
    }

    /// Reads a file.
    pub fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.path(rel))
            .unwrap_or_else(|e| panic!("read {rel}: {e}\n{}", self.listing()))
    }

    /// Edits the stored parameters of the keybox's slot at `index` as someone who can write the
    /// file could: the checksum is made anew, the header MAC kept (it needs K).
    pub fn tamper_slot_params(&self, index: usize, edit: impl FnOnce(&mut serde_json::Value)) {
        let bytes = self.read("keybox.json");
        let keybox =
            keyward_core::Keybox::parse(&bytes, &self.keybox()).expect("a keybox to tamper with");
        let file: serde_json::Value = serde_json::from_slice(&bytes).expect("keybox JSON");
        let mac = file["mac"].as_str().and_then(keyward_core::encoding::from_base64);
        let mac: [u8; 32] = mac.and_then(|m| m.try_into().ok()).expect("the MAC");
        let mut header = keybox.header().clone();
        edit(&mut header.slots[index].protection.params);
        self.write("keybox.json", &keyward_core::keybox::format::encode(&header, &mac));
    }

    /// SHA-256 of a file, hex.
    pub fn sha256(&self, rel: &str) -> String {
        Sha256::digest(self.read(rel)).iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Mode bits of a file.
    pub fn mode(&self, rel: &str) -> u32 {
        std::fs::metadata(self.path(rel)).expect("metadata").permissions().mode() & 0o7777
    }

    /// A `keyward` command run in this folder, with its keybox and HOME here.
    pub fn keyward(&self) -> TestCommand {
        self.keyward_at(Path::new(env!("CARGO_BIN_EXE_keyward")))
    }

    /// The same, with the keyward executable at `program` (a copy without its helpers).
    #[allow(dead_code)]
    pub fn keyward_at(&self, program: &Path) -> TestCommand {
        let mut cmd = Command::new(program);
        cmd.current_dir(self.root())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.root())
            .env("KEYWARD_KEYBOX", self.keybox());
        // SAFETY: setsid is async-signal-safe; it detaches the child from any controlling
        // terminal, so prompts are impossible and every test is as non-interactive as CI.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        TestCommand { cmd, stdin: None, dir: self.root().to_path_buf() }
    }

    /// Runs `keyward ARGS` and asserts it succeeded.
    pub fn ok<I, S>(&self, args: I) -> Outcome
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let out = self.keyward().args(args).run();
        out.assert_success();
        out
    }

    /// `init` with a plain slot, importing the canary key.
    pub fn init_plain_canary(&self) {
        self.write("canary.key", CANARY_KEY);
        self.ok(["init", "--with", "plain", "--import", "canary.key"]);
    }

    /// `init` with a key-file slot (`slot.key`, created), importing the canary key.
    pub fn init_keyfile_canary(&self) {
        self.write("canary.key", CANARY_KEY);
        self.ok(["init", "--with", "keyfile", "--import", "canary.key", "--keyfile", "slot.key"]);
    }

    /// A recursive listing, for failure messages.
    pub fn listing(&self) -> String {
        let mut out = String::new();
        list(self.root(), self.root(), &mut out);
        out
    }

    /// `init` with a fresh recovery code in `code.txt`, importing the canary key.
    pub fn init_with_code(&self) -> String {
        self.init_with_code_in("code.txt")
    }

    /// `init` with a fresh recovery code in `code_file`, importing the canary key.
    pub fn init_with_code_in(&self, code_file: &str) -> String {
        self.write("canary.key", CANARY_KEY);
        let init = ["init", "--with", "recovery-code", "--import", "canary.key"];
        self.ok(init.into_iter().chain(["--code-out", code_file]));
        String::from_utf8(self.read(code_file)).expect("code is text")
    }

    /// An enrollment token for box `pve-07` in `token.txt`, signed by the operator key `op.key`.
    pub fn enrollment_token(&self) {
        self.ok([
            "operator",
            "enroll-token",
            "--box",
            "pve-07",
            "--key",
            "op.key",
            "--out",
            "token.txt",
        ]);
    }

    /// An operator's takeover of box `pve-07` by `identity` in `out`, signed by `op.key`;
    /// `from` says what it replaces (`--replacing PUBKEY`, or the hub options to ask there).
    pub fn takeover(&self, identity: &str, out: &str, from: &[String]) {
        let args = ["operator", "takeover", "--box", "pve-07", "--identity", identity];
        let args = args.iter().map(|a| a.to_string()).chain(from.iter().cloned());
        self.ok(args.chain(["--key".into(), "op.key".into(), "--out".into(), out.into()]));
    }

    /// Adds a passphrase slot with the canary passphrase (cheap KDF), authorised by code.txt.
    pub fn enroll_passphrase(&self) {
        self.write("pass.txt", CANARY_PASSPHRASE.as_bytes());
        self.keyward()
            .args(["enroll", "passphrase", "--label", "pass", "--unlock-code-file", "code.txt"])
            .args([
                "--passphrase-file",
                "pass.txt",
                "--kdf-time-ms",
                "20",
                "--kdf-memory-mib",
                "19",
            ])
            .run()
            .assert_success();
    }
}

fn list(root: &Path, dir: &Path, out: &mut String) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let meta = entry.metadata().ok();
        let mode = meta.as_ref().map_or(0, |m| m.permissions().mode() & 0o7777);
        let len = meta.as_ref().map_or(0, |m| m.len());
        let _ = writeln!(
            out,
            "  {:o} {:>7} {}",
            mode,
            len,
            path.strip_prefix(root).unwrap_or(&path).display()
        );
        if path.is_dir() {
            list(root, &path, out);
        }
    }
}

/// A command about to run.
pub struct TestCommand {
    cmd: Command,
    stdin: Option<Vec<u8>>,
    dir: PathBuf,
}

impl TestCommand {
    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.cmd.args(args);
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.cmd.env(key, value);
        self
    }

    /// Feeds bytes on stdin.
    pub fn stdin(mut self, bytes: &[u8]) -> Self {
        self.stdin = Some(bytes.to_vec());
        self
    }

    /// Starts without waiting.
    pub fn spawn(mut self) -> (Child, String) {
        let line = format!("{:?}", self.cmd);
        self.cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        (self.cmd.spawn().expect("spawn keyward"), line)
    }

    /// Starts without waiting, its standard output a pipe whose reader is already gone: its
    /// first write fails, however soon it comes.
    #[allow(dead_code)]
    pub fn spawn_into_closed_pipe(mut self) -> (Child, String) {
        let line = format!("{:?}", self.cmd);
        let (reader, writer) = std::io::pipe().expect("a pipe");
        drop(reader);
        self.cmd.stdin(Stdio::null()).stdout(writer).stderr(Stdio::piped());
        (self.cmd.spawn().expect("spawn keyward"), line)
    }

    /// Runs with a new pseudo-terminal as its controlling terminal (and stdin, stdout and
    /// stderr), types `keys` once `prompt` has appeared on it, and returns everything the
    /// terminal showed and how the process ended (bounded: 20 s).
    pub fn at_terminal(self, prompt: &str, keys: &[u8]) -> (String, std::process::ExitStatus) {
        self.at_terminal_answering(prompt, &[keys])
    }

    /// As [`TestCommand::at_terminal`], typing `answers[i]` when `prompt` has appeared the
    /// (i+1)th time: a person who mistypes and is asked again.
    pub fn at_terminal_answering(
        mut self,
        prompt: &str,
        answers: &[&[u8]],
    ) -> (String, std::process::ExitStatus) {
        use std::io::{Read, Write};
        use std::os::fd::{FromRawFd, OwnedFd};
        let (mut master, mut slave) = (-1, -1);
        // SAFETY: openpty writes the two descriptors it opens; the other arguments may be null.
        let opened = unsafe {
            libc::openpty(
                &raw mut master,
                &raw mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(opened, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both descriptors were just opened by openpty and nothing else owns them.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        let io = |fd: &OwnedFd| Stdio::from(fd.try_clone().expect("dup the terminal"));
        self.cmd.stdin(io(&slave)).stdout(io(&slave)).stderr(io(&slave));
        // SAFETY: ioctl is async-signal-safe; after `keyward()`'s setsid the process has no
        // controlling terminal, and this makes its stdin, the new terminal, that terminal.
        unsafe {
            self.cmd.pre_exec(|| {
                if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = self.cmd.spawn().expect("spawn keyward at a terminal");
        drop(slave);
        let mut reader = std::fs::File::from(master.try_clone().expect("dup the master"));
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            // Ends with EIO once the last descriptor of the terminal's other side is closed.
            while let Ok(n @ 1..) = reader.read(&mut chunk) {
                if tx.send(chunk[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut shown = Vec::new();
        let mut typed = 0;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left.min(std::time::Duration::from_millis(100))) {
                Ok(bytes) => shown.extend(bytes),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            }
            // rpassword writes the prompt and then turns echo off: keys typed in between would
            // meet the terminal's line discipline, which turns a Ctrl-D into an end of line
            // the prompt never sees. A person cannot type that fast; a test must wait.
            let asked = String::from_utf8_lossy(&shown).matches(prompt).count();
            if typed < asked && typed < answers.len() && !echoes(&master) {
                std::fs::File::from(master.try_clone().expect("dup"))
                    .write_all(answers[typed])
                    .expect("type");
                typed += 1;
            }
            if let Some(status) = child.try_wait().expect("wait") {
                // What it printed last is already in the channel, or on its way.
                while let Ok(bytes) = rx.recv_timeout(std::time::Duration::from_millis(200)) {
                    shown.extend(bytes);
                }
                return (String::from_utf8_lossy(&shown).into_owned(), status);
            }
            if std::time::Instant::now() >= deadline {
                let _ = child.kill();
                panic!("keyward at a terminal did not finish: {}", String::from_utf8_lossy(&shown));
            }
        }
        let status = child.wait().expect("wait");
        (String::from_utf8_lossy(&shown).into_owned(), status)
    }

    /// Runs to completion.
    pub fn run(mut self) -> Outcome {
        let line = format!("{:?}", self.cmd);
        self.cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let output = match self.stdin.take() {
            None => self.cmd.stdin(Stdio::null()).output().expect("run keyward"),
            Some(bytes) => {
                let mut child = self.cmd.stdin(Stdio::piped()).spawn().expect("spawn keyward");
                {
                    use std::io::Write;
                    let mut stdin = child.stdin.take().expect("stdin");
                    // keyward may end before it reads (a refusal comes first): its input closed
                    // is no failure of the test's.
                    if let Err(e) = stdin.write_all(&bytes) {
                        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "feed stdin: {e}");
                    }
                }
                child.wait_with_output().expect("wait")
            }
        };
        Outcome { output, line, dir: self.dir }
    }
}

/// A finished command.
pub struct Outcome {
    /// Its output.
    pub output: Output,
    line: String,
    dir: PathBuf,
}

impl Outcome {
    /// Wraps a spawned child's output.
    pub fn from_child(child: Child, line: String, dir: &Path) -> Outcome {
        Outcome { output: child.wait_with_output().expect("wait"), line, dir: dir.to_path_buf() }
    }

    /// Stdout as text.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    /// Stderr as text.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// The exit code (-1 if killed by a signal).
    pub fn code(&self) -> i32 {
        self.output.status.code().unwrap_or(-1)
    }

    /// Everything about the run, for a failure message.
    pub fn report(&self) -> String {
        let mut listing = String::new();
        list(&self.dir, &self.dir, &mut listing);
        format!(
            "\n--- command\n{}\n--- folder {}\n{}--- exit status\n{}\n--- stdout\n{}\n--- stderr\n{}\n",
            self.line,
            self.dir.display(),
            listing,
            self.output.status,
            self.stdout(),
            self.stderr()
        )
    }

    /// Panics with the report unless the exit code is `code`.
    pub fn assert_exit_code(&self, code: i32) -> &Self {
        assert_eq!(self.code(), code, "expected exit code {code}{}", self.report());
        self
    }

    /// Panics with the report unless the command succeeded.
    pub fn assert_success(&self) -> &Self {
        self.assert_exit_code(0)
    }

    /// Panics unless stderr is exactly one line (the contract for failures).
    pub fn assert_one_line_error(&self) -> &Self {
        let stderr = self.stderr();
        assert_eq!(
            stderr.lines().count(),
            1,
            "a failure prints exactly one line on stderr{}",
            self.report()
        );
        assert!(stderr.starts_with("keyward: error: "), "the line names keyward{}", self.report());
        self
    }
}

/// How many KiB of process `pid`'s memory are locked (`lo`) and left out of core dumps (`dd`),
/// from /proc/PID/smaps (adjacent mappings with the same flags are merged by the kernel, so
/// the size tells how many secrets' pages there are, not the count of mappings).
pub fn locked_undumpable_kib(pid: u32) -> u64 {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).expect("smaps");
    let mut total = 0;
    let mut size = 0;
    for line in smaps.lines() {
        if let Some(kib) = line.strip_prefix("Size:") {
            size = kib.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
        } else if let Some(flags) = line.strip_prefix("VmFlags:") {
            let flags: Vec<&str> = flags.split_whitespace().collect();
            if flags.contains(&"lo") && flags.contains(&"dd") {
                total += size;
            }
        }
    }
    total
}

/// Waits (at most 30 s) until something answers at the Unix socket `path` — a socket an earlier
/// process left behind is there but refuses. Panics with `log()` if `child` exits first.
pub fn wait_for_socket(path: &Path, child: &mut Child, log: impl Fn() -> String) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::os::unix::net::UnixStream::connect(path).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the server exited ({status}) before {} answered: {}", path.display(), log());
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nothing answers at {} after 30 s: {}",
            path.display(),
            log()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A process the test started, killed and reaped when the test ends.
pub struct KilledOnDrop(pub Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether the terminal whose master side is `master` echoes what is typed (a pty's master
/// reads the settings of its other side).
fn echoes(master: &std::os::fd::OwnedFd) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: termios is plain data; tcgetattr fills it or fails and leaves it unread.
    let mut settings: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: the descriptor is open for the whole call.
    if unsafe { libc::tcgetattr(master.as_raw_fd(), &raw mut settings) } != 0 {
        return true;
    }
    settings.c_lflag & libc::ECHO != 0
}
