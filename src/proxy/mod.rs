//! Rewards for training and the surrogate model behind them: raw oracle scores become standardised scores, a surrogate ensemble
//! predicts their mean and spread for any candidate, acquisition (`ucb` or `mean`) turns a
//! prediction into one value, and the campaign's transform turns acquisition values into
//! GFlowNet log-rewards.
//!
//! - `ensemble`: K small MLPs in candle on bootstrap resamples, trained as one batched net.
//! - `features`: what the networks see: the space's encoding, composition and k-mer counts.
//! - `surrogate`: the campaign's fitted proxy (regression plus feasibility), its held-out
//!   quality and its checkpoint parts.
//! - `prospective`: the proxy's quality on what later rounds proposed and the oracle
//!   measured, the figure that active learning's shift cannot flatter.
//!
//! Synchronous: imports `domain` and the engine's spaces; no tokio, sqlx or axum.
//! Log-rewards are returned in log space (`f32`) so that `exp(beta * a)` never overflows.

pub mod ensemble;
pub mod features;
pub mod prospective;
pub mod surrogate;

pub use features::FeatureSet;

/// What a step of the campaign `spec` over its built `space` costs in memory, with the width
/// of the proxy's inputs that its `training.proxy.features` give (see `domain::cost`).
pub fn campaign_cost(
    spec: &crate::domain::campaign::CampaignSpec,
    space: &dyn crate::gfn::Space,
) -> crate::domain::cost::CampaignCost {
    let inputs = features::FeatureMap::new(spec.training.proxy.features, space).dim();
    crate::domain::cost::CampaignCost::new(spec, space, inputs)
}
pub use surrogate::{acquisition, spearman, Prediction, ProxyQuality, Surrogate};

/// Why the proxy could not be fit, used or rebuilt from a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// Fitting needs data: a campaign without a successful label has no proxy.
    #[error("the proxy needs at least one labelled candidate")]
    NoLabels,
    /// A tensor operation failed (shapes, device, numerics).
    #[error("proxy tensors: {0}")]
    Tensor(#[from] candle_core::Error),
    /// The checkpoint's metadata is not the proxy's JSON.
    #[error("proxy metadata: {0}")]
    Metadata(#[from] serde_json::Error),
    /// The checkpoint's tensors do not fit together or do not fit the space.
    #[error("proxy checkpoint: {0}")]
    Checkpoint(String),
}

use crate::domain::campaign::{RewardSpec, Transform};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// Order of scores for sorting best first: higher before lower, and NaN after everything
/// (below `-inf`; NaNs tie with each other). `f64::total_cmp` alone would put a NaN above
/// `+inf`, so a broken prediction would be taken as the best candidate.
///
/// `scores.sort_by(|a, b| descending_score(*a, *b))` sorts best first.
pub fn descending_score(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => b.total_cmp(&a),
    }
}

/// Smallest standard deviation used when standardising, so that a data set of equal scores
/// (or a single label) gives z-scores of 0 instead of a division by zero.
pub const STD_FLOOR: f64 = 1e-6;

/// The affine map from raw scores to standardised ones: `z = sign * (y - mean) / std`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Standardisation {
    pub mean: f64,
    /// Population standard deviation, at least [`STD_FLOOR`].
    pub std: f64,
    /// 1 when maximising, -1 when minimising.
    pub sign: f64,
}

impl Standardisation {
    /// Raw score to standardised score (higher is better).
    pub fn apply(&self, y: f64) -> f64 {
        self.sign * (y - self.mean) / self.std
    }

    /// Standardised score back to the oracle's units.
    pub fn invert(&self, z: f64) -> f64 {
        self.mean + self.sign * z * self.std
    }
}

/// The standardisation of `scores` (population standard deviation, floored at
/// [`STD_FLOOR`]); the identity-like map of mean 0 for an empty set.
pub fn standardisation(scores: &[f64], maximize: bool) -> Standardisation {
    let sign = if maximize { 1.0 } else { -1.0 };
    if scores.is_empty() {
        return Standardisation {
            mean: 0.0,
            std: 1.0,
            sign,
        };
    }
    let n = scores.len() as f64;
    let mean = scores.iter().sum::<f64>() / n;
    let var = scores.iter().map(|y| (y - mean).powi(2)).sum::<f64>() / n;
    Standardisation {
        mean,
        std: var.sqrt().max(STD_FLOOR),
        sign,
    }
}

/// Z-scores of `scores` over the given set (see [`standardisation`]), with the sign flipped
/// when `maximize` is false, so that higher is always better afterwards. Empty in, empty out.
pub fn standardise(scores: &[f64], maximize: bool) -> Vec<f64> {
    let scale = standardisation(scores, maximize);
    scores.iter().map(|y| scale.apply(*y)).collect()
}

