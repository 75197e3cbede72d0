//! `flowlab bench scale`: one campaign grown through the API to a million labelled
//! candidates, with the request paths that must not grow with it measured on the way.
//!
//! Per backend: the real server in this process on a fresh database, one `sequence`
//! campaign (20 tokens × 32, as `bench api`) whose labels are imported with `POST /labels`
//! in batches of random distinct values. At each size of `--sizes` (default 0, 10k, 100k and
//! 1M labelled candidates), once the trainer has trained on everything (the training runs
//! the imports woke, on every label so far, are part of the figures): the process's resident
//! memory at rest, `POST /rounds` p50/p99 (batch 100, without `wait_for_model`), `GET
//! /rounds/{id}` of those rounds, a first candidate page by creation and the last page by
//! reward (by offset, then after a cursor), `GET /campaigns/{id}`, and `POST /labels`
//! throughput on a few more batches. The peak resident memory of each stretch (growing to
//! the size and training on it) is read from the kernel's high-water mark, reset at every
//! size.
//!
//! Memory figures are of this process, server and client together; the client holds one
//! request body at a time (a few MB), so they are the server's to within that. Targets: at
//! the largest size, round p99 and labels/s within 2× of the empty campaign's; resident
//! memory under 500 MiB at rest and its peak under 1 GiB.

use super::api::{label_body, Client, Percentiles};
use crate::kit::{Backend, Database, EmbeddedServer};
use anyhow::{bail, Context};
use flowlab::config::Config;
use flowlab::domain::label::MAX_LABELS;
use flowlab::domain::round::MAX_BATCH_SIZE;
use flowlab::store::redact_url;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;
use serde_json::{json, Value};
use std::io::Write;
use std::time::{Duration, Instant};

/// Targets: the largest size's round p99 and label throughput within this factor of the
/// empty campaign's.
const TARGET_SLOWDOWN: f64 = 2.0;
/// Resident memory targets, in MiB.
const TARGET_REST_MIB: f64 = 500.0;
const TARGET_PEAK_MIB: f64 = 1024.0;

/// Settings of `flowlab bench scale`.
#[derive(Debug, Clone, clap::Args)]
pub struct ScaleBenchArgs {
    #[command(flatten)]
    pub storage: super::BackendArgs,
    /// Campaign sizes (labelled candidates) at which to measure, comma-separated, ascending.
    #[arg(long, value_delimiter = ',', default_value = "0,10000,100000,1000000")]
    pub sizes: Vec<usize>,
    /// Labels per `POST /labels` request while growing the campaign.
    #[arg(long = "label-batch-size", default_value_t = MAX_LABELS)]
    pub label_batch_size: usize,
    /// `POST /labels` requests timed at each size for the throughput figure (their labels
    /// stay: the campaign is that much larger at the next size).
    #[arg(long = "probe-batches", default_value_t = 5)]
    pub probe_batches: usize,
    /// Timed `POST /rounds` at each size (after one untimed warm-up).
    #[arg(long, default_value_t = 30)]
    pub rounds: usize,
    /// `batch_size` of every round.
    #[arg(long = "round-batch", default_value_t = 100)]
    pub round_batch: usize,
    /// Timed reads of each other kind (candidate pages, the campaign) at each size.
    #[arg(long, default_value_t = 10)]
    pub reads: usize,
    /// JSON object merged into the campaign body (e.g. training settings). By default one
    /// short training run per wake-up, so that the figures are about the data, not the
    /// optimiser.
    #[arg(
        long = "campaign-json",
        default_value = r#"{"training": {"steps": 20, "batch_size": 16}}"#
    )]
    pub campaign_json: String,
    /// Labels per timed `POST /labels` request of the throughput probe.
    #[arg(long = "probe-batch-size", default_value_t = 1000)]
    pub probe_batch_size: usize,
    /// The server's `--max-training-labels`.
    #[arg(long = "max-training-labels", default_value_t = Config::for_database("").max_training_labels)]
    pub max_training_labels: usize,
    /// Threads of the server's trainer.
    #[arg(long = "training-threads", default_value_t = 1)]
    pub training_threads: usize,
    /// Longest wait, in seconds, for the trainer to train on everything at one size.
    #[arg(long = "training-wait", default_value_t = 1800.0)]
    pub training_wait_seconds: f64,
    /// Seed of the random values and rewards.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Figures at one campaign size.
