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
use keyward_hub::client::Hubs;
use keyward_pbs::{PbsError, PbsKeyFile, escrow, pbs_fingerprint};
use keyward_service::addresses::HubAddress;
use keyward_service::statement::Statement;

use crate::error::{BoxError, BoxResult, invalid};
use crate::fingerprint::gate;
use crate::runtime::block_on;
use crate::secrets::{Person, SecretFiles, ask_recovery_code};

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
        match gate(&key, &self.expected) {
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
    hubs: &Hubs,
    box_name: &str,
    ticket_file: &Path,
    uuid: Option<&str>,
) -> BoxResult<ServedHeader> {
    let (ticket, _) = files.ticket_for(ticket_file, box_name)?;
    let patience = keyward_hub::client::HEADER_PATIENCE;
    let (answer, url) = block_on(hubs.first_answer_within(patience, async |hub| {
        Ok((hub.recover_header(&ticket, uuid).await?, hub.url().to_string()))
    }))?;
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

/// Keeps a recovered key in a fresh keybox at `path`, with a recovery-code slot for the code
/// that opened its blob (and the PBS record, if it came from a PBS key file); its fingerprint.
pub fn keep_in_keybox(path: &Path, recovery: Recovery) -> BoxResult<Fingerprint> {
    let RecoveredFrom::Blob { candidate, code } = &recovery.from else {
        return Err(invalid("a key from the peers has no recovery code to keep it under"));
    };
    let pbs = match &candidate.blob {
        Ok(Blob::Pbs(file)) => Some(PbsRecord {
            fingerprint: recovery.fingerprint,
            created: file.created.as_str().to_string(),
        }),
        _ => None,
    };
    let store = Store::new(&RealFs, path);
    let secret = NewRecoveryCode { code: code.clone(), kdf: default_recovery_code_kdf()? };
    let created = operations::init(
        &store,
        NewKeybox { key: recovery.key, label: "recovered", slot_label: None, pbs },
        &secret,
    )?;
    Ok(created.keybox().fingerprint())
}

/// Where a recovery gets the key from.
#[derive(Debug)]
pub enum Source<'a> {
    /// An escrow blob file (`--blob`), opened with the recovery code.
    Blob(&'a Path),
    /// An operator's ticket (`--ticket-file`): a recovery ticket fetches every escrow version
    /// from the hubs it names, a release ticket gathers the shares from the peers it names.
    Ticket(TicketSource<'a>),
}

/// A ticket, and what may replace what it names.
#[derive(Debug)]
pub struct TicketSource<'a> {
    /// The ticket file.
    pub file: &'a Path,
    /// The box it must be for, if the command named one.
    pub box_name: Option<&'a str>,
    /// Hubs to ask instead of the ticket's (a hub that moved).
    pub hubs: Vec<HubAddress>,
    /// Peers to ask instead of the ticket's.
    pub peers: Vec<keyward_peer::card::PeerCard>,
    /// The requester key a release ticket names (made on this machine).
    pub requester_key: Option<&'a Path>,
}

/// What a recovery needs besides its source.
#[derive(Debug)]
pub struct Plan<'a> {
    /// Where the key comes from.
    pub source: Source<'a>,
    /// The fingerprint the owner recorded: nothing is handed back unless the key has it.
    pub expected: &'a ExpectedFingerprint,
    /// The recovery code's file; without it, the person is asked (blobs only).
    pub code_file: Option<&'a Path>,
    /// The key is to be kept in a fresh keybox under its recovery code ([`keep_in_keybox`]):
    /// a release ticket, whose key comes with no code, is refused before anything is spent.
    pub keep_code: bool,
}

/// How a recovered key was found.
#[derive(Debug)]
pub enum RecoveredFrom {
    /// An escrow blob the code opened: a file, or a version a hub served.
    Blob {
        /// The blob, with the version and restore directive a hub served.
        candidate: Box<Candidate>,
        /// The code that opened it (a fresh keybox gets a slot for it).
        code: RecoveryCode,
    },
    /// The peers' shares, released to a ticket.
    Peers {
        /// The share set they came from.
        share_set: String,
        /// What the person should know: peers that gave nothing, shares that did not fit.
        notes: Vec<String>,
    },
}

/// A key recovered and past the fingerprint gate.
#[derive(Debug)]
pub struct Recovery {
    /// The key.
    pub key: DataKey,
    /// Its fingerprint (PBS's for a Proxmox Backup key file blob).
    pub fingerprint: Fingerprint,
    /// Where it came from.
    pub from: RecoveredFrom,
}

