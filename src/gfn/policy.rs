//! The policy network: one MLP trunk with a single output layer that holds every head.
//!
//! Output columns, for a space with `A` forward actions (stop included):
//! `[0, A)` forward logits (also the edge log-flows `log F(s, a)` of flow matching),
//! `[A, 2A - 1)` backward logits, `2A - 1` the state log-flow `log F(s)`. Heads an objective
//! does not use simply receive no gradient; one output matrix keeps the forward pass at one
//! matrix product per layer.
//!
//! The backward pass of the MLP is written out by hand with candle matrix products: the
//! network is a few `x W + b` layers with LeakyReLU, and candle's generic autograd spends
//! most of its time on graph bookkeeping for such small tensors. The
//! loss on top of the network outputs still goes through candle's autograd, so every
//! objective is written once, as tensor code. A unit test checks the hand-written gradients
//! against candle's autograd on the whole network.
//!
//! Parameters are created from an explicit seeded RNG (candle's own cannot be seeded) and
//! named as in the checkpoint format: `trunk.{i}.weight`, `trunk.{i}.bias`, `head.weight`,
//! `head.bias`, `log_z`.

use super::kernels;
use super::train::GfnError;
use candle_core::{Device, Tensor, Var};
use rand::Rng;

/// Slope of LeakyReLU for negative inputs.
pub const LEAKY_SLOPE: f64 = 0.01;

/// A dense layer `y = x W + b`, with `W` stored `[in, out]` so the forward pass needs no
/// transpose.
#[derive(Debug)]
pub struct Linear {
    pub weight: Var,
    pub bias: Var,
}

impl Linear {
    /// PyTorch's default initialisation, U(-1/sqrt(in), 1/sqrt(in)) for weight and bias,
    /// drawn from `rng` so that runs are reproducible.
    pub fn new(
        fan_in: usize,
        fan_out: usize,
        rng: &mut impl Rng,
        device: &Device,
    ) -> candle_core::Result<Self> {
        let bound = 1.0 / (fan_in as f32).sqrt();
        let w: Vec<f32> = (0..fan_in * fan_out)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        let b: Vec<f32> = (0..fan_out)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        Ok(Self {
            weight: Var::from_tensor(&Tensor::from_vec(w, (fan_in, fan_out), device)?)?,
            bias: Var::from_tensor(&Tensor::from_vec(b, fan_out, device)?)?,
        })
    }

    /// `act(x W + b)` with LeakyReLU of the given slope (1 = no activation).
    fn forward(&self, x: &Tensor, slope: f64) -> candle_core::Result<Tensor> {
        kernels::bias_leaky(
            &x.matmul(self.weight.as_tensor())?,
            self.bias.as_tensor(),
            slope,
        )
    }
}

/// Activations kept by [`Mlp::forward_cached`] for the hand-written backward pass: the input
/// of every layer (the encoding, then each hidden activation).
#[derive(Debug)]
pub struct ForwardCache {
    inputs: Vec<Tensor>,
}

/// Multi-layer perceptron with LeakyReLU between layers and none after the last.
#[derive(Debug)]
pub struct Mlp {
    layers: Vec<Linear>,
}

