//! The training recipe: one run of a campaign, synchronous, no database, only the engine
//! and the reward arithmetic. The compute thread ([`super::compute`]) runs it in turns.
//!
//! May import `gfn`, `proxy`, `domain` and `model`; never the store, sqlx or axum.

use super::compute::{JobError, TrainJob, TrainOutput, Turn};
use crate::domain::campaign::CampaignSpec;
use crate::gfn::conservative::conservative_paths;
use crate::gfn::propose::reward_walk;
use crate::gfn::{Exploration, GflowNet, Space, State, Trajectory};
use crate::model::Model;
use crate::proxy::{self, Surrogate};
use rand::distr::weighted::WeightedIndex;
use rand::distr::Distribution;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The reported loss is the mean over this many last steps (one step's loss is noisy).
const LOSS_WINDOW: usize = 10;

/// The seed of run `run_number` of a campaign seeded with `seed`.
pub(crate) fn run_seed(seed: u64, run_number: u64) -> u64 {
    // SplitMix64's increment and finaliser: nearby (seed, run) pairs give unrelated seeds.
    let mut z = seed ^ run_number.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fewest labelled candidates to fit a proxy on; below it training uses the labels alone.
pub(crate) const MIN_PROXY_LABELS: usize = 4;

/// Local-search candidates scored by the proxy per trajectory of a training batch: the run
/// draws its local-search trajectories from this pool (one figure with the memory estimate).
const LOCAL_SEARCH_POOL_PER_TRAJECTORY: usize = crate::domain::cost::LOCAL_POOL_PER_TRAJECTORY;

fn parse_states(space: &dyn Space, texts: &[&str]) -> Result<Vec<State>, JobError> {
    texts
        .iter()
        .map(|text| {
            let value: serde_json::Value = serde_json::from_str(text)
                .map_err(|e| JobError::Failed(format!("stored value {text} is not JSON: {e}")))?;
            space.parse_value(&value).map_err(|e| {
                JobError::Failed(format!("stored value {text} is not in the space: {e}"))
            })
        })
        .collect()
}

/// How many trajectories of a batch come from the labels, the policy and local search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BatchMix {
    labelled: usize,
    forward: usize,
    local: usize,
    conservative: usize,
}

impl BatchMix {
    /// The shares of `batch_size` that `training.mix` asks for; before a proxy, labels only.
    fn of(spec: &CampaignSpec, with_proxy: bool, batch_size: usize) -> Self {
        if !with_proxy {
            return Self {
                labelled: batch_size,
                forward: 0,
                local: 0,
                conservative: 0,
            };
        }
        let mix = spec.training.mix;
        let total = mix.labelled + mix.forward + mix.local_search + mix.conservative;
        let share = |weight: f64| (batch_size as f64 * weight / total).round() as usize;
        let forward = share(mix.forward).min(batch_size);
        let local = share(mix.local_search).min(batch_size - forward);
        let conservative = share(mix.conservative).min(batch_size - forward - local);
        Self {
            labelled: batch_size - forward - local - conservative,
            forward,
            local,
            conservative,
        }
    }

    fn total(self) -> usize {
        self.labelled + self.forward + self.local + self.conservative
    }
}

/// Rank-based prioritised replay (Tripp et al. 2020, as Genetic GFN uses it): the terminal
/// of rank `r` (0 = highest reward) among `N` is drawn with weight `1 / (K N + r)`. The best
/// are replayed most, yet every terminal keeps a share, so the policy sees the whole
/// landscape it is trained on, not only its peak.
const RANK_WEIGHT_K: f64 = 0.1;

/// Pseudo-positive terminals per failed one when no candidate has succeeded yet (see
/// [`fit_surrogate`]): few, so that the classifier believes a region feasible only where
/// no failure contradicts it.
const PSEUDO_POSITIVES_PER_FAILURE: f64 = 0.25;

/// Uniform draws whose proxy reward estimates a fresh network's log Z (one figure with the
/// memory estimate).
const LOG_Z_ESTIMATE_SAMPLES: usize = crate::domain::cost::LOG_Z_SAMPLES;

/// Mutations in each random walk that draws a pseudo-positive terminal.
const PSEUDO_POSITIVE_WALK: usize = 32;

/// Terminals with their `log R`, drawn by rank-based priority.
struct Replay {
    items: Vec<(State, f32)>,
    draw: Option<WeightedIndex<f64>>,
}

impl Replay {
    fn new(items: Vec<(State, f32)>) -> Self {
        let n = items.len();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| nan_last(items[b].1).total_cmp(&nan_last(items[a].1)));
        let mut weights = vec![0.0; n];
        for (rank, &i) in order.iter().enumerate() {
            weights[i] = 1.0 / (RANK_WEIGHT_K * n as f64 + rank as f64);
        }
        let draw = WeightedIndex::new(&weights).ok();
        Self { items, draw }
    }

    fn sample(&self, k: usize, rng: &mut StdRng, out: &mut Vec<(State, f32)>) {
        if let Some(d) = &self.draw {
            out.extend((0..k).map(|_| self.items[d.sample(rng)].clone()));
        }
    }

    fn is_empty(&self) -> bool {
        self.draw.is_none()
    }
}

