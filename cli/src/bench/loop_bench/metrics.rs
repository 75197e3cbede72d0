//! The figures of `flowlab bench loop`, computed the same way for every method from the
//! oracle calls made so far (cumulative, not per round).
//!
//! Figures count objects, not strings: every candidate is mapped to its object first (the
//! task's [`Task::object`](crate::bench::oracles::Task::object): the molecule of a
//! `fragments` string, the candidate itself elsewhere), so replicate strings of one entity are
//! one object in the top set, the diversity and the modes.

use crate::bench::oracles::ModeRule;
use ::flowlab::gfn::State;
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// How many of the best distinct objects the top-k figures use.
pub const TOP_K: usize = 10;

/// One oracle call: the candidate and what the oracle said (`Err`: it failed, and why).
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub candidate: State,
    pub outcome: Result<f64, String>,
}

/// The figures after some oracle calls. `None` (null in JSON) where undefined: no
/// successful call yet, or fewer than two distinct successful objects for a distance.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Metrics {
    /// Candidates scored by the oracle, failed ones included.
    pub oracle_calls: usize,
    /// Highest score of a successful call.
    pub best: Option<f64>,
    /// Mean score of the [`TOP_K`] best distinct successful objects (of all of them when
    /// there are fewer).
    pub top10_mean: Option<f64>,
    /// Mean pairwise distance (in [0, 1]) between those objects.
    pub top10_diversity: Option<f64>,
    /// Modes found under the task's [`ModeRule`] (see [`count_modes`]).
    pub modes: usize,
    /// Distinct objects over oracle calls (1 when nothing was measured twice).
    pub unique_fraction: f64,
    /// Failed calls over oracle calls.
    pub failed_fraction: f64,
}

/// How a run's candidates are compared: the object of a candidate, the distance between two
/// objects (in [0, 1]) and the mode rule.
pub struct Judge<'a> {
    /// The object a candidate stands for.
    pub object: &'a dyn Fn(&State) -> State,
    /// Distance between two objects, in [0, 1].
    pub distance: &'a dyn Fn(&State, &State) -> f64,
    /// What counts as a mode.
    pub rule: ModeRule,
}

impl std::fmt::Debug for Judge<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Judge").field("rule", &self.rule).finish()
    }
}

/// The figures of `evaluations`. Ties in score are broken by the object's order so that the
/// top set does not depend on call order.
pub fn metrics(evaluations: &[Evaluation], judge: &Judge<'_>) -> Metrics {
    let calls = evaluations.len();
    let objects: Vec<State> = evaluations
        .iter()
        .map(|e| (judge.object)(&e.candidate))
        .collect();
    let distinct: HashSet<&State> = objects.iter().collect();
    let failed = evaluations.iter().filter(|e| e.outcome.is_err()).count();
    // An object measured twice counts once, with its better score (the oracles here are
    // deterministic on objects, so both are the same).
    let mut scores: HashMap<&State, f64> = HashMap::new();
    for (e, object) in evaluations.iter().zip(&objects) {
        if let Ok(score) = e.outcome {
            let entry = scores.entry(object).or_insert(score);
            *entry = entry.max(score);
        }
    }
    let mut ranked: Vec<(&State, f64)> = scores.into_iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let modes = count_modes(&ranked, judge.rule, judge.distance);
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
        top10_diversity: mean_pairwise_distance(&top, judge.distance),
        modes,
        unique_fraction: fraction(distinct.len()),
        failed_fraction: fraction(failed),
    }
}

/// Modes among distinct objects ranked best first: greedily, each object scoring at least
/// `rule.min_score` whose distance to every mode already taken is at least
/// `rule.min_distance` is a mode.
pub fn count_modes(
    ranked: &[(&State, f64)],
    rule: ModeRule,
    distance: &dyn Fn(&State, &State) -> f64,
) -> usize {
    let mut modes: Vec<&State> = Vec::new();
    for &(object, score) in ranked {
        if score < rule.min_score {
            break;
        }
        if modes
            .iter()
            .all(|m| distance(m, object) >= rule.min_distance)
        {
            modes.push(object);
        }
    }
    modes.len()
}

