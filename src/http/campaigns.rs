//! `/campaigns`: create, list, read.

use super::error::ApiError;
use super::extract::ApiJson;
use super::extract::PathText;
use super::settings::{Campaign, NewCampaign};
use super::AppState;
use crate::service::campaigns::{self, CampaignOverview};
use crate::service::rounds::parse_stored;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::Value;
use std::collections::HashMap;

/// The body of `GET /campaigns`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CampaignList {
    /// A page of the campaigns, oldest first.
    pub campaigns: Vec<Campaign>,
    pub limit: i64,
    pub offset: i64,
}

/// Most campaigns one page of `GET /campaigns` holds.
pub const MAX_CAMPAIGN_PAGE: i64 = 1000;

/// The query of `GET /campaigns` (documentation of what `list` parses by hand; any other
/// parameter is 400 `invalid_value`).
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CampaignsQuery {
    /// Page size.
    #[param(minimum = 0, maximum = 1000, default = 100)]
    pub limit: Option<i64>,
    /// Campaigns to skip.
    #[param(minimum = 0, default = 0)]
    pub offset: Option<i64>,
}

/// The body of `GET /campaigns/{id}`: the campaign with its counts and the state of its
/// model.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CampaignDetail {
    #[serde(flatten)]
    pub campaign: Campaign,
    pub stats: CampaignStats,
}

/// Counts of a campaign's candidates by status, its rounds, its best candidate and its model.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CampaignStats {
    pub candidates: i64,
    pub labelled: i64,
    pub failed: i64,
    pub pending: i64,
    pub abandoned: i64,
    pub rounds: i64,
    /// Distinct objects among the labelled candidates: each entity once, and each labelled
    /// candidate without an entity as an object of its own (equals `labelled` when no label
    /// names an entity).
    pub objects: i64,
    /// The labelled candidate with the best mean reward (per `reward.maximize`); null before
    /// any.
    #[schema(required)]
    pub best: Option<BestCandidate>,
    /// As `GET /campaigns/{id}/model` answers it (the campaign's own `model` holds the
    /// network settings).
    pub model: super::model::ModelOverview,
}

/// The best candidate of a campaign so far.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct BestCandidate {
    pub candidate_id: i64,
    #[schema(value_type = super::CandidateValue)]
    pub value: Value,
    /// Mean of its successful observations.
    pub reward: f64,
    /// Its entity; null when no label named one.
    #[schema(required)]
    pub entity: Option<String>,
}

#[utoipa::path(
    post,
    path = "/campaigns",
    operation_id = "create_campaign",
    tag = "campaigns",
    summary = "Create a campaign",
    request_body(content = NewCampaign, content_type = "application/json"),
    responses(
        (status = 201, description = "Created; every default filled in", body = Campaign),
        (status = 400, description = "`malformed_json`, `invalid_body` or `invalid_value` (also when a training step or a round of one candidate would need more memory than `--max-step-memory`: the field to lower, `training.batch_size` say, and the figures)", body = super::error::ErrorBody),
        (status = 413, description = "`payload_too_large`", body = super::error::ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not JSON", body = super::error::ErrorBody),
        (status = 500, description = "`internal`", body = super::error::ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewCampaign>,
) -> Result<(StatusCode, Json<Campaign>), ApiError> {
    let campaign = campaigns::create_campaign(&state, body.into()).await?;
    Ok((StatusCode::CREATED, Json(campaign.into())))
}

#[utoipa::path(
    get,
    path = "/campaigns",
    operation_id = "list_campaigns",
    tag = "campaigns",
    summary = "A page of the campaigns, oldest first",
    params(CampaignsQuery),
    responses(
        (status = 200, description = "The page", body = CampaignList),
        (status = 400, description = "`invalid_value`: a bad or unknown query parameter", body = super::error::ErrorBody),
        (status = 500, description = "`internal`", body = super::error::ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<CampaignList>, ApiError> {
    super::extract::only_params(&params, &["limit", "offset"])?;
    let limit = super::extract::integer_param(&params, "limit", 100, MAX_CAMPAIGN_PAGE)?;
    let offset = super::extract::integer_param(&params, "offset", 0, i64::MAX)?;
    let campaigns = campaigns::campaigns(&state, limit, offset).await?;
    Ok(Json(CampaignList {
        campaigns: campaigns.into_iter().map(Campaign::from).collect(),
        limit,
        offset,
    }))
}

#[utoipa::path(
    get,
    path = "/campaigns/{id}",
    operation_id = "get_campaign",
    tag = "campaigns",
    summary = "Read a campaign with its counts and model",
    params(("id" = i64, Path, minimum = 1, description = "Campaign id; anything but a positive integer is 404")),
    responses(
        (status = 200, description = "The campaign", body = CampaignDetail),
        (status = 404, description = "`not_found`: unknown campaign", body = super::error::ErrorBody),
        (status = 500, description = "`internal`", body = super::error::ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn get(
    State(state): State<AppState>,
    PathText(id): PathText,
) -> Result<Json<CampaignDetail>, ApiError> {
    let id = parse_id(&id, "campaign")?;
    Ok(Json(campaigns::campaign_overview(&state, id).await?.into()))
}

impl From<CampaignOverview> for CampaignDetail {
    fn from(overview: CampaignOverview) -> Self {
        let stats = overview.stats;
        Self {
            campaign: overview.campaign.into(),
            stats: CampaignStats {
                candidates: stats.candidates,
                labelled: stats.labelled,
                failed: stats.failed,
                pending: stats.pending,
                abandoned: stats.abandoned,
                rounds: stats.rounds,
                objects: stats.objects,
                best: overview.best.map(|(c, entity)| BestCandidate {
                    candidate_id: c.id,
                    value: parse_stored(&c.value),
                    // Only labelled candidates are listed, and they have a mean.
                    reward: c.mean_reward.unwrap_or(f64::NAN),
                    entity,
                }),
                model: overview.model.into(),
            },
        }
    }
}

/// Ids are positive integers; anything else cannot name a resource.
pub(super) fn parse_id(raw: &str, what: &'static str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::NotFound(format!("{what} {raw} not found")))
}
