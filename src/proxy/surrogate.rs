//! The surrogate reward model of a campaign: a regression ensemble over the terminal
//! encoding, fit to standardised oracle scores, and (once some candidates failed) a
//! classification ensemble predicting which candidates the oracle can measure at all.
//!
//! Its quality is reported honestly: before the final fit on every label, a copy is fit on
//! a random split and scored on the held-out part (Spearman of the ranking and RMSE in the
//! oracle's units).
//!
//! The networks see the inputs of the campaign's [`FeatureSet`] (see `features`); the
//! feature map is stored in the checkpoint metadata, and a checkpoint from before features
//! existed loads as the plain encoding it was fit on.

use super::ensemble::{Ensemble, FitSettings, Target};
use super::features::FeatureMap;
use super::{descending_score, standardisation, ProxyError, Standardisation};
use crate::domain::campaign::{Acquisition, ProxySpec, RewardSpec};
use crate::gfn::{Space, State};
use candle_core::Tensor;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Fewest labels for a held-out estimate: below it the split would say nothing.
pub const MIN_LABELS_FOR_HOLDOUT: usize = 10;

/// Smallest feasibility probability used in log space, so a confident classifier cannot
/// send a reward to minus infinity.
const MIN_FEASIBLE: f64 = 1e-4;

/// Held-out quality of a fit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
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

/// What the surrogate says about one candidate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// Mean over the members, in the oracle's units.
    pub mean: f64,
    /// Standard deviation over the members, in the oracle's units.
    pub std: f64,
    /// Mean in standardised units, higher is better (the `maximize` flip applied).
    pub z_mean: f64,
    /// Standard deviation in standardised units.
    pub z_std: f64,
    /// Probability that the oracle measures the candidate instead of failing; 1 while no
    /// candidate has failed.
    pub p_feasible: f64,
}

/// Everything but the tensors, stored as checkpoint metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SurrogateMeta {
    scale: Standardisation,
    /// Smallest and largest standardised score of the labels (the `power` transform's
    /// rescaling range).
    z_range: (f64, f64),
    feasibility: bool,
    quality: Option<ProxyQuality>,
    /// The inputs the networks were fit on; absent in checkpoints from before features
    /// existed, which were fit on the space's encoding.
    #[serde(default)]
    features: Option<FeatureMap>,
}

/// A fitted surrogate.
#[derive(Debug)]
pub struct Surrogate {
    regression: Ensemble,
    feasibility: Option<Ensemble>,
    map: FeatureMap,
    meta: SurrogateMeta,
}

/// Prefixes of the surrogate's tensors in a checkpoint.
const REGRESSION_PREFIX: &str = "proxy.regression.";
const FEASIBILITY_PREFIX: &str = "proxy.feasibility.";

/// Validation measurements (of [`super::ensemble::EVAL_EVERY`] steps each) without
/// improvement before a fit stops.
const PATIENCE: usize = 5;

fn fit_settings(spec: &ProxySpec) -> FitSettings {
    FitSettings {
        members: spec.members,
        hidden: spec.hidden,
        steps: spec.steps,
        batch_size: crate::domain::cost::PROXY_FIT_BATCH,
        lr: 3e-3,
        weight_decay: 1e-4,
        patience: PATIENCE,
    }
}

