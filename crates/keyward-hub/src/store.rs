//! The hub's store: one schema of TEXT and BIGINT columns, so the same SQL runs on SQLite (the
//! embedded default) and PostgreSQL (several hubs behind a load balancer), through sqlx's `Any`
//! driver (connecting and schema creation: keyward-service's store helpers). Every invariant
//! that concurrent hubs could break is a unique key (escrow version, one active escrow per box,
//! audit sequence, statement use, nonce), so a lost race is a unique violation that the caller
//! retries or refuses — never a lost or duplicated version, never two active ones. Every change
//! is written in one transaction with the audit record that tells of it, so the log can neither
//! miss a change nor tell of one that did not happen.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use keyward_core::ExpectedFingerprint;
use keyward_service::nonces::{self, NonceError, NonceLimits, NonceTable, WhenFull};
use keyward_service::store::{
    self as helpers, Backend, Schema, USED_STATEMENTS, Use, back_off, record_use, unique,
};
use sqlx::{AnyConnection, AnyPool, Row};

pub use keyward_service::store::StoreError;

use crate::api::{
    DrillPath, DrillPathAt, DrillReport, EscrowCopy, EscrowVersion, HeaderCopy, HeaderPushRequest,
    HeaderSummary, PushRequest, blob_sha256,
};
use crate::audit::{AuditRecord, GENESIS, record_hash};

/// The schema, version 1. Idempotent: run at every start.
const SCHEMA: Schema = Schema {
    store: "hub",
    statements: &[
        "CREATE TABLE IF NOT EXISTS boxes (name TEXT PRIMARY KEY, public_key TEXT NOT NULL, enrolled_at BIGINT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS escrows (box_name TEXT NOT NULL, version BIGINT NOT NULL, state TEXT NOT NULL, blob_format TEXT NOT NULL, blob TEXT NOT NULL, fingerprint TEXT NOT NULL, directive TEXT NOT NULL, pushed_at BIGINT NOT NULL, PRIMARY KEY (box_name, version))",
        // At most one active escrow per box, whatever two hubs approve at once.
        "CREATE UNIQUE INDEX IF NOT EXISTS escrows_one_active ON escrows (box_name) WHERE state = 'active'",
        // Sealed LUKS2 header backups, one per volume of a box (added within schema 1: a new
        // table that older hubs never read).
        "CREATE TABLE IF NOT EXISTS luks_headers (box_name TEXT NOT NULL, uuid TEXT NOT NULL, fingerprint TEXT NOT NULL, sealed TEXT NOT NULL, sha256 TEXT NOT NULL, pushed_at BIGINT NOT NULL, PRIMARY KEY (box_name, uuid))",
        // The state each header backup was pushed with (also within schema 1: a table of its
        // own rather than a column, so an older database gains it by the same idempotent
        // statements). Written and dropped with its luks_headers row.
        "CREATE TABLE IF NOT EXISTS luks_header_states (box_name TEXT NOT NULL, uuid TEXT NOT NULL, state TEXT NOT NULL, PRIMARY KEY (box_name, uuid))",
        // keyward's fingerprint of a version's key when the version's own is the PBS one (also
        // within schema 1: a table of its own), so an approval may name either. Written with
        // its escrows row.
        "CREATE TABLE IF NOT EXISTS escrow_key_fingerprints (box_name TEXT NOT NULL, version BIGINT NOT NULL, fingerprint TEXT NOT NULL, PRIMARY KEY (box_name, version))",
        // Each box's last drill, path by path, and a bounded history of its reports (also
        // within schema 1: tables of their own).
        "CREATE TABLE IF NOT EXISTS drill_paths (box_name TEXT NOT NULL, path_id TEXT NOT NULL, name TEXT NOT NULL, state TEXT NOT NULL, detail TEXT NOT NULL, at BIGINT NOT NULL, PRIMARY KEY (box_name, path_id))",
        "CREATE TABLE IF NOT EXISTS drill_reports (box_name TEXT NOT NULL, at BIGINT NOT NULL, summary TEXT NOT NULL, PRIMARY KEY (box_name, at))",
        USED_STATEMENTS,
        "CREATE TABLE IF NOT EXISTS audit (seq BIGINT PRIMARY KEY, at BIGINT NOT NULL, event TEXT NOT NULL, box_name TEXT, detail TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)",
    ],
    // Seen request nonces on PostgreSQL, shared by every hub on the database. UNLOGGED: a nonce
    // only has to outlive its ten-minute window, not a crash, and its write must not cost an
    // fsync on every signed request.
    postgres_statements: &[
        "CREATE UNLOGGED TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, expires BIGINT NOT NULL)",
    ],
    sqlite_statements: &[],
    version: "1",
    // "kwhub" in ASCII.
    advisory_lock: 0x006b_7768_7562,
};
/// Most nonces a SQLite hub keeps in memory (ten minutes of requests at over 30,000 a second);
/// beyond that requests are refused until old ones expire.
const MAX_MEMORY_NONCES: usize = 20_000_000;
/// How many drill reports of a box the history keeps.
pub const DRILL_HISTORY: usize = 32;
/// How often a write that lost a race is retried (with a growing random pause).
const RETRIES: u32 = 60;

/// A connection pool to the hub's database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    nonces: Nonces,
    /// Held by each audited write of this process. Every write appends to the one audit chain,
    /// so writers are serialized there anyway; taking turns here saves the work a lost race
    /// would throw away (hubs on one PostgreSQL still race each other, and retry).
    writer: Arc<tokio::sync::Mutex<()>>,
}

