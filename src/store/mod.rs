//! Persistence: the only module that speaks SQL. SQLite or PostgreSQL, chosen by the
//! database URL; each backend has its own migrations folder with the same numbering and its
//! own SQL beside the methods that run it.
//!
//! Imports no axum.

use crate::domain::campaign::{Campaign, CampaignSpec};
use crate::error::Error;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use std::str::FromStr;
use std::time::Duration;

/// A PostgreSQL timestamp column as RFC 3339 text in UTC, the form SQLite stores.
macro_rules! pg_ts {
    ($col:literal) => {
        concat!(
            "to_char(",
            $col,
            r#" at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"#
        )
    };
}

/// Runs the same Rust on either backend with that backend's SQL constant `$name` (each
/// store file has a `sql::sqlite` and a `sql::postgres` module of constants).
macro_rules! on_backend {
    ($store:expr, $name:ident, |$pool:ident, $sql:ident| $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite($pool) => {
                let $sql = sql::sqlite::$name;
                $body
            }
            $crate::store::Pool::Postgres($pool) => {
                let $sql = sql::postgres::$name;
                $body
            }
        }
    };
}

mod campaigns;
pub mod dashboard;
mod labels;
mod postgres;
pub mod provision;
mod rounds;
mod sqlite;
pub mod training;

pub use campaigns::ObjectRow;
pub use rounds::{
    CandidateRow, CandidateStatus, LabelRow, OnTaken, PageOrder, PagePosition, PageQuery,
    PageStart, ProposalOutcome, ProposedValue, RoundDraft, RoundInsert, RoundRow, RoundTally,
    Stats, ROUND_FIGURES_LIMIT, UNKNOWN_SOURCE,
};

// The storage layer's errors in the service's terms; here, so that sqlx stays in the store.
impl From<sqlx::Error> for Error {
    /// A unique-key violation means a concurrent writer stored the same thing first: a
    /// conflict the caller may retry, told in the API's words (the database's own message,
    /// with its constraint and table names, stays in the log). Anything else is a storage
    /// failure.
    fn from(e: sqlx::Error) -> Self {
        if let Some(database) = e.as_database_error().filter(|d| d.is_unique_violation()) {
            tracing::debug!(error = %database, "unique violation");
            Self::Conflict(
                "a concurrent request stored the same thing first; retry to read what it stored"
                    .into(),
            )
        } else {
            Self::Storage(Box::new(e))
        }
    }
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Self::Storage(Box::new(e))
    }
}

/// The database: a connection pool on one of the two backends, kept inside the store so
/// that every statement the server runs is one of the store's methods.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
}

#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The database URL with any password replaced, fit for logs.
pub fn redact_url(url: &str) -> String {
    let (main, query) = match url.split_once('?') {
        Some((main, query)) => (main, Some(query)),
        None => (url, None),
    };
    let main = match (main.find("://"), main.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &main[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &main[..scheme + 3],
                    &creds[..colon],
                    &main[at..]
                ),
                None => main.to_string(),
            }
        }
        _ => main.to_string(),
    };
    let Some(query) = query else {
        return main;
    };
    // `?password=` (and `sslpassword=`) carry a secret as well as the user-info part does.
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.to_ascii_lowercase().ends_with("password") => {
                format!("{key}=***")
            }
            _ => pair.to_string(),
        })
        .collect();
    format!("{main}?{}", query.join("&"))
}

/// Rebuilds SQLite's `candidates` table when its `source` check predates `elite+policy`.
/// SQLite cannot alter a CHECK constraint, and the rebuild needs foreign keys off (labels
/// refer to candidates), which cannot be switched inside a migration's transaction: so it
/// runs here, on one connection, in a transaction of its own, and only while needed.
async fn widen_sqlite_sources(pool: &sqlx::SqlitePool) -> Result<(), Error> {
    let mut conn = pool.acquire().await?;
    let schema: Option<String> = sqlx::query_scalar(
        "select sql from sqlite_master where type = 'table' and name = 'candidates'",
    )
    .fetch_optional(&mut *conn)
    .await?;
    if schema.is_none_or(|sql| sql.contains("'elite+policy'")) {
        return Ok(());
    }
    sqlx::raw_sql("pragma foreign_keys = off")
        .execute(&mut *conn)
        .await?;
    let rebuilt = async {
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        sqlx::raw_sql(include_str!("sqlite_widen_sources.sql"))
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }
    .await;
    sqlx::raw_sql("pragma foreign_keys = on")
        .execute(&mut *conn)
        .await?;
    rebuilt?;
    Ok(())
}

