//! `GET /campaigns/{id}/candidates`: a page of candidates with their mean reward and number
//! of observations, as JSON or as CSV for spreadsheets.

use super::campaigns::parse_id;
use super::error::ApiError;
use super::extract::PathText;
use super::AppState;
use crate::error::Error;
use crate::service::candidates::{self, CandidateQuery, Cursor, ListedRow, ListingOrder};
use crate::service::rounds::parse_stored;
use crate::store::CandidateStatus as StatusFilter;
use axum::extract::{Query, State};
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use std::collections::HashMap;

/// Largest page.
pub const MAX_LIMIT: i64 = 100_000;

/// The header that carries a page's `next` cursor, for CSV answers, which have no place
/// for it in their body (JSON answers carry it too).
pub const NEXT_CURSOR: HeaderName = HeaderName::from_static("x-next-cursor");

/// Where a candidate stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CandidateStatus {
    /// Proposed, not measured yet.
    Pending,
    /// Has at least one successful observation.
    Labelled,
    /// Has only failed observations.
    Failed,
    /// Its round was abandoned before it was measured.
    Abandoned,
}

impl CandidateStatus {
    /// The status as the store keeps it, in text.
    pub(crate) fn stored(text: &str) -> Self {
        super::stored_status(text, Self::Pending)
    }
}

/// The order of a candidate page.
#[derive(Debug, utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum CandidateOrder {
    /// Oldest first.
    Created,
    /// Best mean reward first (per the campaign's `maximize`), unlabelled ones last.
    Reward,
}

/// The format of a candidate page.
#[derive(Debug, Clone, Copy, utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum PageFormat {
    Json,
    /// `text/csv` with columns `id, value, round, status, mean_reward, observations, source,
    /// entity`.
    Csv,
}

/// The query of `GET /campaigns/{id}/candidates` (documentation of what `list` parses by
/// hand; any other parameter is 400 `invalid_value`).
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CandidatesQuery {
    /// Only candidates with this status; default: all.
    #[param(inline)]
    pub status: Option<CandidateStatus>,
    /// Default `created`.
    #[param(inline)]
    pub order: Option<CandidateOrder>,
    /// Page size.
    #[param(minimum = 0, maximum = 100000, default = 100)]
    pub limit: Option<i64>,
    /// Candidates to skip.
    #[param(minimum = 0, default = 0)]
    pub offset: Option<i64>,
    /// The `next` of an earlier page (or its `x-next-cursor` header): this page starts just
    /// after that page's last row and costs what a first page does, however deep it is.
    /// Only with the `order`, `status` and `distinct` of the page that gave it and no
    /// `offset` above 0. Opaque text of letters, digits and dots.
    #[param(pattern = r"^[cr]\.[ce]\.[a-z]+\.([0-9a-f]{16}\.|null\.)?[0-9]+$")]
    pub after: Option<String>,
    /// Default `json`.
    #[param(inline)]
    pub format: Option<PageFormat>,
    /// `entity`: one row per object instead of per candidate. Candidates sharing an entity
    /// are one object, a candidate without one is its own; the row is the object's best
    /// candidate with the object's `mean_reward`, `observations`, `successes` and `failures`
    /// and its number of candidates, `replicates`. Default: one row per candidate.
    #[param(inline)]
    pub distinct: Option<Distinct>,
}

/// How candidates are grouped into rows.
#[derive(Debug, utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum Distinct {
    /// One row per object: candidates sharing an entity are one object, a candidate without
    /// one is its own. The row is the object's best candidate (best mean reward, then the
    /// oldest) with the object's `mean_reward`, `observations`, `successes` and `failures`
    /// over all its candidates, and `replicates`, its number of candidates; `status`
    /// filters on that candidate's status, `order=reward` orders by the object's mean.
    Entity,
}

/// A page of candidates as JSON.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CandidatePage {
    pub candidates: Vec<ListedCandidate>,
    pub limit: i64,
    pub offset: i64,
    /// The `after` of the page that follows: null when no row follows this page (or the
    /// page has no rows, with `limit=0`).
    #[schema(required)]
    pub next: Option<String>,
}

