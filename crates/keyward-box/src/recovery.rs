//! Recovery from escrow blobs, on a machine that has nothing: the blobs come from a file or from
//! a hub (every version it still holds, newest first, with a recovery ticket); each is opened
//! with the recovery code until one opens and its key passes the fingerprint gate — the
//! fingerprints the caller expects and, from a hub, the pushed one and the restore directive's
//! — before the caller may use it. A version under another code (a compromised box's push, even
//! approved) is passed over.
//!
//! The gate is [`crate::fingerprint::gate`], the one `unlock --expect-fingerprint` and the
//! agent check a key with too.

use std::path::{Path, PathBuf};

use keyward_core::escrow::EscrowBlob;
use keyward_core::keybox::{NewKeybox, PbsRecord};
use keyward_core::slot::{NewRecoveryCode, default_recovery_code_kdf};
use keyward_core::store::RealFs;
use keyward_core::{
    DataKey, Error as CoreError, ExpectedFingerprint, Fingerprint, IntegrityFailure, RecoveryCode,
    Store, operations,
};
use keyward_hub::api::{EscrowCopy, HeaderCopy, RecoverResponse};
use keyward_hub::client::HubClient;
use keyward_pbs::{PbsError, PbsKeyFile, escrow, pbs_fingerprint};

use crate::error::{BoxError, BoxResult, invalid};
use crate::fingerprint::gate;
use crate::runtime::block_on;
use crate::secrets::SecretFiles;

/// A hub ticket's use this was, and how many it allows.
#[derive(Debug, Clone, Copy)]
pub struct TicketUses {
    /// This fetch's number.
    pub used: u32,
    /// How many the ticket allows.
    pub allowed: u32,
}

/// A blob in one of the two escrow forms.
#[derive(Debug)]
pub enum Blob {
    /// A Proxmox Backup key file, scrypt under the code.
    Pbs(PbsKeyFile),
    /// A keyward escrow blob (a recovery-code slot standing alone).
    Keyward(EscrowBlob),
}

/// One blob to try, with what its key must match.
#[derive(Debug)]
pub struct Candidate {
    /// The blob, or why it cannot be read.
    pub blob: Result<Blob, BoxError>,
    /// Where it came from (a file, a version at a hub), for messages.
    pub origin: PathBuf,
    /// Fingerprints the key must have, with where each came from.
    pub expected: Vec<(String, ExpectedFingerprint)>,
    /// From a hub: the version and its restore directive.
    pub directive: Option<(u64, serde_json::Value)>,
}

/// The blobs to try, newest first, and the hub ticket's uses if they came from a hub.
#[derive(Debug)]
pub struct Candidates {
    /// The blobs.
    pub list: Vec<Candidate>,
    /// With a hub ticket: its use and allowance.
    pub uses: Option<TicketUses>,
}

/// A key that opened and passed the gate.
#[derive(Debug)]
pub struct Recovered {
    /// Which candidate it came from.
    pub index: usize,
    /// The key.
    pub key: DataKey,
    /// Its fingerprint.
    pub fingerprint: Fingerprint,
}

/// Why no candidate gave the key.
#[derive(Debug)]
pub enum Refusal {
    /// The code opens none of them (worth asking again).
    WrongCode(BoxError),
    /// Something else, which another code will not fix.
    Other(BoxError),
}

/// How trying one candidate ended.
enum Tried {
    Opened(DataKey, Fingerprint),
    WrongCode,
    /// Damaged (or not a blob): this error, or the one its `blob` holds.
    Damaged(Option<BoxError>),
    /// It opened, to a key another fingerprint names.
    Mismatch(BoxError),
}

impl Candidate {
    /// A blob file as the one candidate; a file that is not a blob at all is said at once.
    pub fn from_file(files: &SecretFiles, path: &Path) -> BoxResult<Candidate> {
        let blob = parse_blob(&files.bytes(path)?, path)?;
        Ok(Candidate {
            blob: Ok(blob),
            origin: path.to_path_buf(),
            expected: Vec::new(),
            directive: None,
        })
    }

