//! The server's Prometheus metrics: HTTP requests, rounds, labels and training, rendered in
//! the Prometheus text format (0.0.4) by `GET /metrics`.
//!
//! Every [`App`](crate::app::App) owns one [`Metrics`] with its own registry, instead of a
//! process-wide recorder: several servers in one process (the integration tests, `flowlab
//! bench api`) each report exactly their own counts. Counters count what this process did;
//! with several replicas on one database, sum them across replicas.
//!
//! Imports `prometheus` and the engine's [`Source`] (the label values of proposals);
//! `http` and `trainer` record into it.

use crate::gfn::Source;
use prometheus::{
    GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Content type of the exposition: Prometheus text format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Request latency buckets, in seconds: from a cached read (~1 ms) up to a round that waits
/// for the model (the default wait is 120 s).
const REQUEST_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// Training run duration buckets, in seconds: a few steps on a tiny space up to an hour.
const TRAINING_BUCKETS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// The `route` label of requests that matched no route: raw paths would make one series per
/// URL a client (or a scanner) invents.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// How a training run ended, the `outcome` label of the training metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// A checkpoint was written.
    Succeeded,
    /// Training broke (bad data, unreadable checkpoint, a panic, divergence).
    Failed,
    /// Stopped from outside: shutdown, or the lease was lost.
    Cancelled,
    /// The run could not be carried out (the database failed around it).
    Error,
}

impl RunOutcome {
    fn label(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Error => "error",
        }
    }
}

/// One server's metrics; cheap to clone (every handle is an `Arc` inside).
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    http_in_flight: IntGauge,
    rounds: IntCounter,
    round_redraws: IntCounter,
    round_pools_shrunk: IntCounter,
    candidates: IntCounter,
    candidates_by_source: IntCounterVec,
    labels: IntCounterVec,
    training_runs: IntCounterVec,
    training_duration: HistogramVec,
    training_steps: IntCounter,
    training_loss: GaugeVec,
    model_version: IntGaugeVec,
}

