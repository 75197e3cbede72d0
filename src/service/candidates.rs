//! Candidate pages: per candidate, or per object (candidates sharing an entity), with the
//! entity each candidate's labels named.

use super::Service;
use crate::error::Error;
use crate::store::{CandidateRow, CandidateStatus, PageOrder, PagePosition, PageQuery, PageStart};
use std::collections::HashMap;

/// The order a listing asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListingOrder {
    /// Oldest first.
    Created,
    /// Best mean reward first, in the campaign's direction; unmeasured candidates last.
    BestFirst,
}

/// What a page holds; validated by the caller, except that a cursor must belong to the
/// page's order, status and grouping, which [`page`] checks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CandidateQuery {
    pub status: Option<CandidateStatus>,
    pub order: ListingOrder,
    pub limit: i64,
    pub offset: i64,
    /// One row per object instead of per candidate.
    pub distinct_entity: bool,
    /// Start just after the row this cursor names instead of at `offset`.
    pub after: Option<Cursor>,
}

/// A page's rows and the cursor of the page that follows.
#[derive(Debug, Clone)]
pub struct Page {
    pub rows: Vec<ListedRow>,
    /// The position of the page's last row, when rows follow it.
    pub next: Option<Cursor>,
}

/// The position of a page's last row, with the order, status and grouping of the page, so
/// that it cannot continue a different listing. As text (the `after` query parameter):
/// `ORDER.ROWS.STATUS.POSITION`, dot-separated so that it needs no escaping in a URL:
/// `ORDER` `c` (created) or `r` (reward), `ROWS` `c` (candidates) or `e` (objects),
/// `STATUS` `any` or a status, and `POSITION` the row's id, preceded in an order by reward
/// by its mean reward as the 16 hex digits of its IEEE 754 bits (exact, unlike a decimal
/// text) or `null` when unmeasured: `r.c.any.3fe8000000000000.42`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cursor {
    pub order: ListingOrder,
    pub distinct_entity: bool,
    pub status: Option<CandidateStatus>,
    pub position: PagePosition,
}

impl Cursor {
    /// The text form; [`Cursor::parse`] reads it back.
    pub fn encode(&self) -> String {
        let order = match self.order {
            ListingOrder::Created => "c",
            ListingOrder::BestFirst => "r",
        };
        let rows = if self.distinct_entity { "e" } else { "c" };
        let status = self.status.map_or("any", CandidateStatus::as_str);
        let id = self.position.id;
        match (self.order, self.position.mean_reward) {
            (ListingOrder::Created, _) => format!("{order}.{rows}.{status}.{id}"),
            (ListingOrder::BestFirst, None) => format!("{order}.{rows}.{status}.null.{id}"),
            (ListingOrder::BestFirst, Some(mean)) => {
                format!("{order}.{rows}.{status}.{:016x}.{id}", mean.to_bits())
            }
        }
    }

    /// Reads [`Cursor::encode`]'s text; anything else is `invalid_value` naming `after`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let malformed = || Error::invalid("after", "must be the `next` of an earlier page");
        let parts: Vec<&str> = text.split('.').collect();
        let (order, mean, rows, status, id) = match parts.as_slice() {
            ["c", rows, status, id] => (ListingOrder::Created, None, *rows, *status, *id),
            ["r", rows, status, "null", id] => (ListingOrder::BestFirst, None, *rows, *status, *id),
            ["r", rows, status, bits, id] => {
                let mean = parse_mean(bits).ok_or_else(malformed)?;
                (ListingOrder::BestFirst, Some(mean), *rows, *status, *id)
            }
            _ => return Err(malformed()),
        };
        let distinct_entity = match rows {
            "c" => false,
            "e" => true,
            _ => return Err(malformed()),
        };
        let status = match status {
            "any" => None,
            "pending" => Some(CandidateStatus::Pending),
            "labelled" => Some(CandidateStatus::Labelled),
            "failed" => Some(CandidateStatus::Failed),
            "abandoned" => Some(CandidateStatus::Abandoned),
            _ => return Err(malformed()),
        };
        // Digits only: `str::parse` would also take a sign.
        let id = (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
            .then(|| id.parse::<i64>().ok())
            .flatten()
            .ok_or_else(malformed)?;
        Ok(Self {
            order,
            distinct_entity,
            status,
            position: PagePosition {
                mean_reward: mean,
                id,
            },
        })
    }

    /// Whether the cursor was made by a page of this query's listing.
    fn belongs_to(&self, query: &CandidateQuery) -> bool {
        self.order == query.order
            && self.distinct_entity == query.distinct_entity
            && self.status == query.status
    }
}

/// A mean reward from the 16 hex digits of its bits; not a NaN, which no order can place.
fn parse_mean(bits: &str) -> Option<f64> {
    if bits.len() != 16 || !bits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mean = f64::from_bits(u64::from_str_radix(bits, 16).ok()?);
    (!mean.is_nan()).then_some(mean)
}

/// One row of a page.
#[derive(Debug, Clone)]
pub struct ListedRow {
    /// The candidate; with `distinct_entity`, the object's best candidate carrying the
    /// object's aggregates.
    pub candidate: CandidateRow,
    pub entity: Option<String>,
    /// With `distinct_entity` only: the object's number of candidates.
    pub replicates: Option<i64>,
}

