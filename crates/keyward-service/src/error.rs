//! Why a signed request or statement is refused. Each variant is a distinct, loggable reason;
//! none carries secret material.

/// A signature, timestamp, nonce or statement that does not pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// A header or field is missing or malformed.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// The signature does not verify under the claimed key.
    #[error("bad signature")]
    BadSignature,
    /// The timestamp is too far from the verifier's clock.
    #[error("timestamp {skew_secs} s off (at most {max_secs} s allowed)")]
    StaleTimestamp {
        /// How far off, in seconds.
        skew_secs: i64,
        /// The allowed skew.
        max_secs: i64,
    },
    /// A statement's expiry has passed.
    #[error("expired {secs_ago} s ago")]
    Expired {
        /// How long ago.
        secs_ago: i64,
    },
    /// A statement of another kind, or for another box or version, was presented.
    #[error("the statement is {found}, not {expected}")]
    WrongStatement {
        /// What was expected.
        expected: String,
        /// What was presented.
        found: String,
    },
    /// The signer is not one the verifier trusts.
    #[error("unknown signer")]
    UnknownSigner,
    /// A signed request whose nonce was seen before.
    #[error("replayed request (nonce already seen)")]
    Replayed,
    /// A signed request made for another server (its audience is another certificate).
    #[error("the request was signed for another server")]
    WrongAudience,
}
