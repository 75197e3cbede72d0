//! Rounds: propose a batch (the seen-set check, drawing on a blocking thread, redraws when
//! concurrent rounds took values first, one commit), read a round with its measurements,
//! abandon one.

use super::seen::{CampaignValues, DrawingPlace};
use super::{Service, Written};
use crate::domain::campaign::{RewardSpec, RoundSpec, Selection, TrainingSpec};
use crate::domain::round::NewRound;
use crate::error::Error;
use crate::gfn::propose::{
    canonical, propose, BatchRule, ProposalRequest, Scorer, Screening, SeenValues,
};
use crate::gfn::State as SpaceState;
use crate::gfn::{Exploration, GfnError, Source, Space};
use crate::model::Model;
use crate::store::{
    CandidateRow, LabelRow, OnTaken, ProposedValue, RoundDraft, RoundInsert, RoundRow,
};
use rand::SeedableRng;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OwnedRwLockReadGuard;

/// How many times a round tries to commit its batch: between tries it draws again for the
/// values that concurrent rounds of the same campaign took first; the last try commits a
/// short batch.
const DRAW_ATTEMPTS: u64 = 16;

/// Redraws so far in this process: with the process id, the salt that gives each its own
/// stream, also apart from other replicas'. (A round's first draw is reproducible from the
/// campaign's seed and size; a redraw only happens when rounds race, which no seed can make
/// repeatable.)
static REDRAWS: AtomicU64 = AtomicU64::new(1);

/// Proposes a batch: the round that already holds `request.key` if there is one, else a new
/// round drawn from the campaign's newest model (after waiting for it when asked).
pub async fn create_round(
    service: &Service,
    request: NewRound,
) -> Result<Written<RoundWithCandidates>, Error> {
    request.validate()?;
    let campaign = service.store.campaign(request.campaign_id).await?;
    if let Some(key) = &request.key {
        if let Some(id) = service.store.round_id_by_key(campaign.id, key).await? {
            return Ok(Written::Existing(round(service, id).await?));
        }
    }
    let space = campaign.spec.build_space()?;
    refuse_impossible_distance(&request, space.as_ref())?;
    // Refused before any wait or work: a batch whose draw would need more memory than
    // `--max-step-memory` even with a pool of one. A large batch screens a smaller pool.
    let pool = crate::proxy::campaign_cost(&campaign.spec, space.as_ref()).admit_round(
        request.batch_size as usize,
        service.config.max_step_memory_bytes,
    )?;
    if request.wait_for_model {
        // Failed observations count: a model trained before a batch that failed entirely
        // would propose the same failures again.
        let needed = service.store.observation_count(campaign.id).await?;
        let timeout = Duration::from_secs_f64(service.config.wait_timeout_seconds);
        service
            .trainer
            .wait_for_model(campaign.id, needed, timeout)
            .await?;
    }
    let model = service.trainer.model(campaign.id, space.clone()).await?;
    let training = campaign.spec.training;
    let sampler = Sampler {
        space: space.clone(),
        model: model.as_ref().map(|(_, m)| m.clone()),
        reward: campaign.spec.reward,
        training,
        round: RoundSpec {
            pool,
            ..campaign.spec.round
        },
        explore: Exploration {
            temperature: request.temperature.unwrap_or(training.temperature) as f32,
            epsilon: request.epsilon.unwrap_or(training.epsilon) as f32,
        },
        min_distance: request.min_distance,
    };
    let version = model.as_ref().map_or(0, |(v, _)| *v);
    let id = match commit_round(service, &sampler, &request, version).await? {
        Written::Existing(id) => return Ok(Written::Existing(round(service, id).await?)),
        Written::Created(id) => id,
    };
    if pool < campaign.spec.round.pool {
        service.metrics.round_pool_shrunk();
        tracing::info!(
            round = id,
            pool,
            campaign_pool = campaign.spec.round.pool,
            "the round's pool was cut below round.pool to fit --max-step-memory"
        );
    }
    let created = round(service, id).await?;
    count_proposals(service, &created);
    Ok(Written::Created(created))
}

