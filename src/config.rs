//! Server configuration: every setting is a flag of `serve` with an environment variable
//! beside it; a flag wins over its variable.

use std::net::SocketAddr;

/// Settings of `flowlab serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address and port to listen on.
    #[arg(long, env = "FLOWLAB_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// Database: `sqlite://FILE` (created when missing) or `postgres://USER@HOST/DB`.
    #[arg(
        long = "database-url",
        env = "DATABASE_URL",
        default_value = "sqlite://flowlab.db"
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
}
