//! One LUKS2 volume, a block device or an image file, through libcryptsetup, in the helper's
//! process: every read and every change of the header keyward makes goes through here, one
//! libcryptsetup call each. A failure is the helper's [`Failure`]; the caller adds the path.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::path::Path;
use std::sync::{Mutex, Once};

use libcryptsetup_rs::consts::flags::{CryptActivate, CryptVolumeKey};
use libcryptsetup_rs::consts::vals::{CryptLogLevel, EncryptionFormat};
use libcryptsetup_rs::{
    CryptDevice, CryptInit, CryptParamsLuks2Ref, Either, LibcryptErr, TokenInput,
};
use zeroize::Zeroizing;

use keyward_luks::KeyslotKdf;
use keyward_luks::helper::Failure;

use crate::kdf;

type Result<T> = std::result::Result<T, Failure>;

/// A LUKS2 volume whose header libcryptsetup has loaded.
pub struct Device {
    device: CryptDevice,
    uuid: String,
}

/// The volume key, as libcryptsetup hands it out to add a keyslot. Zeroized on drop.
pub struct VolumeKey(Zeroizing<Vec<u8>>);

impl Device {
    /// Loads the LUKS2 header of `path` (a block device, an image file or a header backup).
    pub fn open(path: &Path) -> Result<Device> {
        keep_libcryptsetup_quiet();
        if !path.exists() {
            return Err(Failure::Missing);
        }
        let fail = |what, e: LibcryptErr| cryptsetup(what, &e);
        let mut device = CryptInit::init(path).map_err(|e| fail("open it", e))?;
        device
            .context_handle()
            .load::<CryptParamsLuks2Ref<'_>>(Some(EncryptionFormat::Luks2), None)
            .map_err(|e| Failure::NotLuks2 { reason: reason(&e) })?;
        let uuid = device.status_handle().get_uuid().map_err(|e| fail("read its UUID", e))?;
        Ok(Device { device, uuid: uuid.to_string() })
    }

    /// The volume's UUID (lowercase, with hyphens).
    pub fn uuid(&self) -> &str {
        &self.uuid
    }

    /// The header's JSON metadata, read afresh.
    pub fn metadata(&mut self) -> Result<serde_json::Value> {
        self.device.status_handle().dump_json().map_err(|e| cryptsetup("read the header", &e))
    }

    /// The volume key, from `keyslot` (any, if `None`) opened with `passphrase`; `None` if it
    /// does not open.
    pub fn volume_key(
        &mut self,
        keyslot: Option<u32>,
        passphrase: &[u8],
    ) -> Result<Option<VolumeKey>> {
        let size = usize::try_from(self.device.status_handle().get_volume_key_size()).unwrap_or(0);
        let mut key = Zeroizing::new(vec![0u8; size.max(1)]);
        match self.device.volume_key_handle().get(keyslot, &mut key, Some(passphrase)) {
            Ok((_, len)) => {
                key.truncate(len);
                Ok(Some(VolumeKey(key)))
            }
            Err(e) if does_not_open(&e) => Ok(None),
            Err(e) => Err(cryptsetup("open a keyslot", &e)),
        }
    }

