//! The trainable GFlowNet: policy network, log Z, optimiser, and one training step.
//!
//! A training step takes any batch of complete trajectories (sampled forward on-policy,
//! with exploration, or backward from labelled terminals) with their log-rewards, runs the
//! network once over every state of the batch, and applies one Adam update.

use super::objective::{self, BackwardPolicy, LossSettings, Objective, Prepared, Trajectory};
use super::policy::{Adam, Mlp};
use super::space::{encode_batch, Space, State};
use candle_core::{Device, Tensor, Var};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Errors of the engine.
#[derive(Debug, thiserror::Error)]
pub enum GfnError {
    #[error("tensor error: {0}")]
    Tensor(#[from] candle_core::Error),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    #[error("state {0:?} is not a terminal state of the space")]
    NotTerminal(State),
    /// The caller's scoring function failed (the proxy behind it, say).
    #[error("scoring candidates failed: {0}")]
    Score(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The work was called off (its client went away, or its deadline passed).
    #[error("cancelled")]
    Cancelled,
}

/// Network and optimisation settings of a GFlowNet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GfnConfig {
    pub objective: Objective,
    pub backward_policy: BackwardPolicy,
    /// Width of each hidden layer.
    pub hidden: usize,
    /// Number of hidden layers.
    pub layers: usize,
    /// Adam learning rate of the network.
    pub lr: f64,
    /// Adam learning rate of log Z (TB), usually much larger than `lr`.
    pub lr_log_z: f64,
    /// SubTB's lambda.
    pub subtb_lambda: f64,
    /// FM's epsilon in `log(eps + flow)`.
    pub fm_epsilon: f64,
    /// Largest global L2 norm of the gradient (network and log Z together): a larger one is
    /// scaled down to it before the Adam update, so one outlying batch cannot throw the
    /// policy far off. Positive and finite.
    pub max_grad_norm: f64,
}

impl Default for GfnConfig {
    fn default() -> Self {
        Self {
            objective: Objective::Tb,
            backward_policy: BackwardPolicy::Learned,
            hidden: 256,
            layers: 2,
            lr: 1e-3,
            lr_log_z: 0.1,
            subtb_lambda: 0.9,
            fm_epsilon: 1e-6,
            max_grad_norm: 10.0,
        }
    }
}

impl GfnConfig {
    /// Checks the ranges that would make training meaningless.
    pub fn validate(&self) -> Result<(), GfnError> {
        let bad = |m: &str| Err(GfnError::Config(m.to_string()));
        if !(1..=4096).contains(&self.hidden) {
            return bad("hidden must be in 1..=4096");
        }
        if !(1..=8).contains(&self.layers) {
            return bad("layers must be in 1..=8");
        }
        // Upper bounds too: beyond them a run only diverges (a NaN loss and a failed
        // campaign), and λ^length overflows for long trajectories.
        let within = |v: f64, max: f64| v > 0.0 && v <= max;
        if !within(self.lr, 1.0) {
            return bad("lr must be in (0, 1]");
        }
        if !within(self.lr_log_z, 10.0) {
            return bad("lr_log_z must be in (0, 10]");
        }
        if !within(self.subtb_lambda, 1.0) {
            return bad("subtb_lambda must be in (0, 1]");
        }
        if !(self.fm_epsilon > 0.0 && self.fm_epsilon.is_finite()) {
            return bad("fm_epsilon must be positive");
        }
        if !(self.max_grad_norm > 0.0 && self.max_grad_norm.is_finite()) {
            return bad("max_grad_norm must be positive and finite");
        }
        Ok(())
    }

    pub(crate) fn loss_settings(&self) -> LossSettings {
        LossSettings {
            objective: self.objective,
            backward: self.backward_policy,
            lambda: self.subtb_lambda,
            fm_epsilon: self.fm_epsilon,
        }
    }
}

/// [`GflowNet::forward_row_bytes`] of a network with `hidden` units per layer over an
/// encoding of `encoding` inputs and `actions` actions: `encoding + 3 hidden + 6 actions`
/// f32 values (the output layer holds `2 actions` columns, alive three times over).
pub fn forward_row_bytes(encoding: usize, hidden: usize, actions: usize) -> usize {
    encoding
        .saturating_add(hidden.saturating_mul(3))
        .saturating_add(actions.saturating_mul(6))
        .saturating_mul(std::mem::size_of::<f32>())
}

/// Exploration used when sampling forward: the policy's logits are divided by
/// `temperature`, then mixed with the uniform distribution over valid actions with weight
/// `epsilon`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Exploration {
    pub temperature: f32,
    pub epsilon: f32,
}

