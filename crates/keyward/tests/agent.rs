//! The key agent against real processes: `keyward agent serve` in the background, clients as
//! this user and as others (setpriv), the kernel's credentials, core dumps and ptrace.

mod util;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use util::{CANARY_KEY, CANARY_PASSPHRASE, Dir, Outcome, locked_undumpable_kib, wait_for_socket};

/// The unprivileged user the tests run other processes as (Debian's `nobody`).
const NOBODY: u32 = 65534;
/// Another uid, which one agent allows.
const OTHER: u32 = 65533;

/// An agent running in the background, killed when the test ends.
struct Agent {
    child: Option<Child>,
    socket: PathBuf,
    log: PathBuf,
}

impl Agent {
    /// Starts `keyward agent serve ARGS` in `dir` (with `XDG_RUNTIME_DIR` there) and waits for
    /// its socket: the default one, or `--socket`'s.
    fn start(dir: &Dir, args: &[&str]) -> Agent {
        let mut cmd = agent_command(dir, args);
        Agent::spawn_waiting(dir, &mut cmd, args)
    }

    fn spawn_waiting(dir: &Dir, cmd: &mut Command, args: &[&str]) -> Agent {
        let log = dir.path(&format!("agent-{}.log", std::process::id()));
        let stderr = std::fs::File::create(&log).expect("agent log");
        let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(stderr).spawn();
        let child = child.expect("spawn keyward agent serve");
        let socket = match args.iter().position(|a| *a == "--socket") {
            Some(i) => PathBuf::from(args[i + 1]),
            None => default_socket(dir),
        };
        let mut child = child;
        let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
        wait_for_socket(&socket, &mut child, read_log);
        Agent { child: Some(child), socket, log }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The audit lines so far, parsed.
    fn audit(&self) -> Vec<serde_json::Value> {
        self.log().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    /// The audit lines once `done` holds of them (bounded: the agent writes a request's line
    /// just after its answer, so a client may be back first).
    fn audit_when(&self, done: impl Fn(&[serde_json::Value]) -> bool) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let audit = self.audit();
            if done(&audit) || Instant::now() > deadline {
                return audit;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&mut self, signal: i32) -> std::process::ExitStatus {
        let pid = i32::try_from(self.pid()).expect("pid");
        // SAFETY: kill on our own child's pid.
        unsafe {
            libc::kill(pid, signal);
        }
        self.child.take().expect("running").wait().expect("wait for the agent")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `keyward agent serve ARGS` as the harness runs keyward, with a runtime folder in `dir`.
fn agent_command(dir: &Dir, args: &[&str]) -> Command {
    let run = runtime_dir(dir);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyward"));
    cmd.current_dir(dir.root())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir.root())
        .env("XDG_RUNTIME_DIR", run)
        .env("KEYWARD_KEYBOX", dir.keybox())
        .args(["agent", "serve"])
        .args(args);
    cmd
}

fn runtime_dir(dir: &Dir) -> PathBuf {
    let run = dir.path("run");
    std::fs::create_dir_all(&run).expect("runtime folder");
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    run
}

/// The agent socket keyward derives for `dir`'s keybox (found by the one the agent made).
fn default_socket(dir: &Dir) -> PathBuf {
    let folder = runtime_dir(dir).join("keyward");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = std::fs::read_dir(&folder)
            .ok()
            .and_then(|mut entries| entries.next())
            .and_then(Result::ok)
            .map(|e| e.path());
        if let Some(path) = found {
            return path;
        }
        assert!(Instant::now() < deadline, "no socket in {} after 20 s", folder.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A client command (`keyward ARGS`) with the runtime folder the agent uses.
fn client(dir: &Dir, args: &[&str]) -> Outcome {
    dir.keyward().env("XDG_RUNTIME_DIR", runtime_dir(dir)).args(args).run()
}

/// Fails, naming what is missing, unless this runs as root (needed to run a process as another
/// user with setpriv).
fn require_root(what: &str) {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    assert!(
        root,
        "{what} needs root (to run processes as uid {NOBODY} with setpriv); run the tests as root, as scripts/test-all.sh does in CI"
    );
}

/// A folder any user can enter, with a copy of the keyward binary in it (the build's may be in
/// a folder other users cannot enter) at `name`.
fn shared_folder(dir: &Dir, name: &str) -> (PathBuf, PathBuf) {
    let shared = dir.path("shared");
    std::fs::create_dir_all(&shared).expect("shared folder");
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    // The test folder itself must be enterable too.
    std::fs::set_permissions(dir.root(), std::fs::Permissions::from_mode(0o711)).expect("chmod");
    let binary = shared.join(name);
    std::fs::copy(env!("CARGO_BIN_EXE_keyward"), &binary).expect("copy keyward");
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    (shared, binary)
}

/// `program ARGS` as `uid` (gid the same, no groups), through setpriv.
fn as_user(uid: u32, program: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", "/nonexistent")
        .args([format!("--reuid={uid}"), format!("--regid={uid}"), "--clear-groups".into()])
        .arg(program)
        .args(args);
    cmd
}

fn run_output(cmd: &mut Command) -> std::process::Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e} (is util-linux's setpriv installed?)"))
}

fn sha256_hex(path: &Path) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(std::fs::read(path).expect("read binary"));
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn assert_no_canary(what: &str, bytes: &[u8]) {
    let hex: String = CANARY_KEY.iter().map(|b| format!("{b:02x}")).collect();
    assert!(
        !bytes.windows(CANARY_KEY.len()).any(|w| w == CANARY_KEY)
            && !bytes.windows(hex.len()).any(|w| w == hex.as_bytes()),
        "K appears in {what}"
    );
}

#[test]
fn the_agent_serves_its_user_from_locked_memory_wipes_on_lock_and_audits_without_the_key() {
    let dir = Dir::new("agent-serve");
    dir.init_plain_canary();
    let mut agent = Agent::start(&dir, &["--ttl", "60s"]);
    let folder = agent.socket.parent().expect("folder").to_path_buf();
    let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    assert_eq!((mode(&folder), mode(&agent.socket)), (0o700, 0o600));

    client(&dir, &["agent", "get", "--out", "got.key"]).assert_success();
    assert_eq!(dir.read("got.key"), CANARY_KEY);
    assert_eq!(dir.mode("got.key"), 0o600);
    let out = client(&dir, &["agent", "get", "--out", "-"]);
    out.assert_success();
    assert_eq!(out.output.stdout, CANARY_KEY);
    assert!(locked_undumpable_kib(agent.pid()) > 0, "K is held in locked, undumpable memory");

    let status = client(&dir, &["--json", "agent", "status"]);
    status.assert_success();
    let status: serde_json::Value = serde_json::from_str(&status.stdout()).expect("json");
    assert_eq!((status["state"].as_str(), status["served"].as_u64()), (Some("unlocked"), Some(2)));
    assert!(status["seconds_left"].as_u64().is_some_and(|s| (50..=60).contains(&s)), "{status}");

    // The fingerprint is checked by the client: another one refuses, nothing written.
    let wrong = "00:00:00:00:00:00:00:00";
    let refused = client(&dir, &["agent", "get", "--out", "no.key", "--expect-fingerprint", wrong]);
    refused.assert_exit_code(5).assert_one_line_error();
    assert!(!dir.path("no.key").exists());
    // A second agent for the same socket is refused (exit 7) before it opens anything.
    let socket = agent.socket.to_str().expect("utf-8").to_string();
    let second = dir.keyward().args(["agent", "serve", "--socket", &socket]).run();
    second.assert_exit_code(7).assert_one_line_error();

    client(&dir, &["agent", "lock"]).assert_success();
    assert_eq!(locked_undumpable_kib(agent.pid()), 0, "the key's pages are gone after lock");
    let status = client(&dir, &["--json", "agent", "status"]);
    assert!(status.stdout().contains("\"locked\""), "{}", status.report());
    // Locked, the next request opens the keybox again through its plain slot.
    client(&dir, &["agent", "get", "--out", "again.key"]).assert_success();
    assert_eq!(dir.read("again.key"), CANARY_KEY);

    // Four: the one refused for its fingerprint was refused by the client, after the agent
    // handed it over.
    let audit = agent.audit_when(|lines| lines.iter().filter(|l| l["op"] == "get").count() >= 4);
    let ops: Vec<_> = audit.iter().map(|l| (l["op"].as_str(), l["granted"].as_bool())).collect();
    assert_eq!(ops.iter().filter(|o| **o == (Some("get"), Some(true))).count(), 4, "{audit:?}");
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    // (The harness's own connections that only wait for the socket are audited as requests
    // that never came.)
    let gets: Vec<_> = audit.iter().filter(|l| l["op"] == "get").collect();
    assert!(gets.iter().all(|l| l["uid"] == me && l["pid"].as_u64().is_some()), "{audit:?}");
    assert!(gets.iter().all(|l| l["exe"].as_str().is_some_and(|e| e.ends_with("keyward"))));

    // SIGTERM: the key wiped, the socket removed, the process gone.
    let status = agent.signal(libc::SIGTERM);
    assert!(status.success(), "the agent stops cleanly on SIGTERM: {status}");
    assert!(!agent.socket.exists(), "the socket is removed");
    assert!(agent.log().contains("\"wiped\""), "{}", agent.log());
    assert_no_canary("the agent's log", agent.log().as_bytes());
    let gone = client(&dir, &["agent", "get", "--out", "late.key"]);
    gone.assert_exit_code(8).assert_one_line_error();
    assert!(!dir.path("late.key").exists());
}

#[test]
fn after_its_ttl_the_agent_holds_nothing_and_reopens_only_through_an_unattended_slot() {
    // A key-file slot: after the TTL, a request opens the keybox again through it.
    let dir = Dir::new("agent-ttl");
    dir.init_keyfile_canary();
    let agent = Agent::start(&dir, &["--ttl", "1s"]);
    client(&dir, &["agent", "get", "--out", "first.key"]).assert_success();
    wait_until_locked(&dir, &agent);
    assert_eq!(locked_undumpable_kib(agent.pid()), 0, "nothing held after the TTL");
    client(&dir, &["agent", "get", "--out", "second.key"]).assert_success();
    assert_eq!(dir.read("second.key"), CANARY_KEY);
    // Issue 23.9: the status says through which slot it opens the keybox again.
    let status = client(&dir, &["agent", "status"]);
    assert!(status.stdout().contains("unattended, through slot 1 (keyfile"), "{}", status.report());
    drop(agent);

    // Only a passphrase slot: opened at start with the passphrase, refused after the TTL.
    let dir = Dir::new("agent-ttl-passphrase");
    dir.write("canary.key", CANARY_KEY);
    dir.write("pass.txt", CANARY_PASSPHRASE.as_bytes());
    dir.ok([
        "init",
        "--with",
        "passphrase",
        "--import",
        "canary.key",
        "--passphrase-file",
        "pass.txt",
    ]);
    let agent = Agent::start(&dir, &["--ttl", "1s", "--passphrase-file", "pass.txt"]);
    // Issue 23.9: the status tells the truth: nothing opens this keybox with nobody there.
    let status = client(&dir, &["--json", "agent", "status"]);
    let status: serde_json::Value = serde_json::from_str(&status.stdout()).expect("json");
    assert!(status["reopen"]["cannot"].is_string(), "{status}");
    client(&dir, &["agent", "get", "--out", "first.key"]).assert_success();
    wait_until_locked(&dir, &agent);
    let refused = client(&dir, &["agent", "get", "--out", "second.key"]);
    refused.assert_exit_code(9).assert_one_line_error();
    assert!(refused.stderr().contains("cannot open the keybox unattended"), "{}", refused.report());
    assert!(!dir.path("second.key").exists());
    let audit = agent.audit_when(|lines| lines.iter().filter(|l| l["op"] == "get").count() >= 2);
    let last = audit.last().expect("audited");
    assert_eq!((last["op"].as_str(), last["granted"].as_bool()), (Some("get"), Some(false)));
    assert!(last["reason"].as_str().is_some_and(|r| r.starts_with("locked")), "{last}");
}

/// Waits (bounded) until `agent status` says locked.
fn wait_until_locked(dir: &Dir, agent: &Agent) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = client(dir, &["--json", "agent", "status"]);
        status.assert_success();
        if status.stdout().contains("\"locked\"") {
            return;
        }
        assert!(Instant::now() < deadline, "still unlocked 10 s after a 1 s TTL: {}", agent.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_caller_of_another_uid_is_refused_and_audited_and_an_allowed_uid_is_served() {
    require_root("the other-uid test");
    let dir = Dir::new("agent-uid");
    dir.init_plain_canary();
    let (shared, binary) = shared_folder(&dir, "keyward");
    let socket = shared.join("agent.sock");
    let socket_text = socket.to_str().expect("utf-8").to_string();
    let other = format!("uid:{OTHER}");
    let agent =
        Agent::start(&dir, &["--socket", &socket_text, "--allow", "uid:0", "--allow", &other]);
    assert_eq!(std::fs::metadata(&socket).expect("socket").permissions().mode() & 0o777, 0o666);

    let get = ["agent", "get", "--out", "-", "--socket", &socket_text];
    let refused = run_output(&mut as_user(NOBODY, &binary, &get));
    assert_eq!(refused.status.code(), Some(9), "{refused:?}");
    assert!(refused.stdout.is_empty());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("uid 65534"), "{refused:?}");
    let served = run_output(&mut as_user(OTHER, &binary, &get));
    assert_eq!(served.status.code(), Some(0), "{served:?}");
    assert_eq!(served.stdout, CANARY_KEY);

    let audit = agent.audit_when(|lines| lines.iter().any(|l| l["uid"] == OTHER));
    let line = |uid: u32| audit.iter().find(|l| l["uid"] == uid).cloned().unwrap_or_default();
    assert_eq!(line(NOBODY)["granted"], false, "{audit:?}");
    // Refused on connecting: its request was never read.
    assert!(line(NOBODY)["op"].is_null(), "{audit:?}");
    assert!(line(NOBODY)["pid"].as_u64().is_some());
    assert_eq!(line(OTHER)["granted"], true, "{audit:?}");
    assert_no_canary("the audit log", agent.log().as_bytes());
}

#[test]
fn an_allowed_executable_is_served_and_another_or_a_changed_one_is_refused() {
    let dir = Dir::new("agent-exe");
    dir.init_plain_canary();
    let (_, allowed) = shared_folder(&dir, "keyward-allowed");
    let rule = format!("exe:{}", allowed.display());
    let agent = Agent::start(&dir, &["--allow", &rule]);
    let socket = agent.socket.to_str().expect("utf-8").to_string();
    let get = |program: &Path| {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("HOME", dir.root())
            .args(["agent", "get", "--out", "-", "--socket", &socket]);
        run_output(&mut cmd)
    };
    let served = get(&allowed);
    assert_eq!((served.status.code(), served.stdout.as_slice()), (Some(0), &CANARY_KEY[..]));
    let other = get(Path::new(env!("CARGO_BIN_EXE_keyward")));
    assert_eq!(other.status.code(), Some(9), "{other:?}");
    assert!(String::from_utf8_lossy(&other.stderr).contains("is not allowed"), "{other:?}");
    drop(agent);

    // Pinned to its SHA-256: the right contents are served, another digest refused.
    let pinned = format!("exe:{}@{}", allowed.display(), sha256_hex(&allowed));
    let agent = Agent::start(&dir, &["--allow", &pinned]);
    assert_eq!(get(&allowed).status.code(), Some(0));
    drop(agent);
    let wrong = format!("exe:{}@{}", allowed.display(), "00".repeat(32));
    let agent = Agent::start(&dir, &["--allow", &wrong]);
    assert_eq!(get(&allowed).status.code(), Some(9));
    let audit = agent.audit_when(|lines| {
        lines.iter().any(|l| l["reason"].as_str().is_some_and(|r| r.contains("not allowed")))
    });
    assert_eq!(audit.last().map(|l| l["granted"].clone()), Some(false.into()));
}

#[test]
fn keyward_exec_hands_the_key_on_a_descriptor_and_nowhere_else() {
    let dir = Dir::new("agent-exec");
    dir.init_plain_canary();
    let _agent = Agent::start(&dir, &[]);
    let script = "cat <&\"$KEYWARD_KEY_FD\" > got.key; cat /proc/$$/environ > environ; \
                  cat /proc/$$/cmdline > cmdline; ls -l /proc/$$/fd > fds; echo \"$KEYWARD_KEY_FD\" > fd";
    let out = client(&dir, &["exec", "--", "sh", "-c", script]);
    out.assert_success();
    assert_eq!(dir.read("got.key"), CANARY_KEY);
    assert_no_canary("the child's environment", &dir.read("environ"));
    assert_no_canary("the child's command line", &dir.read("cmdline"));
    assert!(String::from_utf8_lossy(&dir.read("environ")).contains("KEYWARD_KEY_FD="));
    assert_no_canary("exec's output", &out.output.stdout);
    // The child's exit status is exec's.
    client(&dir, &["exec", "--", "sh", "-c", "exit 7"]).assert_exit_code(7);
    // Issue 23.9: a backup client gets a Proxmox Backup key file on the descriptor.
    let pbs = ["exec", "--format", "pbs", "--", "sh", "-c", "cat <&\"$KEYWARD_KEY_FD\" > key.json"];
    client(&dir, &pbs).assert_success();
    let key_file: serde_json::Value = serde_json::from_slice(&dir.read("key.json")).expect("json");
    assert!(key_file["kdf"].is_null() && key_file["data"].is_string(), "{key_file}");
    // No agent: nothing runs.
    let none = dir
        .keyward()
        .env("XDG_RUNTIME_DIR", dir.path("elsewhere"))
        .args(["exec", "--", "touch", "ran"])
        .run();
    none.assert_exit_code(8).assert_one_line_error();
    assert!(!dir.path("ran").exists());
}

#[test]
fn an_agent_killed_mid_request_fails_its_client_cleanly_with_nothing_written() {
    // The key-file slot's file is a FIFO: opening the keybox again blocks in it, so the agent is
    // mid-request when it is killed.
    let dir = Dir::new("agent-kill");
    dir.init_keyfile_canary();
    dir.write("pass.txt", CANARY_PASSPHRASE.as_bytes());
    let fast = ["--kdf-time-ms", "20", "--kdf-memory-mib", "19"];
    dir.ok([
        "enroll",
        "passphrase",
        "--unlock-keyfile",
        "slot.key",
        "--passphrase-file",
        "pass.txt",
    ]
    .iter()
    .chain(&fast));
    std::fs::remove_file(dir.path("slot.key")).expect("remove the key file");
    let fifo = std::ffi::CString::new(dir.path("slot.key").to_str().expect("utf-8")).expect("c");
    // SAFETY: a valid C path and mode.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0, "mkfifo");
    let mut agent = Agent::start(&dir, &["--passphrase-file", "pass.txt"]);
    client(&dir, &["agent", "lock"]).assert_success();
    let (child, line) = dir
        .keyward()
        .env("XDG_RUNTIME_DIR", runtime_dir(&dir))
        .args(["agent", "get", "--out", "k.bin"])
        .spawn();
    std::thread::sleep(Duration::from_millis(500));
    agent.signal(libc::SIGKILL);
    let out = Outcome::from_child(child, line, dir.root());
    out.assert_exit_code(8).assert_one_line_error();
    assert!(!dir.path("k.bin").exists(), "nothing written");
}

#[test]
fn no_core_dump_and_no_debugger_reach_the_agents_memory() {
    require_root("the core-dump and ptrace test");
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default();
    let dir = Dir::new("agent-core");
    let (shared, _) = shared_folder(&dir, "keyward");
    // The agent runs as nobody, in a folder of its own, with core dumps allowed by its limit.
    let home = shared.join("home");
    std::fs::create_dir(&home).expect("home");
    std::os::unix::fs::chown(&home, Some(NOBODY), Some(NOBODY)).expect("chown");
    std::fs::write(home.join("canary.key"), CANARY_KEY).expect("canary");
    std::os::unix::fs::chown(home.join("canary.key"), Some(NOBODY), Some(NOBODY)).expect("chown");
    let keyward = shared.join("keyward");
    let keybox = home.join("keybox.json");
    let keybox_text = keybox.to_str().expect("utf-8");
    let init = ["--keybox", keybox_text, "init", "--with", "plain", "--import", "canary.key"];
    let made = run_output(as_user(NOBODY, &keyward, &init).current_dir(&home));
    assert!(made.status.success(), "{made:?}");
    let socket = home.join("agent.sock");
    let socket_text = socket.to_str().expect("utf-8");
    let serve = ["--keybox", keybox_text, "agent", "serve", "--socket", socket_text];
    let mut cmd = as_user(NOBODY, &keyward, &serve);
    cmd.current_dir(&home);
    allow_core_dumps(&mut cmd);
    let mut agent = Agent::spawn_waiting(&dir, &mut cmd, &serve);

    // A debugger of the same user cannot attach (a control process of that user can be).
    let control_home = shared.join("control");
    std::fs::create_dir(&control_home).expect("control folder");
    std::os::unix::fs::chown(&control_home, Some(NOBODY), Some(NOBODY)).expect("chown");
    let mut control = as_user(NOBODY, Path::new("/bin/sleep"), &["30"]);
    control.current_dir(&control_home);
    allow_core_dumps(&mut control);
    let mut control = control.spawn().expect("sleep");
    std::thread::sleep(Duration::from_millis(200));
    let gdb = |pid: u32| {
        let pid = pid.to_string();
        let args = ["-batch", "-nx", "-p", pid.as_str(), "-ex", "info proc"];
        let out = run_output(&mut as_user(NOBODY, Path::new("/usr/bin/gdb"), &args));
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    // setpriv execs the program, so the child's pid is the agent's (and sleep's).
    let attached = gdb(control.id());
    assert!(
        attached.contains("process "),
        "gdb attaches to a dumpable process of the same user (is gdb installed?): {attached}"
    );
    let refused = gdb(agent.pid());
    assert!(
        refused.contains("Operation not permitted"),
        "gdb must not attach to the agent: {refused}"
    );

    // A client refuses an agent that runs as another user than itself or root.
    let impostor =
        dir.keyward().args(["agent", "get", "--out", "-", "--socket", socket_text]).run();
    impostor.assert_exit_code(9).assert_one_line_error();
    assert!(impostor.stderr().contains("runs as uid 65534"), "{}", impostor.report());
    assert!(impostor.output.stdout.is_empty());

    // SIGABRT: the control process leaves a core file, the agent none.
    let control_pid = control.id();
    // SAFETY: kill on our own children.
    unsafe {
        libc::kill(i32::try_from(control_pid).expect("pid"), libc::SIGABRT);
    }
    let _ = control.wait();
    let status = agent.signal(libc::SIGABRT);
    assert!(!status.success());
    let cores = |folder: &Path| -> Vec<String> {
        std::fs::read_dir(folder)
            .expect("folder")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("core"))
            .collect()
    };
    let control_cores = cores(&control_home);
    assert!(
        !control_cores.is_empty(),
        "the control process left no core file in its folder; core dumps must reach the working folder (kernel.core_pattern is `{}`)",
        pattern.trim()
    );
    assert_eq!(cores(&home), Vec::<String>::new(), "the agent left a core file");
    for core in control_cores {
        let _ = std::fs::remove_file(control_home.join(core));
    }
    assert_no_canary("the agent's log", agent.log().as_bytes());
}

/// Lifts the core-size limit for `cmd` (the agent lowers it again itself).
fn allow_core_dumps(cmd: &mut Command) {
    // SAFETY: setrlimit is async-signal-safe and only changes the child's limit.
    unsafe {
        cmd.pre_exec(|| {
            let unlimited =
                libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
            libc::setrlimit(libc::RLIMIT_CORE, &unlimited);
            Ok(())
        });
    }
}

#[test]
fn a_socket_systemd_passes_is_the_one_served() {
    // systemd-socket-activate listens, and on the first connection starts the agent with the
    // socket as descriptor 3 (LISTEN_FDS=1, LISTEN_PID its pid), as a .socket unit does.
    let dir = Dir::new("agent-activation");
    dir.init_plain_canary();
    let socket = dir.path("activated.sock");
    let keybox = dir.keybox();
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.current_dir(dir.root())
        .env_clear()
        .arg("-l")
        .arg(&socket)
        .arg(env!("CARGO_BIN_EXE_keyward"))
        .arg("--keybox")
        .arg(&keybox)
        .args(["agent", "serve", "--ttl", "60s"]);
    let log = std::fs::File::create(dir.path("activation.log")).expect("log");
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log).spawn();
    let child = child.expect("systemd-socket-activate runs (apt-get install systemd)");
    let _agent =
        Agent { child: Some(child), socket: socket.clone(), log: dir.path("activation.log") };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "systemd-socket-activate made no socket");
        std::thread::sleep(Duration::from_millis(20));
    }
    let socket_text = socket.to_str().expect("utf-8");
    let out = client(&dir, &["agent", "get", "--socket", socket_text, "--out", "got.key"]);
    out.assert_success();
    assert_eq!(dir.read("got.key"), CANARY_KEY);
    let log = std::fs::read_to_string(dir.path("activation.log")).unwrap_or_default();
    assert!(log.contains("the socket systemd passed"), "{log}");
}

/// Runs `work` in a child process as `uid` (gid the same, no groups) and returns its pid: a
/// caller of that uid, without a program of its own (the tests run as root).
fn forked_as(uid: u32, work: impl FnOnce()) -> libc::pid_t {
    // SAFETY: the child only drops its ids, runs `work` (sockets and a sleep) and leaves with
    // _exit; glibc keeps its allocator usable in a forked child.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: as above; setgroups takes an empty list.
        unsafe {
            libc::setgroups(0, std::ptr::null());
            libc::setgid(uid);
            libc::setuid(uid);
        }
        work();
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(0) }
    }
    pid
}

