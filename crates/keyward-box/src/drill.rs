//! The drill: proves, before a disaster, each way this box's key can be recovered — its slots
//! that open unattended, its escrow at the hubs, its peers, its LUKS2 volumes, the offline
//! fallback — and says of each path: ok, broken (and why), or not proven (and what it needs).
//! K is opened as every unlock opens it (memory that is wiped when dropped), never written
//! anywhere, and wiped when the drill ends. What each path proves:
//!
//! - a slot that opens unattended (plain, key file, tpm2, pkcs11 with a PIN file) opens, and its
//!   key has the keybox's fingerprint (the open checks it); a recovery-code slot does when the
//!   code is given; a slot that needs a person is not proven;
//! - a peers slot: a threshold of its peers releases shares that rebuild the key;
//! - the escrow: the hubs serve an active version whose blob is the one this box pushed as that
//!   version, claiming this key; with the code, the blob opens to this key here;
//! - each LUKS2 volume noted beside the keybox: keyward's keyslot opens with the passphrase the
//!   key derives (no activation, nothing written), and the hubs' copy of its header is current;
//! - the offline fallback: a recovery-code, passphrase or key-file slot exists.
//!
//! Proving the slots ([`prove_slots`]) is also all of `keyward verify`'s work past loading, with
//! the secret it is given and the one slot it may name.

use std::collections::BTreeMap;
use std::path::Path;

use keyward_core::slot::Channel;
use keyward_core::store::RealFs;
use keyward_core::{
    DataKey, Error as CoreError, ExpectedFingerprint, Fingerprint, Keybox, RecoveryCode, SlotId,
    Store, UnlockedKeybox, Unlocker,
};
use keyward_luks::volume::Volume;
use keyward_luks::workflow::{KeyslotCheck, check_keyslot};
use keyward_service::unix_now;
use serde::Serialize;

use crate::config::{self, BoxFiles, ConfigFile, Pushed, Volumes};
use crate::error::{BoxError, BoxResult};
use crate::escrow::{self, HubHeaderCopy};
use crate::recovery::{Candidate, Candidates, parse_blob};
use crate::secrets::{Person, SecretFiles};
use crate::unlock;

/// How a path fared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "detail")]
pub enum Outcome {
    /// Proven: what was shown.
    Ok(String),
    /// Does not work: why.
    Broken(String),
    /// Not tried: what it needs.
    NotProven(String),
}

/// One recovery path and how it fared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathResult {
    /// A stable id (`slot:2`, `escrow`, `luks:UUID`, `offline-fallback`), for metrics and state.
    pub id: String,
    /// What it is, for people (`slot 2 (keyfile, "keyfile-2")`).
    pub name: String,
    /// How it fared.
    pub outcome: Outcome,
}

/// A drill's result.
#[derive(Debug, Clone, Serialize)]
pub struct Drill {
    /// When it ran (Unix seconds).
    pub at: i64,
    /// Every path, in the order tried.
    pub paths: Vec<PathResult>,
}

impl Drill {
    /// The broken paths.
    pub fn broken(&self) -> impl Iterator<Item = &PathResult> {
        self.paths.iter().filter(|p| matches!(p.outcome, Outcome::Broken(_)))
    }
}

/// What the last drills proved, beside the keybox: `<keybox>.drill.json`, the last time each
/// path was proven (for the textfile's `…_last_success` gauges).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillState {
    /// Path id → Unix seconds of its last success.
    pub last_success: BTreeMap<String, i64>,
}

impl ConfigFile for DrillState {
    const FORMAT: &'static str = "keyward-drill-state";
    const VERSION: u32 = 1;
    const MISSING: &'static str = "cannot read";
}

