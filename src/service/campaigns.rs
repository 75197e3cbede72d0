//! Campaigns: create one from its validated settings, list them, read one with its counts,
//! its best object and the state of its model.

use super::Service;
use crate::domain::campaign::{Campaign, NewCampaign};
use crate::error::Error;
use crate::store::training::ModelOverview;
use crate::store::{CandidateRow, PageQuery, Stats};

/// Validates the settings (every default filled in), refuses a campaign whose training step
/// or round of one candidate would need more memory than `--max-step-memory`, and stores
/// the campaign.
pub async fn create_campaign(service: &Service, new: NewCampaign) -> Result<Campaign, Error> {
    let round_block = new.round_block();
    let spec = new.validate()?;
    let space = spec.build_space()?;
    crate::proxy::campaign_cost(&spec, space.as_ref())
        .admit_campaign(service.config.max_step_memory_bytes, round_block)?;
    service.store.insert_campaign(&spec).await
}

/// A page of the campaigns, oldest first: `limit` of them after the first `offset`.
pub async fn campaigns(service: &Service, limit: i64, offset: i64) -> Result<Vec<Campaign>, Error> {
    service.store.campaigns(limit, offset).await
}

/// A campaign as `GET /campaigns/{id}` shows it.
#[derive(Debug, Clone)]
pub struct CampaignOverview {
    pub campaign: Campaign,
    pub stats: Stats,
    /// The labelled candidate with the best mean reward, with its entity.
    pub best: Option<(CandidateRow, Option<String>)>,
    pub model: ModelOverview,
}

/// One campaign with its counts, its best candidate and its model's state.
pub async fn campaign_overview(service: &Service, id: i64) -> Result<CampaignOverview, Error> {
    let store = &service.store;
    let campaign = store.campaign(id).await?;
    let stats = store.stats(id).await?;
    let maximize = campaign.spec.reward.maximize;
    let best = store
        .candidate_page(id, &PageQuery::best_labelled(maximize, 1))
        .await?
        .into_iter()
        .next();
    let best = match best {
        Some(c) => {
            let entity = store.candidate_entities(id, &[c.id]).await?.remove(&c.id);
            Some((c, entity))
        }
        None => None,
    };
    let model = store.model_overview(id).await?;
    Ok(CampaignOverview {
        campaign,
        stats,
        best,
        model,
    })
}
