//! What the hub's and the peers' stores share: connecting (SQLite in a data folder, created
//! 0600 with its write-ahead log; PostgreSQL by URL), creating the schema and checking its
//! version, the unique-violation idiom every race-safe write relies on, and counting the uses
//! of operator statements.
//!
//! Both stores speak to sqlx's `Any` driver with one SQL dialect (TEXT and BIGINT columns, `$N`
//! parameters), so the same statements run on SQLite and PostgreSQL.

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyConnection, AnyPool, Row};

/// Why a store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database said no.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A write kept losing races.
    #[error("database busy: {0} kept conflicting")]
    Contended(&'static str),
    /// The database was made by a newer keyward.
    #[error(
        "the {store} database has schema version {found}, this keyward reads {expected}; upgrade keyward"
    )]
    Schema {
        /// `hub` or `peer`.
        store: &'static str,
        /// The version found.
        found: String,
        /// The version this build writes.
        expected: &'static str,
    },
    /// The database file could not be created or made private.
    #[error("cannot prepare the database file {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A file, owned by one process.
    Sqlite,
    /// A server several processes share.
    Postgres,
}

impl Backend {
    /// The backend of `url` (`sqlite:…` or anything else, which sqlx reads as PostgreSQL).
    pub fn of(url: &str) -> Self {
        if url.starts_with("sqlite:") { Backend::Sqlite } else { Backend::Postgres }
    }
}

/// A store's schema: statements that create it (idempotent, run at every start), the version it
/// records, and the PostgreSQL advisory lock that serializes its creation.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    /// `hub` or `peer`, for messages.
    pub store: &'static str,
    /// `CREATE … IF NOT EXISTS` statements for both backends.
    pub statements: &'static [&'static str],
    /// Statements for PostgreSQL only.
    pub postgres_statements: &'static [&'static str],
    /// Statements for SQLite only.
    pub sqlite_statements: &'static [&'static str],
    /// The version recorded in `meta`.
    pub version: &'static str,
    /// The advisory lock id on PostgreSQL.
    pub advisory_lock: i64,
}

/// The file of a `sqlite://PATH?…` URL.
fn sqlite_file(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    rest.split('?').next().filter(|p| !p.is_empty() && *p != ":memory:")
}

/// Makes sure a SQLite database file exists with mode 0600 before SQLite opens it (SQLite
/// gives its -wal and -shm files the database file's mode), and takes group and other bits off
/// files an older keyward made.
fn prepare_sqlite_file(url: &str) -> Result<(), StoreError> {
    let Some(path) = sqlite_file(url) else { return Ok(()) };
    let fail = |source| StoreError::File { path: path.to_string(), source };
    if !Path::new(path).exists() && !url.contains("mode=ro") {
        match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(fail(e)),
        }
    }
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{path}{suffix}");
        if let Ok(meta) = std::fs::metadata(&file)
            && meta.permissions().mode() & 0o077 != 0
            && !url.contains("mode=ro")
        {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                .map_err(fail)?;
        }
    }
    Ok(())
}

/// Connects to `url` with at most `max_connections`: SQLite in WAL mode with full syncs (an
/// acknowledged write survives a power cut), a busy wait, and `secure_delete` (an erased row is
/// overwritten in the file, not left in a free page).
pub async fn connect(url: &str, max_connections: u32) -> Result<(AnyPool, Backend), StoreError> {
    install_default_drivers();
    let backend = Backend::of(url);
    if backend == Backend::Sqlite {
        prepare_sqlite_file(url)?;
    }
    let pool = AnyPoolOptions::new()
        .max_connections(max_connections)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
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
    Ok((pool, backend))
}

/// Connects to an existing database without changing it (one connection, no schema work).
pub async fn connect_read_only(url: &str) -> Result<(AnyPool, Backend), StoreError> {
    install_default_drivers();
    let pool = AnyPoolOptions::new().max_connections(1).connect(url).await?;
    Ok((pool, Backend::of(url)))
}

