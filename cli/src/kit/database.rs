//! A fresh database for one run: a SQLite file in a temporary directory of its own, or a new
//! PostgreSQL database on a server the caller names. Removed by [`Database::remove`], or on
//! drop as a best effort, unless [`Database::keep`] hands it over.

use anyhow::Context;
use flowlab::store::provision::{create_postgres_database, drop_postgres_database};
use flowlab::store::redact_url;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The PostgreSQL server that tests and benchmarks use unless told otherwise: local, user
/// `postgres`, trust authentication.
pub const DEFAULT_POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Which storage backend a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// `sqlite` or `postgres`, as benchmarks print it.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

#[derive(Debug)]
enum Place {
    SqliteDir(PathBuf),
    Postgres {
        admin_url: String,
        name: String,
    },
    /// Removed, or handed over by `keep`.
    Gone,
}

/// A database of its own; see the module documentation.
#[derive(Debug)]
pub struct Database {
    url: String,
    place: Place,
}

/// `<prefix>_<pid>_<n>_<nanos>`: unique among concurrent test processes and runs.
fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

impl Database {
    /// A fresh database named after `prefix` (letters, digits and `_`). `postgres_admin_url`
    /// is only used for [`Backend::Postgres`]: a database on that server that may create
    /// databases.
    pub async fn create(
        backend: Backend,
        prefix: &str,
        postgres_admin_url: &str,
    ) -> anyhow::Result<Self> {
        let name = unique_name(prefix);
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(&name);
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                Ok(Self {
                    url: format!("sqlite://{}", dir.join("flowlab.db").display()),
                    place: Place::SqliteDir(dir),
                })
            }
            Backend::Postgres => {
                let url = create_postgres_database(postgres_admin_url, &name)
                    .await
                    .with_context(|| {
                        format!(
                            "creating database {name} on PostgreSQL at {}",
                            redact_url(postgres_admin_url)
                        )
                    })?;
                Ok(Self {
                    url,
                    place: Place::Postgres {
                        admin_url: postgres_admin_url.to_string(),
                        name,
                    },
                })
            }
        }
    }

    /// The database URL the server takes (`sqlite://FILE` or `postgres://...`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The SQLite file, for a SQLite database.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        match &self.place {
            Place::SqliteDir(dir) => Some(dir.join("flowlab.db")),
            _ => None,
        }
    }

    /// Removes the database (its directory, for SQLite).
    pub async fn remove(mut self) -> anyhow::Result<()> {
        match std::mem::replace(&mut self.place, Place::Gone) {
            Place::SqliteDir(dir) => remove_dir(&dir),
            Place::Postgres { admin_url, name } => drop_postgres_database(&admin_url, &name)
                .await
                .with_context(|| format!("dropping database {name}")),
            Place::Gone => Ok(()),
        }
    }

    /// Keeps the database: for SQLite, returns its directory, which is then the caller's.
    pub fn keep(mut self) -> Option<PathBuf> {
        match std::mem::replace(&mut self.place, Place::Gone) {
            Place::SqliteDir(dir) => Some(dir),
            _ => None,
        }
    }
}

fn remove_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))
}

impl Drop for Database {
    /// A best effort for a database nobody removed (a test that panicked): `Drop` cannot
    /// await, so a PostgreSQL database is dropped by a thread with a runtime of its own.
    fn drop(&mut self) {
        match std::mem::replace(&mut self.place, Place::Gone) {
            Place::SqliteDir(dir) => {
                remove_dir(&dir).ok();
            }
            Place::Postgres { admin_url, name } => {
                std::thread::spawn(move || {
                    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    else {
                        return;
                    };
                    runtime
                        .block_on(drop_postgres_database(&admin_url, &name))
                        .ok();
                })
                .join()
                .ok();
            }
            Place::Gone => {}
        }
    }
}