#[derive(Debug, Clone, Serialize)]
pub struct ScalePoint {
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// Labelled candidates of the campaign when measured.
    pub candidates: usize,
    /// `POST /rounds` latency, milliseconds.
    pub round_p50_ms: f64,
    /// See `round_p50_ms`.
    pub round_p99_ms: f64,
    /// `POST /labels` throughput of the probe batches, labels per second.
    pub labels_per_second: f64,
    /// `GET /rounds/{id}` latency, milliseconds.
    pub round_read_p50_ms: f64,
    /// See `round_read_p50_ms`.
    pub round_read_p99_ms: f64,
    /// `GET /campaigns/{id}/candidates?limit=100`, milliseconds (p50).
    pub first_page_p50_ms: f64,
    /// The last page of `?order=reward&limit=100`, milliseconds (p50).
    pub last_reward_page_p50_ms: f64,
    /// The same page asked for with `after`, the cursor of the row before it, instead of an
    /// offset, milliseconds (p50).
    pub last_reward_page_cursor_p50_ms: f64,
    /// `GET /campaigns/{id}`, milliseconds (p50).
    pub campaign_read_p50_ms: f64,
    /// Labels per second over the imports that grew the campaign to this size (NaN at the
    /// first size).
    pub growth_labels_per_second: f64,
    /// Seconds from the last import until the trainer had trained on everything.
    pub training_settle_seconds: f64,
    /// Resident memory at rest (trainer idle), MiB.
    pub rss_rest_mib: f64,
    /// Peak resident memory while growing to this size and training on it, MiB.
    pub rss_peak_mib: f64,
}

/// The JSON line on stdout.
#[derive(Debug, Clone, Serialize)]
pub struct ScaleBenchReport {
    /// Every size of every backend, in the order measured.
    pub points: Vec<ScalePoint>,
    /// Per backend: whether the largest size met the targets, with the figures compared.
    pub verdicts: Vec<Value>,
}

/// Runs the benchmark on the chosen backends and writes the result line to `out`.
pub fn run(args: &ScaleBenchArgs, out: &mut impl Write) -> anyhow::Result<ScaleBenchReport> {
    let extra = validate(args)?;
    let backends = args.storage.backends();
    let runtime = super::runtime()?;
    let measured = runtime.block_on(async {
        let mut points = Vec::new();
        for &backend in backends {
            points.extend(run_backend(args, &extra, backend).await?);
        }
        anyhow::Ok(points)
    });
    runtime.shutdown_timeout(Duration::from_secs(10));
    let points = measured?;
    let verdicts = backends
        .iter()
        .filter_map(|b| verdict(&points, b.name()))
        .collect();
    let report = ScaleBenchReport { points, verdicts };
    writeln!(out, "{}", serde_json::to_string(&report)?)?;
    Ok(report)
}

