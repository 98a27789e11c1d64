//! Backups of the box itself: the keybox with the files beside it (its hub enrollment, its
//! identity, its share journal, its notes of volumes, pushes and drills) in one versioned file,
//! `keyward backup --out FILE` / `keyward restore --from FILE` (docs/formats/box-backup.md).
//!
//! The keybox goes in as it is: its slots are what open the key, so any slot opens the backup
//! too. Everything else — the identity is a secret — is sealed (XChaCha20-Poly1305) under a key
//! derived from K (HKDF-SHA256, salt `keyward box backup v1`, info the keybox's id), with the
//! keybox's bytes and the backup's time bound in as associated data: a sealed part moved under
//! another keybox, or a changed byte anywhere, does not open. The backup is as sensitive as the
//! keybox (a plain slot's key is in the clear in both): it is written 0600.
//!
//! A restore writes the files beside the keybox first and the keybox last, each atomically: a
//! crash leaves the old state (no keybox, or the one there) with at most some files beside it,
//! which the next restore replaces.

use std::collections::BTreeMap;
use std::path::Path;

use hkdf::Hkdf;
use keyward_core::store::{RealFs, beside_keybox, write_secret_file};
use keyward_core::{DataKey, Error as CoreError, Fingerprint, IntegrityFailure, Keybox, aead};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{BoxError, BoxResult, invalid};

/// The `format` field.
pub const FORMAT: &str = "keyward-box-backup";
/// The one version this build reads and writes.
pub const VERSION: u32 = 1;
/// The files beside a keybox a backup carries, by the suffix after the keybox's path.
pub const SIDE_FILES: [&str; 6] = [
    ".hub.json",
    ".box-key",
    ".peers-pending.json",
    ".volumes.json",
    ".pushed.json",
    ".drill.json",
];
const SALT: &[u8] = b"keyward box backup v1";
const DOMAIN: &[u8] = b"keyward-box-backup-v1\n";
/// Largest backup read (a keybox and a few small files).
const MAX_BYTES: usize = 4 * 1024 * 1024;

/// The file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackupFile {
    format: String,
    version: u32,
    /// Unix seconds when it was made.
    created: i64,
    /// The keybox's id and its key's fingerprint (also in the keybox; here for a person).
    keybox_id: String,
    fingerprint: String,
    /// The keybox's bytes, base64.
    keybox: String,
    /// The files beside it, sealed: nonce ‖ ciphertext ‖ tag, base64.
    sealed: String,
}

/// What is sealed: each file beside the keybox that was there, by suffix.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SideFiles {
    files: BTreeMap<String, String>,
}

impl Drop for SideFiles {
    // The box's signing key (`.box-key`) is among them, in base64.
    fn drop(&mut self) {
        self.files.values_mut().for_each(Zeroize::zeroize);
    }
}

/// A backup read and opened.
pub struct Opened {
    /// The keybox in it.
    pub keybox: Keybox,
    /// Its bytes.
    pub keybox_bytes: Vec<u8>,
    /// When the backup was made.
    pub created: i64,
    /// The files beside it, by suffix (secret: wiped when dropped).
    pub side_files: Vec<(String, Zeroizing<Vec<u8>>)>,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The files' contents are secret (the identity): their names only.
        let names: Vec<&str> = self.side_files.iter().map(|(s, _)| s.as_str()).collect();
        f.debug_struct("Opened")
            .field("created", &self.created)
            .field("side_files", &names)
            .finish()
    }
}

fn seal_key(key: &DataKey, keybox_id: &str) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    // 32 bytes is far within HKDF-SHA256's limit: the expand cannot fail.
    let _ =
        Hkdf::<Sha256>::new(Some(SALT), key.expose()).expand(keybox_id.as_bytes(), out.as_mut());
    out
}

fn associated_data(created: i64, keybox_bytes: &[u8]) -> Vec<u8> {
    let mut out = DOMAIN.to_vec();
    out.extend_from_slice(&created.to_be_bytes());
    out.extend_from_slice(&Sha256::digest(keybox_bytes));
    out
}

fn damaged(what: &str) -> BoxError {
    CoreError::Integrity {
        path: "the backup".into(),
        what: IntegrityFailure::Malformed(what.into()),
    }
    .into()
}

