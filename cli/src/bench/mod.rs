//! Benchmark commands (`flowlab bench ...`): each prints progress on stderr and ends with one
//! JSON line of figures on stdout, so scripts can compare runs side by side.

pub mod api;
pub mod gfn;
pub mod loop_bench;
pub mod oracles;
pub mod proxy;
pub mod scale;

/// A memory line of `/proc/self/status` (`VmRSS`, `VmHWM`, ...) in bytes; `None` where the
/// kernel does not say (not Linux).
pub fn status_bytes(field: &str) -> Option<u64> {
    let prefix = format!("{field}:");
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(&prefix))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
}

/// Peak resident set size of this process in bytes (Linux `VmHWM`), 0 where unknown.
pub fn peak_rss_bytes() -> u64 {
    status_bytes("VmHWM").unwrap_or(0)
}

/// Which storage backend(s) a server benchmark measures.
#[derive(Debug, Clone, clap::Args)]
pub struct BackendArgs {
    /// Storage backend(s) to measure.
    #[arg(long, value_enum, default_value_t = api::BackendChoice::Both)]
    pub backend: api::BackendChoice,
    /// PostgreSQL server (any database on it): the benchmark creates a database there and
    /// drops it at the end.
    #[arg(
        long = "postgres-url",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub postgres_url: String,
}

impl BackendArgs {
    /// The backends the choice stands for, in the order measured.
    pub fn backends(&self) -> &'static [crate::kit::Backend] {
        use crate::kit::Backend;
        match self.backend {
            api::BackendChoice::Sqlite => &[Backend::Sqlite],
            api::BackendChoice::Postgres => &[Backend::Postgres],
            api::BackendChoice::Both => &[Backend::Sqlite, Backend::Postgres],
        }
    }
}

/// The runtime a server benchmark runs in: server and client share one multi-threaded
/// runtime (one worker per core), as they would share the machine's cores in production;
/// the trainer computes on its own thread.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")
}
