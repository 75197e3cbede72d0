//! Proposing a batch: distinct terminal states the campaign has not seen, drawn from the
//! policy, at least `min_distance` apart, with exploration raised step by step when the policy
//! keeps returning values already seen.
//!
//! Once a surrogate exists, a round first builds a larger pool (`pool` per requested
//! candidate) and chooses the batch from it by a [`BatchRule`] (the campaign's
//! `round.selection`: best first by default, or drawn in proportion to the proxy's reward),
//! skipping near duplicates of what the batch holds. The pool can come from three sources,
//! in shares the campaign sets:
//!
//! - conservative search around the best labelled candidates (the default, the whole pool):
//!   elites with a share of their moves redrawn by the policy (see [`super::conservative`]);
//! - local search (`local_share`): mutations and crossovers of the elites walked on the
//!   proxy's reward ([`reward_walk`]); by default these belong to training, as off-policy
//!   data, and take no part in rounds;
//! - the policy's own samples, refined by the local search of "Local Search GFlowNets" (Kim
//!   et al. 2024: backtrack with `P_B`, reconstruct with `P_F`, accept on the proxy's reward
//!   with the Metropolis–Hastings ratio, see [`super::refine`]).
//!
//! Each candidate's [`Source`] says which made it. Whatever the pool cannot fill is drawn
//! from the policy with rising exploration, as without a surrogate.

use super::conservative::conservative_search;
use super::provenance::Source;
use super::refine::{refine, RefineSettings};
use super::sampler::sample_uniform;
use super::space::{Space, State};
use super::train::{Exploration, GflowNet, GfnError};
use rand::{Rng, RngCore};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};

/// Spaces with at most this many states are enumerated when sampling alone cannot find
/// enough unseen terminals, so `exhausted` is only ever reported when the space ran out.
pub const ENUMERATION_LIMIT: usize = 1_000_000;

/// Escalating draws a proposal makes when the policy keeps repeating itself (the last two
/// from the uniform policy).
pub const DRAW_ATTEMPTS: usize = 6;

/// Least number of walks one escalating draw makes.
const LEAST_DRAW: usize = 8;

/// Walks the escalating draw number `attempt` (from 0) makes while `missing` candidates
/// are still wanted: oversampled more each time, since a draw may repeat a value or fall
/// too close to another. The memory estimate of a round prices the last one.
pub fn escalating_draw(missing: usize, attempt: usize) -> usize {
    missing.max(LEAST_DRAW).saturating_mul(2 + attempt)
}

/// What a proposal returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    pub states: Vec<State>,
    /// How each of `states` was made.
    pub sources: Vec<Source>,
    /// True when the space has no other unseen terminal left.
    pub exhausted: bool,
}

/// Canonical text of a terminal, the form stored and compared for "already seen".
pub fn canonical(space: &dyn Space, x: &State) -> String {
    space.to_value(x).to_string()
}

/// The values a campaign already holds, asked one canonical text at a time: a proposal never
/// returns one of them. The service answers from a compact cache rather than a set of every
/// text, so that a round costs the same at a million candidates.
pub trait SeenValues: std::fmt::Debug + Sync {
    /// Whether `canonical` (see [`canonical`]) is one of the campaign's values.
    fn contains(&self, canonical: &str) -> bool;
}

impl SeenValues for HashSet<String> {
    fn contains(&self, canonical: &str) -> bool {
        HashSet::contains(self, canonical)
    }
}

/// What to propose.
#[derive(Debug, Clone, Copy)]
pub struct ProposalRequest<'a> {
    /// How many new terminals.
    pub n: usize,
    /// Canonical texts of every value the campaign has proposed or labelled.
    pub seen: &'a dyn SeenValues,
    pub explore: Exploration,
    /// Smallest allowed distance between two terminals of the batch.
    pub min_distance: Option<f64>,
    /// Terminals already in the batch (a redraw for values concurrent rounds took): new ones keep `min_distance` from them too.
    pub apart_from: &'a [State],
    /// Raised when the proposal is no longer wanted: the work stops with
    /// [`GfnError::Cancelled`] at the next candidate it considers.
    pub cancel: Option<&'a AtomicBool>,
}

