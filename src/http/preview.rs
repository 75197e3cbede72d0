//! `GET /campaigns/{id}/model/sample?n=&seed=`: what the newest model would propose, drawn
//! with a given seed and stored nowhere. Useful to inspect a model, and the way to check
//! that a restarted server resumed from the same checkpoint (same seed, same values).

use super::campaigns::parse_id;
use super::error::ApiError;
use super::rounds::parse_stored;
use super::AppState;
use crate::error::Error;
use crate::gfn::propose::canonical;
use crate::gfn::{Exploration, GflowNet, GfnConfig, Space};
use axum::extract::{Path, Query, State};
use axum::Json;
use rand::SeedableRng;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// Query of the preview.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviewQuery {
    /// Number of draws, 1..=1000.
    #[serde(default = "default_n")]
    pub n: usize,
    #[serde(default)]
    pub seed: u64,
}

fn default_n() -> usize {
    10
}

#[tracing::instrument(skip_all)]
pub async fn sample(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<PreviewQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id, "campaign")?;
    let Query(query) = query.map_err(|e| Error::invalid("query", e.body_text()))?;
    if !(1..=1000).contains(&query.n) {
        return Err(Error::invalid("n", "must be in 1..=1000").into());
    }
    let campaign = state.store.campaign(id).await?;
    let space: Arc<dyn Space> = Arc::from(
        campaign
            .spec
            .space
            .build()
            .map_err(|e| Error::Storage(format!("stored space is invalid: {e}")))?,
    );
    let model = state.trainer.model(id, space.clone()).await?;
    let version = model.as_ref().map_or(0, |(v, _)| *v);
    let (n, seed) = (query.n, query.seed);
    let values = tokio::task::spawn_blocking(move || {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let trajectories = match model {
            Some((_, net)) => net.sample_forward(n, Exploration::default(), &mut rng)?,
            None => {
                let config = GfnConfig {
                    hidden: 4,
                    layers: 1,
                    ..GfnConfig::default()
                };
                let uniform = GflowNet::new(space.clone(), config, &mut rng)?;
                uniform.sample_forward(
                    n,
                    Exploration {
                        temperature: 1.0,
                        epsilon: 1.0,
                    },
                    &mut rng,
                )?
            }
        };
        Ok::<Vec<Value>, crate::gfn::GfnError>(
            trajectories
                .iter()
                .map(|t| parse_stored(&canonical(space.as_ref(), t.terminal())))
                .collect(),
        )
    })
    .await
    .map_err(|e| ApiError::Internal(format!("sampling task failed: {e}")))?
    .map_err(|e| ApiError::Internal(format!("sampling failed: {e}")))?;
    Ok(Json(
        json!({ "campaign_id": id, "model_version": version, "seed": seed, "values": values }),
    ))
}
