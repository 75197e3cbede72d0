//! `flowlab bench loop`: the whole active-learning loop as a paired experiment at an equal
//! oracle budget, flowlab against ablations of itself and two baselines, on synthetic tasks.
//!
//! Per (task, seed), every method starts from one common initial batch: `--initial`
//! uniformly random distinct candidates drawn from a stream of that (task, seed) and scored
//! by the oracle. Then each method spends `--rounds` rounds of `--batch-size` oracle calls.
//!
//! - `flowlab`, `flowlab-no-gfn`, `gfn-only`: the real server in-process on a fresh SQLite
//!   file per run, driven over real HTTP exactly as a lab would: the initial batch imported
//!   with `POST /labels` (`campaign_id` and `value`, failures as `failed: true`), then per
//!   round `POST /rounds` with `wait_for_model`, the oracle on each candidate, `POST /labels`.
//!   The three differ only by a campaign patch ([`Method::campaign_patch`]): none (the
//!   server's defaults); local search around the elites only, screened by the same proxy
//!   ([`NO_GFN_PATCH`]); the policy's samples as they come, unscreened ([`GFN_ONLY_PATCH`]).
//! - `random` and `genetic`: in-process baselines ([`baselines`]) whose archive starts with
//!   the initial batch.
//!
//! Every candidate scored is one oracle call. After the initial batch (round 0) and after
//! each round the figures of [`metrics`] are computed over all calls so far and printed as
//! a table row on stderr. At the end: a summary (mean ± 95% t-interval over seeds per task
//! and method), paired differences flowlab − other over seeds, the bars evaluated per task,
//! SVG plots of the best score so far ([`plots`]), and one JSON line on stdout.
//!
//! Runs are independent, so `--jobs N` runs N of them at a time on threads of one process
//! (each flowlab run with its own embedded server and SQLite file).

pub mod baselines;
pub mod flowlab;
pub mod metrics;
pub mod plots;
pub mod stats;

use crate::bench::oracles::{ModeRule, Task, TaskName};
use crate::kit::{ApiClient, Backend, Database, EmbeddedServer, DEFAULT_POSTGRES_ADMIN_URL};
use ::flowlab::domain::label::MAX_LABELS;
use ::flowlab::domain::round::MAX_BATCH_SIZE;
use ::flowlab::gfn::State;
use anyhow::{bail, Context};
use baselines::GeneticParams;
use metrics::{Evaluation, Judge, Metrics};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;
use stats::{mean_ci, paired_differences, MeanCi};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// The server's `wait_for_model` timeout inside the bench, in seconds: a round must never
/// give up on a training run that is merely slow on a busy machine.
const WAIT_FOR_MODEL_SECONDS: f64 = 3600.0;

/// `flowlab-no-gfn`: the same proxy, screening and batch rule as `flowlab`, but every
/// screened candidate comes from mutations and crossovers of the elites, none from the
/// policy.
pub const NO_GFN_PATCH: &str = r#"{"round": {"pool_local_search": 1.0, "pool_conservative": 0.0}}"#;

/// `gfn-only`: the policy's samples as they come: one sample per proposed candidate, no
/// refinement, no local search, no spreading.
pub const GFN_ONLY_PATCH: &str = r#"{"round": {"pool": 1, "refine": 0, "pool_local_search": 0.0, "pool_conservative": 0.0, "pool_spread": 0.0}}"#;

/// Whether labels carry the oracle's `entity` unless `--send-entity` says otherwise.
pub const SEND_ENTITY_DEFAULT: bool = true;

/// Seeds from this one up are for tuning (the baselines' settings and flowlab's defaults);
/// the reported seeds stay below it, so nothing reported was tuned on.
pub const TUNING_SEEDS_FROM: u64 = 100;

/// A method under comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Method {
    /// flowlab through its HTTP API with the server's defaults.
    Flowlab,
    /// flowlab with local search around the elites in place of the policy's samples.
    FlowlabNoGfn,
    /// flowlab's policy samples, without screening by the proxy.
    GfnOnly,
    /// Uniformly random distinct candidates.
    Random,
    /// The genetic algorithm of [`baselines`].
    Genetic,
}

impl Method {
    /// Every method, in the order the bench reports them.
    pub const ALL: [Method; 5] = [
        Method::Flowlab,
        Method::FlowlabNoGfn,
        Method::GfnOnly,
        Method::Random,
        Method::Genetic,
    ];

