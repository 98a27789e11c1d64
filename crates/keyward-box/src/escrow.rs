//! What a box sends its hub: the escrow blob and the restore directive. The blob's form follows
//! the key: a Proxmox Backup key goes as a PBS-native key file sealed with scrypt under the
//! recovery code (so a fresh machine needs only Proxmox's own tools and the code), any other
//! key as a keyward escrow blob (the keybox's recovery-code slot standing alone). Every blob is
//! made from a keybox that was opened first, so its header MAC has vouched for the slot
//! escrowed: a slot spliced in from an old copy of the file is never sent.

use std::path::Path;

use keyward_core::keybox::{PbsRecord, UnlockedKeybox};
use keyward_core::{
    DataKey, Error as CoreError, Fingerprint, Keybox, RecoveryCode, SlotId, Unlocker,
};
use keyward_hub::api::{
    EscrowCopy, HeaderPushRequest, HeaderPushResponse, HeaderSummary, PushRequest, PushResponse,
    StatusResponse,
};
use keyward_hub::client::Hubs;
use keyward_pbs::{KEY_LEN, PbsKeyFile, PbsTime, pbs_fingerprint};
use keyward_service::SigningIdentity;
use serde_json::{Map, Value, json};

use crate::config::{self, BoxFiles, Enrollment};
use crate::error::{BoxError, BoxResult, invalid};
use crate::runtime::block_on;
use crate::secrets::SecretFiles;

/// What a box enrolled at hubs works with: its enrollment, the identity it signs with, and
/// clients for its hubs.
pub type Enrolled = (Enrollment, SigningIdentity, Hubs);

/// Loads the box's enrollment (`<keybox>.hub.json`), its identity, and clients for its hubs.
pub fn load_enrollment(keybox: &Path, files: &SecretFiles) -> BoxResult<Enrolled> {
    let paths = BoxFiles::beside(keybox);
    let enrollment: Enrollment = config::read(&paths.enrollment)?;
    let identity = files.identity(&paths.identity)?;
    let hubs = Hubs::new(&enrollment.hubs)?;
    Ok((enrollment, identity, hubs))
}

/// The box's enrollment as [`load_enrollment`] reads it, or `None` when the box is enrolled at
/// no hub (no `<keybox>.hub.json`).
pub fn enrollment_if_any(keybox: &Path, files: &SecretFiles) -> BoxResult<Option<Enrolled>> {
    if !BoxFiles::beside(keybox).enrollment.exists() {
        return Ok(None);
    }
    load_enrollment(keybox, files).map(Some)
}

/// The form of a keybox's escrow blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobForm {
    /// A Proxmox Backup key file, scrypt under the recovery code (`pbs-key-file`).
    PbsKeyFile,
    /// A keyward escrow blob (`keyward-escrow-blob`).
    KeywardBlob,
}

impl BlobForm {
    /// The form this keybox's key is escrowed in: PBS-native for a Proxmox Backup key.
    pub fn of(keybox: &Keybox) -> Self {
        match keybox.header().pbs {
            Some(_) => BlobForm::PbsKeyFile,
            None => BlobForm::KeywardBlob,
        }
    }

    /// Its name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            BlobForm::PbsKeyFile => "pbs-key-file",
            BlobForm::KeywardBlob => "keyward-escrow-blob",
        }
    }
}

/// A blob ready to push: its form, bytes, and the fingerprint a recovered key must have.
#[derive(Debug)]
pub struct EscrowBlobToPush {
    /// Its form.
    pub form: BlobForm,
    /// Its bytes (opaque to the hub).
    pub bytes: Vec<u8>,
    /// keyward's fingerprint, or PBS's for a PBS key file.
    pub fingerprint: String,
    /// keyward's fingerprint, when `fingerprint` is PBS's: the hub keeps both, so an approval
    /// may name either.
    pub key_fingerprint: Option<String>,
}

