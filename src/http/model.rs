//! `GET /campaigns/{id}/model`: the campaign's model as the trainer left it: status, newest
//! checkpoint, the history of training runs, and per-round figures of the recent
//! rounds: what each proposed, by source, what came back, and how well the proxy's
//! predictions stored at proposal time matched the measurements (the prospective figures,
//! see [`crate::proxy::prospective`]).
//!
//! The store returns bounded rows (the newest [`ROUND_FIGURES_LIMIT`] rounds); the
//! arithmetic, a sort per round, runs on a blocking thread because a window of large
//! batches can hold hundreds of thousands of outcomes.

use super::campaigns::parse_id;
use super::error::ApiError;
use super::extract::PathText;
use super::AppState;
use crate::proxy::prospective::{self, Outcome};
use crate::store::training::{self as stored, TrainingRunRow};
use crate::store::{ProposalOutcome, RoundTally, ROUND_FIGURES_LIMIT};
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// The model of a campaign as `GET /campaigns/{id}/model` answers it, and as the campaign's
/// `stats.model` embeds it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = ModelOverview)]
pub struct ModelOverview {
    /// Newest checkpoint version, 0 before any.
    pub version: i64,
    pub status: ModelStatus,
    /// Why the last run failed, when `status` is `failed`.
    #[schema(required)]
    pub error: Option<String>,
    /// Successful observations the newest checkpoint was trained on, 0 before any.
    pub trained_on_labels: i64,
    /// Observations the newest checkpoint was trained on, failed ones included, 0 before
    /// any. Every accepted label schedules training, and `wait_for_model` waits on this.
    pub trained_on_observations: i64,
    /// Total optimisation steps of the newest checkpoint.
    pub steps: i64,
    /// Loss reported with the newest checkpoint.
    #[schema(required)]
    pub loss: Option<f64>,
    /// Held-out quality of the newest checkpoint's proxy; null until a run measured one (it
    /// needs at least 10 labels).
    #[schema(required)]
    pub proxy: Option<ProxyQuality>,
    /// RFC 3339, UTC: latest of the newest checkpoint's creation and the newest run's start
    /// or finish; null before any training.
    #[schema(required)]
    pub updated_at: Option<String>,
    /// Training runs, newest first, at most 50.
    pub history: Vec<TrainingRun>,
}

/// Where a campaign's model stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModelStatus {
    /// No checkpoint and no run yet.
    Untrained,
    /// A run is in progress.
    Training,
    /// The newest run finished; rounds use its checkpoint.
    Ready,
    /// The last run failed; `error` says why.
    Failed,
}

/// One training run.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TrainingRun {
    /// The run's id, increasing in start order.
    pub id: i64,
    /// The trainer (process) that ran it.
    pub owner: String,
    pub status: RunStatus,
    /// Successful observations the run trained on.
    pub labels: i64,
    /// Observations the run trained on, failed ones included.
    pub observations: i64,
    /// Optimisation steps of this run alone.
    pub steps: i64,
    /// Mean loss of the run's last steps (succeeded runs only).
    #[schema(required)]
    pub loss: Option<f64>,
    /// The checkpoint version it wrote (succeeded runs only).
    #[schema(required)]
    pub version: Option<i64>,
    /// Why the run failed or was cancelled.
    #[schema(required)]
    pub error: Option<String>,
    /// RFC 3339, UTC.
    pub started_at: String,
    /// RFC 3339, UTC; null while running.
    #[schema(required)]
    pub finished_at: Option<String>,
    /// Held-out quality of the proxy the run fit; null when it fit none or had too few
    /// labels to hold some out.
    #[schema(required)]
    pub proxy: Option<ProxyQuality>,
}

/// How a training run ended, or that it has not yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

/// Held-out quality of a fit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProxyQuality {
    /// Spearman rank correlation of predicted and measured scores on the held-out labels.
    pub spearman: f64,
    /// Root mean squared error on the held-out labels, in the oracle's units.
    pub rmse: f64,
    /// Labels the evaluated copy was fit on.
    pub train: usize,
    /// Held-out labels it was scored on.
    pub test: usize,
}