/// Draws the batch and commits it as one round, in one transaction: when rounds drawing at
/// the same moment took some of the values first, nothing is written, the values still free
/// are kept and the shortfall is drawn again, at most [`DRAW_ATTEMPTS`] times; the last try
/// commits what is free (a short batch). So a round is never stored in parts: a client that
/// goes away, an error or a shutdown before the commit leaves nothing behind.
async fn commit_round(
    service: &Service,
    sampler: &Sampler,
    request: &NewRound,
    version: i64,
) -> Result<Written<i64>, Error> {
    let (campaign_id, n) = (request.campaign_id, request.batch_size as usize);
    // Rounds of the campaign drawing beside this one draw other batches; alone, the salt is 0.
    let place = service.seen.drawing(campaign_id);
    let (mut values, mut exhausted) = sampler
        .draw(service, campaign_id, n, &[], &place, place.place)
        .await?;
    place.claim(values.iter().map(|v| v.value.clone()).collect());
    for attempt in 1..=DRAW_ATTEMPTS {
        let on_taken = if attempt == DRAW_ATTEMPTS {
            OnTaken::CommitShort
        } else {
            OnTaken::RollBack
        };
        let draft = RoundDraft {
            campaign_id,
            key: request.key.as_deref(),
            model_version: version,
            batch_size: request.batch_size,
            exhausted,
            values: &values,
            on_taken,
        };
        match service.store.insert_round(&draft).await? {
            RoundInsert::Created(id) => return Ok(Written::Created(id)),
            RoundInsert::Existing(id) => return Ok(Written::Existing(id)),
            RoundInsert::Taken => {}
        }
        service.metrics.round_redrawn();
        // Caught up with the rounds that committed first: keep what they left free.
        let seen = service.seen.current(&service.store, campaign_id).await?;
        values.retain(|v| !seen.contains(&v.value));
        drop(seen);
        // Rounds that drew the same batch at the same moment must not draw the same
        // redraw too: each redraw of this process gets its own stream.
        let redraw = REDRAWS.fetch_add(1, Ordering::Relaxed);
        let salt = attempt
            ^ redraw.wrapping_mul(0x2545_F491_4F6C_DD1D)
            ^ u64::from(std::process::id()).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let (more, now_exhausted) = sampler
            .draw(
                service,
                campaign_id,
                n - values.len(),
                &values,
                &place,
                salt,
            )
            .await?;
        exhausted = now_exhausted;
        values.extend(more);
        place.claim(values.iter().map(|v| v.value.clone()).collect());
    }
    // The last try commits a short batch rather than answering `Taken`.
    Err(Error::Internal(
        "a round found its values taken on every try".into(),
    ))
}

/// Beyond the space's largest distance no two candidates fit: refused before any work,
/// rather than searching in vain.
fn refuse_impossible_distance(request: &NewRound, space: &dyn Space) -> Result<(), Error> {
    match request.min_distance {
        Some(d) if request.batch_size > 1 && d > space.diameter() => Err(Error::invalid(
            "min_distance",
            format!(
                "{d} is larger than the largest distance between two candidates of this space ({}), so no batch of {} fits",
                space.diameter(),
                request.batch_size
            ),
        )),
        _ => Ok(()),
    }
}

/// The round's size and its candidates' sources in `/metrics`.
fn count_proposals(service: &Service, round: &RoundWithCandidates) {
    service.metrics.round_created(round.candidates.len());
    let mut by_source: BTreeMap<Source, usize> = BTreeMap::new();
    for candidate in &round.candidates {
        if let Some(source) = candidate.source.as_deref().and_then(|s| s.parse().ok()) {
            *by_source.entry(source).or_default() += 1;
        }
    }
    for (source, n) in by_source {
        service.metrics.candidates_proposed(source, n);
    }
}

/// Everything needed to draw values for one round.
struct Sampler {
    space: Arc<dyn Space>,
    model: Option<Arc<Model>>,
    reward: RewardSpec,
    training: TrainingSpec,
    round: RoundSpec,
    explore: Exploration,
    min_distance: Option<f64>,
}

