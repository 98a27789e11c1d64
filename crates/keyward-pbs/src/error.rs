//! What can go wrong with a PBS key file. Messages name the field and, for fingerprints, the
//! expected and found prefixes, so a mismatch on a real box is diagnosable from one line.

use keyward_core::kdf::KdfError;

/// Errors of keyward-pbs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PbsError {
    /// Not JSON, or JSON cut short.
    #[error("not a Proxmox Backup key file: {0}")]
    NotJson(String),

    /// A field is missing or holds something a key file never has.
    #[error("field `{field}` {problem}")]
    BadField {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },

    /// A `kdf` this code does not know.
    #[error("field `kdf`: unknown kdf `{found}` (keyward reads null, Scrypt and PBKDF2)")]
    UnknownKdf {
        /// The kdf's name as found.
        found: String,
    },

    /// The file is encrypted and no passphrase was given.
    #[error("this key file is encrypted ({kdf}); give its passphrase")]
    PassphraseNeeded {
        /// The kdf, described.
        kdf: String,
    },

    /// The passphrase does not decrypt the key (or the encrypted key was changed).
    #[error("the passphrase does not open this key file{}", hint_text(.hint))]
    WrongPassphrase {
        /// The file's passphrase hint, shown as the client shows it.
        hint: Option<String>,
    },

    /// A freshly written escrow blob did not open again to the same key (a bug; nothing was
    /// written).
    #[error(
        "the new escrow blob did not open to the same key; nothing was written (please report this)"
    )]
    SelfCheckFailed,

    /// An escrow blob asks for a far costlier KDF than keyward writes (a hostile or broken blob).
    #[error("field `kdf`: an escrow blob asks for {found}, far more than keyward writes ({limit})")]
    EscrowCostTooHigh {
        /// The blob's KDF, described.
        found: String,
        /// The most keyward accepts, described.
        limit: String,
    },

    /// The file's `fingerprint` field does not belong to the key inside it.
    #[error(
        "field `fingerprint` says {stored}, but the key inside has {found}; the file was damaged or edited"
    )]
    StoredFingerprintMismatch {
        /// Short form of the stored fingerprint.
        stored: String,
        /// Short form of the key's fingerprint.
        found: String,
    },

    /// Encryption failed (it cannot for a 32-byte key; a bug).
    #[error("the key could not be encrypted (please report this)")]
    EncryptionFailed,

    /// PBS keys are 32 bytes.
    #[error("a Proxmox Backup key is 32 bytes; this one has {0}")]
    KeyLength(usize),

    /// The KDF would not run (out-of-bounds parameters or no memory).
    #[error("field `kdf`: {0}")]
    Kdf(#[from] KdfError),

    /// From keyward-core (the random number generator).
    #[error(transparent)]
    Core(#[from] keyward_core::Error),
}

fn hint_text(hint: &Option<String>) -> String {
    hint.as_ref().map(|h| format!(" (hint: {h})")).unwrap_or_default()
}

impl PbsError {
    /// Which kind of failure it is: a key file that does not read as one, or claims what it is
    /// not, is damage; a wrong passphrase an authentication failure.
    pub fn class(&self) -> keyward_core::ErrorClass {
        use keyward_core::ErrorClass;
        match self {
            PbsError::WrongPassphrase { .. } => ErrorClass::AuthenticationFailed,
            PbsError::SelfCheckFailed | PbsError::EncryptionFailed => ErrorClass::Internal,
            PbsError::PassphraseNeeded { .. } => ErrorClass::Usage,
            PbsError::NotJson(_)
            | PbsError::BadField { .. }
            | PbsError::UnknownKdf { .. }
            | PbsError::StoredFingerprintMismatch { .. }
            | PbsError::KeyLength(_)
            | PbsError::EscrowCostTooHigh { .. } => ErrorClass::Integrity,
            PbsError::Kdf(e) => e.class(),
            PbsError::Core(e) => e.class(),
        }
    }
}

keyward_core::classify_by_method!(PbsError);
