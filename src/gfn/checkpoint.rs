//! Checkpoints: the network and log Z as safetensors bytes, named as in `policy.rs`, with
//! the GFlowNet configuration and step count in the safetensors metadata.
//!
//! Loading checks the exact key set and every shape against a network built for the given
//! space, so a checkpoint of another space or shape is refused rather than half-loaded.
//! Tensors under [`EXTENSION_PREFIX`] belong to whatever the service stores beside the
//! network (the surrogate) and are left to it.
//!
//! Adam's moments travel beside the weights, as `adam.m.{name}` and `adam.v.{name}` for
//! each parameter `{name}`, with its update count in the metadata, so that a resumed run
//! continues exactly where the saved one stopped. Checkpoints written before they were
//! saved still load, with the moments at zero (Adam starts its averages afresh).

use super::space::Space;
use super::train::{GflowNet, GfnConfig, GfnError};
use rand::SeedableRng;
use std::collections::HashMap;
use std::sync::Arc;

const CONFIG_KEY: &str = "flowlab.gfn_config";
const STEPS_KEY: &str = "flowlab.steps";
const ADAM_STEPS_KEY: &str = "flowlab.adam_steps";

/// Tensor names of the optimiser state start with this.
pub const ADAM_PREFIX: &str = "adam.";

/// Tensor names starting with this belong to the service, not to the network.
pub const EXTENSION_PREFIX: &str = "proxy.";

impl GflowNet {
    /// Serialises the parameters to safetensors bytes.
    pub fn to_checkpoint(&self) -> Result<Vec<u8>, GfnError> {
        let (tensors, meta) = self.checkpoint_parts()?;
        safetensors::tensor::serialize(tensors, Some(meta))
            .map_err(|e| GfnError::Checkpoint(e.to_string()))
    }

    /// The named tensors and metadata of [`GflowNet::to_checkpoint`], for a caller that
    /// stores more beside them (under [`EXTENSION_PREFIX`] and its own metadata keys).
    #[allow(clippy::type_complexity)]
    pub fn checkpoint_parts(
        &self,
    ) -> Result<(Vec<(String, candle_core::Tensor)>, HashMap<String, String>), GfnError> {
        let mut tensors: Vec<(String, candle_core::Tensor)> = self
            .mlp
            .named_vars()
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().clone()))
            .collect();
        tensors.push(("log_z".to_string(), self.log_z.as_tensor().clone()));
        let mut moments = Vec::with_capacity(2 * tensors.len());
        for ((name, t), (m, v)) in tensors.iter().zip(self.adam.moments()) {
            let device = t.device();
            moments.push((
                format!("{ADAM_PREFIX}m.{name}"),
                candle_core::Tensor::from_vec(m.clone(), t.shape(), device)?,
            ));
            moments.push((
                format!("{ADAM_PREFIX}v.{name}"),
                candle_core::Tensor::from_vec(v.clone(), t.shape(), device)?,
            ));
        }
        tensors.extend(moments);
        let config =
            serde_json::to_string(&self.config).map_err(|e| GfnError::Checkpoint(e.to_string()))?;
        let meta = HashMap::from([
            (CONFIG_KEY.to_string(), config),
            (STEPS_KEY.to_string(), self.steps().to_string()),
            (ADAM_STEPS_KEY.to_string(), self.adam.steps().to_string()),
        ]);
        Ok((tensors, meta))
    }

    /// Rebuilds a GFlowNet for `space` from [`GflowNet::to_checkpoint`] bytes.
    pub fn from_checkpoint(space: Arc<dyn Space>, bytes: &[u8]) -> Result<Self, GfnError> {
        let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)
            .map_err(|e| GfnError::Checkpoint(format!("not a safetensors buffer: {e}")))?;
        let info = meta.metadata().clone().unwrap_or_default();
        let config: GfnConfig = info
            .get(CONFIG_KEY)
            .ok_or_else(|| GfnError::Checkpoint("missing configuration metadata".into()))
            .and_then(|s| {
                serde_json::from_str(s).map_err(|e| GfnError::Checkpoint(e.to_string()))
            })?;
        let steps: u64 = info
            .get(STEPS_KEY)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        // The random initial weights are overwritten below; any seed will do.
        let mut gfn = GflowNet::new(space, config, &mut rand::rngs::StdRng::seed_from_u64(0))?;
        let mut loaded = candle_core::safetensors::load_buffer(bytes, &gfn.device)?;
        loaded.retain(|name, _| !name.starts_with(EXTENSION_PREFIX));
        let optimiser: HashMap<String, candle_core::Tensor> = loaded
            .iter()
            .filter(|(name, _)| name.starts_with(ADAM_PREFIX))
            .map(|(n, t)| (n.clone(), t.clone()))
            .collect();
        loaded.retain(|name, _| !name.starts_with(ADAM_PREFIX));
        let mut expected: Vec<(String, &candle_core::Var)> = gfn.mlp.named_vars();
        expected.push(("log_z".to_string(), &gfn.log_z));
        if loaded.len() != expected.len() {
            return Err(GfnError::Checkpoint(format!(
                "expected {} tensors, found {}",
                expected.len(),
                loaded.len()
            )));
        }
        for (name, var) in &expected {
            let t = loaded
                .get(name)
                .ok_or_else(|| GfnError::Checkpoint(format!("missing tensor {name}")))?;
            if t.shape() != var.as_tensor().shape() {
                return Err(GfnError::Checkpoint(format!(
                    "tensor {name} has shape {:?}, expected {:?}",
                    t.shape(),
                    var.as_tensor().shape()
                )));
            }
            var.set(t)?;
        }
        if let Some((adam_steps, moments)) = read_moments(&info, &optimiser, &expected)? {
            gfn.adam.restore(adam_steps, moments)?;
        }
        gfn.set_steps(steps);
        Ok(gfn)
    }
}

