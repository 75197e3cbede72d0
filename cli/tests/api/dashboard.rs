//! The dashboard in a real browser: headless Chromium, driven over WebDriver, against the
//! real server on a fresh database. A campaign is played through the API, then the pages
//! must agree with the API (counts and best value on the index and the dashboard's tiles,
//! every chart's points and values), load without a console error or a failed request,
//! follow new labels without a reload, load nothing from anywhere but this server, fit a
//! phone's width, ask for the token when one is configured without ever putting it in a URL
//! or the server's log, and answer an unknown campaign with a 404 page.
//!
//! The tests also take screenshots of the campaign list and a dashboard at a desktop and a
//! phone width. They go to a temporary directory, or, with `FLOWLAB_SCREENSHOTS=DIR` (a path
//! relative to the repository root, e.g. `docs/screenshots`), to that directory.
//!
//! Needs `chromium` and `chromedriver` (Debian: `apt-get install chromium chromium-driver`).
//! Without them the tests say so once and pass, unless `CI` is set: then they fail.

use crate::helpers::{Backend, TestApp, TestDatabase};
use crate::on_both_backends;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use flowlab_cli::kit::ApiClient;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "dash-token-0b6e2f71";

/// A wrong token a user might type: it must not be logged either.
const WRONG_TOKEN: &str = "not-the-token-7c1d";

/// Longest a test waits for the page to show something.
const PAGE_LIMIT: Duration = Duration::from_secs(30);

/// The screenshots' viewports: (name, width, height, mobile).
const VIEWPORTS: [(&str, u32, u32, bool); 2] =
    [("desktop", 1280, 900, false), ("phone", 390, 844, true)];

/// One browser at a time: the suite runs tests in parallel, and several Chromiums on a
/// small machine make every test slow.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// An executable on `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("an address").port()
}

/// A command chromedriver adds to WebDriver: the entries of one of the logs that
/// `goog:loggingPrefs` enables (`browser`: the console and failed loads; `performance`:
/// the DevTools network events), each read once.
#[derive(Debug)]
struct ReadLog(&'static str);

impl WebDriverCompatibleCommand for ReadLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({ "type": self.0 }).to_string()),
        )
    }
}

/// A Chrome DevTools Protocol command, through chromedriver.
#[derive(Debug)]
struct DevTools {
    cmd: &'static str,
    params: Value,
}

impl WebDriverCompatibleCommand for DevTools {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({ "cmd": self.cmd, "params": self.params });
        (http::Method::POST, Some(body.to_string()))
    }
}

/// Headless Chromium behind a chromedriver of its own; both stop when this is dropped.
struct Browser {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// A fresh browser, or `None` when Chromium is missing and `CI` is not set.
    async fn start() -> Option<Self> {
        let (Some(chromium), Some(chromedriver)) = (on_path("chromium"), on_path("chromedriver"))
        else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but chromium or chromedriver is missing \
                 (apt-get install -y chromium chromium-driver)"
            );
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                eprintln!(
                    "chromium or chromedriver not on PATH: skipping the dashboard's browser \
                     tests (apt-get install chromium chromium-driver)"
                )
            });
            return None;
        };
        let port = free_port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().expect("a profile directory");
        let client = connect(port, &chromium, profile.path()).await;
        Some(Self {
            client,
            driver,
            _profile: profile,
        })
    }

    /// Ends the session (Chromium exits), then the driver.
    async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A WebDriver session with headless Chromium, once the driver listens.
async fn connect(port: u16, chromium: &Path, profile: &Path) -> Client {
    let capabilities = json!({
        "browserName": "chrome",
        "goog:loggingPrefs": {"browser": "ALL", "performance": "ALL"},
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--window-size=1280,1000", "--hide-scrollbars",
                format!("--user-data-dir={}", profile.display()),
            ],
        },
    });
    let Value::Object(capabilities) = capabilities else {
        unreachable!("an object literal")
    };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let start = Instant::now();
    loop {
        let attempt = ClientBuilder::new(connector.clone())
            .capabilities(capabilities.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await;
        match attempt {
            Ok(client) => return client,
            Err(e) if start.elapsed() < PAGE_LIMIT => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("no WebDriver session: {e}"),
        }
    }
}

/// The entries of a chromedriver log since it was last read.
async fn read_log(b: &Client, log: &'static str) -> Vec<Value> {
    let entries = b.issue_cmd(ReadLog(log)).await.expect("the log");
    entries.as_array().expect("a list of entries").clone()
}

