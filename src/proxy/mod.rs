//! Rewards for training (SPEC §3): raw oracle scores become standardised scores, standardised
//! scores become acquisition values, and acquisition values become GFlowNet log-rewards
//! through the campaign's transform.
//!
//! Owns the reward arithmetic only; the surrogate model (an ensemble predicting mean and std,
//! hence UCB acquisition) lands here in a later issue. Until then the acquisition value of a
//! labelled candidate is its standardised score, whatever `acquisition` says:
//! [`acquisition_from_labels`] is the seam the proxy replaces.
//!
//! Synchronous and pure: imports only `domain`; no tokio, sqlx or axum. Everything is
//! returned in log space (`f32`) so that `exp(beta * a)` never overflows.

use crate::domain::campaign::{RewardSpec, Transform};

/// Smallest standard deviation used when standardising, so that a data set of equal scores
/// (or a single label) gives z-scores of 0 instead of a division by zero.
pub const STD_FLOOR: f64 = 1e-6;

/// Z-scores of `scores` over the given set (population standard deviation, floored at
/// [`STD_FLOOR`]), with the sign flipped when `maximize` is false, so that higher is always
/// better afterwards. Empty in, empty out.
pub fn standardise(scores: &[f64], maximize: bool) -> Vec<f64> {
    if scores.is_empty() {
        return Vec::new();
    }
    let n = scores.len() as f64;
    let mean = scores.iter().sum::<f64>() / n;
    let var = scores.iter().map(|y| (y - mean).powi(2)).sum::<f64>() / n;
    let std = var.sqrt().max(STD_FLOOR);
    let sign = if maximize { 1.0 } else { -1.0 };
    scores.iter().map(|y| sign * (y - mean) / std).collect()
}

/// Acquisition values of labelled candidates, in units of standardised score. Without a
/// proxy this is the standardised score itself (the measured value is the best estimate of
/// the mean, with no uncertainty to add for UCB); the proxy will replace this function.
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
    let beta = spec.beta();
    match spec.transform {
        Transform::Exp => acquisition.iter().map(|a| (beta * a) as f32).collect(),
        Transform::Power => {
            let lo = acquisition.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = acquisition
                .iter()
                .copied()
                .fold(f64::NEG_INFINITY, f64::max);
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
