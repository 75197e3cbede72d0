//! flowlab: an active-learning service for black-box reward oracles.
//!
//! Architecture (DESIGN.md), dependencies pointing one way
//! `http -> store / gfn -> domain`:
//! - `gfn/`: the GFlowNet engine (spaces, policy, objectives, sampling, exact evaluation,
//!   checkpoints); synchronous, candle only.
//! - `domain/`: what clients send and receive, validated at the edge; synchronous.
//! - `store/`: SQLite and PostgreSQL through sqlx; the only module with SQL.
//! - `http/`: axum router, handlers, the error body and extractors.
//! - `proxy/`: the surrogate ensemble and the reward arithmetic; `model`: a campaign's
//!   checkpoint (network, surrogate, elites).
//! - `trainer/`: background training under per-campaign leases; `metrics`: the Prometheus
//!   registry of one server.
//! - `app`, `config`, `cli`, `telemetry`: start-up, settings, the command line, logs;
//!   `bench/` the benchmarks; `demo` the loop in one command for newcomers.
#![forbid(unsafe_code)]

pub mod app;
pub mod bench;
pub mod cli;
pub mod config;
pub mod demo;
pub mod domain;
pub mod error;
pub mod gfn;
pub mod http;
pub mod metrics;
pub mod model;
pub mod proxy;
pub mod store;
pub mod telemetry;
pub mod trainer;