    /// Whether `keyslot` opens with `passphrase` (as `cryptsetup open --test-passphrase`).
    pub fn opens(&mut self, keyslot: u32, passphrase: &[u8]) -> Result<bool> {
        match self.device.activate_handle().activate_by_passphrase(
            None,
            Some(keyslot),
            passphrase,
            CryptActivate::empty(),
        ) {
            Ok(_) => Ok(true),
            Err(e) if does_not_open(&e) => Ok(false),
            Err(e) => Err(cryptsetup("open a keyslot", &e)),
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
        let fail = |e: LibcryptErr| cryptsetup("add a keyslot", &e);
        if let Some(settings) = kdf::settings(kdf).map_err(fail)? {
            self.device.settings_handle().set_pbkdf_type(&settings).map_err(fail)?;
        }
        self.device
            .keyslot_handle()
            .add_by_key(keyslot, Some(Either::Left(&key.0)), passphrase, CryptVolumeKey::empty())
            .map_err(fail)
    }

    /// Destroys `keyslot`: libcryptsetup wipes its area and unassigns it from every token.
    pub fn destroy_keyslot(&mut self, keyslot: u32) -> Result<()> {
        self.device.keyslot_handle().destroy(keyslot).map_err(|e| cryptsetup("wipe a keyslot", &e))
    }

    /// Writes `token` as a new token; returns its number.
    pub fn add_token(&mut self, json: &serde_json::Value) -> Result<u32> {
        self.device
            .token_handle()
            .json_set(TokenInput::AddToken(json))
            .map_err(|e| cryptsetup("write a token", &e))
    }

    /// Writes `token` over token `id`.
    pub fn replace_token(&mut self, id: u32, json: &serde_json::Value) -> Result<()> {
        self.device
            .token_handle()
            .json_set(TokenInput::ReplaceToken(id, json))
            .map(drop)
            .map_err(|e| cryptsetup("write a token", &e))
    }

    /// Removes token `id`.
    pub fn remove_token(&mut self, id: u32) -> Result<()> {
        self.device
            .token_handle()
            .json_set(TokenInput::RemoveToken(id))
            .map(drop)
            .map_err(|e| cryptsetup("remove a token", &e))
    }

    /// Writes the header and keyslot areas to the new file `to` (cryptsetup's
    /// luksHeaderBackup).
    pub fn header_backup(&mut self, to: &Path) -> Result<()> {
        self.device
            .backup_handle()
            .header_backup(Some(EncryptionFormat::Luks2), to)
            .map_err(|e| cryptsetup("back up the header", &e))
    }
}

/// Writes the header backup `backup` over the header of `device` (cryptsetup's
/// luksHeaderRestore). The caller has checked that it is this volume's.
pub fn restore_header(device: &Path, backup: &Path) -> Result<()> {
    keep_libcryptsetup_quiet();
    let fail = |e: LibcryptErr| cryptsetup("restore the header", &e);
    let mut target = CryptInit::init(device).map_err(fail)?;
    target.backup_handle().header_restore(Some(EncryptionFormat::Luks2), backup).map_err(fail)
}

/// Whether libcryptsetup's error means "this passphrase opens no (such) keyslot".
fn does_not_open(error: &LibcryptErr) -> bool {
    let no_key = matches!(errno(error), Some(libc::EPERM | libc::ENOENT));
    if no_key {
        // Its message ("No key available with this passphrase.") is no failure of ours.
        take_message();
    }
    no_key
}

fn cryptsetup(what: &str, error: &LibcryptErr) -> Failure {
    Failure::Cryptsetup { what: what.into(), reason: reason(error) }
}

/// libcryptsetup's error code, when it gave one.
fn errno(error: &LibcryptErr) -> Option<i32> {
    match error {
        LibcryptErr::IOError(e) => e.raw_os_error(),
        _ => None,
    }
}

/// libcryptsetup's own last error message, else the error code's text.
fn reason(error: &LibcryptErr) -> String {
    take_message().unwrap_or_else(|| match error {
        LibcryptErr::IOError(e) => e.to_string(),
        other => other.to_string(),
    })
}

/// The last error libcryptsetup logged (it never logs a passphrase or key).
static LAST_MESSAGE: Mutex<Option<String>> = Mutex::new(None);

fn take_message() -> Option<String> {
    LAST_MESSAGE.lock().ok().and_then(|mut m| m.take())
}

/// libcryptsetup prints its messages to stdout and stderr unless given a callback, and a failure
/// is reported once, by keyward, in one line. So its errors are kept for that line (they cross
/// back in the failure) and everything else is dropped.
fn keep_libcryptsetup_quiet() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| libcryptsetup_rs::set_log_callback::<()>(Some(keep_error), None));
}

unsafe extern "C" fn keep_error(level: c_int, message: *const c_char, _: *mut c_void) {
    if level != CryptLogLevel::Error as c_int || message.is_null() {
        return;
    }
    // SAFETY: libcryptsetup passes a NUL-terminated string valid for the call.
    let text = unsafe { CStr::from_ptr(message) }.to_string_lossy().trim().to_string();
    if let Ok(mut last) = LAST_MESSAGE.lock() {
        *last = Some(text);
    }
}