/// Acquisition values of labelled candidates, in units of standardised score: the
/// standardised score itself, since a measurement is the best estimate of its mean and
/// leaves no uncertainty for UCB to add.
pub fn acquisition_from_labels(standardised: &[f64]) -> Vec<f64> {
    standardised.to_vec()
}

/// `log R` of each acquisition value under the campaign's transform:
/// - `exp`: `log R = beta * a`;
/// - `power`: `a'` = `a` rescaled to [0, 1] over the given set (min-max), then
///   `log R = beta * ln(max(a', min))`. When every value is equal, `a' = 1` for all of them
///   (each is the best seen), so `log R = 0`.
///
/// Rescaling standardised scores gives the same `a'` as rescaling the raw scores after the
/// `maximize` flip, since standardising is affine with a positive factor.
pub fn log_rewards(spec: &RewardSpec, acquisition: &[f64]) -> Vec<f32> {
    let lo = acquisition.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = acquisition
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    log_rewards_in_range(spec, acquisition, lo, hi)
}

/// [`log_rewards`] with the `power` transform's rescaling range given: `a' = (a - lo) /
/// (hi - lo)`, 1 when the range is empty. The surrogate passes the range of the measured
/// scores, so that labelled and predicted candidates share one scale (a prediction above
/// the best measurement gets `a' > 1`).
pub fn log_rewards_in_range(spec: &RewardSpec, acquisition: &[f64], lo: f64, hi: f64) -> Vec<f32> {
    let beta = spec.beta();
    match spec.transform {
        Transform::Exp => acquisition.iter().map(|a| (beta * a) as f32).collect(),
        Transform::Power => {
            let range = hi - lo;
            acquisition
                .iter()
                .map(|a| {
                    let rescaled = if range > 0.0 { (a - lo) / range } else { 1.0 };
                    (beta * rescaled.max(spec.min).ln()) as f32
                })
                .collect()
        }
    }
}

