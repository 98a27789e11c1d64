//! Slots: independent ways to open one keybox. Each slot stores K wrapped under its own
//! key-encryption key (KEK); the kinds differ only in where the KEK comes from. A new kind adds a
//! variant to [`SlotParams`], one to [`SlotSecret`] and a module here; the keybox code is untouched.

mod keyfile;
mod passphrase;
mod peers;
mod plain;
mod recovery_code;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::IntegrityFailure;
use crate::kdf::{KdfError, KdfParams, Kek};
use crate::recovery_code::RecoveryCode;
use crate::secret::{DataKey, KeyfileContents, Passphrase};

pub use peers::{PeerRecord, PeersParams, ReleasePolicy};
pub use recovery_code::default_recovery_code_kdf;

/// A slot's number inside its keybox. Never reused within a keybox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SlotId(pub u32);

impl fmt::Display for SlotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The kinds of slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SlotKind {
    /// A 10-word recovery code through argon2id.
    RecoveryCode,
    /// A passphrase through argon2id calibrated to a target unlock time.
    Passphrase,
    /// The contents of a key file through HKDF.
    Keyfile,
    /// Unattended: the KEK is stored beside the wrapped key; file permissions are the only guard.
    Plain,
    /// K split k-of-n among peer nodes; the slot checks the key they give back.
    Peers,
}

impl SlotKind {
    /// Every kind, in display order.
    pub const ALL: [SlotKind; 5] = [
        SlotKind::RecoveryCode,
        SlotKind::Passphrase,
        SlotKind::Keyfile,
        SlotKind::Plain,
        SlotKind::Peers,
    ];

    /// The kind's name as written in files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            SlotKind::RecoveryCode => "recovery-code",
            SlotKind::Passphrase => "passphrase",
            SlotKind::Keyfile => "keyfile",
            SlotKind::Plain => "plain",
            SlotKind::Peers => "peers",
        }
    }
}

impl SlotKind {
    /// What opens a slot of this kind, for messages: "needs {it}".
    pub fn opened_with(self) -> &'static str {
        match self {
            SlotKind::RecoveryCode => "its recovery code",
            SlotKind::Passphrase => "its passphrase",
            SlotKind::Keyfile => "its key file",
            SlotKind::Plain => "nothing",
            SlotKind::Peers => "its peers",
        }
    }
}

impl fmt::Display for SlotKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SlotKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SlotKind::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| {
            format!(
                "unknown slot kind `{s}` (known: recovery-code, passphrase, keyfile, plain, peers)"
            )
        })
    }
}

/// A slot's kind and its parameters, as stored. Bound into the slot's AEAD associated data, so
/// weakening a parameter (a cheaper KDF, another salt) makes the slot fail to open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "params", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SlotParams {
    /// See [`SlotKind::RecoveryCode`].
    RecoveryCode {
        /// The KDF that turns the canonical code into the KEK.
        kdf: KdfParams,
    },
    /// See [`SlotKind::Passphrase`].
    Passphrase {
        /// The KDF that turns the passphrase into the KEK.
        kdf: KdfParams,
    },
    /// See [`SlotKind::Keyfile`].
    Keyfile(keyfile::KeyfileParams),
    /// See [`SlotKind::Plain`].
    Plain(plain::PlainParams),
    /// See [`SlotKind::Peers`].
    Peers(PeersParams),
}

impl SlotParams {
    /// The slot's kind.
    pub fn kind(&self) -> SlotKind {
        match self {
            SlotParams::RecoveryCode { .. } => SlotKind::RecoveryCode,
            SlotParams::Passphrase { .. } => SlotKind::Passphrase,
            SlotParams::Keyfile(_) => SlotKind::Keyfile,
            SlotParams::Plain(_) => SlotKind::Plain,
            SlotParams::Peers(_) => SlotKind::Peers,
        }
    }

