//! Testable start-up: `App::build` takes an already bound listener (tests bind port 0 and read
//! the real port back), connects and migrates the database; `App::run` serves until the
//! shutdown future resolves.

use crate::config::Config;
use crate::error::Error;
use crate::http::{router, AppState};
use crate::store::{redact_url, Store};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// A built application, ready to serve.
#[derive(Debug)]
pub struct App {
    listener: TcpListener,
    state: AppState,
}

impl App {
    /// Connects to the database, applies migrations and prepares the router.
    pub async fn build(config: Config, listener: TcpListener) -> Result<Self, Error> {
        tracing::info!(database = %redact_url(&config.database_url), "connecting");
        let store = Store::connect(&config.database_url).await?;
        store.migrate().await?;
        Ok(Self {
            listener,
            state: AppState {
                store,
                config: Arc::new(config),
            },
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(address = %self.listener.local_addr()?, "listening");
        axum::serve(self.listener, router(self.state))
            .with_graceful_shutdown(shutdown)
            .await
    }
}
