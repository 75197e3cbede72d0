//! `flowlab bench api`: the real server in-process on `127.0.0.1:0`, driven
//! over real HTTP by a reqwest client in the same process, on SQLite and/or PostgreSQL.
//!
//! Per backend it measures `POST /labels` throughput (labels per second, in batches) and
//! `POST /rounds` latency (p50/p99) on a `sequence` space of 20 tokens × length 32, first
//! with no training anywhere ("idle"), then while a hostile campaign runs a long training at
//! the largest step the server admits (a wide network, its batch at `--max-step-memory`)
//! ("busy"); last, a neighbour campaign gets labels and a `wait_for_model` round while the
//! long run still trains. Targets: at least 20,000 labels/s on each backend, busy p99 at
//! most 2× idle p99, and the neighbour's round served.
//!
//! Progress goes to stderr, one line per phase; stdout gets one JSON line
//! `{"results":[{...}, ...]}`. This is CLI code: errors are `anyhow`, and nothing a response
//! or the network produces is unwrapped.

use crate::kit::{ApiClient, Backend, Database, EmbeddedServer};
use anyhow::{bail, Context};
use flowlab::config::Config;
use flowlab::domain::label::MAX_LABELS;
use flowlab::domain::round::MAX_BATCH_SIZE;
use flowlab::store::redact_url;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{json, Value};
use std::io::Write;
use std::time::{Duration, Instant};

/// The 20 one-letter tokens of the benchmark space (the amino acids).
pub(super) const ALPHABET: [&str; 20] = [
    "A", "C", "D", "E", "F", "G", "H", "I", "K", "L", "M", "N", "P", "Q", "R", "S", "T", "V", "W",
    "Y",
];
/// Length of every sequence of the benchmark space.
pub(super) const SEQUENCE_LENGTH: usize = 32;
/// Throughput target, in labels per second.
const TARGET_LABELS_PER_SECOND: f64 = 20_000.0;
/// Labels and training steps of the neighbour campaign, whose `wait_for_model` round must be
/// served while the long run trains.
const NEIGHBOUR_LABELS: usize = 100;
const NEIGHBOUR_STEPS: usize = 100;

/// Hidden width of the hostile campaign's network: wide (the API allows up to 4096), while
/// leaving room for a batch of many trajectories within the default step budget.
const HOSTILE_HIDDEN: usize = 512;

/// Settings of the hostile campaign at `batch` trajectories a step: a million steps.
fn hostile_settings(batch: usize) -> Value {
    json!({"training": {"steps": 1_000_000, "batch_size": batch},
           "model": {"hidden": HOSTILE_HIDDEN, "layers": 3}})
}

/// The largest `training.batch_size` the API allows at which the hostile campaign on the
/// benchmark space is admitted under a step budget of `budget` bytes, by the server's own
/// cost model.
fn admitted_maximum_batch(budget: u64) -> anyhow::Result<usize> {
    let admitted = |batch: usize| -> anyhow::Result<bool> {
        let mut body = hostile_settings(batch);
        if let Some(fields) = body.as_object_mut() {
            fields.insert("name".into(), json!("probe"));
            fields.insert("space".into(), benchmark_space());
        }
        let new = serde_json::from_value::<flowlab::domain::campaign::NewCampaign>(body)?;
        let round_block = new.round_block();
        let spec = new.validate()?;
        let space = spec.build_space()?;
        Ok(flowlab::proxy::campaign_cost(&spec, space.as_ref())
            .admit_campaign(budget, round_block)
            .is_ok())
    };
    let (mut fits, mut too_large) = (0usize, MAX_TRAINING_BATCH + 1);
    while too_large - fits > 1 {
        let middle = fits + (too_large - fits) / 2;
        if admitted(middle)? {
            fits = middle;
        } else {
            too_large = middle;
        }
    }
    if fits == 0 {
        bail!(
            "not even one trajectory of the hostile campaign fits a step budget of {budget} bytes"
        );
    }
    Ok(fits)
}

/// Largest `training.batch_size` a campaign may ask for.
const MAX_TRAINING_BATCH: usize = 4096;

/// The benchmark space as `POST /campaigns` takes it.
fn benchmark_space() -> Value {
    json!({"type": "sequence", "alphabet": ALPHABET,
           "min_length": SEQUENCE_LENGTH, "max_length": SEQUENCE_LENGTH})
}