/// A value for ordering, NaN below everything (`total_cmp` would rank it first).
fn nan_last(v: f32) -> f32 {
    if v.is_nan() {
        f32::NEG_INFINITY
    } else {
        v
    }
}

/// The campaign's surrogate, when the labels allow one: on the labelled and failed
/// candidates once [`MIN_PROXY_LABELS`] succeeded; when every label so far failed, a
/// feasibility model of the failures against a few random terminals taken as
/// feasible (unlabelled-as-positive, weighted low by [`PSEUDO_POSITIVES_PER_FAILURE`]), so
/// that the next batch steers away from what failed instead of repeating it.
fn fit_surrogate(
    job: &TrainJob,
    data: &MeasuredData,
    rng: &mut StdRng,
) -> Result<Option<Surrogate>, JobError> {
    let spec = &job.spec;
    let space = data.space.as_ref();
    let labelled = &data.labelled();
    let failed = &data.failed;
    let fit = |labelled: &[(State, f64)], proxy: &crate::domain::campaign::ProxySpec, rng| {
        Surrogate::fit(space, labelled, failed, spec.reward.maximize, proxy, rng)
            .map_err(JobError::ProxyFit)
    };
    if labelled.len() >= MIN_PROXY_LABELS {
        return fit(labelled, &spec.training.proxy, rng).map(Some);
    }
    if !labelled.is_empty() || failed.is_empty() {
        return Ok(None);
    }
    // The unlabelled reference: random walks of mutations from the failures, which spread
    // over the space whatever its shape (the policy's own draws crowd near the initial
    // state and would say nothing about the rest).
    let failed_set: HashSet<&State> = failed.iter().collect();
    let want = ((failed.len() as f64 * PSEUDO_POSITIVES_PER_FAILURE).ceil() as usize).max(4);
    let mut pseudo: Vec<(State, f64)> = Vec::with_capacity(want);
    for _ in 0..want {
        let mut x = failed[rng.random_range(0..failed.len())].clone();
        for _ in 0..PSEUDO_POSITIVE_WALK {
            x = space.mutate(&x, rng);
        }
        if !failed_set.contains(&x) {
            pseudo.push((x, 0.0));
        }
    }
    if pseudo.is_empty() {
        return Ok(None);
    }
    // Scores of pseudo-labels say nothing: no held-out figure for them.
    let proxy = crate::domain::campaign::ProxySpec {
        holdout: 0.0,
        ..spec.training.proxy
    };
    fit(&pseudo, &proxy, rng).map(Some)
}

/// The mean score of each labelled candidate, with candidates that share an entity given
/// the mean over that entity's candidates: replicates of one object must not teach the
/// proxy (and through it the GFlowNet) that its spellings differ.
fn pool_entities(data: &[(String, f64)], entities: &[Option<String>]) -> Vec<f64> {
    let mut sums: std::collections::HashMap<&str, (f64, usize)> = Default::default();
    for ((_, y), entity) in data.iter().zip(entities) {
        if let Some(e) = entity {
            let entry = sums.entry(e.as_str()).or_insert((0.0, 0));
            entry.0 += y;
            entry.1 += 1;
        }
    }
    data.iter()
        .enumerate()
        .map(
            |(i, (_, y))| match entities.get(i).and_then(Option::as_deref) {
                Some(e) => sums.get(e).map_or(*y, |(sum, n)| sum / *n as f64),
                None => *y,
            },
        )
        .collect()
}

/// `log R` of `states` under the surrogate and the campaign's reward.
fn proxy_log_rewards(
    surrogate: &Surrogate,
    space: &dyn Space,
    reward: &crate::domain::campaign::RewardSpec,
    states: &[State],
) -> Result<Vec<f32>, JobError> {
    let predictions = surrogate.predict(space, states).map_err(JobError::Proxy)?;
    Ok(surrogate.log_rewards(reward, &predictions))
}

