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
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::collections::VecDeque;
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

/// Trains the campaign's model on its data: fits the surrogate on the labelled and failed
/// candidates (once there are [`MIN_PROXY_LABELS`]), then resumes the GFlowNet from the
/// given checkpoint (or starts a fresh seeded one) and takes `training.steps` steps, each on
/// a batch mixed as `training.mix` says: backward trajectories from labelled candidates
/// with their measured reward, forward trajectories from the policy rewarded by the proxy,
/// and backward trajectories from mutations and crossovers of the elites, walked on the
/// proxy's reward as rounds walk them (`gfn::propose::reward_walk`) and rewarded by the
/// proxy. Failed candidates only ever teach the proxy's feasibility model. Checks `cancel`
/// before every step.
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
    if job.data.is_empty() {
        return Err(JobError::Failed(
            "no labelled candidates to train on".into(),
        ));
    }
    let texts: Vec<&str> = job.data.iter().map(|(t, _)| t.as_str()).collect();
    let terminals = parse_states(space.as_ref(), &texts)?;
    let scores: Vec<f64> = job.data.iter().map(|(_, y)| *y).collect();
    let failed_texts: Vec<&str> = job.failed.iter().map(String::as_str).collect();
    let failed = parse_states(space.as_ref(), &failed_texts)?;
    let reward = job.spec.reward;

    let mut rng = StdRng::seed_from_u64(run_seed(job.spec.training.seed, job.run_number));
    let surrogate = if terminals.len() >= MIN_PROXY_LABELS {
        let labelled: Vec<(State, f64)> = terminals
            .iter()
            .cloned()
            .zip(scores.iter().copied())
            .collect();
        let fitted = Surrogate::fit(
            space.as_ref(),
            &labelled,
            &failed,
            reward.maximize,
            &job.spec.training.proxy,
            &mut rng,
        )
        .map_err(|e| JobError::Failed(format!("fitting the proxy failed: {e}")))?;
        Some(fitted)
    } else {
        None
    };
    if job.cancel.load(Ordering::Relaxed) {
        return Err(JobError::Cancelled);
    }
    let z = proxy::standardise(&scores, reward.maximize);
    let labelled_log_rewards = match &surrogate {
        Some(s) => s.measured_log_rewards(&reward, &z),
        None => proxy::training_log_rewards(&reward, &scores),
    };
    // Elites: the best labelled candidates, best first (ties keep insertion order).
    let mut order: Vec<usize> = (0..terminals.len()).collect();
    order.sort_by(|&a, &b| z[b].total_cmp(&z[a]));
    let elites: Vec<State> = order
        .iter()
        .take(job.spec.training.elites)
        .map(|&i| terminals[i].clone())
        .collect();
    let labelled: Vec<(State, f32)> = terminals.into_iter().zip(labelled_log_rewards).collect();

    let (mut net, resumed_from) = match &job.resume {
        Some((version, bytes)) => {
            let net = GflowNet::from_checkpoint(space.clone(), bytes).map_err(|e| {
                JobError::Failed(format!("checkpoint {version} cannot be loaded: {e}"))
            })?;
            (net, Some(*version))
        }
        None => {
            let mut net = GflowNet::new(space.clone(), job.spec.model.clone(), &mut rng)?;
            // A fresh log Z starts at its estimate from the labels rather than at 0.
            let log_rewards: Vec<f32> = labelled.iter().map(|(_, r)| *r).collect();
            net.initialise_log_z(&log_rewards)?;
            (net, None)
        }
    };

    let steps = job.spec.training.steps;
    let batch_size = job.spec.training.batch_size.max(1);
    let (n_labelled, n_forward, n_local) = batch_shares(&job.spec, surrogate.is_some(), batch_size);
    let local_pool: Vec<(State, f32)> = match &surrogate {
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
    };
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
        batch
            .extend((0..n_labelled).map(|_| labelled[rng.random_range(0..labelled.len())].clone()));
        if !local_pool.is_empty() {
            batch.extend(
                (0..n_local).map(|_| local_pool[rng.random_range(0..local_pool.len())].clone()),
            );
        }
        let mut trajectories = net.sample_backward(&batch, &mut rng)?;
        if let (Some(s), true) = (&surrogate, n_forward > 0) {
            let mut forward: Vec<Trajectory> = net.sample_forward(n_forward, explore, &mut rng)?;
            let ends: Vec<State> = forward.iter().map(|t| t.terminal().clone()).collect();
            let predictions = s
                .predict(space.as_ref(), &ends)
                .map_err(|e| JobError::Failed(format!("the proxy failed: {e}")))?;
            for (t, lr) in forward.iter_mut().zip(s.log_rewards(&reward, &predictions)) {
                t.log_reward = lr;
            }
            trajectories.extend(forward);
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
        "candidates": labelled.len(),
        "failed_candidates": failed.len(),
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