/// The settings checked, and the campaign patch parsed.
fn validate(args: &ScaleBenchArgs) -> anyhow::Result<Value> {
    if args.sizes.is_empty() || args.sizes.windows(2).any(|w| w[0] > w[1]) {
        bail!("--sizes must be a non-empty ascending list");
    }
    if args.rounds == 0 || args.reads == 0 || args.probe_batches == 0 {
        bail!("--rounds, --reads and --probe-batches must be positive");
    }
    if !(1..=MAX_LABELS).contains(&args.label_batch_size)
        || !(1..=MAX_LABELS).contains(&args.probe_batch_size)
    {
        bail!("--label-batch-size and --probe-batch-size must be in 1..={MAX_LABELS}");
    }
    if !(1..=MAX_BATCH_SIZE).contains(&args.round_batch) {
        bail!("--round-batch must be in 1..={MAX_BATCH_SIZE}");
    }
    if !(args.training_wait_seconds.is_finite() && args.training_wait_seconds > 0.0) {
        bail!("--training-wait must be a positive number of seconds");
    }
    let extra: Value =
        serde_json::from_str(&args.campaign_json).context("--campaign-json is not JSON")?;
    if !extra.is_object() {
        bail!("--campaign-json must be a JSON object");
    }
    Ok(extra)
}

/// Whether the backend's largest size met the targets against its first (empty) size.
fn verdict(points: &[ScalePoint], backend: &str) -> Option<Value> {
    let mine: Vec<&ScalePoint> = points.iter().filter(|p| p.backend == backend).collect();
    let (first, last) = (mine.first()?, mine.last()?);
    // The first size with labels already has a trained model and proxy, whose screening a
    // round of the empty campaign does not do: the growth beyond it is the data's alone.
    let trained = mine
        .iter()
        .find(|p| p.candidates > 0 && p.candidates < last.candidates);
    let trained_round_ratio = trained.map(|t| last.round_p99_ms / t.round_p99_ms);
    let round_ratio = last.round_p99_ms / first.round_p99_ms;
    let labels_ratio = first.labels_per_second / last.labels_per_second;
    let rest_peak = mine.iter().map(|p| p.rss_rest_mib).fold(0.0, f64::max);
    let peak = mine.iter().map(|p| p.rss_peak_mib).fold(0.0, f64::max);
    let pass = round_ratio <= TARGET_SLOWDOWN
        && labels_ratio <= TARGET_SLOWDOWN
        && rest_peak < TARGET_REST_MIB
        && peak < TARGET_PEAK_MIB;
    if let (Some(t), Some(r)) = (trained, trained_round_ratio) {
        eprintln!(
            "[{backend}] round p99 at {} against {} (both with a trained model): x{r:.2}",
            last.candidates, t.candidates
        );
    }
    eprintln!(
        "[{backend}] at {} against {}: round p99 x{round_ratio:.2}, labels/s slower x{labels_ratio:.2} (targets <= {TARGET_SLOWDOWN}); \
         RSS at rest at most {rest_peak:.0} MiB (< {TARGET_REST_MIB}), peak {peak:.0} MiB (< {TARGET_PEAK_MIB}): {}",
        last.candidates,
        first.candidates,
        if pass { "targets met" } else { "targets NOT met" }
    );
    Some(json!({
        "backend": backend,
        "largest": last.candidates,
        "round_p99_ratio": round_ratio,
        "round_p99_ratio_to_first_trained": trained_round_ratio,
        "first_trained": trained.map(|t| t.candidates),
        "labels_slowdown": labels_ratio,
        "rss_rest_max_mib": rest_peak,
        "rss_peak_max_mib": peak,
        "pass": pass,
    }))
}

/// One backend: a fresh database, the server on it, every size, then the server stopped and
/// the database removed, whatever the measurements did.
async fn run_backend(
    args: &ScaleBenchArgs,
    extra: &Value,
    backend: Backend,
) -> anyhow::Result<Vec<ScalePoint>> {
    let database = Database::create(backend, "flowlab_scale", &args.storage.postgres_url).await?;
    eprintln!(
        "[{}] database {}",
        backend.name(),
        redact_url(database.url())
    );
    let mut config = Config::for_database(database.url());
    config.training_threads = args.training_threads;
    config.max_training_labels = args.max_training_labels;
    let measured = async {
        let server = EmbeddedServer::start(config).await?;
        let measured = grow_and_measure(args, extra, backend, &server).await;
        server.stop().await;
        measured
    }
    .await;
    let removed = database.remove().await;
    let points = measured?;
    removed?;
    Ok(points)
}

