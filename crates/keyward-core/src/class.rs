//! What kind of failure an error is, in the terms a person (or a script) acts on. Every error
//! type of keyward says which of these it is, where it is defined, by an exhaustive match: a new
//! variant does not compile until someone decides its class. The CLI's stable exit codes are
//! exactly these classes (and 0 for success); its `--help`, its man page and the README's table
//! are all read from [`ErrorClass::ALL`].

use std::any::Any;

/// The kinds of failure, each with its stable exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ErrorClass {
    /// A bug, or a failure of the system that nothing given could have avoided (including a
    /// change written but not synced to disk).
    Internal = 1,
    /// Wrong arguments, missing input, no secret and no terminal.
    Usage = 2,
    /// A wrong code, passphrase, key file or PIN; a device whose state does not satisfy the
    /// slot's policy; a volume passphrase that opens no keyslot.
    AuthenticationFailed = 3,
    /// A corrupt or tampered keybox, blob, header or record.
    Integrity = 4,
    /// A key with another fingerprint than the one expected.
    FingerprintMismatch = 5,
    /// A keybox, slot, file or device that is not there.
    NotFound = 6,
    /// Something exists already, a lock is held, or something changed concurrently.
    Conflict = 7,
    /// A server, device or key agent cannot be reached or is busy.
    Unavailable = 8,
    /// Refused by policy: unsafe permissions, the last slot, a rate limit, an approval needed.
    Refused = 9,
    /// A server presented another certificate than the pinned one.
    CertificateMismatch = 10,
    /// A recovery path a drill tried is broken (or a fleet view found a box broken or stale).
    DrillFound = 11,
}

impl ErrorClass {
    /// Every class, by exit code.
    pub const ALL: [ErrorClass; 11] = [
        ErrorClass::Internal,
        ErrorClass::Usage,
        ErrorClass::AuthenticationFailed,
        ErrorClass::Integrity,
        ErrorClass::FingerprintMismatch,
        ErrorClass::NotFound,
        ErrorClass::Conflict,
        ErrorClass::Unavailable,
        ErrorClass::Refused,
        ErrorClass::CertificateMismatch,
        ErrorClass::DrillFound,
    ];

    /// The exit code.
    pub fn exit_code(self) -> u8 {
        self as u8
    }

    /// Its name, as the README's table and `--help` begin its row.
    pub fn name(self) -> &'static str {
        match self {
            ErrorClass::Internal => "internal error",
            ErrorClass::Usage => "usage",
            ErrorClass::AuthenticationFailed => "authentication failed",
            ErrorClass::Integrity => "integrity failure",
            ErrorClass::FingerprintMismatch => "fingerprint mismatch",
            ErrorClass::NotFound => "not found",
            ErrorClass::Conflict => "conflict",
            ErrorClass::Unavailable => "unavailable",
            ErrorClass::Refused => "refused by policy",
            ErrorClass::CertificateMismatch => "certificate mismatch",
            ErrorClass::DrillFound => "a recovery path is broken",
        }
    }
}

/// An error that knows its class, and can be taken back out of a `Box<dyn Classify>` as
/// itself (a slot kind's own error travels through [`crate::slot::SlotError::Other`]).
pub trait Classify: std::error::Error + Send + Sync + 'static {
    /// Which kind of failure it is.
    fn class(&self) -> ErrorClass;

    /// Itself, to be downcast to its type.
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send + Sync>;

    /// Itself, to be looked at as its type.
    fn as_any(&self) -> &(dyn Any + Send + Sync);
}

impl dyn Classify {
    /// The error as a `T`, if it is one; else the error itself, back.
    pub fn downcast<T: Classify>(self: Box<Self>) -> Result<Box<T>, Box<dyn Classify>> {
        if !self.as_any().is::<T>() {
            return Err(self);
        }
        self.into_any().downcast::<T>().map_err(|_| {
            Box::new(crate::Error::Internal("an error of a checked type did not downcast"))
                as Box<dyn Classify>
        })
    }

    /// The error as a `T`, if it is one.
    pub fn downcast_ref<T: Classify>(&self) -> Option<&T> {
        self.as_any().downcast_ref::<T>()
    }
}

/// Implements [`Classify`] for a type with an inherent `fn class(&self) -> ErrorClass`.
#[macro_export]
macro_rules! classify_by_method {
    ($($error:ty),+ $(,)?) => {$(
        impl $crate::class::Classify for $error {
            fn class(&self) -> $crate::class::ErrorClass {
                <$error>::class(self)
            }
            fn into_any(self: Box<Self>) -> Box<dyn ::std::any::Any + Send + Sync> {
                self
            }
            fn as_any(&self) -> &(dyn ::std::any::Any + Send + Sync) {
                self
            }
        }
    )+};
}