impl Default for Exploration {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            epsilon: 0.0,
        }
    }
}

/// What one training step reports.
#[derive(Debug, Clone, Copy)]
pub struct StepReport {
    /// The batch loss before the update.
    pub loss: f32,
    /// log Z after the step.
    pub log_z: f32,
    /// Global L2 norm of the gradient before clipping.
    pub grad_norm: f32,
    /// True when the loss or the gradient was not finite: nothing was updated, Adam's
    /// moments included, and the step was not counted.
    pub skipped: bool,
}

/// A GFlowNet over one space: network, log Z and optimiser state.
pub struct GflowNet {
    pub(crate) space: Arc<dyn Space>,
    pub(crate) config: GfnConfig,
    pub(crate) mlp: Mlp,
    pub(crate) log_z: Var,
    pub(crate) adam: Adam,
    pub(crate) device: Device,
    steps: u64,
    lr_scale: f64,
}

impl std::fmt::Debug for GflowNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GflowNet")
            .field("config", &self.config)
            .field("steps", &self.steps)
            .finish()
    }
}

impl GflowNet {
    /// A freshly initialised network whose weights come from `rng`.
    pub fn new(
        space: Arc<dyn Space>,
        config: GfnConfig,
        rng: &mut impl Rng,
    ) -> Result<Self, GfnError> {
        config.validate()?;
        // The process's device (`gfn::device`): the CPU unless `--device` chose a GPU.
        let device = super::device::current();
        let a = space.n_actions();
        let mlp = Mlp::new(
            space.encoding_dim(),
            config.hidden,
            config.layers,
            2 * a,
            rng,
            &device,
        )?;
        let log_z = Var::from_tensor(&Tensor::zeros(1, candle_core::DType::F32, &device)?)?;
        let sizes: Vec<usize> = mlp
            .named_vars()
            .iter()
            .map(|(_, v)| v.as_tensor().elem_count())
            .chain(std::iter::once(1))
            .collect();
        Ok(Self {
            space,
            config,
            mlp,
            log_z,
            adam: Adam::new(&sizes),
            device,
            steps: 0,
            lr_scale: 1.0,
        })
    }

    pub fn space(&self) -> &Arc<dyn Space> {
        &self.space
    }

    pub fn config(&self) -> &GfnConfig {
        &self.config
    }

