//! What a slot is opened with, and where it comes from: the caller's side of the seam.
//!
//! A slot names a [`Channel`] (a recovery code, a passphrase, a key file, a PIN, nothing, a
//! candidate key) and asks the caller's [`SecretSource`] for it while it opens. The CLI's source
//! reads files and prompts; an [`Unlocker`] is the simplest source, one secret already in hand.

use std::path::Path;

use zeroize::Zeroizing;

use crate::fingerprint::Fingerprint;
use crate::recovery_code::RecoveryCode;
use crate::secret::{DataKey, KeyfileContents, Passphrase};

use super::{SlotError, SlotId};

/// What a slot is opened with. A small vocabulary shared by every kind: a new kind picks one (a
/// TPM without a PIN is `Nothing`, with one `Pin`), so the CLI's options and prompts stay the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Channel {
    /// A 10-word recovery code.
    RecoveryCode,
    /// A passphrase.
    Passphrase,
    /// The contents of a key file.
    KeyFile,
    /// A device's PIN.
    Pin,
    /// Nothing typed or given: the slot opens by itself (or through its device).
    Nothing,
    /// A candidate for K itself, put together elsewhere (from peers' shares); the slot checks it.
    Key,
}

impl Channel {
    /// The words for it in messages ("the passphrase").
    pub fn describe(self) -> &'static str {
        match self {
            Channel::RecoveryCode => "the recovery code",
            Channel::Passphrase => "the passphrase",
            Channel::KeyFile => "the key file",
            Channel::Pin => "the PIN",
            Channel::Nothing => "no secret",
            Channel::Key => "the key the peers' shares give",
        }
    }

    /// Whether a slot that takes it is an offline fallback: it opens with no network and no
    /// device (a recovery code, a passphrase, a key file), so a box whose TPM, token or peers
    /// are gone can still be opened through it.
    pub fn is_offline_fallback(self) -> bool {
        matches!(self, Channel::RecoveryCode | Channel::Passphrase | Channel::KeyFile)
    }

    /// Whether a person can type it at a prompt.
    pub fn is_typed(self) -> bool {
        matches!(self, Channel::RecoveryCode | Channel::Passphrase | Channel::Pin)
    }
}

/// A file a slot may need besides its secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Companion {
    /// The box's own signing identity (`<keybox>.box-key`), which peers know it by.
    BoxIdentity,
    /// An operator's release ticket, given with `--unlock-release-ticket`.
    ReleaseTicket,
}

/// Why a key is being opened. A slot that asks others for its key (its peers) tells them, so
/// their records count a drill apart from a use of the key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OpenPurpose {
    /// The key is wanted: an unlock, a restart, a recovery.
    #[default]
    Use,
    /// Only to prove the slot still opens (`keyward drill`, `keyward verify`): the key is
    /// wiped straight after.
    Drill,
}

/// What a slot asks its source for, and for which slot (a prompt names it).
#[derive(Debug, Clone, Copy)]
pub struct Want<'a> {
    /// The kind of secret.
    pub channel: Channel,
    /// The slot asking.
    pub slot: SlotId,
    /// Its label.
    pub label: &'a str,
    /// The file the slot records (an unattended key file), if any.
    pub recorded_file: Option<&'a Path>,
}

/// The caller's side: secrets and companion files on request.
pub trait SecretSource {
    /// The secret `want` asks for, if this source has it or may ask a person for it; `None`
    /// otherwise (the slot is then skipped). A secret of another channel is never answered. A
    /// failure of the caller's own (no terminal, an unreadable file) comes back to it unchanged
    /// as [`SlotError::Other`] inside [`crate::Error::Slot`], or as [`SlotError::Core`].
    fn secret(&mut self, want: &Want<'_>) -> Result<Option<Unlocker<'_>>, SlotError>;

    /// A companion file, if the caller has it.
    fn companion(&mut self, _what: Companion) -> Result<Option<Zeroizing<Vec<u8>>>, SlotError> {
        Ok(None)
    }

    /// A note for the person running this (a peer that did not answer); dropped by default.
    fn notice(&mut self, _text: &str) {}

    /// Why the key is being opened.
    fn purpose(&self) -> OpenPurpose {
        OpenPurpose::Use
    }
}

/// One secret in hand. As a [`SecretSource`] it answers only its own channel, so a passphrase
/// given for a keybox is never tried on, say, its plain slot.
#[derive(Debug, Clone, Copy)]
pub enum Unlocker<'a> {
    /// A recovery code.
    RecoveryCode(&'a RecoveryCode),
    /// A passphrase.
    Passphrase(&'a Passphrase),
    /// The contents of a key file.
    Keyfile(&'a KeyfileContents),
    /// A device PIN.
    Pin(&'a Passphrase),
    /// No secret: opens the slots that need nothing.
    Unattended,
    /// A key put together from peers' shares: opens a peers slot if it is exactly K.
    Reconstructed(&'a DataKey),
}

impl Unlocker<'_> {
    /// The channel this secret answers.
    pub fn channel(&self) -> Channel {
        match self {
            Unlocker::RecoveryCode(_) => Channel::RecoveryCode,
            Unlocker::Passphrase(_) => Channel::Passphrase,
            Unlocker::Keyfile(_) => Channel::KeyFile,
            Unlocker::Pin(_) => Channel::Pin,
            Unlocker::Unattended => Channel::Nothing,
            Unlocker::Reconstructed(_) => Channel::Key,
        }
    }

    /// Words for error messages ("the recovery code").
    pub fn describe(&self) -> &'static str {
        self.channel().describe()
    }
}

impl SecretSource for Unlocker<'_> {
    fn secret(&mut self, want: &Want<'_>) -> Result<Option<Unlocker<'_>>, SlotError> {
        Ok((want.channel == self.channel()).then_some(*self))
    }
}

/// What a slot is given to open with: who it is, and the caller's source.
pub struct OpenContext<'a> {
    /// The slot's id.
    pub slot: SlotId,
    /// Its label.
    pub label: &'a str,
    /// K's recorded fingerprint (a slot that rebuilds K checks against it before anything else).
    pub fingerprint: Fingerprint,
    /// The keybox's generation as the file says (not yet MAC-checked: a slot may refuse an old
    /// one, but acts on it only in [`super::Slot::opened`]).
    pub generation: u64,
    /// Where secrets come from.
    pub secrets: &'a mut dyn SecretSource,
}

impl OpenContext<'_> {
    /// Asks the source for a secret of `channel` for this slot.
    pub fn want(
        &mut self,
        channel: Channel,
        recorded_file: Option<&Path>,
    ) -> Result<Option<Unlocker<'_>>, SlotError> {
        let want = Want { channel, slot: self.slot, label: self.label, recorded_file };
        self.secrets.secret(&want)
    }
}

impl std::fmt::Debug for OpenContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenContext").field("slot", &self.slot).finish_non_exhaustive()
    }
}