/// Trains the campaign's model on its data, in one go: [`Training`] from start to finish.
#[cfg(test)]
pub(crate) fn train(job: TrainJob) -> Result<TrainOutput, JobError> {
    let mut training = Training::start(job)?;
    while !training.advance(None)? {}
    training.finish()
}

/// The training run as the compute thread takes it: a job of turns (see
/// [`super::compute`]). The first turn prepares the run ([`Training::start`]), each turn
/// then takes steps until its deadline, and the last one writes the checkpoint.
pub(crate) fn in_turns(job: TrainJob) -> impl FnMut(Instant) -> Turn<TrainOutput> + Send {
    let mut waiting = Some(job);
    let mut training: Option<Training> = None;
    move |deadline| {
        if let Some(job) = waiting.take() {
            match Training::start(job) {
                Ok(started) => training = Some(started),
                Err(e) => return Turn::Finished(Err(e)),
            }
        }
        let Some(run) = training.as_mut() else {
            return Turn::Finished(Err(JobError::Failed(
                "the training run was already finished".into(),
            )));
        };
        match run.advance(Some(deadline)) {
            Err(e) => Turn::Finished(Err(e)),
            Ok(false) => Turn::Unfinished,
            Ok(true) => match training.take() {
                Some(run) => Turn::Finished(run.finish()),
                None => Turn::Finished(Err(JobError::Failed(
                    "the training run vanished between its steps and its checkpoint".into(),
                ))),
            },
        }
    }
}

/// One training run of a campaign, between its turns on the compute thread.
///
/// [`Training::start`] fits the surrogate on the labelled and failed candidates (see
/// [`fit_surrogate`]), then resumes the GFlowNet from the given checkpoint (or starts a
/// fresh seeded one). [`Training::advance`] takes `training.steps` steps, each on a batch
/// mixed as `training.mix` says: measured candidates (labelled and failed) replayed by
/// rank, forward trajectories from the policy, and mutations and crossovers of the elites,
/// walked on the proxy's reward (`gfn::propose::reward_walk`) and replayed by rank — the
/// off-policy data of Genetic GFN (Kim et al. 2024).
///
/// One reward: once a proxy exists, every terminal the run trains on — measured, sampled or
/// generated — is rewarded by the proxy's acquisition with the feasibility model, so one
/// value never has two targets; measured values enter through the fit. Before a proxy
/// (fewer than [`MIN_PROXY_LABELS`] successes and no failures) the measured rewards are the
/// only data. Checks `cancel` before every step.
pub(crate) struct Training {
    job: TrainJob,
    data: MeasuredData,
    surrogate: Option<Surrogate>,
    net: GflowNet,
    rng: StdRng,
    resumed_from: Option<i64>,
    elites: Vec<State>,
    measured: Replay,
    measured_count: usize,
    generated: Replay,
    mix: BatchMix,
    explore: Exploration,
    /// Steps taken so far in this run.
    step: usize,
    /// Losses of the last [`LOSS_WINDOW`] steps taken.
    recent: VecDeque<f32>,
    log_z: f32,
    skipped_steps: usize,
    /// Time spent computing, turns only (not waiting for them).
    busy: Duration,
}

