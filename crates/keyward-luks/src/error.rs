//! What a LUKS2 command can fail with. Each message says what to do next.

use std::path::PathBuf;

use keyward_core::Fingerprint;

use crate::journal::Anomaly;
use crate::workflow::Step;

/// Everything keyward's LUKS2 work can fail with.
#[derive(Debug, thiserror::Error)]
pub enum LuksError {
    /// The device or image file does not exist.
    #[error("{}: no such device or file", path.display())]
    Missing {
        /// The path given.
        path: PathBuf,
    },
    /// It exists, but has no LUKS2 header libcryptsetup can read.
    #[error("{}: no readable LUKS2 header ({reason}); keyward works on LUKS2 volumes (`cryptsetup luksDump` shows the version; `keyward luks header-restore` repairs a damaged header)", path.display())]
    NotLuks2 {
        /// The path given.
        path: PathBuf,
        /// libcryptsetup's reason.
        reason: String,
    },
    /// libcryptsetup failed at something keyward asked.
    #[error("{}: cannot {what}: {reason}", path.display())]
    Cryptsetup {
        /// The volume.
        path: PathBuf,
        /// What was being done.
        what: String,
        /// libcryptsetup's own message, or the error code's.
        reason: String,
    },
    /// keyward's LUKS2 helper is not installed beside keyward.
    #[error("{reason}")]
    HelperMissing {
        /// Where it was looked for, and what to do.
        reason: String,
    },
    /// keyward's LUKS2 helper failed.
    #[error("{}: {reason}", path.display())]
    Helper {
        /// The volume.
        path: PathBuf,
        /// What happened.
        reason: String,
    },
    /// The header's JSON metadata is not LUKS2's.
    #[error("{}: cannot read the header: {source}", path.display())]
    Metadata {
        /// The volume.
        path: PathBuf,
        /// What is wrong with it.
        source: crate::header::MetadataError,
    },
    /// Settling took more steps than any stopped command leaves.
    #[error("{}: keyward's tokens kept changing while keyward settled them; is another program editing the header?", path.display())]
    KeepsChanging {
        /// The volume.
        path: PathBuf,
    },
    /// The system's random source failed.
    #[error("cannot make an enrollment id: {0}")]
    Random(keyward_core::Error),
    /// The passphrase given opens no keyslot.
    #[error("{}: the passphrase given opens no keyslot of this volume; check it with `cryptsetup open --test-passphrase`", path.display())]
    WrongPassphrase {
        /// The volume.
        path: PathBuf,
    },
    /// The volume has no keyward pair.
    #[error("{}: no keyward keyslot; add one with `keyward luks enroll`", path.display())]
    NotEnrolled {
        /// The volume.
        path: PathBuf,
    },
    /// The volume has a keyward pair already.
    #[error("{}: keyslot {keyslot} is keyward's already (token {token}); give it a new passphrase with `keyward luks rotate`", path.display())]
    AlreadyEnrolled {
        /// The volume.
        path: PathBuf,
        /// Its keyslot.
        keyslot: u32,
        /// Its token.
        token: u32,
    },
    /// The volume's keyward pair belongs to another key than the keybox's.
    #[error("{}: keyward's keyslot belongs to key {}, and this keybox opens key {}; use the keybox that enrolled the volume", path.display(), .theirs.short(), .ours.short())]
    OtherKey {
        /// The volume.
        path: PathBuf,
        /// The fingerprint in the token.
        theirs: Fingerprint,
        /// The keybox's key's fingerprint.
        ours: Fingerprint,
    },
    /// keyward's committed keyslot does not open with the passphrase derived for it.
    #[error("{}: keyward's keyslot {keyslot} does not open with the passphrase derived from the key; it was changed outside keyward. Open the volume another way and enroll again", path.display())]
    KeyslotDoesNotOpen {
        /// The volume.
        path: PathBuf,
        /// The keyslot.
        keyslot: u32,
    },
    /// The header is in a state no keyward step leaves.
    #[error("{}: {anomaly}", path.display())]
    Anomaly {
        /// The volume.
        path: PathBuf,
        /// What is wrong.
        anomaly: Anomaly,
    },
    /// Removing keyward's keyslot would leave no keyslot at all.
    #[error("{}: keyslot {keyslot} is the volume's last; removing it would leave the volume with no way to open it. Add a passphrase first with `keyward luks add-passphrase`", path.display())]
    LastKeyslot {
        /// The volume.
        path: PathBuf,
        /// keyward's keyslot.
        keyslot: u32,
    },
    /// Every keyslot number is taken.
    #[error("{}: all {} keyslots are in use; remove one with `cryptsetup luksKillSlot` first", path.display(), crate::header::MAX_KEYSLOTS)]
    NoFreeKeyslot {
        /// The volume.
        path: PathBuf,
    },
    /// A header backup of another volume.
    #[error("{} is a header backup of volume {backup_uuid}, and {} is volume {volume_uuid}; restore a backup of this volume", backup.display(), path.display())]
    OtherVolume {
        /// The volume.
        path: PathBuf,
        /// Its UUID.
        volume_uuid: String,
        /// The backup.
        backup: PathBuf,
        /// The backup's UUID.
        backup_uuid: String,
    },
    /// The volume's header cannot be read, so nothing says the backup is of this volume. The
    /// backup's UUID is not printed: a person must name the volume from their own record, not
    /// paste what keyward would restore anyway.
    #[error("{} has no readable LUKS2 header to compare the backup's UUID with; if it is the volume the backup was made of, name it with --expect-uuid and the UUID you recorded for it (what `cryptsetup luksUUID` printed)", path.display())]
    NothingToCompare {
        /// The volume.
        path: PathBuf,
    },
    /// `--expect-uuid` names another volume than the backup's.
    #[error("{} is not a header backup of volume {expected} (--expect-uuid); nothing was written to {}", backup.display(), path.display())]
    ExpectedOtherVolume {
        /// The device.
        path: PathBuf,
        /// The UUID `--expect-uuid` gave.
        expected: String,
        /// The backup.
        backup: PathBuf,
    },
    /// The device holds something other than this volume's LUKS2 header: a header restore
    /// would write over it.
    #[error("{} holds {found}, not the volume this backup was made of; nothing was written (check the device name; `wipefs --no-act` lists what is on it)", path.display())]
    OtherSignature {
        /// The device.
        path: PathBuf,
        /// What libblkid recognised.
        found: String,
    },
    /// The device could not be probed for other signatures.
    #[error("{}: cannot tell what the device holds: {reason}; nothing was written", path.display())]
    Probe {
        /// The device.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Reading or writing a file of keyward's own (a header backup's copy).
    #[error("{}: {what}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// A header backup could not be sealed for the hub, or a sealed one opened.
    #[error("{what}: {source}")]
    HeaderEscrow {
        /// Which header backup (the volume, or where the sealed one came from).
        what: String,
        /// Why.
        source: crate::escrow::HeaderEscrowError,
    },
    /// A fault hook stopped the work after this step (crash tests only).
    #[error("{}: stopped after {step:?} by the fault hook", path.display())]
    Interrupted {
        /// The volume.
        path: PathBuf,
        /// The last step done.
        step: Step,
    },
}

/// The crate's result.
pub type Result<T, E = LuksError> = std::result::Result<T, E>;

impl LuksError {
    /// Which kind of failure it is.
    pub fn class(&self) -> keyward_core::ErrorClass {
        use keyward_core::ErrorClass;
        match self {
            LuksError::Missing { .. } | LuksError::NotEnrolled { .. } => ErrorClass::NotFound,
            LuksError::HelperMissing { .. } => ErrorClass::Unavailable,
            LuksError::NotLuks2 { .. } | LuksError::NothingToCompare { .. } => ErrorClass::Usage,
            LuksError::WrongPassphrase { .. } => ErrorClass::AuthenticationFailed,
            LuksError::OtherKey { .. } => ErrorClass::FingerprintMismatch,
            LuksError::KeyslotDoesNotOpen { .. }
            | LuksError::Anomaly { .. }
            | LuksError::Metadata { .. } => ErrorClass::Integrity,
            LuksError::AlreadyEnrolled { .. } | LuksError::KeepsChanging { .. } => {
                ErrorClass::Conflict
            }
            LuksError::LastKeyslot { .. }
            | LuksError::NoFreeKeyslot { .. }
            | LuksError::OtherVolume { .. }
            | LuksError::ExpectedOtherVolume { .. }
            | LuksError::OtherSignature { .. } => ErrorClass::Refused,
            LuksError::Cryptsetup { .. }
            | LuksError::Helper { .. }
            | LuksError::Io { .. }
            | LuksError::Interrupted { .. }
            | LuksError::Random(_)
            | LuksError::Probe { .. } => ErrorClass::Internal,
            LuksError::HeaderEscrow { source, .. } => source.class(),
        }
    }
}

keyward_core::classify_by_method!(LuksError);
