//! The background trainer: retrains a campaign's GFlowNet when new labels arrive, on a
//! dedicated compute thread, under a per-campaign lease in the database; keeps a cache of
//! loaded checkpoints for rounds; lets requests wait for the model to catch up.
//!
//! (Interface in place; the implementation lands with the trainer.)

use crate::error::Error;
use crate::gfn::{GflowNet, Space};
use crate::store::Store;
use std::sync::Arc;
use std::time::Duration;

/// Settings of the trainer.
#[derive(Debug, Clone)]
pub struct TrainerConfig {
    /// Threads the compute side may use (candle's matrix products included).
    pub threads: usize,
    /// How long a training lease lasts without a heartbeat.
    pub lease_ttl: Duration,
    /// This process's name in leases and training runs.
    pub owner: String,
}

/// A cheap handle on the trainer, held by the HTTP state.
#[derive(Debug, Clone)]
pub struct TrainerHandle {
    store: Store,
    config: Arc<TrainerConfig>,
}

/// A loaded checkpoint: its version and the network.
pub type LoadedModel = (i64, Arc<GflowNet>);

impl TrainerHandle {
    /// Starts the supervisor and the compute thread.
    pub fn start(store: Store, config: TrainerConfig) -> Self {
        Self {
            store,
            config: Arc::new(config),
        }
    }

    pub fn config(&self) -> &TrainerConfig {
        &self.config
    }

    /// New labels were committed for `campaign_id`: schedule a training run (one more run if
    /// one is going, not one per call).
    pub fn notify_labels(&self, campaign_id: i64) {
        tracing::debug!(campaign_id, "labels committed");
    }

    /// Returns once the newest checkpoint of `campaign_id` was trained on at least
    /// `labels_needed` successful observations, or `Error::Unavailable` after `timeout`.
    pub async fn wait_for_model(
        &self,
        campaign_id: i64,
        labels_needed: i64,
        timeout: Duration,
    ) -> Result<(), Error> {
        let _ = (campaign_id, labels_needed, timeout, &self.store);
        Ok(())
    }

    /// The newest checkpoint of the campaign, loaded for `space` (cached by version), or
    /// `None` while no model exists.
    pub async fn model(
        &self,
        campaign_id: i64,
        space: Arc<dyn Space>,
    ) -> Result<Option<LoadedModel>, Error> {
        let _ = (campaign_id, space);
        Ok(None)
    }

    /// Stops training at the next step and waits for the compute thread.
    pub async fn shutdown(&self) {}
}
