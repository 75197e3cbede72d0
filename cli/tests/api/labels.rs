//! Labels: all or nothing, imports, replicates, keys, failures, counts, and the
//! errors of bad requests.

use crate::helpers::{assert_error, Backend, TestApp};
use crate::on_both_backends;
use crate::rounds::futures_join_all;
use serde_json::{json, Value};

pub fn sequence_campaign() -> Value {
    json!({"name": "dna", "space": {"type": "sequence", "alphabet": ["A", "C", "G", "T"],
           "min_length": 2, "max_length": 6}, "model": {"hidden": 16},
           "training": {"steps": 20, "batch_size": 4}})
}

pub async fn candidates(app: &TestApp, id: i64) -> Vec<Value> {
    let (status, page) = app
        .get(&format!(
            "/campaigns/{id}/candidates?order=created&limit=1000"
        ))
        .await;
    assert_eq!(status, 200, "{page}");
    page["candidates"].as_array().expect("candidates").clone()
}

async fn labels_import_average_and_count(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_campaign(sequence_campaign()).await;
    let body = json!({"labels": [
        {"campaign_id": id, "value": "ACGT", "reward": 1.0, "key": "a1"},
        {"campaign_id": id, "value": "ACGT", "reward": 3.0, "key": "a2"},
        {"campaign_id": id, "value": "GG", "failed": true, "error": "no expression", "key": "g1"},
        {"campaign_id": id, "value": "TTA", "reward": -2.5, "metadata": {"plate": 3}},
    ]});
    let (status, outcome) = app.post_json("/labels", &body).await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(
        outcome,
        json!({"accepted": 4, "duplicates": 0}),
        "failed ones count as accepted"
    );
    // The same request again: keyed items are duplicates, the unkeyed one is a new replicate.
    let (status, outcome) = app.post_json("/labels", &body).await;
    assert_eq!(status, 200);
    assert_eq!(outcome, json!({"accepted": 1, "duplicates": 3}));

    let cands = candidates(&app, id).await;
    assert_eq!(cands.len(), 3, "imported candidates: {cands:?}");
    let by_value = |v: &str| {
        cands
            .iter()
            .find(|c| c["value"] == v)
            .expect("candidate")
            .clone()
    };
    let acgt = by_value("ACGT");
    assert_eq!(acgt["mean_reward"], 2.0, "replicates are averaged");
    assert_eq!(acgt["observations"], 2);
    assert_eq!(acgt["status"], "labelled");
    assert_eq!(acgt["round"], Value::Null, "imported, not proposed");
    let gg = by_value("GG");
    assert_eq!(gg["status"], "failed");
    assert_eq!(gg["mean_reward"], Value::Null, "failures are never rewards");
    assert_eq!(by_value("TTA")["observations"], 2);

    let (_, campaign) = app.get(&format!("/campaigns/{id}")).await;
    let stats = &campaign["stats"];
    assert_eq!(
        (
            stats["candidates"].clone(),
            stats["labelled"].clone(),
            stats["failed"].clone()
        ),
        (json!(3), json!(2), json!(1))
    );
    assert_eq!(stats["best"]["value"], "ACGT");
    assert_eq!(stats["best"]["reward"], 2.0);

    // Failed and labelled values are never proposed again.
    let (_, round) = app
        .round(json!({"campaign_id": id, "batch_size": 50}))
        .await;
    for c in round["candidates"].as_array().expect("candidates") {
        assert!(!["ACGT", "GG", "TTA"].contains(&c["value"].as_str().expect("string")));
    }
}
on_both_backends!(
    labels_import_average_and_count,
    labels_import_average_and_count
);

async fn a_key_with_another_reward_is_a_conflict(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_campaign(sequence_campaign()).await;
    let label =
        |r: f64| json!({"labels": [{"campaign_id": id, "value": "AC", "reward": r, "key": "k"}]});
    assert_eq!(app.post_json("/labels", &label(1.0)).await.0, 200);
    let (status, err) = app.post_json("/labels", &label(2.0)).await;
    assert_eq!(status, 409);
    assert_error(&err, "conflict");
    let cands = candidates(&app, id).await;
    assert_eq!(cands[0]["observations"], 1);
    assert_eq!(cands[0]["mean_reward"], 1.0);
}
on_both_backends!(
    a_key_with_another_reward_is_a_conflict,
    a_key_with_another_reward_is_a_conflict
);

