//! The integration suite: the real application over real HTTP, every test on SQLite and on
//! PostgreSQL (replicas on PostgreSQL only: only that backend is shared between servers).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is a failed test

// The allocator of the `flowlab` binary, so that the in-process servers train as it does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod auth;
mod campaigns;
mod csv;
mod dashboard;
mod deployment;
mod durability;
mod health;
mod helpers;
mod labels;
mod limits;
mod logs;
mod metrics;
mod model;
mod pages;
mod proxy;
mod replicas;
mod rounds;
mod shutdown;
