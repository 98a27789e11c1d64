//! Reading secrets: from a file, from stdin (`-`, at most once per command), or from a prompt on
//! the controlling terminal that does not echo. Every buffer is zeroized.

use std::cell::Cell;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use keyward_core::secret::MAX_KEYFILE_LEN;
use keyward_core::{Error as CoreError, KeyfileContents, Passphrase, RecoveryCode};
use zeroize::Zeroizing;

use crate::exit::{CliError, CliResult, usage};

/// Longest secret file read, in bytes (the key-file limit; codes and passphrases are far shorter).
const MAX_SECRET_FILE: usize = MAX_KEYFILE_LEN;

/// Reads secrets and input files for one command, making sure stdin is consumed at most once
/// (one reader per command: the command's [`crate::context::Context`] holds it).
#[derive(Debug, Default)]
pub struct SecretReader {
    stdin_taken: Cell<bool>,
}

impl SecretReader {
    /// A new reader.
    pub fn new() -> Self {
        SecretReader::default()
    }

    /// The raw bytes of `path` (`-` for stdin), up to the size limit.
    pub fn bytes(&self, path: &Path) -> CliResult<Zeroizing<Vec<u8>>> {
        let mut buf = Zeroizing::new(Vec::new());
        let limit = u64::try_from(MAX_SECRET_FILE + 1).unwrap_or(u64::MAX);
        if path == Path::new("-") {
            if self.stdin_taken.replace(true) {
                return Err(usage("only one secret can come from stdin (`-`) per command"));
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
            return Err(usage(format!(
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
    pub fn check_recorded_pin_file(&self, path: &Path) -> CliResult {
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
    pub fn passphrase(&self, path: &Path) -> CliResult<Passphrase> {
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
    pub fn code(&self, path: &Path) -> CliResult<RecoveryCode> {
        let bytes = self.bytes(path)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| CoreError::WrongSecret {
            tried: format!("the recovery code in {} (not text)", path.display()),
        })?;
        // No neighbour words for a code read from a file: see `CodeError::without_hints`.
        Ok(RecoveryCode::parse(text).map_err(|e| CoreError::from(e.without_hints()))?)
    }

    /// A key file's contents.
    pub fn keyfile(&self, path: &Path) -> CliResult<KeyfileContents> {
        Ok(KeyfileContents::new(self.bytes(path)?)?)
    }

    /// A key file offered to open a slot: one of a size no key file has is simply the wrong key
    /// file (exit 3), not a usage error.
    pub fn keyfile_to_open(&self, path: &Path) -> CliResult<KeyfileContents> {
        match self.keyfile(path) {
            Err(CliError::Core(CoreError::KeyfileSize { len })) => Err(CoreError::WrongSecret {
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

/// A recovery code from `path`, else from a prompt (where a mistyped word gets hints).
pub fn code_from(reader: &SecretReader, path: Option<&Path>) -> CliResult<RecoveryCode> {
    match path {
        Some(path) => reader.code(path),
        None => prompt_code(),
    }
}

/// A recovery code typed at the prompt; a word not on the list is named (with its nearest
/// list words) and asked for again, up to three times, before anything else happens.
pub fn prompt_code() -> CliResult<RecoveryCode> {
    let mut tries = 0;
    loop {
        let typed = prompt_hidden("Recovery code: ")?;
        match RecoveryCode::parse(&typed) {
            Ok(code) => return Ok(code),
            Err(e) if tries < 2 => {
                tries += 1;
                eprintln!("keyward: the recovery code is not valid: {e}; type it again");
            }
            Err(e) => return Err(CoreError::from(e).into()),
        }
    }
}

/// Whether a person can be prompted: the process has a controlling terminal.
pub fn terminal_available() -> bool {
    File::open("/dev/tty").is_ok()
}

/// Prompts on the terminal without echo.
pub fn prompt_hidden(prompt: &str) -> CliResult<Zeroizing<String>> {
    if !terminal_available() {
        return Err(usage("no terminal to prompt on; give the secret with a file option"));
    }
    rpassword::prompt_password(prompt)
        .map(Zeroizing::new)
        .map_err(|e| CoreError::io("cannot read", "the terminal", e).into())
}

/// Prompts twice for a new passphrase and insists the two agree.
pub fn prompt_new_passphrase() -> CliResult<Passphrase> {
    prompt_new_secret("passphrase")
}

/// A new secret (`what`: "passphrase", "TPM PIN") typed twice without echo.
pub fn prompt_new_secret(what: &str) -> CliResult<Passphrase> {
    let first = prompt_secret(&format!("New {what}: "))?;
    let second = prompt_secret(&format!("Repeat the {what}: "))?;
    if first.expose() != second.expose() {
        return Err(usage(format!("the two {what}s differ; nothing was changed")));
    }
    Ok(first)
}

/// A secret (a PIN, a passphrase) typed once without echo.
pub fn prompt_secret(prompt: &str) -> CliResult<Passphrase> {
    let typed = prompt_hidden(prompt)?;
    Ok(Passphrase::new(Zeroizing::new(typed.as_bytes().to_vec())))
}
