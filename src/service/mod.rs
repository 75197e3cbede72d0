//! The use cases of the service, one module per thing a client does: what a request means,
//! independent of HTTP. Handlers parse the request, call exactly one function here and map
//! its result to a response; the functions return the service's own [`Error`].
//!
//! Dependencies point one way: `http -> service -> {trainer, store, gfn, proxy} -> domain`.
//! Tensor work never runs on the async reactor: it goes to a blocking thread under the
//! sampling permits.
//!
//! [`Error`]: crate::error::Error

pub mod campaigns;
pub mod candidates;
pub mod dashboard;
pub mod labels;
pub mod models;
pub mod rounds;
pub mod seen;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::trainer::TrainerHandle;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Everything a use case may need; cheap to clone (the HTTP layer's shared state).
#[derive(Debug, Clone)]
pub struct Service {
    pub store: Store,
    pub config: Arc<Config>,
    pub trainer: TrainerHandle,
    /// Bounds the blocking threads doing tensor work for rounds, so that a burst of rounds
    /// cannot crowd out everything else.
    pub sampling: Arc<Semaphore>,
    /// This server's Prometheus registry.
    pub metrics: Metrics,
    /// The values each campaign holds, as rounds check them.
    pub seen: Arc<seen::SeenCache>,
}

/// The outcome of a write that an idempotency key may have made before.
#[derive(Debug)]
pub enum Written<T> {
    /// Stored now.
    Created(T),
    /// Already stored under the same key; nothing was written.
    Existing(T),
}
