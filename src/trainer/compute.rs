//! The compute side of the trainer: one named std thread (`flowlab-trainer`) fed by a
//! bounded channel of jobs, each run inside a rayon pool of the configured size, so that
//! training (candle's matrix products included, which split work on the current rayon
//! pool) never uses more cores than configured and never runs on the tokio reactor.
//!
//! Jobs take turns. A job is a closure called once per turn with the turn's deadline; it
//! works until then (at least one unit of work: a training step) and either finishes or
//! asks for another turn, which it gets after every other job waiting has had one. One
//! campaign with a million steps therefore delays another's short run by at most a turn
//! (`--training-slice`), instead of by days. A job alone keeps the thread without pause.
//!
//! `catch_unwind` around each turn turns a panic into a failed job, and the thread carries
//! on with the others. Jobs check a cancel flag every step. The training job itself is
//! [`super::recipe::Training`].
//!
//! Imports only the job's types; never the store, sqlx or axum.

use crate::domain::campaign::CampaignSpec;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Jobs that may wait to be taken up by the compute thread at once; the thread takes every
/// waiting job into its rotation before each turn, so this only bounds a burst.
const QUEUE_CAPACITY: usize = 64;

/// Why a job produced no result.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JobError {
    /// The engine failed: tensors, settings, a checkpoint it cannot read.
    #[error(transparent)]
    Engine(#[from] crate::gfn::GfnError),
    /// The proxy could not be fit on the campaign's labels.
    #[error("fitting the proxy failed: {0}")]
    ProxyFit(#[source] crate::proxy::ProxyError),
    /// The fitted proxy could not score candidates.
    #[error("the proxy failed: {0}")]
    Proxy(#[source] crate::proxy::ProxyError),
    /// The trained model could not be written as a checkpoint.
    #[error("writing the checkpoint failed: {0}")]
    Checkpoint(#[source] crate::model::ModelError),
    /// Training is impossible (no labels, a stored value outside the space) or broke (a
    /// panic, the compute thread gone); the message says which.
    #[error("{0}")]
    Failed(String),
    /// The cancel flag was raised (shutdown, or the lease was lost).
    #[error("cancelled")]
    Cancelled,
}

/// Why the compute thread could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    #[error("cannot build the training thread pool: {0}")]
    Pool(#[from] rayon::ThreadPoolBuildError),
    #[error("cannot start the training thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// What one turn of a job ended with.
#[derive(Debug)]
pub(crate) enum Turn<T> {
    /// The job is done, with this result.
    Finished(Result<T, JobError>),
    /// The deadline passed with work left: the job wants another turn.
    Unfinished,
}

/// A job in the rotation: runs one turn in the pool until the deadline; true once finished
/// (its reply then sent).
type Task = Box<dyn FnMut(&rayon::ThreadPool, Instant) -> bool + Send>;

/// Submits jobs to the compute thread; cheap to clone. The thread ends once every
/// submitter is dropped and every job has finished.
#[derive(Debug, Clone)]
pub(crate) struct Submitter {
    tx: SyncSender<Task>,
}

/// Starts the compute thread with a rayon pool of `threads` threads, giving each job turns
/// of `slice`. Returns the submitter and the thread's handle (to join at shutdown), or the
/// reason it could not start.
pub(crate) fn start(
    threads: usize,
    slice: Duration,
) -> Result<(Submitter, std::thread::JoinHandle<()>), StartError> {
    let (tx, rx) = sync_channel::<Task>(QUEUE_CAPACITY);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(|i| format!("flowlab-train-{i}"))
        .build()?;
    let thread = std::thread::Builder::new()
        .name("flowlab-trainer".into())
        .spawn(move || run_loop(&rx, &pool, slice))?;
    Ok((Submitter { tx }, thread))
}

/// Round robin over the jobs: each takes a turn of `slice`, an unfinished one goes to the
/// back of the line behind every job that arrived meanwhile.
fn run_loop(rx: &Receiver<Task>, pool: &rayon::ThreadPool, slice: Duration) {
    let mut rotation: VecDeque<Task> = VecDeque::new();
    loop {
        if rotation.is_empty() {
            match rx.recv() {
                Ok(task) => rotation.push_back(task),
                Err(_) => break,
            }
        }
        while let Ok(task) = rx.try_recv() {
            rotation.push_back(task);
        }
        let Some(mut task) = rotation.pop_front() else {
            continue;
        };
        if !task(pool, Instant::now() + slice) {
            rotation.push_back(task);
        }
    }
    tracing::debug!("compute thread stops: no more submitters");
}

impl Submitter {
    /// Queues a job that runs in one go (a single turn, however long).
    #[cfg(test)]
    pub(crate) fn submit<T, F>(
        &self,
        job: F,
    ) -> Result<oneshot::Receiver<Result<T, JobError>>, JobError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, JobError> + Send + 'static,
    {
        let mut job = Some(job);
        self.submit_turns(move |_deadline| match job.take() {
            Some(job) => Turn::Finished(job()),
            None => Turn::Finished(Err(JobError::Failed("the job ran twice".into()))),
        })
    }

    /// Queues `job`, called once per turn with the turn's deadline until it finishes. The
    /// receiver yields its result, or a failure when a turn panicked. Fails at once when
    /// the queue is full or the thread is gone.
    pub(crate) fn submit_turns<T, F>(
        &self,
        mut job: F,
    ) -> Result<oneshot::Receiver<Result<T, JobError>>, JobError>
    where
        T: Send + 'static,
        F: FnMut(Instant) -> Turn<T> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let mut reply = Some(reply);
        let task: Task = Box::new(move |pool: &rayon::ThreadPool, deadline: Instant| {
            let turn = catch_unwind(AssertUnwindSafe(|| pool.install(|| job(deadline))))
                .unwrap_or_else(|panic| {
                    Turn::Finished(Err(JobError::Failed(format!(
                        "training panicked: {}",
                        panic_message(panic.as_ref())
                    ))))
                });
            match turn {
                Turn::Unfinished => false,
                Turn::Finished(result) => {
                    // The waiting side may be gone (shutdown); the result is then of no use.
                    if let Some(reply) = reply.take() {
                        let _ = reply.send(result);
                    }
                    true
                }
            }
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
        let (submitter, thread) = start(1, Duration::ZERO).expect("compute thread");
        let rx = submitter
            .submit(|| -> Result<(), JobError> { panic!("boom") })
            .expect("queued");
        assert!(
            matches!(recv(rx), Err(JobError::Failed(m)) if m == "training panicked: boom"),
            "a panic fails the job with its message"
        );
        let rx = submitter
            .submit(|| Ok(rayon::current_num_threads()))
            .expect("queued");
        assert_eq!(
            recv(rx).ok(),
            Some(1),
            "jobs run inside the configured pool"
        );
        drop(submitter);
        thread
            .join()
            .expect("the thread ends once submitters are gone");
    }

    #[test]
    fn the_pool_has_the_configured_number_of_threads() {
        let (submitter, _thread) = start(2, Duration::ZERO).expect("compute thread");
        let rx = submitter
            .submit(|| Ok(rayon::current_num_threads()))
            .expect("queued");
        assert_eq!(recv(rx).ok(), Some(2));
        let name = submitter
            .submit(|| Ok(std::thread::current().name().map(str::to_string)))
            .expect("queued");
        // `install` runs the job on one of the pool's own threads.
        let name = recv(name).expect("name").unwrap_or_default();
        assert!(name.starts_with("flowlab-train-"), "{name}");
    }

    #[test]
    fn a_short_job_finishes_while_a_long_one_that_came_first_is_still_going() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (submitter, thread) = start(1, Duration::ZERO).expect("compute thread");
        // A gate keeps the thread busy until both jobs are queued, so both start together.
        let (open_gate, gate) = std::sync::mpsc::channel::<()>();
        let gate = submitter
            .submit(move || gate.recv().map_err(|_| JobError::Cancelled))
            .expect("queued");
        let long_turns = Arc::new(AtomicUsize::new(0));
        let cancel_long = Arc::new(AtomicBool::new(false));
        let long = {
            let (turns, cancel) = (long_turns.clone(), cancel_long.clone());
            submitter
                .submit_turns(move |_deadline| {
                    if cancel.load(Ordering::Relaxed) {
                        return Turn::<()>::Finished(Err(JobError::Cancelled));
                    }
                    turns.fetch_add(1, Ordering::Relaxed);
                    Turn::Unfinished
                })
                .expect("queued")
        };
        // The short job reports how many turns the long one had had when it finished.
        let short = {
            let mut left = 5;
            let long_turns = long_turns.clone();
            submitter
                .submit_turns(move |_deadline| {
                    left -= 1;
                    if left == 0 {
                        Turn::Finished(Ok(long_turns.load(Ordering::Relaxed)))
                    } else {
                        Turn::Unfinished
                    }
                })
                .expect("queued")
        };
        open_gate.send(()).expect("gate");
        assert_eq!(recv(gate).ok(), Some(()));
        // Turn by turn: the long job had one turn before each of the short one's five.
        // First come, first served would never have let the short job run.
        assert_eq!(recv(short).ok(), Some(5));
        cancel_long.store(true, Ordering::Relaxed);
        assert!(matches!(recv(long), Err(JobError::Cancelled)));
        drop(submitter);
        thread.join().expect("the thread ends");
    }

    #[test]
    fn jobs_alternate_turn_by_turn() {
        use std::sync::Mutex;
        let (submitter, thread) = start(1, Duration::ZERO).expect("compute thread");
        // A gate keeps the thread busy until both jobs are queued, so both start together.
        let (open_gate, gate) = std::sync::mpsc::channel::<()>();
        let gate = submitter
            .submit(move || gate.recv().map_err(|_| JobError::Cancelled))
            .expect("queued");
        let log = Arc::new(Mutex::new(Vec::new()));
        let job = |name: char, turns: usize| {
            let log = log.clone();
            let mut left = turns;
            move |_deadline: Instant| {
                log.lock().expect("log").push(name);
                left -= 1;
                if left == 0 {
                    Turn::Finished(Ok(()))
                } else {
                    Turn::Unfinished
                }
            }
        };
        let a = submitter.submit_turns(job('a', 3)).expect("queued");
        let b = submitter.submit_turns(job('b', 2)).expect("queued");
        open_gate.send(()).expect("gate");
        assert_eq!(recv(gate).ok(), Some(()));
        assert_eq!(recv(a).ok(), Some(()));
        assert_eq!(recv(b).ok(), Some(()));
        let order: String = log.lock().expect("log").iter().collect();
        assert_eq!(order, "ababa");
        drop(submitter);
        thread.join().expect("the thread ends");
    }

    #[test]
    fn a_panicking_turn_fails_its_job_only() {
        let (submitter, _thread) = start(1, Duration::ZERO).expect("compute thread");
        let mut turns = 0;
        let panics = submitter
            .submit_turns(move |_deadline| -> Turn<()> {
                turns += 1;
                if turns == 2 {
                    panic!("second turn");
                }
                Turn::Unfinished
            })
            .expect("queued");
        let fine = submitter
            .submit_turns(|_deadline| Turn::Finished(Ok(7)))
            .expect("queued");
        assert!(
            matches!(recv(panics), Err(JobError::Failed(m)) if m == "training panicked: second turn"),
            "a panic in a later turn fails the job with its message"
        );
        assert_eq!(recv(fine).ok(), Some(7));
    }
}
