//! An ensemble of small MLPs trained side by side in candle: member `k` sees its own
//! bootstrap resample of the data and starts from its own random weights, so the members agree
//! where the data is dense and disagree away from it. Their spread is the proxy's
//! uncertainty.
//!
//! The members are stacked into 3-D weights `[members, in, out]` and trained as one batched
//! network, which is one matrix product per layer for the whole ensemble instead of one per
//! member. Weights are drawn from a seeded generator, so a fit is reproducible.
//!
//! Early stopping: the rows a member's bootstrap resample left out (about a third of them)
//! are that member's validation split, never seen by its gradient. Every
//! [`EVAL_EVERY`] steps each member's loss on its own left-out rows is measured and its best
//! weights so far are kept; the fit stops once no member has improved for
//! `FitSettings::patience` measurements, and ends with each member's best weights.
//! `FitSettings::steps` is thus the most steps a fit takes. With too few rows for every
//! member to have a validation split the fit runs the full count.

use super::ProxyError;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::Rng;
use std::collections::HashMap;

/// The validation side of early stopping: each member's left-out rows and its best
/// weights so far.
struct Validation {
    x: Tensor,
    y: Tensor,
    /// `[K, rows, 1]`: 1 where the row is left out of the member's resample.
    mask: Tensor,
    best_loss: Vec<f32>,
    /// Measurements since each member last improved.
    stale: Vec<usize>,
    best: Vec<Tensor>,
}

impl Validation {
    /// The validation split of each member: the rows its resample left out, among at most
    /// a bounded number of rows drawn once; `None` when some member has fewer than
    /// [`MIN_VALIDATION_ROWS`] of them.
    fn new(
        resamples: &[Vec<u32>],
        n: usize,
        input_dim: usize,
        xs: &Tensor,
        ys: &Tensor,
        rng: &mut impl Rng,
    ) -> candle_core::Result<Option<Self>> {
        let k = resamples.len();
        let cap = validation_rows(k, input_dim).max(256).min(n);
        let mut chosen: Vec<u32> = (0..n as u32).collect();
        if cap < n {
            for i in 0..cap {
                chosen.swap(i, rng.random_range(i..n));
            }
            chosen.truncate(cap);
        }
        let mut mask = vec![0.0f32; k * chosen.len()];
        for (m, resample) in resamples.iter().enumerate() {
            let mut used = vec![false; n];
            for &r in resample {
                used[r as usize] = true;
            }
            let row = &mut mask[m * chosen.len()..(m + 1) * chosen.len()];
            for (slot, &r) in row.iter_mut().zip(&chosen) {
                *slot = if used[r as usize] { 0.0 } else { 1.0 };
            }
            if row.iter().filter(|v| **v > 0.0).count() < MIN_VALIDATION_ROWS {
                return Ok(None);
            }
        }
        let device = xs.device();
        let index = Tensor::from_slice(&chosen, chosen.len(), device)?;
        Ok(Some(Self {
            x: xs.index_select(&index, 0)?,
            y: ys.index_select(&index, 0)?,
            mask: Tensor::from_vec(mask, (k, chosen.len(), 1), device)?,
            best_loss: vec![f32::INFINITY; k],
            stale: vec![0; k],
            best: Vec::new(),
        }))
    }

    /// Measures every member, keeps the weights of those that improved, and returns the
    /// number of measurements since the most recent improvement of any member.
    fn observe(&mut self, ensemble: &Ensemble) -> candle_core::Result<usize> {
        let losses = ensemble.masked_loss(&self.x, &self.y, &self.mask)?;
        let mut improved = vec![0.0f32; losses.len()];
        for (m, loss) in losses.iter().enumerate() {
            // A NaN loss is never an improvement.
            if *loss < self.best_loss[m] {
                self.best_loss[m] = *loss;
                self.stale[m] = 0;
                improved[m] = 1.0;
            } else {
                self.stale[m] += 1;
            }
        }
        let current: Vec<Tensor> = ensemble
            .params
            .iter()
            .map(|p| p.as_tensor().clone())
            .collect();
        if self.best.is_empty() {
            self.best = current.iter().map(|t| t.copy()).collect::<Result<_, _>>()?;
        } else if improved.iter().any(|v| *v > 0.0) {
            let keep = Tensor::from_vec(improved, (losses.len(), 1, 1), self.x.device())?;
            let old = (keep.ones_like()? - &keep)?;
            // `cur * 1 + best * 0` is `cur` exactly, so a kept member's weights are its own.
            for (best, cur) in self.best.iter_mut().zip(&current) {
                *best = (cur.broadcast_mul(&keep)? + best.broadcast_mul(&old)?)?;
            }
        }
        Ok(self.stale.iter().copied().min().unwrap_or(0))
    }

