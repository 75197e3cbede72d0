//! Fused CPU kernels for the MLP, as candle custom ops.
//!
//! Each replaces a chain of three or four generic candle ops (each a full pass over the
//! activations plus an allocation) with one pass: bias + LeakyReLU in the forward pass, the
//! LeakyReLU derivative in the backward pass, and the column sums that give bias gradients.
//! On other devices the callers fall back to generic candle ops.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

fn contiguous<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    let data = storage.as_slice::<f32>()?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{op}: expects a contiguous f32 tensor"),
    }
}

fn rows_cols(layout: &Layout, op: &str) -> Result<(usize, usize)> {
    match layout.dims() {
        [r, c] => Ok((*r, *c)),
        dims => candle_core::bail!("{op}: expects a matrix, got shape {dims:?}"),
    }
}

/// `leaky(z + bias)` with `bias` broadcast over rows; a slope of 1 makes it a bias add.
struct BiasLeaky {
    slope: f32,
}

impl CustomOp2 for BiasLeaky {
    fn name(&self) -> &'static str {
        "bias-leaky-relu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let z = contiguous(s1, l1, self.name())?;
        let bias = contiguous(s2, l2, self.name())?;
        let (rows, cols) = rows_cols(l1, self.name())?;
        if bias.len() != cols {
            candle_core::bail!(
                "{}: bias has {} entries for {cols} columns",
                self.name(),
                bias.len()
            );
        }
        let mut out = Vec::with_capacity(rows * cols);
        for row in z.chunks_exact(cols.max(1)) {
            out.extend(row.iter().zip(bias).map(|(v, b)| {
                let y = v + b;
                if y > 0.0 {
                    y
                } else {
                    y * self.slope
                }
            }));
        }
        Ok((CpuStorage::F32(out), Shape::from((rows, cols))))
    }
}

/// `grad * leaky'(.)`, where the derivative is read off the activation `h` (positive exactly
/// where the pre-activation was).
struct LeakyGrad {
    slope: f32,
}

impl CustomOp2 for LeakyGrad {
    fn name(&self) -> &'static str {
        "leaky-relu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let grad = contiguous(s1, l1, self.name())?;
        let h = contiguous(s2, l2, self.name())?;
        if grad.len() != h.len() {
            candle_core::bail!("{}: shapes differ", self.name());
        }
        let out = grad
            .iter()
            .zip(h)
            .map(|(g, h)| if *h > 0.0 { *g } else { g * self.slope })
            .collect();
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// Sum over rows of a matrix: `[rows, cols] -> [cols]`.
struct ColumnSum;

impl CustomOp1 for ColumnSum {
    fn name(&self) -> &'static str {
        "column-sum"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(storage, layout, self.name())?;
        let (_, cols) = rows_cols(layout, self.name())?;
        let mut out = vec![0f32; cols];
        for row in x.chunks_exact(cols.max(1)) {
            for (o, v) in out.iter_mut().zip(row) {
                *o += v;
            }
        }
        Ok((CpuStorage::F32(out), Shape::from(cols)))
    }
}

/// `leaky(z + bias)`; `slope == 1` gives `z + bias`.
pub fn bias_leaky(z: &Tensor, bias: &Tensor, slope: f64) -> Result<Tensor> {
    if z.device().is_cpu() {
        z.contiguous()?.apply_op2_no_bwd(
            &bias.contiguous()?,
            &BiasLeaky {
                slope: slope as f32,
            },
        )
    } else {
        let y = z.broadcast_add(bias)?;
        if slope == 1.0 {
            Ok(y)
        } else {
            y.maximum(&y.affine(slope, 0.0)?)
        }
    }
}

/// Backward of LeakyReLU given the activation it produced.
pub fn leaky_grad(grad: &Tensor, activation: &Tensor, slope: f64) -> Result<Tensor> {
    if grad.device().is_cpu() {
        grad.contiguous()?.apply_op2_no_bwd(
            &activation.contiguous()?,
            &LeakyGrad {
                slope: slope as f32,
            },
        )
    } else {
        let mask = activation
            .gt(0f64)?
            .to_dtype(grad.dtype())?
            .affine(1.0 - slope, slope)?;
        grad.mul(&mask)
    }
}

/// Sum over rows.
pub fn column_sum(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() {
        x.contiguous()?.apply_op1_no_bwd(&ColumnSum)
    } else {
        x.sum(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn fused_kernels_match_generic_candle_ops() -> Result<()> {
        let dev = Device::Cpu;
        let z = Tensor::new(&[[1.0f32, -2.0, 0.5], [-0.5, 3.0, -1.0]], &dev)?;
        let b = Tensor::new(&[0.25f32, 1.0, -1.0], &dev)?;
        let y = z.broadcast_add(&b)?;
        let generic = y.maximum(&y.affine(0.01, 0.0)?)?;
        let fused = bias_leaky(&z, &b, 0.01)?;
        assert_eq!(fused.to_vec2::<f32>()?, generic.to_vec2::<f32>()?);
        assert_eq!(
            bias_leaky(&z, &b, 1.0)?.to_vec2::<f32>()?,
            y.to_vec2::<f32>()?
        );

        let g = Tensor::new(&[[2.0f32, 2.0, 2.0], [-1.0, -1.0, -1.0]], &dev)?;
        let mask = fused
            .gt(0f64)?
            .to_dtype(candle_core::DType::F32)?
            .affine(0.99, 0.01)?;
        let diff = leaky_grad(&g, &fused, 0.01)?
            .sub(&g.mul(&mask)?)?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert!(diff < 1e-7);

        assert_eq!(
            column_sum(&z)?.to_vec1::<f32>()?,
            z.sum(0)?.to_vec1::<f32>()?
        );
        Ok(())
    }
}
