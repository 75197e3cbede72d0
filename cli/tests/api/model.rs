//! `GET /campaigns/{id}/model` and background training: labels trigger training,
//! labels during a run cause one more run, a failing campaign does not stop the others,
//! two servers on one database never train a campaign at the same time, and a stale
//! trainer cannot write past its lease.

use crate::helpers::{assert_error, Backend, TestApp, TestDatabase};
use crate::on_both_backends;
use flowlab::store::training::{Lease, NewCheckpoint, RunCounts, RunStart, CHECKPOINT_CHUNK_BYTES};
use flowlab::store::Store;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A 4 x 4 grid with a small network and short trainings, so the suite stays fast.
fn grid_campaign(name: &str, steps: usize) -> Value {
    json!({"name": name, "space": {"type": "grid", "dims": 2, "size": 4},
           "model": {"hidden": 32}, "training": {"steps": steps, "batch_size": 8}})
}

/// Labels `values[i]` of the campaign with reward `i`, in one request.
async fn post_labels(app: &TestApp, id: i64, values: &[[u32; 2]]) {
    let labels: Vec<Value> = values
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"campaign_id": id, "value": v, "reward": i as f64}))
        .collect();
    let (status, body) = app.post_json("/labels", &json!({ "labels": labels })).await;
    assert_eq!(status, 200, "{body}");
}

