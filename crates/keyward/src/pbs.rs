//! Proxmox Backup glue for the commands: reading key files (errors carry the path), asking for
//! their passphrases, writing a key as a PBS key file, and where the backup client keeps its key.

use std::path::{Path, PathBuf};

use keyward_core::DataKey;
use keyward_core::keybox::PbsRecord;
use keyward_pbs::{PbsKdf, PbsKeyFile, PbsTime};
use zeroize::Zeroizing;

use crate::cli::PbsKdfArg;
use crate::exit::{CliError, CliResult, usage};
use crate::output::warn;
use crate::secret_input::{prompt_new_passphrase, prompt_secret};
use keyward_box::secrets::SecretFiles;

/// Reads and parses a PBS key file (or PBS-form escrow blob).
pub fn read_key_file(reader: &SecretFiles, path: &Path) -> CliResult<PbsKeyFile> {
    let bytes = reader.bytes(path)?;
    PbsKeyFile::parse(&bytes).map_err(|source| CliError::Pbs { path: path.to_path_buf(), source })
}

/// Opens a key file, asking for its passphrase (from `passphrase_file`, else a prompt) only if
/// it is encrypted.
pub fn open_key_file(
    file: &PbsKeyFile,
    path: &Path,
    passphrase_file: Option<&Path>,
    reader: &SecretFiles,
) -> CliResult<DataKey> {
    let passphrase = match (&file.kdf, passphrase_file) {
        (None, _) => None,
        (Some(_), Some(from)) => Some(reader.passphrase(from)?),
        (Some(_), None) => Some(prompt_secret(&format!("Passphrase for {}: ", path.display()))?),
    };
    file.open(passphrase.as_ref().map(|p| p.expose()))
        .map_err(|source| CliError::Pbs { path: path.to_path_buf(), source })
}

/// The `created` time for a PBS file of this key: the imported file's (checked at import), else
/// now, for a key that did not come from a PBS file.
pub fn created_time(record: Option<&PbsRecord>, now: &PbsTime) -> PbsTime {
    match record.map(|r| PbsTime::parse("created", &r.created)) {
        Some(Ok(created)) => created,
        Some(Err(e)) => {
            warn(&format!(
                "the recorded creation time cannot be used ({e}); writing the current time"
            ));
            now.clone()
        }
        None => now.clone(),
    }
}

/// The key as a PBS key file: unencrypted, or encrypted with scrypt under a new passphrase
/// (from `passphrase_file`, else prompted twice).
pub fn key_file_bytes(
    key: &DataKey,
    kdf: PbsKdfArg,
    passphrase_file: Option<&Path>,
    reader: &SecretFiles,
    created: PbsTime,
    modified: PbsTime,
) -> CliResult<Zeroizing<Vec<u8>>> {
    let to_cli = |source| CliError::Pbs { path: PathBuf::from("the new key file"), source };
    let file = match kdf {
        PbsKdfArg::None => PbsKeyFile::seal(key, None, created, modified).map_err(to_cli)?,
        PbsKdfArg::Scrypt => {
            let passphrase = match passphrase_file {
                Some(from) => reader.passphrase(from)?,
                None => prompt_new_passphrase()?,
            };
            passphrase.check_strength()?;
            let kdf = PbsKdf::scrypt().map_err(to_cli)?;
            PbsKeyFile::seal(key, Some((kdf, passphrase.expose())), created, modified)
                .map_err(to_cli)?
        }
    };
    Ok(file.to_bytes())
}

/// Where proxmox-backup-client reads its default key:
/// `$XDG_CONFIG_HOME/proxmox-backup/encryption-key.json`, else under `~/.config`.
pub fn default_key_path() -> CliResult<PathBuf> {
    let config = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => match std::env::var_os("HOME") {
            Some(home) if !home.is_empty() => PathBuf::from(home).join(".config"),
            _ => {
                return Err(usage(
                    "neither XDG_CONFIG_HOME nor HOME is set; use --out FILE instead of --install",
                ));
            }
        },
    };
    Ok(config.join("proxmox-backup").join("encryption-key.json"))
}
