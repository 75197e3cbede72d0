//! Graceful shutdown of a real process: on SIGTERM the server answers the request in flight,
//! stops training at the next step without writing a checkpoint, releases its lease, and
//! exits 0 within 10 s.

use crate::durability::Server;
use crate::helpers::{Backend, TestDatabase};
use crate::on_both_backends;
use flowlab::store::Store;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The protocol: a stopped server is gone within this.
const EXIT_LIMIT: Duration = Duration::from_secs(10);

/// Polls `GET url` every 20 ms until `done` holds; panics with `what` after 30 s.
async fn poll(client: &reqwest::Client, url: String, what: &str, done: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = client
            .get(&url)
            .send()
            .await
            .expect("request")
            .text()
            .await
            .expect("text");
        if done(&body) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The campaign's lease rows: (owner, expires_at_ms), read from the database at `url`.
async fn leases(url: &str, campaign_id: i64) -> Vec<(String, i64)> {
    let sql = "select owner, expires_at_ms from leases where campaign_id = $1";
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url)
            .await
            .expect("the SQLite file");
        let rows = sqlx::query_as(sql)
            .bind(campaign_id)
            .fetch_all(&pool)
            .await
            .expect("leases");
        pool.close().await;
        rows
    } else {
        let pool = sqlx::PgPool::connect(url)
            .await
            .expect("the PostgreSQL database");
        let rows = sqlx::query_as(sql)
            .bind(campaign_id)
            .fetch_all(&pool)
            .await
            .expect("leases");
        pool.close().await;
        rows
    }
}

async fn sigterm_answers_in_flight_stops_training_and_exits_0(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let client = reqwest::Client::new();
    let mut server = Server::start(&db.url);
    let base = server.address.clone();
    let campaign = json!({"name": "endless", "space": {"type": "grid", "dims": 2, "size": 6},
                          "model": {"hidden": 16}, "training": {"steps": 1_000_000, "batch_size": 8}});
    let created: Value = client
        .post(format!("{base}/campaigns"))
        .json(&campaign)
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let id = created["id"].as_i64().expect("id");
    let labels: Vec<Value> = (0..4)
        .map(|i| json!({"campaign_id": id, "value": [i, 5 - i], "reward": i as f64}))
        .collect();
    let response = client
        .post(format!("{base}/labels"))
        .json(&json!({ "labels": labels }))
        .send()
        .await
        .expect("labels");
    assert_eq!(response.status().as_u16(), 200);
    poll(
        &client,
        format!("{base}/campaigns/{id}/model"),
        "the run to start",
        |body| body.contains(r#""status":"training""#),
    )
    .await;

    // A round that waits for a model this run will never finish: in flight at the signal.
    let round = tokio::spawn({
        let (client, url) = (client.clone(), format!("{base}/rounds"));
        async move {
            let r = client
                .post(url)
                .json(&json!({"campaign_id": id, "batch_size": 2, "wait_for_model": true}))
                .send()
                .await
                .expect("the request in flight is answered, not dropped");
            (r.status().as_u16(), r.json::<Value>().await.expect("json"))
        }
    });
    // It is inside the server once two requests are in flight: it and the scrape.
    poll(
        &client,
        format!("{base}/metrics"),
        "the round to be in flight",
        |text| {
            text.lines()
                .any(|l| l == "flowlab_http_requests_in_flight 2")
        },
    )
    .await;
    assert!(!round.is_finished());

    let signalled = Instant::now();
    server.terminate();
    let (status, body) = round.await.expect("round task");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("shutting down")),
        "{body}"
    );
    let exit = server
        .wait_exit(Duration::from_secs(30))
        .await
        .expect("the server exits");
    let took = signalled.elapsed();
    assert_eq!(exit.code(), Some(0), "{exit:?}");
    assert!(took < EXIT_LIMIT, "exited after {took:?}");
    assert!(
        client.get(format!("{base}/healthz")).send().await.is_err(),
        "nothing listens any more"
    );

    // The database: the run cancelled, no checkpoint, the lease given back (not expired:
    // its TTL is 15 s).
    let store = Store::connect(&db.url).await.expect("store");
    let runs = store.training_runs(id, 10).await.expect("runs");
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = &runs[0];
    assert!(server.owns(&run.owner), "{run:?}");
    assert_eq!(run.status, "cancelled", "{run:?}");
    assert!(
        run.error
            .as_deref()
            .is_some_and(|e| e.contains("shutting down")),
        "{run:?}"
    );
    assert_eq!(run.version, None);
    assert_eq!(
        store.newest_checkpoint(id).await.expect("checkpoint"),
        None,
        "no half-trained checkpoint"
    );
    let leases = leases(&db.url, id).await;
    assert_eq!(leases.len(), 1, "{leases:?}");
    assert!(server.owns(&leases[0].0), "{leases:?}");
    assert_eq!(leases[0].1, 0, "released, not left to expire: {leases:?}");
    let (status, _) = store.model_status(id).await.expect("status");
    assert_eq!(status, "untrained", "the campaign does not stay `training`");
}
on_both_backends!(
    sigterm_answers_in_flight_stops_training_and_exits_0,
    sigterm_answers_in_flight_stops_training_and_exits_0
);
