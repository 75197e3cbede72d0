//! An ensemble of small MLPs trained side by side in candle: member `k` sees its own
//! bootstrap resample of the data and starts from its own random weights, so the members agree
//! where the data is dense and disagree away from it. Their spread is the proxy's
//! uncertainty (DESIGN.md, "The proxy and the reward").
//!
//! The members are stacked into 3-D weights `[members, in, out]` and trained as one batched
//! network, which is one matrix product per layer for the whole ensemble instead of one per
//! member. Weights are drawn from a seeded generator, so a fit is reproducible.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::Rng;
use std::collections::HashMap;

/// What the outputs mean, and so which loss fits them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Real values, mean squared error.
    Regression,
    /// Labels in {0, 1}, binary cross-entropy on logits; predictions are probabilities.
    Classification,
}

/// How an ensemble is fit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitSettings {
    /// Number of members.
    pub members: usize,
    /// Width of the two hidden layers.
    pub hidden: usize,
    /// Optimisation steps (one minibatch per member each).
    pub steps: usize,
    /// Rows per member per step.
    pub batch_size: usize,
    /// AdamW learning rate.
    pub lr: f64,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f64,
}

/// Names of the parameters, in layer order, as stored in checkpoints.
const PARAMS: [&str; 6] = ["w1", "b1", "w2", "b2", "w3", "b3"];

/// Rows predicted per batched product: bounds the broadcast copy of the inputs.
const PREDICT_CHUNK: usize = 2048;

/// A fitted ensemble.
pub struct Ensemble {
    /// `w1 [K, in, h]`, `b1 [K, 1, h]`, `w2 [K, h, h]`, `b2 [K, 1, h]`, `w3 [K, h, 1]`,
    /// `b3 [K, 1, 1]`.
    params: Vec<Var>,
    members: usize,
    input_dim: usize,
    target: Target,
}

impl std::fmt::Debug for Ensemble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ensemble")
            .field("members", &self.members)
            .field("input_dim", &self.input_dim)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

fn uniform(
    shape: (usize, usize, usize),
    bound: f64,
    rng: &mut impl Rng,
) -> candle_core::Result<Var> {
    let n = shape.0 * shape.1 * shape.2;
    let data: Vec<f32> = (0..n)
        .map(|_| rng.random_range(-bound..bound) as f32)
        .collect();
    Var::from_tensor(&Tensor::from_vec(data, shape, &Device::Cpu)?)
}