/// `Err(Cancelled)` once `cancel` is raised.
fn check(cancel: Option<&AtomicBool>) -> Result<(), GfnError> {
    match cancel {
        Some(flag) if flag.load(Ordering::Relaxed) => Err(GfnError::Cancelled),
        _ => Ok(()),
    }
}

/// A reward estimate of terminals, higher is better (the caller's `log R` under the proxy).
pub type Scorer<'a> = &'a dyn Fn(&[State]) -> Result<Vec<f64>, GfnError>;

/// How a round chooses its batch from a scored pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchRule {
    /// Without replacement, each candidate with probability proportional to `exp(score)`
    /// (the Gumbel top-k trick: sort by `score + Gumbel noise`).
    Proportional,
    /// Best score first.
    Greedy,
}

/// How a round screens a pool of candidates before choosing its batch.
#[derive(Clone, Copy)]
pub struct Screening<'a> {
    /// Candidates scored per requested one (at least 1).
    pub pool: usize,
    /// Refinement passes over each policy sample (0: none).
    pub refine: usize,
    /// Share of a sample's moves each refinement pass backtracks, in (0, 1].
    pub backtrack: f64,
    pub rule: BatchRule,
    /// Share of the pool made by local search around `elites`, the rest sampled from the
    /// policy.
    pub local_share: f64,
    /// Share of the pool made by conservative search around `elites` (see
    /// [`super::conservative`]): elites with a share `conservative_delta` of their moves
    /// redrawn by the policy. Local search takes its share first; conservative search at
    /// most what is left.
    pub conservative_share: f64,
    pub conservative_delta: f64,
    /// Best labelled candidates, best first.
    pub elites: &'a [State],
    /// The first pass keeps candidates at least this share of the space's diameter apart;
    /// the second fills the batch by score alone (near duplicates still skipped).
    pub spread: f64,
    /// Metropolis steps of each local-search chain (see [`reward_walk`]).
    pub walk: usize,
    pub score: Scorer<'a>,
}

impl std::fmt::Debug for Screening<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Screening")
            .field("pool", &self.pool)
            .field("local_share", &self.local_share)
            .field("conservative_share", &self.conservative_share)
            .field("conservative_delta", &self.conservative_delta)
            .field("elites", &self.elites.len())
            .field("refine", &self.refine)
            .field("rule", &self.rule)
            .finish_non_exhaustive()
    }
}

/// Index into a best-first list of `n`, drawn with a bias to the front (`floor(n u^2)`):
/// the best are picked most, the rest still now and then.
pub(super) fn rank_biased(n: usize, rng: &mut dyn RngCore) -> usize {
    let u: f64 = rng.random();
    ((u * u * n as f64) as usize).min(n.saturating_sub(1))
}

/// `n` local-search moves around `elites` (best first): half the time a crossover of two
/// elites (mutated again half of those times), otherwise a mutation of one, and each further
/// mutated with probability 0.3, repeatedly, so that moves reach beyond the nearest
/// neighbours. Empty when there are no elites.
pub fn local_search(
    space: &dyn Space,
    elites: &[State],
    n: usize,
    rng: &mut impl Rng,
) -> Vec<State> {
    if elites.is_empty() {
        return Vec::new();
    }
    let rng: &mut dyn RngCore = rng;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let a = &elites[rank_biased(elites.len(), rng)];
        let mut child = if elites.len() > 1 && rng.random_bool(0.5) {
            let b = &elites[rank_biased(elites.len(), rng)];
            let c = space.crossover(a, b, rng);
            if rng.random_bool(0.5) {
                space.mutate(&c, rng)
            } else {
                c
            }
        } else {
            space.mutate(a, rng)
        };
        while rng.random_bool(0.3) {
            child = space.mutate(&child, rng);
        }
        out.push(child);
    }
    out
}

