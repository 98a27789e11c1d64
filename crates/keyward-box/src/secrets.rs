//! Where secrets come from. A workflow takes them from four sources, and only these:
//! - a **file** at a path (a code file, a recorded key file or PIN file),
//! - **stdin**, as the path `-`, at most once per run ([`SecretFiles`] both),
//! - a **person** asked at a prompt ([`Person`]: the CLI's terminal; the agent has nobody),
//! - the **agent**, which hands over a key it holds (the agent's client, `keyward exec`).
//!
//! Every buffer is zeroized.

use std::cell::Cell;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use keyward_core::secret::MAX_KEYFILE_LEN;
use keyward_core::slot::Channel;
use keyward_core::{
    Error as CoreError, KeyfileContents, Passphrase, RecoveryCode, SlotId, Unlocker,
};
use zeroize::Zeroizing;

use crate::error::{BoxError, BoxResult, invalid};

/// Longest secret file read, in bytes (the key-file limit; codes and passphrases are far shorter).
const MAX_SECRET_FILE: usize = MAX_KEYFILE_LEN;

/// Reads secrets and input files for one run, making sure stdin is consumed at most once: `-`
/// given to two options is refused, never a second read of an empty stdin.
#[derive(Debug, Default)]
pub struct SecretFiles {
    stdin_taken: Cell<bool>,
}

impl SecretFiles {
    /// A new reader.
    pub fn new() -> Self {
        SecretFiles::default()
    }

    /// The raw bytes of `path` (`-` for stdin), up to the size limit.
    pub fn bytes(&self, path: &Path) -> BoxResult<Zeroizing<Vec<u8>>> {
        let mut buf = Zeroizing::new(Vec::new());
        let limit = u64::try_from(MAX_SECRET_FILE + 1).unwrap_or(u64::MAX);
        if path == Path::new("-") {
            if self.stdin_taken.replace(true) {
                return Err(invalid("only one secret can come from stdin (`-`) per command"));
            }
            std::io::stdin()
                .lock()
                .take(limit)
                .read_to_end(&mut buf)
                .map_err(|e| CoreError::io("cannot read", "stdin", e))?;
        } else {
            File::open(path)
                .and_then(|f| f.take(limit).read_to_end(&mut buf))
                .map_err(|e| CoreError::io("cannot read", path, e))?;
        }
        if buf.len() > MAX_SECRET_FILE {
            return Err(invalid(format!(
                "{} is larger than 8 MiB; that is not a secret keyward reads",
                path.display()
            )));
        }
        Ok(buf)
    }

    /// Refuses a PIN file a slot records (or would record) that someone else could read or
    /// replace: it must be owned by this user (or root) and readable by nobody else. Checked at
    /// enroll and at every unattended unlock, as the file the PIN lives in is as secret as the
    /// PIN.
    pub fn check_recorded_pin_file(&self, path: &Path) -> BoxResult {
        use std::os::unix::fs::MetadataExt;
        let facts = std::fs::metadata(path).map_err(|e| CoreError::io("cannot read", path, e))?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        let problem = if facts.uid() != me && facts.uid() != 0 {
            "owned by another user, and it holds a slot's PIN"
        } else if facts.mode() & 0o077 != 0 {
            "readable or writable by other users, and it holds a slot's PIN"
        } else {
            return Ok(());
        };
        Err(CoreError::InsecurePermissions {
            path: path.to_path_buf(),
            problem,
            fix: format!("chmod 600 {} (owned by the user that unlocks)", path.display()),
        }
        .into())
    }

    /// A passphrase from `path`; one trailing newline (LF or CRLF) is dropped.
    pub fn passphrase(&self, path: &Path) -> BoxResult<Passphrase> {
        let mut bytes = self.bytes(path)?;
        let keep = if bytes.ends_with(b"\r\n") {
            bytes.len() - 2
        } else if bytes.ends_with(b"\n") {
            bytes.len() - 1
        } else {
            bytes.len()
        };
        bytes.truncate(keep);
        Ok(Passphrase::new(bytes))
    }