fn reap(pid: libc::pid_t) {
    let mut status = 0;
    // SAFETY: waits for our own child; `status` is valid for writes.
    unsafe {
        libc::waitpid(pid, &raw mut status, 0);
    }
}

/// Issue 22.4: a caller the agent does not serve made 43% of legitimate `get`s fail and wrote
/// about 424,000 audit lines in under a minute; an allowed caller holding 100 half-sent frames
/// blocked every `get`. Now refusals cost a counter, half frames hold only their caller's own
/// share of connections, and every legitimate `get` is served.
#[test]
fn a_flood_of_refused_callers_and_half_sent_frames_stops_no_one_served() {
    use keyward_agent::client::AgentClient;
    use std::io::Write as _;
    require_root("the agent flood test");
    let dir = Dir::new("agent-flood");
    dir.init_plain_canary();
    let (shared, _) = shared_folder(&dir, "keyward");
    let socket = shared.join("agent.sock");
    let socket_text = socket.to_str().expect("utf-8").to_string();
    let audit_file = dir.path("audit.log");
    let other = format!("uid:{OTHER}");
    let audit_text = audit_file.to_str().expect("utf-8").to_string();
    let agent = Agent::start(
        &dir,
        &["--socket", &socket_text, "--allow", "uid:0", "--allow", &other, "--audit", &audit_text],
    );
    let flood_for = Duration::from_secs(4);
    let target = socket.clone();
    let flooder = forked_as(NOBODY, move || {
        let until = Instant::now() + flood_for;
        for _ in 0..400_000 {
            if Instant::now() >= until {
                break;
            }
            drop(std::os::unix::net::UnixStream::connect(&target));
        }
    });
    let target = socket.clone();
    let holder = forked_as(OTHER, move || {
        let mut held = Vec::new();
        for _ in 0..100 {
            if let Ok(mut stream) = std::os::unix::net::UnixStream::connect(&target) {
                let _ = stream.write_all(&[0, 0]);
                held.push(stream);
            }
        }
        std::thread::sleep(flood_for);
    });
    // Meanwhile, this user's gets (bounded in number and time): every one served.
    let client = AgentClient::new(&socket).with_timeout(Some(Duration::from_secs(5)));
    let started = Instant::now();
    let mut served = 0;
    while served < 300 && started.elapsed() < flood_for {
        let key = client.get().unwrap_or_else(|e| panic!("get {served} failed: {e}"));
        assert_eq!(key.expose(), CANARY_KEY);
        served += 1;
    }
    assert!(served >= 50, "only {served} gets in {flood_for:?}");
    assert!(client.status().is_ok() && client.lock().is_ok(), "status and lock answer too");
    reap(flooder);
    reap(holder);

    let status = client.status().expect("status");
    let refused = status.refused.expect("refused");
    assert!(refused >= 100, "the flood was counted: {refused}");
    // Counted, not written one by one: a line for the first of each kind at most, until the
    // interval's summary.
    let lines = std::fs::read_to_string(&audit_file).expect("audit");
    let refusal_lines = lines.lines().filter(|l| l.contains("\"granted\":false")).count();
    assert!(refusal_lines <= 6, "{refusal_lines} refusal lines for {refused} refusals:\n{lines}");
    drop(agent);
}