/// How one attempt of an audited write ended.
enum Attempt<T> {
    /// The change and its audit record are written: commit.
    Commit(T),
    /// Nothing to change (refused, or not there): roll back and answer.
    Rollback(T),
    /// Lost a race for a unique key: roll back and try again.
    Retry,
}

/// Appends an audit record after the current head inside `conn`'s transaction; `false` if
/// another writer took the next sequence number first.
async fn append_audit(
    conn: &mut AnyConnection,
    event: &str,
    box_name: Option<&str>,
    detail: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let head = sqlx::query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *conn)
        .await?;
    let (prev_seq, prev_hash): (i64, String) =
        head.map_or((0, GENESIS.to_string()), |r| (r.get(0), r.get(1)));
    let seq = prev_seq + 1;
    let hash =
        record_hash(&prev_hash, u64::try_from(seq).unwrap_or(0), now, event, box_name, detail);
    let insert = sqlx::query(
        "INSERT INTO audit (seq, at, event, box_name, detail, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(seq)
    .bind(now)
    .bind(event)
    .bind(box_name)
    .bind(detail)
    .bind(&prev_hash)
    .bind(&hash);
    unique(insert.execute(conn).await)
}

/// Ends one attempt of an audited write: `Some(answer)` once it committed or rolled back with
/// an answer, `None` when it lost a race and must run again. An error drops (rolls back) the
/// transaction.
async fn settle<T>(
    tx: sqlx::Transaction<'static, sqlx::Any>,
    attempt: Result<Attempt<T>, sqlx::Error>,
) -> Result<Option<T>, StoreError> {
    match attempt? {
        Attempt::Commit(answer) => {
            tx.commit().await?;
            Ok(Some(answer))
        }
        Attempt::Rollback(answer) => {
            tx.rollback().await?;
            Ok(Some(answer))
        }
        Attempt::Retry => {
            tx.rollback().await?;
            Ok(None)
        }
    }
}

/// Runs `$body` (async code over the transaction's connection `$conn`, ending in an
/// [`Attempt`]) under this process's writer turn, in a fresh transaction each round, until it
/// commits, rolls back or keeps losing races. A macro rather than a function taking an async
/// closure: the hub's futures must be `Send` for axum, which the compiler cannot yet prove for
/// an async closure that borrows.
macro_rules! audited {
    ($store:expr, $what:literal, |$conn:ident| $body:block) => {{
        let _turn = $store.writer.lock().await;
        let mut answer = Err(StoreError::Contended($what));
        for round in 0..RETRIES {
            let mut tx = $store.begin_round(round).await?;
            let $conn: &mut AnyConnection = &mut tx;
            let attempt: Result<Attempt<_>, sqlx::Error> = async $body.await;
            if let Some(done) = settle(tx, attempt).await? {
                answer = Ok(done);
                break;
            }
        }
        answer
    }};
}

/// Where seen nonces live.
#[derive(Debug, Clone)]
enum Nonces {
    /// SQLite: one hub process owns the file, so its memory is the only place a replay can
    /// arrive; keeping them there spares an fsync per request. A restart forgets them, so a
    /// request captured before it could be replayed within its ±5-minute window — a replayed
    /// fetch or status reveals nothing new, and a replayed push only adds a pending version
    /// that needs an operator.
    Memory(Arc<NonceTable>),
    /// PostgreSQL: an UNLOGGED table every hub shares (with when it was last swept).
    Table(Arc<AtomicI64>),
}

/// The nonce table of a SQLite hub.
fn memory_nonces() -> Nonces {
    Nonces::Memory(Arc::new(NonceTable::new(NonceLimits {
        capacity: MAX_MEMORY_NONCES,
        when_full: WhenFull::Refuse,
    })))
}

/// What a takeover did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TakeOver {
    /// The name moved to the new identity.
    Done,
    /// The name is the new identity's already (asked again): nothing used or written.
    AlreadyThis,
    /// No box has the name.
    NoSuchBox,
    /// The name is bound to another identity than the one the takeover replaces (this one).
    HeldByAnother(String),
    /// The takeover was used already.
    Used,
}

/// What recording a request's nonce found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceUse {
    /// New, and recorded.
    Recorded,
    /// Refused: seen before, malformed, or no room.
    Refused(NonceError),
    /// The box name is no longer bound to the key that signed (it was taken over).
    NotTheHolder,
}

impl NonceUse {
    /// The request's refusal, if it is refused.
    pub fn into_result(self) -> Result<(), keyward_service::ServiceError> {
        match self {
            NonceUse::Recorded => Ok(()),
            NonceUse::Refused(e) => Err(e.into()),
            NonceUse::NotTheHolder => Err(keyward_service::AuthError::TakenOver.into()),
        }
    }
}

/// What `push` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Stored as this version, `active` (the box's first) or `pending`.
    Stored {
        /// The version number.
        version: u64,
        /// `active` or `pending`.
        state: &'static str,
    },
    /// Refused: this many versions already wait for approval.
    TooManyPending(i64),
}

/// What `put_header` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderStored {
    /// Whether it replaced the volume's earlier one.
    pub replaced: bool,
    /// The volume whose header backup was dropped to make room, if any.
    pub evicted: Option<String>,
}

