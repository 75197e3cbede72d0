//! The one harness that the benchmarks, the demo and the integration tests share: a
//! database of a run's own ([`Database`]), the real server embedded in this process
//! ([`EmbeddedServer`]) and a JSON client of its API ([`ApiClient`]).
//!
//! Everything here goes through the same start-up as `serve` and the real HTTP API, so
//! what a benchmark measures or a test checks is what a lab gets. Errors are `anyhow`;
//! nothing a response or the file system produces is unwrapped.

mod client;
mod database;
mod server;

pub use client::ApiClient;
pub use database::{Backend, Database, DEFAULT_POSTGRES_ADMIN_URL};
pub use server::EmbeddedServer;