/// A code typed at the prompt is asked again this often when it opens nothing.
const CODE_TRIES: usize = 3;

/// An operator's ticket read from `path` without being trusted (the hub or the peers verify
/// it): only so that a ticket for another box, of the wrong kind, or naming another requester
/// is refused before anything is spent.
fn read_ticket(
    files: &SecretFiles,
    path: &Path,
    box_name: Option<&str>,
) -> BoxResult<(zeroize::Zeroizing<String>, Statement)> {
    let text = files.ticket(path)?;
    let Some(statement) = keyward_service::statement::peek(&text) else {
        return Err(invalid(format!("{} holds no operator ticket", path.display())));
    };
    if let Some(box_name) = box_name
        && statement.box_name() != box_name
    {
        return Err(invalid(format!(
            "the ticket is for {}, not {box_name}; leave --box out (the ticket names the box) or ask the operator for a ticket for {box_name}",
            statement.box_name()
        )));
    }
    Ok((text, statement))
}

/// The box a recovery ticket in `path` is for (which must be `box_name`, if given) and the hubs
/// it names (none, for a ticket older than tickets that name them); read, not verified.
pub fn recovery_ticket(
    files: &SecretFiles,
    path: &Path,
    box_name: Option<&str>,
) -> BoxResult<(String, Vec<HubAddress>)> {
    match read_ticket(files, path, box_name)?.1 {
        Statement::Recovery { box_name, hubs, .. } => Ok((box_name, hubs)),
        other => Err(invalid(format!(
            "the ticket file holds {} for {}, not a recovery ticket",
            other.kind(),
            other.box_name()
        ))),
    }
}

/// Recovers the key on a machine that has nothing: from a blob file, or with an operator's
/// ticket from the hubs or the peers it names. Every check that needs no secret and no network
/// (the ticket's box and kind, its requester, hubs or peers to ask) comes before the code is
/// read or anything is sent; the code comes before any request (a mistyped word costs no use
/// of the ticket), and a code typed by `person` that opens nothing is asked again against the
/// blobs already fetched.
pub fn recover<P: Person + ?Sized>(
    files: &SecretFiles,
    mut person: Option<&mut P>,
    plan: Plan<'_>,
) -> BoxResult<Recovery> {
    let mut candidates = match plan.source {
        Source::Blob(path) => {
            let list = vec![Candidate::from_file(files, path)?];
            let code = code_of(files, plan.code_file, person.as_deref_mut())?;
            Fetched { list: Candidates { list, uses: None }, code }
        }
        Source::Ticket(source) => {
            let (text, statement) = read_ticket(files, source.file, source.box_name)?;
            match statement {
                Statement::Recovery { box_name, hubs, .. } => {
                    if !source.peers.is_empty() || source.requester_key.is_some() {
                        return Err(invalid(
                            "the ticket is a recovery ticket (from the hubs): --peers and --requester-key go with a release ticket",
                        ));
                    }
                    let hubs = if source.hubs.is_empty() { hubs } else { source.hubs };
                    if hubs.is_empty() {
                        return Err(invalid(
                            "the ticket names no hub (it is older than tickets that do): give --hub URL --hub-fingerprint HEX",
                        ));
                    }
                    let hubs = Hubs::new(&hubs)?;
                    let code = code_of(files, plan.code_file, person.as_deref_mut())?;
                    Fetched { list: versions_at(&hubs, &box_name, &text)?, code }
                }
                Statement::PeerRelease { box_name, requester, peers, .. } => {
                    if !source.hubs.is_empty() {
                        return Err(invalid(
                            "the ticket is a release ticket (from the peers): --hub goes with a recovery ticket",
                        ));
                    }
                    if plan.keep_code {
                        return Err(invalid(
                            "a release ticket gets the key from the peers, with no recovery code to keep it under: write it with --out FILE, not --into-keybox",
                        ));
                    }
                    if plan.code_file.is_some() {
                        return Err(invalid(
                            "a release ticket gets the key from the peers, without a recovery code: leave --code-file out",
                        ));
                    }
                    let cards = if source.peers.is_empty() {
                        peers
                            .iter()
                            .map(|record| {
                                keyward_peer::card::PeerCard::from_record(record).map_err(
                                    |source| BoxError::Card {
                                        path: format!("the ticket's card of {}", record.url).into(),
                                        source,
                                    },
                                )
                            })
                            .collect::<BoxResult<Vec<_>>>()?
                    } else {
                        source.peers
                    };
                    if cards.is_empty() {
                        return Err(invalid(
                            "the ticket names no peer (it is older than tickets that do): give --peers CARD…",
                        ));
                    }
                    let Some(key_file) = source.requester_key else {
                        return Err(invalid(
                            "a release ticket is used with the requester key it names: give --requester-key FILE",
                        ));
                    };
                    let key = files.identity(key_file)?;
                    if key.public() != requester {
                        return Err(invalid(format!(
                            "the ticket names the requester {requester}, not the key in {}",
                            key_file.display()
                        )));
                    }
                    return from_peers(&cards, text, box_name, key, plan.expected);
                }
                other => {
                    return Err(invalid(format!(
                        "the ticket file holds {} for {}, not a recovery or release ticket",
                        other.kind(),
                        other.box_name()
                    )));
                }
            }
        }
    };
    candidates.list.expect("--expect-fingerprint", plan.expected);
    let prompted = plan.code_file.is_none();
    let mut tries = 1;
    let recovered = loop {
        match candidates.list.first_that_opens(&candidates.code) {
            Ok(recovered) => break recovered,
            Err(Refusal::WrongCode(e)) if prompted && tries < CODE_TRIES => match &mut person {
                Some(person) => {
                    tries += 1;
                    person.notice(&format!("{e} (asked again: {tries} of {CODE_TRIES})"));
                    candidates.code = ask_recovery_code(&mut **person)?;
                }
                None => return Err(e),
            },
            Err(Refusal::WrongCode(e) | Refusal::Other(e)) => return Err(e),
        }
    };
    let Recovered { index, key, fingerprint } = recovered;
    let candidate = candidates.list.list.swap_remove(index);
    Ok(Recovery {
        key,
        fingerprint,
        from: RecoveredFrom::Blob { candidate: Box::new(candidate), code: candidates.code },
    })
}

