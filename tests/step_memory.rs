//! The memory estimates of `domain::cost` against what the engine really takes: each step
//! runs in a process of its own (this test binary again, told the case by an environment
//! variable), which reports its peak resident memory (`VmHWM`) above what it held before the
//! step (`VmRSS`). Linux only: elsewhere the test says so and checks nothing.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a failed setup is a failed test

use flowlab::domain::campaign::{CampaignSpec, NewCampaign};
use flowlab::gfn::propose::{propose, BatchRule, ProposalRequest, Screening};
use flowlab::gfn::{Exploration, GflowNet, GfnError, Space, State, Trajectory};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;

/// The case a child process measures: `train/<index>/<batch>` or `round/<batch>`.
const CASE: &str = "FLOWLAB_STEP_MEMORY_CASE";
/// The line a child prints its measurement on.
const ANSWER: &str = "step-memory-peak=";
const TEST_NAME: &str = "the_estimates_bound_what_the_engine_allocates";
/// The two batches of a training step measured: far apart, so that the pages and arenas
/// the allocator rounds to weigh little per trajectory.
const SMALL: usize = 32;
const LARGE: usize = 288;

/// A field of `/proc/self/status` in bytes (`VmRSS`, `VmHWM`).
fn status_bytes(field: &str) -> Option<u128> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u128 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The peak resident memory while `work` runs, above what was resident before it.
fn peak_of<T>(work: impl FnOnce() -> T) -> (T, u128) {
    let before = status_bytes("VmRSS:").expect("VmRSS");
    let out = work();
    let peak = status_bytes("VmHWM:").expect("VmHWM");
    (out, peak.saturating_sub(before))
}

