//! Rounds: distinct unseen values, exhaustion, concurrency, min_distance, keys,
//! abandonment, and the errors of bad requests.

use crate::helpers::{assert_error, Backend, TestApp};
use crate::on_both_backends;
use serde_json::{json, Value};
use std::collections::HashSet;

fn grid(dims: usize, size: usize) -> Value {
    json!({"name": "grid", "space": {"type": "grid", "dims": dims, "size": size},
           "model": {"hidden": 16}, "training": {"steps": 20, "batch_size": 4}})
}

fn values(round: &Value) -> Vec<Value> {
    round["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .map(|c| c["value"].clone())
        .collect()
}

async fn rounds_never_repeat_a_value(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_campaign(grid(2, 4)).await;
    // Two values labelled before any round: they must never be proposed.
    let imported = [json!([0, 0]), json!([3, 3])];
    let labels: Vec<Value> = imported
        .iter()
        .map(|v| json!({"campaign_id": id, "value": v, "reward": 1.0}))
        .collect();
    let (status, body) = app.post_json("/labels", &json!({"labels": labels})).await;
    assert_eq!(status, 200, "{body}");
    let mut seen: HashSet<String> = imported.iter().map(Value::to_string).collect();
    for _ in 0..3 {
        let (status, round) = app.round(json!({"campaign_id": id, "batch_size": 4})).await;
        assert_eq!(status, 201, "{round}");
        let vs = values(&round);
        assert_eq!(vs.len(), 4);
        for v in vs {
            assert!(seen.insert(v.to_string()), "value {v} proposed twice");
        }
    }
}
on_both_backends!(rounds_never_repeat_a_value, rounds_never_repeat_a_value);

async fn exhausted_rounds_return_what_remains(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_campaign(grid(2, 3)).await; // 9 values
    let (_, first) = app.round(json!({"campaign_id": id, "batch_size": 6})).await;
    assert_eq!(values(&first).len(), 6);
    assert_eq!(first["exhausted"], false);
    assert_eq!(
        first["model_version"], 0,
        "no labels, no model: the uniform policy"
    );
    let (status, second) = app.round(json!({"campaign_id": id, "batch_size": 6})).await;
    assert_eq!(status, 201);
    assert_eq!(values(&second).len(), 3, "only three values were left");
    assert_eq!(second["exhausted"], true);
    let (_, third) = app.round(json!({"campaign_id": id, "batch_size": 6})).await;
    assert_eq!(values(&third), Vec::<Value>::new());
    assert_eq!(third["exhausted"], true);
    let all: HashSet<String> = values(&first)
        .iter()
        .chain(values(&second).iter())
        .map(Value::to_string)
        .collect();
    assert_eq!(all.len(), 9, "every value of the space, each once");
}
on_both_backends!(
    exhausted_rounds_return_what_remains,
    exhausted_rounds_return_what_remains
);

async fn a_skewed_policy_still_fills_the_batch(backend: Backend) {
    // At a very low temperature the untrained policy is nearly deterministic; the round must
    // raise exploration until the batch is full rather than report exhaustion.
    let app = TestApp::spawn(backend).await;
    let id = app.create_campaign(grid(3, 6)).await;
    for _ in 0..3 {
        let (status, round) = app
            .round(json!({"campaign_id": id, "batch_size": 40, "temperature": 0.01}))
            .await;
        assert_eq!(status, 201);
        assert_eq!(values(&round).len(), 40, "{round}");
        assert_eq!(round["exhausted"], false);
    }
}
on_both_backends!(
    a_skewed_policy_still_fills_the_batch,
    a_skewed_policy_still_fills_the_batch
);

async fn concurrent_rounds_never_share_a_candidate(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_campaign(grid(2, 8)).await;
    let requests = (0..8).map(|_| {
        let client = app.client.clone();
        let url = app.url("/rounds");
        async move {
            let r = client
                .post(url)
                .json(&json!({"campaign_id": id, "batch_size": 6}))
                .send()
                .await
                .expect("request");
            (r.status().as_u16(), r.json::<Value>().await.expect("json"))
        }
    });
    let results = futures_join_all(requests).await;
    let mut ids = HashSet::new();
    let mut vals = HashSet::new();
    let mut total = 0;
    for (status, round) in results {
        assert_eq!(status, 201, "{round}");
        for c in round["candidates"].as_array().expect("candidates") {
            total += 1;
            assert!(ids.insert(c["id"].as_i64().expect("id")));
            assert!(
                vals.insert(c["value"].to_string()),
                "value {} in two rounds",
                c["value"]
            );
        }
    }
    assert_eq!(total, 48, "every round filled");
    let (_, campaign) = app.get(&format!("/campaigns/{id}")).await;
    assert_eq!(campaign["stats"]["rounds"], 8);
    assert_eq!(campaign["stats"]["pending"], 48);
}
on_both_backends!(
    concurrent_rounds_never_share_a_candidate,
    concurrent_rounds_never_share_a_candidate
);

/// Runs futures concurrently on the test's runtime.
pub async fn futures_join_all<F>(futs: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut set = Vec::new();
    for f in futs {
        set.push(tokio::spawn(f));
    }
    let mut out = Vec::new();
    for h in set {
        out.push(h.await.expect("task"));
    }
    out
}

async fn min_distance_keeps_candidates_apart(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_campaign(grid(2, 8)).await;
    let (status, round) = app
        .round(json!({"campaign_id": id, "batch_size": 6, "min_distance": 4}))
        .await;
    assert_eq!(status, 201, "{round}");
    let vs: Vec<Vec<i64>> = values(&round)
        .iter()
        .map(|v| {
            v.as_array()
                .expect("array")
                .iter()
                .map(|c| c.as_i64().expect("int"))
                .collect()
        })
        .collect();
    assert_eq!(vs.len(), 6);
    for (i, a) in vs.iter().enumerate() {
        for b in &vs[i + 1..] {
            let d: i64 = a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum();
            assert!(d >= 4, "{a:?} and {b:?} are {d} apart");
        }
    }
}
on_both_backends!(
    min_distance_keeps_candidates_apart,
    min_distance_keeps_candidates_apart
);

async fn a_repeated_key_returns_the_same_round(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_campaign(grid(2, 8)).await;
    let body = json!({"campaign_id": id, "batch_size": 5, "key": "plate-7"});
    let (status, first) = app.round(body.clone()).await;
    assert_eq!(status, 201);
    // The client crashed before reading the answer and retries, several times at once.
    let retries = futures_join_all((0..4).map(|_| {
        let client = app.client.clone();
        let url = app.url("/rounds");
        let body = body.clone();
        async move {
            let r = client.post(url).json(&body).send().await.expect("request");
            (r.status().as_u16(), r.json::<Value>().await.expect("json"))
        }
    }))
    .await;
    for (status, again) in retries {
        assert_eq!(status, 200);
        assert_eq!(again, first);
    }
    let (_, campaign) = app.get(&format!("/campaigns/{id}")).await;
    assert_eq!(campaign["stats"]["rounds"], 1, "no budget wasted");
    assert_eq!(campaign["stats"]["candidates"], 5);
}
on_both_backends!(
    a_repeated_key_returns_the_same_round,
    a_repeated_key_returns_the_same_round
);

async fn abandoned_candidates_are_not_proposed_again(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_campaign(grid(2, 3)).await;
    let (_, round) = app.round(json!({"campaign_id": id, "batch_size": 4})).await;
    let rid = round["id"].as_i64().expect("id");
    let first = values(&round);
    // One of them gets measured before the assay is given up.
    let measured = round["candidates"][0]["id"].as_i64().expect("id");
    let (status, _) = app
        .post_json(
            "/labels",
            &json!({"labels": [{"candidate_id": measured, "reward": 2.0}]}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, abandoned) = app
        .post_json(&format!("/rounds/{rid}/abandon"), &json!({}))
        .await;
    assert_eq!(status, 200, "{abandoned}");
    let statuses: Vec<&str> = abandoned["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .map(|c| c["status"].as_str().expect("status"))
        .collect();
    assert_eq!(
        statuses,
        vec!["labelled", "abandoned", "abandoned", "abandoned"]
    );
    let (_, next) = app.round(json!({"campaign_id": id, "batch_size": 9})).await;
    let next: HashSet<String> = values(&next).iter().map(Value::to_string).collect();
    assert_eq!(next.len(), 5, "the five values never proposed");
    for v in first {
        assert!(!next.contains(&v.to_string()));
    }
    let (status, fetched) = app.get(&format!("/rounds/{rid}")).await;
    assert_eq!(status, 200);
    assert_eq!(fetched["candidates"][0]["labels"][0]["reward"], 2.0);
    assert_eq!(fetched["candidates"][0]["mean_reward"], 2.0);
}
on_both_backends!(
    abandoned_candidates_are_not_proposed_again,
    abandoned_candidates_are_not_proposed_again
);

async fn bad_round_requests_are_rejected(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_campaign(grid(2, 8)).await;
    let cases = [
        (
            json!({"campaign_id": id, "batch_size": 0}),
            400,
            "invalid_value",
        ),
        (
            json!({"campaign_id": id, "batch_size": 10001}),
            400,
            "invalid_value",
        ),
        (
            json!({"campaign_id": id, "batch_size": "5"}),
            400,
            "invalid_body",
        ),
        (json!({"campaign_id": id}), 400, "invalid_body"),
        (
            json!({"campaign_id": id, "batch_size": 5, "bacth": 1}),
            400,
            "invalid_body",
        ),
        (
            json!({"campaign_id": id, "batch_size": 5, "temperature": 0}),
            400,
            "invalid_value",
        ),
        (
            json!({"campaign_id": id, "batch_size": 5, "epsilon": 1.5}),
            400,
            "invalid_value",
        ),
        (
            json!({"campaign_id": id, "batch_size": 5, "min_distance": -1}),
            400,
            "invalid_value",
        ),
        (
            json!({"campaign_id": 424242, "batch_size": 5}),
            404,
            "not_found",
        ),
    ];
    for (body, code, error) in cases {
        let (status, err) = app.round(body.clone()).await;
        assert_eq!(status, code, "{body} -> {err}");
        assert_error(&err, error);
    }
    for path in ["/rounds/999999", "/rounds/x"] {
        let (status, err) = app.get(path).await;
        assert_eq!(status, 404);
        assert_error(&err, "not_found");
    }
    let (status, _) = app.post_json("/rounds/999999/abandon", &json!({})).await;
    assert_eq!(status, 404);
    let (_, campaign) = app.get(&format!("/campaigns/{id}")).await;
    assert_eq!(campaign["stats"]["rounds"], 0, "nothing stored");
}
on_both_backends!(
    bad_round_requests_are_rejected,
    bad_round_requests_are_rejected
);

async fn wait_for_model_returns_after_training_on_every_label(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_campaign(grid(2, 6)).await;
    let labels: Vec<Value> = (0..12)
        .map(|i| json!({"campaign_id": id, "value": [i % 6, i / 6], "reward": i as f64}))
        .collect();
    let (status, _) = app.post_json("/labels", &json!({"labels": labels})).await;
    assert_eq!(status, 200);
    let (status, round) = app
        .round(json!({"campaign_id": id, "batch_size": 3, "wait_for_model": true}))
        .await;
    assert_eq!(status, 201, "{round}");
    let version = round["model_version"].as_i64().expect("version");
    assert!(version >= 1, "the round used a trained model: {round}");
    let (_, model) = app.get(&format!("/campaigns/{id}/model")).await;
    assert!(model["version"].as_i64().expect("version") >= version);
    assert_eq!(model["trained_on_labels"], 12, "{model}");
}
on_both_backends!(
    wait_for_model_returns_after_training_on_every_label,
    wait_for_model_returns_after_training_on_every_label
);

async fn wait_for_model_times_out_with_503_and_stores_nothing(backend: Backend) {
    let app = TestApp::spawn_configured(backend, |c| c.wait_timeout_seconds = 0.5).await;
    // A training run far longer than the wait.
    let id = app
        .create_campaign(
            json!({"name": "slow", "space": {"type": "grid", "dims": 4, "size": 8},
                                "training": {"steps": 1000000, "batch_size": 64}}),
        )
        .await;
    let (status, _) = app
        .post_json(
            "/labels",
            &json!({"labels": [{"campaign_id": id, "value": [1, 2, 3, 4], "reward": 1.0}]}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, err) = app
        .round(json!({"campaign_id": id, "batch_size": 3, "wait_for_model": true}))
        .await;
    assert_eq!(status, 503, "{err}");
    assert_error(&err, "unavailable");
    let (_, campaign) = app.get(&format!("/campaigns/{id}")).await;
    assert_eq!(campaign["stats"]["rounds"], 0, "nothing stored");
    // Without waiting, the round is served at once from what exists (version 0 here).
    let (status, round) = app.round(json!({"campaign_id": id, "batch_size": 3})).await;
    assert_eq!(status, 201);
    assert_eq!(round["model_version"], 0);
}
on_both_backends!(
    wait_for_model_times_out_with_503_and_stores_nothing,
    wait_for_model_times_out_with_503_and_stores_nothing
);

async fn sources_say_how_each_candidate_was_made(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_campaign(grid(2, 4)).await;
    let imported = [json!([0, 0]), json!([3, 3])];
    let labels: Vec<Value> = imported
        .iter()
        .map(|v| json!({"campaign_id": id, "value": v, "reward": 1.0}))
        .collect();
    let (status, body) = app.post_json("/labels", &json!({"labels": labels})).await;
    assert_eq!(status, 200, "{body}");
    // Model version 0: the uniform policy made every candidate.
    let (status, round) = app.round(json!({"campaign_id": id, "batch_size": 4})).await;
    assert_eq!(status, 201, "{round}");
    assert_eq!(round["model_version"], 0);
    let proposed = round["candidates"].as_array().expect("candidates");
    assert_eq!(proposed.len(), 4);
    for c in proposed {
        assert_eq!(c["source"], "uniform", "{c}");
    }
    let round_id = round["id"].as_i64().expect("id");
    let (status, read) = app.get(&format!("/rounds/{round_id}")).await;
    assert_eq!(status, 200, "{read}");
    for c in read["candidates"].as_array().expect("candidates") {
        assert_eq!(c["source"], "uniform", "{c}");
    }
    // The listing tells imported values from proposed ones.
    let (status, page) = app.get(&format!("/campaigns/{id}/candidates")).await;
    assert_eq!(status, 200, "{page}");
    let listed = page["candidates"].as_array().expect("candidates");
    assert_eq!(listed.len(), 6);
    for c in listed {
        let expected = if imported.contains(&c["value"]) {
            "imported"
        } else {
            "uniform"
        };
        assert_eq!(c["source"], expected, "{c}");
        assert_eq!(c["round"].is_null(), expected == "imported", "{c}");
    }
}
on_both_backends!(
    sources_say_how_each_candidate_was_made,
    sources_say_how_each_candidate_was_made
);
