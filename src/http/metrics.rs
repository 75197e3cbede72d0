//! `GET /metrics` (Prometheus text format) and the middleware that counts and times every
//! request by its route template.

use super::error::ApiError;
use super::AppState;
use crate::metrics::{Metrics, CONTENT_TYPE, UNMATCHED_ROUTE};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::{Duration, Instant};

/// Longest wait for the database's model versions during a scrape.
const VERSIONS_TIMEOUT: Duration = Duration::from_secs(2);

#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "health",
    summary = "Prometheus metrics of this server process",
    description = "Prometheus text format 0.0.4: requests by method, route template and status, \
        request latency, rounds, candidates, labels, training runs by outcome, training \
        duration, steps and loss, and each campaign's model version. Counters count what this \
        process did; sum them over replicas.",
    responses(
        (status = 200, description = "The metrics", content_type = "text/plain; version=0.0.4",
            body = String,
            example = "# TYPE flowlab_rounds_total counter\nflowlab_rounds_total 3\n"),
        (status = 500, description = "`internal`", body = super::error::ErrorBody),
    )
)]
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    // Read from the database, so that every replica reports the version any of them wrote.
    // A scrape while the database is away still answers, in time for the scraper's timeout
    // (10 s by default), with the versions last read: that is when the other metrics matter.
    let versions = tokio::time::timeout(VERSIONS_TIMEOUT, state.store.newest_checkpoint_versions());
    match versions.await {
        Ok(Ok(versions)) => state.metrics.set_model_versions(&versions),
        Ok(Err(e)) => tracing::warn!(error = %e, "metrics: model versions not read"),
        Err(_) => tracing::warn!("metrics: the database did not answer for the model versions"),
    }
    let text = state
        .metrics
        .render()
        .map_err(|e| ApiError::Internal(format!("rendering the metrics: {e}")))?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}

/// Counts the request in flight, then records its method, route template, status and
/// latency (to the response head). Runs inside the router, where the matched route is known.
pub async fn track(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let _in_flight = metrics.request_started();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED_ROUTE, MatchedPath::as_str)
        .to_owned();
    let response = next.run(request).await;
    metrics.request_finished(
        method,
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// The method as a label: the standard ones by name, any other `other`, so that invented
/// methods cannot create series without bound.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
