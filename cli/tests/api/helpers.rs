//! `TestApp`: the real application on 127.0.0.1:0 with a fresh database of its own: a SQLite
//! file in a temporary directory, or a new PostgreSQL database that is dropped afterwards.

use flowlab::config::Config;
use flowlab_cli::kit::{ApiClient, Database, EmbeddedServer, DEFAULT_POSTGRES_ADMIN_URL};
use serde_json::Value;

pub use flowlab_cli::kit::Backend;

/// Where the PostgreSQL server for tests is; `FLOWLAB_TEST_POSTGRES_URL` overrides it.
pub fn postgres_admin_url() -> String {
    std::env::var("FLOWLAB_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| DEFAULT_POSTGRES_ADMIN_URL.to_string())
}

/// Whether to skip a PostgreSQL test: only when no server was configured
/// (`FLOWLAB_TEST_POSTGRES_URL` unset) and none answers at the default address; says so once.
/// With the variable set a test never skips, so an unreachable server fails it (CI sets it).
pub async fn skip_postgres() -> bool {
    static SKIP: tokio::sync::OnceCell<bool> = tokio::sync::OnceCell::const_new();
    *SKIP
        .get_or_init(|| async {
            if std::env::var_os("FLOWLAB_TEST_POSTGRES_URL").is_some() {
                return false;
            }
            let probe = tokio::net::TcpStream::connect("127.0.0.1:5432");
            let reachable = tokio::time::timeout(std::time::Duration::from_secs(2), probe)
                .await
                .is_ok_and(|connected| connected.is_ok());
            if !reachable {
                eprintln!(
                    "no PostgreSQL at 127.0.0.1:5432 and FLOWLAB_TEST_POSTGRES_URL is unset: \
                     skipping the PostgreSQL half of the integration tests"
                );
            }
            !reachable
        })
        .await
}

/// A fresh database of the kit's, removed when this value is dropped.
pub struct TestDatabase {
    pub url: String,
    _database: Database,
}

impl TestDatabase {
    pub async fn create(backend: Backend) -> Self {
        let database = Database::create(backend, "flowlab_test", &postgres_admin_url())
            .await
            .expect("a fresh test database");
        Self {
            url: database.url().to_string(),
            _database: database,
        }
    }
}

/// The real application on 127.0.0.1:0 (the kit's embedded server) with a client of it.
pub struct TestApp {
    pub address: String,
    /// The client every helper below uses; a test may replace it (e.g. with default headers).
    pub client: reqwest::Client,
    /// Dropping it tells the server to stop; it drops before the database (fields drop in
    /// declaration order).
    _server: EmbeddedServer,
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

    /// Another app on an existing database, its configuration adjusted by `configure`.
    pub async fn spawn_on_configured(
        database_url: &str,
        configure: impl FnOnce(&mut Config),
    ) -> Self {
        let mut config = Config::for_database(database_url);
        configure(&mut config);
        Self::spawn_with_config(config).await
    }

    async fn spawn_with_config(config: Config) -> Self {
        let server = EmbeddedServer::start(config).await.expect("app starts");
        let api = ApiClient::new(server.base_url()).expect("HTTP client");
        Self {
            address: server.base_url().to_string(),
            client: api.http().clone(),
            _server: server,
            _database: None,
        }
    }

    /// The URL of this app's own test database (`None` for an app on a shared one).
    pub fn database_url(&self) -> Option<&str> {
        self._database.as_ref().map(|d| d.url.as_str())
    }

    /// Runs one SQL statement on this app's test database and returns the rows it affected:
    /// for tests that break stored data on purpose or count what the API does not show.
    pub async fn execute_sql(&self, sql: &str) -> u64 {
        execute_sql(
            self.database_url().expect("an app with its own database"),
            sql,
        )
        .await
    }

    /// The one integer a SQL query returns, on this app's test database.
    pub async fn query_i64(&self, sql: &str) -> i64 {
        let url = self.database_url().expect("an app with its own database");
        if url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(url)
                .await
                .expect("the SQLite file");
            let (n,): (i64,) = sqlx::query_as(sql).fetch_one(&pool).await.expect("a row");
            pool.close().await;
            n
        } else {
            let pool = sqlx::PgPool::connect(url).await.expect("the database");
            let (n,): (i64,) = sqlx::query_as(sql).fetch_one(&pool).await.expect("a row");
            pool.close().await;
            n
        }
    }

    /// Asserts that `/healthz` answers 200 within a second: whatever a test just did, the
    /// server is still serving.
    pub async fn assert_healthy(&self) {
        let answer = tokio::time::timeout(
            std::time::Duration::from_secs(1),
            self.client.get(self.url("/healthz")).send(),
        )
        .await
        .expect("/healthz answers within 1 s")
        .expect("a response");
        assert_eq!(answer.status().as_u16(), 200);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self.client.post(self.url(path)).json(body).send().await;
        ApiClient::read(response.expect("request"))
            .await
            .expect("response")
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await;
        ApiClient::read(response.expect("request"))
            .await
            .expect("response")
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
        let response = self.client.get(self.url(path)).send().await;
        ApiClient::read(response.expect("request"))
            .await
            .expect("response")
    }

    /// Sampling permits free right now (each draw of a round or preview holds one).
    pub fn free_sampling_permits(&self) -> usize {
        self._server.service().sampling.available_permits()
    }

    /// Waits until this server's trainer has scanned the database for campaigns to train
    /// twice more (so at least one whole scan began after the call), then until it has
    /// nothing queued or running: whatever a scan would start has then run.
    pub async fn after_a_whole_scan(&self) {
        self._server
            .service()
            .trainer
            .scans_completed(2, TRAINING_LIMIT)
            .await
            .expect("the trainer scans");
        self.train_until_idle().await;
    }

    /// Waits until this server's trainer has nothing queued or running: every label posted
    /// before has been trained on. Deterministic, unlike polling the model.
    pub async fn train_until_idle(&self) {
        self._server
            .service()
            .trainer
            .until_idle(TRAINING_LIMIT)
            .await
            .expect("training finishes");
    }
}

/// Runs one SQL statement on the database at `url` and returns the rows it affected.
pub async fn execute_sql(url: &str, sql: &str) -> u64 {
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url)
            .await
            .expect("the SQLite file");
        let done = sqlx::query(sql)
            .execute(&pool)
            .await
            .expect("the statement");
        pool.close().await;
        done.rows_affected()
    } else {
        let pool = sqlx::PgPool::connect(url).await.expect("the database");
        let done = sqlx::query(sql)
            .execute(&pool)
            .await
            .expect("the statement");
        pool.close().await;
        done.rows_affected()
    }
}

/// Longest a test waits for training to finish before it fails.
const TRAINING_LIMIT: std::time::Duration = std::time::Duration::from_secs(300);

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
                if $crate::helpers::skip_postgres().await {
                    return;
                }
                super::$body($crate::helpers::Backend::Postgres).await
            }
        }
    };
}

/// Asserts the protocol's error body and its code.
pub fn assert_error(body: &Value, code: &str) {
    assert_eq!(body["error"]["code"], code, "unexpected error body: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "no message: {body}"
    );
}
