//! Secret values: the data key K and the secrets that open slots. Each is zeroized on drop and
//! its `Debug` never shows its bytes.

use std::fmt;

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::fingerprint::Fingerprint;
use crate::random;

/// Smallest data key keyward accepts, in bytes.
pub const MIN_KEY_LEN: usize = 16;
/// Largest data key keyward accepts, in bytes.
pub const MAX_KEY_LEN: usize = 4096;
/// Length of a freshly generated data key, in bytes.
pub const DEFAULT_KEY_LEN: usize = 32;

/// The data key K: the one secret a keybox exists to keep. Never mutated once made.
#[derive(Clone)]
pub struct DataKey(Zeroizing<Vec<u8>>);

impl DataKey {
    /// A fresh random key of `len` bytes.
    pub fn generate(len: usize) -> Result<Self> {
        check_key_len(len)?;
        Ok(DataKey(random::secret_bytes(len)?))
    }

    /// An existing secret brought under keyward's protection.
    pub fn import(bytes: Zeroizing<Vec<u8>>) -> Result<Self> {
        check_key_len(bytes.len())?;
        Ok(DataKey(bytes))
    }

    /// The key's bytes. Callers must not copy them anywhere that is not zeroized.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The key's public fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.0)
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DataKey(<{} bytes redacted>, {})", self.0.len(), self.fingerprint().short())
    }
}

fn check_key_len(len: usize) -> Result<()> {
    if (MIN_KEY_LEN..=MAX_KEY_LEN).contains(&len) {
        Ok(())
    } else {
        Err(Error::KeyLength { len, min: MIN_KEY_LEN, max: MAX_KEY_LEN })
    }
}

/// Shortest passphrase keyward accepts for a new slot, in bytes.
pub const MIN_PASSPHRASE_LEN: usize = 8;

/// A passphrase, as the bytes the user typed (UTF-8 from a prompt, raw from a file).
pub struct Passphrase(Zeroizing<Vec<u8>>);

impl Passphrase {
    /// Wraps the bytes of a passphrase.
    pub fn new(bytes: Zeroizing<Vec<u8>>) -> Self {
        Passphrase(bytes)
    }

    /// The passphrase's bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Checks that a passphrase is acceptable for a new slot.
    pub fn check_strength(&self) -> Result<()> {
        if self.0.len() < MIN_PASSPHRASE_LEN {
            return Err(Error::PassphraseTooShort { min: MIN_PASSPHRASE_LEN });
        }
        Ok(())
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

/// Smallest key file keyward accepts, in bytes (a key file is only as strong as its content).
pub const MIN_KEYFILE_LEN: usize = 16;
/// Largest key file keyward reads, in bytes (cryptsetup's default limit).
pub const MAX_KEYFILE_LEN: usize = 8 * 1024 * 1024;
/// Length of a key file keyward generates, in bytes.
pub const GENERATED_KEYFILE_LEN: usize = 64;

/// The contents of a key file.
pub struct KeyfileContents(Zeroizing<Vec<u8>>);

impl KeyfileContents {
    /// Wraps the bytes of a key file, checking its size.
    pub fn new(bytes: Zeroizing<Vec<u8>>) -> Result<Self> {
        if bytes.len() < MIN_KEYFILE_LEN || bytes.len() > MAX_KEYFILE_LEN {
            return Err(Error::KeyfileSize { len: bytes.len() });
        }
        Ok(KeyfileContents(bytes))
    }

    /// Fresh random contents for a new key file.
    pub fn generate() -> Result<Self> {
        Ok(KeyfileContents(random::secret_bytes(GENERATED_KEYFILE_LEN)?))
    }

    /// The file's bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for KeyfileContents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyfileContents(<redacted>)")
    }
}
