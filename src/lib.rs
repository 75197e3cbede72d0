//! flowlab: an active-learning service for black-box reward oracles (the server library;
//! the `flowlab` command, its benchmarks and the demo are the `flowlab-cli` package).
//!
//! Dependencies point one way, `http -> service -> {trainer, store, gfn, proxy} -> domain`;
//! `tests/architecture.rs` checks the rules:
//! - `gfn/`: the GFlowNet engine (spaces, policy, objectives, sampling, exact evaluation,
//!   checkpoints); synchronous, candle only, imports nothing else of the crate.
//! - `domain/`: what clients send and receive, validated at the edge; synchronous.
//! - `proxy/`: the surrogate ensemble and the reward arithmetic; `model`: a campaign's
//!   checkpoint (network, surrogate, elites).
//! - `store/`: SQLite and PostgreSQL through sqlx; the only module with SQL or sqlx.
//! - `trainer/`: background training under per-campaign leases; `metrics`: the Prometheus
//!   registry of one server.
//! - `service/`: the use cases, one module per thing a client does.
//! - `http/`: axum router, handlers, the error body and extractors.
//! - `app`, `config`, `telemetry`: start-up, settings, logs.
#![forbid(unsafe_code)]

pub mod app;
pub mod config;
pub mod domain;
pub mod error;
pub mod gfn;
pub mod http;
pub mod metrics;
pub mod model;
pub mod proxy;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod trainer;