async fn one_bad_label_stores_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_campaign(sequence_campaign()).await;
    let good = json!({"campaign_id": id, "value": "ACG", "reward": 1.0});
    let cases: Vec<(Value, u16, &str, Option<usize>)> = vec![
        (
            json!({"campaign_id": id, "value": "ACXG", "reward": 1.0}),
            400,
            "invalid_item",
            Some(1),
        ),
        (
            json!({"campaign_id": id, "value": "A", "reward": 1.0}),
            400,
            "invalid_item",
            Some(1),
        ),
        (
            json!({"campaign_id": id, "value": "ACG", "reward": 1e300}),
            400,
            "invalid_item",
            Some(1),
        ),
        (
            json!({"campaign_id": id, "value": "ACG"}),
            400,
            "invalid_item",
            Some(1),
        ),
        (
            json!({"campaign_id": id, "value": "ACG", "reward": 1.0, "failed": true}),
            400,
            "invalid_item",
            Some(1),
        ),
        (
            json!({"candidate_id": 99999, "reward": 1.0}),
            404,
            "not_found",
            Some(1),
        ),
        (
            json!({"campaign_id": 99999, "value": "ACG", "reward": 1.0}),
            404,
            "not_found",
            Some(1),
        ),
        (
            json!({"campaign_id": id, "value": "ACG", "reward": "NaN"}),
            400,
            "invalid_body",
            None,
        ),
        (
            json!({"campaign_id": id, "value": "ACG", "reward": 1.0, "colour": "red"}),
            400,
            "invalid_body",
            None,
        ),
    ];
    for (bad, code, error, index) in cases {
        let body = json!({"labels": [good.clone(), bad.clone(), good.clone()]});
        let (status, err) = app.post_json("/labels", &body).await;
        assert_eq!(status, code, "{bad} -> {err}");
        assert_error(&err, error);
        if let Some(index) = index {
            assert_eq!(err["error"]["details"]["index"], index, "{err}");
        }
    }
    // The unknown token and its position are named.
    let (_, err) = app
        .post_json(
            "/labels",
            &json!({"labels": [{"campaign_id": id, "value": "ACXG", "reward": 1.0}]}),
        )
        .await;
    let message = err["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("position 2") && message.contains('X'),
        "{message}"
    );
    let (status, err) = app.post_json("/labels", &json!({"labels": []})).await;
    assert_eq!(status, 400);
    assert_error(&err, "invalid_value");
    let (status, err) = app
        .post_raw("/labels", "text/plain", "candidate_id,reward")
        .await;
    assert_eq!(status, 415);
    assert_error(&err, "unsupported_media_type");
    assert!(candidates(&app, id).await.is_empty(), "nothing stored");
}
on_both_backends!(one_bad_label_stores_nothing, one_bad_label_stores_nothing);

async fn concurrent_retries_store_each_label_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_campaign(sequence_campaign()).await;
    let (_, round) = app
        .round(json!({"campaign_id": id, "batch_size": 40}))
        .await;
    let ids: Vec<i64> = round["candidates"]
        .as_array()
        .expect("c")
        .iter()
        .map(|c| c["id"].as_i64().expect("id"))
        .collect();
    // 8 clients; each posts the labels of 10 candidates, with overlapping slices so that
    // several clients retry the same keys at the same moment.
    let posts = (0..8).map(|client| {
        let http = app.client.clone();
        let url = app.url("/labels");
        let slice: Vec<Value> = (0..10)
            .map(|j| {
                let cid = ids[(client * 5 + j) % ids.len()];
                json!({"candidate_id": cid, "reward": cid as f64, "key": format!("c{cid}")})
            })
            .collect();
        async move {
            let mut results = Vec::new();
            for _ in 0..2 {
                let r = http
                    .post(&url)
                    .json(&json!({"labels": slice}))
                    .send()
                    .await
                    .expect("request");
                results.push((r.status().as_u16(), r.json::<Value>().await.expect("json")));
            }
            results
        }
    });
    let mut accepted = 0;
    for results in futures_join_all(posts).await {
        for (status, outcome) in results {
            assert_eq!(status, 200, "{outcome}");
            accepted += outcome["accepted"].as_i64().expect("accepted");
        }
    }
    assert_eq!(accepted, 40, "each of the 40 keys stored exactly once");
    for c in candidates(&app, id).await {
        assert_eq!(c["observations"], 1, "{c}");
    }
}
on_both_backends!(
    concurrent_retries_store_each_label_once,
    concurrent_retries_store_each_label_once
);