impl Surrogate {
    /// Fits the surrogate on the labelled candidates (terminal, mean raw score) and the
    /// candidates that only ever failed.
    pub fn fit(
        space: &dyn Space,
        labelled: &[(State, f64)],
        failed: &[State],
        maximize: bool,
        spec: &ProxySpec,
        rng: &mut impl Rng,
    ) -> Result<Self, ProxyError> {
        if labelled.is_empty() {
            return Err(ProxyError::NoLabels);
        }
        let scores: Vec<f64> = labelled.iter().map(|(_, y)| *y).collect();
        let scale = standardisation(&scores, maximize);
        let z: Vec<f32> = scores.iter().map(|y| scale.apply(*y) as f32).collect();
        let map = FeatureMap::new(spec.features, space);
        let dim = map.dim();
        let states: Vec<State> = labelled.iter().map(|(x, _)| x.clone()).collect();
        let x = map.encode(space, &states);
        let settings = fit_settings(spec);

        let quality = if labelled.len() >= MIN_LABELS_FOR_HOLDOUT && spec.holdout > 0.0 {
            let data = Encoded {
                x: &x,
                dim,
                z: &z,
                scores: &scores,
            };
            Some(holdout_quality(
                &data,
                &scale,
                spec.holdout,
                &settings,
                rng,
            )?)
        } else {
            None
        };
        let regression = Ensemble::fit(&x, dim, &z, Target::Regression, &settings, rng)?;
        let feasibility = if failed.is_empty() {
            None
        } else {
            let mut all = states;
            all.extend(failed.iter().cloned());
            let xs = map.encode(space, &all);
            let ys: Vec<f32> = (0..all.len())
                .map(|i| if i < labelled.len() { 1.0 } else { 0.0 })
                .collect();
            // The classifier trains the full count: its out-of-bag loss first falls to the
            // class prior and only later to a boundary, so early stopping would keep the
            // prior (a flat feasibility that teaches rounds nothing about failures).
            let full = FitSettings {
                patience: 0,
                ..settings
            };
            Some(Ensemble::fit(
                &xs,
                dim,
                &ys,
                Target::Classification,
                &full,
                rng,
            )?)
        };
        let lo = z.iter().copied().fold(f32::INFINITY, f32::min) as f64;
        let hi = z.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        Ok(Self {
            regression,
            meta: SurrogateMeta {
                scale,
                z_range: (lo, hi),
                feasibility: feasibility.is_some(),
                quality,
                features: Some(map),
            },
            feasibility,
            map,
        })
    }

    /// The held-out quality, when there were enough labels to measure it.
    pub fn quality(&self) -> Option<ProxyQuality> {
        self.meta.quality
    }

    /// Predictions for terminals of the space the surrogate was fit on.
    pub fn predict(
        &self,
        space: &dyn Space,
        states: &[State],
    ) -> Result<Vec<Prediction>, ProxyError> {
        if states.is_empty() {
            return Ok(Vec::new());
        }
        // At most one chunk of the engine's ([`crate::gfn::memory::chunk_bytes`]) encoded
        // at once, so a pool of thousands of long sequences never needs its whole encoding
        // in memory; the ensembles chunk their products again.
        let rows =
            crate::gfn::memory::rows_per_chunk(self.map.dim().max(1) * std::mem::size_of::<f32>());
        let mut members = vec![Vec::with_capacity(states.len()); self.regression.members()];
        let mut feasible = self
            .feasibility
            .as_ref()
            .map(|_| Vec::with_capacity(states.len()));
        for chunk in states.chunks(rows) {
            let x = self.map.encode(space, chunk);
            for (all, part) in members.iter_mut().zip(self.regression.predict(&x)?) {
                all.extend(part);
            }
            if let (Some(f), Some(out)) = (&self.feasibility, feasible.as_mut()) {
                out.extend(member_mean(&f.predict(&x)?));
            }
        }
        let k = members.len() as f64;
        let scale = self.meta.scale;
        Ok((0..states.len())
            .map(|i| {
                let z_mean = members.iter().map(|m| f64::from(m[i])).sum::<f64>() / k;
                let var = members
                    .iter()
                    .map(|m| (f64::from(m[i]) - z_mean).powi(2))
                    .sum::<f64>()
                    / k;
                let z_std = var.sqrt();
                Prediction {
                    mean: scale.invert(z_mean),
                    std: z_std * scale.std,
                    z_mean,
                    z_std,
                    p_feasible: feasible.as_ref().map_or(1.0, |f| f[i]),
                }
            })
            .collect())
    }