/// Issue 22.4: one hanging re-open and three `get`s left `status` and `lock` unanswered. Now a
/// re-open runs on a thread of its own: `status` and `lock` answer at once (a `lock` refusing the
/// `get`s waiting, and no re-open they asked for holding a key after it), and a `get` gives up
/// after its own deadline (exit 8, busy) instead of hanging.
#[test]
fn a_hanging_reopen_holds_up_neither_status_nor_lock_and_a_get_gives_up_busy() {
    let dir = Dir::new("agent-hang");
    dir.init_keyfile_canary();
    let agent = Agent::start(&dir, &["--ttl", "60s"]);
    client(&dir, &["agent", "lock"]).assert_success();
    // The recorded key file becomes a FIFO nobody writes: re-opening through it hangs.
    let key_file = dir.read("slot.key");
    std::fs::remove_file(dir.path("slot.key")).expect("remove");
    let fifo = std::ffi::CString::new(dir.path("slot.key").to_str().expect("utf-8")).expect("c");
    // SAFETY: a valid C path and mode.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0, "mkfifo");
    let get = || {
        dir.keyward()
            .env("XDG_RUNTIME_DIR", runtime_dir(&dir))
            .args(["agent", "get", "--out", "-", "--timeout", "20s"])
            .spawn()
    };
    // `status` answers while the re-open hangs, and counts the `get`s waiting for it.
    let wait_for_waiting = |count: u64| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let status = client(&dir, &["--json", "agent", "status", "--timeout", "2s"]);
            status.assert_success();
            let json: serde_json::Value = serde_json::from_str(&status.stdout()).expect("json");
            assert_eq!(json["state"], "locked", "{}", status.report());
            if json["waiting"] == count {
                return;
            }
            assert!(Instant::now() < deadline, "the gets never waited: {}", status.report());
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // One `get` starts a re-open, which hangs; two more ask while it does, for the next round.
    let mut waiting = vec![get()];
    wait_for_waiting(1);
    waiting.extend([get(), get()]);
    wait_for_waiting(3);
    // A `get` with a short deadline gives up (busy), and is dropped when it leaves, not at the
    // agent's own deadline (30 s): a waiting connection that hung up must not wake the agent's
    // every turn until then.
    let busy = client(&dir, &["agent", "get", "--out", "late.key", "--timeout", "1s"]);
    busy.assert_exit_code(8).assert_one_line_error();
    assert!(busy.stderr().contains("busy"), "{}", busy.report());
    assert!(!dir.path("late.key").exists());
    let left = "the caller left before the keybox was opened";
    let audit = agent.audit_when(|lines| lines.iter().any(|l| l["reason"] == left));
    assert!(audit.iter().any(|l| l["reason"] == left), "{}", agent.log());

    // A `lock` refuses at once every `get` waiting (the re-open still hangs).
    client(&dir, &["agent", "lock", "--timeout", "2s"]).assert_success();
    for (child, line) in waiting {
        let out = Outcome::from_child(child, line, dir.root());
        out.assert_exit_code(9);
        assert!(out.stderr().contains("a lock came"), "{}", out.report());
        assert!(out.output.stdout.is_empty(), "{}", out.report());
    }

    // The key file arrives: the hanging re-open finishes and holds nothing (a `lock` came
    // meanwhile), and the round the others asked for before the lock is not run at all: the
    // agent stays locked, though the file would open now. (The FIFO is opened for both reading
    // and writing, which never blocks, and the file put back in its place before the key flows.)
    let mut feed = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.path("slot.key"))
        .expect("open the FIFO");
    dir.write("slot.key.back", &key_file);
    std::fs::rename(dir.path("slot.key.back"), dir.path("slot.key")).expect("put the file back");
    std::io::Write::write_all(&mut feed, &key_file).expect("write into the FIFO");
    drop(feed);
    for _ in 0..20 {
        let status = client(&dir, &["--json", "agent", "status"]);
        assert!(status.stdout().contains("\"locked\""), "{}", status.report());
        std::thread::sleep(Duration::from_millis(50));
    }
    // A `get` after the lock opens it again.
    let again = client(&dir, &["agent", "get", "--out", "-"]);
    again.assert_success();
    assert_eq!(again.output.stdout, CANARY_KEY);
    drop(agent);
}