async fn model(app: &TestApp, id: i64) -> Value {
    let (status, body) = app.get(&format!("/campaigns/{id}/model")).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Polls the model every 20 ms until `done` holds; panics with `what` after `timeout`.
async fn wait_model(
    app: &TestApp,
    id: i64,
    timeout: Duration,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let body = model(app, id).await;
        if done(&body) {
            return body;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out waiting for {what}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The model once the server's trainer is idle: every label posted before has been trained
/// on (or its run failed). No polling, no clock.
async fn idle_model(app: &TestApp, id: i64) -> Value {
    app.train_until_idle().await;
    model(app, id).await
}

fn history(model: &Value) -> Vec<Value> {
    model["history"].as_array().expect("history").clone()
}

fn ready_on(labels: i64) -> impl Fn(&Value) -> bool {
    move |m| m["status"] == "ready" && m["trained_on_labels"] == labels
}

const LONG: Duration = Duration::from_secs(90);

async fn model_of_unknown_or_malformed_campaign_is_404(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for path in [
        "/campaigns/999/model",
        "/campaigns/abc/model",
        "/campaigns/-1/model",
    ] {
        let (status, body) = app.get(path).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_error(&body, "not_found");
    }
}
on_both_backends!(
    model_of_unknown_or_malformed_campaign_is_404,
    model_of_unknown_or_malformed_campaign_is_404
);

async fn model_before_any_label_is_untrained(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_campaign(grid_campaign("fresh", 50)).await;
    let m = model(&app, id).await;
    assert_eq!(
        m,
        json!({"version": 0, "status": "untrained", "error": null, "trained_on_labels": 0,
               "trained_on_observations": 0, "steps": 0, "loss": null, "proxy": null,
               "updated_at": null, "history": [], "serving_version": null,
               "prospective": {"rounds": 0, "n": 0, "median_spearman": null,
                               "median_rmse": null, "coverage_1sigma": null,
                               "coverage_2sigma": null},
               "rounds": []})
    );
}
on_both_backends!(
    model_before_any_label_is_untrained,
    model_before_any_label_is_untrained
);

async fn labels_trigger_training_and_the_model_becomes_ready(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_campaign(grid_campaign("train", 50)).await;
    post_labels(&app, id, &[[0, 0], [1, 2], [3, 3], [2, 1], [0, 3]]).await;
    // A failed observation is stored and trained on, but never counted as a label.
    let failed =
        json!({"labels": [{"campaign_id": id, "value": [3, 0], "failed": true, "error": "x"}]});
    let (status, body) = app.post_json("/labels", &failed).await;
    assert_eq!(status, 200, "{body}");

    let m = idle_model(&app, id).await;
    assert!(ready_on(5)(&m), "a model trained on 5 labels: {m}");
    assert!(m["version"].as_i64().expect("version") >= 1, "{m}");
    assert!(m["steps"].as_i64().expect("steps") >= 50, "{m}");
    assert!(m["loss"].as_f64().expect("loss").is_finite(), "{m}");
    assert_eq!(m["error"], Value::Null);
    assert_eq!(m["proxy"], Value::Null);
    let updated = m["updated_at"].as_str().expect("updated_at");
    assert!(
        updated.ends_with('Z') && updated.contains('T'),
        "RFC 3339: {updated}"
    );
    let runs = history(&m);
    let newest = &runs[0];
    assert_eq!(newest["status"], "succeeded", "{m}");
    assert_eq!(newest["labels"], 5);
    assert_eq!(newest["steps"], 50);
    assert_eq!(newest["version"], m["version"]);
    assert_eq!(newest["error"], Value::Null);
    assert!(
        newest["finished_at"].as_str().expect("finished")
            >= newest["started_at"].as_str().expect("started")
    );
    assert!(
        runs.iter().all(|r| r["status"] == "succeeded"),
        "no run failed or was cancelled: {m}"
    );

    // A round that waits for the model uses the newest checkpoint, which has seen every
    // observation, the failed one included.
    let (status, round) = app
        .round(json!({"campaign_id": id, "batch_size": 2, "wait_for_model": true}))
        .await;
    assert_eq!(status, 201, "{round}");
    let after = model(&app, id).await;
    assert_eq!(round["model_version"], after["version"]);
    assert_eq!(after["trained_on_observations"], 6, "{after}");
    assert_eq!(after["trained_on_labels"], 5, "{after}");
}
on_both_backends!(
    labels_trigger_training_and_the_model_becomes_ready,
    labels_trigger_training_and_the_model_becomes_ready
);

async fn labels_during_a_run_cause_exactly_one_more_run(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Long enough that five label requests land while the first run is going.
    let id = app.create_campaign(grid_campaign("coalesce", 2000)).await;
    post_labels(&app, id, &[[0, 0], [1, 1], [2, 2]]).await;
    wait_model(&app, id, LONG, "the first run to start", |m| {
        m["status"] == "training"
    })
    .await;
    for v in [[0, 1], [0, 2], [1, 0], [2, 0], [3, 1]] {
        post_labels(&app, id, &[v]).await;
    }
    let during = model(&app, id).await;
    assert!(
        during["history"].as_array().is_some_and(|h| h.len() == 1)
            && during["history"][0]["status"] == "running",
        "the first run must still be going for this test to mean anything: {during}"
    );

    let m = idle_model(&app, id).await;
    assert!(ready_on(8)(&m), "a model trained on all 8 labels: {m}");
    // The periodic scan (every second) must not start anything else either.
    app.after_a_whole_scan().await;
    let m2 = model(&app, id).await;
    assert_eq!(m2["version"], m["version"]);
    let runs = history(&m2);
    let labels: Vec<&Value> = runs.iter().map(|r| &r["labels"]).collect();
    assert_eq!(
        labels,
        [&json!(8), &json!(3)],
        "one more run, not one per label: {m2}"
    );
    assert!(runs.iter().all(|r| r["status"] == "succeeded"), "{m2}");
    assert_eq!(m2["version"], 2);
    assert_eq!(
        m2["steps"], 4000,
        "the second run resumed from the first: {m2}"
    );
}
on_both_backends!(
    labels_during_a_run_cause_exactly_one_more_run,
    labels_during_a_run_cause_exactly_one_more_run
);

async fn a_failing_campaign_is_failed_while_another_still_trains(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let app = TestApp::spawn_on(&db.url).await;
    let good = app.create_campaign(grid_campaign("good", 50)).await;
    let bad = app.create_campaign(grid_campaign("bad", 50)).await;
    // A stored value outside the campaign's space (a damaged row, or a restore into the
    // wrong campaign): every run of this campaign reads it and fails. (An unloadable
    // checkpoint is not such a fault: training starts afresh from it.)
    let damaged = crate::helpers::execute_sql(
        &db.url,
        &format!(
            "insert into candidates (campaign_id, value, status, n_success, reward_sum) values ({bad}, '[99,99]', 'labelled', 1, 1.0)"
        ),
    )
    .await;
    assert_eq!(damaged, 1);
    post_labels(&app, bad, &[[0, 0], [1, 1]]).await;
    post_labels(&app, good, &[[0, 0], [2, 2], [3, 3]]).await;

    let failed = idle_model(&app, bad).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let reason = failed["error"].as_str().expect("a reason");
    assert!(reason.contains("[99,99]"), "{failed}");
    let run = &failed["history"][0];
    assert_eq!(run["status"], "failed", "{failed}");
    assert_eq!(run["error"], failed["error"]);
    assert_eq!(run["version"], Value::Null);

    let m = model(&app, good).await;
    assert!(ready_on(3)(&m), "the good campaign trained: {m}");
    assert_eq!(m["version"], 1);

    // Waiting for a failed model answers at once with the reason; the good one is served.
    let started = Instant::now();
    let (status, body) = app
        .round(json!({"campaign_id": bad, "batch_size": 1, "wait_for_model": true}))
        .await;
    assert_eq!(status, 503, "{body}");
    assert_error(&body, "unavailable");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("failed"),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "no waiting for the timeout"
    );
    let (status, body) = app
        .round(json!({"campaign_id": good, "batch_size": 1, "wait_for_model": true}))
        .await;
    assert_eq!(status, 201, "{body}");

    // A failed campaign is not retried by the scan, only by new labels (which fail again).
    app.after_a_whole_scan().await;
    assert_eq!(history(&model(&app, bad).await).len(), 1);
    drop(app);
}
on_both_backends!(
    a_failing_campaign_is_failed_while_another_still_trains,
    a_failing_campaign_is_failed_while_another_still_trains
);

async fn two_servers_on_one_database_never_train_a_campaign_at_once(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let one = TestApp::spawn_on(&db.url).await;
    let two = TestApp::spawn_on(&db.url).await;
    let ids = [
        one.create_campaign(grid_campaign("a", 400)).await,
        one.create_campaign(grid_campaign("b", 400)).await,
    ];
    // Each batch of labels goes to both servers at once, so both are told to train.
    let batches: [&[[u32; 2]]; 3] = [&[[0, 0], [1, 1]], &[[2, 2], [3, 3]], &[[0, 3], [3, 0]]];
    for batch in batches {
        for &id in &ids {
            let (half_one, half_two) = batch.split_at(1);
            tokio::join!(
                post_labels(&one, id, half_one),
                post_labels(&two, id, half_two)
            );
        }
        // Both were told to train: let them contend for each batch before the next.
        tokio::join!(one.train_until_idle(), two.train_until_idle());
    }
    for &id in &ids {
        let m = wait_model(
            &one,
            id,
            LONG,
            "both campaigns trained on 6 labels",
            ready_on(6),
        )
        .await;
        let mut runs = history(&m);
        runs.sort_by_key(|r| r["id"].as_i64());
        for r in &runs {
            assert_eq!(r["status"], "succeeded", "{m}");
        }
        for pair in runs.windows(2) {
            let (earlier, later) = (&pair[0], &pair[1]);
            let finished = earlier["finished_at"].as_str().expect("finished");
            let started = later["started_at"].as_str().expect("started");
            assert!(
                started >= finished,
                "overlapping runs of campaign {id}: {earlier} and {later}"
            );
        }
        // The other server reports the same model.
        let other = model(&two, id).await;
        assert_eq!(other["version"], m["version"]);
    }
}
on_both_backends!(
    two_servers_on_one_database_never_train_a_campaign_at_once,
    two_servers_on_one_database_never_train_a_campaign_at_once
);

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// A checkpoint of `weights` after one step, keeping `keep_versions` versions.
fn checkpoint_of(weights: &[u8], keep_versions: i64) -> NewCheckpoint<'_> {
    NewCheckpoint {
        weights,
        trained_on_labels: 0,
        trained_on_observations: 0,
        total_steps: 1,
        run_steps: 1,
        loss: Some(0.5),
        metrics: "{}",
        keep_versions,
    }
}

async fn a_trainer_that_lost_its_lease_cannot_write(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let app = TestApp::spawn_on(&db.url).await;
    let store = Store::connect(&db.url).await.expect("store");
    let id = app.create_campaign(grid_campaign("lease", 50)).await;
    let ttl = 60_000;

    let a = store
        .acquire_lease(id, "a", now_ms(), ttl)
        .await
        .expect("acquire")
        .expect("free");
    assert!(
        store
            .acquire_lease(id, "b", now_ms(), ttl)
            .await
            .expect("acquire")
            .is_none(),
        "held by a"
    );
    assert!(store.renew_lease(&a, now_ms() + ttl).await.expect("renew"));
    let again = store
        .acquire_lease(id, "a", now_ms(), ttl)
        .await
        .expect("acquire")
        .expect("ours");
    assert!(again.token > a.token, "every acquisition bumps the token");
    let none = RunCounts {
        labels: 0,
        observations: 0,
    };
    let RunStart::Started(run_a) = store
        .begin_training_run(&again, none, 3, now_ms())
        .await
        .expect("begin")
    else {
        panic!("the lease is held")
    };

    // a stalls past its expiry; b takes over with a newer token.
    let later = now_ms() + 2 * ttl;
    let b = store
        .acquire_lease(id, "b", later, ttl)
        .await
        .expect("acquire")
        .expect("expired");
    assert!(b.token > again.token);
    assert!(
        !store.renew_lease(&again, later + ttl).await.expect("renew"),
        "a's lease is lost"
    );

    let checkpoint = checkpoint_of(b"weights", 3);
    let stale = store
        .commit_checkpoint(&again, run_a, &checkpoint, later)
        .await
        .expect("commit");
    assert_eq!(stale, None, "the fenced write is refused");
    assert_eq!(store.newest_checkpoint(id).await.expect("read"), None);

    let RunStart::Started(run_b) = store
        .begin_training_run(&b, none, 3, later)
        .await
        .expect("begin")
    else {
        panic!("the lease is held")
    };
    let written = store
        .commit_checkpoint(&b, run_b, &checkpoint, later)
        .await
        .expect("commit");
    assert_eq!(written, Some(1));
    store.release_lease(&b).await.expect("release");
    let runs = store.training_runs(id, 10).await.expect("runs");
    let status_of = |run: i64| runs.iter().find(|r| r.id == run).map(|r| r.status.clone());
    assert_eq!(status_of(run_b).as_deref(), Some("succeeded"));
    assert_eq!(
        status_of(run_a).as_deref(),
        Some("cancelled"),
        "the new holder closes the run the old one left open"
    );

    // Released leases are free at once, and tokens never repeat.
    let c = store
        .acquire_lease(id, "c", now_ms(), ttl)
        .await
        .expect("acquire")
        .expect("released");
    assert!(c.token > b.token);
    let m = model(&app, id).await;
    assert_eq!(
        (m["version"].clone(), m["status"].clone()),
        (json!(1), json!("ready"))
    );
}
on_both_backends!(
    a_trainer_that_lost_its_lease_cannot_write,
    a_trainer_that_lost_its_lease_cannot_write
);

/// Begins a run under `lease` and commits `weights` as its checkpoint, keeping 2 versions.
async fn commit(store: &Store, lease: &Lease, weights: &[u8], at: i64) -> Option<i64> {
    let none = RunCounts {
        labels: 0,
        observations: 0,
    };
    let RunStart::Started(run) = store
        .begin_training_run(lease, none, 3, at)
        .await
        .expect("begin")
    else {
        panic!("the lease is held")
    };
    store
        .commit_checkpoint(lease, run, &checkpoint_of(weights, 2), at)
        .await
        .expect("commit")
}

/// Checkpoints are written in chunks before the short transaction that makes them current,
/// and read back whole; the chunks of pruned versions, and of a write whose lease was lost,
/// are deleted.
async fn checkpoints_are_written_in_chunks_read_back_whole_and_pruned(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let url = app.database_url().expect("its own database").to_string();
    let store = Store::connect(&url).await.expect("store");
    let id = app.create_campaign(grid_campaign("chunks", 50)).await;
    let ttl = 60_000;
    let lease = store
        .acquire_lease(id, "a", now_ms(), ttl)
        .await
        .expect("acquire")
        .expect("free");
    // Two and a half chunks, different for every version.
    let weights = |version: u8| -> Vec<u8> {
        (0..CHECKPOINT_CHUNK_BYTES * 5 / 2)
            .map(|i| (i % 251) as u8 ^ version)
            .collect()
    };
    let chunks = "select count(*) from checkpoint_chunks";
    for version in 1..=3u8 {
        let written = commit(&store, &lease, &weights(version), now_ms()).await;
        assert_eq!(written, Some(i64::from(version)));
    }
    for version in [2u8, 3] {
        let read = store
            .checkpoint_weights(id, i64::from(version))
            .await
            .expect("read")
            .expect("kept");
        assert!(
            read == weights(version),
            "version {version} reads back whole"
        );
    }
    assert_eq!(store.checkpoint_weights(id, 1).await.expect("read"), None);
    assert_eq!(
        app.query_i64(chunks).await,
        6,
        "two versions of three chunks"
    );

    // a begins a run, then the lease passes to b while a computes: a's chunks are staged,
    // its commit is refused, and b's commit deletes them with the version it prunes.
    let none = RunCounts {
        labels: 0,
        observations: 0,
    };
    let RunStart::Started(stale) = store
        .begin_training_run(&lease, none, 3, now_ms())
        .await
        .expect("begin")
    else {
        panic!("the lease is held")
    };
    let later = now_ms() + 2 * ttl;
    let b = store
        .acquire_lease(id, "b", later, ttl)
        .await
        .expect("acquire")
        .expect("expired");
    let refused = store
        .commit_checkpoint(&lease, stale, &checkpoint_of(&weights(9), 2), later)
        .await
        .expect("commit");
    assert_eq!(refused, None);
    assert_eq!(
        app.query_i64(chunks).await,
        9,
        "the refused write is staged until cleaned"
    );
    let written = commit(&store, &b, &weights(4), later).await;
    assert_eq!(written, Some(4));
    assert_eq!(
        app.query_i64(chunks).await,
        6,
        "versions 3 and 4 only: the refused write and version 2 are gone"
    );
    let read = store.checkpoint_weights(id, 4).await.expect("read");
    assert!(read == Some(weights(4)));
}
on_both_backends!(
    checkpoints_are_written_in_chunks_read_back_whole_and_pruned,
    checkpoints_are_written_in_chunks_read_back_whole_and_pruned
);

async fn shutdown_cancels_the_run_and_releases_its_lease(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let first = TestApp::spawn_on(&db.url).await;
    let id = first
        .create_campaign(grid_campaign("endless", 1_000_000))
        .await;
    post_labels(&first, id, &[[0, 0], [1, 1]]).await;
    wait_model(&first, id, LONG, "the run to start", |m| {
        m["status"] == "training"
    })
    .await;
    let second = TestApp::spawn_on(&db.url).await;
    drop(first); // graceful shutdown of the first server, trainer included

    let m = wait_model(
        &second,
        id,
        LONG,
        "the run to be recorded as cancelled",
        |m| history(m).iter().any(|r| r["status"] == "cancelled"),
    )
    .await;
    let runs = history(&m);
    let cancelled = runs
        .iter()
        .find(|r| r["status"] == "cancelled")
        .expect("run");
    assert!(
        cancelled["error"]
            .as_str()
            .expect("reason")
            .contains("shutting down"),
        "{m}"
    );
    assert_eq!(cancelled["version"], Value::Null);
    assert_eq!(
        m["version"], 0,
        "no half-trained checkpoint is written: {m}"
    );

    // The lease was released, not left to expire (15 s): the second server takes over
    // at its next scan.
    wait_model(
        &second,
        id,
        Duration::from_secs(10),
        "the second server to take over",
        |m| history(m).len() == 2 && m["history"][0]["status"] == "running",
    )
    .await;
}
on_both_backends!(
    shutdown_cancels_the_run_and_releases_its_lease,
    shutdown_cancels_the_run_and_releases_its_lease
);

/// Labels `values` of the campaign as failed assays, in one request.
async fn post_failures(app: &TestApp, id: i64, values: &[[u32; 2]]) {
    let labels: Vec<Value> = values
        .iter()
        .map(|v| json!({"campaign_id": id, "value": v, "failed": true, "error": "no yield"}))
        .collect();
    let (status, body) = app.post_json("/labels", &json!({ "labels": labels })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], values.len(), "{body}");
}

