//! Server configuration: every setting is a flag of `serve` with an environment variable
//! beside it; a flag wins over its variable.

use crate::gfn::device::ComputeDevice;
use crate::telemetry::LogFormat;
use std::net::SocketAddr;

/// Variables the server reads that have no flag, with their defaults; `serve --help` ends
/// with this text and README's configuration reference lists the same.
pub const ENVIRONMENT_ONLY_HELP: &str = "\
Environment only:
  RUST_LOG           log filter, e.g. `info,flowlab=debug` [default: info]
  RAYON_NUM_THREADS  threads of each matrix product (candle) [default: 1]
  MIMALLOC_PURGE_DELAY  ms before freed memory goes back to the system (100 in the container image) [default: 10]";

/// Names of the variables in [`ENVIRONMENT_ONLY_HELP`].
pub const ENVIRONMENT_ONLY: &[&str] = &["RUST_LOG", "RAYON_NUM_THREADS", "MIMALLOC_PURGE_DELAY"];

/// Settings of `flowlab serve`.
#[derive(Clone, clap::Args)]
#[command(after_help = ENVIRONMENT_ONLY_HELP)]
pub struct Config {
    /// Address and port to listen on.
    #[arg(long, env = "FLOWLAB_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// Database: `sqlite://FILE` (created when missing) or `postgres://USER@HOST/DB`.
    // The value is hidden from `--help`: it may hold a password.
    #[arg(
        long = "database-url",
        env = "DATABASE_URL",
        default_value = "sqlite://flowlab.db",
        hide_env_values = true
    )]
    pub database_url: String,
    /// Bearer token required on every endpoint but /healthz.
    #[arg(long = "api-token", env = "FLOWLAB_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// Allow binding a non-loopback address without a token.
    #[arg(long = "allow-unauthenticated", env = "FLOWLAB_ALLOW_UNAUTHENTICATED")]
    pub allow_unauthenticated: bool,
    /// Threads for training (and its matrix products); keep one core free for requests.
    #[arg(
        long = "training-threads",
        env = "FLOWLAB_TRAINING_THREADS",
        default_value_t = 1
    )]
    pub training_threads: usize,
    /// Longest wait of `wait_for_model` before answering 503, in seconds.
    #[arg(
        long = "wait-timeout",
        env = "FLOWLAB_WAIT_TIMEOUT",
        default_value_t = 120.0
    )]
    pub wait_timeout_seconds: f64,
    /// Lifetime of a training lease without a heartbeat, in seconds.
    #[arg(long = "lease-ttl", env = "FLOWLAB_LEASE_TTL", default_value_t = 15.0)]
    pub lease_ttl_seconds: f64,
    /// Log lines as readable text or as one JSON object per line.
    #[arg(
        long = "log-format",
        env = "FLOWLAB_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,
    /// Where training and sampling compute: `cpu`, or `cuda` / `cuda:N` in builds with the
    /// `cuda` feature.
    #[arg(long, env = "FLOWLAB_DEVICE", default_value_t = ComputeDevice::Cpu)]
    pub device: ComputeDevice,
    /// Seconds a client may take to send a request's headers, and the longest a kept-alive
    /// connection may sit idle between requests.
    #[arg(
        long = "header-timeout",
        env = "FLOWLAB_HEADER_TIMEOUT",
        default_value_t = 10.0
    )]
    pub header_timeout_seconds: f64,
    /// Seconds a request may take from its headers to its answer (503 after); longer than
    /// `--wait-timeout`.
    #[arg(
        long = "request-timeout",
        env = "FLOWLAB_REQUEST_TIMEOUT",
        default_value_t = 300.0
    )]
    pub request_timeout_seconds: f64,
    /// Open connections served at once; further clients wait in the listen queue.
    #[arg(
        long = "max-connections",
        env = "FLOWLAB_MAX_CONNECTIONS",
        default_value_t = 1024
    )]
    pub max_connections: usize,
    /// Largest request body in bytes for every route but `POST /labels`.
    #[arg(long = "max-body", env = "FLOWLAB_MAX_BODY", default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// Largest body of `POST /labels` in bytes (JSON or CSV).
    #[arg(
        long = "max-label-body",
        env = "FLOWLAB_MAX_LABEL_BODY",
        default_value_t = 8 << 20
    )]
    pub max_label_body_bytes: usize,
    /// Checkpoint versions kept per campaign, the newest included; older ones are deleted
    /// when a new one is written.
    #[arg(
        long = "keep-checkpoints",
        env = "FLOWLAB_KEEP_CHECKPOINTS",
        default_value_t = 3
    )]
    pub keep_checkpoints: i64,
    /// Seconds a campaign's training run computes before the next waiting run gets a turn:
    /// runs take turns, so a long one cannot hold up the others.
    #[arg(
        long = "training-slice",
        env = "FLOWLAB_TRAINING_SLICE",
        default_value_t = 2.0
    )]
    pub training_slice_seconds: f64,
    /// Most memory, in bytes, that one step may need: a training step of a campaign, or the
    /// draw of one round or preview. Campaigns, rounds and previews that would need more are
    /// refused with 400 (the estimate is in `domain::cost`).
    #[arg(
        long = "max-step-memory",
        env = "FLOWLAB_MAX_STEP_MEMORY",
        default_value_t = crate::domain::cost::DEFAULT_BUDGET
    )]
    pub max_step_memory_bytes: u64,
    /// Most memory, in bytes, that the training runs in progress may need together (the sum
    /// of their training steps' estimates): a run that does not fit beside the others waits
    /// for one to finish, and one run may always start. Default: three times
    /// `--max-step-memory`.
    #[arg(long = "max-training-memory", env = "FLOWLAB_MAX_TRAINING_MEMORY")]
    pub max_training_memory_bytes: Option<u64>,
    /// Most labelled candidates one training run reads: beyond it, the best tenth of that
    /// many and an even spread of the rest, so that a campaign of a million labels trains in
    /// bounded memory and time. Campaigns below it train on every label.
    #[arg(
        long = "max-training-labels",
        env = "FLOWLAB_MAX_TRAINING_LABELS",
        default_value_t = 20_000
    )]
    pub max_training_labels: usize,
}

