//! One LUKS2 volume, a block device or an image file: every read and every change of the header
//! keyward makes goes through here, one libcryptsetup call each, made by keyward's LUKS2 helper
//! (`keyward-luks-helper`, crate `keyward-luks-cryptsetup`) in a process of its own, so that no
//! keyward process that touches no volume loads libcryptsetup (docs/formats/helper.md).

use std::path::{Path, PathBuf};

use keyward_helper::{Helper, HelperError, SecretBytes};

use crate::error::{LuksError, Result};
use crate::header::Header;
use crate::helper::{Call, Failure, Reply};
use crate::kdf::KeyslotKdf;
use crate::token::KeywardToken;

/// The helper executable, installed beside `keyward`.
pub const HELPER: &str = "keyward-luks-helper";

/// A LUKS2 volume whose header the helper has loaded.
pub struct Volume {
    helper: Helper,
    path: PathBuf,
    uuid: String,
}

/// A volume key opened from a keyslot, to add another keyslot with. The key itself stays in
/// the helper (wiped there when the volume is dropped): this process never holds it.
#[derive(Debug)]
pub struct VolumeKey(u32);

impl Volume {
    /// Loads the LUKS2 header of `path` (a block device, an image file or a header backup).
    pub fn open(path: &Path) -> Result<Volume> {
        if !path.exists() {
            return Err(LuksError::Missing { path: path.into() });
        }
        let mut helper = start(path)?;
        match ask(&mut helper, path, &Call::Open { path: path.into() })? {
            Reply::Opened(uuid) => Ok(Volume { helper, path: path.into(), uuid }),
            other => Err(unexpected(path, &other)),
        }
    }

    /// The path it was opened by.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The volume's UUID (lowercase, with hyphens).
    pub fn uuid(&self) -> &str {
        &self.uuid
    }

    /// The header's JSON metadata, read afresh.
    pub fn metadata(&mut self) -> Result<serde_json::Value> {
        match self.ask(&Call::Metadata)? {
            Reply::Metadata(metadata) => Ok(metadata),
            other => Err(unexpected(&self.path, &other)),
        }
    }

    /// The keyslots and tokens, read afresh from the header.
    pub fn header(&mut self) -> Result<Header> {
        let metadata = self.metadata()?;
        Header::from_metadata(&metadata)
            .map_err(|source| LuksError::Metadata { path: self.path.clone(), source })
    }

    /// The volume key, from `keyslot` (any, if `None`) opened with `passphrase`; `None` if it
    /// does not open.
    pub fn volume_key(
        &mut self,
        keyslot: Option<u32>,
        passphrase: &[u8],
    ) -> Result<Option<VolumeKey>> {
        match self.ask(&Call::VolumeKey { keyslot, passphrase: SecretBytes::from(passphrase) })? {
            Reply::VolumeKey(key) => Ok(key.map(VolumeKey)),
            other => Err(unexpected(&self.path, &other)),
        }
    }

    /// Whether `keyslot` opens with `passphrase` (as `cryptsetup open --test-passphrase`).
    pub fn opens(&mut self, keyslot: u32, passphrase: &[u8]) -> Result<bool> {
        match self.ask(&Call::Opens { keyslot, passphrase: SecretBytes::from(passphrase) })? {
            Reply::Opens(opens) => Ok(opens),
            other => Err(unexpected(&self.path, &other)),
        }
    }

    /// Adds a keyslot (at `keyslot`, or the first free one) holding `key` under `passphrase`,
    /// with the PBKDF `kdf` chooses. Returns its number.
    pub fn add_keyslot(
        &mut self,
        keyslot: Option<u32>,
        key: &VolumeKey,
        passphrase: &[u8],
        kdf: &KeyslotKdf,
    ) -> Result<u32> {
        let call = Call::AddKeyslot {
            keyslot,
            key: key.0,
            passphrase: SecretBytes::from(passphrase),
            kdf: *kdf,
        };
        self.number(&call)
    }

    /// Destroys `keyslot`: libcryptsetup wipes its area and unassigns it from every token.
    pub fn destroy_keyslot(&mut self, keyslot: u32) -> Result<()> {
        self.done(&Call::DestroyKeyslot { keyslot })
    }

    /// Writes `token` as a new token; returns its number.
    pub fn add_token(&mut self, token: &KeywardToken) -> Result<u32> {
        self.number(&Call::AddToken { json: token.to_json() })
    }

    /// Writes `token` over token `id`.
    pub fn replace_token(&mut self, id: u32, token: &KeywardToken) -> Result<()> {
        self.done(&Call::ReplaceToken { id, json: token.to_json() })
    }

    /// Removes token `id`.
    pub fn remove_token(&mut self, id: u32) -> Result<()> {
        self.done(&Call::RemoveToken { id })
    }

    /// Writes the header and keyslot areas to the new file `to` (cryptsetup's
    /// luksHeaderBackup).
    pub fn header_backup(&mut self, to: &Path) -> Result<()> {
        self.done(&Call::HeaderBackup { to: to.into() })
    }

    fn number(&mut self, call: &Call) -> Result<u32> {
        match self.ask(call)? {
            Reply::Number(number) => Ok(number),
            other => Err(unexpected(&self.path, &other)),
        }
    }

    fn done(&mut self, call: &Call) -> Result<()> {
        match self.ask(call)? {
            Reply::Done => Ok(()),
            other => Err(unexpected(&self.path, &other)),
        }
    }

    fn ask(&mut self, call: &Call) -> Result<Reply> {
        ask(&mut self.helper, &self.path, call)
    }
}

/// Writes the header backup `backup` over the header of `device` (cryptsetup's
/// luksHeaderRestore). The caller has checked that it is this volume's.
pub fn restore_header(device: &Path, backup: &Path) -> Result<()> {
    let mut helper = start(device)?;
    let call = Call::RestoreHeader { device: device.into(), backup: backup.into() };
    match ask(&mut helper, device, &call)? {
        Reply::Done => Ok(()),
        other => Err(unexpected(device, &other)),
    }
}

fn start(path: &Path) -> Result<Helper> {
    Helper::start(HELPER).map_err(|e| match e {
        HelperError::NotInstalled { .. } => LuksError::HelperMissing { reason: e.to_string() },
        e => LuksError::Helper { path: path.into(), reason: e.to_string() },
    })
}

fn ask(helper: &mut Helper, path: &Path, call: &Call) -> Result<Reply> {
    let answer: std::result::Result<Reply, Failure> = helper
        .call(call)
        .map_err(|e| LuksError::Helper { path: path.into(), reason: e.to_string() })?;
    answer.map_err(|failure| match failure {
        Failure::Missing => LuksError::Missing { path: path.into() },
        Failure::NotLuks2 { reason } => LuksError::NotLuks2 { path: path.into(), reason },
        Failure::Cryptsetup { what, reason } => {
            LuksError::Cryptsetup { path: path.into(), what, reason }
        }
    })
}

fn unexpected(path: &Path, reply: &Reply) -> LuksError {
    LuksError::Helper {
        path: path.into(),
        reason: format!("keyward's LUKS2 helper answered with another reply ({})", reply.name()),
    }
}
