//! The background trainer: retrains a campaign's GFlowNet when new labels arrive, on a
//! dedicated compute thread, under a per-campaign lease in the database; keeps a cache of
//! loaded checkpoints for rounds; lets requests wait for the model to catch up.
//!
//! - `schedule`: which campaign trains next (pure; coalesces notifications).
//! - `supervisor`: the tokio task that takes leases, heartbeats them, and records runs.
//! - `compute`: the named compute thread with its rayon pool, and the training job.
//!
//! May import `store`, `gfn`, `proxy`, `domain` and `metrics`; never axum.

mod compute;
mod recipe;
mod schedule;
mod supervisor;

use crate::error::Error;
use crate::gfn::Space;
use crate::metrics::Metrics;
use crate::model::Model;
use crate::store::Store;
use schedule::Schedule;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// How often `wait_for_model` re-reads the database at first: another process may be the
/// trainer, and its progress only shows there. The pause doubles up to [`WAIT_POLL_MAX`]
/// (training here wakes the waiters at once; the polls only serve other replicas).
const WAIT_POLL: Duration = Duration::from_millis(100);
const WAIT_POLL_MAX: Duration = Duration::from_secs(1);

/// Requests that may wait for a model at once; more answer 503 at once rather than
/// holding a connection each and polling the database together.
pub const MAX_MODEL_WAITERS: usize = 256;

/// Campaign models kept loaded; the least recently used is dropped beyond this.
const CACHED_MODELS: usize = 64;

/// Settings of the trainer.
#[derive(Debug, Clone)]
pub struct TrainerConfig {
    /// Threads the compute side may use (candle's matrix products included).
    pub threads: usize,
    /// How long a training lease lasts without a heartbeat.
    pub lease_ttl: Duration,
    /// This process's name in leases and training runs.
    pub owner: String,
    /// Checkpoint versions kept per campaign, the newest included.
    pub keep_checkpoints: i64,
    /// Longest turn of one run on the compute thread while other runs wait for theirs.
    pub slice: Duration,
    /// Most bytes a training step may need (`--max-step-memory`): a campaign stored before
    /// the limit, or under a larger one, fails its run with the reason instead of running
    /// the process out of memory.
    pub max_step_memory: u64,
    /// Most bytes the training steps of the runs in progress may need together
    /// (`--max-training-memory`); one run may always start.
    pub max_training_memory: u64,
    /// Most labelled candidates one run reads (`--max-training-labels`).
    pub max_training_labels: usize,
}

/// A cheap handle on the trainer, held by the HTTP state.
#[derive(Debug, Clone)]
pub struct TrainerHandle {
    store: Store,
    config: Arc<TrainerConfig>,
    inner: Arc<Inner>,
}

/// A loaded checkpoint: its version and the model.
pub type LoadedModel = (i64, Arc<Model>);

/// One campaign's cached model with the newest version it stood for when loaded (a newer
/// one that could not be loaded leaves an older model standing for it); the async lock makes
/// concurrent requests for a new version load it once.
type ModelSlot = Arc<tokio::sync::Mutex<Option<(i64, LoadedModel)>>>;

/// Older versions tried, newest first, when the newest checkpoint cannot be loaded.
const FALLBACK_VERSIONS: i64 = 8;

/// What the handles share. Dropping the last handle stops the supervisor.
#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    wake: mpsc::UnboundedSender<i64>,
    stop: watch::Sender<bool>,
    supervisor: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Loaded models by campaign, with when each was last asked for.
    models: Mutex<HashMap<i64, (ModelSlot, std::time::Instant)>>,
    /// Permits of the requests waiting for a model.
    waiters: Arc<tokio::sync::Semaphore>,
}

/// State shared by the handle and the supervisor task.
#[derive(Debug)]
pub(crate) struct Shared {
    /// This trainer's name in leases: the configured owner and a random suffix, so two
    /// trainers in one process (tests, embedding) never mistake each other's leases.
    owner: String,
    schedule: Mutex<Schedule>,
    /// Bumped after every run of a campaign, to wake `wait_for_model`.
    signals: Mutex<HashMap<i64, watch::Sender<u64>>>,
    /// Set once shutdown begins.
    stopping: AtomicBool,
    /// Whether the schedule is empty (nothing queued or running), for `until_idle`.
    idle: watch::Sender<bool>,
    /// Scans for campaigns to train completed so far, for `scans_completed`.
    scans: watch::Sender<u64>,
}