/// Smallest `--max-step-memory`: below it not even a small campaign trains.
pub const MIN_STEP_MEMORY: u64 = 64 << 20;
/// Largest `--max-step-memory` (1 TiB): beyond it the limit is a typo.
pub const MAX_STEP_MEMORY: u64 = 1 << 40;

/// Largest `--max-training-memory` (8 TiB): beyond it the limit is a typo.
pub const MAX_TRAINING_MEMORY: u64 = 8 << 40;

/// Fewest labels `--max-training-labels` may allow: below it the best tenth is too few
/// elites for local search.
pub const MIN_TRAINING_LABELS: usize = 100;
/// Most labels `--max-training-labels` may allow (ten million).
pub const MAX_TRAINING_LABELS: usize = 10_000_000;

/// Shortest API token accepted: a guessable token protects nothing.
pub const MIN_TOKEN_CHARS: usize = 16;

/// Tokens that ship in examples and must never protect a real server.
const EXAMPLE_TOKENS: &[&str] = &["change-me-too-0123456789abcdef0123456789abcdef"];

/// Longest timeout or lease accepted, in seconds (a day): beyond it a duration is a typo,
/// and far beyond it one no longer fits a clock.
const MAX_SECONDS: f64 = 86_400.0;

/// Shows everything but the secrets: the token, and the password inside the database URL.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Destructured so that a new field cannot be added without deciding how it shows.
        let Self {
            bind,
            database_url,
            api_token,
            allow_unauthenticated,
            training_threads,
            wait_timeout_seconds,
            lease_ttl_seconds,
            log_format,
            device,
            header_timeout_seconds,
            request_timeout_seconds,
            max_connections,
            max_body_bytes,
            max_label_body_bytes,
            keep_checkpoints,
            training_slice_seconds,
            max_step_memory_bytes,
            max_training_memory_bytes,
            max_training_labels,
        } = self;
        f.debug_struct("Config")
            .field("bind", bind)
            .field("database_url", &crate::store::redact_url(database_url))
            .field("api_token", &api_token.as_ref().map(|_| "***"))
            .field("allow_unauthenticated", allow_unauthenticated)
            .field("training_threads", training_threads)
            .field("wait_timeout_seconds", wait_timeout_seconds)
            .field("lease_ttl_seconds", lease_ttl_seconds)
            .field("log_format", log_format)
            .field("device", device)
            .field("header_timeout_seconds", header_timeout_seconds)
            .field("request_timeout_seconds", request_timeout_seconds)
            .field("max_connections", max_connections)
            .field("max_body_bytes", max_body_bytes)
            .field("max_label_body_bytes", max_label_body_bytes)
            .field("keep_checkpoints", keep_checkpoints)
            .field("training_slice_seconds", training_slice_seconds)
            .field("max_step_memory_bytes", max_step_memory_bytes)
            .field("max_training_memory_bytes", max_training_memory_bytes)
            .field("max_training_labels", max_training_labels)
            .finish()
    }
}

