//! A JSON client of the API: the status and the parsed body of every answer, plus the few
//! calls that the benchmarks, the demo and the tests all make.

use anyhow::{bail, Context};
use serde_json::Value;
use std::time::Duration;

/// Longest wait for one HTTP request. A round with `wait_for_model` waits for a whole
/// training run, so this is generous; the server's own `wait_for_model` timeout comes first.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3600);

/// A client of one server; cheap to clone (the connection pool is shared).
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

    /// The underlying reqwest client, for requests with headers of their own.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `base_url` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// A response's status and its body as JSON (null when it is not JSON).
    pub async fn read(response: reqwest::Response) -> anyhow::Result<(u16, Value)> {
        let status = response.status().as_u16();
        let bytes = response.bytes().await.context("reading a response body")?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let response = self
            .http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        Self::read(response).await
    }

    /// `POST path` with a body of the given content type (CSV, or JSON already serialised).
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> anyhow::Result<(u16, Value)> {
        let response = self
            .http
            .post(self.url(path))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        Self::read(response).await
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        let response = self
            .http
            .get(self.url(path))
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        Self::read(response).await
    }

    /// `GET path`: the body as text of a 2xx answer; any other status is an error.
    pub async fn get_text(&self, path: &str) -> anyhow::Result<String> {
        let response = self
            .http
            .get(self.url(path))
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
