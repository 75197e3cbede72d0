//! The dashboard's figures: a page of campaigns with their counts, and one campaign's
//! progress per round, its model, its best candidates and its pending rounds. Everything
//! is aggregated here from bounded store queries, so the pages stay small however many
//! candidates a campaign holds: per round the store returns at most [`LEADERS_PER_ROUND`]
//! candidates and a handful of counts; the training runs and the proxy's predictions cover
//! the same windows as `GET /campaigns/{id}/model` (its run history and its rounds), so
//! that the charts and the API count the same things.

use super::campaigns::{campaign_overview, CampaignOverview};
use super::Service;
use crate::domain::campaign::Campaign;
use crate::error::Error;
use crate::gfn::{Space, SpaceSpec, State};
use crate::proxy::prospective::{self, Outcome, ProspectiveQuality};
use crate::store::dashboard::{PendingRound, RoundLeader, RunSummary};
use crate::store::training::HISTORY_LIMIT;
use crate::store::{
    CandidateRow, PageQuery, ProposalOutcome, RoundTally, Stats, ROUND_FIGURES_LIMIT,
};
use std::collections::{BTreeMap, HashMap};

/// Campaigns per page of the index.
pub const INDEX_PAGE_SIZE: i64 = 20;
/// Most rounds the charts show: the newest ones.
pub const CHART_ROUNDS: i64 = 500;
/// The "top" of the top-k figures (mean reward and diversity of the best candidates).
pub const LEADERS_PER_ROUND: i64 = 10;
/// Rows of the best-candidates table.
pub const BEST_ROWS: i64 = 20;
/// Rows of the training-run table (the chart shows every run of the model's history).
pub const RUN_ROWS: usize = 20;
/// Rows of the pending-round table.
pub const PENDING_ROWS: i64 = 50;

/// One campaign as the index lists it.
#[derive(Debug, Clone)]
pub struct CampaignSummary {
    pub campaign: Campaign,
    pub stats: Stats,
    /// The labelled candidate with the best mean reward.
    pub best: Option<CandidateRow>,
    /// `untrained`, `training`, `ready` or `failed`.
    pub model_status: String,
    /// Newest checkpoint version, 0 before any.
    pub model_version: i64,
    /// RFC 3339, UTC.
    pub last_activity: Option<String>,
}

/// A page of the index.
#[derive(Debug, Clone)]
pub struct CampaignIndex {
    pub campaigns: Vec<CampaignSummary>,
    /// 1-based.
    pub page: i64,
    /// At least 1.
    pub pages: i64,
    /// Campaigns in all.
    pub total: i64,
}

/// The short name of a space's type, as campaigns write it.
pub fn space_type(spec: &SpaceSpec) -> &'static str {
    match spec {
        SpaceSpec::Sequence { .. } => "sequence",
        SpaceSpec::Grid { .. } => "grid",
        SpaceSpec::Set { .. } => "set",
    }
}

/// Page `page` (1-based; past the end gives an empty page) of the campaigns, newest first.
pub async fn campaign_index(service: &Service, page: i64) -> Result<CampaignIndex, Error> {
    let page = page.max(1);
    let store = &service.store;
    let offset = (page - 1).saturating_mul(INDEX_PAGE_SIZE);
    let (campaigns, total) = store.campaign_page(INDEX_PAGE_SIZE, offset).await?;
    let mut summaries = Vec::with_capacity(campaigns.len());
    for campaign in campaigns {
        let id = campaign.id;
        let maximize = campaign.spec.reward.maximize;
        let best = store
            .candidate_page(id, &PageQuery::best_labelled(maximize, 1))
            .await?
            .into_iter()
            .next();
        let (model_status, _) = store.model_status(id).await?;
        summaries.push(CampaignSummary {
            stats: store.stats(id).await?,
            best,
            model_status,
            model_version: store.newest_checkpoint_version(id).await?.unwrap_or(0),
            last_activity: store.last_activity(id).await?,
            campaign,
        });
    }
    Ok(CampaignIndex {
        campaigns: summaries,
        page,
        pages: ((total + INDEX_PAGE_SIZE - 1) / INDEX_PAGE_SIZE).max(1),
        total,
    })
}

/// One round's point on the dashboard's charts.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundPoint {
    pub number: i64,
    /// The checkpoint the round drew from; 0: the uniform policy.
    pub model_version: i64,
    pub proposed: i64,
    pub labelled: i64,
    pub failed: i64,
    /// Candidates by source, as `GET /campaigns/{id}/model` counts them.
    pub sources: BTreeMap<String, i64>,
    /// Best mean reward of the candidates of this round and the rounds before it.
    pub best_so_far: Option<f64>,
    /// Mean reward of the best [`LEADERS_PER_ROUND`] of those (fewer while fewer exist).
    pub top_mean: Option<f64>,
    /// Mean pairwise distance, in the space's own measure, between those best candidates;
    /// null under two.
    pub top_diversity: Option<f64>,
    /// Failed share of the round's measured candidates; null before any measurement.
    pub failed_fraction: Option<f64>,
    /// The proxy's predictions at proposal time against the measurements (null figures
    /// outside the model endpoint's window of rounds).
    pub prospective: ProspectiveQuality,
}

