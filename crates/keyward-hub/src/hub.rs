//! What the hub does, as plain async functions over the store: enroll, authenticate a signed
//! request, push, status, approve, delete, recover. The axum server only moves bytes in and out.
//! Every change is audited in the transaction that makes it; refusals are counted by the request
//! shell and audited in aggregate ([`Hub::audit_refusals`]), so a flood of bad requests costs no
//! database write. No blob, code, key or token text is ever logged or audited.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use keyward_core::ExpectedFingerprint;
use keyward_service::names::{BOX_NAME_RULE, valid_box_name};
use keyward_service::refusals::{RefusalCount, summary};
use keyward_service::request::{self, MAX_SKEW_SECS, Request, RequestSignature};
use keyward_service::statement::{self, Statement, StatementKind};
use keyward_service::{AuthError, PublicKey, ServiceError};

use crate::api::{
    ActiveResponse, AuditQuery, AuditResponse, BLOB_FORMATS, DRILL_REPORT_VERSION, DrillRecorded,
    DrillReport, FleetBox, FleetQuery, FleetResponse, HeaderListResponse, HeaderPushRequest,
    HeaderPushResponse, HeaderRecoverResponse, MAX_DRILL_PATHS, PushRequest, PushResponse,
    RecoverResponse, StatusResponse, blob_sha256,
};
use crate::store::{Activation, HeaderServed, NameRange, NonceUse, Pushed, Store, TakeOver};
use keyward_core::encoding::from_hex;

/// Largest blob accepted (a blob is a few hundred bytes).
pub const MAX_BLOB_BYTES: usize = 64 * 1024;
/// Largest directive accepted.
pub const MAX_DIRECTIVE_BYTES: usize = 16 * 1024;
/// Largest sealed LUKS2 header backup accepted: the metadata and the keyslot areas of a
/// default header with fifteen keyslots (each about 256 KiB).
pub const MAX_SEALED_HEADER_BYTES: usize = 4 * 1024 * 1024;
/// [`MAX_SEALED_HEADER_BYTES`] as padded base64, as a push carries it.
pub const MAX_SEALED_HEADER_BASE64: usize = MAX_SEALED_HEADER_BYTES.div_ceil(3) * 4;
/// Most volumes of one box whose header backups the hub keeps; a push for one more drops the
/// one pushed longest ago (a volume formatted again has a new UUID, so a long-lived box would
/// otherwise run out of room for good).
pub const MAX_HEADER_VOLUMES: usize = 8;
/// Most audit records one answer holds (the newest).
pub const MAX_AUDIT_RECORDS: usize = 1_000;
/// Most boxes one page of the fleet lists (by name; the page names where the next begins): an
/// answer of some 1 MiB, read in tens of milliseconds (docs/BENCHMARKS.md), on a fleet of any
/// size.
pub const FLEET_PAGE: usize = 500;
/// Most versions of one box that may wait for approval at once, by default. A compromised box
/// could otherwise push versions until a recovery's answer (every version, newest first) is too
/// large for a client to read, or until it must try many expensive blobs; an operator approves
/// or deletes pending versions to make room.
pub const DEFAULT_MAX_PENDING: usize = 4;

/// Who signed a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// An enrolled box, by name.
    Box(String),
    /// One of the hub's operators.
    Operator(PublicKey),
}

/// The refusal of an enrollment token for a name that is taken.
fn already_enrolled(box_name: &str) -> ServiceError {
    ServiceError::Conflict(format!(
        "a box named {box_name} is already enrolled; a replacement machine takes its name over with an operator's takeover (`keyward operator takeover`)"
    ))
}

/// What an enrollment did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enrolled {
    /// A new box name, bound to the identity.
    New,
    /// An enrolled name, moved to the identity by a takeover.
    TakenOver,
}

/// Most enrolled box keys kept in memory (about 200 bytes each).
const MAX_CACHED_BOX_KEYS: usize = 1 << 17;

/// The hub: its store, the operators it trusts, its own name as the audience of signed
/// requests (its certificate's SHA-256), and a cache of enrolled box keys.
#[derive(Debug, Clone)]
pub struct Hub {
    store: Store,
    operators: Vec<PublicKey>,
    audience: String,
    max_pending: usize,
    metrics_per_box: bool,
    fleet_page: usize,
    box_keys: BoxKeys,
}