/// The campaign grown size by size on a running server.
async fn grow_and_measure(
    args: &ScaleBenchArgs,
    extra: &Value,
    backend: Backend,
    server: &EmbeddedServer,
) -> anyhow::Result<Vec<ScalePoint>> {
    let name = backend.name();
    let client = Client::new(server.base_url())?;
    let campaign = client.create_campaign("bench-scale", extra.clone()).await?;
    let mut rng = StdRng::seed_from_u64(args.seed);
    let wait = Duration::from_secs_f64(args.training_wait_seconds);
    let mut labelled = 0usize;
    // Candidates the timed rounds proposed (pending for ever: nobody labels them).
    let mut proposed = 0usize;
    let mut points = Vec::with_capacity(args.sizes.len());
    for &size in &args.sizes {
        reset_peak_rss();
        // Grow to `size` (the previous size's probe batches already count).
        let mut growth_seconds = 0.0;
        let grown_from = labelled;
        let mut last_report = Instant::now();
        while labelled < size {
            let n = args.label_batch_size.min(size - labelled);
            let body = label_body(campaign, n, &mut rng)?;
            let started = Instant::now();
            labelled += client.post_labels(body).await?;
            growth_seconds += started.elapsed().as_secs_f64();
            if last_report.elapsed() > Duration::from_secs(10) {
                eprintln!("[{name}] growing: {labelled}/{size} labelled");
                last_report = Instant::now();
            }
        }
        let growth_labels_per_second = if labelled > grown_from {
            (labelled - grown_from) as f64 / growth_seconds.max(1e-9)
        } else {
            f64::NAN
        };
        let settling = Instant::now();
        server
            .service()
            .trainer
            .until_idle(wait)
            .await
            .with_context(|| format!("training on {labelled} labels"))?;
        let training_settle_seconds = settling.elapsed().as_secs_f64();
        let rss_rest_mib = rss_mib("VmRSS");
        let point = measure_at(
            args,
            &client,
            campaign,
            &mut rng,
            &mut labelled,
            &mut proposed,
        )
        .await?;
        let point = ScalePoint {
            backend: name,
            growth_labels_per_second,
            training_settle_seconds,
            rss_rest_mib,
            rss_peak_mib: rss_mib("VmHWM"),
            ..point
        };
        eprintln!(
            "[{name}] {:>8} labelled: round p50 {:.1} / p99 {:.1} ms, {:.0} labels/s, GET round p99 {:.1} ms, \
             first page {:.1} ms, last page by reward {:.1} ms (after a cursor {:.1} ms), campaign {:.1} ms, trained in {:.1} s, RSS rest {:.0} / peak {:.0} MiB",
            point.candidates,
            point.round_p50_ms,
            point.round_p99_ms,
            point.labels_per_second,
            point.round_read_p99_ms,
            point.first_page_p50_ms,
            point.last_reward_page_p50_ms,
            point.last_reward_page_cursor_p50_ms,
            point.campaign_read_p50_ms,
            point.training_settle_seconds,
            point.rss_rest_mib,
            point.rss_peak_mib,
        );
        points.push(point);
    }
    Ok(points)
}