/// A labelled candidate that a round proposed with the proxy's prediction: what the proxy
/// said then against what was measured since.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProxyPoint {
    pub round: i64,
    /// The proxy's mean at proposal time, oracle units.
    pub predicted: f64,
    /// The proxy's standard deviation at proposal time.
    pub std: f64,
    /// Mean of the candidate's successful observations.
    pub measured: f64,
}

/// Everything the dashboard of one campaign shows.
#[derive(Debug, Clone)]
pub struct Dashboard {
    /// Campaign, counts, best candidate and model, as `GET /campaigns/{id}` reports them.
    pub overview: CampaignOverview,
    /// The newest [`CHART_ROUNDS`] rounds, oldest first.
    pub rounds: Vec<RoundPoint>,
    /// The training runs of the model's history (the newest [`HISTORY_LIMIT`]), newest first.
    pub runs: Vec<RunSummary>,
    /// Every labelled candidate of the newest [`ROUND_FIGURES_LIMIT`] rounds that has a
    /// stored prediction (the candidates behind the prospective figures), by ascending
    /// prediction.
    pub proxy: Vec<ProxyPoint>,
    /// The best labelled candidates, best first.
    pub best: Vec<CandidateRow>,
    /// Rounds with pending candidates, oldest first.
    pub pending: Vec<PendingRound>,
}

/// The dashboard of campaign `id`; `NotFound` for an unknown campaign.
pub async fn dashboard(service: &Service, id: i64) -> Result<Dashboard, Error> {
    let overview = campaign_overview(service, id).await?;
    let store = &service.store;
    let maximize = overview.campaign.spec.reward.maximize;
    let space = overview.campaign.spec.build_space()?;
    let tallies = store.recent_round_tallies(id, CHART_ROUNDS).await?;
    let leaders = store
        .round_leaders(id, CHART_ROUNDS, LEADERS_PER_ROUND, maximize)
        .await?;
    let outcomes = store.recent_round_outcomes(id, ROUND_FIGURES_LIMIT).await?;
    // A window of large batches holds hundreds of thousands of outcomes to sort: off the
    // async reactor, like the model endpoint's figures.
    let (rounds, proxy) = tokio::task::spawn_blocking(move || {
        let proxy = proxy_points(&outcomes);
        let rounds = round_points(space.as_ref(), maximize, tallies, &leaders, outcomes);
        (rounds, proxy)
    })
    .await
    .map_err(|e| Error::Internal(format!("dashboard figures task failed: {e}")))?;
    let best = store
        .candidate_page(id, &PageQuery::best_labelled(maximize, BEST_ROWS))
        .await?;
    Ok(Dashboard {
        rounds,
        runs: store.run_summaries(id, HISTORY_LIMIT).await?,
        proxy,
        best,
        pending: store.pending_rounds(id, PENDING_ROWS).await?,
        overview,
    })
}

/// The scatter of predictions against measurements, by ascending prediction (the order a
/// chart's x axis needs).
fn proxy_points(outcomes: &[ProposalOutcome]) -> Vec<ProxyPoint> {
    let mut points: Vec<ProxyPoint> = outcomes
        .iter()
        .map(|o| ProxyPoint {
            round: o.round_number,
            predicted: o.proxy_mean,
            std: o.proxy_std,
            measured: o.mean_reward,
        })
        .collect();
    points.sort_by(|a, b| {
        a.predicted
            .total_cmp(&b.predicted)
            .then(a.measured.total_cmp(&b.measured))
    });
    points
}

/// Each round's point, oldest first, from the store's rows (tallies come newest first).
fn round_points(
    space: &dyn Space,
    maximize: bool,
    tallies: Vec<RoundTally>,
    leaders: &[RoundLeader],
    outcomes: Vec<ProposalOutcome>,
) -> Vec<RoundPoint> {
    let mut prospective_by_round: HashMap<i64, Vec<Outcome>> = HashMap::new();
    for o in outcomes {
        prospective_by_round
            .entry(o.round_number)
            .or_default()
            .push(Outcome {
                mean: o.proxy_mean,
                std: o.proxy_std,
                reward: o.mean_reward,
            });
    }
    let mut progress = Progress::new(space, maximize, leaders);
    // The store answers newest first; the charts read oldest first.
    tallies
        .into_iter()
        .rev()
        .map(|t| {
            let (best_so_far, top_mean, top_diversity) = progress.through(t.number);
            let measured = t.labelled + t.failed;
            RoundPoint {
                number: t.number,
                model_version: t.model_version,
                proposed: t.proposed,
                labelled: t.labelled,
                failed: t.failed,
                best_so_far,
                top_mean,
                top_diversity,
                failed_fraction: (measured > 0).then(|| t.failed as f64 / measured as f64),
                prospective: prospective::quality(
                    prospective_by_round
                        .get(&t.number)
                        .map_or(&[][..], Vec::as_slice),
                ),
                sources: t.sources,
            }
        })
        .collect()
}