/// Enrolled box keys already read and parsed, sparing most signed requests a database read.
/// A takeover moves a name to another key, on this hub or on another one sharing the
/// database, so a cached key is a guess that the database confirms: a signature that fails
/// under it reads the key again, and a box request's nonce is recorded only while the name is
/// still bound to the key that verified it ([`Store::use_nonce`]), so an old identity is
/// refused at once on every hub.
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

    fn forget(&self, name: &str) {
        if let Ok(mut keys) = self.0.lock() {
            keys.remove(name);
        }
    }
}

/// The audit event that records a statement of `kind` being used.
fn used_event(kind: StatementKind) -> &'static str {
    match kind {
        StatementKind::Enrollment => "token-used",
        StatementKind::Recovery => "ticket-used",
        StatementKind::Overwrite => "approval-used",
        StatementKind::Deletion => "deletion-used",
        StatementKind::PeerRelease => "peer-ticket-used",
        StatementKind::Takeover => "takeover-used",
    }
}

impl Hub {
    /// A hub over `store`, trusting `operators`, answering requests signed for `audience` (its
    /// certificate's SHA-256, colon hex).
    pub fn new(store: Store, operators: Vec<PublicKey>, audience: String) -> Self {
        Hub {
            store,
            operators,
            audience,
            max_pending: DEFAULT_MAX_PENDING,
            metrics_per_box: false,
            fleet_page: FLEET_PAGE,
            box_keys: BoxKeys::default(),
        }
    }

    /// The same hub, letting `max` versions of a box wait for approval at once.
    pub fn with_max_pending(self, max: usize) -> Self {
        Hub { max_pending: max.max(1), ..self }
    }

    /// The same hub, listing at most `boxes` boxes per page of the fleet (1 to [`FLEET_PAGE`]):
    /// smaller pages for boxes with long drill reports.
    pub fn with_fleet_page(self, boxes: usize) -> Self {
        Hub { fleet_page: boxes.clamp(1, FLEET_PAGE), ..self }
    }

    /// The same hub, exporting each box's proof age at `/metrics` (which answers anyone: it
    /// lists the boxes' names).
    pub fn with_metrics_per_box(self, on: bool) -> Self {
        Hub { metrics_per_box: on, ..self }
    }

    /// Whether `/metrics` has the boxes' proof ages.
    pub fn metrics_per_box(&self) -> bool {
        self.metrics_per_box
    }

    /// The store (for `audit verify`).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Verifies an operator statement of the expected kind (for `box_name`, if given).
    fn check(
        &self,
        text: &str,
        box_name: Option<&str>,
        expect: StatementKind,
        now: i64,
    ) -> Result<Statement, ServiceError> {
        let found = statement::verify(text, &self.operators, now)?.statement;
        if found.kind() != expect || box_name.is_some_and(|b| b != found.box_name()) {
            return Err(AuthError::WrongStatement {
                expected: format!("{expect} for {}", box_name.unwrap_or("a box")),
                found: format!("{} for {}", found.kind(), found.box_name()),
            }
            .into());
        }
        Ok(found)
    }

    /// Records one use of a checked statement; which use this is.
    async fn use_up(&self, found: &Statement, now: i64) -> Result<u32, ServiceError> {
        let (kind, allowed) = (found.kind(), found.uses());
        let event = used_event(kind);
        let recorded = self
            .store
            .use_statement(found.id(), &kind.to_string(), allowed, event, found.box_name(), now)
            .await?;
        match recorded {
            Some(n) => Ok(n),
            None if allowed == 1 => Err(ServiceError::Refused(format!("{kind} was already used"))),
            None => Err(ServiceError::Refused(format!(
                "{kind} was used all {allowed} times it allows; ask the operator for a new one"
            ))),
        }
    }

    /// [`Hub::check`], then [`Hub::use_up`].
    async fn redeem(
        &self,
        text: &str,
        box_name: Option<&str>,
        expect: StatementKind,
        now: i64,
    ) -> Result<Statement, ServiceError> {
        let found = self.check(text, box_name, expect, now)?;
        self.use_up(&found, now).await?;
        Ok(found)
    }

