//! Replicas with real processes on one PostgreSQL database: both serve rounds of
//! one campaign without ever sharing a candidate, one trains it at a time, and when that one
//! is killed (SIGKILL: no shutdown code runs) the other takes training over once the lease
//! expired and writes the next checkpoint.

use crate::durability::Server;
use crate::helpers::{Backend, TestDatabase};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Lease lifetime of both servers, in seconds: short, so the takeover comes soon, yet long
/// enough that a busy machine still heartbeats in time (every third of it).
const LEASE_TTL: &str = "2";

/// Steps of one training run: long enough that the run is surely still going when the test
/// kills its trainer (it takes a few seconds here), short enough for the takeover run.
const STEPS: usize = 3000;

/// One row of `training_runs`, times in Unix ms.
#[derive(Debug, sqlx::FromRow)]
pub struct Run {
    pub id: i64,
    pub owner: String,
    pub status: String,
    pub version: Option<i64>,
    pub error: Option<String>,
    pub started_ms: f64,
    pub finished_ms: Option<f64>,
}

pub async fn runs(pool: &sqlx::PgPool, campaign_id: i64) -> Vec<Run> {
    sqlx::query_as(
        "select id, owner, status, version, error, \
         (extract(epoch from started_at) * 1000)::float8 as started_ms, \
         (extract(epoch from finished_at) * 1000)::float8 as finished_ms \
         from training_runs where campaign_id = $1 order by id",
    )
    .bind(campaign_id)
    .fetch_all(pool)
    .await
    .expect("runs")
}

/// The campaign's lease: its owner and its expiry in Unix ms.
pub async fn lease(pool: &sqlx::PgPool, campaign_id: i64) -> (String, i64) {
    sqlx::query_as("select owner, expires_at_ms from leases where campaign_id = $1")
        .bind(campaign_id)
        .fetch_one(pool)
        .await
        .expect("lease")
}

