//! `/rounds`: propose a batch, read a round with its labels, abandon a round.

use super::campaigns::parse_id;
use super::error::ApiError;
use super::extract::ApiJson;
use super::AppState;
use crate::domain::campaign::{RewardSpec, Selection, TrainingSpec};
use crate::domain::round::{ProposedCandidate, ProxyEstimate, Round, RoundRequest};
use crate::gfn::propose::{canonical, propose, BatchRule, ProposalRequest, Screening};
use crate::gfn::State as SpaceState;
use crate::gfn::{Exploration, GflowNet, GfnConfig, GfnError, Source, Space};
use crate::model::Model;
use crate::store::{ProposedValue, RoundInsert, RoundRow};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use rand::SeedableRng;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

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
        (status = 400, description = "`malformed_json`, `invalid_body` or `invalid_value`", body = super::error::ErrorBody),
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
) -> Result<(StatusCode, Json<Value>), ApiError> {
    body.validate()?;
    let campaign = state.store.campaign(body.campaign_id).await?;
    if let Some(key) = &body.key {
        if let Some(id) = state.store.round_id_by_key(campaign.id, key).await? {
            return Ok((StatusCode::OK, Json(round_json(&state, id).await?)));
        }
    }
    if body.wait_for_model {
        // Failed observations count: a model trained before a batch that failed entirely
        // would propose the same failures again.
        let needed = state.store.observation_count(campaign.id).await?;
        let timeout = Duration::from_secs_f64(state.config.wait_timeout_seconds);
        state
            .trainer
            .wait_for_model(campaign.id, needed, timeout)
            .await?;
    }
    let space = campaign.spec.build_space()?;
    let model = state.trainer.model(campaign.id, space.clone()).await?;
    let training = campaign.spec.training;
    let sampler = Sampler {
        space: space.clone(),
        model: model.as_ref().map(|(_, m)| m.clone()),
        reward: campaign.spec.reward,
        training,
        explore: Exploration {
            temperature: body.temperature.unwrap_or(training.temperature) as f32,
            epsilon: body.epsilon.unwrap_or(training.epsilon) as f32,
        },
        min_distance: body.min_distance,
    };
    let n = body.batch_size as usize;
    let (values, mut exhausted) = sampler.draw(&state, campaign.id, n, &[], 0).await?;
    let version = model.as_ref().map_or(0, |(v, _)| *v);
    let inserted = state
        .store
        .insert_round(
            campaign.id,
            body.key.as_deref(),
            version,
            body.batch_size,
            exhausted,
            &values,
        )
        .await?;
    let id = match inserted {
        RoundInsert::Existing(id) => {
            return Ok((StatusCode::OK, Json(round_json(&state, id).await?)))
        }
        RoundInsert::Created(id) => id,
    };
    // Concurrent rounds of the campaign may have taken some of the values first: draw again
    // for the shortfall, a few times, before answering with a short batch.
    for attempt in 1..=6u64 {
        let current = state.store.round_candidates(id).await?;
        if current.len() >= n || exhausted {
            break;
        }
        let apart: Vec<SpaceState> = current
            .iter()
            .filter_map(|c| serde_json::from_str(&c.value).ok())
            .filter_map(|v| space.parse_value(&v).ok())
            .collect();
        // The round id separates the streams of rounds drawing at the same moment.
        let salt = attempt ^ (id as u64).wrapping_mul(0x2545_F491_4F6C_DD1D);
        let (more, now_exhausted) = sampler
            .draw(&state, campaign.id, n - current.len(), &apart, salt)
            .await?;
        exhausted = now_exhausted;
        state
            .store
            .top_up_round(campaign.id, id, body.batch_size, exhausted, &more)
            .await?;
    }
    let round = round_json(&state, id).await?;
    let candidates = round["candidates"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    state.metrics.round_created(candidates.len());
    let mut by_source: BTreeMap<Source, usize> = BTreeMap::new();
    for c in candidates {
        if let Some(source) = c["source"].as_str().and_then(|s| s.parse().ok()) {
            *by_source.entry(source).or_default() += 1;
        }
    }
    for (source, n) in by_source {
        state.metrics.candidates_proposed(source, n);
    }
    Ok((StatusCode::CREATED, Json(round)))
}

/// Everything needed to draw values for one round.
struct Sampler {
    space: Arc<dyn Space>,
    model: Option<Arc<Model>>,
    reward: RewardSpec,
    training: TrainingSpec,
    explore: Exploration,
    min_distance: Option<f64>,
}

impl Sampler {
    /// Draws up to `n` values the campaign does not have, with the proxy's prediction for
    /// each once a proxy exists, on a blocking thread under the sampling semaphore. The seed
    /// mixes the campaign's with the number of values it holds and a salt: reproducible, and
    /// a new stream for every draw.
    async fn draw(
        &self,
        state: &AppState,
        campaign_id: i64,
        n: usize,
        apart_from: &[SpaceState],
        salt: u64,
    ) -> Result<(Vec<ProposedValue>, bool), ApiError> {
        let seen: HashSet<String> = state
            .store
            .campaign_values(campaign_id)
            .await?
            .into_iter()
            .collect();
        let seed = self.training.seed
            ^ (seen.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ salt.wrapping_mul(0xD1B5_4A32_D192_ED03);
        let permit = state
            .sampling
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApiError::Unavailable("server is shutting down".into()))?;
        let space = self.space.clone();
        let model = self.model.clone();
        let reward = self.reward;
        let training = self.training;
        let explore = self.explore;
        let min_distance = self.min_distance;
        let apart_from = apart_from.to_vec();
        let proposal = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let uniform_config = GfnConfig {
                hidden: 4,
                layers: 1,
                ..GfnConfig::default()
            };
            let uniform = GflowNet::new(space.clone(), uniform_config, &mut rng)?;
            let request = ProposalRequest {
                n,
                seen: &seen,
                explore,
                min_distance,
                apart_from: &apart_from,
            };
            let surrogate = model.as_deref().and_then(|m| m.surrogate.as_ref());
            let score = |states: &[SpaceState]| -> Result<Vec<f64>, GfnError> {
                let Some(s) = surrogate else {
                    return Ok(vec![0.0; states.len()]);
                };
                let predictions = s.predict(space.as_ref(), states).map_err(GfnError::Score)?;
                Ok(s.log_rewards(&reward, &predictions)
                    .into_iter()
                    .map(f64::from)
                    .collect())
            };
            let screening = match (model.as_deref(), surrogate) {
                (Some(m), Some(_)) => Some(Screening {
                    pool: training.pool,
                    local_share: training.pool_local_search,
                    elites: &m.elites,
                    spread: training.pool_spread,
                    walk: training.pool_walk,
                    score: &score,
                    refine: training.refine,
                    backtrack: training.refine_backtrack,
                    rule: match training.selection {
                        Selection::Proportional => BatchRule::Proportional,
                        Selection::Greedy => BatchRule::Greedy,
                    },
                }),
                _ => None,
            };
            let proposal = propose(
                space.as_ref(),
                model.as_deref().map(|m| &m.gfn),
                &uniform,
                request,
                screening,
                &mut rng,
            )?;
            let estimates: Vec<Option<(f64, f64)>> = match surrogate {
                Some(s) => s
                    .predict(space.as_ref(), &proposal.states)
                    .map_err(GfnError::Score)?
                    .into_iter()
                    .map(|p| Some((p.mean, p.std)))
                    .collect(),
                None => vec![None; proposal.states.len()],
            };
            let values: Vec<ProposedValue> = proposal
                .states
                .iter()
                .zip(estimates)
                .zip(&proposal.sources)
                .map(|((x, proxy), &source)| ProposedValue {
                    value: canonical(space.as_ref(), x),
                    proxy,
                    source,
                })
                .collect();
            Ok::<_, GfnError>((values, proposal.exhausted))
        })
        .await
        .map_err(|e| ApiError::Internal(format!("sampling task failed: {e}")))?
        .map_err(|e| ApiError::Internal(format!("sampling failed: {e}")))?;
        Ok(proposal)
    }
}