    /// Enrolls a box with an operator's statement: an enrollment token enrolls a new name; a
    /// takeover moves an enrolled name to the identity it names (a replacement machine), which
    /// keeps the box's escrow versions and header backups and shuts the old identity out.
    pub async fn enroll(
        &self,
        box_name: &str,
        key: PublicKey,
        statement_text: &str,
        now: i64,
    ) -> Result<Enrolled, ServiceError> {
        if !valid_box_name(box_name) {
            return Err(ServiceError::Malformed(format!("box names are {BOX_NAME_RULE}")));
        }
        let found = statement::verify(statement_text, &self.operators, now)?.statement;
        match &found {
            Statement::Enrollment { box_name: named, .. } if named == box_name => {
                // Enrolled already: this identity asking again (at another hub, its answer
                // lost) is done; anyone else is a conflict, and the token stays unused.
                match self.store.box_key(box_name).await? {
                    Some(known) if known == key.to_string() => return Ok(Enrolled::New),
                    Some(_) => return Err(already_enrolled(box_name)),
                    None => {}
                }
                self.use_up(&found, now).await?;
                if !self.store.add_box(box_name, &key.to_string(), now).await? {
                    return Err(already_enrolled(box_name));
                }
                Ok(Enrolled::New)
            }
            Statement::Takeover { box_name: named, replaces, identity, id, .. }
                if named == box_name =>
            {
                if *identity != key {
                    return Err(AuthError::WrongStatement {
                        expected: format!("a takeover of {box_name} by identity {key}"),
                        found: format!("a takeover by identity {identity}"),
                    }
                    .into());
                }
                let moved = self
                    .store
                    .take_over(box_name, &replaces.to_string(), &key.to_string(), id, now)
                    .await?;
                match moved {
                    TakeOver::Done | TakeOver::AlreadyThis => {
                        self.box_keys.insert(box_name, key);
                        Ok(Enrolled::TakenOver)
                    }
                    TakeOver::NoSuchBox => Err(ServiceError::NotFound(format!(
                        "no box named {box_name} is enrolled; enroll it with an enrollment token"
                    ))),
                    TakeOver::HeldByAnother(now_held) => Err(ServiceError::Refused(format!(
                        "this takeover replaces identity {replaces}, and {box_name} is bound to {now_held} now (taken over since?); ask the operator for a new one"
                    ))),
                    TakeOver::Used => {
                        Err(ServiceError::Refused("this takeover was already used".into()))
                    }
                }
            }
            other => Err(AuthError::WrongStatement {
                expected: format!("an enrollment token or a takeover for {box_name}"),
                found: format!("{} for {}", other.kind(), other.box_name()),
            }
            .into()),
        }
    }

    /// Checks a signed request — of an enrolled box (the signer is its name) or of an operator
    /// (the signer is its public key) — and returns who signed it. Replays, stale timestamps,
    /// requests for another server, unknown signers and bad signatures are refused. (Failed
    /// signatures are counted per source by the shell, which locks that source out: a box name
    /// is not a secret, so counting per box would let anyone lock a box out.)
    pub async fn authenticate(
        &self,
        signed: &RequestSignature,
        request: Request<'_>,
        now: i64,
    ) -> Result<Principal, ServiceError> {
        let nonce_expires = now + 2 * MAX_SKEW_SECS;
        match signed.signer.parse::<PublicKey>() {
            Ok(key) if self.operators.contains(&key) => {
                request::verify(signed, &key, &self.audience, request, now)?;
                self.store
                    .use_nonce(&signed.nonce, nonce_expires, now, None)
                    .await?
                    .into_result()?;
                Ok(Principal::Operator(key))
            }
            Ok(_) => Err(AuthError::UnknownSigner.into()),
            Err(_) => {
                let name = signed.signer.as_str();
                let key = self.box_signature(name, signed, request, now).await?;
                let holder = Some((name, key.to_string()));
                let used = self.store.use_nonce(&signed.nonce, nonce_expires, now, holder).await?;
                if used == NonceUse::NotTheHolder {
                    // Taken over through another hub since this one cached the key.
                    self.box_keys.forget(name);
                }
                used.into_result()?;
                Ok(Principal::Box(name.to_string()))
            }
        }
    }

    /// Verifies a box's signed request under its enrolled key and returns the key. The cached
    /// key is tried first; when the signature fails under it (or none is cached) the key is
    /// read again, since a takeover may have moved the name.
    async fn box_signature(
        &self,
        name: &str,
        signed: &RequestSignature,
        request: Request<'_>,
        now: i64,
    ) -> Result<PublicKey, ServiceError> {
        let cached = self.box_keys.get(name);
        if let Some(key) = cached
            && request::verify(signed, &key, &self.audience, request, now).is_ok()
        {
            return Ok(key);
        }
        let Some(key) = self.read_box_key(name).await? else {
            return Err(AuthError::UnknownSigner.into());
        };
        request::verify(signed, &key, &self.audience, request, now)?;
        Ok(key)
    }

