//! A header backup sealed for the hub, on real image files: what opening it rebuilds is a file
//! the `cryptsetup` CLI itself restores (luksHeaderRestore), whose metadata and keyslot areas
//! are the original's byte for byte, and after which every passphrase opens the volume again.

use std::path::{Path, PathBuf};

use keyward_core::DataKey;
use keyward_luks::backup::HeaderBackup;
use keyward_luks::journal::Entry;
use keyward_luks::passphrase::KeyslotPassphrase;
use keyward_luks::testing::{FAST, USER_PASSPHRASE, cryptsetup_ok, dump, new_volume, opens};
use keyward_luks::{KeywardVolume, LuksError, NoFaults, Volume, backup, escrow};
use zeroize::Zeroizing;

fn key(byte: u8) -> DataKey {
    DataKey::import(Zeroizing::new(vec![byte; 32])).expect("key")
}

/// A volume enrolled with a key, and its header backup sealed for the hub.
struct Sealed {
    image: PathBuf,
    backup: HeaderBackup,
    entry: Entry,
    sealed: Vec<u8>,
    passphrase: KeyslotPassphrase,
}

/// A new image `volume.img` in `dir`, enrolled with `key`, its header backup sealed.
fn enrolled_and_sealed(dir: &Path, key: &DataKey) -> Sealed {
    let image = new_volume(&dir.join("volume.img"));
    let mut no_faults = NoFaults;
    let mut volume =
        KeywardVolume::new(Volume::open(&image).expect("open"), key, "kb", &mut no_faults);
    volume.enroll(USER_PASSPHRASE, &FAST).expect("enroll");
    let (backup, entry, sealed) = volume.sealed_header_backup().expect("sealed backup");
    let (_, passphrase) = volume.passphrase().expect("passphrase");
    Sealed { image, backup, entry, sealed, passphrase }
}

#[test]
fn the_rebuilt_backup_is_the_header_cryptsetup_restores_and_every_passphrase_opens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = key(3);
    let Sealed { image, backup, entry, sealed, passphrase } = enrolled_and_sealed(dir.path(), &key);
    assert_eq!(entry.record.fingerprint, key.fingerprint());
    // A default header backup is 16 MiB, nearly all of it unused random bytes.
    assert_eq!(backup.bytes.len(), 16 << 20);
    assert!(sealed.len() < 1 << 20, "{} bytes sealed", sealed.len());
    let label = escrow::label(&sealed).expect("label");
    assert_eq!((label.uuid.as_str(), label.fingerprint), (backup.uuid.as_str(), key.fingerprint()));

    let opened = escrow::open(&key, &sealed).expect("open");
    let areas = escrow::used_areas(&backup.metadata, backup.bytes.len() as u64).expect("areas");
    assert_eq!(areas.len(), 3, "the metadata and two keyslot areas: {areas:?}");
    for area in &areas {
        let (start, end) = (area.start as usize, area.end as usize);
        assert!(opened.bytes[start..end] == backup.bytes[start..end], "{area:?} is the original's");
    }
    let rebuilt = dir.path().join("rebuilt");
    std::fs::write(&rebuilt, &opened.bytes[..]).expect("write");
    assert_eq!(dump(&rebuilt), dump(&image), "cryptsetup reads the same header from it");

    // Both metadata copies and both keyslot areas destroyed, then restored by cryptsetup itself.
    let mut disk = std::fs::read(&image).expect("image");
    disk[..1 << 20].fill(0);
    std::fs::write(&image, &disk).expect("damage");
    assert!(!opens(&image, USER_PASSPHRASE, None));
    let rebuilt_path = rebuilt.to_str().expect("path");
    let restore = ["luksHeaderRestore", "--batch-mode", "--header-backup-file", rebuilt_path];
    cryptsetup_ok(&restore, &image, &[], b"");
    assert!(opens(&image, USER_PASSPHRASE, None), "the user's passphrase opens it again");
    assert!(opens(&image, passphrase.expose(), None), "keyward's opens it again");
}

#[test]
fn a_sealed_backup_restores_only_with_its_key_onto_its_volume() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = key(3);
    let Sealed { image, backup, sealed, .. } = enrolled_and_sealed(dir.path(), &key);
    let other = new_volume(&dir.path().join("other.img"));
    let before = std::fs::read(&other).expect("other");

    let restore = |device: &Path, key: &DataKey, sealed: &[u8], expect: Option<&str>| {
        backup::restore_sealed(device, key, sealed, "the hub's copy", expect)
    };
    let wrong_key = restore(&image, &self::key(4), &sealed, None);
    assert!(matches!(wrong_key, Err(LuksError::HeaderEscrow { .. })), "{wrong_key:?}");
    let wrong_volume = restore(&other, &key, &sealed, None);
    assert!(matches!(wrong_volume, Err(LuksError::OtherVolume { .. })), "{wrong_volume:?}");
    assert_eq!(std::fs::read(&other).expect("other"), before, "the other volume is untouched");

    // A volume with no readable header: only when its UUID is named.
    let mut disk = std::fs::read(&image).expect("image");
    disk[..1 << 20].fill(0);
    std::fs::write(&image, &disk).expect("damage");
    let unnamed = restore(&image, &key, &sealed, None);
    assert!(matches!(unnamed, Err(LuksError::NothingToCompare { .. })), "{unnamed:?}");
    let restored = restore(&image, &key, &sealed, Some(&backup.uuid)).expect("restore");
    assert_eq!(restored.uuid, backup.uuid);
    assert!(opens(&image, USER_PASSPHRASE, None));
}

#[test]
fn a_volume_without_keyward_s_keyslot_is_not_sealed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = new_volume(&dir.path().join("volume.img"));
    let key = key(3);
    let mut no_faults = NoFaults;
    let mut volume =
        KeywardVolume::new(Volume::open(&image).expect("open"), &key, "kb", &mut no_faults);
    let refused = volume.sealed_header_backup().map(drop);
    assert!(matches!(refused, Err(LuksError::NotEnrolled { .. })), "{refused:?}");
}