impl Shared {
    fn subscribe(&self, campaign_id: i64) -> watch::Receiver<u64> {
        lock(&self.signals)
            .entry(campaign_id)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Changes the schedule and publishes whether it is idle afterwards.
    pub(crate) fn with_schedule<R>(&self, change: impl FnOnce(&mut Schedule) -> R) -> R {
        let mut schedule = lock(&self.schedule);
        let result = change(&mut schedule);
        let idle = schedule.is_idle();
        self.idle
            .send_if_modified(|was| std::mem::replace(was, idle) != idle);
        result
    }

    fn signal(&self, campaign_id: i64) {
        if let Some(sender) = lock(&self.signals).get(&campaign_id) {
            sender.send_modify(|n| *n += 1);
        }
    }
}

/// Waits until `condition` holds for the value `watched` publishes; `Unavailable` saying
/// `unmet` after `timeout`, or when the publisher (the trainer) is gone first.
async fn wait_until<T>(
    mut watched: watch::Receiver<T>,
    condition: impl FnMut(&T) -> bool,
    timeout: Duration,
    unmet: &str,
) -> Result<(), Error> {
    match tokio::time::timeout(timeout, watched.wait_for(condition)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(_)) => Err(Error::Unavailable("the trainer stopped".into())),
        Err(_) => Err(Error::Unavailable(format!(
            "{unmet} after {:.1} s",
            timeout.as_secs_f64()
        ))),
    }
}

