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
use crate::proxy::prospective::{self, Outcome, ProspectiveQuality, ProspectiveSummary};
use crate::store::training::ModelOverview;
use crate::store::{ProposalOutcome, RoundTally, ROUND_FIGURES_LIMIT};
use axum::extract::State;
use axum::Json;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// The body of `GET /campaigns/{id}/model`: the overview (also embedded in the campaign's
/// `stats.model`) with the recent rounds' figures added.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelBody {
    #[serde(flatten)]
    pub overview: ModelOverview,
    /// The checkpoint version rounds draw from now; see [`ModelDetail`].
    pub serving_version: Option<i64>,
    /// The prospective figures summarised over `rounds`.
    pub prospective: ProspectiveSummary,
    /// The newest rounds, newest first, at most [`ROUND_FIGURES_LIMIT`].
    pub rounds: Vec<RoundFigures>,
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

/// Documentation of [`ModelBody`] (the store's overview has no schema of its own; a test
/// holds the two together).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelDetail {
    #[serde(flatten)]
    pub overview: super::openapi::ModelOverview,
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
) -> Result<Json<ModelBody>, ApiError> {
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
    Ok(Json(ModelBody {
        overview,
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
    let rounds: Vec<RoundFigures> = tallies
        .into_iter()
        .map(|t| RoundFigures {
            prospective: prospective::quality(
                by_round.get(&t.number).map_or(&[][..], Vec::as_slice),
            ),
            number: t.number,
            model_version: t.model_version,
            proposed: t.proposed,
            sources: t.sources,
            labelled: t.labelled,
            failed: t.failed,
        })
        .collect();
    let qualities: Vec<ProspectiveQuality> = rounds.iter().map(|r| r.prospective).collect();
    let summary = prospective::summary(&qualities);
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
    fn the_body_adds_rounds_and_prospective_to_the_documented_overview() {
        use crate::store::training::ModelOverview;
        let overview = ModelOverview {
            version: 0,
            status: "untrained".into(),
            error: None,
            trained_on_labels: 0,
            trained_on_observations: 0,
            steps: 0,
            loss: None,
            proxy: None,
            updated_at: None,
            history: Vec::new(),
        };
        let (rounds, prospective) = round_figures(vec![tally(1)], &[]);
        let body = ModelBody {
            overview: overview.clone(),
            serving_version: None,
            prospective,
            rounds,
        };
        let json = serde_json::to_value(&body).expect("serialises");
        let doc: Value = serde_json::from_str(
            &super::super::openapi::openapi_json().expect("the document serialises"),
        )
        .expect("JSON");
        let schemas = &doc["components"]["schemas"];
        // ModelDetail is allOf [ModelOverview, its own properties].
        let parts = schemas["ModelDetail"]["allOf"].as_array().expect("allOf");
        assert_eq!(parts[0]["$ref"], "#/components/schemas/ModelOverview");
        let mut documented = keys(&schemas["ModelOverview"]["properties"]);
        documented.extend(keys(&parts[1]["properties"]));
        assert_eq!(keys(&json), documented);
        assert_eq!(
            keys(&json["rounds"][0]),
            keys(&schemas["RoundFigures"]["properties"])
        );
        assert_eq!(
            keys(&json["rounds"][0]["prospective"]),
            keys(&schemas["ProspectiveQuality"]["properties"])
        );
        assert_eq!(
            keys(&json["prospective"]),
            keys(&schemas["ProspectiveSummary"]["properties"])
        );
        // Everything the overview said before is still there, unchanged.
        let before = serde_json::to_value(&overview).expect("serialises");
        for (k, v) in before.as_object().expect("object") {
            assert_eq!(&json[k], v, "{k}");
        }
    }
}