/// Latency target: busy p99 over idle p99.
const TARGET_BUSY_OVER_IDLE: f64 = 2.0;
/// How often the model endpoint is polled while waiting for the trainer.
const POLL: Duration = Duration::from_millis(50);

/// Which storage backend(s) to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendChoice {
    /// A SQLite file in a temporary directory, removed afterwards.
    Sqlite,
    /// A fresh database on the `--postgres-url` server, dropped afterwards.
    Postgres,
    /// SQLite, then PostgreSQL.
    Both,
}

/// Settings of `flowlab bench api`.
#[derive(Debug, Clone, clap::Args)]
pub struct ApiBenchArgs {
    #[command(flatten)]
    pub storage: super::BackendArgs,
    /// Number of `POST /labels` requests of the throughput phase (sent one after another).
    #[arg(long = "label-batches", default_value_t = 20)]
    pub label_batches: usize,
    /// Labels per `POST /labels` request.
    #[arg(long = "label-batch-size", default_value_t = 1000)]
    pub label_batch_size: usize,
    /// Number of timed `POST /rounds` requests per latency phase (after one untimed warm-up).
    #[arg(long, default_value_t = 30)]
    pub rounds: usize,
    /// `batch_size` of every round.
    #[arg(long = "round-batch", default_value_t = 100)]
    pub round_batch: usize,
    /// Threads of the server's trainer (`serve --training-threads`).
    #[arg(long = "training-threads", default_value_t = 1)]
    pub training_threads: usize,
    /// Longest wait, in seconds, for the trainer to report `training` (busy phase) or to
    /// settle after the throughput phase.
    #[arg(long = "training-wait", default_value_t = 60.0)]
    pub training_wait_seconds: f64,
    /// Seed of the random label values and rewards.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Figures of one backend: the targeted figures first, then context for reading them.
#[derive(Debug, Clone, Serialize)]
pub struct ApiBenchResult {
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// Labels accepted over the summed wall time of the `POST /labels` requests.
    pub labels_per_second: f64,
    /// Labels per `POST /labels` request.
    pub label_batch_size: usize,
    /// `batch_size` of every round.
    pub round_batch: usize,
    /// Round latency with no training anywhere, in milliseconds.
    pub round_p50_ms_idle: f64,
    /// See `round_p50_ms_idle`.
    pub round_p99_ms_idle: f64,
    /// Round latency on an untrained campaign while another campaign trains, in ms.
    pub round_p50_ms_busy: f64,
    /// See `round_p50_ms_busy`.
    pub round_p99_ms_busy: f64,
    /// `round_p99_ms_busy / round_p99_ms_idle` (target: at most 2).
    pub busy_over_idle_p99: f64,
    /// Labels accepted in the throughput phase.
    pub labels_total: usize,
    /// Latency of one `POST /labels` request, in milliseconds.
    pub label_request_p50_ms: f64,
    /// See `label_request_p50_ms`.
    pub label_request_p99_ms: f64,
    /// Timed rounds per latency phase.
    pub rounds: usize,
    /// Round latency on the training campaign itself while it trains, in milliseconds.
    pub round_p50_ms_busy_training_campaign: f64,
    /// See `round_p50_ms_busy_training_campaign`.
    pub round_p99_ms_busy_training_campaign: f64,
    /// The trainer's thread budget.
    pub training_threads: usize,
    /// Whether the model endpoint said `training` before the busy rounds started.
    pub training_seen: bool,
    /// Whether it still said `training` after the busy rounds (the whole phase was busy).
    pub training_after: bool,
    /// Whether a neighbour campaign's `wait_for_model` round, asked while the long run
    /// trained, was served from a model trained on its labels.
    pub neighbour_served: bool,
    /// How long that round took, its training included, in seconds.
    pub neighbour_wait_seconds: f64,
    /// `training.batch_size` of the hostile campaign: the most the step budget admits.
    pub hostile_batch: usize,
    /// Its network's hidden width.
    pub hostile_hidden: usize,
    /// Both targets hold, training was seen and the neighbour was served.
    pub meets_targets: bool,
}

/// The JSON line on stdout.
#[derive(Debug, Clone, Serialize)]
pub struct ApiBenchReport {
    /// One entry per measured backend, in the order measured.
    pub results: Vec<ApiBenchResult>,
}

/// Runs the benchmark on the chosen backends and writes the result line to `out`.
pub fn run(args: &ApiBenchArgs, out: &mut impl Write) -> anyhow::Result<ApiBenchReport> {
    validate(args)?;
    let backends = args.storage.backends();
    let runtime = super::runtime()?;
    let measured = runtime.block_on(async {
        let mut results = Vec::new();
        for &backend in backends {
            results.push(run_backend(args, backend).await?);
        }
        anyhow::Ok(results)
    });
    // Round sampling runs on blocking threads; do not wait forever for a stray one.
    runtime.shutdown_timeout(Duration::from_secs(10));
    let report = ApiBenchReport { results: measured? };
    writeln!(out, "{}", serde_json::to_string(&report)?)?;
    Ok(report)
}

fn validate(args: &ApiBenchArgs) -> anyhow::Result<()> {
    if args.label_batches == 0 || args.rounds == 0 {
        bail!("--label-batches and --rounds must be positive");
    }
    if !(1..=MAX_LABELS).contains(&args.label_batch_size) {
        bail!("--label-batch-size must be in 1..={MAX_LABELS}");
    }
    if !(1..=MAX_BATCH_SIZE).contains(&args.round_batch) {
        bail!("--round-batch must be in 1..={MAX_BATCH_SIZE}");
    }
    if !(args.training_wait_seconds.is_finite() && args.training_wait_seconds > 0.0) {
        bail!("--training-wait must be a positive number of seconds");
    }
    Ok(())
}

/// One backend: a fresh database, the server on it, the measurements, then the server
/// stopped and the database removed, whatever the measurements did.
async fn run_backend(args: &ApiBenchArgs, backend: Backend) -> anyhow::Result<ApiBenchResult> {
    let database = Database::create(backend, "flowlab_bench", &args.storage.postgres_url).await?;
    eprintln!(
        "[{}] database {}",
        backend.name(),
        redact_url(database.url())
    );
    let measured = serve_and_measure(args, backend, database.url()).await;
    let removed = database.remove().await;
    let result = measured?;
    removed?;
    Ok(result)
}

async fn serve_and_measure(
    args: &ApiBenchArgs,
    backend: Backend,
    database_url: &str,
) -> anyhow::Result<ApiBenchResult> {
    let mut config = Config::for_database(database_url);
    config.training_threads = args.training_threads;
    let step_budget = config.max_step_memory_bytes;
    let server = EmbeddedServer::start(config).await?;
    let client = Client::new(server.base_url())?;
    let measured = measure(args, backend, &client, step_budget).await;
    // Graceful: in-flight requests finish, then the trainer stops (which cancels the long
    // training run).
    server.stop().await;
    measured
}

/// The phases of one backend, on a running server.
async fn measure(
    args: &ApiBenchArgs,
    backend: Backend,
    client: &Client,
    step_budget: u64,
) -> anyhow::Result<ApiBenchResult> {
    let name = backend.name();
    let wait = Duration::from_secs_f64(args.training_wait_seconds);
    // Campaigns that never get a label are never trained: round latency on them measures
    // the request path and uniform sampling, with or without training elsewhere. Two of
    // them, so the idle and busy phases both start from a campaign with nothing proposed.
    let idle_campaign = client.create_campaign("bench-idle", json!({})).await?;
    let probe_campaign = client.create_campaign("bench-probe", json!({})).await?;
    // One training step per run: posting labels still wakes the trainer, but its runs are
    // short, so the throughput figure is about validation and storage, not training.
    let labels_campaign = client
        .create_campaign("bench-labels", json!({"training": {"steps": 1}}))
        .await?;
    // A hostile neighbour: a run far longer than the benchmark, at the largest training
    // step the server admits (a wide network, the batch at the memory budget), keeps the
    // trainer busy through the busy phase.
    let hostile_batch = admitted_maximum_batch(step_budget)?;
    eprintln!(
        "[{name}] training campaign: hidden {HOSTILE_HIDDEN}, batch {hostile_batch} (the most --max-step-memory {} admits)",
        flowlab::domain::cost::human(u128::from(step_budget))
    );
    let training_campaign = client
        .create_campaign("bench-train", hostile_settings(hostile_batch))
        .await?;
    let mut rng = StdRng::seed_from_u64(args.seed);

    // (1) Idle rounds, before any label exists anywhere: nothing trains.
    let idle = client
        .rounds(idle_campaign, args.rounds, args.round_batch)
        .await?;
    let idle = Percentiles::of(&idle);
    eprintln!(
        "[{name}] rounds idle: {} x batch {}: p50 {:.1} ms, p99 {:.1} ms",
        args.rounds, args.round_batch, idle.p50, idle.p99
    );

    // (2) Label throughput. Bodies are serialised before timing so the figure is the
    // server's (and the loopback's), not the client's JSON encoder.
    let bodies = (0..args.label_batches)
        .map(|_| label_body(labels_campaign, args.label_batch_size, &mut rng))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut label_times = Vec::with_capacity(bodies.len());
    let mut accepted = 0usize;
    let mut last_report = Instant::now();
    for (i, body) in bodies.into_iter().enumerate() {
        let started = Instant::now();
        let outcome = client.post_labels(body).await?;
        label_times.push(started.elapsed().as_secs_f64());
        accepted += outcome;
        if last_report.elapsed() > Duration::from_secs(2) || i + 1 == args.label_batches {
            eprintln!(
                "[{name}] labels: {}/{} batches, {accepted} accepted, {:.0} labels/s",
                i + 1,
                args.label_batches,
                accepted as f64 / label_times.iter().sum::<f64>().max(1e-9)
            );
            last_report = Instant::now();
        }
    }
    let label_seconds: f64 = label_times.iter().sum();
    let labels_per_second = accepted as f64 / label_seconds.max(1e-9);
    let label_latency = Percentiles::of(&label_times);

    // Let the short runs the labels woke finish, so that only the long run trains below.
    let settled = client
        .wait_model(labels_campaign, wait, |m| {
            matches!(m["status"].as_str(), Some("ready" | "failed"))
                && m["trained_on_observations"]
                    .as_u64()
                    .is_some_and(|n| n >= accepted as u64)
        })
        .await?;
    eprintln!(
        "[{name}] labels campaign after the throughput phase: {}",
        settled.describe()
    );

    // (3) Busy rounds: labels wake the long run; wait until the model endpoint says so.
    let body = label_body(training_campaign, args.label_batch_size, &mut rng)?;
    client.post_labels(body).await?;
    let seen = client
        .wait_model(training_campaign, wait, |m| m["status"] == "training")
        .await?;
    let training_seen = matches!(seen, Waited::Held(_));
    eprintln!("[{name}] training campaign: {}", seen.describe());
    let busy = client
        .rounds(probe_campaign, args.rounds, args.round_batch)
        .await?;
    let busy = Percentiles::of(&busy);
    eprintln!(
        "[{name}] rounds busy (other campaign): p50 {:.1} ms, p99 {:.1} ms",
        busy.p50, busy.p99
    );
    let own = client
        .rounds(training_campaign, args.rounds, args.round_batch)
        .await?;
    let own = Percentiles::of(&own);
    eprintln!(
        "[{name}] rounds busy (training campaign): p50 {:.1} ms, p99 {:.1} ms",
        own.p50, own.p99
    );
    // (4) A neighbour's training while the long run goes on: a campaign gets labels and a
    // round that waits for its model. Runs take turns, so its short run is not queued
    // behind the long one.
    let neighbour = client
        .create_campaign(
            "bench-neighbour",
            json!({"training": {"steps": NEIGHBOUR_STEPS}}),
        )
        .await?;
    let body = label_body(neighbour, NEIGHBOUR_LABELS, &mut rng)?;
    client.post_labels(body).await?;
    let started = Instant::now();
    let (status, round) = client
        .post(
            "/rounds",
            &json!({"campaign_id": neighbour, "batch_size": args.round_batch, "wait_for_model": true}),
        )
        .await?;
    let neighbour_wait_seconds = started.elapsed().as_secs_f64();
    let neighbour_served = status == 201 && round["model_version"].as_i64().unwrap_or(0) >= 1;
    eprintln!(
        "[{name}] neighbour's wait_for_model round while the long run trains: {} in {neighbour_wait_seconds:.1} s",
        if neighbour_served { "served".to_string() } else { format!("answered {status}: {round}") }
    );
    let training_after = client
        .model(training_campaign)
        .await?
        .is_some_and(|m| m["status"] == "training");
    if !training_after {
        eprintln!("[{name}] warning: the training run was no longer running after the busy phase");
    }

    let busy_over_idle_p99 = busy.p99 / idle.p99;
    let meets_targets = training_seen
        && neighbour_served
        && labels_per_second >= TARGET_LABELS_PER_SECOND
        && busy_over_idle_p99 <= TARGET_BUSY_OVER_IDLE;
    eprintln!(
        "[{name}] {labels_per_second:.0} labels/s (target {TARGET_LABELS_PER_SECOND:.0}), \
         busy/idle p99 {busy_over_idle_p99:.2} (target <= {TARGET_BUSY_OVER_IDLE}): {}",
        if meets_targets {
            "targets met"
        } else {
            "targets NOT met"
        }
    );
    Ok(ApiBenchResult {
        backend: name,
        labels_per_second,
        label_batch_size: args.label_batch_size,
        round_batch: args.round_batch,
        round_p50_ms_idle: idle.p50,
        round_p99_ms_idle: idle.p99,
        round_p50_ms_busy: busy.p50,
        round_p99_ms_busy: busy.p99,
        busy_over_idle_p99,
        labels_total: accepted,
        label_request_p50_ms: label_latency.p50,
        label_request_p99_ms: label_latency.p99,
        rounds: args.rounds,
        round_p50_ms_busy_training_campaign: own.p50,
        round_p99_ms_busy_training_campaign: own.p99,
        training_threads: args.training_threads,
        training_seen,
        training_after,
        neighbour_served,
        neighbour_wait_seconds,
        hostile_batch,
        hostile_hidden: HOSTILE_HIDDEN,
        meets_targets,
    })
}

/// `{"labels": [...]}` with `n` imported values of `campaign_id`: uniformly random
/// sequences (distinct in practice: 20^32 values) with uniform rewards in [0, 1).
pub(super) fn label_body(campaign_id: i64, n: usize, rng: &mut StdRng) -> anyhow::Result<Vec<u8>> {
    let labels: Vec<Value> = (0..n)
        .map(|_| {
            let value: String = (0..SEQUENCE_LENGTH)
                .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())])
                .collect();
            json!({"campaign_id": campaign_id, "value": value, "reward": rng.random::<f64>()})
        })
        .collect();
    Ok(serde_json::to_vec(&json!({ "labels": labels }))?)
}