/// Locks a std mutex, recovering the data if a panicking thread poisoned it: every value
/// kept under these locks stays consistent between statements.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl TrainerHandle {
    /// Starts the supervisor and the compute thread, recording runs into `metrics`. Must be
    /// called within a tokio runtime; outside one nothing is trained (and an error is
    /// logged).
    pub fn start(store: Store, config: TrainerConfig, metrics: Metrics) -> Self {
        let config = Arc::new(config);
        let shared = Arc::new(Shared {
            owner: format!("{}/{:08x}", config.owner, rand::random::<u32>()),
            schedule: Mutex::new(Schedule::default()),
            signals: Mutex::new(HashMap::new()),
            stopping: AtomicBool::new(false),
            idle: watch::channel(true).0,
            scans: watch::channel(0).0,
        });
        let (wake, wake_rx) = mpsc::unbounded_channel();
        let (stop, stop_rx) = watch::channel(false);
        let supervisor = supervisor::Supervisor {
            store: store.clone(),
            config: config.clone(),
            shared: shared.clone(),
            metrics,
            wake: wake_rx,
            stop: stop_rx,
        };
        let task = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => Some(runtime.spawn(supervisor.run())),
            Err(e) => {
                tracing::error!(error = %e, "no tokio runtime: the trainer is not running");
                None
            }
        };
        tracing::info!(owner = %shared.owner, threads = config.threads, "trainer started");
        Self {
            store,
            config,
            inner: Arc::new(Inner {
                shared,
                wake,
                stop,
                supervisor: Mutex::new(task),
                models: Mutex::new(HashMap::new()),
                waiters: Arc::new(tokio::sync::Semaphore::new(MAX_MODEL_WAITERS)),
            }),
        }
    }

    /// The settings the trainer was started with.
    pub fn config(&self) -> &TrainerConfig {
        &self.config
    }

    /// This trainer's owner name in leases and training runs (the configured owner with a
    /// suffix unique to this trainer).
    pub fn owner(&self) -> &str {
        &self.inner.shared.owner
    }

    /// New labels were committed for `campaign_id`: schedule a training run (one more run if
    /// one is going, not one per call). A `failed` campaign gets another attempt.
    pub fn notify_labels(&self, campaign_id: i64) {
        tracing::debug!(campaign_id, "labels committed");
        self.inner
            .shared
            .with_schedule(|schedule| schedule.notify(campaign_id));
        // Fails only once the supervisor is gone (shutdown): nothing to wake then.
        let _ = self.inner.wake.send(campaign_id);
    }

    /// Returns once the newest checkpoint of `campaign_id` was trained on at least
    /// `observations_needed` observations, failed ones included (every accepted label
    /// schedules training), or `Error::Unavailable` after `timeout`.
    /// Answers `Unavailable` at once, with the reason, when the campaign's training failed
    /// and no new run of it is scheduled here, and at once too when [`MAX_MODEL_WAITERS`]
    /// requests are already waiting. Wakes when this process finishes a run, and polls the
    /// database (every 100 ms at first, backing off to 1 s), since another process may be the
    /// trainer.
    #[tracing::instrument(skip_all, fields(campaign_id = campaign_id, observations_needed = observations_needed))]
    pub async fn wait_for_model(
        &self,
        campaign_id: i64,
        observations_needed: i64,
        timeout: Duration,
    ) -> Result<(), Error> {
        if observations_needed <= 0 {
            return Ok(());
        }
        let Ok(_waiting) = self.inner.waiters.clone().try_acquire_owned() else {
            return Err(Error::Unavailable(format!(
                "{MAX_MODEL_WAITERS} requests are already waiting for models; retry shortly or send wait_for_model: false"
            )));
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let mut poll = WAIT_POLL;
        // Subscribed before the first read, so a run finishing in between still wakes us.
        let mut signal = self.inner.shared.subscribe(campaign_id);
        let mut stop = self.inner.stop.subscribe();
        loop {
            // Training here stops at the next step and writes nothing, so the wait could only
            // end in the timeout: answer now, while the server still drains its requests.
            if self.is_stopping() {
                return Err(Error::Unavailable(
                    "the server is shutting down; retry on another replica or after the restart"
                        .into(),
                ));
            }
            let (status, error) = self.store.model_status(campaign_id).await?;
            let trained = self
                .store
                .newest_checkpoint(campaign_id)
                .await?
                .map_or(0, |c| c.trained_on_observations);
            if trained >= observations_needed {
                return Ok(());
            }
            if status == "failed" && !lock(&self.inner.shared.schedule).is_active(campaign_id) {
                return Err(Error::Unavailable(format!(
                    "training of campaign {campaign_id} failed: {}",
                    error.as_deref().unwrap_or("no reason recorded")
                )));
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(Error::Unavailable(format!(
                    "the model of campaign {campaign_id} is trained on {trained} of {observations_needed} observations after waiting {:.1} s",
                    timeout.as_secs_f64()
                )));
            }
            let pause = (deadline - now).min(poll);
            poll = (poll * 2).min(WAIT_POLL_MAX);
            tokio::select! {
                changed = signal.changed() => {
                    if changed.is_err() {
                        tokio::time::sleep(pause).await;
                    }
                }
                // Shutdown began: the next turn answers.
                _ = stop.changed() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// The newest checkpoint of the campaign, loaded for `space` (cached by version), or
    /// `None` while no model exists. The newest version is one cheap query; the bytes are
    /// read and decoded (on a blocking thread) only when the version changed. A checkpoint
    /// that cannot be read or loaded (corrupt, or written for other settings) is logged and
    /// passed over for the newest older one that loads; when none does, the error stands.
    #[tracing::instrument(skip_all, fields(campaign_id = campaign_id))]
    pub async fn model(
        &self,
        campaign_id: i64,
        space: Arc<dyn Space>,
    ) -> Result<Option<LoadedModel>, Error> {
        let Some(newest) = self.store.newest_checkpoint_version(campaign_id).await? else {
            return Ok(None);
        };
        let slot = {
            let mut models = lock(&self.inner.models);
            let now = std::time::Instant::now();
            if models.len() >= CACHED_MODELS && !models.contains_key(&campaign_id) {
                let oldest = models
                    .iter()
                    .min_by_key(|(_, (_, used))| *used)
                    .map(|(id, _)| *id);
                if let Some(oldest) = oldest {
                    models.remove(&oldest);
                }
            }
            let (slot, used) = models
                .entry(campaign_id)
                .or_insert_with(|| (ModelSlot::default(), now));
            *used = now;
            slot.clone()
        };
        let mut cached = slot.lock().await;
        if let Some((stands_for, loaded)) = cached.as_ref() {
            if *stands_for == newest {
                return Ok(Some(loaded.clone()));
            }
        }
        let mut first_error = None;
        for version in self
            .store
            .checkpoint_versions(campaign_id, FALLBACK_VERSIONS)
            .await?
        {
            match self.load_version(campaign_id, version, space.clone()).await {
                Ok(model) => {
                    if version != newest {
                        tracing::warn!(
                            newest,
                            version,
                            "the newest checkpoint cannot be loaded; rounds use an older one"
                        );
                    }
                    let loaded = (version, Arc::new(model));
                    *cached = Some((newest, loaded.clone()));
                    return Ok(Some(loaded));
                }
                Err(error) => {
                    tracing::warn!(version, %error, "a checkpoint cannot be loaded");
                    first_error.get_or_insert(error);
                }
            }
        }
        Err(first_error.unwrap_or_else(|| {
            Error::Storage(format!("checkpoint {newest} of campaign {campaign_id} vanished").into())
        }))
    }

    /// Reads and decodes one checkpoint (the decoding on a blocking thread).
    async fn load_version(
        &self,
        campaign_id: i64,
        version: i64,
        space: Arc<dyn Space>,
    ) -> Result<Model, Error> {
        let bytes = self
            .store
            .checkpoint_weights(campaign_id, version)
            .await?
            .ok_or_else(|| {
                Error::Storage(
                    format!("checkpoint {version} of campaign {campaign_id} vanished").into(),
                )
            })?;
        // Decoding builds the network: tensor work, kept off the reactor.
        tokio::task::spawn_blocking(move || Model::from_bytes(space, &bytes))
            .await
            .map_err(|e| Error::Storage(format!("loading a checkpoint panicked: {e}").into()))?
            .map_err(|e| {
                Error::Storage(
                    format!("checkpoint {version} of campaign {campaign_id} cannot be loaded: {e}")
                        .into(),
                )
            })
    }

    /// Returns once this trainer has nothing queued or running: every label committed
    /// before the call has been trained on (or its run failed or was skipped). For tests and
    /// tools that drive training deterministically instead of polling; `Unavailable` after
    /// `timeout` or when the trainer stops first.
    pub async fn until_idle(&self, timeout: Duration) -> Result<(), Error> {
        let idle = self.inner.shared.idle.subscribe();
        wait_until(idle, |idle| *idle, timeout, "the trainer was still busy").await
    }

    /// Returns once the periodic scan for campaigns to train has run `count` more times and
    /// scheduled what it found: what tests wait for to show that a scan starts nothing,
    /// instead of sleeping for longer than the scan interval and hoping one ran.
    /// `Unavailable` after `timeout` or when the trainer stops first.
    pub async fn scans_completed(&self, count: u64, timeout: Duration) -> Result<(), Error> {
        let mut scans = self.inner.shared.scans.subscribe();
        let from = *scans.borrow_and_update();
        let unmet = format!("the trainer had not scanned {count} times");
        wait_until(scans, |n| *n >= from + count, timeout, &unmet).await
    }

    /// Whether shutdown has begun.
    pub fn is_stopping(&self) -> bool {
        self.inner.shared.stopping.load(Ordering::Relaxed)
    }

    /// Begins shutdown without waiting: no new run starts, the running job stops at its
    /// next step, and `wait_for_model` answers `Unavailable`. [`shutdown`](Self::shutdown)
    /// waits for the rest.
    pub fn begin_shutdown(&self) {
        self.inner.shared.stopping.store(true, Ordering::Relaxed);
        // Fails only when the supervisor already ended.
        let _ = self.inner.stop.send(true);
    }

    /// Stops training at the next step and waits for the compute thread: a running job is
    /// cancelled without writing a checkpoint, its run is recorded as cancelled and its lease
    /// released. Later calls return at once.
    pub async fn shutdown(&self) {
        self.begin_shutdown();
        let task = lock(&self.inner.supervisor).take();
        if let Some(task) = task {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "the trainer's supervisor ended abnormally");
            }
        }
    }
}