    /// `log R` of predicted candidates under the campaign's reward: the transform of the
    /// acquisition value plus `ln P(feasible)`, the reward's expectation over the oracle
    /// failing (a failed candidate is worth nothing).
    pub fn log_rewards(&self, spec: &RewardSpec, predictions: &[Prediction]) -> Vec<f32> {
        let acquisition: Vec<f64> = predictions.iter().map(|p| acquisition(spec, p)).collect();
        let (lo, hi) = self.meta.z_range;
        super::log_rewards_in_range(spec, &acquisition, lo, hi)
            .into_iter()
            .zip(predictions)
            .map(|(lr, p)| lr + p.p_feasible.max(MIN_FEASIBLE).ln() as f32)
            .collect()
    }

    /// `log R` of measured standardised scores, on the same scale as [`Surrogate::log_rewards`].
    pub fn measured_log_rewards(&self, spec: &RewardSpec, z: &[f64]) -> Vec<f32> {
        let (lo, hi) = self.meta.z_range;
        super::log_rewards_in_range(spec, z, lo, hi)
    }

    /// The standardisation of raw scores the surrogate was fit with.
    pub fn scale(&self) -> Standardisation {
        self.meta.scale
    }

    /// The inputs the surrogate's networks see.
    pub fn features(&self) -> FeatureMap {
        self.map
    }

    /// Optimisation steps the regression fit ran (at most `training.proxy.steps`; fewer
    /// when it stopped early); 0 for a surrogate loaded from a checkpoint.
    pub fn steps_run(&self) -> usize {
        self.regression.steps_run()
    }

    /// Tensors (under `proxy.`) and metadata for a checkpoint.
    pub fn to_parts(&self) -> Result<(Vec<(String, Tensor)>, String), ProxyError> {
        let mut tensors = self.regression.named_tensors(REGRESSION_PREFIX);
        if let Some(f) = &self.feasibility {
            tensors.extend(f.named_tensors(FEASIBILITY_PREFIX));
        }
        let meta = serde_json::to_string(&self.meta)?;
        Ok((tensors, meta))
    }

    /// Rebuilds a surrogate from [`Surrogate::to_parts`] for a space of `encoding_dim`-wide
    /// encodings (the checkpoint's metadata says which features were computed from them).
    pub fn from_parts(
        tensors: &HashMap<String, Tensor>,
        meta: &str,
        encoding_dim: usize,
    ) -> Result<Self, ProxyError> {
        let meta: SurrogateMeta = serde_json::from_str(meta)?;
        let map = meta
            .features
            .unwrap_or_else(|| FeatureMap::legacy(encoding_dim));
        if map.encoding_dim != encoding_dim {
            return Err(ProxyError::Checkpoint(format!(
                "the proxy was fit on a space encoded in {} inputs, not {encoding_dim}",
                map.encoding_dim
            )));
        }
        let input_dim = map.dim();
        let regression = Ensemble::from_named_tensors(
            tensors,
            REGRESSION_PREFIX,
            input_dim,
            Target::Regression,
        )?;
        let feasibility = if meta.feasibility {
            Some(Ensemble::from_named_tensors(
                tensors,
                FEASIBILITY_PREFIX,
                input_dim,
                Target::Classification,
            )?)
        } else {
            None
        };
        Ok(Self {
            regression,
            feasibility,
            map,
            meta,
        })
    }
}

/// The labelled candidates as the proxy sees them: encoded rows of `dim` features, their
/// standardised scores `z` and the scores as measured.
struct Encoded<'a> {
    x: &'a [f32],
    dim: usize,
    z: &'a [f32],
    scores: &'a [f64],
}

