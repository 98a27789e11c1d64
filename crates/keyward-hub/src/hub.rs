//! What the hub does, as plain async functions over the store: enroll, authenticate a signed
//! request, push, status, approve, recover, audit. The axum server only moves bytes in and out.
//! Every action and refusal is audited (best effort for refusals, which must not turn into a
//! way to stall the log); no blob, code, key or token text is ever logged or audited.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::api::{PushRequest, PushResponse, RecoverResponse, StatusResponse};
use crate::request::{self, MAX_SKEW_SECS, RequestSignature};
use crate::statement::{self, Statement, StatementKind};
use crate::store::{Store, StoreError};
use crate::{AuthError, PublicKey};

/// Largest blob accepted (a blob is a few hundred bytes).
pub const MAX_BLOB_BYTES: usize = 64 * 1024;
/// Largest directive accepted.
pub const MAX_DIRECTIVE_BYTES: usize = 16 * 1024;

/// Why the hub refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The request is not well formed.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The signature, token or ticket does not verify.
    #[error("not authenticated: {0}")]
    Unauthenticated(#[from] AuthError),
    /// Authenticated, but policy says no (used ticket, lockout, not pending, …).
    #[error("refused: {0}")]
    Refused(String),
    /// Too many requests from one source or for one box this minute.
    #[error("rate limited: {0}")]
    RateLimited(String),
    /// No such box or escrow.
    #[error("not found: {0}")]
    NotFound(String),
    /// The name is taken.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl HubError {
    /// The reason alone, for the answer's message (the status code already says the kind).
    pub fn reason(&self) -> String {
        match self {
            HubError::Malformed(r)
            | HubError::Refused(r)
            | HubError::RateLimited(r)
            | HubError::NotFound(r)
            | HubError::Conflict(r) => r.clone(),
            HubError::Unauthenticated(e) => format!("not authenticated: {e}"),
            HubError::Store(_) => "internal error".into(),
        }
    }
}

/// Most enrolled box keys kept in memory (about 200 bytes each).
const MAX_CACHED_BOX_KEYS: usize = 1 << 17;

/// The hub: its store, the operators it trusts, and a cache of enrolled box keys.
#[derive(Debug, Clone)]
pub struct Hub {
    store: Store,
    operators: Vec<PublicKey>,
    box_keys: BoxKeys,
}

/// Enrolled box keys already read and parsed. A box's key never changes once enrolled (the
/// store has no way to replace it), so a cached key can never be stale, on one hub or on many
/// sharing a database; the cache spares every signed request a database round trip.
#[derive(Debug, Clone, Default)]
struct BoxKeys(Arc<Mutex<HashMap<String, PublicKey>>>);

impl BoxKeys {
    fn get(&self, name: &str) -> Option<PublicKey> {
        self.0.lock().ok()?.get(name).copied()
    }

    fn insert(&self, name: &str, key: PublicKey) {
        if let Ok(mut keys) = self.0.lock() {
            // Full: start over rather than track recency; hot boxes come back at once.
            if keys.len() >= MAX_CACHED_BOX_KEYS {
                keys.clear();
            }
            keys.insert(name.to_string(), key);
        }
    }
}

/// The audit event that records a statement of `kind` being used up.
fn used_event(kind: StatementKind) -> &'static str {
    match kind {
        StatementKind::Enrollment => "token-used",
        StatementKind::Recovery => "ticket-used",
        StatementKind::Overwrite => "approval-used",
        StatementKind::Deletion => "deletion-used",
        StatementKind::PeerRelease => "peer-ticket-used",
    }
}

