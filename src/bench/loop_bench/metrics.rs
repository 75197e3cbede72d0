//! The figures of `flowlab bench loop`, computed the same way for every method from the
//! oracle calls made so far (cumulative, not per round).

use crate::gfn::State;
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// How many of the best distinct candidates the top-k figures use.
pub const TOP_K: usize = 10;

/// One oracle call: the candidate and what the oracle said (`Err`: it failed, and why).
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub candidate: State,
    pub outcome: Result<f64, String>,
}

/// The figures after some oracle calls. `None` (null in JSON) where undefined: no
/// successful call yet, or fewer than two distinct successful candidates for a distance.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Metrics {
    /// Candidates scored by the oracle, failed ones included.
    pub oracle_calls: usize,
    /// Highest score of a successful call.
    pub best: Option<f64>,
    /// Mean score of the [`TOP_K`] best distinct successful candidates (of all of them when
    /// there are fewer).
    pub top10_mean: Option<f64>,
    /// Mean pairwise distance (in [0, 1]) between those candidates.
    pub top10_diversity: Option<f64>,
    /// Distinct candidates over oracle calls (1 when no value was measured twice).
    pub unique_fraction: f64,
    /// Failed calls over oracle calls.
    pub failed_fraction: f64,
}

/// The figures of `evaluations` with `distance` (in [0, 1]) between candidates. Ties in score
/// are broken by the candidate's order so that the top set does not depend on call order.
pub fn metrics(evaluations: &[Evaluation], distance: impl Fn(&State, &State) -> f64) -> Metrics {
    let calls = evaluations.len();
    let distinct: HashSet<&State> = evaluations.iter().map(|e| &e.candidate).collect();
    let failed = evaluations.iter().filter(|e| e.outcome.is_err()).count();
    // A candidate measured twice counts once in the top set, with its better score (the
    // oracles here are deterministic, so both are the same).
    let mut scores: HashMap<&State, f64> = HashMap::new();
    for e in evaluations {
        if let Ok(score) = e.outcome {
            let entry = scores.entry(&e.candidate).or_insert(score);
            *entry = entry.max(score);
        }
    }
    let mut ranked: Vec<(&State, f64)> = scores.into_iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    ranked.truncate(TOP_K);
    let best = ranked.first().map(|(_, s)| *s);
    let top10_mean = (!ranked.is_empty())
        .then(|| ranked.iter().map(|(_, s)| s).sum::<f64>() / ranked.len() as f64);
    let top: Vec<&State> = ranked.iter().map(|(c, _)| *c).collect();
    let fraction = |n: usize| {
        if calls == 0 {
            0.0
        } else {
            n as f64 / calls as f64
        }
    };
    Metrics {
        oracle_calls: calls,
        best,
        top10_mean,
        top10_diversity: mean_pairwise_distance(&top, distance),
        unique_fraction: fraction(distinct.len()),
        failed_fraction: fraction(failed),
    }
}

/// Mean of `distance` over the unordered pairs of `candidates`; `None` with fewer than two.
pub fn mean_pairwise_distance(
    candidates: &[&State],
    distance: impl Fn(&State, &State) -> f64,
) -> Option<f64> {
    let n = candidates.len();
    if n < 2 {
        return None;
    }
    let mut total = 0.0;
    for i in 0..n {
        for j in i + 1..n {
            total += distance(candidates[i], candidates[j]);
        }
    }
    Some(total / (n * (n - 1) / 2) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hamming_over_length(a: &State, b: &State) -> f64 {
        a.0.iter().zip(&b.0).filter(|(x, y)| x != y).count() as f64 / a.0.len() as f64
    }

    fn ok(codes: &[u16], score: f64) -> Evaluation {
        Evaluation {
            candidate: State(codes.to_vec()),
            outcome: Ok(score),
        }
    }

    fn failed(codes: &[u16]) -> Evaluation {
        Evaluation {
            candidate: State(codes.to_vec()),
            outcome: Err("infeasible".into()),
        }
    }

    #[test]
    fn metrics_of_a_small_hand_computed_case() {
        // Four length-4 candidates, one measured twice, one failed.
        let evaluations = vec![
            ok(&[0, 0, 0, 0], 1.0),
            ok(&[1, 1, 0, 0], 3.0),
            failed(&[2, 2, 2, 2]),
            ok(&[1, 1, 1, 1], 2.0),
            ok(&[1, 1, 0, 0], 3.0),
        ];
        let m = metrics(&evaluations, hamming_over_length);
        assert_eq!(m.oracle_calls, 5);
        assert_eq!(m.best, Some(3.0));
        // Three distinct successful candidates: (3 + 2 + 1) / 3.
        assert_eq!(m.top10_mean, Some(2.0));
        // Distances: 1100-1111 = 2/4, 1100-0000 = 2/4, 1111-0000 = 4/4; mean 2/3.
        let diversity = m.top10_diversity.expect("three candidates");
        assert!((diversity - 2.0 / 3.0).abs() < 1e-12, "{diversity}");
        assert_eq!(m.unique_fraction, 4.0 / 5.0);
        assert_eq!(m.failed_fraction, 1.0 / 5.0);
    }

    #[test]
    fn the_top_set_keeps_only_the_ten_best() {
        let evaluations: Vec<Evaluation> = (0..15u16).map(|i| ok(&[i], f64::from(i))).collect();
        let m = metrics(&evaluations, |a, b| if a == b { 0.0 } else { 1.0 });
        assert_eq!(m.best, Some(14.0));
        // 5 + 6 + ... + 14 = 95.
        assert_eq!(m.top10_mean, Some(9.5));
        assert_eq!(m.top10_diversity, Some(1.0));
    }

    #[test]
    fn no_success_means_no_best_and_no_diversity() {
        let m = metrics(&[failed(&[1]), failed(&[2])], hamming_over_length);
        assert_eq!(
            (m.best, m.top10_mean, m.top10_diversity),
            (None, None, None)
        );
        assert_eq!(m.failed_fraction, 1.0);
        let empty = metrics(&[], hamming_over_length);
        assert_eq!((empty.oracle_calls, empty.unique_fraction), (0, 0.0));
        assert_eq!(
            mean_pairwise_distance(&[&State(vec![1])], hamming_over_length),
            None
        );
    }
}