/// The random-split figures of the proxy: a copy fit on all but a `holdout` share of the
/// labelled candidates, scored on that share.
fn holdout_quality(
    data: &Encoded<'_>,
    scale: &Standardisation,
    holdout: f64,
    settings: &FitSettings,
    rng: &mut impl Rng,
) -> Result<ProxyQuality, ProxyError> {
    let n = data.scores.len();
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    let test_n = ((n as f64 * holdout).round() as usize).clamp(2, n - 2);
    let (test, train) = order.split_at(test_n);
    let dim = data.dim;
    let rows = |idx: &[usize]| -> Vec<f32> {
        idx.iter()
            .flat_map(|&i| data.x[i * dim..(i + 1) * dim].iter().copied())
            .collect()
    };
    let train_y: Vec<f32> = train.iter().map(|&i| data.z[i]).collect();
    let copy = Ensemble::fit(
        &rows(train),
        dim,
        &train_y,
        Target::Regression,
        settings,
        rng,
    )?;
    let predicted = member_mean(&copy.predict(&rows(test))?);
    let measured: Vec<f64> = test.iter().map(|&i| data.scores[i]).collect();
    let predicted_raw: Vec<f64> = predicted.iter().map(|p| scale.invert(*p)).collect();
    let rmse = (measured
        .iter()
        .zip(&predicted_raw)
        .map(|(m, p)| (m - p).powi(2))
        .sum::<f64>()
        / measured.len() as f64)
        .sqrt();
    Ok(ProxyQuality {
        spearman: spearman(&predicted_raw, &measured),
        rmse,
        train: train.len(),
        test: test.len(),
    })
}

/// The acquisition value of a prediction, in standardised units: `ucb` is
/// `mean + kappa * std`, `mean` the mean alone.
pub fn acquisition(spec: &RewardSpec, p: &Prediction) -> f64 {
    match spec.acquisition {
        Acquisition::Ucb => p.z_mean + spec.kappa * p.z_std,
        Acquisition::Mean => p.z_mean,
    }
}

/// Mean over members of `out[k][i]`, per row `i`.
fn member_mean(out: &[Vec<f32>]) -> Vec<f64> {
    let k = out.len().max(1) as f64;
    let n = out.first().map_or(0, Vec::len);
    (0..n)
        .map(|i| out.iter().map(|m| f64::from(m[i])).sum::<f64>() / k)
        .collect()
}

/// Ranks from 1 (the lowest value) up, ties sharing the mean of their ranks; NaN ranks
/// below everything (as the worst score, see [`descending_score`]), NaNs tied.
fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| descending_score(values[b], values[a]));
    let mut out = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && same(values[order[j + 1]], values[order[i]]) {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &o in &order[i..=j] {
            out[o] = rank;
        }
        i = j + 1;
    }
    out
}