    fn try_code(&self, code: &RecoveryCode) -> Tried {
        let (key, found) = match &self.blob {
            Err(_) => return Tried::Damaged(None),
            Ok(Blob::Pbs(file)) => match escrow::open(file, code) {
                Ok(key) => {
                    let fp = pbs_fingerprint(key.expose());
                    (key, fp)
                }
                Err(PbsError::WrongPassphrase { .. }) => return Tried::WrongCode,
                Err(source) => {
                    return Tried::Damaged(Some(BoxError::Pbs {
                        path: self.origin.clone(),
                        source,
                    }));
                }
            },
            Ok(Blob::Keyward(blob)) => match blob.open(code, &self.origin) {
                Ok(key) => {
                    let fp = key.fingerprint();
                    (key, fp)
                }
                Err(CoreError::WrongSecret { .. }) => return Tried::WrongCode,
                Err(e) => return Tried::Damaged(Some(e.into())),
            },
        };
        match gate(&found, &self.expected) {
            Ok(()) => Tried::Opened(key, found),
            Err(e) => Tried::Mismatch(e),
        }
    }
}

impl Candidates {
    /// Requires `expected` of every candidate's key too.
    pub fn expect(&mut self, source: &str, expected: &ExpectedFingerprint) {
        for candidate in &mut self.list {
            candidate.expected.push((source.into(), expected.clone()));
        }
    }

    /// The first candidate (newest first) the code opens and whose key passes the gate. Else,
    /// the most telling failure: a key under the code with the wrong fingerprint (5), then a
    /// code that opens nothing that could be read (3), then damage (4).
    pub fn first_that_opens(&mut self, code: &RecoveryCode) -> Result<Recovered, Refusal> {
        let mut mismatch = None;
        let mut damaged = None;
        let mut wrong = 0;
        for (index, candidate) in self.list.iter().enumerate() {
            match candidate.try_code(code) {
                Tried::Opened(key, fingerprint) => {
                    return Ok(Recovered { index, key, fingerprint });
                }
                Tried::WrongCode => wrong += 1,
                Tried::Mismatch(e) => mismatch = mismatch.or(Some(e)),
                Tried::Damaged(e) => damaged = damaged.or(Some((index, e))),
            }
        }
        if let Some(e) = mismatch {
            return Err(Refusal::Other(e));
        }
        if wrong == 0
            && let Some((i, e)) = damaged
        {
            let e = e.unwrap_or_else(|| {
                let taken = std::mem::replace(&mut self.list[i].blob, Err(invalid("")));
                taken.err().unwrap_or_else(|| invalid("a damaged blob"))
            });
            return Err(Refusal::Other(e));
        }
        let left = self.uses.map(|u| u.allowed.saturating_sub(u.used));
        Err(Refusal::WrongCode(BoxError::CodeOpensNothing {
            what: match self.list.as_slice() {
                [one] => one.origin.display().to_string(),
                many => format!("any of the {} escrow versions the hub holds", many.len()),
            },
            ticket_uses_left: left,
        }))
    }
}

/// Reads a blob in either form.
pub fn parse_blob(bytes: &[u8], origin: &Path) -> BoxResult<Blob> {
    let is_keyward = serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| {
            v.get("format").and_then(|f| f.as_str()).map(|f| f == keyward_core::escrow::BLOB_FORMAT)
        })
        .unwrap_or(false);
    if is_keyward {
        Ok(Blob::Keyward(EscrowBlob::parse(bytes, origin)?))
    } else {
        PbsKeyFile::parse(bytes)
            .map(Blob::Pbs)
            .map_err(|source| BoxError::Pbs { path: origin.to_path_buf(), source })
    }
}

/// Every version a hub holds for `box_name`, fetched with the recovery ticket in `ticket_file`
/// (one of its allowed uses).
pub fn from_hub(
    files: &SecretFiles,
    client: &HubClient,
    url: &str,
    box_name: &str,
    ticket_file: &Path,
) -> BoxResult<Candidates> {
    let (ticket, _) = files.ticket_for(ticket_file, box_name)?;
    let answer: RecoverResponse = block_on(client.recover(&ticket))?;
    if answer.box_name != box_name {
        return Err(invalid(format!("the ticket is for {}, not {box_name}", answer.box_name)));
    }
    let uses = Some(TicketUses { used: answer.ticket_use, allowed: answer.ticket_uses });
    let list = answer.versions.into_iter().map(|copy| candidate_of(copy, box_name, url)).collect();
    Ok(Candidates { list, uses })
}