    /// Whether `name` is an enrolled box (before a large upload of its is read: the request's
    /// signature, which covers the body, is checked once the body is in).
    pub async fn is_known_box(&self, name: &str) -> Result<bool, ServiceError> {
        Ok(self.box_key(name).await?.is_some())
    }

    /// An enrolled box's public key (kept in memory once read).
    async fn box_key(&self, name: &str) -> Result<Option<PublicKey>, ServiceError> {
        match self.box_keys.get(name) {
            Some(key) => Ok(Some(key)),
            None => self.read_box_key(name).await,
        }
    }

    /// An enrolled box's public key as the database holds it now (and cached).
    async fn read_box_key(&self, name: &str) -> Result<Option<PublicKey>, ServiceError> {
        let Some(text) = self.store.box_key(name).await? else {
            self.box_keys.forget(name);
            return Ok(None);
        };
        let key: PublicKey = text.parse()?;
        self.box_keys.insert(name, key);
        Ok(Some(key))
    }

    /// Stores a new escrow version for an authenticated box.
    pub async fn push(
        &self,
        box_name: &str,
        push: &PushRequest,
        now: i64,
    ) -> Result<PushResponse, ServiceError> {
        if push.blob.len() > MAX_BLOB_BYTES * 4 / 3 + 4
            || push.directive.to_string().len() > MAX_DIRECTIVE_BYTES
        {
            return Err(ServiceError::Refused("blob or directive too large".into()));
        }
        if !push.directive.is_object() {
            return Err(ServiceError::Malformed(
                "the restore directive is a JSON object (docs/hub-api.md)".into(),
            ));
        }
        if !BLOB_FORMATS.contains(&push.blob_format.as_str()) {
            return Err(ServiceError::Malformed(format!(
                "unknown blob format `{}`",
                push.blob_format
            )));
        }
        let Some(bytes) = keyward_core::encoding::from_base64(&push.blob) else {
            return Err(ServiceError::Malformed("the blob is not base64".into()));
        };
        // The fingerprint goes into the audit log and the approval check: a fingerprint, nothing
        // else (it is never anything a box could hide text in).
        let is_fingerprint = |text: &str| text.parse::<keyward_core::Fingerprint>().is_ok();
        // keyward's fingerprint beside the version's own: for a PBS key file's blob only, whose
        // own is PBS's.
        if push.key_fingerprint.is_some() && push.blob_format != "pbs-key-file" {
            return Err(ServiceError::Malformed(
                "key_fingerprint goes with a pbs-key-file blob only".into(),
            ));
        }
        if !is_fingerprint(&push.fingerprint)
            || push.key_fingerprint.as_deref().is_some_and(|fp| !is_fingerprint(fp))
        {
            return Err(ServiceError::Malformed(
                "the fingerprint is not 32 colon-separated hex bytes".into(),
            ));
        }
        let hash = blob_sha256(&bytes);
        match self.store.push(box_name, push, &hash, self.max_pending, now).await? {
            Pushed::Stored { version, state } => {
                Ok(PushResponse { version, state: state.to_string(), blob_sha256: hash })
            }
            Pushed::TooManyPending(pending) => Err(ServiceError::Refused(format!(
                "{box_name} has {pending} versions waiting for approval; an operator approves or deletes one first"
            ))),
        }
    }

