//! Header backup and restore. The backup is cryptsetup's own (luksHeaderBackup: the header and
//! every keyslot area), so `cryptsetup luksHeaderRestore` can use it without keyward too. A
//! restore refuses a backup of another volume, and says when it brings back an older keyward
//! keyslot, whose passphrase then opens the volume again.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use keyward_core::DataKey;

use crate::error::{LuksError, Result};
use crate::escrow;
use crate::header::Header;
use crate::journal::{Entry, Journal};
use crate::probe::{self, Probed};
use crate::volume::{Volume, restore_header};

/// A header backup, in memory until the caller writes it (0600, atomically).
pub struct HeaderBackup {
    /// The volume's UUID.
    pub uuid: String,
    /// The backup file's bytes.
    pub bytes: Zeroizing<Vec<u8>>,
    /// Their SHA-256.
    pub sha256: [u8; 32],
    /// keyward's pair in it, if its journal is settled.
    pub pair: Option<Entry>,
    /// The header's JSON metadata (where each keyslot's area is, for [`crate::escrow`]).
    pub metadata: serde_json::Value,
}

/// Backs up the header of `volume`.
pub fn back_up(volume: &mut Volume) -> Result<HeaderBackup> {
    // libcryptsetup writes the backup into a new file only; a private folder of our own
    // holds it until it is read back.
    let folder = private_folder()?;
    let file = folder.path().join("header");
    volume.header_backup(&file)?;
    let bytes = Zeroizing::new(std::fs::read(&file).map_err(|source| LuksError::Io {
        path: file.clone(),
        what: "cannot read the header backup back",
        source,
    })?);
    // What the backup holds is read from the backup itself, not from the volume again: the
    // header may have changed in between.
    let mut copy = Volume::open(&file)?;
    let metadata = copy.metadata()?;
    let header = Header::from_metadata(&metadata)
        .map_err(|source| LuksError::Metadata { path: file.clone(), source })?;
    let pair = Journal::read(&header).ok().and_then(|j| j.settled().cloned());
    Ok(HeaderBackup {
        metadata,
        uuid: copy.uuid().into(),
        sha256: Sha256::digest(&bytes[..]).into(),
        bytes,
        pair,
    })
}

/// What a restore did.
#[derive(Debug)]
pub struct Restored {
    /// The volume's UUID.
    pub uuid: String,
    /// keyward's pair in the restored header, if its journal is settled.
    pub pair: Option<Entry>,
    /// When the restore brought keyward's pair back from a later sequence to an earlier one
    /// (of the same enrollment): the later sequence.
    pub went_back_from: Option<u64>,
    /// For a sealed backup, when it was sealed (Unix seconds, from its label).
    pub sealed_at: Option<u64>,
}

/// Restores the header backup `backup` onto `device`: refused if it is another volume's
/// backup, or if `device` has no readable header and `expect_uuid` does not name the
/// backup's volume.
pub fn restore(device: &Path, backup: &Path, expect_uuid: Option<&str>) -> Result<Restored> {
    restore_from(device, backup, backup, expect_uuid)
}

/// Restores a header backup sealed for the escrow hub ([`crate::escrow`]; `source` says where
/// it came from) onto `device`, opened with `key`: as [`restore`], once the seal has vouched
/// for what it holds. The rebuilt backup file lives in a private folder until it is restored.
pub fn restore_sealed(
    device: &Path,
    key: &DataKey,
    sealed: &[u8],
    source: &str,
    expect_uuid: Option<&str>,
) -> Result<Restored> {
    let opened = escrow::open(key, sealed)
        .map_err(|e| LuksError::HeaderEscrow { what: source.into(), source: e })?;
    let folder = private_folder()?;
    let file = folder.path().join("header");
    std::fs::write(&file, &opened.bytes[..]).map_err(|source| LuksError::Io {
        path: file.clone(),
        what: "cannot write the rebuilt header backup",
        source,
    })?;
    let restored = restore_from(device, &file, Path::new(source), expect_uuid)?;
    Ok(Restored { sealed_at: Some(opened.label.sealed_at), ..restored })
}

/// A folder only this user can enter (tempfile makes it 0700), for a backup file on its way.
fn private_folder() -> Result<tempfile::TempDir> {
    tempfile::tempdir().map_err(|source| LuksError::Io {
        path: std::env::temp_dir(),
        what: "cannot make a private folder for the header backup",
        source,
    })
}

/// [`restore`] from the file `backup`, named `shown_as` in what it says.
fn restore_from(
    device: &Path,
    backup: &Path,
    shown_as: &Path,
    expect_uuid: Option<&str>,
) -> Result<Restored> {
    let mut from = Volume::open(backup)?;
    let uuid = from.uuid().to_string();
    let restored = Journal::read(&from.header()?).ok();
    drop(from);
    let replaced = match Volume::open(device) {
        Ok(mut current) => {
            if current.uuid() != uuid {
                return Err(other_volume(device, current.uuid(), shown_as, &uuid));
            }
            Journal::read(&current.header()?).ok()
        }
        // No header libcryptsetup reads: the device may hold something else, which a restore
        // would write over. Only a device that holds nothing libblkid knows (or this volume's
        // own LUKS2 signature) is restored onto, and the former only when the person names
        // the volume.
        Err(LuksError::NotLuks2 { .. }) => match probe::probe(device)? {
            Probed::One(found) if found.is_luks2_of(&uuid) => None,
            Probed::One(found) => {
                return Err(LuksError::OtherSignature {
                    path: device.into(),
                    found: found.to_string(),
                });
            }
            Probed::Several => {
                return Err(LuksError::OtherSignature {
                    path: device.into(),
                    found: "several signatures".into(),
                });
            }
            Probed::Nothing => match expect_uuid {
                Some(expected) if expected.eq_ignore_ascii_case(&uuid) => None,
                Some(expected) => {
                    return Err(LuksError::ExpectedOtherVolume {
                        path: device.into(),
                        expected: expected.into(),
                        backup: shown_as.into(),
                    });
                }
                None => return Err(LuksError::NothingToCompare { path: device.into() }),
            },
        },
        Err(e) => return Err(e),
    };
    restore_header(device, backup)?;
    let pair = restored.as_ref().and_then(|j| j.settled().cloned());
    let latest = |journal: &Option<Journal>| {
        journal
            .as_ref()
            .and_then(|j| j.settled())
            .map(|e| (e.record.enrollment.clone(), e.record.sequence))
    };
    let went_back_from = match (latest(&replaced), latest(&restored)) {
        (Some((was, later)), Some((now, earlier))) if was == now && later > earlier => Some(later),
        _ => None,
    };
    Ok(Restored { uuid, pair, went_back_from, sealed_at: None })
}

fn other_volume(device: &Path, volume_uuid: &str, backup: &Path, backup_uuid: &str) -> LuksError {
    LuksError::OtherVolume {
        path: PathBuf::from(device),
        volume_uuid: volume_uuid.into(),
        backup: backup.into(),
        backup_uuid: backup_uuid.into(),
    }
}
