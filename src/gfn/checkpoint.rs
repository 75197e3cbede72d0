//! Checkpoints: the network and log Z as safetensors bytes, named as in `policy.rs`, with
//! the GFlowNet configuration and step count in the safetensors metadata.
//!
//! Loading checks the exact key set and every shape against a network built for the given
//! space, so a checkpoint of another space or shape is refused rather than half-loaded.
//! Tensors under [`EXTENSION_PREFIX`] belong to whatever the service stores beside the
//! network (the surrogate) and are left to it.
//! The optimiser's moments are not saved: a resumed run restarts Adam's averages.

use super::space::Space;
use super::train::{GflowNet, GfnConfig, GfnError};
use rand::SeedableRng;
use std::collections::HashMap;
use std::sync::Arc;

const CONFIG_KEY: &str = "flowlab.gfn_config";
const STEPS_KEY: &str = "flowlab.steps";

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
        let config =
            serde_json::to_string(&self.config).map_err(|e| GfnError::Checkpoint(e.to_string()))?;
        let meta = HashMap::from([
            (CONFIG_KEY.to_string(), config),
            (STEPS_KEY.to_string(), self.steps().to_string()),
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
        gfn.set_steps(steps);
        Ok(gfn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gfn::space::GridSpace;
    use crate::gfn::train::Exploration;

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
