//! How much memory one batched network call may take: the engine runs its forward passes
//! without gradients (sampling, refinement, evaluation) in chunks of rows whose inputs,
//! activations and outputs fit in [`chunk_bytes`], so a pool of thousands of long
//! trajectories never needs its whole encoding in memory at once. The surrogate's
//! predictions chunk by the same figure.
//!
//! The figure is process-wide, like the device (`super::device`): the server derives it from
//! its memory budget at start-up (`--max-step-memory`, see `domain::cost`), and every network
//! of the process reads it. Chunking changes how much memory a call takes, never its result:
//! each row of a matrix product is computed alone.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The chunk of a process that sets none (tests, the benchmarks).
pub const DEFAULT_CHUNK_BYTES: usize = 64 << 20;

/// The smallest chunk that [`set_chunk_bytes`] accepts.
pub const MIN_CHUNK_BYTES: usize = 1 << 20;

static CHUNK_BYTES: AtomicUsize = AtomicUsize::new(DEFAULT_CHUNK_BYTES);

/// Makes `bytes` (at least [`MIN_CHUNK_BYTES`]) the most one chunked network call of this
/// process may take from now on.
pub fn set_chunk_bytes(bytes: usize) {
    CHUNK_BYTES.store(bytes.max(MIN_CHUNK_BYTES), Ordering::Relaxed);
}

/// The most bytes one chunked network call may take.
pub fn chunk_bytes() -> usize {
    CHUNK_BYTES.load(Ordering::Relaxed)
}

/// Rows of `row_bytes` bytes each that fit in one chunk; at least one.
pub fn rows_per_chunk(row_bytes: usize) -> usize {
    (chunk_bytes() / row_bytes.max(1)).max(1)
}