impl Config {
    /// Most memory the training runs in progress may need together: `--max-training-memory`,
    /// or three training steps at `--max-step-memory`.
    pub fn training_memory_bytes(&self) -> u64 {
        self.max_training_memory_bytes
            .unwrap_or_else(|| self.max_step_memory_bytes.saturating_mul(3))
    }

    /// The API token as configured, without the whitespace around it (a token pasted into
    /// an environment file often carries a newline); `None` when unset or blank.
    pub fn token(&self) -> Option<&str> {
        self.api_token
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
    }

    /// Refuses settings that cannot work: an unauthenticated server exposed beyond this
    /// machine (unless asked for), a short or example token, durations and limits out of range.
    pub fn validate(&self) -> Result<(), String> {
        let open = self.token().is_none();
        if open && !self.bind.ip().is_loopback() && !self.allow_unauthenticated {
            return Err(format!(
                "refusing to listen on {} without FLOWLAB_API_TOKEN; set a token or pass --allow-unauthenticated",
                self.bind
            ));
        }
        if self.training_threads == 0 || self.training_threads > 256 {
            return Err("--training-threads must be in 1..=256".into());
        }
        if let Some(token) = self.token() {
            if token.chars().count() < MIN_TOKEN_CHARS {
                return Err(format!(
                    "the API token must be at least {MIN_TOKEN_CHARS} characters (generate one with: openssl rand -hex 32)"
                ));
            }
            if EXAMPLE_TOKENS.contains(&token) {
                return Err(
                    "the API token is the example's placeholder; generate one with: openssl rand -hex 32"
                        .into(),
                );
            }
        }
        seconds_within("--wait-timeout", self.wait_timeout_seconds, 0.0)?;
        seconds_within("--lease-ttl", self.lease_ttl_seconds, 1.0)?;
        seconds_within("--header-timeout", self.header_timeout_seconds, 0.1)?;
        seconds_within("--request-timeout", self.request_timeout_seconds, 1.0)?;
        seconds_within("--training-slice", self.training_slice_seconds, 0.01)?;
        if self.request_timeout_seconds <= self.wait_timeout_seconds {
            return Err(format!(
                "--request-timeout ({} s) must be longer than --wait-timeout ({} s), or waiting rounds would be cut off",
                self.request_timeout_seconds, self.wait_timeout_seconds
            ));
        }
        if self.max_connections == 0 || self.max_connections > 1_000_000 {
            return Err("--max-connections must be in 1..=1000000".into());
        }
        for (flag, bytes) in [
            ("--max-body", self.max_body_bytes),
            ("--max-label-body", self.max_label_body_bytes),
        ] {
            if !(1024..=1 << 30).contains(&bytes) {
                return Err(format!("{flag} must be between 1024 bytes and 1 GiB"));
            }
        }
        if !(1..=1000).contains(&self.keep_checkpoints) {
            return Err("--keep-checkpoints must be in 1..=1000".into());
        }
        if !(MIN_STEP_MEMORY..=MAX_STEP_MEMORY).contains(&self.max_step_memory_bytes) {
            return Err(format!(
                "--max-step-memory must be between {MIN_STEP_MEMORY} bytes (64 MiB) and {MAX_STEP_MEMORY} bytes (1 TiB)"
            ));
        }
        if let Some(total) = self.max_training_memory_bytes {
            if !(self.max_step_memory_bytes..=MAX_TRAINING_MEMORY).contains(&total) {
                return Err(format!(
                    "--max-training-memory must be at least --max-step-memory ({} bytes) and at most {MAX_TRAINING_MEMORY} bytes (8 TiB)",
                    self.max_step_memory_bytes
                ));
            }
        }
        if !(MIN_TRAINING_LABELS..=MAX_TRAINING_LABELS).contains(&self.max_training_labels) {
            return Err(format!(
                "--max-training-labels must be in {MIN_TRAINING_LABELS}..={MAX_TRAINING_LABELS}"
            ));
        }
        self.device.check_supported().map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Defaults for tests and embedded servers: loopback, the given database.
    pub fn for_database(database_url: impl Into<String>) -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: database_url.into(),
            api_token: None,
            allow_unauthenticated: false,
            training_threads: 1,
            wait_timeout_seconds: 120.0,
            lease_ttl_seconds: 15.0,
            log_format: LogFormat::Text,
            device: ComputeDevice::Cpu,
            header_timeout_seconds: 10.0,
            request_timeout_seconds: 300.0,
            max_connections: 1024,
            max_body_bytes: 1 << 20,
            max_label_body_bytes: 8 << 20,
            keep_checkpoints: 3,
            training_slice_seconds: 2.0,
            max_step_memory_bytes: crate::domain::cost::DEFAULT_BUDGET,
            max_training_memory_bytes: None,
            max_training_labels: 20_000,
        }
    }
}

