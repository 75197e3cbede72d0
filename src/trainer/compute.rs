//! The compute side of the trainer: one named std thread (`flowlab-trainer`) fed by a
//! bounded channel of jobs, each run inside a rayon pool of the configured size, so that
//! training (candle's matrix products included, which split work on the current rayon
//! pool) never uses more cores than configured and never runs on the tokio reactor.
//!
//! A job is a closure; its result goes back on a tokio oneshot. `catch_unwind` around each
//! job turns a panic into a failed job, and the thread carries on with the next one. Jobs
//! check a cancel flag every step. [`train`] is the training job itself: synchronous, no
//! database, only the engine and the reward arithmetic.
//!
//! May import `gfn`, `proxy`, `domain` and metric handles; never the store, sqlx or axum.

use crate::domain::campaign::CampaignSpec;
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
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;

/// Jobs that may wait for the compute thread. The supervisor runs one job at a time, so
/// this only bounds what a bug could pile up.
const QUEUE_CAPACITY: usize = 4;

/// The reported loss is the mean over this many last steps (one step's loss is noisy).
const LOSS_WINDOW: usize = 10;

/// Why a job produced no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JobError {
    /// Training is impossible or broke (bad data, unreadable checkpoint, a panic).
    Failed(String),
    /// The cancel flag was raised (shutdown, or the lease was lost).
    Cancelled,
}

impl From<crate::gfn::GfnError> for JobError {
    fn from(e: crate::gfn::GfnError) -> Self {
        Self::Failed(e.to_string())
    }
}

type Task = Box<dyn FnOnce(&rayon::ThreadPool) + Send>;

/// Submits jobs to the compute thread; cheap to clone. The thread ends once every
/// submitter is dropped and its queue is empty.
#[derive(Debug, Clone)]
pub(crate) struct Submitter {
    tx: SyncSender<Task>,
}

/// Starts the compute thread with a rayon pool of `threads` threads. Returns the submitter
/// and the thread's handle (to join at shutdown), or the reason it could not start.
pub(crate) fn start(threads: usize) -> Result<(Submitter, std::thread::JoinHandle<()>), String> {
    let (tx, rx) = sync_channel::<Task>(QUEUE_CAPACITY);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(|i| format!("flowlab-train-{i}"))
        .build()
        .map_err(|e| format!("cannot build the training thread pool: {e}"))?;
    let thread = std::thread::Builder::new()
        .name("flowlab-trainer".into())
        .spawn(move || run_loop(&rx, &pool))
        .map_err(|e| format!("cannot start the training thread: {e}"))?;
    Ok((Submitter { tx }, thread))
}

fn run_loop(rx: &Receiver<Task>, pool: &rayon::ThreadPool) {
    while let Ok(task) = rx.recv() {
        task(pool);
    }
    tracing::debug!("compute thread stops: no more submitters");
}