/// A candidate with its aggregates.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ListedCandidate {
    pub id: i64,
    #[schema(value_type = super::CandidateValue)]
    pub value: serde_json::Value,
    /// Number of the round that proposed it; null for an imported value.
    #[schema(required)]
    pub round: Option<i64>,
    pub status: CandidateStatus,
    /// Mean of its successful observations; null before any.
    #[schema(required)]
    pub mean_reward: Option<f64>,
    /// `successes + failures`.
    pub observations: i64,
    pub successes: i64,
    pub failures: i64,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// How the candidate was made (`imported` for a value first seen in a label); null when
    /// proposed before sources were recorded.
    #[schema(value_type = Option<super::rounds::CandidateSource>, required)]
    pub source: Option<String>,
    /// The oracle's identity of the object it is, from its labels; null when none named
    /// one.
    #[schema(required)]
    pub entity: Option<String>,
    /// With `distinct=entity` only: the number of candidates of the object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicates: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/campaigns/{id}/candidates",
    operation_id = "list_candidates",
    tag = "candidates",
    summary = "A page of a campaign's candidates, as JSON or CSV",
    params(("id" = i64, Path, minimum = 1, description = "Campaign id"), CandidatesQuery),
    responses(
        (status = 200, description = "The page", headers(
            ("x-next-cursor" = String, description = "The page's `next`, for CSV answers; absent where `next` is null"),
        ), content(
            (CandidatePage = "application/json"),
            (String = "text/csv", example = json!("id,value,round,status,mean_reward,observations,source,entity\n7,ACGT,1,labelled,0.5,2,policy,\n")),
        )),
        (status = 400, description = "`invalid_value`: a bad or unknown query parameter", body = super::error::ErrorBody),
        (status = 404, description = "`not_found`: unknown campaign", body = super::error::ErrorBody),
        (status = 500, description = "`internal`", body = super::error::ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<AppState>,
    PathText(id): PathText,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, "campaign")?;
    let (query, format) = parse_query(&params)?;
    let page = candidates::page(&state, id, &query).await?;
    let next = page.next.map(|cursor| cursor.encode());
    // The cursor's text is dots, letters and digits: always a valid header value.
    let next_header = next
        .as_deref()
        .and_then(|n| HeaderValue::from_str(n).ok())
        .map(|value| [(NEXT_CURSOR, value)]);
    let body = match format {
        PageFormat::Csv => {
            let body = to_csv(&page.rows).map_err(|e| ApiError::Internal(e.to_string()))?;
            ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response()
        }
        PageFormat::Json => Json(CandidatePage {
            candidates: page.rows.into_iter().map(ListedCandidate::from).collect(),
            limit: query.limit,
            offset: query.offset,
            next,
        })
        .into_response(),
    };
    Ok((next_header, body).into_response())
}

/// The page's query and format from the query string; an unknown parameter or a bad value
/// is an error naming it.
fn parse_query(params: &HashMap<String, String>) -> Result<(CandidateQuery, PageFormat), Error> {
    super::extract::only_params(
        params,
        &[
            "status", "order", "limit", "offset", "format", "distinct", "after",
        ],
    )?;
    let status = match params.get("status").map(String::as_str) {
        None => None,
        Some("pending") => Some(StatusFilter::Pending),
        Some("labelled") => Some(StatusFilter::Labelled),
        Some("failed") => Some(StatusFilter::Failed),
        Some("abandoned") => Some(StatusFilter::Abandoned),
        Some(_) => {
            return Err(Error::invalid(
                "status",
                "must be pending, labelled, failed or abandoned",
            ))
        }
    };
    let order = match params.get("order").map(String::as_str) {
        None | Some("created") => ListingOrder::Created,
        Some("reward") => ListingOrder::BestFirst,
        Some(_) => return Err(Error::invalid("order", "must be reward or created")),
    };
    let format = match params.get("format").map(String::as_str) {
        None | Some("json") => PageFormat::Json,
        Some("csv") => PageFormat::Csv,
        Some(_) => return Err(Error::invalid("format", "must be json or csv")),
    };
    let distinct_entity = match params.get("distinct").map(String::as_str) {
        None => false,
        Some("entity") => true,
        Some(_) => return Err(Error::invalid("distinct", "must be entity")),
    };
    let query = CandidateQuery {
        status,
        order,
        limit: super::extract::integer_param(params, "limit", 100, MAX_LIMIT)?,
        offset: super::extract::integer_param(params, "offset", 0, i64::MAX)?,
        distinct_entity,
        after: params.get("after").map(|a| Cursor::parse(a)).transpose()?,
    };
    Ok((query, format))
}

impl From<ListedRow> for ListedCandidate {
    fn from(row: ListedRow) -> Self {
        let c = row.candidate;
        Self {
            id: c.id,
            value: parse_stored(&c.value),
            round: c.round_number,
            status: CandidateStatus::stored(&c.status),
            mean_reward: c.mean_reward,
            observations: c.n_success + c.n_failed,
            successes: c.n_success,
            failures: c.n_failed,
            created_at: c.created_at,
            source: c.source,
            entity: row.entity,
            replicates: row.replicates,
        }
    }
}

/// `id,value,round,status,mean_reward,observations,source,entity`; the value is its JSON text
/// for grids and sets, the bare string for sequences; a value or entity a spreadsheet would
/// take for a formula is written behind an apostrophe ([`super::spreadsheet`]). The newer columns come last so that
/// readers of the older six by position still find theirs; `source` is empty when unknown,
/// `entity` when there is none.
fn to_csv(rows: &[ListedRow]) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "id",
        "value",
        "round",
        "status",
        "mean_reward",
        "observations",
        "source",
        "entity",
    ])?;
    for row in rows {
        let c = &row.candidate;
        let value = match parse_stored(&c.value) {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        };
        w.write_record([
            c.id.to_string(),
            super::spreadsheet::escape(&value).into_owned(),
            c.round_number.map(|r| r.to_string()).unwrap_or_default(),
            c.status.clone(),
            c.mean_reward.map(|r| r.to_string()).unwrap_or_default(),
            (c.n_success + c.n_failed).to_string(),
            c.source.clone().unwrap_or_default(),
            super::spreadsheet::escape(row.entity.as_deref().unwrap_or_default()).into_owned(),
        ])?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| csv::Error::from(e.into_error()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stored_status_reads_as_the_status_of_the_same_name() {
        for stored in [
            StatusFilter::Pending,
            StatusFilter::Labelled,
            StatusFilter::Failed,
            StatusFilter::Abandoned,
        ] {
            let status = CandidateStatus::stored(stored.as_str());
            assert_eq!(
                serde_json::to_value(status).ok(),
                Some(serde_json::Value::from(stored.as_str()))
            );
        }
    }
}
