//! The one error type of keyward-core. Each variant is a situation the user can act on, and its
//! message says what happened and what to do next; the CLI maps variants to exit codes.

use std::path::PathBuf;

use crate::class::ErrorClass;
use crate::fingerprint::Fingerprint;
use crate::slot::{SlotError, SlotId};

/// Everything that can go wrong in keyward-core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The secret given (code, passphrase, key file) opens none of the slots it was tried on.
    #[error("{tried} does not open this keybox; check it and try again, or use another slot")]
    WrongSecret {
        /// What was tried, in words ("the recovery code", "the passphrase for slot 2").
        tried: String,
    },

    /// A recovery code could not be read: a word is not on the list, or the count is wrong.
    #[error("the recovery code is not valid: {0}")]
    BadRecoveryCode(#[from] crate::recovery_code::CodeError),

    /// The keybox file (or a blob) is damaged or was edited by someone who does not hold K.
    #[error("{path} is damaged or was edited ({what}); restore it from a backup or re-create it")]
    Integrity {
        /// The file that failed its check.
        path: PathBuf,
        /// Which check failed.
        what: IntegrityFailure,
    },

    /// A recovered key does not have the fingerprint it must have.
    #[error("key fingerprint is {found}, expected {expected}; nothing was written")]
    FingerprintMismatch {
        /// The fingerprint recorded or asked for.
        expected: String,
        /// The fingerprint of the key that was recovered.
        found: String,
    },

    /// The keybox file does not exist.
    #[error("no keybox at {0}; create one with `keyward init` or pass --keybox PATH")]
    KeyboxNotFound(PathBuf),

    /// The keybox does not record something asked for.
    #[error("this keybox has no {0}")]
    NotRecorded(&'static str),

    /// No slot has the given id or label.
    #[error("no slot {0} in this keybox; `keyward list` shows the slots")]
    SlotNotFound(String),

    /// The keybox has no slot of a kind a command needs (a recovery-code slot to escrow).
    #[error("this keybox has no {0} slot; `keyward list` shows the slots")]
    NoSlotOfKind(String),

    /// No slot of the keybox opens with the kind of secret given.
    #[error("no slot of this keybox opens with {0}; `keyward list` shows the slots")]
    NoSlotTakes(&'static str),

    /// The slot named needs something that was not given and cannot be asked for here.
    #[error(
        "slot {slot} needs {needs}; give it with its option (see --help), or run on a terminal"
    )]
    SlotNeeds {
        /// The slot.
        slot: SlotId,
        /// What opens it ("the PIN").
        needs: String,
    },

    /// A slot of a kind this build does not know was named.
    #[error(
        "slot {slot} is of kind `{kind}`, which this keyward does not know; open it with a newer keyward, or use another slot"
    )]
    UnknownKind {
        /// The slot.
        slot: SlotId,
        /// Its kind's name.
        kind: String,
    },

    /// A slot could not give its key: its device, or a failure of the kind's own.
    #[error("slot {slot}: {source}")]
    Slot {
        /// The slot.
        slot: SlotId,
        /// What went wrong.
        source: SlotError,
    },

    /// Nothing given and no slot opens without a secret.
    #[error(
        "no slot opens without a secret; pass the code, passphrase or key file with its file option (see --help), or run on a terminal"
    )]
    NoUnattendedSlot,

    /// The keybox already exists where `init` would create one.
    #[error(
        "a keybox already exists at {0}; keyward never overwrites one (use another --keybox path)"
    )]
    KeyboxExists(PathBuf),

    /// Another keyward process holds the keybox lock for longer than we waited.
    #[error("another keyward command is changing {0}; wait for it to finish and run this again")]
    LockHeld(PathBuf),

    /// The keybox changed between our read and our write (generation compare-and-swap failed).
    #[error(
        "{path} changed while this command ran (generation {expected} became {found}); run the command again"
    )]
    ConcurrentChange {
        /// The keybox file.
        path: PathBuf,
        /// The generation we read.
        expected: u64,
        /// The generation found at commit time.
        found: u64,
    },

    /// An output file exists and overwriting was not asked for.
    #[error("{0} already exists; keyward does not overwrite it (choose another path)")]
    OutputExists(PathBuf),

    /// Something other than a regular file of this user's is where a secret would go.
    #[error(
        "{path} is {what}; keyward writes a secret only to a new file or over a regular file of yours (for a pipe of your own, use --out - or /dev/fd/N)"
    )]
    OutputNotReplaceable {
        /// The output path.
        path: PathBuf,
        /// What is there.
        what: &'static str,
    },

    /// The folder an output would go in does not exist.
    #[error("cannot write {}: the folder {} does not exist; create it first (mkdir -m 700)", path.display(), folder.display())]
    MissingFolder {
        /// The output path.
        path: PathBuf,
        /// Its folder.
        folder: PathBuf,
    },

    /// The keybox path names a folder (or a pipe, …), not a file.
    #[error("{} is {what}, not a keybox file; give the keybox file's path (--keybox PATH)", path.display())]
    NotAKeyboxFile {
        /// The path.
        path: PathBuf,
        /// What is there.
        what: &'static str,
    },

    /// A file or folder holding key material is writable by other users (or, for a keybox with
    /// a plain slot, readable).
    #[error("{path} is {problem}; fix it with `{fix}` and run this again")]
    InsecurePermissions {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong ("writable by other users").
        problem: &'static str,
        /// A command that fixes it.
        fix: String,
    },

    /// Removing this slot would leave the keybox with no way to open it.
    #[error("slot {0} is the last slot; enroll another slot before removing it")]
    LastSlot(SlotId),

    /// Removing this slot would leave no slot that opens with no network and no device.
    #[error(
        "slot {0} is the last recovery-code, passphrase or key-file slot: without it only a device or the network opens the keybox; enroll another first, or remove it with --force"
    )]
    LastOfflineFallback(SlotId),

    /// A data key (generated or imported) of a length keyward does not keep.
    #[error("a data key must be {min} to {max} bytes long, not {len}")]
    KeyLength {
        /// The length offered.
        len: usize,
        /// The shortest accepted.
        min: usize,
        /// The longest accepted.
        max: usize,
    },

    /// A new passphrase is too short.
    #[error("a passphrase must be at least {min} characters; choose a longer one")]
    PassphraseTooShort {
        /// The minimum length.
        min: usize,
    },

    /// A key file is too small to be a secret or too large to be read.
    #[error("a key file must hold 16 bytes to 8 MiB, this one holds {len}; use another file")]
    KeyfileSize {
        /// The file's size.
        len: usize,
    },

    /// A new secret of one kind was offered to rotate a slot of another kind.
    #[error(
        "slot {slot} is a {kind} slot, not a {offered} slot; a slot keeps its kind (enroll a new slot and remove this one)"
    )]
    SlotKindMismatch {
        /// The slot.
        slot: SlotId,
        /// Its kind.
        kind: String,
        /// The kind of the new secret.
        offered: String,
    },

    /// A secret was offered for a slot that does not open with that kind of secret.
    #[error(
        "slot {slot} is a {kind} slot and does not open with {offered}; give the secret for its kind (`keyward list` shows it)"
    )]
    WrongSecretKind {
        /// The slot.
        slot: SlotId,
        /// Its kind.
        kind: String,
        /// What was offered ("the passphrase").
        offered: &'static str,
    },

    /// Another slot already has this label.
    #[error("a slot is already labelled `{0}`; choose another --label")]
    DuplicateLabel(String),

    /// A label that is empty or all digits (it would be mistaken for a slot id).
    #[error(
        "`{0}` cannot be a slot label: labels are not empty and not numbers (those are slot ids)"
    )]
    BadLabel(String),

    /// The system would not give a KDF its memory.
    #[error("cannot get {} MiB of memory for the KDF; free some memory and try again", .kib / 1024)]
    OutOfMemory {
        /// How much was asked for, in KiB.
        kib: u64,
    },

    /// The change was written, but making it durable (fsync) failed: it is in place now but
    /// might not survive a power cut. Nothing the change produced may be thrown away.
    #[error(
        "{path} was changed, but syncing it to disk failed ({source}); keep any new secret it printed or wrote, and check the disk"
    )]
    NotDurable {
        /// The keybox.
        path: PathBuf,
        /// The failing fsync or cleanup.
        source: std::io::Error,
    },

    /// A key could not be split into shares, or shares could not be combined.
    #[error(transparent)]
    Shares(#[from] crate::shamir::ShareError),

    /// The keybox has used every slot id.
    #[error("this keybox has used every slot id; create a new keybox")]
    SlotIdsExhausted,

    /// KDF settings asked for a new slot are below keyward's floor (or beyond its bounds).
    #[error("cannot use {0}; choose settings within the bounds")]
    KdfBelowFloor(String),

    /// KDF parameters chosen for a new slot are outside what keyward accepts.
    #[error("cannot use these KDF parameters ({0}); choose a smaller memory or time")]
    KdfParams(IntegrityFailure),

    /// Something that cannot happen did; a bug.
    #[error("internal error: {0}; please report it")]
    Internal(&'static str),

    /// The operating system could not give us random bytes.
    #[error("the system random number generator failed ({0}); nothing was written")]
    Random(String),

    /// The disk (or the user's quota) is full: nothing was changed, and no temp file is left.
    #[error("cannot write {}: the disk is full ({source}); nothing was changed — free some space and run this again", path.display())]
    DiskFull {
        /// The file that was being written.
        path: PathBuf,
        /// The system's words.
        source: std::io::Error,
    },

    /// An I/O operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What we were doing ("cannot read", "cannot write").
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Which integrity check a keybox or blob failed. The names are shown to users.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IntegrityFailure {
    /// Larger than any keybox keyward writes.
    #[error("file is {0} bytes, larger than any keybox")]
    TooLarge(u64),
    /// Not a JSON document of the expected shape.
    #[error("not a keybox: {0}")]
    Malformed(String),
    /// A format version this build does not read.
    #[error("format version {0} is not supported by this keyward; upgrade keyward")]
    UnsupportedVersion(u64),
    /// Valid JSON, but not byte-for-byte what keyward writes.
    #[error("the file is not in canonical form")]
    NotCanonical,
    /// The unkeyed checksum does not match: accidental corruption.
    #[error("checksum mismatch")]
    Checksum,
    /// The header MAC (keyed from K) does not match: a deliberate edit.
    #[error("header MAC mismatch")]
    HeaderMac,
    /// A slot's wrapped key opened, but to a key whose fingerprint is not the keybox's.
    #[error("slot {0} holds a key with the wrong fingerprint")]
    SlotKeyMismatch(SlotId),
    /// A slot whose KEK cannot be wrong (it came from the slot's record, or from a device that
    /// checked its own secret) does not open its wrapped key: the record was changed.
    #[error(
        "slot {0}'s record was changed: the key its device gives does not open its wrapped key"
    )]
    SlotRecordChanged(SlotId),
    /// KDF parameters outside the bounds keyward accepts (a hostile work factor, or damage).
    #[error("KDF parameters out of bounds: {0}")]
    KdfOutOfBounds(String),
    /// The structure is inconsistent (duplicate slot ids, a token for a missing slot, …).
    #[error("{0}")]
    Inconsistent(String),
}