/// `(value, entity)` of every candidate, by value.
async fn entities(app: &TestApp, id: i64) -> Vec<(Value, Value)> {
    let mut pairs: Vec<(Value, Value)> = candidates(app, id)
        .await
        .iter()
        .map(|c| (c["value"].clone(), c["entity"].clone()))
        .collect();
    pairs.sort_by_key(|(v, _)| v.to_string());
    pairs
}

async fn bad_entities_are_400_with_field_and_index(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_campaign(sequence_campaign()).await;
    let good = json!({"campaign_id": id, "value": "ACGT", "reward": 1.0, "entity": "m1"});
    let too_long = "x".repeat(257);
    for entity in [json!(""), json!("   "), json!(too_long)] {
        let bad = json!({"campaign_id": id, "value": "GG", "reward": 1.0, "entity": entity});
        let body = json!({"labels": [good.clone(), bad]});
        let (status, err) = app.post_json("/labels", &body).await;
        assert_eq!(status, 400, "{entity} -> {err}");
        assert_error(&err, "invalid_item");
        assert_eq!(err["error"]["details"]["index"], 1, "{err}");
        assert_eq!(
            err["error"]["details"]["field"], "labels[1].entity",
            "{err}"
        );
    }
    let bad = json!({"campaign_id": id, "value": "GG", "reward": 1.0, "entity": 7});
    let (status, err) = app
        .post_json("/labels", &json!({"labels": [good.clone(), bad]}))
        .await;
    assert_eq!(status, 400, "{err}");
    assert_error(&err, "invalid_body");
    assert!(candidates(&app, id).await.is_empty(), "nothing stored");

    // The limit is in characters, not bytes (256 two-byte characters), and the stored
    // entity is trimmed.
    let wide = "é".repeat(256);
    let body = json!({"labels": [
        {"campaign_id": id, "value": "GG", "reward": 1.0, "entity": format!("  {wide}\t")},
        {"campaign_id": id, "value": "ACGT", "reward": 2.0, "entity": " m1 "},
    ]});
    let (status, outcome) = app.post_json("/labels", &body).await;
    assert_eq!(status, 200, "{outcome}");
    let stored = entities(&app, id).await;
    assert_eq!(
        stored,
        vec![(json!("ACGT"), json!("m1")), (json!("GG"), json!(wide))]
    );
}
on_both_backends!(
    bad_entities_are_400_with_field_and_index,
    bad_entities_are_400_with_field_and_index
);