    /// The name as written on the command line and in the results.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Flowlab => "flowlab",
            Method::FlowlabNoGfn => "flowlab-no-gfn",
            Method::GfnOnly => "gfn-only",
            Method::Random => "random",
            Method::Genetic => "genetic",
        }
    }

    /// Whether the method is the flowlab server (one of its variants).
    pub fn is_flowlab(self) -> bool {
        matches!(
            self,
            Method::Flowlab | Method::FlowlabNoGfn | Method::GfnOnly
        )
    }

    /// The campaign settings a flowlab variant merges over the bench's campaign body.
    pub fn campaign_patch(self) -> Option<&'static str> {
        match self {
            Method::FlowlabNoGfn => Some(NO_GFN_PATCH),
            Method::GfnOnly => Some(GFN_ONLY_PATCH),
            _ => None,
        }
    }

    fn index(self) -> u64 {
        match self {
            Method::Flowlab => 0,
            Method::FlowlabNoGfn => 1,
            Method::GfnOnly => 2,
            Method::Random => 3,
            Method::Genetic => 4,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Settings of the genetic algorithm, as flags (defaults: [`GeneticParams::default`]).
#[derive(Debug, Clone, clap::Args)]
pub struct GeneticArgs {
    /// Best distinct successful candidates the genetic algorithm breeds from.
    #[arg(long = "ga-population", default_value_t = GeneticParams::default().population)]
    pub population: usize,
    /// Members of each parent tournament.
    #[arg(long = "ga-tournament", default_value_t = GeneticParams::default().tournament)]
    pub tournament: usize,
    /// Probability of crossing two parents for a child.
    #[arg(long = "ga-crossover", default_value_t = GeneticParams::default().crossover)]
    pub crossover: f64,
    /// Mean number of mutations per child.
    #[arg(long = "ga-mutations", default_value_t = GeneticParams::default().mutations)]
    pub mutations: f64,
}

impl GeneticArgs {
    fn params(&self) -> anyhow::Result<GeneticParams> {
        if self.population == 0 || self.tournament == 0 {
            bail!("--ga-population and --ga-tournament must be positive");
        }
        if !(0.0..=1.0).contains(&self.crossover) {
            bail!("--ga-crossover must be in [0, 1]");
        }
        if !(self.mutations.is_finite() && (0.0..=32.0).contains(&self.mutations)) {
            bail!("--ga-mutations must be in [0, 32]");
        }
        Ok(GeneticParams {
            population: self.population,
            tournament: self.tournament,
            crossover: self.crossover,
            mutations: self.mutations,
        })
    }
}

/// Settings of `flowlab bench loop`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoopBenchArgs {
    /// Tasks to run, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = TaskName::ALL)]
    pub tasks: Vec<TaskName>,
    /// Methods to compare, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = Method::ALL)]
    pub methods: Vec<Method>,
    /// Number of seeds: seeds 0..N (ignored with --seed-list). Seeds from 100 up are kept
    /// for tuning.
    #[arg(long, default_value_t = 10)]
    pub seeds: u64,
    /// Explicit seeds, comma-separated.
    #[arg(long = "seed-list", value_delimiter = ',')]
    pub seed_list: Option<Vec<u64>>,
    /// Uniformly random candidates of the common initial batch of every method.
    #[arg(long, default_value_t = 100)]
    pub initial: usize,
    /// Rounds per run after the initial batch.
    #[arg(long, default_value_t = 8)]
    pub rounds: usize,
    /// Candidates per round (the budget is initial + rounds × batch size).
    #[arg(long = "batch-size", default_value_t = 50)]
    pub batch_size: usize,
    /// Runs (task, method, seed) at a time, each flowlab run on its own embedded server.
    #[arg(long, default_value_t = 2)]
    pub jobs: usize,
    /// Directory of the SVG plots (best so far per round, one per task); created if needed.
    #[arg(long, default_value = "bench-loop-plots")]
    pub plots: PathBuf,
    /// Whether labels carry the oracle's entity (tasks with a many-to-one encoding).
    #[arg(long = "send-entity", default_value_t = SEND_ENTITY_DEFAULT, action = clap::ArgAction::Set)]
    pub send_entity: bool,
    #[command(flatten)]
    pub campaign: flowlab::CampaignArgs,
    #[command(flatten)]
    pub genetic: GeneticArgs,
}

impl LoopBenchArgs {
    fn seeds(&self) -> Vec<u64> {
        match &self.seed_list {
            Some(list) => list.clone(),
            None => (0..self.seeds).collect(),
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.tasks.is_empty() || self.methods.is_empty() || self.seeds().is_empty() {
            bail!("--tasks, --methods and the seeds must not be empty");
        }
        let distinct: HashSet<u64> = self.seeds().into_iter().collect();
        if distinct.len() != self.seeds().len() {
            bail!("--seed-list must not repeat a seed");
        }
        if !(1..=MAX_LABELS).contains(&self.initial) {
            bail!("--initial must be in 1..={MAX_LABELS}");
        }
        if !(1..=MAX_BATCH_SIZE).contains(&self.batch_size) {
            bail!("--batch-size must be in 1..={MAX_BATCH_SIZE}");
        }
        if self.jobs == 0 {
            bail!("--jobs must be positive");
        }
        self.genetic.params()?;
        Ok(())
    }
}

/// The figures of one (task, method, seed): one entry of the JSON line. The final figures
/// are flattened in; `rounds` holds them after every round (0: the initial batch).
#[derive(Debug, Clone, Serialize)]
pub struct LoopResult {
    pub task: &'static str,
    pub method: &'static str,
    pub seed: u64,
    #[serde(flatten)]
    pub metrics: Metrics,
    /// Wall time of the run, in seconds.
    pub seconds: f64,
    /// flowlab methods only: the mean over rounds of the share of each batch that the
    /// trained policy had a hand in (sources `policy`, `policy+local`, `elite+policy`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_share: Option<f64>,
    pub rounds: Vec<Metrics>,
}

/// A task's mode rule in the JSON line.
#[derive(Debug, Clone, Serialize)]
pub struct TaskRule {
    pub task: &'static str,
    #[serde(flatten)]
    pub rule: ModeRule,
}

/// One bar evaluated on one task.
#[derive(Debug, Clone, Serialize)]
pub struct Bar {
    pub task: &'static str,
    pub bar: String,
    pub pass: bool,
    /// The figures the verdict rests on, as printed.
    pub figures: String,
}

/// The JSON line on stdout.
#[derive(Debug, Clone, Serialize)]
pub struct LoopReport {
    pub mode_rules: Vec<TaskRule>,
    pub bars: Vec<Bar>,
    pub results: Vec<LoopResult>,
}

/// One row of a run's table: the figures after a round.
#[derive(Debug, Clone, Copy)]
pub struct RoundRow {
    /// 1-based; 0 for the initial batch.
    pub round: usize,
    pub metrics: Metrics,
    /// The version of flowlab's model that sampled the round (`None` for the baselines and
    /// the initial batch).
    pub model_version: Option<i64>,
    /// flowlab only: the share of the round's candidates the trained policy had a hand in.
    pub policy_share: Option<f64>,
    /// Wall time of the round, oracle and (for flowlab) waiting for training included.
    pub seconds: f64,
}

/// The column headings of [`table_row`].
pub fn table_header() -> String {
    format!(
        "{:>5} {:>6} {:>9} {:>10} {:>9} {:>5} {:>7} {:>7} {:>6} {:>7}",
        "round",
        "calls",
        "best",
        "top10_mean",
        "top10_div",
        "modes",
        "unique",
        "failed",
        "model",
        "secs"
    )
}

/// A round's figures under [`table_header`].
pub fn table_row(row: &RoundRow) -> String {
    let m = &row.metrics;
    format!(
        "{:>5} {:>6} {:>9} {:>10} {:>9} {:>5} {:>7.3} {:>7.3} {:>6} {:>7.1}",
        row.round,
        m.oracle_calls,
        figure(m.best, 3),
        figure(m.top10_mean, 3),
        figure(m.top10_diversity, 3),
        m.modes,
        m.unique_fraction,
        m.failed_fraction,
        row.model_version
            .map_or_else(|| "-".to_string(), |v| v.to_string()),
        row.seconds,
    )
}

fn figure(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_string(), |v| format!("{v:.decimals$}"))
}

/// The oracle calls of one run so far, with the figures after each round.
#[derive(Debug)]
pub struct RunLog<'a> {
    task: &'a Task,
    evaluations: Vec<Evaluation>,
    seen: HashSet<State>,
    rows: Vec<RoundRow>,
    /// Whether the first row is the initial batch (round 0).
    initial: bool,
}

