//! `flowlab bench loop` (issue 4, item 3): the whole active-learning loop at an equal oracle
//! budget, for flowlab and for two baselines, on synthetic tasks.
//!
//! - `flowlab`: the real server in-process on a fresh SQLite file per (task, seed), driven
//!   over real HTTP exactly as a lab would: `POST /rounds` with `wait_for_model` (round 1 is
//!   sampled uniformly, later rounds by the model trained on every label so far), the oracle
//!   on each candidate, `POST /labels` with the scores and the failures.
//! - `random` and `genetic`: in-process baselines ([`baselines`]) on the same oracle with
//!   the same batches.
//!
//! Every candidate scored is one oracle call (a short round counts what it returned). After
//! each round the figures of [`metrics`] are computed over all calls so far and printed as a
//! table row on stderr; at the end a summary (mean over seeds) goes to stderr and one JSON
//! line `{"results": [...]}` with the final figures of every (task, method, seed) to stdout.

pub mod baselines;
pub mod flowlab;
pub mod metrics;

use crate::bench::embedded::{ApiClient, EmbeddedServer};
use crate::bench::oracles::{Task, TaskName};
use crate::domain::round::MAX_BATCH_SIZE;
use crate::gfn::State;
use anyhow::{bail, Context};
use baselines::GeneticParams;
use metrics::{Evaluation, Metrics};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;
use std::collections::HashSet;
use std::fmt;
use std::io::Write;
use std::time::Instant;

/// The server's `wait_for_model` timeout inside the bench, in seconds: a round must never
/// give up on a training run that is merely slow on a busy machine.
const WAIT_FOR_MODEL_SECONDS: f64 = 3600.0;

/// A method under comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Method {
    /// flowlab through its HTTP API.
    Flowlab,
    /// Uniformly random distinct candidates.
    Random,
    /// The genetic algorithm of [`baselines`].
    Genetic,
}

impl Method {
    /// The name as written on the command line and in the results.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Flowlab => "flowlab",
            Method::Random => "random",
            Method::Genetic => "genetic",
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
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [TaskName::Motif, TaskName::Cocktail])]
    pub tasks: Vec<TaskName>,
    /// Methods to compare, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Method::Flowlab, Method::Random, Method::Genetic])]
    pub methods: Vec<Method>,
    /// Number of seeds: seeds 0..N (ignored with --seed-list).
    #[arg(long, default_value_t = 3)]
    pub seeds: u64,
    /// Explicit seeds, comma-separated.
    #[arg(long = "seed-list", value_delimiter = ',')]
    pub seed_list: Option<Vec<u64>>,
    /// Rounds per run.
    #[arg(long, default_value_t = 10)]
    pub rounds: usize,
    /// Candidates per round (the oracle budget is rounds × batch size).
    #[arg(long = "batch-size", default_value_t = 100)]
    pub batch_size: usize,
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
        if self.rounds == 0 {
            bail!("--rounds must be positive");
        }
        if !(1..=MAX_BATCH_SIZE).contains(&self.batch_size) {
            bail!("--batch-size must be in 1..={MAX_BATCH_SIZE}");
        }
        self.genetic.params()?;
        Ok(())
    }
}

/// The final figures of one (task, method, seed): one entry of the JSON line.
#[derive(Debug, Clone, Serialize)]
pub struct LoopResult {
    pub task: &'static str,
    pub method: &'static str,
    pub seed: u64,
    #[serde(flatten)]
    pub metrics: Metrics,
}

/// The JSON line on stdout.
#[derive(Debug, Clone, Serialize)]
pub struct LoopReport {
    pub results: Vec<LoopResult>,
}

/// One row of a run's table: the figures after a round.
#[derive(Debug, Clone, Copy)]
pub struct RoundRow {
    /// 1-based.
    pub round: usize,
    pub metrics: Metrics,
    /// The version of flowlab's model that sampled the round (`None` for the baselines).
    pub model_version: Option<i64>,
    /// Wall time of the round, oracle and (for flowlab) waiting for training included.
    pub seconds: f64,
}