impl Sampler {
    /// Draws up to `n` values the campaign does not have, with the proxy's prediction for
    /// each once a proxy exists, on a blocking thread under the sampling semaphore. The seed
    /// mixes the campaign's with the number of values it holds and a salt: reproducible, and
    /// a new stream for every draw.
    async fn draw(
        &self,
        service: &Service,
        campaign_id: i64,
        n: usize,
        kept: &[ProposedValue],
        place: &DrawingPlace,
        salt: u64,
    ) -> Result<(Vec<ProposedValue>, bool), Error> {
        // Values kept from an earlier try are not stored yet: the draw must neither repeat
        // them nor come within `min_distance` of them. Nor may it take the values other
        // rounds drawing here hold but have not stored.
        let apart_from: Vec<SpaceState> = kept
            .iter()
            .filter_map(|v| serde_json::from_str(&v.value).ok())
            .filter_map(|v| self.space.parse_value(&v).ok())
            .collect();
        let mut unstored = place.claimed_by_others();
        unstored.extend(kept.iter().map(|v| v.value.clone()));
        let seen = service.seen.current(&service.store, campaign_id).await?;
        let seed = self.training.seed
            ^ (seen.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ salt.wrapping_mul(0xD1B5_4A32_D192_ED03);
        let permit = service
            .sampling
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Unavailable("server is shutting down".into()))?;
        // Dropped with this future (the client went away, or the request's deadline
        // passed), the guard calls off the blocking work, which then frees its permit.
        let cancel = CancelOnDrop::default();
        let job = DrawJob {
            cancel: cancel.0.clone(),
            space: self.space.clone(),
            model: self.model.clone(),
            reward: self.reward,
            training: self.training,
            round: self.round,
            explore: self.explore,
            min_distance: self.min_distance,
            apart_from,
            seen: Seen {
                stored: seen,
                unstored,
            },
            n,
            seed,
        };
        let drawn = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            job.run()
        })
        .await
        .map_err(|e| Error::Internal(format!("sampling task failed: {e}")))?;
        drop(cancel);
        drawn.map_err(|e| match e {
            GfnError::Cancelled => Error::Unavailable("the round was called off".into()),
            e => Error::Internal(format!("sampling failed: {e}")),
        })
    }
}

/// A flag raised when the guard is dropped: a draw's blocking work watches it.
#[derive(Default)]
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The values a draw must not propose: the campaign's, those an earlier try of the same
/// round keeps, and those other rounds drawing here hold.
struct Seen {
    /// Read-locked: a catch-up of the campaign's values waits until this draw is done.
    stored: OwnedRwLockReadGuard<CampaignValues>,
    unstored: HashSet<String>,
}

impl std::fmt::Debug for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seen")
            .field("stored", &*self.stored)
            .field("unstored", &self.unstored.len())
            .finish()
    }
}

impl SeenValues for Seen {
    fn contains(&self, canonical: &str) -> bool {
        self.unstored.contains(canonical) || self.stored.contains(canonical)
    }
}

/// One draw, owned, for the blocking thread.
struct DrawJob {
    /// Raised when the draw is no longer wanted.
    cancel: Arc<AtomicBool>,
    space: Arc<dyn Space>,
    model: Option<Arc<Model>>,
    reward: RewardSpec,
    training: TrainingSpec,
    round: RoundSpec,
    explore: Exploration,
    min_distance: Option<f64>,
    apart_from: Vec<SpaceState>,
    seen: Seen,
    n: usize,
    seed: u64,
}

