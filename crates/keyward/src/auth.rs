//! Opening a keybox from the command line: the options become an [`UnlockRequest`] for the
//! library's unlock plan (keyward_box::unlock), and the terminal, if there is one, is the person
//! it may ask.

use std::path::Path;

use keyward_box::secrets::{GivenSecret, Person, SecretFiles};
use keyward_box::unlock::{self, UnlockRequest};
use keyward_core::Keybox;
use keyward_core::keybox::UnlockedKeybox;

use crate::cli::AuthArgs;
use crate::exit::{CliResult, usage};
use crate::secret_input::Terminal;

pub use keyward_box::unlock::authorization;

/// The secret an explicit option gives (`--code-file`, `--passphrase-file`, `--keyfile`,
/// `--pin-file`, or their `--unlock-…` forms), if one was given; more than one is a usage error.
pub fn explicit_secret(args: &AuthArgs, reader: &SecretFiles) -> CliResult<Option<GivenSecret>> {
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
    reader: &SecretFiles,
    purpose: &str,
) -> CliResult<UnlockedKeybox> {
    // The slot named first: a name that is wrong is said before any secret is read (or stdin
    // used up).
    if let Some(name) = &args.unlock_slot {
        keybox.find_slot(name)?;
    }
    let request = UnlockRequest {
        given: explicit_secret(args, reader)?,
        slot: args.unlock_slot.as_deref(),
        release_ticket: args.unlock_release_ticket.as_deref(),
    };
    let mut terminal = Terminal::if_there(format!("keybox {}, {purpose}", path.display()));
    let person = terminal.as_mut().map(|t| t as &mut dyn Person);
    Ok(unlock::open(keybox, path, reader, request, person)?)
}

#[cfg(test)]
mod tests {
    use keyward_core::kdf::{KEK_LEN, Kek};
    use keyward_core::keybox::NewKeybox;
    use keyward_core::slot::{
        NewSlot, OpenContext, Slot, SlotError, SlotKind, SlotParams, registry,
    };
    use keyward_core::{DataKey, IntegrityFailure, SlotId};
    use serde_json::{Value, json};
    use sha2::{Digest, Sha256};

    use std::path::PathBuf;

    use keyward_core::slot::Channel;
    use keyward_core::{Error as CoreError, Passphrase, Unlocker};
    use zeroize::Zeroizing;

    use super::*;
    use crate::exit::CliError;

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
        let reader = SecretFiles::new();
        let path = Path::new("k");

        let keybox = keybox_with_pin_slot(None);
        let given = |file: &Path| AuthArgs {
            unlock_pin_file: Some(file.into()),
            unlock_slot: Some("1".into()),
            ..AuthArgs::default()
        };
        let unnamed = AuthArgs { unlock_slot: None, ..given(&right) };
        assert!(matches!(
            open(&unnamed, &keybox, path, &reader, "to test"),
            Err(CliError::Usage(_))
        ));
        open(&given(&right), &keybox, path, &reader, "to test").expect("the right PIN opens");
        let refused =
            open(&given(&wrong), &keybox, path, &reader, "to test").expect_err("a wrong PIN");
        assert!(matches!(refused, CliError::Core(CoreError::WrongSecret { .. })), "{refused:?}");
        // Nothing given, no PIN recorded, no terminal here: nothing opens it unattended.
        assert!(open(&AuthArgs::default(), &keybox, path, &reader, "to test").is_err());

        let recorded = keybox_with_pin_slot(Some(right.clone()));
        open(&AuthArgs::default(), &recorded, path, &reader, "to test")
            .expect("the recorded PIN file opens");
        std::fs::remove_file(&right).expect("remove");
        let gone = keyward_box::unlock::prove_slot(&recorded, SlotId(1), path, &reader, None, None)
            .expect_err("file gone");
        assert!(gone.to_string().contains("pin"), "{gone}");
    }
}
