//! A header backup sealed for the escrow hub (docs/formats/luks2-header-escrow.md), so a fresh
//! machine that recovered K can repair a damaged header too.
//!
//! Two things make it differ from the backup file it comes from:
//! - It is sealed under a key derived from K (XChaCha20-Poly1305). A header backup holds every
//!   keyslot, and a person's passphrase keyslot can be attacked offline; the hub, which must
//!   never be able to open a key, gets nothing it could attack.
//! - It keeps only the bytes that mean something: both metadata copies and each keyslot's area.
//!   cryptsetup fills the rest of the keyslots area with random bytes (so a 16 MiB default
//!   header backup does not compress), and nothing ever reads them; keeping only the meaningful
//!   bytes makes a default header's escrow about half a megabyte. Opening rebuilds a backup file
//!   that `cryptsetup luksHeaderRestore` takes, with fresh random bytes where the unused areas
//!   were.

use std::ops::Range;

use hkdf::Hkdf;
use keyward_core::{DataKey, Fingerprint, aead};
use serde_json::Value;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::backup::HeaderBackup;

/// The first bytes of a sealed header.
pub const MAGIC: &[u8; 8] = b"kwluks2h";
/// The format version written and read.
pub const VERSION: u8 = 1;
/// HKDF's salt for the sealing key.
const SALT: &[u8] = b"keyward luks2 header escrow v1";
/// The first part of HKDF's info.
const PURPOSE: &[u8] = b"keyward luks2 header backup";
/// A volume UUID's length in the label (the canonical form LUKS2 writes).
pub const UUID_LEN: usize = 36;
/// Where the key's fingerprint starts in the label: after the magic, the version and the UUID.
pub const FINGERPRINT_AT: usize = MAGIC.len() + 1 + UUID_LEN;
/// The label's length: the fingerprint and the seal's time follow the UUID.
pub const LABEL_LEN: usize = FINGERPRINT_AT + 32 + 8;
/// The largest header backup: two 4 MiB metadata areas and a 128 MiB keyslots area, LUKS2's
/// limits. A sealed header claiming more is refused before anything is allocated.
pub const MAX_BACKUP_BYTES: u64 = (2 * 4 + 128) << 20;
/// Most areas kept: both metadata copies and 32 keyslots.
pub const MAX_AREAS: usize = 1 + 32;
/// A LUKS2 binary header's size; each metadata copy is it and a JSON area.
const BINARY_HEADER_LEN: u64 = 4096;
/// Each area's offset and size, before its bytes.
const AREA_HEAD_LEN: usize = 16;
/// The backup's length and the number of areas, before the first area.
const CONTENTS_HEAD_LEN: usize = 12;

/// Why a header cannot be sealed or a sealed header cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum HeaderEscrowError {
    /// The backup's layout is not the one LUKS2 writes, so keyward cannot tell which bytes
    /// matter; nothing is sealed rather than a backup that might miss some.
    #[error(
        "the header's layout is not one keyward can escrow ({0}); keep a header backup file with `keyward luks header-backup --out FILE` instead"
    )]
    Layout(String),
    /// The bytes are not a sealed header of a version keyward reads.
    #[error("not a keyward sealed LUKS2 header ({0})")]
    Format(&'static str),
    /// It was sealed under another key than the one given.
    #[error(
        "the header backup was sealed under key {}, and this keybox opens key {}; recover the key that enrolled the volume first", .theirs.short(), .ours.short()
    )]
    OtherKey {
        /// The fingerprint it names.
        theirs: Fingerprint,
        /// The key given.
        ours: Fingerprint,
    },
    /// The sealed bytes (or what they name) were changed: it does not open under its key.
    #[error(
        "the sealed header backup is damaged or was tampered with: it does not open under its key"
    )]
    Damaged,
    /// What opened does not describe a backup file.
    #[error("the sealed header backup opens, but what it holds is not a header backup ({0})")]
    Contents(&'static str),
    /// Sealing failed (the system's random source, or the cipher).
    #[error("cannot seal or rebuild the header backup: {0}")]
    Sealing(keyward_core::Error),
}