/// Equal values, NaN equal to NaN.
fn same(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

/// Spearman's rank correlation (Pearson on ranks with ties averaged); 0 when either side
/// is constant. A NaN ranks as the lowest value.
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let (ra, rb) = (ranks(a), ranks(b));
    let n = ra.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = ra.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = rb.iter().map(|y| (y - mb).powi(2)).sum();
    if va == 0.0 || vb == 0.0 {
        0.0
    } else {
        cov / (va * vb).sqrt()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::domain::campaign::Transform;
    use crate::gfn::space::GridSpace;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    const SIZE: u16 = 32;

    /// A smooth landscape on the 32 x 32 grid, with an interaction between the axes.
    fn smooth(x: &State) -> f64 {
        let (a, b) = (f64::from(x.0[0]), f64::from(x.0[1]));
        (a / 5.0).sin() + (b / 7.0).cos() + 0.5 * ((a + b) / 9.0).sin()
    }

    fn grid() -> GridSpace {
        GridSpace::new(2, usize::from(SIZE)).expect("grid")
    }

    fn random_points(n: usize, max_a: u16, rng: &mut StdRng) -> Vec<State> {
        random_box(n, max_a, SIZE, rng)
    }

    fn random_box(n: usize, max_a: u16, max_b: u16, rng: &mut StdRng) -> Vec<State> {
        (0..n)
            .map(|_| State(vec![rng.random_range(0..max_a), rng.random_range(0..max_b)]))
            .collect()
    }

    fn spec() -> ProxySpec {
        ProxySpec::default()
    }

    #[test]
    fn the_ensemble_fits_a_smooth_function_on_held_out_points() {
        let space = grid();
        let mut rng = StdRng::seed_from_u64(1);
        let train: Vec<(State, f64)> = random_points(300, SIZE, &mut rng)
            .into_iter()
            .map(|x| {
                let y = smooth(&x);
                (x, y)
            })
            .collect();
        let proxy = Surrogate::fit(&space, &train, &[], true, &spec(), &mut rng).expect("fit");
        let quality = proxy
            .quality()
            .expect("300 labels are enough to hold some out");
        assert_eq!(quality.train + quality.test, 300);
        assert!(quality.spearman > 0.8, "{quality:?}");
        // Fresh points, never seen by any fit.
        let test = random_points(400, SIZE, &mut rng);
        let predicted: Vec<f64> = proxy
            .predict(&space, &test)
            .expect("predict")
            .iter()
            .map(|p| p.mean)
            .collect();
        let truth: Vec<f64> = test.iter().map(smooth).collect();
        let rho = spearman(&predicted, &truth);
        assert!(rho > 0.8, "held-out Spearman {rho}");
    }

    #[test]
    fn the_spread_grows_away_from_the_data() {
        let space = grid();
        let mut rng = StdRng::seed_from_u64(2);
        // Only the lower-left quarter of the grid is measured.
        let half = SIZE / 2;
        let train: Vec<(State, f64)> = random_box(300, half, half, &mut rng)
            .into_iter()
            .map(|x| {
                let y = smooth(&x);
                (x, y)
            })
            .collect();
        let proxy = Surrogate::fit(&space, &train, &[], true, &spec(), &mut rng).expect("fit");
        let mean_std = |points: &[State]| {
            let p = proxy.predict(&space, points).expect("predict");
            p.iter().map(|p| p.std).sum::<f64>() / p.len() as f64
        };
        let near = mean_std(&random_box(200, half, half, &mut rng));
        let far: Vec<State> = random_box(200, half, half, &mut rng)
            .into_iter()
            .map(|x| State(vec![x.0[0] + half, x.0[1] + half]))
            .collect();
        let far = mean_std(&far);
        assert!(
            far > 2.0 * near,
            "std near the data {near}, away from it {far}"
        );
    }

    #[test]
    fn the_feasibility_model_learns_where_candidates_fail() {
        let space = grid();
        let mut rng = StdRng::seed_from_u64(3);
        let fails = |x: &State| x.0[0] + x.0[1] > 40;
        let points = random_points(400, SIZE, &mut rng);
        let labelled: Vec<(State, f64)> = points
            .iter()
            .filter(|x| !fails(x))
            .map(|x| (x.clone(), smooth(x)))
            .collect();
        let failed: Vec<State> = points.iter().filter(|x| fails(x)).cloned().collect();
        assert!(failed.len() > 40, "the region is large enough to learn");
        let proxy =
            Surrogate::fit(&space, &labelled, &failed, true, &spec(), &mut rng).expect("fit");
        let test = random_points(400, SIZE, &mut rng);
        let p = proxy.predict(&space, &test).expect("predict");
        let mean_p = |want_fail: bool| {
            let ps: Vec<f64> = test
                .iter()
                .zip(&p)
                .filter(|(x, _)| fails(x) == want_fail)
                .map(|(_, p)| p.p_feasible)
                .collect();
            ps.iter().sum::<f64>() / ps.len() as f64
        };
        let (ok, bad) = (mean_p(false), mean_p(true));
        assert!(
            ok > 0.8 && bad < 0.3,
            "P(feasible): feasible {ok}, infeasible {bad}"
        );
    }

    fn reward(acquisition: Acquisition, transform: Transform, kappa: f64, beta: f64) -> RewardSpec {
        RewardSpec {
            maximize: true,
            acquisition,
            kappa,
            transform,
            beta: Some(beta),
            min: 1e-3,
        }
    }

    fn prediction(z_mean: f64, z_std: f64, p_feasible: f64) -> Prediction {
        Prediction {
            mean: 0.0,
            std: 0.0,
            z_mean,
            z_std,
            p_feasible,
        }
    }

    #[test]
    fn acquisition_is_ucb_or_the_mean() {
        let p = prediction(0.5, 2.0, 1.0);
        assert_eq!(
            acquisition(&reward(Acquisition::Ucb, Transform::Exp, 1.5, 4.0), &p),
            3.5
        );
        assert_eq!(
            acquisition(&reward(Acquisition::Mean, Transform::Exp, 1.5, 4.0), &p),
            0.5
        );
    }

    #[test]
    fn log_rewards_follow_the_transforms_and_weigh_in_feasibility() {
        let space = grid();
        let mut rng = StdRng::seed_from_u64(4);
        let labelled: Vec<(State, f64)> = vec![
            (State(vec![0, 0]), 1.0),
            (State(vec![1, 0]), 2.0),
            (State(vec![2, 0]), 4.0),
            (State(vec![3, 0]), 5.0),
        ];
        let small = ProxySpec {
            steps: 5,
            ..ProxySpec::default()
        };
        let proxy = Surrogate::fit(&space, &labelled, &[], true, &small, &mut rng).expect("fit");
        // Scores 1, 2, 4, 5: mean 3, population std sqrt(2.5).
        let std = 2.5f64.sqrt();
        let (lo, hi) = (-2.0 / std, 2.0 / std);
        assert!(
            (proxy.meta.z_range.0 - lo).abs() < 1e-6 && (proxy.meta.z_range.1 - hi).abs() < 1e-6
        );
        let preds = [prediction(0.2, 0.5, 1.0), prediction(-1.0, 0.1, 0.25)];

        let exp = reward(Acquisition::Ucb, Transform::Exp, 2.0, 3.0);
        let got = proxy.log_rewards(&exp, &preds);
        let want = [
            3.0 * (0.2 + 2.0 * 0.5),
            3.0 * (-1.0 + 2.0 * 0.1) + 0.25f64.ln(),
        ];
        for (g, w) in got.iter().zip(want) {
            assert!((f64::from(*g) - w).abs() < 1e-4, "{got:?} vs {want:?}");
        }

        let power = reward(Acquisition::Mean, Transform::Power, 0.0, 2.0);
        let got = proxy.log_rewards(&power, &preds);
        let rescale = |a: f64| ((a - lo) / (hi - lo)).max(1e-3);
        let want = [
            2.0 * rescale(0.2).ln(),
            2.0 * rescale(-1.0).ln() + 0.25f64.ln(),
        ];
        for (g, w) in got.iter().zip(want) {
            assert!((f64::from(*g) - w).abs() < 1e-4, "{got:?} vs {want:?}");
        }
        // Measured scores sit on the same scale: the best label gets a' = 1, log R = 0.
        let measured = proxy.measured_log_rewards(&power, &[hi]);
        assert!(measured[0].abs() < 1e-5, "{measured:?}");
    }

    #[test]
    fn a_surrogate_survives_its_checkpoint_parts() {
        let space = grid();
        let mut rng = StdRng::seed_from_u64(5);
        let points = random_points(40, SIZE, &mut rng);
        let labelled: Vec<(State, f64)> = points[..30]
            .iter()
            .map(|x| (x.clone(), smooth(x)))
            .collect();
        let small = ProxySpec {
            steps: 20,
            ..ProxySpec::default()
        };
        let proxy =
            Surrogate::fit(&space, &labelled, &points[30..], false, &small, &mut rng).expect("fit");
        let (tensors, meta) = proxy.to_parts().expect("parts");
        let map: HashMap<String, Tensor> = tensors.into_iter().collect();
        let back = Surrogate::from_parts(&map, &meta, space.encoding_dim()).expect("loads");
        let probe = random_points(10, SIZE, &mut rng);
        let (a, b) = (
            proxy.predict(&space, &probe).expect("predict"),
            back.predict(&space, &probe).expect("predict"),
        );
        for (p, q) in a.iter().zip(&b) {
            assert_eq!(
                (p.z_mean, p.z_std, p.p_feasible),
                (q.z_mean, q.z_std, q.p_feasible)
            );
            // The standardisation goes through JSON text: equal to the last few bits.
            assert!((p.mean - q.mean).abs() < 1e-9 && (p.std - q.std).abs() < 1e-9);
        }
        assert!(Surrogate::from_parts(&map, &meta, space.encoding_dim() + 1).is_err());
    }

    #[test]
    fn spearman_matches_hand_computed_values() {
        assert!((spearman(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0]) - 1.0).abs() < 1e-12);
        assert!((spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        // Ranks (1, 2.5, 2.5, 4) against (1, 2, 3, 4): cov 4.5, variances 4.5 and 5.
        let rho = spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 2.0, 3.0, 4.0]);
        assert!((rho - 4.5 / (4.5f64 * 5.0).sqrt()).abs() < 1e-12, "{rho}");
        assert_eq!(spearman(&[1.0, 1.0], &[1.0, 2.0]), 0.0);
    }

    #[test]
    fn a_nan_prediction_ranks_last_not_first() {
        // Read as the lowest value the NaN agrees with the measured order exactly; read as
        // the highest (total_cmp) it would reverse part of it.
        let rho = spearman(&[f64::NAN, 1.0, 2.0], &[0.0, 1.0, 2.0]);
        assert!((rho - 1.0).abs() < 1e-12, "{rho}");
        let rho = spearman(&[f64::NAN, f64::NAN, 2.0], &[0.0, 0.0, 2.0]);
        assert!((rho - 1.0).abs() < 1e-12, "NaNs tie: {rho}");
    }

    fn peptide_space() -> Box<dyn Space> {
        serde_json::from_value::<crate::gfn::SpaceSpec>(serde_json::json!({
            "type": "sequence", "alphabet": ["A", "C", "D", "E", "F"],
            "min_length": 8, "max_length": 8}))
        .unwrap()
        .build()
        .unwrap()
    }

    fn peptides(n: usize, rng: &mut StdRng) -> Vec<(State, f64)> {
        (0..n)
            .map(|_| {
                let x = State((0..8).map(|_| rng.random_range(0..5u16)).collect());
                // Counts of "CD" anywhere, and of E.
                let y = x.0.windows(2).filter(|w| w == &[1, 2]).count() as f64
                    + 0.3 * x.0.iter().filter(|t| **t == 3).count() as f64;
                (x, y)
            })
            .collect()
    }

    #[test]
    fn features_are_recorded_in_the_checkpoint_and_old_ones_load_as_onehot() {
        let space = peptide_space();
        let mut rng = StdRng::seed_from_u64(6);
        let labelled = peptides(30, &mut rng);
        let probe: Vec<State> = peptides(10, &mut rng).into_iter().map(|p| p.0).collect();
        for features in [
            crate::proxy::FeatureSet::OneHotKmer,
            crate::proxy::FeatureSet::OneHot,
        ] {
            let spec = ProxySpec {
                steps: 20,
                features,
                ..ProxySpec::default()
            };
            let proxy =
                Surrogate::fit(space.as_ref(), &labelled, &[], true, &spec, &mut rng).unwrap();
            assert_eq!(proxy.features().features, features);
            let (tensors, meta) = proxy.to_parts().unwrap();
            let map: HashMap<String, Tensor> = tensors.into_iter().collect();
            let mut metas = vec![meta.clone()];
            if features == crate::proxy::FeatureSet::OneHot {
                // A checkpoint written before features existed has no such key.
                let mut old: serde_json::Value = serde_json::from_str(&meta).unwrap();
                old.as_object_mut().unwrap().remove("features");
                metas.push(old.to_string());
            }
            for meta in metas {
                let back = Surrogate::from_parts(&map, &meta, space.encoding_dim()).unwrap();
                assert_eq!(back.features().features, features);
                assert_eq!(back.features().dim(), proxy.features().dim());
                let (a, b) = (
                    proxy.predict(space.as_ref(), &probe).unwrap(),
                    back.predict(space.as_ref(), &probe).unwrap(),
                );
                for (p, q) in a.iter().zip(&b) {
                    assert_eq!((p.z_mean, p.z_std), (q.z_mean, q.z_std));
                }
            }
        }
    }
}