    /// Checks bounds on parameters read from a file.
    pub fn validate(&self) -> Result<(), IntegrityFailure> {
        match self {
            SlotParams::RecoveryCode { kdf } => recovery_code::validate(kdf),
            SlotParams::Passphrase { kdf } => passphrase::validate(kdf),
            SlotParams::Keyfile(p) => p.validate(),
            SlotParams::Plain(p) => p.validate(),
            SlotParams::Peers(p) => p.validate(),
        }
    }

    /// Whether the slot opens with nothing typed: a plain slot, or a key-file slot that records
    /// where its key file is.
    pub fn is_unattended(&self) -> bool {
        match self {
            SlotParams::Plain(_) => true,
            SlotParams::Keyfile(p) => p.path.is_some(),
            // Peers need the network and their own unlock path (`unlock --slot`).
            SlotParams::RecoveryCode { .. }
            | SlotParams::Passphrase { .. }
            | SlotParams::Peers(_) => false,
        }
    }

    /// The peers and share set of a peers slot (`None` for any other kind).
    pub fn peers(&self) -> Option<&PeersParams> {
        match self {
            SlotParams::Peers(p) => Some(p),
            _ => None,
        }
    }

    /// The path of the key file an unattended keyfile slot reads, if it records one.
    pub fn keyfile_path(&self) -> Option<&str> {
        match self {
            SlotParams::Keyfile(p) => p.path.as_deref(),
            _ => None,
        }
    }

    /// A one-line description for `list`.
    pub fn describe(&self) -> String {
        match self {
            SlotParams::RecoveryCode { kdf } | SlotParams::Passphrase { kdf } => kdf.describe(),
            SlotParams::Keyfile(p) => match &p.path {
                Some(path) => format!("hkdf-sha256, key file {path}"),
                None => "hkdf-sha256, key file given at unlock".into(),
            },
            SlotParams::Plain(_) => {
                "UNATTENDED: anyone who can read the keybox file can read the key".into()
            }
            SlotParams::Peers(p) => p.describe(),
        }
    }
}

