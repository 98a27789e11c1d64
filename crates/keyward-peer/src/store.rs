//! The peer's store: SQLite in its data folder. Shares are kept as the owner sealed them (the
//! peer's own key opens them; nothing here opens without it), with the metadata a release needs.
//! An owner name is bound to the first identity that stored a share under it, so nobody else
//! can place shares a release ticket for that name would return.

use keyward_core::slot::ReleasePolicy;
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};

use crate::api::{ShareSetInfo, StoreShareRequest};
use crate::seal::Sealed;

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS owners (owner_name TEXT PRIMARY KEY, owner TEXT NOT NULL, first_seen INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS shares (share_set TEXT PRIMARY KEY, owner TEXT NOT NULL, owner_name TEXT NOT NULL, keybox_id TEXT NOT NULL, threshold INTEGER NOT NULL, policy TEXT NOT NULL, fingerprint TEXT NOT NULL, x INTEGER NOT NULL, enc TEXT NOT NULL, ct TEXT NOT NULL, stored_at INTEGER NOT NULL, last_released INTEGER)",
    "CREATE INDEX IF NOT EXISTS shares_by_owner_name ON shares (owner_name)",
    "CREATE TABLE IF NOT EXISTS used_tickets (id TEXT PRIMARY KEY, used_at INTEGER NOT NULL)",
];
const SCHEMA_VERSION: &str = "1";

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database said no.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The database was made by a newer keyward.
    #[error("peer database schema version {0} is not supported; upgrade keyward")]
    Schema(String),
}

/// How storing a share ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// New.
    Added,
    /// The very same share was there already (a retried upload).
    AlreadyThere,
    /// The owner name belongs to another identity.
    NameTaken,
    /// The share set exists with other contents or another owner.
    SetTaken,
}

/// A share as kept, with what a release needs.
#[derive(Debug, Clone)]
pub struct StoredShare {
    /// The owner's identity (`ed25519:…`).
    pub owner: String,
    /// Everything the owner sent.
    pub request: StoreShareRequest,
}

/// The peer's database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

