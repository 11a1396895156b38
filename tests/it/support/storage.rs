//! Where a test rollbot keeps its state: a fresh PostgreSQL database or embedded file per test.
use super::*;

/// Slack's published reference data the tests read (payload samples, the manifest schema, the
/// signing test vector), kept in the repository so that a clone tests itself.
pub fn slack_samples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/slack")
}

pub fn postgres_base_url() -> String {
    std::env::var("ROLLBOT_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A database of its own for one test, dropped when the test ends, pass or fail.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub fn new() -> TestDb {
        let name = format!("rollbot_test_{}", uuid::Uuid::new_v4().simple());
        TestDb {
            url: format!("{}/{name}", postgres_base_url()),
            name,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin = format!("{}/postgres", postgres_base_url());
        let name = self.name.clone();
        // Drop runs outside any runtime we may block, so use a thread with its own.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async move {
                    if let Ok((client, connection)) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await {
                        tokio::spawn(connection);
                        let _ = client
                            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                            .await;
                    }
                })
        })
        .join();
    }
}

/// A database of its own for a test's steps to work on; dropped with the returned TestDb.
pub async fn scratch_database() -> TestDb {
    let db = TestDb::new();
    connect(&format!("{}/postgres", postgres_base_url()))
        .await
        .batch_execute(&format!("CREATE DATABASE \"{}\"", db.name))
        .await
        .unwrap();
    db
}

pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL must be running at 127.0.0.1:5432 (.ci/run starts it)");
    tokio::spawn(connection);
    client
}

/// Which store a story runs on. Stories run on PostgreSQL unless `on_embedded_store` runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Embedded,
}

thread_local! {
    pub(super) static BACKEND: std::cell::Cell<Backend> = const { std::cell::Cell::new(Backend::Postgres) };
}

/// Runs a `#[tokio::test]` story with every `Rollbot` it starts on the embedded store. The
/// story's runtime runs on this thread, so it sees the choice.
pub fn on_embedded_store(story: fn()) {
    BACKEND.with(|b| b.set(Backend::Embedded));
    let outcome = std::panic::catch_unwind(story);
    BACKEND.with(|b| b.set(Backend::Postgres));
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Generates, for each story named, a test that runs it again on the embedded store.
#[macro_export]
macro_rules! also_on_embedded_store {
    ($($story:ident),* $(,)?) => {
        mod on_embedded_store {
            $(
                #[test]
                fn $story() {
                    $crate::support::on_embedded_store(super::$story);
                }
            )*
        }
    };
}

/// The store behind a test's rollbot, removed when the test ends.
pub enum TestStorage {
    Postgres(TestDb),
    Embedded(tempfile::TempDir),
}

impl TestStorage {
    pub fn new(backend: Backend) -> TestStorage {
        match backend {
            Backend::Postgres => TestStorage::Postgres(TestDb::new()),
            Backend::Embedded => TestStorage::Embedded(tempfile::tempdir().unwrap()),
        }
    }

    pub fn embedded_file(&self) -> Option<PathBuf> {
        match self {
            TestStorage::Embedded(dir) => Some(dir.path().join(rollbot::store::embedded::FILE_NAME)),
            TestStorage::Postgres(_) => None,
        }
    }

    /// Opens the store (migrated), reaching PostgreSQL through `proxy_port` if given.
    pub async fn open(&self, proxy_port: Option<u16>) -> Store {
        let store = match self {
            TestStorage::Postgres(db) => {
                let url = match proxy_port {
                    Some(port) => db.url.replace(":5432/", &format!(":{port}/")),
                    None => db.url.clone(),
                };
                Store::connect(&url)
                    .await
                    .expect("PostgreSQL must be running at 127.0.0.1:5432 (.ci/run starts it)")
            }
            TestStorage::Embedded(_) => {
                assert!(proxy_port.is_none(), "only PostgreSQL is reached through a proxy");
                Store::open_embedded(&self.embedded_file().unwrap()).unwrap()
            }
        };
        store.migrate().await.unwrap();
        store
    }

    /// The single number `sql` selects, read beside rollbot (SQLite understands `->>` too).
    pub async fn count(&self, sql: &str) -> i64 {
        match self {
            TestStorage::Postgres(db) => connect(&db.url).await.query_one(sql, &[]).await.unwrap().get(0),
            TestStorage::Embedded(_) => {
                let reader = rusqlite::Connection::open_with_flags(
                    self.embedded_file().unwrap(),
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                )
                .unwrap();
                reader
                    .query_row(sql, [], |r| r.get(0))
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
            }
        }
    }
}
