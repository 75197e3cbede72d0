//! Domain types: what clients send and receive, parsed and validated at the edge.
//!
//! Synchronous and pure: imports no tokio, sqlx or axum.

pub mod campaign;
pub mod cost;
pub mod label;
pub mod round;
