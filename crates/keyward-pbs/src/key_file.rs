//! The key file itself: parsing with errors that name the field, writing compact JSON in
//! proxmox-backup-client's field order, and opening or sealing the key.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use keyward_core::kdf::KdfParams;
use keyward_core::{DataKey, Fingerprint};
use serde::Serialize;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::crypt::{self, IV_LEN, TAG_LEN};
use crate::{PbsError, PbsTime, pbs_fingerprint};

/// Length of a PBS key.
pub const KEY_LEN: usize = 32;
/// Salt length proxmox-backup-client uses.
const SALT_LEN: usize = 32;
/// scrypt parameters proxmox-backup-client uses.
const SCRYPT_N: u64 = 65536;
const SCRYPT_R: u64 = 8;
const SCRYPT_P: u64 = 1;
/// The most memory proxmox-backup-client lets scrypt use.
const MAX_SCRYPT_MEMORY: u64 = 1025 * 1024 * 1024;
/// PBKDF2 iterations proxmox-backup-client uses.
const PBKDF2_ITER: u64 = 65535;

/// How the key is protected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PbsKdf {
    /// scrypt with N, r, p and a salt.
    Scrypt {
        /// Cost (a power of two).
        n: u64,
        /// Block size.
        r: u64,
        /// Parallelism.
        p: u64,
        /// Salt.
        salt: Vec<u8>,
    },
    /// PBKDF2-HMAC-SHA256.
    Pbkdf2 {
        /// Iterations.
        iter: u64,
        /// Salt.
        salt: Vec<u8>,
    },
}

impl PbsKdf {
    /// scrypt as proxmox-backup-client writes it (N=65536, r=8, p=1), with a fresh salt.
    pub fn scrypt() -> Result<Self, PbsError> {
        Ok(PbsKdf::Scrypt { n: SCRYPT_N, r: SCRYPT_R, p: SCRYPT_P, salt: fresh_salt()? })
    }

    /// PBKDF2 as proxmox-backup-client writes it (65535 iterations), with a fresh salt.
    pub fn pbkdf2() -> Result<Self, PbsError> {
        Ok(PbsKdf::Pbkdf2 { iter: PBKDF2_ITER, salt: fresh_salt()? })
    }

    /// The same derivation as keyward-core parameters, bounds checked: a file asking for more
    /// work than keyward allows is refused before any work.
    fn params(&self) -> Result<KdfParams, PbsError> {
        let params = match self {
            PbsKdf::Scrypt { n, r, p, salt } => {
                if !n.is_power_of_two() || *n < 2 {
                    return Err(bad("kdf", format!("scrypt n={n} is not a power of two")));
                }
                // The client itself refuses more (OpenSSL's maxmem of 1025 MiB).
                let memory = 128u64.saturating_mul(*r).saturating_mul(*n);
                if memory > MAX_SCRYPT_MEMORY {
                    return Err(bad(
                        "kdf",
                        format!(
                            "scrypt needs {} MiB, more than proxmox-backup-client allows (1025 MiB)",
                            memory >> 20
                        ),
                    ));
                }
                KdfParams::Scrypt {
                    log_n: u8::try_from(n.trailing_zeros()).unwrap_or(u8::MAX),
                    r: u32::try_from(*r).map_err(|_| bad("kdf", format!("scrypt r={r}")))?,
                    p: u32::try_from(*p).map_err(|_| bad("kdf", format!("scrypt p={p}")))?,
                    salt: salt.clone(),
                }
            }
            PbsKdf::Pbkdf2 { iter, salt } => KdfParams::Pbkdf2Sha256 {
                iter: u32::try_from(*iter)
                    .map_err(|_| bad("kdf", format!("PBKDF2 iter={iter}")))?,
                salt: salt.clone(),
            },
        };
        params.validate().map_err(|e| bad("kdf", e.to_string()))?;
        Ok(params)
    }

    /// The key-encryption key for `passphrase`.
    fn derive(&self, passphrase: &[u8]) -> Result<Zeroizing<[u8; 32]>, PbsError> {
        Ok(self.params()?.derive(passphrase)?)
    }

    /// A one-line description.
    pub fn describe(&self) -> String {
        match self {
            PbsKdf::Scrypt { n, r, p, .. } => format!("scrypt n={n} r={r} p={p}"),
            PbsKdf::Pbkdf2 { iter, .. } => format!("PBKDF2 iter={iter}"),
        }
    }
}

fn fresh_salt() -> Result<Vec<u8>, PbsError> {
    Ok(keyward_core::random::array::<SALT_LEN>()?.to_vec())
}

fn bad(field: &'static str, problem: impl Into<String>) -> PbsError {
    PbsError::BadField { field, problem: problem.into() }
}

