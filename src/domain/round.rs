//! Rounds: a batch of new candidates proposed for measurement.

use super::campaign::validate_exploration;
use crate::error::Error;

/// Largest batch a round may ask for.
pub const MAX_BATCH_SIZE: usize = 10_000;

/// A request for a round, as the client asked for it (checked by [`NewRound::validate`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewRound {
    pub campaign_id: i64,
    /// Candidates wanted, 1..=10000.
    pub batch_size: i64,
    /// Idempotency key, 1..=200 bytes.
    pub key: Option<String>,
    /// Wait until the model was trained on every label accepted before the request.
    pub wait_for_model: bool,
    /// Sampling temperature for this round only; default: the campaign's.
    pub temperature: Option<f64>,
    /// Uniform mixing weight for this round only; default: the campaign's.
    pub epsilon: Option<f64>,
    /// Smallest distance between two candidates of the batch; default: none.
    pub min_distance: Option<f64>,
}

impl NewRound {
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
