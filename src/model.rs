//! A campaign's model, stored as one checkpoint: the GFlowNet, the surrogate whose predictions
//! rewarded it, and the elites (the best labelled candidates at training time) that rounds
//! search around. One safetensors buffer holds all of it: the network's tensors as
//! `gfn::checkpoint` names them, the surrogate's under `proxy.`, and the rest as metadata.
//!
//! Synchronous; imports the engine and the proxy, nothing from the web or storage layers.

use crate::gfn::checkpoint::EXTENSION_PREFIX;
use crate::gfn::{GflowNet, Space, State};
use crate::proxy::Surrogate;
use std::sync::Arc;

const PROXY_KEY: &str = "flowlab.proxy";
const ELITES_KEY: &str = "flowlab.elites";

/// A trained model of a campaign.
#[derive(Debug)]
pub struct Model {
    pub gfn: GflowNet,
    /// `None` for checkpoints trained before any proxy could be fit (too few labels) or
    /// written by earlier versions.
    pub surrogate: Option<Surrogate>,
    /// Best labelled candidates first.
    pub elites: Vec<State>,
}

impl Model {
    /// Safetensors bytes of the whole model.
    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        let (mut tensors, mut meta) = self.gfn.checkpoint_parts().map_err(|e| e.to_string())?;
        if let Some(surrogate) = &self.surrogate {
            let (extra, proxy_meta) = surrogate.to_parts()?;
            debug_assert!(extra.iter().all(|(n, _)| n.starts_with(EXTENSION_PREFIX)));
            tensors.extend(extra);
            meta.insert(PROXY_KEY.to_string(), proxy_meta);
        }
        let space = self.gfn.space();
        let elites: Vec<serde_json::Value> =
            self.elites.iter().map(|x| space.to_value(x)).collect();
        meta.insert(
            ELITES_KEY.to_string(),
            serde_json::Value::Array(elites).to_string(),
        );
        safetensors::tensor::serialize(tensors, Some(meta)).map_err(|e| e.to_string())
    }

    /// Loads [`Model::to_bytes`] (or a bare network checkpoint) for `space`.
    pub fn from_bytes(space: Arc<dyn Space>, bytes: &[u8]) -> Result<Self, String> {
        let gfn = GflowNet::from_checkpoint(space.clone(), bytes).map_err(|e| e.to_string())?;
        let (_, header) = safetensors::SafeTensors::read_metadata(bytes)
            .map_err(|e| format!("not a safetensors buffer: {e}"))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let surrogate = match meta.get(PROXY_KEY) {
            Some(proxy_meta) => {
                let tensors =
                    candle_core::safetensors::load_buffer(bytes, &candle_core::Device::Cpu)
                        .map_err(|e| e.to_string())?;
                Some(Surrogate::from_parts(
                    &tensors,
                    proxy_meta,
                    space.encoding_dim(),
                )?)
            }
            None => None,
        };
        let elites = match meta.get(ELITES_KEY) {
            Some(text) => {
                let values: Vec<serde_json::Value> =
                    serde_json::from_str(text).map_err(|e| format!("elites: {e}"))?;
                values
                    .iter()
                    .map(|v| space.parse_value(v).map_err(|e| format!("elite {v}: {e}")))
                    .collect::<Result<Vec<State>, String>>()?
            }
            None => Vec::new(),
        };
        Ok(Self {
            gfn,
            surrogate,
            elites,
        })
    }
}