/// A Proxmox Backup client key file.
#[derive(Clone, PartialEq, Eq)]
pub struct PbsKeyFile {
    /// `None` for `"kdf": null` (the key is stored in the clear).
    pub kdf: Option<PbsKdf>,
    /// When the key was made.
    pub created: PbsTime,
    /// When the file was last re-keyed.
    pub modified: PbsTime,
    /// The key (kdf null) or IV ‖ tag ‖ encrypted key.
    data: Vec<u8>,
    /// The PBS fingerprint of the key, if the file records it.
    pub fingerprint: Option<Fingerprint>,
    /// A passphrase hint, if any.
    pub hint: Option<String>,
}

/// `data` may be the key itself: never printed.
impl std::fmt::Debug for PbsKeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PbsKeyFile")
            .field("kdf", &self.kdf.as_ref().map(PbsKdf::describe))
            .field("created", &self.created)
            .field("modified", &self.modified)
            .field("data", &"<redacted>")
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

impl PbsKeyFile {
    /// Reads a key file. Unknown fields are ignored, as proxmox-backup-client ignores them.
    pub fn parse(bytes: &[u8]) -> Result<Self, PbsError> {
        let mut value: Value = serde_json::from_slice(bytes).map_err(|e| {
            if e.is_eof() {
                PbsError::NotJson(format!("the file is truncated ({e})"))
            } else {
                PbsError::NotJson(e.to_string())
            }
        })?;
        let object =
            value.as_object().ok_or_else(|| PbsError::NotJson("not a JSON object".into()))?;
        let kdf = parse_kdf(object)?;
        let created = PbsTime::parse("created", required_str(object, "created")?)?;
        let modified = PbsTime::parse("modified", required_str(object, "modified")?)?;
        let data = base64_field(required_str(object, "data")?, "data")?;
        // For kdf null that text is the key in base64: wipe it before the value is dropped.
        if let Some(Value::String(text)) = value.get_mut("data") {
            zeroize::Zeroize::zeroize(text);
        }
        let object =
            value.as_object().ok_or_else(|| PbsError::NotJson("not a JSON object".into()))?;
        match &kdf {
            None if data.len() != KEY_LEN => {
                return Err(bad(
                    "data",
                    format!("holds {} bytes; an unencrypted key holds {KEY_LEN}", data.len()),
                ));
            }
            Some(_) if data.len() != IV_LEN + TAG_LEN + KEY_LEN => {
                return Err(bad(
                    "data",
                    format!(
                        "holds {} bytes; an encrypted key holds 64 (16 IV + 16 tag + 32 key)",
                        data.len()
                    ),
                ));
            }
            _ => {}
        }
        let fingerprint = match object.get("fingerprint") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(
                text.parse::<Fingerprint>()
                    .map_err(|e| bad("fingerprint", format!("is not a fingerprint ({e})")))?,
            ),
            Some(_) => return Err(bad("fingerprint", "is not a string")),
        };
        let hint = match object.get("hint") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text.clone()),
            Some(_) => return Err(bad("hint", "is not a string")),
        };
        Ok(PbsKeyFile { kdf, created, modified, data, fingerprint, hint })
    }

    /// The file as proxmox-backup-client writes it: compact JSON, no trailing newline. For kdf
    /// null it holds the key: the caller keeps it in a zeroized buffer.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        #[derive(Serialize)]
        enum KdfOut {
            Scrypt {
                n: u64,
                r: u64,
                p: u64,
                salt: String,
            },
            #[serde(rename = "PBKDF2")]
            Pbkdf2 {
                iter: u64,
                salt: String,
            },
        }
        #[derive(Serialize)]
        struct FileOut<'a> {
            kdf: Option<KdfOut>,
            created: &'a str,
            modified: &'a str,
            data: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            fingerprint: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            hint: Option<&'a str>,
        }
        let kdf = self.kdf.as_ref().map(|k| match k {
            PbsKdf::Scrypt { n, r, p, salt } => {
                KdfOut::Scrypt { n: *n, r: *r, p: *p, salt: STANDARD.encode(salt) }
            }
            PbsKdf::Pbkdf2 { iter, salt } => {
                KdfOut::Pbkdf2 { iter: *iter, salt: STANDARD.encode(salt) }
            }
        });
        let data = Zeroizing::new(STANDARD.encode(&self.data));
        let out = FileOut {
            kdf,
            created: self.created.as_str(),
            modified: self.modified.as_str(),
            data: &data,
            fingerprint: self.fingerprint.map(|f| f.to_string()),
            hint: self.hint.as_deref(),
        };
        // Serializing strings and integers cannot fail.
        // Written into one buffer big enough from the start: a growing Vec would free copies
        // holding part of the key. Serializing strings and integers cannot fail; on the
        // impossible failure the result is empty, never partial.
        let mut bytes = Zeroizing::new(Vec::with_capacity(1024));
        if serde_json::to_writer(&mut *bytes, &out).is_err() {
            bytes.clear();
        }
        bytes
    }

    /// Opens the key: decrypts it with `passphrase` (unless the kdf is null), and checks it
    /// against the file's own `fingerprint` field when there is one, as the client does.
    pub fn open(&self, passphrase: Option<&[u8]>) -> Result<DataKey, PbsError> {
        let key = match &self.kdf {
            None => Zeroizing::new(self.data.clone()),
            Some(kdf) => {
                let passphrase =
                    passphrase.ok_or_else(|| PbsError::PassphraseNeeded { kdf: kdf.describe() })?;
                let kek = kdf.derive(passphrase)?;
                crypt::open(&kek, &self.data)
                    .ok_or_else(|| PbsError::WrongPassphrase { hint: self.hint.clone() })?
            }
        };
        if key.len() != KEY_LEN {
            return Err(PbsError::KeyLength(key.len()));
        }
        let found = pbs_fingerprint(&key);
        if let Some(stored) = self.fingerprint
            && stored != found
        {
            return Err(PbsError::StoredFingerprintMismatch {
                stored: stored.short(),
                found: found.short(),
            });
        }
        DataKey::import(key).map_err(PbsError::from)
    }

    /// A key file holding `key`: in the clear (`protection` None) or encrypted under a
    /// passphrase with the given kdf and a fresh IV. Records the key's PBS fingerprint.
    pub fn seal(
        key: &DataKey,
        protection: Option<(PbsKdf, &[u8])>,
        created: PbsTime,
        modified: PbsTime,
    ) -> Result<Self, PbsError> {
        let iv = keyward_core::random::array::<IV_LEN>()?;
        Self::seal_with_iv(key, protection, &iv, created, modified)
    }

    /// [`PbsKeyFile::seal`] with a given IV (for reproducing vectors).
    pub fn seal_with_iv(
        key: &DataKey,
        protection: Option<(PbsKdf, &[u8])>,
        iv: &[u8; IV_LEN],
        created: PbsTime,
        modified: PbsTime,
    ) -> Result<Self, PbsError> {
        if key.expose().len() != KEY_LEN {
            return Err(PbsError::KeyLength(key.expose().len()));
        }
        let (kdf, data) = match protection {
            None => (None, key.expose().to_vec()),
            Some((kdf, passphrase)) => {
                let kek = kdf.derive(passphrase)?;
                let data = crypt::seal(&kek, iv, key.expose()).ok_or(PbsError::EncryptionFailed)?;
                (Some(kdf), data)
            }
        };
        Ok(PbsKeyFile {
            kdf,
            created,
            modified,
            data,
            fingerprint: Some(pbs_fingerprint(key.expose())),
            hint: None,
        })
    }
}