impl Submitter {
    /// Queues `job` for the compute thread. The receiver yields its result, or a failure
    /// when it panicked. Fails at once when the queue is full or the thread is gone.
    pub(crate) fn submit<T, F>(
        &self,
        job: F,
    ) -> Result<oneshot::Receiver<Result<T, JobError>>, JobError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, JobError> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let task: Task = Box::new(move |pool: &rayon::ThreadPool| {
            let result =
                catch_unwind(AssertUnwindSafe(|| pool.install(job))).unwrap_or_else(|panic| {
                    Err(JobError::Failed(format!(
                        "training panicked: {}",
                        panic_message(panic.as_ref())
                    )))
                });
            // The waiting side may be gone (shutdown); the result is then of no use.
            let _ = reply.send(result);
        });
        self.tx.try_send(task).map_err(|e| match e {
            TrySendError::Full(_) => JobError::Failed("the training queue is full".into()),
            TrySendError::Disconnected(_) => {
                JobError::Failed("the training thread is not running".into())
            }
        })?;
        Ok(rx)
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Everything one training run needs, read from the database beforehand (the compute
/// thread never touches it).
#[derive(Debug)]
pub(crate) struct TrainJob {
    pub campaign_id: i64,
    pub spec: CampaignSpec,
    /// Labelled candidates: canonical value text and mean raw score.
    pub data: Vec<(String, f64)>,
    /// Parallel to `data`: each candidate's entity, the oracle's identity of the object it
    /// is (candidates sharing one are replicates); `None` when no label named one.
    pub entities: Vec<Option<String>>,
    /// Candidates whose every observation failed: canonical value text.
    pub failed: Vec<String>,
    /// The checkpoint to resume from: its version and bytes.
    pub resume: Option<(i64, Vec<u8>)>,
    /// Number of this run among the campaign's checkpoints (the version it will write);
    /// mixed into the seed so every run draws a new stream, reproducibly.
    pub run_number: u64,
    pub cancel: Arc<AtomicBool>,
    /// Incremented after every optimisation step, so progress shows while the run goes on.
    pub step_counter: prometheus::IntCounter,
}

/// What a finished training run hands back.
#[derive(Debug, Clone)]
pub(crate) struct TrainOutput {
    /// Steps of this run.
    pub steps: u64,
    /// Steps of the network over every run it resumed from.
    pub total_steps: u64,
    /// Mean loss of the last steps.
    pub loss: f64,
    /// Safetensors bytes.
    pub checkpoint: Vec<u8>,
    /// JSON object stored with the checkpoint and the run.
    pub metrics: serde_json::Value,
}

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
/// draws its local-search trajectories from this pool.
const LOCAL_SEARCH_POOL_PER_TRAJECTORY: usize = 16;

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

/// How many of `batch_size` trajectories come from the labels, the policy and local search.
fn batch_shares(spec: &CampaignSpec, with_proxy: bool, batch_size: usize) -> (usize, usize, usize) {
    if !with_proxy {
        return (batch_size, 0, 0);
    }
    let mix = spec.training.mix;
    let total = mix.labelled + mix.forward + mix.local_search;
    let forward = ((batch_size as f64 * mix.forward / total).round() as usize).min(batch_size);
    let local =
        ((batch_size as f64 * mix.local_search / total).round() as usize).min(batch_size - forward);
    (batch_size - forward - local, forward, local)
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

/// Uniform draws whose proxy reward estimates a fresh network's log Z.
const LOG_Z_ESTIMATE_SAMPLES: usize = 256;

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
    space: &dyn Space,
    labelled: &[(State, f64)],
    failed: &[State],
    rng: &mut StdRng,
) -> Result<Option<Surrogate>, JobError> {
    let spec = &job.spec;
    let fit = |labelled: &[(State, f64)], proxy: &crate::domain::campaign::ProxySpec, rng| {
        Surrogate::fit(space, labelled, failed, spec.reward.maximize, proxy, rng)
            .map_err(|e| JobError::Failed(format!("fitting the proxy failed: {e}")))
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
    let predictions = surrogate
        .predict(space, states)
        .map_err(|e| JobError::Failed(format!("the proxy failed: {e}")))?;
    Ok(surrogate.log_rewards(reward, &predictions))
}

/// Trains the campaign's model on its data: fits the surrogate on the labelled and failed
/// candidates (see [`fit_surrogate`]), then resumes the GFlowNet from the given checkpoint
/// (or starts a fresh seeded one) and takes `training.steps` steps, each on a batch mixed as
/// `training.mix` says: measured candidates (labelled and failed) replayed by rank,
/// forward trajectories from the policy, and mutations and crossovers of the elites, walked
/// on the proxy's reward (`gfn::propose::reward_walk`) and replayed by rank — the off-policy
/// data of Genetic GFN (Kim et al. 2024).
///
/// One reward: once a proxy exists, every terminal the run trains on — measured, sampled or
/// generated — is rewarded by the proxy's acquisition with the feasibility model, so one
/// value never has two targets; measured values enter through the fit. Before a proxy
/// (fewer than [`MIN_PROXY_LABELS`] successes and no failures) the measured rewards are the
/// only data. Checks `cancel` before every step.
pub(crate) fn train(job: TrainJob) -> Result<TrainOutput, JobError> {
    let span = tracing::info_span!("train", campaign_id = job.campaign_id, run = job.run_number);
    let _entered = span.enter();
    let started = Instant::now();
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
    let scores = pool_entities(&job.data, &job.entities);
    let failed_texts: Vec<&str> = job.failed.iter().map(String::as_str).collect();
    let failed = parse_states(space.as_ref(), &failed_texts)?;
    let reward = job.spec.reward;

    let mut rng = StdRng::seed_from_u64(run_seed(job.spec.training.seed, job.run_number));
    let (mut net, resumed_from) = match &job.resume {
        Some((version, bytes)) => {
            let net = GflowNet::from_checkpoint(space.clone(), bytes).map_err(|e| {
                JobError::Failed(format!("checkpoint {version} cannot be loaded: {e}"))
            })?;
            (net, Some(*version))
        }
        None => (
            GflowNet::new(space.clone(), job.spec.model.clone(), &mut rng)?,
            None,
        ),
    };
    let labelled_pairs: Vec<(State, f64)> = terminals
        .iter()
        .cloned()
        .zip(scores.iter().copied())
        .collect();
    let surrogate = fit_surrogate(&job, space.as_ref(), &labelled_pairs, &failed, &mut rng)?;
    if job.cancel.load(Ordering::Relaxed) {
        return Err(JobError::Cancelled);
    }
    // Elites: the best labelled candidates, best first (ties keep insertion order).
    let z = proxy::standardise(&scores, reward.maximize);
    let mut order: Vec<usize> = (0..terminals.len()).collect();
    order.sort_by(|&a, &b| nan_last(z[b] as f32).total_cmp(&nan_last(z[a] as f32)));
    let elites: Vec<State> = order
        .iter()
        .take(job.spec.training.elites)
        .map(|&i| terminals[i].clone())
        .collect();
    let measured: Vec<(State, f32)> = match &surrogate {
        Some(s) => {
            let mut all = terminals.clone();
            all.extend(failed.iter().cloned());
            let rewards = proxy_log_rewards(s, space.as_ref(), &reward, &all)?;
            all.into_iter().zip(rewards).collect()
        }
        None => terminals
            .iter()
            .cloned()
            .zip(proxy::training_log_rewards(&reward, &scores))
            .collect(),
    };
    let measured_count = measured.len();
    if resumed_from.is_none() {
        // A fresh log Z starts at its estimate (number of terminals times the mean reward of
        // uniform draws) rather than at 0.
        let sampled: Vec<f32> = match &surrogate {
            Some(s) => {
                let uniform = Exploration {
                    temperature: 1.0,
                    epsilon: 1.0,
                };
                let ends: Vec<State> = net
                    .sample_forward(LOG_Z_ESTIMATE_SAMPLES, uniform, &mut rng)?
                    .into_iter()
                    .map(|t| t.terminal().clone())
                    .collect();
                proxy_log_rewards(s, space.as_ref(), &reward, &ends)?
            }
            None => measured.iter().map(|(_, r)| *r).collect(),
        };
        net.initialise_log_z(&sampled)?;
    }
    let measured = Replay::new(measured);

    let steps = job.spec.training.steps;
    let batch_size = job.spec.training.batch_size.max(1);
    let (mut n_labelled, n_forward, mut n_local) =
        batch_shares(&job.spec, surrogate.is_some(), batch_size);
    let generated = Replay::new(match &surrogate {
        Some(s) if n_local > 0 => {
            let score = |states: &[State]| -> Result<Vec<f64>, crate::gfn::GfnError> {
                let predictions = s
                    .predict(space.as_ref(), states)
                    .map_err(crate::gfn::GfnError::Score)?;
                Ok(s.log_rewards(&reward, &predictions)
                    .into_iter()
                    .map(f64::from)
                    .collect())
            };
            let (pool, scores) = reward_walk(
                space.as_ref(),
                &elites,
                batch_size * LOCAL_SEARCH_POOL_PER_TRAJECTORY,
                job.spec.training.pool_walk,
                &score,
                &mut rng,
            )?;
            pool.into_iter()
                .zip(scores.into_iter().map(|v| v as f32))
                .collect()
        }
        _ => Vec::new(),
    });
    // Without elites to mutate, the local-search share replays measured candidates instead.
    if generated.is_empty() {
        n_labelled += n_local;
        n_local = 0;
    }
    let explore = Exploration {
        temperature: 1.0,
        epsilon: job.spec.training.epsilon as f32,
    };
    let mut recent: VecDeque<f32> = VecDeque::with_capacity(LOSS_WINDOW);
    let mut batch: Vec<(State, f32)> = Vec::with_capacity(batch_size);
    let mut log_z = net.log_z()?;
    let mut skipped_steps = 0;
    for step in 0..steps {
        if job.cancel.load(Ordering::Relaxed) {
            tracing::info!(step, "training cancelled");
            return Err(JobError::Cancelled);
        }
        batch.clear();
        measured.sample(n_labelled, &mut rng, &mut batch);
        generated.sample(n_local, &mut rng, &mut batch);
        let mut trajectories = net.sample_backward(&batch, &mut rng)?;
        if let (Some(s), true) = (&surrogate, n_forward > 0) {
            let mut forward: Vec<Trajectory> = net.sample_forward(n_forward, explore, &mut rng)?;
            let ends: Vec<State> = forward.iter().map(|t| t.terminal().clone()).collect();
            let rewards = proxy_log_rewards(s, space.as_ref(), &reward, &ends)?;
            for (t, lr) in forward.iter_mut().zip(rewards) {
                t.log_reward = lr;
            }
            trajectories.extend(forward);
        }
        if trajectories.is_empty() {
            return Err(JobError::Failed("no trajectories to train on".into()));
        }
        let report = net.train_step(&trajectories)?;
        job.step_counter.inc();
        if report.skipped {
            skipped_steps += 1;
            if skipped_steps == steps {
                return Err(JobError::Failed(format!(
                    "training diverged: every step had a non-finite loss or gradient (last loss {})",
                    report.loss
                )));
            }
            continue;
        }
        if recent.len() == LOSS_WINDOW {
            recent.pop_front();
        }
        recent.push_back(report.loss);
        log_z = report.log_z;
        if step % 500 == 499 {
            tracing::debug!(step = step + 1, loss = report.loss, "training");
        }
    }
    let loss = recent.iter().map(|l| f64::from(*l)).sum::<f64>() / recent.len().max(1) as f64;
    let total_steps = net.steps();
    let quality = surrogate.as_ref().and_then(Surrogate::quality);
    let model = Model {
        gfn: net,
        surrogate,
        elites,
    };
    let checkpoint = model
        .to_bytes()
        .map_err(|e| JobError::Failed(format!("writing the checkpoint failed: {e}")))?;
    let seconds = started.elapsed().as_secs_f64();
    tracing::info!(steps, loss, seconds, "training finished");
    let metrics = json!({
        "loss": loss,
        "log_z": log_z,
        "steps": steps,
        "total_steps": total_steps,
        "skipped_steps": skipped_steps,
        "batch_size": batch_size,
        "candidates": terminals.len(),
        "failed_candidates": failed.len(),
        "replayed_measured": measured_count,
        "mix": {"labelled": n_labelled, "forward": n_forward, "local_search": n_local},
        "proxy": quality,
        "resumed_from": resumed_from,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::campaign::NewCampaign;

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

    fn recv<T>(rx: oneshot::Receiver<Result<T, JobError>>) -> Result<T, JobError> {
        rx.blocking_recv()
            .unwrap_or_else(|_| Err(JobError::Failed("reply dropped".into())))
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
    fn train_resumes_from_a_checkpoint_and_counts_total_steps() {
        let first = train(job(10, None)).expect("first run");
        let second = train(job(5, Some((1, first.checkpoint)))).expect("second run");
        assert_eq!((second.steps, second.total_steps), (5, 15));
        assert_eq!(second.metrics["resumed_from"], 1);
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
    fn train_fails_on_an_unreadable_checkpoint() {
        let err = train(job(5, Some((4, b"not safetensors".to_vec())))).expect_err("fails");
        assert!(
            matches!(&err, JobError::Failed(m) if m.contains("checkpoint 4")),
            "{err:?}"
        );
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
        assert_eq!(train(j).map(|_| ()), Err(JobError::Cancelled));
    }

    #[test]
    fn a_panicking_job_fails_and_the_thread_keeps_serving() {
        let (submitter, thread) = start(1).expect("compute thread");
        let rx = submitter
            .submit(|| -> Result<(), JobError> { panic!("boom") })
            .expect("queued");
        assert_eq!(
            recv(rx),
            Err(JobError::Failed("training panicked: boom".into()))
        );
        let rx = submitter
            .submit(|| Ok(rayon::current_num_threads()))
            .expect("queued");
        assert_eq!(recv(rx), Ok(1), "jobs run inside the configured pool");
        drop(submitter);
        thread
            .join()
            .expect("the thread ends once submitters are gone");
    }

    #[test]
    fn the_pool_has_the_configured_number_of_threads() {
        let (submitter, _thread) = start(2).expect("compute thread");
        let rx = submitter
            .submit(|| Ok(rayon::current_num_threads()))
            .expect("queued");
        assert_eq!(recv(rx), Ok(2));
        let name = submitter
            .submit(|| Ok(std::thread::current().name().map(str::to_string)))
            .expect("queued");
        // `install` runs the job on one of the pool's own threads.
        let name = recv(name).expect("name").unwrap_or_default();
        assert!(name.starts_with("flowlab-train-"), "{name}");
    }

    #[test]
    fn run_seeds_differ_between_runs() {
        assert_ne!(run_seed(0, 1), run_seed(0, 2));
        assert_ne!(run_seed(0, 1), run_seed(1, 1));
        assert_eq!(run_seed(5, 9), run_seed(5, 9));
    }
}