    /// Puts each member's best weights back.
    fn restore(self, ensemble: &Ensemble) -> candle_core::Result<()> {
        for (var, best) in ensemble.params.iter().zip(self.best) {
            var.set(&best)?;
        }
        Ok(())
    }
}

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
    /// Validation measurements without improvement (of any member) before the fit stops;
    /// 0 trains the full `steps` and keeps the last weights.
    pub patience: usize,
}

/// Steps between two measurements of the validation loss.
pub const EVAL_EVERY: usize = 10;

/// Fewest left-out rows every member needs for early stopping.
const MIN_VALIDATION_ROWS: usize = 3;

/// Bytes of inputs (`members x rows x inputs` floats) that fix how many rows a fit sets
/// aside for validation (see [`validation_rows`]).
const VALIDATION_BYTES: usize = 64 << 20;

/// Names of the parameters, in layer order, as stored in checkpoints.
const PARAMS: [&str; 6] = ["w1", "b1", "w2", "b2", "w3", "b3"];

/// A fitted ensemble.
pub struct Ensemble {
    /// `w1 [K, in, h]`, `b1 [K, 1, h]`, `w2 [K, h, h]`, `b2 [K, 1, h]`, `w3 [K, h, 1]`,
    /// `b3 [K, 1, 1]`.
    params: Vec<Var>,
    members: usize,
    input_dim: usize,
    /// Width of each hidden layer.
    hidden: usize,
    target: Target,
    /// Optimisation steps the fit ran (0 for an ensemble loaded from a checkpoint).
    steps_run: usize,
}

/// Most rows a fit measures its validation loss on: as many rows of `input_dim` inputs as
/// [`VALIDATION_BYTES`] holds for every member.
fn validation_rows(members: usize, input_dim: usize) -> usize {
    (VALIDATION_BYTES / (members.max(1) * input_dim.max(1) * std::mem::size_of::<f32>())).max(1)
}

/// Bytes one row of a batched product over `members` takes at its peak: the broadcast
/// inputs, and a hidden layer's product, biased copy and activation, per member (f32).
pub fn row_bytes(members: usize, input_dim: usize, hidden: usize) -> usize {
    members
        .max(1)
        .saturating_mul(
            input_dim
                .saturating_add(hidden.saturating_mul(3))
                .saturating_add(2),
        )
        .saturating_mul(std::mem::size_of::<f32>())
}

/// Rows that one batched product (predictions, validation) takes at once: as many as fit in
/// the engine's chunk ([`crate::gfn::memory::chunk_bytes`]), so that wide inputs or a wide
/// hidden layer get fewer rows.
/// Inputs count as sparse when at most one in this many is set.
const SPARSE_INPUTS: usize = 4;

fn rows_per_batch(members: usize, input_dim: usize, hidden: usize) -> usize {
    crate::gfn::memory::rows_per_chunk(row_bytes(members, input_dim, hidden))
}