impl Training {
    /// Reads the job's data, fits the surrogate and readies the network and the replay
    /// buffers.
    pub(crate) fn start(job: TrainJob) -> Result<Self, JobError> {
        let started = Instant::now();
        let span =
            tracing::info_span!("train", campaign_id = job.campaign_id, run = job.run_number);
        let _entered = span.enter();
        crash_if_switched_on(&job.spec.name);
        let data = MeasuredData::read(&job)?;
        let space = data.space.clone();
        let reward = job.spec.reward;
        let mut rng = StdRng::seed_from_u64(run_seed(job.spec.training.seed, job.run_number));
        let (mut net, resumed_from) = start_network(&job, &space, &mut rng)?;
        let surrogate = fit_surrogate(&job, &data, &mut rng)?;
        if job.cancel.load(Ordering::Relaxed) {
            return Err(JobError::Cancelled);
        }
        let rewarder = Rewarder {
            surrogate: surrogate.as_ref(),
            space: space.as_ref(),
            reward: &reward,
        };
        let elites = data.elites(reward.maximize, job.spec.training.elites);
        let measured = rewarder.measured(&data)?;
        let measured_count = measured.len();
        if resumed_from.is_none() {
            start_log_z(&mut net, &rewarder, &measured, &mut rng)?;
        }
        let measured = Replay::new(measured);
        let batch_size = job.spec.training.batch_size.max(1);
        let mut mix = BatchMix::of(&job.spec, surrogate.is_some(), batch_size);
        let walk = job.spec.round.pool_walk;
        let generated = match mix.local {
            0 => Replay::new(Vec::new()),
            _ => Replay::new(rewarder.generated(&elites, batch_size, walk, &mut rng)?),
        };
        // Without elites to mutate, the local-search share replays measured candidates
        // instead.
        if generated.is_empty() {
            mix.labelled += mix.local;
            mix.local = 0;
        }
        // Conservative search needs elites too.
        if elites.is_empty() {
            mix.labelled += mix.conservative;
            mix.conservative = 0;
        }
        let log_z = net.log_z()?;
        let explore = Exploration {
            temperature: 1.0,
            epsilon: job.spec.training.epsilon as f32,
        };
        Ok(Self {
            data,
            surrogate,
            net,
            rng,
            resumed_from,
            elites,
            measured,
            measured_count,
            generated,
            mix,
            explore,
            step: 0,
            recent: VecDeque::with_capacity(LOSS_WINDOW),
            log_z,
            skipped_steps: 0,
            busy: started.elapsed(),
            job,
        })
    }

    /// Takes steps until the run's `training.steps` are done (true) or `deadline` has
    /// passed (false; at least one step is taken first). A step with a non-finite loss or
    /// gradient is skipped and counted, and a run whose every step is skipped fails.
    /// This step's trajectories that the policy walks itself, forward from the start and
    /// around the elites (conservative search), rewarded by the run's one reward; none
    /// before a proxy exists to reward them.
    fn on_policy_trajectories(&mut self) -> Result<Vec<Trajectory>, JobError> {
        let mix = self.mix;
        if self.surrogate.is_none() || mix.forward + mix.conservative == 0 {
            return Ok(Vec::new());
        }
        let rewarder = Rewarder {
            surrogate: self.surrogate.as_ref(),
            space: self.data.space.as_ref(),
            reward: &self.job.spec.reward,
        };
        let mut forward: Vec<Trajectory> =
            self.net
                .sample_forward(mix.forward, self.explore, &mut self.rng)?;
        let near = conservative_paths(
            &self.net,
            &self.elites,
            mix.conservative,
            self.job.spec.training.conservative_delta,
            self.explore,
            &mut self.rng,
        )?;
        forward.extend(near.into_iter().map(|p| Trajectory {
            states: p.states,
            actions: p.actions,
            log_reward: 0.0,
        }));
        let ends: Vec<State> = forward.iter().map(|t| t.terminal().clone()).collect();
        let rewards = rewarder.log_rewards(&ends)?.unwrap_or_default();
        for (t, lr) in forward.iter_mut().zip(rewards) {
            t.log_reward = lr;
        }
        Ok(forward)
    }

    pub(crate) fn advance(&mut self, deadline: Option<Instant>) -> Result<bool, JobError> {
        let started = Instant::now();
        let span = tracing::info_span!(
            "train",
            campaign_id = self.job.campaign_id,
            run = self.job.run_number
        );
        let _entered = span.enter();
        let steps = self.job.spec.training.steps;
        let mix = self.mix;
        let mut batch: Vec<(State, f32)> = Vec::with_capacity(mix.total());
        let mut first = true;
        while self.step < steps {
            if !first && deadline.is_some_and(|d| Instant::now() >= d) {
                self.busy += started.elapsed();
                return Ok(false);
            }
            first = false;
            if self.job.cancel.load(Ordering::Relaxed) {
                tracing::info!(step = self.step, "training cancelled");
                return Err(JobError::Cancelled);
            }
            let step = self.step;
            self.step += 1;
            batch.clear();
            self.measured
                .sample(mix.labelled, &mut self.rng, &mut batch);
            self.generated.sample(mix.local, &mut self.rng, &mut batch);
            let mut trajectories = self.net.sample_backward(&batch, &mut self.rng)?;
            trajectories.extend(self.on_policy_trajectories()?);
            if trajectories.is_empty() {
                return Err(JobError::Failed("no trajectories to train on".into()));
            }
            let report = self.net.train_step(&trajectories)?;
            self.job.step_counter.inc();
            if report.skipped {
                self.skipped_steps += 1;
                if self.skipped_steps == steps {
                    return Err(JobError::Failed(format!(
                        "training diverged: every step had a non-finite loss or gradient (last loss {})",
                        report.loss
                    )));
                }
                continue;
            }
            if self.recent.len() == LOSS_WINDOW {
                self.recent.pop_front();
            }
            self.recent.push_back(report.loss);
            self.log_z = report.log_z;
            if step % 500 == 499 {
                tracing::debug!(step = step + 1, loss = report.loss, "training");
            }
        }
        self.busy += started.elapsed();
        Ok(true)
    }

