//! `keyward demo`: a guided run through the real binary in a fresh private temporary folder, telling
//! the story of a Proxmox Backup box (seed S1): its backup key comes under keyward, gets more ways
//! in, is rotated, fails closed on a wrong code, and is escrowed and recovered on a fresh machine.
//! Every step is a real `keyward` process with the arguments a user would type; secrets go through
//! files in the folder, never through argv.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use keyward_core::DataKey;
use keyward_core::store::{RealFs, write_secret_file};
use keyward_pbs::{PbsKeyFile, PbsTime};

use crate::cli::DemoArgs;
use crate::exit::{CliError, CliResult};

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
        println!("\n{}. {what}", self.step);
        println!("   $ keyward {command}");
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
            println!("   | {line}");
        }
        let code = output.status.code().unwrap_or(-1);
        let verdict = if code == expect { "as expected" } else { "NOT as expected" };
        println!("   → exit {code} ({verdict})");
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

    /// Checks one of the demo's own claims, and says so.
    fn check(&self, claim: &str, holds: bool) -> CliResult {
        println!("   {claim}: {}", if holds { "yes" } else { "NO" });
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
    println!("keyward demo in {} (a fresh private folder)", dir.path().display());
    let root = dir.path().to_path_buf();
    let mut demo = Demo { exe, home: root.join("box"), dir: root, step: 0 };
    let result = walk(&mut demo, local_offset);
    if args.keep {
        let kept = dir.keep();
        println!("\nThe folder is kept: {}", kept.display());
    }
    result?;
    println!("\nAll steps went as expected.");
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
    println!("The box's Proxmox Backup key (a stand-in made for the demo): encryption-key.json");

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
    println!(
        "\nThe box is gone. A fresh machine has only blob.json and the code (HOME={}).",
        d.home.display()
    );
    d.run(
        "Recover on the fresh machine and install the key where the backup client reads it",
        &format!("recover --blob blob.json --code-file code.txt --expect-fingerprint {pbs_short} --install"),
        OK,
    )?;
    let installed = d.home.join(".config/proxmox-backup/encryption-key.json");
    let recovered = std::fs::read(&installed)
        .map_err(|e| keyward_core::Error::io("cannot read", &installed, e))?;
    let recovered = PbsKeyFile::parse(&recovered)
        .and_then(|f| f.open(None))
        .map_err(|source| CliError::Pbs { path: installed.clone(), source })?;
    d.check("the fresh machine has the backup key back", recovered.expose() == backup_key.expose())
}