impl Mlp {
    /// `input -> hidden (x layers) -> output`; `layers` counts the hidden layers.
    pub fn new(
        input: usize,
        hidden: usize,
        layers: usize,
        output: usize,
        rng: &mut impl Rng,
        device: &Device,
    ) -> candle_core::Result<Self> {
        let mut dims = vec![input];
        dims.extend(std::iter::repeat_n(hidden, layers));
        dims.push(output);
        let layers = dims
            .windows(2)
            .map(|w| Linear::new(w[0], w[1], rng, device))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self { layers })
    }

    /// Layers in order, the output layer last.
    pub fn layers(&self) -> &[Linear] {
        &self.layers
    }

    /// Named parameters, in the checkpoint's naming.
    pub fn named_vars(&self) -> Vec<(String, &Var)> {
        let last = self.layers.len() - 1;
        let mut out = Vec::with_capacity(2 * self.layers.len());
        for (i, l) in self.layers.iter().enumerate() {
            let prefix = if i == last {
                "head".to_string()
            } else {
                format!("trunk.{i}")
            };
            out.push((format!("{prefix}.weight"), &l.weight));
            out.push((format!("{prefix}.bias"), &l.bias));
        }
        out
    }

    /// Forward pass without keeping activations (sampling, evaluation).
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = x.clone();
        let last = self.layers.len() - 1;
        for (i, l) in self.layers.iter().enumerate() {
            h = l.forward(&h, if i < last { LEAKY_SLOPE } else { 1.0 })?;
        }
        Ok(h)
    }

    /// Forward pass that keeps what [`Mlp::backward`] needs.
    pub fn forward_cached(&self, x: &Tensor) -> candle_core::Result<(Tensor, ForwardCache)> {
        let mut inputs = Vec::with_capacity(self.layers.len());
        let mut h = x.clone();
        let last = self.layers.len() - 1;
        for (i, l) in self.layers.iter().enumerate() {
            inputs.push(h.clone());
            h = l.forward(&h, if i < last { LEAKY_SLOPE } else { 1.0 })?;
        }
        Ok((h, ForwardCache { inputs }))
    }

    /// Gradients of every parameter given the gradient of the output, in the order of
    /// [`Mlp::named_vars`] (weight then bias, layer by layer).
    pub fn backward(
        &self,
        cache: &ForwardCache,
        d_out: &Tensor,
    ) -> candle_core::Result<Vec<Tensor>> {
        let n = self.layers.len();
        let mut grads: Vec<Option<(Tensor, Tensor)>> = (0..n).map(|_| None).collect();
        let mut d = d_out.clone();
        for i in (0..n).rev() {
            let x = &cache.inputs[i];
            let dw = x.t()?.matmul(&d)?;
            let db = kernels::column_sum(&d)?;
            if i > 0 {
                let dh = d.matmul(&self.layers[i].weight.as_tensor().t()?)?;
                // x is the LeakyReLU output of the previous layer: positive exactly where
                // its input was, so it also gives the derivative.
                d = kernels::leaky_grad(&dh, x, LEAKY_SLOPE)?;
            }
            grads[i] = Some((dw, db));
        }
        let mut out = Vec::with_capacity(2 * n);
        for (dw, db) in grads.into_iter().flatten() {
            out.push(dw);
            out.push(db);
        }
        Ok(out)
    }
}

/// Adam (Kingma & Ba) with one learning rate per parameter, its moments kept in plain
/// buffers and the update fused in one pass per parameter.
#[derive(Debug)]
pub struct Adam {
    beta1: f64,
    beta2: f64,
    eps: f64,
    step: i32,
    moments: Vec<(Vec<f32>, Vec<f32>)>,
}

