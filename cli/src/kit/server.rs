//! The real server embedded in this process: `App::build` on a listener bound to
//! `127.0.0.1:0`, `App::run` until told to stop, exactly as `serve` runs it.

use anyhow::Context;
use flowlab::app::App;
use flowlab::config::Config;
use flowlab::service::Service;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Longest wait for the server (and its trainer) to stop.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(60);

/// A running in-process server; see the module documentation. Dropping it tells it to stop
/// without waiting; [`EmbeddedServer::stop`] waits.
#[derive(Debug)]
pub struct EmbeddedServer {
    base_url: String,
    service: Service,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

impl EmbeddedServer {
    /// Starts the server with `config` (its `bind` is ignored: always `127.0.0.1:0`) and
    /// returns once it listens.
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        config.validate().map_err(anyhow::Error::msg)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding 127.0.0.1:0")?;
        let app = App::build(config, listener)
            .await
            .context("starting the embedded server")?;
        let base_url = format!("http://{}", app.local_addr()?);
        let service = app.state().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run(async {
            stopped.await.ok();
        }));
        Ok(Self {
            base_url,
            service,
            stop: Some(stop),
            server: Some(server),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The server's use cases and state: its store and trainer, for tests and benchmarks
    /// that look beneath the API (e.g. to wait until training is idle).
    pub fn service(&self) -> &Service {
        &self.service
    }

    /// Stops the server gracefully (in-flight requests finish; a training run still going is
    /// cancelled) and waits for it, at most a minute; a server that stops badly is reported
    /// on stderr, not as an error, because what was measured is still good.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).ok();
        }
        let Some(server) = self.server.take() else {
            return;
        };
        match tokio::time::timeout(SHUTDOWN_TIMEOUT, server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => eprintln!("warning: the embedded server stopped with an error: {e}"),
            Ok(Err(e)) => eprintln!("warning: the embedded server task failed: {e}"),
            Err(_) => {
                eprintln!("warning: the embedded server did not stop within {SHUTDOWN_TIMEOUT:?}")
            }
        }
    }
}

impl Drop for EmbeddedServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).ok();
        }
    }
}