/// p50 and p99 of a set of durations, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub(super) struct Percentiles {
    pub(super) p50: f64,
    pub(super) p99: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `seconds`: a value that was actually observed, so with
    /// fewer than 100 samples the p99 is the maximum. NaN when there is no sample.
    pub(super) fn of(seconds: &[f64]) -> Self {
        let mut sorted: Vec<f64> = seconds.iter().map(|s| s * 1000.0).collect();
        sorted.sort_by(f64::total_cmp);
        Self {
            p50: nearest_rank(&sorted, 0.50),
            p99: nearest_rank(&sorted, 0.99),
        }
    }
}

/// The smallest sample with at least a fraction `q` of the samples at or below it.
fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// How a wait on the model endpoint ended.
#[derive(Debug)]
enum Waited {
    /// The condition held; the model as last read.
    Held(Value),
    /// The timeout passed first; the model as last read.
    TimedOut(Value),
    /// The server has no model endpoint: the benchmark waited one second instead.
    NoEndpoint,
}

impl Waited {
    fn describe(&self) -> String {
        let summary = |m: &Value| {
            format!(
                "status {}, version {}, trained on {} labels",
                m["status"], m["version"], m["trained_on_labels"]
            )
        };
        match self {
            Waited::Held(m) => summary(m),
            Waited::TimedOut(m) => format!("timed out waiting, {}", summary(m)),
            Waited::NoEndpoint => "no model endpoint; waited 1 s instead".into(),
        }
    }
}

