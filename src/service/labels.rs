//! Labels: measurements, all or nothing. Every item is checked and its value parsed with its
//! campaign's space before anything is stored; the first bad one is an error naming it.
//! Once stored, the campaigns they touch are scheduled for training (failed labels too:
//! the feasibility model learns from them).

use super::Service;
use crate::domain::label::{
    LabelInput, LabelTarget, LabelsOutcome, NewLabel, MAX_ENTITY_CHARS, MAX_LABELS,
};
use crate::error::Error;
use crate::gfn::propose::canonical;
use crate::gfn::Space;
use std::collections::HashMap;
use std::sync::Arc;

/// Largest accepted absolute reward: beyond it a score is a unit or sentinel error.
pub const MAX_ABS_REWARD: f64 = 1e15;
/// Longest `error` text and `key`, in bytes; largest `metadata`, serialised.
const MAX_ERROR_BYTES: usize = 4096;
const MAX_KEY_BYTES: usize = 200;
const MAX_METADATA_BYTES: usize = 16 * 1024;

/// Where the items came from: item errors of a CSV upload name its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelOrigin {
    Json,
    Csv,
}

/// Checks and stores a batch of labels; schedules training for the campaigns it touched.
/// `default_campaign` is the campaign of items that give a `value` and no `campaign_id`.
pub async fn record_labels(
    service: &Service,
    mut items: Vec<LabelInput>,
    origin: LabelOrigin,
    default_campaign: Option<i64>,
) -> Result<LabelsOutcome, Error> {
    for item in &mut items {
        if item.value.is_some() && item.campaign_id.is_none() {
            item.campaign_id = default_campaign;
        }
    }
    let checked = check_items(service, items).await;
    let labels = match origin {
        LabelOrigin::Json => checked?,
        LabelOrigin::Csv => checked.map_err(csv_rows)?,
    };
    let (outcome, campaigns) = service.store.insert_labels(&labels).await?;
    service
        .metrics
        .labels_committed(outcome.accepted, outcome.duplicates);
    if outcome.accepted > 0 {
        for campaign_id in campaigns {
            service.trainer.notify_labels(campaign_id);
        }
    }
    Ok(outcome)
}

/// Item errors of a CSV upload name the row (header = row 1) rather than the JSON path.
fn csv_rows(e: Error) -> Error {
    match e {
        Error::InvalidItem {
            index,
            field,
            reason,
        } => {
            let column = field.rsplit('.').next().unwrap_or("").to_string();
            Error::InvalidItem {
                index,
                field: format!("row {}, column {column}", index + 2),
                reason,
            }
        }
        other => other,
    }
}

/// Checks every item and parses values with their campaign's space.
async fn check_items(service: &Service, items: Vec<LabelInput>) -> Result<Vec<NewLabel>, Error> {
    if items.is_empty() || items.len() > MAX_LABELS {
        return Err(Error::invalid(
            "labels",
            format!("must hold 1 to {MAX_LABELS} labels"),
        ));
    }
    let mut spaces: HashMap<i64, Arc<dyn Space>> = HashMap::new();
    let mut out = Vec::with_capacity(items.len());
    for (index, mut item) in items.into_iter().enumerate() {
        let target = target_of(service, &mut spaces, index, &mut item).await?;
        out.push(check_item(index, item, target)?);
    }
    Ok(out)
}

/// An item error naming `labels[index].field`.
fn item_error(index: usize, field: &str, reason: &str) -> Error {
    Error::InvalidItem {
        index,
        field: format!("labels[{index}].{field}"),
        reason: reason.to_string(),
    }
}

/// What the item labels: a candidate by id, or a value of a campaign, parsed and written in
/// its canonical form. `spaces` caches each campaign's space across the batch.
async fn target_of(
    service: &Service,
    spaces: &mut HashMap<i64, Arc<dyn Space>>,
    index: usize,
    item: &mut LabelInput,
) -> Result<LabelTarget, Error> {
    let bad = |field: &str, reason: &str| item_error(index, field, reason);
    Ok(
        match (item.candidate_id, item.campaign_id, item.value.take()) {
            (Some(id), None, None) => LabelTarget::Candidate(id),
            (None, Some(campaign_id), Some(value)) => {
                let space = match spaces.get(&campaign_id) {
                    Some(space) => space.clone(),
                    None => {
                        let campaign = match service.store.campaign(campaign_id).await {
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
                        let space = campaign.spec.build_space()?;
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
        },
    )
}

/// The item's result, error text, key, metadata and entity against their rules.
fn check_item(index: usize, item: LabelInput, target: LabelTarget) -> Result<NewLabel, Error> {
    let bad = |field: &str, reason: &str| item_error(index, field, reason);
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
    // PostgreSQL text cannot hold U+0000; refused on both backends alike.
    for (field, text) in [
        ("key", &item.key),
        ("error", &item.error),
        ("entity", &item.entity),
    ] {
        if text.as_deref().is_some_and(|t| t.contains('\0')) {
            return Err(bad(field, "must not contain U+0000"));
        }
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
    let entity = match item.entity.as_deref().map(str::trim) {
        None => None,
        Some(e) if e.is_empty() || e.chars().count() > MAX_ENTITY_CHARS => {
            return Err(bad(
                "entity",
                &format!("must be 1 to {MAX_ENTITY_CHARS} characters once trimmed"),
            ))
        }
        Some(e) => Some(e.to_string()),
    };
    Ok(NewLabel {
        target,
        reward: item.reward,
        failed: item.failed,
        error: item.error,
        key: item.key,
        metadata,
        entity,
    })
}
