//! Getting the secret for a new or rotated slot, and delivering it. A recovery code shown on the
//! terminal or stdout is shown *before* the commit, and one written to a file is written before
//! it too: a commit must never succeed while its new secret is lost. If the commit then fails
//! without changing the keybox, what was written is removed again; if it fails after the keybox
//! changed (a failed fsync), everything is kept.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use keyward_core::kdf::{CalibrationTarget, calibrate_argon2id};
use keyward_core::slot::{
    NewKeyfile, NewPassphrase, NewPlain, NewRecoveryCode, default_recovery_code_kdf,
};
use keyward_core::{Error as CoreError, KeyfileContents, NewSlot, Passphrase, RecoveryCode};
use zeroize::Zeroizing;

use crate::cli::NewSecretArgs;
use crate::exit::{CliError, CliResult, usage};
use crate::kinds::{CliKind, Enroller};
use crate::output::{Output, Overwrite, progress, warn, write_secret};
use crate::secret_input::{prompt_new_passphrase, prompt_secret};
use keyward_box::secrets::SecretFiles;

/// Where a new recovery code goes.
#[derive(Debug)]
enum CodeDelivery {
    /// Written to this file by `prepare` (removed again if the commit does not happen).
    File(PathBuf),
    /// Printed on stdout just before the commit (`--code-out -`).
    Stdout,
    /// Shown on the terminal just before the commit.
    Terminal,
}

/// A new slot's secret, ready to seal, with what must happen around the commit.
#[derive(Debug)]
pub struct NewSecret {
    /// The secret.
    pub secret: Box<dyn NewSlot>,
    /// A new recovery code, and where it goes.
    code: Option<(RecoveryCode, CodeDelivery)>,
    created_keyfile: Option<PathBuf>,
    /// Said after the commit (a plain slot's warning).
    warning: Option<&'static str>,
}

/// The recovery-code kind's enrollment.
pub const RECOVERY_CODE: Enroller =
    Enroller::Secret { options: &["--code-out"], prepare: recovery_code };
/// The passphrase kind's enrollment.
pub const PASSPHRASE: Enroller =
    Enroller::Secret { options: &["--passphrase-file"], prepare: passphrase };
/// The key-file kind's enrollment.
pub const KEYFILE: Enroller = Enroller::Secret { options: &["--keyfile"], prepare: keyfile };
/// The plain kind's enrollment.
pub const PLAIN: Enroller = Enroller::Secret { options: &[], prepare: plain };

impl NewSecret {
    /// A secret with nothing to do around the commit.
    pub fn bare(secret: Box<dyn NewSlot>) -> Self {
        NewSecret { secret, code: None, created_keyfile: None, warning: None }
    }

    /// Gathers the secret for a new slot of `kind` (for an `init`, an `enroll` or a `rotate`,
    /// which have checked the options given with [`CliKind::check_options`]). Fails before
    /// anything is written if the secret cannot be obtained or a new code would have nowhere to
    /// go.
    pub fn prepare(
        kind: &CliKind,
        args: &NewSecretArgs,
        reader: &SecretFiles,
        output: &Output,
    ) -> CliResult<Self> {
        let name = kind.kind.name();
        match &kind.enroll {
            Enroller::Secret { prepare, .. } => prepare(args, reader, output),
            Enroller::Command { rotate_with, .. } => Err(usage(format!(
                "a {name} slot is added to an existing keybox with `keyward enroll {name}` and renewed with `{rotate_with}`"
            ))),
        }
    }

    /// Runs `commit` with the new code already delivered, and cleans up if it did not happen.
    pub fn commit<T>(&self, commit: impl FnOnce() -> CliResult<T>) -> CliResult<T> {
        let result = self.present().and_then(|()| commit());
        if let Err(e) = &result
            && !matches!(e, CliError::Core(CoreError::NotDurable { .. }))
        {
            self.abandon();
        }
        result
    }

    /// After the commit: says where a code written to a file went, and warns about a plain slot
    /// (after, not before, so a failure stays one line on stderr).
    pub fn report(&self, output: &Output, slot: &str) -> CliResult {
        if let Some(warning) = self.warning {
            warn(&format!("slot {slot} {warning}"));
        }
        match &self.code {
            Some((_, CodeDelivery::File(path))) => {
                output.line(format!("Recovery code for slot {slot} written to {}.", path.display()))
            }
            _ => Ok(()),
        }
    }

    /// Shows or prints the code when that is where it goes.
    fn present(&self) -> CliResult {
        let Some((code, delivery)) = &self.code else {
            return Ok(());
        };
        match delivery {
            CodeDelivery::Stdout => {
                let mut text = code.canonical();
                text.push('\n');
                write_secret(Path::new("-"), text.as_bytes(), Overwrite::Never)
            }
            CodeDelivery::Terminal => {
                let shown = code.display_form();
                let mut text = Zeroizing::new(String::from(
                    "\nNew recovery code. Write it down now and keep it safe: it is stored nowhere \
                     and will not be shown again.\n\n",
                ));
                for line in shown.lines() {
                    text.push_str("    ");
                    text.push_str(line);
                    text.push('\n');
                }
                text.push('\n');
                write_secret(Path::new("-"), text.as_bytes(), Overwrite::Never)
            }
            CodeDelivery::File(_) => Ok(()),
        }
    }