async fn a_batch_that_fails_entirely_schedules_training(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_campaign(grid_campaign("all failed", 20)).await;
    post_failures(&app, id, &[[0, 0], [1, 2], [3, 1]]).await;
    let m = idle_model(&app, id).await;
    let run = &history(&m)[0];
    assert!(
        !run["finished_at"].is_null(),
        "a finished run on the failures: {m}"
    );
    assert_eq!(run["observations"], 3, "every failure counts: {m}");
    assert_eq!(run["labels"], 0, "labels count successes only: {m}");
}
on_both_backends!(
    a_batch_that_fails_entirely_schedules_training,
    a_batch_that_fails_entirely_schedules_training
);

async fn failures_after_a_model_retrain_it_and_wait_for_model_waits_for_them(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_campaign(grid_campaign("then failed", 20)).await;
    post_labels(&app, id, &[[0, 0], [3, 3]]).await;
    let (status, first) = app
        .round(json!({"campaign_id": id, "batch_size": 1, "wait_for_model": true}))
        .await;
    assert_eq!(status, 201, "{first}");
    let before = first["model_version"].as_i64().expect("version");
    assert!(before >= 1, "{first}");

    post_failures(&app, id, &[[1, 0], [2, 2], [0, 3]]).await;
    let (status, second) = app
        .round(json!({"campaign_id": id, "batch_size": 1, "wait_for_model": true}))
        .await;
    assert_eq!(status, 201, "{second}");
    assert!(
        second["model_version"].as_i64().expect("version") > before,
        "the round waited for a model trained on the failures: {second}"
    );
    let m = model(&app, id).await;
    assert_eq!(m["trained_on_observations"], 5, "{m}");
    assert_eq!(m["trained_on_labels"], 2, "{m}");
    assert_eq!(m["history"][0]["observations"], 5, "{m}");
    assert_eq!(m["history"][0]["labels"], 2, "{m}");
}
on_both_backends!(
    failures_after_a_model_retrain_it_and_wait_for_model_waits_for_them,
    failures_after_a_model_retrain_it_and_wait_for_model_waits_for_them
);

