//! A campaign's model, stored as one checkpoint: the GFlowNet, the surrogate whose predictions
//! rewarded it, and the elites (the best labelled candidates at training time) that rounds
//! search around. One safetensors buffer holds all of it: the network's tensors as
//! `gfn::checkpoint` names them, the surrogate's under `proxy.`, and the rest as metadata.
//!
//! Synchronous; imports the engine and the proxy, nothing from the web or storage layers.

use crate::gfn::checkpoint::EXTENSION_PREFIX;
use crate::gfn::{GflowNet, GfnError, Space, State};
use crate::proxy::{ProxyError, Surrogate};
use std::sync::Arc;

/// Why a model could not be written as a checkpoint or read back from one.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The network's part: its tensors or its settings.
    #[error(transparent)]
    Network(#[from] GfnError),
    /// The proxy's part.
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    /// The buffer is not safetensors, or could not be written as such.
    #[error("safetensors: {0}")]
    Safetensors(#[from] safetensors::SafeTensorError),
    /// The proxy's tensors could not be loaded from the buffer.
    #[error("checkpoint tensors: {0}")]
    Tensors(#[from] candle_core::Error),
    /// The elites' metadata is not a JSON list.
    #[error("elites: {0}")]
    ElitesJson(#[from] serde_json::Error),
    /// An elite is not a value of the space.
    #[error("elite {value}: {source}")]
    Elite {
        value: String,
        source: crate::gfn::space::ValueError,
    },
}

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
    pub fn to_bytes(&self) -> Result<Vec<u8>, ModelError> {
        let (mut tensors, mut meta) = self.gfn.checkpoint_parts()?;
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
        Ok(safetensors::tensor::serialize(tensors, Some(meta))?)
    }

    /// Loads [`Model::to_bytes`] (or a bare network checkpoint) for `space`.
    pub fn from_bytes(space: Arc<dyn Space>, bytes: &[u8]) -> Result<Self, ModelError> {
        let gfn = GflowNet::from_checkpoint(space.clone(), bytes)?;
        let (_, header) = safetensors::SafeTensors::read_metadata(bytes)?;
        let meta = header.metadata().clone().unwrap_or_default();
        let surrogate = match meta.get(PROXY_KEY) {
            Some(proxy_meta) => {
                let tensors =
                    candle_core::safetensors::load_buffer(bytes, &candle_core::Device::Cpu)?;
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
                let values: Vec<serde_json::Value> = serde_json::from_str(text)?;
                values
                    .iter()
                    .map(|v| {
                        space.parse_value(v).map_err(|source| ModelError::Elite {
                            value: v.to_string(),
                            source,
                        })
                    })
                    .collect::<Result<Vec<State>, ModelError>>()?
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
