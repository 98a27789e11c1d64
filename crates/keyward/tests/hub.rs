//! The escrow hub end to end, with real processes on 127.0.0.1: a box escrows its key, a fresh
//! machine gets it back with an operator's ticket and the code; every refusal fails closed; the
//! hub never holds anything that opens a key; its overwrite gate and audit chain hold — on
//! SQLite and on PostgreSQL, with two hubs sharing one database, and across a `kill -9`.

mod util;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use util::{CANARY_KEY, Dir};

/// Where a hub keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty PostgreSQL database for one test, from `KEYWARD_TEST_POSTGRES` (which
/// scripts/test-all.sh sets after starting a private PostgreSQL on 127.0.0.1).
fn fresh_postgres_database() -> String {
    let admin = std::env::var("KEYWARD_TEST_POSTGRES").unwrap_or_else(|_| {
        panic!(
            "this test needs PostgreSQL: run scripts/test-all.sh, which installs postgresql, \
             starts it on 127.0.0.1 and sets KEYWARD_TEST_POSTGRES"
        )
    });
    let suffix = keyward_core::random::array::<6>().expect("rng");
    let name = format!("kw_test_{}", keyward_core::encoding::to_hex(&suffix));
    run_sql(&admin, &format!("CREATE DATABASE {name}"));
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base).to_string();
    format!("{base}/{name}")
}

/// Runs one SQL statement (the attacker who can edit the hub's database).
fn run_sql(url: &str, statement: &str) {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
        sqlx::query(sqlx::AssertSqlSafe(statement.to_string())).execute(&pool).await.expect("sql");
        pool.close().await;
    });
}

fn free_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    format!("127.0.0.1:{}", listener.local_addr().expect("addr").port())
}

/// Starts `keyward hub serve` and waits (bounded) until it accepts connections.
fn serve(dir: &Dir, listen: &str, database: &str, log: &str) -> Child {
    serve_with(dir, listen, database, log, &[])
}

fn serve_with(dir: &Dir, listen: &str, database: &str, log: &str, extra: &[&str]) -> Child {
    serve_in(dir, "hub", listen, database, log, extra)
}

/// `keyward hub serve` of the data folder `data`.
fn serve_in(
    dir: &Dir,
    data: &str,
    listen: &str,
    database: &str,
    log: &str,
    extra: &[&str],
) -> Child {
    let log = std::fs::File::create(dir.path(log)).expect("log file");
    // The database URL comes from the environment, never the command line.
    let child = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["hub", "serve", "--data", data, "--listen", listen])
        .env("KEYWARD_DATABASE_URL", database)
        .args(extra)
        .current_dir(dir.root())
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start the hub");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(listen).is_err() {
        assert!(Instant::now() < deadline, "the hub did not start within 20 s:\n{}", dir.listing());
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// A hub process; killed when dropped.
struct HubProcess {
    child: Child,
    url: String,
    fingerprint: String,
    database: String,
    listen: String,
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl HubProcess {
    /// `hub init` and `hub serve` in `dir/hub` on SQLite, trusting the operator key `dir/op.key`.
    fn start(dir: &Dir) -> HubProcess {
        Self::start_on(dir, Backend::Sqlite)
    }

    /// The same on the given backend.
    fn start_on(dir: &Dir, backend: Backend) -> HubProcess {
        let database = match backend {
            Backend::Sqlite => format!("sqlite://{}?mode=rwc", dir.path("hub/hub.db").display()),
            Backend::Postgres => fresh_postgres_database(),
        };
        let keygen = dir.ok(["operator", "keygen", "--out", "op.key", "--json"]);
        let public: serde_json::Value = serde_json::from_str(&keygen.stdout()).expect("json");
        let public = public["public_key"].as_str().expect("public key").to_string();
        let init = dir.ok(["hub", "init", "--data", "hub", "--operator", &public, "--json"]);
        let init: serde_json::Value = serde_json::from_str(&init.stdout()).expect("json");
        let fingerprint =
            init["certificate_fingerprint"].as_str().expect("fingerprint").to_string();
        let listen = free_address();
        let child = serve(dir, &listen, &database, "hub.log");
        HubProcess { child, url: format!("https://{listen}"), fingerprint, database, listen }
    }

    /// A second hub process on the same data folder and database.
    fn another(&self, dir: &Dir) -> HubProcess {
        let listen = free_address();
        let child = serve_with(
            dir,
            &listen,
            &self.database,
            "hub2.log",
            &["--max-pending-versions", "100"],
        );
        HubProcess {
            child,
            url: format!("https://{listen}"),
            fingerprint: self.fingerprint.clone(),
            database: self.database.clone(),
            listen,
        }
    }

    /// Restarts the hub with extra `hub serve` options.
    fn restart_with(&mut self, dir: &Dir, extra: &[&str]) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = serve_with(dir, &self.listen, &self.database, "hub-restarted.log", extra);
    }

    /// Kills the hub with SIGKILL and starts it again on the same address and database.
    fn kill_and_restart(&mut self, dir: &Dir) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let extra = ["--max-pending-versions", "100"];
        self.child = serve_with(dir, &self.listen, &self.database, "hub-restarted.log", &extra);
    }

    /// A second hub on the same database, with a data folder and a certificate of its own
    /// (`hub init` again, trusting the same operator): two hubs of one fleet.
    fn second_with_own_certificate(&self, dir: &Dir, data: &str) -> HubProcess {
        let config: serde_json::Value =
            serde_json::from_slice(&dir.read("hub/hub.json")).expect("hub.json");
        let operator = config["operators"][0].as_str().expect("an operator").to_string();
        let init = dir.ok(["hub", "init", "--data", data, "--operator", &operator, "--json"]);
        let init: serde_json::Value = serde_json::from_str(&init.stdout()).expect("json");
        let fingerprint =
            init["certificate_fingerprint"].as_str().expect("fingerprint").to_string();
        assert_ne!(fingerprint, self.fingerprint, "a certificate of its own");
        let listen = free_address();
        let extra = ["--max-pending-versions", "100"];
        let child = serve_in(dir, data, &listen, &self.database, &format!("{data}.log"), &extra);
        HubProcess {
            child,
            url: format!("https://{listen}"),
            fingerprint,
            database: self.database.clone(),
            listen,
        }
    }

    /// Stops the process (SIGSTOP): its socket still takes connections, and nothing answers.
    fn hang(&self) {
        signal(&self.child, "-STOP");
    }

    /// Lets a stopped process go on (SIGCONT).
    fn go_on(&self) {
        signal(&self.child, "-CONT");
    }

    /// Kills the process (SIGKILL).
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn args(&self) -> [String; 4] {
        ["--hub".into(), self.url.clone(), "--hub-fingerprint".into(), self.fingerprint.clone()]
    }

    /// `hub audit verify` of this hub's database (its URL from a file, as a password would be).
    fn audit(&self, dir: &Dir) -> util::TestCommand {
        dir.write("database-url.txt", self.database.as_bytes());
        dir.keyward().args([
            "hub",
            "audit",
            "verify",
            "--data",
            "hub",
            "--database-url-file",
            "database-url.txt",
        ])
    }

    fn sql(&self, statement: &str) {
        run_sql(&self.database, statement);
    }
}

/// Sends a signal to a child process.
fn signal(child: &Child, which: &str) {
    let status = Command::new("kill").args([which, &child.id().to_string()]).status();
    assert!(status.is_ok_and(|s| s.success()), "kill {which}");
}

/// Enrolls the keybox in `dir` at `hub` as box `pve-07`, with a fresh enrollment token.
fn enroll_box(dir: &Dir, hub: &HubProcess) {
    dir.enrollment_token();
    dir.ok(["escrow", "enroll", "--box", "pve-07", "--token-file", "token.txt"]
        .iter()
        .map(|s| s.to_string())
        .chain(hub.args()));
}

/// A box with the canary key, a recovery code, enrolled at `hub` and its escrow pushed.
fn escrowed_box(dir: &Dir, hub: &HubProcess) -> String {
    let code = dir.init_with_code();
    enroll_box(dir, hub);
    dir.write(
        "directive.json",
        br#"{"repository":"backup@pbs@pbs.example:store1","note":"restore to /var/lib/vz"}"#,
    );
    dir.ok(["escrow", "push", "--directive", "directive.json", "--unlock-code-file", "code.txt"]);
    code
}

/// A single-use recovery ticket.
fn ticket(dir: &Dir, name: &str) {
    ticket_with_uses(dir, name, 1);
}

fn ticket_with_uses(dir: &Dir, name: &str, uses: u32) {
    let uses = uses.to_string();
    dir.ok([
        "operator",
        "approve-recovery",
        "--box",
        "pve-07",
        "--key",
        "op.key",
        "--uses",
        &uses,
        "--out",
        name,
    ]);
}

/// The box's key fingerprint, as its owner records it for the day of recovery.
fn fingerprint_of(dir: &Dir) -> String {
    let out = dir.ok(["fingerprint", "--json"]);
    let value: serde_json::Value = serde_json::from_str(&out.stdout()).expect("json");
    value["fingerprint"].as_str().expect("fingerprint").to_string()
}

fn recover_args(hub: &HubProcess, fp: &str, ticket: &str, code: &str, out: &str) -> Vec<String> {
    let mut args: Vec<String> = vec!["recover".into()];
    args.extend(hub.args());
    args.extend(["--expect-fingerprint".to_string(), fp.to_string()]);
    args.extend(
        ["--box", "pve-07", "--ticket-file", ticket, "--code-file", code, "--out", out]
            .map(String::from),
    );
    args
}

/// A fresh machine: a folder (and HOME) of its own, with only `dir`'s ticket and code.
fn fresh_machine(dir: &Dir, name: &str) -> Dir {
    let fresh = Dir::new(name);
    fresh.write("ticket.txt", &dir.read("ticket.txt"));
    fresh.write("code.txt", &dir.read("code.txt"));
    fresh
}

/// `recover` with the ticket and the code alone (the ticket names the box and the hubs), the
/// fingerprint recorded, and `rest`.
fn ticket_recovery(fp: &str, rest: &[&str]) -> Vec<String> {
    let start = ["recover", "--ticket-file", "ticket.txt", "--code-file", "code.txt"];
    let named = ["--expect-fingerprint", fp];
    start.iter().chain(&named).chain(rest).map(|a| a.to_string()).collect()
}

fn a_fresh_machine_recovers_the_key_with_a_ticket_and_the_code(backend: Backend) {
    let dir = Dir::new("hub-e2e");
    let hub = HubProcess::start_on(&dir, backend);
    escrowed_box(&dir, &hub);
    let fp = fingerprint_of(&dir);
    ticket(&dir, "ticket.txt");

    // The fresh machine: its own empty folder and HOME, only the ticket and the code.
    let fresh = Dir::new("hub-fresh");
    fresh.write("ticket.txt", &dir.read("ticket.txt"));
    fresh.write("code.txt", &dir.read("code.txt"));
    let mut args = recover_args(&hub, &fp, "ticket.txt", "code.txt", "k.bin");
    args.push("--json".into());
    let out = fresh.ok(args);
    assert_eq!(fresh.read("k.bin"), CANARY_KEY, "the same key");
    assert_eq!(fresh.mode("k.bin"), 0o600);
    let report: serde_json::Value = serde_json::from_str(&out.stdout()).expect("json");
    assert_eq!(
        report["directive"]["repository"], "backup@pbs@pbs.example:store1",
        "the directive arrives intact"
    );
    assert_eq!(report["fingerprint"], fp.as_str());

    // A ticket is single use.
    let again =
        fresh.keyward().args(recover_args(&hub, &fp, "ticket.txt", "code.txt", "k2.bin")).run();
    again.assert_exit_code(9).assert_one_line_error();
    assert!(!fresh.path("k2.bin").exists());
    hub.audit(&dir).run().assert_success();
}

