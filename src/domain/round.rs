//! Rounds: a batch of new candidates proposed for measurement.

use super::campaign::validate_exploration;
use crate::error::Error;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Largest batch a round may ask for.
pub const MAX_BATCH_SIZE: usize = 10_000;

/// The body of `POST /rounds`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoundRequest {
    pub campaign_id: i64,
    pub batch_size: i64,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub wait_for_model: bool,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub epsilon: Option<f64>,
    #[serde(default)]
    pub min_distance: Option<f64>,
}

impl RoundRequest {
    /// Checks the ranges of SPEC §4.
    pub fn validate(&self) -> Result<(), Error> {
        if !(1..=MAX_BATCH_SIZE as i64).contains(&self.batch_size) {
            return Err(Error::invalid(
                "batch_size",
                format!("must be in 1..={MAX_BATCH_SIZE}"),
            ));
        }
        if let Some(key) = &self.key {
            if key.is_empty() || key.len() > 200 {
                return Err(Error::invalid("key", "must be 1 to 200 bytes"));
            }
        }
        validate_exploration(
            "",
            self.temperature.unwrap_or(1.0),
            self.epsilon.unwrap_or(0.0),
        )
        .map_err(|e| match e {
            Error::Invalid { field, reason } => {
                Error::invalid(field.trim_start_matches('.').to_string(), reason)
            }
            other => other,
        })?;
        if let Some(d) = self.min_distance {
            if !(d.is_finite() && d >= 0.0) {
                return Err(Error::invalid(
                    "min_distance",
                    "must be a finite number >= 0",
                ));
            }
        }
        Ok(())
    }
}

/// A proposed candidate in a round response.
#[derive(Debug, Clone, Serialize)]
pub struct ProposedCandidate {
    pub id: i64,
    pub value: Value,
    /// The proxy's prediction, once a proxy exists.
    pub proxy: Option<Value>,
}

/// A round as `POST /rounds` returns it.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    pub id: i64,
    pub campaign_id: i64,
    pub number: i64,
    pub model_version: i64,
    pub batch_size: i64,
    pub exhausted: bool,
    pub key: Option<String>,
    pub created_at: String,
    pub candidates: Vec<ProposedCandidate>,
}