/// Local search as a short Metropolis walk on the reward: `chains` moves around the elites
/// (see [`local_search`]) each take `steps` further mutations, a mutation accepted with
/// probability `min(1, R(new) / R(old))` under `score` (`log R`). With mutations as
/// symmetric proposals the chains drift towards samples proportional to `R`, the
/// GFlowNet's own target: they climb where the reward rises and wander along its ridges
/// where it is flat, so the moves spread out instead of piling onto the best elite. Returns
/// every state the chains visited, with its score.
pub fn reward_walk(
    space: &dyn Space,
    elites: &[State],
    chains: usize,
    steps: usize,
    score: Scorer<'_>,
    rng: &mut impl Rng,
) -> Result<(Vec<State>, Vec<f64>), GfnError> {
    let mut current = local_search(space, elites, chains, rng);
    let mut current_scores = score(&current)?;
    let mut visited = current.clone();
    let mut visited_scores = current_scores.clone();
    for _ in 0..steps {
        let proposals: Vec<State> = current.iter().map(|x| space.mutate(x, rng)).collect();
        let proposal_scores = score(&proposals)?;
        for (i, (x, s)) in proposals.into_iter().zip(proposal_scores).enumerate() {
            let log_ratio = s - current_scores[i];
            if log_ratio >= 0.0 || rng.random::<f64>() < log_ratio.exp() {
                visited.push(x.clone());
                visited_scores.push(s);
                current[i] = x;
                current_scores[i] = s;
            }
        }
    }
    Ok((visited, visited_scores))
}

/// Draws up to `request.n` new terminals from `gfn`, or uniformly at random when `gfn` is
/// `None`. With `screening` (and a network), the best of a scored pool come first; see the
/// module documentation.
pub fn propose(
    space: &dyn Space,
    gfn: Option<&GflowNet>,
    request: ProposalRequest<'_>,
    screening: Option<Screening<'_>>,
    rng: &mut impl Rng,
) -> Result<Proposal, GfnError> {
    check(request.cancel)?;
    let mut batch = Batch::new(space, request);
    if let (Some(screen), Some(policy)) = (screening, gfn) {
        let pool = screened_pool(space, policy, screen, request.n, request.explore, rng)?;
        check(request.cancel)?;
        batch.take_from_pool(&pool, screen, rng)?;
    }
    batch.draw_escalating(gfn, rng)?;
    let exhausted = if batch.is_full() {
        false
    } else {
        batch.list_the_rest(rng)?
    };
    Ok(Proposal {
        states: batch.chosen,
        sources: batch.sources,
        exhausted,
    })
}

/// A batch being chosen: its terminals, how each was made, their texts, and what a new one
/// must respect (the campaign's values, `min_distance`, the terminals it must keep apart
/// from).
struct Batch<'a> {
    space: &'a dyn Space,
    request: ProposalRequest<'a>,
    chosen: Vec<State>,
    sources: Vec<Source>,
    chosen_text: HashSet<String>,
}

impl<'a> Batch<'a> {
    fn new(space: &'a dyn Space, request: ProposalRequest<'a>) -> Self {
        Self {
            space,
            request,
            chosen: Vec::with_capacity(request.n),
            sources: Vec::with_capacity(request.n),
            chosen_text: HashSet::with_capacity(request.n),
        }
    }

    fn is_full(&self) -> bool {
        self.chosen.len() >= self.request.n
    }

    /// Whether `x` keeps `min_distance` from every chosen terminal and those to keep apart
    /// from.
    fn fits(&self, x: &State) -> bool {
        match self.request.min_distance {
            Some(d) if d > 0.0 => self
                .chosen
                .iter()
                .chain(self.request.apart_from)
                .all(|c| self.space.distance_at_least(c, x, d)),
            _ => true,
        }
    }

    fn push(&mut self, x: State, text: String, source: Source) {
        self.chosen_text.insert(text);
        self.chosen.push(x);
        self.sources.push(source);
    }

