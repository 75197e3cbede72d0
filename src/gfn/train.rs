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
    #[error("scoring candidates failed: {0}")]
    Score(String),
}

/// Network and optimisation settings of a GFlowNet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
#[schema(default)]
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
        let positive = |v: f64| v > 0.0 && v.is_finite();
        if !positive(self.lr) || !positive(self.lr_log_z) {
            return bad("learning rates must be positive and finite");
        }
        if !(self.subtb_lambda > 0.0 && self.subtb_lambda.is_finite()) {
            return bad("subtb_lambda must be positive");
        }
        if !(self.fm_epsilon > 0.0 && self.fm_epsilon.is_finite()) {
            return bad("fm_epsilon must be positive");
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
    pub loss: f32,
    pub log_z: f32,
}

/// A GFlowNet over one space: network, log Z and optimiser state.
pub struct GflowNet {
    pub(crate) space: Arc<dyn Space>,
    pub(crate) config: GfnConfig,
    pub(crate) mlp: Mlp,
    pub(crate) log_z: Var,
    adam: Adam,
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

    /// Network outputs for `states` as row-major `[n, 2A]` values, without gradients.
    pub fn outputs(&self, states: &[State]) -> Result<Vec<f32>, GfnError> {
        if states.is_empty() {
            return Ok(Vec::new());
        }
        let out = self.mlp.forward(&self.encode(states)?)?;
        Ok(out.flatten_all()?.to_vec1::<f32>()?)
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
        let named = self.mlp.named_vars();
        let mut params: Vec<&Var> = named.iter().map(|(_, v)| *v).collect();
        params.push(&self.log_z);
        let mut lrs = vec![self.config.lr * self.lr_scale; params.len()];
        if let Some(last) = lrs.last_mut() {
            *last = self.config.lr_log_z * self.lr_scale;
        }
        let loss_value = loss.to_scalar::<f32>()?;
        self.adam.step(&params, &param_grads, &lrs)?;
        self.steps += 1;
        Ok(StepReport {
            loss: loss_value,
            log_z: self.log_z()?,
        })
    }
}
