//! The real server embedded in this process, on a SQLite file of its own, and a small JSON
//! client for it: what `flowlab bench loop` and `flowlab demo` drive.
//!
//! The same start-up as `serve` (`App::build` on a listener bound to `127.0.0.1:0`,
//! `App::run` with a shutdown future), so everything measured goes through the real HTTP
//! API, its validation, the store and the background trainer.
//!
//! CLI code: errors are `anyhow`, and nothing a response or the file system produces is
//! unwrapped.

use crate::app::App;
use crate::config::Config;
use anyhow::{bail, Context};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Longest wait for one HTTP request. A round with `wait_for_model` waits for a whole
/// training run, so this is generous; the server's own `wait_for_model` timeout comes first.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3600);
/// Longest wait for the server (and its trainer) to stop.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(60);

/// A running in-process server on a fresh SQLite file in a directory of its own under the
/// system's temporary directory.
#[derive(Debug)]
pub struct EmbeddedServer {
    base_url: String,
    directory: PathBuf,
    database: PathBuf,
    stop: oneshot::Sender<()>,
    server: JoinHandle<std::io::Result<()>>,
}

impl EmbeddedServer {
    /// Creates `<tmp>/<prefix>-<pid>-<n>/flowlab.db`, starts the server on it and returns
    /// once it listens. `configure` adjusts the server's settings (training threads, the
    /// `wait_for_model` timeout) before it starts.
    pub async fn start(prefix: &str, configure: impl FnOnce(&mut Config)) -> anyhow::Result<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let directory = std::env::temp_dir().join(format!(
            "{prefix}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&directory)
            .with_context(|| format!("creating {}", directory.display()))?;
        let database = directory.join("flowlab.db");
        let started = Self::serve(&directory, &database, configure).await;
        if started.is_err() {
            // Nothing of value is in there yet; do not leave an empty directory behind.
            std::fs::remove_dir_all(&directory).ok();
        }
        started
    }

    async fn serve(
        directory: &Path,
        database: &Path,
        configure: impl FnOnce(&mut Config),
    ) -> anyhow::Result<Self> {
        let mut config = Config::for_database(format!("sqlite://{}", database.display()));
        configure(&mut config);
        config.validate().map_err(anyhow::Error::msg)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding 127.0.0.1:0")?;
        let app = App::build(config, listener)
            .await
            .context("starting the embedded server")?;
        let base_url = format!("http://{}", app.local_addr()?);
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run(async {
            stopped.await.ok();
        }));
        Ok(Self {
            base_url,
            directory: directory.to_path_buf(),
            database: database.to_path_buf(),
            stop,
            server,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The SQLite file.
    pub fn database_path(&self) -> &Path {
        &self.database
    }

    /// Stops the server gracefully (in-flight requests finish; a training run still going is
    /// cancelled) and, when `remove_database`, deletes its directory. Returns the directory
    /// when it was kept.
    pub async fn stop(self, remove_database: bool) -> anyhow::Result<Option<PathBuf>> {
        self.stop.send(()).ok();
        match tokio::time::timeout(SHUTDOWN_TIMEOUT, self.server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => eprintln!("warning: the embedded server stopped with an error: {e}"),
            Ok(Err(e)) => eprintln!("warning: the embedded server task failed: {e}"),
            Err(_) => {
                eprintln!("warning: the embedded server did not stop within {SHUTDOWN_TIMEOUT:?}")
            }
        }
        if remove_database {
            std::fs::remove_dir_all(&self.directory)
                .with_context(|| format!("removing {}", self.directory.display()))?;
            Ok(None)
        } else {
            Ok(Some(self.directory))
        }
    }
}

/// A JSON client of the API: every method returns the parsed body of a 2xx answer, and any
/// other status is an error that carries the server's error body.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base_url: String,
}

impl ApiClient {
    /// A client of the server at `base_url` (no trailing slash).
    pub fn new(base_url: impl Into<String>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            http,
            base_url: base_url.into(),
        })
    }

    /// `POST path` with a JSON body: the status and the body (null when it is not JSON).
    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let response = self
            .http
            .post(format!("{}{path}", self.base_url))
            .json(body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .with_context(|| format!("reading the answer to POST {path}"))?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// `GET path`: the body as text of a 2xx answer.
    pub async fn get_text(&self, path: &str) -> anyhow::Result<String> {
        let response = self
            .http
            .get(format!("{}{path}", self.base_url))
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .with_context(|| format!("reading the answer to GET {path}"))?;
        if !status.is_success() {
            bail!("GET {path} answered {}: {text}", status.as_u16());
        }
        Ok(text)
    }

    /// `POST /campaigns`; returns the new campaign's id.
    pub async fn create_campaign(&self, body: &Value) -> anyhow::Result<i64> {
        let (status, created) = self.post("/campaigns", body).await?;
        if status != 201 {
            bail!("POST /campaigns answered {status}: {created}");
        }
        created["id"]
            .as_i64()
            .with_context(|| format!("POST /campaigns: no id in {created}"))
    }

    /// Every candidate of a campaign as CSV (`GET /campaigns/{id}/candidates?format=csv`),
    /// best mean reward first, fetched page by page and joined under one header.
    pub async fn candidates_csv(&self, campaign_id: i64) -> anyhow::Result<String> {
        const PAGE: usize = 10_000;
        let mut writer = csv::Writer::from_writer(Vec::new());
        let mut offset = 0usize;
        loop {
            let path = format!(
                "/campaigns/{campaign_id}/candidates?format=csv&order=reward&limit={PAGE}&offset={offset}"
            );
            let page = self.get_text(&path).await?;
            let mut reader = csv::Reader::from_reader(page.as_bytes());
            if offset == 0 {
                writer.write_record(reader.headers().context("reading the CSV header")?)?;
            }
            let mut rows = 0usize;
            for record in reader.records() {
                writer.write_record(&record.context("reading a CSV row")?)?;
                rows += 1;
            }
            if rows < PAGE {
                break;
            }
            offset += rows;
        }
        let bytes = writer.into_inner().context("finishing the CSV")?;
        String::from_utf8(bytes).context("the CSV is not UTF-8")
    }
}