    /// Removes what `prepare` wrote.
    fn abandon(&self) {
        if let Some((_, CodeDelivery::File(path))) = &self.code {
            let _ = std::fs::remove_file(path);
        }
        if let Some(path) = &self.created_keyfile {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn plain(_: &NewSecretArgs, _: &SecretFiles, _: &Output) -> CliResult<NewSecret> {
    Ok(NewSecret {
        warning: Some("is plain: anyone who can read the keybox file can read the key"),
        ..NewSecret::bare(Box::new(NewPlain))
    })
}

fn recovery_code(args: &NewSecretArgs, _: &SecretFiles, output: &Output) -> CliResult<NewSecret> {
    let kdf = default_recovery_code_kdf()?;
    let code = RecoveryCode::generate()?;
    let delivery = match &args.code_out {
        Some(path) if path == Path::new("-") => {
            if output.json {
                return Err(usage(
                    "--code-out - and --json would share stdout; write the code to a file",
                ));
            }
            CodeDelivery::Stdout
        }
        Some(path) => {
            let mut text = code.canonical();
            text.push('\n');
            write_secret(path, text.as_bytes(), Overwrite::Never)?;
            CodeDelivery::File(path.clone())
        }
        None if std::io::stdout().is_terminal() && !output.json => CodeDelivery::Terminal,
        None => {
            return Err(usage(
                "a new recovery code needs somewhere to go: pass --code-out FILE, or run on a terminal to see it",
            ));
        }
    };
    Ok(NewSecret {
        code: Some((code.clone(), delivery)),
        ..NewSecret::bare(Box::new(NewRecoveryCode { code, kdf }))
    })
}

fn passphrase(args: &NewSecretArgs, reader: &SecretFiles, _: &Output) -> CliResult<NewSecret> {
    let passphrase = match &args.passphrase_file {
        Some(path) => reader.passphrase(path)?,
        None => prompt_new_passphrase()?,
    };
    passphrase.check_strength()?;
    let target = CalibrationTarget {
        unlock_time: Duration::from_millis(args.kdf_time_ms),
        max_memory_kib: args.kdf_memory_mib.saturating_mul(1024),
        ..CalibrationTarget::default_for_passphrase()
    };
    // Before anything slow: a target below the floor is refused, not quietly raised.
    target.check()?;
    progress(&format!("Calibrating argon2id for a {} ms unlock…", target.unlock_time.as_millis()));
    let kdf = calibrate_argon2id(target, |step| progress(&format!("  {step}")))?;
    progress(&format!("  using {}", kdf.describe()));
    Ok(NewSecret::bare(Box::new(NewPassphrase { passphrase, kdf })))
}

fn keyfile(args: &NewSecretArgs, reader: &SecretFiles, _: &Output) -> CliResult<NewSecret> {
    let path = args.keyfile.as_ref().ok_or_else(|| {
        usage("a keyfile slot needs --keyfile F (an existing key file, or where to create one)")
    })?;
    if path == Path::new("-") {
        return Err(usage("a keyfile slot needs a real file for --keyfile, not stdin"));
    }
    let recorded = recorded_path(path)?;
    let (contents, created) = if path.exists() {
        (reader.keyfile(path)?, None)
    } else {
        let contents = KeyfileContents::generate()?;
        write_secret(path, contents.expose(), Overwrite::Never)?;
        (contents, Some(path.clone()))
    };
    Ok(NewSecret {
        created_keyfile: created,
        ..NewSecret::bare(Box::new(NewKeyfile { contents, path: Some(recorded) }))
    })
}

/// The path a slot records for a file it reads at unlock: absolute, but with symlinks kept (a
/// stable name such as /dev/disk/by-label/… must stay that name), and text.
pub fn recorded_path(path: &Path) -> CliResult<String> {
    let absolute =
        std::path::absolute(path).map_err(|e| CoreError::io("cannot resolve", path, e))?;
    Ok(absolute
        .to_str()
        .ok_or_else(|| {
            usage(format!(
                "{} is not valid UTF-8; keyward records file paths as text",
                absolute.display()
            ))
        })?
        .to_string())
}

/// The PIN for a new device slot, and the path the slot records to read it unattended: from
/// `--pin-file` (a real file must be readable by its owner only, and its path is recorded; `-`
/// is read once and not recorded), else typed once at a prompt naming `what`.
pub fn device_pin(
    args: &NewSecretArgs,
    reader: &SecretFiles,
    what: &str,
) -> CliResult<(Passphrase, Option<String>)> {
    let Some(path) = &args.pin_file else {
        return Ok((prompt_secret(&format!("PIN for {what}: "))?, None));
    };
    if path == Path::new("-") {
        return Ok((reader.passphrase(path)?, None));
    }
    reader.check_recorded_pin_file(path)?;
    Ok((reader.passphrase(path)?, Some(recorded_path(path)?)))
}