/// Checks that a duration flag is a positive number of seconds, at least `least` and at most
/// a day.
fn seconds_within(flag: &str, seconds: f64, least: f64) -> Result<(), String> {
    if seconds.is_finite() && seconds > 0.0 && seconds >= least && seconds <= MAX_SECONDS {
        Ok(())
    } else {
        Err(format!(
            "{flag} must be a positive number of seconds, at least {least} and at most {MAX_SECONDS}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_loopback_bind_without_token_is_refused_unless_allowed() {
        let mut c = Config::for_database("sqlite::memory:");
        assert!(c.validate().is_ok());
        c.bind = "0.0.0.0:8080".parse().expect("address");
        assert!(c.validate().is_err());
        c.allow_unauthenticated = true;
        assert!(c.validate().is_ok());
        c.allow_unauthenticated = false;
        c.api_token = Some("a-long-enough-secret".into());
        assert!(c.validate().is_ok());
    }

    #[test]
    fn tokens_are_trimmed_and_must_be_long_and_not_the_example() {
        let mut c = Config::for_database("sqlite::memory:");
        c.api_token = Some("  0123456789abcdef0123\n".into());
        assert_eq!(c.token(), Some("0123456789abcdef0123"));
        assert!(c.validate().is_ok());
        c.api_token = Some("short-token".into());
        let refused = c.validate().expect_err("a short token");
        assert!(refused.contains("at least 16"), "{refused}");
        c.api_token = Some(EXAMPLE_TOKENS[0].into());
        let refused = c.validate().expect_err("the example's token");
        assert!(refused.contains("placeholder"), "{refused}");
        c.api_token = Some(" \n".into());
        assert_eq!(c.token(), None, "blank is no token");
    }

    #[test]
    fn out_of_range_durations_and_limits_are_refused_not_a_panic() {
        type Setter = fn(&mut Config);
        let cases: [(&str, Setter); 17] = [
            ("--wait-timeout", |c| c.wait_timeout_seconds = 1e20),
            ("--wait-timeout", |c| c.wait_timeout_seconds = f64::NAN),
            ("--lease-ttl", |c| c.lease_ttl_seconds = 1e20),
            ("--lease-ttl", |c| c.lease_ttl_seconds = 0.5),
            ("--header-timeout", |c| c.header_timeout_seconds = 0.0),
            ("--request-timeout", |c| c.request_timeout_seconds = 60.0),
            ("--max-connections", |c| c.max_connections = 0),
            ("--max-body", |c| c.max_body_bytes = 10),
            ("--max-label-body", |c| c.max_label_body_bytes = usize::MAX),
            ("--keep-checkpoints", |c| c.keep_checkpoints = 0),
            ("--training-slice", |c| c.training_slice_seconds = 0.0),
            ("--max-step-memory", |c| c.max_step_memory_bytes = 1 << 20),
            ("--max-step-memory", |c| c.max_step_memory_bytes = u64::MAX),
            ("--max-training-memory", |c| {
                c.max_training_memory_bytes = Some(c.max_step_memory_bytes - 1)
            }),
            ("--max-training-memory", |c| {
                c.max_training_memory_bytes = Some(u64::MAX)
            }),
            ("--max-training-labels", |c| c.max_training_labels = 10),
            ("--max-training-labels", |c| {
                c.max_training_labels = usize::MAX
            }),
        ];
        for (flag, set) in cases {
            let mut c = Config::for_database("sqlite::memory:");
            set(&mut c);
            let refused = c.validate().expect_err(flag);
            assert!(refused.contains(flag), "{flag}: {refused}");
        }
        let mut c = Config::for_database("sqlite::memory:");
        c.lease_ttl_seconds = 1.0;
        c.wait_timeout_seconds = MAX_SECONDS - 1.0;
        c.request_timeout_seconds = MAX_SECONDS;
        assert!(c.validate().is_ok(), "the bounds themselves are accepted");
    }

    #[test]
    fn debug_output_hides_the_token_and_the_database_password() {
        let mut c = Config::for_database("postgres://flowlab:pa55word@db:5432/flowlab");
        c.api_token = Some("t0ken".into());
        let shown = format!("{c:?}");
        assert!(!shown.contains("pa55word"), "{shown}");
        assert!(!shown.contains("t0ken"), "{shown}");
        assert!(
            shown.contains("postgres://flowlab:***@db:5432/flowlab"),
            "{shown}"
        );
    }
}