/// The console's errors and the failed loads since the log was last read: the browser
/// log's SEVERE entries.
async fn console_errors(b: &Client) -> Vec<String> {
    read_log(b, "browser")
        .await
        .iter()
        .filter(|e| e["level"] == "SEVERE")
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The page's requests as the Performance API saw them: (URL, HTTP status), the page
/// itself first. Chromium reports each status (`responseStatus`).
async fn page_requests(b: &Client) -> Vec<(String, i64)> {
    let entries = b
        .execute(
            "return performance.getEntriesByType('navigation')
                 .concat(performance.getEntriesByType('resource'))
                 .map(e => [e.name, e.responseStatus === undefined ? -1 : e.responseStatus])",
            vec![],
        )
        .await
        .expect("the performance entries");
    entries
        .as_array()
        .expect("a list")
        .iter()
        .map(|e| {
            (
                e[0].as_str().expect("a URL").to_string(),
                e[1].as_i64().expect("a status"),
            )
        })
        .collect()
}

/// Asserts that the page `what` loaded with no console error and no failed request: not in
/// the browser's log (read from its start, or from the last check), and not in the
/// Performance API's entries, whose page entry must show a 200.
async fn assert_loaded_cleanly(b: &Client, what: &str) {
    let errors = console_errors(b).await;
    assert!(errors.is_empty(), "{what}: console errors {errors:#?}");
    let requests = page_requests(b).await;
    let Some((page, status)) = requests.first() else {
        panic!("{what}: no navigation entry")
    };
    assert_eq!(*status, 200, "{what}: the page {page} answered {status}");
    let failed: Vec<&(String, i64)> = requests
        .iter()
        .filter(|(_, status)| !(200..400).contains(status))
        .collect();
    assert!(failed.is_empty(), "{what}: failed requests {failed:?}");
}

/// Polls `check` every 100 ms until it gives a value; panics with `what` after
/// [`PAGE_LIMIT`].
async fn wait_until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(start.elapsed() < PAGE_LIMIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The text of the first element matching `css`, if there is one.
async fn text_of(browser: &Client, css: &str) -> Option<String> {
    let element = browser.find(Locator::Css(css)).await.ok()?;
    element.text().await.ok()
}

/// An attribute of the first element matching `css`, if there is one.
async fn attribute(browser: &Client, css: &str, name: &str) -> Option<String> {
    let element = browser.find(Locator::Css(css)).await.ok()?;
    element.attr(name).await.ok().flatten()
}

/// The JSON API of a server, with the client's default headers (a bearer token or none).
#[derive(Clone)]
struct Api {
    client: reqwest::Client,
    address: String,
}

impl Api {
    fn of(app: &TestApp) -> Self {
        Self {
            client: app.client.clone(),
            address: app.address.clone(),
        }
    }

    /// A client sending `Authorization: Bearer TOKEN` on every request.
    fn with_token(address: &str) -> Self {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            "authorization",
            format!("Bearer {TOKEN}").parse().expect("a header"),
        );
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .expect("a client");
        Self {
            client,
            address: address.to_string(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self.client.post(self.url(path)).json(body).send().await;
        ApiClient::read(response.expect("request"))
            .await
            .expect("response")
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.client.get(self.url(path)).send().await;
        ApiClient::read(response.expect("request"))
            .await
            .expect("response")
    }

    async fn create_campaign(&self, body: Value) -> i64 {
        let (status, created) = self.post_json("/campaigns", &body).await;
        assert_eq!(status, 201, "campaign not created: {created}");
        created["id"].as_i64().expect("campaign id")
    }

    /// `stats` of `GET /campaigns/{id}`.
    async fn stats(&self, campaign_id: i64) -> Value {
        let (status, campaign) = self.get(&format!("/campaigns/{campaign_id}")).await;
        assert_eq!(status, 200, "{campaign}");
        campaign["stats"].clone()
    }

    /// `GET /campaigns/{id}/model`.
    async fn model(&self, campaign_id: i64) -> Value {
        let (status, model) = self.get(&format!("/campaigns/{campaign_id}/model")).await;
        assert_eq!(status, 200, "{model}");
        model
    }
}

/// A small grid campaign that trains quickly, with a proxy whose predictions rounds store.
fn grid_campaign(name: &str) -> Value {
    json!({"name": name, "space": {"type": "grid", "dims": 2, "size": 6},
           "model": {"hidden": 16},
           "training": {"steps": 20, "batch_size": 8, "proxy": {"steps": 50, "members": 3}}})
}

/// The reward of a grid point: `x + y`.
fn grid_reward(value: &Value) -> f64 {
    value
        .as_array()
        .expect("a grid point")
        .iter()
        .map(|x| x.as_f64().expect("a coordinate"))
        .sum()
}

/// What a played round left for the charts to show: per candidate labelled with a reward
/// and proposed with a prediction, (predicted mean, reward).
type Predictions = Vec<(f64, f64)>;

/// Asks for a round of `size` (after the model trained on every label, with `wait`) and
/// labels it: reward `x + y`, the first candidate failed.
async fn play_round(api: &Api, campaign_id: i64, size: usize, wait: bool) -> Predictions {
    let (status, round) = api
        .post_json(
            "/rounds",
            &json!({"campaign_id": campaign_id, "batch_size": size, "wait_for_model": wait}),
        )
        .await;
    assert_eq!(status, 201, "{round}");
    let mut predictions = Vec::new();
    let labels: Vec<Value> = round["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let id = c["id"].as_i64().expect("candidate id");
            if i == 0 {
                json!({"candidate_id": id, "failed": true, "error": "the assay broke"})
            } else {
                let reward = grid_reward(&c["value"]);
                if let Some(mean) = c["proxy"]["mean"].as_f64() {
                    predictions.push((mean, reward));
                }
                json!({"candidate_id": id, "reward": reward})
            }
        })
        .collect();
    let (status, body) = api.post_json("/labels", &json!({ "labels": labels })).await;
    assert_eq!(status, 200, "{body}");
    predictions
}

/// The number of points the progress chart has, once it is at least `at_least`.
async fn chart_points(browser: &Client, at_least: i64) -> i64 {
    wait_until("the progress chart's points", || async {
        attribute(browser, "#chart-progress", "data-points")
            .await
            .and_then(|p| p.parse::<i64>().ok())
            .filter(|p| *p >= at_least)
    })
    .await
}

/// A number shown on a page (`–` is none), e.g. `12.5000` or `1.000e-6`.
fn shown_number(text: &str) -> Option<f64> {
    text.trim().parse().ok()
}

/// Asserts that a reward shown with four decimals is the API's `expected`.
fn assert_shown_reward(shown: &str, expected: f64, what: &str) {
    let value = shown_number(shown).unwrap_or_else(|| panic!("{what}: {shown:?} is no number"));
    assert!(
        (value - expected).abs() <= 5e-5 * expected.abs().max(1.0),
        "{what}: {shown} shown, the API says {expected}"
    );
}

async fn pages_follow_the_campaign(backend: Backend) {
    let _one = ONE_BROWSER.lock().await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = TestApp::spawn(backend).await;
    let api = Api::of(&app);
    let id = api.create_campaign(grid_campaign("dashboard")).await;
    for _ in 0..3 {
        play_round(&api, id, 4, false).await;
    }
    // Every label trained on: no run starts between the API's answer and the page's.
    app.train_until_idle().await;
    let before = api.stats(id).await;
    let api_best = before["best"]["reward"].as_f64().expect("a best reward");
    let b = &browser.client;

    // The index: the campaign's counts and best value as the API reports them.
    b.goto(&app.url("/")).await.expect("the index loads");
    let row = format!("tr[data-campaign-id=\"{id}\"]");
    for count in ["candidates", "labelled", "failed", "pending"] {
        let shown = text_of(b, &format!("{row} td.{count}")).await;
        assert_eq!(
            shown.as_deref(),
            Some(before[count].to_string().as_str()),
            "{count} on the index"
        );
    }
    let best = text_of(b, &format!("{row} td.best"))
        .await
        .expect("the best value");
    assert_shown_reward(&best, api_best, "best on the index");
    assert_loaded_cleanly(b, "the index").await;
    b.find(Locator::Css(&format!("{row} a")))
        .await
        .expect("a link to the dashboard")
        .click()
        .await
        .expect("the link opens");

    // The dashboard: a point per round, and the API's counts and best value in the tiles.
    let rounds = before["rounds"].as_i64().expect("rounds");
    assert_eq!(rounds, 3);
    assert_eq!(chart_points(b, 1).await, rounds);
    for count in ["candidates", "labelled", "failed", "pending", "rounds"] {
        let shown = text_of(b, &format!("#tiles .value.{count}")).await;
        assert_eq!(
            shown.as_deref(),
            Some(before[count].to_string().as_str()),
            "the {count} tile"
        );
    }
    let exact: f64 = attribute(b, "#best-value", "data-value")
        .await
        .expect("the best value")
        .parse()
        .expect("a number");
    assert!((exact - api_best).abs() < 1e-9, "{exact} vs {api_best}");
    let best = text_of(b, "#tiles .value.best")
        .await
        .expect("the best tile");
    assert_shown_reward(&best, api_best, "the best tile");
    let drawn = b
        .execute(
            "return window.flowlabCharts['chart-progress'].data[0].length",
            vec![],
        )
        .await
        .expect("the chart's data");
    assert_eq!(drawn, json!(rounds), "uPlot draws one point per round");
    assert_loaded_cleanly(b, "the dashboard").await;

    // New labels show up without a reload: the marker set on this page survives.
    b.execute("window.flowlabMarker = 'same page'; return true", vec![])
        .await
        .expect("a marker");
    play_round(&api, id, 4, false).await;
    let after = api.stats(id).await;
    assert_eq!(chart_points(b, 4).await, 4);
    let labelled = after["labelled"].to_string();
    wait_until("the new labelled count", || async {
        (text_of(b, "#tiles .value.labelled").await.as_deref() == Some(labelled.as_str()))
            .then_some(())
    })
    .await;
    let marker = b
        .execute("return window.flowlabMarker || null", vec![])
        .await
        .expect("the marker");
    assert_eq!(marker, json!("same page"), "the page was reloaded");
    assert_loaded_cleanly(b, "the dashboard after an update").await;

    // Nothing came from anywhere but this server.
    let resources = page_requests(b).await;
    assert!(
        resources.len() >= 5,
        "the page, scripts, styles, icon and data: {resources:?}"
    );
    for (url, _) in &resources {
        assert!(
            url.starts_with(&app.address),
            "{url} is not from the server"
        );
    }

    // An unknown campaign is a 404 page, and the checks above would have seen it.
    b.goto(&app.url("/campaigns/99999/dashboard"))
        .await
        .expect("the page loads");
    let problem = text_of(b, "#problem").await.expect("a message");
    assert!(problem.contains("no campaign 99999"), "{problem}");
    let errors = console_errors(b).await;
    assert!(
        errors.len() == 1 && errors[0].contains("404"),
        "the browser log reports the 404: {errors:?}"
    );
    assert_eq!(page_requests(b).await[0].1, 404);
    let response = app
        .client
        .get(app.url("/campaigns/99999/dashboard"))
        .send()
        .await
        .expect("a response");
    assert_eq!(response.status().as_u16(), 404);
    browser.close().await;
}
on_both_backends!(pages_follow_the_campaign, pages_follow_the_campaign);

/// Every chart's data as uPlot holds it: (series labels, data arrays) by container id.
async fn drawn_charts(b: &Client) -> BTreeMap<String, (Vec<String>, Vec<Vec<Option<f64>>>)> {
    let charts = b
        .execute(
            "return Object.fromEntries(Object.entries(window.flowlabCharts).map(
                 ([id, c]) => [id, [c.series.map(s => String(s.label)), c.data]]))",
            vec![],
        )
        .await
        .expect("the charts");
    charts
        .as_object()
        .expect("charts by id")
        .iter()
        .map(|(id, chart)| {
            let labels = chart[0]
                .as_array()
                .expect("labels")
                .iter()
                .map(|l| l.as_str().expect("a label").to_string())
                .collect();
            let data = chart[1]
                .as_array()
                .expect("data")
                .iter()
                .map(|series| {
                    series
                        .as_array()
                        .expect("a series")
                        .iter()
                        .map(Value::as_f64)
                        .collect()
                })
                .collect();
            (id.clone(), (labels, data))
        })
        .collect()
}

