//! The async side of the trainer: a tokio task that decides which campaign trains next
//! (notifications and a periodic scan feed a [`Schedule`](super::schedule::Schedule)), and for each run takes the
//! campaign's lease, reads the data, hands the computation to the compute thread,
//! heartbeats the lease while it works, and writes the checkpoint only if the lease is
//! still held.
//!
//! No database connection or transaction is held while tensors are computed: every store
//! call is a short statement or transaction before or after the job.
//!
//! May import `store`, `gfn`, `domain`, `metrics` and the trainer's own modules; never axum.

use super::compute::{self, JobError, Submitter, TrainJob, TrainOutput};
use super::recipe;
use super::schedule::Schedule;
use super::{Shared, TrainerConfig};
use crate::domain::campaign::Campaign;
use crate::error::Error;
use crate::metrics::{Metrics, RunOutcome};
use crate::store::training::{LabelledRow, Lease, NewCheckpoint, RunCounts, RunEnd, RunStart};
use crate::store::Store;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

/// How often the database is scanned for campaigns behind their labels (work posted to
/// another process, or before a crash).
const SCAN_EVERY: Duration = Duration::from_secs(1);

/// Runs of one campaign in a row that may die with their trainer (the process crashed, out
/// of memory say) before the campaign is marked `failed`: a restart must not crash again.
const MAX_ABANDONED_RUNS: i64 = 3;

/// Runs at a time. They take turns on the one compute thread (`--training-slice` each), so
/// a long run no longer holds up the others; more would spread this process's training
/// thin while holding leases that another replica could use.
const MAX_RUNS: usize = 8;

/// Milliseconds since the Unix epoch on this machine's clock. Lease times are compared on
/// the database's clock ([`Store::clock_ms`]); this is only the fallback for recording a
/// failure when the database cannot even tell the time.
pub(super) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What a run needs from the supervisor; cheap to clone.
#[derive(Debug, Clone)]
struct RunContext {
    store: Store,
    config: Arc<TrainerConfig>,
    shared: Arc<Shared>,
    submitter: Option<Submitter>,
    metrics: Metrics,
    /// `--max-training-memory` in units of [`MEMORY_UNIT`]: each run holds the units of its
    /// training step's estimate while it runs. Closed when the trainer stops.
    memory: Arc<Semaphore>,
    memory_units: u32,
}

/// The grain of the training memory total: a MiB, so that a permit count fits a `u32`.
const MEMORY_UNIT: u128 = 1 << 20;

/// Units of [`MEMORY_UNIT`] covering `bytes`, at least 1 and at most `total` (one run may
/// always start, however large).
fn memory_units(bytes: u128, total: u32) -> u32 {
    let units = bytes.div_ceil(MEMORY_UNIT).max(1);
    u32::try_from(units).unwrap_or(u32::MAX).min(total.max(1))
}

/// How a run ended, for the log.
#[derive(Debug)]
enum Outcome {
    /// Another owner holds the lease; it trains the campaign.
    LeaseHeld,
    /// Nothing new to train on.
    UpToDate,
    Trained {
        version: i64,
        steps: u64,
        loss: f64,
    },
    Failed(String),
    Cancelled(String),
}

/// The supervisor task's state.
pub(super) struct Supervisor {
    pub(super) store: Store,
    pub(super) config: Arc<TrainerConfig>,
    pub(super) shared: Arc<Shared>,
    pub(super) metrics: Metrics,
    pub(super) wake: mpsc::UnboundedReceiver<i64>,
    pub(super) stop: watch::Receiver<bool>,
}

impl Supervisor {
    /// Schedules the campaigns the database says need training (labels stored by another
    /// replica, or before a restart).
    async fn scan(&self) {
        match self.store.campaigns_to_train().await {
            Ok(ids) => self.shared.with_schedule(|schedule| {
                for id in ids {
                    schedule.found(id);
                }
            }),
            Err(e) => tracing::warn!(error = %e, "scan for campaigns to train failed"),
        }
        self.shared.scans.send_modify(|n| *n += 1);
    }

