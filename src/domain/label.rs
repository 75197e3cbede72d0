//! Labels: measurements of candidates posted by the lab's oracle.

use serde::Deserialize;
use serde_json::Value;

/// Largest number of labels in one request.
pub const MAX_LABELS: usize = 10_000;

/// Longest entity, in characters (after trimming).
pub const MAX_ENTITY_CHARS: usize = 256;

/// The body of `POST /labels`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LabelsRequest {
    /// 1..=10000 labels, stored all or nothing.
    #[serde(deserialize_with = "at_most_max_labels")]
    pub labels: Vec<LabelItem>,
}

/// The label list, refused at its `MAX_LABELS + 1`-th item: a body of millions of tiny items
/// is turned down while it is read, before it costs memory item by item.
fn at_most_max_labels<'de, D>(deserializer: D) -> Result<Vec<LabelItem>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct Bounded;
    impl<'de> serde::de::Visitor<'de> for Bounded {
        type Value = Vec<LabelItem>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "a list of at most {MAX_LABELS} labels")
        }

        fn visit_seq<A>(self, mut seq: A) -> Result<Self::Value, A::Error>
        where
            A: serde::de::SeqAccess<'de>,
        {
            let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX_LABELS));
            while let Some(item) = seq.next_element()? {
                if items.len() == MAX_LABELS {
                    return Err(serde::de::Error::custom(format!(
                        "labels: must hold 1 to {MAX_LABELS} labels"
                    )));
                }
                items.push(item);
            }
            Ok(items)
        }
    }
    deserializer.deserialize_seq(Bounded)
}

/// One label as the client writes it: a candidate by id, or a campaign and a value; a
/// reward, or `failed` with an error.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LabelItem {
    /// The candidate measured; or give `campaign_id` and `value` instead.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub candidate_id: Option<i64>,
    /// With `value`: the campaign of a value (imported when never proposed).
    #[serde(default)]
    #[schema(minimum = 1)]
    pub campaign_id: Option<i64>,
    /// With `campaign_id`: the value measured.
    #[serde(default)]
    #[schema(value_type = Option<super::CandidateValue>)]
    pub value: Option<Value>,
    /// The measurement, finite with |reward| <= 1e15; required unless `failed`.
    #[serde(default)]
    #[schema(minimum = -1e15, maximum = 1e15)]
    pub reward: Option<f64>,
    /// The assay failed: no reward; the candidate is never proposed again.
    #[serde(default)]
    pub failed: bool,
    /// Why the assay failed (only with `failed: true`), up to 4096 bytes.
    #[serde(default)]
    #[schema(max_length = 4096)]
    pub error: Option<String>,
    /// Idempotency key, 1..=200 bytes: the same key with the same result is a duplicate,
    /// with another result 409.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200)]
    pub key: Option<String>,
    /// Any JSON, up to 16 KiB serialised; stored with the label.
    #[serde(default)]
    pub metadata: Option<Value>,
    /// The oracle's canonical identity of what it measured (a canonical SMILES, a construct
    /// id), 1..=256 characters once trimmed. Candidates sharing an entity are replicates of
    /// one object; a candidate has at most one entity (another one is 409).
    #[serde(default)]
    pub entity: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_label_list_is_refused_at_its_first_item_too_many() {
        let body = |n: usize| format!("{{\"labels\": [{}]}}", vec!["{}"; n].join(","));
        let at_cap: LabelsRequest = serde_json::from_str(&body(MAX_LABELS)).expect("the cap");
        assert_eq!(at_cap.labels.len(), MAX_LABELS);
        let refused =
            serde_json::from_str::<LabelsRequest>(&body(MAX_LABELS + 1)).expect_err("one too many");
        assert!(
            refused.to_string().contains("labels: must hold"),
            "{refused}"
        );
        // Refused where the extra item is, not after reading the rest of the body.
        let huge = body(MAX_LABELS * 50);
        let refused = serde_json::from_str::<LabelsRequest>(&huge).expect_err("far too many");
        assert!(
            refused.column() < huge.len() / 40,
            "stopped at {}",
            refused.column()
        );
    }
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

/// What `POST /labels` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct LabelsOutcome {
    /// New observations stored, failed ones included, duplicates not.
    pub accepted: usize,
    /// Labels whose key was already stored with the same result: not stored again.
    pub duplicates: usize,
}