impl HeaderEscrowError {
    /// Which kind of failure it is: a layout keyward cannot account for is refused (keep a
    /// backup file instead); damage is an integrity failure; another key, a mismatch.
    pub fn class(&self) -> keyward_core::ErrorClass {
        use keyward_core::ErrorClass;
        match self {
            HeaderEscrowError::Layout(_) => ErrorClass::Refused,
            HeaderEscrowError::Format(_)
            | HeaderEscrowError::Damaged
            | HeaderEscrowError::Contents(_) => ErrorClass::Integrity,
            HeaderEscrowError::OtherKey { .. } => ErrorClass::FingerprintMismatch,
            HeaderEscrowError::Sealing(_) => ErrorClass::Internal,
        }
    }
}

/// What the outside of a sealed header says (readable without the key, and vouched for by the
/// seal once it opens).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedHeaderLabel {
    /// The volume's UUID.
    pub uuid: String,
    /// The fingerprint of the key it is sealed under.
    pub fingerprint: Fingerprint,
    /// When it was sealed (Unix seconds, the sealing machine's clock): a hub that serves an
    /// older copy of the same volume cannot hide that it is older.
    pub sealed_at: u64,
}

/// A header backup rebuilt from a sealed header: a file cryptsetup restores.
pub struct OpenedHeader {
    /// What its label says.
    pub label: SealedHeaderLabel,
    /// The backup file's bytes.
    pub bytes: Zeroizing<Vec<u8>>,
}

/// The sealing key of the volume `uuid`: HKDF-SHA256 of K, info = purpose ‖ 0 ‖ uuid.
fn sealing_key(key: &DataKey, uuid: &str) -> Zeroizing<[u8; 32]> {
    let mut info = Vec::with_capacity(PURPOSE.len() + 1 + uuid.len());
    info.extend_from_slice(PURPOSE);
    info.push(0);
    info.extend_from_slice(uuid.as_bytes());
    let mut out = Zeroizing::new([0u8; 32]);
    // Expanding 32 bytes from HKDF-SHA256 cannot fail (the limit is 255 × 32).
    let _ = Hkdf::<Sha256>::new(Some(SALT), key.expose()).expand(&info, out.as_mut());
    out
}

/// The label's bytes: magic ‖ version ‖ uuid ‖ fingerprint ‖ sealed_at. Also the AEAD's
/// associated data, so none of it can be changed without the seal failing.
fn label_bytes(label: &SealedHeaderLabel) -> Vec<u8> {
    let mut out = Vec::with_capacity(LABEL_LEN);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(label.uuid.as_bytes());
    out.extend_from_slice(label.fingerprint.as_bytes());
    out.extend_from_slice(&label.sealed_at.to_be_bytes());
    out
}

/// A number of the header's JSON metadata (LUKS2 writes sizes and offsets as decimal strings).
fn json_number(value: Option<&Value>, what: &str) -> Result<u64, HeaderEscrowError> {
    value
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| HeaderEscrowError::Layout(format!("no {what}")))
}

/// The byte ranges of a header backup of `len` bytes that mean something, by its JSON
/// `metadata`: both metadata copies (each a binary header and a JSON area), then each keyslot's
/// area, in order. Everything else of the keyslots area is unused.
pub fn used_areas(metadata: &Value, len: u64) -> Result<Vec<Range<u64>>, HeaderEscrowError> {
    let config = metadata.get("config");
    let json_size = json_number(config.and_then(|c| c.get("json_size")), "config.json_size")?;
    let keyslots_size =
        json_number(config.and_then(|c| c.get("keyslots_size")), "config.keyslots_size")?;
    let metadata_end = json_size
        .checked_add(BINARY_HEADER_LEN)
        .and_then(|m| m.checked_mul(2))
        .ok_or_else(|| HeaderEscrowError::Layout("a metadata size too large".into()))?;
    if metadata_end.checked_add(keyslots_size) != Some(len) {
        return Err(HeaderEscrowError::Layout(format!(
            "a {len}-byte backup of a header with {metadata_end} bytes of metadata and a {keyslots_size}-byte keyslots area"
        )));
    }
    let keyslots = metadata.get("keyslots").and_then(Value::as_object);
    let keyslots = keyslots.ok_or_else(|| HeaderEscrowError::Layout("no keyslots".into()))?;
    if keyslots.len() > MAX_AREAS - 1 {
        return Err(HeaderEscrowError::Layout(format!("{} keyslots", keyslots.len())));
    }
    let mut slots = Vec::new();
    for (id, keyslot) in keyslots {
        let area = keyslot.get("area");
        let offset = json_number(area.and_then(|a| a.get("offset")), "keyslot area offset")?;
        let size = json_number(area.and_then(|a| a.get("size")), "keyslot area size")?;
        let end = offset.checked_add(size).filter(|&end| offset >= metadata_end && end <= len);
        let Some(end) = end else {
            return Err(HeaderEscrowError::Layout(format!(
                "keyslot {id}'s area lies outside the keyslots area"
            )));
        };
        slots.push(offset..end);
    }
    slots.sort_by_key(|r| r.start);
    if slots.windows(2).any(|pair| pair[0].end > pair[1].start) {
        return Err(HeaderEscrowError::Layout("two keyslot areas overlap".into()));
    }
    let keyslot_areas = slots.into_iter().filter(|r| !r.is_empty());
    Ok(std::iter::once(0..metadata_end).chain(keyslot_areas).collect())
}

