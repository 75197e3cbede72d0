use crate::helpers::{assert_error, Backend, TestApp};
use crate::on_both_backends;
use serde_json::json;

fn grid_campaign() -> serde_json::Value {
    json!({"name": "grid demo", "space": {"type": "grid", "dims": 2, "size": 8}})
}

async fn create_fills_defaults_and_reads_back(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, created) = app.post_json("/campaigns", &grid_campaign()).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["name"], "grid demo");
    assert_eq!(
        created["space"],
        json!({"type": "grid", "dims": 2, "size": 8})
    );
    assert_eq!(
        created["model"]["objective"], "tb",
        "defaults are filled in"
    );
    let id = created["id"].as_i64().expect("numeric id");

    let (status, mut fetched) = app.get(&format!("/campaigns/{id}")).await;
    assert_eq!(status, 200);
    let stats = fetched
        .as_object_mut()
        .and_then(|o| o.remove("stats"))
        .expect("stats");
    assert_eq!(stats["model"]["version"], 0);
    assert_eq!(stats["model"]["status"], "untrained");
    assert_eq!(fetched, created);
    assert_eq!(stats["candidates"], 0);
    assert_eq!(stats["rounds"], 0);
    assert_eq!(stats["best"], serde_json::Value::Null);

    let (status, list) = app.get("/campaigns").await;
    assert_eq!(status, 200);
    assert_eq!(list["campaigns"], json!([created]));
}
on_both_backends!(
    create_fills_defaults_and_reads_back,
    create_fills_defaults_and_reads_back
);

async fn bad_campaigns_are_400_and_store_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cases = [
        (
            json!({"name": "x", "space": {"type": "grid", "dims": 0, "size": 8}}),
            "invalid_value",
        ),
        (
            json!({"name": "x", "space": {"type": "grid", "dims": 2, "size": 8}, "colour": 1}),
            "invalid_body",
        ),
        (
            json!({"space": {"type": "grid", "dims": 2, "size": 8}}),
            "invalid_body",
        ),
        (
            json!({"name": 5, "space": {"type": "grid", "dims": 2, "size": 8}}),
            "invalid_body",
        ),
        (
            json!({"name": "", "space": {"type": "grid", "dims": 2, "size": 8}}),
            "invalid_value",
        ),
        (
            json!({"name": "x", "space": {"type": "sequence", "alphabet": ["A"], "min_length": 1, "max_length": 4}}),
            "invalid_value",
        ),
    ];
    for (body, code) in cases {
        let (status, err) = app.post_json("/campaigns", &body).await;
        assert_eq!(status, 400, "{body} -> {err}");
        assert_error(&err, code);
    }
    let (status, err) = app
        .post_raw("/campaigns", "application/json", "{not json")
        .await;
    assert_eq!(status, 400);
    assert_error(&err, "malformed_json");
    let (status, err) = app
        .post_raw("/campaigns", "text/plain", grid_campaign().to_string())
        .await;
    assert_eq!(status, 415);
    assert_error(&err, "unsupported_media_type");
    let huge = format!("{{\"name\": \"{}\"}}", "a".repeat(9 * 1024 * 1024));
    let (status, err) = app.post_raw("/campaigns", "application/json", huge).await;
    assert_eq!(status, 413);
    assert_error(&err, "payload_too_large");

    let (_, list) = app.get("/campaigns").await;
    assert_eq!(list["campaigns"], json!([]), "nothing stored");
}
on_both_backends!(
    bad_campaigns_are_400_and_store_nothing,
    bad_campaigns_are_400_and_store_nothing
);

/// A campaign over sequences of `alphabet` written without a separator, with tiny trainings.
fn joined_sequence_campaign(alphabet: &[&str]) -> serde_json::Value {
    json!({"name": "joined", "space": {"type": "sequence", "alphabet": alphabet,
           "min_length": 1, "max_length": 6}, "model": {"hidden": 8},
           "training": {"steps": 5, "batch_size": 4}})
}

