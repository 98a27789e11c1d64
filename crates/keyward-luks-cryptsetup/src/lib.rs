//! keyward's LUKS2 helper (`keyward-luks-helper`): every libcryptsetup call keyward makes, in a
//! process of its own. The LUKS2 work itself (`keyward-luks`) sends it calls over a pipe
//! (`keyward_luks::helper`), and only this crate links libcryptsetup: a keyward process that
//! touches no volume never loads it.
//!
//! - `device`: one volume through libcryptsetup;
//! - `kdf`: a keyslot's PBKDF choice as libcryptsetup's settings;
//! - [`serve`] answers calls with one [`device`] at a time, and keeps the volume keys it opened
//!   (the caller refers to them by number and never holds them).

mod device;
mod kdf;

use std::process::ExitCode;

use keyward_luks::helper::{Call, Failure, Reply};
use keyward_luks::volume::HELPER;

use device::{Device, VolumeKey, restore_header};

/// The helper's state between calls: the volume opened, and the volume keys opened from it
/// (wiped when dropped: at the next open, or when the caller closes the pipe).
#[derive(Default)]
struct Session {
    device: Option<Device>,
    keys: Vec<VolumeKey>,
}

/// The helper's main: answers calls on standard input until it closes.
pub fn serve() -> ExitCode {
    let mut session = Session::default();
    keyward_helper::serve(HELPER, move |call: Call| session.answer(call))
}

impl Session {
    fn answer(&mut self, call: Call) -> Result<Reply, Failure> {
        let call = match call {
            Call::Open { path } => {
                *self = Session::default();
                let device = Device::open(&path)?;
                let uuid = device.uuid().to_string();
                self.device = Some(device);
                return Ok(Reply::Opened(uuid));
            }
            Call::RestoreHeader { device, backup } => {
                restore_header(&device, &backup)?;
                return Ok(Reply::Done);
            }
            call => call,
        };
        let Some(device) = self.device.as_mut() else {
            return Err(misuse("a call before a volume was opened"));
        };
        Ok(match call {
            Call::Open { .. } | Call::RestoreHeader { .. } => {
                return Err(misuse("an open answered as a call"));
            }
            Call::Metadata => Reply::Metadata(device.metadata()?),
            Call::VolumeKey { keyslot, passphrase } => {
                match device.volume_key(keyslot, passphrase.expose())? {
                    Some(key) => {
                        let number = u32::try_from(self.keys.len())
                            .map_err(|_| misuse("more volume keys than it can number"))?;
                        self.keys.push(key);
                        Reply::VolumeKey(Some(number))
                    }
                    None => Reply::VolumeKey(None),
                }
            }
            Call::Opens { keyslot, passphrase } => {
                Reply::Opens(device.opens(keyslot, passphrase.expose())?)
            }
            Call::AddKeyslot { keyslot, key, passphrase, kdf } => {
                let key = usize::try_from(key)
                    .ok()
                    .and_then(|key| self.keys.get(key))
                    .ok_or_else(|| misuse("a volume key this helper does not hold"))?;
                Reply::Number(device.add_keyslot(keyslot, key, passphrase.expose(), &kdf)?)
            }
            Call::DestroyKeyslot { keyslot } => {
                device.destroy_keyslot(keyslot)?;
                Reply::Done
            }
            Call::AddToken { json } => Reply::Number(device.add_token(&json)?),
            Call::ReplaceToken { id, json } => {
                device.replace_token(id, &json)?;
                Reply::Done
            }
            Call::RemoveToken { id } => {
                device.remove_token(id)?;
                Reply::Done
            }
            Call::HeaderBackup { to } => {
                device.header_backup(&to)?;
                Reply::Done
            }
        })
    }
}

/// A call this helper cannot answer (keyward and its helper disagree): said as libcryptsetup's
/// failures are, so the caller's message names the volume.
fn misuse(what: &str) -> Failure {
    Failure::Cryptsetup { what: "use keyward's LUKS2 helper".into(), reason: what.into() }
}
