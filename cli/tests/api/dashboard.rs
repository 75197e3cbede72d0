//! The dashboard in a real browser: headless Chromium, driven over WebDriver, against the
//! real server on a fresh database. A campaign is played through the API, then the pages
//! must agree with the API (counts, one chart point per round, the best value), follow new
//! labels without a reload, load nothing from anywhere but this server, ask for the token
//! when one is configured, and answer an unknown campaign with a 404 page.
//!
//! Needs `chromium` and `chromedriver` (Debian: `apt-get install chromium chromium-driver`).
//! Without them the tests say so once and pass, unless `CI` is set: then they fail.

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "dash-token-0b6e2f71";

/// Longest a test waits for the page to show something.
const PAGE_LIMIT: Duration = Duration::from_secs(30);

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
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--window-size=1280,1000",
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

/// A small grid campaign that trains quickly.
fn grid_campaign(name: &str) -> Value {
    json!({"name": name, "space": {"type": "grid", "dims": 2, "size": 5},
           "model": {"hidden": 16}, "training": {"steps": 20, "batch_size": 8}})
}

/// Asks for a round of four and labels it: reward `x + y`, the first candidate failed.
async fn play_round(app: &TestApp, campaign_id: i64) {
    let (status, round) = app
        .post_json(
            "/rounds",
            &json!({"campaign_id": campaign_id, "batch_size": 4}),
        )
        .await;
    assert_eq!(status, 201, "{round}");
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
                let reward: i64 = c["value"]
                    .as_array()
                    .expect("a grid point")
                    .iter()
                    .map(|x| x.as_i64().expect("a coordinate"))
                    .sum();
                json!({"candidate_id": id, "reward": reward as f64})
            }
        })
        .collect();
    let (status, body) = app.post_json("/labels", &json!({ "labels": labels })).await;
    assert_eq!(status, 200, "{body}");
}

async fn stats(app: &TestApp, campaign_id: i64) -> Value {
    let (status, campaign) = app.get(&format!("/campaigns/{campaign_id}")).await;
    assert_eq!(status, 200, "{campaign}");
    campaign["stats"].clone()
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

async fn pages_follow_the_campaign(backend: Backend) {
    let _one = ONE_BROWSER.lock().await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = TestApp::spawn(backend).await;
    let id = app.create_campaign(grid_campaign("dashboard")).await;
    for _ in 0..3 {
        play_round(&app, id).await;
    }
    let before = stats(&app, id).await;
    let b = &browser.client;

    // The index: the campaign's counts as the API reports them.
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
    b.find(Locator::Css(&format!("{row} a")))
        .await
        .expect("a link to the dashboard")
        .click()
        .await
        .expect("the link opens");

    // The dashboard: a point per round, and the API's best value.
    let rounds = before["rounds"].as_i64().expect("rounds");
    assert_eq!(rounds, 3);
    assert_eq!(chart_points(b, 1).await, rounds);
    let best: f64 = attribute(b, "#best-value", "data-value")
        .await
        .expect("the best value")
        .parse()
        .expect("a number");
    let api_best = before["best"]["reward"].as_f64().expect("a best reward");
    assert!((best - api_best).abs() < 1e-9, "{best} vs {api_best}");
    let drawn = b
        .execute(
            "return window.flowlabCharts['chart-progress'].data[0].length",
            vec![],
        )
        .await
        .expect("the chart's data");
    assert_eq!(drawn, json!(rounds), "uPlot draws one point per round");

    // New labels show up without a reload: the marker set on this page survives.
    b.execute("window.flowlabMarker = 'same page'; return true", vec![])
        .await
        .expect("a marker");
    play_round(&app, id).await;
    let after = stats(&app, id).await;
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

    // Nothing came from anywhere but this server.
    let resources = b
        .execute(
            "return performance.getEntriesByType('resource').map(e => e.name)",
            vec![],
        )
        .await
        .expect("the resources");
    let resources = resources.as_array().expect("a list").clone();
    assert!(
        resources.len() >= 4,
        "scripts, styles and data: {resources:?}"
    );
    for url in &resources {
        let url = url.as_str().expect("a URL");
        assert!(
            url.starts_with(&app.address),
            "{url} is not from the server"
        );
    }

    // An unknown campaign is a 404 page.
    b.goto(&app.url("/campaigns/99999/dashboard"))
        .await
        .expect("the page loads");
    let problem = text_of(b, "#problem").await.expect("a message");
    assert!(problem.contains("no campaign 99999"), "{problem}");
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

async fn with_a_token_the_pages_ask_to_sign_in(backend: Backend) {
    let _one = ONE_BROWSER.lock().await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    let mut app = TestApp::spawn_configured(backend, |c| c.api_token = Some(TOKEN.into())).await;
    let bare = app.client.clone();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "authorization",
        format!("Bearer {TOKEN}").parse().expect("a header"),
    );
    app.client = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("a client");
    let id = app.create_campaign(grid_campaign("signed")).await;
    play_round(&app, id).await;
    let b = &browser.client;
    let dashboard = format!("/campaigns/{id}/dashboard");

    // Not signed in: the form, coming back here afterwards.
    b.goto(&app.url(&dashboard)).await.expect("loads");
    let url = b.current_url().await.expect("a URL");
    assert_eq!(url.path(), "/signin");
    assert_eq!(url.query(), Some(format!("next={dashboard}").as_str()));

    // A wrong token is refused.
    sign_in(b, "not-the-token").await;
    let error = wait_until("the refusal", || async {
        text_of(b, "#signin-error").await
    })
    .await;
    assert!(error.contains("not"), "{error}");
    assert_eq!(b.current_url().await.expect("a URL").path(), "/signin");

    // The right one opens the dashboard, whose data then loads with the cookie alone.
    sign_in(b, TOKEN).await;
    wait_until("the dashboard", || async {
        let url = b.current_url().await.ok()?;
        (url.path() == dashboard).then_some(())
    })
    .await;
    assert_eq!(chart_points(b, 1).await, 1);
    let cookie = b
        .get_named_cookie("flowlab_session")
        .await
        .expect("the session cookie");
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)");
    assert!(!cookie.value().contains(TOKEN));

    // The cookie opens the dashboard's reads, and nothing of the API beyond them.
    let session = format!("flowlab_session={}", cookie.value());
    let with_cookie = |method: reqwest::Method, path: &str| {
        bare.request(method, app.url(path))
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
        .get(app.url(&format!("{dashboard}/data")))
        .send()
        .await
        .expect("a response");
    assert_eq!(anonymous.status().as_u16(), 401);
    browser.close().await;
}
on_both_backends!(
    with_a_token_the_pages_ask_to_sign_in,
    with_a_token_the_pages_ask_to_sign_in
);
