//! `POST /labels`: measurements, all or nothing. Every item is validated before anything is
//! stored; the first bad one answers 400 (or 404 for an unknown id) with its index.

use super::error::ApiError;
use super::extract::ApiJson;
use super::AppState;
use crate::domain::label::{
    LabelItem, LabelTarget, LabelsOutcome, LabelsRequest, NewLabel, MAX_LABELS,
};
use crate::error::Error;
use crate::gfn::propose::canonical;
use crate::gfn::Space;
use axum::extract::State;
use axum::Json;
use std::collections::HashMap;
use std::sync::Arc;

/// Largest accepted absolute reward: beyond it a score is a unit or sentinel error.
pub const MAX_ABS_REWARD: f64 = 1e15;
/// Longest `error` text and `key`, in bytes; largest `metadata`, serialised.
const MAX_ERROR_BYTES: usize = 4096;
const MAX_KEY_BYTES: usize = 200;
const MAX_METADATA_BYTES: usize = 16 * 1024;

#[tracing::instrument(skip_all, fields(labels = body.labels.len()))]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<LabelsRequest>,
) -> Result<Json<LabelsOutcome>, ApiError> {
    let labels = validate(&state, body.labels).await?;
    let (outcome, campaigns) = state.store.insert_labels(&labels).await?;
    if outcome.accepted > 0 {
        for campaign_id in campaigns {
            state.trainer.notify_labels(campaign_id);
        }
    }
    Ok(Json(outcome))
}

/// Checks every item and parses values with their campaign's space.
pub(super) async fn validate(
    state: &AppState,
    items: Vec<LabelItem>,
) -> Result<Vec<NewLabel>, Error> {
    if items.is_empty() || items.len() > MAX_LABELS {
        return Err(Error::invalid(
            "labels",
            format!("must hold 1 to {MAX_LABELS} labels"),
        ));
    }
    let mut spaces: HashMap<i64, Arc<dyn Space>> = HashMap::new();
    let mut out = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let bad = |field: &str, reason: &str| Error::InvalidItem {
            index,
            field: format!("labels[{index}].{field}"),
            reason: reason.to_string(),
        };
        let target = match (item.candidate_id, item.campaign_id, item.value) {
            (Some(id), None, None) => LabelTarget::Candidate(id),
            (None, Some(campaign_id), Some(value)) => {
                let space = match spaces.get(&campaign_id) {
                    Some(space) => space.clone(),
                    None => {
                        let campaign = match state.store.campaign(campaign_id).await {
                            Ok(c) => c,
                            Err(Error::NotFound { .. }) => {
                                return Err(Error::ItemNotFound {
                                    index,
                                    what: "campaign",
                                    id: campaign_id.to_string(),
                                })
                            }
                            Err(e) => return Err(e),
                        };
                        let space: Arc<dyn Space> =
                            Arc::from(campaign.spec.space.build().map_err(|e| {
                                Error::Storage(format!("stored space is invalid: {e}"))
                            })?);
                        spaces.insert(campaign_id, space.clone());
                        space
                    }
                };
                let x = space
                    .parse_value(&value)
                    .map_err(|e| bad("value", &e.to_string()))?;
                LabelTarget::Value {
                    campaign_id,
                    value: canonical(space.as_ref(), &x),
                }
            }
            (Some(_), _, _) => {
                return Err(bad(
                    "candidate_id",
                    "give either candidate_id, or campaign_id and value",
                ))
            }
            (None, Some(_), None) => return Err(bad("value", "is required with campaign_id")),
            (None, None, Some(_)) => return Err(bad("campaign_id", "is required with value")),
            (None, None, None) => {
                return Err(bad(
                    "candidate_id",
                    "is required (or campaign_id and value)",
                ))
            }
        };
        match (item.failed, item.reward) {
            (true, Some(_)) => return Err(bad("reward", "must be absent when failed is true")),
            (false, None) => return Err(bad("reward", "is required unless failed is true")),
            (false, Some(r)) if !r.is_finite() || r.abs() > MAX_ABS_REWARD => {
                return Err(bad(
                    "reward",
                    &format!("must be finite with |reward| <= {MAX_ABS_REWARD:e}"),
                ))
            }
            _ => {}
        }
        if item.error.is_some() && !item.failed {
            return Err(bad("error", "is only allowed with failed: true"));
        }
        if item
            .error
            .as_ref()
            .is_some_and(|e| e.len() > MAX_ERROR_BYTES)
        {
            return Err(bad(
                "error",
                &format!("is longer than {MAX_ERROR_BYTES} bytes"),
            ));
        }
        if item
            .key
            .as_ref()
            .is_some_and(|k| k.is_empty() || k.len() > MAX_KEY_BYTES)
        {
            return Err(bad("key", &format!("must be 1 to {MAX_KEY_BYTES} bytes")));
        }
        let metadata = item.metadata.map(|m| m.to_string());
        if metadata
            .as_ref()
            .is_some_and(|m| m.len() > MAX_METADATA_BYTES)
        {
            return Err(bad(
                "metadata",
                &format!("is larger than {MAX_METADATA_BYTES} bytes"),
            ));
        }
        out.push(NewLabel {
            target,
            reward: item.reward,
            failed: item.failed,
            error: item.error,
            key: item.key,
            metadata,
        });
    }
    Ok(out)
}