/// The benchmark's HTTP client: the kit's client plus the calls this benchmark makes.
#[derive(Debug)]
pub(super) struct Client {
    api: ApiClient,
}

impl Client {
    pub(super) fn new(base: &str) -> anyhow::Result<Self> {
        Ok(Self {
            api: ApiClient::new(base)?,
        })
    }

    /// The kit's client underneath, for calls this benchmark does not wrap.
    pub(super) fn api(&self) -> &ApiClient {
        &self.api
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        self.api.post(path, body).await
    }

    /// Creates a campaign on the benchmark space with `extra` fields (model, training).
    pub(super) async fn create_campaign(&self, name: &str, extra: Value) -> anyhow::Result<i64> {
        let mut body = json!({"name": name, "space": benchmark_space()});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let (status, created) = self.post("/campaigns", &body).await?;
        if status != 201 {
            bail!("POST /campaigns answered {status}: {created}");
        }
        created["id"]
            .as_i64()
            .with_context(|| format!("POST /campaigns: no id in {created}"))
    }

    /// Posts one serialised labels body; returns the number of labels accepted.
    pub(super) async fn post_labels(&self, body: Vec<u8>) -> anyhow::Result<usize> {
        let (status, outcome) = self
            .api
            .post_raw("/labels", "application/json", body)
            .await?;
        if status != 200 {
            bail!("POST /labels answered {status}: {outcome}");
        }
        let accepted = outcome["accepted"]
            .as_u64()
            .with_context(|| format!("POST /labels: no accepted count in {outcome}"))?;
        Ok(usize::try_from(accepted)?)
    }