/// The timed requests at the campaign's current size, then the probe imports (which grow
/// `labelled`). Memory and growth fields are left for the caller.
async fn measure_at(
    args: &ScaleBenchArgs,
    client: &Client,
    campaign: i64,
    rng: &mut StdRng,
    labelled: &mut usize,
    proposed: &mut usize,
) -> anyhow::Result<ScalePoint> {
    let candidates = *labelled;
    let api = client.api();
    let body = json!({"campaign_id": campaign, "batch_size": args.round_batch});
    let mut round_times = Vec::with_capacity(args.rounds);
    let mut round_ids = Vec::with_capacity(args.rounds);
    for i in 0..=args.rounds {
        let started = Instant::now();
        let (status, round) = api.post("/rounds", &body).await?;
        let elapsed = started.elapsed().as_secs_f64();
        if status != 201 {
            bail!("POST /rounds answered {status}: {round}");
        }
        if i > 0 {
            round_times.push(elapsed);
        }
        round_ids.push(
            round["id"]
                .as_i64()
                .with_context(|| format!("POST /rounds: no id in {round}"))?,
        );
        *proposed += round["candidates"].as_array().map_or(0, Vec::len);
    }
    let rounds = Percentiles::of(&round_times);
    let mut read_times = Vec::with_capacity(round_ids.len());
    for id in &round_ids {
        read_times.push(timed_get(client, &format!("/rounds/{id}")).await?);
    }
    let reads = Percentiles::of(&read_times);
    let first_page = median_get(
        client,
        &format!("/campaigns/{campaign}/candidates?limit=100"),
        args.reads,
    )
    .await?;
    // Every candidate: the labelled ones and the rounds' pending ones.
    let total = candidates + *proposed;
    let (last_page, last_page_cursor) = last_pages(client, campaign, total, args.reads).await?;
    let campaign_read = median_get(client, &format!("/campaigns/{campaign}"), args.reads).await?;
    // Throughput at this size: a few more batches, timed.
    let mut probe_seconds = 0.0;
    let mut probed = 0usize;
    for _ in 0..args.probe_batches {
        let body = label_body(campaign, args.probe_batch_size, rng)?;
        let started = Instant::now();
        probed += client.post_labels(body).await?;
        probe_seconds += started.elapsed().as_secs_f64();
    }
    *labelled += probed;
    Ok(ScalePoint {
        backend: "",
        candidates,
        round_p50_ms: rounds.p50,
        round_p99_ms: rounds.p99,
        labels_per_second: probed as f64 / probe_seconds.max(1e-9),
        round_read_p50_ms: reads.p50,
        round_read_p99_ms: reads.p99,
        first_page_p50_ms: first_page,
        last_reward_page_p50_ms: last_page,
        last_reward_page_cursor_p50_ms: last_page_cursor,
        campaign_read_p50_ms: campaign_read,
        growth_labels_per_second: f64::NAN,
        training_settle_seconds: f64::NAN,
        rss_rest_mib: f64::NAN,
        rss_peak_mib: f64::NAN,
    })
}

/// One `GET path` that must answer 200; its latency in seconds.
async fn timed_get(client: &Client, path: &str) -> anyhow::Result<f64> {
    let started = Instant::now();
    let (status, body) = client.api().get(path).await?;
    let elapsed = started.elapsed().as_secs_f64();
    if status != 200 {
        bail!("GET {path} answered {status}: {body}");
    }
    Ok(elapsed)
}

/// The last page by reward of a campaign of `total` candidates, asked for with an offset and
/// then after a cursor, each `reads` times: the median milliseconds of both.
async fn last_pages(
    client: &Client,
    campaign: i64,
    total: usize,
    reads: usize,
) -> anyhow::Result<(f64, f64)> {
    let page = format!("/campaigns/{campaign}/candidates?order=reward&limit=100");
    let last_offset = total.saturating_sub(100);
    let by_offset = median_get(client, &format!("{page}&offset={last_offset}"), reads).await?;
    if last_offset == 0 {
        // The last page is the first: no row before it to continue after.
        return Ok((by_offset, by_offset));
    }
    // The row before the last page, found once by offset (not timed): its page's `next`.
    let before = format!(
        "/campaigns/{campaign}/candidates?order=reward&limit=1&offset={}",
        last_offset - 1
    );
    let (status, body) = client.api().get(&before).await?;
    let Some(cursor) = body["next"].as_str().filter(|_| status == 200) else {
        bail!("GET {before} answered {status} without a next cursor: {body}");
    };
    let by_cursor = median_get(client, &format!("{page}&after={cursor}"), reads).await?;
    Ok((by_offset, by_cursor))
}