/// The whole pipeline for training on labelled data: mean raw scores of the labelled
/// candidates in, one `log R` per candidate out (same order).
pub fn training_log_rewards(spec: &RewardSpec, scores: &[f64]) -> Vec<f32> {
    let z = standardise(scores, spec.maximize);
    log_rewards(spec, &acquisition_from_labels(&z))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::campaign::Acquisition;

    #[test]
    #[allow(clippy::unwrap_used, clippy::expect_used)]
    fn the_campaign_cost_counts_the_inputs_and_parameters_of_the_proxy() {
        use rand::SeedableRng;
        let body = serde_json::json!({"name": "p", "space": {"type": "sequence",
            "alphabet": ["A", "C", "G"], "min_length": 4, "max_length": 4},
            "training": {"proxy": {"members": 3, "hidden": 7, "features": "onehot+kmer"}}});
        let spec = serde_json::from_value::<crate::domain::campaign::NewCampaign>(body)
            .expect("a campaign")
            .validate()
            .expect("valid");
        let space = spec.space.build().expect("space");
        let cost = campaign_cost(&spec, space.as_ref());
        let map = features::FeatureMap::new(spec.training.proxy.features, space.as_ref());
        // The k-mer counts widen the inputs beyond the encoding (12): 3 + 9 + 27 more.
        assert_eq!(cost.proxy_inputs, map.dim());
        assert_eq!(cost.proxy_inputs, 12 + 3 + 9 + 27);
        let d = map.dim();
        let x = vec![0.5f32; 4 * d];
        let y = [0.0, 1.0, 2.0, 3.0];
        let settings = ensemble::FitSettings {
            members: 3,
            hidden: 7,
            steps: 1,
            batch_size: 2,
            lr: 1e-3,
            weight_decay: 0.0,
            patience: 0,
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let fitted =
            ensemble::Ensemble::fit(&x, d, &y, ensemble::Target::Regression, &settings, &mut rng)
                .expect("a fit");
        let counted: usize = fitted
            .named_tensors("")
            .iter()
            .map(|(_, t)| t.elem_count())
            .sum();
        assert_eq!(cost.proxy_parameters(), counted as u128);
    }

    fn spec(transform: Transform, beta: f64, maximize: bool) -> RewardSpec {
        RewardSpec {
            maximize,
            acquisition: Acquisition::Ucb,
            kappa: 1.0,
            transform,
            beta: Some(beta),
            min: 1e-8,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-5
    }

    #[test]
    fn descending_score_sorts_best_first_and_nan_last() {
        let mut v = [
            1.0,
            f64::NAN,
            f64::INFINITY,
            -2.0,
            f64::NEG_INFINITY,
            f64::NAN,
            3.0,
        ];
        v.sort_by(|a, b| descending_score(*a, *b));
        assert_eq!(v[..5], [f64::INFINITY, 3.0, 1.0, -2.0, f64::NEG_INFINITY]);
        assert!(v[5].is_nan() && v[6].is_nan(), "{v:?}");
        assert_eq!(descending_score(f64::NAN, f64::NAN), Ordering::Equal);
        assert_eq!(
            descending_score(f64::NAN, f64::NEG_INFINITY),
            Ordering::Greater
        );
    }

    #[test]
    fn standardise_gives_zero_mean_and_unit_population_std() {
        let z = standardise(&[1.0, 2.0, 3.0, 6.0], true);
        // mean 3, population variance (4 + 1 + 0 + 9) / 4 = 3.5
        let std = 3.5f64.sqrt();
        let expected = [-2.0 / std, -1.0 / std, 0.0, 3.0 / std];
        for (got, want) in z.iter().zip(expected) {
            assert!(close(*got, want), "{z:?}");
        }
    }

    #[test]
    fn standardise_flips_the_sign_when_minimising() {
        let up = standardise(&[1.0, 5.0, 9.0], true);
        let down = standardise(&[1.0, 5.0, 9.0], false);
        for (u, d) in up.iter().zip(&down) {
            assert!(close(*u, -d));
        }
        assert!(
            down[0] > down[2],
            "the lowest score is the best when minimising"
        );
    }

    #[test]
    fn standardise_of_equal_scores_is_zero_not_nan() {
        assert_eq!(standardise(&[4.0, 4.0, 4.0], true), vec![0.0, 0.0, 0.0]);
        assert_eq!(standardise(&[-7.5], false), vec![0.0]);
        assert!(standardise(&[], true).is_empty());
    }

    #[test]
    fn exp_transform_is_beta_times_acquisition_in_log_space() {
        let s = spec(Transform::Exp, 4.0, true);
        let lr = log_rewards(&s, &[-1.0, 0.0, 0.5, 2.0]);
        assert_eq!(lr, vec![-4.0, 0.0, 2.0, 8.0]);
    }

    #[test]
    fn exp_transform_does_not_overflow_for_huge_acquisition() {
        let s = spec(Transform::Exp, 100.0, true);
        let lr = log_rewards(&s, &[50.0]);
        assert!(lr[0].is_finite() && close(lr[0] as f64, 5000.0));
    }

    #[test]
    fn power_transform_rescales_to_unit_interval_and_floors_at_min() {
        let s = spec(Transform::Power, 3.0, true);
        let lr = log_rewards(&s, &[-2.0, 0.0, 2.0]);
        // a' = 0, 0.5, 1 -> log R = 3 ln(max(a', 1e-8))
        assert!(close(lr[0] as f64, 3.0 * 1e-8f64.ln()), "{lr:?}");
        assert!(close(lr[1] as f64, 3.0 * 0.5f64.ln()), "{lr:?}");
        assert!(close(lr[2] as f64, 0.0), "{lr:?}");
    }

    #[test]
    fn power_transform_of_equal_values_gives_reward_one() {
        let s = spec(Transform::Power, 3.0, true);
        assert_eq!(log_rewards(&s, &[1.5, 1.5]), vec![0.0, 0.0]);
    }

    #[test]
    fn power_after_minimise_flip_rewards_the_lowest_score_most() {
        let s = spec(Transform::Power, 2.0, false);
        let lr = training_log_rewards(&s, &[10.0, 20.0, 30.0]);
        // flipped: best is 10 (a' = 1), middle a' = 0.5, worst a' = 0 -> floored.
        assert!(close(lr[0] as f64, 0.0), "{lr:?}");
        assert!(close(lr[1] as f64, 2.0 * 0.5f64.ln()), "{lr:?}");
        assert!(close(lr[2] as f64, 2.0 * 1e-8f64.ln()), "{lr:?}");
    }

    #[test]
    fn training_log_rewards_of_exp_are_beta_times_z_scores() {
        let s = spec(Transform::Exp, 4.0, true);
        let scores = [0.0, 10.0];
        // mean 5, population std 5: z = -1, 1
        assert_eq!(training_log_rewards(&s, &scores), vec![-4.0, 4.0]);
    }

    #[test]
    fn default_reward_spec_uses_exp_with_beta_four() {
        let lr = training_log_rewards(&RewardSpec::default(), &[0.0, 10.0]);
        assert_eq!(lr, vec![-4.0, 4.0]);
    }
}