/// Whether `name` can name a box (at a hub, and as an owner at its peers): 1–64 ASCII letters,
/// digits, `-`, `_` or `.`.
pub fn valid_box_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl Hub {
    /// A hub over `store`, trusting `operators`.
    pub fn new(store: Store, operators: Vec<PublicKey>) -> Self {
        Hub { store, operators, box_keys: BoxKeys::default() }
    }

    /// The store (for `audit verify`).
    pub fn store(&self) -> &Store {
        &self.store
    }

    async fn refuse(&self, box_name: Option<&str>, why: String, now: i64) -> HubError {
        let _ = self.store.audit("refused", box_name, &why, now).await;
        HubError::Refused(why)
    }

    /// Verifies an operator statement of the expected kind for `box_name` and uses up its id.
    async fn redeem(
        &self,
        text: &str,
        box_name: Option<&str>,
        expect: StatementKind,
        now: i64,
    ) -> Result<Statement, HubError> {
        let verified = match statement::verify(text, &self.operators, now) {
            Ok(v) => v,
            Err(e) => {
                let _ = self.store.audit("refused", box_name, &format!("{expect}: {e}"), now).await;
                return Err(e.into());
            }
        };
        let found = verified.statement;
        if found.kind() != expect || box_name.is_some_and(|b| b != found.box_name()) {
            let wrong = AuthError::WrongStatement {
                expected: format!("{expect} for {}", box_name.unwrap_or("a box")),
                found: format!("{} for {}", found.kind(), found.box_name()),
            };
            let _ = self.store.audit("refused", box_name, &wrong.to_string(), now).await;
            return Err(wrong.into());
        }
        let used = used_event(expect);
        if !self
            .store
            .use_once(found.id(), &expect.to_string(), used, found.box_name(), now)
            .await?
        {
            return Err(self
                .refuse(Some(found.box_name()), format!("{expect} was already used"), now)
                .await);
        }
        Ok(found)
    }

    /// Enrolls a box with an operator's enrollment token.
    pub async fn enroll(
        &self,
        box_name: &str,
        key: PublicKey,
        token: &str,
        now: i64,
    ) -> Result<(), HubError> {
        if !valid_box_name(box_name) {
            return Err(HubError::Malformed(
                "box names are 1–64 letters, digits, `-`, `_` or `.`".into(),
            ));
        }
        self.redeem(token, Some(box_name), StatementKind::Enrollment, now).await?;
        if !self.store.add_box(box_name, &key.to_string(), now).await? {
            return Err(HubError::Conflict(format!("a box named {box_name} is already enrolled")));
        }
        Ok(())
    }

    /// Checks a box's signed request; returns the box name. Replays, stale timestamps, unknown
    /// boxes and bad signatures are refused. (Failed signatures are counted per source by the
    /// server, which locks that source out: a box name is not a secret, so counting per box would
    /// let anyone lock a box out.)
    pub async fn authenticate(
        &self,
        signed: &RequestSignature,
        method: &str,
        path: &str,
        body: &[u8],
        now: i64,
    ) -> Result<String, HubError> {
        let name = signed.signer.as_str();
        let key = match self.box_keys.get(name) {
            Some(key) => key,
            None => {
                let Some(key_text) = self.store.box_key(name).await? else {
                    let _ =
                        self.store.audit("refused", None, "request from an unknown box", now).await;
                    return Err(AuthError::UnknownSigner.into());
                };
                let key: PublicKey = key_text.parse().map_err(HubError::Unauthenticated)?;
                self.box_keys.insert(name, key);
                key
            }
        };
        if let Err(e) = request::verify(signed, &key, method, path, body, now) {
            let _ = self.store.audit("refused", Some(name), &e.to_string(), now).await;
            return Err(e.into());
        }
        if !self.store.use_nonce(&signed.nonce, now + 2 * MAX_SKEW_SECS, now).await? {
            return Err(self
                .refuse(Some(name), "replayed request (nonce already seen)".into(), now)
                .await);
        }
        Ok(name.to_string())
    }

    /// Stores a new escrow version for an authenticated box.
    pub async fn push(
        &self,
        box_name: &str,
        push: &PushRequest,
        now: i64,
    ) -> Result<PushResponse, HubError> {
        if push.blob.len() > MAX_BLOB_BYTES * 4 / 3 + 4
            || push.directive.to_string().len() > MAX_DIRECTIVE_BYTES
        {
            return Err(HubError::Refused("blob or directive too large".into()));
        }
        if !matches!(push.blob_format.as_str(), "keyward-escrow-blob" | "pbs-key-file") {
            return Err(HubError::Malformed(format!("unknown blob format `{}`", push.blob_format)));
        }
        // The fingerprint goes into the audit log and the approval check: a fingerprint, nothing
        // else (it is never anything a box could hide text in).
        if push.fingerprint.parse::<keyward_core::Fingerprint>().is_err() {
            return Err(HubError::Malformed(
                "the fingerprint is not 32 colon-separated hex bytes".into(),
            ));
        }
        let (version, state) = self.store.push(box_name, push, now).await?;
        Ok(PushResponse { version, state: state.to_string() })
    }

    /// The versions of an authenticated box's escrow.
    pub async fn status(&self, box_name: &str) -> Result<StatusResponse, HubError> {
        Ok(StatusResponse {
            box_name: box_name.to_string(),
            versions: self.store.versions(box_name).await?,
        })
    }

    /// The authenticated box's own active escrow (it may read back what it pushed).
    pub async fn fetch_own(&self, box_name: &str) -> Result<RecoverResponse, HubError> {
        self.store
            .active(box_name)
            .await?
            .ok_or_else(|| HubError::NotFound(format!("no active escrow for {box_name}")))
    }

    /// Makes a pending version active, on an operator's approval that names the version and the
    /// fingerprint it must claim.
    pub async fn approve(&self, approval: &str, now: i64) -> Result<u64, HubError> {
        let Statement::Overwrite { box_name, version, fingerprint, .. } =
            self.redeem(approval, None, StatementKind::Overwrite, now).await?
        else {
            return Err(HubError::Malformed("not an overwrite approval".into()));
        };
        if !self.store.activate(&box_name, version, &fingerprint, now).await? {
            let why = format!(
                "version {version} is not pending with fingerprint {fingerprint} (or another approval won)"
            );
            return Err(self.refuse(Some(&box_name), why, now).await);
        }
        Ok(version)
    }

    /// Erases an escrow version's blob and directive on an operator's deletion order. The row
    /// stays, marked `deleted`, so version numbers are never reused and the history still shows
    /// what existed; a box has no way to ask for this itself.
    pub async fn delete(&self, order: &str, now: i64) -> Result<(String, u64), HubError> {
        let Statement::Deletion { box_name, version, .. } =
            self.redeem(order, None, StatementKind::Deletion, now).await?
        else {
            return Err(HubError::Malformed("not a deletion order".into()));
        };
        if !self.store.erase(&box_name, version, now).await? {
            let why = format!("{box_name} has no version {version} left to delete");
            return Err(self.refuse(Some(&box_name), why, now).await);
        }
        Ok((box_name, version))
    }

    /// Serves a box's active escrow for a recovery ticket.
    pub async fn recover(&self, ticket: &str, now: i64) -> Result<RecoverResponse, HubError> {
        let statement = self.redeem(ticket, None, StatementKind::Recovery, now).await?;
        let box_name = statement.box_name().to_string();
        let active = self
            .store
            .active(&box_name)
            .await?
            .ok_or_else(|| HubError::NotFound(format!("no escrow for {box_name}")))?;
        self.store
            .audit("recovery", Some(&box_name), &format!("served version {}", active.version), now)
            .await?;
        Ok(active)
    }
}
