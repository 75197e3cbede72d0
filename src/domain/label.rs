//! Labels: measurements of candidates posted by the lab's oracle.

use serde::Deserialize;
use serde_json::Value;

/// Largest number of labels in one request.
pub const MAX_LABELS: usize = 10_000;

/// The body of `POST /labels`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelsRequest {
    pub labels: Vec<LabelItem>,
}

/// One label as the client writes it: a candidate by id, or a campaign and a value; a
/// reward, or `failed` with an error.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelItem {
    #[serde(default)]
    pub candidate_id: Option<i64>,
    #[serde(default)]
    pub campaign_id: Option<i64>,
    #[serde(default)]
    pub value: Option<Value>,
    #[serde(default)]
    pub reward: Option<f64>,
    #[serde(default)]
    pub failed: bool,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub metadata: Option<Value>,
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
}

/// What `POST /labels` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct LabelsOutcome {
    pub accepted: usize,
    pub duplicates: usize,
}