    /// A recovery code from `path`.
    pub fn code(&self, path: &Path) -> BoxResult<RecoveryCode> {
        let bytes = self.bytes(path)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| CoreError::WrongSecret {
            tried: format!("the recovery code in {} (not text)", path.display()),
        })?;
        // No neighbour words for a code read from a file: see `CodeError::without_hints`.
        Ok(RecoveryCode::parse(text).map_err(|e| CoreError::from(e.without_hints()))?)
    }

    /// A key file's contents.
    pub fn keyfile(&self, path: &Path) -> BoxResult<KeyfileContents> {
        Ok(KeyfileContents::new(self.bytes(path)?)?)
    }

    /// A key file offered to open a slot: one of a size no key file has is simply the wrong key
    /// file (exit 3), not a usage error.
    pub fn keyfile_to_open(&self, path: &Path) -> BoxResult<KeyfileContents> {
        match self.keyfile(path) {
            Err(BoxError::Core(CoreError::KeyfileSize { len })) => Err(CoreError::WrongSecret {
                tried: format!(
                    "the key file {} ({len} bytes, not a key file keyward accepts)",
                    path.display()
                ),
            }
            .into()),
            other => other,
        }
    }
}

/// Someone who can be asked for a secret: the CLI's terminal. Where nobody is there (the agent,
/// a script), no `Person` is given and a slot that needs one does not open.
pub trait Person {
    /// The one typed answer for slots of these typed channels (a passphrase, a recovery code,
    /// or either: the channels decide the prompt's words).
    fn typed_secret(&mut self, channels: &[Channel]) -> BoxResult<Zeroizing<String>>;

    /// A device slot's PIN.
    fn pin(&mut self, slot: SlotId, label: &str) -> BoxResult<Passphrase>;

    /// A line the person should read (a slot's notice, a first failure before the prompt).
    fn notice(&mut self, text: &str);
}

/// How often a person is asked for a recovery code that does not parse.
const CODE_TRIES: usize = 3;

/// A recovery code typed by `person`: one that does not parse (a word not on the list, named
/// with the list words nearest it; the wrong count) is said and asked again, up to three times.
/// The last failure goes back without the nearest words: the person saw them, and the error
/// may be kept where a log keeps it.
pub fn ask_recovery_code<P: Person + ?Sized>(person: &mut P) -> BoxResult<RecoveryCode> {
    let mut tries = 1;
    loop {
        let typed = person.typed_secret(&[Channel::RecoveryCode])?;
        match RecoveryCode::parse(&typed) {
            Ok(code) => return Ok(code),
            Err(e) if tries < CODE_TRIES => {
                tries += 1;
                person.notice(&format!("the recovery code is not valid: {e}; type it again"));
            }
            Err(e) => return Err(CoreError::from(e.without_hints()).into()),
        }
    }
}

/// A secret given explicitly (an option's file, stdin), owned.
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

impl SecretFiles {
    /// A statement file — a token or ticket — kept in wiped memory: until it is used it is a
    /// credential.
    pub fn ticket(&self, path: &Path) -> BoxResult<Zeroizing<String>> {
        let bytes = self.bytes(path)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| {
            invalid(format!("{} is not a token or ticket (not text)", path.display()))
        })?;
        Ok(Zeroizing::new(text.trim().to_string()))
    }

    /// A ticket for `box_name`, and what it says. The statement is read without being trusted
    /// (the hub or peer verifies it), only so a ticket for another box is not spent.
    pub fn ticket_for(
        &self,
        path: &Path,
        box_name: &str,
    ) -> BoxResult<(Zeroizing<String>, Option<keyward_service::statement::Statement>)> {
        let ticket = self.ticket(path)?;
        let claimed = keyward_service::statement::peek(&ticket);
        if let Some(claimed) = &claimed
            && claimed.box_name() != box_name
        {
            return Err(invalid(format!(
                "the ticket is for {}, not {box_name}",
                claimed.box_name()
            )));
        }
        Ok((ticket, claimed))
    }

    /// A signing identity (an operator's or a box's) from its 0600 file.
    pub fn identity(&self, path: &Path) -> BoxResult<keyward_service::SigningIdentity> {
        let bytes = self.bytes(path)?;
        keyward_service::SigningIdentity::from_file_bytes(&bytes)
            .map_err(|e| BoxError::Config { path: path.to_path_buf(), problem: e.to_string() })
    }
}