fn recovery_fails_closed(backend: Backend) {
    let dir = Dir::new("hub-fail-closed");
    let hub = HubProcess::start_on(&dir, backend);
    escrowed_box(&dir, &hub);
    let fp = fingerprint_of(&dir);

    // A wrong code: exit 3, no output file.
    let other = Dir::new("hub-other-code");
    dir.write("wrong-code.txt", other.init_with_code().as_bytes());
    ticket(&dir, "t1.txt");
    let out =
        dir.keyward().args(recover_args(&hub, &fp, "t1.txt", "wrong-code.txt", "k.bin")).run();
    out.assert_exit_code(3).assert_one_line_error();
    assert!(!dir.path("k.bin").exists());

    // An expired ticket: exit 9.
    dir.ok([
        "operator",
        "approve-recovery",
        "--box",
        "pve-07",
        "--key",
        "op.key",
        "--ttl",
        "1s",
        "--out",
        "t2.txt",
    ]);
    std::thread::sleep(Duration::from_millis(2100));
    dir.keyward()
        .args(recover_args(&hub, &fp, "t2.txt", "code.txt", "k.bin"))
        .run()
        .assert_exit_code(9);
    assert!(!dir.path("k.bin").exists());

    // A blob edited in the hub's database: never a wrong key (exit 3 or 4).
    hub.sql("UPDATE escrows SET blob = replace(blob, substr(blob, 200, 4), 'AAAA') WHERE box_name = 'pve-07'");
    ticket(&dir, "t3.txt");
    let out = dir.keyward().args(recover_args(&hub, &fp, "t3.txt", "code.txt", "k.bin")).run();
    assert!(out.code() == 3 || out.code() == 4, "a tampered blob must fail closed{}", out.report());
    assert!(!dir.path("k.bin").exists());
}

fn a_directive_naming_another_fingerprint_is_a_mismatch(backend: Backend) {
    let dir = Dir::new("hub-directive");
    let hub = HubProcess::start_on(&dir, backend);
    escrowed_box(&dir, &hub);
    let fp = fingerprint_of(&dir);
    let other = "00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff";
    hub.sql(&format!(
        "UPDATE escrows SET directive = '{{\"fingerprint\":\"{other}\"}}' WHERE box_name = 'pve-07'"
    ));
    ticket(&dir, "t.txt");
    let out = dir.keyward().args(recover_args(&hub, &fp, "t.txt", "code.txt", "k.bin")).run();
    out.assert_exit_code(5).assert_one_line_error();
    assert!(!dir.path("k.bin").exists());
}

#[test]
fn c6_the_hub_never_holds_the_key_or_the_code() {
    let dir = Dir::new("hub-c6");
    let hub = HubProcess::start(&dir);
    let code = escrowed_box(&dir, &hub);
    let fp = fingerprint_of(&dir);
    ticket(&dir, "t.txt");
    let out = dir.keyward().args(recover_args(&hub, &fp, "t.txt", "code.txt", "k.bin")).run();
    out.assert_success();
    drop(hub);
    let code = code.trim().to_string();
    let token = String::from_utf8(dir.read("token.txt")).expect("text").trim().to_string();
    let ticket_text = String::from_utf8(dir.read("t.txt")).expect("text").trim().to_string();
    let hex: String = CANARY_KEY.iter().map(|b| format!("{b:02x}")).collect();
    let b64 = keyward_core::encoding::to_base64(CANARY_KEY);
    let mut places = vec![
        ("hub.log".to_string(), dir.read("hub.log")),
        ("recover output".into(), out.output.stdout.clone()),
    ];
    for entry in std::fs::read_dir(dir.path("hub")).expect("hub folder").flatten() {
        let name = format!("hub/{}", entry.file_name().to_string_lossy());
        places.push((name, std::fs::read(entry.path()).unwrap_or_default()));
    }
    for (place, bytes) in &places {
        let text = String::from_utf8_lossy(bytes);
        for (what, canary) in [
            ("key", String::from_utf8_lossy(CANARY_KEY).into_owned()),
            ("key hex", hex.clone()),
            ("key base64", b64.clone()),
            ("code", code.clone()),
            ("enrollment token", token.clone()),
            ("recovery ticket", ticket_text.clone()),
        ] {
            assert!(!text.contains(canary.as_str()), "the {what} appears in {place}");
        }
        assert!(
            !bytes.windows(CANARY_KEY.len()).any(|w| w == CANARY_KEY),
            "the raw key appears in {place}"
        );
    }
}

