//! Opening a keybox from the command line: the secret an option gives, else the slot named (which
//! asks for what it needs: a prompt, its peers), else every slot that opens with nobody there,
//! else a prompt on the terminal. The slots themselves say what they need; this module only
//! answers them ([`CliSource`]), so it names no slot kind.

use std::path::{Path, PathBuf};

use keyward_core::keybox::UnlockedKeybox;
use keyward_core::operations::Authorization;
use keyward_core::slot::{Channel, Companion, SecretSource, SlotError, Want};
use keyward_core::{
    Error as CoreError, Keybox, KeyfileContents, Passphrase, RecoveryCode, SlotId, Unlocker,
};
use zeroize::Zeroizing;

use crate::cli::AuthArgs;
use crate::exit::{CliError, CliResult, usage};
use crate::hub_io::enrollment_paths;
use crate::output::warn;
use crate::secret_input::{SecretReader, prompt_hidden, prompt_secret, terminal_available};

/// A secret that an option gave, owned.
#[derive(Debug)]
pub enum GivenSecret {
    /// A recovery code.
    Code(RecoveryCode),
    /// A passphrase.
    Passphrase(Passphrase),
    /// A key file's contents.
    Keyfile(KeyfileContents),
    /// A device PIN.
    Pin(Passphrase),
}

impl GivenSecret {
    /// As the library's unlocker.
    pub fn unlocker(&self) -> Unlocker<'_> {
        match self {
            GivenSecret::Code(c) => Unlocker::RecoveryCode(c),
            GivenSecret::Passphrase(p) => Unlocker::Passphrase(p),
            GivenSecret::Keyfile(k) => Unlocker::Keyfile(k),
            GivenSecret::Pin(p) => Unlocker::Pin(p),
        }
    }
}

/// The secret an explicit option gives (`--code-file`, `--passphrase-file`, `--keyfile`,
/// `--pin-file`, or their `--unlock-…` forms), if one was given; more than one is a usage error.
pub fn explicit_secret(args: &AuthArgs, reader: &SecretReader) -> CliResult<Option<GivenSecret>> {
    if args.secrets_given() > 1 {
        return Err(usage(
            "give one secret to open the keybox (a code, a passphrase, a key file or a PIN), not several",
        ));
    }
    Ok(if let Some(path) = &args.unlock_code_file {
        Some(GivenSecret::Code(reader.code(path)?))
    } else if let Some(path) = &args.unlock_passphrase_file {
        Some(GivenSecret::Passphrase(reader.passphrase(path)?))
    } else if let Some(path) = &args.unlock_keyfile {
        Some(GivenSecret::Keyfile(reader.keyfile_to_open(path)?))
    } else if let Some(path) = &args.unlock_pin_file {
        Some(GivenSecret::Pin(reader.passphrase(path)?))
    } else {
        None
    })
}

/// Opens `keybox` the way `args` allow.
pub fn open(
    args: &AuthArgs,
    keybox: &Keybox,
    path: &Path,
    reader: &SecretReader,
) -> CliResult<UnlockedKeybox> {
    let only = match &args.unlock_slot {
        Some(name) => Some(keybox.find_slot(name)?.id),
        None => None,
    };
    if let Some(given) = explicit_secret(args, reader)? {
        // A PIN is for one device: tried on every PIN slot, one typo would spend the retries
        // of each.
        if matches!(given, GivenSecret::Pin(_)) && only.is_none() {
            return Err(usage(
                "a PIN opens one slot: name it with --unlock-slot N (--slot N for unlock and verify)",
            ));
        }
        return Ok(keybox.unlock(&given.unlocker(), only, path)?);
    }
    let ticket = args.unlock_release_ticket.as_deref();
    if only.is_some() {
        // The slot named may ask for anything: a prompt, its device, its peers.
        let mut source = CliSource::new(reader, path, Reach::Everything, ticket, keybox, only);
        return Ok(keybox.open_with(&mut source, None, only, path)?);
    }
    // Every slot that opens with nobody there, in order: a key file that changed must not hide a
    // plain slot. Then, if a person is there, a prompt.
    let mut unattended = CliSource::new(reader, path, Reach::Unattended, None, keybox, None);
    let first_error = match keybox.open_with(&mut unattended, None, None, path) {
        Ok(opened) => return Ok(opened),
        Err(e @ (CoreError::WrongSecret { .. } | CoreError::NoUnattendedSlot)) => e,
        Err(e @ CoreError::Slot { .. }) => e,
        Err(e) => return Err(e.into()),
    };
    let mut prompted = CliSource::new(reader, path, Reach::Prompts, None, keybox, None);
    if !terminal_available() || prompted.typed.is_empty() {
        return Err(first_error.into());
    }
    if !matches!(first_error, CoreError::NoUnattendedSlot) {
        warn(&first_error.to_string());
    }
    Ok(keybox.open_with(&mut prompted, None, None, path)?)
}

