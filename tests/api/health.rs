use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;
use serde_json::json;

async fn healthz_reports_the_database(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = app.get("/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"status": "ok", "database": "ok"}));
}
on_both_backends!(
    healthz_reports_the_database_ok,
    healthz_reports_the_database
);

async fn unknown_route_is_a_404_in_the_error_shape(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = app.get("/no/such/thing").await;
    assert_eq!(status, 404);
    crate::helpers::assert_error(&body, "not_found");
}
on_both_backends!(
    unknown_route_is_a_404,
    unknown_route_is_a_404_in_the_error_shape
);
