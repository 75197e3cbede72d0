//! `POST /labels`: measurements, all or nothing. Every item is validated before anything is
//! stored; the first bad one answers 400 (or 404 for an unknown id) with its index.

use super::error::{ApiError, ErrorCode};
use super::AppState;
use crate::domain::label::{self, LabelInput, MAX_LABELS};
use crate::error::Error;
use crate::service::labels::{self, LabelOrigin};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;

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

impl From<LabelItem> for LabelInput {
    fn from(item: LabelItem) -> Self {
        Self {
            candidate_id: item.candidate_id,
            campaign_id: item.campaign_id,
            value: item.value,
            reward: item.reward,
            failed: item.failed,
            error: item.error,
            key: item.key,
            metadata: item.metadata,
            entity: item.entity,
        }
    }
}

/// What `POST /labels` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LabelsOutcome {
    /// New observations stored, failed ones included, duplicates not.
    pub accepted: usize,
    /// Labels whose key was already stored with the same result: not stored again.
    pub duplicates: usize,
}

impl From<label::LabelsOutcome> for LabelsOutcome {
    fn from(outcome: label::LabelsOutcome) -> Self {
        Self {
            accepted: outcome.accepted,
            duplicates: outcome.duplicates,
        }
    }
}

/// `POST /labels` with a JSON body (`application/json`) or a CSV file (`text/csv`, columns
/// `candidate_id` or `campaign_id` + `value`, `reward`, `failed`, `error`, `key`, `entity`); with
/// either, the campaign of values may also be given once as `?campaign_id=`.
#[utoipa::path(
    post,
    path = "/labels",
    operation_id = "create_labels",
    tag = "labels",
    summary = "Store measurements, all or nothing",
    params(("campaign_id" = Option<i64>, Query, minimum = 1, description = "The campaign of the items (JSON) or rows (CSV) that give a `value` and no `campaign_id`.")),
    request_body(description = "A JSON batch, or a CSV file with a header of some of `candidate_id`, `campaign_id`, `value`, `reward`, `failed` (true/false/1/0/yes/no), `error`, `key`, `entity` (an empty cell: none); grid and set values as their JSON arrays. 1..=10000 labels either way.", content(
        (LabelsRequest = "application/json"),
        (String = "text/csv", example = json!("candidate_id,reward\n7,0.5\n8,1.25\n")),
    )),
    responses(
        (status = 200, description = "Stored", body = LabelsOutcome),
        (status = 400, description = "`malformed_json`, `invalid_body`, `invalid_value`, `invalid_item` (`details.index`, `details.field`; for CSV the field names the row, the header being row 1) or `bad_request`; nothing stored", body = super::error::ErrorBody),
        (status = 404, description = "`not_found`: an unknown candidate or campaign, `details.index` names the item; nothing stored", body = super::error::ErrorBody),
        (status = 409, description = "`conflict`: a label key already stored with another result, or an entity other than the one the candidate already has; nothing stored", body = super::error::ErrorBody),
        (status = 413, description = "`payload_too_large`", body = super::error::ErrorBody),
        (status = 415, description = "`unsupported_media_type`: neither JSON nor CSV", body = super::error::ErrorBody),
        (status = 500, description = "`internal`", body = super::error::ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn create(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<LabelsOutcome>, ApiError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge("request body is over the size limit".into())
        } else {
            ApiError::BadRequest {
                code: ErrorCode::BadRequest,
                message: e.body_text(),
                details: Value::Null,
            }
        }
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let default_campaign = default_campaign(&query)?;
    let (items, origin) = if content_type.starts_with("application/json") {
        let request: LabelsRequest = serde_json::from_slice(&body).map_err(json_error)?;
        (request.labels, LabelOrigin::Json)
    } else if content_type.starts_with("text/csv") {
        (parse_csv(&body)?, LabelOrigin::Csv)
    } else {
        return Err(ApiError::UnsupportedMediaType(
            "expected Content-Type: application/json or text/csv".into(),
        ));
    };
    let items = items.into_iter().map(LabelInput::from).collect();
    let outcome = labels::record_labels(&state, items, origin, default_campaign).await?;
    Ok(Json(outcome.into()))
}

/// The same split as the JSON extractor: syntax errors are `malformed_json`, the rest
/// (types, unknown or missing fields) `invalid_body`.
fn json_error(e: serde_json::Error) -> ApiError {
    let code = match e.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            ErrorCode::MalformedJson
        }
        _ => ErrorCode::InvalidBody,
    };
    ApiError::BadRequest {
        code,
        message: e.to_string(),
        details: Value::Null,
    }
}