async fn joined_alphabets_must_decode_uniquely(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // "a" + "b" and "ab" spell the same text: refused, naming both spellings.
    let ambiguous = joined_sequence_campaign(&["a", "ab", "b"]);
    let (status, err) = app.post_json("/campaigns", &ambiguous).await;
    assert_eq!(status, 400, "{err}");
    assert_error(&err, "invalid_value");
    assert_eq!(err["error"]["details"]["field"], "space.alphabet", "{err}");
    let message = err["error"]["message"].as_str().expect("message");
    assert!(
        message.contains(r#"["a", "b"] and ["ab"] both spell "ab""#),
        "{message}"
    );
    // A separator keeps the same alphabet unambiguous.
    let mut separated = ambiguous.clone();
    separated["space"]["separator"] = json!("-");
    let (status, created) = app.post_json("/campaigns", &separated).await;
    assert_eq!(status, 201, "{created}");

    // B and C are prefixes of Br and Cl, yet every text splits one way: the values an
    // untrained round samples read back as labels of the same candidates.
    let chemistry = ["B", "Br", "C", "Cl", "N", "O"];
    let id = app
        .create_campaign(joined_sequence_campaign(&chemistry))
        .await;
    let (status, round) = app.round(json!({"campaign_id": id, "batch_size": 8})).await;
    assert_eq!(status, 201, "{round}");
    let labels: Vec<serde_json::Value> = round["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .map(|c| json!({"campaign_id": id, "value": c["value"], "reward": 1.0}))
        .collect();
    assert_eq!(labels.len(), 8, "{round}");
    let (status, outcome) = app.post_json("/labels", &json!({"labels": labels})).await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["accepted"], 8);
    let (_, campaign) = app.get(&format!("/campaigns/{id}")).await;
    let stats = &campaign["stats"];
    assert_eq!(
        (&stats["candidates"], &stats["labelled"]),
        (&json!(8), &json!(8)),
        "every label found its proposed candidate: {stats}"
    );
    // A value that does not split names where splitting gets stuck.
    let (status, err) = app
        .post_json(
            "/labels",
            &json!({"labels": [{"campaign_id": id, "value": "BrClXN", "reward": 1.0}]}),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    let message = err["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("position 4") && message.contains("XN"),
        "{message}"
    );

    // Greedy longest match would read "abb" as "ab" and be stuck; it is "a" + "bb".
    let id = app
        .create_campaign(joined_sequence_campaign(&["a", "ab", "bb"]))
        .await;
    let (status, outcome) = app
        .post_json(
            "/labels",
            &json!({"labels": [{"campaign_id": id, "value": "abb", "reward": 1.0}]}),
        )
        .await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["accepted"], 1);
}
on_both_backends!(
    joined_alphabets_must_decode_uniquely,
    joined_alphabets_must_decode_uniquely
);

async fn unknown_campaign_is_404(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for path in ["/campaigns/999", "/campaigns/abc", "/campaigns/-1"] {
        let (status, err) = app.get(path).await;
        assert_eq!(status, 404, "{path}");
        assert_error(&err, "not_found");
    }
}
on_both_backends!(unknown_campaign_is_404, unknown_campaign_is_404);

/// A campaign over short DNA sequences with tiny trainings (labels wake the trainer).
fn sequence_campaign(maximize: bool) -> serde_json::Value {
    json!({"name": "objects", "space": {"type": "sequence", "alphabet": ["A", "C", "G", "T"],
           "min_length": 2, "max_length": 4}, "reward": {"maximize": maximize},
           "model": {"hidden": 8}, "training": {"steps": 5, "batch_size": 4}})
}

/// Seven observations of six candidates and four objects with an entity or none:
/// m1 = {AC: 1, 2; CA: 3}, m2 = {GG: 5}, TT: 2.5 (no entity), m3 = {TTT: failed},
/// AAA: failed (no entity).
async fn post_object_labels(app: &TestApp, id: i64) {
    let label = |value: &str, reward: Option<f64>, entity: Option<&str>| match reward {
        Some(r) => json!({"campaign_id": id, "value": value, "reward": r, "entity": entity}),
        None => json!({"campaign_id": id, "value": value, "failed": true, "entity": entity}),
    };
    let body = json!({"labels": [
        label("AC", Some(1.0), Some("m1")),
        label("CA", Some(3.0), Some("m1")),
        label("AC", Some(2.0), None),
        label("GG", Some(5.0), Some("m2")),
        label("TT", Some(2.5), None),
        label("TTT", None, Some("m3")),
        label("AAA", None, None),
    ]});
    let (status, outcome) = app.post_json("/labels", &body).await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["accepted"], 7);
}

/// `(value, entity, mean_reward, observations, replicates)` of each row of a page.
async fn object_page(app: &TestApp, id: i64, query: &str) -> Vec<serde_json::Value> {
    let (status, page) = app
        .get(&format!(
            "/campaigns/{id}/candidates?distinct=entity&{query}"
        ))
        .await;
    assert_eq!(status, 200, "{page}");
    page["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .map(|c| {
            json!([
                c["value"],
                c["entity"],
                c["mean_reward"],
                c["observations"],
                c["replicates"]
            ])
        })
        .collect()
}

