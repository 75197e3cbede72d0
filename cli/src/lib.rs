//! The `flowlab` command line and the tools that ship with it, kept out of the server
//! library (`flowlab`) so that the service depends on no HTTP client, progress bar or
//! plotting code:
//! - `cli`: the commands (`serve`, `migrate`, `openapi`, `bench ...`, `demo`);
//! - `kit`: one embedded server harness, one HTTP client and one database provisioner,
//!   shared by the benchmarks, the demo and the integration tests;
//! - `bench/`: the benchmarks that print figures, with the synthetic oracles of the loop;
//! - `demo`: the loop in one command for newcomers.
#![forbid(unsafe_code)]

pub mod bench;
pub mod cli;
pub mod demo;
pub mod kit;
