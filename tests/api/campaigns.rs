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

async fn unknown_campaign_is_404(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for path in ["/campaigns/999", "/campaigns/abc", "/campaigns/-1"] {
        let (status, err) = app.get(path).await;
        assert_eq!(status, 404, "{path}");
        assert_error(&err, "not_found");
    }
}
on_both_backends!(unknown_campaign_is_404, unknown_campaign_is_404);