/// A sealed LUKS2 header backup as a hub served it.
#[derive(Debug)]
pub struct ServedHeader {
    /// What the hub says of it.
    pub copy: HeaderCopy,
    /// Its bytes, checked against the hash the hub gave.
    pub sealed: Vec<u8>,
    /// Where it came from, for messages.
    pub origin: String,
}

/// The sealed LUKS2 header backup of volume `uuid` (of the box's only volume, if `None`) a
/// hub holds for `box_name`, fetched with the recovery ticket in `ticket_file` (checked by the
/// hub, not used up), its bytes checked against their hash.
pub fn header_from_hub(
    files: &SecretFiles,
    client: &HubClient,
    url: &str,
    box_name: &str,
    ticket_file: &Path,
    uuid: Option<&str>,
) -> BoxResult<ServedHeader> {
    let (ticket, _) = files.ticket_for(ticket_file, box_name)?;
    let answer = block_on(client.recover_header(&ticket, uuid))?;
    if answer.box_name != box_name {
        return Err(invalid(format!("the ticket is for {}, not {box_name}", answer.box_name)));
    }
    let copy = answer.header;
    let origin = format!("the header backup of volume {} at {url}", copy.uuid);
    match keyward_core::encoding::from_base64(&copy.sealed) {
        Some(sealed) if keyward_hub::api::blob_sha256(&sealed) == copy.sha256 => {
            Ok(ServedHeader { copy, sealed, origin })
        }
        _ => {
            let path = PathBuf::from(origin);
            Err(CoreError::Integrity { path, what: IntegrityFailure::Checksum }.into())
        }
    }
}

/// One served version as a candidate: its blob checked against its hash, and the fingerprints
/// it must match.
fn candidate_of(copy: EscrowCopy, box_name: &str, url: &str) -> Candidate {
    let origin = PathBuf::from(format!("version {} of {box_name} at {url}", copy.version));
    let damaged = |what: String| -> BoxError {
        CoreError::Integrity { path: origin.clone(), what: IntegrityFailure::Malformed(what) }
            .into()
    };
    let blob = match keyward_core::encoding::from_base64(&copy.blob) {
        None => Err(damaged("the blob is not base64".into())),
        Some(bytes) if keyward_hub::api::blob_sha256(&bytes) != copy.blob_sha256 => {
            Err(CoreError::Integrity { path: origin.clone(), what: IntegrityFailure::Checksum }
                .into())
        }
        Some(bytes) => match copy.blob_format.as_str() {
            "pbs-key-file" => PbsKeyFile::parse(&bytes)
                .map(Blob::Pbs)
                .map_err(|source| BoxError::Pbs { path: origin.clone(), source }),
            "keyward-escrow-blob" => {
                EscrowBlob::parse(&bytes, &origin).map(Blob::Keyward).map_err(BoxError::from)
            }
            other => Err(invalid(format!(
                "the hub served an unknown blob format `{other}`; upgrade keyward"
            ))),
        },
    };
    let mut expected = Vec::new();
    let mut blob = blob;
    let mut claim = |text: &str, source: &str| match text.parse::<ExpectedFingerprint>() {
        Ok(fp) => expected.push((source.to_string(), fp)),
        Err(e) => blob = Err(damaged(format!("{source}: {e}"))),
    };
    claim(&copy.fingerprint, "as pushed");
    if let Some(fp) = copy.directive.get("fingerprint").and_then(|v| v.as_str()) {
        claim(fp, "the restore directive");
    }
    Candidate { blob, origin, expected, directive: Some((copy.version, copy.directive)) }
}

/// Keeps a recovered key in a fresh keybox at `path`, with a recovery-code slot for the same
/// code (and the PBS record, if it came from a PBS key file); its fingerprint.
pub fn keep_in_keybox(
    path: &Path,
    recovered: Recovered,
    code: &RecoveryCode,
    from: &Candidate,
) -> BoxResult<Fingerprint> {
    let pbs = match &from.blob {
        Ok(Blob::Pbs(file)) => Some(PbsRecord {
            fingerprint: recovered.fingerprint,
            created: file.created.as_str().to_string(),
        }),
        _ => None,
    };
    let store = Store::new(&RealFs, path);
    let secret = NewRecoveryCode { code: code.clone(), kdf: default_recovery_code_kdf()? };
    let created = operations::init(
        &store,
        NewKeybox { key: recovered.key, label: "recovered", slot_label: None, pbs },
        &secret,
    )?;
    Ok(created.keybox().fingerprint())
}