    /// Stores a sealed LUKS2 header backup of one of an authenticated box's volumes, in place of
    /// the one held for that volume (making room by dropping the box's oldest, if it has
    /// [`MAX_HEADER_VOLUMES`] others). The hub cannot open it (it is sealed under a key derived
    /// from the box's key): it checks only its size and the form of the UUID and fingerprint
    /// the request names, which it keeps to show and to look it up by.
    pub async fn push_header(
        &self,
        box_name: &str,
        header: &HeaderPushRequest,
        now: i64,
    ) -> Result<HeaderPushResponse, ServiceError> {
        let too_large = || {
            ServiceError::Refused(format!(
                "a sealed header backup is at most {MAX_SEALED_HEADER_BYTES} bytes"
            ))
        };
        if header.sealed.len() > MAX_SEALED_HEADER_BASE64 {
            return Err(too_large());
        }
        if !keyward_core::encoding::is_canonical_uuid(&header.uuid) {
            return Err(ServiceError::Malformed("the volume UUID is not one".into()));
        }
        // The form keyward writes, exactly: one spelling per fingerprint, so the hub never
        // holds two that a person would read as different keys.
        let canonical = header.fingerprint.parse::<keyward_core::Fingerprint>();
        if !canonical.is_ok_and(|fp| fp.to_string() == header.fingerprint) {
            return Err(ServiceError::Malformed(
                "the fingerprint is not 32 colon-separated lower-case hex bytes".into(),
            ));
        }
        let sha256_hex = |text: &str| from_hex(text).is_some_and(|bytes| bytes.len() == 32);
        if header.state.as_deref().is_some_and(|state| !sha256_hex(state)) {
            return Err(ServiceError::Malformed(
                "the header state is not 64 lower-case hex digits".into(),
            ));
        }
        let Some(bytes) = keyward_core::encoding::from_base64(&header.sealed) else {
            return Err(ServiceError::Malformed("the sealed header is not base64".into()));
        };
        if bytes.is_empty() {
            return Err(ServiceError::Malformed("the sealed header is empty".into()));
        }
        if bytes.len() > MAX_SEALED_HEADER_BYTES {
            return Err(too_large());
        }
        let hash = blob_sha256(&bytes);
        let uuid = header.uuid.to_ascii_lowercase();
        let stored =
            self.store.put_header(box_name, &uuid, header, &hash, MAX_HEADER_VOLUMES, now).await?;
        Ok(HeaderPushResponse {
            uuid,
            sha256: hash,
            replaced: stored.replaced,
            evicted: stored.evicted,
        })
    }

    /// What the hub holds of the authenticated box's header backups (it may read back what it
    /// pushed, without the sealed bytes).
    pub async fn list_headers(&self, box_name: &str) -> Result<HeaderListResponse, ServiceError> {
        let headers = self.store.header_summaries(box_name).await?;
        Ok(HeaderListResponse { box_name: box_name.to_string(), headers })
    }

    /// Serves a volume's sealed header backup for a recovery ticket of its box. The ticket is
    /// checked (an operator's, for that box, unexpired) but not used up: what this serves opens
    /// only under the box's key, which the fresh machine recovers with the same ticket first,
    /// so counting it would only make the operator issue a ticket of two uses for one
    /// recovery. Every serving is audited.
    pub async fn recover_header(
        &self,
        ticket: &str,
        uuid: Option<&str>,
        now: i64,
    ) -> Result<HeaderRecoverResponse, ServiceError> {
        if uuid.is_some_and(|u| !keyward_core::encoding::is_canonical_uuid(u)) {
            return Err(ServiceError::Malformed("the volume UUID is not one".into()));
        }
        let statement = self.check(ticket, None, StatementKind::Recovery, now)?;
        let box_name = statement.box_name().to_string();
        let uuid = uuid.map(str::to_ascii_lowercase);
        match self.store.serve_header(&box_name, uuid.as_deref(), statement.id(), now).await? {
            HeaderServed::One(header) => Ok(HeaderRecoverResponse { box_name, header }),
            HeaderServed::Nothing => Err(ServiceError::NotFound(match uuid {
                Some(uuid) => format!("no header backup of volume {uuid} for {box_name}"),
                None => format!("no header backup for {box_name}"),
            })),
            HeaderServed::Several(uuids) => Err(ServiceError::Refused(format!(
                "the hub holds header backups of {} volumes of {box_name} ({}); name one with --expect-uuid",
                uuids.len(),
                uuids.join(", ")
            ))),
        }
    }

    /// The versions of a box's escrow (for the box itself, or an operator).
    pub async fn status(&self, box_name: &str) -> Result<StatusResponse, ServiceError> {
        let versions = self.store.versions(box_name).await?;
        let identity = self.store.box_key(box_name).await?;
        Ok(StatusResponse { box_name: box_name.to_string(), versions, identity })
    }

    /// The authenticated box's own active escrow (it may read back what it pushed).
    pub async fn fetch_own(&self, box_name: &str) -> Result<ActiveResponse, ServiceError> {
        let escrow =
            self.store.active(box_name).await?.ok_or_else(|| {
                ServiceError::NotFound(format!("no active escrow for {box_name}"))
            })?;
        Ok(ActiveResponse { box_name: box_name.to_string(), escrow })
    }

