//! The keybox file, version 1, as serde types (docs/format.md is the specification).
//!
//! The file is the pretty-printed JSON of [`KeyboxFile`] plus a newline, and nothing else: a file
//! that parses but is not byte-for-byte what keyward would write is refused, so every bit of it is
//! covered by a check (JSON syntax, canonical form, checksum, header MAC, slot AEAD).

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::encoding::{self, base64_bytes};
use crate::error::{Error, IntegrityFailure, Result};
use crate::fingerprint::Fingerprint;
use crate::secret::{MAX_KEY_LEN, MIN_KEY_LEN};
use crate::slot::{Slot, SlotId, SlotParams};

use super::KeyboxId;

/// The `format` field of every keybox.
pub const FORMAT_NAME: &str = "keyward-keybox";
/// The format version this code writes and reads.
pub const FORMAT_VERSION: u64 = 1;
/// No keybox keyward writes comes near this; anything larger is refused before parsing.
pub const MAX_KEYBOX_BYTES: u64 = 1024 * 1024;
/// Most slots a keybox may hold.
pub const MAX_SLOTS: usize = 64;
/// Most tokens a keybox may hold.
pub const MAX_TOKENS: usize = 64;
/// Most KDF work all of a keybox's slots may ask for together: an unlock may try every slot of
/// one kind, so a file full of costly slots could otherwise stall it for minutes.
pub const MAX_TOTAL_WORK_KIB: u64 = 4 * crate::kdf::MAX_WORK_KIB;

/// Everything the header MAC covers: all of the keybox but the MAC and the checksum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyboxHeader {
    /// Random id; bound into every slot's associated data.
    pub id: KeyboxId,
    /// A name for people.
    pub label: String,
    /// When the keybox was made (RFC 3339, UTC).
    pub created: String,
    /// Incremented by every commit; the compare-and-swap value.
    pub generation: u64,
    /// The id the next new slot gets; ids are never reused.
    pub next_slot_id: u32,
    /// Length of K in bytes.
    pub key_length: u32,
    /// K's fingerprint.
    pub fingerprint: Fingerprint,
    /// The slots, in id order.
    pub slots: Vec<SlotRecord>,
    /// Metadata bound to slots.
    pub tokens: Vec<TokenRecord>,
    /// For a key imported from a Proxmox Backup key file: what keyward-pbs needs to write it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pbs: Option<PbsRecord>,
}

/// The Proxmox Backup facts of a key that came from (or will go back to) a PBS key file. The
/// fingerprint is computed by keyward-pbs at import; like the whole header, it is covered by the
/// header MAC, and it is checked against K again whenever a PBS key file is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PbsRecord {
    /// The PBS fingerprint of K (`proxmox-backup-client key show`).
    pub fingerprint: Fingerprint,
    /// The key file's `created` field, exactly as it was, so an exported file keeps it.
    pub created: String,
}

/// One slot: K wrapped under the slot's KEK.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotRecord {
    /// The slot's id.
    pub id: SlotId,
    /// A name for people; unique within the keybox.
    pub label: String,
    /// When the slot was made or last rotated (RFC 3339, UTC).
    pub created: String,
    /// Kind and parameters.
    pub protection: SlotParams,
    /// nonce ‖ XChaCha20-Poly1305(KEK, K, binding) ‖ tag.
    #[serde(with = "base64_bytes")]
    pub wrapped_key: Vec<u8>,
}

/// Free metadata bound to one slot (like a LUKS2 token); removed with its slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRecord {
    /// The slot it belongs to.
    pub slot: SlotId,
    /// What kind of token (`luks2-backup`, …); chosen by whoever writes it.
    #[serde(rename = "type")]
    pub token_type: String,
    /// Any JSON value.
    pub content: serde_json::Value,
}

/// The whole file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyboxFile {
    format: String,
    version: u64,
    keybox: KeyboxHeader,
    #[serde(with = "base64_bytes")]
    mac: Vec<u8>,
    checksum: String,
}

/// What the MAC is computed over: compact JSON of this.
#[derive(Serialize)]
struct MacInput<'a> {
    format: &'a str,
    version: u64,
    keybox: &'a KeyboxHeader,
}

/// What the checksum is computed over: compact JSON of this.
#[derive(Serialize)]
struct ChecksumInput<'a> {
    format: &'a str,
    version: u64,
    keybox: &'a KeyboxHeader,
    #[serde(with = "base64_bytes")]
    mac: &'a [u8],
}

/// The bytes the header MAC is computed over.
pub fn mac_input(header: &KeyboxHeader) -> Vec<u8> {
    // Serializing plain structs of strings and integers cannot fail.
    serde_json::to_vec(&MacInput { format: FORMAT_NAME, version: FORMAT_VERSION, keybox: header })
        .unwrap_or_default()
}

fn checksum(header: &KeyboxHeader, mac: &[u8]) -> String {
    let input = ChecksumInput { format: FORMAT_NAME, version: FORMAT_VERSION, keybox: header, mac };
    encoding::to_hex(&Sha256::digest(serde_json::to_vec(&input).unwrap_or_default()))
}