/// Issue 22.4: the audit file was opened following links: a link planted at its path would have
/// the agent append to a file of someone else's choosing. A link, or anything but a regular
/// file, is refused before the agent starts.
#[test]
fn the_audit_file_is_never_opened_through_a_link() {
    let dir = Dir::new("agent-audit-link");
    dir.init_plain_canary();
    dir.write("elsewhere.log", b"");
    std::os::unix::fs::symlink(dir.path("elsewhere.log"), dir.path("audit.log")).expect("link");
    let audit = dir.path("audit.log");
    let socket = dir.path("agent.sock");
    let out = dir
        .keyward()
        .args(["agent", "serve", "--socket", socket.to_str().expect("utf-8")])
        .args(["--audit", audit.to_str().expect("utf-8")])
        .run();
    out.assert_exit_code(7).assert_one_line_error();
    assert!(out.stderr().contains("symbolic link"), "{}", out.report());
    assert!(dir.read("elsewhere.log").is_empty(), "nothing written through the link");
    assert!(!socket.exists(), "nothing served");
}

/// Issue 23.9: another user whose process cannot reach the agent's socket (its folder is the
/// agent user's alone) is told the agent does not serve it, not that none runs.
#[test]
fn another_user_is_told_the_agent_does_not_serve_it() {
    require_root("the other-user test");
    let dir = Dir::new("agent-not-served");
    dir.init_plain_canary();
    let (shared, binary) = shared_folder(&dir, "keyward");
    let private = shared.join("private");
    std::fs::create_dir(&private).expect("folder");
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let socket = private.join("agent.sock");
    let socket_text = socket.to_str().expect("utf-8").to_string();
    let _agent = Agent::start(&dir, &["--socket", &socket_text]);
    let status = ["agent", "status", "--socket", &socket_text];
    let refused = run_output(&mut as_user(NOBODY, &binary, &status));
    assert_eq!(refused.status.code(), Some(9), "{refused:?}");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("does not serve this user (uid 65534)"), "{said}");
}