/// Mean of `distance` over the unordered pairs of `candidates`; `None` with fewer than two.
pub fn mean_pairwise_distance(
    candidates: &[&State],
    distance: &dyn Fn(&State, &State) -> f64,
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

    fn identity(x: &State) -> State {
        x.clone()
    }

    /// No mode at all unless a score reaches 100.
    const NO_MODES: ModeRule = ModeRule {
        min_score: 100.0,
        min_distance: 0.0,
    };

    fn judge(rule: ModeRule) -> Judge<'static> {
        Judge {
            object: &identity,
            distance: &hamming_over_length,
            rule,
        }
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
        let m = metrics(
            &evaluations,
            &judge(ModeRule {
                min_score: 1.5,
                min_distance: 0.6,
            }),
        );
        assert_eq!(m.oracle_calls, 5);
        assert_eq!(m.best, Some(3.0));
        // Three distinct successful candidates: (3 + 2 + 1) / 3.
        assert_eq!(m.top10_mean, Some(2.0));
        // Distances: 1100-1111 = 2/4, 1100-0000 = 2/4, 1111-0000 = 4/4; mean 2/3.
        let diversity = m.top10_diversity.expect("three candidates");
        assert!((diversity - 2.0 / 3.0).abs() < 1e-12, "{diversity}");
        assert_eq!(m.unique_fraction, 4.0 / 5.0);
        assert_eq!(m.failed_fraction, 1.0 / 5.0);
        // Scores >= 1.5: 1100 (3) and 1111 (2), 2/4 apart (< 0.6): one mode.
        assert_eq!(m.modes, 1);
    }

    #[test]
    fn modes_are_taken_greedily_best_first() {
        // Scores 5 > 4 > 3 > 2 > 0.5 on length-4 strings; min distance 0.5, min score 1.
        let a = State(vec![0, 0, 0, 0]);
        let b = State(vec![0, 0, 0, 1]); // 1/4 from a: shadowed by a
        let c = State(vec![1, 1, 0, 0]); // 2/4 from a, 3/4 from b: a mode
        let d = State(vec![1, 1, 1, 1]); // 4/4 from a, 2/4 from c: a mode
        let e = State(vec![2, 2, 2, 2]); // far from all, but scores below the threshold
        let ranked = vec![(&a, 5.0), (&b, 4.0), (&c, 3.0), (&d, 2.0), (&e, 0.5)];
        let rule = |min_score, min_distance| ModeRule {
            min_score,
            min_distance,
        };
        assert_eq!(
            count_modes(&ranked, rule(1.0, 0.5), &hamming_over_length),
            3
        );
        // Greedy, not the largest spread set: with δ = 0.75, a is taken, then d (4/4).
        assert_eq!(
            count_modes(&ranked, rule(1.0, 0.75), &hamming_over_length),
            2
        );
        assert_eq!(
            count_modes(&ranked, rule(0.1, 0.0), &hamming_over_length),
            5
        );
        assert_eq!(
            count_modes(&ranked, rule(4.5, 0.0), &hamming_over_length),
            1
        );
        assert_eq!(count_modes(&[], rule(0.0, 0.0), &hamming_over_length), 0);
    }

    #[test]
    fn replicates_of_one_object_count_once() {
        // Objects are the sorted codes: [1, 0] and [0, 1] are one object.
        let sorted = |x: &State| {
            let mut v = x.0.clone();
            v.sort_unstable();
            State(v)
        };
        let judge = Judge {
            object: &sorted,
            distance: &hamming_over_length,
            rule: ModeRule {
                min_score: 0.0,
                min_distance: 0.1,
            },
        };
        let m = metrics(
            &[ok(&[1, 0], 2.0), ok(&[0, 1], 2.0), ok(&[1, 1], 1.0)],
            &judge,
        );
        // Two objects: top-10 mean (2 + 1) / 2, one pair at distance 1/2.
        assert_eq!(m.top10_mean, Some(1.5));
        assert_eq!(m.top10_diversity, Some(0.5));
        assert_eq!(m.modes, 2);
        assert_eq!(m.unique_fraction, 2.0 / 3.0);
    }

    #[test]
    fn the_top_set_keeps_only_the_ten_best() {
        let evaluations: Vec<Evaluation> = (0..15u16).map(|i| ok(&[i], f64::from(i))).collect();
        let discrete = |a: &State, b: &State| if a == b { 0.0 } else { 1.0 };
        let judge = Judge {
            object: &identity,
            distance: &discrete,
            rule: NO_MODES,
        };
        let m = metrics(&evaluations, &judge);
        assert_eq!(m.best, Some(14.0));
        // 5 + 6 + ... + 14 = 95.
        assert_eq!(m.top10_mean, Some(9.5));
        assert_eq!(m.top10_diversity, Some(1.0));
        assert_eq!(m.modes, 0);
    }

    #[test]
    fn no_success_means_no_best_and_no_diversity() {
        let m = metrics(&[failed(&[1]), failed(&[2])], &judge(NO_MODES));
        assert_eq!(
            (m.best, m.top10_mean, m.top10_diversity),
            (None, None, None)
        );
        assert_eq!(m.failed_fraction, 1.0);
        let empty = metrics(&[], &judge(NO_MODES));
        assert_eq!((empty.oracle_calls, empty.unique_fraction), (0, 0.0));
        assert_eq!(
            mean_pairwise_distance(&[&State(vec![1])], &hamming_over_length),
            None
        );
    }
}
