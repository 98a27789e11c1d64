//! `keyward demo`: a guided run through the real binary in a fresh private temporary folder, telling
//! the story of a Proxmox Backup box (seed S1): its backup key comes under keyward, gets more ways
//! in, is rotated, fails closed on a wrong code, and is escrowed and recovered on a fresh machine
//! — from a blob, through an escrow hub, and from 2-of-3 peer nodes.
//! Every step is a real `keyward` process with the arguments a user would type; secrets go through
//! files in the folder, never through argv.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use keyward_core::DataKey;
use keyward_core::store::{RealFs, write_secret_file};
use keyward_pbs::{PbsKeyFile, PbsTime};

use crate::cli::DemoArgs;
use crate::exit::{CliError, CliResult};

/// A line of the demo's story on stdout; a reader gone (`| head`) ends the demo like any
/// other failure to print.
macro_rules! say {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout().lock(), $($arg)*).map_err(CliError::Output)?
    };
}

/// A step's expected exit code.
const OK: i32 = 0;

struct Demo {
    exe: PathBuf,
    dir: PathBuf,
    step: usize,
    /// HOME for the commands: the box's, or the fresh machine's.
    home: PathBuf,
}

impl Demo {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Runs `keyward COMMAND` (words separated by spaces), prints it and its output, and checks
    /// the exit code. Returns stdout.
    fn run(&mut self, what: &str, command: &str, expect: i32) -> CliResult<String> {
        self.step += 1;
        say!("\n{}. {what}", self.step);
        say!("   $ keyward {command}");
        let output = Command::new(&self.exe)
            .args(command.split(' '))
            .current_dir(&self.dir)
            .env("KEYWARD_KEYBOX", self.path("keybox.json"))
            .env("HOME", &self.home)
            .env_remove("XDG_CONFIG_HOME")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| keyward_core::Error::io("cannot run", &self.exe, e))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        for line in stdout.lines().chain(String::from_utf8_lossy(&output.stderr).lines()) {
            say!("   | {line}");
        }
        let code = output.status.code().unwrap_or(-1);
        let verdict = if code == expect { "as expected" } else { "NOT as expected" };
        say!("   → exit {code} ({verdict})");
        if code != expect {
            return Err(CliError::Failed(format!(
                "demo step {} ({what}) did not go as expected",
                self.step
            )));
        }
        Ok(stdout)
    }

    fn write(&self, name: &str, content: &[u8]) -> CliResult {
        Ok(write_secret_file(&RealFs, &self.path(name), content, false)?)
    }

    fn read(&self, name: &str) -> CliResult<Vec<u8>> {
        std::fs::read(self.path(name))
            .map_err(|e| keyward_core::Error::io("cannot read", self.path(name), e).into())
    }

    /// Starts `keyward ROLE serve --data DATA --listen LISTEN` in the background (its log in
    /// `DATA.log`) and waits until it accepts connections.
    fn serve(
        &self,
        role: &str,
        data: &str,
        listen: std::net::SocketAddr,
    ) -> CliResult<ServerChild> {
        say!("\n   $ keyward {role} serve --data {data} --listen {listen}   (in the background)");
        let log_path = self.path(&format!("{data}.log"));
        let log = std::fs::File::create(&log_path)
            .map_err(|e| keyward_core::Error::io("cannot create", &log_path, e))?;
        let stderr =
            log.try_clone().map_err(|e| keyward_core::Error::io("cannot open", &log_path, e))?;
        let mut child = ServerChild(
            Command::new(&self.exe)
                .args([role, "serve", "--data", data, "--listen", &listen.to_string()])
                .current_dir(&self.dir)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(stderr)
                .spawn()
                .map_err(|e| keyward_core::Error::io("cannot run", &self.exe, e))?,
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(listen).is_err() {
            if std::time::Instant::now() > deadline || child.0.try_wait().ok().flatten().is_some() {
                return Err(CliError::Failed(format!(
                    "the demo {role} did not start; see {data}.log in the demo folder"
                )));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Ok(child)
    }

    /// Checks one of the demo's own claims, and says so.
    fn check(&self, claim: &str, holds: bool) -> CliResult {
        say!("   {claim}: {}", if holds { "yes" } else { "NO" });
        if holds {
            Ok(())
        } else {
            Err(CliError::Failed(format!("the demo's check failed: {claim}")))
        }
    }
}

/// Runs `demo`.
pub fn run(args: &DemoArgs, local_offset: time::UtcOffset) -> CliResult {
    let exe = std::env::current_exe()
        .map_err(|e| keyward_core::Error::io("cannot find", "keyward", e))?;
    let dir = tempfile::Builder::new()
        .prefix("keyward-demo-")
        .tempdir()
        .map_err(|e| keyward_core::Error::io("cannot create", std::env::temp_dir(), e))?;
    say!("keyward demo in {} (a fresh private folder)", dir.path().display());
    let root = dir.path().to_path_buf();
    let mut demo = Demo { exe, home: root.join("box"), dir: root, step: 0 };
    let result = walk(&mut demo, local_offset);
    if args.keep {
        let kept = dir.keep();
        say!("\nThe folder is kept: {}", kept.display());
    }
    result?;
    say!("\nAll steps went as expected.");
    Ok(())
}

fn walk(d: &mut Demo, local_offset: time::UtcOffset) -> CliResult {
    // The box's backup key: a stand-in for what `proxmox-backup-client key create --kdf none`
    // writes, made here with keyward-pbs. The passphrase is throwaway too.
    let now = PbsTime::now(local_offset);
    let backup_key = DataKey::generate(32)?;
    let key_file = PbsKeyFile::seal(&backup_key, None, now.clone(), now)
        .map_err(|source| CliError::Pbs { path: d.path("encryption-key.json"), source })?;
    d.write("encryption-key.json", &key_file.to_bytes())?;
    d.write("passphrase.txt", b"correct horse battery staple\n")?;
    say!("The box's Proxmox Backup key (a stand-in made for the demo): encryption-key.json");

    d.run(
        "Bring the backup key under keyward, with a recovery-code slot",
        "init --import-pbs encryption-key.json --with recovery-code --label demo --code-out code.txt",
        OK,
    )?;
    d.run(
        "Add a passphrase slot, authorised by the recovery code",
        "enroll passphrase --label daily --unlock-code-file code.txt --passphrase-file passphrase.txt --kdf-time-ms 200 --kdf-memory-mib 64",
        OK,
    )?;
    d.run(
        "Add an unattended key-file slot (keyward creates the key file, mode 0600)",
        "enroll keyfile --label boot --keyfile machine.key --unlock-passphrase-file passphrase.txt",
        OK,
    )?;
    d.run("List the slots", "list", OK)?;
    d.run(
        "Unlock unattended (the key file is found at its recorded path)",
        "unlock --out key-1.bin",
        OK,
    )?;
    d.run(
        "Unlock with the passphrase, as hex",
        "unlock --passphrase-file passphrase.txt --out key-2.hex --format hex",
        OK,
    )?;
    let hex = String::from_utf8_lossy(&d.read("key-2.hex")?).trim_end().to_string();
    d.check("both unlocks gave the backup key", {
        let raw = d.read("key-1.bin")?;
        raw == backup_key.expose() && keyward_core::encoding::to_hex(&raw) == hex
    })?;

    std::fs::rename(d.path("code.txt"), d.path("old-code.txt"))
        .map_err(|e| keyward_core::Error::io("cannot rename", d.path("code.txt"), e))?;
    d.run(
        "Rotate the recovery code (same key, new code)",
        "rotate 1 --unlock-passphrase-file passphrase.txt --code-out code.txt",
        OK,
    )?;
    d.run(
        "The old recovery code now fails closed: exit 3, no output file",
        "unlock --code-file old-code.txt --out should-not-exist.bin",
        3,
    )?;
    d.check("no output file was written", !d.path("should-not-exist.bin").exists())?;
    d.run("Verify checksum, header MAC and every unattended slot", "verify", OK)?;
    d.run("The fingerprints: keyward's own and the Proxmox Backup one", "fingerprint", OK)?;
    let pbs_short = d.run("The PBS fingerprint, short form", "fingerprint --pbs --short", OK)?;
    let pbs_short = pbs_short.trim().to_string();
    d.run(
        "A key other than the expected one fails closed: exit 5, no output file",
        "unlock --out key-5.bin --expect-fingerprint 00:00:00:00:00:00:00:00",
        5,
    )?;
    d.check("no output file was written", !d.path("key-5.bin").exists())?;

    d.run(
        "Escrow: the key as a PBS key file encrypted (scrypt) under the recovery code",
        "escrow export-blob --code-file code.txt --out blob.json",
        OK,
    )?;
    d.home = d.path("fresh-box");
    say!(
        "\nThe box is gone. A fresh machine has only blob.json and the code (HOME={}).",
        d.home.display()
    );
    d.run(
        "Recover on the fresh machine and install the key where the backup client reads it",
        &format!("recover --blob blob.json --code-file code.txt --expect-fingerprint {pbs_short} --install"),
        OK,
    )?;
    let recovered = installed_key(d)?;
    d.check(
        "the fresh machine has the backup key back",
        recovered.expose() == backup_key.expose(),
    )?;
    hub_path(d, &backup_key, &pbs_short)
}

/// The same story through an escrow hub on 127.0.0.1 (SQLite in the demo folder): an operator,
/// a hub, the box enrolls and pushes, a fresh machine recovers with a ticket, the code and the
/// key's PBS fingerprint (`pbs_short`) recorded at setup.
fn hub_path(d: &mut Demo, backup_key: &DataKey, pbs_short: &str) -> CliResult {
    say!("\nNow through an escrow hub, which stores the blob but can never open it.");
    d.home = d.path("box");
    let keygen =
        d.run("An operator makes a key pair", "operator keygen --out operator.key --json", OK)?;
    let public = json_field(&keygen, "public_key")?;
    let init = d.run(
        "Create the hub (self-signed certificate; clients pin its hash)",
        &format!("hub init --data hub --operator {public} --json"),
        OK,
    )?;
    let fingerprint = json_field(&init, "certificate_fingerprint")?;
    let listen = free_address()?;
    let mut hub = d.serve("hub", "hub", listen)?;
    let hub_args = format!("--hub https://{listen} --hub-fingerprint {fingerprint}");
    d.run(
        "The operator signs a single-use enrollment token for the box",
        "operator enroll-token --box pve-demo --key operator.key --ttl 10m --out token.txt",
        OK,
    )?;
    d.run(
        "The box enrolls (its own Ed25519 identity, beside the keybox)",
        &format!("escrow enroll {hub_args} --box pve-demo --token-file token.txt"),
        OK,
    )?;
    d.write("directive.json", br#"{"repository":"backup@pbs@pbs.example:store1"}"#)?;
    d.run(
        "The box pushes its escrow: the PBS-native blob and a restore directive",
        "escrow push --directive directive.json --code-file code.txt",
        OK,
    )?;
    d.run("The box's escrow at the hub", "escrow status", OK)?;
    d.run(
        "The operator approves a recovery: a ticket good for two fetches, naming the box and the hub",
        &format!("operator approve-recovery --box pve-demo --key operator.key {hub_args} --ttl 10m --uses 2 --out ticket.txt"),
        OK,
    )?;
    d.home = d.path("fresh-box-2");
    say!("\nAnother fresh machine: only the ticket and the code (HOME={}).", d.home.display());
    d.run(
        "A wrong code fails closed (exit 3, nothing written) and says how many fetches are left",
        &format!("recover --ticket-file ticket.txt --expect-fingerprint {pbs_short} --code-file old-code.txt --out wrong.json"),
        3,
    )?;
    d.check("no output file was written", !d.path("wrong.json").exists())?;
    d.run(
        "Recover from the hub and install the key for the backup client",
        &format!("recover --ticket-file ticket.txt --expect-fingerprint {pbs_short} --code-file code.txt --install"),
        OK,
    )?;
    let recovered = installed_key(d)?;
    d.check("the key came back through the hub", recovered.expose() == backup_key.expose())?;
    d.run(
        "Its two fetches used, the ticket is refused: exit 9",
        &format!("recover --ticket-file ticket.txt --expect-fingerprint {pbs_short} --code-file code.txt --out again.json"),
        9,
    )?;
    d.run("The hub's audit chain", "hub audit verify --data hub", OK)?;
    hub.stop();
    peers_path(d, backup_key, &public)
}

/// The same key, 2-of-3 among peer nodes on 127.0.0.1: the box gets it back after a restart
/// with one peer down, and a fresh machine with an operator's release ticket.
fn peers_path(d: &mut Demo, backup_key: &DataKey, operator: &str) -> CliResult {
    say!("\nNow 2-of-3 among peer nodes: no single peer can open the key, any two give it back.");
    d.home = d.path("box");
    let mut peers = Vec::new();
    let mut peer_args = String::new();
    for name in ["peer1", "peer2", "peer3"] {
        let listen = free_address()?;
        d.run(
            &format!("Create {name} (identity, sealing key, certificate, and its card)"),
            &format!("peer init --data {name} --url https://{listen} --operator {operator}"),
            OK,
        )?;
        peers.push(d.serve("peer", name, listen)?);
        peer_args.push_str(&format!(" --peer {name}/peer-card.json"));
    }
    d.run(
        "The operator signs an enrollment token: each peer admits the box once with it",
        "operator enroll-token --box pve-demo --key operator.key --ttl 10m --out peer-token.txt",
        OK,
    )?;
    d.run(
        "Split the key 2-of-3 among the peers (a peers slot; authorised by the passphrase)",
        &format!(
            "enroll peers --threshold 2{peer_args} --token-file peer-token.txt --unlock-passphrase-file passphrase.txt"
        ),
        OK,
    )?;
    d.run("Which peers hold a share", "peers status", OK)?;
    peers[0].stop();
    say!("\n   (peer1 is stopped)");
    d.run(
        "After a restart the box gets its key back from the two peers still up",
        "unlock --slot peers-4 --out key-peers.bin",
        OK,
    )?;
    d.check("the peers gave the backup key back", d.read("key-peers.bin")? == backup_key.expose())?;
    let fingerprint = d.run(
        "The key's fingerprint, recorded for the day of recovery",
        "fingerprint --short",
        OK,
    )?;
    let fingerprint = fingerprint.trim().to_string();
    d.home = d.path("fresh-box-3");
    say!(
        "\nA third fresh machine: only a requester key, then the ticket (HOME={}).",
        d.home.display()
    );
    let requester = d.run(
        "The fresh machine makes a requester key; the operator's ticket will name it",
        "operator keygen --out requester.key --json",
        OK,
    )?;
    let requester = json_field(&requester, "public_key")?;
    let cards: String = (2..=3).map(|i| format!(" --peer peer{i}/peer-card.json")).collect();
    d.run(
        "The operator signs a release ticket for that machine, naming the peers",
        &format!(
            "operator approve-release --box pve-demo --key operator.key --requester {requester}{cards} --ttl 10m --out release.txt"
        ),
        OK,
    )?;
    d.run(
        "Recover from the peers with the ticket, the requester key and the recorded fingerprint",
        &format!(
            "recover --ticket-file release.txt --requester-key requester.key --expect-fingerprint {fingerprint} --out key-fresh.bin"
        ),
        OK,
    )?;
    d.check("the key came back from the peers", d.read("key-fresh.bin")? == backup_key.expose())?;
    for peer in &mut peers {
        peer.stop();
    }
    Ok(())
}

/// A free address on 127.0.0.1 for a demo server.
fn free_address() -> CliResult<std::net::SocketAddr> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| CliError::Failed(format!("no free port on 127.0.0.1: {e}")))
}

/// The key in the backup client's default key file under the current HOME.
fn installed_key(d: &Demo) -> CliResult<DataKey> {
    let installed = d.home.join(".config/proxmox-backup/encryption-key.json");
    let bytes = std::fs::read(&installed)
        .map_err(|e| keyward_core::Error::io("cannot read", &installed, e))?;
    PbsKeyFile::parse(&bytes)
        .and_then(|f| f.open(None))
        .map_err(|source| CliError::Pbs { path: installed.clone(), source })
}

/// A demo server process (hub or peer), stopped however the demo ends.
struct ServerChild(std::process::Child);

impl ServerChild {
    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        self.stop();
    }
}

fn json_field(stdout: &str, field: &str) -> CliResult<String> {
    let value: serde_json::Value = serde_json::from_str(stdout)
        .map_err(|e| CliError::Failed(format!("unexpected output: {e}")))?;
    value[field]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| CliError::Failed(format!("no `{field}` in the output")))
}
