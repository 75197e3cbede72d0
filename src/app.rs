//! Testable start-up: `App::build` takes an already bound listener (tests bind port 0 and read
//! the real port back), connects and migrates the database and starts the trainer;
//! `App::run` serves until the shutdown future resolves.
//!
//! Shutdown (SIGTERM, Ctrl-C) must end within 10 s: the listener closes, training stops at
//! its next step without writing a checkpoint and releases its lease, requests in flight get
//! [`DRAIN_LIMIT`] to finish, and the trainer [`TRAINER_STOP_LIMIT`] after that.

use crate::config::Config;
use crate::error::Error;
use crate::http::{router, AppState};
use crate::metrics::Metrics;
use crate::store::{redact_url, Store};
use crate::trainer::{TrainerConfig, TrainerHandle};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// How long requests in flight at shutdown may take to finish before their connections are
/// dropped. Requests waiting for the model answer 503 at once; this bounds the rest (a
/// large round, a client that reads slowly).
pub const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// How long, once the requests are done, the trainer may take to record its cancelled run
/// and release its lease. It began stopping with the signal, so this is only a bound for a
/// database that does not answer; an unreleased lease expires after its TTL anyway.
pub const TRAINER_STOP_LIMIT: Duration = Duration::from_secs(3);

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
        // Network work without gradients runs in chunks of a share of the step budget.
        crate::gfn::memory::set_chunk_bytes(crate::domain::cost::chunk_bytes_for(
            config.max_step_memory_bytes,
        ));
        tracing::info!(device = %config.device, database = %redact_url(&config.database_url), "connecting");
        let store = Store::connect(&config.database_url).await?;
        store.migrate().await?;
        let metrics = Metrics::new()
            .map_err(|e| Error::Internal(format!("the metrics cannot be registered: {e}")))?;
        let trainer = TrainerHandle::start(
            store.clone(),
            TrainerConfig {
                threads: config.training_threads,
                lease_ttl: Duration::from_secs_f64(config.lease_ttl_seconds),
                owner: format!("{}-{}", hostname(), std::process::id()),
                keep_checkpoints: config.keep_checkpoints,
                slice: Duration::from_secs_f64(config.training_slice_seconds),
                max_step_memory: config.max_step_memory_bytes,
                max_training_memory: config.training_memory_bytes(),
                max_training_labels: config.max_training_labels,
            },
            metrics.clone(),
        );
        let state = AppState {
            store,
            config: Arc::new(config),
            trainer,
            sampling: Arc::new(Semaphore::new(2)),
            seen: Arc::default(),
            metrics,
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

    /// Serves until `shutdown` resolves. Then stops accepting connections and, at the same
    /// time, tells the trainer to stop (its run is cancelled at the next step, recorded, and
    /// its lease released); waits up to [`DRAIN_LIMIT`] for the requests in flight and up to
    /// [`TRAINER_STOP_LIMIT`] more for the trainer.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let address = self.listener.local_addr()?;
        tracing::info!(%address, "listening");
        let trainer = self.state.trainer.clone();
        let (signalled, mut signal_seen) = watch::channel(false);
        let begin_shutdown = {
            let trainer = trainer.clone();
            async move {
                shutdown.await;
                tracing::info!("shutting down: finishing requests in flight, stopping training");
                trainer.begin_shutdown();
                // Fails only when `run` already returned.
                let _ = signalled.send(true);
            }
        };
        let limits = crate::http::server::Limits::from_config(&self.state.config);
        let server =
            crate::http::server::serve(self.listener, router(self.state), limits, begin_shutdown);
        let drain_deadline = async move {
            if signal_seen.wait_for(|seen| *seen).await.is_err() {
                // The server ended on its own; the other branch has its result.
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(DRAIN_LIMIT).await;
        };
        tokio::select! {
            () = server => {}
            () = drain_deadline => {
                tracing::warn!(limit_s = DRAIN_LIMIT.as_secs_f64(), "requests still in flight at the drain limit are dropped");
            }
        }
        if tokio::time::timeout(TRAINER_STOP_LIMIT, trainer.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                limit_s = TRAINER_STOP_LIMIT.as_secs_f64(),
                "the trainer did not stop in time; its lease expires on its own"
            );
        }
        Ok(())
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