/// Asserts two series are equal, nulls included, up to rounding.
fn assert_series(drawn: &[Option<f64>], expected: &[Option<f64>], what: &str) {
    assert_eq!(
        drawn.len(),
        expected.len(),
        "{what}: {drawn:?} vs {expected:?}"
    );
    for (d, e) in drawn.iter().zip(expected) {
        let same = match (d, e) {
            (Some(d), Some(e)) => (d - e).abs() <= 1e-9 * e.abs().max(1.0),
            (None, None) => true,
            _ => false,
        };
        assert!(same, "{what}: {drawn:?} vs {expected:?}");
    }
}

/// The screenshots' directory: `FLOWLAB_SCREENSHOTS` under the repository root for the
/// SQLite run (one set is enough), else a temporary one.
fn screenshot_dir(backend: Backend) -> (PathBuf, Option<tempfile::TempDir>) {
    match std::env::var_os("FLOWLAB_SCREENSHOTS") {
        Some(dir) if backend == Backend::Sqlite => {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir);
            std::fs::create_dir_all(&dir).expect("the screenshot directory");
            (dir, None)
        }
        _ => {
            let temp = tempfile::tempdir().expect("a temporary directory");
            (temp.path().to_path_buf(), Some(temp))
        }
    }
}

/// Shows the current page at each of [`VIEWPORTS`] and saves `DIR/{page}-{viewport}.png`,
/// checking that the file decodes as a PNG of that size and that nothing on the page is
/// wider than the viewport (a phone would have to scroll sideways).
async fn screenshots(b: &Client, dir: &Path, page: &str) {
    for (viewport, width, height, mobile) in VIEWPORTS {
        let metrics = json!({"width": width, "height": height, "deviceScaleFactor": 1,
                             "mobile": mobile});
        b.issue_cmd(DevTools {
            cmd: "Emulation.setDeviceMetricsOverride",
            params: metrics,
        })
        .await
        .expect("the viewport");
        // The charts follow the resize event, which the browser dispatches before it draws
        // the next frame: wait for two frames to be drawn, not for a guessed time.
        b.execute_async(
            "const done = arguments[arguments.length - 1];
             requestAnimationFrame(() => requestAnimationFrame(() => done(null)));",
            vec![],
        )
        .await
        .expect("two frames drawn");
        // A phone shows a page wider than itself zoomed out: its layout is wider than the
        // screen, and the text too small to read.
        let widths = b
            .execute(
                "return [window.innerWidth, document.documentElement.scrollWidth]",
                vec![],
            )
            .await
            .expect("the page's width");
        assert_eq!(
            widths,
            json!([width, width]),
            "{page} on a {viewport}: [layout, content] width"
        );
        let png = b.screenshot().await.expect("a screenshot");
        let decoder = png::Decoder::new(std::io::Cursor::new(png.as_slice()));
        let mut reader = decoder.read_info().expect("a PNG header");
        let mut pixels = vec![0; reader.output_buffer_size().expect("a frame size")];
        let frame = reader.next_frame(&mut pixels).expect("the image decodes");
        assert_eq!(
            (frame.width, frame.height),
            (width, height),
            "{page} on a {viewport}"
        );
        let path = dir.join(format!("{page}-{viewport}.png"));
        std::fs::write(&path, &png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    b.issue_cmd(DevTools {
        cmd: "Emulation.clearDeviceMetricsOverride",
        params: json!({}),
    })
    .await
    .expect("the window's own viewport");
}

async fn every_chart_draws_what_the_api_reports(backend: Backend) {
    let _one = ONE_BROWSER.lock().await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = TestApp::spawn(backend).await;
    let api = Api::of(&app);
    // Other campaigns for the list to show.
    api.create_campaign(json!({"name": "promoters", "space": {"type": "sequence",
                                "alphabet": ["A", "C", "G", "T"], "min_length": 8, "max_length": 8}}))
        .await;
    let id = api.create_campaign(grid_campaign("grid 6×6")).await;
    // A first round from the uniform policy, then rounds from a trained model whose proxy
    // predicted each candidate.
    let mut predictions = play_round(&api, id, 12, false).await;
    assert!(predictions.is_empty(), "no proxy before training");
    for _ in 0..4 {
        predictions.extend(play_round(&api, id, 6, true).await);
    }
    app.train_until_idle().await;
    let stats = api.stats(id).await;
    let model = api.model(id).await;

    // What the API says each chart holds.
    let rounds = stats["rounds"].as_i64().expect("rounds") as usize;
    assert_eq!(rounds, 5);
    let mut per_round = model["rounds"].as_array().expect("rounds").clone();
    per_round.reverse(); // The API lists the newest first, the charts the oldest.
    assert_eq!(
        per_round.len(),
        rounds,
        "every round is in the model's window"
    );
    let numbers: Vec<Option<f64>> = per_round.iter().map(|r| r["number"].as_f64()).collect();
    let mut runs = model["history"].as_array().expect("history").clone();
    runs.reverse();
    assert!(runs.len() >= 2, "{model}");
    let scattered: i64 = per_round
        .iter()
        .map(|r| r["prospective"]["n"].as_i64().expect("n"))
        .sum();
    assert_eq!(
        scattered as usize,
        predictions.len(),
        "the API counts every labelled candidate proposed with a prediction"
    );
    assert!(scattered >= 10, "{model}");

    let b = &browser.client;
    b.goto(&app.url(&format!("/campaigns/{id}/dashboard")))
        .await
        .expect("the dashboard loads");
    let expected_points = [
        ("chart-progress", rounds),
        ("chart-failed", rounds),
        ("chart-diversity", rounds),
        ("chart-prospective", rounds),
        ("chart-sources", rounds),
        ("chart-runs", runs.len()),
        ("chart-proxy", predictions.len()),
    ];
    for (chart, points) in expected_points {
        let shown = wait_until(&format!("{chart}'s points"), || async {
            attribute(b, &format!("#{chart}"), "data-points")
                .await
                .and_then(|p| p.parse::<usize>().ok())
                .filter(|p| *p > 0)
        })
        .await;
        assert_eq!(shown, points, "{chart}: points drawn vs the API's count");
    }
    let charts = drawn_charts(b).await;
    for (chart, points) in expected_points {
        let (_, data) = charts
            .get(chart)
            .unwrap_or_else(|| panic!("{chart} is not drawn: {:?}", charts.keys()));
        for (i, series) in data.iter().enumerate() {
            assert_eq!(series.len(), points, "{chart}, series {i}");
        }
    }
    assert_loaded_cleanly(b, "the dashboard").await;

    // Rounds: the API's round numbers, its failed shares, sources and prospective figures,
    // and its best value at the end of the progress line. (Diversity needs the distances
    // of the space, which the API does not give: its points are counted above.)
    let round_charts = [
        "chart-progress",
        "chart-failed",
        "chart-diversity",
        "chart-prospective",
        "chart-sources",
    ];
    for chart in round_charts {
        assert_series(&charts[chart].1[0], &numbers, &format!("{chart}'s rounds"));
    }
    let failed: Vec<Option<f64>> = per_round
        .iter()
        .map(|r| {
            let failed = r["failed"].as_f64().expect("failed");
            let measured = failed + r["labelled"].as_f64().expect("labelled");
            (measured > 0.0).then(|| 100.0 * failed / measured)
        })
        .collect();
    assert_series(&charts["chart-failed"].1[1], &failed, "failed shares");
    let (labels, data) = &charts["chart-prospective"];
    for (figure, label) in [
        ("spearman", "Spearman ρ"),
        ("coverage_1sigma", "1σ coverage"),
    ] {
        let at = labels.iter().position(|l| l == label).expect(label);
        let expected: Vec<Option<f64>> = per_round
            .iter()
            .map(|r| r["prospective"][figure].as_f64())
            .collect();
        assert_series(&data[at], &expected, figure);
    }
    let (labels, data) = &charts["chart-sources"];
    let mut sources: Vec<&String> = labels[1..].iter().collect();
    sources.sort();
    let mut api_sources: Vec<String> = per_round
        .iter()
        .flat_map(|r| r["sources"].as_object().expect("sources").keys().cloned())
        .collect();
    api_sources.sort();
    api_sources.dedup();
    assert_eq!(
        sources,
        api_sources.iter().collect::<Vec<_>>(),
        "a series per source"
    );
    for (at, source) in labels.iter().enumerate().skip(1) {
        let expected: Vec<Option<f64>> = per_round
            .iter()
            .map(|r| Some(r["sources"][source].as_f64().unwrap_or(0.0)))
            .collect();
        assert_series(&data[at], &expected, source);
    }
    let best_so_far = &charts["chart-progress"].1[1];
    let api_best = stats["best"]["reward"].as_f64();
    assert_series(&best_so_far[rounds - 1..], &[api_best], "the best so far");

    // Training runs: the model's history, oldest first.
    let (_, data) = &charts["chart-runs"];
    let ids: Vec<Option<f64>> = runs.iter().map(|r| r["id"].as_f64()).collect();
    let losses: Vec<Option<f64>> = runs.iter().map(|r| r["loss"].as_f64()).collect();
    assert_series(&data[0], &ids, "run ids");
    assert_series(&data[1], &losses, "run losses");

    // The proxy: one point per labelled candidate with its prediction, at (predicted,
    // measured).
    let (_, data) = &charts["chart-proxy"];
    let mut drawn: Vec<(f64, f64)> = data[0]
        .iter()
        .zip(&data[1])
        .map(|(x, y)| (x.expect("a prediction"), y.expect("a measurement")))
        .collect();
    let mut expected = predictions.clone();
    drawn.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    expected.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let expected: Vec<Option<f64>> = expected
        .iter()
        .flat_map(|(x, y)| [Some(*x), Some(*y)])
        .collect();
    let drawn: Vec<Option<f64>> = drawn
        .iter()
        .flat_map(|(x, y)| [Some(*x), Some(*y)])
        .collect();
    assert_series(&drawn, &expected, "the proxy's points");

    // Screenshots of the dashboard and the list, on a desktop and a phone.
    let (dir, _temporary) = screenshot_dir(backend);
    screenshots(b, &dir, "dashboard").await;
    b.goto(&app.url("/")).await.expect("the index loads");
    assert_loaded_cleanly(b, "the index").await;
    screenshots(b, &dir, "campaigns").await;
    browser.close().await;
}
on_both_backends!(
    every_chart_draws_what_the_api_reports,
    every_chart_draws_what_the_api_reports
);

/// A `flowlab serve` process with the API token, its log (stderr, at debug level) in a file.
struct LoggedServer {
    child: Child,
    address: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl LoggedServer {
    fn start(database_url: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let log = dir.path().join("stderr.log");
        let file = std::fs::File::create(&log).expect("the log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_flowlab"))
            .args([
                "serve",
                "--bind",
                "127.0.0.1:0",
                "--database-url",
                database_url,
            ])
            .args(["--api-token", TOKEN])
            // The most the server logs short of trace: the token must not be in any of it.
            .env("RUST_LOG", "debug")
            .env_remove("FLOWLAB_API_TOKEN")
            .stdout(Stdio::piped())
            .stderr(file)
            .spawn()
            .expect("the binary starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the first line");
        let address = line
            .trim()
            .strip_prefix("flowlab listening on ")
            .unwrap_or_else(|| panic!("not the listening line: {line:?}"))
            .to_string();
        Self {
            child,
            address,
            log,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Stops the process and returns everything it logged.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::read_to_string(&self.log).expect("the log")
    }
}

impl Drop for LoggedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The sign-in form: fills in `token` and submits it.
async fn sign_in(b: &Client, token: &str) {
    let field = b
        .wait()
        .for_element(Locator::Css("#token"))
        .await
        .expect("the token field");
    field.send_keys(token).await.expect("typing");
    b.find(Locator::Css("form.signin button"))
        .await
        .expect("the button")
        .click()
        .await
        .expect("submitting");
}

/// Every URL in the DevTools network events of the performance log: requests, redirects,
/// responses, documents and their `Location` and `Referer` headers.
async fn network_urls(b: &Client) -> Vec<String> {
    fn collect(value: &Value, key: &str, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => map.iter().for_each(|(k, v)| collect(v, k, out)),
            Value::Array(items) => items.iter().for_each(|v| collect(v, key, out)),
            Value::String(text) => {
                let key = key.to_ascii_lowercase();
                if key.ends_with("url") || key == "location" || key == "referer" {
                    out.push(text.clone());
                }
            }
            _ => {}
        }
    }
    let mut urls = Vec::new();
    for entry in read_log(b, "performance").await {
        let message: Value =
            serde_json::from_str(entry["message"].as_str().expect("a message")).expect("JSON");
        if message["message"]["method"]
            .as_str()
            .is_some_and(|m| m.starts_with("Network."))
        {
            collect(&message["message"]["params"], "", &mut urls);
        }
    }
    urls
}

async fn with_a_token_the_pages_ask_to_sign_in(backend: Backend) {
    let _one = ONE_BROWSER.lock().await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    let db = TestDatabase::create(backend).await;
    let server = LoggedServer::start(&db.url);
    let api = Api::with_token(&server.address);
    let bare = reqwest::Client::new();
    let id = api.create_campaign(grid_campaign("signed")).await;
    play_round(&api, id, 4, false).await;
    let b = &browser.client;
    let dashboard = format!("/campaigns/{id}/dashboard");
    // Every address the browser was at, and every URL its pages requested.
    let mut visited: Vec<String> = Vec::new();

    // Not signed in: the form, coming back here afterwards.
    b.goto(&server.url(&dashboard)).await.expect("loads");
    let url = b.current_url().await.expect("a URL");
    assert_eq!(url.path(), "/signin");
    assert_eq!(url.query(), Some(format!("next={dashboard}").as_str()));
    visited.push(url.to_string());
    b.wait()
        .for_element(Locator::Css("#token"))
        .await
        .expect("the form");
    assert_loaded_cleanly(b, "the sign-in page").await;
    visited.extend(page_requests(b).await.into_iter().map(|(url, _)| url));

    // A wrong token is refused: a 401 page, which the browser's log reports.
    sign_in(b, WRONG_TOKEN).await;
    let error = wait_until("the refusal", || async {
        text_of(b, "#signin-error").await
    })
    .await;
    assert!(error.contains("not"), "{error}");
    let url = b.current_url().await.expect("a URL");
    assert_eq!(url.path(), "/signin");
    visited.push(url.to_string());
    let errors = console_errors(b).await;
    assert!(
        errors.len() == 1 && errors[0].contains("401"),
        "the browser log reports the refusal: {errors:?}"
    );
    visited.extend(page_requests(b).await.into_iter().map(|(url, _)| url));

    // The right one opens the dashboard, whose data then loads with the cookie alone.
    sign_in(b, TOKEN).await;
    wait_until("the dashboard", || async {
        let url = b.current_url().await.ok()?;
        (url.path() == dashboard).then_some(())
    })
    .await;
    assert_eq!(chart_points(b, 1).await, 1);
    assert_loaded_cleanly(b, "the dashboard after signing in").await;
    visited.push(b.current_url().await.expect("a URL").to_string());
    visited.extend(page_requests(b).await.into_iter().map(|(url, _)| url));
    let cookie = b
        .get_named_cookie("flowlab_session")
        .await
        .expect("the session cookie");
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)");
    assert!(!cookie.value().contains(TOKEN));

    // The token was in no URL the browser was at or asked for, redirects included.
    let network = network_urls(b).await;
    for expected in [
        "/signin",
        "/dashboard/data",
        "/dashboard/assets/dashboard.js",
    ] {
        assert!(
            network.iter().any(|u| u.contains(expected)),
            "the network log shows {expected}: {network:?}"
        );
    }
    visited.extend(network);
    for url in &visited {
        for secret in [TOKEN, WRONG_TOKEN] {
            assert!(!url.contains(secret), "{secret} in the URL {url}");
        }
    }

    // The cookie opens the dashboard's reads, and nothing of the API beyond them.
    let session = format!("flowlab_session={}", cookie.value());
    let with_cookie = |method: reqwest::Method, path: &str| {
        bare.request(method, server.url(path))
            .header("cookie", session.clone())
    };
    let data = with_cookie(reqwest::Method::GET, &format!("{dashboard}/data"))
        .send()
        .await
        .expect("a response");
    assert_eq!(data.status().as_u16(), 200);
    let read = with_cookie(reqwest::Method::GET, &format!("/campaigns/{id}"))
        .send()
        .await
        .expect("a response");
    assert_eq!(
        read.status().as_u16(),
        401,
        "the API's reads need the header"
    );
    let write = with_cookie(reqwest::Method::POST, "/labels")
        .json(&json!({"labels": []}))
        .send()
        .await
        .expect("a response");
    assert_eq!(write.status().as_u16(), 401, "writes need the header");
    let anonymous = bare
        .get(server.url(&format!("{dashboard}/data")))
        .send()
        .await
        .expect("a response");
    assert_eq!(anonymous.status().as_u16(), 401);
    browser.close().await;

    // The server logged every one of these requests, and neither token.
    let logged = server.stop();
    for request in ["POST", "/signin", "/dashboard/data", "/labels"] {
        assert!(
            logged.contains(request),
            "the log shows {request}:\n{logged}"
        );
    }
    for secret in [TOKEN, WRONG_TOKEN] {
        assert!(!logged.contains(secret), "{secret} was logged:\n{logged}");
    }
}
on_both_backends!(
    with_a_token_the_pages_ask_to_sign_in,
    with_a_token_the_pages_ask_to_sign_in
);
