//! Benchmark commands (`flowlab bench ...`): each prints progress on stderr and ends with one
//! JSON line of figures on stdout, so scripts can compare runs side by side.

pub mod api;
pub mod gfn;
pub mod loop_bench;
pub mod oracles;
pub mod proxy;
pub mod scale;

/// Peak resident set size of this process in bytes (Linux `VmHWM`), 0 where unknown.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
