//! The hub's store: one schema of TEXT and BIGINT columns, so the same SQL runs on SQLite (the
//! embedded default) and PostgreSQL (several hubs behind a load balancer), through sqlx's `Any`
//! driver. Every invariant that concurrent hubs could break is a unique key (escrow version,
//! one active escrow per box, audit sequence, statement id, nonce), so a lost race is a unique
//! violation that the caller retries or refuses — never a lost or duplicated version, never two
//! active ones. Every change is written in one transaction with the audit record that tells of
//! it, so the log can neither miss a change nor tell of one that did not happen.

use std::sync::Arc;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyConnection, AnyPool, Row};

use crate::api::{EscrowVersion, PushRequest, RecoverResponse};
use crate::audit::{AuditRecord, GENESIS, record_hash};

/// The schema, version 1. Idempotent: run at every start.
const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS boxes (name TEXT PRIMARY KEY, public_key TEXT NOT NULL, enrolled_at BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS escrows (box_name TEXT NOT NULL, version BIGINT NOT NULL, state TEXT NOT NULL, blob_format TEXT NOT NULL, blob TEXT NOT NULL, fingerprint TEXT NOT NULL, directive TEXT NOT NULL, pushed_at BIGINT NOT NULL, PRIMARY KEY (box_name, version))",
    // At most one active escrow per box, whatever two hubs approve at once.
    "CREATE UNIQUE INDEX IF NOT EXISTS escrows_one_active ON escrows (box_name) WHERE state = 'active'",
    "CREATE TABLE IF NOT EXISTS used_statements (id TEXT PRIMARY KEY, kind TEXT NOT NULL, used_at BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS audit (seq BIGINT PRIMARY KEY, at BIGINT NOT NULL, event TEXT NOT NULL, box_name TEXT, detail TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)",
];
const SCHEMA_VERSION: &str = "1";
/// The PostgreSQL advisory lock that serializes schema creation ("kwhub" in ASCII).
const SCHEMA_LOCK: i64 = 0x006b_7768_7562;
/// Seen request nonces on PostgreSQL, shared by every hub on the database. UNLOGGED: a nonce
/// only has to outlive its ten-minute window, not a crash, and its write must not cost an fsync
/// on every signed request.
const POSTGRES_NONCES: &str =
    "CREATE UNLOGGED TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, expires BIGINT NOT NULL)";
/// Most nonces a SQLite hub keeps in memory (ten minutes of requests at over 30,000 a second);
/// beyond that requests are refused until old ones expire.
const MAX_MEMORY_NONCES: usize = 20_000_000;
/// How often a write that lost a race is retried, with a short random pause that grows with
/// each attempt (so racing writers spread out instead of colliding again at once).
const RETRIES: u32 = 60;

/// The pause before retry `attempt` (1-based): random, up to `attempt` milliseconds.
async fn back_off(attempt: u32) {
    let jitter = keyward_core::random::below(1000).unwrap_or(500);
    let micros = u64::from(attempt.min(20)) * u64::from(jitter);
    tokio::time::sleep(std::time::Duration::from_micros(micros)).await;
}

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database said no.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A write kept losing races.
    #[error("database busy: {0} kept conflicting")]
    Contended(&'static str),
    /// The database was made by a newer hub.
    #[error("database schema version {0} is not supported by this hub; upgrade keyward")]
    Schema(String),
}

/// A connection pool to the hub's database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    /// SQLite (one hub process owns the file) rather than PostgreSQL.
    sqlite: bool,
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

