//! The GFlowNet engine: candidate spaces, the policy network, sampling, the four training
//! objectives, exact evaluation and checkpoints.
//!
//! Synchronous and self-contained: candle for tensors, no tokio, sqlx or axum, nothing from
//! the web or storage layers. The service calls into it from blocking threads.

pub mod checkpoint;
pub mod conservative;
pub mod device;
pub mod exact;
pub mod kernels;
pub mod memory;
pub mod objective;
pub mod policy;
pub mod propose;
pub mod provenance;
pub mod refine;
pub mod sampler;
pub mod space;
pub mod tasks;
pub mod train;

pub use objective::{BackwardPolicy, Objective, Trajectory};
pub use provenance::Source;
pub use space::{Space, SpaceSpec, State};
pub use train::{Exploration, GflowNet, GfnConfig, GfnError};
#[cfg(test)]
mod convergence_tests;