async fn a_candidate_has_at_most_one_entity(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_campaign(sequence_campaign()).await;
    let label = |value: &str, reward: f64, entity: Option<&str>| json!({"campaign_id": id, "value": value, "reward": reward, "entity": entity});
    let (status, body) = app
        .post_json(
            "/labels",
            &json!({"labels": [label("ACGT", 1.0, Some("m1"))]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // The same entity again, or none at all: more observations of the same object.
    let (status, body) = app
        .post_json(
            "/labels",
            &json!({"labels": [label("ACGT", 2.0, Some("m1")), label("ACGT", 3.0, None)]}),
        )
        .await;
    assert_eq!(
        (status, body["accepted"].clone()),
        (200, json!(2)),
        "{body}"
    );
    // Another entity for that candidate, in a batch with a good label: 409, nothing stored.
    let (status, err) = app
        .post_json(
            "/labels",
            &json!({"labels": [label("GG", 1.0, Some("m2")), label("ACGT", 4.0, Some("m2"))]}),
        )
        .await;
    assert_eq!(status, 409, "{err}");
    assert_error(&err, "conflict");
    // Two entities for one new candidate within one batch: 409 as well.
    let (status, err) = app
        .post_json(
            "/labels",
            &json!({"labels": [label("TT", 1.0, Some("a")), label("TT", 2.0, Some("b"))]}),
        )
        .await;
    assert_eq!(status, 409, "{err}");
    assert_error(&err, "conflict");
    let stored = candidates(&app, id).await;
    assert_eq!(stored.len(), 1, "only ACGT was ever stored: {stored:?}");
    assert_eq!(stored[0]["entity"], "m1");
    assert_eq!(stored[0]["observations"], 3);
}
on_both_backends!(
    a_candidate_has_at_most_one_entity,
    a_candidate_has_at_most_one_entity
);

async fn the_csv_upload_takes_an_entity_column(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_campaign(sequence_campaign()).await;
    let upload = "value,reward,entity\nAC,1,m1\nCA,2, m1 \nGG,3,\n";
    let (status, outcome) = app
        .post_raw(&format!("/labels?campaign_id={id}"), "text/csv", upload)
        .await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["accepted"], 3);
    assert_eq!(
        entities(&app, id).await,
        vec![
            (json!("AC"), json!("m1")),
            (json!("CA"), json!("m1")),
            (json!("GG"), Value::Null),
        ],
        "an empty cell names no entity"
    );
    let (_, campaign) = app.get(&format!("/campaigns/{id}")).await;
    assert_eq!(campaign["stats"]["objects"], 2, "{campaign}");

    let too_long = format!("value,reward,entity\nTT,1,ok\nTA,1,{}\n", "x".repeat(257));
    let (status, err) = app
        .post_raw(&format!("/labels?campaign_id={id}"), "text/csv", too_long)
        .await;
    assert_eq!(status, 400, "{err}");
    assert_error(&err, "invalid_item");
    assert_eq!(
        err["error"]["details"]["field"], "row 3, column entity",
        "{err}"
    );
    assert_eq!(candidates(&app, id).await.len(), 3, "nothing stored");
}
on_both_backends!(
    the_csv_upload_takes_an_entity_column,
    the_csv_upload_takes_an_entity_column
);

/// `?campaign_id=` names the campaign of JSON items that give a `value` and no
/// `campaign_id`, as it does for CSV rows; an item that names its own campaign keeps it,
/// and another query parameter is refused with nothing stored.
async fn the_query_campaign_applies_to_json_values_too(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let grid = |name: &str| {
        json!({"name": name, "space": {"type": "grid", "dims": 2, "size": 5},
               "training": {"steps": 5, "batch_size": 4}, "model": {"hidden": 8}})
    };
    let first = app.create_campaign(grid("first")).await;
    let second = app.create_campaign(grid("second")).await;
    let body = json!({"labels": [
        {"value": [1, 2], "reward": 1.0},
        {"campaign_id": second, "value": [3, 3], "reward": 2.0},
    ]});
    let (status, outcome) = app
        .post_json(&format!("/labels?campaign_id={first}"), &body)
        .await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["accepted"], 2, "{outcome}");
    let labelled = |id: i64| format!("select count(*) from candidates where campaign_id = {id}");
    assert_eq!(app.query_i64(&labelled(first)).await, 1);
    assert_eq!(app.query_i64(&labelled(second)).await, 1);
    let (status, refused) = app
        .post_json(&format!("/labels?campaign={first}"), &body)
        .await;
    assert_eq!(status, 400, "{refused}");
    assert_error(&refused, "invalid_value");
    assert_eq!(
        app.query_i64(&labelled(first)).await,
        1,
        "nothing more stored"
    );
}
on_both_backends!(
    the_query_campaign_applies_to_json_values_too,
    the_query_campaign_applies_to_json_values_too
);
