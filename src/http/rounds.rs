//! `/rounds`: propose a batch, read a round with its labels, abandon a round.

use super::campaigns::parse_id;
use super::error::ApiError;
use super::extract::ApiJson;
use super::extract::PathText;
use super::AppState;
use crate::domain::round::NewRound;
use crate::service::rounds::{
    self, parse_stored, CandidateWithLabels, RoundWithCandidates, RoundWithLabels,
};
use crate::service::Written;
use crate::store::LabelRow;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The body of `POST /rounds`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoundRequest {
    #[schema(minimum = 1)]
    pub campaign_id: i64,
    /// Candidates wanted, 1..=10000.
    #[schema(minimum = 1, maximum = 10000)]
    pub batch_size: i64,
    /// Idempotency key, 1..=200 bytes: a repeated key answers 200 with the same round.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200)]
    pub key: Option<String>,
    /// Wait until the model was trained on every label accepted before the request (503
    /// after the server's timeout, or at once when the campaign's training failed).
    #[serde(default)]
    pub wait_for_model: bool,
    /// Sampling temperature for this round only, in (0, 1000]; default: the campaign's.
    #[serde(default)]
    #[schema(exclusive_minimum = 0.0, maximum = 1000.0)]
    pub temperature: Option<f64>,
    /// Uniform mixing weight for this round only, in [0, 1]; default: the campaign's.
    #[serde(default)]
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub epsilon: Option<f64>,
    /// Smallest distance between two candidates of the batch, at least 0; default: none.
    #[serde(default)]
    #[schema(minimum = 0.0)]
    pub min_distance: Option<f64>,
}

impl From<RoundRequest> for NewRound {
    fn from(request: RoundRequest) -> Self {
        Self {
            campaign_id: request.campaign_id,
            batch_size: request.batch_size,
            key: request.key,
            wait_for_model: request.wait_for_model,
            temperature: request.temperature,
            epsilon: request.epsilon,
            min_distance: request.min_distance,
        }
    }
}

/// A proposed candidate in a round response.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProposedCandidate {
    pub id: i64,
    #[schema(value_type = super::CandidateValue)]
    pub value: Value,
    /// The proxy's prediction when the round proposed it, once a proxy exists; null until
    /// then.
    #[schema(required)]
    pub proxy: Option<ProxyEstimate>,
    /// How the candidate was made; null for candidates proposed before sources were
    /// recorded.
    #[schema(value_type = Option<CandidateSource>, required)]
    pub source: Option<String>,
}

/// How a candidate was made (documentation: stored and answered as these texts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub enum CandidateSource {
    /// Drawn from the uniform-action policy: before any model, when a round's exploration
    /// escalated to uniform, or listed from a small space whose sampling fell short.
    #[serde(rename = "uniform")]
    Uniform,
    /// Sampled from the campaign's trained GFlowNet.
    #[serde(rename = "policy")]
    Policy,
    /// Sampled from the GFlowNet, then moved by local search.
    #[serde(rename = "policy+local")]
    PolicyLocal,
    /// Made by local search around the best labelled candidates (mutations, crossovers and
    /// a short walk on the proxy's reward).
    #[serde(rename = "local")]
    Local,
    /// A best labelled candidate with some of its moves redrawn by the GFlowNet
    /// (conservative search).
    #[serde(rename = "elite+policy")]
    ElitePolicy,
    /// First seen in a label: a value no round proposed (an initial data set).
    #[serde(rename = "imported")]
    Imported,
}

/// What the proxy predicted for a candidate, in the oracle's units.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ProxyEstimate {
    /// Mean over the ensemble's members.
    pub mean: f64,
    /// Standard deviation over the members: the proxy's uncertainty.
    pub std: f64,
}

/// A round as `POST /rounds` returns it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Round {
    pub id: i64,
    pub campaign_id: i64,
    /// 1 for the campaign's first round, then one more for each.
    pub number: i64,
    /// The checkpoint the batch was drawn from; 0: the uniform policy.
    pub model_version: i64,
    /// The batch size asked for; `candidates` may be shorter when `exhausted`.
    pub batch_size: i64,
    /// Every unseen value of the space is in this batch and the batch is still short.
    pub exhausted: bool,
    #[schema(required)]
    pub key: Option<String>,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub candidates: Vec<ProposedCandidate>,
}

impl From<RoundWithCandidates> for Round {
    fn from(RoundWithCandidates { round, candidates }: RoundWithCandidates) -> Self {
        Self {
            id: round.id,
            campaign_id: round.campaign_id,
            number: round.number,
            model_version: round.model_version,
            batch_size: round.batch_size,
            exhausted: round.exhausted,
            key: round.key,
            created_at: round.created_at,
            candidates: candidates
                .into_iter()
                .map(|c| ProposedCandidate {
                    id: c.id,
                    value: parse_stored(&c.value),
                    proxy: c
                        .proxy_mean
                        .zip(c.proxy_std)
                        .map(|(mean, std)| ProxyEstimate { mean, std }),
                    source: c.source,
                })
                .collect(),
        }
    }
}

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
    Ok(match rounds::create_round(&state, body.into()).await? {
        Written::Created(round) => (StatusCode::CREATED, Json(round.into())),
        Written::Existing(round) => (StatusCode::OK, Json(round.into())),
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
    #[schema(value_type = super::CandidateValue)]
    pub value: Value,
    pub status: super::candidates::CandidateStatus,
    /// Mean of its successful observations; null before any.
    #[schema(required)]
    pub mean_reward: Option<f64>,
    /// Successful and failed observations.
    pub observations: i64,
    /// How the candidate was made; null when proposed before sources were recorded.
    #[schema(value_type = Option<CandidateSource>, required)]
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