/// Runs the drill on the keybox at `path`, with the recovery code if one is given.
pub fn run(path: &Path, files: &SecretFiles, code: Option<&RecoveryCode>) -> BoxResult<Drill> {
    let keybox = Store::new(&RealFs, path).load()?;
    let plan = SlotPlan {
        given: code.map(Unlocker::RecoveryCode),
        ask_peers: true,
        ..SlotPlan::default()
    };
    let proven = prove_slots(&keybox, path, files, plan);
    let mut paths: Vec<PathResult> = proven.slots.into_iter().map(PathResult::from).collect();
    let key = proven.key;
    let fallbacks = keybox.offline_fallbacks();
    paths.push(PathResult {
        id: "offline-fallback".into(),
        name: "offline fallback (a slot that opens with no network and no device)".into(),
        outcome: match fallbacks.as_slice() {
            [] => Outcome::Broken("no recovery-code, passphrase or key-file slot".into()),
            ids => Outcome::Ok(format!(
                "slot(s) {}",
                ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            )),
        },
    });
    let hub = hub_of(path, files);
    paths.push(escrow_path(&keybox, path, code, hub.as_ref()));
    match Volumes::beside(path) {
        Ok(volumes) => {
            for record in volumes.volumes {
                paths.push(volume_path(&record.device, &record.uuid, key.as_ref(), hub.as_ref()));
            }
        }
        Err(e) => paths.push(PathResult {
            id: "luks-volumes".into(),
            name: "the note of the LUKS2 volumes".into(),
            outcome: Outcome::Broken(e.to_string()),
        }),
    }
    Ok(Drill { at: unix_now(), paths })
}

/// The box's hubs, if it is enrolled at any (or why they cannot be asked).
type HubOf = Result<escrow::Enrolled, String>;

fn hub_of(path: &Path, files: &SecretFiles) -> Option<HubOf> {
    escrow::enrollment_if_any(path, files).map_err(|e| e.to_string()).transpose()
}

/// What the slots are proven with: the one plan behind `keyward drill` (every slot, the code if
/// given, the peers asked) and `keyward verify` (any secret given, one slot named or all).
#[derive(Default)]
pub struct SlotPlan<'a> {
    /// A secret given (a code, a passphrase, a key file, a PIN): tried on each slot of its kind.
    pub given: Option<Unlocker<'a>>,
    /// Only this slot; it may also ask `person` and its peers.
    pub only: Option<SlotId>,
    /// Whether every slot that opens through its peers asks them (else only the slot named).
    pub ask_peers: bool,
    /// For a peers slot of the `both` policy: the operator's release ticket.
    pub release_ticket: Option<&'a Path>,
    /// A person to ask for the slot named, if one is there.
    pub person: Option<&'a mut dyn Person>,
    /// Whose options a slot not proven names for what it needs.
    pub hints: Hints,
}

/// The command a slot that is not proven names the options of: what it needs, and how to give it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Hints {
    /// `keyward drill`, which takes the recovery code only.
    #[default]
    Drill,
    /// `keyward verify`, which takes any secret.
    Verify,
}

impl Hints {
    /// What slot `slot`, opened with `channel`, needs to be proven.
    fn needs(self, channel: Channel, slot: SlotId) -> String {
        let what = channel.describe();
        match (self, channel) {
            (Hints::Drill, Channel::RecoveryCode) => format!("{what} (--code-file F, or --ask)"),
            (Hints::Verify, Channel::RecoveryCode) => format!("{what} (--code-file F)"),
            (Hints::Verify, Channel::Passphrase) => format!("{what} (--passphrase-file F)"),
            (Hints::Verify, Channel::KeyFile) => format!("{what} (--keyfile F)"),
            (Hints::Verify, Channel::Pin) => format!("{what} (--pin-file F --slot {slot})"),
            (Hints::Verify, Channel::Key) => {
                format!("{what} (`keyward verify --slot {slot}` asks the peers)")
            }
            (Hints::Drill, Channel::KeyFile) => format!("{what} (it records no path to read)"),
            (_, channel) if channel.is_typed() => format!("{what}, typed by a person"),
            _ => what.to_string(),
        }
    }
}

/// How one slot fared.
#[derive(Debug)]
pub struct ProvenSlot {
    /// The slot.
    pub id: SlotId,
    /// Its kind.
    pub kind: String,
    /// Its label.
    pub label: String,
    /// What it showed.
    pub outcome: Outcome,
    /// When it is broken: the failure as its type, for an exit code.
    pub error: Option<BoxError>,
    /// Whether it opened (the key's fingerprint and the keybox's MAC held), even when a path
    /// behind it is broken (a peer that no longer holds its share).
    pub opened: bool,
}

impl ProvenSlot {
    /// The slot as people read it: `slot 2 (keyfile, "keyfile-2")`.
    pub fn name(&self) -> String {
        format!("slot {} ({}, \"{}\")", self.id, self.kind, self.label)
    }
}

impl From<ProvenSlot> for PathResult {
    fn from(slot: ProvenSlot) -> Self {
        PathResult { id: format!("slot:{}", slot.id), name: slot.name(), outcome: slot.outcome }
    }
}

