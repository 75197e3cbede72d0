//! Prospective quality of the proxy: how well the predictions a round stored when it
//! proposed its candidates match what the oracle measured afterwards.
//!
//! The held-out figure of a training run ([`super::ProxyQuality`]) scores the proxy on a
//! random split of labels it could have been trained on: those come from the same rounds,
//! the same regions of the space, as the training labels. Active learning then proposes
//! candidates where the proxy is most optimistic or least sure, away from that data, so a
//! random split overstates how well the proxy ranks the next batch. The figures here are
//! computed on exactly the candidates each round chose, with the prediction made before
//! their labels existed: the honest measure under that shift.
//!
//! Synchronous arithmetic on plain numbers; no tokio, sqlx or axum.

use super::surrogate::spearman;
use serde::Serialize;

/// Fewest measured predictions a round needs for its figures: with fewer, a rank
/// correlation or coverage share says nothing.
pub const MIN_OUTCOMES: usize = 3;

/// One prediction and its measurement, both in the oracle's units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// The proxy's mean when the candidate was proposed.
    pub mean: f64,
    /// The proxy's standard deviation then (the ensemble's spread).
    pub std: f64,
    /// The measured reward: the mean of the candidate's successful observations.
    pub reward: f64,
}

/// The prospective figures of one set of outcomes (a round's). Every figure is null when
/// `n` is under [`MIN_OUTCOMES`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ProspectiveQuality {
    /// Proposals with a stored prediction and a successful observation.
    pub n: usize,
    /// Spearman rank correlation of predicted means and measured rewards (ties share their
    /// mean rank); null also when either side is constant, where it is undefined.
    pub spearman: Option<f64>,
    /// Root mean squared error of the predicted means, in the oracle's units.
    pub rmse: Option<f64>,
    /// Share of outcomes with `|reward - mean| <= std`; about 0.68 for a calibrated
    /// Gaussian spread.
    pub coverage_1sigma: Option<f64>,
    /// Share of outcomes with `|reward - mean| <= 2 std`; about 0.95 when calibrated.
    pub coverage_2sigma: Option<f64>,
}

/// A summary over several rounds' figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ProspectiveSummary {
    /// Rounds with figures (at least [`MIN_OUTCOMES`] outcomes).
    pub rounds: usize,
    /// Outcomes of those rounds.
    pub n: usize,
    /// Median of those rounds' Spearman correlations (the defined ones); null when none.
    pub median_spearman: Option<f64>,
    /// Median of those rounds' RMSE, oracle units; null when no round has figures.
    pub median_rmse: Option<f64>,
    /// 1σ coverage over every outcome of those rounds.
    pub coverage_1sigma: Option<f64>,
    /// 2σ coverage over every outcome of those rounds.
    pub coverage_2sigma: Option<f64>,
}

/// The figures of `outcomes`.
pub fn quality(outcomes: &[Outcome]) -> ProspectiveQuality {
    let n = outcomes.len();
    if n < MIN_OUTCOMES {
        return ProspectiveQuality {
            n,
            spearman: None,
            rmse: None,
            coverage_1sigma: None,
            coverage_2sigma: None,
        };
    }
    let means: Vec<f64> = outcomes.iter().map(|o| o.mean).collect();
    let rewards: Vec<f64> = outcomes.iter().map(|o| o.reward).collect();
    let constant = |v: &[f64]| v.iter().all(|x| *x == v[0]);
    let spearman = (!constant(&means) && !constant(&rewards)).then(|| spearman(&means, &rewards));
    let squared: f64 = outcomes.iter().map(|o| (o.reward - o.mean).powi(2)).sum();
    let coverage = |k: f64| {
        let inside = outcomes
            .iter()
            .filter(|o| (o.reward - o.mean).abs() <= k * o.std)
            .count();
        inside as f64 / n as f64
    };
    ProspectiveQuality {
        n,
        spearman,
        rmse: Some((squared / n as f64).sqrt()),
        coverage_1sigma: Some(coverage(1.0)),
        coverage_2sigma: Some(coverage(2.0)),
    }
}

