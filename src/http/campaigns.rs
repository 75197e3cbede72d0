//! `/campaigns`: create, list, read.

use super::error::ApiError;
use super::extract::ApiJson;
use super::rounds::parse_stored;
use super::AppState;
use crate::domain::campaign::{Campaign, NewCampaign};
use crate::store::CandidateStatus;
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

#[tracing::instrument(skip_all)]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id, "campaign")?;
    let campaign = state.store.campaign(id).await?;
    let stats = state.store.stats(id).await?;
    let best = state
        .store
        .list_candidates(id, Some(CandidateStatus::Labelled), true, campaign.spec.reward.maximize, 1, 0)
        .await?
        .into_iter()
        .next()
        .map(|c| json!({ "candidate_id": c.id, "value": parse_stored(&c.value), "reward": c.mean_reward }));
    let mut body =
        serde_json::to_value(&campaign).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut stats = serde_json::to_value(stats).map_err(|e| ApiError::Internal(e.to_string()))?;
    stats["best"] = best.unwrap_or(Value::Null);
    body["stats"] = stats;
    Ok(Json(body))
}

/// Ids are positive integers; anything else cannot name a resource.
pub(super) fn parse_id(raw: &str, what: &'static str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::NotFound(format!("{what} {raw} not found")))
}