/// Adam's first and second moments of each tensor, flattened, in the network's order.
type Moments = Vec<(Vec<f32>, Vec<f32>)>;

/// Adam's step count and first and second moments for each of `expected`'s tensors, from a
/// checkpoint's metadata and `adam.*` tensors; `None` for a checkpoint saved without them.
fn read_moments(
    info: &HashMap<String, String>,
    optimiser: &HashMap<String, candle_core::Tensor>,
    expected: &[(String, &candle_core::Var)],
) -> Result<Option<(i32, Moments)>, GfnError> {
    if optimiser.is_empty() {
        return Ok(None);
    }
    let adam_steps: i32 = info
        .get(ADAM_STEPS_KEY)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| GfnError::Checkpoint("optimiser moments without their step count".into()))?;
    if optimiser.len() != 2 * expected.len() {
        return Err(GfnError::Checkpoint(format!(
            "expected {} optimiser tensors, found {}",
            2 * expected.len(),
            optimiser.len()
        )));
    }
    let mut moments = Vec::with_capacity(expected.len());
    for (name, var) in expected {
        let read = |which: &str| -> Result<Vec<f32>, GfnError> {
            let key = format!("{ADAM_PREFIX}{which}.{name}");
            let t = optimiser
                .get(&key)
                .ok_or_else(|| GfnError::Checkpoint(format!("missing tensor {key}")))?;
            if t.shape() != var.as_tensor().shape() {
                return Err(GfnError::Checkpoint(format!(
                    "tensor {key} has shape {:?}, expected {:?}",
                    t.shape(),
                    var.as_tensor().shape()
                )));
            }
            Ok(t.flatten_all()?.to_vec1::<f32>()?)
        };
        moments.push((read("m")?, read("v")?));
    }
    Ok(Some((adam_steps, moments)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gfn::space::GridSpace;
    use crate::gfn::train::Exploration;
    use crate::gfn::Trajectory;
    use rand::rngs::StdRng;

    fn grid() -> Result<Arc<dyn Space>, GfnError> {
        Ok(Arc::new(
            GridSpace::new(2, 4).map_err(|e| GfnError::Config(e.to_string()))?,
        ))
    }

    fn train(gfn: &mut GflowNet, rng: &mut StdRng, steps: usize) -> Result<Vec<u32>, GfnError> {
        let mut losses = Vec::new();
        for _ in 0..steps {
            let mut trajs: Vec<Trajectory> = gfn.sample_forward(8, Exploration::default(), rng)?;
            for t in &mut trajs {
                t.log_reward = t.terminal().0.iter().map(|&c| f32::from(c)).sum::<f32>() * 0.3;
            }
            losses.push(gfn.train_step(&trajs)?.loss.to_bits());
        }
        Ok(losses)
    }

    /// Every tensor of the checkpoint (weights, log Z, Adam's moments) as bit patterns.
    fn bits(gfn: &GflowNet) -> Result<Vec<(String, Vec<u32>)>, GfnError> {
        let (tensors, _) = gfn.checkpoint_parts()?;
        let mut out = tensors
            .into_iter()
            .map(|(n, t)| {
                let v = t.flatten_all()?.to_vec1::<f32>()?;
                Ok((n, v.into_iter().map(f32::to_bits).collect()))
            })
            .collect::<Result<Vec<_>, GfnError>>()?;
        out.sort();
        Ok(out)
    }

    #[test]
    fn a_resumed_run_continues_bit_identically() -> Result<(), GfnError> {
        let config = GfnConfig {
            hidden: 16,
            ..Default::default()
        };
        let mut rng = StdRng::seed_from_u64(41);
        let mut straight = GflowNet::new(grid()?, config.clone(), &mut rng)?;
        train(&mut straight, &mut rng, 5)?;
        let tail = train(&mut straight, &mut rng, 5)?;

        let mut rng = StdRng::seed_from_u64(41);
        let mut first = GflowNet::new(grid()?, config, &mut rng)?;
        train(&mut first, &mut rng, 5)?;
        let mut resumed = GflowNet::from_checkpoint(grid()?, &first.to_checkpoint()?)?;
        assert_eq!(bits(&resumed)?, bits(&first)?);
        let resumed_tail = train(&mut resumed, &mut rng, 5)?;

        assert_eq!(resumed_tail, tail);
        assert_eq!(bits(&resumed)?, bits(&straight)?);
        assert_eq!(resumed.steps(), straight.steps());
        Ok(())
    }

    #[test]
    fn a_checkpoint_without_optimiser_state_loads_with_zero_moments() -> Result<(), GfnError> {
        let mut rng = StdRng::seed_from_u64(42);
        let config = GfnConfig {
            hidden: 16,
            ..Default::default()
        };
        let mut gfn = GflowNet::new(grid()?, config, &mut rng)?;
        train(&mut gfn, &mut rng, 3)?;
        // What checkpoints looked like before the moments were saved.
        let (mut tensors, mut meta) = gfn.checkpoint_parts()?;
        tensors.retain(|(n, _)| !n.starts_with(ADAM_PREFIX));
        meta.remove(ADAM_STEPS_KEY);
        let weights: Vec<(String, Vec<f32>)> = tensors
            .iter()
            .map(|(n, t)| Ok((n.clone(), t.flatten_all()?.to_vec1::<f32>()?)))
            .collect::<Result<_, GfnError>>()?;
        let bytes = safetensors::tensor::serialize(tensors, Some(meta))
            .map_err(|e| GfnError::Checkpoint(e.to_string()))?;
        let mut back = GflowNet::from_checkpoint(grid()?, &bytes)?;
        assert_eq!(back.steps(), 3);
        assert_eq!(back.adam.steps(), 0);
        assert!(back
            .adam
            .moments()
            .iter()
            .all(|(m, v)| m.iter().chain(v).all(|x| *x == 0.0)));
        let (loaded, _) = back.checkpoint_parts()?;
        for (name, values) in &weights {
            let t = loaded
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t.flatten_all())
                .ok_or_else(|| GfnError::Checkpoint(name.clone()))??;
            assert_eq!(&t.to_vec1::<f32>()?, values, "{name}");
        }
        train(&mut back, &mut rng, 1)?;
        assert_eq!(back.adam.steps(), 1);
        Ok(())
    }

    #[test]
    fn checkpoint_round_trip_reproduces_the_policy() -> Result<(), GfnError> {
        let space: Arc<dyn Space> =
            Arc::new(GridSpace::new(2, 4).map_err(|e| GfnError::Config(e.to_string()))?);
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let gfn = GflowNet::new(
            space.clone(),
            GfnConfig {
                hidden: 16,
                ..Default::default()
            },
            &mut rng,
        )?;
        let bytes = gfn.to_checkpoint()?;
        let back = GflowNet::from_checkpoint(space, &bytes)?;
        let a = gfn.sample_forward(
            8,
            Exploration::default(),
            &mut rand::rngs::StdRng::seed_from_u64(9),
        )?;
        let b = back.sample_forward(
            8,
            Exploration::default(),
            &mut rand::rngs::StdRng::seed_from_u64(9),
        )?;
        assert_eq!(a, b);
        Ok(())
    }

    #[test]
    fn checkpoint_of_another_space_is_refused() -> Result<(), GfnError> {
        let small: Arc<dyn Space> =
            Arc::new(GridSpace::new(2, 4).map_err(|e| GfnError::Config(e.to_string()))?);
        let big: Arc<dyn Space> =
            Arc::new(GridSpace::new(3, 4).map_err(|e| GfnError::Config(e.to_string()))?);
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let bytes = GflowNet::new(
            small,
            GfnConfig {
                hidden: 16,
                ..Default::default()
            },
            &mut rng,
        )?
        .to_checkpoint()?;
        assert!(matches!(
            GflowNet::from_checkpoint(big, &bytes),
            Err(GfnError::Checkpoint(_))
        ));
        assert!(matches!(
            GflowNet::from_checkpoint(
                Arc::new(GridSpace::new(2, 4).map_err(|e| GfnError::Config(e.to_string()))?),
                b"junk"
            ),
            Err(GfnError::Checkpoint(_))
        ));
        Ok(())
    }
}