/// The blobs to try and the code to try them with.
struct Fetched {
    list: Candidates,
    code: RecoveryCode,
}

/// The recovery code from its file, else from the person (a word not on the list is said, and
/// asked again).
fn code_of<P: Person + ?Sized>(
    files: &SecretFiles,
    file: Option<&Path>,
    person: Option<&mut P>,
) -> BoxResult<RecoveryCode> {
    match (file, person) {
        (Some(path), _) => files.code(path),
        (None, Some(person)) => ask_recovery_code(person),
        (None, None) => {
            Err(invalid("no recovery code given and no terminal to ask on: give --code-file F"))
        }
    }
}

/// Every version the hubs hold of `box_name`, for the ticket `text` (one of its uses).
fn versions_at(hubs: &Hubs, box_name: &str, text: &str) -> BoxResult<Candidates> {
    // Each fetch uses one of the ticket's uses: a hub is asked again elsewhere only when it
    // surely never got the ticket.
    let (answer, url): (RecoverResponse, String) = block_on(
        hubs.answer_once(async |hub| Ok((hub.recover(text).await?, hub.url().to_string()))),
    )?;
    if answer.box_name != box_name {
        return Err(invalid(format!("the ticket is for {}, not {box_name}", answer.box_name)));
    }
    let uses = Some(TicketUses { used: answer.ticket_use, allowed: answer.ticket_uses });
    let list = answer.versions.into_iter().map(|copy| candidate_of(copy, box_name, &url)).collect();
    Ok(Candidates { list, uses })
}

/// The key from the peers' shares, released to the ticket `text` for `box_name` that names
/// `requester`.
fn from_peers(
    cards: &[keyward_peer::card::PeerCard],
    text: zeroize::Zeroizing<String>,
    box_name: String,
    requester: keyward_service::SigningIdentity,
    expected: &ExpectedFingerprint,
) -> BoxResult<Recovery> {
    use keyward_peer::api::ReleasePurpose;
    use std::sync::Arc;
    let proof = keyward_peer::recovery::Proof::Ticket {
        ticket: Arc::new(text),
        owner_name: box_name,
        requester: Arc::new(requester),
    };
    let timeout = keyward_peer::slot::PEER_TIMEOUT;
    let gathered = block_on(async {
        Ok::<_, BoxError>(
            keyward_peer::recovery::gather(
                cards,
                proof,
                ReleasePurpose::Use,
                expected,
                None,
                timeout,
            )
            .await?,
        )
    })?;
    let notes = keyward_peer::slot::report(&gathered);
    let share_set = gathered.share_set.clone();
    let key = gathered.key;
    let fingerprint = key.fingerprint();
    Ok(Recovery { key, fingerprint, from: RecoveredFrom::Peers { share_set, notes } })
}
