//! The unlock plan: how a keybox is opened. The secret given, else the slot named (which asks
//! for what it needs: a person, its device, its peers), else every slot that opens with nobody
//! there, else — if a [`Person`] is there — a prompt. The slots themselves say what they need;
//! this module only answers them (`Answers`), so it names no slot kind.

use std::path::Path;

use keyward_core::keybox::UnlockedKeybox;
use keyward_core::operations::Authorization;
use keyward_core::slot::{Channel, Companion, OpenPurpose, SecretSource, SlotError, Want};
use keyward_core::{
    Error as CoreError, Keybox, KeyfileContents, Passphrase, RecoveryCode, SlotId, Unlocker,
};
use zeroize::Zeroizing;

use crate::config::BoxFiles;
use crate::error::{BoxError, BoxResult, invalid};
use crate::secrets::{GivenSecret, Person, SecretFiles};

/// Why a slot that needs a person does not open when nobody is there.
const NOBODY_THERE: &str = "no terminal to prompt on; give the secret with a file option";

/// What a caller asks of the plan.
#[derive(Debug, Default)]
pub struct UnlockRequest<'a> {
    /// A secret given explicitly: it opens the keybox or nothing does.
    pub given: Option<GivenSecret>,
    /// The slot to open (by number or label); else any.
    pub slot: Option<&'a str>,
    /// A peer release ticket, for a peers slot named.
    pub release_ticket: Option<&'a Path>,
}

/// Opens `keybox` (read from `path`) as `request` asks, asking `person` if one is there.
pub fn open<'a>(
    keybox: &Keybox,
    path: &'a Path,
    files: &'a SecretFiles,
    request: UnlockRequest<'a>,
    mut person: Option<&'a mut dyn Person>,
) -> BoxResult<UnlockedKeybox> {
    let only = match request.slot {
        Some(name) => Some(keybox.find_slot(name)?.id),
        None => None,
    };
    if let Some(given) = request.given {
        // A PIN is for one device: tried on every PIN slot, one typo would spend the retries
        // of each.
        if matches!(given, GivenSecret::Pin(_)) && only.is_none() {
            return Err(invalid(
                "a PIN opens one slot: name it with --unlock-slot N (--slot N for unlock and verify)",
            ));
        }
        return Ok(keybox.unlock(&given.unlocker(), only, path)?);
    }
    if only.is_some() {
        // The slot named may ask for anything: a person, its device, its peers.
        let mut answers = Answers::new(files, path, Reach::Everything, keybox, only);
        answers.release_ticket = request.release_ticket;
        answers.person = person;
        return Ok(keybox.open_with(&mut answers, None, only, path)?);
    }
    // Every slot that opens with nobody there, in order: a key file that changed must not hide a
    // plain slot. Then, if a person is there, a prompt.
    let first_error = {
        // The person, if there, only reads this pass's notices: nothing is asked in it.
        let mut unattended = Answers::new(files, path, Reach::Unattended, keybox, None);
        unattended.person = person.as_deref_mut().map(|p| p as &mut dyn Person);
        match keybox.open_with(&mut unattended, None, None, path) {
            Ok(opened) => return Ok(opened),
            Err(e @ (CoreError::WrongSecret { .. } | CoreError::NoUnattendedSlot)) => e,
            Err(e @ CoreError::Slot { .. }) => e,
            Err(e) => return Err(e.into()),
        }
    };
    let mut prompted = Answers::new(files, path, Reach::Prompts, keybox, None);
    let Some(person) = person.take().filter(|_| !prompted.typed.is_empty()) else {
        return Err(first_error.into());
    };
    if !matches!(first_error, CoreError::NoUnattendedSlot) {
        person.notice(&first_error.to_string());
    }
    prompted.person = Some(person);
    // A typed code or passphrase that opens nothing is asked again, up to three times in all:
    // a typo costs a retry, not the command.
    let mut tries = 1;
    loop {
        match keybox.open_with(&mut prompted, None, None, path) {
            Err(e @ CoreError::WrongSecret { .. })
                if tries < TYPED_TRIES && prompted.typed_answer.is_some() =>
            {
                tries += 1;
                prompted.forget_typed();
                prompted.notice(&format!("{e} (asked again: {tries} of {TYPED_TRIES})"));
            }
            opened => return Ok(opened?),
        }
    }
}