/// `true` if a statement changed a row, `false` if a unique key refused it.
fn unique(result: Result<sqlx::any::AnyQueryResult, sqlx::Error>) -> Result<bool, sqlx::Error> {
    match result {
        Ok(_) => Ok(true),
        Err(e) if is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Where seen nonces live.
#[derive(Debug, Clone)]
enum Nonces {
    /// SQLite: one hub process owns the file, so its memory is the only place a replay can
    /// arrive; keeping them there spares an fsync per request. A restart forgets them, so a
    /// request captured before it could be replayed within its ±5-minute window — a replayed
    /// fetch or status reveals nothing new, and a replayed push only adds a pending version
    /// that needs an operator.
    Memory(std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, i64>>>),
    /// PostgreSQL: an UNLOGGED table every hub shares.
    Table,
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

impl Store {
    /// The pool, for tools that fill a database in bulk (the benchmark seeder).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Connects to an existing database without changing it (for `audit verify`).
    pub async fn open_existing(url: &str) -> Result<Self, StoreError> {
        install_default_drivers();
        let pool = AnyPoolOptions::new().max_connections(1).connect(url).await?;
        let sqlite = url.starts_with("sqlite:");
        Ok(Store { pool, sqlite, nonces: Nonces::Table, writer: Arc::default() })
    }

    /// Connects (`sqlite://PATH?mode=rwc` or `postgres://…`) and makes sure the schema exists.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 4 } else { 16 })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if sqlite {
                        // WAL for concurrent readers; FULL so an acknowledged push survives a
                        // power cut, not only a killed process; wait rather than fail when busy;
                        // secure_delete so an erased blob is overwritten in the file, not left
                        // in a free page.
                        for pragma in [
                            "PRAGMA journal_mode=WAL",
                            "PRAGMA synchronous=FULL",
                            "PRAGMA busy_timeout=10000",
                            "PRAGMA secure_delete=ON",
                        ] {
                            sqlx::query(pragma).execute(&mut *conn).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        let nonces = if sqlite { Nonces::Memory(Default::default()) } else { Nonces::Table };
        let store = Store { pool, sqlite, nonces, writer: Arc::default() };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        if !self.sqlite {
            // Hubs starting at the same instant would race `CREATE … IF NOT EXISTS` into a
            // unique violation in PostgreSQL's catalog; one at a time, in one transaction.
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(SCHEMA_LOCK)
                .execute(&mut *tx)
                .await?;
        }
        for statement in SCHEMA {
            sqlx::query(*statement).execute(&mut *tx).await?;
        }
        if !self.sqlite {
            sqlx::query(POSTGRES_NONCES).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        let found: Option<String> = sqlx::query("SELECT value FROM meta WHERE key = 'schema'")
            .fetch_optional(&self.pool)
            .await?
            .map(|row| row.get(0));
        match found {
            Some(v) if v == SCHEMA_VERSION => Ok(()),
            Some(v) => Err(StoreError::Schema(v)),
            None => {
                let insert = sqlx::query("INSERT INTO meta (key, value) VALUES ('schema', $1)")
                    .bind(SCHEMA_VERSION);
                // `false` only means another hub wrote the same version first.
                unique(insert.execute(&self.pool).await).map(drop).map_err(Into::into)
            }
        }
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
        Ok(self.pool.begin().await?)
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

    /// Records a single-use statement id, audited as `event`; `false` if it was used before.
    pub async fn use_once(
        &self,
        id: &str,
        kind: &str,
        event: &str,
        box_name: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        audited!(self, "statement use", |conn| {
            let insert =
                sqlx::query("INSERT INTO used_statements (id, kind, used_at) VALUES ($1, $2, $3)")
                    .bind(id)
                    .bind(kind)
                    .bind(now);
            if !unique(insert.execute(&mut *conn).await)? {
                return Ok(Attempt::Rollback(false));
            }
            Ok(match append_audit(conn, event, Some(box_name), kind, now).await? {
                true => Attempt::Commit(true),
                false => Attempt::Retry,
            })
        })
    }

    /// Records a request nonce until `expires`; `false` if it was seen (a replay).
    pub async fn use_nonce(&self, nonce: &str, expires: i64, now: i64) -> Result<bool, StoreError> {
        match &self.nonces {
            Nonces::Memory(seen) => {
                // A poisoned lock or a full table refuses: never accept a nonce unchecked.
                let Ok(mut seen) = seen.lock() else { return Ok(false) };
                if seen.len() >= MAX_MEMORY_NONCES / 2 {
                    seen.retain(|_, until| *until >= now);
                }
                if seen.len() >= MAX_MEMORY_NONCES {
                    return Ok(false);
                }
                Ok(seen.insert(nonce.to_string(), expires).is_none())
            }
            Nonces::Table => {
                // Expired nonces are cleared now and then, not on every request.
                if now % 16 == 0 {
                    sqlx::query("DELETE FROM nonces WHERE expires < $1")
                        .bind(now)
                        .execute(&self.pool)
                        .await?;
                }
                let insert = sqlx::query("INSERT INTO nonces (nonce, expires) VALUES ($1, $2)")
                    .bind(nonce)
                    .bind(expires);
                Ok(unique(insert.execute(&self.pool).await)?)
            }
        }
    }

    /// Appends an escrow version, audited as `push`: the first is active, later ones pending.
    /// The version is the next free number; two hubs racing for it both land, one retrying with
    /// the next number.
    pub async fn push(
        &self,
        box_name: &str,
        push: &PushRequest,
        now: i64,
    ) -> Result<(u64, &'static str), StoreError> {
        let directive = push.directive.to_string();
        audited!(self, "escrow version", |conn| {
            let row =
                sqlx::query("SELECT COALESCE(MAX(version), 0) FROM escrows WHERE box_name = $1")
                    .bind(box_name)
                    .fetch_one(&mut *conn)
                    .await?;
            let last: i64 = row.get(0);
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
            let detail = format!("version {version} {state}, fingerprint {}", push.fingerprint);
            Ok(match append_audit(conn, "push", Some(box_name), &detail, now).await? {
                true => Attempt::Commit((u64::try_from(version).unwrap_or(0), state)),
                false => Attempt::Retry,
            })
        })
    }

    /// Every version of a box's escrow, oldest first.
    pub async fn versions(&self, box_name: &str) -> Result<Vec<EscrowVersion>, StoreError> {
        let rows = sqlx::query("SELECT version, state, pushed_at, fingerprint FROM escrows WHERE box_name = $1 ORDER BY version")
            .bind(box_name)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|row| EscrowVersion {
                version: u64::try_from(row.get::<i64, _>(0)).unwrap_or(0),
                state: row.get(1),
                pushed_at: row.get(2),
                fingerprint: row.get(3),
            })
            .collect())
    }

    /// Makes a pending version active, if it claims `fingerprint`, and the old active one
    /// superseded, audited as `approve`. `false` if that version is not pending with that
    /// fingerprint, or a concurrent approval won (the unique index on the active escrow
    /// refuses a second one).
    pub async fn activate(
        &self,
        box_name: &str,
        version: u64,
        fingerprint: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let number = i64::try_from(version).unwrap_or(i64::MAX);
        let detail = format!("version {version} active");
        audited!(self, "approval", |conn| {
            // Supersede first, so the index never sees two active rows inside this transaction.
            sqlx::query(
                "UPDATE escrows SET state = 'superseded' WHERE box_name = $1 AND state = 'active'",
            )
            .bind(box_name)
            .execute(&mut *conn)
            .await?;
            let activated = sqlx::query(
                "UPDATE escrows SET state = 'active' WHERE box_name = $1 AND version = $2 AND state = 'pending' AND fingerprint = $3",
            )
            .bind(box_name)
            .bind(number)
            .bind(fingerprint)
            .execute(&mut *conn)
            .await;
            match activated {
                Ok(done) if done.rows_affected() == 1 => {}
                Ok(_) => return Ok(Attempt::Rollback(false)),
                Err(e) if is_unique_violation(&e) => return Ok(Attempt::Rollback(false)),
                Err(e) => return Err(e),
            }
            Ok(match append_audit(conn, "approve", Some(box_name), &detail, now).await? {
                true => Attempt::Commit(true),
                false => Attempt::Retry,
            })
        })
    }

    /// Erases a version's blob and directive and marks it `deleted`, audited as `delete`;
    /// `false` if there is no such version or it is deleted already. On SQLite the write-ahead
    /// log is then folded into the database and emptied (best effort: a reader may hold it), so
    /// the old page that held the blob does not linger there; `secure_delete` has already zeroed
    /// it in the database pages. PostgreSQL keeps dead row versions until VACUUM.
    pub async fn erase(&self, box_name: &str, version: u64, now: i64) -> Result<bool, StoreError> {
        let erased = self.erase_row(box_name, version, now).await?;
        if erased && self.sqlite {
            let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&self.pool).await;
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
    pub async fn active(&self, box_name: &str) -> Result<Option<RecoverResponse>, StoreError> {
        let row = sqlx::query(
            "SELECT version, blob_format, blob, fingerprint, directive FROM escrows WHERE box_name = $1 AND state = 'active'",
        )
        .bind(box_name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|row| RecoverResponse {
            box_name: box_name.to_string(),
            version: u64::try_from(row.get::<i64, _>(0)).unwrap_or(0),
            blob_format: row.get(1),
            blob: row.get(2),
            fingerprint: row.get(3),
            directive: serde_json::from_str(&row.get::<String, _>(4))
                .unwrap_or(serde_json::Value::Null),
        }))
    }

    /// Appends an audit record that stands alone (a refusal, a recovery served).
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
        Ok(rows
            .iter()
            .map(|row| AuditRecord {
                seq: u64::try_from(row.get::<i64, _>(0)).unwrap_or(0),
                at: row.get(1),
                event: row.get(2),
                box_name: row.get(3),
                detail: row.get(4),
                prev_hash: row.get(5),
                hash: row.get(6),
            })
            .collect())
    }
}