impl DrawJob {
    fn run(self) -> Result<(Vec<ProposedValue>, bool), GfnError> {
        let space = self.space.as_ref();
        let mut rng = rand::rngs::StdRng::seed_from_u64(self.seed);
        let request = ProposalRequest {
            n: self.n,
            seen: &self.seen,
            explore: self.explore,
            min_distance: self.min_distance,
            apart_from: &self.apart_from,
            cancel: Some(&self.cancel),
        };
        let surrogate = self.model.as_deref().and_then(|m| m.surrogate.as_ref());
        let reward = self.reward;
        let cancel = &self.cancel;
        let score = |states: &[SpaceState]| -> Result<Vec<f64>, GfnError> {
            // Scoring runs between every stage of the screened draw (local search, each
            // refinement pass): the natural place to notice the draw was called off.
            if cancel.load(Ordering::Relaxed) {
                return Err(GfnError::Cancelled);
            }
            let Some(s) = surrogate else {
                return Ok(vec![0.0; states.len()]);
            };
            let predictions = s
                .predict(space, states)
                .map_err(|e| GfnError::Score(e.into()))?;
            Ok(s.log_rewards(&reward, &predictions)
                .into_iter()
                .map(f64::from)
                .collect())
        };
        let screening = match (self.model.as_deref(), surrogate) {
            (Some(m), Some(_)) => Some(screening(&self.training, &self.round, &m.elites, &score)),
            _ => None,
        };
        let proposal = propose(
            space,
            self.model.as_deref().map(|m| &m.gfn),
            request,
            screening,
            &mut rng,
        )?;
        let estimates: Vec<Option<(f64, f64)>> = match surrogate {
            Some(s) => s
                .predict(space, &proposal.states)
                .map_err(|e| GfnError::Score(e.into()))?
                .into_iter()
                .map(|p| Some((p.mean, p.std)))
                .collect(),
            None => vec![None; proposal.states.len()],
        };
        let values = proposal
            .states
            .iter()
            .zip(estimates)
            .zip(&proposal.sources)
            .map(|((x, proxy), &source)| ProposedValue {
                value: canonical(space, x),
                proxy,
                source,
            })
            .collect();
        Ok((values, proposal.exhausted))
    }
}

/// How a round with a proxy screens its pool: the campaign's round settings, its elites and
/// the proxy's `score`.
fn screening<'a>(
    training: &TrainingSpec,
    round: &RoundSpec,
    elites: &'a [SpaceState],
    score: Scorer<'a>,
) -> Screening<'a> {
    Screening {
        pool: round.pool,
        local_share: round.pool_local_search,
        conservative_share: round.pool_conservative,
        conservative_delta: training.conservative_delta,
        elites,
        spread: round.pool_spread,
        walk: round.pool_walk,
        score,
        refine: round.refine,
        backtrack: round.refine_backtrack,
        rule: match round.selection {
            Selection::Proportional => BatchRule::Proportional,
            Selection::Greedy => BatchRule::Greedy,
        },
    }
}

/// A round and its candidates, in proposal order.
#[derive(Debug, Clone)]
pub struct RoundWithCandidates {
    pub round: RoundRow,
    pub candidates: Vec<CandidateRow>,
}

/// A round as `POST /rounds` answers it.
pub async fn round(service: &Service, id: i64) -> Result<RoundWithCandidates, Error> {
    Ok(RoundWithCandidates {
        round: service.store.round(id).await?,
        candidates: service.store.round_candidates(id).await?,
    })
}

/// A round with every label of each of its candidates, as stored.
#[derive(Debug, Clone)]
pub struct RoundWithLabels {
    pub round: RoundRow,
    pub candidates: Vec<CandidateWithLabels>,
}

/// A candidate of a round and its labels, oldest first.
#[derive(Debug, Clone)]
pub struct CandidateWithLabels {
    pub candidate: CandidateRow,
    pub labels: Vec<LabelRow>,
}

/// A round with every label of each of its candidates.
pub async fn round_detail(service: &Service, id: i64) -> Result<RoundWithLabels, Error> {
    let round = service.store.round(id).await?;
    let candidates = service.store.round_candidates(id).await?;
    // Labels grouped by candidate once, so the join is linear in candidates plus labels.
    let mut labels: HashMap<i64, Vec<LabelRow>> = HashMap::new();
    for label in service.store.round_labels(id).await? {
        labels.entry(label.candidate_id).or_default().push(label);
    }
    let candidates = candidates
        .into_iter()
        .map(|candidate| CandidateWithLabels {
            labels: labels.remove(&candidate.id).unwrap_or_default(),
            candidate,
        })
        .collect();
    Ok(RoundWithLabels { round, candidates })
}

/// Marks the round's still-pending candidates abandoned; returns the round after it.
pub async fn abandon_round(service: &Service, id: i64) -> Result<RoundWithLabels, Error> {
    service.store.abandon_round(id).await?;
    round_detail(service, id).await
}

/// Values are stored as the canonical JSON text the service wrote itself.
pub fn parse_stored(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::String(text.to_string()))
}