/// The backup of the keybox at `path` (read as it is now) and the files beside it, sealed
/// under `key` (the keybox's, from an opened slot).
pub fn make(
    path: &Path,
    keybox: &Keybox,
    key: &DataKey,
    now: i64,
) -> BoxResult<Zeroizing<Vec<u8>>> {
    let keybox_bytes = keybox.to_bytes();
    let mut side = SideFiles::default();
    for suffix in SIDE_FILES {
        let file = beside_keybox(path, "", suffix);
        match std::fs::read(&file) {
            Ok(bytes) => {
                let bytes = Zeroizing::new(bytes);
                side.files.insert(suffix.into(), keyward_core::encoding::to_base64(&bytes));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(CoreError::io("cannot read", &file, e).into()),
        }
    }
    let plaintext = Zeroizing::new(
        serde_json::to_vec(&side).map_err(|_| CoreError::Internal("a backup that is not JSON"))?,
    );
    let header = keybox.header();
    let sealed = aead::seal(
        &seal_key(key, &header.id.to_string()),
        &associated_data(now, &keybox_bytes),
        &plaintext,
    )?;
    let file = BackupFile {
        format: FORMAT.into(),
        version: VERSION,
        created: now,
        keybox_id: header.id.to_string(),
        fingerprint: header.fingerprint.to_string(),
        keybox: keyward_core::encoding::to_base64(&keybox_bytes),
        sealed: keyward_core::encoding::to_base64(&sealed),
    };
    let mut bytes = serde_json::to_vec_pretty(&file)
        .map_err(|_| CoreError::Internal("a backup that is not JSON"))?;
    bytes.push(b'\n');
    Ok(Zeroizing::new(bytes))
}

/// Reads a backup's keybox (without opening anything yet): format, version, the keybox in it.
pub fn read(bytes: &[u8]) -> BoxResult<(Keybox, Vec<u8>, i64, Vec<u8>)> {
    if bytes.len() > MAX_BYTES {
        return Err(damaged("larger than any backup"));
    }
    let file: BackupFile =
        serde_json::from_slice(bytes).map_err(|e| damaged(&format!("not a backup ({e})")))?;
    if file.format != FORMAT {
        return Err(invalid(format!("a `{}` file, not a `{FORMAT}`", file.format)));
    }
    if file.version != VERSION {
        return Err(invalid(format!(
            "version {} of `{FORMAT}`, and this keyward reads version {VERSION}; upgrade keyward",
            file.version
        )));
    }
    let keybox_bytes = keyward_core::encoding::from_base64(&file.keybox)
        .ok_or_else(|| damaged("the keybox is not base64"))?;
    let keybox = Keybox::parse(&keybox_bytes, Path::new("the backup's keybox"))?;
    let claimed: Fingerprint =
        file.fingerprint.parse().map_err(|_| damaged("the fingerprint is not one"))?;
    if claimed != keybox.header().fingerprint || file.keybox_id != keybox.header().id.to_string() {
        return Err(damaged("its fingerprint or id is not its keybox's"));
    }
    let sealed = keyward_core::encoding::from_base64(&file.sealed)
        .ok_or_else(|| damaged("the sealed part is not base64"))?;
    Ok((keybox, keybox_bytes, file.created, sealed))
}

/// Opens the sealed part of a backup read by [`read`] with `key` (from one of its keybox's
/// slots).
pub fn open(
    keybox: Keybox,
    keybox_bytes: Vec<u8>,
    created: i64,
    sealed: &[u8],
    key: &DataKey,
) -> BoxResult<Opened> {
    let plaintext = aead::open(
        &seal_key(key, &keybox.header().id.to_string()),
        &associated_data(created, &keybox_bytes),
        sealed,
    )
    .map_err(|_| damaged("its sealed part does not open with its keybox's key"))?;
    let side: SideFiles =
        serde_json::from_slice(&plaintext).map_err(|_| damaged("its sealed part is not JSON"))?;
    let mut side_files = Vec::new();
    for (suffix, text) in &side.files {
        if !SIDE_FILES.contains(&suffix.as_str()) {
            return Err(damaged("a file beside the keybox keyward does not keep"));
        }
        let bytes = keyward_core::encoding::from_base64(text)
            .ok_or_else(|| damaged("a file beside the keybox is not base64"))?;
        side_files.push((suffix.clone(), Zeroizing::new(bytes)));
    }
    Ok(Opened { keybox, keybox_bytes, created, side_files })
}

/// The files beside the keybox at `path` a restore would write over.
pub fn side_files_there(path: &Path) -> Vec<std::path::PathBuf> {
    SIDE_FILES.iter().map(|suffix| beside_keybox(path, "", suffix)).filter(|p| p.exists()).collect()
}

/// Writes an opened backup as the keybox at `path` and the files beside it: the files first,
/// each atomically (0600), the keybox last, atomically — over an existing keybox only when
/// `replace` (the caller checked it is the same key's).
pub fn restore(path: &Path, opened: &Opened, replace: bool) -> BoxResult {
    for (suffix, bytes) in &opened.side_files {
        write_secret_file(&RealFs, &beside_keybox(path, "", suffix), bytes, true)?;
    }
    write_secret_file(&RealFs, path, &opened.keybox_bytes, replace)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::keybox::NewKeybox;
    use keyward_core::slot::NewPlain;
    use keyward_core::{Store, operations};

    /// Every single-bit flip of a backup's sealed part, and of its keybox, is refused.
    #[test]
    fn a_backup_opens_with_its_key_and_no_changed_bit_does() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("keybox.json");
        let key = DataKey::generate(32).expect("rng");
        let store = Store::new(&RealFs, &path);
        operations::init(&store, NewKeybox::new(key.clone(), "b", None), &NewPlain).expect("init");
        std::fs::write(beside_keybox(&path, "", ".box-key"), b"identity").expect("side file");
        let keybox = store.load().expect("load");
        let bytes = make(&path, &keybox, &key, 1_800_000_000).expect("backup");
        let (kb, kb_bytes, created, sealed) = read(&bytes).expect("reads");
        let opened = open(kb, kb_bytes.clone(), created, &sealed, &key).expect("opens");
        assert_eq!(opened.side_files.len(), 1);
        assert_eq!(opened.side_files[0].1.as_slice(), b"identity");
        for i in 0..sealed.len() * 8 {
            let mut flipped = sealed.clone();
            flipped[i / 8] ^= 1 << (i % 8);
            let kb = Keybox::parse(&kb_bytes, Path::new("k")).expect("parse");
            assert!(open(kb, kb_bytes.clone(), created, &flipped, &key).is_err(), "bit {i}");
        }
        let other = DataKey::generate(32).expect("rng");
        let kb = Keybox::parse(&kb_bytes, Path::new("k")).expect("parse");
        assert!(open(kb, kb_bytes.clone(), created, &sealed, &other).is_err(), "another key");
        let kb = Keybox::parse(&kb_bytes, Path::new("k")).expect("parse");
        assert!(open(kb, kb_bytes, created + 1, &sealed, &key).is_err(), "another time");
    }
}
