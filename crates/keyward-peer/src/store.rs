//! The peer's store: SQLite in its data folder (connected, created 0600 and migrated with
//! keyward-service's store helpers). Shares are kept as the owner sealed them (the peer's own key
//! opens them; nothing here opens without it), with the metadata a release needs. An owner name
//! is admitted once, with an operator's enrollment token, for the identity that presented it;
//! from then on only that identity stores shares under the name, so nobody else can place
//! shares a release ticket for that name would return. Each owner has a quota of share sets and
//! bytes.

use crate::slot::ReleasePolicy;
use keyward_service::store::{
    self as helpers, Backend, Schema, USED_STATEMENTS, Use, record_use, unique,
};
use sqlx::{AnyPool, Row};

pub use keyward_service::store::StoreError;

use crate::api::{ReleasePurpose, ShareSetInfo, StoreShareRequest};
use crate::seal::Sealed;

const SCHEMA: Schema = Schema {
    store: "peer",
    statements: &[
        "CREATE TABLE IF NOT EXISTS owners (owner_name TEXT PRIMARY KEY, owner TEXT NOT NULL, first_seen BIGINT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS shares (share_set TEXT PRIMARY KEY, owner TEXT NOT NULL, owner_name TEXT NOT NULL, keybox_id TEXT NOT NULL, threshold BIGINT NOT NULL, policy TEXT NOT NULL, fingerprint TEXT NOT NULL, x BIGINT NOT NULL, enc TEXT NOT NULL, ct TEXT NOT NULL, stored_at BIGINT NOT NULL, last_released BIGINT)",
        "CREATE INDEX IF NOT EXISTS shares_by_owner_name ON shares (owner_name)",
        "CREATE INDEX IF NOT EXISTS shares_by_owner ON shares (owner)",
        "CREATE INDEX IF NOT EXISTS owners_by_key ON owners (owner)",
        // What a `tpm-quote` set is released against (a table of its own, so a peer store of an
        // older keyward gains it without a column change).
        "CREATE TABLE IF NOT EXISTS share_attestations (share_set TEXT PRIMARY KEY, attestation TEXT NOT NULL)",
        USED_STATEMENTS,
        // Single-use release tickets as a peer of version 1 recorded them; folded into
        // used_statements below.
        "CREATE TABLE IF NOT EXISTS used_tickets (id TEXT PRIMARY KEY, used_at BIGINT NOT NULL)",
        "INSERT INTO used_statements (id, kind, used_at) SELECT id, 'a peer release ticket', used_at FROM used_tickets WHERE id NOT IN (SELECT id FROM used_statements)",
        "DELETE FROM used_tickets",
        // Releases counted per set and purpose, a use apart from a drill. A peer of an older
        // keyward kept only the last release's time, in `shares.last_released`: it counts as
        // one use here, and the column is emptied.
        "CREATE TABLE IF NOT EXISTS share_releases (share_set TEXT NOT NULL, purpose TEXT NOT NULL, times BIGINT NOT NULL, last_at BIGINT NOT NULL, PRIMARY KEY (share_set, purpose))",
        "INSERT INTO share_releases (share_set, purpose, times, last_at) SELECT share_set, 'use', 1, last_released FROM shares WHERE last_released IS NOT NULL AND share_set NOT IN (SELECT share_set FROM share_releases WHERE purpose = 'use')",
        "UPDATE shares SET last_released = NULL WHERE last_released IS NOT NULL",
    ],
    postgres_statements: &[],
    sqlite_statements: &[],
    version: "1",
    // "kwpeer" in ASCII.
    advisory_lock: 0x6b77_7065_6572,
};

/// How much one owner may keep at a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Share sets (a re-share holds two for a moment; a crashed one may leave more).
    pub sets: u32,
    /// Bytes of sealed shares.
    pub bytes: u64,
}