/// Polls the campaign's runs every 20 ms until `done` holds; panics with `what` after 90 s.
pub async fn wait_runs(
    pool: &sqlx::PgPool,
    campaign_id: i64,
    what: &str,
    done: impl Fn(&[Run]) -> bool,
) -> Vec<Run> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let runs = runs(pool, campaign_id).await;
        if done(&runs) {
            return runs;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {runs:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
        * 1000.0
}

/// `per_server` rounds of `batch` candidates through each address, all at once; returns
/// every candidate value proposed.
async fn concurrent_rounds(
    client: &reqwest::Client,
    addresses: &[&str],
    campaign_id: i64,
    per_server: usize,
    batch: usize,
) -> Vec<String> {
    let mut tasks = Vec::new();
    for address in addresses {
        for _ in 0..per_server {
            let (client, url) = (client.clone(), format!("{address}/rounds"));
            tasks.push(tokio::spawn(async move {
                let r = client
                    .post(url)
                    .json(&json!({"campaign_id": campaign_id, "batch_size": batch}))
                    .send()
                    .await
                    .expect("round");
                assert_eq!(r.status().as_u16(), 201);
                r.json::<Value>().await.expect("json")
            }));
        }
    }
    let mut values = Vec::new();
    for task in tasks {
        let round = task.await.expect("round task");
        assert_eq!(round["exhausted"], false, "{round}");
        let candidates = round["candidates"].as_array().expect("candidates");
        assert_eq!(candidates.len(), batch, "{round}");
        values.extend(candidates.iter().map(|c| c["value"].to_string()));
    }
    values
}

#[tokio::test]
async fn replicas_share_rounds_train_one_at_a_time_and_take_over_from_a_killed_owner() {
    if crate::helpers::skip_postgres().await {
        return;
    }
    let db = TestDatabase::create(Backend::Postgres).await;
    let pool = sqlx::PgPool::connect(&db.url).await.expect("database");
    let client = reqwest::Client::new();
    let flags = ["--lease-ttl", LEASE_TTL];
    let one = Server::start_with(&db.url, &flags);
    let two = Server::start_with(&db.url, &flags);
    let addresses = [one.address.clone(), two.address.clone()];
    let addresses: Vec<&str> = addresses.iter().map(String::as_str).collect();

    let campaign = json!({"name": "replicated", "space": {"type": "grid", "dims": 2, "size": 40},
                          "model": {"hidden": 32}, "training": {"steps": STEPS, "batch_size": 16}});
    let created: Value = client
        .post(format!("{}/campaigns", addresses[0]))
        .json(&campaign)
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let id = created["id"].as_i64().expect("id");

    let mut proposed = concurrent_rounds(&client, &addresses, id, 4, 10).await;
    let labels: Vec<Value> = proposed
        .iter()
        .take(12)
        .enumerate()
        .map(|(i, v)| {
            let value: Value = serde_json::from_str(v).expect("value");
            json!({"campaign_id": id, "value": value, "reward": (i % 5) as f64})
        })
        .collect();
    let response = client
        .post(format!("{}/labels", addresses[1]))
        .json(&json!({ "labels": labels }))
        .send()
        .await
        .expect("labels");
    assert_eq!(response.status().as_u16(), 200);

    // One of them trains (the one told, or the other through its scan); rounds go on
    // through both meanwhile.
    let started = wait_runs(&pool, id, "a run to start", |r| !r.is_empty()).await;
    let first = &started[0];
    let (owner, survivor) = if one.owns(&first.owner) {
        (one, two)
    } else {
        assert!(two.owns(&first.owner), "{first:?}");
        (two, one)
    };
    proposed.extend(concurrent_rounds(&client, &addresses, id, 4, 10).await);

    let (lease_owner, expires_ms) = lease(&pool, id).await;
    assert_eq!(lease_owner, first.owner, "the trainer holds the lease");
    let before_kill = runs(&pool, id).await;
    assert_eq!(before_kill.len(), 1, "only one trains: {before_kill:?}");
    assert_eq!(before_kill[0].status, "running", "{before_kill:?}");
    let killed_ms = now_ms();
    owner.kill();
    assert!(
        (expires_ms as f64) > killed_ms,
        "the lease was live at the kill"
    );
    // The expiry as the dead owner's last heartbeat left it: the takeover must wait for it.
    let (_, expires_ms) = lease(&pool, id).await;

    let runs = wait_runs(&pool, id, "the survivor's checkpoint", |r| {
        r.iter().any(|r| r.status == "succeeded")
    })
    .await;
    assert_eq!(runs.len(), 2, "{runs:?}");
    let (killed, takeover) = (&runs[0], &runs[1]);
    assert_eq!(killed.owner, first.owner);
    assert_eq!(killed.status, "cancelled", "{killed:?}");
    assert!(
        killed
            .error
            .as_deref()
            .is_some_and(|e| e.contains("abandoned")),
        "closed by the next holder: {killed:?}"
    );
    assert_eq!(killed.version, None, "the killed run wrote nothing");
    assert!(survivor.owns(&takeover.owner), "{takeover:?}");
    assert_eq!(takeover.status, "succeeded", "{takeover:?}");
    assert!(
        takeover.started_ms + 1.0 >= expires_ms as f64,
        "the survivor started before the lease expired: {takeover:?}, expiry {expires_ms}"
    );
    let (newest,): (i64,) =
        sqlx::query_as("select max(version) from checkpoints where campaign_id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .expect("checkpoint");
    assert_eq!(takeover.version, Some(newest), "{takeover:?}");
    assert_eq!(newest, 1);
    for pair in runs.windows(2) {
        let finished = pair[0].finished_ms.expect("the earlier run ended");
        assert!(
            finished <= pair[1].started_ms,
            "runs {} and {} overlap",
            pair[0].id,
            pair[1].id
        );
    }

    // The survivor serves on, from the new model; no value was ever proposed twice.
    proposed.extend(concurrent_rounds(&client, &[survivor.address.as_str()], id, 2, 10).await);
    let distinct: HashSet<&String> = proposed.iter().collect();
    assert_eq!(
        distinct.len(),
        proposed.len(),
        "a candidate was proposed twice"
    );
    assert_eq!(proposed.len(), 8 * 10 + 8 * 10 + 2 * 10);
}