impl<'a> RunLog<'a> {
    /// An empty log of a run on `task`.
    pub fn new(task: &'a Task) -> Self {
        Self {
            task,
            evaluations: Vec::new(),
            seen: HashSet::new(),
            rows: Vec::new(),
            initial: false,
        }
    }

    fn figures(&self) -> Metrics {
        let object = |x: &State| self.task.object(x);
        let distance = |a: &State, b: &State| self.task.distance(a, b);
        let judge = Judge {
            object: &object,
            distance: &distance,
            rule: self.task.mode_rule(),
        };
        metrics::metrics(&self.evaluations, &judge)
    }

    /// Records the initial batch (before any round) and returns its row, round 0.
    pub fn record_initial(&mut self, evaluations: Vec<Evaluation>, seconds: f64) -> RoundRow {
        self.initial = self.rows.is_empty();
        self.record(evaluations, None, seconds)
    }

    /// [`Self::record`] for a flowlab round, with the share of its candidates the policy
    /// made.
    pub fn record_flowlab(
        &mut self,
        evaluations: Vec<Evaluation>,
        model_version: i64,
        policy_share: f64,
        seconds: f64,
    ) -> RoundRow {
        let mut row = self.record(evaluations, Some(model_version), seconds);
        row.policy_share = Some(policy_share);
        if let Some(last) = self.rows.last_mut() {
            last.policy_share = Some(policy_share);
        }
        row
    }

    /// Records a round's oracle calls and returns the row of figures after it.
    pub fn record(
        &mut self,
        evaluations: Vec<Evaluation>,
        model_version: Option<i64>,
        seconds: f64,
    ) -> RoundRow {
        self.seen
            .extend(evaluations.iter().map(|e| e.candidate.clone()));
        self.evaluations.extend(evaluations);
        let row = RoundRow {
            round: self.rows.len() + 1 - usize::from(self.initial),
            metrics: self.figures(),
            model_version,
            policy_share: None,
            seconds,
        };
        self.rows.push(row);
        row
    }

    /// Every oracle call so far.
    pub fn evaluations(&self) -> &[Evaluation] {
        &self.evaluations
    }

    /// Every candidate evaluated so far.
    pub fn seen(&self) -> &HashSet<State> {
        &self.seen
    }

    /// The rows so far.
    pub fn rows(&self) -> &[RoundRow] {
        &self.rows
    }

    /// The figures after the last round (of no call at all before the first).
    pub fn final_metrics(&self) -> Metrics {
        self.rows
            .last()
            .map_or_else(|| self.figures(), |row| row.metrics)
    }
}