impl Store {
    /// Connects to `url` (`sqlite://...` or `postgres://...`). SQLite files are created when
    /// missing and run in WAL mode with a busy timeout, so readers never block the writer.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .connect_with(options)
                .await?;
            Ok(Self {
                pool: Pool::Sqlite(pool),
            })
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await?;
            Ok(Self {
                pool: Pool::Postgres(pool),
            })
        } else {
            Err(Error::invalid(
                "database_url",
                "must start with sqlite: or postgres:",
            ))
        }
    }

    /// Applies the pending migrations of this backend.
    pub async fn migrate(&self) -> Result<(), Error> {
        match &self.pool {
            Pool::Sqlite(pool) => {
                sqlx::migrate!("./migrations/sqlite").run(pool).await?;
                widen_sqlite_sources(pool).await?;
            }
            Pool::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        match &self.pool {
            Pool::Sqlite(pool) => sqlx::query("select 1").execute(pool).await.is_ok(),
            Pool::Postgres(pool) => sqlx::query("select 1").execute(pool).await.is_ok(),
        }
    }

    #[tracing::instrument(skip_all)]
    pub async fn insert_campaign(&self, spec: &CampaignSpec) -> Result<Campaign, Error> {
        let json = serde_json::to_string(spec).map_err(|e| Error::Storage(Box::new(e)))?;
        let (id, created_at) = match &self.pool {
            Pool::Sqlite(pool) => sqlite::insert_campaign(pool, &spec.name, &json).await?,
            Pool::Postgres(pool) => postgres::insert_campaign(pool, &spec.name, &json).await?,
        };
        Ok(Campaign {
            id,
            spec: spec.clone(),
            created_at,
        })
    }

    #[tracing::instrument(skip_all, fields(campaign_id = id))]
    pub async fn campaign(&self, id: i64) -> Result<Campaign, Error> {
        let row = match &self.pool {
            Pool::Sqlite(pool) => sqlite::campaign(pool, id).await?,
            Pool::Postgres(pool) => postgres::campaign(pool, id).await?,
        };
        row.ok_or_else(|| Error::NotFound {
            what: "campaign",
            id: id.to_string(),
        })?
        .into_campaign()
    }

    /// A page of the campaigns, oldest first: `limit` of them after the first `offset`.
    #[tracing::instrument(skip_all)]
    pub async fn campaigns(&self, limit: i64, offset: i64) -> Result<Vec<Campaign>, Error> {
        let rows = match &self.pool {
            Pool::Sqlite(pool) => sqlite::campaigns(pool, limit, offset).await?,
            Pool::Postgres(pool) => postgres::campaigns(pool, limit, offset).await?,
        };
        rows.into_iter().map(CampaignRow::into_campaign).collect()
    }
}

/// A campaign as both backends return it.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct CampaignRow {
    id: i64,
    spec: String,
    created_at: String,
}

