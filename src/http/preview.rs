//! `GET /campaigns/{id}/model/sample?n=&seed=`: what the newest model would propose, drawn
//! with a given seed and stored nowhere. Useful to inspect a model, and the way to check
//! that a restarted server resumed from the same checkpoint (same seed, same values).

use super::campaigns::parse_id;
use super::error::ApiError;
use super::extract::PathText;
use super::AppState;
use crate::error::Error;
use crate::service::models;
use crate::service::rounds::parse_stored;
use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Query of the preview.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PreviewQuery {
    /// Number of draws, 1..=1000.
    #[serde(default = "default_n")]
    #[param(minimum = 1, maximum = 1000, default = 10)]
    pub n: usize,
    /// Seed of the draws, 0..=2^63-1: the same checkpoint and seed give the same values.
    #[serde(default)]
    #[param(default = 0)]
    pub seed: u64,
}

/// The body of the preview.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelSample {
    pub campaign_id: i64,
    /// The checkpoint drawn from; 0: the uniform policy.
    pub model_version: i64,
    pub seed: u64,
    /// `n` values, repeats possible; none is stored.
    #[schema(value_type = Vec<super::CandidateValue>)]
    pub values: Vec<Value>,
}

fn default_n() -> usize {
    10
}

#[utoipa::path(
    get,
    path = "/campaigns/{id}/model/sample",
    operation_id = "sample_model",
    tag = "model",
    summary = "Draw values from the newest model without storing them",
    params(("id" = i64, Path, minimum = 1, description = "Campaign id"), PreviewQuery),
    responses(
        (status = 200, description = "The values drawn", body = ModelSample),
        (status = 400, description = "`invalid_value`: `n` or `seed` out of range, `n` needing more memory than `--max-step-memory`, or a bad or unknown query parameter", body = super::error::ErrorBody),
        (status = 404, description = "`not_found`: unknown campaign", body = super::error::ErrorBody),
        (status = 500, description = "`internal`", body = super::error::ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn sample(
    State(state): State<AppState>,
    PathText(id): PathText,
    query: Result<Query<PreviewQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ModelSample>, ApiError> {
    let id = parse_id(&id, "campaign")?;
    let Query(query) = query.map_err(|e| Error::invalid("query", e.body_text()))?;
    // The document (and clients in languages without unsigned integers) take a seed as a
    // signed 64-bit integer.
    if i64::try_from(query.seed).is_err() {
        return Err(Error::invalid("seed", format!("must be in 0..={}", i64::MAX)).into());
    }
    let (version, values) = models::sample_preview(&state, id, query.n, query.seed).await?;
    Ok(Json(ModelSample {
        campaign_id: id,
        model_version: version,
        seed: query.seed,
        values: values.iter().map(|v| parse_stored(v)).collect(),
    }))
}
