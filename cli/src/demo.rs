//! `flowlab demo`: the whole loop in one command, for a first look after
//! `cargo build --release`.
//!
//! Starts the real server in-process on a SQLite file in a new temporary directory, creates
//! a campaign on one of the bench's synthetic tasks, and plays the lab for a few rounds over
//! the HTTP API (`POST /rounds` waiting for the model, the built-in oracle on each candidate,
//! `POST /labels`), with a progress bar. Then it prints the per-round table, writes every
//! candidate as CSV (`GET /campaigns/{id}/candidates?format=csv`, best first) to a file that
//! is kept (`flowlab-demo-candidates.csv` in the current directory unless `--csv` says
//! otherwise; an existing file of that name is replaced), stops the server and deletes the
//! temporary database unless `--keep-database` is given.
//!
//! CLI code: errors are `anyhow`; the table goes to stdout, the progress bar to stderr.

use crate::bench::loop_bench::flowlab::{self, CampaignArgs};
use crate::bench::loop_bench::{table_header, table_row, RoundRow, RunLog};
use crate::bench::oracles::{Task, TaskName};
use crate::kit::{ApiClient, Backend, Database, EmbeddedServer, DEFAULT_POSTGRES_ADMIN_URL};
use ::flowlab::config::Config;
use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Settings of `flowlab demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// The synthetic task whose oracle plays the lab.
    #[arg(long, value_enum, default_value_t = TaskName::Motif)]
    pub task: TaskName,
    /// Rounds of the loop.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Candidates per round.
    #[arg(long = "batch-size", default_value_t = 50)]
    pub batch_size: usize,
    /// Optimisation steps per training run (one run after each round's labels).
    #[arg(long = "training-steps", default_value_t = 200)]
    pub training_steps: usize,
    /// Where to write the CSV of every candidate (kept after the demo).
    #[arg(long, default_value = "flowlab-demo-candidates.csv")]
    pub csv: PathBuf,
    /// Keep the temporary SQLite database instead of deleting it (its path is printed).
    #[arg(long = "keep-database")]
    pub keep_database: bool,
}

/// Runs the demo; the table and where things are go to `out`.
pub fn run(args: &DemoArgs, out: &mut impl Write) -> anyhow::Result<()> {
    if args.rounds == 0
        || !(1..=::flowlab::domain::round::MAX_BATCH_SIZE).contains(&args.batch_size)
    {
        bail!("--rounds must be positive and --batch-size in 1..=10000");
    }
    let task = Task::new(args.task)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    let outcome = runtime.block_on(demo(args, &task, out));
    runtime.shutdown_timeout(Duration::from_secs(10));
    outcome
}

/// The demo server's settings: a newcomer's machine may be slow, so rounds never give up
/// on a training run, and a request outlives the longest wait it may hold.
fn server_config(database_url: &str) -> Config {
    let mut config = Config::for_database(database_url);
    config.wait_timeout_seconds = 3600.0;
    config.request_timeout_seconds = config.wait_timeout_seconds + 60.0;
    config
}

async fn demo(args: &DemoArgs, task: &Task, out: &mut impl Write) -> anyhow::Result<()> {
    let database =
        Database::create(Backend::Sqlite, "flowlab_demo", DEFAULT_POSTGRES_ADMIN_URL).await?;
    let config = server_config(database.url());
    let server = EmbeddedServer::start(config).await?;
    let database_path = database.sqlite_path().unwrap_or_default();
    writeln!(
        out,
        "flowlab demo: a server on {} with a temporary SQLite database at {}",
        server.base_url(),
        database_path.display()
    )?;
    writeln!(out, "task {}: {}", task.name(), task.name().description())?;
    writeln!(
        out,
        "{} rounds of {} candidates; {} training steps after each round's labels\n",
        args.rounds, args.batch_size, args.training_steps
    )?;
    out.flush()?;
    let played = play(args, task, server.base_url()).await;
    server.stop().await;
    let kept = if args.keep_database {
        database.keep()
    } else {
        database.remove().await?;
        None
    };
    let (log_rows, best, csv_rows) = played?;

    writeln!(out, "{}", table_header())?;
    for row in &log_rows {
        writeln!(out, "{}", table_row(row))?;
    }
    writeln!(
        out,
        "\n(calls: oracle calls so far; best, top10_mean: the best score and the mean of the 10 \
         best; top10_div: their mean pairwise distance in [0, 1]; unique, failed: fractions of \
         the calls; model: the model version that sampled the round, 0 = none yet, uniform)"
    )?;
    if let Some((value, score)) = best {
        writeln!(out, "best candidate: {value} (score {score:.3})")?;
    }
    let csv_path = std::path::absolute(&args.csv).unwrap_or_else(|_| args.csv.clone());
    writeln!(
        out,
        "all {csv_rows} candidates (value, round, status, mean reward) written to {}",
        csv_path.display()
    )?;
    match kept {
        Some(directory) => writeln!(
            out,
            "the database was kept in {} (serve it with `flowlab serve --database-url sqlite://{}`)",
            directory.display(),
            directory.join("flowlab.db").display()
        )?,
        None => writeln!(out, "the temporary database was deleted")?,
    }
    writeln!(
        out,
        "next: `flowlab serve` runs the service for your own oracle (README: \"The loop with curl\")"
    )?;
    Ok(())
}