/// Runs `case` in a child process and returns the bytes it measured.
fn measure(case: &str) -> u128 {
    let output = std::process::Command::new(std::env::current_exe().expect("this test binary"))
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CASE, case)
        .output()
        .expect("the child runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{case}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.split(ANSWER).nth(1))
        .and_then(|n| n.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{case}: no measurement in {stdout}"))
}

fn spec(body: serde_json::Value) -> CampaignSpec {
    serde_json::from_value::<NewCampaign>(body)
        .expect("a campaign body")
        .validate()
        .expect("valid settings")
}

fn network(spec: &CampaignSpec) -> (Arc<dyn Space>, GflowNet) {
    let space: Arc<dyn Space> = Arc::from(spec.space.build().expect("space"));
    let mut rng = StdRng::seed_from_u64(7);
    let net = GflowNet::new(space.clone(), spec.model.clone(), &mut rng).expect("network");
    (space, net)
}

/// Peak bytes of drawing `batch` trajectories and taking one training step on them.
fn measured_training_step(net: &mut GflowNet, batch: usize) -> u128 {
    let mut rng = StdRng::seed_from_u64(batch as u64);
    let (_, peak) = peak_of(|| {
        let mut trajectories: Vec<Trajectory> = net
            .sample_forward(batch, Exploration::default(), &mut rng)
            .expect("samples");
        for (i, t) in trajectories.iter_mut().enumerate() {
            t.log_reward = (i % 5) as f32;
        }
        net.train_step(&trajectories).expect("a step")
    });
    peak
}

/// Spaces whose every trajectory is as long as the space allows (fixed lengths, sets of a
/// fixed size; a grid's walks vary, so only its bound is checked), with each objective.
fn training_cases() -> Vec<(String, CampaignSpec)> {
    let tokens: Vec<String> = (0..8).map(|i| format!("t{i}")).collect();
    let items: Vec<String> = (0..24).map(|i| format!("i{i}")).collect();
    let mut cases = Vec::new();
    for objective in ["tb", "db", "subtb", "fm"] {
        for (name, space) in [
            (
                "sequence 8 x 64",
                json!({"type": "sequence", "alphabet": tokens, "min_length": 64,
                       "max_length": 64, "separator": "-"}),
            ),
            (
                "set of 12 of 24",
                json!({"type": "set", "items": items, "min_size": 12, "max_size": 12}),
            ),
            ("grid 3 x 6", json!({"type": "grid", "dims": 3, "size": 6})),
        ] {
            cases.push((
                format!("{name}, {objective}"),
                spec(json!({"name": "m", "space": space,
                    "model": {"objective": objective, "hidden": 64},
                    // The local-search pool belongs to the run, not to the step measured.
                    "training": {"mix": {"local_search": 0.0}}})),
            ));
        }
    }
    cases
}

/// The round's campaign: 32 tokens of 8, the default pool, refinement and local search.
fn round_spec() -> CampaignSpec {
    let tokens: Vec<String> = (0..8).map(|i| format!("t{i}")).collect();
    spec(
        json!({"name": "r", "space": {"type": "sequence", "alphabet": tokens,
        "min_length": 32, "max_length": 32, "separator": "-"}, "model": {"hidden": 64}}),
    )
}

/// Peak bytes of a round's draw of `n` with a pool, refinement and local search on a
/// made-up score.
fn measured_round(n: usize) -> u128 {
    let spec = round_spec();
    let (space, net) = network(&spec);
    let mut rng = StdRng::seed_from_u64(3);
    let elites: Vec<State> = net
        .sample_forward(8, Exploration::default(), &mut rng)
        .expect("elites")
        .into_iter()
        .map(|t| t.terminal().clone())
        .collect();
    let score = |states: &[State]| -> Result<Vec<f64>, GfnError> {
        Ok(states.iter().map(|s| f64::from(s.0[0])).collect())
    };
    let training = spec.training;
    let round = spec.round;
    let seen = HashSet::new();
    let request = ProposalRequest {
        n,
        seen: &seen,
        explore: Exploration::default(),
        min_distance: None,
        apart_from: &[],
        cancel: None,
    };
    let screening = Screening {
        pool: round.pool,
        refine: round.refine,
        backtrack: round.refine_backtrack,
        rule: BatchRule::Greedy,
        local_share: round.pool_local_search,
        conservative_share: round.pool_conservative,
        conservative_delta: training.conservative_delta,
        elites: &elites,
        spread: round.pool_spread,
        walk: round.pool_walk,
        score: &score,
    };
    peak_of(|| {
        propose(
            space.as_ref(),
            Some(&net),
            request,
            Some(screening),
            &mut rng,
        )
        .expect("a proposal")
    })
    .1
}

/// What a child process measures.
fn run_case(case: &str) -> u128 {
    // Small chunks, as the parent prices them.
    flowlab::gfn::memory::set_chunk_bytes(flowlab::gfn::memory::MIN_CHUNK_BYTES);
    let parts: Vec<&str> = case.split('/').collect();
    match parts.as_slice() {
        ["train", index, batch] => {
            let (_, spec) = training_cases().swap_remove(index.parse().expect("an index"));
            let (_, mut net) = network(&spec);
            measured_training_step(&mut net, batch.parse().expect("a batch"))
        }
        ["round", batch] => measured_round(batch.parse().expect("a batch")),
        _ => panic!("unknown case {case}"),
    }
}

#[test]
fn the_estimates_bound_what_the_engine_allocates() {
    if let Ok(case) = std::env::var(CASE) {
        println!("{ANSWER}{}", run_case(&case));
        return;
    }
    if status_bytes("VmHWM:").is_none() {
        eprintln!("no /proc/self/status here: the memory estimates are not measured");
        return;
    }
    // The parent prices with the children's chunk.
    flowlab::gfn::memory::set_chunk_bytes(flowlab::gfn::memory::MIN_CHUNK_BYTES);
    let mut report = Vec::new();
    for (index, (name, spec)) in training_cases().into_iter().enumerate() {
        let space = spec.space.build().expect("space");
        let cost = flowlab::proxy::campaign_cost(&spec, space.as_ref());
        let small = measure(&format!("train/{index}/{SMALL}"));
        let large = measure(&format!("train/{index}/{LARGE}"));
        let slope = large.saturating_sub(small) / (LARGE - SMALL) as u128;
        let estimated = cost.training_bytes_per_trajectory();
        let line = format!(
            "{name}: step of {LARGE} {large} bytes (estimate {}), per trajectory {slope} (estimate {estimated}, {:.2}x)",
            cost.training_step_bytes_at(LARGE),
            estimated as f64 / slope.max(1) as f64
        );
        assert!(large <= cost.training_step_bytes_at(LARGE), "{line}");
        assert!(slope <= estimated, "{line}");
        // Conservative, not absurd: within a small factor of what the longest trajectories
        // really take (a grid's walks are shorter than its bound, so not there).
        if !name.starts_with("grid") {
            assert!(estimated <= 8 * slope, "{line}");
        }
        report.push(line);
    }
    let spec = round_spec();
    let space = spec.space.build().expect("space");
    let cost = flowlab::proxy::campaign_cost(&spec, space.as_ref());
    let small = measure("round/100");
    let large = measure("round/300");
    let slope = large.saturating_sub(small) / 200;
    let estimated = (cost.round_bytes(300) - cost.round_bytes(100)) / 200;
    let line = format!(
        "round of 300 on sequence 8 x 32: {large} bytes (estimate {}), per candidate {slope} (estimate {estimated}, {:.2}x)",
        cost.round_bytes(300),
        estimated as f64 / slope.max(1) as f64
    );
    assert!(large <= cost.round_bytes(300), "{line}");
    assert!(slope <= estimated, "{line}");
    report.push(line);
    eprintln!("{}", report.join("\n"));
}
