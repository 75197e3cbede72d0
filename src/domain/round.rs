//! Rounds: a batch of new candidates proposed for measurement.

use super::campaign::validate_exploration;
use crate::error::Error;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Largest batch a round may ask for.
pub const MAX_BATCH_SIZE: usize = 10_000;

/// The body of `POST /rounds`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoundRequest {
    #[schema(minimum = 1)]
    pub campaign_id: i64,
    /// Candidates wanted, 1..=10000.
    #[schema(minimum = 1, maximum = 10000)]
    pub batch_size: i64,
    /// Idempotency key, 1..=200 bytes: a repeated key answers 200 with the same round.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200)]
    pub key: Option<String>,
    /// Wait until the model was trained on every label accepted before the request (503
    /// after the server's timeout, or at once when the campaign's training failed).
    #[serde(default)]
    pub wait_for_model: bool,
    /// Sampling temperature for this round only, in (0, 1000]; default: the campaign's.
    #[serde(default)]
    #[schema(exclusive_minimum = 0.0, maximum = 1000.0)]
    pub temperature: Option<f64>,
    /// Uniform mixing weight for this round only, in [0, 1]; default: the campaign's.
    #[serde(default)]
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub epsilon: Option<f64>,
    /// Smallest distance between two candidates of the batch, at least 0; default: none.
    #[serde(default)]
    #[schema(minimum = 0.0)]
    pub min_distance: Option<f64>,
}

impl RoundRequest {
    /// Checks the ranges of the protocol.
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
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProposedCandidate {
    pub id: i64,
    #[schema(value_type = super::CandidateValue)]
    pub value: Value,
    /// The proxy's prediction when the round proposed it, once a proxy exists; null until
    /// then.
    #[schema(required)]
    pub proxy: Option<ProxyEstimate>,
    /// How the candidate was made; null for candidates proposed before sources were
    /// recorded.
    #[schema(value_type = Option<CandidateSource>, required)]
    pub source: Option<String>,
}

/// How a candidate was made (documentation: stored and answered as these texts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub enum CandidateSource {
    /// Drawn from the uniform-action policy: before any model, when a round's exploration
    /// escalated to uniform, or listed from a small space whose sampling fell short.
    #[serde(rename = "uniform")]
    Uniform,
    /// Sampled from the campaign's trained GFlowNet.
    #[serde(rename = "policy")]
    Policy,
    /// Sampled from the GFlowNet, then moved by local search.
    #[serde(rename = "policy+local")]
    PolicyLocal,
    /// Made by local search around the best labelled candidates (mutations, crossovers and
    /// a short walk on the proxy's reward).
    #[serde(rename = "local")]
    Local,
    /// A best labelled candidate with some of its moves redrawn by the GFlowNet
    /// (conservative search).
    #[serde(rename = "elite+policy")]
    ElitePolicy,
    /// First seen in a label: a value no round proposed (an initial data set).
    #[serde(rename = "imported")]
    Imported,
}

/// What the proxy predicted for a candidate, in the oracle's units.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ProxyEstimate {
    /// Mean over the ensemble's members.
    pub mean: f64,
    /// Standard deviation over the members: the proxy's uncertainty.
    pub std: f64,
}

/// A round as `POST /rounds` returns it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Round {
    pub id: i64,
    pub campaign_id: i64,
    /// 1 for the campaign's first round, then one more for each.
    pub number: i64,
    /// The checkpoint the batch was drawn from; 0: the uniform policy.
    pub model_version: i64,
    /// The batch size asked for; `candidates` may be shorter when `exhausted`.
    pub batch_size: i64,
    /// Every unseen value of the space is in this batch and the batch is still short.
    pub exhausted: bool,
    #[schema(required)]
    pub key: Option<String>,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub candidates: Vec<ProposedCandidate>,
}
