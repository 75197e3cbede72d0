//! The HTTP layer: router, shared state, error mapping, extractors. Handlers are thin: parse,
//! call the store or a service function, map the result.

pub mod campaigns;
pub mod candidates;
pub mod error;
pub mod extract;
pub mod health;
pub mod labels;
pub mod model;
pub mod preview;
pub mod rounds;

use crate::store::Store;
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

/// Largest accepted request body (label batches of 10,000 items fit with room to spare).
pub const BODY_LIMIT_BYTES: usize = 8 * 1024 * 1024;

/// State shared by every handler; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
    pub config: Arc<crate::config::Config>,
    pub trainer: crate::trainer::TrainerHandle,
    /// Bounds the blocking threads doing tensor work for rounds, so that a burst of rounds
    /// cannot crowd out everything else.
    pub sampling: Arc<tokio::sync::Semaphore>,
}

/// The application's routes with their layers.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/campaigns", post(campaigns::create).get(campaigns::list))
        .route("/campaigns/{id}", get(campaigns::get))
        .route("/campaigns/{id}/candidates", get(candidates::list))
        .route("/campaigns/{id}/model", get(model::get))
        .route("/campaigns/{id}/model/sample", get(preview::sample))
        .route("/rounds", post(rounds::create))
        .route("/rounds/{id}", get(rounds::get))
        .route("/rounds/{id}/abandon", post(rounds::abandon))
        .route("/labels", post(labels::create))
        .fallback(|| async { error::ApiError::NotFound("no such route".into()) })
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}
