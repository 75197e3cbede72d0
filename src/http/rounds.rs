//! `/rounds`: propose a batch, read a round with its labels, abandon a round.

use super::campaigns::parse_id;
use super::error::ApiError;
use super::extract::ApiJson;
use super::extract::PathText;
use super::AppState;
use crate::domain::round::{Round, RoundRequest};
use crate::service::rounds::{self, parse_stored, CandidateWithLabels, RoundWithLabels};
use crate::service::Written;
use crate::store::LabelRow;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use serde_json::Value;

#[utoipa::path(
    post,
    path = "/rounds",
    operation_id = "create_round",
    tag = "rounds",
    summary = "Propose a batch of new candidates",
    request_body(content = RoundRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "A new round", body = Round),
        (status = 200, description = "The round that already holds this `key`; nothing stored", body = Round),
        (status = 400, description = "`malformed_json`, `invalid_body` or `invalid_value` (also `batch_size` when drawing that many would need more memory than `--max-step-memory`)", body = super::error::ErrorBody),
        (status = 404, description = "`not_found`: unknown campaign", body = super::error::ErrorBody),
        (status = 413, description = "`payload_too_large`", body = super::error::ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not JSON", body = super::error::ErrorBody),
        (status = 500, description = "`internal`", body = super::error::ErrorBody),
        (status = 503, description = "`unavailable`: `wait_for_model` timed out, the campaign's training failed, or the server is shutting down; nothing stored", body = super::error::ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(campaign_id = body.campaign_id))]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RoundRequest>,
) -> Result<(StatusCode, Json<Round>), ApiError> {
    Ok(match rounds::create_round(&state, body).await? {
        Written::Created(round) => (StatusCode::CREATED, Json(round)),
        Written::Existing(round) => (StatusCode::OK, Json(round)),
    })
}

/// A round with the measurements of its candidates.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RoundDetail {
    pub id: i64,
    pub campaign_id: i64,
    pub number: i64,
    pub model_version: i64,
    pub batch_size: i64,
    pub exhausted: bool,
    #[schema(required)]
    pub key: Option<String>,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub candidates: Vec<RoundCandidate>,
}

/// A candidate of a round with its labels.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RoundCandidate {
    pub id: i64,
    #[schema(value_type = crate::domain::CandidateValue)]
    pub value: Value,
    pub status: super::candidates::CandidateStatus,
    /// Mean of its successful observations; null before any.
    #[schema(required)]
    pub mean_reward: Option<f64>,
    /// Successful and failed observations.
    pub observations: i64,
    /// How the candidate was made; null when proposed before sources were recorded.
    #[schema(value_type = Option<crate::domain::round::CandidateSource>, required)]
    pub source: Option<String>,
    /// Every label of the candidate, oldest first.
    pub labels: Vec<StoredLabel>,
}

/// One stored observation.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StoredLabel {
    /// Null for a failed label.
    #[schema(required)]
    pub reward: Option<f64>,
    pub failed: bool,
    #[schema(required)]
    pub error: Option<String>,
    #[schema(required)]
    pub key: Option<String>,
    /// The JSON the client sent with the label.
    #[schema(required)]
    pub metadata: Option<Value>,
    /// RFC 3339, UTC.
    pub created_at: String,
}

#[utoipa::path(
    get,
    path = "/rounds/{id}",
    operation_id = "get_round",
    tag = "rounds",
    summary = "Read a round, each candidate with its labels",
    params(("id" = i64, Path, minimum = 1, description = "Round id; anything but a positive integer is 404")),
    responses(
        (status = 200, description = "The round", body = RoundDetail),
        (status = 404, description = "`not_found`: unknown round", body = super::error::ErrorBody),
        (status = 500, description = "`internal`", body = super::error::ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn get(
    State(state): State<AppState>,
    PathText(id): PathText,
) -> Result<Json<RoundDetail>, ApiError> {
    let id = parse_id(&id, "round")?;
    Ok(Json(rounds::round_detail(&state, id).await?.into()))
}

#[utoipa::path(
    post,
    path = "/rounds/{id}/abandon",
    operation_id = "abandon_round",
    tag = "rounds",
    summary = "Mark a round's still-pending candidates abandoned",
    params(("id" = i64, Path, minimum = 1, description = "Round id")),
    responses(
        (status = 200, description = "The round after abandoning", body = RoundDetail),
        (status = 404, description = "`not_found`: unknown round", body = super::error::ErrorBody),
        (status = 500, description = "`internal`", body = super::error::ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn abandon(
    State(state): State<AppState>,
    PathText(id): PathText,
) -> Result<Json<RoundDetail>, ApiError> {
    let id = parse_id(&id, "round")?;
    Ok(Json(rounds::abandon_round(&state, id).await?.into()))
}

impl From<RoundWithLabels> for RoundDetail {
    fn from(stored: RoundWithLabels) -> Self {
        let round = stored.round;
        Self {
            id: round.id,
            campaign_id: round.campaign_id,
            number: round.number,
            model_version: round.model_version,
            batch_size: round.batch_size,
            exhausted: round.exhausted,
            key: round.key,
            created_at: round.created_at,
            candidates: stored.candidates.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<CandidateWithLabels> for RoundCandidate {
    fn from(stored: CandidateWithLabels) -> Self {
        let c = stored.candidate;
        Self {
            id: c.id,
            value: parse_stored(&c.value),
            status: super::candidates::CandidateStatus::stored(&c.status),
            mean_reward: c.mean_reward,
            observations: c.n_success + c.n_failed,
            source: c.source,
            labels: stored.labels.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<LabelRow> for StoredLabel {
    fn from(label: LabelRow) -> Self {
        Self {
            reward: label.reward,
            failed: label.failed,
            error: label.error,
            key: label.key,
            metadata: label.metadata.as_deref().map(parse_stored),
            created_at: label.created_at,
        }
    }
}
