//! Issue 4, point 1 through the HTTP API: once a model exists, rounds report the proxy's
//! prediction for each candidate, and `GET /campaigns/{id}/model` reports the proxy's
//! held-out quality for the newest checkpoint and for each run; candidates that failed stay
//! out of the rewards.

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;
use serde_json::{json, Value};

/// A 8 x 8 grid, a small network and short trainings.
fn campaign() -> Value {
    json!({"name": "proxy", "space": {"type": "grid", "dims": 2, "size": 8},
           "model": {"hidden": 16},
           "training": {"steps": 20, "batch_size": 8, "proxy": {"steps": 50, "members": 3}}})
}

/// The measured score of a grid point: higher towards the (7, 7) corner.
fn score(x: &Value) -> f64 {
    x.as_array()
        .map(|c| c.iter().filter_map(Value::as_f64).sum())
        .unwrap_or(0.0)
}

async fn rounds_report_the_proxy_once_a_model_exists(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_campaign(campaign()).await;
    let (status, first) = app
        .round(json!({"campaign_id": id, "batch_size": 16}))
        .await;
    assert_eq!(status, 201, "{first}");
    let candidates = first["candidates"].as_array().expect("candidates").clone();
    assert!(
        candidates.iter().all(|c| c["proxy"].is_null()),
        "no model yet: {first}"
    );
    // Label all but two; those two fail.
    let labels: Vec<Value> = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i < 2 {
                json!({"candidate_id": c["id"], "failed": true, "error": "assay broke"})
            } else {
                json!({"candidate_id": c["id"], "reward": score(&c["value"])})
            }
        })
        .collect();
    let (status, body) = app.post_json("/labels", &json!({"labels": labels})).await;
    assert_eq!(status, 200, "{body}");

    let (status, second) = app
        .round(json!({"campaign_id": id, "batch_size": 8, "wait_for_model": true}))
        .await;
    assert_eq!(status, 201, "{second}");
    assert_eq!(second["model_version"], 1);
    for c in second["candidates"].as_array().expect("candidates") {
        let mean = c["proxy"]["mean"].as_f64();
        let std = c["proxy"]["std"].as_f64();
        assert!(
            mean.is_some_and(f64::is_finite) && std.is_some_and(|s| s.is_finite() && s >= 0.0),
            "{c}"
        );
    }
    // The round read back keeps what the proxy said when it proposed it.
    let (status, again) = app
        .round(json!({"campaign_id": id, "batch_size": 8, "key": "k"}))
        .await;
    assert_eq!(status, 201, "{again}");
    let (status, repeat) = app
        .round(json!({"campaign_id": id, "batch_size": 8, "key": "k"}))
        .await;
    assert_eq!(status, 200, "{repeat}");
    assert_eq!(again["candidates"], repeat["candidates"]);

    let (status, model) = app.get(&format!("/campaigns/{id}/model")).await;
    assert_eq!(status, 200, "{model}");
    // 14 successful labels: 14 observations trained on, failed ones not counted.
    assert_eq!(model["trained_on_labels"], 14, "{model}");
    let proxy = &model["proxy"];
    assert!(
        proxy["spearman"]
            .as_f64()
            .is_some_and(|r| (-1.0..=1.0).contains(&r)),
        "{model}"
    );
    assert!(
        proxy["rmse"]
            .as_f64()
            .is_some_and(|e| e.is_finite() && e >= 0.0),
        "{model}"
    );
    assert_eq!(
        proxy["train"].as_u64().unwrap_or(0) + proxy["test"].as_u64().unwrap_or(0),
        14,
        "{model}"
    );
    let run = &model["history"][0];
    assert_eq!(run["version"], 1, "{model}");
    assert_eq!(&run["proxy"], proxy, "{model}");
}
on_both_backends!(
    rounds_report_the_proxy_once_a_model_exists,
    rounds_report_the_proxy_once_a_model_exists
);