/// A counter with labels: `IntCounterVec` named `name`, described by `help`.
fn counter_vec(
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, prometheus::Error> {
    IntCounterVec::new(Opts::new(name, help), labels)
}

/// The counters of rounds: created, redrawn, and cut to a smaller pool.
fn round_counters() -> Result<(IntCounter, IntCounter, IntCounter), prometheus::Error> {
    Ok((
        IntCounter::new(
            "flowlab_rounds_total",
            "Rounds created (a repeated key returns the stored round and is not counted).",
        )?,
        IntCounter::new(
            "flowlab_round_redraws_total",
            "Times a round found values taken by a concurrent round of its campaign and drew again before committing.",
        )?,
        IntCounter::new(
            "flowlab_round_pools_shrunk_total",
            "Rounds created whose pool (candidates screened per requested one, once a proxy exists) was cut below their campaign's round.pool, to the largest that fits --max-step-memory.",
        )?,
    ))
}

/// Decrements the in-flight gauge when the request ends, answered or dropped.
#[derive(Debug)]
pub struct InFlight(IntGauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    /// A fresh registry with every metric at zero. Fails only on an invalid metric
    /// definition (a name or label that breaks Prometheus' rules), a bug caught by the
    /// tests.
    pub fn new() -> Result<Self, prometheus::Error> {
        let (rounds, round_redraws, round_pools_shrunk) = round_counters()?;
        let metrics = Self {
                registry: Registry::new(),
            http_requests: counter_vec(
                "flowlab_http_requests_total",
                "HTTP requests answered, by method, route template and status code.",
                &["method", "route", "status"],
            )?,
            http_duration: HistogramVec::new(
                HistogramOpts::new(
                    "flowlab_http_request_duration_seconds",
                    "Time from receiving an HTTP request to its response head, by method and route template.",
                )
                .buckets(REQUEST_BUCKETS.to_vec()),
                &["method", "route"],
            )?,
            http_in_flight: IntGauge::new(
                "flowlab_http_requests_in_flight",
                "HTTP requests being handled now.",
            )?,
            rounds,
            round_redraws,
            round_pools_shrunk,
            candidates: IntCounter::new(
                "flowlab_candidates_proposed_total",
                "Candidates proposed by the rounds created.",
            )?,
            // A counter of its own rather than a label on the one above, so that the existing
            // series keeps its name and shape.
            candidates_by_source: counter_vec(
                "flowlab_candidates_proposed_by_source_total",
                "Candidates proposed by the rounds created, by how they were made: `uniform`, `policy`, `policy+local`, `local` or `elite+policy`.",
                &["source"],
            )?,
            labels: counter_vec(
                "flowlab_labels_total",
                "Label items of committed POST /labels requests: `accepted` (new observations, failed ones included) or `duplicate` (a key already stored).",
                &["result"],
            )?,
            training_runs: counter_vec(
                "flowlab_training_runs_total",
                "Training runs this process carried out, by outcome.",
                &["outcome"],
            )?,
            training_duration: HistogramVec::new(
                HistogramOpts::new(
                    "flowlab_training_run_duration_seconds",
                    "Wall time of training runs, from taking the lease to recording the run, by outcome.",
                )
                .buckets(TRAINING_BUCKETS.to_vec()),
                &["outcome"],
            )?,
            training_steps: IntCounter::new(
                "flowlab_training_steps_total",
                "Optimisation steps taken by this process's training runs (counted as they happen).",
            )?,
            training_loss: GaugeVec::new(
                Opts::new(
                    "flowlab_training_loss",
                    "Loss (mean of the last steps) of the newest run this process finished, by campaign.",
                ),
                &["campaign_id"],
            )?,
            model_version: IntGaugeVec::new(
                Opts::new(
                    "flowlab_model_version",
                    "Newest checkpoint version of each campaign that has one, read from the database at scrape time.",
                ),
                &["campaign_id"],
            )?,
        };
        metrics.register()?;
        Ok(metrics)
    }

    /// Registers every metric, and creates the series that exist from the start.
    fn register(&self) -> Result<(), prometheus::Error> {
        let collectors: [Box<dyn prometheus::core::Collector>; 14] = [
            Box::new(self.http_requests.clone()),
            Box::new(self.http_duration.clone()),
            Box::new(self.http_in_flight.clone()),
            Box::new(self.rounds.clone()),
            Box::new(self.round_redraws.clone()),
            Box::new(self.round_pools_shrunk.clone()),
            Box::new(self.candidates.clone()),
            Box::new(self.candidates_by_source.clone()),
            Box::new(self.labels.clone()),
            Box::new(self.training_runs.clone()),
            Box::new(self.training_duration.clone()),
            Box::new(self.training_steps.clone()),
            Box::new(self.training_loss.clone()),
            Box::new(self.model_version.clone()),
        ];
        for collector in collectors {
            self.registry.register(collector)?;
        }
        // Series that exist from the start read 0 rather than missing, so that a rate over
        // the first increment is right.
        for result in ["accepted", "duplicate"] {
            self.labels.with_label_values(&[result]);
        }
        for source in Source::ALL {
            self.candidates_by_source
                .with_label_values(&[source.as_str()]);
        }
        for outcome in [
            RunOutcome::Succeeded,
            RunOutcome::Failed,
            RunOutcome::Cancelled,
            RunOutcome::Error,
        ] {
            self.training_runs.with_label_values(&[outcome.label()]);
        }
        Ok(())
    }

    /// Counts a request as in flight until the returned guard is dropped.
    pub fn request_started(&self) -> InFlight {
        self.http_in_flight.inc();
        InFlight(self.http_in_flight.clone())
    }

    /// Records an answered request. `route` is the matched route template (`/rounds/{id}`)
    /// or [`UNMATCHED_ROUTE`], never the raw path.
    pub fn request_finished(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.http_requests
            .with_label_values(&[method, route, &status.to_string()])
            .inc();
        self.http_duration
            .with_label_values(&[method, route])
            .observe(seconds);
    }

    /// A new round proposing `candidates` candidates was committed.
    pub fn round_created(&self, candidates: usize) {
        self.rounds.inc();
        self.candidates.inc_by(as_count(candidates));
    }

    /// A round was created with a smaller pool than its campaign's, to fit the memory budget.
    pub fn round_pool_shrunk(&self) {
        self.round_pools_shrunk.inc();
    }

    /// A round drew again for values a concurrent round took first.
    pub fn round_redrawn(&self) {
        self.round_redraws.inc();
    }

    /// A committed round holds `n` candidates made by `source` (the source's share of the
    /// candidates counted by [`Metrics::round_created`]).
    pub fn candidates_proposed(&self, source: Source, n: usize) {
        self.candidates_by_source
            .with_label_values(&[source.as_str()])
            .inc_by(as_count(n));
    }

    /// A label batch was committed with `accepted` new observations and `duplicates`
    /// repeated keys.
    pub fn labels_committed(&self, accepted: usize, duplicates: usize) {
        self.labels
            .with_label_values(&["accepted"])
            .inc_by(as_count(accepted));
        self.labels
            .with_label_values(&["duplicate"])
            .inc_by(as_count(duplicates));
    }

    /// A training run of `campaign_id` ended after `seconds`; `loss` is that of the
    /// checkpoint it wrote.
    pub fn training_run_ended(
        &self,
        campaign_id: i64,
        outcome: RunOutcome,
        seconds: f64,
        loss: Option<f64>,
    ) {
        self.training_runs
            .with_label_values(&[outcome.label()])
            .inc();
        self.training_duration
            .with_label_values(&[outcome.label()])
            .observe(seconds);
        if let Some(loss) = loss {
            self.training_loss
                .with_label_values(&[&campaign_id.to_string()])
                .set(loss);
        }
    }

    /// The counter the training loop increments once per optimisation step.
    pub fn training_steps(&self) -> IntCounter {
        self.training_steps.clone()
    }

    /// Sets the model version gauge of each `(campaign_id, version)`.
    pub fn set_model_versions(&self, versions: &[(i64, i64)]) {
        for (campaign_id, version) in versions {
            self.model_version
                .with_label_values(&[&campaign_id.to_string()])
                .set(*version);
        }
    }

    /// Every metric in the Prometheus text format.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        TextEncoder::new().encode_to_string(&self.registry.gather())
    }
}

