//! Candidate pages: per candidate, or per object (candidates sharing an entity), with the
//! entity each candidate's labels named.

use super::Service;
use crate::error::Error;
use crate::store::{CandidateRow, CandidateStatus};
use std::collections::HashMap;

/// What a page holds; validated by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CandidateQuery {
    pub status: Option<CandidateStatus>,
    /// Best mean reward first (per the campaign's direction) instead of oldest first.
    pub by_reward: bool,
    pub limit: i64,
    pub offset: i64,
    /// One row per object instead of per candidate.
    pub distinct_entity: bool,
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

/// A page of a campaign's candidates.
pub async fn page(
    service: &Service,
    campaign_id: i64,
    query: &CandidateQuery,
) -> Result<Vec<ListedRow>, Error> {
    let campaign = service.store.campaign(campaign_id).await?;
    let maximize = campaign.spec.reward.maximize;
    let CandidateQuery {
        status,
        by_reward,
        limit,
        offset,
        distinct_entity,
    } = *query;
    if distinct_entity {
        let objects = service
            .store
            .list_objects(campaign_id, status, by_reward, maximize, limit, offset)
            .await?;
        return Ok(objects
            .into_iter()
            .map(|o| ListedRow {
                candidate: o.candidate,
                entity: o.entity,
                replicates: Some(o.replicates),
            })
            .collect());
    }
    let rows = service
        .store
        .list_candidates(campaign_id, status, by_reward, maximize, limit, offset)
        .await?;
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