    /// The scored pool first, in the screening's order: one pass that keeps the batch
    /// spread out (one of each region), a second that fills what is left.
    fn take_from_pool(
        &mut self,
        pool: &Pool,
        screen: Screening<'_>,
        rng: &mut impl Rng,
    ) -> Result<(), GfnError> {
        let space = self.space;
        let keep: Vec<bool> = {
            let mut pool_text: HashSet<String> = HashSet::with_capacity(pool.states.len());
            pool.states
                .iter()
                .map(|x| {
                    let text = canonical(space, x);
                    !self.request.seen.contains(&text) && pool_text.insert(text)
                })
                .collect()
        };
        let order: Vec<usize> = selection_order(&pool.scores, screen.rule, rng)
            .into_iter()
            .filter(|&i| keep[i])
            .collect();
        let spread = screen.spread.max(0.0) * space.diameter();
        let mut taken = vec![false; pool.states.len()];
        for radius in [spread, 0.0] {
            for &i in &order {
                if self.is_full() {
                    break;
                }
                let x = &pool.states[i];
                if taken[i] {
                    continue;
                }
                check(self.request.cancel)?;
                let mut others = self.chosen.iter().chain(self.request.apart_from);
                let crowded = others.any(|c| {
                    space.near_duplicate(c, x)
                        || (radius > 0.0 && !space.distance_at_least(c, x, radius))
                });
                if crowded || !self.fits(x) {
                    continue;
                }
                taken[i] = true;
                self.push(x.clone(), canonical(space, x), pool.sources[i]);
            }
        }
        Ok(())
    }

    /// Plain draws for what is still missing, with escalating exploration: the campaign's
    /// own first, then hotter and more uniform, ending with the uniform policy, which
    /// reaches every terminal.
    fn draw_escalating(
        &mut self,
        gfn: Option<&GflowNet>,
        rng: &mut impl Rng,
    ) -> Result<(), GfnError> {
        let explore = self.request.explore;
        let uniform = Exploration {
            temperature: 1.0,
            epsilon: 1.0,
        };
        let schedule: [Exploration; DRAW_ATTEMPTS] = [
            explore,
            Exploration {
                temperature: explore.temperature * 2.0,
                epsilon: explore.epsilon.max(0.1),
            },
            Exploration {
                temperature: explore.temperature * 4.0,
                epsilon: explore.epsilon.max(0.3),
            },
            Exploration {
                temperature: explore.temperature * 8.0,
                epsilon: 0.6,
            },
            uniform,
            uniform,
        ];
        for (attempt, ex) in schedule.iter().enumerate() {
            if self.is_full() {
                break;
            }
            // Oversample: a draw may repeat or fall too close to another.
            let want = escalating_draw(self.request.n - self.chosen.len(), attempt);
            let (drawn, source) = match gfn {
                Some(g) if ex.epsilon < 1.0 => (g.sample_forward(want, *ex, rng)?, Source::Policy),
                _ => (sample_uniform(self.space, want, rng)?, Source::Uniform),
            };
            for t in drawn {
                check(self.request.cancel)?;
                let x = t.terminal();
                let text = canonical(self.space, x);
                if self.request.seen.contains(&text)
                    || self.chosen_text.contains(&text)
                    || !self.fits(x)
                {
                    continue;
                }
                self.push(x.clone(), text, source);
                if self.is_full() {
                    break;
                }
            }
        }
        Ok(())
    }

    /// When sampling fell short on an enumerable space, lists what remains, so that a short
    /// batch means the space ran out, not that sampling was unlucky. Returns whether it ran
    /// out: every unseen terminal is in this batch and it is still short.
    fn list_the_rest(&mut self, rng: &mut impl Rng) -> Result<bool, GfnError> {
        let space = self.space;
        let Some(all) = space.enumerate(ENUMERATION_LIMIT) else {
            return Ok(false);
        };
        let mut remaining: Vec<State> = all
            .into_iter()
            .filter(|x| space.can_stop(x))
            .filter(|x| {
                let text = canonical(space, x);
                !self.request.seen.contains(&text) && !self.chosen_text.contains(&text)
            })
            .collect();
        // A random order keeps the fallback from always favouring the same corner.
        for i in (1..remaining.len()).rev() {
            remaining.swap(i, rng.random_range(0..=i));
        }
        let mut left = remaining.len();
        for x in remaining {
            check(self.request.cancel)?;
            if self.is_full() {
                break;
            }
            if self.fits(&x) {
                let text = canonical(space, &x);
                self.push(x, text, Source::Uniform);
                left -= 1;
            }
        }
        Ok(left == 0 && !self.is_full())
    }
}

/// A scored pool of candidates with where each came from.
struct Pool {
    states: Vec<State>,
    scores: Vec<f64>,
    sources: Vec<Source>,
}