    /// Runs until `stop` turns true (or its sender is dropped), then cancels the running
    /// job, waits for its run to be recorded and its lease released, and joins the compute
    /// thread.
    pub(super) async fn run(mut self) {
        let (submitter, thread) = match compute::start(self.config.threads, self.config.slice) {
            Ok((submitter, thread)) => (Some(submitter), Some(thread)),
            Err(error) => {
                let reason = error.to_string();
                // Runs then fail with this reason instead of the server refusing to start.
                tracing::error!(%reason, "the training thread did not start");
                (None, None)
            }
        };
        let memory_units = memory_units(
            u128::from(self.config.max_training_memory),
            u32::try_from(Semaphore::MAX_PERMITS).unwrap_or(u32::MAX),
        );
        let context = RunContext {
            store: self.store.clone(),
            config: self.config.clone(),
            shared: self.shared.clone(),
            submitter,
            metrics: self.metrics.clone(),
            memory: Arc::new(Semaphore::new(memory_units as usize)),
            memory_units,
        };
        let mut scan = tokio::time::interval(SCAN_EVERY);
        scan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut runs: JoinSet<i64> = JoinSet::new();
        let mut cancels: HashMap<i64, Arc<AtomicBool>> = HashMap::new();
        loop {
            while runs.len() < MAX_RUNS {
                let Some(campaign_id) = self.shared.with_schedule(Schedule::next) else {
                    break;
                };
                let cancel = Arc::new(AtomicBool::new(false));
                cancels.insert(campaign_id, cancel.clone());
                let context = context.clone();
                // The inner task turns a panic of the run into a JoinError we can pair with
                // its campaign, so the schedule never keeps a campaign "running" forever.
                runs.spawn(async move {
                    let run = tokio::spawn(run_campaign(context, campaign_id, cancel));
                    if let Err(e) = run.await {
                        tracing::error!(campaign_id, error = %e, "training run task failed");
                    }
                    campaign_id
                });
            }
            tokio::select! {
                changed = self.stop.changed() => {
                    if changed.is_err() || *self.stop.borrow() {
                        break;
                    }
                }
                Some(joined) = runs.join_next() => {
                    if let Ok(campaign_id) = joined {
                        cancels.remove(&campaign_id);
                        self.shared.with_schedule(|s| s.finish(campaign_id));
                    }
                }
                woken = self.wake.recv() => {
                    // The schedule was updated by `notify_labels`; this only wakes the loop.
                    if woken.is_none() {
                        break;
                    }
                }
                _ = scan.tick() => self.scan().await,
            }
        }
        tracing::info!("trainer stopping");
        self.shared.stopping.store(true, Ordering::Relaxed);
        // Runs waiting for their share of the training memory stop waiting.
        context.memory.close();
        for cancel in cancels.values() {
            cancel.store(true, Ordering::Relaxed);
        }
        while runs.join_next().await.is_some() {}
        drop(context);
        if let Some(thread) = thread {
            let joined = tokio::task::spawn_blocking(move || thread.join()).await;
            if !matches!(joined, Ok(Ok(()))) {
                tracing::warn!("the training thread did not stop cleanly");
            }
        }
        tracing::info!("trainer stopped");
    }
}

/// One attempt to train `campaign_id`: lease, run, record, release, wake waiters.
#[tracing::instrument(name = "training_run", skip_all, fields(campaign_id = campaign_id, owner = %context.shared.owner, run_id = tracing::field::Empty))]
async fn run_campaign(context: RunContext, campaign_id: i64, cancel: Arc<AtomicBool>) {
    // Should this task be dropped unfinished (the runtime shutting down without a graceful
    // `shutdown`), the job on the compute thread must not train on for nobody.
    let _cancel_on_drop = CancelOnDrop(cancel.clone());
    let started = Instant::now();
    let outcome = attempt(&context, campaign_id, &cancel).await;
    let seconds = started.elapsed().as_secs_f64();
    let ended = |outcome, loss| {
        context
            .metrics
            .training_run_ended(campaign_id, outcome, seconds, loss);
    };
    match outcome {
        Ok(Outcome::Trained {
            version,
            steps,
            loss,
        }) => {
            tracing::info!(version, steps, loss, "checkpoint written");
            ended(RunOutcome::Succeeded, Some(loss));
        }
        Ok(Outcome::Failed(reason)) => {
            tracing::warn!(%reason, "training failed");
            ended(RunOutcome::Failed, None);
        }
        Ok(Outcome::Cancelled(reason)) => {
            tracing::info!(%reason, "training cancelled");
            ended(RunOutcome::Cancelled, None);
        }
        Ok(Outcome::LeaseHeld) => tracing::debug!("another trainer holds the lease"),
        Ok(Outcome::UpToDate) => tracing::debug!("the model is up to date"),
        Err(e) => {
            tracing::error!(error = %e, "training run could not be carried out");
            ended(RunOutcome::Error, None);
        }
    }
    context.shared.signal(campaign_id);
}