impl CampaignRow {
    fn into_campaign(self) -> Result<Campaign, Error> {
        let spec: CampaignSpec = serde_json::from_str(&self.spec).map_err(|e| {
            Error::Storage(format!("campaign {} has an unreadable spec: {e}", self.id).into())
        })?;
        Ok(Campaign {
            id: self.id,
            spec,
            created_at: self.created_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    /// Leases compare times on the database's clock: it must be Unix milliseconds like the
    /// stored expiries (a wrong unit or epoch would make every lease live for ever or never).
    #[tokio::test]
    async fn the_database_clock_counts_unix_milliseconds() {
        let mut urls = vec!["sqlite::memory:".to_string()];
        urls.extend(std::env::var("FLOWLAB_TEST_POSTGRES_URL").ok());
        let wall_ms = || {
            let since = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("after 1970");
            i64::try_from(since.as_millis()).expect("fits")
        };
        for url in urls {
            let store = super::Store::connect(&url).await.expect("connects");
            let before = wall_ms();
            let database = store.clock_ms().await.expect("the clock");
            let after = wall_ms();
            // Both clocks are this machine's here; allow for the query and rounding.
            assert!(
                (before - 1000..=after + 1000).contains(&database),
                "{url}: {before} <= {database} <= {after}"
            );
        }
    }

    /// A database last migrated before conservative search keeps its candidates, labels and
    /// id sequence through the rebuild that widens the `source` check, and then stores the
    /// new source.
    #[tokio::test]
    async fn an_older_sqlite_database_is_rebuilt_to_accept_elite_policy() {
        let path =
            std::env::temp_dir().join(format!("flowlab-widen-sources-{}.db", std::process::id()));
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        let url = format!("sqlite://{}", path.display());
        let store = super::Store::connect(&url).await.expect("connects");
        let super::Pool::Sqlite(pool) = &store.pool else {
            panic!("a SQLite store");
        };
        let mut older = sqlx::migrate!("./migrations/sqlite");
        older.migrations = std::borrow::Cow::Owned(
            older
                .migrations
                .iter()
                .filter(|m| m.version <= 6)
                .cloned()
                .collect(),
        );
        older.run(pool).await.expect("the older migrations");
        sqlx::raw_sql(
            "insert into campaigns (name, spec) values ('old', '{}');
             insert into candidates (campaign_id, value, status, source)
                 values (1, 'x', 'labelled', 'local'), (1, 'y', 'pending', 'policy'),
                        (1, 'z', 'pending', 'policy');
             delete from candidates where id = 3;
             insert into labels (campaign_id, candidate_id, reward) values (1, 1, 0.5);",
        )
        .execute(pool)
        .await
        .expect("older rows");
        let refused = sqlx::query(
            "insert into candidates (campaign_id, value, status, source)
             values (1, 'w', 'pending', 'elite+policy')",
        )
        .execute(pool)
        .await;
        assert!(refused.is_err(), "the old check refuses the new source");

        store.migrate().await.expect("migrates");
        store
            .migrate()
            .await
            .expect("migrating again changes nothing");
        let counted = store.stats(1).await.expect("the backfilled counts");
        assert_eq!(
            (
                counted.candidates,
                counted.labelled,
                counted.pending,
                counted.objects
            ),
            (2, 1, 1, 1),
            "the migration counts what the older database holds"
        );
        let rows: Vec<(i64, String, Option<String>)> =
            sqlx::query_as("select id, value, source from candidates order by id")
                .fetch_all(pool)
                .await
                .expect("candidates");
        assert_eq!(
            rows,
            vec![
                (1, "x".to_string(), Some("local".to_string())),
                (2, "y".to_string(), Some("policy".to_string())),
            ]
        );
        let indexes: Vec<String> = sqlx::query_scalar(
            "select name from sqlite_master where type = 'index' and tbl_name = 'candidates'
             and name not like 'sqlite_autoindex%' order by name",
        )
        .fetch_all(pool)
        .await
        .expect("indexes");
        assert_eq!(
            indexes,
            [
                "candidates_campaign_id",
                "candidates_entity",
                "candidates_reward",
                "candidates_round"
            ],
            "the rebuild makes every index of the migrations again"
        );
        let id: i64 = sqlx::query_scalar(
            "insert into candidates (campaign_id, value, status, source)
             values (1, 'w', 'pending', 'elite+policy') returning id",
        )
        .fetch_one(pool)
        .await
        .expect("the new source is stored");
        assert_eq!(id, 4, "ids continue the old sequence");
        let orphans: Vec<(String, i64, String, i64)> = sqlx::query_as("pragma foreign_key_check")
            .fetch_all(pool)
            .await
            .expect("the check");
        assert!(orphans.is_empty(), "{orphans:?}");
        let label_of: i64 = sqlx::query_scalar("select candidate_id from labels")
            .fetch_one(pool)
            .await
            .expect("the label");
        assert_eq!(label_of, 1);
        let refused = sqlx::query(
            "insert into labels (campaign_id, candidate_id, reward) values (1, 99, 1.0)",
        )
        .execute(pool)
        .await;
        assert!(refused.is_err(), "foreign keys are enforced again");
        pool.close().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    #[test]
    fn redact_url_hides_the_password_only() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://flowlab.db"), "sqlite://flowlab.db");
    }

    #[test]
    fn redact_url_hides_a_password_in_the_query_too() {
        assert_eq!(
            redact_url("postgres://u@h/db?sslmode=require&password=secret&application_name=x"),
            "postgres://u@h/db?sslmode=require&password=***&application_name=x"
        );
        assert_eq!(
            redact_url("postgres://u:a@h/db?PASSWORD=b"),
            "postgres://u:***@h/db?PASSWORD=***"
        );
        assert_eq!(
            redact_url("postgres://h/db?sslmode=disable"),
            "postgres://h/db?sslmode=disable"
        );
    }
}