/// Issue 23.9: the shipped units' socket, `$XDG_RUNTIME_DIR/keyward/agent.sock`, is where a
/// client of the default keybox looks without --socket.
#[test]
fn the_units_socket_is_the_default_keyboxs_default_socket() {
    let dir = Dir::new("agent-unit-socket");
    let keybox = dir.path(".config/keyward/keybox.json");
    std::fs::create_dir_all(keybox.parent().expect("folder")).expect("config folder");
    dir.write("canary.key", CANARY_KEY);
    dir.keyward()
        .env("KEYWARD_KEYBOX", &keybox)
        .args(["init", "--with", "plain", "--import", "canary.key"])
        .run()
        .assert_success();
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/keyward-agent.socket"
    ))
    .expect("the socket unit");
    assert!(unit.contains("ListenStream=%t/keyward/agent.sock"), "{unit}");
    // No --keybox, no KEYWARD_KEYBOX, no --socket, as the unit runs it and clients ask.
    let plain = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyward"));
        cmd.current_dir(dir.root())
            .env_clear()
            .env("HOME", dir.root())
            .env("XDG_RUNTIME_DIR", runtime_dir(&dir))
            .args(args);
        cmd
    };
    let agent = Agent::spawn_waiting(&dir, &mut plain(&["agent", "serve"]), &[]);
    assert_eq!(agent.socket, runtime_dir(&dir).join("keyward").join("agent.sock"));
    let out = plain(&["agent", "get", "--out", "-"]).output().expect("run keyward");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, CANARY_KEY);
}