/// Raises the cancel flag when dropped.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

async fn attempt(
    context: &RunContext,
    campaign_id: i64,
    cancel: &Arc<AtomicBool>,
) -> Result<Outcome, Error> {
    let store = &context.store;
    let campaign = match store.campaign(campaign_id).await {
        Ok(c) => c,
        Err(Error::NotFound { .. }) => return Ok(Outcome::UpToDate),
        Err(e) => return Err(e),
    };
    // Held until the run is recorded; taken before the lease, so that a run waiting for
    // memory holds nothing another replica could use.
    let Some(_memory) = reserve_memory(context, &campaign).await else {
        return Ok(Outcome::Cancelled("the trainer is shutting down".into()));
    };
    let ttl_ms = lease_ttl_ms(&context.config);
    let Some(lease) = store
        .acquire_lease(
            campaign_id,
            &context.shared.owner,
            store.clock_ms().await?,
            ttl_ms,
        )
        .await?
    else {
        return Ok(Outcome::LeaseHeld);
    };
    let outcome = under_lease(context, &campaign, &lease, cancel).await;
    if let Err(e) = store.release_lease(&lease).await {
        // It expires on its own after the TTL.
        tracing::warn!(error = %e, "could not release the training lease");
    }
    outcome
}

/// Waits until the campaign's training step fits beside the runs in progress
/// (`--max-training-memory`) and returns its share; `None` once the trainer is stopping.
/// A campaign whose space cannot be built takes the least share: its run fails at once.
async fn reserve_memory(context: &RunContext, campaign: &Campaign) -> Option<OwnedSemaphorePermit> {
    let need = campaign.spec.build_space().map_or(0, |space| {
        crate::proxy::campaign_cost(&campaign.spec, space.as_ref())
            .training_step_bytes_under(context.config.max_step_memory)
    });
    let units = memory_units(need, context.memory_units);
    if context.memory.available_permits() < units as usize {
        tracing::info!(
            need_mib = units,
            free_mib = context.memory.available_permits(),
            "waiting for training memory (--max-training-memory)"
        );
    }
    context.memory.clone().acquire_many_owned(units).await.ok()
}

fn lease_ttl_ms(config: &TrainerConfig) -> i64 {
    i64::try_from(config.lease_ttl.as_millis()).unwrap_or(i64::MAX)
}

/// The part of a run that holds the lease.
async fn under_lease(
    context: &RunContext,
    campaign: &Campaign,
    lease: &Lease,
    cancel: &Arc<AtomicBool>,
) -> Result<Outcome, Error> {
    let store = &context.store;
    // Counted before the data is read: the data holds at least these observations, so the
    // checkpoint never claims labels it did not see (one more run fixes an undercount).
    // Failed observations count: they are information (the feasibility the model learns),
    // and a campaign whose whole batch failed must not repeat the same failures untrained.
    let (labels, observations) = store.observation_counts(campaign.id).await?;
    let newest = store.newest_checkpoint(campaign.id).await?;
    if observations == 0
        || newest
            .as_ref()
            .is_some_and(|c| c.trained_on_observations >= observations)
    {
        return Ok(Outcome::UpToDate);
    }
    if context.shared.stopping.load(Ordering::Relaxed) {
        return Ok(Outcome::Cancelled("the trainer is shutting down".into()));
    }
    let counts = RunCounts {
        labels,
        observations,
    };
    let started = store
        .begin_training_run(lease, counts, MAX_ABANDONED_RUNS, store.clock_ms().await?)
        .await?;
    let run_id = match started {
        RunStart::Started(run_id) => run_id,
        RunStart::LeaseLost => {
            return Ok(Outcome::Cancelled(
                "the lease was lost before the run began".into(),
            ))
        }
        RunStart::GaveUp(reason) => {
            tracing::error!(campaign_id = campaign.id, %reason, "training given up");
            return Ok(Outcome::Failed(reason));
        }
    };
    tracing::Span::current().record("run_id", run_id);
    let resume = newest.as_ref().map(|c| c.version);
    let result = compute_under_lease(context, campaign, lease, cancel, resume).await;
    match record(context, lease, run_id, counts, result).await {
        Ok(outcome) => Ok(outcome),
        Err(e) => {
            // Recorded as a failure if the database lets us (the next run closes it
            // otherwise); the cause also goes to the log.
            let reason = format!("storage error during training: {e}");
            if let Err(e2) = store
                .end_training_run(
                    lease,
                    run_id,
                    RunEnd::Failed,
                    &reason,
                    store.clock_ms().await.unwrap_or_else(|_| now_ms()),
                )
                .await
            {
                tracing::warn!(error = %e2, "could not record the failed run");
            }
            Err(e)
        }
    }
}

