//! The CLI's side of secrets: prompts on the controlling terminal that do not echo, and the
//! terminal as the [`Person`] the unlock plan asks. (Files and stdin are read by
//! [`SecretFiles`], the library's.) Every buffer is zeroized.

use std::fs::File;
use std::path::Path;

use keyward_box::BoxResult;
use keyward_box::error::invalid;
use keyward_box::secrets::{Person, SecretFiles};
use keyward_core::slot::Channel;
use keyward_core::{Error as CoreError, Passphrase, RecoveryCode, SlotId};
use zeroize::Zeroizing;

use crate::output::warn;

/// A recovery code from `path`, else from a prompt saying what it is for (`about`), where a
/// mistyped word gets hints.
pub fn code_from(
    reader: &SecretFiles,
    path: Option<&Path>,
    about: &str,
) -> BoxResult<RecoveryCode> {
    match path {
        Some(path) => reader.code(path),
        None => prompt_code(about),
    }
}

/// A recovery code typed at the prompt (keyward_box::secrets::ask_recovery_code: a word not on
/// the list is named, with its nearest list words, and asked for again, up to three times).
pub fn prompt_code(about: &str) -> BoxResult<RecoveryCode> {
    match Terminal::if_there(about) {
        Some(mut terminal) => keyward_box::secrets::ask_recovery_code(&mut terminal),
        None => Err(invalid("no terminal to prompt on; give the secret with a file option")),
    }
}

/// Whether a person can be prompted: the process has a controlling terminal.
pub fn terminal_available() -> bool {
    File::open("/dev/tty").is_ok()
}

/// Prompts on the terminal without echo.
pub fn prompt_hidden(prompt: &str) -> BoxResult<Zeroizing<String>> {
    if !terminal_available() {
        return Err(invalid("no terminal to prompt on; give the secret with a file option"));
    }
    rpassword::prompt_password(prompt).map(Zeroizing::new).map_err(|e| match e.kind() {
        // Ctrl-D on an empty line: the person chose not to answer.
        std::io::ErrorKind::UnexpectedEof => invalid(
            "nothing was typed (the input ended, Ctrl-D); run again and type it, or give it with a file option",
        ),
        _ => CoreError::io("cannot read", "the terminal", e).into(),
    })
}

/// Prompts twice for a new passphrase and insists the two agree.
pub fn prompt_new_passphrase() -> BoxResult<Passphrase> {
    prompt_new_secret("passphrase")
}

/// A new secret (`what`: "passphrase", "TPM PIN") typed twice without echo.
pub fn prompt_new_secret(what: &str) -> BoxResult<Passphrase> {
    let first = prompt_secret(&format!("New {what}: "))?;
    let second = prompt_secret(&format!("Repeat the {what}: "))?;
    if first.expose() != second.expose() {
        return Err(invalid(format!("the two {what}s differ; nothing was changed")));
    }
    Ok(first)
}

/// A secret (a PIN, a passphrase) typed once without echo.
pub fn prompt_secret(prompt: &str) -> BoxResult<Passphrase> {
    let typed = prompt_hidden(prompt)?;
    Ok(Passphrase::new(Zeroizing::new(typed.as_bytes().to_vec())))
}

/// The person at the terminal, asked by the unlock plan and the recovery. Every prompt says
/// what the secret is for: which keybox (or blob) and why.
#[derive(Debug)]
pub struct Terminal {
    /// What is opened and why: "keybox PATH, to write its key".
    about: String,
}

impl Terminal {
    /// The terminal, if the process has one, asking about `about` ("keybox PATH, to write its
    /// key").
    pub fn if_there(about: impl Into<String>) -> Option<Terminal> {
        terminal_available().then(|| Terminal { about: about.into() })
    }
}

impl Person for Terminal {
    fn typed_secret(&mut self, channels: &[Channel]) -> BoxResult<Zeroizing<String>> {
        let code = channels.contains(&Channel::RecoveryCode);
        let passphrase = channels.contains(&Channel::Passphrase);
        let what = match (code, passphrase) {
            (true, true) => "Passphrase or recovery code",
            (true, false) => "Recovery code",
            _ => "Passphrase",
        };
        prompt_hidden(&format!("{what} ({}): ", self.about))
    }

    fn pin(&mut self, slot: SlotId, label: &str) -> BoxResult<Passphrase> {
        prompt_secret(&format!("PIN for slot {slot} (\"{label}\") ({}): ", self.about))
    }

    fn notice(&mut self, text: &str) {
        warn(text);
    }
}
