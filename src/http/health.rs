//! `/healthz`: liveness and database reachability; open even when a token is required.

use super::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

/// The body of `/healthz` (documentation of the JSON built below).
#[derive(Debug, utoipa::ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` when the database is unreachable.
    #[schema(example = "ok")]
    pub status: String,
    /// `ok` or `unreachable`.
    #[schema(example = "ok")]
    pub database: String,
}

#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "health",
    summary = "Liveness and database reachability",
    responses(
        (status = 200, description = "Serving, database reachable", body = Health,
            example = json!({"status": "ok", "database": "ok"})),
        (status = 503, description = "Serving, database unreachable", body = Health,
            example = json!({"status": "degraded", "database": "unreachable"})),
    )
)]
pub async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    if state.store.ping().await {
        (
            StatusCode::OK,
            Json(json!({ "status": "ok", "database": "ok" })),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "degraded", "database": "unreachable" })),
        )
    }
}