/// A page of a campaign's candidates, and the cursor of the next one. One row more than
/// the page is read, so that the last page says it is the last.
pub async fn page(
    service: &Service,
    campaign_id: i64,
    query: &CandidateQuery,
) -> Result<Page, Error> {
    let start = match query.after {
        None => PageStart::Offset(query.offset),
        Some(_) if query.offset != 0 => {
            return Err(Error::invalid("after", "cannot be combined with an offset"))
        }
        Some(cursor) if !cursor.belongs_to(query) => {
            return Err(Error::invalid(
                "after",
                "was made for another order, status or distinct",
            ))
        }
        Some(cursor) => PageStart::After(cursor.position),
    };
    let mut rows = rows(service, campaign_id, query, start).await?;
    let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
    let more = rows.len() > limit;
    rows.truncate(limit);
    let by_reward = query.order == ListingOrder::BestFirst;
    let next = rows.last().filter(|_| more).map(|row| Cursor {
        order: query.order,
        distinct_entity: query.distinct_entity,
        status: query.status,
        position: PagePosition {
            mean_reward: row.candidate.mean_reward.filter(|_| by_reward),
            id: row.candidate.id,
        },
    });
    Ok(Page { rows, next })
}

/// Up to `limit + 1` rows of the page from `start`.
async fn rows(
    service: &Service,
    campaign_id: i64,
    query: &CandidateQuery,
    start: PageStart,
) -> Result<Vec<ListedRow>, Error> {
    let campaign = service.store.campaign(campaign_id).await?;
    let page = PageQuery {
        status: query.status,
        order: match query.order {
            ListingOrder::Created => PageOrder::Created,
            ListingOrder::BestFirst => PageOrder::best_first(campaign.spec.reward.maximize),
        },
        limit: query.limit.saturating_add(1),
        start,
    };
    if query.distinct_entity {
        let objects = service.store.list_objects(campaign_id, &page).await?;
        return Ok(objects
            .into_iter()
            .map(|o| ListedRow {
                candidate: o.candidate,
                entity: o.entity,
                replicates: Some(o.replicates),
            })
            .collect());
    }
    let rows = service.store.candidate_page(campaign_id, &page).await?;
    let ids: Vec<i64> = rows.iter().map(|c| c.id).collect();
    let mut entities: HashMap<i64, String> =
        service.store.candidate_entities(campaign_id, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|candidate| ListedRow {
            entity: entities.remove(&candidate.id),
            candidate,
            replicates: None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor(order: ListingOrder, mean_reward: Option<f64>) -> Cursor {
        Cursor {
            order,
            distinct_entity: false,
            status: None,
            position: PagePosition {
                mean_reward,
                id: 42,
            },
        }
    }

    #[test]
    fn cursors_read_back_exactly_what_they_wrote() {
        let means = [
            0.1,
            -0.0,
            -2.5e-300,
            1.0 / 3.0,
            f64::INFINITY,
            f64::MIN_POSITIVE,
        ];
        let mut cursors: Vec<Cursor> = means
            .iter()
            .map(|&m| cursor(ListingOrder::BestFirst, Some(m)))
            .collect();
        cursors.push(cursor(ListingOrder::BestFirst, None));
        cursors.push(cursor(ListingOrder::Created, None));
        for status in [
            None,
            Some(CandidateStatus::Pending),
            Some(CandidateStatus::Abandoned),
        ] {
            cursors.push(Cursor {
                distinct_entity: true,
                status,
                ..cursor(ListingOrder::Created, None)
            });
        }
        for original in cursors {
            let text = original.encode();
            assert!(
                text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.'),
                "{text} needs no escaping"
            );
            let parsed = Cursor::parse(&text).expect("parses");
            assert_eq!(parsed.encode(), text);
            assert_eq!(
                parsed.position.mean_reward.map(f64::to_bits),
                original.position.mean_reward.map(f64::to_bits),
                "{text}: the very bits"
            );
            assert_eq!(parsed, original, "{text}");
        }
        assert_eq!(cursor(ListingOrder::Created, None).encode(), "c.c.any.42");
        assert_eq!(
            cursor(ListingOrder::BestFirst, Some(0.75)).encode(),
            "r.c.any.3fe8000000000000.42"
        );
    }

    #[test]
    fn anything_else_is_refused_naming_after() {
        for text in [
            "",
            "c",
            "c.c.any",
            "c.c.any.",
            "c.c.any.-1",
            "c.c.any.+1",
            "c.c.any.1.2",
            "c.c.any.99999999999999999999",
            "x.c.any.1",
            "c.x.any.1",
            "c.c.done.1",
            "c.c.Any.1",
            "r.c.any.1",
            "r.c.any.3fe8.1",
            "r.c.any.+fe8000000000000.1",
            "r.c.any.7ff8000000000000.1",
            "r.c.any.3fe8000000000000.x",
            "r.c.any.none.1",
        ] {
            match Cursor::parse(text) {
                Err(Error::Invalid { field, .. }) => assert_eq!(field, "after", "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