impl Adam {
    /// Adam with PyTorch's defaults (beta1 0.9, beta2 0.999, eps 1e-8) for `n_params` tensors.
    pub fn new(sizes: &[usize]) -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            step: 0,
            moments: sizes
                .iter()
                .map(|&n| (vec![0.0; n], vec![0.0; n]))
                .collect(),
        }
    }

    /// Applies one update, `params[i] -= lr[i] * m_hat / (sqrt(v_hat) + eps)`, to the
    /// gradients `grads` (host copies, in the order of `params`) multiplied by `scale` (the
    /// clipping factor).
    pub fn step(
        &mut self,
        params: &[&Var],
        grads: &[Vec<f32>],
        lrs: &[f64],
        scale: f32,
    ) -> candle_core::Result<()> {
        self.step += 1;
        let bc1 = 1.0 - self.beta1.powi(self.step);
        let bc2 = 1.0 - self.beta2.powi(self.step);
        let (b1, b2, eps) = (self.beta1 as f32, self.beta2 as f32, self.eps as f32);
        for (((var, g), lr), (m, v)) in params.iter().zip(grads).zip(lrs).zip(&mut self.moments) {
            let mut w = var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            let step_size = (lr / bc1) as f32;
            let inv_bc2 = (1.0 / bc2.sqrt()) as f32;
            for (((wi, gi), mi), vi) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                let gi = gi * scale;
                *mi = b1 * *mi + (1.0 - b1) * gi;
                *vi = b2 * *vi + (1.0 - b2) * gi * gi;
                *wi -= step_size * *mi / (vi.sqrt() * inv_bc2 + eps);
            }
            var.set(&Tensor::from_vec(
                w,
                var.as_tensor().shape(),
                var.as_tensor().device(),
            )?)?;
        }
        Ok(())
    }

    /// Updates applied so far (the exponent of the bias corrections).
    pub fn steps(&self) -> i32 {
        self.step
    }

    /// First and second moments of each parameter, in the order given to [`Adam::new`].
    pub fn moments(&self) -> &[(Vec<f32>, Vec<f32>)] {
        &self.moments
    }

    /// Restores the state saved from [`Adam::steps`] and [`Adam::moments`]; refuses moments
    /// whose count or sizes differ from this optimiser's.
    pub fn restore(
        &mut self,
        steps: i32,
        moments: Vec<(Vec<f32>, Vec<f32>)>,
    ) -> Result<(), GfnError> {
        if moments.len() != self.moments.len()
            || moments
                .iter()
                .zip(&self.moments)
                .any(|((m, v), (m0, v0))| m.len() != m0.len() || v.len() != v0.len())
        {
            return Err(GfnError::Checkpoint(
                "optimiser moments do not match the network's parameters".into(),
            ));
        }
        if steps < 0 {
            return Err(GfnError::Checkpoint(format!(
                "optimiser step count {steps} is negative"
            )));
        }
        self.step = steps;
        self.moments = moments;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn hand_written_backward_matches_candle_autograd() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mlp = Mlp::new(6, 16, 2, 5, &mut rng, &dev)?;
        let xs: Vec<f32> = (0..4 * 6).map(|_| rng.random_range(-1.0..1.0)).collect();
        let x = Tensor::from_vec(xs, (4, 6), &dev)?;
        let target: Vec<f32> = (0..4 * 5).map(|_| rng.random_range(-1.0..1.0)).collect();
        let target = Tensor::from_vec(target, (4, 5), &dev)?;
        let loss_of = |out: &Tensor| out.sub(&target)?.sqr()?.sum_all();

        // The reference runs the same network with generic candle ops only (the fused kernels
        // carry no autograd), so candle differentiates all of it.
        let mut h = x.clone();
        let last = mlp.layers().len() - 1;
        for (i, l) in mlp.layers().iter().enumerate() {
            h = h
                .matmul(l.weight.as_tensor())?
                .broadcast_add(l.bias.as_tensor())?;
            if i < last {
                h = h.maximum(&h.affine(LEAKY_SLOPE, 0.0)?)?;
            }
        }
        let reference = loss_of(&h)?.backward()?;
        let (out, cache) = mlp.forward_cached(&x)?;
        let out_var = Var::from_tensor(&out)?;
        let d_out = loss_of(out_var.as_tensor())?.backward()?;
        let d_out = d_out
            .get(out_var.as_tensor())
            .ok_or_else(|| candle_core::Error::Msg("no grad".into()))?;
        let ours = mlp.backward(&cache, d_out)?;

        for ((name, var), g) in mlp.named_vars().into_iter().zip(ours) {
            let r = reference
                .get(var.as_tensor())
                .ok_or_else(|| candle_core::Error::Msg(name.clone()))?;
            let diff = r.sub(&g)?.abs()?.max_all()?.to_scalar::<f32>()?;
            let scale = r.abs()?.max_all()?.to_scalar::<f32>()?.max(1e-3);
            assert!(
                diff / scale < 1e-4,
                "{name}: relative gradient error {}",
                diff / scale
            );
        }
        Ok(())
    }

    #[test]
    fn adam_moves_parameters_against_the_gradient() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let var = Var::from_tensor(&Tensor::new(&[1.0f32, -1.0], &dev)?)?;
        let mut adam = Adam::new(&[2]);
        adam.step(&[&var], &[vec![0.5f32, -2.0]], &[0.1], 1.0)?;
        let w = var.as_tensor().to_vec1::<f32>()?;
        // The first Adam step moves each coordinate by lr against the gradient's sign.
        assert!(
            (w[0] - 0.9).abs() < 1e-5 && (w[1] + 0.9).abs() < 1e-5,
            "{w:?}"
        );
        Ok(())
    }
}
