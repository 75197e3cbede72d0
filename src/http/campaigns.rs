//! `/campaigns`: create, list, read.

use super::error::ApiError;
use super::extract::ApiJson;
use super::AppState;
use crate::domain::campaign::{Campaign, NewCampaign};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

#[tracing::instrument(skip_all)]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewCampaign>,
) -> Result<(StatusCode, Json<Campaign>), ApiError> {
    let spec = body.validate()?;
    let campaign = state.store.insert_campaign(&spec).await?;
    Ok((StatusCode::CREATED, Json(campaign)))
}

#[tracing::instrument(skip_all)]
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let campaigns = state.store.campaigns().await?;
    Ok(Json(json!({ "campaigns": campaigns })))
}

#[tracing::instrument(skip_all, fields(campaign_id = id))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Campaign>, ApiError> {
    let id = parse_id(&id, "campaign")?;
    Ok(Json(state.store.campaign(id).await?))
}

/// Ids are positive integers; anything else cannot name a resource.
pub(super) fn parse_id(raw: &str, what: &'static str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::NotFound(format!("{what} {raw} not found")))
}
