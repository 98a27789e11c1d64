//! Getting the secret for a new or rotated slot, and delivering it afterwards. Anything that must
//! exist before the commit (a recovery-code file, a generated key file) is written first and
//! removed again if the commit fails, so a failed command leaves nothing behind.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use keyward_core::kdf::{CalibrationTarget, calibrate_argon2id};
use keyward_core::slot::default_recovery_code_kdf;
use keyward_core::{Error as CoreError, KeyfileContents, RecoveryCode, SlotSecret};
use zeroize::Zeroizing;

use crate::cli::{KindArg, NewSecretArgs};
use crate::exit::{CliResult, usage};
use crate::output::{Output, progress, warn, write_secret};
use crate::secret_input::{SecretReader, prompt_new_passphrase};

/// Where a new recovery code goes.
#[derive(Debug)]
enum CodeDelivery {
    /// Already written to this file (removed again if the commit fails).
    File(PathBuf),
    /// Printed on stdout after the commit (`--code-out -`).
    Stdout,
    /// Shown on the terminal after the commit.
    Terminal,
}

/// A new slot's secret, ready to seal, with what must happen after the commit.
#[derive(Debug)]
pub struct NewSecret {
    /// The secret.
    pub secret: SlotSecret,
    code_delivery: Option<CodeDelivery>,
    created_keyfile: Option<PathBuf>,
}

impl NewSecret {
    /// Gathers the secret for a `kind` slot. Fails before anything is written if the secret
    /// cannot be obtained or a new code would have nowhere to go.
    pub fn prepare(kind: KindArg, args: &NewSecretArgs, reader: &SecretReader) -> CliResult<Self> {
        let misplaced = |opt: &str| {
            usage(format!(
                "{opt} does not apply to a {} slot",
                keyward_core::SlotKind::from(kind)
            ))
        };
        if kind != KindArg::RecoveryCode && args.code_out.is_some() {
            return Err(misplaced("--code-out"));
        }
        if kind != KindArg::Passphrase && args.passphrase_file.is_some() {
            return Err(misplaced("--passphrase-file"));
        }
        if kind != KindArg::Keyfile && args.keyfile.is_some() {
            return Err(misplaced("--keyfile"));
        }
        match kind {
            KindArg::RecoveryCode => recovery_code(args),
            KindArg::Passphrase => passphrase(args, reader),
            KindArg::Keyfile => keyfile(args, reader),
            KindArg::Plain => {
                warn(
                    "a plain slot opens with no secret: anyone who can read the keybox file can read the key",
                );
                Ok(NewSecret {
                    secret: SlotSecret::Plain,
                    code_delivery: None,
                    created_keyfile: None,
                })
            }
        }
    }

    /// After a successful commit: shows or prints the recovery code, if that is where it goes.
    pub fn deliver(&self, output: &Output, slot: &str) -> CliResult {
        let SlotSecret::RecoveryCode { code, .. } = &self.secret else {
            return Ok(());
        };
        match &self.code_delivery {
            Some(CodeDelivery::File(path)) => output.line(format!(
                "Recovery code for slot {slot} written to {}.",
                path.display()
            )),
            Some(CodeDelivery::Stdout) => {
                let mut text = code.canonical();
                text.push('\n');
                write_secret(Path::new("-"), text.as_bytes(), false)
            }
            Some(CodeDelivery::Terminal) => {
                let shown = code.display_form();
                let indented: Vec<String> = shown.lines().map(|l| format!("    {l}")).collect();
                let text = Zeroizing::new(format!(
                    "\nRecovery code for slot {slot}. Write it down now and keep it safe: it is stored\n\
                     nowhere and will not be shown again.\n\n{}\n",
                    indented.join("\n")
                ));
                write_secret(Path::new("-"), text.as_bytes(), false)?;
                output.line("")
            }
            None => Ok(()),
        }
    }

    /// After a failed commit: removes what `prepare` wrote.
    pub fn abandon(&self) {
        if let Some(CodeDelivery::File(path)) = &self.code_delivery {
            let _ = std::fs::remove_file(path);
        }
        if let Some(path) = &self.created_keyfile {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn recovery_code(args: &NewSecretArgs) -> CliResult<NewSecret> {
    let code = RecoveryCode::generate()?;
    let delivery = match &args.code_out {
        Some(path) if path == Path::new("-") => CodeDelivery::Stdout,
        Some(path) => {
            let mut text = code.canonical();
            text.push('\n');
            write_secret(path, text.as_bytes(), false)?;
            CodeDelivery::File(path.clone())
        }
        None if std::io::stdout().is_terminal() => CodeDelivery::Terminal,
        None => {
            return Err(usage(
                "a new recovery code needs somewhere to go: pass --code-out FILE, or run on a terminal to see it",
            ));
        }
    };
    let kdf = default_recovery_code_kdf()?;
    Ok(NewSecret {
        secret: SlotSecret::RecoveryCode { code, kdf },
        code_delivery: Some(delivery),
        created_keyfile: None,
    })
}

fn passphrase(args: &NewSecretArgs, reader: &SecretReader) -> CliResult<NewSecret> {
    let passphrase = match &args.passphrase_file {
        Some(path) => reader.passphrase(path)?,
        None => prompt_new_passphrase()?,
    };
    passphrase.check_strength()?;
    let target = CalibrationTarget {
        unlock_time: Duration::from_millis(args.kdf_time_ms.clamp(1, 60_000)),
        max_memory_kib: args.kdf_memory_mib.clamp(8, 4096) * 1024,
        ..CalibrationTarget::default_for_passphrase()
    };
    progress(&format!(
        "Calibrating argon2id for a {} ms unlock…",
        target.unlock_time.as_millis()
    ));
    let kdf = calibrate_argon2id(target, |step| progress(&format!("  {step}")))?;
    progress(&format!("  using {}", kdf.describe()));
    Ok(NewSecret {
        secret: SlotSecret::Passphrase { passphrase, kdf },
        code_delivery: None,
        created_keyfile: None,
    })
}

fn keyfile(args: &NewSecretArgs, reader: &SecretReader) -> CliResult<NewSecret> {
    let path = args.keyfile.as_ref().ok_or_else(|| {
        usage("a keyfile slot needs --keyfile F (an existing key file, or where to create one)")
    })?;
    if path == Path::new("-") {
        return Err(usage(
            "a keyfile slot needs a real file for --keyfile, not stdin",
        ));
    }
    let mut created = None;
    let contents = if path.exists() {
        reader.keyfile(path)?
    } else {
        let contents = KeyfileContents::generate()?;
        write_secret(path, contents.expose(), false)?;
        created = Some(path.clone());
        contents
    };
    let absolute =
        std::fs::canonicalize(path).map_err(|e| CoreError::io("cannot resolve", path, e))?;
    let recorded = absolute
        .to_str()
        .ok_or_else(|| {
            usage(format!(
                "{} is not valid UTF-8; keyward records key file paths as text",
                absolute.display()
            ))
        })?
        .to_string();
    Ok(NewSecret {
        secret: SlotSecret::Keyfile {
            contents,
            path: Some(recorded),
        },
        code_delivery: None,
        created_keyfile: created,
    })
}