async fn replicates_sharing_an_entity_are_one_object(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_campaign(sequence_campaign(true)).await;
    post_object_labels(&app, id).await;

    let (status, campaign) = app.get(&format!("/campaigns/{id}")).await;
    assert_eq!(status, 200, "{campaign}");
    let stats = &campaign["stats"];
    assert_eq!(
        (&stats["candidates"], &stats["labelled"], &stats["failed"]),
        (&json!(6), &json!(4), &json!(2)),
        "{stats}"
    );
    assert_eq!(stats["objects"], 3, "m1, m2 and TT are labelled: {stats}");
    assert_eq!(stats["best"]["value"], "GG");
    assert_eq!(stats["best"]["reward"], 5.0);
    assert_eq!(stats["best"]["entity"], "m2");

    // One row per object, ordered by the object's mean: m1's mean is (1 + 2 + 3) / 3 = 2,
    // below TT's 2.5 though its best candidate (CA, 3) is above.
    let labelled = object_page(&app, id, "status=labelled&order=reward").await;
    assert_eq!(
        labelled,
        vec![
            json!(["GG", "m2", 5.0, 1, 1]),
            json!(["TT", null, 2.5, 1, 1]),
            json!(["CA", "m1", 2.0, 3, 2]),
        ]
    );
    let paged = object_page(&app, id, "status=labelled&order=reward&limit=1&offset=2").await;
    assert_eq!(paged, vec![json!(["CA", "m1", 2.0, 3, 2])]);
    let all = object_page(&app, id, "order=reward").await;
    assert_eq!(all.len(), 5, "{all:?}");
    assert_eq!(&all[..3], &labelled[..], "failed objects come last");
    let mut failed = all[3..].to_vec();
    failed.sort_by_key(|row| row[0].to_string());
    assert_eq!(
        &failed[..],
        &[
            json!(["AAA", null, null, 1, 1]),
            json!(["TTT", "m3", null, 1, 1])
        ]
    );

    // Without `distinct`, every candidate with its own entity and figures.
    let (_, page) = app
        .get(&format!("/campaigns/{id}/candidates?order=reward&limit=2"))
        .await;
    let rows: Vec<serde_json::Value> = page["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .map(|c| json!([c["value"], c["entity"], c["mean_reward"], c["observations"]]))
        .collect();
    assert_eq!(
        rows,
        vec![json!(["GG", "m2", 5.0, 1]), json!(["CA", "m1", 3.0, 1])]
    );
    assert!(page["candidates"][0].get("replicates").is_none(), "{page}");

    let (status, err) = app
        .get(&format!("/campaigns/{id}/candidates?distinct=value"))
        .await;
    assert_eq!(status, 400, "{err}");
    assert_error(&err, "invalid_value");
}
on_both_backends!(
    replicates_sharing_an_entity_are_one_object,
    replicates_sharing_an_entity_are_one_object
);

async fn objects_follow_minimize(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_campaign(sequence_campaign(false)).await;
    post_object_labels(&app, id).await;
    // Lower is better: m1's best candidate is AC (mean 1.5), and m1 (mean 2) comes first.
    let labelled = object_page(&app, id, "status=labelled&order=reward").await;
    assert_eq!(
        labelled,
        vec![
            json!(["AC", "m1", 2.0, 3, 2]),
            json!(["TT", null, 2.5, 1, 1]),
            json!(["GG", "m2", 5.0, 1, 1]),
        ]
    );
    let (_, campaign) = app.get(&format!("/campaigns/{id}")).await;
    assert_eq!(campaign["stats"]["best"]["value"], "AC", "{campaign}");
    assert_eq!(campaign["stats"]["best"]["entity"], "m1");
    // Candidates one by one: smallest mean first, the unmeasured (failed) ones last.
    let (status, page) = app
        .get(&format!("/campaigns/{id}/candidates?order=reward"))
        .await;
    assert_eq!(status, 200, "{page}");
    let rows: Vec<serde_json::Value> = page["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .map(|c| json!([c["value"], c["mean_reward"]]))
        .collect();
    assert_eq!(
        &rows[..4],
        &[
            json!(["AC", 1.5]),
            json!(["TT", 2.5]),
            json!(["CA", 3.0]),
            json!(["GG", 5.0])
        ]
    );
    assert_eq!(rows.len(), 6, "{rows:?}");
    assert!(rows[4..].iter().all(|r| r[1].is_null()), "{rows:?}");
}
on_both_backends!(objects_follow_minimize, objects_follow_minimize);

async fn without_entities_every_labelled_candidate_is_an_object(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_campaign(sequence_campaign(true)).await;
    let (_, fresh) = app.get(&format!("/campaigns/{id}")).await;
    assert_eq!(fresh["stats"]["objects"], 0, "{fresh}");
    let body = json!({"labels": [
        {"campaign_id": id, "value": "AC", "reward": 1.0},
        {"campaign_id": id, "value": "AC", "reward": 2.0},
        {"campaign_id": id, "value": "CA", "reward": 0.5},
        {"campaign_id": id, "value": "GG", "failed": true},
    ]});
    let (status, outcome) = app.post_json("/labels", &body).await;
    assert_eq!(status, 200, "{outcome}");
    let (_, campaign) = app.get(&format!("/campaigns/{id}")).await;
    let stats = &campaign["stats"];
    assert_eq!(
        (&stats["labelled"], &stats["objects"]),
        (&json!(2), &json!(2))
    );
    assert_eq!(stats["best"]["entity"], serde_json::Value::Null, "{stats}");
    let objects = object_page(&app, id, "order=reward").await;
    assert_eq!(
        objects,
        vec![
            json!(["AC", null, 1.5, 2, 1]),
            json!(["CA", null, 0.5, 1, 1]),
            json!(["GG", null, null, 1, 1]),
        ]
    );
}
on_both_backends!(
    without_entities_every_labelled_candidate_is_an_object,
    without_entities_every_labelled_candidate_is_an_object
);
