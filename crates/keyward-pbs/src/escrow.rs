//! The PBS-native escrow blob: the key file re-keyed to scrypt under a recovery code — exactly
//! what `proxmox-backup-client key change-passphrase --kdf scrypt` writes when the new
//! passphrase is typed as the code's canonical text (lower case, one space between words). The
//! backup client itself can therefore open the blob with the code.

use keyward_core::{DataKey, RecoveryCode};

use crate::{PbsError, PbsKdf, PbsKeyFile, PbsTime, pbs_fingerprint};

/// Most scrypt work an escrow blob may ask for: 4 × what keyward writes (N=65536, r=8, p=1 is
/// 64 MiB). A blob comes from a hub that is not trusted, and a recovery box may be small.
const MAX_BLOB_SCRYPT_BYTES: u64 = 4 * 128 * 8 * 65536;

/// Seals `key` under `code`, then proves the result: parses the bytes back, opens them with the
/// code and compares the PBS fingerprint. Only a blob that passed is returned.
pub fn seal(
    key: &DataKey,
    code: &RecoveryCode,
    created: PbsTime,
    modified: PbsTime,
) -> Result<PbsKeyFile, PbsError> {
    let passphrase = code.canonical();
    let kdf = PbsKdf::scrypt()?;
    let file = PbsKeyFile::seal(key, Some((kdf, passphrase.as_bytes())), created, modified)?;
    let reopened = open(&PbsKeyFile::parse(&file.to_bytes())?, code)?;
    if pbs_fingerprint(key.expose()) != pbs_fingerprint(reopened.expose()) {
        return Err(PbsError::SelfCheckFailed);
    }
    Ok(file)
}

/// Opens a blob with `code`, after refusing a KDF far costlier than keyward writes.
pub fn open(blob: &PbsKeyFile, code: &RecoveryCode) -> Result<DataKey, PbsError> {
    let Some(PbsKdf::Scrypt { n, r, p, .. }) = &blob.kdf else {
        return Err(PbsError::BadField {
            field: "kdf",
            problem: "an escrow blob is encrypted with scrypt, this file is not".into(),
        });
    };
    let work = 128u64.saturating_mul(*r).saturating_mul(*n).saturating_mul(*p);
    if work > MAX_BLOB_SCRYPT_BYTES {
        return Err(PbsError::EscrowCostTooHigh {
            found: format!("{} MiB of scrypt work", work >> 20),
            limit: format!("{} MiB", MAX_BLOB_SCRYPT_BYTES >> 20),
        });
    }
    blob.open(Some(code.canonical().as_bytes()))
}
