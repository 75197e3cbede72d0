//! `GET /campaigns/{id}/model`: the campaign's model as the trainer left it: status, newest
//! checkpoint, and the history of training runs (SPEC §4).
//!
//! Thin: parses the id and returns the store's overview.

use super::campaigns::parse_id;
use super::error::ApiError;
use super::AppState;
use crate::store::training::ModelOverview;
use axum::extract::{Path, State};
use axum::Json;

/// `200 {"version", "status", "error", "trained_on_labels", "steps", "loss", "proxy",
/// "updated_at", "history": [...]}`; 404 for an unknown or malformed campaign id.
#[utoipa::path(
    get,
    path = "/campaigns/{id}/model",
    operation_id = "get_model",
    tag = "model",
    summary = "The campaign's model: status, newest checkpoint, training runs",
    params(("id" = i64, Path, description = "Campaign id; anything but a positive integer is 404")),
    responses(
        (status = 200, description = "The model", body = super::openapi::ModelOverview),
        (status = 404, description = "`not_found`: unknown campaign", body = super::error::ErrorBody),
        (status = 500, description = "`internal`", body = super::error::ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(campaign_id = %id))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ModelOverview>, ApiError> {
    let id = parse_id(&id, "campaign")?;
    Ok(Json(state.store.model_overview(id).await?))
}