async fn a_first_batch_that_fails_entirely_gives_model_version_1(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_campaign(grid_campaign("first failed", 20)).await;
    assert_eq!(model(&app, id).await["version"], 0);
    post_failures(&app, id, &[[0, 0], [1, 2], [3, 1]]).await;
    // Before failures scheduled training, this round waited for nothing (no successful
    // label) and was drawn from version 0, the same uniform policy that failed.
    let (status, round) = app
        .round(json!({"campaign_id": id, "batch_size": 2, "wait_for_model": true}))
        .await;
    assert_eq!(status, 201, "{round}");
    assert_eq!(round["model_version"], 1, "{round}");
    let m = model(&app, id).await;
    assert_eq!(m["version"], 1, "{m}");
    assert_eq!(m["status"], "ready", "{m}");
    assert_eq!(m["trained_on_observations"], 3, "{m}");
    assert_eq!(m["trained_on_labels"], 0, "{m}");
}
on_both_backends!(
    a_first_batch_that_fails_entirely_gives_model_version_1,
    a_first_batch_that_fails_entirely_gives_model_version_1
);

/// Ranks from 1, ties sharing the mean of their ranks (written here, apart from the server's).
fn ranks(values: &[f64]) -> Vec<f64> {
    values
        .iter()
        .map(|v| {
            let below = values.iter().filter(|w| *w < v).count() as f64;
            let equal = values.iter().filter(|w| *w == v).count() as f64;
            below + (equal + 1.0) / 2.0
        })
        .collect()
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

fn close(actual: &Value, expected: f64, what: &str) {
    let got = actual
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: {actual}"));
    assert!((got - expected).abs() < 1e-9, "{what}: {got} vs {expected}");
}

/// The measured score of a grid point: higher towards the far corner.
fn grid_score(x: &Value) -> f64 {
    x.as_array()
        .map(|c| c.iter().filter_map(Value::as_f64).sum())
        .unwrap_or(0.0)
}

async fn rounds_report_sources_counts_and_prospective_proxy_figures(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app
        .create_campaign(
            json!({"name": "prospective", "space": {"type": "grid", "dims": 2, "size": 8},
                   "model": {"hidden": 16},
                   "training": {"steps": 20, "batch_size": 8,
                                "proxy": {"steps": 50, "members": 3}}}),
        )
        .await;
    // Round 1 (no model): 14 measured, 2 failed.
    let (status, first) = app
        .round(json!({"campaign_id": id, "batch_size": 16}))
        .await;
    assert_eq!(status, 201, "{first}");
    let labels: Vec<Value> = first["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i < 2 {
                json!({"candidate_id": c["id"], "failed": true, "error": "x"})
            } else {
                json!({"candidate_id": c["id"], "reward": grid_score(&c["value"])})
            }
        })
        .collect();
    let (status, body) = app.post_json("/labels", &json!({"labels": labels})).await;
    assert_eq!(status, 200, "{body}");

    // Round 2 draws from a model with a proxy: every candidate carries its prediction.
    let (status, second) = app
        .round(json!({"campaign_id": id, "batch_size": 8, "wait_for_model": true}))
        .await;
    assert_eq!(status, 201, "{second}");
    let proposed = second["candidates"].as_array().expect("candidates").clone();
    assert_eq!(proposed.len(), 8, "{second}");
    let mut sources: BTreeMap<String, i64> = BTreeMap::new();
    for c in &proposed {
        let source = c["source"].as_str().expect("a source");
        assert!(
            ["uniform", "policy", "policy+local", "local", "elite+policy"].contains(&source),
            "{c}"
        );
        *sources.entry(source.to_string()).or_default() += 1;
    }
    // The lab: the first fails, the second is measured twice, the last is still pending,
    // the rest once, off the proxy's scale on purpose.
    let mut labels = vec![json!({"candidate_id": proposed[0]["id"], "failed": true})];
    let mut measured: Vec<(f64, f64, f64)> = Vec::new(); // (mean, std, mean reward)
    for (i, c) in proposed.iter().enumerate().take(7).skip(1) {
        let base = grid_score(&c["value"]) + 0.37 * i as f64 - 1.0;
        let rewards = if i == 1 {
            vec![base + 0.5, base - 1.25]
        } else {
            vec![base]
        };
        for r in &rewards {
            labels.push(json!({"candidate_id": c["id"], "reward": r}));
        }
        let mean_reward = rewards.iter().sum::<f64>() / rewards.len() as f64;
        let mean = c["proxy"]["mean"].as_f64().expect("proxy mean");
        let std = c["proxy"]["std"].as_f64().expect("proxy std");
        measured.push((mean, std, mean_reward));
    }
    let (status, body) = app.post_json("/labels", &json!({"labels": labels})).await;
    assert_eq!(status, 200, "{body}");

    // The expected figures, from the posted rewards and the predictions the round returned.
    let n = measured.len() as f64;
    let means: Vec<f64> = measured.iter().map(|m| m.0).collect();
    let rewards: Vec<f64> = measured.iter().map(|m| m.2).collect();
    let spearman = pearson(&ranks(&means), &ranks(&rewards));
    let rmse = (measured.iter().map(|m| (m.2 - m.0).powi(2)).sum::<f64>() / n).sqrt();
    let within = |k: f64| {
        measured
            .iter()
            .filter(|m| (m.2 - m.0).abs() <= k * m.1)
            .count() as f64
            / n
    };

    let m = model(&app, id).await;
    let rounds = m["rounds"].as_array().expect("rounds");
    assert_eq!(rounds.len(), 2, "{m}");
    let newest = &rounds[0];
    assert_eq!(newest["number"], second["number"], "newest first: {m}");
    assert_eq!(newest["model_version"], second["model_version"]);
    assert_eq!(
        (&newest["proposed"], &newest["labelled"], &newest["failed"]),
        (&json!(8), &json!(6), &json!(1)),
        "{m}"
    );
    assert_eq!(newest["sources"], json!(sources), "{m}");
    let p = &newest["prospective"];
    assert_eq!(p["n"], 6, "{m}");
    close(&p["spearman"], spearman, "spearman");
    close(&p["rmse"], rmse, "rmse");
    close(&p["coverage_1sigma"], within(1.0), "1 sigma");
    close(&p["coverage_2sigma"], within(2.0), "2 sigma");

    let oldest = &rounds[1];
    assert_eq!(oldest["number"], first["number"]);
    assert_eq!(oldest["model_version"], 0);
    assert_eq!(
        (&oldest["proposed"], &oldest["labelled"], &oldest["failed"]),
        (&json!(16), &json!(14), &json!(2)),
        "{m}"
    );
    assert_eq!(oldest["sources"], json!({"uniform": 16}));
    assert_eq!(
        oldest["prospective"],
        json!({"n": 0, "spearman": null, "rmse": null,
               "coverage_1sigma": null, "coverage_2sigma": null}),
        "no predictions before a proxy existed"
    );

    // The summary covers the one round with figures.
    let s = &m["prospective"];
    assert_eq!((&s["rounds"], &s["n"]), (&json!(1), &json!(6)), "{m}");
    close(&s["median_spearman"], spearman, "median spearman");
    close(&s["median_rmse"], rmse, "median rmse");
    close(&s["coverage_1sigma"], within(1.0), "pooled 1 sigma");
    close(&s["coverage_2sigma"], within(2.0), "pooled 2 sigma");
    // The random-split figure is still reported beside it.
    assert!(
        m.get("proxy").is_some() && m.get("history").is_some(),
        "{m}"
    );
}
on_both_backends!(
    rounds_report_sources_counts_and_prospective_proxy_figures,
    rounds_report_sources_counts_and_prospective_proxy_figures
);