/// How often a typed code or passphrase is asked for in all when it opens nothing.
const TYPED_TRIES: usize = 3;

/// Opens `keybox` with nobody there (the agent's re-unlock after its key's time is up): the
/// slot named, with what it records (its files, its device, the box's identity for its peers),
/// else every slot that opens unattended.
pub fn open_unattended(
    keybox: &Keybox,
    path: &Path,
    files: &SecretFiles,
    slot: Option<&str>,
) -> BoxResult<UnlockedKeybox> {
    let (reach, only) = match slot {
        Some(name) => (Reach::Everything, Some(keybox.find_slot(name)?.id)),
        None => (Reach::Unattended, None),
    };
    let mut answers = Answers::new(files, path, reach, keybox, only);
    Ok(keybox.open_with(&mut answers, None, only, path)?)
}

/// What [`open_unattended`] would try, without trying it: the slot named (which must exist),
/// else every slot that opens with nobody there, each as "slot ID (KIND, LABEL)". An error says
/// why there is none: the next unattended open would be refused.
pub fn unattended_route(keybox: &Keybox, slot: Option<&str>) -> Result<Vec<String>, String> {
    let name = |id: SlotId, kind: &str, label: &str| format!("slot {id} ({kind}, {label})");
    if let Some(named) = slot {
        let record = keybox.find_slot(named).map_err(|e| e.to_string())?;
        return Ok(vec![name(record.id, &record.protection.kind, &record.label)]);
    }
    let route: Vec<String> = keybox
        .read_slots()
        .filter(|(_, read)| read.is_some_and(|r| r.is_unattended()))
        .map(|(record, _)| name(record.id, &record.protection.kind, &record.label))
        .collect();
    if route.is_empty() {
        return Err("no slot of the keybox opens with nobody there".into());
    }
    Ok(route)
}

/// Opens slot `only` to prove that it opens (`keyward drill`, `keyward verify`): with what it
/// records (a file gone from its recorded path is a failure here, not "not this slot"), the
/// box's identity for its peers (who are told it is a drill), a release ticket if one is given,
/// and `person` if one is there to ask.
pub fn prove_slot<'a>(
    keybox: &Keybox,
    only: SlotId,
    path: &'a Path,
    files: &'a SecretFiles,
    release_ticket: Option<&'a Path>,
    person: Option<&'a mut dyn Person>,
) -> BoxResult<UnlockedKeybox> {
    let mut answers = Answers::new(files, path, Reach::Everything, keybox, Some(only));
    answers.missing_file_fails = true;
    answers.purpose = OpenPurpose::Drill;
    answers.release_ticket = release_ticket;
    answers.person = person;
    Ok(keybox.open_with(&mut answers, None, Some(only), path)?)
}

/// The authorization for a change, from a keybox opened once already: the change opens the same
/// slot again under the keybox lock, with nothing asked twice.
pub fn authorization(opened: &UnlockedKeybox) -> BoxResult<Authorization<'_>> {
    opened.slot_key().map(Authorization::Opened).ok_or_else(|| {
        BoxError::Core(CoreError::Internal("an opened keybox without the slot that opened it"))
    })
}

/// What a change gives the kind of a slot it drops ([`keyward_core::slot::Slot::retire`]): the
/// box's identity beside the keybox (a peers slot deletes its shares with it), no secrets, and
/// its notices on stderr as warnings.
pub struct Companions<'a> {
    files: &'a SecretFiles,
    keybox_path: &'a Path,
}

impl<'a> Companions<'a> {
    /// The companions of the keybox at `keybox_path`.
    pub fn new(files: &'a SecretFiles, keybox_path: &'a Path) -> Self {
        Companions { files, keybox_path }
    }
}

impl SecretSource for Companions<'_> {
    fn secret(&mut self, _want: &Want<'_>) -> Result<Option<Unlocker<'_>>, SlotError> {
        Ok(None)
    }

    fn companion(&mut self, what: Companion) -> Result<Option<Zeroizing<Vec<u8>>>, SlotError> {
        match what {
            Companion::BoxIdentity => box_identity(self.files, self.keybox_path).map(Some),
            _ => Ok(None),
        }
    }

    fn notice(&mut self, text: &str) {
        warn_on_stderr(text);
    }
}