/// What the slots showed.
#[derive(Debug, Default)]
pub struct ProvenSlots {
    /// Each slot of the plan, in the keybox's order.
    pub slots: Vec<ProvenSlot>,
    /// The key, from the first slot that opened (wiped when dropped).
    pub key: Option<DataKey>,
    /// A secret was given and opened none of the slots it was tried on (or there were none).
    pub given_opened_none: Option<BoxError>,
}

/// What came of trying one slot, before the secret given is judged on all of its slots.
enum Tried {
    /// It opened, with the secret given or without, to the key with this fingerprint.
    Opened {
        fingerprint: Fingerprint,
        given: bool,
    },
    /// The secret given, of this slot's kind, did not open it.
    GivenRefused(BoxError),
    Done(Outcome, Option<BoxError>),
}

/// Tries each slot of `plan` as it opens with what is at hand, and says what each showed. K is
/// opened in memory that is wiped when dropped, and written nowhere.
pub fn prove_slots(
    keybox: &Keybox,
    path: &Path,
    files: &SecretFiles,
    mut plan: SlotPlan<'_>,
) -> ProvenSlots {
    let mut tried = Vec::new();
    // One copy of K is kept, from the first slot that opened (for the LUKS2 volumes).
    let mut key = None;
    for (record, read) in keybox.read_slots().filter(|(r, _)| plan.only.is_none_or(|id| r.id == id))
    {
        let id = record.id;
        let named = plan.only == Some(id);
        let mut opened = |result: BoxResult<UnlockedKeybox>, given: bool| match result {
            Ok(opened) => {
                let fingerprint = opened.key().fingerprint();
                key.get_or_insert_with(|| opened.key().clone());
                Tried::Opened { fingerprint, given }
            }
            Err(e) if given => Tried::GivenRefused(e),
            Err(e) => Tried::Done(Outcome::Broken(e.to_string()), Some(e)),
        };
        let outcome = match read {
            None => Tried::Done(
                Outcome::NotProven(format!(
                    "a newer keyward (unknown kind {})",
                    record.protection.kind
                )),
                None,
            ),
            Some(read) => {
                let channel = read.channel();
                match plan.given.filter(|given| given.channel() == channel) {
                    Some(given) => {
                        opened(keybox.unlock(&given, Some(id), path).map_err(BoxError::from), true)
                    }
                    // The slot named asks for what it needs, a person if it needs one and one
                    // is there.
                    None if read.is_unattended()
                        || (named && (!channel.is_typed() || plan.person.is_some())) =>
                    {
                        opened(
                            unlock::prove_slot(
                                keybox,
                                id,
                                path,
                                files,
                                plan.release_ticket,
                                plan.person.as_deref_mut().map(|p| p as &mut dyn Person),
                            ),
                            false,
                        )
                    }
                    None if channel == Channel::Key && plan.ask_peers => {
                        opened(unlock::prove_slot(keybox, id, path, files, None, None), false)
                    }
                    None => Tried::Done(Outcome::NotProven(plan.hints.needs(channel, id)), None),
                }
            }
        };
        tried.push((record, outcome));
    }
    // A secret given opens the slots it belongs to: another slot of its kind that refuses it
    // is not broken (a second code), unless it opens none of them — then the secret is wrong,
    // or its slots are broken.
    let given_opens_one = tried.iter().any(|(_, t)| matches!(t, Tried::Opened { given: true, .. }));
    let given_opened_none = plan.given.filter(|_| !given_opens_one).map(|given| {
        let tried_it = tried.iter().any(|(_, t)| matches!(t, Tried::GivenRefused(_)));
        BoxError::from(match tried_it {
            false => CoreError::NoSlotTakes(given.describe()),
            true => CoreError::WrongSecret { tried: given.describe().to_string() },
        })
    });
    let mut proven = ProvenSlots { given_opened_none, key, slots: Vec::new() };
    for (record, tried) in tried {
        let opened = matches!(tried, Tried::Opened { .. });
        let (outcome, error) = match tried {
            Tried::Opened { fingerprint: fp, .. } => match peers_holding(record, path, files) {
                Some(Err(why)) => (Outcome::Broken(why), None),
                Some(Ok(held)) => (Outcome::Ok(format!("opens; key {}; {held}", fp.short())), None),
                None => (Outcome::Ok(format!("opens; key {}", fp.short())), None),
            },
            // Only a refusal of the secret is excused: a slot of its kind that fails otherwise
            // (its parameters, its integrity) is broken.
            Tried::GivenRefused(BoxError::Core(CoreError::WrongSecret { .. }))
                if given_opens_one && plan.only.is_none() =>
            {
                let secret =
                    plan.given.map_or("secret", |g| g.describe().trim_start_matches("the "));
                (
                    Outcome::NotProven(format!(
                        "its own {secret} (the one given opens another slot)"
                    )),
                    None,
                )
            }
            Tried::GivenRefused(e) => (Outcome::Broken(e.to_string()), Some(e)),
            Tried::Done(outcome, error) => (outcome, error),
        };
        proven.slots.push(ProvenSlot {
            id: record.id,
            kind: record.protection.kind.clone(),
            label: record.label.clone(),
            outcome,
            error,
            opened,
        });
    }
    proven
}