impl Error {
    /// Which kind of failure it is (the CLI's exit code).
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::WrongSecret { .. } | Error::BadRecoveryCode(_) => {
                ErrorClass::AuthenticationFailed
            }
            Error::Integrity { .. } => ErrorClass::Integrity,
            Error::FingerprintMismatch { .. } => ErrorClass::FingerprintMismatch,
            Error::KeyboxNotFound(_)
            | Error::SlotNotFound(_)
            | Error::NoSlotOfKind(_)
            | Error::NoSlotTakes(_)
            | Error::NotRecorded(_)
            | Error::MissingFolder { .. } => ErrorClass::NotFound,
            Error::UnknownKind { .. } => ErrorClass::Unavailable,
            Error::Slot { source, .. } => source.class(),
            Error::KeyboxExists(_)
            | Error::LockHeld(_)
            | Error::ConcurrentChange { .. }
            | Error::OutputExists(_)
            | Error::OutputNotReplaceable { .. } => ErrorClass::Conflict,
            Error::InsecurePermissions { .. }
            | Error::LastSlot(_)
            | Error::LastOfflineFallback(_)
            | Error::SlotIdsExhausted => ErrorClass::Refused,
            Error::KeyLength { .. }
            | Error::PassphraseTooShort { .. }
            | Error::KeyfileSize { .. }
            | Error::SlotKindMismatch { .. }
            | Error::WrongSecretKind { .. }
            | Error::SlotNeeds { .. }
            | Error::DuplicateLabel(_)
            | Error::BadLabel(_)
            | Error::KdfParams(_)
            | Error::KdfBelowFloor(_)
            | Error::NotAKeyboxFile { .. }
            | Error::NoUnattendedSlot => ErrorClass::Usage,
            Error::Shares(e) => e.class(),
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ErrorClass::NotFound
            }
            Error::Io { .. }
            | Error::DiskFull { .. }
            | Error::Random(_)
            | Error::Internal(_)
            | Error::OutOfMemory { .. }
            | Error::NotDurable { .. } => ErrorClass::Internal,
        }
    }

    /// The error for a KDF that failed on parameters read from `path`.
    pub fn from_stored_kdf(error: crate::kdf::KdfError, path: &std::path::Path) -> Self {
        match error {
            crate::kdf::KdfError::Params(what) => {
                Error::Integrity { path: path.to_path_buf(), what }
            }
            crate::kdf::KdfError::OutOfMemory { kib } => Error::OutOfMemory { kib },
        }
    }

    /// The error for a KDF that failed on parameters chosen for a new slot.
    pub fn from_new_kdf(error: crate::kdf::KdfError) -> Self {
        match error {
            crate::kdf::KdfError::Params(what) => Error::KdfParams(what),
            crate::kdf::KdfError::OutOfMemory { kib } => Error::OutOfMemory { kib },
        }
    }

    /// The error for a slot that failed to give its KEK while opening the keybox at `path`.
    pub fn from_slot(slot: SlotId, error: SlotError, path: &std::path::Path) -> Self {
        match error {
            SlotError::Params(what) => Error::Integrity { path: path.to_path_buf(), what },
            SlotError::Kdf(e) => Error::from_stored_kdf(e, path),
            SlotError::Core(e) => *e,
            source => Error::Slot { slot, source },
        }
    }

    /// The error for a new slot `slot` that could not be sealed.
    pub fn from_new_slot(slot: SlotId, error: SlotError) -> Self {
        match error {
            SlotError::Params(what) => Error::KdfParams(what),
            SlotError::Kdf(e) => Error::from_new_kdf(e),
            SlotError::Core(e) => *e,
            source => Error::Slot { slot, source },
        }
    }

    /// Builds an [`Error::Io`] — or, for a full disk, an [`Error::DiskFull`]: every write
    /// keyward makes before a change's point of no return goes to a new file, removed again on
    /// failure, so a full disk changes nothing.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        match source.kind() {
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                Error::DiskFull { path: path.into(), source }
            }
            _ => Error::Io { action, path: path.into(), source },
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A fingerprint mismatch from two fingerprints.
pub(crate) fn fingerprint_mismatch(expected: &Fingerprint, found: &Fingerprint) -> Error {
    Error::FingerprintMismatch { expected: expected.to_string(), found: found.to_string() }
}

crate::classify_by_method!(Error);