    /// The run's checkpoint and figures, once every step is taken.
    pub(crate) fn finish(self) -> Result<TrainOutput, JobError> {
        let span = tracing::info_span!(
            "train",
            campaign_id = self.job.campaign_id,
            run = self.job.run_number
        );
        let _entered = span.enter();
        let total_steps = self.net.steps();
        let quality = self.surrogate.as_ref().and_then(Surrogate::quality);
        let loss = self.recent.iter().map(|l| f64::from(*l)).sum::<f64>()
            / self.recent.len().max(1) as f64;
        let model = Model {
            gfn: self.net,
            surrogate: self.surrogate,
            elites: self.elites,
        };
        let checkpoint = model.to_bytes().map_err(JobError::Checkpoint)?;
        let seconds = self.busy.as_secs_f64();
        let steps = self.job.spec.training.steps;
        let mix = self.mix;
        tracing::info!(steps, loss, seconds, "training finished");
        let metrics = json!({
            "loss": loss,
            "log_z": self.log_z,
            "steps": steps,
            "total_steps": total_steps,
            "skipped_steps": self.skipped_steps,
            "batch_size": self.job.spec.training.batch_size.max(1),
            "candidates": self.data.terminals.len(),
            "failed_candidates": self.data.failed.len(),
            "replayed_measured": self.measured_count,
            "mix": {"labelled": mix.labelled, "forward": mix.forward, "local_search": mix.local},
            "proxy": quality,
            "resumed_from": self.resumed_from,
            "seconds": seconds,
        });
        Ok(TrainOutput {
            steps: steps as u64,
            total_steps,
            loss,
            checkpoint,
            metrics,
        })
    }
}

/// The run's measured candidates, parsed: labelled ones with their scores (pooled over
/// entities) and the failed ones.
struct MeasuredData {
    space: Arc<dyn Space>,
    terminals: Vec<State>,
    scores: Vec<f64>,
    failed: Vec<State>,
}

impl MeasuredData {
    fn read(job: &TrainJob) -> Result<Self, JobError> {
        let space: Arc<dyn Space> = Arc::from(
            job.spec
                .space
                .build()
                .map_err(|e| JobError::Failed(format!("the campaign's space is invalid: {e}")))?,
        );
        if job.data.is_empty() && job.failed.is_empty() {
            return Err(JobError::Failed("no labels to train on".into()));
        }
        let texts: Vec<&str> = job.data.iter().map(|(t, _)| t.as_str()).collect();
        let terminals = parse_states(space.as_ref(), &texts)?;
        let failed_texts: Vec<&str> = job.failed.iter().map(String::as_str).collect();
        let failed = parse_states(space.as_ref(), &failed_texts)?;
        Ok(Self {
            terminals,
            scores: pool_entities(&job.data, &job.entities),
            failed,
            space,
        })
    }

    /// The labelled candidates with their (pooled) scores.
    fn labelled(&self) -> Vec<(State, f64)> {
        self.terminals
            .iter()
            .cloned()
            .zip(self.scores.iter().copied())
            .collect()
    }

    /// The best `k` labelled candidates, best first (ties keep insertion order).
    fn elites(&self, maximize: bool, k: usize) -> Vec<State> {
        let z = proxy::standardise(&self.scores, maximize);
        let mut order: Vec<usize> = (0..self.terminals.len()).collect();
        order.sort_by(|&a, &b| nan_last(z[b] as f32).total_cmp(&nan_last(z[a] as f32)));
        order
            .iter()
            .take(k)
            .map(|&i| self.terminals[i].clone())
            .collect()
    }
}