/// For a peers slot: whether every one of its peers still holds its share of the current set
/// (the key came back from a threshold of them; fewer holding is less room for failures).
fn peers_holding(
    record: &keyward_core::keybox::SlotRecord,
    path: &Path,
    files: &SecretFiles,
) -> Option<Result<String, String>> {
    let params = crate::peers::peers_params(record).ok()??;
    let identity = match crate::identity::read(files, path) {
        Ok(identity) => std::sync::Arc::new(identity),
        Err(e) => return Some(Err(e.to_string())),
    };
    let holdings = match crate::peers::holdings(&params, &identity) {
        Ok(holdings) => holdings,
        Err(e) => return Some(Err(e.to_string())),
    };
    let missing: Vec<String> = holdings
        .iter()
        .filter(|h| !h.answer.as_ref().is_ok_and(|a| a.current.is_some()))
        .map(|h| h.url.clone())
        .collect();
    let total = holdings.len();
    Some(match missing.as_slice() {
        [] => Ok(format!("all {total} peers hold the current set")),
        gone => Err(format!(
            "{} of {total} peers hold the current set ({} needed); no share from {}: re-share (`keyward peers reshare`)",
            total - gone.len(),
            params.threshold,
            gone.join(", ")
        )),
    })
}

/// The escrow at the hubs.
fn escrow_path(
    keybox: &Keybox,
    path: &Path,
    code: Option<&RecoveryCode>,
    hub: Option<&HubOf>,
) -> PathResult {
    let result =
        |outcome| PathResult { id: "escrow".into(), name: "escrow at the hubs".into(), outcome };
    let (enrollment, identity, hubs) = match hub {
        None => {
            return result(Outcome::NotProven(
                "enrollment at a hub (`keyward escrow enroll`)".into(),
            ));
        }
        Some(Err(e)) => return result(Outcome::Broken(e.clone())),
        Some(Ok(hub)) => hub,
    };
    let header = keybox.header();
    let names_this_key = |text: &str| {
        text.parse::<ExpectedFingerprint>().is_ok_and(|fp| {
            header.fingerprint.matches(&fp)
                || header.pbs.as_ref().is_some_and(|p| p.fingerprint.matches(&fp))
        })
    };
    let (escrow, blob) = match escrow::fetch_active(hubs, enrollment, identity) {
        Ok(active) => active,
        Err(e) => return result(Outcome::Broken(e.to_string())),
    };
    if !names_this_key(&escrow.fingerprint) {
        return result(Outcome::Broken(format!(
            "the active version {} claims another key ({})",
            escrow.version, escrow.fingerprint
        )));
    }
    let noted = match Pushed::beside(path) {
        Ok(pushed) => pushed.sha256_of(escrow.version).map(str::to_string),
        Err(_) => None,
    };
    let mut detail = format!("version {} active", escrow.version);
    match noted {
        Some(noted) if noted != escrow.blob_sha256 => {
            return result(Outcome::Broken(format!(
                "the hubs serve version {} as a blob other than the one this box pushed (SHA-256 {}, noted {noted})",
                escrow.version, escrow.blob_sha256
            )));
        }
        Some(_) => detail.push_str(", the blob this box pushed"),
        None => detail.push_str(" (its push is not noted on this box)"),
    }
    if let Ok(status) = escrow::status(hubs, enrollment, identity) {
        let pending = status.versions.iter().filter(|v| v.state == "pending").count();
        if pending > 0 {
            detail.push_str(&format!("; {pending} version(s) wait for an operator's approval"));
        }
    }
    match code {
        None => detail.push_str("; the code was not tried (--code-file F or --ask)"),
        Some(code) => {
            let origin = format!("version {} at the hubs", escrow.version);
            let candidate = Candidate {
                blob: parse_blob(&blob, Path::new(&origin)),
                origin: origin.into(),
                expected: vec![(
                    "the keybox".into(),
                    ExpectedFingerprint::Full(header.fingerprint),
                )],
                directive: None,
            };
            let mut candidates = Candidates { list: vec![candidate], uses: None };
            match candidates.first_that_opens(code) {
                Ok(_) => detail.push_str("; it opens here with the code, to this key"),
                Err(
                    crate::recovery::Refusal::WrongCode(e) | crate::recovery::Refusal::Other(e),
                ) => {
                    return result(Outcome::Broken(e.to_string()));
                }
            }
        }
    }
    result(Outcome::Ok(detail))
}