/// What `serve_header` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderServed {
    /// The header backup asked for.
    One(HeaderCopy),
    /// None of that volume (or none at all).
    Nothing,
    /// No volume was named, and the box has several: their UUIDs.
    Several(Vec<String>),
}

/// The fingerprints a version claims for its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedKey {
    /// The version's fingerprint (PBS's for a PBS key file).
    pub fingerprint: String,
    /// keyward's, when the version's own is PBS's.
    pub key_fingerprint: Option<String>,
}

/// What `activate` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activation {
    /// The version is active now.
    Activated,
    /// No pending version with that number (or another approval won).
    NotPending,
    /// The pending version's key has neither fingerprint the approval names.
    OtherFingerprint(ClaimedKey),
    /// The pending version's blob is not the one the approval names.
    OtherBlob,
}

/// A row of `escrows` as a copy with its blob (columns: version, state, pushed_at, blob_format,
/// blob, fingerprint, directive).
fn escrow_copy(row: &sqlx::any::AnyRow) -> EscrowCopy {
    let blob: String = row.get(4);
    let bytes = keyward_core::encoding::from_base64(&blob).unwrap_or_default();
    EscrowCopy {
        version: u64::try_from(row.get::<i64, _>(0)).unwrap_or(0),
        state: row.get(1),
        pushed_at: row.get(2),
        blob_format: row.get(3),
        blob_sha256: blob_sha256(&bytes),
        blob,
        fingerprint: row.get(5),
        directive: serde_json::from_str(&row.get::<String, _>(6))
            .unwrap_or(serde_json::Value::Null),
    }
}

/// The boxes whose names lie from `first` to `last`, both included: one box, or a page of the
/// fleet, whose rows are then read with one query per table rather than one per box.
#[derive(Debug, Clone, Copy)]
pub struct NameRange<'a> {
    first: &'a str,
    last: &'a str,
}

impl<'a> NameRange<'a> {
    /// One box.
    pub fn one(name: &'a str) -> Self {
        NameRange { first: name, last: name }
    }

    /// The boxes from `first` to `last`, by name.
    pub fn from_to(first: &'a str, last: &'a str) -> Self {
        NameRange { first, last }
    }
}

/// Rows of several boxes, by box name (a box with none is absent).
pub type ByBox<T> = std::collections::HashMap<String, Vec<T>>;

/// The columns [`escrow_copy`] reads, in its order.
macro_rules! escrow_columns {
    () => {
        "version, state, pushed_at, blob_format, blob, fingerprint, directive"
    };
}

/// `SELECT` of the columns [`escrow_copy`] reads, then the rest of the query.
macro_rules! select_escrows {
    ($rest:literal) => {
        concat!("SELECT ", escrow_columns!(), " FROM escrows ", $rest)
    };
}

impl Store {
    /// The pool, for tools that fill a database in bulk (the benchmark seeder).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Connects to an existing database without changing it (for `audit verify`).
    pub async fn open_existing(url: &str) -> Result<Self, StoreError> {
        let (pool, backend) = helpers::connect_read_only(url).await?;
        Ok(Store { pool, backend, nonces: Nonces::Table(Arc::default()), writer: Arc::default() })
    }