/// Checks a key before any PBS file is made of it, and returns its PBS fingerprint: it must be
/// 32 bytes, and its PBS fingerprint must be the one the keybox recorded at import (it always
/// is unless something is badly wrong; then nothing is written).
pub fn check_exportable(key: &DataKey, record: Option<&PbsRecord>) -> BoxResult<Fingerprint> {
    let len = key.expose().len();
    if len != KEY_LEN {
        return Err(invalid(format!(
            "this key is {len} bytes; a Proxmox Backup key is {KEY_LEN}, so it cannot be written as a PBS key file"
        )));
    }
    let found = pbs_fingerprint(key.expose());
    match record {
        Some(record) if record.fingerprint != found => Err(CoreError::FingerprintMismatch {
            expected: record.fingerprint.to_string(),
            found: found.to_string(),
        }
        .into()),
        _ => Ok(found),
    }
}

/// The PBS-native blob of this keybox's key, under `code`, which must open one of its
/// recovery-code slots — so the keybox is opened and its header MAC checked, and a blob under a
/// code nobody holds is never made. `created` is the key file's creation time. Returns the
/// blob, the key's PBS fingerprint and the slot the code opened.
pub fn pbs_blob(
    keybox: &Keybox,
    path: &std::path::Path,
    code: &RecoveryCode,
    created: PbsTime,
    now: PbsTime,
) -> BoxResult<(PbsKeyFile, Fingerprint, SlotId)> {
    let unlocked = keybox.unlock(&Unlocker::RecoveryCode(code), None, path)?;
    let fp = check_exportable(unlocked.key(), keybox.header().pbs.as_ref())?;
    let blob = keyward_pbs::escrow::seal(unlocked.key(), code, created, now)
        .map_err(|source| BoxError::Pbs { path: "the escrow blob".into(), source })?;
    Ok((blob, fp, unlocked.opened_by()))
}

impl EscrowBlobToPush {
    /// The PBS-native blob (see [`pbs_blob`]) as a push: its key's PBS fingerprint, and
    /// keyward's (`key`).
    pub fn pbs(blob: &PbsKeyFile, fingerprint: &Fingerprint, key: &Fingerprint) -> Self {
        EscrowBlobToPush {
            form: BlobForm::PbsKeyFile,
            bytes: blob.to_bytes().to_vec(),
            fingerprint: fingerprint.to_string(),
            key_fingerprint: Some(key.to_string()),
        }
    }

    /// The keyward blob of an opened keybox (its recovery-code slot).
    pub fn keyward(opened: &UnlockedKeybox) -> BoxResult<Self> {
        let blob = keyward_core::escrow::EscrowBlob::from_keybox(opened, None)?;
        Ok(EscrowBlobToPush {
            form: BlobForm::KeywardBlob,
            bytes: blob.to_bytes(),
            fingerprint: opened.key().fingerprint().to_string(),
            key_fingerprint: None,
        })
    }
}