impl Store {
    /// Opens (creating if needed) the database at `path`.
    pub async fn open(path: &std::path::Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(std::time::Duration::from_secs(10))
            .pragma("secure_delete", "ON");
        let pool =
            sqlx::sqlite::SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
        let store = Store { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for statement in SCHEMA {
            sqlx::query(*statement).execute(&mut *tx).await?;
        }
        let found: Option<String> = sqlx::query("SELECT value FROM meta WHERE key = 'schema'")
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| row.get(0));
        match found {
            Some(v) if v == SCHEMA_VERSION => {}
            Some(v) => return Err(StoreError::Schema(v)),
            None => {
                sqlx::query("INSERT INTO meta (key, value) VALUES ('schema', ?)")
                    .bind(SCHEMA_VERSION)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Stores a share for `owner`, in one transaction with the owner-name binding.
    pub async fn store_share(
        &self,
        owner: &str,
        share: &StoreShareRequest,
        now: i64,
    ) -> Result<Stored, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT OR IGNORE INTO owners (owner_name, owner, first_seen) VALUES (?, ?, ?)",
        )
        .bind(&share.owner_name)
        .bind(owner)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let bound: String = sqlx::query("SELECT owner FROM owners WHERE owner_name = ?")
            .bind(&share.owner_name)
            .fetch_one(&mut *tx)
            .await?
            .get(0);
        if bound != owner {
            return Ok(Stored::NameTaken);
        }
        let insert = sqlx::query(
            "INSERT INTO shares (share_set, owner, owner_name, keybox_id, threshold, policy, fingerprint, x, enc, ct, stored_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&share.share_set)
        .bind(owner)
        .bind(&share.owner_name)
        .bind(&share.keybox_id)
        .bind(i64::from(share.threshold))
        .bind(share.policy.name())
        .bind(&share.fingerprint)
        .bind(i64::from(share.x))
        .bind(&share.share.enc)
        .bind(&share.share.ct)
        .bind(now)
        .execute(&mut *tx)
        .await;
        match insert {
            Ok(_) => {
                tx.commit().await?;
                Ok(Stored::Added)
            }
            Err(e) if is_unique_violation(&e) => {
                drop(tx);
                let same = self
                    .share(&share.share_set)
                    .await?
                    .is_some_and(|kept| kept.owner == owner && kept.request == *share);
                Ok(if same { Stored::AlreadyThere } else { Stored::SetTaken })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// One share set.
    pub async fn share(&self, share_set: &str) -> Result<Option<StoredShare>, StoreError> {
        let row = sqlx::query(
            "SELECT owner, owner_name, keybox_id, share_set, threshold, policy, fingerprint, x, enc, ct FROM shares WHERE share_set = ?",
        )
            .bind(share_set)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| stored_share(&r)).transpose()
    }

    /// Every set stored under an owner name, oldest first.
    pub async fn shares_named(&self, owner_name: &str) -> Result<Vec<StoredShare>, StoreError> {
        let rows = sqlx::query(
            "SELECT owner, owner_name, keybox_id, share_set, threshold, policy, fingerprint, x, enc, ct FROM shares WHERE owner_name = ? ORDER BY stored_at, share_set",
        )
            .bind(owner_name)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(stored_share).collect()
    }

    /// Every set of an owner identity, with release times.
    pub async fn sets_of(&self, owner: &str) -> Result<Vec<ShareSetInfo>, StoreError> {
        let rows = sqlx::query(
            "SELECT share_set, owner_name, keybox_id, threshold, policy, fingerprint, x, stored_at, last_released FROM shares WHERE owner = ? ORDER BY stored_at, share_set",
        )
        .bind(owner)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| ShareSetInfo {
                share_set: r.get(0),
                owner_name: r.get(1),
                keybox_id: r.get(2),
                threshold: u8::try_from(r.get::<i64, _>(3)).unwrap_or(0),
                policy: policy(&r.get::<String, _>(4)),
                fingerprint: r.get(5),
                x: u8::try_from(r.get::<i64, _>(6)).unwrap_or(0),
                stored_at: r.get(7),
                last_released: r.get(8),
            })
            .collect())
    }

    /// Deletes an owner's share set; `false` if there was none.
    pub async fn delete(&self, owner: &str, share_set: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM shares WHERE owner = ? AND share_set = ?")
            .bind(owner)
            .bind(share_set)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 1 {
            // Fold the log into the database so the deleted share's old page leaves the files.
            let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&self.pool).await;
        }
        Ok(done.rows_affected() == 1)
    }

    /// Uses up a ticket id; `false` if it was used before.
    pub async fn use_ticket(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        let insert = sqlx::query("INSERT INTO used_tickets (id, used_at) VALUES (?, ?)")
            .bind(id)
            .bind(now)
            .execute(&self.pool)
            .await;
        match insert {
            Ok(_) => Ok(true),
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Notes that a set's share was released.
    pub async fn released(&self, share_set: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE shares SET last_released = ? WHERE share_set = ?")
            .bind(now)
            .bind(share_set)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

fn policy(name: &str) -> ReleasePolicy {
    // An unknown name (a newer keyward's, or an edited row) releases only to both proofs.
    name.parse().unwrap_or(ReleasePolicy::Both)
}

/// A row of the two share queries (columns in their order).
fn stored_share(r: &sqlx::sqlite::SqliteRow) -> Result<StoredShare, StoreError> {
    Ok(StoredShare {
        owner: r.try_get(0)?,
        request: StoreShareRequest {
            owner_name: r.try_get(1)?,
            keybox_id: r.try_get(2)?,
            share_set: r.try_get(3)?,
            threshold: u8::try_from(r.try_get::<i64, _>(4)?).unwrap_or(0),
            policy: policy(&r.try_get::<String, _>(5)?),
            fingerprint: r.try_get(6)?,
            x: u8::try_from(r.try_get::<i64, _>(7)?).unwrap_or(0),
            share: Sealed { enc: r.try_get(8)?, ct: r.try_get(9)? },
        },
    })
}