fn a_second_push_waits_for_an_operator_and_the_box_cannot_skip_it(backend: Backend) {
    let dir = Dir::new("hub-overwrite");
    let hub = HubProcess::start_on(&dir, backend);
    escrowed_box(&dir, &hub);
    let fp = fingerprint_of(&dir);
    // The box rotates its code and pushes again: pending, and recovery serves version 1 only.
    dir.ok(["rotate", "1", "--unlock-code-file", "code.txt", "--code-out", "code2.txt"]);
    let push = dir.ok(["escrow", "push", "--unlock-code-file", "code2.txt", "--json"]);
    let push: serde_json::Value = serde_json::from_str(&push.stdout()).expect("json");
    assert_eq!(push["version"], 2);
    assert_eq!(push["state"], "pending");
    let hash = push["blob_sha256"].as_str().expect("the blob's hash").to_string();
    // Every version is served (newest first): the old code finds version 1 behind the pending
    // version 2. A one-use ticket is then spent.
    ticket(&dir, "t1.txt");
    let mut args = recover_args(&hub, &fp, "t1.txt", "code.txt", "old.bin");
    args.push("--json".into());
    let old: serde_json::Value = serde_json::from_str(&dir.ok(args).stdout()).expect("json");
    assert_eq!(old["version"], 1);
    dir.keyward()
        .args(recover_args(&hub, &fp, "t1.txt", "code2.txt", "x.bin"))
        .run()
        .assert_exit_code(9);

    // An approval names the blob: a wrong hash activates nothing.
    let approve = |hash: &str, key: &str| {
        let mut args: Vec<String> = vec!["operator".into(), "approve-overwrite".into()];
        args.extend(hub.args());
        args.extend(
            ["--box", "pve-07", "--version", "2", "--key", key, "--fingerprint", &fp]
                .map(String::from),
        );
        args.extend(["--blob-sha256".to_string(), hash.to_string()]);
        args
    };
    let wrong = dir.keyward().args(approve(&"00".repeat(32), "op.key")).run();
    wrong.assert_exit_code(9).assert_one_line_error();
    assert!(wrong.stderr().contains("SHA-256"), "says why{}", wrong.report());
    // The box cannot approve for itself: its key is not an operator's.
    dir.keyward().args(approve(&hash, "keybox.json.box-key")).run().assert_exit_code(9);
    // The operator sees the pending blob's hash, and approves exactly that.
    let mut view: Vec<String> = vec!["operator".into(), "escrow-status".into()];
    view.extend(hub.args());
    view.extend(["--box", "pve-07", "--key", "op.key", "--json"].map(String::from));
    let seen: serde_json::Value = serde_json::from_str(&dir.ok(view).stdout()).expect("json");
    assert_eq!(seen["versions"][1]["blob_sha256"], hash.as_str());
    dir.ok(approve(&hash, "op.key"));
    // Both codes recover now: the new one from version 2, the old one from version 1, which
    // an approval supersedes but never removes.
    for (code, out) in [("code2.txt", "new.bin"), ("code.txt", "old2.bin")] {
        ticket(&dir, &format!("t-{out}.txt"));
        dir.ok(recover_args(&hub, &fp, &format!("t-{out}.txt"), code, out));
        assert_eq!(dir.read(out), CANARY_KEY);
    }
    // The same approval cannot be replayed.
    dir.keyward().args(approve(&hash, "op.key")).run().assert_exit_code(9);
    let status = dir.ok(["escrow", "status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status.stdout()).expect("json");
    assert_eq!(status["versions"][0]["state"], "superseded");
    assert_eq!(status["versions"][1]["state"], "active");
}

/// A hub with a few audited events, and `audit verify` run after `tamper`.
fn audit_after(name: &str, backend: Backend, tamper: &[&str]) -> util::Outcome {
    let dir = Dir::new(name);
    let hub = HubProcess::start_on(&dir, backend);
    escrowed_box(&dir, &hub);
    let fp = fingerprint_of(&dir);
    ticket(&dir, "t.txt");
    dir.ok(recover_args(&hub, &fp, "t.txt", "code.txt", "k.bin"));
    hub.audit(&dir).run().assert_success();
    for statement in tamper {
        hub.sql(statement);
    }
    let out = hub.audit(&dir).run();
    out.assert_exit_code(4).assert_one_line_error();
    out
}

#[test]
fn an_edited_audit_row_is_named() {
    let out = audit_after(
        "hub-audit-edit",
        Backend::Sqlite,
        &["UPDATE audit SET detail = 'nothing happened' WHERE seq = 2"],
    );
    assert!(out.stderr().contains("record 2"), "names the row{}", out.report());
}

#[test]
fn a_deleted_audit_row_is_named() {
    let out =
        audit_after("hub-audit-delete", Backend::Sqlite, &["DELETE FROM audit WHERE seq = 2"]);
    assert!(out.stderr().contains("record 3"), "names the first row after the gap{}", out.report());
}

#[test]
fn swapped_audit_rows_are_named() {
    let out = audit_after(
        "hub-audit-swap",
        Backend::Sqlite,
        &[
            "UPDATE audit SET seq = 1000 WHERE seq = 2",
            "UPDATE audit SET seq = 2 WHERE seq = 3",
            "UPDATE audit SET seq = 3 WHERE seq = 1000",
        ],
    );
    assert!(out.stderr().contains("record 2"), "names the row{}", out.report());
}

/// Seed 001 on a dead machine: the box pushed its LUKS2 volume's header, sealed under K; the
/// volume's header (both metadata copies and the keyslot areas) is then destroyed; a fresh
/// machine recovers K from the hub and repairs the header from the hub with the same one-use
/// ticket; the user's passphrase and keyward's open the volume again. The hub never sees the
/// header in the clear, and a sealed copy swapped or damaged at the hub is refused.
fn a_damaged_luks2_header_is_repaired_on_a_fresh_machine_from_the_hub(backend: Backend) {
    use keyward_luks::testing::{FAST_ARGS, USER_PASSPHRASE, new_volume, opens};
    let dir = Dir::new("hub-luks");
    let hub = HubProcess::start_on(&dir, backend);
    escrowed_box(&dir, &hub);
    let fp = fingerprint_of(&dir);
    let image = new_volume(&dir.path("volume.img"));
    dir.write("user-passphrase", USER_PASSPHRASE);
    // keyward's keyslot on an image of `dir`, and its header pushed: the JSON answer.
    let enroll = |image: &str| {
        let mut enroll = vec!["luks", "enroll", image, "--luks-key-file", "user-passphrase"];
        enroll.extend(FAST_ARGS);
        enroll.extend(["--unlock-code-file", "code.txt"]);
        dir.ok(enroll);
    };
    let push = |image: &str| -> serde_json::Value {
        let push = ["--json", "luks", "header-backup", image, "--push"];
        let out = dir.ok(push.iter().chain(&["--unlock-code-file", "code.txt"]));
        serde_json::from_str(&out.stdout()).expect("json")
    };
    enroll("volume.img");
    // The enrollment pushed the header already (the box is enrolled at the hub): this one
    // replaces it.
    let first = push("volume.img");
    assert_eq!(first["pushed"]["replaced"], true, "{first}");
    // Only the metadata and the two keyslot areas travel, not 16 MiB of unused random bytes.
    let sealed_len = first["pushed"]["bytes"].as_u64().expect("bytes");
    assert!(sealed_len < 1 << 20, "{sealed_len} bytes sealed");
    let again = push("volume.img");
    let uuid = again["uuid"].as_str().expect("uuid").to_string();
    // A volume without keyward's keyslot is not pushed: its header would not open with the key.
    new_volume(&dir.path("plain.img"));
    let plain = ["luks", "header-backup", "plain.img", "--push", "--unlock-code-file", "code.txt"];
    dir.keyward().args(plain).run().assert_exit_code(6).assert_one_line_error();

    // Nothing of the header reaches the hub in the clear: not LUKS2's magic, not its JSON.
    let header = std::fs::read(&image).expect("image")[..1 << 20].to_vec();
    let json_start = 4096;
    let json_probe = &header[json_start..json_start + 64];
    let mut places = vec![("hub.log".to_string(), dir.read("hub.log"))];
    if backend == Backend::Sqlite {
        for entry in std::fs::read_dir(dir.path("hub")).expect("hub folder").flatten() {
            let name = format!("hub/{}", entry.file_name().to_string_lossy());
            places.push((name, std::fs::read(entry.path()).unwrap_or_default()));
        }
    }
    for (place, bytes) in &places {
        for (what, probe) in [("LUKS2 magic", &b"LUKS\xba\xbe"[..]), ("header JSON", json_probe)] {
            assert!(!bytes.windows(probe.len()).any(|w| w == probe), "the {what} is in {place}");
        }
    }

    // The machine dies; its disk's header is destroyed, metadata and keyslot areas both.
    ticket(&dir, "ticket.txt");
    let fresh = Dir::new("hub-luks-fresh");
    let mut disk = std::fs::read(&image).expect("image");
    disk[..1 << 20].fill(0);
    fresh.write("volume.img", &disk);
    for file in ["ticket.txt", "code.txt"] {
        fresh.write(file, &dir.read(file));
    }
    let damaged = fresh.sha256("volume.img");
    let mut recover: Vec<String> = vec!["recover".into()];
    recover.extend(hub.args());
    recover.extend(
        ["--expect-fingerprint", &fp, "--box", "pve-07", "--ticket-file", "ticket.txt"]
            .map(String::from),
    );
    recover.extend(["--code-file", "code.txt", "--into-keybox", "keybox.json"].map(String::from));
    fresh.ok(&recover);
    let mut restore: Vec<String> =
        vec!["luks".into(), "header-restore".into(), "volume.img".into()];
    restore.extend(hub.args());
    restore.extend(["--box", "pve-07", "--ticket-file", "ticket.txt"].map(String::from));
    restore.extend(["--unlock-code-file", "code.txt"].map(String::from));
    // Nothing on the disk says which volume it is: the restore asks for it to be named from
    // the owner's own record (it does not print the UUID to paste), and leaves the disk as it
    // was.
    let unconfirmed = fresh.keyward().args(&restore).run();
    unconfirmed.assert_exit_code(2).assert_one_line_error();
    let said = unconfirmed.stderr();
    assert!(said.contains("--expect-uuid") && !said.contains(&uuid), "{}", unconfirmed.report());
    assert_eq!(fresh.sha256("volume.img"), damaged);
    restore.extend(["--expect-uuid".to_string(), uuid.clone()]);
    let repaired = fresh.ok(&restore);
    let said = repaired.stdout();
    assert!(said.contains("Restored the header") && said.contains(", sealed 20"), "{said}");
    let repaired_image = fresh.path("volume.img");
    assert!(opens(&repaired_image, USER_PASSPHRASE, None), "the user's passphrase opens it");
    let keyward = fresh.ok([
        "luks",
        "passphrase",
        "volume.img",
        "--out",
        "-",
        "--unlock-code-file",
        "code.txt",
    ]);
    assert!(opens(&repaired_image, &keyward.output.stdout, None), "keyward's passphrase opens it");

    // A copy at the hub sealed under another key, or damaged and re-hashed to match, is refused
    // (exit 5, exit 4), and the disk is left as it was.
    let other_key =
        keyward_core::DataKey::import(zeroize::Zeroizing::new(vec![7u8; 32])).expect("key");
    let mut volume = keyward_luks::Volume::open(&image).expect("volume");
    let backup = keyward_luks::backup::back_up(&mut volume).expect("backup");
    let foreign = keyward_luks::escrow::seal(&other_key, &backup, 0).expect("seal");
    let ours: keyward_core::Fingerprint = fp.parse().expect("fingerprint");
    let mut forged = foreign.clone();
    let fp_at = keyward_luks::escrow::FINGERPRINT_AT;
    forged[fp_at..fp_at + 32].copy_from_slice(ours.as_bytes());
    fresh.write("volume.img", &disk);
    for (sealed, code) in [(&foreign, 5), (&forged, 4)] {
        hub.sql(&format!(
            "UPDATE luks_headers SET sealed = '{}', sha256 = '{}'",
            keyward_core::encoding::to_base64(sealed),
            keyward_hub::api::blob_sha256(sealed)
        ));
        let out = fresh.keyward().args(&restore).run();
        out.assert_exit_code(code).assert_one_line_error();
        assert_eq!(fresh.sha256("volume.img"), damaged);
    }

    // A header of ten keyslots seals to over 2 MiB, more than any other request the hub takes
    // (and than axum's own default limit): it goes through the real route all the same.
    let big = new_volume(&dir.path("big.img"));
    let user = dir.path("user-passphrase");
    let mut add = vec!["luksAddKey", "--batch-mode", "--key-file", user.to_str().expect("path")];
    add.extend(FAST_ARGS);
    for n in 0..8 {
        let more = dir.write(&format!("more-{n}"), format!("passphrase {n}").as_bytes());
        keyward_luks::testing::cryptsetup_ok(&add, &big, &[more.to_str().expect("path")], b"");
    }
    enroll("big.img");
    let pushed = push("big.img");
    let bytes = pushed["pushed"]["bytes"].as_u64().expect("bytes");
    assert!(bytes > 2 << 20, "{bytes} bytes sealed");
}

#[test]
fn a_damaged_luks2_header_is_repaired_on_a_fresh_machine_from_the_hub_on_sqlite() {
    a_damaged_luks2_header_is_repaired_on_a_fresh_machine_from_the_hub(Backend::Sqlite);
}

#[test]
fn a_damaged_luks2_header_is_repaired_on_a_fresh_machine_from_the_hub_on_postgres() {
    a_damaged_luks2_header_is_repaired_on_a_fresh_machine_from_the_hub(Backend::Postgres);
}

#[test]
fn a_fresh_machine_recovers_the_key_with_a_ticket_and_the_code_on_sqlite() {
    a_fresh_machine_recovers_the_key_with_a_ticket_and_the_code(Backend::Sqlite);
}

#[test]
fn a_fresh_machine_recovers_the_key_with_a_ticket_and_the_code_on_postgres() {
    a_fresh_machine_recovers_the_key_with_a_ticket_and_the_code(Backend::Postgres);
}

#[test]
fn recovery_fails_closed_on_sqlite() {
    recovery_fails_closed(Backend::Sqlite);
}

#[test]
fn recovery_fails_closed_on_postgres() {
    recovery_fails_closed(Backend::Postgres);
}

#[test]
fn a_directive_naming_another_fingerprint_is_a_mismatch_on_sqlite() {
    a_directive_naming_another_fingerprint_is_a_mismatch(Backend::Sqlite);
}

#[test]
fn a_directive_naming_another_fingerprint_is_a_mismatch_on_postgres() {
    a_directive_naming_another_fingerprint_is_a_mismatch(Backend::Postgres);
}

#[test]
fn a_second_push_waits_for_an_operator_and_the_box_cannot_skip_it_on_sqlite() {
    a_second_push_waits_for_an_operator_and_the_box_cannot_skip_it(Backend::Sqlite);
}

#[test]
fn a_second_push_waits_for_an_operator_and_the_box_cannot_skip_it_on_postgres() {
    a_second_push_waits_for_an_operator_and_the_box_cannot_skip_it(Backend::Postgres);
}

#[test]
fn an_edited_audit_row_is_named_on_postgres() {
    let out = audit_after(
        "hub-audit-pg",
        Backend::Postgres,
        &["UPDATE audit SET detail = 'nothing happened' WHERE seq = 3"],
    );
    assert!(out.stderr().contains("record 3"), "names the row{}", out.report());
}

#[test]
fn two_hubs_on_one_postgres_lose_and_duplicate_no_version() {
    let dir = Dir::new("hub-two");
    let mut hub_a = HubProcess::start_on(&dir, Backend::Postgres);
    escrowed_box(&dir, &hub_a);
    // Many pending versions at once: the race is what is tested, not the pending cap.
    hub_a.restart_with(&dir, &["--max-pending-versions", "100"]);
    let hub_b = hub_a.another(&dir);
    // A second copy of the box (same keybox and identity) that talks to hub B.
    let copy = copy_of_box_at(&dir, "hub-two-b", &hub_b);

    // Pushes to both hubs at once, bounded in number.
    const EACH: usize = 8;
    let mut children = Vec::new();
    for i in 0..EACH {
        for (j, side) in [&dir, &copy].into_iter().enumerate() {
            let push = push_numbered(side, 2 * i + j).args(["--json"]);
            children.push((push.spawn(), side.root()));
        }
    }
    let mut versions = Vec::new();
    for ((child, line), root) in children {
        let out = util::Outcome::from_child(child, line, root);
        out.assert_success();
        let answer: serde_json::Value = serde_json::from_str(&out.stdout()).expect("json");
        versions.push(answer["version"].as_u64().expect("version"));
    }
    versions.sort_unstable();
    let last = u64::try_from(2 * EACH + 1).expect("small");
    assert_eq!(versions, (2..=last).collect::<Vec<u64>>(), "no version lost, none given twice");
    let status = dir.ok(["escrow", "status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status.stdout()).expect("json");
    assert_eq!(status["versions"].as_array().map(Vec::len), Some(2 * EACH + 1));
    hub_a.audit(&dir).run().assert_success();
}

#[test]
fn a_killed_hub_keeps_every_push_it_acknowledged() {
    let dir = Dir::new("hub-kill");
    let mut hub = HubProcess::start(&dir);
    escrowed_box(&dir, &hub);
    hub.restart_with(&dir, &["--max-pending-versions", "100"]);
    // A bounded burst of pushes from another thread; the hub is killed with SIGKILL mid-way.
    let root = dir.root().to_path_buf();
    let keybox = dir.keybox();
    let burst = std::thread::spawn(move || {
        let mut acknowledged = Vec::new();
        for _ in 0..40 {
            let out = Command::new(env!("CARGO_BIN_EXE_keyward"))
                .args(["escrow", "push", "--unlock-code-file", "code.txt", "--json"])
                .current_dir(&root)
                .env_clear()
                .env("HOME", &root)
                .env("KEYWARD_KEYBOX", &keybox)
                .stdin(Stdio::null())
                .output()
                .expect("run push");
            if out.status.success() {
                let answer: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
                acknowledged.push(answer["version"].as_u64().expect("version"));
            }
        }
        acknowledged
    });
    std::thread::sleep(Duration::from_millis(400));
    hub.kill_and_restart(&dir);
    let acknowledged = burst.join().expect("the burst thread");
    assert!(!acknowledged.is_empty(), "some pushes were acknowledged");
    let status = dir.ok(["escrow", "status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status.stdout()).expect("json");
    let stored: Vec<u64> = status["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .filter_map(|v| v["version"].as_u64())
        .collect();
    for version in &acknowledged {
        assert!(stored.contains(version), "version {version} was acknowledged, then lost");
    }
    hub.audit(&dir).run().assert_success();
}

#[test]
fn a_box_over_its_rate_limit_is_refused_with_the_reason() {
    let dir = Dir::new("hub-rate");
    let mut hub = HubProcess::start(&dir);
    escrowed_box(&dir, &hub);
    hub.restart_with(&dir, &["--rate-per-box", "3"]);
    for _ in 0..3 {
        dir.ok(["escrow", "status"]);
    }
    let out = dir.keyward().args(["escrow", "status"]).run();
    out.assert_exit_code(9).assert_one_line_error();
    assert!(out.stderr().contains("rate-limited"), "says why{}", out.report());
}

#[test]
fn repeated_bad_signatures_lock_a_box_out() {
    let dir = Dir::new("hub-lockout");
    let hub = HubProcess::start(&dir);
    escrowed_box(&dir, &hub);
    // Another identity claiming to be the box: every request is a bad signature.
    let good = dir.read("keybox.json.box-key");
    dir.ok(["operator", "keygen", "--out", "impostor.key"]);
    std::fs::write(dir.path("keybox.json.box-key"), dir.read("impostor.key")).expect("swap key");
    for _ in 0..10 {
        dir.keyward().args(["escrow", "status"]).run().assert_exit_code(9);
    }
    // Now even the real key is refused until an operator acts.
    std::fs::write(dir.path("keybox.json.box-key"), good).expect("restore key");
    let out = dir.keyward().args(["escrow", "status"]).run();
    out.assert_exit_code(9);
    assert!(out.stderr().contains("locked out"), "says why{}", out.report());
    drop(hub);
}

#[test]
fn a_box_can_read_back_its_own_escrow() {
    let dir = Dir::new("hub-fetch");
    let hub = HubProcess::start(&dir);
    escrowed_box(&dir, &hub);
    dir.ok(["escrow", "fetch", "--out", "fetched.json"]);
    assert_eq!(dir.mode("fetched.json"), 0o600);
    // It is the keybox's recovery-code slot standing alone: `recover --blob` opens it offline.
    let fp = fingerprint_of(&dir);
    dir.ok([
        "recover",
        "--blob",
        "fetched.json",
        "--code-file",
        "code.txt",
        "--expect-fingerprint",
        &fp,
        "--out",
        "k.bin",
    ]);
    assert_eq!(dir.read("k.bin"), CANARY_KEY);
    drop(hub);
}

#[test]
fn an_operator_deletion_erases_the_escrow_from_the_hub_files() {
    let dir = Dir::new("hub-delete");
    let hub = HubProcess::start(&dir);
    escrowed_box(&dir, &hub);
    dir.ok(["escrow", "fetch", "--out", "fetched.json"]);
    let stored = keyward_core::encoding::to_base64(&dir.read("fetched.json"));
    let hub_files_hold_the_blob = || {
        std::fs::read_dir(dir.path("hub")).expect("hub folder").flatten().any(|entry| {
            let bytes = std::fs::read(entry.path()).unwrap_or_default();
            String::from_utf8_lossy(&bytes).contains(&stored[..48])
        })
    };
    assert!(hub_files_hold_the_blob(), "the scan below must be able to see the blob");
    let delete = |key: &str| {
        let mut args: Vec<String> = vec!["operator".into(), "delete-escrow".into()];
        args.extend(hub.args());
        args.extend(
            ["--box", "pve-07", "--version", "1", "--key", key, "--json"].map(String::from),
        );
        dir.keyward().args(args).run()
    };
    // The box's own key is not an operator's: refused, nothing erased.
    delete("keybox.json.box-key").assert_exit_code(9).assert_one_line_error();
    dir.ok(["escrow", "fetch", "--out", "still-there.json"]);

    let out = delete("op.key");
    out.assert_success();
    let answer: serde_json::Value = serde_json::from_str(&out.stdout()).expect("json");
    assert_eq!(answer["state"], "deleted");
    let status = dir.ok(["escrow", "status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status.stdout()).expect("json");
    assert_eq!(status["versions"][0]["state"], "deleted");
    // A recovery ticket now finds nothing to serve, and nothing is written.
    let fp = fingerprint_of(&dir);
    ticket(&dir, "t.txt");
    dir.keyward()
        .args(recover_args(&hub, &fp, "t.txt", "code.txt", "k.bin"))
        .run()
        .assert_exit_code(6)
        .assert_one_line_error();
    assert!(!dir.path("k.bin").exists());
    delete("op.key").assert_exit_code(9);
    hub.audit(&dir).run().assert_success();
    drop(hub);
    // The blob's text is gone from the database files, not only hidden from queries.
    assert!(!hub_files_hold_the_blob(), "the erased blob is still in the hub's files");
}

#[test]
fn hubs_starting_at_once_on_an_empty_postgres_all_come_up() {
    let dir = Dir::new("hub-pg-start");
    let keygen = dir.ok(["operator", "keygen", "--out", "op.key", "--json"]);
    let public: serde_json::Value = serde_json::from_str(&keygen.stdout()).expect("json");
    let public = public["public_key"].as_str().expect("public key").to_string();
    dir.ok(["hub", "init", "--data", "hub", "--operator", &public]);
    let database = fresh_postgres_database();
    // Each start creates the schema; racing creations must not fail any of them.
    let mut hubs: Vec<Child> = std::thread::scope(|scope| {
        let starts: Vec<_> = (0..4)
            .map(|i| {
                let (dir, database) = (&dir, &database);
                scope.spawn(move || serve(dir, &free_address(), database, &format!("hub{i}.log")))
            })
            .collect();
        starts.into_iter().map(|start| start.join().expect("a hub started")).collect()
    });
    for hub in &mut hubs {
        assert!(hub.try_wait().expect("status").is_none(), "a hub exited:\n{}", dir.listing());
        let _ = hub.kill();
        let _ = hub.wait();
    }
}

#[test]
fn a_compromised_box_cannot_cost_the_owner_the_escrow() {
    let dir = Dir::new("hub-compromised");
    let hub = HubProcess::start(&dir);
    escrowed_box(&dir, &hub);
    let fp = fingerprint_of(&dir);
    // The attacker holds K and the box's identity: it makes a keybox of K under a code of its
    // own beside a copy of the box's enrollment, and pushes that.
    let attacker = Dir::new("hub-attacker");
    attacker.init_with_code_in("mine.txt");
    for file in ["keybox.json.box-key", "keybox.json.hub.json"] {
        attacker.write(file, &dir.read(file));
    }
    let push = attacker.ok(["escrow", "push", "--unlock-code-file", "mine.txt", "--json"]);
    let push: serde_json::Value = serde_json::from_str(&push.stdout()).expect("json");
    let hash = push["blob_sha256"].as_str().expect("hash").to_string();
    // A routine approval: the operator approves what the box pushed, by its hash.
    let mut approve: Vec<String> = vec!["operator".into(), "approve-overwrite".into()];
    approve.extend(hub.args());
    approve.extend(
        [
            "--box",
            "pve-07",
            "--version",
            "2",
            "--key",
            "op.key",
            "--fingerprint",
            &fp,
            "--blob-sha256",
            &hash,
        ]
        .map(String::from),
    );
    dir.ok(approve);
    // The owner's code still recovers K, from the version the approval superseded.
    ticket(&dir, "t.txt");
    let mut args = recover_args(&hub, &fp, "t.txt", "code.txt", "k.bin");
    args.push("--json".into());
    let out = dir.ok(args);
    assert_eq!(dir.read("k.bin"), CANARY_KEY);
    let report: serde_json::Value = serde_json::from_str(&out.stdout()).expect("json");
    assert_eq!(report["version"], 1, "the owner's version, passed over by nothing");
}

#[test]
fn a_mistyped_code_does_not_cost_the_ticket() {
    let dir = Dir::new("hub-typo");
    let hub = HubProcess::start(&dir);
    escrowed_box(&dir, &hub);
    let fp = fingerprint_of(&dir);
    ticket_with_uses(&dir, "t.txt", 3);
    // A word off the list is caught before any request.
    let code = String::from_utf8(dir.read("code.txt")).expect("text");
    let mut words: Vec<&str> = code.split_whitespace().collect();
    words[3] = "notaword";
    dir.write("typo.txt", words.join(" ").as_bytes());
    dir.keyward()
        .args(recover_args(&hub, &fp, "t.txt", "typo.txt", "k.bin"))
        .run()
        .assert_exit_code(3);
    // A valid but wrong code costs one of the ticket's uses, and says how many are left.
    let other = Dir::new("hub-typo-other");
    dir.write("wrong.txt", other.init_with_code().as_bytes());
    let wrong = dir.keyward().args(recover_args(&hub, &fp, "t.txt", "wrong.txt", "k.bin")).run();
    wrong.assert_exit_code(3).assert_one_line_error();
    assert!(wrong.stderr().contains("allows 2 more"), "{}", wrong.report());
    assert!(!dir.path("k.bin").exists());
    // The right code with the same ticket.
    dir.ok(recover_args(&hub, &fp, "t.txt", "code.txt", "k.bin"));
    assert_eq!(dir.read("k.bin"), CANARY_KEY);
    let log = hub.audit(&dir).args(["--json"]).run();
    log.assert_success();
}

#[test]
fn a_slot_spliced_in_from_an_old_copy_is_never_escrowed() {
    use keyward_core::keybox::format::{decode, encode};
    let dir = Dir::new("hub-splice");
    let hub = HubProcess::start(&dir);
    dir.write("canary.key", CANARY_KEY);
    dir.ok(["init", "--with", "plain", "--import", "canary.key"]);
    dir.ok(["enroll", "recovery-code", "--code-out", "code.txt"]);
    enroll_box(&dir, &hub);
    let old = dir.read("keybox.json");
    // The code leaks; the owner rotates it.
    dir.ok(["rotate", "2", "--code-out", "code2.txt"]);
    // Someone who can write the file but does not know K puts the old slot back.
    let path = std::path::Path::new("k");
    let (mut header, mac, _) = decode(&dir.read("keybox.json"), path).expect("decode");
    let (old_header, _, _) = decode(&old, path).expect("decode old");
    header.slots[1] = old_header.slots[1].clone();
    dir.write("keybox.json", &encode(&header, &mac));
    let out = dir.keyward().args(["escrow", "push"]).run();
    out.assert_exit_code(4).assert_one_line_error();
    assert!(out.stderr().contains("header MAC"), "{}", out.report());
    let status = dir.ok(["escrow", "status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status.stdout()).expect("json");
    assert_eq!(status["versions"].as_array().map(Vec::len), Some(0), "nothing was escrowed");
}

#[test]
fn a_certificate_that_is_not_the_pinned_one_is_called_a_possible_interception() {
    let dir = Dir::new("hub-pin");
    let hub = HubProcess::start(&dir);
    // Another hub's certificate, pinned by mistake (or a man in the middle's).
    let other = Dir::new("hub-pin-other");
    let other_operator = other.ok(["operator", "keygen", "--out", "op.key"]).stdout();
    let init = other.ok(["hub", "init", "--data", "hub", "--operator", other_operator.trim()]);
    // `hub init` prints the certificate's fingerprint alone.
    let pinned = init.stdout().trim().to_string();
    dir.enrollment_token();
    let out = dir
        .keyward()
        .args([
            "escrow",
            "enroll",
            "--box",
            "pve-07",
            "--token-file",
            "token.txt",
            "--hub",
            &hub.url,
            "--hub-fingerprint",
            &pinned,
        ])
        .run();
    out.assert_exit_code(10).assert_one_line_error();
    let stderr = out.stderr();
    assert!(stderr.contains("intercepted"), "{}", out.report());
    assert!(
        stderr.contains(&pinned) && stderr.contains(&hub.fingerprint),
        "both fingerprints{}",
        out.report()
    );
    assert!(!dir.path("keybox.json.box-key").exists(), "no identity left behind");
}

#[test]
fn plain_http_is_refused_before_anything_is_sent() {
    let dir = Dir::new("hub-http");
    dir.ok(["operator", "keygen", "--out", "op.key"]);
    dir.enrollment_token();
    // Nothing listens there: a client that tried would say "cannot be reached" (8).
    let url = format!("http://{}", free_address());
    let out = dir
        .keyward()
        .args([
            "escrow",
            "enroll",
            "--box",
            "pve-07",
            "--token-file",
            "token.txt",
            "--hub",
            &url,
            "--hub-fingerprint",
            &"ab".repeat(32),
        ])
        .run();
    out.assert_exit_code(2).assert_one_line_error();
    assert!(out.stderr().contains("https://"), "{}", out.report());
}

#[test]
fn the_hub_database_and_its_log_are_private_and_refusals_write_no_rows() {
    let dir = Dir::new("hub-private");
    let hub = HubProcess::start(&dir);
    escrowed_box(&dir, &hub);
    for file in ["hub.db", "hub.db-wal", "hub.db-shm"] {
        assert_eq!(dir.mode(&format!("hub/{file}")), 0o600, "hub/{file}\n{}", dir.listing());
    }
    let rows = |dir: &Dir| {
        let out = hub.audit(dir).args(["--json"]).run();
        out.assert_success();
        let v: serde_json::Value = serde_json::from_str(&out.stdout()).expect("json");
        v["records"].as_u64().expect("records")
    };
    let before = rows(&dir);
    // A flood of bad signatures: refused and counted, but not one audit row each.
    let good = dir.read("keybox.json.box-key");
    dir.ok(["operator", "keygen", "--out", "impostor.key"]);
    std::fs::write(dir.path("keybox.json.box-key"), dir.read("impostor.key")).expect("swap key");
    for _ in 0..8 {
        dir.keyward().args(["escrow", "status"]).run().assert_exit_code(9);
    }
    std::fs::write(dir.path("keybox.json.box-key"), good).expect("restore key");
    assert_eq!(rows(&dir), before, "refusals wrote no audit rows");
}

#[test]
fn the_database_url_never_comes_from_the_command_line() {
    let dir = Dir::new("hub-db-argv");
    let out = dir
        .keyward()
        .args(["hub", "serve", "--data", "hub", "--database", "postgres://u:secret@127.0.0.1/db"])
        .run();
    out.assert_exit_code(2);
    assert!(!out.stderr().contains("secret"), "the password is not echoed{}", out.report());
}

#[test]
fn the_hub_keeps_its_tls_key_locked_and_out_of_core_dumps() {
    let dir = Dir::new("hub-locked");
    let hub = HubProcess::start(&dir);
    assert!(
        util::locked_undumpable_kib(hub.child.id()) >= 4,
        "the TLS key's mapping is locked (lo) and not dumped (dd)"
    );
}

/// A TLS connection to `hub` (its pinned certificate), ready for hand-written HTTP.
fn raw_tls(hub: &HubProcess) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
    let pin = keyward_service::tls::parse_pin(&hub.fingerprint).expect("pin");
    let (config, _) = keyward_service::tls::pinned_client_config(pin).expect("config");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let connection =
        rustls::ClientConnection::new(std::sync::Arc::new(config), name).expect("connection");
    let tcp = std::net::TcpStream::connect(&hub.listen).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    rustls::StreamOwned::new(connection, tcp)
}

#[test]
fn the_hub_drops_a_stalled_body_and_caps_connections_per_source() {
    use std::io::{Read, Write};
    let dir = Dir::new("hub-stall");
    let mut hub = HubProcess::start(&dir);
    hub.restart_with(&dir, &["--read-timeout-secs", "1", "--max-connections-per-source", "4"]);
    // A push whose body never comes: dropped after about a second, not held.
    let mut stalled = raw_tls(&hub);
    stalled
        .write_all(
            b"POST /v1/enroll HTTP/1.1\r\nhost: localhost\r\ncontent-length: 900\r\n\r\n{\"box\"",
        )
        .expect("send");
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = stalled.read_to_end(&mut answer);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_secs(8),
        "dropped after the read timeout, not before or never ({waited:?})"
    );
    // Four connections held open; a fifth from the same source is closed unserved.
    let probe =
        |stream: &mut rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>| {
            stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n")?;
            let mut buf = [0u8; 12];
            stream.read_exact(&mut buf).map(|()| buf)
        };
    let mut held: Vec<_> = (0..4).map(|_| raw_tls(&hub)).collect();
    for stream in &mut held {
        let head = probe(stream).expect("a held connection is served");
        assert_eq!(&head, b"HTTP/1.1 200");
    }
    assert!(probe(&mut raw_tls(&hub)).is_err(), "a fifth connection is not served");
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    probe(&mut raw_tls(&hub)).expect("served again once the others are gone");
    // A body over the limit is refused before it is read, as JSON.
    let mut big = raw_tls(&hub);
    big.write_all(b"POST /v1/enroll HTTP/1.1\r\nhost: localhost\r\ncontent-length: 300000\r\n\r\n")
        .expect("send");
    let mut answer = vec![0u8; 4096];
    let n = big.read(&mut answer).expect("an answer");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("application/json") && answer.contains("too-large"), "{answer}");
}

#[test]
fn a_box_cannot_pile_up_pending_versions() {
    let dir = Dir::new("hub-pending");
    let hub = HubProcess::start(&dir);
    escrowed_box(&dir, &hub);
    for n in 1..=4 {
        push_numbered(&dir, n).run().assert_success();
    }
    let out = push_numbered(&dir, 5).run();
    out.assert_exit_code(9).assert_one_line_error();
    assert!(out.stderr().contains("waiting for approval"), "{}", out.report());
    // The same push again is the version it became, not one more.
    push_numbered(&dir, 4).run().assert_success();
    // An operator's deletion of a pending version makes room for one more, and no more.
    let mut delete: Vec<String> = vec!["operator".into(), "delete-escrow".into()];
    delete.extend(hub.args());
    delete.extend(["--box", "pve-07", "--version", "2", "--key", "op.key"].map(String::from));
    dir.ok(delete);
    push_numbered(&dir, 6).run().assert_success();
    push_numbered(&dir, 7).run().assert_exit_code(9);
}

/// Issue 22.3: `luks rotate` (and enroll, remove) left the hub's sealed header copy stale
/// without a word, and a later restore from the hub brought back the rotated-out keyslot. Each
/// change now pushes a fresh copy (or fails, exit 8, saying the copy is stale), and `luks
/// status` says whether the hub's copy is current.
#[test]
fn a_luks_change_keeps_the_hub_copy_current_and_status_says_whether_it_is() {
    use keyward_luks::testing::{FAST_ARGS, USER_PASSPHRASE, cryptsetup_ok, new_volume, opens};
    let dir = Dir::new("hub-luks-current");
    let mut hub = HubProcess::start(&dir);
    escrowed_box(&dir, &hub);
    let image = new_volume(&dir.path("volume.img"));
    dir.write("user-passphrase", USER_PASSPHRASE);
    let with_code = |args: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        args.extend(["--unlock-code-file".into(), "code.txt".into()]);
        args
    };
    let json = |out: util::Outcome| -> serde_json::Value {
        serde_json::from_str(&out.stdout()).expect("JSON")
    };
    let hub_copy = || json(dir.ok(["--json", "luks", "status", "volume.img"]))["hub_copy"].clone();
    let mut enroll =
        vec!["--json", "luks", "enroll", "volume.img", "--luks-key-file", "user-passphrase"];
    enroll.extend(FAST_ARGS);
    let enrolled = json(dir.ok(with_code(&enroll)));
    assert_eq!(enrolled["hub_copy"]["state"], "current", "{enrolled}");
    assert_eq!(hub_copy()["state"], "current");

    // A keyslot added by hand: the hub's copy no longer is the header.
    let user = dir.path("user-passphrase");
    let mut add = vec!["luksAddKey", "--batch-mode", "--key-file", user.to_str().expect("path")];
    add.extend(FAST_ARGS);
    let more = dir.write("more", b"another passphrase");
    cryptsetup_ok(&add, &image, &[more.to_str().expect("path")], b"");
    let stale = dir.ok(["luks", "status", "volume.img"]).stdout();
    assert!(stale.contains("Hub copy at") && stale.contains("STALE"), "{stale}");

    // A rotation pushes the header it leaves; a restore from the hub then brings back the new
    // keyslot, never the rotated-out one.
    let passphrase = |dir: &Dir| {
        dir.ok(with_code(&["luks", "passphrase", "volume.img", "--out", "-"])).output.stdout
    };
    let before = passphrase(&dir);
    let mut rotate = vec!["--json", "luks", "rotate", "volume.img"];
    rotate.extend(FAST_ARGS);
    let rotated = json(dir.ok(with_code(&rotate)));
    assert_eq!(rotated["hub_copy"]["state"], "current", "{rotated}");
    assert_eq!(hub_copy()["state"], "current");
    let after = passphrase(&dir);
    ticket_with_uses(&dir, "ticket.txt", 1);
    let mut damaged = std::fs::read(&image).expect("image");
    let volume_uuid =
        String::from_utf8(cryptsetup_ok(&["luksUUID"], &image, &[], b"")).expect("uuid");
    damaged[..1 << 20].fill(0);
    dir.write("damaged.img", &damaged);
    let mut restore: Vec<String> =
        ["luks", "header-restore", "damaged.img"].map(String::from).to_vec();
    restore.extend(hub.args());
    restore.extend(
        ["--box", "pve-07", "--ticket-file", "ticket.txt", "--expect-uuid", volume_uuid.trim()]
            .map(String::from),
    );
    dir.ok(with_code(&restore.iter().map(String::as_str).collect::<Vec<_>>()));
    let restored = dir.path("damaged.img");
    assert!(opens(&restored, &after, None), "the current keyslot is back");
    assert!(!opens(&restored, &before, None), "the rotated-out keyslot is not");

    // The hub down: the rotation is made, the command fails (exit 8) saying the copy is stale,
    // and status cannot tell but still answers.
    let _ = hub.child.kill();
    let _ = hub.child.wait();
    let failed = dir.keyward().args(with_code(&rotate[1..])).run();
    failed.assert_exit_code(8).assert_one_line_error();
    assert!(failed.stderr().contains("stale"), "{}", failed.report());
    let rotated_while_down = passphrase(&dir);
    assert!(opens(&image, &rotated_while_down, None) && !opens(&image, &after, None));
    assert_eq!(hub_copy()["state"], "cannot tell");
    hub.restart_with(&dir, &[]);
    wait_until_serving(&dir);
    assert_eq!(hub_copy()["state"], "stale");
    dir.ok(with_code(&["luks", "header-backup", "volume.img", "--push"]));
    assert_eq!(hub_copy()["state"], "current");
}

/// Waits (at most 10 s) until the box's hub answers `escrow status`.
fn wait_until_serving(dir: &Dir) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !dir.keyward().args(["escrow", "status"]).run().output.status.success() {
        assert!(std::time::Instant::now() < deadline, "the hub did not come back");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The box's files as a copy that talks to `hub` (same keybox and identity).
fn copy_of_box_at(dir: &Dir, name: &str, hub: &HubProcess) -> Dir {
    let copy = Dir::new(name);
    for file in ["keybox.json", "keybox.json.box-key", "code.txt"] {
        copy.write(file, &dir.read(file));
    }
    let mut enrollment: serde_json::Value =
        serde_json::from_slice(&dir.read("keybox.json.hub.json")).expect("json");
    enrollment["hubs"] = serde_json::json!([{ "url": hub.url, "fingerprint": hub.fingerprint }]);
    copy.write("keybox.json.hub.json", enrollment.to_string().as_bytes());
    copy
}

/// `escrow push` of the box's blob with a directive that says `n`: each `n` is a version of its
/// own (the same blob and directive again is the version it became).
fn push_numbered(dir: &Dir, n: usize) -> util::TestCommand {
    let name = format!("directive-{n}.json");
    dir.write(&name, format!("{{\"n\": {n}}}").as_bytes());
    dir.keyward().args(["escrow", "push", "--unlock-code-file", "code.txt", "--directive", &name])
}

/// Issue 23.1: after a recovery, the replacement machine takes the dead box's name over: it
/// shows its identity, the operator signs a takeover naming it, and it enrolls with that. The
/// old identity is refused from then on — on PostgreSQL also by a second hub that had its key
/// cached — the escrow versions stay, the new machine pushes, and the takeover is audited.
fn a_replacement_machine_takes_over_the_box_name(backend: Backend) {
    let dir = Dir::new("hub-takeover");
    let hub = HubProcess::start_on(&dir, backend);
    escrowed_box(&dir, &hub);
    let fp = fingerprint_of(&dir);
    // On PostgreSQL a second hub serves the same fleet, and has the old key cached.
    let hub_b = (backend == Backend::Postgres).then(|| hub.another(&dir));
    let old_at_b = hub_b.as_ref().map(|b| copy_of_box_at(&dir, "hub-takeover-old-b", b));
    if let Some(old) = &old_at_b {
        old.ok(["escrow", "status"]);
    }
    ticket(&dir, "ticket.txt");

    let fresh = Dir::new("hub-takeover-fresh");
    fresh.write("ticket.txt", &dir.read("ticket.txt"));
    fresh.write("code.txt", &dir.read("code.txt"));
    let mut recover = recover_args(&hub, &fp, "ticket.txt", "code.txt", "-");
    recover.truncate(recover.len() - 2);
    recover.extend(["--into-keybox".into(), fresh.keybox().display().to_string()]);
    fresh.ok(recover);
    let identity = fresh.ok(["escrow", "identity"]).stdout().trim().to_string();
    assert!(identity.starts_with("ed25519:"), "{identity}");
    assert_eq!(fresh.mode("keybox.json.box-key"), 0o600);
    let again = fresh.ok(["escrow", "identity"]).stdout().trim().to_string();
    assert_eq!(again, identity, "the same identity each time");

    let enroll = |who: &Dir, file: &str| {
        let mut args: Vec<String> =
            ["escrow", "enroll", "--box", "pve-07", "--takeover-file", file]
                .map(String::from)
                .to_vec();
        args.extend(hub.args());
        who.keyward().args(args).run()
    };
    // A takeover naming another identity is refused before anything is sent.
    let stranger = dir.ok(["operator", "keygen", "--out", "stranger.key"]).stdout();
    dir.takeover(stranger.trim(), "wrong-takeover.txt", &hub.args());
    fresh.write("wrong-takeover.txt", &dir.read("wrong-takeover.txt"));
    let wrong = enroll(&fresh, "wrong-takeover.txt");
    wrong.assert_exit_code(2).assert_one_line_error();
    assert!(wrong.stderr().contains("names identity"), "{}", wrong.report());
    assert!(!fresh.path("keybox.json.hub.json").exists());

    dir.takeover(&identity, "takeover.txt", &hub.args());
    fresh.write("takeover.txt", &dir.read("takeover.txt"));
    enroll(&fresh, "takeover.txt").assert_success();

    // The old machine is refused, at this hub and at the one that had its key cached.
    let old = dir.keyward().args(["escrow", "status"]).run();
    old.assert_exit_code(9).assert_one_line_error();
    if let Some(old) = &old_at_b {
        let refused = old.keyward().args(["escrow", "status"]).run();
        refused.assert_exit_code(9).assert_one_line_error();
        assert!(refused.stderr().contains("replacement machine"), "{}", refused.report());
    }
    // The new machine pushes under the old name; the old version is still there.
    let push = fresh.ok(["escrow", "push", "--unlock-code-file", "code.txt", "--json"]);
    let push: serde_json::Value = serde_json::from_str(&push.stdout()).expect("json");
    assert_eq!(push["version"], 2);
    assert_eq!(push["state"], "pending");
    let status = fresh.ok(["escrow", "status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status.stdout()).expect("json");
    assert_eq!(status["versions"].as_array().map(Vec::len), Some(2), "{status}");
    if let Some(hub_b) = &hub_b {
        // The new machine is known at the other hub too.
        let at_b = copy_of_box_at(&fresh, "hub-takeover-new-b", hub_b);
        at_b.ok(["escrow", "status"]);
    }
    hub.audit(&dir).run().assert_success();
}

#[test]
fn a_replacement_machine_takes_over_the_box_name_on_sqlite() {
    a_replacement_machine_takes_over_the_box_name(Backend::Sqlite);
}

#[test]
fn a_replacement_machine_takes_over_the_box_name_on_postgres() {
    a_replacement_machine_takes_over_the_box_name(Backend::Postgres);
}

/// Two hubs of one fleet on one PostgreSQL, each with its certificate; a box (canary key,
/// recovery code) enrolled at both, first A then B, its first version pushed; and an operator
/// profile naming both hubs and the operator key (the default profile, in HOME).
fn box_at_two_hubs(name: &str) -> (Dir, HubProcess, HubProcess) {
    let dir = Dir::new(name);
    let mut a = HubProcess::start_on(&dir, Backend::Postgres);
    a.restart_with(&dir, &["--max-pending-versions", "100"]);
    let b = a.second_with_own_certificate(&dir, "hub-b");
    dir.init_with_code();
    dir.enrollment_token();
    let mut enroll: Vec<String> =
        ["escrow", "enroll", "--box", "pve-07", "--token-file", "token.txt"]
            .map(String::from)
            .to_vec();
    enroll.extend(a.args());
    enroll.extend(b.args());
    dir.ok(enroll);
    push_numbered(&dir, 0).run().assert_success();
    let profile = format!(
        "format = \"keyward-config\"\nversion = 1\ndefault_profile = \"fleet\"\n\n[profiles.fleet]\noperator_key = \"{}\"\nhubs = [\n  {{ url = \"{}\", fingerprint = \"{}\" }},\n  {{ url = \"{}\", fingerprint = \"{}\" }},\n]\n",
        dir.path("op.key").display(),
        a.url,
        a.fingerprint,
        b.url,
        b.fingerprint
    );
    std::fs::create_dir_all(dir.path(".config/keyward")).expect("config folder");
    dir.write(".config/keyward/config.toml", profile.as_bytes());
    (dir, a, b)
}

/// What `escrow status --json` lists: each version and its state.
fn versions_of(dir: &Dir) -> Vec<(u64, String)> {
    let status = dir.ok(["escrow", "status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status.stdout()).expect("json");
    status["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| (v["version"].as_u64().expect("n"), v["state"].as_str().expect("s").to_string()))
        .collect()
}

/// Issue 23.6: with the first hub down, the box pushes, the operator reads and tickets (from
/// the profile, no --hub or --key), and a fresh machine recovers with nothing but the ticket
/// (which names both hubs) and the code — each through the second hub. With the first hub
/// hanging (stopped: its socket still takes connections) the same, after its 1.5 s. The bound
/// checked here is far above that: it tells failing over from waiting out the 30 s timeout.
#[test]
fn the_box_the_operator_and_a_fresh_machine_go_to_the_second_hub_when_the_first_is_down_or_hangs() {
    let (dir, mut a, _b) = box_at_two_hubs("hub-failover");
    let fp = fingerprint_of(&dir);
    a.hang();
    let started = Instant::now();
    push_numbered(&dir, 1).run().assert_success();
    assert!(started.elapsed() < Duration::from_secs(10), "failed over: {:?}", started.elapsed());
    assert_eq!(versions_of(&dir), [(1, "active".to_string()), (2, "pending".to_string())]);
    a.go_on();
    a.kill();
    let started = Instant::now();
    push_numbered(&dir, 2).run().assert_success();
    assert!(started.elapsed() < Duration::from_secs(10), "failed over: {:?}", started.elapsed());

    // The operator, from the profile alone.
    let status = dir.ok(["operator", "escrow-status", "--box", "pve-07", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status.stdout()).expect("json");
    assert_eq!(status["versions"].as_array().map(Vec::len), Some(3), "{status}");
    dir.ok(["operator", "approve-recovery", "--box", "pve-07", "--out", "ticket.txt"]);

    // The fresh machine: the ticket, the code and the fingerprint the owner recorded.
    let fresh = fresh_machine(&dir, "hub-failover-fresh");
    let out = fresh.ok(ticket_recovery(&fp, &["--out", "k.bin", "--json"]));
    assert_eq!(fresh.read("k.bin"), CANARY_KEY);
    let report: serde_json::Value = serde_json::from_str(&out.stdout()).expect("json");
    assert_eq!(report["version"], 3, "the newest version opens first: {report}");
}

/// Issue 23.6: a hub killed in the middle of a bounded push load (24 pushes, 8 at a time, the
/// kill while the second 8 are in flight): every push is acknowledged (the ones the dead hub
/// did not answer went to the other), every acknowledged version is there once, and a fresh
/// machine recovers through the hub that is left.
#[test]
fn a_hub_killed_under_a_push_load_loses_no_acknowledged_push_and_recovery_goes_on() {
    let (dir, mut a, _b) = box_at_two_hubs("hub-kill-load");
    let fp = fingerprint_of(&dir);
    let mut acknowledged = vec![1];
    for batch in 0..3 {
        let pushes: Vec<_> = (0..8)
            .map(|i| push_numbered(&dir, 1 + batch * 8 + i).args(["--json"]).spawn())
            .collect();
        if batch == 1 {
            a.kill();
        }
        for (child, line) in pushes {
            let out = util::Outcome::from_child(child, line, dir.root());
            out.assert_success();
            let answer: serde_json::Value = serde_json::from_str(&out.stdout()).expect("json");
            acknowledged.push(answer["version"].as_u64().expect("version"));
        }
    }
    acknowledged.sort_unstable();
    assert_eq!(acknowledged, (1..=25).collect::<Vec<u64>>(), "each push one version of its own");
    let held: Vec<u64> = versions_of(&dir).into_iter().map(|(v, _)| v).collect();
    assert_eq!(held, acknowledged, "every acknowledged push is there");

    dir.ok(["operator", "approve-recovery", "--box", "pve-07", "--out", "ticket.txt"]);
    let fresh = fresh_machine(&dir, "hub-kill-load-fresh");
    fresh.ok(ticket_recovery(&fp, &["--into-keybox", "keybox.json"]));
    fresh.ok(["unlock", "--code-file", "code.txt", "--out", "k.bin"]);
    assert_eq!(fresh.read("k.bin"), CANARY_KEY);
    dir.write("database-url.txt", a.database.as_bytes());
    dir.ok(["hub", "audit", "verify", "--data", "hub", "--database-url-file", "database-url.txt"]);
}

/// Issue 23.4: what can be checked without a secret or the network is checked before any
/// prompt or request. With the ticket's hub down, each mistake exits with its own code, not 8:
/// an output that exists (7), a box that is not the ticket's (2), a header-restore onto a
/// header that cannot be read without --expect-uuid (2).
#[test]
fn mistakes_that_need_no_secret_and_no_network_are_refused_before_either() {
    let dir = Dir::new("hub-cheap-checks");
    dir.ok(["operator", "keygen", "--out", "op.key"]);
    let down = ["--hub", "https://127.0.0.1:1", "--hub-fingerprint", &"ab".repeat(32)];
    let mut approve: Vec<&str> =
        vec!["operator", "approve-recovery", "--box", "pve-07", "--key", "op.key"];
    approve.extend(down);
    approve.extend(["--out", "ticket.txt"]);
    dir.ok(approve);
    let fp = "00:11:22:33:44:55:66:77";
    let recover = |extra: &[&str]| {
        let mut args = vec!["recover", "--ticket-file", "ticket.txt", "--expect-fingerprint", fp];
        args.extend(extra);
        dir.keyward().args(args).run()
    };
    dir.write("there.bin", b"keep");
    dir.write("there.json", b"keep");
    let pbs_key = ".config/proxmox-backup/encryption-key.json";
    std::fs::create_dir_all(dir.path(".config/proxmox-backup")).expect("folder");
    dir.write(pbs_key, b"keep");
    for (extra, code) in [
        (vec!["--out", "there.bin"], 7),
        (vec!["--install"], 7),
        (vec!["--into-keybox", "there.json"], 7),
        (vec!["--box", "pve-08", "--out", "new.bin"], 2),
        (vec!["--requester-key", "there.json", "--out", "new.bin"], 2),
    ] {
        let out = recover(&extra);
        out.assert_exit_code(code).assert_one_line_error();
        assert!(!out.stderr().contains("cannot be reached"), "{extra:?}{}", out.report());
    }
    for kept in ["there.bin", "there.json", pbs_key] {
        assert_eq!(dir.read(kept), b"keep");
    }
    // The hub is asked only when nothing else is wrong: then it is 8.
    dir.init_with_code();
    recover(&["--code-file", "code.txt", "--out", "new.bin"]).assert_exit_code(8);

    dir.write("wiped.img", &vec![0u8; 1 << 20]);
    let mut restore = vec!["luks", "header-restore", "wiped.img", "--ticket-file", "ticket.txt"];
    restore.extend(down);
    let out = dir.keyward().args(restore).run();
    out.assert_exit_code(2).assert_one_line_error();
    assert!(out.stderr().contains("--expect-uuid"), "{}", out.report());
    assert_eq!(dir.read("wiped.img"), vec![0u8; 1 << 20]);
}

/// Issue 23.5: a Proxmox Backup key has two fingerprints, keyward's and PBS's; an approval and
/// a recovery take either, full or short, and a mismatch says which fingerprints the key has
/// and in which form the one given was read.
#[test]
fn a_proxmox_backup_key_is_named_by_either_fingerprint_in_either_form() {
    let dir = Dir::new("hub-either-fingerprint");
    let hub = HubProcess::start(&dir);
    dir.write("canary.key", CANARY_KEY);
    dir.ok(["--keybox", "plain.json", "init", "--with", "plain", "--import", "canary.key"]);
    dir.ok([
        "--keybox",
        "plain.json",
        "unlock",
        "--format",
        "pbs",
        "--kdf",
        "none",
        "--out",
        "pbs.json",
    ]);
    let init = ["init", "--import-pbs", "pbs.json", "--with", "recovery-code", "--code-out"];
    dir.ok(init.into_iter().chain(["code.txt"]));
    enroll_box(&dir, &hub);
    let fps = dir.ok(["fingerprint", "--json"]);
    let fps: serde_json::Value = serde_json::from_str(&fps.stdout()).expect("json");
    let (keyward, pbs) = (&fps["fingerprint"], &fps["pbs_fingerprint_short"]);
    let (keyward, pbs) = (keyward.as_str().expect("fp"), pbs.as_str().expect("pbs fp"));
    for n in 0..2 {
        dir.write(&format!("d{n}.json"), format!("{{\"n\": {n}}}").as_bytes());
        let directive = format!("d{n}.json");
        dir.ok(["escrow", "push", "--code-file", "code.txt", "--directive", &directive]);
    }
    let status = dir.ok(["escrow", "status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status.stdout()).expect("json");
    let pending = &status["versions"][1];
    assert_eq!(pending["key_fingerprint"], keyward, "the hub keeps keyward's too: {status}");
    let blob = pending["blob_sha256"].as_str().expect("hash").to_string();
    let approve = |fp: &str| {
        let mut args: Vec<String> = vec!["operator".into(), "approve-overwrite".into()];
        args.extend(hub.args());
        args.extend(
            ["--box", "pve-07", "--version", "2", "--blob-sha256", &blob, "--key", "op.key"]
                .map(String::from),
        );
        args.extend(["--fingerprint".to_string(), fp.to_string()]);
        dir.keyward().args(args).run()
    };
    let wrong = "00:11:22:33:44:55:66:77";
    let refused = approve(wrong);
    refused.assert_exit_code(9).assert_one_line_error();
    assert!(refused.stderr().contains(&format!("keyward's is {keyward}")), "{}", refused.report());
    assert!(refused.stderr().contains("short form"), "{}", refused.report());
    approve(&keyward[..23]).assert_success();

    ticket_with_uses(&dir, "ticket.txt", 3);
    let fresh = Dir::new("hub-either-fingerprint-fresh");
    fresh.write("ticket.txt", &dir.read("ticket.txt"));
    fresh.write("code.txt", &dir.read("code.txt"));
    for (fp, out) in [(keyward, "by-keyward.json"), (pbs, "by-pbs.json")] {
        fresh.ok(recover_args(&hub, fp, "ticket.txt", "code.txt", out));
    }
    let key_of = |file: &str| -> serde_json::Value {
        let parsed: serde_json::Value = serde_json::from_slice(&fresh.read(file)).expect("json");
        parsed["data"].clone()
    };
    assert_eq!(key_of("by-keyward.json"), key_of("by-pbs.json"), "the same key (its time aside)");
    let mismatch =
        fresh.keyward().args(recover_args(&hub, wrong, "ticket.txt", "code.txt", "x")).run();
    mismatch.assert_exit_code(5).assert_one_line_error();
    for said in [keyward, "its PBS fingerprint is", "short form"] {
        assert!(mismatch.stderr().contains(said), "says {said}: {}", mismatch.report());
    }
}

/// Issue 23.7: `keyward status` shows the slots and what each needs, the escrow at the hub with
/// the version waiting for an operator, the LUKS2 volume keyward enrolled and whether the hub's
/// header copy is current, and that no agent runs; a hub that is down makes the escrow part
/// "cannot tell", not a failure.
#[test]
fn status_shows_the_whole_box_and_what_cannot_be_reached() {
    use keyward_luks::testing::{FAST_ARGS, USER_PASSPHRASE, new_volume};
    let dir = Dir::new("hub-status");
    let mut hub = HubProcess::start(&dir);
    escrowed_box(&dir, &hub);
    push_numbered(&dir, 1).run().assert_success();
    new_volume(&dir.path("volume.img"));
    dir.write("user-passphrase", USER_PASSPHRASE);
    let mut enroll = vec!["luks", "enroll", "volume.img", "--luks-key-file", "user-passphrase"];
    enroll.extend(FAST_ARGS);
    enroll.extend(["--unlock-code-file", "code.txt"]);
    dir.ok(enroll);

    let runtime = dir.path("run");
    std::fs::create_dir(&runtime).expect("a runtime folder");
    let status = |json: bool| {
        let args: &[&str] = if json { &["status", "--json"] } else { &["status"] };
        let out = dir.keyward().args(args).env("XDG_RUNTIME_DIR", &runtime).run();
        out.assert_success();
        out.stdout()
    };
    let text = status(false);
    for said in [
        "needs the recovery code",
        "waiting for an operator",
        "keyward's keyslot",
        "current",
        "none runs",
    ] {
        assert!(text.contains(said), "says {said}:\n{text}");
    }
    let status: serde_json::Value = serde_json::from_str(&status(true)).expect("json");
    assert_eq!(status["escrow"]["pending"], 1, "{status}");
    assert_eq!(status["volumes"][0]["hub_copy"]["state"], "current", "{status}");
    assert_eq!(status["slots"][0]["needs"], "the recovery code", "{status}");
    assert_eq!(status["agent"]["running"], false, "{status}");

    hub.kill();
    // A note beside the keybox that cannot be read is said; the rest is still shown.
    dir.write("keybox.json.volumes.json", b"not json");
    let out = dir.ok(["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&out.stdout()).expect("json");
    assert!(
        status["escrow"]["error"].as_str().is_some_and(|e| e.contains("cannot be reached")),
        "{status}"
    );
    assert!(status["volumes"]["error"].is_string(), "{status}");
    assert_eq!(status["slots"][0]["needs"], "the recovery code", "{status}");
}

/// Issues 23.2 and 23.3: what the command line gives replaces what a ticket or a profile
/// names — a hub that moved — and a profile that is named but missing is refused by name.
#[test]
fn the_command_line_replaces_the_hubs_a_ticket_or_a_profile_names() {
    let dir = Dir::new("hub-override");
    let hub = HubProcess::start(&dir);
    escrowed_box(&dir, &hub);
    let fp = fingerprint_of(&dir);
    let gone = ["--hub", "https://127.0.0.1:1", "--hub-fingerprint", &hub.fingerprint];
    // A profile that names only the hub that is gone, and the operator key.
    let profile = format!(
        "format = \"keyward-config\"\nversion = 1\ndefault_profile = \"old\"\n[profiles.old]\noperator_key = \"{}\"\nhubs = [{{ url = \"https://127.0.0.1:1\", fingerprint = \"{}\" }}]\n",
        dir.path("op.key").display(),
        hub.fingerprint
    );
    std::fs::create_dir_all(dir.path(".config/keyward")).expect("config folder");
    dir.write(".config/keyward/config.toml", profile.as_bytes());
    let status = dir.keyward().args(["operator", "escrow-status", "--box", "pve-07"]).run();
    status.assert_exit_code(8).assert_one_line_error();
    let mut moved =
        vec!["operator".to_string(), "escrow-status".into(), "--box".into(), "pve-07".into()];
    moved.extend(hub.args());
    dir.ok(&moved);
    let missing = dir
        .keyward()
        .args(["--profile", "new", "operator", "escrow-status", "--box", "pve-07"])
        .run();
    missing.assert_exit_code(2).assert_one_line_error();
    assert!(missing.stderr().contains("no profile `new` (it has: old)"), "{}", missing.report());

    // A ticket that names the hub that is gone: --hub on the fresh machine replaces it.
    let mut approve = vec!["operator", "approve-recovery", "--box", "pve-07", "--uses", "2"];
    approve.extend(gone);
    approve.extend(["--out", "ticket.txt"]);
    dir.ok(approve);
    let fresh = fresh_machine(&dir, "hub-override-fresh");
    let recover = ticket_recovery(&fp, &[]);
    let out = fresh.keyward().args(&recover).args(["--out", "k1.bin"]).run();
    out.assert_exit_code(8).assert_one_line_error();
    assert!(!fresh.path("k1.bin").exists());
    fresh
        .keyward()
        .args(&recover)
        .args(hub.args())
        .args(["--out", "k2.bin"])
        .run()
        .assert_success();
    assert_eq!(fresh.read("k2.bin"), CANARY_KEY);
}

/// Issue 24.1: `keyward drill` proves every path with all of them up — a key-file slot, the
/// recovery code, the escrow at the hub (the blob this box pushed, opening here with the code),
/// a LUKS2 volume's keyslot and the hub's copy of its header, the offline fallback — then names
/// each path broken one at a time (the header copy stale, the LUKS keyslot wiped, the key file
/// removed, the hub down), exit 11; the key is in no file, log or output of a drill.
#[test]
fn a_drill_proves_every_path_and_names_each_one_broken() {
    use keyward_luks::testing::{FAST_ARGS, USER_PASSPHRASE, cryptsetup_ok, new_volume};
    let dir = Dir::new("hub-drill");
    let mut hub = HubProcess::start(&dir);
    escrowed_box(&dir, &hub);
    dir.ok(["enroll", "keyfile", "--keyfile", "slot.key", "--unlock-code-file", "code.txt"]);
    let image = new_volume(&dir.path("volume.img"));
    dir.write("user-passphrase", USER_PASSPHRASE);
    let mut enroll = vec!["luks", "enroll", "volume.img", "--luks-key-file", "user-passphrase"];
    enroll.extend(FAST_ARGS);
    dir.ok(enroll);
    let drill = |dir: &Dir| {
        let out = dir.keyward().args(["drill", "--code-file", "code.txt", "--json"]).run();
        let report: serde_json::Value = serde_json::from_str(&out.stdout()).expect("json");
        (out, report)
    };
    let state_of = |report: &serde_json::Value, id: &str| -> String {
        let paths = report["paths"].as_array().expect("paths");
        let path = paths.iter().find(|p| p["id"] == id).unwrap_or_else(|| panic!("{id}: {report}"));
        path["outcome"]["state"].as_str().expect("state").to_string()
    };
    let (out, report) = drill(&dir);
    out.assert_success();
    for id in ["slot:1", "slot:2", "escrow", "offline-fallback"] {
        assert_eq!(state_of(&report, id), "ok", "{id}: {report}");
    }
    let uuid = String::from_utf8(cryptsetup_ok(&["luksUUID"], &image, &[], b"")).expect("uuid");
    let volume = format!("luks:{}", uuid.trim());
    assert_eq!(state_of(&report, &volume), "ok", "{report}");
    let text = dir.ok(["drill", "--code-file", "code.txt", "--textfile", "drill.prom"]).stdout();
    assert!(
        text.contains("the blob this box pushed") && text.contains("opens here with the code"),
        "{text}"
    );
    let prom = String::from_utf8(dir.read("drill.prom")).expect("text");
    assert_eq!(dir.mode("drill.prom"), 0o644, "node_exporter runs as another user");
    assert!(prom.contains("keyward_drill_path_ok{path=\"escrow\"} 1"), "{prom}");
    assert!(
        prom.contains("keyward_drill_path_last_success_timestamp_seconds{path=\"slot:2\"}"),
        "{prom}"
    );
    let mut outputs = vec![out.output.stdout.clone(), out.output.stderr.clone(), text.into_bytes()];

    let broken_one = |dir: &Dir, id: &str, said: &str, outputs: &mut Vec<Vec<u8>>| {
        let (out, report) = drill(dir);
        out.assert_exit_code(11);
        assert_eq!(state_of(&report, id), "broken", "{id}: {report}");
        let broken: Vec<&str> = report["paths"]
            .as_array()
            .expect("paths")
            .iter()
            .filter(|p| p["outcome"]["state"] == "broken")
            .map(|p| p["id"].as_str().expect("id"))
            .collect();
        assert_eq!(broken, [id], "only that one: {report}");
        assert!(out.stderr().contains(said), "{id}: {}", out.report());
        outputs.extend([out.output.stdout.clone(), out.output.stderr.clone()]);
    };
    // The hub's header copy stale: a keyslot added by hand.
    let user = dir.path("user-passphrase");
    let mut add = vec!["luksAddKey", "--batch-mode", "--key-file", user.to_str().expect("path")];
    add.extend(FAST_ARGS);
    let more = dir.write("more", b"another passphrase");
    cryptsetup_ok(&add, &image, &[more.to_str().expect("path")], b"");
    broken_one(&dir, &volume, "LUKS2 volume", &mut outputs);
    dir.ok(["luks", "header-backup", "volume.img", "--push", "--unlock-code-file", "code.txt"]);
    // keyward's keyslot wiped behind its back.
    let status: serde_json::Value =
        serde_json::from_str(&dir.ok(["--json", "luks", "status", "volume.img"]).stdout())
            .expect("json");
    let keyslot = status["keyward"]["keyslot"].as_u64().expect("keyslot").to_string();
    cryptsetup_ok(
        &["luksKillSlot", "--batch-mode", "--key-file", user.to_str().expect("path")],
        &image,
        &[&keyslot],
        b"",
    );
    broken_one(&dir, &volume, "LUKS2 volume", &mut outputs);
    // The volume forgotten (its note removed), the key file gone.
    std::fs::remove_file(dir.path("keybox.json.volumes.json")).expect("forget the volume");
    let key_file = dir.read("slot.key");
    std::fs::remove_file(dir.path("slot.key")).expect("remove the key file");
    broken_one(&dir, "slot:2", "slot 2", &mut outputs);
    dir.write("slot.key", &key_file);
    // The hub down.
    hub.kill();
    broken_one(&dir, "escrow", "escrow at the hubs", &mut outputs);

    // K's canary: in no output and no file of the box but the key it was imported from.
    let hex = keyward_core::encoding::to_hex(CANARY_KEY);
    for output in &outputs {
        assert!(!output.windows(CANARY_KEY.len()).any(|w| w == CANARY_KEY), "raw key in an output");
        assert!(!String::from_utf8_lossy(output).contains(&hex), "hex key in an output");
    }
    for entry in std::fs::read_dir(dir.root()).expect("folder") {
        let path = entry.expect("entry").path();
        if path.is_file() && path.file_name().is_some_and(|n| n != "canary.key") {
            let bytes = std::fs::read(&path).expect("read");
            assert!(
                !bytes.windows(CANARY_KEY.len()).any(|w| w == CANARY_KEY),
                "{}",
                path.display()
            );
            assert!(!String::from_utf8_lossy(&bytes).contains(&hex), "{}", path.display());
        }
    }
}

/// A box named `name` in a folder of its own (canary key, a recovery code and a key-file slot),
/// enrolled at `hub` with a token the operator in `operator` signs.
fn another_box(operator: &Dir, hub: &HubProcess, name: &str) -> Dir {
    let dir = Dir::new(&format!("hub-fleet-{name}"));
    dir.init_with_code();
    dir.ok(["enroll", "keyfile", "--keyfile", "slot.key", "--unlock-code-file", "code.txt"]);
    let token = format!("token-{name}.txt");
    operator.ok(["operator", "enroll-token", "--box", name, "--key", "op.key", "--out", &token]);
    dir.write("token.txt", &operator.read(&token));
    let mut enroll: Vec<String> =
        ["escrow", "enroll", "--box", name, "--token-file", "token.txt"].map(String::from).to_vec();
    enroll.extend(hub.args());
    dir.ok(enroll);
    dir.ok(["escrow", "push", "--unlock-code-file", "code.txt"]);
    dir
}

/// Issues 24.2 and 24.3: each drill goes to the hub as box-signed evidence, and `operator
/// fleet` shows every box judged: the one whose drill found a path broken first (named), then
/// the one that never reported a drill (stale), then the healthy one; exit 11 while any is
/// not healthy, 0 once all are. The hub's audit log tells of each report. The hub lists the
/// fleet two boxes a page here: the view reads every page.
#[test]
fn the_fleet_view_shows_a_broken_box_first_then_a_stale_one() {
    let dir = Dir::new("hub-fleet");
    let mut hub = HubProcess::start(&dir);
    hub.restart_with(&dir, &["--fleet-page", "2"]);
    let healthy = another_box(&dir, &hub, "box-a");
    let broken = another_box(&dir, &hub, "box-b");
    let _stale = another_box(&dir, &hub, "box-c");
    healthy.ok(["drill", "--code-file", "code.txt"]);
    std::fs::remove_file(broken.path("slot.key")).expect("remove the key file");
    let out = broken.keyward().args(["drill", "--code-file", "code.txt"]).run();
    out.assert_exit_code(11);
    assert!(out.stdout().contains("went to the hubs"), "{}", out.report());

    let mut fleet: Vec<String> =
        vec!["operator".into(), "fleet".into(), "--key".into(), "op.key".into()];
    fleet.extend(hub.args());
    let out = dir.keyward().args(&fleet).run();
    out.assert_exit_code(11);
    let lines: Vec<String> = out.stdout().lines().map(String::from).collect();
    assert!(lines[0].starts_with("BROKEN  box-b: broken: slot 2"), "{lines:?}");
    assert!(lines[1].starts_with("stale   box-c: it never reported a drill"), "{lines:?}");
    assert!(lines[2].starts_with("ok      box-a: nothing broken, last drill"), "{lines:?}");
    let json = dir.keyward().args(&fleet).args(["--json"]).run();
    let answer: serde_json::Value = serde_json::from_str(&json.stdout()).expect("json");
    let mut audit: Vec<String> =
        vec!["operator".into(), "audit".into(), "--key".into(), "op.key".into()];
    audit.extend(hub.args());
    audit.extend(["--box".into(), "box-b".into(), "--since".into(), "1h".into()]);
    let log = dir.ok(&audit).stdout();
    assert!(log.contains("drill") && log.contains("broken (slot:2)"), "{log}");
    assert!(!log.contains("box-a"), "one box's records: {log}");
    let verdicts: Vec<&str> = answer["boxes"]
        .as_array()
        .expect("boxes")
        .iter()
        .map(|b| b["verdict"].as_str().expect("v"))
        .collect();
    assert_eq!(verdicts, ["broken", "stale", "healthy"], "{answer}");
    the_dashboard_shows_the_same(&dir, &hub);

    // The broken path mended and the stale box drilled: the fleet is healthy.
    broken.ok(["remove", "2", "--unlock-code-file", "code.txt"]);
    broken.ok(["drill", "--code-file", "code.txt"]);
    _stale.ok(["drill", "--code-file", "code.txt"]);
    dir.keyward().args(&fleet).run().assert_success();
    hub.audit(&dir).run().assert_success();
}

/// Issue 24.4: `operator dashboard` serves the fleet view on 127.0.0.1; a real browser
/// (Debian's headless Chromium) shows the broken box first, in its red section, then the
/// stale one, then the healthy one, each with the command to ticket it; a non-loopback address
/// is refused.
fn the_dashboard_shows_the_same(dir: &Dir, hub: &HubProcess) {
    let mut args: Vec<String> =
        vec!["operator".into(), "dashboard".into(), "--key".into(), "op.key".into()];
    args.extend(hub.args());
    let refused = dir.keyward().args(&args).args(["--listen", "0.0.0.0:0"]).run();
    refused.assert_exit_code(2).assert_one_line_error();
    let listen = free_address();
    let log = std::fs::File::create(dir.path("dashboard.log")).expect("log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(&args)
        .args(["--listen", &listen])
        .current_dir(dir.root())
        .env_clear()
        .env("HOME", dir.root())
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start the dashboard");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&listen).is_err() {
        assert!(Instant::now() < deadline, "the dashboard did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let shown = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
        .arg(format!("--user-data-dir={}", dir.path("chromium").display()))
        .args(["--virtual-time-budget=5000", "--dump-dom"])
        .arg(format!("http://{listen}/"))
        .env("HOME", dir.root())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("chromium (apt-get install chromium): {e}"));
    let _ = child.kill();
    let _ = child.wait();
    let dom = String::from_utf8_lossy(&shown.stdout).into_owned();
    let at =
        |needle: &str| dom.find(needle).unwrap_or_else(|| panic!("{needle} not shown:\n{dom}"));
    assert!(
        at("class=\"broken\" data-box=\"box-b\"") < at("class=\"stale\" data-box=\"box-c\""),
        "{dom}"
    );
    assert!(
        at("class=\"stale\" data-box=\"box-c\"") < at("class=\"healthy\" data-box=\"box-a\""),
        "{dom}"
    );
    at("1 broken, 1 stale, 1 healthy");
    at("keyward operator approve-recovery --box box-b --out ticket.txt");
    assert!(!dom.contains("<script") && !dom.contains("<form"), "read-only: {dom}");
}