/// The fault switch of the crash-recovery test: with `FLOWLAB_TEST_CRASH_TRAINING` set to a
/// campaign's name, training that campaign ends the process at once, as running out of
/// memory would. Unset (always, outside that test), it does nothing.
fn crash_if_switched_on(campaign_name: &str) {
    if std::env::var_os("FLOWLAB_TEST_CRASH_TRAINING").is_some_and(|name| name == campaign_name) {
        tracing::error!(
            campaign_name,
            "FLOWLAB_TEST_CRASH_TRAINING: ending the process"
        );
        // Like an abort (no cleanup: the lease and the run stay as they are), without the
        // core dump an abort may leave behind.
        std::process::exit(134);
    }
}

/// The network to train: resumed from the job's checkpoint, or a fresh seeded one (also
/// when the checkpoint cannot be loaded); with the version it resumed from.
fn start_network(
    job: &TrainJob,
    space: &Arc<dyn Space>,
    rng: &mut StdRng,
) -> Result<(GflowNet, Option<i64>), JobError> {
    if let Some((version, bytes)) = &job.resume {
        match GflowNet::from_checkpoint(space.clone(), bytes) {
            Ok(net) => return Ok((net, Some(*version))),
            // A checkpoint that cannot be loaded must not fail every later run: this one
            // starts afresh, and its checkpoint replaces the unreadable one.
            Err(error) => tracing::warn!(
                campaign_id = job.campaign_id,
                version,
                %error,
                "the checkpoint to resume from cannot be loaded; training a fresh network"
            ),
        }
    }
    Ok((
        GflowNet::new(space.clone(), job.spec.model.clone(), rng)?,
        None,
    ))
}

/// The one reward of the run: the proxy's, once there is a proxy.
struct Rewarder<'a> {
    surrogate: Option<&'a Surrogate>,
    space: &'a dyn Space,
    reward: &'a crate::domain::campaign::RewardSpec,
}

impl Rewarder<'_> {
    /// `log R` of `states` under the proxy; `None` before a proxy exists.
    fn log_rewards(&self, states: &[State]) -> Result<Option<Vec<f32>>, JobError> {
        self.surrogate
            .map(|s| proxy_log_rewards(s, self.space, self.reward, states))
            .transpose()
    }

    /// The measured terminals with their `log R`: with a proxy, labelled and failed ones
    /// rewarded by it; before one, the labelled ones by their own scores.
    fn measured(&self, data: &MeasuredData) -> Result<Vec<(State, f32)>, JobError> {
        let mut all = data.terminals.clone();
        all.extend(data.failed.iter().cloned());
        Ok(match self.log_rewards(&all)? {
            Some(rewards) => all.into_iter().zip(rewards).collect(),
            None => data
                .terminals
                .iter()
                .cloned()
                .zip(proxy::training_log_rewards(self.reward, &data.scores))
                .collect(),
        })
    }

    /// Mutations and crossovers of the elites walked uphill on the proxy, with their `log R`:
    /// the off-policy data of Genetic GFN. Empty without a proxy.
    fn generated(
        &self,
        elites: &[State],
        batch_size: usize,
        walk: usize,
        rng: &mut StdRng,
    ) -> Result<Vec<(State, f32)>, JobError> {
        let Some(s) = self.surrogate else {
            return Ok(Vec::new());
        };
        let score = |states: &[State]| -> Result<Vec<f64>, crate::gfn::GfnError> {
            let predictions = s
                .predict(self.space, states)
                .map_err(|e| crate::gfn::GfnError::Score(e.into()))?;
            Ok(s.log_rewards(self.reward, &predictions)
                .into_iter()
                .map(f64::from)
                .collect())
        };
        let pool_size = batch_size * LOCAL_SEARCH_POOL_PER_TRAJECTORY;
        let (pool, scores) = reward_walk(self.space, elites, pool_size, walk, &score, rng)?;
        Ok(pool
            .into_iter()
            .zip(scores.into_iter().map(|v| v as f32))
            .collect())
    }
}

