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

#[tokio::test]
async fn healthz_is_503_when_postgres_is_unreachable() {
    // PostgreSQL only: an open SQLite file cannot become unreachable under a running server.
    if crate::helpers::skip_postgres().await {
        return;
    }
    let db = crate::helpers::TestDatabase::create(Backend::Postgres).await;
    let app = TestApp::spawn_on(&db.url).await;
    assert_eq!(app.get("/healthz").await.0, 200);
    let name = db
        .url
        .rsplit('/')
        .next()
        .expect("database name")
        .to_string();
    let admin = sqlx::PgPool::connect(&crate::helpers::postgres_admin_url())
        .await
        .expect("admin");
    sqlx::query(&format!("drop database {name} with (force)"))
        .execute(&admin)
        .await
        .expect("drop");
    let (status, body) = app.get("/healthz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["database"], "unreachable");
}

async fn a_wrong_method_is_405_in_the_error_shape(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let resp = app
        .client
        .delete(app.url("/campaigns"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 405);
    let body: serde_json::Value = resp.json().await.expect("json body");
    crate::helpers::assert_error(&body, "method_not_allowed");
}
on_both_backends!(
    a_wrong_method_is_405,
    a_wrong_method_is_405_in_the_error_shape
);