    /// Training steps applied so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    pub(crate) fn set_steps(&mut self, steps: u64) {
        self.steps = steps;
    }

    /// Multiplies both learning rates from the next step on (a schedule's current factor).
    pub fn set_lr_scale(&mut self, scale: f64) {
        self.lr_scale = scale.max(0.0);
    }

    /// Sets log Z to an estimate of the log partition function from log-rewards of sampled
    /// terminals: `ln(number of terminals) + ln(mean R)`, exact for uniform samples. A
    /// fresh network otherwise starts at `log Z = 0`, which on a space of `e^96` terminals
    /// costs hundreds of steps at `lr_log_z` before the policy's gradient means anything.
    /// Non-finite log-rewards other than `-inf` (zero reward) are left out. Returns the new
    /// log Z, or `None` (log Z unchanged) when no finite estimate exists.
    pub fn initialise_log_z(&mut self, log_rewards: &[f32]) -> Result<Option<f32>, GfnError> {
        let usable: Vec<f64> = log_rewards
            .iter()
            .filter(|r| !r.is_nan() && **r != f32::INFINITY)
            .map(|r| f64::from(*r))
            .collect();
        if usable.is_empty() {
            return Ok(None);
        }
        let log_mean =
            super::space::log_sum_exp(usable.iter().copied()) - (usable.len() as f64).ln();
        let estimate = (self.space.log_n_terminals() + log_mean) as f32;
        if !estimate.is_finite() {
            return Ok(None);
        }
        self.log_z
            .set(&Tensor::new(&[estimate], self.log_z.as_tensor().device())?)?;
        Ok(Some(estimate))
    }

    /// Current log Z (the TB estimate of the log partition function).
    pub fn log_z(&self) -> Result<f32, GfnError> {
        Ok(self.log_z.as_tensor().to_vec1::<f32>()?[0])
    }

    /// Encodes `states` into a `[n, encoding_dim]` tensor.
    pub(crate) fn encode(&self, states: &[State]) -> Result<Tensor, GfnError> {
        let dim = self.space.encoding_dim();
        Ok(Tensor::from_vec(
            encode_batch(self.space.as_ref(), states),
            (states.len(), dim),
            &self.device,
        )?)
    }

    /// Bytes one row of a forward pass without gradients may hold at its peak: the
    /// encoding, the input, product and activation of a hidden layer, and the output layer's
    /// product, its biased copy and the host copy, all f32 (see [`GflowNet::outputs`]).
    pub fn forward_row_bytes(&self) -> usize {
        forward_row_bytes(
            self.space.encoding_dim(),
            self.config.hidden,
            self.space.n_actions(),
        )
    }

    /// Network outputs for `states` as row-major `[n, 2A]` values, without gradients. The
    /// network runs on chunks of rows that fit in the process's chunk
    /// ([`super::memory::chunk_bytes`]): a wide encoding gets fewer rows per chunk.
    pub fn outputs(&self, states: &[State]) -> Result<Vec<f32>, GfnError> {
        if states.is_empty() {
            return Ok(Vec::new());
        }
        self.outputs_in_chunks(
            states,
            super::memory::rows_per_chunk(self.forward_row_bytes()),
        )
    }

    /// [`GflowNet::outputs`] in chunks of `rows` states.
    fn outputs_in_chunks(&self, states: &[State], rows: usize) -> Result<Vec<f32>, GfnError> {
        let mut values = Vec::with_capacity(states.len() * 2 * self.space.n_actions());
        for chunk in states.chunks(rows.max(1)) {
            let out = self.mlp.forward(&self.encode(chunk)?)?;
            values.extend(out.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(values)
    }

    /// Forward-policy probabilities `P_F(a | s)` for each state, row-major `[n, A]`, masked
    /// to the valid actions.
    pub fn forward_probabilities(&self, states: &[State]) -> Result<Vec<f64>, GfnError> {
        let a = self.space.n_actions();
        let out = self.outputs(states)?;
        let mut mask = vec![false; a];
        let mut probs = Vec::with_capacity(states.len() * a);
        for (s, row) in states.iter().zip(out.chunks(2 * a)) {
            self.space.forward_mask(s, &mut mask);
            let max = row[..a]
                .iter()
                .zip(&mask)
                .filter(|(_, m)| **m)
                .map(|(v, _)| *v as f64)
                .fold(f64::NEG_INFINITY, f64::max);
            let start = probs.len();
            let mut total = 0.0;
            for (v, m) in row[..a].iter().zip(&mask) {
                let e = if *m { (*v as f64 - max).exp() } else { 0.0 };
                total += e;
                probs.push(e);
            }
            for p in &mut probs[start..] {
                *p /= total;
            }
        }
        Ok(probs)
    }

    /// One optimisation step on `trajs`; returns the loss before the update.
    pub fn train_step(&mut self, trajs: &[Trajectory]) -> Result<StepReport, GfnError> {
        if trajs.is_empty() {
            return Err(GfnError::Config(
                "a training batch needs at least one trajectory".into(),
            ));
        }
        let settings = self.config.loss_settings();
        let prepared = Prepared::new(self.space.as_ref(), trajs, &settings, &self.device)?;
        let x = self.encode(&prepared.rows)?;
        let (out, cache) = self.mlp.forward_cached(&x)?;
        let out_var = Var::from_tensor(&out)?;
        let loss = objective::loss(
            self.space.as_ref(),
            &prepared,
            out_var.as_tensor(),
            self.log_z.as_tensor(),
            &settings,
        )?;
        let grads = loss.backward()?;
        let d_out = match grads.get(out_var.as_tensor()) {
            Some(g) => g.clone(),
            None => out.zeros_like()?,
        };
        let d_log_z = match grads.get(self.log_z.as_tensor()) {
            Some(g) => g.clone(),
            None => self.log_z.as_tensor().zeros_like()?,
        };
        let mut param_grads = self.mlp.backward(&cache, &d_out)?;
        param_grads.push(d_log_z);
        let loss_value = loss.to_scalar::<f32>()?;
        let grads = param_grads
            .iter()
            .map(|g| g.flatten_all()?.to_vec1::<f32>())
            .collect::<candle_core::Result<Vec<_>>>()?;
        let norm = grads
            .iter()
            .flatten()
            .map(|g| f64::from(*g) * f64::from(*g))
            .sum::<f64>()
            .sqrt();
        // A NaN or infinity would enter Adam's moments and stay there for good: such a step
        // is dropped whole, before the optimiser sees it.
        if !loss_value.is_finite() || !norm.is_finite() {
            return Ok(StepReport {
                loss: loss_value,
                log_z: self.log_z()?,
                grad_norm: norm as f32,
                skipped: true,
            });
        }
        let scale = if norm > self.config.max_grad_norm {
            (self.config.max_grad_norm / norm) as f32
        } else {
            1.0
        };
        let named = self.mlp.named_vars();
        let mut params: Vec<&Var> = named.iter().map(|(_, v)| *v).collect();
        params.push(&self.log_z);
        let mut lrs = vec![self.config.lr * self.lr_scale; params.len()];
        if let Some(last) = lrs.last_mut() {
            *last = self.config.lr_log_z * self.lr_scale;
        }
        self.adam.step(&params, &grads, &lrs, scale)?;
        self.steps += 1;
        Ok(StepReport {
            loss: loss_value,
            log_z: self.log_z()?,
            grad_norm: norm as f32,
            skipped: false,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::gfn::space::{GridSpace, SequenceSpace};
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn grid_net(config: GfnConfig, seed: u64) -> (GflowNet, StdRng) {
        let space: Arc<dyn Space> = Arc::new(GridSpace::new(2, 4).expect("grid"));
        let mut rng = StdRng::seed_from_u64(seed);
        let config = GfnConfig {
            hidden: 16,
            ..config
        };
        (GflowNet::new(space, config, &mut rng).expect("config"), rng)
    }

    fn parameters(gfn: &GflowNet) -> Vec<Vec<f32>> {
        let mut out: Vec<Vec<f32>> = gfn
            .mlp
            .named_vars()
            .iter()
            .map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
            .collect();
        out.push(vec![gfn.log_z().unwrap()]);
        out
    }

    fn batch(gfn: &GflowNet, rng: &mut StdRng, log_reward: f32) -> Vec<Trajectory> {
        let mut trajs = gfn
            .sample_forward(8, Exploration::default(), rng)
            .expect("sample");
        for t in &mut trajs {
            t.log_reward = log_reward;
        }
        trajs
    }

    #[test]
    fn a_non_finite_loss_skips_the_step_before_adam_sees_it() {
        for bad in [f32::NAN, f32::INFINITY] {
            let (mut gfn, mut rng) = grid_net(GfnConfig::default(), 31);
            let before = parameters(&gfn);
            let report = gfn.train_step(&batch(&gfn, &mut rng, bad)).expect("step");
            assert!(report.skipped, "{report:?}");
            assert_eq!(parameters(&gfn), before);
            assert_eq!(gfn.steps(), 0);
            assert_eq!(gfn.adam.steps(), 0);
            assert!(gfn
                .adam
                .moments()
                .iter()
                .all(|(m, v)| m.iter().chain(v).all(|x| *x == 0.0)));
            // Training goes on from untouched state.
            let report = gfn.train_step(&batch(&gfn, &mut rng, 0.5)).expect("step");
            assert!(!report.skipped && report.loss.is_finite(), "{report:?}");
            assert!(parameters(&gfn).iter().flatten().all(|x| x.is_finite()));
            assert_ne!(parameters(&gfn), before);
        }
    }

    #[test]
    fn gradients_are_clipped_to_the_global_norm() {
        // Adam's first update moves each coordinate by lr * g / (|g| + 1e-8): about lr when
        // the gradient is left alone, and at most lr * 1e-7 once its global norm is clipped
        // to 1e-15 (every coordinate then below 1e-15; log Z's lr is 100 times the
        // network's, so nothing moves by more than 1e-5 lr).
        let run = |max_grad_norm: f64| {
            let config = GfnConfig {
                max_grad_norm,
                ..GfnConfig::default()
            };
            let (mut gfn, mut rng) = grid_net(config, 32);
            let before = parameters(&gfn);
            let report = gfn.train_step(&batch(&gfn, &mut rng, 2.0)).expect("step");
            let moved = parameters(&gfn)
                .iter()
                .flatten()
                .zip(before.iter().flatten())
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            (report, moved)
        };
        let lr = GfnConfig::default().lr as f32;
        let (free, free_moved) = run(1e30);
        let (clipped, clipped_moved) = run(1e-15);
        assert_eq!(free.grad_norm, clipped.grad_norm);
        assert!(free.grad_norm > 1e-3, "{free:?}");
        assert!(free_moved > 0.5 * lr, "unclipped step moved {free_moved}");
        assert!(
            clipped_moved < 1e-3 * lr,
            "clipped step moved {clipped_moved}"
        );
    }

    #[test]
    fn outputs_in_chunks_are_the_outputs_of_one_call() {
        let (gfn, _) = grid_net(GfnConfig::default(), 34);
        let states = gfn.space.enumerate(100).expect("a 4 x 4 grid");
        assert_eq!(states.len(), 16);
        let whole = gfn
            .outputs_in_chunks(&states, states.len())
            .expect("one call");
        assert_eq!(whole.len(), states.len() * 2 * gfn.space.n_actions());
        for rows in [1, 3, 7] {
            let chunked = gfn.outputs_in_chunks(&states, rows).expect("chunks");
            assert_eq!(chunked, whole, "chunks of {rows}");
        }
        // Rows per chunk shrink as rows widen.
        let narrow = crate::gfn::memory::rows_per_chunk(forward_row_bytes(8, 16, 3));
        let wide = crate::gfn::memory::rows_per_chunk(forward_row_bytes(524_288, 16, 3));
        assert!(wide * 1000 < narrow, "{wide} vs {narrow}");
        assert!(wide >= 1);
    }

    #[test]
    fn max_grad_norm_must_be_positive_and_finite() {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let config = GfnConfig {
                max_grad_norm: bad,
                ..GfnConfig::default()
            };
            assert!(config.validate().is_err(), "{bad}");
        }
        // Configurations stored before the field existed read the default.
        let old: GfnConfig = serde_json::from_str(r#"{"objective": "db"}"#).expect("parses");
        assert_eq!(old.max_grad_norm, GfnConfig::default().max_grad_norm);
    }

    #[test]
    fn log_z_starts_from_terminal_count_times_mean_reward() {
        // 4 tokens, lengths 1..=6: 4 + 16 + ... + 4096 = 5460 terminals.
        let tokens = (0..4).map(|i| format!("t{i}")).collect();
        let space: Arc<dyn Space> =
            Arc::new(SequenceSpace::new(tokens, 1, 6, "-".into()).expect("sequence"));
        let mut rng = StdRng::seed_from_u64(33);
        let mut gfn = GflowNet::new(space, GfnConfig::default(), &mut rng).expect("config");
        assert_eq!(gfn.log_z().unwrap(), 0.0);
        // Mean reward (e^100 + e^102 + e^98) / 3 = e^100 (1 + e^2 + e^-2) / 3.
        let expected = 5460f64.ln() + 100.0 + ((1.0 + 2f64.exp() + (-2f64).exp()) / 3.0).ln();
        let set = gfn
            .initialise_log_z(&[100.0, 102.0, 98.0, f32::NAN])
            .expect("estimate");
        assert_eq!(set, Some(gfn.log_z().unwrap()));
        assert!(
            (f64::from(gfn.log_z().unwrap()) - expected).abs() < 1e-4,
            "{} vs {expected}",
            gfn.log_z().unwrap()
        );
        // Nothing to estimate from: log Z stays.
        assert_eq!(gfn.initialise_log_z(&[f32::NAN]).expect("no-op"), None);
        assert!((f64::from(gfn.log_z().unwrap()) - expected).abs() < 1e-4);
    }
}