/// The pool a round chooses from, `n * pool` candidates: local-search moves around the elites
/// walked on the reward, with every state the walks visit (`local_share`), conservative
/// search around the elites (`conservative_share` of what is left), and the policy's samples
/// for the rest (refined when the screening asks for it).
fn screened_pool(
    space: &dyn Space,
    policy: &GflowNet,
    screen: Screening<'_>,
    n: usize,
    explore: Exploration,
    rng: &mut impl Rng,
) -> Result<Pool, GfnError> {
    let pool_n = n.saturating_mul(screen.pool.max(1));
    let share = |s: f64| {
        if screen.elites.is_empty() {
            0
        } else {
            ((pool_n as f64 * s.clamp(0.0, 1.0)).round() as usize).min(pool_n)
        }
    };
    let local_n = share(screen.local_share);
    let conservative_n = share(screen.conservative_share).min(pool_n - local_n);
    let (mut states, mut scores) = reward_walk(
        space,
        screen.elites,
        local_n,
        screen.walk,
        screen.score,
        rng,
    )?;
    let mut sources = vec![Source::Local; states.len()];
    let near = conservative_search(
        policy,
        screen.elites,
        conservative_n,
        screen.conservative_delta,
        explore,
        rng,
    )?;
    scores.extend((screen.score)(&near)?);
    sources.extend(std::iter::repeat_n(Source::ElitePolicy, near.len()));
    states.extend(near);
    let samples = policy.sample_forward(pool_n - local_n - conservative_n, explore, rng)?;
    let depths: Vec<usize> = samples.iter().map(|t| t.states.len() - 1).collect();
    let terminals: Vec<State> = samples.into_iter().map(|t| t.terminal().clone()).collect();
    let sample_scores = (screen.score)(&terminals)?;
    let settings = RefineSettings {
        passes: screen.refine,
        backtrack: screen.backtrack,
        explore,
    };
    let refined = refine(
        policy,
        terminals,
        depths,
        sample_scores,
        settings,
        screen.score,
        rng,
    )?;
    sources.extend(refined.moved.iter().map(|&moved| {
        if moved {
            Source::PolicyLocal
        } else {
            Source::Policy
        }
    }));
    states.extend(refined.terminals);
    scores.extend(refined.scores);
    Ok(Pool {
        states,
        scores,
        sources,
    })
}

/// The order in which a round considers its pool: best first for [`BatchRule::Greedy`]; for
/// [`BatchRule::Proportional`] by `score + Gumbel noise`, which makes every prefix of the
/// order a draw without replacement with probabilities proportional to `exp(score)` (the
/// Gumbel top-k trick).
fn selection_order(scores: &[f64], rule: BatchRule, rng: &mut impl Rng) -> Vec<usize> {
    let keys: Vec<f64> = match rule {
        BatchRule::Greedy => scores.iter().map(|&v| nan_last(v)).collect(),
        BatchRule::Proportional => scores
            .iter()
            .map(|&v| {
                let u: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
                nan_last(v) - (-u.ln()).ln()
            })
            .collect(),
    };
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| keys[b].total_cmp(&keys[a]));
    order
}