/// Opens slot `only` with what it opens with unattended (for `verify`).
pub fn open_unattended(
    keybox: &Keybox,
    only: SlotId,
    path: &Path,
    reader: &SecretReader,
) -> CliResult<UnlockedKeybox> {
    let mut source = CliSource::new(reader, path, Reach::Unattended, None, keybox, Some(only));
    // A check names what is missing: a recorded key file that is gone is a failure here.
    source.missing_file_fails = true;
    Ok(keybox.open_with(&mut source, None, Some(only), path)?)
}

/// The authorization for a change, from a keybox opened once already: the change opens the same
/// slot again under the keybox lock, with nothing asked twice.
pub fn authorization(opened: &UnlockedKeybox) -> CliResult<Authorization<'_>> {
    opened.slot_key().map(Authorization::Opened).ok_or_else(|| {
        CliError::Core(CoreError::Internal("an opened keybox without the slot that opened it"))
    })
}

/// How far a [`CliSource`] goes to answer a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// Nothing a person does: "nothing" for a slot that needs nothing, a key file at the path a
    /// slot records.
    Unattended,
    /// Prompts on the terminal only.
    Prompts,
    /// Both, and companion files (the box identity, a release ticket): for a slot named.
    Everything,
}

/// The CLI's answers to slots: files at recorded paths, prompts (one answer for every slot that
/// takes a code or a passphrase), the box's identity beside the keybox, a release ticket.
struct CliSource<'a> {
    reader: &'a SecretReader,
    keybox_path: &'a Path,
    reach: Reach,
    release_ticket: Option<&'a Path>,
    /// The typed channels of the slots that may ask: they decide the prompt's words.
    typed: Vec<Channel>,
    typed_answer: Option<Zeroizing<String>>,
    code: Option<RecoveryCode>,
    passphrase: Option<Passphrase>,
    pins: Vec<(SlotId, Passphrase)>,
    keyfile: Option<KeyfileContents>,
    /// Whether a key file missing at its recorded path is an error rather than "not this slot".
    missing_file_fails: bool,
}

impl<'a> CliSource<'a> {
    fn new(
        reader: &'a SecretReader,
        keybox_path: &'a Path,
        reach: Reach,
        release_ticket: Option<&'a Path>,
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
        CliSource {
            reader,
            keybox_path,
            reach,
            release_ticket,
            typed,
            typed_answer: None,
            code: None,
            passphrase: None,
            pins: Vec::new(),
            keyfile: None,
            missing_file_fails: false,
        }
    }

    fn prompts(&self) -> bool {
        self.reach != Reach::Unattended
    }

    /// The one answer to "passphrase or recovery code", asked once.
    fn typed_answer(&mut self) -> CliResult<&Zeroizing<String>> {
        let answer = match self.typed_answer.take() {
            Some(answer) => answer,
            None => {
                let code = self.typed.contains(&Channel::RecoveryCode);
                let passphrase = self.typed.contains(&Channel::Passphrase);
                prompt_hidden(match (code, passphrase) {
                    (true, true) => "Passphrase or recovery code: ",
                    (true, false) => "Recovery code: ",
                    _ => "Passphrase: ",
                })?
            }
        };
        Ok(self.typed_answer.insert(answer))
    }