/// Per member, the mean over the rows where `mask` is 1 of the loss of `out` against `y`
/// (`out` `[K, rows, 1]`, `y` `[rows, 1]` or `[K, rows, 1]`, `mask` `[K, rows, 1]`): `[K]`.
fn loss_per_row(out: &Tensor, y: &Tensor, target: Target) -> candle_core::Result<Tensor> {
    match target {
        Target::Regression => out.broadcast_sub(y)?.sqr(),
        Target::Classification => {
            // log(1 + e^z) - y z, written so that large |z| never overflows.
            let softplus = (out.relu()? + (out.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
            softplus - out.broadcast_mul(y)?
        }
    }
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
            hidden: h,
            target,
            steps_run: 0,
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
        let mut validation = if settings.patience > 0 {
            Validation::new(&resamples, n, input_dim, &xs, &ys, rng)?
        } else {
            None
        };
        let b = settings.batch_size.clamp(1, n.max(1));
        let mut rows: Vec<u32> = Vec::with_capacity(k * b);
        let mut ensemble = ensemble;
        for step in 0..settings.steps {
            rows.clear();
            for resample in &resamples {
                rows.extend((0..b).map(|_| resample[rng.random_range(0..n)]));
            }
            let index = Tensor::from_slice(&rows, k * b, &device)?;
            let xb = xs.index_select(&index, 0)?.reshape((k, b, input_dim))?;
            let yb = ys.index_select(&index, 0)?.reshape((k, b, 1))?;
            let out = ensemble.forward(&xb)?;
            let loss = loss_per_row(&out, &yb, target)?.mean_all()?;
            optimiser.backward_step(&loss)?;
            ensemble.steps_run = step + 1;
            let measure = (step + 1) % EVAL_EVERY == 0 || step + 1 == settings.steps;
            if let (true, Some(v)) = (measure, validation.as_mut()) {
                if v.observe(&ensemble)? >= settings.patience {
                    break;
                }
            }
        }
        if let Some(v) = validation {
            v.restore(&ensemble)?;
        }
        Ok(ensemble)
    }

    /// `[K, rows, in]` to `[K, rows, 1]`: two ReLU layers and a linear output.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let p = &self.params;
        let h = x
            .matmul(p[0].as_tensor())?
            .broadcast_add(p[1].as_tensor())?;
        self.after_first_layer(&h)
    }

    /// The members' first-layer weights side by side, `[in, K * hidden]`, and the same as
    /// a flat row-major vector; `None` when the copy would be larger than one chunk of the
    /// memory budget (prediction then multiplies each member's own weights).
    fn side_by_side(&self) -> candle_core::Result<Option<(Tensor, Vec<f32>)>> {
        let (d, m, h) = (self.input_dim, self.members, self.hidden);
        if d.saturating_mul(m).saturating_mul(h).saturating_mul(8)
            > crate::gfn::memory::chunk_bytes()
        {
            return Ok(None);
        }
        let weights = self.params[0]
            .as_tensor()
            .transpose(0, 1)?
            .contiguous()?
            .reshape((d, m * h))?;
        let flat = weights.flatten_all()?.to_vec1::<f32>()?;
        Ok(Some((weights, flat)))
    }

    /// The first layer's pre-activations of every member for `rows` rows of the same inputs
    /// (`chunk`, row-major `[rows, in]`): `[K, rows, hidden]`. With the weights side by side,
    /// one product for all members instead of one per member on copies of the inputs; and
    /// where the inputs are sparse (a one-hot encoding sets one input in twenty), a sum of
    /// the weight rows of the set inputs instead of a dense product.
    fn first_layer(
        &self,
        chunk: &[f32],
        rows: usize,
        side_by_side: Option<&(Tensor, Vec<f32>)>,
    ) -> candle_core::Result<Tensor> {
        let (d, m, h) = (self.input_dim, self.members, self.hidden);
        let device = Device::Cpu;
        let Some((weights, flat)) = side_by_side else {
            let xs = Tensor::from_slice(chunk, (1, rows, d), &device)?
                .broadcast_as((m, rows, d))?
                .contiguous()?;
            return xs
                .matmul(self.params[0].as_tensor())?
                .broadcast_add(self.params[1].as_tensor());
        };
        let set = chunk.iter().filter(|v| **v != 0.0).count();
        let pre = if set * SPARSE_INPUTS <= chunk.len() {
            // Row by row, the weight rows of the set inputs, scaled by their values.
            let width = m * h;
            let mut out = vec![0.0f32; rows * width];
            for (row, acc) in chunk.chunks(d.max(1)).zip(out.chunks_mut(width.max(1))) {
                for (j, &v) in row.iter().enumerate().filter(|(_, v)| **v != 0.0) {
                    for (a, &wj) in acc.iter_mut().zip(&flat[j * width..(j + 1) * width]) {
                        *a += v * wj;
                    }
                }
            }
            Tensor::from_vec(out, (rows, width), &device)?
        } else {
            Tensor::from_slice(chunk, (rows, d), &device)?.matmul(weights)?
        };
        pre.reshape((rows, m, h))?
            .transpose(0, 1)?
            .contiguous()?
            .broadcast_add(self.params[1].as_tensor())
    }

    /// The rest of [`Self::forward`] from the first layer's pre-activations.
    fn after_first_layer(&self, h: &Tensor) -> candle_core::Result<Tensor> {
        let p = &self.params;
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

    /// Optimisation steps the fit ran: `FitSettings::steps` or fewer when it stopped early;
    /// 0 for an ensemble loaded from a checkpoint.
    pub fn steps_run(&self) -> usize {
        self.steps_run
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
        let rows = rows_per_batch(self.members, d, self.hidden);
        // Prepared once per call: every chunk reads the same weights.
        let side_by_side = self.side_by_side()?;
        for chunk in x.chunks(rows * d.max(1)) {
            let rows = chunk.len() / d;
            let first = self.first_layer(chunk, rows, side_by_side.as_ref())?;
            let mut y = self.after_first_layer(&first)?;
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

    /// Each member's mean loss on the rows where `mask` (`[K, rows, 1]`) is 1, over the
    /// inputs `x` (`[rows, in]`) and labels `y` (`[rows, 1]`), in chunks of bounded bytes.
    fn masked_loss(&self, x: &Tensor, y: &Tensor, mask: &Tensor) -> candle_core::Result<Vec<f32>> {
        let rows = x.dim(0)?;
        let chunk = rows_per_batch(self.members, self.input_dim, self.hidden);
        let mut sum = Tensor::zeros(self.members, DType::F32, x.device())?;
        let mut start = 0;
        while start < rows {
            let len = chunk.min(rows - start);
            let xs = x
                .narrow(0, start, len)?
                .unsqueeze(0)?
                .broadcast_as((self.members, len, self.input_dim))?
                .contiguous()?;
            let out = self.forward(&xs)?;
            let loss = loss_per_row(&out, &y.narrow(0, start, len)?, self.target)?;
            let masked = (loss * mask.narrow(1, start, len)?)?;
            sum = (sum + masked.sum((1, 2))?)?;
            start += len;
        }
        let counts = mask.sum((1, 2))?.clamp(1.0, f64::INFINITY)?;
        (sum / counts)?.to_vec1::<f32>()
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
    ) -> Result<Self, ProxyError> {
        let mut params = Vec::with_capacity(PARAMS.len());
        for name in PARAMS {
            let t = tensors
                .get(&format!("{prefix}{name}"))
                .ok_or_else(|| ProxyError::Checkpoint(format!("missing tensor {prefix}{name}")))?;
            let t = t.to_dtype(DType::F32)?;
            params.push(Var::from_tensor(&t)?);
        }
        let dims: Vec<Vec<usize>> = params.iter().map(|p| p.dims().to_vec()).collect();
        let (k, h) = match dims[0].as_slice() {
            [k, d, h] if *d == input_dim => (*k, *h),
            other => {
                return Err(ProxyError::Checkpoint(format!(
                    "{prefix}w1 has shape {other:?}, expected [members, {input_dim}, hidden]"
                )))
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
                return Err(ProxyError::Checkpoint(format!(
                    "{prefix}{name} has shape {got:?}, expected {want:?}"
                )));
            }
        }
        Ok(Self {
            params,
            members: k,
            input_dim,
            hidden: h,
            target,
            steps_run: 0,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    const DIM: usize = 6;

    /// The noise-free target: a smooth function of the first two inputs.
    fn truth(x: &[f32]) -> f32 {
        x[0] + 0.5 * x[1] * x[1]
    }

    fn inputs(n: usize, rng: &mut StdRng) -> Vec<f32> {
        (0..n * DIM).map(|_| rng.random_range(-1.0..1.0)).collect()
    }

    fn settings(patience: usize) -> FitSettings {
        FitSettings {
            members: 4,
            hidden: 128,
            steps: 1500,
            batch_size: 32,
            lr: 3e-3,
            weight_decay: 0.0,
            patience,
        }
    }

    /// Mean squared error of the members' mean against the noise-free target.
    fn error(e: &Ensemble, x: &[f32]) -> f32 {
        let out = e.predict(x).unwrap();
        let rows = x.len() / DIM;
        (0..rows)
            .map(|i| {
                let mean = out.iter().map(|m| m[i]).sum::<f32>() / out.len() as f32;
                (mean - truth(&x[i * DIM..(i + 1) * DIM])).powi(2)
            })
            .sum::<f32>()
            / rows as f32
    }

    #[test]
    fn early_stopping_stops_before_the_noise_is_memorised() {
        // 40 rows with noise as large as the signal and a wide network: trained for the full
        // count, each member memorises its resample's noise and predicts fresh inputs worse.
        let mut rng = StdRng::seed_from_u64(11);
        let x = inputs(40, &mut rng);
        let y: Vec<f32> = x
            .chunks(DIM)
            .map(|r| truth(r) + rng.random_range(-1.0f32..1.0) * 1.2)
            .collect();
        let fresh = inputs(500, &mut rng);
        let early = Ensemble::fit(
            &x,
            DIM,
            &y,
            Target::Regression,
            &settings(5),
            &mut StdRng::seed_from_u64(1),
        )
        .unwrap();
        let full = Ensemble::fit(
            &x,
            DIM,
            &y,
            Target::Regression,
            &settings(0),
            &mut StdRng::seed_from_u64(1),
        )
        .unwrap();
        assert_eq!(full.steps_run(), 1500);
        assert!(early.steps_run() < 1500, "ran {}", early.steps_run());
        let (e, f) = (error(&early, &fresh), error(&full, &fresh));
        assert!(
            e < f,
            "error on fresh inputs: early stopped {e}, full count {f}"
        );
    }

    #[test]
    fn too_few_rows_for_validation_train_the_full_count() {
        let mut rng = StdRng::seed_from_u64(12);
        let x = inputs(2, &mut rng);
        let y = [0.5, -0.5];
        let mut s = settings(5);
        s.steps = 30;
        let e = Ensemble::fit(&x, DIM, &y, Target::Regression, &s, &mut rng).unwrap();
        assert_eq!(e.steps_run(), 30);
    }

    #[test]
    fn batches_are_bounded_by_bytes_not_rows() {
        let chunk = crate::gfn::memory::chunk_bytes();
        // 5 members of 524,288 inputs and 64 hidden units: (524288 + 192 + 2) * 4 bytes each.
        assert_eq!(rows_per_batch(5, 524_288, 64), chunk / (5 * 524_482 * 4));
        assert_eq!(rows_per_batch(32, 1 << 30, 64), 1);
        assert!(rows_per_batch(5, 40, 64) > 2048);
        // A wide hidden layer costs rows even when the inputs are narrow.
        assert!(rows_per_batch(5, 2, 1024) * 100 < rows_per_batch(5, 2, 1));
        assert_eq!(validation_rows(5, 524_288), 6);
    }

    /// Every member's prediction by the members' dense forward pass on copies of the
    /// inputs: what `predict` computes another way.
    fn dense_predictions(e: &Ensemble, x: &[f32]) -> Vec<Vec<f32>> {
        let rows = x.len() / e.input_dim;
        let xs = Tensor::from_slice(x, (1, rows, e.input_dim), &Device::Cpu)
            .unwrap()
            .broadcast_as((e.members, rows, e.input_dim))
            .unwrap()
            .contiguous()
            .unwrap();
        let y = e.forward(&xs).unwrap().reshape((e.members, rows)).unwrap();
        y.to_vec2::<f32>().unwrap()
    }

    /// One-hot rows (sparse: the gathered weight rows) and dense rows (one product for all
    /// members) predict what each member's own dense pass does.
    #[test]
    fn predictions_equal_each_member_s_dense_pass_for_sparse_and_dense_inputs() {
        let mut rng = StdRng::seed_from_u64(13);
        const WIDE: usize = 40;
        let one_hot: Vec<f32> = (0..50)
            .flat_map(|_| {
                let mut row = vec![0.0f32; WIDE];
                for block in 0..4 {
                    row[block * 10 + rng.random_range(0..10)] = 1.0;
                }
                row
            })
            .collect();
        let y: Vec<f32> = one_hot
            .chunks(WIDE)
            .map(|r| r[0] - r[13] + 2.0 * r[27])
            .collect();
        let mut s = settings(0);
        s.steps = 50;
        let e = Ensemble::fit(&one_hot, WIDE, &y, Target::Regression, &s, &mut rng).unwrap();
        let dense = inputs(30, &mut rng);
        let d = Ensemble::fit(&dense, DIM, &[0.5; 30], Target::Regression, &s, &mut rng).unwrap();
        for (ensemble, x) in [(&e, &one_hot), (&d, &dense)] {
            assert!(
                ensemble.side_by_side().unwrap().is_some(),
                "small weights are copied"
            );
            let fast = ensemble.predict(x).unwrap();
            let slow = dense_predictions(ensemble, x);
            assert_eq!(fast.len(), ensemble.members());
            for (a, b) in fast.iter().flatten().zip(slow.iter().flatten()) {
                assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
            }
            // Weights too large to copy: each member's own product, the same figures.
            let rows = x.len() / ensemble.input_dim();
            let own = ensemble.first_layer(x, rows, None).unwrap();
            let own = ensemble.after_first_layer(&own).unwrap();
            let own = own
                .reshape((ensemble.members(), rows))
                .unwrap()
                .to_vec2::<f32>()
                .unwrap();
            for (a, b) in own.iter().flatten().zip(slow.iter().flatten()) {
                assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
            }
        }
    }
}