/// `?campaign_id=`, the campaign of items that give a `value` and none; any other query
/// parameter is refused.
fn default_campaign(query: &HashMap<String, String>) -> Result<Option<i64>, ApiError> {
    let mut default_campaign = None;
    for (name, value) in query {
        match name.as_str() {
            "campaign_id" => {
                default_campaign = Some(value.parse::<i64>().map_err(|_| {
                    ApiError::from(Error::invalid("campaign_id", "must be an integer"))
                })?)
            }
            other => {
                return Err(Error::invalid(other.to_string(), "unknown query parameter").into())
            }
        }
    }
    Ok(default_campaign)
}

/// Reads CSV rows into label items. Row numbers count the header as row 1.
fn parse_csv(body: &[u8]) -> Result<Vec<LabelItem>, ApiError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(body);
    let headers = reader
        .headers()
        .map_err(|e| ApiError::from(Error::invalid("csv", format!("unreadable header: {e}"))))?
        .clone();
    if let Some(unknown) = headers.iter().find(|h| !CSV_COLUMNS.contains(h)) {
        return Err(Error::invalid(
            "csv",
            format!("unknown column {unknown:?}; expected some of {CSV_COLUMNS:?}"),
        )
        .into());
    }
    let mut items = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let row = i + 2;
        // Counted while read, like the JSON list: a file of millions of short rows is
        // refused at the first row too many.
        if i == MAX_LABELS {
            return Err(Error::invalid(
                "labels",
                format!("must hold 1 to {MAX_LABELS} labels; row {row} is one too many"),
            )
            .into());
        }
        let record = record.map_err(|e| bad_cell(row, "*", e.to_string()))?;
        let row = CsvRow {
            headers: &headers,
            record: &record,
            row,
        };
        items.push(row.item()?);
    }
    Ok(items)
}

/// The columns a CSV upload may have.
const CSV_COLUMNS: [&str; 8] = [
    "candidate_id",
    "campaign_id",
    "value",
    "reward",
    "failed",
    "error",
    "key",
    "entity",
];

/// The error of one cell of a CSV upload; rows count from the header, row 1.
fn bad_cell(row: usize, column: &str, reason: String) -> ApiError {
    ApiError::from(Error::InvalidItem {
        index: row.saturating_sub(2),
        field: format!("row {row}, column {column}"),
        reason,
    })
}

/// One data row of a CSV upload, with the header that names its cells.
struct CsvRow<'a> {
    headers: &'a csv::StringRecord,
    record: &'a csv::StringRecord,
    /// Its number in the file (the header is row 1).
    row: usize,
}

impl CsvRow<'_> {
    /// The label item of the row. A value's campaign may come from `?campaign_id=` later.
    fn item(&self) -> Result<LabelItem, ApiError> {
        let value = self.cell("value").map(|v| {
            // Grids and sets are written as their JSON arrays; sequences as bare strings.
            if v.starts_with('[') {
                serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.to_string()))
            } else {
                serde_json::Value::String(v.to_string())
            }
        });
        Ok(LabelItem {
            candidate_id: self.integer("candidate_id")?,
            campaign_id: self.integer("campaign_id")?,
            value,
            reward: self.number("reward")?,
            failed: self.flag("failed")?,
            error: self.cell("error").map(str::to_string),
            key: self.cell("key").map(str::to_string),
            metadata: None,
            entity: self.cell("entity").map(str::to_string),
        })
    }

    /// The cell of column `name`, without the formula escape the candidate export adds;
    /// `None` when the column is missing or the cell empty.
    fn cell(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .position(|h| h == name)
            .and_then(|c| self.record.get(c))
            .map(super::spreadsheet::unescape)
            .filter(|v| !v.is_empty())
    }

    fn integer(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.cell(name)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| bad_cell(self.row, name, format!("{v:?} is not an integer")))
            })
            .transpose()
    }

    fn number(&self, name: &str) -> Result<Option<f64>, ApiError> {
        self.cell(name)
            .map(|v| {
                v.parse::<f64>()
                    .map_err(|_| bad_cell(self.row, name, format!("{v:?} is not a number")))
            })
            .transpose()
    }

    /// `true`, `1` or `yes`; `false`, `0`, `no` or empty (any case).
    fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.cell(name).map(str::to_ascii_lowercase).as_deref() {
            None | Some("false" | "0" | "no") => Ok(false),
            Some("true" | "1" | "yes") => Ok(true),
            Some(other) => Err(bad_cell(
                self.row,
                name,
                format!("{other:?} is not true or false"),
            )),
        }
    }
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