    /// Connects (`sqlite://PATH?mode=rwc` or `postgres://…`) and makes sure the schema exists.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let backend = Backend::of(url);
        let max = if backend == Backend::Sqlite { 4 } else { 16 };
        let (pool, backend) = helpers::connect(url, max).await?;
        helpers::migrate(&pool, backend, &SCHEMA).await?;
        let nonces = if backend == Backend::Sqlite {
            memory_nonces()
        } else {
            Nonces::Table(Arc::default())
        };
        Ok(Store { pool, backend, nonces, writer: Arc::default() })
    }

    /// A box's public key, if it is enrolled.
    pub async fn box_key(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query("SELECT public_key FROM boxes WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .map(|row| row.get(0)))
    }

    /// Starts round `round` of an audited write: waits a little after a lost race, then opens
    /// a transaction.
    async fn begin_round(
        &self,
        round: u32,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        if round > 0 {
            back_off(round).await;
        }
        Ok(helpers::begin_write(&self.pool, self.backend).await?)
    }

    /// Enrolls a box, audited as `enroll`; `false` if the name is taken.
    pub async fn add_box(
        &self,
        name: &str,
        public_key: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let detail = format!("identity {public_key}");
        audited!(self, "box enrollment", |conn| {
            let insert = sqlx::query(
                "INSERT INTO boxes (name, public_key, enrolled_at) VALUES ($1, $2, $3)",
            )
            .bind(name)
            .bind(public_key)
            .bind(now);
            if !unique(insert.execute(&mut *conn).await)? {
                return Ok(Attempt::Rollback(false));
            }
            Ok(match append_audit(conn, "enroll", Some(name), &detail, now).await? {
                true => Attempt::Commit(true),
                false => Attempt::Retry,
            })
        })
    }

    /// Records one use of a statement that allows `allowed`, audited as `event` with the use
    /// number; the use number, or `None` when every use is taken.
    pub async fn use_statement(
        &self,
        id: &str,
        kind: &str,
        allowed: u32,
        event: &str,
        box_name: &str,
        now: i64,
    ) -> Result<Option<u32>, StoreError> {
        audited!(self, "statement use", |conn| {
            let n = match record_use(&mut *conn, id, kind, allowed, now).await? {
                Use::Recorded(n) => n,
                Use::UsedUp => return Ok(Attempt::Rollback(None)),
                Use::Lost => return Ok(Attempt::Retry),
            };
            let detail = if allowed == 1 {
                kind.to_string()
            } else {
                format!("{kind}, use {n} of {allowed}")
            };
            Ok(match append_audit(conn, event, Some(box_name), &detail, now).await? {
                true => Attempt::Commit(Some(n)),
                false => Attempt::Retry,
            })
        })
    }

    /// Records a request nonce until `expires` — for a box's request (`holder`: its name and
    /// the key that verified it) only while the name is still bound to that key. A nonce is
    /// never accepted unchecked: a database failure refuses the request too.
    pub async fn use_nonce(
        &self,
        nonce: &str,
        expires: i64,
        now: i64,
        holder: Option<(&str, String)>,
    ) -> Result<NonceUse, StoreError> {
        match &self.nonces {
            // One hub process owns a SQLite file, so its cache of box keys, which its own
            // takeovers update, is the database's word.
            Nonces::Memory(seen) => {
                Ok(match nonces::parse(nonce).and_then(|n| seen.insert(n, &[], expires, now)) {
                    Ok(()) => NonceUse::Recorded,
                    Err(e) => NonceUse::Refused(e),
                })
            }
            Nonces::Table(last_sweep) => {
                // Expired nonces are cleared now and then (every 16 s), not on every request; a
                // sweep that fails costs only space, and the next one retries it.
                let due = now - last_sweep.load(Ordering::Relaxed) >= 16;
                if due && last_sweep.swap(now, Ordering::Relaxed) != now {
                    let _ = sqlx::query("DELETE FROM nonces WHERE expires < $1")
                        .bind(now)
                        .execute(&self.pool)
                        .await;
                }
                // One round trip for both: the nonce, and that the name still has this key.
                let inserted = match &holder {
                    None => sqlx::query("INSERT INTO nonces (nonce, expires) VALUES ($1, $2)")
                        .bind(nonce)
                        .bind(expires)
                        .execute(&self.pool)
                        .await
                        .map(|done| done.rows_affected()),
                    Some((name, key)) => sqlx::query(
                        "INSERT INTO nonces (nonce, expires) SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM boxes WHERE name = $3 AND public_key = $4)",
                    )
                    .bind(nonce)
                    .bind(expires)
                    .bind(*name)
                    .bind(key)
                    .execute(&self.pool)
                    .await
                    .map(|done| done.rows_affected()),
                };
                Ok(match inserted {
                    Ok(0) => NonceUse::NotTheHolder,
                    Ok(_) => NonceUse::Recorded,
                    Err(e) if helpers::is_unique_violation(&e) => {
                        NonceUse::Refused(NonceError::Seen)
                    }
                    Err(e) => return Err(e.into()),
                })
            }
        }
    }

    /// Moves box `name` from key `replaces` to key `new` (a takeover with statement id `id`,
    /// single use), in one transaction with the statement's use and the `takeover` audit record.
    /// The box's escrow versions and header backups stay.
    pub async fn take_over(
        &self,
        name: &str,
        replaces: &str,
        new: &str,
        id: &str,
        now: i64,
    ) -> Result<TakeOver, StoreError> {
        let detail = format!("identity {replaces} replaced by {new}");
        audited!(self, "box takeover", |conn| {
            let held: Option<String> = sqlx::query("SELECT public_key FROM boxes WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *conn)
                .await?
                .map(|r| r.get(0));
            match held {
                None => return Ok(Attempt::Rollback(TakeOver::NoSuchBox)),
                Some(held) if held == new => return Ok(Attempt::Rollback(TakeOver::AlreadyThis)),
                Some(held) if held != replaces => {
                    return Ok(Attempt::Rollback(TakeOver::HeldByAnother(held)));
                }
                Some(_) => {}
            }
            match record_use(&mut *conn, id, "a takeover", 1, now).await? {
                Use::Recorded(_) => {}
                Use::UsedUp => return Ok(Attempt::Rollback(TakeOver::Used)),
                Use::Lost => return Ok(Attempt::Retry),
            }
            let update =
                sqlx::query("UPDATE boxes SET public_key = $1 WHERE name = $2 AND public_key = $3")
                    .bind(new)
                    .bind(name)
                    .bind(replaces)
                    .execute(&mut *conn)
                    .await?;
            if update.rows_affected() != 1 {
                return Ok(Attempt::Retry);
            }
            // The old machine's drill proves nothing of the new one.
            sqlx::query("DELETE FROM drill_paths WHERE box_name = $1")
                .bind(name)
                .execute(&mut *conn)
                .await?;
            Ok(match append_audit(conn, "takeover", Some(name), &detail, now).await? {
                true => Attempt::Commit(TakeOver::Done),
                false => Attempt::Retry,
            })
        })
    }

    /// Appends an escrow version, audited as `push`: the first is active, later ones pending,
    /// unless `max_pending` versions already wait for approval. A push of the blob and
    /// directive of a version that is active or pending is answered with that version. The version is the next free
    /// number; two hubs racing for it both land, one retrying with the next number — and
    /// counting again, so racing pushes never take a box past its cap.
    pub async fn push(
        &self,
        box_name: &str,
        push: &PushRequest,
        hash: &str,
        max_pending: usize,
        now: i64,
    ) -> Result<Pushed, StoreError> {
        let directive = push.directive.to_string();
        audited!(self, "escrow version", |conn| {
            // The same blob and directive as a version still in use is that version: a push
            // retried at another hub after this database took it (its answer lost) adds nothing.
            let same = sqlx::query(
                "SELECT version, state FROM escrows WHERE box_name = $1 AND state IN ('active', 'pending') AND blob_format = $2 AND blob = $3 AND fingerprint = $4 AND directive = $5 ORDER BY version DESC LIMIT 1",
            )
            .bind(box_name)
            .bind(&push.blob_format)
            .bind(&push.blob)
            .bind(&push.fingerprint)
            .bind(&directive)
            .fetch_optional(&mut *conn)
            .await?;
            if let Some(row) = same {
                let state = if row.get::<String, _>(1) == "active" { "active" } else { "pending" };
                let version = u64::try_from(row.get::<i64, _>(0)).unwrap_or(0);
                return Ok(Attempt::Rollback(Pushed::Stored { version, state }));
            }
            let row = sqlx::query(
                "SELECT COALESCE(MAX(version), 0), COUNT(CASE WHEN state = 'pending' THEN 1 END) FROM escrows WHERE box_name = $1",
            )
            .bind(box_name)
            .fetch_one(&mut *conn)
            .await?;
            let (last, pending): (i64, i64) = (row.get(0), row.get(1));
            if usize::try_from(pending).unwrap_or(usize::MAX) >= max_pending {
                return Ok(Attempt::Rollback(Pushed::TooManyPending(pending)));
            }
            let version = last + 1;
            let state = if last == 0 { "active" } else { "pending" };
            let insert = sqlx::query(
                "INSERT INTO escrows (box_name, version, state, blob_format, blob, fingerprint, directive, pushed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(box_name)
            .bind(version)
            .bind(state)
            .bind(&push.blob_format)
            .bind(&push.blob)
            .bind(&push.fingerprint)
            .bind(&directive)
            .bind(now);
            if !unique(insert.execute(&mut *conn).await)? {
                return Ok(Attempt::Retry);
            }
            if let Some(key) = &push.key_fingerprint {
                sqlx::query(
                    "INSERT INTO escrow_key_fingerprints (box_name, version, fingerprint) VALUES ($1, $2, $3)",
                )
                .bind(box_name)
                .bind(version)
                .bind(key)
                .execute(&mut *conn)
                .await?;
            }
            let detail = format!(
                "version {version} {state}, fingerprint {}, blob sha256 {hash}",
                push.fingerprint
            );
            let stored = Pushed::Stored { version: u64::try_from(version).unwrap_or(0), state };
            Ok(match append_audit(conn, "push", Some(box_name), &detail, now).await? {
                true => Attempt::Commit(stored),
                false => Attempt::Retry,
            })
        })
    }

    /// Records a box's drill report in place of its last one, with a line of history (the
    /// newest [`DRILL_HISTORY`] kept), audited as `drill` with the counts and the broken ids.
    pub async fn record_drill(
        &self,
        box_name: &str,
        report: &DrillReport,
        now: i64,
    ) -> Result<(), StoreError> {
        let count = |state: &str| report.paths.iter().filter(|p| p.state == state).count();
        let broken: Vec<&str> =
            report.paths.iter().filter(|p| p.state == "broken").map(|p| p.id.as_str()).collect();
        let summary = format!(
            "{} ok, {} broken{}, {} not proven",
            count("ok"),
            broken.len(),
            if broken.is_empty() { String::new() } else { format!(" ({})", broken.join(", ")) },
            count("not_proven")
        );
        audited!(self, "drill report", |conn| {
            sqlx::query("DELETE FROM drill_paths WHERE box_name = $1")
                .bind(box_name)
                .execute(&mut *conn)
                .await?;
            for path in &report.paths {
                sqlx::query(
                    "INSERT INTO drill_paths (box_name, path_id, name, state, detail, at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(box_name)
                .bind(&path.id)
                .bind(&path.name)
                .bind(&path.state)
                .bind(&path.detail)
                .bind(now)
                .execute(&mut *conn)
                .await?;
            }
            // A second report within the second replaces the first's line (one statement: a
            // unique violation would abort the transaction on PostgreSQL).
            sqlx::query(
                "INSERT INTO drill_reports (box_name, at, summary) VALUES ($1, $2, $3) ON CONFLICT (box_name, at) DO UPDATE SET summary = excluded.summary",
            )
            .bind(box_name)
            .bind(now)
            .bind(&summary)
            .execute(&mut *conn)
            .await?;
            sqlx::query(
                "DELETE FROM drill_reports WHERE box_name = $1 AND at NOT IN (SELECT at FROM drill_reports WHERE box_name = $1 ORDER BY at DESC LIMIT $2)",
            )
            .bind(box_name)
            .bind(i64::try_from(DRILL_HISTORY).unwrap_or(i64::MAX))
            .execute(&mut *conn)
            .await?;
            Ok(match append_audit(conn, "drill", Some(box_name), &summary, now).await? {
                true => Attempt::Commit(()),
                false => Attempt::Retry,
            })
        })
    }

    /// A box's last drill, path by path.
    pub async fn drill(&self, box_name: &str) -> Result<Vec<DrillPathAt>, StoreError> {
        Ok(self.drills_in(NameRange::one(box_name)).await?.remove(box_name).unwrap_or_default())
    }

    /// The last drill of each box in `names`, path by path, by box.
    pub async fn drills_in(&self, names: NameRange<'_>) -> Result<ByBox<DrillPathAt>, StoreError> {
        let rows = sqlx::query(
            "SELECT path_id, name, state, detail, at, box_name FROM drill_paths WHERE box_name >= $1 AND box_name <= $2 ORDER BY box_name, path_id",
        )
        .bind(names.first)
        .bind(names.last)
        .fetch_all(&self.pool)
        .await?;
        let mut by_box = ByBox::new();
        for r in &rows {
            let path = DrillPathAt {
                path: DrillPath { id: r.get(0), name: r.get(1), state: r.get(2), detail: r.get(3) },
                at: r.get(4),
            };
            by_box.entry(r.get(5)).or_default().push(path);
        }
        Ok(by_box)
    }

    /// The names of the boxes enrolled, by name, at most `limit`.
    pub async fn box_names(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT name FROM boxes WHERE name > $1 ORDER BY name LIMIT $2")
            .bind(after.unwrap_or(""))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Every version of a box's escrow, oldest first.
    pub async fn versions(&self, box_name: &str) -> Result<Vec<EscrowVersion>, StoreError> {
        Ok(self.versions_in(NameRange::one(box_name)).await?.remove(box_name).unwrap_or_default())
    }

    /// Every version of the escrows of the boxes in `names`, oldest first, by box.
    pub async fn versions_in(
        &self,
        names: NameRange<'_>,
    ) -> Result<ByBox<EscrowVersion>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            escrow_columns!(),
            ", box_name FROM escrows WHERE box_name >= $1 AND box_name <= $2 ORDER BY box_name, version"
        ))
        .bind(names.first)
        .bind(names.last)
        .fetch_all(&self.pool)
        .await?;
        let mut keys = self.key_fingerprints(names).await?;
        let mut by_box = ByBox::new();
        for row in &rows {
            // The column after escrow_copy's.
            let box_name: String = row.get(7);
            let copy = escrow_copy(row);
            let version = EscrowVersion {
                version: copy.version,
                blob_sha256: (copy.state != "deleted").then_some(copy.blob_sha256),
                state: copy.state,
                pushed_at: copy.pushed_at,
                fingerprint: copy.fingerprint,
                key_fingerprint: keys.remove(&(box_name.clone(), copy.version)),
            };
            by_box.entry(box_name).or_default().push(version);
        }
        Ok(by_box)
    }

    /// keyward's fingerprints of the versions whose own is the PBS one, by box and version.
    async fn key_fingerprints(
        &self,
        names: NameRange<'_>,
    ) -> Result<std::collections::HashMap<(String, u64), String>, StoreError> {
        let rows = sqlx::query(
            "SELECT box_name, version, fingerprint FROM escrow_key_fingerprints WHERE box_name >= $1 AND box_name <= $2",
        )
        .bind(names.first)
        .bind(names.last)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let version = u64::try_from(r.get::<i64, _>(1)).unwrap_or(0);
                ((r.get::<String, _>(0), version), r.get::<String, _>(2))
            })
            .collect())
    }

    /// Makes pending version `version` active — if its blob has SHA-256 `hash` and it claims a
    /// key with fingerprint `fingerprint` — and the old active one superseded, audited as
    /// `approve`. The superseded version keeps its blob: only a deletion order erases one.
    pub async fn activate(
        &self,
        box_name: &str,
        version: u64,
        fingerprint: &ExpectedFingerprint,
        hash: &str,
        now: i64,
    ) -> Result<Activation, StoreError> {
        let number = i64::try_from(version).unwrap_or(i64::MAX);
        let detail = format!("version {version} active, blob sha256 {hash}");
        audited!(self, "approval", |conn| {
            let Some(row) = sqlx::query(select_escrows!(
                "WHERE box_name = $1 AND version = $2 AND state = 'pending'"
            ))
            .bind(box_name)
            .bind(number)
            .fetch_optional(&mut *conn)
            .await?
            else {
                return Ok(Attempt::Rollback(Activation::NotPending));
            };
            let pending = escrow_copy(&row);
            let key: Option<String> = sqlx::query(
                "SELECT fingerprint FROM escrow_key_fingerprints WHERE box_name = $1 AND version = $2",
            )
            .bind(box_name)
            .bind(number)
            .fetch_optional(&mut *conn)
            .await?
            .map(|r| r.get(0));
            // Either of the key's fingerprints names it.
            let names_it = |text: &str| {
                text.parse::<keyward_core::Fingerprint>().is_ok_and(|fp| fp.matches(fingerprint))
            };
            if !names_it(&pending.fingerprint) && !key.as_deref().is_some_and(names_it) {
                let claimed = ClaimedKey { fingerprint: pending.fingerprint, key_fingerprint: key };
                return Ok(Attempt::Rollback(Activation::OtherFingerprint(claimed)));
            }
            if pending.blob_sha256 != hash {
                return Ok(Attempt::Rollback(Activation::OtherBlob));
            }
            // Supersede first, so the index never sees two active rows inside this transaction.
            sqlx::query(
                "UPDATE escrows SET state = 'superseded' WHERE box_name = $1 AND state = 'active'",
            )
            .bind(box_name)
            .execute(&mut *conn)
            .await?;
            let activated = sqlx::query(
                "UPDATE escrows SET state = 'active' WHERE box_name = $1 AND version = $2 AND state = 'pending'",
            )
            .bind(box_name)
            .bind(number)
            .execute(&mut *conn)
            .await;
            match unique(activated) {
                Ok(true) => {}
                Ok(false) => return Ok(Attempt::Rollback(Activation::NotPending)),
                Err(e) => return Err(e),
            }
            Ok(match append_audit(conn, "approve", Some(box_name), &detail, now).await? {
                true => Attempt::Commit(Activation::Activated),
                false => Attempt::Retry,
            })
        })
    }

    /// Erases a version's blob and directive and marks it `deleted`, audited as `delete`;
    /// `false` if there is no such version or it is deleted already. The write-ahead log is then
    /// emptied (see keyward-service's `fold_log`).
    pub async fn erase(&self, box_name: &str, version: u64, now: i64) -> Result<bool, StoreError> {
        let erased = self.erase_row(box_name, version, now).await?;
        if erased {
            helpers::fold_log(&self.pool, self.backend).await;
        }
        Ok(erased)
    }

    async fn erase_row(&self, box_name: &str, version: u64, now: i64) -> Result<bool, StoreError> {
        let number = i64::try_from(version).unwrap_or(i64::MAX);
        let detail = format!("version {version} erased");
        audited!(self, "deletion", |conn| {
            let erased = sqlx::query(
                "UPDATE escrows SET state = 'deleted', blob = '', directive = 'null' WHERE box_name = $1 AND version = $2 AND state <> 'deleted'",
            )
            .bind(box_name)
            .bind(number)
            .execute(&mut *conn)
            .await?;
            if erased.rows_affected() != 1 {
                return Ok(Attempt::Rollback(false));
            }
            Ok(match append_audit(conn, "delete", Some(box_name), &detail, now).await? {
                true => Attempt::Commit(true),
                false => Attempt::Retry,
            })
        })
    }

    /// The active escrow of a box.
    pub async fn active(&self, box_name: &str) -> Result<Option<EscrowCopy>, StoreError> {
        let row = sqlx::query(select_escrows!("WHERE box_name = $1 AND state = 'active'"))
            .bind(box_name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(escrow_copy))
    }

    /// Every version of a box the hub still holds (not deleted), newest first.
    pub async fn held(&self, box_name: &str) -> Result<Vec<EscrowCopy>, StoreError> {
        let rows = sqlx::query(select_escrows!(
            "WHERE box_name = $1 AND state <> 'deleted' ORDER BY version DESC"
        ))
        .bind(box_name)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(escrow_copy).collect())
    }

    /// Stores the sealed header backup of volume `uuid` (SHA-256 `hash`) in place of the one
    /// held, audited as `header-push`. When the box has `max_volumes` other volumes' already,
    /// the one pushed longest ago is dropped first, audited as `header-evicted`.
    pub async fn put_header(
        &self,
        box_name: &str,
        uuid: &str,
        header: &HeaderPushRequest,
        hash: &str,
        max_volumes: usize,
        now: i64,
    ) -> Result<HeaderStored, StoreError> {
        audited!(self, "header backup", |conn| {
            let rows = sqlx::query(
                "SELECT uuid FROM luks_headers WHERE box_name = $1 ORDER BY pushed_at, uuid",
            )
            .bind(box_name)
            .fetch_all(&mut *conn)
            .await?;
            let held: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
            let replaced = held.iter().any(|u| u == uuid);
            let evicted = match held.first() {
                Some(oldest) if !replaced && held.len() >= max_volumes => Some(oldest.clone()),
                _ => None,
            };
            if let Some(oldest) = &evicted {
                for delete in [
                    "DELETE FROM luks_headers WHERE box_name = $1 AND uuid = $2",
                    "DELETE FROM luks_header_states WHERE box_name = $1 AND uuid = $2",
                ] {
                    sqlx::query(delete).bind(box_name).bind(oldest).execute(&mut *conn).await?;
                }
                let detail = format!("volume {oldest}, to make room for volume {uuid}");
                if !append_audit(conn, "header-evicted", Some(box_name), &detail, now).await? {
                    return Ok(Attempt::Retry);
                }
            }
            // Both SQLite and PostgreSQL spell an upsert this way.
            sqlx::query(
                "INSERT INTO luks_headers (box_name, uuid, fingerprint, sealed, sha256, pushed_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (box_name, uuid) DO UPDATE SET fingerprint = excluded.fingerprint, sealed = excluded.sealed, sha256 = excluded.sha256, pushed_at = excluded.pushed_at",
            )
            .bind(box_name)
            .bind(uuid)
            .bind(&header.fingerprint)
            .bind(&header.sealed)
            .bind(hash)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            sqlx::query("DELETE FROM luks_header_states WHERE box_name = $1 AND uuid = $2")
                .bind(box_name)
                .bind(uuid)
                .execute(&mut *conn)
                .await?;
            if let Some(state) = &header.state {
                sqlx::query(
                    "INSERT INTO luks_header_states (box_name, uuid, state) VALUES ($1, $2, $3)",
                )
                .bind(box_name)
                .bind(uuid)
                .bind(state)
                .execute(&mut *conn)
                .await?;
            }
            let detail = format!(
                "volume {uuid}{}, fingerprint {}, sealed sha256 {hash}",
                if replaced { " replaced" } else { "" },
                header.fingerprint
            );
            Ok(match append_audit(conn, "header-push", Some(box_name), &detail, now).await? {
                true => Attempt::Commit(HeaderStored { replaced, evicted }),
                false => Attempt::Retry,
            })
        })
    }

    /// What the hub holds of each of a box's header backups, without the sealed bytes (by
    /// UUID). Read only, not audited: the box reads what it pushed.
    pub async fn header_summaries(&self, box_name: &str) -> Result<Vec<HeaderSummary>, StoreError> {
        let mut by_box = self.header_summaries_in(NameRange::one(box_name)).await?;
        Ok(by_box.remove(box_name).unwrap_or_default())
    }

    /// The header backups of the boxes in `names`, by box, each by UUID.
    pub async fn header_summaries_in(
        &self,
        names: NameRange<'_>,
    ) -> Result<ByBox<HeaderSummary>, StoreError> {
        let rows = sqlx::query(
            "SELECT h.uuid, h.fingerprint, h.pushed_at, h.sha256, s.state, h.box_name FROM luks_headers h LEFT JOIN luks_header_states s ON s.box_name = h.box_name AND s.uuid = h.uuid WHERE h.box_name >= $1 AND h.box_name <= $2 ORDER BY h.box_name, h.uuid",
        )
        .bind(names.first)
        .bind(names.last)
        .fetch_all(&self.pool)
        .await?;
        let mut by_box = ByBox::new();
        for row in &rows {
            let summary = HeaderSummary {
                uuid: row.get(0),
                fingerprint: row.get(1),
                pushed_at: row.get(2),
                sha256: row.get(3),
                state: row.get(4),
            };
            by_box.entry(row.get(5)).or_default().push(summary);
        }
        Ok(by_box)
    }

    /// The sealed header backup of volume `uuid` of a box (of its only volume, if `None`).
    /// Serving it is audited as `header-served`, with the id of the recovery ticket that asked
    /// (which it does not use up: see [`crate::hub::Hub::recover_header`]).
    pub async fn serve_header(
        &self,
        box_name: &str,
        uuid: Option<&str>,
        ticket_id: &str,
        now: i64,
    ) -> Result<HeaderServed, StoreError> {
        audited!(self, "header serving", |conn| {
            let rows = sqlx::query(
                "SELECT uuid, fingerprint, pushed_at, sealed, sha256 FROM luks_headers WHERE box_name = $1 AND ($2 IS NULL OR uuid = $2) ORDER BY uuid",
            )
            .bind(box_name)
            .bind(uuid)
            .fetch_all(&mut *conn)
            .await?;
            let row = match rows.as_slice() {
                [] => return Ok(Attempt::Rollback(HeaderServed::Nothing)),
                [row] => row,
                several => {
                    let uuids = several.iter().map(|r| r.get(0)).collect();
                    return Ok(Attempt::Rollback(HeaderServed::Several(uuids)));
                }
            };
            let copy = HeaderCopy {
                uuid: row.get(0),
                fingerprint: row.get(1),
                pushed_at: row.get(2),
                sealed: row.get(3),
                sha256: row.get(4),
            };
            let detail = format!("volume {}, recovery ticket {ticket_id}", copy.uuid);
            Ok(match append_audit(conn, "header-served", Some(box_name), &detail, now).await? {
                true => Attempt::Commit(HeaderServed::One(copy)),
                false => Attempt::Retry,
            })
        })
    }

    /// Appends an audit record that stands alone (the refusals of a minute).
    pub async fn audit(
        &self,
        event: &str,
        box_name: Option<&str>,
        detail: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        audited!(self, "audit record", |conn| {
            Ok(match append_audit(conn, event, box_name, detail, now).await? {
                true => Attempt::Commit(()),
                false => Attempt::Retry,
            })
        })
    }

    /// The whole audit log, in order.
    pub async fn audit_log(&self) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, at, event, box_name, detail, prev_hash, hash FROM audit ORDER BY seq",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(audit_record).collect())
    }

    /// The audit records since `since` (Unix seconds), of box `box_name` if given, the newest
    /// `limit` of them, oldest first.
    pub async fn audit_since(
        &self,
        box_name: Option<&str>,
        since: i64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, at, event, box_name, detail, prev_hash, hash FROM audit WHERE at >= $1 AND ($2 = '' OR box_name = $2) ORDER BY seq DESC LIMIT $3",
        )
        .bind(since)
        .bind(box_name.unwrap_or(""))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        let mut records: Vec<AuditRecord> = rows.iter().map(audit_record).collect();
        records.reverse();
        Ok(records)
    }

    /// Each box that reported a drill: when its newest report came, and how many of its paths
    /// are broken.
    pub async fn proof_ages(&self) -> Result<Vec<(String, i64, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT box_name, MAX(at), SUM(CASE WHEN state = 'broken' THEN 1 ELSE 0 END) FROM drill_paths GROUP BY box_name ORDER BY box_name",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
    }
}

/// A row of `audit` (columns: seq, at, event, box_name, detail, prev_hash, hash).
fn audit_record(row: &sqlx::any::AnyRow) -> AuditRecord {
    AuditRecord {
        seq: u64::try_from(row.get::<i64, _>(0)).unwrap_or(0),
        at: row.get(1),
        event: row.get(2),
        box_name: row.get(3),
        detail: row.get(4),
        prev_hash: row.get(5),
        hash: row.get(6),
    }
}