/// The median latency of `n` `GET path`, in milliseconds.
async fn median_get(client: &Client, path: &str, n: usize) -> anyhow::Result<f64> {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        times.push(timed_get(client, path).await?);
    }
    Ok(Percentiles::of(&times).p50)
}

/// A memory line of `/proc/self/status` (`VmRSS`, `VmHWM`) in MiB; NaN where the kernel
/// does not say (not Linux).
fn rss_mib(field: &str) -> f64 {
    super::status_bytes(field).map_or(f64::NAN, |b| b as f64 / (1024.0 * 1024.0))
}

/// Resets the kernel's high-water mark of resident memory to the current figure, so that
/// `VmHWM` then reports the peak of what follows (Linux; elsewhere nothing happens and the
/// peak is the process's).
fn reset_peak_rss() {
    if let Err(e) = std::fs::write("/proc/self/clear_refs", "5") {
        eprintln!("warning: could not reset the peak memory figure ({e}): peaks are since start");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(backend: &'static str, candidates: usize, p99: f64, labels: f64) -> ScalePoint {
        ScalePoint {
            backend,
            candidates,
            round_p50_ms: p99 / 2.0,
            round_p99_ms: p99,
            labels_per_second: labels,
            round_read_p50_ms: 1.0,
            round_read_p99_ms: 1.0,
            first_page_p50_ms: 1.0,
            last_reward_page_p50_ms: 1.0,
            last_reward_page_cursor_p50_ms: 1.0,
            campaign_read_p50_ms: 1.0,
            growth_labels_per_second: labels,
            training_settle_seconds: 1.0,
            rss_rest_mib: 100.0,
            rss_peak_mib: 200.0,
        }
    }

    /// The verdict compares the largest size with the first, per backend.
    #[test]
    fn the_verdict_compares_the_largest_size_with_the_empty_campaign() {
        let points = [
            point("sqlite", 0, 10.0, 20_000.0),
            point("sqlite", 1_000_000, 19.0, 11_000.0),
            point("postgres", 0, 10.0, 20_000.0),
            point("postgres", 1_000_000, 21.0, 20_000.0),
        ];
        let sqlite = verdict(&points, "sqlite").expect("a verdict");
        assert_eq!(sqlite["pass"], true, "{sqlite}");
        assert_eq!(sqlite["largest"], 1_000_000);
        let postgres = verdict(&points, "postgres").expect("a verdict");
        assert_eq!(
            postgres["pass"], false,
            "round p99 grew 2.1 times: {postgres}"
        );
        assert!(verdict(&points, "other").is_none());
    }

    #[test]
    fn sizes_must_ascend_and_the_patch_must_be_an_object() {
        let mut args = ScaleBenchArgs {
            storage: crate::bench::BackendArgs {
                backend: crate::bench::api::BackendChoice::Sqlite,
                postgres_url: String::new(),
            },
            sizes: vec![0, 100, 10],
            label_batch_size: 10,
            probe_batches: 1,
            probe_batch_size: 10,
            max_training_labels: 1000,
            rounds: 1,
            round_batch: 10,
            reads: 1,
            campaign_json: "{}".into(),
            training_threads: 1,
            training_wait_seconds: 1.0,
            seed: 0,
        };
        assert!(validate(&args).is_err());
        args.sizes = vec![0, 10, 100];
        assert!(validate(&args).is_ok());
        args.campaign_json = "[1]".into();
        assert!(validate(&args).is_err());
    }

    #[test]
    fn resident_memory_is_read_in_mib() {
        if cfg!(target_os = "linux") {
            let rss = rss_mib("VmRSS");
            assert!(rss > 1.0 && rss < 1e6, "{rss}");
            assert!(rss_mib("VmHWM") >= rss * 0.5);
        }
    }
}
