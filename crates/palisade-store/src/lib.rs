//! One database handle for every Palisade crate. The backend is chosen by the URL: `sqlite:`
//! for the embedded default (PLT-2), `postgres://` for production (PLT-3). Queries are written
//! once in the portable subset both understand (`$1` placeholders, text ids, integer
//! millisecond timestamps), and each backend has its own embedded migration directory.
// Library code handles every failure; tests and examples may unwrap.
#![warn(clippy::unwrap_used)]

#[cfg(any(test, feature = "test-support"))]
pub mod test_support;

pub mod group_commit;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use sqlx;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL scheme (expected sqlite: or postgres://)")]
    UnsupportedUrl,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// The failure of a transaction shared by several callers ([`group_commit`]), as each
    /// of them sees it.
    #[error("{0}")]
    Shared(std::sync::Arc<StoreError>),
}

impl StoreError {
    /// True when the database could not be reached or had no connection to give — it is
    /// restarting, overloaded or gone for a moment — as opposed to refusing a statement: the
    /// client should come back shortly (503 with `Retry-After`), never see an error page.
    pub fn is_unavailable(&self) -> bool {
        if let StoreError::Shared(e) = self {
            return e.is_unavailable();
        }
        matches!(
            self,
            StoreError::Database(
                sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::Io(_)
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::WorkerCrashed
            )
        ) || matches!(self, StoreError::Database(sqlx::Error::Database(e))
            if is_shutting_down(e.code().as_deref()) || is_sqlite_busy(e.as_ref()))
    }

    /// True when the failure is a unique-constraint violation, which callers map to a conflict.
    pub fn is_unique_violation(&self) -> bool {
        if let StoreError::Shared(e) = self {
            return e.is_unique_violation();
        }
        matches!(self, StoreError::Database(sqlx::Error::Database(e)) if e.is_unique_violation())
    }
}

/// SQLite's "database is locked" (SQLITE_BUSY and its extended codes): a writer held the
/// database longer than the busy timeout, which an overloaded node can do.
fn is_sqlite_busy(e: &dyn sqlx::error::DatabaseError) -> bool {
    e.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
        && e.code()
            .and_then(|code| code.parse::<i32>().ok())
            .is_some_and(|code| code & 0xff == 5)
}

/// PostgreSQL's SQLSTATEs of a server going away: admin shutdown, crash shutdown, cannot
/// connect now (class 57P), connection failures (class 08).
fn is_shutting_down(code: Option<&str>) -> bool {
    code.is_some_and(|c| c.starts_with("57P") || c.starts_with("08"))
}

#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("backend", &self.backend)
            .finish()
    }
}

impl Db {
    /// Opens a pool. The URL is never included in errors or logs: it may carry a password.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        let mut options = AnyPoolOptions::new()
            .max_connections(max_connections)
            // Long enough to ride out a burst, short enough that a request during a database
            // restart is answered "come back" in seconds rather than hanging.
            .acquire_timeout(Duration::from_secs(3));
        if backend == Backend::Sqlite {
            options = options.after_connect(|conn, _| {
                Box::pin(async move {
                    // WAL lets readers proceed during a write; FULL syncs the log at every commit,
                    // so an acknowledged write (an audit entry above all) survives power loss;
                    // the busy timeout turns brief writer contention into waiting instead of
                    // "database is locked" errors.
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                         PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                    )
                    .await?;
                    Ok(())
                })
            });
        }
        let pool = options.connect(url).await?;
        Ok(Self { pool, backend })
    }

    /// Applies the embedded migrations for this backend (idempotent).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// Begins a transaction. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`): a
    /// deferred transaction that reads and then writes cannot wait for a writer that committed
    /// after its read (SQLITE_BUSY_SNAPSHOT ignores the busy timeout) and fails with "database
    /// is locked"; taking the lock first makes it wait its turn instead.
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Readiness probe: one round trip.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// `[database]` settings.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://path` or `postgres://user:password@host/db`; defaults to SQLite in `data_dir`.
    pub url: Option<DatabaseUrl>,
    pub max_connections: u32,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: None,
            max_connections: 16,
        }
    }
}

impl DatabaseSettings {
    pub fn validate(&self) -> Result<(), String> {
        if let Some(url) = &self.url {
            let u = url.expose();
            if !(u.starts_with("sqlite:")
                || u.starts_with("postgres://")
                || u.starts_with("postgresql://"))
            {
                return Err("database.url must start with sqlite: or postgres://".into());
            }
        }
        if self.max_connections == 0 {
            return Err("database.max_connections must be positive".into());
        }
        Ok(())
    }
}

/// A database URL, which may carry a password: printed and serialized with it masked.
#[derive(Clone, serde::Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    fn masked(&self) -> String {
        let Some((scheme, rest)) = self.0.split_once("://") else {
            return self.0.clone();
        };
        let Some((userinfo, host)) = rest.split_once('@') else {
            return self.0.clone();
        };
        match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:[redacted]@{host}"),
            None => self.0.clone(),
        }
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.masked())
    }
}

impl serde::Serialize for DatabaseUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.masked())
    }
}

/// Milliseconds since the Unix epoch: the one timestamp representation in the schema.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The tenant of open sign-up, dynamic registration, and everything made before tenants could
/// be created (IDN-8).
pub const DEFAULT_TENANT: &str = "default";

/// A new time-ordered identifier (UUID v7) as text.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rejects_unknown_schemes_without_echoing_the_url() {
        let err = Db::connect("mysql://user:pw@localhost/db", 1)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::UnsupportedUrl));
        assert!(!err.to_string().contains("pw"));
    }

    #[test]
    fn passwords_in_urls_are_masked() {
        let url = DatabaseUrl::new("postgres://app:s3cret@db:5432/palisade");
        assert_eq!(
            format!("{url:?}"),
            "postgres://app:[redacted]@db:5432/palisade"
        );
        assert_eq!(
            serde_json::to_string(&url).unwrap(),
            "\"postgres://app:[redacted]@db:5432/palisade\""
        );
        assert_eq!(
            format!("{:?}", DatabaseUrl::new("sqlite://x.db")),
            "sqlite://x.db"
        );
    }

    /// A write that waited out the busy timeout behind another writer is "come back
    /// shortly", not an internal error.
    #[tokio::test]
    async fn a_locked_sqlite_database_is_unavailable_for_a_moment() {
        use sqlx::Connection;
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("busy.db").display());
        let mut holder = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("CREATE TABLE t (x INTEGER)")
            .execute(&mut holder)
            .await
            .unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut holder)
            .await
            .unwrap();
        let mut waiter = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("PRAGMA busy_timeout = 0")
            .execute(&mut waiter)
            .await
            .unwrap();
        let e = sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut waiter)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("database is locked"), "{e}");
        assert!(StoreError::Database(e).is_unavailable());
        // A refused statement is still the caller's error.
        let e = sqlx::query("INSERT INTO missing VALUES (1)")
            .execute(&mut holder)
            .await
            .unwrap_err();
        assert!(!StoreError::Database(e).is_unavailable());
    }

    #[tokio::test]
    async fn ids_are_time_ordered() {
        let a = new_id();
        let b = new_id();
        assert!(a < b);
    }
}