async fn mix_and_proxy_settings_are_validated_and_defaulted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = app.post_json("/campaigns", &campaign()).await;
    assert_eq!(status, 201, "{body}");
    let training = &body["training"];
    assert_eq!(training["mix"]["forward"], 0.0, "{body}");
    assert_eq!(training["mix"]["conservative"], 0.5, "{body}");
    assert_eq!(training["pool_conservative"], 1.0, "{body}");
    assert_eq!(training["pool_local_search"], 0.0, "{body}");
    assert_eq!(training["proxy"]["members"], 3, "{body}");
    assert_eq!(training["proxy"]["hidden"], 64, "{body}");
    for (patch, field) in [
        (json!({"mix": {"labelled": -1.0}}), "training.mix.labelled"),
        (
            json!({"mix": {"labelled": 0.0, "forward": 0.0, "local_search": 0.0, "conservative": 0.0}}),
            "training.mix",
        ),
        (json!({"proxy": {"members": 0}}), "training.proxy.members"),
        (json!({"proxy": {"holdout": 0.9}}), "training.proxy.holdout"),
        (json!({"pool": 0}), "training.pool"),
        (
            json!({"pool_local_search": 1.5}),
            "training.pool_local_search",
        ),
        (
            json!({"pool_conservative": 1.5}),
            "training.pool_conservative",
        ),
        (
            json!({"conservative_delta": 0.0}),
            "training.conservative_delta",
        ),
        (
            json!({"mix": {"conservative": -0.5}}),
            "training.mix.conservative",
        ),
        (json!({"refine": 21}), "training.refine"),
        (
            json!({"refine_backtrack": 0.0}),
            "training.refine_backtrack",
        ),
        (json!({"selection": "best"}), "selection"),
    ] {
        let body = json!({"name": "bad", "space": {"type": "grid", "dims": 2, "size": 4},
                          "training": patch});
        let (status, answer) = app.post_json("/campaigns", &body).await;
        assert_eq!(status, 400, "{patch}: {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains(field)
                || answer["error"]["details"].to_string().contains(field),
            "{patch}: {answer}"
        );
    }
    // A share of local search beside the default conservative share is taken first, not
    // refused: the two may add up to more than the pool.
    let body = json!({"name": "local first", "space": {"type": "grid", "dims": 2, "size": 4},
                      "round": {"pool_local_search": 0.5}});
    let (status, answer) = app.post_json("/campaigns", &body).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["round"]["pool_conservative"], 1.0, "{answer}");
}
on_both_backends!(
    mix_and_proxy_settings_are_validated_and_defaulted,
    mix_and_proxy_settings_are_validated_and_defaulted
);

/// Round settings have their own block; written under `training`, as campaigns first did,
/// they mean the same, and a stored campaign shows them in both places. Written in both
/// places, they are refused naming the old one; a bad one is named where it was written.
async fn round_settings_live_in_their_own_block(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let space = json!({"type": "grid", "dims": 2, "size": 4});
    let settings = json!({"pool": 3, "refine": 0, "selection": "proportional"});
    let mut shown = Vec::new();
    for body in [
        json!({"name": "new", "space": space, "round": settings}),
        json!({"name": "old", "space": space, "training": settings}),
    ] {
        let (status, created) = app.post_json("/campaigns", &body).await;
        assert_eq!(status, 201, "{created}");
        let id = created["id"].as_i64().expect("an id");
        let (status, read) = app.get(&format!("/campaigns/{id}")).await;
        assert_eq!(status, 200, "{read}");
        for campaign in [&created, &read] {
            let round = campaign["round"].as_object().expect("a round block");
            for (name, value) in round {
                assert_eq!(&campaign["training"][name], value, "{name}: {campaign}");
            }
            assert_eq!(campaign["round"]["pool"], 3, "{campaign}");
            assert_eq!(campaign["round"]["selection"], "proportional", "{campaign}");
        }
        shown.push((created["round"].clone(), created["training"].clone()));
    }
    assert_eq!(shown[0], shown[1]);
    for (body, field) in [
        (
            json!({"name": "both", "space": space, "round": {"pool": 2}, "training": {"refine": 1}}),
            "training.refine",
        ),
        (
            json!({"name": "bad", "space": space, "round": {"pool_walk": 101}}),
            "round.pool_walk",
        ),
    ] {
        let (status, answer) = app.post_json("/campaigns", &body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_value", "{answer}");
        assert_eq!(answer["error"]["details"]["field"], field, "{answer}");
    }
}
on_both_backends!(
    round_settings_live_in_their_own_block,
    round_settings_live_in_their_own_block
);