/// A secret offered to open a keybox. Follows age's `Identity` shape: asked for the KEK of a slot,
/// it answers `None` when the slot is not of its kind.
#[derive(Debug)]
pub enum Unlocker<'a> {
    /// A recovery code.
    RecoveryCode(&'a RecoveryCode),
    /// A passphrase.
    Passphrase(&'a Passphrase),
    /// The contents of a key file.
    Keyfile(&'a KeyfileContents),
    /// No secret: opens plain slots only.
    Unattended,
    /// A key put together from peers' shares: opens a peers slot if it is exactly K.
    Reconstructed(&'a DataKey),
}

impl Unlocker<'_> {
    /// The KEK for a slot with `params`; `None` if this secret is not for that kind of slot.
    pub fn kek_for(&self, params: &SlotParams) -> Option<Result<Kek, KdfError>> {
        match (self, params) {
            (Unlocker::RecoveryCode(code), SlotParams::RecoveryCode { kdf }) => {
                Some(recovery_code::kek(kdf, code))
            }
            (Unlocker::Passphrase(pass), SlotParams::Passphrase { kdf }) => {
                Some(passphrase::kek(kdf, pass))
            }
            (Unlocker::Keyfile(contents), SlotParams::Keyfile(p)) => {
                Some(p.kek(contents).map_err(KdfError::from))
            }
            (Unlocker::Unattended, SlotParams::Plain(p)) => Some(p.kek().map_err(KdfError::from)),
            (Unlocker::Reconstructed(key), SlotParams::Peers(p)) => {
                Some(p.kek(key).map_err(KdfError::from))
            }
            _ => None,
        }
    }

    /// The kind of slot this secret opens.
    pub fn kind(&self) -> SlotKind {
        match self {
            Unlocker::RecoveryCode(_) => SlotKind::RecoveryCode,
            Unlocker::Passphrase(_) => SlotKind::Passphrase,
            Unlocker::Keyfile(_) => SlotKind::Keyfile,
            Unlocker::Unattended => SlotKind::Plain,
            Unlocker::Reconstructed(_) => SlotKind::Peers,
        }
    }

    /// Words for error messages ("the recovery code").
    pub fn describe(&self) -> &'static str {
        match self {
            Unlocker::RecoveryCode(_) => "the recovery code",
            Unlocker::Passphrase(_) => "the passphrase",
            Unlocker::Keyfile(_) => "the key file",
            Unlocker::Unattended => "no secret",
            Unlocker::Reconstructed(_) => "the key the peers' shares give",
        }
    }
}

/// The secret of a slot being created or rotated, with the parameters to use.
#[derive(Debug)]
pub enum SlotSecret {
    /// A recovery code (normally freshly generated) and its KDF.
    RecoveryCode {
        /// The code.
        code: RecoveryCode,
        /// The KDF, with a fresh salt.
        kdf: KdfParams,
    },
    /// A passphrase and its (calibrated) KDF.
    Passphrase {
        /// The passphrase.
        passphrase: Passphrase,
        /// The KDF, with a fresh salt.
        kdf: KdfParams,
    },
    /// A key file's contents and, for unattended use, where the file lives.
    Keyfile {
        /// The file's contents.
        contents: KeyfileContents,
        /// The absolute path recorded in the slot, so `unlock` can read it without being told.
        path: Option<String>,
    },
    /// No secret.
    Plain,
    /// The key itself, whose shares the peers listed already hold.
    Peers {
        /// K (the slot checks that a reconstruction gives exactly this).
        key: DataKey,
        /// Peers, threshold, share set, policy.
        params: PeersParams,
    },
}

impl SlotSecret {
    /// The kind of slot this secret makes.
    pub fn kind(&self) -> SlotKind {
        self.as_unlocker().kind()
    }

    /// The same secret, as something that opens the slot (used for self-verification).
    pub fn as_unlocker(&self) -> Unlocker<'_> {
        match self {
            SlotSecret::RecoveryCode { code, .. } => Unlocker::RecoveryCode(code),
            SlotSecret::Passphrase { passphrase, .. } => Unlocker::Passphrase(passphrase),
            SlotSecret::Keyfile { contents, .. } => Unlocker::Keyfile(contents),
            SlotSecret::Plain => Unlocker::Unattended,
            SlotSecret::Peers { key, .. } => Unlocker::Reconstructed(key),
        }
    }

    /// The slot parameters for this secret — the KDF as given (its salt was drawn when it was
    /// made), or a fresh salt or stored key for key-file and plain slots — and the KEK they give.
    pub fn derive(&self) -> crate::Result<(SlotParams, Kek)> {
        let params = match self {
            SlotSecret::RecoveryCode { kdf, .. } => SlotParams::RecoveryCode { kdf: kdf.clone() },
            SlotSecret::Passphrase { kdf, .. } => SlotParams::Passphrase { kdf: kdf.clone() },
            SlotSecret::Keyfile { path, .. } => {
                SlotParams::Keyfile(keyfile::KeyfileParams::fresh(path.clone())?)
            }
            SlotSecret::Plain => SlotParams::Plain(plain::PlainParams::fresh()?),
            SlotSecret::Peers { params, .. } => SlotParams::Peers(params.clone()),
        };
        let kek = self
            .as_unlocker()
            .kek_for(&params)
            .unwrap_or_else(unreachable_kind)
            .map_err(crate::Error::from_new_kdf)?;
        Ok((params, kek))
    }
}

// `derive` builds params of the secret's own kind, so `kek_for` always answers `Some`.
fn unreachable_kind() -> Result<Kek, KdfError> {
    Err(KdfError::Params(IntegrityFailure::Inconsistent(
        "slot secret and parameters of different kinds".into(),
    )))
}
