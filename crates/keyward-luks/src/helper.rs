//! The calls keyward makes to its LUKS2 helper (`keyward-luks-helper`), and the replies: the
//! bodies of the frames of docs/formats/helper.md. A volume's calls start with `Open`; a header
//! restore is a call of its own. Every call is answered with `Result<Reply, Failure>`.

use std::path::PathBuf;

use keyward_helper::SecretBytes;
use serde::{Deserialize, Serialize};

use crate::kdf::KeyslotKdf;

/// A call to the helper.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "call")]
pub enum Call {
    /// Load the LUKS2 header of `path`.
    Open {
        /// A block device, an image file or a header backup.
        #[serde(with = "keyward_helper::path_bytes")]
        path: PathBuf,
    },
    /// The header's JSON metadata.
    Metadata,
    /// Open `keyslot` (any, if none) with `passphrase` and keep the volume key in the helper.
    VolumeKey {
        /// The keyslot.
        keyslot: Option<u32>,
        /// The passphrase.
        passphrase: SecretBytes,
    },
    /// Whether `keyslot` opens with `passphrase`.
    Opens {
        /// The keyslot.
        keyslot: u32,
        /// The passphrase.
        passphrase: SecretBytes,
    },
    /// Add a keyslot holding the volume key the helper keeps as `key`.
    AddKeyslot {
        /// The keyslot, or the first free one.
        keyslot: Option<u32>,
        /// The helper's number for a volume key it keeps (from `VolumeKey`).
        key: u32,
        /// The new keyslot's passphrase.
        passphrase: SecretBytes,
        /// Its PBKDF.
        kdf: KeyslotKdf,
    },
    /// Wipe `keyslot`.
    DestroyKeyslot {
        /// The keyslot.
        keyslot: u32,
    },
    /// Write `json` as a new token.
    AddToken {
        /// The token.
        json: serde_json::Value,
    },
    /// Write `json` over token `id`.
    ReplaceToken {
        /// The token's number.
        id: u32,
        /// The token.
        json: serde_json::Value,
    },
    /// Remove token `id`.
    RemoveToken {
        /// The token's number.
        id: u32,
    },
    /// Write the header and keyslot areas to the new file `to`.
    HeaderBackup {
        /// The file.
        #[serde(with = "keyward_helper::path_bytes")]
        to: PathBuf,
    },
    /// Write the header backup `backup` over the header of `device` (no `Open` first).
    RestoreHeader {
        /// The device or image.
        #[serde(with = "keyward_helper::path_bytes")]
        device: PathBuf,
        /// The backup.
        #[serde(with = "keyward_helper::path_bytes")]
        backup: PathBuf,
    },
}

/// What a call returns.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reply", content = "value")]
pub enum Reply {
    /// For `Open`: the volume's UUID.
    Opened(String),
    /// For `Metadata`.
    Metadata(serde_json::Value),
    /// For `VolumeKey`: the helper's number for the key it now keeps, or none if the
    /// passphrase opens no (such) keyslot.
    VolumeKey(Option<u32>),
    /// For `Opens`.
    Opens(bool),
    /// For `AddKeyslot`: the keyslot's number; for `AddToken`, the token's.
    Number(u32),
    /// For the other calls.
    Done,
}

impl Reply {
    /// The reply's name, for an error that says which came.
    pub fn name(&self) -> &'static str {
        match self {
            Reply::Opened(_) => "opened",
            Reply::Metadata(_) => "metadata",
            Reply::VolumeKey(_) => "volume_key",
            Reply::Opens(_) => "opens",
            Reply::Number(_) => "number",
            Reply::Done => "done",
        }
    }
}

/// Why a call failed, as the helper tells it; the caller adds the volume's path
/// ([`crate::LuksError`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// No such device or file.
    Missing,
    /// No LUKS2 header libcryptsetup can read.
    NotLuks2 {
        /// libcryptsetup's reason.
        reason: String,
    },
    /// libcryptsetup failed at `what`.
    Cryptsetup {
        /// What was being done.
        what: String,
        /// libcryptsetup's own message, or the error code's.
        reason: String,
    },
}