    /// One untimed warm-up round (connection set-up, first-use caches), then `n` timed
    /// rounds one after another; returns their latencies in seconds.
    pub(super) async fn rounds(
        &self,
        campaign_id: i64,
        n: usize,
        batch: usize,
    ) -> anyhow::Result<Vec<f64>> {
        let body = json!({"campaign_id": campaign_id, "batch_size": batch});
        let mut times = Vec::with_capacity(n);
        for i in 0..=n {
            let started = Instant::now();
            let (status, round) = self.post("/rounds", &body).await?;
            let elapsed = started.elapsed().as_secs_f64();
            if status != 201 {
                bail!("POST /rounds answered {status}: {round}");
            }
            let got = round["candidates"].as_array().map_or(0, Vec::len);
            if got != batch {
                eprintln!("warning: a round of campaign {campaign_id} proposed {got} of {batch}");
            }
            if i > 0 {
                times.push(elapsed);
            }
        }
        Ok(times)
    }

    /// `GET /campaigns/{id}/model`; `None` when the server has no such route.
    async fn model(&self, campaign_id: i64) -> anyhow::Result<Option<Value>> {
        let path = format!("/campaigns/{campaign_id}/model");
        match self.api.get(&path).await? {
            (200, model) => Ok(Some(model)),
            (404, _) => Ok(None),
            (status, body) => bail!("GET {path} answered {status}: {body}"),
        }
    }