/// Writes what the computation produced: the checkpoint (fenced by the lease), or the
/// failure or cancellation.
async fn record(
    context: &RunContext,
    lease: &Lease,
    run_id: i64,
    counts: RunCounts,
    result: Result<(TrainOutput, bool), RunError>,
) -> Result<Outcome, Error> {
    let store = &context.store;
    let now = store.clock_ms().await?;
    match result {
        Ok((output, false)) => {
            let metrics = output.metrics.to_string();
            let checkpoint = NewCheckpoint {
                weights: &output.checkpoint,
                trained_on_labels: counts.labels,
                trained_on_observations: counts.observations,
                total_steps: i64::try_from(output.total_steps).unwrap_or(i64::MAX),
                run_steps: i64::try_from(output.steps).unwrap_or(i64::MAX),
                loss: Some(output.loss),
                metrics: &metrics,
                keep_versions: context.config.keep_checkpoints,
            };
            match store
                .commit_checkpoint(lease, run_id, &checkpoint, now)
                .await?
            {
                Some(version) => Ok(Outcome::Trained {
                    version,
                    steps: output.steps,
                    loss: output.loss,
                }),
                None => {
                    let reason = "the lease was lost before the checkpoint was written";
                    store
                        .end_training_run(lease, run_id, RunEnd::Cancelled, reason, now)
                        .await?;
                    Ok(Outcome::Cancelled(reason.into()))
                }
            }
        }
        Ok((_, true)) | Err(RunError::Job(JobError::Cancelled)) => {
            let reason = if context.shared.stopping.load(Ordering::Relaxed) {
                "the trainer is shutting down"
            } else {
                "the lease was lost while training"
            };
            store
                .end_training_run(lease, run_id, RunEnd::Cancelled, reason, now)
                .await?;
            Ok(Outcome::Cancelled(reason.into()))
        }
        Err(RunError::Job(error)) => {
            let reason = error.to_string();
            store
                .end_training_run(lease, run_id, RunEnd::Failed, &reason, now)
                .await?;
            Ok(Outcome::Failed(reason))
        }
        Err(RunError::Store(e)) => Err(e),
    }
}

#[derive(Debug)]
enum RunError {
    Job(JobError),
    Store(Error),
}

impl From<Error> for RunError {
    fn from(e: Error) -> Self {
        Self::Store(e)
    }
}

/// Every `stride`-th id (roughly) spreads at most `cap` rows evenly over `count`.
fn stride(count: i64, cap: usize) -> i64 {
    let cap = cap_i64(cap).max(1);
    ((count + cap - 1) / cap).max(1)
}

fn cap_i64(cap: usize) -> i64 {
    i64::try_from(cap).unwrap_or(i64::MAX)
}

/// The labelled candidates one run trains on, in insertion order: all of them up to `cap`;
/// beyond it, the best tenth of `cap` (local search and the proxy's upper range need them)
/// and an even spread of the others, so that the run's memory and time stay bounded however
/// large the campaign grows.
async fn read_labelled(
    store: &Store,
    campaign_id: i64,
    maximize: bool,
    cap: usize,
) -> Result<Vec<LabelledRow>, Error> {
    let count = store.labelled_count(campaign_id).await?;
    if count <= cap_i64(cap) {
        return store.labelled_data(campaign_id, 1, count).await;
    }
    let best_n = cap / 10;
    let best = store
        .labelled_best(campaign_id, maximize, cap_i64(best_n))
        .await?;
    let spread_n = cap - best.len();
    let spread = store
        .labelled_data(campaign_id, stride(count, spread_n), cap_i64(spread_n))
        .await?;
    let mut rows: Vec<LabelledRow> = best;
    let taken: std::collections::HashSet<i64> = rows.iter().map(|r| r.0).collect();
    rows.extend(spread.into_iter().filter(|r| !taken.contains(&r.0)));
    rows.sort_by_key(|r| r.0);
    Ok(rows)
}