/// The operator's statement a box enrolls at a hub with.
#[derive(Debug, Clone, Copy)]
pub enum Admission<'a> {
    /// An enrollment token: a name new at the hub.
    Token(&'a str),
    /// A takeover: an enrolled name moves to this machine's identity.
    Takeover(&'a str),
}

/// A box enrolled at a hub.
#[derive(Debug)]
pub struct HubEnrolled {
    /// The enrollment written beside the keybox.
    pub enrollment: Enrollment,
    /// The box's identity, as the hub now knows it.
    pub identity: keyward_service::PublicKey,
}

/// Enrolls the box of the keybox at `keybox` at its hubs (`enrollment` says which, and under
/// what name; they share one database, so the first that answers enrolls it at all) and writes the enrollment beside the keybox. The box's identity
/// is the one it has, or a new one for an enrollment token; a takeover must name the identity
/// the box has. An identity made here is removed again when the hub refuses.
pub fn enroll(
    files: &crate::secrets::SecretFiles,
    keybox: &std::path::Path,
    hubs: &Hubs,
    enrollment: Enrollment,
    admission: Admission<'_>,
) -> BoxResult<HubEnrolled> {
    let paths = crate::config::BoxFiles::beside(keybox);
    if paths.enrollment.exists() {
        return Err(CoreError::OutputExists(paths.enrollment).into());
    }
    let (identity, made_now, text) = match admission {
        Admission::Token(text) => {
            let (identity, made_now) = crate::identity::read_or_new(files, keybox)?;
            (identity, made_now, text)
        }
        Admission::Takeover(text) => {
            (crate::identity::for_takeover(files, keybox, text, &enrollment.box_name)?, false, text)
        }
    };
    let public = identity.public();
    let enrolled = block_on(
        hubs.first_answer(async |hub| hub.enroll(&enrollment.box_name, public, text).await),
    );
    if let Err(e) = enrolled {
        // Only when no hub can have taken it: a name bound to a deleted key needs a takeover.
        if made_now && matches!(&e, BoxError::Remote(remote) if remote.changed_nothing()) {
            let _ = std::fs::remove_file(&paths.identity);
        }
        return Err(e);
    }
    crate::config::write(&paths.enrollment, &enrollment)?;
    Ok(HubEnrolled { enrollment, identity: identity.public() })
}

/// Pushes `blob` with `directive` (to which the fingerprint is added, so the fresh machine
/// checks it too) as the enrolled box of the keybox at `keybox`, checks the hub's answer names
/// this blob's hash, and notes the version beside the keybox ([`crate::config::Pushed`]).
pub fn push(
    keybox: &std::path::Path,
    hubs: &Hubs,
    enrollment: &Enrollment,
    identity: &SigningIdentity,
    blob: &EscrowBlobToPush,
    mut directive: Map<String, Value>,
) -> BoxResult<PushResponse> {
    directive.insert("fingerprint".into(), json!(blob.fingerprint));
    let request = PushRequest {
        blob_format: blob.form.name().into(),
        blob: keyward_core::encoding::to_base64(&blob.bytes),
        fingerprint: blob.fingerprint.clone(),
        key_fingerprint: blob.key_fingerprint.clone(),
        directive: Value::Object(directive),
    };
    let expected = keyward_hub::api::blob_sha256(&blob.bytes);
    // A push retried at the next hub after the first took it is recognised there (the same
    // blob and directive are the same version), so it never becomes a second version.
    let answer = block_on(hubs.first_answer(async |hub| {
        let answer = hub.push(&enrollment.box_name, identity, &request).await?;
        match answer.blob_sha256 == expected {
            true => Ok(answer),
            false => Err(hub.bad_answer("a blob hash other than the blob's")),
        }
    }))?;
    // Noted for the drill, which checks that the hub serves this very blob as this version. The
    // push is done whether or not the note can be written.
    if let Err(e) = crate::config::Pushed::note(keybox, answer.version, &answer.blob_sha256) {
        crate::unlock::warn_on_stderr(&format!("cannot note the push beside the keybox ({e})"));
    }
    Ok(answer)
}

/// A volume's LUKS2 header backup sealed for the hub (keyward_luks::escrow).
#[derive(Debug, Clone, Copy)]
pub struct SealedHeader<'a> {
    /// The volume's UUID.
    pub uuid: &'a str,
    /// The fingerprint of the key it is sealed under.
    pub fingerprint: &'a Fingerprint,
    /// The sealed bytes.
    pub sealed: &'a [u8],
    /// The header's state digest (keyward_luks::escrow::header_state).
    pub state: &'a str,
}