/// The box's identity file beside the keybox, saying what makes it when it is not there.
fn box_identity(files: &SecretFiles, keybox_path: &Path) -> Result<Zeroizing<Vec<u8>>, SlotError> {
    let path = BoxFiles::beside(keybox_path).identity;
    match files.bytes(&path) {
        Ok(bytes) => Ok(bytes),
        Err(BoxError::Core(CoreError::Io { source, .. })) => Err(CoreError::io(
            "cannot read the box's identity (made by `keyward enroll peers`)",
            &path,
            source,
        )
        .into()),
        Err(e) => Err(e.into()),
    }
}

/// A notice with nobody to tell: the process's log (stderr) says it instead, without control
/// characters a peer's text might carry.
pub(crate) fn warn_on_stderr(text: &str) {
    let text: String = text.chars().filter(|c| !c.is_control()).collect();
    eprintln!("keyward: warning: {text}");
}

/// How far [`Answers`] go to answer a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// Nothing a person does: "nothing" for a slot that needs nothing, a file at the path a
    /// slot records.
    Unattended,
    /// The person only.
    Prompts,
    /// Both, and companion files (the box identity, a release ticket): for a slot named.
    Everything,
}

/// The answers to slots: files at recorded paths, the person (one answer for every slot that
/// takes a code or a passphrase, one PIN per slot), the box's identity beside the keybox, a
/// release ticket.
struct Answers<'a> {
    files: &'a SecretFiles,
    keybox_path: &'a Path,
    reach: Reach,
    person: Option<&'a mut dyn Person>,
    release_ticket: Option<&'a Path>,
    /// The typed channels of the slots that may ask: they decide the prompt's words.
    typed: Vec<Channel>,
    typed_answer: Option<Zeroizing<String>>,
    code: Option<RecoveryCode>,
    passphrase: Option<Passphrase>,
    pins: Vec<(SlotId, Passphrase)>,
    keyfile: Option<KeyfileContents>,
    /// Whether a file missing at its recorded path is an error rather than "not this slot".
    missing_file_fails: bool,
    /// Why the key is opened (a check tells the peers it is a drill).
    purpose: OpenPurpose,
}

impl<'a> Answers<'a> {
    fn new(
        files: &'a SecretFiles,
        keybox_path: &'a Path,
        reach: Reach,
        keybox: &Keybox,
        only: Option<SlotId>,
    ) -> Self {
        let mut typed = Vec::new();
        for (_, slot) in keybox.read_slots().filter(|(s, _)| only.is_none_or(|id| s.id == id)) {
            let channel = slot.map(|slot| slot.channel());
            if let Some(channel) = channel.filter(|c| c.is_typed() && !typed.contains(c)) {
                typed.push(channel);
            }
        }
        Answers {
            files,
            keybox_path,
            reach,
            person: None,
            release_ticket: None,
            typed,
            typed_answer: None,
            code: None,
            passphrase: None,
            pins: Vec::new(),
            keyfile: None,
            missing_file_fails: false,
            purpose: OpenPurpose::Use,
        }
    }

    /// Whether a person may be asked (if none is there, asking fails, naming the way out).
    fn asks(&self) -> bool {
        self.reach != Reach::Unattended
    }

    /// Whether files a slot records may be read.
    fn reads_recorded_files(&self) -> bool {
        self.reach != Reach::Prompts
    }

    /// Forgets the typed answer and what was made of it, so the person is asked again.
    fn forget_typed(&mut self) {
        self.typed_answer = None;
        self.code = None;
        self.passphrase = None;
    }

    /// The one answer to "passphrase or recovery code", asked once.
    fn typed_answer(&mut self) -> BoxResult<&Zeroizing<String>> {
        let answer = match (self.typed_answer.take(), self.person.as_deref_mut()) {
            (Some(answer), _) => answer,
            (None, Some(person)) => person.typed_secret(&self.typed)?,
            (None, None) => return Err(invalid(NOBODY_THERE)),
        };
        Ok(self.typed_answer.insert(answer))
    }