/// Creates the schema if it is missing and checks the version it records. On PostgreSQL the
/// creation runs under an advisory lock, in one transaction: processes starting at the same
/// instant would otherwise race `CREATE … IF NOT EXISTS` into a unique violation in the catalog.
pub async fn migrate(pool: &AnyPool, backend: Backend, schema: &Schema) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(schema.advisory_lock)
            .execute(&mut *tx)
            .await?;
    }
    let own = match backend {
        Backend::Sqlite => schema.sqlite_statements,
        Backend::Postgres => schema.postgres_statements,
    };
    for statement in schema.statements.iter().chain(own) {
        sqlx::query(*statement).execute(&mut *tx).await?;
    }
    sqlx::query("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        .execute(&mut *tx)
        .await?;
    let found: Option<String> = sqlx::query("SELECT value FROM meta WHERE key = 'schema'")
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| row.get(0));
    match found {
        Some(v) if v == schema.version => {}
        Some(found) => {
            return Err(StoreError::Schema {
                store: schema.store,
                found,
                expected: schema.version,
            });
        }
        None => {
            sqlx::query("INSERT INTO meta (key, value) VALUES ('schema', $1)")
                .bind(schema.version)
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// A transaction that will write. On SQLite it takes the write lock at once (`BEGIN
/// IMMEDIATE`): a deferred transaction that read first could not upgrade once another writer
/// committed after its read (SQLite answers busy at once, without waiting), so writers queue at
/// the start instead. PostgreSQL's plain `BEGIN` already queues row by row.
pub async fn begin_write(
    pool: &AnyPool,
    backend: Backend,
) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
    match backend {
        Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
        Backend::Postgres => pool.begin().await,
    }
}

/// Whether `e` is a unique-key violation: the lost race of a concurrent writer.
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// `true` if a statement went through, `false` if a unique key refused it.
pub fn unique<T>(result: Result<T, sqlx::Error>) -> Result<bool, sqlx::Error> {
    match result {
        Ok(_) => Ok(true),
        Err(e) if is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// A pause before retry `attempt` (1-based) of a write that lost a race: random, up to
/// `attempt` milliseconds, so racing writers spread out instead of colliding again at once.
pub async fn back_off(attempt: u32) {
    let jitter = keyward_core::random::below(1000).unwrap_or(500);
    let micros = u64::from(attempt.min(20)) * u64::from(jitter);
    tokio::time::sleep(std::time::Duration::from_micros(micros)).await;
}

/// Folds SQLite's write-ahead log into the database and empties it, so the old page of an
/// erased row does not linger there (`secure_delete` has zeroed it in the database). Best
/// effort: a reader may hold the log. PostgreSQL keeps dead row versions until VACUUM.
pub async fn fold_log(pool: &AnyPool, backend: Backend) {
    if backend == Backend::Sqlite {
        let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(pool).await;
    }
}

/// The table of used statements both stores keep (its rows are what [`record_use`] counts).
pub const USED_STATEMENTS: &str = "CREATE TABLE IF NOT EXISTS used_statements (id TEXT PRIMARY KEY, kind TEXT NOT NULL, used_at BIGINT NOT NULL)";

/// How recording one use of a statement ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Recorded: this is use `n` (from 1) of the allowed.
    Recorded(u32),
    /// Every allowed use is taken.
    UsedUp,
    /// Another writer recorded a use at the same moment; run the transaction again.
    Lost,
}

/// Records one use of statement `id` (of `kind`), which allows `allowed` uses, inside the
/// caller's transaction. Use 1 is the row `id` (so statements recorded before uses were counted
/// still count), use n the row `id#n`: the primary key makes two writers that race for the same
/// use collide, never both succeed. (At most [`MAX_TICKET_USES`](crate::statement::MAX_TICKET_USES)
/// uses are counted.)
pub async fn record_use(
    conn: &mut AnyConnection,
    id: &str,
    kind: &str,
    allowed: u32,
    now: i64,
) -> Result<Use, sqlx::Error> {
    // The rows its uses would have, looked up by primary key (no pattern match: collations
    // order punctuation differently, and a prefix match cannot use the index everywhere).
    let allowed = allowed.clamp(1, crate::statement::MAX_TICKET_USES);
    let row_of = |n: u32| if n == 1 { id.to_string() } else { format!("{id}#{n}") };
    let placeholders: Vec<String> = (1..=allowed).map(|n| format!("${n}")).collect();
    let sql =
        format!("SELECT COUNT(*) FROM used_statements WHERE id IN ({})", placeholders.join(", "));
    let mut count = sqlx::query(sqlx::AssertSqlSafe(sql));
    for n in 1..=allowed {
        count = count.bind(row_of(n));
    }
    let taken: i64 = count.fetch_one(&mut *conn).await?.get(0);
    let taken = u32::try_from(taken).unwrap_or(u32::MAX);
    if taken >= allowed {
        return Ok(Use::UsedUp);
    }
    let n = taken + 1;
    let row = row_of(n);
    let insert = sqlx::query("INSERT INTO used_statements (id, kind, used_at) VALUES ($1, $2, $3)")
        .bind(row)
        .bind(kind)
        .bind(now);
    Ok(if unique(insert.execute(conn).await)? { Use::Recorded(n) } else { Use::Lost })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sqlite_url_names_its_file() {
        assert_eq!(sqlite_file("sqlite:///var/lib/hub.db?mode=rwc"), Some("/var/lib/hub.db"));
        assert_eq!(sqlite_file("sqlite:hub.db"), Some("hub.db"));
        assert_eq!(sqlite_file("postgres://u@h/db"), None);
    }

    #[test]
    fn a_new_database_and_its_log_are_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("t.db");
        let url = format!("sqlite://{}?mode=rwc", file.display());
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
        runtime.block_on(async {
            let (pool, _) = connect(&url, 1).await.expect("connect");
            sqlx::query("CREATE TABLE t (x TEXT)").execute(&pool).await.expect("create");
            sqlx::query("INSERT INTO t VALUES ('x')").execute(&pool).await.expect("insert");
            for suffix in ["", "-wal", "-shm"] {
                let path = format!("{}{suffix}", file.display());
                let mode = std::fs::metadata(&path).expect("exists").permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{path} is {mode:o}");
            }
        });
    }
}