/// Writes the file bytes for a header and its MAC.
pub fn encode(header: &KeyboxHeader, mac: &[u8; 32]) -> Vec<u8> {
    let file = KeyboxFile {
        format: FORMAT_NAME.into(),
        version: FORMAT_VERSION,
        keybox: header.clone(),
        mac: mac.to_vec(),
        checksum: checksum(header, mac),
    };
    let mut bytes = serde_json::to_vec_pretty(&file).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// Reads file bytes: size, JSON shape, version, checksum, canonical form, structure. The header
/// MAC needs K and is checked by the unlock.
pub fn decode(bytes: &[u8], path: &Path) -> Result<(KeyboxHeader, [u8; 32], ReadSlots)> {
    let fail = |what: IntegrityFailure| Error::Integrity { path: path.to_path_buf(), what };
    let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if len > MAX_KEYBOX_BYTES {
        return Err(fail(IntegrityFailure::TooLarge(len)));
    }

    // Look at the format and version first, so a newer file gets "upgrade", not a parse error.
    #[derive(Deserialize)]
    struct Probe {
        format: Option<String>,
        version: Option<u64>,
    }
    let probe: Probe = serde_json::from_slice(bytes)
        .map_err(|e| fail(IntegrityFailure::Malformed(format!("not JSON ({e})"))))?;
    if probe.format.as_deref() != Some(FORMAT_NAME) {
        return Err(fail(IntegrityFailure::Malformed("no `format: keyward-keybox` field".into())));
    }
    match probe.version {
        Some(FORMAT_VERSION) => {}
        Some(v) => return Err(fail(IntegrityFailure::UnsupportedVersion(v))),
        None => {
            return Err(fail(IntegrityFailure::Malformed("no `version` field".into())));
        }
    }

    let file: KeyboxFile = serde_json::from_slice(bytes)
        .map_err(|e| fail(IntegrityFailure::Malformed(e.to_string())))?;
    let mac: [u8; 32] = file
        .mac
        .as_slice()
        .try_into()
        .map_err(|_| fail(IntegrityFailure::Malformed("the MAC is not 32 bytes".into())))?;
    if checksum(&file.keybox, &mac) != file.checksum {
        return Err(fail(IntegrityFailure::Checksum));
    }
    if encode(&file.keybox, &mac) != bytes {
        return Err(fail(IntegrityFailure::NotCanonical));
    }
    let slots = check_structure(&file.keybox).map_err(fail)?;
    Ok((file.keybox, mac, slots))
}

/// Longest slot kind name.
const MAX_KIND_NAME: usize = 32;

/// A kind's name is short lower-case ASCII, digits and `-`: it is shown in `list` and messages,
/// so a kind this build does not know cannot carry control characters onto a terminal.
fn check_kind_name(params: &SlotParams) -> Result<(), IntegrityFailure> {
    let name = params.kind.as_str();
    let well_formed = !name.is_empty()
        && name.len() <= MAX_KIND_NAME
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if well_formed {
        Ok(())
    } else {
        Err(IntegrityFailure::Inconsistent("a slot kind name is not lower-case ASCII".into()))
    }
}

/// Each slot as its kind read it, in the header's order; `None` for a kind this build does not
/// know.
pub type ReadSlots = Vec<Option<Arc<dyn Slot>>>;

/// Structural rules every keybox obeys; also run on what we are about to write. Gives the slots
/// as their kinds read them.
pub fn check_structure(header: &KeyboxHeader) -> Result<ReadSlots, IntegrityFailure> {
    let bad = |what: &str| Err(IntegrityFailure::Inconsistent(what.to_string()));
    let key_len = usize::try_from(header.key_length).unwrap_or(usize::MAX);
    if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&key_len) {
        return bad("key length out of range");
    }
    if header.slots.is_empty() {
        return bad("the keybox has no slots");
    }
    if header.slots.len() > MAX_SLOTS || header.tokens.len() > MAX_TOKENS {
        return bad("too many slots or tokens");
    }
    if !header.slots.windows(2).all(|w| w[0].id < w[1].id) {
        return bad("slot ids are not unique and ascending");
    }
    if header.slots.iter().any(|s| s.id.0 >= header.next_slot_id) {
        return bad("a slot id is not below next_slot_id");
    }
    for (i, slot) in header.slots.iter().enumerate() {
        if header.slots[..i].iter().any(|other| other.label == slot.label) {
            return bad("two slots have the same label");
        }
        if slot.wrapped_key.len() != crate::aead::NONCE_LEN + key_len + crate::aead::TAG_LEN {
            return bad("a wrapped key has the wrong length");
        }
    }
    // Each slot's parameters through its kind (bounds, canonical form); a kind this build does
    // not know is carried as it is, under the header MAC, and never opened.
    let mut total_work = 0u64;
    let mut read_slots = Vec::with_capacity(header.slots.len());
    for slot in &header.slots {
        check_kind_name(&slot.protection)?;
        let read: Option<Arc<dyn Slot>> = slot.protection.read()?.map(Arc::from);
        if let Some(read) = &read {
            total_work = total_work.saturating_add(read.kdf_work_kib());
        }
        read_slots.push(read);
    }
    if total_work > MAX_TOTAL_WORK_KIB {
        return Err(IntegrityFailure::KdfOutOfBounds(format!(
            "the slots together ask for {total_work} KiB of KDF work (at most {MAX_TOTAL_WORK_KIB})"
        )));
    }
    if header.tokens.iter().any(|t| !header.slots.iter().any(|s| s.id == t.slot)) {
        return bad("a token belongs to no slot");
    }
    Ok(read_slots)
}
