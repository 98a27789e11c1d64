//! `keyward demo`: a guided run through the real binary in a fresh private temporary folder.
//! Every step is a real `keyward` process with the same arguments a user would type; secrets go
//! through files in the folder, never through argv.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::cli::DemoArgs;
use crate::exit::{CliError, CliResult};

/// A step's expectation.
enum Expect {
    Success,
    Exit(i32),
}

struct Demo {
    exe: PathBuf,
    dir: PathBuf,
    step: usize,
}

impl Demo {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Runs `keyward ARGS`, prints the command and its output, checks the exit code.
    fn run(&mut self, what: &str, args: &[&str], expect: Expect) -> CliResult<String> {
        self.step += 1;
        println!("\n{}. {what}", self.step);
        println!("   $ keyward {}", args.join(" "));
        let output = Command::new(&self.exe)
            .args(args)
            .current_dir(&self.dir)
            .env("KEYWARD_KEYBOX", self.path("keybox.json"))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| keyward_core::Error::io("cannot run", &self.exe, e))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        for line in stdout
            .lines()
            .chain(String::from_utf8_lossy(&output.stderr).lines())
        {
            println!("   | {line}");
        }
        let code = output.status.code().unwrap_or(-1);
        let ok = match expect {
            Expect::Success => code == 0,
            Expect::Exit(want) => code == want,
        };
        println!(
            "   → exit {code}{}",
            if ok {
                " (as expected)"
            } else {
                " (NOT as expected)"
            }
        );
        if !ok {
            return Err(CliError::Failed(format!(
                "demo step {} ({what}) did not go as expected",
                self.step
            )));
        }
        Ok(stdout)
    }

    fn write(&self, name: &str, content: &[u8]) -> CliResult {
        keyward_core::store::write_secret_file(
            &keyward_core::store::RealFs,
            &self.path(name),
            content,
            false,
        )?;
        Ok(())
    }
}

/// Runs `demo`.
pub fn run(args: &DemoArgs) -> CliResult {
    let exe = std::env::current_exe()
        .map_err(|e| keyward_core::Error::io("cannot find", "keyward", e))?;
    let dir = tempfile::Builder::new()
        .prefix("keyward-demo-")
        .tempdir()
        .map_err(|e| keyward_core::Error::io("cannot create", std::env::temp_dir(), e))?;
    println!(
        "keyward demo in {} (a fresh private folder)",
        dir.path().display()
    );
    let mut demo = Demo {
        exe,
        dir: dir.path().to_path_buf(),
        step: 0,
    };
    let result = walk(&mut demo);
    if args.keep {
        let kept = dir.keep();
        println!("\nThe folder is kept: {}", kept.display());
    }
    result?;
    println!("\nAll steps went as expected.");
    Ok(())
}

fn walk(d: &mut Demo) -> CliResult {
    // The demo's passphrase is throwaway; a real one is typed at a prompt or kept in a 0600 file.
    d.write("passphrase.txt", b"correct horse battery staple\n")?;
    let fast_kdf = ["--kdf-time-ms", "200", "--kdf-memory-mib", "64"];

    d.run(
        "Create a keybox with a fresh 32-byte key and a recovery-code slot",
        &[
            "init",
            "--with",
            "recovery-code",
            "--label",
            "demo",
            "--code-out",
            "code.txt",
        ],
        Expect::Success,
    )?;
    let mut args = vec![
        "enroll",
        "passphrase",
        "--label",
        "daily",
        "--unlock-code-file",
        "code.txt",
    ];
    args.extend(["--passphrase-file", "passphrase.txt"]);
    args.extend(fast_kdf);
    d.run(
        "Add a passphrase slot, authorised by the recovery code",
        &args,
        Expect::Success,
    )?;
    d.run(
        "Add an unattended key-file slot (keyward creates the key file, mode 0600)",
        &[
            "enroll",
            "keyfile",
            "--label",
            "boot",
            "--keyfile",
            "machine.key",
            "--unlock-passphrase-file",
            "passphrase.txt",
        ],
        Expect::Success,
    )?;
    d.run("List the slots", &["list"], Expect::Success)?;
    d.run(
        "Unlock unattended (the key file is found at its recorded path)",
        &["unlock", "--out", "key-1.bin"],
        Expect::Success,
    )?;
    d.run(
        "Unlock with the passphrase, as hex",
        &[
            "unlock",
            "--passphrase-file",
            "passphrase.txt",
            "--out",
            "key-2.hex",
            "--format",
            "hex",
        ],
        Expect::Success,
    )?;
    let same = std::fs::read(d.path("key-1.bin"))
        .ok()
        .map(|k| keyward_core::encoding::to_hex(&k))
        == std::fs::read_to_string(d.path("key-2.hex"))
            .ok()
            .map(|s| s.trim_end().to_string());
    println!(
        "   both unlocks gave the same key: {}",
        if same { "yes" } else { "NO" }
    );
    std::fs::copy(d.path("code.txt"), d.path("old-code.txt"))
        .map_err(|e| keyward_core::Error::io("cannot copy", d.path("code.txt"), e))?;
    std::fs::remove_file(d.path("code.txt"))
        .map_err(|e| keyward_core::Error::io("cannot remove", d.path("code.txt"), e))?;
    d.run(
        "Rotate the recovery code (same key, new code)",
        &[
            "rotate",
            "1",
            "--unlock-passphrase-file",
            "passphrase.txt",
            "--code-out",
            "code.txt",
        ],
        Expect::Success,
    )?;
    d.run(
        "The old recovery code now fails closed: exit 3, no output file",
        &[
            "unlock",
            "--code-file",
            "old-code.txt",
            "--out",
            "should-not-exist.bin",
        ],
        Expect::Exit(3),
    )?;
    println!(
        "   output file exists: {}",
        if d.path("should-not-exist.bin").exists() {
            "YES (bug)"
        } else {
            "no"
        }
    );
    d.run(
        "The new code opens it",
        &["unlock", "--code-file", "code.txt", "--out", "key-3.bin"],
        Expect::Success,
    )?;
    d.run(
        "Verify checksum, header MAC and every unattended slot",
        &["verify"],
        Expect::Success,
    )?;
    let short = d.run(
        "Print the short fingerprint",
        &["fingerprint", "--short"],
        Expect::Success,
    )?;
    let short = short.trim();
    d.run(
        "Unlock only if the key is the one expected (the fingerprint gate)",
        &[
            "unlock",
            "--out",
            "key-4.bin",
            "--expect-fingerprint",
            short,
        ],
        Expect::Success,
    )?;
    d.run(
        "A different expected fingerprint fails closed: exit 5, no output file",
        &[
            "unlock",
            "--out",
            "key-5.bin",
            "--expect-fingerprint",
            "00:00:00:00:00:00:00:00",
        ],
        Expect::Exit(5),
    )?;
    let leftovers = ["should-not-exist.bin", "key-5.bin"]
        .iter()
        .any(|f| d.path(f).exists());
    if !same || leftovers || !Path::new(&d.path("key-4.bin")).exists() {
        return Err(CliError::Failed("the demo's checks did not hold".into()));
    }
    Ok(())
}