/// The stored weights of a checkpoint a run resumes from.
async fn checkpoint_bytes(
    store: &Store,
    campaign_id: i64,
    version: i64,
) -> Result<Vec<u8>, RunError> {
    store
        .checkpoint_weights(campaign_id, version)
        .await?
        .ok_or_else(|| RunError::Job(JobError::Failed(format!("checkpoint {version} vanished"))))
}

/// What one run trains on: the labelled values with their mean rewards, their entities (in
/// the same order), and the values that only ever failed; each at most `cap`.
async fn read_training_data(
    store: &Store,
    campaign: &Campaign,
    cap: usize,
) -> Result<TrainingData, Error> {
    let labelled = read_labelled(store, campaign.id, campaign.spec.reward.maximize, cap).await?;
    let mut data = Vec::with_capacity(labelled.len());
    let mut entities = Vec::with_capacity(labelled.len());
    for (_, value, reward, entity) in labelled {
        data.push((value, reward));
        entities.push(entity);
    }
    let failed_count = store.failed_count(campaign.id).await?;
    let failed = store
        .failed_values(campaign.id, stride(failed_count, cap), cap_i64(cap))
        .await?;
    Ok((data, entities, failed))
}

/// Labelled values with mean rewards, their entities, failed values.
type TrainingData = (Vec<(String, f64)>, Vec<Option<String>>, Vec<String>);