/// Positions at which two equal-length DNA strings differ.
fn hamming(a: &str, b: &str) -> usize {
    a.chars().zip(b.chars()).filter(|(x, y)| x != y).count()
}

async fn conservative_search_proposes_elites_redrawn_by_the_policy(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let delta = 0.25;
    let id = app
        .create_campaign(json!({
            "name": "conservative",
            "space": {"type": "sequence", "alphabet": ["A", "C", "G", "T"],
                      "min_length": 12, "max_length": 12},
            "model": {"hidden": 16},
            "training": {"steps": 20, "batch_size": 8, "proxy": {"steps": 50, "members": 2},
                         "pool": 4, "refine": 0, "pool_local_search": 0.0,
                         "pool_conservative": 1.0, "conservative_delta": delta,
                         "pool_spread": 0.0,
                         "mix": {"labelled": 0.5, "forward": 0.0, "local_search": 0.0,
                                 "conservative": 0.5}}
        }))
        .await;
    let (status, first) = app
        .round(json!({"campaign_id": id, "batch_size": 16}))
        .await;
    assert_eq!(status, 201, "{first}");
    let measured: Vec<String> = first["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .map(|c| c["value"].as_str().expect("a string").to_string())
        .collect();
    let labels: Vec<Value> = first["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .map(|c| {
            let value = c["value"].as_str().unwrap_or_default();
            json!({"candidate_id": c["id"], "reward": value.matches('G').count() as f64})
        })
        .collect();
    let (status, body) = app.post_json("/labels", &json!({"labels": labels})).await;
    assert_eq!(status, 200, "{body}");

    let (status, second) = app
        .round(json!({"campaign_id": id, "batch_size": 8, "wait_for_model": true}))
        .await;
    assert_eq!(status, 201, "{second}");
    let proposed = second["candidates"].as_array().expect("candidates");
    let near: Vec<usize> = proposed
        .iter()
        .filter(|c| c["source"] == "elite+policy")
        .map(|c| {
            let value = c["value"].as_str().expect("a string");
            measured
                .iter()
                .map(|m| hamming(m, value))
                .min()
                .unwrap_or(usize::MAX)
        })
        .collect();
    // The whole pool is conservative search: the batch is made of it unless the pool ran
    // out of unseen values, which 32 draws around 16 elites do not.
    assert!(near.len() >= 6, "{second}");
    // Each redraws one position plus each other with probability delta: at most 1 + 11/4
    // positions on average, far from the ~6 of a random string's nearest labelled one.
    let mean = near.iter().sum::<usize>() as f64 / near.len() as f64;
    assert!(near.iter().all(|&d| d >= 1), "{near:?}");
    assert!(mean <= 1.0 + 11.0 * delta + 1.0, "{near:?}");

    // The source is stored: the candidate listing and the model history report it.
    let (status, listed) = app
        .get(&format!("/campaigns/{id}/candidates?limit=100"))
        .await;
    assert_eq!(status, 200, "{listed}");
    let stored = listed["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .filter(|c| c["source"] == "elite+policy")
        .count();
    assert_eq!(stored, near.len(), "{listed}");
}
on_both_backends!(
    conservative_search_proposes_elites_redrawn_by_the_policy,
    conservative_search_proposes_elites_redrawn_by_the_policy
);