    fn answer(&mut self, want: &Want<'_>) -> BoxResult<Option<Unlocker<'_>>> {
        // A file a slot records is read only at an absolute path (never stdin, never relative to
        // wherever this runs); the keybox's MAC is not checked until a slot opened.
        let recorded = want.recorded_file.filter(|path| path.is_absolute());
        Ok(match want.channel {
            Channel::Nothing if self.reads_recorded_files() => Some(Unlocker::Unattended),
            Channel::KeyFile if self.reads_recorded_files() => {
                let Some(path) = recorded else { return Ok(None) };
                // A key file that is not here (a removed USB stick) just means "not this slot".
                match self.files.keyfile_to_open(path) {
                    Ok(contents) => Some(Unlocker::Keyfile(self.keyfile.insert(contents))),
                    Err(BoxError::Core(CoreError::Io { source, .. }))
                        if self.missing_file_fails =>
                    {
                        return Err(CoreError::io(
                            "cannot read the key file of this slot",
                            path,
                            source,
                        )
                        .into());
                    }
                    Err(e) if self.missing_file_fails => return Err(e),
                    Err(_) => None,
                }
            }
            Channel::RecoveryCode if self.asks() => {
                if self.code.is_none() {
                    let alone = !self.typed.contains(&Channel::Passphrase);
                    match RecoveryCode::parse(self.typed_answer()?) {
                        Ok(code) => self.code = Some(code),
                        // Typed text that is no code may still be the passphrase.
                        Err(e) if alone => return Err(CoreError::from(e).into()),
                        Err(_) => return Ok(None),
                    }
                }
                self.code.as_ref().map(Unlocker::RecoveryCode)
            }
            Channel::Passphrase if self.asks() => {
                if self.passphrase.is_none() {
                    let bytes = Zeroizing::new(self.typed_answer()?.as_bytes().to_vec());
                    self.passphrase = Some(Passphrase::new(bytes));
                }
                self.passphrase.as_ref().map(Unlocker::Passphrase)
            }
            Channel::Pin => self.pin(want, recorded)?,
            _ => None,
        })
    }

    /// A slot's PIN: from the file the slot records (unattended), else from the person; asked
    /// once per slot.
    fn pin(&mut self, want: &Want<'_>, recorded: Option<&Path>) -> BoxResult<Option<Unlocker<'_>>> {
        if !self.pins.iter().any(|(slot, _)| *slot == want.slot) {
            let from_file = match recorded.filter(|_| self.reads_recorded_files()) {
                Some(path) if path.exists() => {
                    // A PIN file others can read or replace is refused, never used.
                    self.files.check_recorded_pin_file(path)?;
                    Some(self.files.passphrase(path)?)
                }
                // Not there: a failure for a check, else the person (if one may be asked) types it.
                Some(path) if self.missing_file_fails => {
                    let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
                    return Err(
                        CoreError::io("cannot read this slot's PIN file", path, missing).into()
                    );
                }
                _ => None,
            };
            let asks = self.asks();
            let pin = match (from_file, self.person.as_deref_mut()) {
                (Some(pin), _) => pin,
                (None, Some(person)) if asks => person.pin(want.slot, want.label)?,
                (None, None) if asks => return Err(invalid(NOBODY_THERE)),
                _ => return Ok(None),
            };
            self.pins.push((want.slot, pin));
        }
        Ok(self.pins.iter().find(|(slot, _)| *slot == want.slot).map(|(_, pin)| Unlocker::Pin(pin)))
    }
}

impl SecretSource for Answers<'_> {
    fn secret(&mut self, want: &Want<'_>) -> Result<Option<Unlocker<'_>>, SlotError> {
        self.answer(want).map_err(SlotError::from)
    }

    fn companion(&mut self, what: Companion) -> Result<Option<Zeroizing<Vec<u8>>>, SlotError> {
        if self.reach != Reach::Everything {
            return Ok(None);
        }
        match what {
            Companion::BoxIdentity => box_identity(self.files, self.keybox_path).map(Some),
            Companion::ReleaseTicket => match self.release_ticket {
                Some(path) => Ok(Some(self.files.bytes(path)?)),
                None => Ok(None),
            },
            _ => Ok(None),
        }
    }

    fn notice(&mut self, text: &str) {
        match self.person.as_deref_mut() {
            Some(person) => person.notice(text),
            None => warn_on_stderr(text),
        }
    }
    fn purpose(&self) -> OpenPurpose {
        self.purpose
    }
}
