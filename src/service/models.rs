//! A campaign's model as clients inspect it: the preview draws from the newest checkpoint
//! (or the uniform policy before any), stored nowhere.

use super::Service;
use crate::error::Error;
use crate::gfn::propose::canonical;
use crate::gfn::sampler::sample_uniform;
use crate::gfn::{Exploration, GfnError};
use rand::SeedableRng;

/// The checkpoint version rounds draw from now: the newest one that loads, an older one
/// when the newest cannot be loaded (damaged, say); `None` before any checkpoint, or when
/// none loads (rounds then fail until a training run writes one that does).
pub async fn serving_version(service: &Service, campaign_id: i64) -> Result<Option<i64>, Error> {
    let campaign = service.store.campaign(campaign_id).await?;
    let space = campaign.spec.build_space()?;
    match service.trainer.model(campaign_id, space).await {
        Ok(model) => Ok(model.map(|(version, _)| version)),
        Err(error) => {
            tracing::warn!(campaign_id, %error, "no checkpoint of the campaign loads");
            Ok(None)
        }
    }
}

/// Largest preview.
pub const MAX_PREVIEW: usize = 1000;

/// `n` values drawn with `seed` from the campaign's newest model, as canonical JSON text,
/// and the version drawn from (0: the uniform policy). The same checkpoint and seed give
/// the same values. The draw takes a sampling permit like a round, so previews cannot
/// crowd out rounds.
pub async fn sample_preview(
    service: &Service,
    campaign_id: i64,
    n: usize,
    seed: u64,
) -> Result<(i64, Vec<String>), Error> {
    if !(1..=MAX_PREVIEW).contains(&n) {
        return Err(Error::invalid("n", format!("must be in 1..={MAX_PREVIEW}")));
    }
    let campaign = service.store.campaign(campaign_id).await?;
    let space = campaign.spec.build_space()?;
    crate::proxy::campaign_cost(&campaign.spec, space.as_ref()).admit_preview(
        n,
        MAX_PREVIEW,
        service.config.max_step_memory_bytes,
    )?;
    let model = service.trainer.model(campaign_id, space.clone()).await?;
    let version = model.as_ref().map_or(0, |(v, _)| *v);
    let permit = service
        .sampling
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| Error::Unavailable("server is shutting down".into()))?;
    let values = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let trajectories = match model {
            Some((_, model)) => model
                .gfn
                .sample_forward(n, Exploration::default(), &mut rng)?,
            None => sample_uniform(space.as_ref(), n, &mut rng)?,
        };
        Ok::<_, GfnError>(
            trajectories
                .iter()
                .map(|t| canonical(space.as_ref(), t.terminal()))
                .collect::<Vec<String>>(),
        )
    })
    .await
    .map_err(|e| Error::Internal(format!("sampling task failed: {e}")))?
    .map_err(|e| Error::Internal(format!("sampling failed: {e}")))?;
    Ok((version, values))
}