/// One LUKS2 volume: keyward's keyslot, and the hubs' copy of its header.
fn volume_path(
    device: &Path,
    uuid: &str,
    key: Option<&DataKey>,
    hub: Option<&HubOf>,
) -> PathResult {
    let result = |outcome| PathResult {
        id: format!("luks:{uuid}"),
        name: format!("LUKS2 volume {} ({uuid})", device.display()),
        outcome,
    };
    let Some(key) = key else {
        return result(Outcome::NotProven(
            "the key: no slot opened unattended (give the code with --code-file F)".into(),
        ));
    };
    let mut volume = match Volume::open(device) {
        Ok(volume) if volume.uuid().eq_ignore_ascii_case(uuid) => volume,
        Ok(volume) => {
            return result(Outcome::Broken(format!("it now holds volume {}", volume.uuid())));
        }
        Err(e) => return result(Outcome::Broken(e.to_string())),
    };
    let keyslot = match check_keyslot(&mut volume, key) {
        Ok(KeyslotCheck::Opens(entry)) => entry.record.keyslot,
        Ok(KeyslotCheck::DoesNotOpen(entry)) => {
            return result(Outcome::Broken(format!(
                "keyward's keyslot {} does not open with the key's passphrase",
                entry.record.keyslot
            )));
        }
        Ok(KeyslotCheck::KeyslotGone(entry)) => {
            return result(Outcome::Broken(format!(
                "keyward's keyslot {} is gone (its token is left): `keyward luks enroll` it again",
                entry.record.keyslot
            )));
        }
        Ok(KeyslotCheck::NotEnrolled) => {
            return result(Outcome::Broken("it has no keyward keyslot".into()));
        }
        Ok(KeyslotCheck::Unsettled(why)) => return result(Outcome::NotProven(why)),
        Err(e) => return result(Outcome::Broken(e.to_string())),
    };
    let mut detail = format!("keyslot {keyslot} opens");
    match hub {
        None => {}
        Some(Err(e)) => return result(Outcome::Broken(format!("the hubs cannot be asked: {e}"))),
        Some(Ok((enrollment, identity, hubs))) => {
            let state = match volume.metadata() {
                Ok(metadata) => keyward_luks::escrow::header_state(&metadata),
                Err(e) => return result(Outcome::Broken(e.to_string())),
            };
            let held = match escrow::header_copies(hubs, enrollment, identity) {
                Ok(held) => held,
                Err(e) => return result(Outcome::Broken(e.to_string())),
            };
            let push = format!("keyward luks header-backup {} --push", device.display());
            match HubHeaderCopy::of(&held, uuid, &state) {
                HubHeaderCopy::Current { .. } => {
                    detail.push_str("; the hubs' header copy is current")
                }
                HubHeaderCopy::Stale { .. } => {
                    return result(Outcome::Broken(format!(
                        "the hubs' header copy is stale (the header changed since): {push}"
                    )));
                }
                HubHeaderCopy::Missing => {
                    return result(Outcome::Broken(format!(
                        "the hubs hold no copy of its header: {push}"
                    )));
                }
                HubHeaderCopy::Unknown { .. } => {
                    return result(Outcome::Broken(format!(
                        "the hubs' header copy has no state to compare: {push}"
                    )));
                }
            }
        }
    }
    result(Outcome::Ok(detail))
}