/// A score for ordering, with NaN ranked below everything (`total_cmp` would put it first).
fn nan_last(v: f64) -> f64 {
    if v.is_nan() {
        f64::NEG_INFINITY
    } else {
        v
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::gfn::space::GridSpace;
    use crate::gfn::GfnConfig;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use std::sync::Arc;

    fn net(space: &Arc<dyn Space>, rng: &mut StdRng) -> GflowNet {
        let config = GfnConfig {
            hidden: 8,
            layers: 1,
            ..GfnConfig::default()
        };
        GflowNet::new(space.clone(), config, rng).expect("network")
    }

    fn coordinate_sum(states: &[State]) -> Result<Vec<f64>, GfnError> {
        Ok(states
            .iter()
            .map(|x| x.0.iter().map(|&c| f64::from(c)).sum())
            .collect())
    }

    fn request<'a>(n: usize, seen: &'a HashSet<String>) -> ProposalRequest<'a> {
        ProposalRequest {
            n,
            seen,
            explore: Exploration {
                temperature: 1.0,
                epsilon: 0.0,
            },
            min_distance: None,
            apart_from: &[],
            cancel: None,
        }
    }

    #[test]
    fn screening_picks_high_scores_without_near_duplicates_or_seen_values() {
        let space: Arc<dyn Space> = Arc::new(GridSpace::new(2, 16).expect("grid"));
        let mut rng = StdRng::seed_from_u64(7);
        let policy = net(&space, &mut rng);
        let elites = [State(vec![14, 15]), State(vec![15, 13])];
        let seen: HashSet<String> = elites
            .iter()
            .map(|x| canonical(space.as_ref(), x))
            .collect();
        let screening = Screening {
            pool: 10,
            local_share: 0.5,
            conservative_share: 0.0,
            conservative_delta: 0.1,
            elites: &elites,
            spread: 0.0,
            walk: 0,
            score: &coordinate_sum,
            refine: 0,
            backtrack: 0.5,
            rule: BatchRule::Greedy,
        };
        let screened = propose(
            space.as_ref(),
            Some(&policy),
            request(8, &seen),
            Some(screening),
            &mut rng,
        )
        .expect("screened");
        let plain = propose(
            space.as_ref(),
            Some(&policy),
            request(8, &seen),
            None,
            &mut rng,
        )
        .expect("plain");
        let mean = |p: &Proposal| {
            coordinate_sum(&p.states)
                .expect("scores")
                .iter()
                .sum::<f64>()
                / p.states.len() as f64
        };
        assert_eq!(screened.states.len(), 8);
        assert!(
            mean(&screened) > mean(&plain) + 5.0,
            "screened {} vs plain {}",
            mean(&screened),
            mean(&plain)
        );
        for (i, x) in screened.states.iter().enumerate() {
            assert!(!seen.contains(&canonical(space.as_ref(), x)));
            for y in &screened.states[i + 1..] {
                assert!(!space.near_duplicate(x, y), "{x:?} and {y:?}");
            }
        }
    }

    #[test]
    fn proportional_selection_draws_first_in_proportion_to_the_reward() {
        let scores = [0.0, 1.0, 2.0, f64::NAN];
        let total: f64 = scores[..3].iter().map(|v| v.exp()).sum();
        let mut rng = StdRng::seed_from_u64(12);
        let n = 20_000;
        let mut first = [0usize; 4];
        for _ in 0..n {
            let order = selection_order(&scores, BatchRule::Proportional, &mut rng);
            first[order[0]] += 1;
            assert_eq!(order[3], 3, "NaN is considered last");
        }
        for i in 0..3 {
            let p = scores[i].exp() / total;
            let freq = first[i] as f64 / n as f64;
            // Four binomial standard errors.
            let tolerance = 4.0 * (p * (1.0 - p) / n as f64).sqrt();
            assert!((freq - p).abs() < tolerance, "{i}: {freq} vs {p}");
        }
        assert_eq!(
            selection_order(&scores, BatchRule::Greedy, &mut rng),
            vec![2, 1, 0, 3]
        );
    }

    #[test]
    fn every_proposed_candidate_says_where_it_came_from() {
        let space: Arc<dyn Space> = Arc::new(GridSpace::new(2, 16).expect("grid"));
        let mut rng = StdRng::seed_from_u64(13);
        let policy = net(&space, &mut rng);
        let elites = [State(vec![14, 15])];
        let seen = HashSet::new();
        let screening = Screening {
            pool: 10,
            local_share: 0.5,
            conservative_share: 0.0,
            conservative_delta: 0.1,
            elites: &elites,
            spread: 0.0,
            walk: 0,
            score: &coordinate_sum,
            refine: 2,
            backtrack: 0.5,
            rule: BatchRule::Proportional,
        };
        let p = propose(
            space.as_ref(),
            Some(&policy),
            request(20, &seen),
            Some(screening),
            &mut rng,
        )
        .expect("proposal");
        assert_eq!(p.sources.len(), p.states.len());
        let has = |s: Source| p.sources.contains(&s);
        assert!(has(Source::Local), "{:?}", p.sources);
        assert!(
            has(Source::Policy) || has(Source::PolicyLocal),
            "{:?}",
            p.sources
        );
        let first =
            propose(space.as_ref(), None, request(5, &seen), None, &mut rng).expect("uniform");
        assert!(first.sources.iter().all(|&s| s == Source::Uniform));
    }

    #[test]
    fn a_called_off_proposal_stops_with_cancelled() {
        let space: Arc<dyn Space> = Arc::new(GridSpace::new(2, 16).expect("grid"));
        let mut rng = StdRng::seed_from_u64(3);
        let seen = HashSet::new();
        let flag = AtomicBool::new(false);
        let mut wanted = request(20, &seen);
        wanted.cancel = Some(&flag);
        let drawn = propose(space.as_ref(), None, wanted, None, &mut rng);
        assert_eq!(
            drawn.map(|p| p.states.len()).ok(),
            Some(20),
            "not called off"
        );
        flag.store(true, Ordering::Relaxed);
        let drawn = propose(space.as_ref(), None, wanted, None, &mut rng);
        assert!(matches!(drawn, Err(GfnError::Cancelled)), "{drawn:?}");
    }

    #[test]
    fn screening_still_hands_out_the_whole_remaining_space() {
        // 3 x 3 grid, 4 values seen: the 5 others are all near duplicates of each other in
        // places, yet a request for 9 must return all 5 and say the space ran out.
        let space: Arc<dyn Space> = Arc::new(GridSpace::new(2, 3).expect("grid"));
        let mut rng = StdRng::seed_from_u64(8);
        let policy = net(&space, &mut rng);
        let seen_states = [
            State(vec![0, 0]),
            State(vec![1, 1]),
            State(vec![2, 2]),
            State(vec![0, 2]),
        ];
        let seen: HashSet<String> = seen_states
            .iter()
            .map(|x| canonical(space.as_ref(), x))
            .collect();
        let screening = Screening {
            pool: 4,
            local_share: 0.5,
            conservative_share: 0.0,
            conservative_delta: 0.1,
            elites: &seen_states,
            spread: 0.0,
            walk: 0,
            score: &coordinate_sum,
            refine: 0,
            backtrack: 0.5,
            rule: BatchRule::Greedy,
        };
        let p = propose(
            space.as_ref(),
            Some(&policy),
            request(9, &seen),
            Some(screening),
            &mut rng,
        )
        .expect("proposal");
        assert_eq!(p.states.len(), 5);
        assert!(p.exhausted);
    }

    #[test]
    fn spread_takes_the_best_of_each_region_first() {
        let space: Arc<dyn Space> = Arc::new(GridSpace::new(2, 16).expect("grid"));
        let elites = [State(vec![15, 15]), State(vec![0, 0])];
        let seen: HashSet<String> = elites
            .iter()
            .map(|x| canonical(space.as_ref(), x))
            .collect();
        let batch = |spread: f64| {
            let mut rng = StdRng::seed_from_u64(10);
            let policy = net(&space, &mut rng);
            let screening = Screening {
                pool: 40,
                local_share: 1.0,
                conservative_share: 0.0,
                conservative_delta: 0.1,
                elites: &elites,
                spread,
                walk: 0,
                score: &coordinate_sum,
                refine: 0,
                backtrack: 0.5,
                rule: BatchRule::Greedy,
            };
            propose(
                space.as_ref(),
                Some(&policy),
                request(2, &seen),
                Some(screening),
                &mut rng,
            )
            .expect("proposal")
            .states
        };
        let apart = |b: &[State]| space.distance(&b[0], &b[1]);
        // Without spread both come from the high corner; with half the diameter (15) the
        // second is the best of the far region.
        assert!(apart(&batch(0.0)) < 15.0, "{:?}", batch(0.0));
        assert!(apart(&batch(0.5)) >= 15.0, "{:?}", batch(0.5));
    }

    #[test]
    fn local_search_stays_near_the_elites() {
        let space: Arc<dyn Space> = Arc::new(GridSpace::new(3, 32).expect("grid"));
        let mut rng = StdRng::seed_from_u64(9);
        let elites = [State(vec![30, 30, 30])];
        let moves = local_search(space.as_ref(), &elites, 200, &mut rng);
        assert_eq!(moves.len(), 200);
        let near = moves
            .iter()
            .filter(|x| space.distance(x, &elites[0]) <= 3.0)
            .count();
        // Single steps dominate; uniform jumps along an axis are the exception.
        assert!(near > 100, "{near} of 200 within distance 3");
        assert!(local_search(space.as_ref(), &[], 10, &mut rng).is_empty());
    }
}
