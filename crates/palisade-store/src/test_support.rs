//! Store fixtures: every store test runs against both backends (PLT-3). PostgreSQL comes from
//! `PALISADE_TEST_POSTGRES_URL`, which the README's test command sets after starting a
//! throwaway server; each call creates a fresh database so tests never share state.

use crate::{Backend, Db};

/// A migrated database of the given backend plus whatever keeps it alive.
pub struct TestDb {
    pub db: Db,
    _dir: Option<tempfile::TempDir>,
}

pub async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
    let db = Db::connect(&url, 4).await.expect("open sqlite");
    db.migrate().await.expect("migrate sqlite");
    TestDb {
        db,
        _dir: Some(dir),
    }
}

/// URL of a fresh, empty PostgreSQL database.
pub async fn postgres_url() -> String {
    let admin_url = std::env::var("PALISADE_TEST_POSTGRES_URL").expect(
        "PALISADE_TEST_POSTGRES_URL is not set: run the suite with scripts/test, \
         which starts a throwaway PostgreSQL server",
    );
    let admin = Db::connect(&admin_url, 1)
        .await
        .expect("connect to test postgres");
    let name = format!("palisade_test_{}", uuid::Uuid::now_v7().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(admin.pool())
        .await
        .expect("create test database");
    admin.close().await;
    match admin_url.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => panic!("PALISADE_TEST_POSTGRES_URL must end with a database name"),
    }
}

pub async fn postgres() -> TestDb {
    let db = Db::connect(&postgres_url().await, 4)
        .await
        .expect("connect to fresh database");
    db.migrate().await.expect("migrate postgres");
    TestDb { db, _dir: None }
}

pub async fn open(backend: Backend) -> TestDb {
    match backend {
        Backend::Sqlite => sqlite().await,
        Backend::Postgres => postgres().await,
    }
}

/// Declares one async test per backend from a function `async fn(Db)`.
#[macro_export]
macro_rules! both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let t = $crate::test_support::open($crate::Backend::Sqlite).await;
                super::$name(t.db.clone()).await;
            }
            #[tokio::test]
            async fn postgres() {
                let t = $crate::test_support::open($crate::Backend::Postgres).await;
                super::$name(t.db.clone()).await;
            }
        }
    };
}