/// The best candidate as JSON text with its score.
type Best = Option<(String, f64)>;

/// Plays the rounds with a progress bar; returns the rows, the best candidate and how many
/// candidates the CSV holds.
async fn play(
    args: &DemoArgs,
    task: &Task,
    base_url: &str,
) -> anyhow::Result<(Vec<RoundRow>, Best, usize)> {
    let client = ApiClient::new(base_url)?;
    let campaign = CampaignArgs {
        training_steps: args.training_steps,
        training_batch_size: 32,
        hidden: Some(128),
        campaign_json: None,
        training_threads: 1,
    };
    let campaign_id = client
        .create_campaign(&campaign.campaign_body(task, "flowlab demo", 0)?)
        .await?;
    let bar = ProgressBar::new(args.rounds as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{bar:20}] round {pos}/{len} {elapsed:>4} {wide_msg}",
        )
        .context("the progress bar template")?
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let mut log = RunLog::new(task);
    let mut rows = Vec::with_capacity(args.rounds);
    for number in 1..=args.rounds {
        let started = Instant::now();
        bar.set_message(if number == 1 {
            "sampling uniformly (no model yet)".to_string()
        } else {
            format!(
                "training on {} labels, then sampling",
                log.evaluations().len()
            )
        });
        let proposal = flowlab::propose(&client, campaign_id, number, args.batch_size).await?;
        bar.set_message(format!("oracle: {} candidates", proposal.candidates.len()));
        let evaluations = flowlab::score(task, &proposal)?;
        bar.set_message("POST /labels");
        flowlab::post_labels(&client, &proposal, &evaluations).await?;
        let row = log.record(
            evaluations,
            Some(proposal.model_version),
            started.elapsed().as_secs_f64(),
        );
        bar.println(format!(
            "round {number}: best {:.3}, mean of the top 10 {:.3}, {:.0}% failed",
            row.metrics.best.unwrap_or(f64::NAN),
            row.metrics.top10_mean.unwrap_or(f64::NAN),
            100.0 * row.metrics.failed_fraction
        ));
        rows.push(row);
        bar.inc(1);
    }
    bar.set_message("fetching the CSV");
    let csv = client.candidates_csv(campaign_id).await?;
    bar.finish_and_clear();
    std::fs::write(&args.csv, &csv).with_context(|| format!("writing {}", args.csv.display()))?;
    let csv_rows = csv.lines().count().saturating_sub(1);
    let best = log
        .evaluations()
        .iter()
        .filter_map(|e| e.outcome.as_ref().ok().map(|s| (e, *s)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(e, score)| (task.to_value(&e.candidate).to_string(), score));
    Ok((rows, best, csv_rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_servers_settings_are_valid() {
        assert_eq!(server_config("sqlite://unused.db").validate(), Ok(()));
    }
}