impl Ensemble {
    /// Fits `settings.members` networks on the rows of `x` (`y.len()` rows of `input_dim`
    /// values each), each on a bootstrap resample of the rows.
    pub fn fit(
        x: &[f32],
        input_dim: usize,
        y: &[f32],
        target: Target,
        settings: &FitSettings,
        rng: &mut impl Rng,
    ) -> candle_core::Result<Self> {
        let n = y.len();
        if n == 0 || input_dim == 0 || x.len() != n * input_dim {
            return Err(candle_core::Error::Msg(format!(
                "cannot fit an ensemble on {n} rows of {input_dim} inputs ({} values)",
                x.len()
            )));
        }
        let k = settings.members.max(1);
        let h = settings.hidden.max(1);
        let device = Device::Cpu;
        let xs = Tensor::from_slice(x, (n, input_dim), &device)?;
        let ys = Tensor::from_slice(y, (n, 1), &device)?;
        // Uniform in +-1/sqrt(fan_in), PyTorch's default for linear layers.
        let bound = |fan_in: usize| 1.0 / (fan_in as f64).sqrt();
        let params = vec![
            uniform((k, input_dim, h), bound(input_dim), rng)?,
            uniform((k, 1, h), bound(input_dim), rng)?,
            uniform((k, h, h), bound(h), rng)?,
            uniform((k, 1, h), bound(h), rng)?,
            uniform((k, h, 1), bound(h), rng)?,
            uniform((k, 1, 1), bound(h), rng)?,
        ];
        let ensemble = Self {
            params,
            members: k,
            input_dim,
            target,
        };
        let mut optimiser = AdamW::new(
            ensemble.params.clone(),
            ParamsAdamW {
                lr: settings.lr,
                weight_decay: settings.weight_decay,
                ..ParamsAdamW::default()
            },
        )?;
        let resamples: Vec<Vec<u32>> = (0..k)
            .map(|_| (0..n).map(|_| rng.random_range(0..n) as u32).collect())
            .collect();
        let b = settings.batch_size.clamp(1, n.max(1));
        let mut rows: Vec<u32> = Vec::with_capacity(k * b);
        for _ in 0..settings.steps {
            rows.clear();
            for resample in &resamples {
                rows.extend((0..b).map(|_| resample[rng.random_range(0..n)]));
            }
            let index = Tensor::from_slice(&rows, k * b, &device)?;
            let xb = xs.index_select(&index, 0)?.reshape((k, b, input_dim))?;
            let yb = ys.index_select(&index, 0)?.reshape((k, b, 1))?;
            let out = ensemble.forward(&xb)?;
            let loss = match target {
                Target::Regression => (out - yb)?.sqr()?.mean_all()?,
                Target::Classification => {
                    // log(1 + e^z) - y z, written so that large |z| never overflows.
                    let softplus = (out.relu()? + (out.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
                    (softplus - (out * yb)?)?.mean_all()?
                }
            };
            optimiser.backward_step(&loss)?;
        }
        Ok(ensemble)
    }

    /// `[K, rows, in]` to `[K, rows, 1]`: two ReLU layers and a linear output.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let p = &self.params;
        let h = x
            .matmul(p[0].as_tensor())?
            .broadcast_add(p[1].as_tensor())?;
        let h = h.relu()?;
        let h = h
            .matmul(p[2].as_tensor())?
            .broadcast_add(p[3].as_tensor())?;
        let h = h.relu()?;
        h.matmul(p[4].as_tensor())?.broadcast_add(p[5].as_tensor())
    }

    /// Number of members.
    pub fn members(&self) -> usize {
        self.members
    }

    /// Width of the inputs.
    pub fn input_dim(&self) -> usize {
        self.input_dim
    }

    /// Every member's prediction for each of the `x.len() / input_dim` rows: `out[k][i]` is
    /// member `k` on row `i` (a probability for classification).
    pub fn predict(&self, x: &[f32]) -> candle_core::Result<Vec<Vec<f32>>> {
        let d = self.input_dim;
        let n = x.len() / d;
        let mut out = vec![Vec::with_capacity(n); self.members];
        for chunk in x.chunks(PREDICT_CHUNK * d) {
            let rows = chunk.len() / d;
            let xs = Tensor::from_slice(chunk, (1, rows, d), &Device::Cpu)?
                .broadcast_as((self.members, rows, d))?
                .contiguous()?;
            let mut y = self.forward(&xs)?;
            if self.target == Target::Classification {
                y = candle_nn::ops::sigmoid(&y)?;
            }
            for (k, member) in y
                .reshape((self.members, rows))?
                .to_vec2::<f32>()?
                .into_iter()
                .enumerate()
            {
                out[k].extend(member);
            }
        }
        Ok(out)
    }

    /// The parameters named `{prefix}{w1,b1,...}`, for a checkpoint.
    pub fn named_tensors(&self, prefix: &str) -> Vec<(String, Tensor)> {
        PARAMS
            .iter()
            .zip(&self.params)
            .map(|(name, var)| (format!("{prefix}{name}"), var.as_tensor().clone()))
            .collect()
    }

    /// Rebuilds an ensemble from [`Ensemble::named_tensors`], checking that the shapes fit
    /// together and that the inputs are `input_dim` wide.
    pub fn from_named_tensors(
        tensors: &HashMap<String, Tensor>,
        prefix: &str,
        input_dim: usize,
        target: Target,
    ) -> Result<Self, String> {
        let mut params = Vec::with_capacity(PARAMS.len());
        for name in PARAMS {
            let t = tensors
                .get(&format!("{prefix}{name}"))
                .ok_or_else(|| format!("missing tensor {prefix}{name}"))?;
            let t = t.to_dtype(DType::F32).map_err(|e| e.to_string())?;
            params.push(Var::from_tensor(&t).map_err(|e| e.to_string())?);
        }
        let dims: Vec<Vec<usize>> = params.iter().map(|p| p.dims().to_vec()).collect();
        let (k, h) = match dims[0].as_slice() {
            [k, d, h] if *d == input_dim => (*k, *h),
            other => {
                return Err(format!(
                    "{prefix}w1 has shape {other:?}, expected [members, {input_dim}, hidden]"
                ))
            }
        };
        let expected = [
            vec![k, input_dim, h],
            vec![k, 1, h],
            vec![k, h, h],
            vec![k, 1, h],
            vec![k, h, 1],
            vec![k, 1, 1],
        ];
        for ((name, got), want) in PARAMS.iter().zip(&dims).zip(&expected) {
            if got != want {
                return Err(format!(
                    "{prefix}{name} has shape {got:?}, expected {want:?}"
                ));
            }
        }
        Ok(Self {
            params,
            members: k,
            input_dim,
            target,
        })
    }
}