/// The column headings of [`table_row`].
pub fn table_header() -> String {
    format!(
        "{:>5} {:>6} {:>9} {:>10} {:>9} {:>7} {:>7} {:>6} {:>7}",
        "round", "calls", "best", "top10_mean", "top10_div", "unique", "failed", "model", "secs"
    )
}

/// A round's figures under [`table_header`].
pub fn table_row(row: &RoundRow) -> String {
    let m = &row.metrics;
    format!(
        "{:>5} {:>6} {:>9} {:>10} {:>9} {:>7.3} {:>7.3} {:>6} {:>7.1}",
        row.round,
        m.oracle_calls,
        figure(m.best, 3),
        figure(m.top10_mean, 3),
        figure(m.top10_diversity, 3),
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
}

impl<'a> RunLog<'a> {
    pub fn new(task: &'a Task) -> Self {
        Self {
            task,
            evaluations: Vec::new(),
            seen: HashSet::new(),
            rows: Vec::new(),
        }
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
            round: self.rows.len() + 1,
            metrics: metrics::metrics(&self.evaluations, |a, b| self.task.distance(a, b)),
            model_version,
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

    /// The figures after the last round (of no call at all before the first).
    pub fn final_metrics(&self) -> Metrics {
        self.rows
            .last()
            .map_or_else(|| metrics::metrics(&[], |_, _| 0.0), |row| row.metrics)
    }
}

/// Runs the benchmark and writes the JSON line to `out`.
pub fn run(args: &LoopBenchArgs, out: &mut impl Write) -> anyhow::Result<LoopReport> {
    args.validate()?;
    let params = args.genetic.params()?;
    let seeds = args.seeds();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    let started = Instant::now();
    let mut results = Vec::new();
    let mut seconds_per_run: Vec<(TaskName, Method, f64)> = Vec::new();
    for &name in &args.tasks {
        let task = Task::new(name)?;
        for &method in &args.methods {
            for &seed in &seeds {
                eprintln!("\n== {name} / {method} / seed {seed} ==");
                eprintln!("{}", table_header());
                let run_started = Instant::now();
                let mut log = RunLog::new(&task);
                let mut on_row = |row: &RoundRow| eprintln!("{}", table_row(row));
                match method {
                    Method::Flowlab => {
                        runtime.block_on(run_flowlab(args, &task, seed, &mut log, &mut on_row))?
                    }
                    Method::Random | Method::Genetic => {
                        run_baseline(args, method, &params, &task, seed, &mut log, &mut on_row)
                    }
                }
                seconds_per_run.push((name, method, run_started.elapsed().as_secs_f64()));
                results.push(LoopResult {
                    task: name.as_str(),
                    method: method.as_str(),
                    seed,
                    metrics: log.final_metrics(),
                });
            }
        }
    }
    // Requests are done; do not wait long for a stray blocking sampling task.
    runtime.shutdown_timeout(std::time::Duration::from_secs(10));
    eprintln!(
        "\n{}",
        summary(&args.tasks, &args.methods, &results, &seconds_per_run)
    );
    eprintln!("total wall time {:.1} s", started.elapsed().as_secs_f64());
    let report = LoopReport { results };
    writeln!(out, "{}", serde_json::to_string(&report)?)?;
    Ok(report)
}

/// A baseline's seed: the bench seed mixed with the task and the method, so that two
/// methods (or tasks) never share a random stream.
fn baseline_seed(task: TaskName, method: Method, seed: u64) -> u64 {
    let salt = match (task, method) {
        (_, Method::Flowlab) => 0,
        (TaskName::Motif, Method::Random) => 1,
        (TaskName::Motif, Method::Genetic) => 2,
        (TaskName::Cocktail, Method::Random) => 3,
        (TaskName::Cocktail, Method::Genetic) => 4,
    };
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt
}

fn run_baseline(
    args: &LoopBenchArgs,
    method: Method,
    params: &GeneticParams,
    task: &Task,
    seed: u64,
    log: &mut RunLog<'_>,
    on_row: &mut impl FnMut(&RoundRow),
) {
    let mut rng = StdRng::seed_from_u64(baseline_seed(task.name(), method, seed));
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

/// flowlab on a fresh embedded server: one campaign, `rounds` rounds, then the server is
/// stopped (cancelling the training run the last labels started) and its database removed.
async fn run_flowlab(
    args: &LoopBenchArgs,
    task: &Task,
    seed: u64,
    log: &mut RunLog<'_>,
    on_row: &mut impl FnMut(&RoundRow),
) -> anyhow::Result<()> {
    let threads = args.campaign.training_threads;
    let server = EmbeddedServer::start("flowlab-bench-loop", |config| {
        config.training_threads = threads;
        config.wait_timeout_seconds = WAIT_FOR_MODEL_SECONDS;
    })
    .await?;
    let looped = flowlab_rounds(args, task, seed, server.base_url(), log, on_row).await;
    let stopped = server.stop(true).await;
    looped?;
    stopped?;
    Ok(())
}

async fn flowlab_rounds(
    args: &LoopBenchArgs,
    task: &Task,
    seed: u64,
    base_url: &str,
    log: &mut RunLog<'_>,
    on_row: &mut impl FnMut(&RoundRow),
) -> anyhow::Result<()> {
    let client = ApiClient::new(base_url)?;
    let body = args.campaign.campaign_body(
        task,
        &format!("bench-loop {} seed {seed}", task.name()),
        seed,
    )?;
    let campaign_id = client.create_campaign(&body).await?;
    for number in 1..=args.rounds {
        let started = Instant::now();
        let proposal = flowlab::propose(&client, campaign_id, number, args.batch_size).await?;
        if proposal.candidates.len() < args.batch_size {
            eprintln!(
                "round {number}: the server proposed {} of {}{}",
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
        flowlab::post_labels(&client, &proposal, &evaluations).await?;
        let row = log.record(
            evaluations,
            Some(proposal.model_version),
            started.elapsed().as_secs_f64(),
        );
        on_row(&row);
    }
    Ok(())
}

/// Mean of the defined values; `None` when there is none.
fn mean_of(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let defined: Vec<f64> = values.flatten().collect();
    (!defined.is_empty()).then(|| defined.iter().sum::<f64>() / defined.len() as f64)
}

/// The summary table (mean over seeds per task and method) and, where all three methods
/// ran, whether flowlab meets issue 4's bar on each task.
fn summary(
    tasks: &[TaskName],
    methods: &[Method],
    results: &[LoopResult],
    seconds: &[(TaskName, Method, f64)],
) -> String {
    let mut text = format!(
        "summary (mean over seeds)\n{:<9} {:<8} {:>5} {:>6} {:>9} {:>10} {:>9} {:>7} {:>7} {:>8}\n",
        "task",
        "method",
        "seeds",
        "calls",
        "best",
        "top10_mean",
        "top10_div",
        "unique",
        "failed",
        "secs/run"
    );
    let mut means = Vec::new();
    for &task in tasks {
        for &method in methods {
            let runs: Vec<&Metrics> = results
                .iter()
                .filter(|r| r.task == task.as_str() && r.method == method.as_str())
                .map(|r| &r.metrics)
                .collect();
            if runs.is_empty() {
                continue;
            }
            let best = mean_of(runs.iter().map(|m| m.best));
            let top = mean_of(runs.iter().map(|m| m.top10_mean));
            let diversity = mean_of(runs.iter().map(|m| m.top10_diversity));
            let calls = mean_of(runs.iter().map(|m| Some(m.oracle_calls as f64)));
            let unique = mean_of(runs.iter().map(|m| Some(m.unique_fraction)));
            let failed = mean_of(runs.iter().map(|m| Some(m.failed_fraction)));
            let secs = mean_of(
                seconds
                    .iter()
                    .filter(|(t, m, _)| *t == task && *m == method)
                    .map(|(_, _, s)| Some(*s)),
            );
            text.push_str(&format!(
                "{:<9} {:<8} {:>5} {:>6} {:>9} {:>10} {:>9} {:>7} {:>7} {:>8}\n",
                task.as_str(),
                method.as_str(),
                runs.len(),
                figure(calls, 0),
                figure(best, 3),
                figure(top, 3),
                figure(diversity, 3),
                figure(unique, 3),
                figure(failed, 3),
                figure(secs, 1),
            ));
            means.push((task, method, best, top, diversity));
        }
    }
    let find = |task: TaskName, method: Method| {
        means
            .iter()
            .find(|(t, m, ..)| *t == task && *m == method)
            .map(|&(_, _, best, top, diversity)| (best, top, diversity))
    };
    for &task in tasks {
        let (Some(f), Some(r), Some(g)) = (
            find(task, Method::Flowlab),
            find(task, Method::Random),
            find(task, Method::Genetic),
        ) else {
            continue;
        };
        let at_least =
            |a: Option<f64>, b: Option<f64>| matches!((a, b), (Some(a), Some(b)) if a >= b);
        let best = at_least(f.0, r.0) && at_least(f.0, g.0);
        let top = at_least(f.1, r.1) && at_least(f.1, g.1);
        let diversity = at_least(f.2, g.2);
        let mark = |ok: bool| if ok { "yes" } else { "NO" };
        text.push_str(&format!(
            "issue 4 bar on {task}: best >= both baselines: {}; top10_mean >= both: {}; top10_div >= genetic: {}\n",
            mark(best),
            mark(top),
            mark(diversity)
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baselines_never_share_a_random_stream() {
        let mut seeds = HashSet::new();
        for task in [TaskName::Motif, TaskName::Cocktail] {
            for method in [Method::Random, Method::Genetic] {
                for seed in 0..5 {
                    assert!(seeds.insert(baseline_seed(task, method, seed)));
                }
            }
        }
    }

    #[test]
    fn a_baseline_run_spends_exactly_the_budget_on_new_candidates() {
        let task = Task::new(TaskName::Cocktail).expect("task");
        let args = LoopBenchArgs {
            tasks: vec![TaskName::Cocktail],
            methods: vec![Method::Genetic],
            seeds: 1,
            seed_list: None,
            rounds: 4,
            batch_size: 25,
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
        };
        for method in [Method::Random, Method::Genetic] {
            let mut log = RunLog::new(&task);
            let mut rows = Vec::new();
            run_baseline(
                &args,
                method,
                &GeneticParams::default(),
                &task,
                0,
                &mut log,
                &mut |row| rows.push(*row),
            );
            assert_eq!(rows.len(), 4);
            let last = log.final_metrics();
            assert_eq!(last.oracle_calls, 100);
            assert_eq!(last.unique_fraction, 1.0);
            // Cumulative figures never get worse.
            assert!(rows
                .windows(2)
                .all(|w| w[1].metrics.best >= w[0].metrics.best));
        }
    }

    #[test]
    fn the_summary_says_where_flowlab_falls_short() {
        let result = |method: &'static str, best: f64, diversity: f64| LoopResult {
            task: "motif",
            method,
            seed: 0,
            metrics: Metrics {
                oracle_calls: 10,
                best: Some(best),
                top10_mean: Some(best - 1.0),
                top10_diversity: Some(diversity),
                unique_fraction: 1.0,
                failed_fraction: 0.0,
            },
        };
        let results = vec![
            result("flowlab", 5.0, 0.4),
            result("random", 3.0, 0.9),
            result("genetic", 4.0, 0.5),
        ];
        let text = summary(
            &[TaskName::Motif],
            &[Method::Flowlab, Method::Random, Method::Genetic],
            &results,
            &[],
        );
        assert!(
            text.contains(
                "best >= both baselines: yes; top10_mean >= both: yes; top10_div >= genetic: NO"
            ),
            "{text}"
        );
    }
}