/// A seed for one random stream of a run: the bench seed mixed with the task and the stream
/// (a method, or the initial batch) by SplitMix64's finaliser, so that no two streams
/// coincide and neighbouring seeds are unrelated.
fn stream_seed(task: TaskName, stream: u64, seed: u64) -> u64 {
    let task_index = TaskName::ALL.iter().position(|t| *t == task).unwrap_or(0) as u64;
    let mut z = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add((task_index << 8 | stream).wrapping_mul(0xD1B5_4A32_D192_ED03));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The stream of the common initial batch (methods use their index, 0..5).
const INITIAL_STREAM: u64 = 255;

/// The common initial batch of `task` and `seed`: `n` distinct uniformly random candidates,
/// scored.
pub fn initial_batch(task: &Task, seed: u64, n: usize) -> Vec<Evaluation> {
    let mut rng = StdRng::seed_from_u64(stream_seed(task.name(), INITIAL_STREAM, seed));
    baselines::random_batch(task.shape(), n, &HashSet::new(), &mut rng)
        .into_iter()
        .map(|candidate| {
            let outcome = task.score_candidate(&candidate);
            Evaluation { candidate, outcome }
        })
        .collect()
}

/// One (task, method, seed) to run.
#[derive(Debug, Clone, Copy)]
struct Job {
    task: usize,
    method: Method,
    seed: u64,
}

/// A finished run.
#[derive(Debug, Clone)]
struct RunOutcome {
    task: TaskName,
    method: Method,
    seed: u64,
    rows: Vec<RoundRow>,
    seconds: f64,
}

impl RunOutcome {
    fn final_metrics(&self) -> Option<&Metrics> {
        self.rows.last().map(|r| &r.metrics)
    }

    /// The mean over rounds of [`RoundRow::policy_share`]; `None` for the baselines.
    fn policy_share(&self) -> Option<f64> {
        let shares: Vec<f64> = self.rows.iter().filter_map(|r| r.policy_share).collect();
        (!shares.is_empty()).then(|| shares.iter().sum::<f64>() / shares.len() as f64)
    }
}

/// Runs the benchmark and writes the JSON line to `out`.
pub fn run(args: &LoopBenchArgs, out: &mut impl Write) -> anyhow::Result<LoopReport> {
    args.validate()?;
    let params = args.genetic.params()?;
    let seeds = args.seeds();
    if let Some(s) = seeds.iter().find(|s| **s >= TUNING_SEEDS_FROM) {
        eprintln!(
            "note: seed {s} is a tuning seed (seeds from {TUNING_SEEDS_FROM} up are kept for \
             tuning); figures reported on it are not held out"
        );
    }
    let tasks: Vec<Task> = args
        .tasks
        .iter()
        .map(|&name| Task::new(name))
        .collect::<anyhow::Result<_>>()?;
    for task in &tasks {
        let rule = task.mode_rule();
        eprintln!(
            "{}: {}; modes: objects scoring at least {} that are at least {} apart",
            task.name(),
            task.name().description(),
            rule.min_score,
            rule.min_distance
        );
    }
    let initial: HashMap<(TaskName, u64), Vec<Evaluation>> = tasks
        .iter()
        .flat_map(|task| {
            seeds
                .iter()
                .map(move |&seed| ((task.name(), seed), initial_batch(task, seed, args.initial)))
        })
        .collect();
    // The flowlab runs take the time: start them first so the baselines fill the gaps.
    let mut jobs: Vec<Job> = Vec::new();
    for flowlab_first in [true, false] {
        for (t, _) in tasks.iter().enumerate() {
            for &method in &args.methods {
                if method.is_flowlab() != flowlab_first {
                    continue;
                }
                for &seed in &seeds {
                    jobs.push(Job {
                        task: t,
                        method,
                        seed,
                    });
                }
            }
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    let started = Instant::now();
    eprintln!("\n{:<32} {}", "run", table_header());
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let outcomes: Mutex<Vec<anyhow::Result<RunOutcome>>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..args.jobs.min(jobs.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&job) = jobs.get(i) else { break };
                if failed.load(Ordering::Relaxed) {
                    break;
                }
                let task = &tasks[job.task];
                let first = initial
                    .get(&(task.name(), job.seed))
                    .map_or(&[][..], Vec::as_slice);
                let outcome = run_one(args, &params, &runtime, task, job, first);
                if outcome.is_err() {
                    failed.store(true, Ordering::Relaxed);
                }
                if let Ok(mut all) = outcomes.lock() {
                    all.push(outcome);
                }
            });
        }
    });
    // Requests are done; do not wait long for a stray blocking sampling task.
    runtime.shutdown_timeout(std::time::Duration::from_secs(10));
    let mut finished = Vec::new();
    for outcome in outcomes
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a run panicked"))?
    {
        finished.push(outcome?);
    }
    // Report in a stable order, whatever order the runs finished in.
    let order = |o: &RunOutcome| {
        (
            args.tasks.iter().position(|t| *t == o.task),
            o.method.index(),
            seeds.iter().position(|s| *s == o.seed),
        )
    };
    finished.sort_by_key(order);
    let (text, bars) = summary(&args.tasks, &args.methods, &tasks, &finished);
    eprintln!("\n{text}");
    write_plots(args, &finished)?;
    eprintln!("total wall time {:.1} s", started.elapsed().as_secs_f64());
    let report = LoopReport {
        mode_rules: tasks
            .iter()
            .map(|t| TaskRule {
                task: t.name().as_str(),
                rule: t.mode_rule(),
            })
            .collect(),
        bars,
        results: finished
            .iter()
            .map(|o| LoopResult {
                task: o.task.as_str(),
                method: o.method.as_str(),
                seed: o.seed,
                metrics: o
                    .final_metrics()
                    .copied()
                    .unwrap_or_else(|| RunLog::new(&tasks[0]).final_metrics()),
                seconds: o.seconds,
                policy_share: o.policy_share(),
                rounds: o.rows.iter().map(|r| r.metrics).collect(),
            })
            .collect(),
    };
    writeln!(out, "{}", serde_json::to_string(&report)?)?;
    Ok(report)
}

