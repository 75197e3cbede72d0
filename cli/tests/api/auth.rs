//! Authentication through the real server: with `FLOWLAB_API_TOKEN` set, every
//! route but /healthz answers 401 `unauthorized` unless the request carries
//! `Authorization: Bearer <token>`; and `serve` will not listen beyond loopback without one.

use crate::helpers::{assert_error, Backend, TestApp};
use crate::on_both_backends;
use flowlab::http::auth::OPEN_PATHS;
use flowlab::http::ROUTES;
use serde_json::{json, Value};

const TOKEN: &str = "lab-token-6f1c0e9a";

async fn spawn_with_token(backend: Backend) -> TestApp {
    TestApp::spawn_configured(backend, |config| config.api_token = Some(TOKEN.into())).await
}

/// A request to every route, `{id}` filled in; `authorization` is the header, if any.
async fn call_every_route(
    app: &TestApp,
    authorization: Option<&str>,
) -> Vec<(String, reqwest::Response)> {
    let mut answers = Vec::new();
    for route in ROUTES {
        let method = reqwest::Method::from_bytes(route.method.as_str().as_bytes()).expect("method");
        let mut request = app
            .client
            .request(method, app.url(&route.path.replace("{id}", "1")));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let answer = request.send().await.expect("request");
        answers.push((format!("{} {}", route.method.as_str(), route.path), answer));
    }
    answers
}

async fn assert_unauthorized(what: &str, answer: reqwest::Response) {
    assert_eq!(answer.status().as_u16(), 401, "{what}");
    let challenge = answer
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(challenge.starts_with("Bearer"), "{what}: {challenge:?}");
    let body: Value = answer.json().await.expect("a JSON error body");
    assert_error(&body, "unauthorized");
}

async fn every_route_but_healthz_requires_the_token(backend: Backend) {
    let app = spawn_with_token(backend).await;
    for (what, answer) in call_every_route(&app, None).await {
        if OPEN_PATHS
            .iter()
            .any(|open| what.ends_with(&format!(" {open}")))
        {
            assert_eq!(answer.status().as_u16(), 200, "{what} stays open");
        } else {
            assert_unauthorized(&what, answer).await;
        }
    }
    // An unknown path says nothing about the API either.
    let answer = app
        .client
        .get(app.url("/no/such/route"))
        .send()
        .await
        .expect("request");
    assert_unauthorized("GET /no/such/route", answer).await;

    // Every refusal is counted, by route, like any other answer.
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("text");
    for route in ROUTES.iter().filter(|r| !OPEN_PATHS.contains(&r.path)) {
        let series = format!(
            "flowlab_http_requests_total{{method=\"{}\",route=\"{}\",status=\"401\"}} 1",
            route.method.as_str(),
            route.path
        );
        assert!(metrics.contains(&series), "{series} in\n{metrics}");
    }
}
on_both_backends!(
    every_route_but_healthz_requires_the_token,
    every_route_but_healthz_requires_the_token
);

async fn a_wrong_token_or_another_scheme_is_refused(backend: Backend) {
    let app = spawn_with_token(backend).await;
    let almost = &TOKEN[..TOKEN.len() - 1];
    for header in [
        "Bearer wrong".to_string(),
        format!("Bearer {almost}"),
        format!("Bearer {TOKEN}x"),
        format!("Bearer {}", TOKEN.to_uppercase()),
        format!("Basic {TOKEN}"),
        TOKEN.to_string(),
        "Bearer".to_string(),
    ] {
        for (what, answer) in call_every_route(&app, Some(&header)).await {
            if !what.ends_with(" /healthz") {
                assert_unauthorized(&format!("{what} with {header:?}"), answer).await;
            }
        }
    }
}
on_both_backends!(
    a_wrong_token_or_another_scheme_is_refused,
    a_wrong_token_or_another_scheme_is_refused
);

async fn the_token_opens_the_whole_loop(backend: Backend) {
    let mut app = spawn_with_token(backend).await;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "authorization",
        // The scheme is case-insensitive (RFC 7235).
        format!("bearer {TOKEN}").parse().expect("a header value"),
    );
    app.client = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("client");
    let id = app
        .create_campaign(
            json!({"name": "guarded", "space": {"type": "grid", "dims": 2, "size": 4}}),
        )
        .await;
    let (status, round) = app.round(json!({"campaign_id": id, "batch_size": 2})).await;
    assert_eq!(status, 201, "{round}");
    let candidate = round["candidates"][0]["id"].clone();
    let (status, outcome) = app
        .post_json(
            "/labels",
            &json!({"labels": [{"candidate_id": candidate, "reward": 1.0}]}),
        )
        .await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["accepted"], 1);
    let (status, campaign) = app.get(&format!("/campaigns/{id}")).await;
    assert_eq!(status, 200, "{campaign}");
    assert_eq!(campaign["stats"]["labelled"], 1);
}
on_both_backends!(
    the_token_opens_the_whole_loop,
    the_token_opens_the_whole_loop
);

#[test]
fn serve_refuses_a_public_address_without_a_token() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let database = dir.path().join("flowlab.db");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_flowlab"))
        .args(["serve", "--bind", "0.0.0.0:0", "--database-url"])
        .arg(format!("sqlite://{}", database.display()))
        .env_remove("FLOWLAB_API_TOKEN")
        .env_remove("FLOWLAB_ALLOW_UNAUTHENTICATED")
        .output()
        .expect("the binary runs");
    assert!(!output.status.success(), "it started");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0 without FLOWLAB_API_TOKEN")
            && stderr.contains("--allow-unauthenticated"),
        "{stderr}"
    );
    assert!(!database.exists(), "refused before opening the database");
}