/// Summarises per-round figures: medians over the rounds that have figures, coverage
/// pooled over their outcomes (each round weighted by its `n`).
pub fn summary(rounds: &[ProspectiveQuality]) -> ProspectiveSummary {
    let scored: Vec<&ProspectiveQuality> = rounds.iter().filter(|q| q.rmse.is_some()).collect();
    let n: usize = scored.iter().map(|q| q.n).sum();
    let pooled = |share: fn(&ProspectiveQuality) -> Option<f64>| {
        (n > 0).then(|| {
            scored
                .iter()
                .map(|q| share(q).unwrap_or(0.0) * q.n as f64)
                .sum::<f64>()
                / n as f64
        })
    };
    ProspectiveSummary {
        rounds: scored.len(),
        n,
        median_spearman: median(scored.iter().filter_map(|q| q.spearman).collect()),
        median_rmse: median(scored.iter().filter_map(|q| q.rmse).collect()),
        coverage_1sigma: pooled(|q| q.coverage_1sigma),
        coverage_2sigma: pooled(|q| q.coverage_2sigma),
    }
}

/// The median (mean of the middle two for an even count); null when empty.
fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn outcome(mean: f64, std: f64, reward: f64) -> Outcome {
        Outcome { mean, std, reward }
    }

    #[test]
    fn fewer_than_three_outcomes_give_no_figures() {
        for n in 0..MIN_OUTCOMES {
            let outcomes = vec![outcome(1.0, 1.0, 2.0); n];
            let q = quality(&outcomes);
            assert_eq!(q.n, n);
            assert_eq!(
                (q.spearman, q.rmse, q.coverage_1sigma, q.coverage_2sigma),
                (None, None, None, None)
            );
        }
    }

    #[test]
    fn figures_match_a_hand_computation() {
        // Errors 0.5, -1, 3, 0 against spreads 1, 0.5, 1, 0: within 1σ are the first and
        // the exact last one (2 of 4); within 2σ also the second (3 of 4).
        // RMSE = sqrt((0.25 + 1 + 9 + 0) / 4) = sqrt(2.5625) = 1.6007810593582121.
        // Means 1, 2, 3, 4 against rewards 1.5, 1, 6, 4: reward ranks 2, 1, 4, 3, so
        // d = -1, 1, -1, 1 and rho = 1 - 6 * 4 / (4 * 15) = 0.6.
        let q = quality(&[
            outcome(1.0, 1.0, 1.5),
            outcome(2.0, 0.5, 1.0),
            outcome(3.0, 1.0, 6.0),
            outcome(4.0, 0.0, 4.0),
        ]);
        assert_eq!(q.n, 4);
        assert!((q.spearman.unwrap() - 0.6).abs() < 1e-12, "{q:?}");
        assert!((q.rmse.unwrap() - 2.5625f64.sqrt()).abs() < 1e-12, "{q:?}");
        assert_eq!(q.coverage_1sigma, Some(0.5));
        assert_eq!(q.coverage_2sigma, Some(0.75));
    }

    #[test]
    fn constant_predictions_leave_spearman_undefined_but_not_the_rest() {
        let q = quality(&[
            outcome(2.0, 1.0, 1.0),
            outcome(2.0, 1.0, 2.0),
            outcome(2.0, 1.0, 5.0),
        ]);
        assert_eq!(q.spearman, None);
        assert!((q.rmse.unwrap() - (10.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(q.coverage_1sigma, Some(2.0 / 3.0));
    }

    #[test]
    fn summary_takes_medians_over_scored_rounds_and_pools_coverage() {
        let round = |n: usize, rho: Option<f64>, rmse: f64, c1: f64| ProspectiveQuality {
            n,
            spearman: rho,
            rmse: Some(rmse),
            coverage_1sigma: Some(c1),
            coverage_2sigma: Some(1.0),
        };
        let unscored = quality(&[outcome(0.0, 1.0, 0.0)]);
        let s = summary(&[
            round(4, Some(0.2), 1.0, 0.5),
            unscored,
            round(6, Some(0.8), 3.0, 1.0),
            round(10, None, 2.0, 0.0),
        ]);
        assert_eq!((s.rounds, s.n), (3, 20));
        // Spearman defined in two rounds: median of 0.2 and 0.8.
        assert!((s.median_spearman.unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(s.median_rmse, Some(2.0));
        // (4 * 0.5 + 6 * 1 + 10 * 0) / 20 = 0.4
        assert!((s.coverage_1sigma.unwrap() - 0.4).abs() < 1e-12);
        assert_eq!(s.coverage_2sigma, Some(1.0));
        let empty = summary(&[unscored]);
        assert_eq!((empty.rounds, empty.n), (0, 0));
        assert_eq!(
            (
                empty.median_spearman,
                empty.median_rmse,
                empty.coverage_1sigma
            ),
            (None, None, None)
        );
    }
}