/// The domain of a header's state digest.
const STATE_DOMAIN: &[u8] = b"keyward luks2 header state v1";

/// A header's state: SHA-256 over [`STATE_DOMAIN`] ‖ 0 ‖ its JSON `metadata` written with
/// every object's keys in order (so the same metadata gives the same state however it was read),
/// in hex. Pushed beside a sealed copy, so the box can tell later whether the hub's
/// copy is its volume's header as it is now — any keyslot or token added, changed or removed
/// since (by keyward or by hand) changes it. It tells the hub nothing the header does not: the
/// metadata holds each keyslot's random salt, so it cannot be guessed without the header.
pub fn header_state(metadata: &Value) -> String {
    let mut hash = Sha256::new();
    hash.update(STATE_DOMAIN);
    hash.update([0u8]);
    hash.update(serde_json::to_vec(&sorted(metadata)).unwrap_or_default());
    keyward_core::encoding::to_hex(&hash.finalize())
}

/// `value` with every object's keys in order.
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(fields) => {
            let mut keys: Vec<&String> = fields.keys().collect();
            keys.sort();
            Value::Object(keys.into_iter().map(|k| (k.clone(), sorted(&fields[k]))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// Seals `backup` under a key derived from `key`, labelled as sealed at `sealed_at` (Unix
/// seconds): the label, then nonce ‖ ciphertext ‖ tag of the backup's length and its used
/// areas.
pub fn seal(
    key: &DataKey,
    backup: &HeaderBackup,
    sealed_at: u64,
) -> Result<Vec<u8>, HeaderEscrowError> {
    if !keyward_core::encoding::is_canonical_uuid(&backup.uuid) {
        return Err(HeaderEscrowError::Layout("a UUID that is not in canonical form".into()));
    }
    let len = u64::try_from(backup.bytes.len()).unwrap_or(u64::MAX);
    if len > MAX_BACKUP_BYTES {
        return Err(HeaderEscrowError::Layout(format!(
            "a backup larger than {MAX_BACKUP_BYTES} bytes"
        )));
    }
    let areas = used_areas(&backup.metadata, len)?;
    // Both ends of every area are within `len`, the length of `bytes` (used_areas checks).
    let areas: Vec<Range<usize>> =
        areas.into_iter().map(|r| r.start as usize..r.end as usize).collect();
    // Sized once: a growing buffer would leave copies of keyslot areas in freed memory.
    let size = CONTENTS_HEAD_LEN + areas.iter().map(|r| AREA_HEAD_LEN + r.len()).sum::<usize>();
    let mut plain = Zeroizing::new(Vec::with_capacity(size));
    plain.extend_from_slice(&len.to_be_bytes());
    // At most MAX_AREAS: one metadata range and one per keyslot (used_areas checks).
    plain.extend_from_slice(&(areas.len() as u32).to_be_bytes());
    for area in &areas {
        plain.extend_from_slice(&(area.start as u64).to_be_bytes());
        plain.extend_from_slice(&(area.len() as u64).to_be_bytes());
        plain.extend_from_slice(&backup.bytes[area.clone()]);
    }
    let label =
        SealedHeaderLabel { uuid: backup.uuid.clone(), fingerprint: key.fingerprint(), sealed_at };
    let mut sealed = label_bytes(&label);
    let ciphertext = aead::seal(&sealing_key(key, &label.uuid), &sealed, &plain)
        .map_err(HeaderEscrowError::Sealing)?;
    sealed.extend_from_slice(&ciphertext);
    Ok(sealed)
}

/// Reads the label of a sealed header (the sealed part follows it, from [`LABEL_LEN`]).
pub fn label(sealed: &[u8]) -> Result<SealedHeaderLabel, HeaderEscrowError> {
    let format = HeaderEscrowError::Format;
    let rest = sealed.strip_prefix(MAGIC.as_slice()).ok_or(format("no keyward magic"))?;
    let (&version, mut rest) = rest.split_first().ok_or(format("it ends early"))?;
    if version != VERSION {
        return Err(format("a version this keyward does not read; update keyward"));
    }
    let uuid = take::<UUID_LEN>(&mut rest).ok_or(format("it ends early"))?;
    let fingerprint = take::<32>(&mut rest).ok_or(format("it ends early"))?;
    let sealed_at = take_u64(&mut rest).ok_or(format("it ends early"))?;
    let uuid = std::str::from_utf8(&uuid)
        .ok()
        .filter(|u| keyward_core::encoding::is_canonical_uuid(u))
        .ok_or(format("a UUID that is not one"))?;
    Ok(SealedHeaderLabel {
        uuid: uuid.into(),
        fingerprint: Fingerprint::from_bytes(fingerprint),
        sealed_at,
    })
}

/// Opens a sealed header with `key` and rebuilds the backup file: the areas it kept where they
/// were, fresh random bytes in between.
pub fn open(key: &DataKey, sealed: &[u8]) -> Result<OpenedHeader, HeaderEscrowError> {
    let label = label(sealed)?;
    let ours = key.fingerprint();
    if label.fingerprint != ours {
        return Err(HeaderEscrowError::OtherKey { theirs: label.fingerprint, ours });
    }
    let (associated, ciphertext) = sealed.split_at(LABEL_LEN);
    let plain = aead::open(&sealing_key(key, &label.uuid), associated, ciphertext)
        .map_err(|_| HeaderEscrowError::Damaged)?;
    let bytes = rebuild(&plain)?;
    Ok(OpenedHeader { label, bytes })
}

/// The first `N` bytes of `input`, which then starts after them.
fn take<const N: usize>(input: &mut &[u8]) -> Option<[u8; N]> {
    let (head, rest) = input.split_first_chunk::<N>()?;
    *input = rest;
    Some(*head)
}

/// A big-endian u64 from the front of `input`.
fn take_u64(input: &mut &[u8]) -> Option<u64> {
    take::<8>(input).map(u64::from_be_bytes)
}

/// The backup file the opened contents describe (public for the fuzz target; [`open`] is
/// what reads a sealed header). The areas are all checked before the file is allocated.
pub fn rebuild(plain: &[u8]) -> Result<Zeroizing<Vec<u8>>, HeaderEscrowError> {
    let contents = HeaderEscrowError::Contents;
    let mut input = plain;
    let len = take_u64(&mut input).ok_or(contents("it ends early"))?;
    let count = take::<4>(&mut input).map(u32::from_be_bytes).ok_or(contents("it ends early"))?;
    if len > MAX_BACKUP_BYTES {
        return Err(contents("a backup larger than LUKS2 headers are"));
    }
    if count == 0 || usize::try_from(count).unwrap_or(usize::MAX) > MAX_AREAS {
        return Err(contents("a number of areas LUKS2 does not have"));
    }
    // `len` is at most MAX_BACKUP_BYTES, which fits any usize keyward builds for.
    let len = usize::try_from(len).map_err(|_| contents("a backup larger than memory"))?;
    let mut areas: Vec<(Range<usize>, &[u8])> = Vec::with_capacity(MAX_AREAS);
    let mut next_free = 0usize;
    for _ in 0..count {
        let offset = take_u64(&mut input).ok_or(contents("it ends early"))?;
        let size = take_u64(&mut input).ok_or(contents("it ends early"))?;
        let range = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(size).ok())
            .and_then(|(start, size)| Some(start..start.checked_add(size)?))
            .filter(|r| r.start >= next_free && r.end <= len && !r.is_empty())
            .ok_or(contents("areas out of order, overlapping or outside the backup"))?;
        if input.len() < range.len() {
            return Err(contents("it ends early"));
        }
        let (area, rest) = input.split_at(range.len());
        input = rest;
        next_free = range.end;
        areas.push((range, area));
    }
    if !input.is_empty() {
        return Err(contents("bytes after the last area"));
    }
    let mut bytes = keyward_core::random::secret_bytes(len).map_err(HeaderEscrowError::Sealing)?;
    for (range, area) in areas {
        bytes[range].copy_from_slice(area);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn key(byte: u8) -> DataKey {
        DataKey::import(Zeroizing::new(vec![byte; 32])).expect("a 32-byte key")
    }

    /// A backup of 4 × 4096 bytes of metadata (json_size 4096) and a 16 KiB keyslots area with
    /// keyslot 0 at its start (4 KiB) and keyslot 3 at its end (4 KiB).
    fn backup() -> HeaderBackup {
        let len = 2 * 8192 + 16384;
        let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let metadata = json!({
            "config": {"json_size": "4096", "keyslots_size": "16384"},
            "keyslots": {
                "0": {"area": {"offset": "16384", "size": "4096"}},
                "3": {"area": {"offset": "28672", "size": "4096"}},
            },
        });
        HeaderBackup {
            uuid: "0b6c7a3e-1f2d-4c5b-9a8e-7d6c5b4a3f21".into(),
            sha256: [0; 32],
            bytes: Zeroizing::new(bytes),
            pair: None,
            metadata,
        }
    }

    fn kept(backup: &HeaderBackup, bytes: &[u8]) -> bool {
        let areas = used_areas(&backup.metadata, backup.bytes.len() as u64).expect("areas");
        bytes.len() == backup.bytes.len()
            && areas.iter().all(|r| {
                let (s, e) = (r.start as usize, r.end as usize);
                bytes[s..e] == backup.bytes[s..e]
            })
    }

    #[test]
    fn it_keeps_the_metadata_and_every_keyslot_area_and_nothing_else() {
        let b = backup();
        let areas = used_areas(&b.metadata, b.bytes.len() as u64).expect("areas");
        assert_eq!(areas, vec![0..16384, 16384..20480, 28672..32768]);
        let sealed = seal(&key(1), &b, 1_800_000_000).expect("seal");
        assert!(sealed.len() < b.bytes.len(), "the unused area is left out");
        let opened = open(&key(1), &sealed).expect("open");
        assert_eq!(opened.label.uuid, b.uuid);
        assert_eq!(opened.label.sealed_at, 1_800_000_000);
        assert!(kept(&b, &opened.bytes));
        // The unused area is fresh random bytes, not what was there.
        assert_ne!(opened.bytes[20480..28672], b.bytes[20480..28672]);
    }

    #[test]
    fn another_key_is_named_and_every_bit_flip_is_refused() {
        let sealed = seal(&key(1), &backup(), 1_800_000_000).expect("seal");
        assert!(matches!(open(&key(2), &sealed), Err(HeaderEscrowError::OtherKey { .. })));
        // Every bit of the label and the nonce; one bit of every byte after them (each AEAD
        // open of the whole backup costs; keyward_core::aead's own test flips every bit).
        for i in 0..sealed.len() {
            let bits = if i < 128 { 0..8 } else { i % 8..i % 8 + 1 };
            for bit in bits {
                let mut bad = sealed.clone();
                bad[i] ^= 1 << bit;
                assert!(open(&key(1), &bad).is_err(), "flip of bit {bit} of byte {i} must fail");
            }
        }
    }

    #[test]
    fn a_layout_it_cannot_account_for_is_not_sealed() {
        let mut b = backup();
        b.metadata["keyslots"]["3"]["area"]["offset"] = json!("30000");
        assert!(matches!(seal(&key(1), &b, 1_800_000_000), Err(HeaderEscrowError::Layout(_))));
        let mut b = backup();
        b.metadata["keyslots"]["0"]["area"]["offset"] = json!("8192");
        assert!(matches!(seal(&key(1), &b, 1_800_000_000), Err(HeaderEscrowError::Layout(_))));
        let mut b = backup();
        b.metadata["keyslots"]["0"]["area"]["size"] = json!("16384");
        assert!(matches!(seal(&key(1), &b, 1_800_000_000), Err(HeaderEscrowError::Layout(_))));
        // 33 keyslots: more than LUKS2 has.
        let mut b = backup();
        for id in 4..35 {
            b.metadata["keyslots"][id.to_string()] =
                json!({"area": {"offset": "32768", "size": "0"}});
        }
        assert!(matches!(seal(&key(1), &b, 1_800_000_000), Err(HeaderEscrowError::Layout(_))));
        let mut b = backup();
        b.metadata["config"]["keyslots_size"] = json!("8192");
        assert!(matches!(seal(&key(1), &b, 1_800_000_000), Err(HeaderEscrowError::Layout(_))));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_open_or_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            prop_assert!(open(&key(1), &bytes).is_err());
            let _ = label(&bytes);
        }

        #[test]
        fn arbitrary_contents_never_panic(plain in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = rebuild(&plain);
        }
    }
}