fn as_count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_registers_and_renders() {
        let metrics = Metrics::new().expect("valid definitions");
        metrics.request_finished("GET", "/rounds/{id}", 200, 0.003);
        metrics.round_created(3);
        metrics.candidates_proposed(Source::Policy, 2);
        metrics.candidates_proposed(Source::PolicyLocal, 1);
        metrics.labels_committed(2, 1);
        metrics.training_run_ended(7, RunOutcome::Succeeded, 1.5, Some(0.25));
        metrics.training_steps().inc_by(10);
        metrics.set_model_versions(&[(7, 2)]);
        let text = metrics.render().expect("renders");
        for line in [
            r#"flowlab_http_requests_total{method="GET",route="/rounds/{id}",status="200"} 1"#,
            r#"flowlab_http_request_duration_seconds_bucket{method="GET",route="/rounds/{id}",le="0.005"} 1"#,
            "flowlab_rounds_total 1",
            "flowlab_candidates_proposed_total 3",
            r#"flowlab_candidates_proposed_by_source_total{source="policy"} 2"#,
            r#"flowlab_candidates_proposed_by_source_total{source="policy+local"} 1"#,
            r#"flowlab_candidates_proposed_by_source_total{source="uniform"} 0"#,
            r#"flowlab_candidates_proposed_by_source_total{source="local"} 0"#,
            r#"flowlab_labels_total{result="accepted"} 2"#,
            r#"flowlab_labels_total{result="duplicate"} 1"#,
            r#"flowlab_training_runs_total{outcome="succeeded"} 1"#,
            r#"flowlab_training_runs_total{outcome="failed"} 0"#,
            r#"flowlab_training_run_duration_seconds_count{outcome="succeeded"} 1"#,
            "flowlab_training_steps_total 10",
            r#"flowlab_training_loss{campaign_id="7"} 0.25"#,
            r#"flowlab_model_version{campaign_id="7"} 2"#,
            "flowlab_http_requests_in_flight 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
    }

    #[test]
    fn two_registries_count_independently() {
        let one = Metrics::new().expect("one");
        let two = Metrics::new().expect("two");
        one.round_created(5);
        assert!(one
            .render()
            .expect("one")
            .contains("flowlab_rounds_total 1"));
        assert!(two
            .render()
            .expect("two")
            .contains("flowlab_rounds_total 0"));
    }

    #[test]
    fn the_in_flight_gauge_drops_with_its_guard() {
        let metrics = Metrics::new().expect("metrics");
        let guard = metrics.request_started();
        assert!(metrics
            .render()
            .expect("renders")
            .contains("flowlab_http_requests_in_flight 1"));
        drop(guard);
        assert!(metrics
            .render()
            .expect("renders")
            .contains("flowlab_http_requests_in_flight 0"));
    }
}
