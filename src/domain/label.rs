//! Labels: measurements of candidates posted by the lab's oracle.

use serde_json::Value;

/// Largest number of labels in one request.
pub const MAX_LABELS: usize = 10_000;

/// Longest entity, in characters (after trimming).
pub const MAX_ENTITY_CHARS: usize = 256;

/// One label as the client wrote it, before it is checked: a candidate by id, or a
/// campaign and a value; a reward, or `failed` with an error.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelInput {
    pub candidate_id: Option<i64>,
    pub campaign_id: Option<i64>,
    pub value: Option<Value>,
    pub reward: Option<f64>,
    pub failed: bool,
    pub error: Option<String>,
    pub key: Option<String>,
    pub metadata: Option<Value>,
    pub entity: Option<String>,
}

/// Which candidate a validated label is for.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelTarget {
    Candidate(i64),
    /// A campaign and the canonical text of a value (imported when never proposed).
    Value {
        campaign_id: i64,
        value: String,
    },
}

/// A label that passed validation, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewLabel {
    pub target: LabelTarget,
    pub reward: Option<f64>,
    pub failed: bool,
    pub error: Option<String>,
    pub key: Option<String>,
    /// JSON text.
    pub metadata: Option<String>,
    /// Trimmed, 1..=256 characters.
    pub entity: Option<String>,
}

/// What storing a batch of labels did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelsOutcome {
    /// New observations stored, failed ones included, duplicates not.
    pub accepted: usize,
    /// Labels whose key was already stored with the same result: not stored again.
    pub duplicates: usize,
}