/// The prospective figures of one set of outcomes (a round's). Every figure is null when
/// `n` is under [`MIN_OUTCOMES`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ProspectiveQuality {
    /// Proposals with a stored prediction and a successful observation.
    pub n: usize,
    /// Spearman rank correlation of predicted means and measured rewards (ties share their
    /// mean rank); null also when either side is constant, where it is undefined.
    #[schema(required)]
    pub spearman: Option<f64>,
    /// Root mean squared error of the predicted means, in the oracle's units.
    #[schema(required)]
    pub rmse: Option<f64>,
    /// Share of outcomes with `|reward - mean| <= std`; about 0.68 for a calibrated
    /// Gaussian spread.
    #[schema(required)]
    pub coverage_1sigma: Option<f64>,
    /// Share of outcomes with `|reward - mean| <= 2 std`; about 0.95 when calibrated.
    #[schema(required)]
    pub coverage_2sigma: Option<f64>,
}

/// A summary over several rounds' figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ProspectiveSummary {
    /// Rounds with figures (at least [`MIN_OUTCOMES`] outcomes).
    pub rounds: usize,
    /// Outcomes of those rounds.
    pub n: usize,
    /// Median of those rounds' Spearman correlations (the defined ones); null when none.
    #[schema(required)]
    pub median_spearman: Option<f64>,
    /// Median of those rounds' RMSE, oracle units; null when no round has figures.
    #[schema(required)]
    pub median_rmse: Option<f64>,
    /// 1σ coverage over every outcome of those rounds.
    #[schema(required)]
    pub coverage_1sigma: Option<f64>,
    /// 2σ coverage over every outcome of those rounds.
    #[schema(required)]
    pub coverage_2sigma: Option<f64>,
}

impl From<prospective::ProspectiveQuality> for ProspectiveQuality {
    fn from(q: prospective::ProspectiveQuality) -> Self {
        Self {
            n: q.n,
            spearman: q.spearman,
            rmse: q.rmse,
            coverage_1sigma: q.coverage_1sigma,
            coverage_2sigma: q.coverage_2sigma,
        }
    }
}

impl From<prospective::ProspectiveSummary> for ProspectiveSummary {
    fn from(s: prospective::ProspectiveSummary) -> Self {
        Self {
            rounds: s.rounds,
            n: s.n,
            median_spearman: s.median_spearman,
            median_rmse: s.median_rmse,
            coverage_1sigma: s.coverage_1sigma,
            coverage_2sigma: s.coverage_2sigma,
        }
    }
}

/// The proxy figures a run stored with its metrics; none when they do not read as such.
fn stored_quality(proxy: Option<serde_json::Value>) -> Option<ProxyQuality> {
    proxy.and_then(|v| serde_json::from_value(v).ok())
}

impl From<TrainingRunRow> for TrainingRun {
    fn from(run: TrainingRunRow) -> Self {
        Self {
            id: run.id,
            owner: run.owner,
            status: super::stored_status(&run.status, RunStatus::Failed),
            labels: run.labels,
            observations: run.observations,
            steps: run.steps,
            loss: run.loss,
            version: run.version,
            error: run.error,
            started_at: run.started_at,
            finished_at: run.finished_at,
            proxy: stored_quality(run.proxy),
        }
    }
}

impl From<stored::ModelOverview> for ModelOverview {
    fn from(model: stored::ModelOverview) -> Self {
        Self {
            version: model.version,
            status: super::stored_status(&model.status, ModelStatus::Failed),
            error: model.error,
            trained_on_labels: model.trained_on_labels,
            trained_on_observations: model.trained_on_observations,
            steps: model.steps,
            loss: model.loss,
            proxy: stored_quality(model.proxy),
            updated_at: model.updated_at,
            history: model.history.into_iter().map(TrainingRun::from).collect(),
        }
    }
}

/// One round's counts and the prospective figures of its proposals.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RoundFigures {
    /// The round's number in the campaign.
    pub number: i64,
    /// The checkpoint the round drew from; 0: the uniform policy.
    pub model_version: i64,
    /// Candidates the round holds.
    pub proposed: i64,
    /// Candidates by source (`uniform`, `policy`, `policy+local`, `local`, `elite+policy`; `unknown` for
    /// candidates proposed before sources were recorded); sources the round did not use are
    /// absent.
    pub sources: BTreeMap<String, i64>,
    /// Candidates with a successful observation.
    pub labelled: i64,
    /// Candidates with only failed observations.
    pub failed: i64,
    /// The proxy's predictions at proposal time against the measured mean rewards, over the
    /// round's candidates that have both.
    pub prospective: ProspectiveQuality,
}