impl Default for Quota {
    /// 8 sets and 64 KiB: a share of the largest key (4096 bytes) is about 5.5 KiB sealed.
    fn default() -> Self {
        Quota { sets: 8, bytes: 64 * 1024 }
    }
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
    /// The owner name is not admitted here yet and no usable enrollment token came with it.
    NotAdmitted,
    /// The enrollment token (or takeover) was used already.
    TokenUsed,
    /// A takeover of a name bound to another identity than the one it replaces.
    TakeoverStale,
    /// The share set exists with other contents or another owner.
    SetTaken,
    /// The owner is at its quota.
    OverQuota,
}

/// An operator's statement that admits an owner name for an identity, already verified: an
/// enrollment token (a name new here) or a takeover (a name moved to a replacement machine).
#[derive(Debug, Clone, Copy)]
pub struct Admission<'a> {
    /// The statement's single-use id.
    pub token_id: &'a str,
    /// A takeover: the identity it replaces (the name moves from it to this one, and from no
    /// other).
    pub replaces: Option<&'a str>,
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
    pool: AnyPool,
}

/// `SELECT` of the columns [`stored_share`] reads, then the rest of the query.
macro_rules! select_shares {
    ($rest:literal) => {
        concat!(
            "SELECT owner, owner_name, keybox_id, share_set, threshold, policy, fingerprint, x, enc, ct, \
             (SELECT attestation FROM share_attestations a WHERE a.share_set = shares.share_set) FROM shares ",
            $rest
        )
    };
}

impl Store {
    /// Opens (creating if needed, mode 0600) the database at `path`.
    pub async fn open(path: &std::path::Path) -> Result<Self, StoreError> {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let (pool, backend) = helpers::connect(&url, 4).await?;
        helpers::migrate(&pool, backend, &SCHEMA).await?;
        Ok(Store { pool })
    }