impl Drop for PbsKeyFile {
    fn drop(&mut self) {
        // For kdf null, `data` is the key itself.
        zeroize::Zeroize::zeroize(&mut self.data);
    }
}

fn required_str<'a>(
    object: &'a Map<String, Value>,
    field: &'static str,
) -> Result<&'a str, PbsError> {
    match object.get(field) {
        Some(Value::String(text)) => Ok(text),
        Some(_) => Err(bad(field, "is not a string")),
        None => Err(bad(field, "is missing")),
    }
}

fn base64_field(text: &str, field: &'static str) -> Result<Vec<u8>, PbsError> {
    STANDARD.decode(text).map_err(|e| bad(field, format!("is not base64 ({e})")))
}

fn u64_field(
    object: &Map<String, Value>,
    field: &'static str,
    name: &str,
) -> Result<u64, PbsError> {
    object
        .get(name)
        .and_then(Value::as_u64)
        .ok_or_else(|| bad(field, format!("has no whole number `{name}`")))
}

fn parse_kdf(object: &Map<String, Value>) -> Result<Option<PbsKdf>, PbsError> {
    // A missing kdf reads as null, as serde reads a missing `Option` in the client.
    let map = match object.get("kdf").unwrap_or(&Value::Null) {
        Value::Null => return Ok(None),
        Value::Object(map) => map,
        Value::String(name) => {
            return Err(PbsError::UnknownKdf { found: name.clone() });
        }
        _ => return Err(bad("kdf", "is not null or an object")),
    };
    let mut entries = map.iter();
    let (Some((name, params)), None) = (entries.next(), entries.next()) else {
        return Err(bad("kdf", "must name exactly one kdf"));
    };
    let kdf = match name.as_str() {
        "Scrypt" | "PBKDF2" => {
            let params = params
                .as_object()
                .ok_or_else(|| bad("kdf", format!("`{name}` has no parameters")))?;
            let salt = match params.get("salt") {
                Some(Value::String(text)) => base64_field(text, "kdf")?,
                _ => return Err(bad("kdf", format!("`{name}` has no salt"))),
            };
            if name == "Scrypt" {
                PbsKdf::Scrypt {
                    n: u64_field(params, "kdf", "n")?,
                    r: u64_field(params, "kdf", "r")?,
                    p: u64_field(params, "kdf", "p")?,
                    salt,
                }
            } else {
                PbsKdf::Pbkdf2 { iter: u64_field(params, "kdf", "iter")?, salt }
            }
        }
        other => {
            return Err(PbsError::UnknownKdf { found: other.to_string() });
        }
    };
    kdf.params()?;
    Ok(Some(kdf))
}