/// One run, its rows printed on stderr as they come, each prefixed with the run's name.
fn run_one(
    args: &LoopBenchArgs,
    params: &GeneticParams,
    runtime: &tokio::runtime::Runtime,
    task: &Task,
    job: Job,
    initial: &[Evaluation],
) -> anyhow::Result<RunOutcome> {
    let name = format!("{}/{}/seed {}", task.name(), job.method, job.seed);
    let started = Instant::now();
    let mut log = RunLog::new(task);
    let mut on_row = |row: &RoundRow| eprintln!("{name:<32} {}", table_row(row));
    if job.method.is_flowlab() {
        runtime
            .block_on(run_flowlab(
                args,
                task,
                job.method,
                job.seed,
                initial,
                &mut log,
                &mut on_row,
            ))
            .with_context(|| format!("run {name}"))?;
    } else {
        run_baseline(
            args,
            job.method,
            params,
            task,
            job.seed,
            initial,
            &mut log,
            &mut on_row,
        );
    }
    Ok(RunOutcome {
        task: task.name(),
        method: job.method,
        seed: job.seed,
        rows: log.rows().to_vec(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[allow(clippy::too_many_arguments)]
fn run_baseline(
    args: &LoopBenchArgs,
    method: Method,
    params: &GeneticParams,
    task: &Task,
    seed: u64,
    initial: &[Evaluation],
    log: &mut RunLog<'_>,
    on_row: &mut impl FnMut(&RoundRow),
) {
    let row = log.record_initial(initial.to_vec(), 0.0);
    on_row(&row);
    let mut rng = StdRng::seed_from_u64(stream_seed(task.name(), method.index(), seed));
    for _ in 0..args.rounds {
        let started = Instant::now();
        let batch = match method {
            Method::Genetic => baselines::genetic_batch(
                params,
                task.shape(),
                log.evaluations(),
                log.seen(),
                args.batch_size,
                &mut rng,
            ),
            _ => baselines::random_batch(task.shape(), args.batch_size, log.seen(), &mut rng),
        };
        let evaluations = batch
            .into_iter()
            .map(|candidate| {
                let outcome = task.score_candidate(&candidate);
                Evaluation { candidate, outcome }
            })
            .collect();
        let row = log.record(evaluations, None, started.elapsed().as_secs_f64());
        on_row(&row);
    }
}

/// The embedded server's settings for one flowlab run: rounds wait for training however
/// slow the machine, and a request outlives the longest wait it may hold.
fn server_config(database_url: &str, training_threads: usize) -> ::flowlab::config::Config {
    let mut config = ::flowlab::config::Config::for_database(database_url);
    config.training_threads = training_threads;
    config.wait_timeout_seconds = WAIT_FOR_MODEL_SECONDS;
    config.request_timeout_seconds = WAIT_FOR_MODEL_SECONDS + 60.0;
    config
}

/// A flowlab variant on a fresh embedded server: one campaign, the initial batch imported,
/// `rounds` rounds, then the server is stopped (cancelling the training run the last labels
/// started) and its database removed.
async fn run_flowlab(
    args: &LoopBenchArgs,
    task: &Task,
    method: Method,
    seed: u64,
    initial: &[Evaluation],
    log: &mut RunLog<'_>,
    on_row: &mut impl FnMut(&RoundRow),
) -> anyhow::Result<()> {
    let database = Database::create(
        Backend::Sqlite,
        "flowlab_bench_loop",
        DEFAULT_POSTGRES_ADMIN_URL,
    )
    .await?;
    let config = server_config(database.url(), args.campaign.training_threads);
    let server = EmbeddedServer::start(config).await?;
    let looped = flowlab_rounds(
        args,
        task,
        method,
        seed,
        initial,
        server.base_url(),
        log,
        on_row,
    )
    .await;
    server.stop().await;
    let removed = database.remove().await;
    looped?;
    removed
}

#[allow(clippy::too_many_arguments)]
async fn flowlab_rounds(
    args: &LoopBenchArgs,
    task: &Task,
    method: Method,
    seed: u64,
    initial: &[Evaluation],
    base_url: &str,
    log: &mut RunLog<'_>,
    on_row: &mut impl FnMut(&RoundRow),
) -> anyhow::Result<()> {
    let client = ApiClient::new(base_url)?;
    let body = args.campaign.campaign_body_with(
        task,
        &format!("bench-loop {} {method} seed {seed}", task.name()),
        seed,
        method.campaign_patch(),
    )?;
    let campaign_id = client.create_campaign(&body).await?;
    let started = Instant::now();
    flowlab::import_labels(&client, campaign_id, task, initial, args.send_entity).await?;
    let row = log.record_initial(initial.to_vec(), started.elapsed().as_secs_f64());
    on_row(&row);
    for number in 1..=args.rounds {
        let started = Instant::now();
        let proposal = flowlab::propose(&client, campaign_id, number, args.batch_size).await?;
        if proposal.candidates.len() < args.batch_size {
            eprintln!(
                "{} {method} seed {seed} round {number}: the server proposed {} of {}{}",
                task.name(),
                proposal.candidates.len(),
                args.batch_size,
                if proposal.exhausted {
                    " (space exhausted)"
                } else {
                    ""
                }
            );
        }
        let evaluations = flowlab::score(task, &proposal)?;
        flowlab::post_labels_with_entities(
            &client,
            task,
            &proposal,
            &evaluations,
            args.send_entity,
        )
        .await?;
        let row = log.record_flowlab(
            evaluations,
            proposal.model_version,
            proposal.policy_share,
            started.elapsed().as_secs_f64(),
        );
        on_row(&row);
    }
    Ok(())
}

/// A figure of the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Figure {
    Best,
    Top10Mean,
    Top10Diversity,
    Modes,
    Failed,
}

impl Figure {
    const ALL: [Figure; 5] = [
        Figure::Best,
        Figure::Top10Mean,
        Figure::Top10Diversity,
        Figure::Modes,
        Figure::Failed,
    ];

    fn name(self) -> &'static str {
        match self {
            Figure::Best => "best",
            Figure::Top10Mean => "top10_mean",
            Figure::Top10Diversity => "top10_div",
            Figure::Modes => "modes",
            Figure::Failed => "failed",
        }
    }

    fn of(self, m: &Metrics) -> Option<f64> {
        match self {
            Figure::Best => m.best,
            Figure::Top10Mean => m.top10_mean,
            Figure::Top10Diversity => m.top10_diversity,
            Figure::Modes => Some(m.modes as f64),
            Figure::Failed => Some(m.failed_fraction),
        }
    }
}

/// `(seed, figure)` of every finished run of `task` and `method` that defines the figure.
fn per_seed(
    runs: &[RunOutcome],
    task: TaskName,
    method: Method,
    figure: Figure,
) -> Vec<(u64, f64)> {
    runs.iter()
        .filter(|r| r.task == task && r.method == method)
        .filter_map(|r| {
            r.final_metrics()
                .and_then(|m| figure.of(m))
                .map(|v| (r.seed, v))
        })
        .collect()
}

fn ci_of(values: &[(u64, f64)]) -> Option<MeanCi> {
    mean_ci(&values.iter().map(|(_, v)| *v).collect::<Vec<_>>())
}

fn ci_text(ci: Option<MeanCi>, decimals: usize) -> String {
    ci.map_or_else(|| "-".to_string(), |c| c.format(decimals))
}

/// The summary on stderr (mean ± 95% CI per task and method, seconds per run and per
/// round, paired differences flowlab − other) and the bars evaluated per task.
fn summary(
    names: &[TaskName],
    methods: &[Method],
    tasks: &[Task],
    runs: &[RunOutcome],
) -> (String, Vec<Bar>) {
    let mut text = String::from("summary: mean ± 95% CI over seeds (t-interval)\n");
    text.push_str(&format!(
        "{:<9} {:<14} {:>5} {:>15} {:>15} {:>15} {:>13} {:>13} {:>8} {:>8}\n",
        "task",
        "method",
        "seeds",
        "best",
        "top10_mean",
        "top10_div",
        "modes",
        "failed",
        "s/run",
        "s/round"
    ));
    let mut bars = Vec::new();
    for (&task, spec) in names.iter().zip(tasks) {
        for &method in methods {
            let mine: Vec<&RunOutcome> = runs
                .iter()
                .filter(|r| r.task == task && r.method == method)
                .collect();
            if mine.is_empty() {
                continue;
            }
            let cis: Vec<String> = Figure::ALL
                .iter()
                .map(|&f| {
                    let decimals = if f == Figure::Modes { 1 } else { 3 };
                    ci_text(ci_of(&per_seed(runs, task, method, f)), decimals)
                })
                .collect();
            let secs = mean_ci(&mine.iter().map(|r| r.seconds).collect::<Vec<_>>());
            // Rounds after the initial batch: what sizing a longer run needs.
            let round_secs: Vec<f64> = mine
                .iter()
                .flat_map(|r| r.rows.iter().filter(|row| row.round > 0))
                .map(|row| row.seconds)
                .collect();
            let per_round = mean_ci(&round_secs).map(|c| c.mean);
            text.push_str(&format!(
                "{:<9} {:<14} {:>5} {:>15} {:>15} {:>15} {:>13} {:>13} {:>8} {:>8}\n",
                task.as_str(),
                method.as_str(),
                mine.len(),
                cis[0],
                cis[1],
                cis[2],
                cis[3],
                cis[4],
                figure(secs.map(|c| c.mean), 1),
                figure(per_round, 2),
            ));
        }
        let rule = spec.mode_rule();
        text.push_str(&format!(
            "  modes on {task}: objects scoring >= {} at least {} apart\n",
            rule.min_score, rule.min_distance
        ));
        let shares: Vec<String> = methods
            .iter()
            .filter_map(|&method| {
                let per_run: Vec<f64> = runs
                    .iter()
                    .filter(|r| r.task == task && r.method == method)
                    .filter_map(RunOutcome::policy_share)
                    .collect();
                mean_ci(&per_run).map(|c| format!("{method} {}", c.format(2)))
            })
            .collect();
        if !shares.is_empty() {
            text.push_str(&format!(
                "  share of each batch the policy made (mean over rounds): {}\n",
                shares.join("; ")
            ));
        }
        if methods.contains(&Method::Flowlab) {
            for &other in methods.iter().filter(|m| **m != Method::Flowlab) {
                let diffs: Vec<String> = Figure::ALL
                    .iter()
                    .map(|&f| {
                        let d = paired_differences(
                            &per_seed(runs, task, Method::Flowlab, f),
                            &per_seed(runs, task, other, f),
                        );
                        format!("{} {}", f.name(), ci_text(mean_ci(&d), 3))
                    })
                    .collect();
                text.push_str(&format!(
                    "  flowlab - {other} (paired): {}\n",
                    diffs.join("; ")
                ));
            }
        }
        let task_bars = evaluate_bars(task, methods, runs);
        for bar in &task_bars {
            text.push_str(&format!(
                "  bar {}: {} ({})\n",
                bar.bar,
                if bar.pass { "PASS" } else { "FAIL" },
                bar.figures
            ));
        }
        bars.extend(task_bars);
    }
    (text, bars)
}

/// The bars of one task, for those whose methods ran:
/// - flowlab beats flowlab-no-gfn on modes and on top-10 mean: the paired 95% CI of
///   flowlab − flowlab-no-gfn lies above 0;
/// - flowlab is at least the genetic algorithm on best and top-10 mean (mean paired
///   difference >= 0), and finds more modes (> 0);
/// - flowlab's top-10 diversity is at least 1.5 times the genetic algorithm's (means).
fn evaluate_bars(task: TaskName, methods: &[Method], runs: &[RunOutcome]) -> Vec<Bar> {
    let mut bars = Vec::new();
    if !methods.contains(&Method::Flowlab) {
        return bars;
    }
    let diff = |other: Method, f: Figure| {
        mean_ci(&paired_differences(
            &per_seed(runs, task, Method::Flowlab, f),
            &per_seed(runs, task, other, f),
        ))
    };
    let mut push = |bar: String, pass: bool, figures: String| {
        bars.push(Bar {
            task: task.as_str(),
            bar,
            pass,
            figures,
        })
    };
    if methods.contains(&Method::FlowlabNoGfn) {
        for f in [Figure::Modes, Figure::Top10Mean] {
            let d = diff(Method::FlowlabNoGfn, f);
            push(
                format!(
                    "flowlab > flowlab-no-gfn on {} (paired CI above 0)",
                    f.name()
                ),
                d.is_some_and(|d| d.low() > 0.0),
                format!("difference {}", ci_text(d, 3)),
            );
        }
    }
    if methods.contains(&Method::Genetic) {
        for f in [Figure::Best, Figure::Top10Mean] {
            let d = diff(Method::Genetic, f);
            push(
                format!("flowlab >= genetic on {}", f.name()),
                d.is_some_and(|d| d.mean >= 0.0),
                format!("difference {}", ci_text(d, 3)),
            );
        }
        let d = diff(Method::Genetic, Figure::Modes);
        push(
            "flowlab has more modes than genetic".to_string(),
            d.is_some_and(|d| d.mean > 0.0),
            format!("difference {}", ci_text(d, 2)),
        );
        let mean_of =
            |m: Method| ci_of(&per_seed(runs, task, m, Figure::Top10Diversity)).map(|c| c.mean);
        let (f, g) = (mean_of(Method::Flowlab), mean_of(Method::Genetic));
        push(
            "flowlab top10_div >= 1.5 x genetic's".to_string(),
            matches!((f, g), (Some(f), Some(g)) if f >= 1.5 * g),
            format!("{} vs 1.5 x {}", figure(f, 3), figure(g, 3)),
        );
    }
    bars
}

/// One SVG per task in `--plots`: best so far per round, mean ± 95% CI per method.
fn write_plots(args: &LoopBenchArgs, runs: &[RunOutcome]) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.plots)
        .with_context(|| format!("creating {}", args.plots.display()))?;
    for &task in &args.tasks {
        let curves: Vec<plots::Curve> = args
            .methods
            .iter()
            .map(|&method| {
                let mine: Vec<&RunOutcome> = runs
                    .iter()
                    .filter(|r| r.task == task && r.method == method)
                    .collect();
                let rounds = mine.iter().map(|r| r.rows.len()).max().unwrap_or(0);
                let points = (0..rounds)
                    .map(|i| {
                        let values: Vec<f64> = mine
                            .iter()
                            .filter_map(|r| r.rows.get(i).and_then(|row| row.metrics.best))
                            .collect();
                        mean_ci(&values)
                    })
                    .collect();
                plots::Curve {
                    method: method.as_str(),
                    colour: method.index() as usize,
                    points,
                }
            })
            .collect();
        let path = args.plots.join(format!("best-{task}.svg"));
        plots::best_so_far(
            &path,
            &format!("{task}: best score so far (mean ± 95% CI over seeds)"),
            &curves,
        )?;
        eprintln!("plot: {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_servers_settings_are_valid() {
        let config = server_config("sqlite://unused.db", 1);
        assert_eq!(config.validate(), Ok(()));
    }

    fn args(methods: Vec<Method>) -> LoopBenchArgs {
        LoopBenchArgs {
            tasks: vec![TaskName::Cocktail],
            methods,
            seeds: 1,
            seed_list: None,
            initial: 30,
            rounds: 4,
            batch_size: 25,
            jobs: 1,
            plots: PathBuf::from("unused"),
            send_entity: false,
            campaign: flowlab::CampaignArgs {
                training_steps: 1,
                training_batch_size: 1,
                hidden: None,
                campaign_json: None,
                training_threads: 1,
            },
            genetic: GeneticArgs {
                population: GeneticParams::default().population,
                tournament: GeneticParams::default().tournament,
                crossover: GeneticParams::default().crossover,
                mutations: GeneticParams::default().mutations,
            },
        }
    }

    #[test]
    fn random_streams_never_coincide() {
        let mut seeds = HashSet::new();
        for task in TaskName::ALL {
            for stream in Method::ALL
                .iter()
                .map(|m| m.index())
                .chain([INITIAL_STREAM])
            {
                for seed in 0..20 {
                    assert!(seeds.insert(stream_seed(task, stream, seed)));
                }
            }
        }
    }

    #[test]
    fn every_method_of_a_seed_starts_from_the_same_initial_batch() {
        let task = Task::new(TaskName::Fragments).unwrap();
        let a = initial_batch(&task, 3, 40);
        assert_eq!(a, initial_batch(&task, 3, 40));
        assert_ne!(a, initial_batch(&task, 4, 40));
        let distinct: HashSet<&State> = a.iter().map(|e| &e.candidate).collect();
        assert_eq!(distinct.len(), 40);
        // The baselines' first row is that batch.
        let args = args(vec![Method::Random]);
        let mut log = RunLog::new(&task);
        run_baseline(
            &args,
            Method::Random,
            &GeneticParams::default(),
            &task,
            3,
            &a,
            &mut log,
            &mut |_| {},
        );
        assert_eq!(&log.evaluations()[..40], &a[..]);
        assert_eq!(log.rows()[0].round, 0);
        assert_eq!(log.rows()[0].metrics.oracle_calls, 40);
    }

    #[test]
    fn a_baseline_run_spends_exactly_the_budget_on_new_candidates() {
        let task = Task::new(TaskName::Cocktail).unwrap();
        let args = args(vec![Method::Genetic]);
        let initial = initial_batch(&task, 0, args.initial);
        for method in [Method::Random, Method::Genetic] {
            let mut log = RunLog::new(&task);
            let mut rows = Vec::new();
            run_baseline(
                &args,
                method,
                &GeneticParams::default(),
                &task,
                0,
                &initial,
                &mut log,
                &mut |row| rows.push(*row),
            );
            assert_eq!(rows.len(), 5);
            assert_eq!(
                rows.iter().map(|r| r.round).collect::<Vec<_>>(),
                vec![0, 1, 2, 3, 4]
            );
            let last = log.final_metrics();
            assert_eq!(last.oracle_calls, 130);
            assert_eq!(last.unique_fraction, 1.0);
            // Cumulative figures never get worse.
            assert!(rows
                .windows(2)
                .all(|w| w[1].metrics.best >= w[0].metrics.best
                    && w[1].metrics.modes >= w[0].metrics.modes));
        }
    }

    #[test]
    fn the_methods_campaign_patches_make_valid_campaigns() {
        for method in Method::ALL.into_iter().filter(|m| m.is_flowlab()) {
            for name in TaskName::ALL {
                let task = Task::new(name).unwrap();
                let body = args(vec![method])
                    .campaign
                    .campaign_body_with(&task, "bench", 1, method.campaign_patch())
                    .unwrap();
                let campaign: ::flowlab::domain::campaign::NewCampaign =
                    serde_json::from_value(body.clone()).unwrap();
                campaign.validate().unwrap();
                match method {
                    Method::FlowlabNoGfn => {
                        assert_eq!(body["round"]["pool_local_search"], 1.0)
                    }
                    Method::GfnOnly => {
                        assert_eq!(body["round"]["pool"], 1);
                        assert_eq!(body["round"]["pool_local_search"], 0.0);
                    }
                    _ => assert!(body.get("round").is_none()),
                }
            }
        }
    }

    fn outcome(method: Method, seed: u64, best: f64, modes: usize, diversity: f64) -> RunOutcome {
        RunOutcome {
            task: TaskName::Motif,
            method,
            seed,
            rows: vec![RoundRow {
                round: 1,
                metrics: Metrics {
                    oracle_calls: 10,
                    best: Some(best),
                    top10_mean: Some(best - 1.0),
                    top10_diversity: Some(diversity),
                    modes,
                    unique_fraction: 1.0,
                    failed_fraction: 0.0,
                },
                model_version: None,
                policy_share: None,
                seconds: 1.0,
            }],
            seconds: 1.0,
        }
    }

    /// The share a run reports is the mean over its flowlab rounds; the initial batch and
    /// the baselines' rounds carry none.
    #[test]
    fn a_runs_policy_share_is_the_mean_over_its_rounds() {
        let mut run = outcome(Method::Flowlab, 0, 2.0, 0, 0.5);
        assert_eq!(run.policy_share(), None, "no flowlab round yet");
        let mut round = run.rows[0];
        for share in [0.2, 0.5] {
            round.policy_share = Some(share);
            run.rows.push(round);
        }
        let mean = run.policy_share().expect("flowlab rounds");
        assert!((mean - 0.35).abs() < 1e-12, "{mean}");
    }

    #[test]
    fn the_bars_read_paired_differences() {
        // flowlab − no-gfn: best differences 1, 2, 3 (CI 2 ± 2.48: includes 0), modes
        // differences 1, 1, 2 (mean 1.33, sd 0.577, CI ± 1.434: includes 0 too).
        // flowlab − genetic: best 0, 0.5, -0.2 (mean 0.1 >= 0), modes 1, 0, 0 (> 0),
        // diversity 0.6 vs 0.3 (>= 1.5 x).
        let runs = vec![
            outcome(Method::Flowlab, 0, 5.0, 3, 0.6),
            outcome(Method::Flowlab, 1, 6.0, 3, 0.6),
            outcome(Method::Flowlab, 2, 7.0, 4, 0.6),
            outcome(Method::FlowlabNoGfn, 0, 4.0, 2, 0.2),
            outcome(Method::FlowlabNoGfn, 1, 4.0, 2, 0.2),
            outcome(Method::FlowlabNoGfn, 2, 4.0, 2, 0.2),
            outcome(Method::Genetic, 0, 5.0, 2, 0.3),
            outcome(Method::Genetic, 1, 5.5, 3, 0.3),
            outcome(Method::Genetic, 2, 7.2, 4, 0.3),
        ];
        let methods = [Method::Flowlab, Method::FlowlabNoGfn, Method::Genetic];
        let bars = evaluate_bars(TaskName::Motif, &methods, &runs);
        let verdicts: Vec<(&str, bool)> = bars.iter().map(|b| (b.bar.as_str(), b.pass)).collect();
        assert_eq!(
            verdicts,
            vec![
                (
                    "flowlab > flowlab-no-gfn on modes (paired CI above 0)",
                    false
                ),
                (
                    "flowlab > flowlab-no-gfn on top10_mean (paired CI above 0)",
                    false
                ),
                ("flowlab >= genetic on best", true),
                ("flowlab >= genetic on top10_mean", true),
                ("flowlab has more modes than genetic", true),
                ("flowlab top10_div >= 1.5 x genetic's", true),
            ]
        );
        // Two identical differences of 2: a zero-width interval above 0.
        let runs = vec![
            outcome(Method::Flowlab, 0, 5.0, 4, 0.6),
            outcome(Method::Flowlab, 1, 6.0, 4, 0.6),
            outcome(Method::FlowlabNoGfn, 0, 3.0, 2, 0.6),
            outcome(Method::FlowlabNoGfn, 1, 4.0, 2, 0.6),
        ];
        let bars = evaluate_bars(
            TaskName::Motif,
            &[Method::Flowlab, Method::FlowlabNoGfn],
            &runs,
        );
        assert!(bars.iter().all(|b| b.pass), "{bars:?}");
    }

    #[test]
    fn the_summary_reports_intervals_and_differences() {
        let runs = vec![
            outcome(Method::Flowlab, 0, 1.0, 1, 0.5),
            outcome(Method::Flowlab, 1, 2.0, 1, 0.5),
            outcome(Method::Flowlab, 2, 3.0, 1, 0.5),
            outcome(Method::Random, 0, 1.0, 0, 0.9),
            outcome(Method::Random, 1, 1.0, 0, 0.9),
            outcome(Method::Random, 2, 1.0, 0, 0.9),
        ];
        let task = Task::new(TaskName::Motif).unwrap();
        let (text, bars) = summary(
            &[TaskName::Motif],
            &[Method::Flowlab, Method::Random],
            &[task],
            &runs,
        );
        // Best 1, 2, 3: mean 2, sd 1, half-width t(2) / sqrt(3) = 4.303 / 1.732 = 2.484.
        assert!(text.contains("2.000 ± 2.484"), "{text}");
        // Paired: 0, 1, 2, the same interval.
        assert!(
            text.contains("flowlab - random (paired): best 1.000 ± 2.484"),
            "{text}"
        );
        assert!(bars.is_empty());
    }
}
