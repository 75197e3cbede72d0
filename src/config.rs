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
  RAYON_NUM_THREADS  threads of each matrix product (candle) [default: 1]";

/// Names of the variables in [`ENVIRONMENT_ONLY_HELP`].
pub const ENVIRONMENT_ONLY: &[&str] = &["RUST_LOG", "RAYON_NUM_THREADS"];

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
}

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
            .finish()
    }
}

impl Config {
    /// Refuses to expose an unauthenticated server beyond this machine unless asked to.
    pub fn validate(&self) -> Result<(), String> {
        let open = self.api_token.as_deref().is_none_or(str::is_empty);
        if open && !self.bind.ip().is_loopback() && !self.allow_unauthenticated {
            return Err(format!(
                "refusing to listen on {} without FLOWLAB_API_TOKEN; set a token or pass --allow-unauthenticated",
                self.bind
            ));
        }
        if self.training_threads == 0 || self.training_threads > 256 {
            return Err("--training-threads must be in 1..=256".into());
        }
        if !(self.wait_timeout_seconds.is_finite() && self.wait_timeout_seconds > 0.0) {
            return Err("--wait-timeout must be a positive number of seconds".into());
        }
        if !(self.lease_ttl_seconds.is_finite() && self.lease_ttl_seconds >= 1.0) {
            return Err("--lease-ttl must be at least 1 second".into());
        }
        self.device.check_supported()?;
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
        }
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
        c.api_token = Some("secret".into());
        assert!(c.validate().is_ok());
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