    /// Makes a pending version active, on an operator's approval that names the version, the
    /// blob's SHA-256 and the key's fingerprint: exactly what the operator saw becomes active.
    pub async fn approve(&self, approval: &str, now: i64) -> Result<u64, ServiceError> {
        let Statement::Overwrite { box_name, version, fingerprint, blob_sha256, .. } =
            self.redeem(approval, None, StatementKind::Overwrite, now).await?
        else {
            return Err(ServiceError::Malformed("not an overwrite approval".into()));
        };
        let expected: ExpectedFingerprint = fingerprint.parse().map_err(|_| {
            ServiceError::Malformed("the approval's fingerprint does not parse".into())
        })?;
        let why = match self
            .store
            .activate(&box_name, version, &expected, &blob_sha256, now)
            .await?
        {
            Activation::Activated => return Ok(version),
            Activation::NotPending => {
                format!("{box_name} has no pending version {version} (or another approval won)")
            }
            Activation::OtherFingerprint(claimed) => {
                let form = match expected {
                    ExpectedFingerprint::Full(_) => "full",
                    ExpectedFingerprint::Short(_) => "short",
                };
                let also = claimed
                    .key_fingerprint
                    .map(|key| format!(" (PBS fingerprint; keyward's is {key})"))
                    .unwrap_or_default();
                format!(
                    "version {version} of {box_name} holds the key with fingerprint {}{also}, and the approval names {fingerprint} ({form} form); check the fingerprint the owner recorded",
                    claimed.fingerprint
                )
            }
            Activation::OtherBlob => format!(
                "version {version} of {box_name} is not the blob with SHA-256 {blob_sha256}; look again with `keyward operator escrow-status`"
            ),
        };
        Err(ServiceError::Refused(why))
    }

    /// Erases an escrow version's blob and directive on an operator's deletion order. The row
    /// stays, marked `deleted`, so version numbers are never reused and the history still shows
    /// what existed; a box has no way to ask for this itself.
    pub async fn delete(&self, order: &str, now: i64) -> Result<(String, u64), ServiceError> {
        let Statement::Deletion { box_name, version, .. } =
            self.redeem(order, None, StatementKind::Deletion, now).await?
        else {
            return Err(ServiceError::Malformed("not a deletion order".into()));
        };
        if !self.store.erase(&box_name, version, now).await? {
            return Err(ServiceError::Refused(format!(
                "{box_name} has no version {version} left to delete"
            )));
        }
        Ok((box_name, version))
    }

    /// Serves every version the hub holds of a box (newest first) for a recovery ticket, and
    /// counts the ticket's use — only once there is something to serve.
    pub async fn recover(&self, ticket: &str, now: i64) -> Result<RecoverResponse, ServiceError> {
        let statement = self.check(ticket, None, StatementKind::Recovery, now)?;
        let box_name = statement.box_name().to_string();
        let versions = self.store.held(&box_name).await?;
        if versions.is_empty() {
            return Err(ServiceError::NotFound(format!("no escrow for {box_name}")));
        }
        let ticket_use = self.use_up(&statement, now).await?;
        Ok(RecoverResponse { box_name, versions, ticket_use, ticket_uses: statement.uses() })
    }