/// Reads the data and the checkpoint to resume from, runs the job on the compute thread
/// and heartbeats the lease until it answers. Returns the output and whether the lease was
/// lost meanwhile.
async fn compute_under_lease(
    context: &RunContext,
    campaign: &Campaign,
    lease: &Lease,
    cancel: &Arc<AtomicBool>,
    resume: Option<i64>,
) -> Result<(TrainOutput, bool), RunError> {
    // Before reading anything: a campaign stored before the limit was lowered (or before it
    // existed) fails its run with the reason instead of running the process out of memory.
    let space = campaign.spec.build_space()?;
    crate::proxy::campaign_cost(&campaign.spec, space.as_ref())
        .admit_training(context.config.max_step_memory)
        .map_err(|e| RunError::Job(JobError::Failed(format!("refused: {e}"))))?;
    drop(space);
    let store = &context.store;
    let (data, entities, failed) =
        read_training_data(store, campaign, context.config.max_training_labels).await?;
    let resume = match resume {
        Some(v) => Some((v, checkpoint_bytes(store, campaign.id, v).await?)),
        None => None,
    };
    let run_number = resume.as_ref().map_or(0, |(v, _)| *v).unsigned_abs() + 1;
    let job = TrainJob {
        campaign_id: campaign.id,
        spec: campaign.spec.clone(),
        data,
        entities,
        failed,
        resume,
        run_number,
        cancel: cancel.clone(),
        step_counter: context.metrics.training_steps(),
    };
    tracing::debug!(
        labelled = job.data.len(),
        with_entity = job.entities.iter().flatten().count(),
        failed = job.failed.len(),
        "training data read"
    );
    if context.shared.stopping.load(Ordering::Relaxed) {
        return Err(RunError::Job(JobError::Cancelled));
    }
    let submitter = context.submitter.as_ref().ok_or_else(|| {
        RunError::Job(JobError::Failed(
            "the training thread is not running".into(),
        ))
    })?;
    let mut reply = submitter
        .submit_turns(recipe::in_turns(job))
        .map_err(RunError::Job)?;

    let period = (context.config.lease_ttl / 3).max(Duration::from_millis(100));
    let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let ttl_ms = lease_ttl_ms(&context.config);
    let mut lost = false;
    let result = loop {
        tokio::select! {
            result = &mut reply => break result,
            _ = beat.tick() => {
                let renewed = match store.clock_ms().await {
                    Ok(now) => store.renew_lease(lease, now.saturating_add(ttl_ms)).await,
                    Err(e) => Err(e),
                };
                match renewed {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!("training lease lost; cancelling the run");
                        lost = true;
                        cancel.store(true, Ordering::Relaxed);
                    }
                    // Not proof of loss: the write at the end is fenced anyway.
                    Err(e) => tracing::warn!(error = %e, "lease heartbeat failed"),
                }
            }
        }
    };
    let output = result
        .unwrap_or_else(|_| Err(JobError::Failed("the training thread stopped".into())))
        .map_err(RunError::Job)?;
    Ok((output, lost))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use super::*;
    use crate::domain::campaign::NewCampaign;
    use crate::domain::label::{LabelTarget, NewLabel};

    /// A SQLite store with one campaign holding `n` labelled values `v0..` whose reward is
    /// their index.
    async fn campaign_with_labels(n: usize) -> (Store, i64) {
        let store = Store::connect("sqlite::memory:").await.expect("connects");
        store.migrate().await.expect("migrates");
        let body = serde_json::json!({
            "name": "labels",
            "space": {"type": "grid", "dims": 2, "size": 4},
        });
        let campaign: NewCampaign = serde_json::from_value(body).expect("campaign body");
        let spec = campaign.validate().expect("valid campaign");
        let id = store.insert_campaign(&spec).await.expect("stored").id;
        let labels: Vec<NewLabel> = (0..n)
            .map(|i| NewLabel {
                target: LabelTarget::Value {
                    campaign_id: id,
                    value: format!("\"v{i}\""),
                },
                reward: Some(i as f64),
                failed: false,
                error: None,
                key: None,
                metadata: None,
                entity: None,
            })
            .collect();
        store.insert_labels(&labels).await.expect("labels");
        (store, id)
    }

    #[tokio::test]
    async fn a_campaign_below_the_cap_trains_on_every_label_in_order() {
        let (store, id) = campaign_with_labels(300).await;
        let rows = read_labelled(&store, id, true, 300).await.expect("read");
        let rewards: Vec<f64> = rows.iter().map(|r| r.2).collect();
        assert_eq!(rewards, (0..300).map(|i| i as f64).collect::<Vec<_>>());
    }

    /// Beyond the cap: at most the cap, the best tenth of it whichever end is best, and the
    /// rest spread over the whole campaign, in insertion order.
    #[tokio::test]
    async fn beyond_the_cap_a_run_reads_the_best_and_an_even_spread() {
        let (store, id) = campaign_with_labels(3000).await;
        for maximize in [true, false] {
            let rows = read_labelled(&store, id, maximize, 300)
                .await
                .expect("read");
            assert!(rows.len() <= 300 && rows.len() >= 250, "{}", rows.len());
            assert!(rows.windows(2).all(|w| w[0].0 < w[1].0), "insertion order");
            let rewards: Vec<f64> = rows.iter().map(|r| r.2).collect();
            let best: Vec<f64> = if maximize {
                (2970..3000).map(|i| i as f64).collect()
            } else {
                (0..30).map(|i| i as f64).collect()
            };
            for b in &best {
                assert!(rewards.contains(b), "best reward {b} missing");
            }
            // The spread reaches both ends of the campaign, not only its start.
            let spread: Vec<f64> = rewards
                .iter()
                .copied()
                .filter(|r| !best.contains(r))
                .collect();
            let (low, high) = (spread[0], spread[spread.len() - 1]);
            assert!(low < 100.0 && high > 2800.0, "spread {low}..{high}");
        }
    }

    #[test]
    fn memory_units_round_up_and_never_exceed_the_total() {
        assert_eq!(memory_units(0, 768), 1, "every run holds something");
        assert_eq!(memory_units(1, 768), 1);
        assert_eq!(memory_units(MEMORY_UNIT, 768), 1);
        assert_eq!(memory_units(MEMORY_UNIT + 1, 768), 2);
        assert_eq!(
            memory_units(300 * MEMORY_UNIT, 256),
            256,
            "one run always fits"
        );
        assert_eq!(memory_units(u128::MAX, 768), 768);
        assert_eq!(memory_units(5 * MEMORY_UNIT, 0), 1);
    }

    #[test]
    fn the_stride_spreads_at_most_the_cap() {
        assert_eq!(stride(10, 100), 1);
        assert_eq!(stride(1000, 100), 10);
        assert_eq!(stride(1001, 100), 11);
        assert_eq!(stride(0, 100), 1);
    }
}