/// The round as `POST /rounds` returns it.
async fn round_json(state: &AppState, id: i64) -> Result<Value, ApiError> {
    let row = state.store.round(id).await?;
    let candidates = state.store.round_candidates(id).await?;
    let round = Round {
        id: row.id,
        campaign_id: row.campaign_id,
        number: row.number,
        model_version: row.model_version,
        batch_size: row.batch_size,
        exhausted: row.exhausted,
        key: row.key,
        created_at: row.created_at,
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
    };
    serde_json::to_value(round).map_err(|e| ApiError::Internal(e.to_string()))
}

/// Values are stored as the canonical JSON text the service wrote itself.
pub(super) fn parse_stored(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::String(text.to_string()))
}

/// A round with the measurements of its candidates (documentation of the JSON built in
/// `round_with_labels`).
#[derive(Debug, utoipa::ToSchema)]
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
#[derive(Debug, utoipa::ToSchema)]
pub struct RoundCandidate {
    pub id: i64,
    #[schema(value_type = crate::domain::CandidateValue)]
    pub value: Value,
    pub status: super::candidates::CandidateStatusDoc,
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
#[derive(Debug, utoipa::ToSchema)]
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
    params(("id" = i64, Path, description = "Round id; anything but a positive integer is 404")),
    responses(
        (status = 200, description = "The round", body = RoundDetail),
        (status = 404, description = "`not_found`: unknown round", body = super::error::ErrorBody),
        (status = 500, description = "`internal`", body = super::error::ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id, "round")?;
    let row = state.store.round(id).await?;
    Ok(Json(round_with_labels(&state, row).await?))
}

#[utoipa::path(
    post,
    path = "/rounds/{id}/abandon",
    operation_id = "abandon_round",
    tag = "rounds",
    summary = "Mark a round's still-pending candidates abandoned",
    params(("id" = i64, Path, description = "Round id")),
    responses(
        (status = 200, description = "The round after abandoning", body = RoundDetail),
        (status = 404, description = "`not_found`: unknown round", body = super::error::ErrorBody),
        (status = 500, description = "`internal`", body = super::error::ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn abandon(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id, "round")?;
    state.store.abandon_round(id).await?;
    let row = state.store.round(id).await?;
    Ok(Json(round_with_labels(&state, row).await?))
}

async fn round_with_labels(state: &AppState, row: RoundRow) -> Result<Value, ApiError> {
    let candidates = state.store.round_candidates(row.id).await?;
    let labels = state.store.round_labels(row.id).await?;
    let candidates: Vec<Value> = candidates
        .into_iter()
        .map(|c| {
            let own: Vec<Value> = labels
                .iter()
                .filter(|l| l.candidate_id == c.id)
                .map(|l| {
                    json!({
                        "reward": l.reward, "failed": l.failed, "error": l.error, "key": l.key,
                        "metadata": l.metadata.as_deref().map(parse_stored),
                        "created_at": l.created_at,
                    })
                })
                .collect();
            json!({
                "id": c.id, "value": parse_stored(&c.value), "status": c.status,
                "mean_reward": c.mean_reward, "observations": c.n_success + c.n_failed,
                "source": c.source, "labels": own,
            })
        })
        .collect();
    Ok(json!({
        "id": row.id, "campaign_id": row.campaign_id, "number": row.number,
        "model_version": row.model_version, "batch_size": row.batch_size,
        "exhausted": row.exhausted, "key": row.key, "created_at": row.created_at,
        "candidates": candidates,
    }))
}