    /// Records an authenticated box's drill report (the latest per path, and a bounded history;
    /// audited). Its text is checked to be what a drill writes: ids of a few safe characters,
    /// known states, bounded printable words. Nothing in it is a secret.
    pub async fn record_drill(
        &self,
        box_name: &str,
        report: &DrillReport,
        now: i64,
    ) -> Result<DrillRecorded, ServiceError> {
        if report.version != DRILL_REPORT_VERSION {
            return Err(ServiceError::Malformed(format!(
                "drill report version {} (this hub reads {DRILL_REPORT_VERSION})",
                report.version
            )));
        }
        if report.paths.len() > MAX_DRILL_PATHS {
            return Err(ServiceError::Malformed(format!(
                "a drill report names at most {MAX_DRILL_PATHS} paths"
            )));
        }
        let id_ok = |id: &str| {
            !id.is_empty()
                && id.len() <= 128
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b":._-".contains(&b))
        };
        // Words an operator reads: nothing that drives a terminal or reorders text.
        let text_ok = |text: &str| {
            text.len() <= 1024 && !text.chars().any(keyward_service::text::shown_escaped)
        };
        let mut ids = std::collections::HashSet::new();
        for path in &report.paths {
            if !ids.insert(path.id.as_str()) {
                return Err(ServiceError::Malformed(format!(
                    "the drill report names path {} twice",
                    path.id
                )));
            }
            if !id_ok(&path.id)
                || !text_ok(&path.name)
                || !text_ok(&path.detail)
                || !["ok", "broken", "not_proven"].contains(&path.state.as_str())
            {
                return Err(ServiceError::Malformed(
                    "a drill path's id, state or words are not what a drill writes".into(),
                ));
            }
        }
        self.store.record_drill(box_name, report, now).await?;
        Ok(DrillRecorded { at: now, paths: report.paths.len() })
    }

    /// One page of the boxes the hub knows, by name: those after `query.after`, at most
    /// `query.limit` and the hub's page size ([`Hub::with_fleet_page`]), each with its escrow versions, header backups and
    /// last drill — what `keyward operator fleet` judges. `next` names where the next page
    /// begins, while there are more.
    pub async fn fleet(&self, query: &FleetQuery) -> Result<FleetResponse, ServiceError> {
        if query.after.as_deref().is_some_and(|b| !valid_box_name(b)) {
            return Err(ServiceError::Malformed(format!("box names are {BOX_NAME_RULE}")));
        }
        let page = query.limit.map_or(self.fleet_page, |l| l.clamp(1, self.fleet_page));
        let mut names = self.store.box_names(query.after.as_deref(), page + 1).await?;
        let more = names.len() > page;
        names.truncate(page);
        let next = more.then(|| names.last().cloned()).flatten();
        let (Some(first), Some(last)) = (names.first(), names.last()) else {
            return Ok(FleetResponse { boxes: Vec::new(), truncated: false, next: None });
        };
        // The page's rows, one query per table (a box enrolled in the range meanwhile is left
        // for the next listing).
        let range = NameRange::from_to(first, last);
        let mut versions = self.store.versions_in(range).await?;
        let mut headers = self.store.header_summaries_in(range).await?;
        let mut drills = self.store.drills_in(range).await?;
        let boxes = names
            .iter()
            .map(|box_name| FleetBox {
                versions: versions.remove(box_name).unwrap_or_default(),
                headers: headers.remove(box_name).unwrap_or_default(),
                drill: drills.remove(box_name).unwrap_or_default(),
                box_name: box_name.clone(),
            })
            .collect();
        Ok(FleetResponse { boxes, truncated: next.is_some(), next })
    }

    /// The audit log for an operator (see [`AuditQuery`]).
    pub async fn audit(&self, query: &AuditQuery) -> Result<AuditResponse, ServiceError> {
        if query.box_name.as_deref().is_some_and(|b| !valid_box_name(b)) {
            return Err(ServiceError::Malformed(format!("box names are {BOX_NAME_RULE}")));
        }
        let records = self
            .store
            .audit_since(query.box_name.as_deref(), query.since, MAX_AUDIT_RECORDS)
            .await?;
        Ok(AuditResponse { records })
    }

    /// Per box that reported a drill, as Prometheus text: the age of its newest proof and how
    /// many of its paths are broken (one series each per box: as many as boxes).
    pub async fn proof_metrics(&self, now: i64) -> Result<String, ServiceError> {
        let mut out = String::from(
            "# HELP keyward_hub_box_proof_age_seconds Age of the newest drill report of each box.\n# TYPE keyward_hub_box_proof_age_seconds gauge\n",
        );
        let ages = self.store.proof_ages().await?;
        for (box_name, at, _) in &ages {
            out.push_str(&format!(
                "keyward_hub_box_proof_age_seconds{{box=\"{box_name}\"}} {}\n",
                now.saturating_sub(*at)
            ));
        }
        out.push_str("# HELP keyward_hub_box_broken_paths Paths the newest drill of each box found broken.\n# TYPE keyward_hub_box_broken_paths gauge\n");
        for (box_name, _, broken) in &ages {
            out.push_str(&format!("keyward_hub_box_broken_paths{{box=\"{box_name}\"}} {broken}\n"));
        }
        Ok(out)
    }

    /// Writes the refusals a shell counted as one audit record (`refusals`); nothing when
    /// there were none.
    pub async fn audit_refusals(
        &self,
        counts: &[RefusalCount],
        now: i64,
    ) -> Result<(), ServiceError> {
        if counts.is_empty() {
            return Ok(());
        }
        Ok(self.store.audit("refusals", None, &summary(counts), now).await?)
    }
}
