//! The connection loop: hyper's server, configured with the limits that `axum::serve` does not
//! expose. A client gets [`Limits::header_timeout`] to send each request's headers (which also
//! bounds how long a kept-alive connection may sit idle), at most [`Limits::max_connections`]
//! connections are served at once (the rest wait in the kernel's listen queue, so a flood of
//! half-open connections cannot exhaust file descriptors), and shutdown lets the requests in
//! flight finish while refusing new ones.

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Connection limits of the server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time to receive a request's headers, counted from the moment the connection is ready
    /// for one (so also the idle limit between requests on a kept-alive connection).
    pub header_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Limits {
    /// The limits a configuration asks for.
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            header_timeout: Duration::from_secs_f64(config.header_timeout_seconds),
            max_connections: config.max_connections,
        }
    }
}

/// How long to pause accepting after the operating system refuses a connection (out of file
/// descriptors, say): retrying at once would spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting and waits for
/// the open connections to finish their requests (the caller bounds that wait).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) {
    // HTTP/1.1, as `axum::serve` spoke it here (HTTP/2 belongs to the TLS proxy in front).
    let mut connection = http1::Builder::new();
    connection
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    while let Some((stream, slot)) = accept(&listener, &slots, &mut shutdown).await {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "TCP_NODELAY could not be set");
        }
        let served = connection.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(router.clone()),
        );
        let served = graceful.watch(served);
        tokio::spawn(async move {
            if let Err(error) = served.await {
                tracing::debug!(error = %error, "a connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// The next connection with the slot it holds, or `None` once `shutdown` resolves. A slot
/// comes first, then a connection: while all slots are taken, clients queue in the kernel
/// instead of holding a descriptor here.
async fn accept<F: Future<Output = ()>>(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
    shutdown: &mut Pin<&mut F>,
) -> Option<(TcpStream, OwnedSemaphorePermit)> {
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.ok()?,
            () = shutdown.as_mut() => return None,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.as_mut() => return None,
        };
        match accepted {
            Ok((stream, _)) => return Some((stream, slot)),
            Err(error) => {
                tracing::warn!(%error, "a connection could not be accepted");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}
