//! Testable start-up: `App::build` takes an already bound listener (tests bind port 0 and read
//! the real port back), connects and migrates the database and starts the trainer;
//! `App::run` serves until the shutdown future resolves.

use crate::config::Config;
use crate::error::Error;
use crate::http::{router, AppState};
use crate::store::{redact_url, Store};
use crate::trainer::{TrainerConfig, TrainerHandle};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// A built application, ready to serve.
#[derive(Debug)]
pub struct App {
    listener: TcpListener,
    state: AppState,
}

impl App {
    /// Connects to the database, applies migrations, starts the trainer and prepares the
    /// router.
    pub async fn build(config: Config, listener: TcpListener) -> Result<Self, Error> {
        crate::gfn::device::select(config.device)
            .map_err(|e| Error::invalid("device", e.to_string()))?;
        tracing::info!(device = %config.device, database = %redact_url(&config.database_url), "connecting");
        let store = Store::connect(&config.database_url).await?;
        store.migrate().await?;
        let trainer = TrainerHandle::start(
            store.clone(),
            TrainerConfig {
                threads: config.training_threads,
                lease_ttl: Duration::from_secs_f64(config.lease_ttl_seconds),
                owner: format!("{}-{}", hostname(), std::process::id()),
            },
        );
        let state = AppState {
            store,
            config: Arc::new(config),
            trainer,
            sampling: Arc::new(Semaphore::new(2)),
        };
        Ok(Self { listener, state })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The shared state (for embedding the service in a benchmark or a demo).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, finishes in-flight requests, then stops the trainer.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let address = self.listener.local_addr()?;
        tracing::info!(%address, "listening");
        let trainer = self.state.trainer.clone();
        let served = axum::serve(self.listener, router(self.state))
            .with_graceful_shutdown(shutdown)
            .await;
        trainer.shutdown().await;
        served
    }
}

/// This machine's name for lease owners, `unknown` where it cannot be read.
fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}