/// A fresh log Z starts at its estimate (number of terminals times the mean reward of
/// uniform draws) rather than at 0.
fn start_log_z(
    net: &mut GflowNet,
    rewarder: &Rewarder<'_>,
    measured: &[(State, f32)],
    rng: &mut StdRng,
) -> Result<(), JobError> {
    let sampled: Vec<f32> = if rewarder.surrogate.is_some() {
        let uniform = Exploration {
            temperature: 1.0,
            epsilon: 1.0,
        };
        let ends: Vec<State> = net
            .sample_forward(LOG_Z_ESTIMATE_SAMPLES, uniform, rng)?
            .into_iter()
            .map(|t| t.terminal().clone())
            .collect();
        rewarder.log_rewards(&ends)?.unwrap_or_default()
    } else {
        measured.iter().map(|(_, r)| *r).collect()
    };
    net.initialise_log_z(&sampled)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::campaign::NewCampaign;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn each_share_of_the_mix_gets_its_trajectories() {
        let mut spec = grid_spec(1);
        spec.training.mix = crate::domain::campaign::TrainingMix {
            labelled: 1.0,
            forward: 1.0,
            local_search: 2.0,
            conservative: 4.0,
        };
        let mix = BatchMix::of(&spec, true, 64);
        assert_eq!(
            (mix.labelled, mix.forward, mix.local, mix.conservative),
            (8, 8, 16, 32)
        );
        assert_eq!(mix.total(), 64);
        // Before a proxy every trajectory replays the labels.
        let early = BatchMix::of(&spec, false, 64);
        assert_eq!((early.labelled, early.conservative), (64, 0));
    }

    fn grid_spec(steps: usize) -> CampaignSpec {
        let body = json!({
            "name": "grid",
            "space": {"type": "grid", "dims": 2, "size": 4},
            "model": {"hidden": 16},
            "training": {"steps": steps, "batch_size": 4, "seed": 3},
        });
        let campaign: NewCampaign = serde_json::from_value(body).expect("campaign body");
        campaign.validate().expect("valid campaign")
    }

    fn job(steps: usize, resume: Option<(i64, Vec<u8>)>) -> TrainJob {
        TrainJob {
            campaign_id: 1,
            spec: grid_spec(steps),
            data: vec![
                ("[0,0]".into(), 0.0),
                ("[3,3]".into(), 2.0),
                ("[1,2]".into(), 1.0),
            ],
            entities: vec![None; 3],
            failed: Vec::new(),
            resume,
            run_number: 1,
            cancel: Arc::new(AtomicBool::new(false)),
            step_counter: prometheus::IntCounter::new("steps", "steps").expect("counter"),
        }
    }

    #[test]
    fn train_returns_a_loadable_checkpoint_with_the_steps_taken() {
        let out = train(job(20, None)).expect("training");
        assert_eq!((out.steps, out.total_steps), (20, 20));
        assert!(out.loss.is_finite());
        let space: Arc<dyn Space> = Arc::from(grid_spec(1).space.build().expect("space"));
        let net = GflowNet::from_checkpoint(space, &out.checkpoint).expect("loads");
        assert_eq!(net.steps(), 20);
        assert_eq!(out.metrics["candidates"], 3);
    }

    #[test]
    fn a_run_taken_one_step_per_turn_trains_exactly_as_in_one_go() {
        let whole = train(job(12, None)).expect("in one go");
        let mut turns = in_turns(job(12, None));
        let mut taken = 0;
        let sliced = loop {
            taken += 1;
            assert!(taken <= 100, "the run never finished");
            // A deadline already passed: each turn takes exactly one step.
            match turns(Instant::now()) {
                Turn::Unfinished => {}
                Turn::Finished(result) => break result.expect("in turns"),
            }
        };
        assert_eq!(taken, 12, "one step per turn");
        assert_eq!((sliced.steps, sliced.loss), (whole.steps, whole.loss));
        let space: Arc<dyn Space> = Arc::from(grid_spec(1).space.build().expect("space"));
        let states = space.enumerate(100).expect("small space");
        let outputs = |bytes: &[u8]| {
            let net = GflowNet::from_checkpoint(space.clone(), bytes).expect("loads");
            net.outputs(&states).expect("outputs")
        };
        assert_eq!(outputs(&sliced.checkpoint), outputs(&whole.checkpoint));
    }

    #[test]
    fn a_run_cancelled_between_turns_ends_cancelled() {
        let j = job(1_000_000, None);
        let cancel = j.cancel.clone();
        let mut turns = in_turns(j);
        assert!(matches!(turns(Instant::now()), Turn::Unfinished));
        cancel.store(true, Ordering::Relaxed);
        assert!(matches!(
            turns(Instant::now()),
            Turn::Finished(Err(JobError::Cancelled))
        ));
    }

    #[test]
    fn train_resumes_from_a_checkpoint_and_counts_total_steps() {
        let first = train(job(10, None)).expect("first run");
        let second = train(job(5, Some((1, first.checkpoint)))).expect("second run");
        assert_eq!((second.steps, second.total_steps), (5, 15));
        assert_eq!(second.metrics["resumed_from"], 1);
    }

    #[test]
    fn an_unloadable_checkpoint_is_replaced_by_a_fresh_network_not_a_failed_run() {
        let first = train(job(10, None)).expect("first run");
        let mut corrupt = first.checkpoint.clone();
        corrupt.truncate(corrupt.len() / 2);
        let second = train(job(5, Some((1, corrupt)))).expect("a fresh run, not a failure");
        assert_eq!((second.steps, second.total_steps), (5, 5));
        assert!(second.metrics["resumed_from"].is_null());
    }

    #[test]
    fn train_is_reproducible_for_a_seed_and_run_number() {
        let a = train(job(10, None)).expect("run a");
        let b = train(job(10, None)).expect("run b");
        assert_eq!(a.loss, b.loss);
        // The safetensors metadata order varies; compare what the networks compute.
        let space: Arc<dyn Space> = Arc::from(grid_spec(1).space.build().expect("space"));
        let states = space.enumerate(100).expect("small space");
        let outputs = |bytes: &[u8]| {
            let net = GflowNet::from_checkpoint(space.clone(), bytes).expect("loads");
            net.outputs(&states).expect("outputs")
        };
        assert_eq!(outputs(&a.checkpoint), outputs(&b.checkpoint));
    }

    /// A campaign whose every label failed still trains, and its policy then proposes
    /// fewer candidates where failure is learnable: on a 16 x 16 grid everything with
    /// x < 12 fails (3/4 of the space), and 48 such failures are all the data.
    #[test]
    fn a_campaign_with_only_failures_learns_to_avoid_them() {
        let body = json!({
            "name": "failing",
            "space": {"type": "grid", "dims": 2, "size": 16},
            "model": {"hidden": 32},
            "training": {"steps": 800, "batch_size": 16, "seed": 1},
        });
        let campaign: NewCampaign = serde_json::from_value(body).expect("campaign body");
        let spec = campaign.validate().expect("valid campaign");
        let failed: Vec<String> = (0..48)
            .map(|i| format!("[{},{}]", (i * 5) % 12, (i * 7) % 16))
            .collect();
        let mut j = job(1, None);
        j.spec = spec.clone();
        j.data = Vec::new();
        j.failed = failed;
        let out = train(j).expect("trains on failures alone");
        let space: Arc<dyn Space> = Arc::from(spec.space.build().expect("space"));
        let model = Model::from_bytes(space.clone(), &out.checkpoint).expect("loads");
        let mut rng = StdRng::seed_from_u64(2);
        let n = 400;
        let samples = model
            .gfn
            .sample_forward(n, Exploration::default(), &mut rng)
            .expect("samples");
        let failing = samples.iter().filter(|t| t.terminal().0[0] < 12).count();
        // Uniform actions fail about 3/4 of the time (more: the walk reaches x = 15 late).
        // The trained policy must fail less than half the time; with n = 400 the standard
        // error of a frequency is at most 0.025, so 0.5 is 10 of them below 0.75.
        let rate = failing as f64 / n as f64;
        assert!(rate < 0.5, "failure rate {rate}");
    }

    #[test]
    fn replicates_of_one_entity_share_their_mean_score() {
        let data: Vec<(String, f64)> = [("a", 1.0), ("b", 3.0), ("c", 5.0), ("d", 7.0)]
            .iter()
            .map(|(v, y)| (v.to_string(), *y))
            .collect();
        let entities = vec![Some("m".to_string()), None, Some("m".to_string()), None];
        assert_eq!(pool_entities(&data, &entities), vec![3.0, 3.0, 3.0, 7.0]);
        assert_eq!(pool_entities(&data, &[]), vec![1.0, 3.0, 5.0, 7.0]);
    }

    #[test]
    fn train_fails_on_a_value_outside_the_space() {
        let mut j = job(5, None);
        j.data.push(("[9,9]".into(), 1.0));
        assert!(matches!(train(j), Err(JobError::Failed(m)) if m.contains("[9,9]")));
    }

    #[test]
    fn train_stops_when_cancelled() {
        let j = job(1_000_000, None);
        j.cancel.store(true, Ordering::Relaxed);
        assert!(matches!(train(j), Err(JobError::Cancelled)));
    }

    #[test]
    fn run_seeds_differ_between_runs() {
        assert_ne!(run_seed(0, 1), run_seed(0, 2));
        assert_ne!(run_seed(0, 1), run_seed(1, 1));
        assert_eq!(run_seed(5, 9), run_seed(5, 9));
    }
}