    fn answer(&mut self, want: &Want<'_>) -> CliResult<Option<Unlocker<'_>>> {
        // A file a slot records is read only at an absolute path (never stdin, never relative to
        // wherever this runs); the keybox's MAC is not checked until a slot opened.
        let recorded = want.recorded_file.filter(|path| path.is_absolute());
        Ok(match want.channel {
            Channel::Nothing if self.reach != Reach::Prompts => Some(Unlocker::Unattended),
            Channel::KeyFile if self.reach != Reach::Prompts => {
                let Some(path) = recorded else { return Ok(None) };
                // A key file that is not here (a removed USB stick) just means "not this slot".
                match self.reader.keyfile_to_open(path) {
                    Ok(contents) => Some(Unlocker::Keyfile(self.keyfile.insert(contents))),
                    Err(CliError::Core(CoreError::Io { source, .. }))
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
            Channel::RecoveryCode if self.prompts() => {
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
            Channel::Passphrase if self.prompts() => {
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

    /// A slot's PIN: from the file the slot records (unattended), else typed at a prompt; asked
    /// once per slot.
    fn pin(&mut self, want: &Want<'_>, recorded: Option<&Path>) -> CliResult<Option<Unlocker<'_>>> {
        if !self.pins.iter().any(|(slot, _)| *slot == want.slot) {
            let from_file = match recorded.filter(|_| self.reach != Reach::Prompts) {
                Some(path) if path.exists() => {
                    // A PIN file others can read or replace is refused, never used.
                    self.reader.check_recorded_pin_file(path)?;
                    Some(self.reader.passphrase(path)?)
                }
                // Not there: a failure for a check, else a person (if one may be asked) types it.
                Some(path) if self.missing_file_fails => {
                    let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
                    return Err(
                        CoreError::io("cannot read this slot's PIN file", path, missing).into()
                    );
                }
                _ => None,
            };
            let pin = match from_file {
                Some(pin) => pin,
                None if self.prompts() => {
                    prompt_secret(&format!("PIN for slot {} (\"{}\"): ", want.slot, want.label))?
                }
                None => return Ok(None),
            };
            self.pins.push((want.slot, pin));
        }
        Ok(self.pins.iter().find(|(slot, _)| *slot == want.slot).map(|(_, pin)| Unlocker::Pin(pin)))
    }

    fn companion_file(&self, what: Companion) -> Option<PathBuf> {
        match what {
            Companion::BoxIdentity => Some(enrollment_paths(self.keybox_path).1),
            Companion::ReleaseTicket => self.release_ticket.map(Path::to_path_buf),
            _ => None,
        }
    }
}

impl SecretSource for CliSource<'_> {
    fn secret(&mut self, want: &Want<'_>) -> Result<Option<Unlocker<'_>>, SlotError> {
        self.answer(want).map_err(into_slot_error)
    }

    fn companion(&mut self, what: Companion) -> Result<Option<Zeroizing<Vec<u8>>>, SlotError> {
        if self.reach != Reach::Everything {
            return Ok(None);
        }
        let Some(path) = self.companion_file(what) else { return Ok(None) };
        match self.reader.bytes(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            // The box identity is looked for beside the keybox: say what makes it.
            Err(CliError::Core(CoreError::Io { source, .. })) if what == Companion::BoxIdentity => {
                Err(CoreError::io(
                    "cannot read the box's identity (made by `keyward enroll peers`)",
                    &path,
                    source,
                )
                .into())
            }
            Err(e) => Err(into_slot_error(e)),
        }
    }

    fn notice(&mut self, text: &str) {
        warn(text);
    }
}

/// A CLI error met while answering a slot, handed through the slot (and back to the CLI, by
/// `From<CoreError> for CliError`) unchanged.
fn into_slot_error(error: CliError) -> SlotError {
    match error {
        CliError::Core(e) => e.into(),
        other => SlotError::Other(Box::new(other)),
    }
}

#[cfg(test)]
mod tests {
    use keyward_core::kdf::{KEK_LEN, Kek};
    use keyward_core::keybox::NewKeybox;
    use keyward_core::slot::{
        NewSlot, OpenContext, Slot, SlotError, SlotKind, SlotParams, registry,
    };
    use keyward_core::{DataKey, IntegrityFailure};
    use serde_json::{Value, json};
    use sha2::{Digest, Sha256};

    use super::*;

    /// A device-like kind that opens with a PIN, from a file it records or one given.
    #[derive(Debug)]
    struct PinKind;
    #[derive(Debug)]
    struct PinSlot(Option<PathBuf>);
    #[derive(Debug)]
    struct NewPin(Passphrase, Option<PathBuf>);

    fn kek(pin: &Passphrase) -> Kek {
        let digest: [u8; KEK_LEN] = Sha256::digest(pin.expose()).into();
        Zeroizing::new(digest)
    }

    impl SlotKind for PinKind {
        fn name(&self) -> &'static str {
            "pin-test"
        }
        fn about(&self) -> &'static str {
            "a test kind"
        }
        fn read(&self, params: &Value) -> Result<Box<dyn Slot>, IntegrityFailure> {
            Ok(Box::new(PinSlot(params["pin_file"].as_str().map(PathBuf::from))))
        }
    }

    impl Slot for PinSlot {
        fn channel(&self) -> Channel {
            Channel::Pin
        }
        fn is_unattended(&self) -> bool {
            self.0.is_some()
        }
        fn describe(&self) -> String {
            "a PIN".into()
        }
        fn open(&self, ctx: &mut OpenContext<'_>) -> Result<Option<Kek>, SlotError> {
            match ctx.want(Channel::Pin, self.0.as_deref())? {
                Some(Unlocker::Pin(pin)) => Ok(Some(kek(pin))),
                _ => Ok(None),
            }
        }
    }

    impl NewSlot for NewPin {
        fn kind(&self) -> &'static str {
            "pin-test"
        }
        fn seal(
            &self,
            _at: &keyward_core::slot::SealContext,
        ) -> Result<(SlotParams, Kek), SlotError> {
            let params = json!({ "pin_file": self.1.as_ref().map(|p| p.display().to_string()) });
            Ok((SlotParams { kind: "pin-test".into(), params }, kek(&self.0)))
        }
        fn unlocker(&self) -> Unlocker<'_> {
            Unlocker::Pin(&self.0)
        }
    }

    fn pin(text: &str) -> Passphrase {
        Passphrase::new(Zeroizing::new(text.as_bytes().to_vec()))
    }

    fn keybox_with_pin_slot(recorded: Option<PathBuf>) -> Keybox {
        registry::register(&[&PinKind]).expect("one list of kinds");
        let key = DataKey::generate(32).expect("key");
        let created =
            Keybox::create(NewKeybox::new(key, "pin", None), &NewPin(pin("1234"), recorded))
                .expect("create");
        created.keybox().clone()
    }

    #[test]
    fn a_pin_file_given_or_recorded_opens_a_pin_slot_and_a_wrong_one_does_not() {
        let folder = tempfile::tempdir().expect("tempdir");
        let right = folder.path().join("pin");
        let wrong = folder.path().join("wrong");
        std::fs::write(&right, "1234\n").expect("write");
        std::fs::write(&wrong, "4321\n").expect("write");
        let private = std::os::unix::fs::PermissionsExt::from_mode(0o600);
        std::fs::set_permissions(&right, private).expect("chmod");
        let reader = SecretReader::new();
        let path = Path::new("k");

        let keybox = keybox_with_pin_slot(None);
        let given = |file: &Path| AuthArgs {
            unlock_pin_file: Some(file.into()),
            unlock_slot: Some("1".into()),
            ..AuthArgs::default()
        };
        let unnamed = AuthArgs { unlock_slot: None, ..given(&right) };
        assert!(matches!(open(&unnamed, &keybox, path, &reader), Err(CliError::Usage(_))));
        open(&given(&right), &keybox, path, &reader).expect("the right PIN opens");
        let refused = open(&given(&wrong), &keybox, path, &reader).expect_err("a wrong PIN");
        assert!(matches!(refused, CliError::Core(CoreError::WrongSecret { .. })), "{refused:?}");
        // Nothing given, no PIN recorded, no terminal here: nothing opens it unattended.
        assert!(open(&AuthArgs::default(), &keybox, path, &reader).is_err());

        let recorded = keybox_with_pin_slot(Some(right.clone()));
        open(&AuthArgs::default(), &recorded, path, &reader).expect("the recorded PIN file opens");
        std::fs::remove_file(&right).expect("remove");
        let gone = open_unattended(&recorded, SlotId(1), path, &reader).expect_err("file gone");
        assert!(gone.to_string().contains("pin"), "{gone}");
    }
}
