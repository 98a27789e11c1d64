//! Why a service refuses or fails a request: [`ServiceError`], one family per answer the hub
//! and the peers give (written once for both), and [`AuthError`], why a proof — a signed
//! request, a statement, a nonce — does not pass. Each variant is a distinct, loggable reason;
//! none carries secret material.

use axum::http::StatusCode;

use crate::nonces::NonceError;
use crate::store::StoreError;

/// Why the hub or a peer refused or failed a request.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is not well formed (400).
    #[error("malformed request: {0}")]
    Malformed(String),
    /// A proof (signature, token, ticket, nonce) does not hold (401); counts toward the
    /// source's lockout.
    #[error("not authenticated: {0}")]
    Unauthenticated(#[from] AuthError),
    /// Authenticated, but policy says no: a used ticket, a lockout, not pending, a quota (403).
    #[error("refused: {0}")]
    Refused(String),
    /// Too many requests from one source or for one box (429).
    #[error("rate limited: {0}")]
    RateLimited(String),
    /// No such box, escrow or share set (404).
    #[error("not found: {0}")]
    NotFound(String),
    /// A name or set that belongs to someone else (409).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The service's own failure (500): logged with this detail, answered without it.
    #[error("internal: {0}")]
    Internal(String),
}

/// The families of refusal and failure a service answers with, each with its status and code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400 `malformed`.
    Malformed,
    /// 401 `unauthenticated`: a failed proof, counted toward the source's lockout.
    Unauthenticated,
    /// 403 `refused`.
    Refused,
    /// 429 `rate-limited`.
    RateLimited,
    /// 404 `not-found`.
    NotFound,
    /// 409 `conflict`.
    Conflict,
    /// 500 `internal`: the server's own failure, logged with its detail, answered without it.
    Internal,
}

impl ErrorKind {
    /// The HTTP status and the stable error code.
    pub fn status_and_code(self) -> (StatusCode, &'static str) {
        match self {
            ErrorKind::Malformed => (StatusCode::BAD_REQUEST, "malformed"),
            ErrorKind::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            ErrorKind::Refused => (StatusCode::FORBIDDEN, "refused"),
            ErrorKind::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate-limited"),
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not-found"),
            ErrorKind::Conflict => (StatusCode::CONFLICT, "conflict"),
            ErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl ServiceError {
    /// The reason alone, for the answer's message (the status already says the family).
    pub fn reason(&self) -> String {
        match self {
            ServiceError::Malformed(r)
            | ServiceError::Refused(r)
            | ServiceError::RateLimited(r)
            | ServiceError::NotFound(r)
            | ServiceError::Conflict(r) => r.clone(),
            ServiceError::Unauthenticated(e) => format!("not authenticated: {e}"),
            ServiceError::Internal(_) => "internal error".into(),
        }
    }

    /// Its family.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ServiceError::Malformed(_) => ErrorKind::Malformed,
            ServiceError::Unauthenticated(_) => ErrorKind::Unauthenticated,
            ServiceError::Refused(_) => ErrorKind::Refused,
            ServiceError::RateLimited(_) => ErrorKind::RateLimited,
            ServiceError::NotFound(_) => ErrorKind::NotFound,
            ServiceError::Conflict(_) => ErrorKind::Conflict,
            ServiceError::Internal(_) => ErrorKind::Internal,
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        ServiceError::Internal(e.to_string())
    }
}

impl From<NonceError> for ServiceError {
    fn from(e: NonceError) -> Self {
        match e {
            NonceError::Full => ServiceError::RateLimited(e.to_string()),
            NonceError::Malformed => ServiceError::Malformed(e.to_string()),
            NonceError::Seen => AuthError::Replayed.into(),
            NonceError::Unknown | NonceError::Expired => AuthError::Nonce(e).into(),
            NonceError::Broken => ServiceError::Internal(e.to_string()),
        }
    }
}

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
    /// A challenge nonce that is not (or no longer) good.
    #[error(transparent)]
    Nonce(NonceError),
    /// A proof that does not show what it must (the policy's proofs, a share set held here).
    #[error("{0}")]
    Unproven(&'static str),
    /// A box whose name moved to another identity (an operator's takeover) since the key
    /// that signed was read.
    #[error(
        "this identity no longer holds the box's name (an operator moved it to a replacement machine)"
    )]
    TakenOver,
    /// A signed request made for another server (its audience is another certificate).
    #[error("the request was signed for another server")]
    WrongAudience,
}