/// Pushes a volume's sealed header backup as the enrolled box; checks the hub's answer names
/// these bytes.
pub fn push_header(
    hubs: &Hubs,
    enrollment: &Enrollment,
    identity: &SigningIdentity,
    header: SealedHeader<'_>,
) -> BoxResult<HeaderPushResponse> {
    let max = keyward_hub::hub::MAX_SEALED_HEADER_BYTES;
    if header.sealed.len() > max {
        return Err(invalid(format!(
            "the sealed header backup is {} bytes and a hub takes at most {max}; keep a header backup file with --out instead",
            header.sealed.len()
        )));
    }
    let request = HeaderPushRequest {
        uuid: header.uuid.into(),
        fingerprint: header.fingerprint.to_string(),
        sealed: keyward_core::encoding::to_base64(header.sealed),
        state: Some(header.state.into()),
    };
    let expected = keyward_hub::api::blob_sha256(header.sealed);
    // Up to a few MiB: each hub gets its time before the next is asked (a header pushed
    // twice replaces itself).
    block_on(hubs.first_answer_within(keyward_hub::client::HEADER_PATIENCE, async |hub| {
        let answer = hub.push_header(&enrollment.box_name, identity, &request).await?;
        match answer.sha256 == expected {
            true => Ok(answer),
            false => Err(hub.bad_answer("a header hash other than the header's")),
        }
    }))
}

/// How the hub's copy of a volume's header compares with the volume's header now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubHeaderCopy {
    /// The hub holds this very header (pushed at that Unix time).
    Current {
        /// When it was pushed.
        pushed_at: i64,
    },
    /// The hub holds an older header: a restore from it would bring back what changed since.
    Stale {
        /// When it was pushed.
        pushed_at: i64,
    },
    /// The hub holds a copy pushed without a state (by an older keyward): it cannot be told.
    Unknown {
        /// When it was pushed.
        pushed_at: i64,
    },
    /// The hub holds no copy of this volume's header.
    Missing,
}

impl HubHeaderCopy {
    /// The hub's copy of volume `uuid` among `held`, against the volume's `state` now.
    pub fn of(held: &[HeaderSummary], uuid: &str, state: &str) -> Self {
        match held.iter().find(|h| h.uuid.eq_ignore_ascii_case(uuid)) {
            None => HubHeaderCopy::Missing,
            Some(h) => match h.state.as_deref() {
                Some(pushed) if pushed == state => {
                    HubHeaderCopy::Current { pushed_at: h.pushed_at }
                }
                Some(_) => HubHeaderCopy::Stale { pushed_at: h.pushed_at },
                None => HubHeaderCopy::Unknown { pushed_at: h.pushed_at },
            },
        }
    }

    /// Its name in `--json` output.
    pub fn name(&self) -> &'static str {
        match self {
            HubHeaderCopy::Current { .. } => "current",
            HubHeaderCopy::Stale { .. } => "stale",
            HubHeaderCopy::Unknown { .. } => "unknown",
            HubHeaderCopy::Missing => "missing",
        }
    }
}

/// What the hub holds of this box's header backups (without their sealed bytes).
pub fn header_copies(
    hubs: &Hubs,
    enrollment: &Enrollment,
    identity: &SigningIdentity,
) -> BoxResult<Vec<HeaderSummary>> {
    let name = &enrollment.box_name;
    Ok(block_on(hubs.first_answer(async |hub| hub.list_headers(name, identity).await))?.headers)
}

/// The active escrow version as the hub holds it, its blob's bytes checked against its hash.
pub fn fetch_active(
    hubs: &Hubs,
    enrollment: &Enrollment,
    identity: &SigningIdentity,
) -> BoxResult<(EscrowCopy, Vec<u8>)> {
    block_on(hubs.first_answer(async |hub| {
        let escrow = hub.fetch_active(&enrollment.box_name, identity).await?.escrow;
        let blob = keyward_core::encoding::from_base64(&escrow.blob)
            .filter(|bytes| keyward_hub::api::blob_sha256(bytes) == escrow.blob_sha256)
            .ok_or_else(|| hub.bad_answer("a blob that does not match its hash"))?;
        Ok((escrow, blob))
    }))
}

/// The escrow versions the hubs hold of the box.
pub fn status(
    hubs: &Hubs,
    enrollment: &Enrollment,
    identity: &SigningIdentity,
) -> BoxResult<StatusResponse> {
    let name = &enrollment.box_name;
    block_on(hubs.first_answer(async |hub| hub.status(name, identity).await))
}
