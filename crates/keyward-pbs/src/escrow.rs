//! The PBS-native escrow blob: the key file re-keyed to scrypt under a recovery code — exactly
//! what `proxmox-backup-client key change-passphrase --kdf scrypt` writes when the new
//! passphrase is typed as the code's canonical text (lower case, one space between words). The
//! backup client itself can therefore open the blob with the code.

use keyward_core::{DataKey, RecoveryCode};

use crate::{PbsError, PbsKdf, PbsKeyFile, PbsTime, pbs_fingerprint};

/// Seals `key` under `code`, then proves the result: parses the bytes back, opens them with the
/// code and compares the PBS fingerprint. Only a blob that passed is returned.
pub fn seal(
    key: &DataKey,
    code: &RecoveryCode,
    created: PbsTime,
    modified: PbsTime,
) -> Result<PbsKeyFile, PbsError> {
    let passphrase = code.canonical();
    let file = PbsKeyFile::seal(
        key,
        Some((PbsKdf::scrypt()?, passphrase.as_bytes())),
        created,
        modified,
    )?;
    let reopened = open(&PbsKeyFile::parse(&file.to_bytes())?, code)?;
    let (expected, found) = (
        pbs_fingerprint(key.expose()),
        pbs_fingerprint(reopened.expose()),
    );
    if expected != found {
        return Err(PbsError::StoredFingerprintMismatch {
            stored: expected.short(),
            found: found.short(),
        });
    }
    Ok(file)
}

/// Opens a blob with `code`.
pub fn open(blob: &PbsKeyFile, code: &RecoveryCode) -> Result<DataKey, PbsError> {
    blob.open(Some(code.canonical().as_bytes()))
}
