//! Choosing how to open a keybox: an explicit secret option, else — when the slot named is a
//! peers slot — the key its peers give back to this box's identity, else a slot that opens
//! unattended (plain, or a key file found at its recorded path), else a prompt on the terminal.

use std::path::Path;

use keyward_core::{
    DataKey, Error as CoreError, Keybox, KeyfileContents, Passphrase, RecoveryCode, SlotId,
    SlotKind, Unlocker, operations::Authorization,
};
use zeroize::Zeroizing;

use crate::cli::AuthArgs;
use crate::exit::{CliResult, usage};
use crate::peers_io;
use crate::secret_input::{SecretReader, prompt_hidden, terminal_available};

/// A secret that has been obtained, owned.
#[derive(Debug)]
pub enum OfferedSecret {
    /// A recovery code.
    Code(RecoveryCode),
    /// A passphrase.
    Passphrase(Passphrase),
    /// A key file's contents.
    Keyfile(KeyfileContents),
    /// Nothing: an unattended (plain) slot.
    Unattended,
    /// The key the peers' shares gave (the peers slot checks it is exactly K).
    Reconstructed(DataKey),
}

/// One way to try opening the keybox.
#[derive(Debug)]
pub struct Attempt {
    secret: OfferedSecret,
    slot: Option<SlotId>,
}

impl OfferedSecret {
    /// As the library's unlocker.
    pub fn unlocker(&self) -> Unlocker<'_> {
        match self {
            OfferedSecret::Code(c) => Unlocker::RecoveryCode(c),
            OfferedSecret::Passphrase(p) => Unlocker::Passphrase(p),
            OfferedSecret::Keyfile(k) => Unlocker::Keyfile(k),
            OfferedSecret::Unattended => Unlocker::Unattended,
            OfferedSecret::Reconstructed(key) => Unlocker::Reconstructed(key),
        }
    }
}

impl Attempt {
    /// As the library's authorization.
    pub fn authorization(&self) -> Authorization<'_> {
        Authorization { unlocker: self.secret.unlocker(), slot: self.slot }
    }
}

/// The secret an explicit option gives (`--code-file`, `--passphrase-file`, `--keyfile`, or
/// their `--unlock-…` forms), if one was given; more than one is a usage error.
pub fn explicit_secret(args: &AuthArgs, reader: &SecretReader) -> CliResult<Option<OfferedSecret>> {
    if args.secrets_given() > 1 {
        return Err(usage(
            "give one secret to open the keybox (a code, a passphrase or a key file), not several",
        ));
    }
    Ok(if let Some(path) = &args.unlock_code_file {
        Some(OfferedSecret::Code(reader.code(path)?))
    } else if let Some(path) = &args.unlock_passphrase_file {
        Some(OfferedSecret::Passphrase(reader.passphrase(path)?))
    } else if let Some(path) = &args.unlock_keyfile {
        Some(OfferedSecret::Keyfile(reader.keyfile_to_open(path)?))
    } else {
        None
    })
}

/// The ways to open `keybox` that `args` allow, best first. More than one only when a prompt's
/// answer could be either a recovery code or a passphrase.
pub fn attempts(
    args: &AuthArgs,
    keybox: &Keybox,
    keybox_path: &Path,
    reader: &SecretReader,
) -> CliResult<Vec<Attempt>> {
    let slot = match &args.unlock_slot {
        Some(name) => Some(keybox.find_slot(name)?),
        None => None,
    };
    if let Some(record) = slot
        && let Some(params) = record.protection.peers()
        && args.secrets_given() == 0
    {
        let ticket = args.unlock_release_ticket.as_deref();
        let key = peers_io::reconstruct_for_slot(reader, keybox_path, keybox, params, ticket)?;
        return Ok(vec![Attempt {
            secret: OfferedSecret::Reconstructed(key),
            slot: Some(record.id),
        }]);
    }
    let slot = slot.map(|record| record.id);
    if let Some(secret) = explicit_secret(args, reader)? {
        return Ok(vec![Attempt { secret, slot }]);
    }
    // Every unattended slot, in order: a key file that changed must not hide a plain slot.
    let unattended = unattended_attempts(keybox, slot, reader);
    if !unattended.is_empty() {
        return Ok(unattended);
    }
    prompted(keybox, slot)
}

/// One attempt per slot that opens with nothing typed (restricted to `only`): plain slots, and
/// key-file slots whose file is readable at its recorded path.
pub fn unattended_attempts(
    keybox: &Keybox,
    only: Option<SlotId>,
    reader: &SecretReader,
) -> Vec<Attempt> {
    let mut out = Vec::new();
    for record in keybox.unattended_slots().filter(|s| only.is_none_or(|id| s.id == id)) {
        // An unattended slot is a key file at a recorded path, or a plain slot.
        let secret = match record.protection.keyfile_path() {
            // A key file that is not here (a removed USB stick) just means "not this slot".
            Some(path) => match reader.keyfile_to_open(Path::new(path)) {
                Ok(contents) => OfferedSecret::Keyfile(contents),
                Err(_) => continue,
            },
            None => OfferedSecret::Unattended,
        };
        out.push(Attempt { secret, slot: Some(record.id) });
    }
    out
}

/// Asks the person at the terminal for a passphrase or recovery code.
fn prompted(keybox: &Keybox, only: Option<SlotId>) -> CliResult<Vec<Attempt>> {
    let kinds: Vec<SlotKind> = keybox
        .slots()
        .iter()
        .filter(|s| only.is_none_or(|id| s.id == id))
        .map(|s| s.protection.kind())
        .collect();
    let has_code = kinds.contains(&SlotKind::RecoveryCode);
    let has_passphrase = kinds.contains(&SlotKind::Passphrase);
    if !terminal_available() || !(has_code || has_passphrase) {
        return Err(CoreError::NoUnattendedSlot.into());
    }
    let prompt = match (has_code, has_passphrase) {
        (true, true) => "Passphrase or recovery code: ",
        (true, false) => "Recovery code: ",
        _ => "Passphrase: ",
    };
    let typed = prompt_hidden(prompt)?;
    let mut out = Vec::new();
    if has_code {
        match RecoveryCode::parse(&typed) {
            Ok(code) => out.push(Attempt { secret: OfferedSecret::Code(code), slot: only }),
            Err(e) if !has_passphrase => return Err(CoreError::from(e).into()),
            Err(_) => {}
        }
    }
    if has_passphrase {
        let bytes = Zeroizing::new(typed.as_bytes().to_vec());
        out.push(Attempt { secret: OfferedSecret::Passphrase(Passphrase::new(bytes)), slot: only });
    }
    Ok(out)
}

/// Runs `op` with each attempt in turn until one is not a wrong secret.
pub fn with_first_that_opens<T>(
    attempts: &[Attempt],
    mut op: impl FnMut(&Authorization<'_>) -> Result<T, CoreError>,
) -> CliResult<T> {
    let mut last = CoreError::NoUnattendedSlot;
    for attempt in attempts {
        match op(&attempt.authorization()) {
            Err(e @ (CoreError::WrongSecret { .. } | CoreError::NoSlotOfKind(_))) => last = e,
            other => return Ok(other?),
        }
    }
    Err(last.into())
}
