//! `/healthz`: liveness and database reachability; open even when a token is required.

use super::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;

/// The body of `/healthz`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` when the database is unreachable.
    #[schema(example = "ok")]
    pub status: &'static str,
    /// `ok` or `unreachable`.
    #[schema(example = "ok")]
    pub database: &'static str,
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
pub async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    if state.store.ping().await {
        let health = Health {
            status: "ok",
            database: "ok",
        };
        (StatusCode::OK, Json(health))
    } else {
        let health = Health {
            status: "degraded",
            database: "unreachable",
        };
        (StatusCode::SERVICE_UNAVAILABLE, Json(health))
    }
}
