//! flowlab: an active-learning service for black-box reward oracles.
//!
//! Architecture (DESIGN.md): `gfn/` is the GFlowNet engine (spaces, policy, objectives,
//! sampling, exact evaluation, checkpoints): synchronous, candle only. `bench/` holds the
//! benchmark commands and `cli` the command line on top of them.
#![forbid(unsafe_code)]

pub mod bench;
pub mod cli;
pub mod gfn;
