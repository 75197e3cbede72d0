//! Domain types: what clients send and receive, parsed and validated at the edge.
//!
//! Synchronous and pure: imports no tokio, sqlx or axum.

pub mod campaign;
pub mod cost;
pub mod label;
pub mod round;

/// A candidate value as the API reads and writes it; its form depends on the campaign's space.
/// Only documents the OpenAPI schema: values travel as `serde_json::Value` and each space parses
/// its own.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum CandidateValue {
    /// `sequence`: the tokens joined by the separator.
    Sequence(String),
    /// `grid`: `dims` integers in `[0, size)`.
    Grid(Vec<u16>),
    /// `set`: items of the space (any order in; in the order of `items` out).
    Set(Vec<String>),
}
