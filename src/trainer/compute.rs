//! The compute side of the trainer: one named std thread (`flowlab-trainer`) fed by a
//! bounded channel of jobs, each run inside a rayon pool of the configured size, so that
//! training (candle's matrix products included, which split work on the current rayon
//! pool) never uses more cores than configured and never runs on the tokio reactor.
//!
//! A job is a closure; its result goes back on a tokio oneshot. `catch_unwind` around each
//! job turns a panic into a failed job, and the thread carries on with the next one. Jobs
//! check a cancel flag every step. The training job itself is [`super::recipe::train`].
//!
//! Imports only the job's types; never the store, sqlx or axum.

use crate::domain::campaign::CampaignSpec;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use tokio::sync::oneshot;

/// Jobs that may wait for the compute thread. The supervisor runs one job at a time, so
/// this only bounds what a bug could pile up.
const QUEUE_CAPACITY: usize = 4;

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

#[cfg(test)]
mod tests {
    use super::*;

    fn recv<T>(rx: oneshot::Receiver<Result<T, JobError>>) -> Result<T, JobError> {
        rx.blocking_recv()
            .unwrap_or_else(|_| Err(JobError::Failed("reply dropped".into())))
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
}
