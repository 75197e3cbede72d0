//! `TestApp`: the real application on 127.0.0.1:0 with a fresh database of its own: a SQLite
//! file in a temporary directory, or a new PostgreSQL database that is dropped afterwards.

use flowlab::app::App;
use flowlab::config::Config;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};

/// Which storage backend a test runs on.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Where the PostgreSQL server for tests is; `FLOWLAB_TEST_POSTGRES_URL` overrides it.
pub fn postgres_admin_url() -> String {
    std::env::var("FLOWLAB_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

fn unique_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "flowlab_test_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

/// A fresh database: a SQLite file in a temporary directory, or a PostgreSQL database that
/// is dropped when this value is.
pub struct TestDatabase {
    pub url: String,
    postgres_db: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    pub async fn create(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary directory");
                let url = format!("sqlite://{}", dir.path().join("flowlab.db").display());
                Self {
                    url,
                    postgres_db: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let name = unique_name();
                let admin = postgres_admin_url();
                let pool = sqlx::PgPool::connect(&admin)
                    .await
                    .expect("PostgreSQL for tests is reachable");
                sqlx::query(&format!("create database {name}"))
                    .execute(&pool)
                    .await
                    .expect("create database");
                pool.close().await;
                let base = admin
                    .rsplit_once('/')
                    .map(|(b, _)| b.to_string())
                    .unwrap_or(admin);
                Self {
                    url: format!("{base}/{name}"),
                    postgres_db: Some(name),
                    _dir: None,
                }
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(name) = self.postgres_db.take() {
            // Drop is not async: a thread with its own runtime drops the database.
            std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    if let Ok(pool) = sqlx::PgPool::connect(&postgres_admin_url()).await {
                        sqlx::query(&format!("drop database if exists {name} with (force)"))
                            .execute(&pool)
                            .await
                            .ok();
                        pool.close().await;
                    }
                });
            })
            .join()
            .ok();
        }
    }
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    /// Dropped after the server is told to stop (fields drop in declaration order).
    _database: Option<TestDatabase>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        let database = TestDatabase::create(backend).await;
        let mut app = Self::spawn_on(&database.url).await;
        app._database = Some(database);
        app
    }

    /// An app whose configuration `configure` adjusts (e.g. a short wait timeout).
    pub async fn spawn_configured(backend: Backend, configure: impl FnOnce(&mut Config)) -> Self {
        let database = TestDatabase::create(backend).await;
        let mut config = Config::for_database(database.url.clone());
        configure(&mut config);
        let mut app = Self::spawn_with_config(config).await;
        app._database = Some(database);
        app
    }

    /// Another app on an existing database (a second replica, or a restart).
    pub async fn spawn_on(database_url: &str) -> Self {
        Self::spawn_with_config(Config::for_database(database_url)).await
    }

    async fn spawn_with_config(config: Config) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let app = App::build(config, listener).await.expect("app builds");
        let address = format!("http://{}", app.local_addr().expect("address"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run(async {
            rx.await.ok();
        }));
        Self {
            address,
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            _database: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let resp = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        let resp = self
            .client
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Creates a campaign and returns its id.
    pub async fn create_campaign(&self, body: Value) -> i64 {
        let (status, created) = self.post_json("/campaigns", &body).await;
        assert_eq!(status, 201, "campaign not created: {created}");
        created["id"].as_i64().expect("campaign id")
    }

    /// Asks for a round and returns (status, body).
    pub async fn round(&self, body: Value) -> (u16, Value) {
        self.post_json("/rounds", &body).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            tx.send(()).ok();
        }
    }
}

/// Runs one async test body on SQLite and on PostgreSQL, as two tests.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$body($crate::helpers::Backend::Sqlite).await
            }
            #[tokio::test]
            async fn postgres() {
                super::$body($crate::helpers::Backend::Postgres).await
            }
        }
    };
}

/// Asserts the SPEC's error body and its code.
pub fn assert_error(body: &Value, code: &str) {
    assert_eq!(body["error"]["code"], code, "unexpected error body: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "no message: {body}"
    );
}