    /// Polls the model until `done` holds or `timeout` passes.
    async fn wait_model(
        &self,
        campaign_id: i64,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Waited> {
        let started = Instant::now();
        loop {
            let Some(model) = self.model(campaign_id).await? else {
                tokio::time::sleep(Duration::from_secs(1)).await;
                return Ok(Waited::NoEndpoint);
            };
            if done(&model) {
                return Ok(Waited::Held(model));
            }
            if started.elapsed() >= timeout {
                return Ok(Waited::TimedOut(model));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_p99_of_thirty_samples_is_the_maximum() {
        let samples: Vec<f64> = (1..=30).map(f64::from).collect();
        assert_eq!(nearest_rank(&samples, 0.99), 30.0);
        assert_eq!(nearest_rank(&samples, 0.50), 15.0);
        assert!(nearest_rank(&[], 0.5).is_nan());
    }

    #[test]
    fn percentiles_are_in_milliseconds_whatever_the_order() {
        let p = Percentiles::of(&[0.003, 0.001, 0.002]);
        assert_eq!((p.p50, p.p99), (2.0, 3.0));
    }

    #[test]
    fn label_body_holds_n_values_of_the_benchmark_space() {
        let mut rng = StdRng::seed_from_u64(7);
        let body = label_body(3, 5, &mut rng).expect("serialises");
        let parsed: Value = serde_json::from_slice(&body).expect("json");
        let labels = parsed["labels"].as_array().expect("labels");
        assert_eq!(labels.len(), 5);
        for label in labels {
            assert_eq!(label["campaign_id"], 3);
            let value = label["value"].as_str().expect("value");
            assert_eq!(value.len(), SEQUENCE_LENGTH);
            assert!(value
                .chars()
                .all(|c| ALPHABET.contains(&c.to_string().as_str())));
        }
    }
}