/// The body of `GET /campaigns/{id}/model`: the overview with the recent rounds' figures.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ModelDetail {
    #[serde(flatten)]
    pub overview: ModelOverview,
    /// The checkpoint version rounds draw from now: `version` as a rule, an older one when
    /// the newest checkpoint cannot be loaded (the server logs a warning, and the next
    /// training run starts a fresh network); null before any checkpoint, or when none loads.
    #[schema(required)]
    pub serving_version: Option<i64>,
    /// Prospective figures over the rounds in `rounds` that have them: medians of the
    /// per-round Spearman and RMSE, coverage pooled over their candidates. Unlike `proxy`
    /// (a random split of the labels), these score predictions made before the labels
    /// existed, on the candidates the loop chose.
    pub prospective: ProspectiveSummary,
    /// The newest rounds, newest first, at most 50.
    pub rounds: Vec<RoundFigures>,
}

#[utoipa::path(
    get,
    path = "/campaigns/{id}/model",
    operation_id = "get_model",
    tag = "model",
    summary = "The campaign's model: status, newest checkpoint, training runs, per-round figures",
    params(("id" = i64, Path, minimum = 1, description = "Campaign id; anything but a positive integer is 404")),
    responses(
        (status = 200, description = "The model", body = ModelDetail),
        (status = 404, description = "`not_found`: unknown campaign", body = super::error::ErrorBody),
        (status = 500, description = "`internal`", body = super::error::ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(campaign_id = %id))]
pub async fn get(
    State(state): State<AppState>,
    PathText(id): PathText,
) -> Result<Json<ModelDetail>, ApiError> {
    let id = parse_id(&id, "campaign")?;
    let overview = state.store.model_overview(id).await?;
    let serving_version = crate::service::models::serving_version(&state, id).await?;
    let tallies = state
        .store
        .recent_round_tallies(id, ROUND_FIGURES_LIMIT)
        .await?;
    let outcomes = state
        .store
        .recent_round_outcomes(id, ROUND_FIGURES_LIMIT)
        .await?;
    let (rounds, prospective) =
        tokio::task::spawn_blocking(move || round_figures(tallies, &outcomes))
            .await
            .map_err(|e| ApiError::Internal(format!("round figures task failed: {e}")))?;
    Ok(Json(ModelDetail {
        overview: overview.into(),
        serving_version,
        prospective,
        rounds,
    }))
}