/// The best candidates of the rounds seen so far, walked round by round: the top-k of the
/// rounds up to `n` is the top-k of the per-round top-k lists up to `n`.
struct Progress<'a> {
    space: &'a dyn Space,
    /// +1 to maximise, -1 to minimise: higher `sign * reward` is better.
    sign: f64,
    /// Each round's leaders, parsed, oldest round first.
    leaders: Vec<(i64, f64, Option<State>)>,
    next: usize,
    /// The current top, best first.
    top: Vec<(f64, Option<State>)>,
}

impl<'a> Progress<'a> {
    fn new(space: &'a dyn Space, maximize: bool, leaders: &[RoundLeader]) -> Self {
        let leaders = leaders
            .iter()
            .map(|l| {
                // Stored values are the service's own canonical text; an unreadable one
                // still counts for the rewards, only not for diversity.
                let state = serde_json::from_str(&l.value)
                    .ok()
                    .and_then(|v| space.parse_value(&v).ok());
                (l.number, l.mean_reward, state)
            })
            .collect();
        Self {
            space,
            sign: if maximize { 1.0 } else { -1.0 },
            leaders,
            next: 0,
            top: Vec::new(),
        }
    }

    /// Best, top-k mean and top-k diversity of the rounds up to and including `number`.
    fn through(&mut self, number: i64) -> (Option<f64>, Option<f64>, Option<f64>) {
        while let Some((round, reward, state)) = self.leaders.get(self.next) {
            if *round > number {
                break;
            }
            self.top.push((*reward, state.clone()));
            self.next += 1;
        }
        let sign = self.sign;
        self.top
            .sort_by(|a, b| (sign * b.0).total_cmp(&(sign * a.0)));
        self.top.truncate(LEADERS_PER_ROUND as usize);
        if self.top.is_empty() {
            return (None, None, None);
        }
        let best = self.top.first().map(|(r, _)| *r);
        let mean = self.top.iter().map(|(r, _)| r).sum::<f64>() / self.top.len() as f64;
        let states: Vec<&State> = self.top.iter().filter_map(|(_, s)| s.as_ref()).collect();
        let mut total = 0.0;
        let mut pairs = 0usize;
        for (i, x) in states.iter().enumerate() {
            for y in &states[i + 1..] {
                total += self.space.distance(x, y);
                pairs += 1;
            }
        }
        (best, Some(mean), (pairs > 0).then(|| total / pairs as f64))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn leader(number: i64, value: &str, mean_reward: f64) -> RoundLeader {
        RoundLeader {
            number,
            value: value.to_string(),
            mean_reward,
        }
    }

    #[test]
    fn proxy_points_come_by_ascending_prediction_with_their_measurements() {
        let outcome = |round_number, proxy_mean, mean_reward| ProposalOutcome {
            round_number,
            proxy_mean,
            proxy_std: 0.5,
            mean_reward,
        };
        let points = proxy_points(&[
            outcome(2, 3.0, 1.0),
            outcome(2, -1.0, 4.0),
            outcome(1, 3.0, 0.0),
        ]);
        let pairs: Vec<(i64, f64, f64)> = points
            .iter()
            .map(|p| (p.round, p.predicted, p.measured))
            .collect();
        assert_eq!(pairs, [(2, -1.0, 4.0), (1, 3.0, 0.0), (2, 3.0, 1.0)]);
        assert!(proxy_points(&[]).is_empty());
    }

    #[test]
    fn progress_accumulates_the_best_over_rounds_in_either_direction() {
        let space = SpaceSpec::Grid { dims: 2, size: 4 }
            .build()
            .expect("a space");
        let leaders = [
            leader(1, "[0,0]", 1.0),
            leader(1, "[0,3]", 0.5),
            leader(3, "[3,3]", 2.0),
        ];
        let mut up = Progress::new(space.as_ref(), true, &leaders);
        assert_eq!(up.through(1).0, Some(1.0));
        assert_eq!(up.through(1).1, Some(0.75));
        assert!(up.through(1).2.is_some_and(|d| d > 0.0));
        // Round 2 labelled nothing: the figures stay.
        assert_eq!(up.through(2).0, Some(1.0));
        assert_eq!(up.through(3).0, Some(2.0));
        let mut down = Progress::new(space.as_ref(), false, &leaders);
        assert_eq!(down.through(3).0, Some(0.5));
        let mut none = Progress::new(space.as_ref(), true, &[]);
        assert_eq!(none.through(1), (None, None, None));
    }
}