/// Sends the drill's result to the box's hubs as signed evidence (`POST /v1/drills`): the
/// first that answers keeps it for the operator's fleet view. `Ok(None)`: the box is enrolled at
/// no hub.
pub fn report(
    path: &Path,
    files: &SecretFiles,
    drill: &Drill,
) -> BoxResult<Option<keyward_hub::api::DrillRecorded>> {
    let Some((enrollment, identity, hubs)) = escrow::enrollment_if_any(path, files)? else {
        return Ok(None);
    };
    let report = keyward_hub::api::DrillReport {
        version: keyward_hub::api::DRILL_REPORT_VERSION,
        paths: drill
            .paths
            .iter()
            .map(|p| {
                let (state, detail) = match &p.outcome {
                    Outcome::Ok(detail) => ("ok", detail),
                    Outcome::Broken(why) => ("broken", why),
                    Outcome::NotProven(needs) => ("not_proven", needs),
                };
                keyward_hub::api::DrillPath {
                    id: p.id.clone(),
                    name: fitted(&p.name),
                    state: state.into(),
                    detail: fitted(detail),
                }
            })
            .collect(),
    };
    let name = &enrollment.box_name;
    let recorded = crate::runtime::block_on(
        hubs.first_answer(async |hub| hub.report_drill(name, &identity, &report).await),
    )?;
    Ok(Some(recorded))
}

/// Words as a hub takes them: no control or text-reordering characters, at most 1,000 bytes
/// (cut at a character).
fn fitted(text: &str) -> String {
    let shown = |c| if keyward_service::text::shown_escaped(c) { ' ' } else { c };
    let mut out: String = text.chars().map(shown).collect();
    if out.len() > 1000 {
        let mut end = 1000;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
        out.push('…');
    }
    out
}

/// Notes the paths proven now beside the keybox, and returns what the state says of each.
pub fn note(keybox: &Path, drill: &Drill) -> BoxResult<DrillState> {
    let file = BoxFiles::beside(keybox).drill;
    let mut state: DrillState = config::read_or_default(&file)?;
    for path in &drill.paths {
        if matches!(path.outcome, Outcome::Ok(_)) {
            state.last_success.insert(path.id.clone(), drill.at);
        }
    }
    // Paths that are gone (a removed slot, a forgotten volume) leave the state.
    state.last_success.retain(|id, _| drill.paths.iter().any(|p| &p.id == id));
    config::replace(&file, &state)?;
    Ok(state)
}

/// Writes the drill as node_exporter reads it (`prometheus`) to `file` crash-atomically, mode
/// 0644: the collector runs as another user, and nothing in it is secret.
pub fn write_textfile(file: &Path, drill: &Drill, state: &DrillState) -> BoxResult<()> {
    keyward_core::store::write_public_file(&RealFs, file, prometheus(drill, state).as_bytes())?;
    Ok(())
}

/// The drill as node_exporter's textfile collector reads it: per path, 1 (ok), 0 (broken) or
/// -1 (not proven), and when it was last proven.
fn prometheus(drill: &Drill, state: &DrillState) -> String {
    let label = |text: &str| text.replace('\\', "\\\\").replace('"', "\\\"");
    let mut out = String::from(
        "# HELP keyward_drill_path_ok Whether the last keyward drill proved the path: 1 ok, 0 broken, -1 not proven.\n# TYPE keyward_drill_path_ok gauge\n",
    );
    for path in &drill.paths {
        let value = match path.outcome {
            Outcome::Ok(_) => 1,
            Outcome::Broken(_) => 0,
            Outcome::NotProven(_) => -1,
        };
        out.push_str(&format!("keyward_drill_path_ok{{path=\"{}\"}} {value}\n", label(&path.id)));
    }
    out.push_str("# HELP keyward_drill_path_last_success_timestamp_seconds When the path was last proven.\n# TYPE keyward_drill_path_last_success_timestamp_seconds gauge\n");
    for (id, at) in &state.last_success {
        out.push_str(&format!(
            "keyward_drill_path_last_success_timestamp_seconds{{path=\"{}\"}} {at}\n",
            label(id)
        ));
    }
    out.push_str(&format!(
        "# HELP keyward_drill_timestamp_seconds When the last drill ran.\n# TYPE keyward_drill_timestamp_seconds gauge\nkeyward_drill_timestamp_seconds {}\n",
        drill.at
    ));
    out
}