    /// Stores a share for `owner` — admitting its name with `admission` if the name is new
    /// here — in one transaction with the name binding, the token's use and the quota check.
    pub async fn store_share(
        &self,
        owner: &str,
        share: &StoreShareRequest,
        admission: Option<Admission<'_>>,
        quota: Quota,
        now: i64,
    ) -> Result<Stored, StoreError> {
        let mut tx = helpers::begin_write(&self.pool, Backend::Sqlite).await?;
        let bound: Option<String> = sqlx::query("SELECT owner FROM owners WHERE owner_name = $1")
            .bind(&share.owner_name)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.get(0));
        match (bound, admission) {
            (Some(bound), Some(Admission { replaces: Some(replaces), .. }))
                if bound != owner && bound != replaces =>
            {
                return Ok(Stored::TakeoverStale);
            }
            (Some(bound), Some(admission)) if bound != owner && admission.replaces.is_some() => {
                // The name moves; the sets stored under it stay, still bound to the identity
                // that sealed them (only tickets release those now), until re-shared.
                let used = record_use(&mut tx, admission.token_id, "a takeover", 1, now).await?;
                if used != Use::Recorded(1) {
                    return Ok(Stored::TokenUsed);
                }
                sqlx::query("UPDATE owners SET owner = $1 WHERE owner_name = $2")
                    .bind(owner)
                    .bind(&share.owner_name)
                    .execute(&mut *tx)
                    .await?;
                tracing::info!(owner_name = %share.owner_name, "owner name taken over");
            }
            (Some(bound), _) if bound != owner => return Ok(Stored::NameTaken),
            (Some(_), _) => {}
            (None, Some(admission)) if admission.replaces.is_some() => {
                return Ok(Stored::NotAdmitted);
            }
            (None, None) => return Ok(Stored::NotAdmitted),
            (None, Some(admission)) => {
                let used =
                    record_use(&mut tx, admission.token_id, "an enrollment token", 1, now).await?;
                if used != Use::Recorded(1) {
                    return Ok(Stored::TokenUsed);
                }
                let insert = sqlx::query(
                    "INSERT INTO owners (owner_name, owner, first_seen) VALUES ($1, $2, $3)",
                )
                .bind(&share.owner_name)
                .bind(owner)
                .bind(now);
                if !unique(insert.execute(&mut *tx).await)? {
                    return Ok(Stored::NameTaken);
                }
            }
        }
        // Counted by the identity that placed them: after a takeover the old identity's sets
        // (kept until re-shared) do not stop the new one placing its own.
        let held = sqlx::query(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(enc) + LENGTH(ct)), 0) FROM shares WHERE owner = $1",
        )
        .bind(owner)
        .fetch_one(&mut *tx)
        .await?;
        let (sets, bytes): (i64, i64) = (held.get(0), held.get(1));
        let adding =
            u64::try_from(share.share.enc.len() + share.share.ct.len()).unwrap_or(u64::MAX);
        let over = u64::try_from(sets).unwrap_or(u64::MAX) >= u64::from(quota.sets)
            || u64::try_from(bytes).unwrap_or(u64::MAX).saturating_add(adding) > quota.bytes;
        let insert = sqlx::query(
            "INSERT INTO shares (share_set, owner, owner_name, keybox_id, threshold, policy, fingerprint, x, enc, ct, stored_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
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
        .bind(now);
        let inserted = if over { Ok(false) } else { unique(insert.execute(&mut *tx).await) };
        match inserted? {
            true => {
                if let Some(attestation) = &share.attestation {
                    let text = serde_json::to_string(attestation).map_err(attestation_error)?;
                    sqlx::query(
                        "INSERT INTO share_attestations (share_set, attestation) VALUES ($1, $2)",
                    )
                    .bind(&share.share_set)
                    .bind(text)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(Stored::Added)
            }
            false => {
                drop(tx);
                let kept = self.share(&share.share_set).await?;
                let same = kept.is_some_and(|kept| {
                    kept.owner == owner
                        && kept.request == StoreShareRequest { enrollment: None, ..share.clone() }
                });
                Ok(if same {
                    Stored::AlreadyThere
                } else if over {
                    Stored::OverQuota
                } else {
                    Stored::SetTaken
                })
            }
        }
    }

    /// One share set.
    pub async fn share(&self, share_set: &str) -> Result<Option<StoredShare>, StoreError> {
        let row = sqlx::query(select_shares!("WHERE share_set = $1"))
            .bind(share_set)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| stored_share(&r)).transpose()
    }

    /// Every set stored under an owner name, oldest first.
    pub async fn shares_named(&self, owner_name: &str) -> Result<Vec<StoredShare>, StoreError> {
        let rows =
            sqlx::query(select_shares!("WHERE owner_name = $1 ORDER BY stored_at, share_set"))
                .bind(owner_name)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(stored_share).collect()
    }

    /// Whether `owner` (a public key) is bound to an owner name here.
    pub async fn owner_known(&self, owner: &str) -> Result<bool, StoreError> {
        let found = sqlx::query("SELECT 1 FROM owners WHERE owner = $1 LIMIT 1")
            .bind(owner)
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.is_some())
    }

    /// The identity an owner name is bound to now, if any.
    pub async fn holder_of(&self, owner_name: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query("SELECT owner FROM owners WHERE owner_name = $1")
            .bind(owner_name)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.get(0)))
    }

    /// Every set stored under the owner names bound to an identity (a takeover's too), with
    /// release times.
    pub async fn sets_of(&self, owner: &str) -> Result<Vec<ShareSetInfo>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.share_set, s.owner_name, s.keybox_id, s.threshold, s.policy, s.fingerprint, s.x, s.stored_at, u.last_at, u.times, d.last_at, d.times FROM shares s LEFT JOIN share_releases u ON u.share_set = s.share_set AND u.purpose = 'use' LEFT JOIN share_releases d ON d.share_set = s.share_set AND d.purpose = 'drill' WHERE s.owner_name IN (SELECT owner_name FROM owners WHERE owner = $1) ORDER BY s.stored_at, s.share_set",
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
                releases: Some(count(r.get(9))),
                last_drilled: r.get(10),
                drills: Some(count(r.get(11))),
            })
            .collect())
    }

    /// Deletes a share set stored under an owner name bound to `owner`; `false` if there was
    /// none.
    pub async fn delete(&self, owner: &str, share_set: &str) -> Result<bool, StoreError> {
        let mut tx = helpers::begin_write(&self.pool, Backend::Sqlite).await?;
        let done = sqlx::query("DELETE FROM shares WHERE owner_name IN (SELECT owner_name FROM owners WHERE owner = $1) AND share_set = $2")
            .bind(owner)
            .bind(share_set)
            .execute(&mut *tx)
            .await?;
        let deleted = done.rows_affected() == 1;
        if deleted {
            for statement in [
                "DELETE FROM share_attestations WHERE share_set = $1",
                "DELETE FROM share_releases WHERE share_set = $1",
            ] {
                sqlx::query(statement).bind(share_set).execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        if deleted {
            // So the deleted share's old page leaves the files.
            helpers::fold_log(&self.pool, Backend::Sqlite).await;
        }
        Ok(deleted)
    }

    /// Records one use of a release ticket that allows `allowed`; `false` if every use is
    /// taken.
    pub async fn use_ticket(&self, id: &str, allowed: u32, now: i64) -> Result<bool, StoreError> {
        // One process owns the file, so a lost race only means the other use went first: try
        // again, a few times.
        for _ in 0..8 {
            let mut tx = helpers::begin_write(&self.pool, Backend::Sqlite).await?;
            match record_use(&mut tx, id, "a peer release ticket", allowed, now).await? {
                Use::Recorded(_) => {
                    tx.commit().await?;
                    return Ok(true);
                }
                Use::UsedUp => return Ok(false),
                Use::Lost => continue,
            }
        }
        Err(StoreError::Contended("a release ticket's use"))
    }

    /// Counts a release of a set's share for `purpose`, at `now`.
    pub async fn released(
        &self,
        share_set: &str,
        purpose: ReleasePurpose,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO share_releases (share_set, purpose, times, last_at) VALUES ($1, $2, 1, $3) ON CONFLICT (share_set, purpose) DO UPDATE SET times = share_releases.times + 1, last_at = excluded.last_at")
            .bind(share_set)
            .bind(purpose.name())
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// A count as the store keeps it (none is 0).
fn count(times: Option<i64>) -> u64 {
    times.and_then(|t| u64::try_from(t).ok()).unwrap_or(0)
}

/// A stored attestation that does not read (or write) as JSON.
fn attestation_error(error: serde_json::Error) -> StoreError {
    StoreError::Database(sqlx::Error::Protocol(format!("a share's attestation: {error}")))
}

fn policy(name: &str) -> ReleasePolicy {
    // An unknown name (a newer keyward's, or an edited row) releases only to both proofs.
    name.parse().unwrap_or(ReleasePolicy::Both)
}

/// A row of the two share queries (columns in [`select_shares`] order).
fn stored_share(r: &sqlx::any::AnyRow) -> Result<StoredShare, StoreError> {
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
            enrollment: None,
            attestation: match r.try_get::<Option<String>, _>(10)? {
                Some(text) => Some(serde_json::from_str(&text).map_err(attestation_error)?),
                None => None,
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 24.1: a peer of an older keyward kept only the time of a set's last release; opened
    /// by this one, that time reads as one use (never as a drill), and opening it again counts
    /// nothing twice.
    #[test]
    fn an_older_peers_last_release_reads_as_one_use_once() {
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("peer.db");
            let store = Store::open(&path).await.expect("open");
            for statement in [
                "INSERT INTO owners (owner_name, owner, first_seen) VALUES ('pve-07', 'owner-key', 1)",
                "INSERT INTO shares (share_set, owner, owner_name, keybox_id, threshold, policy, fingerprint, x, enc, ct, stored_at, last_released) VALUES ('set-1', 'owner-key', 'pve-07', 'kb', 3, 'either', 'fp', 1, 'e', 'c', 1, 1000)",
            ] {
                sqlx::query(statement).execute(&store.pool).await.expect("an older peer's rows");
            }
            store.pool.close().await;
            for _ in 0..2 {
                let store = Store::open(&path).await.expect("open again");
                let sets = store.sets_of("owner-key").await.expect("sets");
                let set = &sets[0];
                assert_eq!((set.releases, set.last_released), (Some(1), Some(1000)), "{set:?}");
                assert_eq!((set.drills, set.last_drilled), (Some(0), None), "{set:?}");
                store.pool.close().await;
            }
        });
    }
}