/// Each round's figures, in the order of `tallies`, and their summary. Outcomes of rounds
/// not in `tallies` are ignored.
pub fn round_figures(
    tallies: Vec<RoundTally>,
    outcomes: &[ProposalOutcome],
) -> (Vec<RoundFigures>, ProspectiveSummary) {
    let mut by_round: HashMap<i64, Vec<Outcome>> = HashMap::new();
    for o in outcomes {
        by_round.entry(o.round_number).or_default().push(Outcome {
            mean: o.proxy_mean,
            std: o.proxy_std,
            reward: o.mean_reward,
        });
    }
    let figures: Vec<(RoundTally, prospective::ProspectiveQuality)> = tallies
        .into_iter()
        .map(|t| {
            let outcomes = by_round.get(&t.number).map_or(&[][..], Vec::as_slice);
            let quality = prospective::quality(outcomes);
            (t, quality)
        })
        .collect();
    let qualities: Vec<prospective::ProspectiveQuality> = figures.iter().map(|(_, q)| *q).collect();
    let summary = prospective::summary(&qualities).into();
    let rounds = figures
        .into_iter()
        .map(|(t, quality)| RoundFigures {
            number: t.number,
            model_version: t.model_version,
            proposed: t.proposed,
            sources: t.sources,
            labelled: t.labelled,
            failed: t.failed,
            prospective: quality.into(),
        })
        .collect();
    (rounds, summary)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::BTreeSet;

    fn keys(value: &Value) -> BTreeSet<String> {
        value.as_object().expect("object").keys().cloned().collect()
    }

    fn tally(number: i64) -> RoundTally {
        RoundTally {
            number,
            model_version: number - 1,
            proposed: 4,
            labelled: 3,
            failed: 1,
            sources: BTreeMap::from([("local".to_string(), 1), ("policy".to_string(), 3)]),
        }
    }

    fn outcome(round_number: i64, mean: f64, reward: f64) -> ProposalOutcome {
        ProposalOutcome {
            round_number,
            proxy_mean: mean,
            proxy_std: 1.0,
            mean_reward: reward,
        }
    }

    #[test]
    fn outcomes_go_to_their_own_round_only() {
        let outcomes = [
            outcome(2, 1.0, 1.0),
            outcome(2, 2.0, 2.0),
            outcome(2, 3.0, 3.0),
            outcome(1, 1.0, 3.0),
            outcome(1, 2.0, 2.0),
            outcome(1, 3.0, 1.0),
            outcome(1, 4.0, 0.0),
            // A round outside the window: ignored.
            outcome(9, 0.0, 0.0),
        ];
        let (rounds, summary) = round_figures(vec![tally(2), tally(1), tally(3)], &outcomes);
        let numbers: Vec<i64> = rounds.iter().map(|r| r.number).collect();
        assert_eq!(numbers, [2, 1, 3], "the tallies' order");
        assert_eq!(rounds[0].prospective.n, 3);
        assert_eq!(rounds[0].prospective.spearman, Some(1.0));
        assert_eq!(rounds[1].prospective.n, 4);
        assert_eq!(rounds[1].prospective.spearman, Some(-1.0));
        assert_eq!(rounds[2].prospective.n, 0);
        assert_eq!(rounds[2].prospective.rmse, None);
        assert_eq!(rounds[1].sources, tally(1).sources);
        assert_eq!((summary.rounds, summary.n), (2, 7));
        assert_eq!(summary.median_spearman, Some(0.0));
    }

    #[test]
    fn the_body_has_the_documented_properties() {
        let run = TrainingRunRow {
            id: 1,
            owner: "a".into(),
            status: "succeeded".into(),
            labels: 3,
            observations: 4,
            steps: 10,
            loss: Some(0.5),
            version: Some(1),
            error: None,
            started_at: "2026-01-01T00:00:00.000Z".into(),
            finished_at: None,
            proxy: Some(serde_json::json!({"spearman": 0.5, "rmse": 1.0, "train": 8, "test": 2})),
            metrics: None,
        };
        let overview = stored::ModelOverview {
            version: 1,
            status: "ready".into(),
            error: None,
            trained_on_labels: 3,
            trained_on_observations: 4,
            steps: 10,
            loss: Some(0.5),
            proxy: None,
            updated_at: None,
            history: vec![run],
        };
        let (rounds, prospective) = round_figures(vec![tally(1)], &[]);
        let body = ModelDetail {
            overview: overview.into(),
            serving_version: None,
            prospective,
            rounds,
        };
        let json = serde_json::to_value(&body).expect("serialises");
        assert_eq!(json["status"], "ready");
        assert_eq!(json["history"][0]["status"], "succeeded");
        assert_eq!(json["history"][0]["proxy"]["train"], 8);
        let doc: Value = serde_json::from_str(
            &super::super::openapi::openapi_json().expect("the document serialises"),
        )
        .expect("JSON");
        let schemas = &doc["components"]["schemas"];
        // ModelDetail is allOf [ModelOverview, its own properties]: serde's flatten.
        let parts = schemas["ModelDetail"]["allOf"].as_array().expect("allOf");
        assert_eq!(parts[0]["$ref"], "#/components/schemas/ModelOverview");
        let mut documented = keys(&schemas["ModelOverview"]["properties"]);
        documented.extend(keys(&parts[1]["properties"]));
        assert_eq!(keys(&json), documented);
        assert_eq!(
            keys(&json["history"][0]),
            keys(&schemas["TrainingRun"]["properties"])
        );
    }

    #[test]
    fn unknown_stored_statuses_and_unreadable_proxy_figures_do_not_fail_the_answer() {
        assert_eq!(
            crate::http::stored_status("training", ModelStatus::Failed),
            ModelStatus::Training
        );
        assert_eq!(
            crate::http::stored_status("from a newer server", ModelStatus::Failed),
            ModelStatus::Failed
        );
        assert_eq!(
            stored_quality(Some(serde_json::json!({"spearman": "?"}))),
            None
        );
    }
}
