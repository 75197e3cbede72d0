//! Correctness of training, end to end: each objective must bring the exact terminal
//! distribution of the policy close to `R/Z` on small spaces, from fixed seeds. A broken
//! objective (a wrong sign, a missing term) leaves the sum-L1 far above the bound.

use super::exact::ExactTarget;
use super::space::{GridSpace, SequenceSpace, SetSpace, Space, State};
use super::tasks::HyperGrid;
use super::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;

/// The sum-L1 bound the issue sets for every trained policy.
const L1_BOUND: f64 = 0.05;

fn small_config(objective: Objective) -> GfnConfig {
    GfnConfig {
        objective,
        hidden: 64,
        ..GfnConfig::default()
    }
}

/// Trains on-policy for `trajectories` and returns the exact sum-L1 of the final policy.
fn train_on_policy(
    space: Arc<dyn Space>,
    config: GfnConfig,
    reward: impl Fn(&State) -> f64,
    trajectories: usize,
    seed: u64,
) -> f64 {
    let target = ExactTarget::new(space.as_ref(), 100_000, &reward).expect("small space");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut gfn = GflowNet::new(space, config, &mut rng).expect("valid config");
    for _ in 0..trajectories / 16 {
        let mut trajs = gfn
            .sample_forward(16, Exploration::default(), &mut rng)
            .expect("sampling");
        for t in &mut trajs {
            t.log_reward = reward(t.terminal()).ln() as f32;
        }
        gfn.train_step(&trajs).expect("training step");
    }
    target.evaluate(&gfn).expect("evaluation").l1
}

fn grid_2x8() -> (Arc<dyn Space>, HyperGrid) {
    (
        Arc::new(GridSpace::new(2, 8).expect("valid grid")),
        HyperGrid::new(8, 0.1),
    )
}

fn assert_trains(objective: Objective) {
    let (space, task) = grid_2x8();
    let l1 = train_on_policy(
        space,
        small_config(objective),
        |x| task.reward(x),
        16_000,
        1,
    );
    assert!(
        l1 < L1_BOUND,
        "{objective}: exact sum-L1 {l1:.4} is not below {L1_BOUND}"
    );
}

#[test]
fn trajectory_balance_learns_hypergrid_2x8() {
    assert_trains(Objective::Tb);
}

#[test]
fn detailed_balance_learns_hypergrid_2x8() {
    assert_trains(Objective::Db);
}

#[test]
fn subtrajectory_balance_learns_hypergrid_2x8() {
    assert_trains(Objective::Subtb);
}

#[test]
fn flow_matching_learns_hypergrid_2x8() {
    assert_trains(Objective::Fm);
}

/// A set reward with interactions: pairs of items add or subtract, so the target is not a
/// product of per-item factors.
fn set_reward(x: &State) -> f64 {
    let has = |i: u16| x.0.contains(&i);
    let mut score = 0.2 * x.0.len() as f64;
    if has(0) && has(3) {
        score += 1.5;
    }
    if has(1) && has(2) {
        score -= 0.8;
    }
    if has(5) {
        score += 0.5;
    }
    score.exp()
}

#[test]
fn trajectory_balance_learns_a_set_space_with_interactions() {
    let items = (0..6).map(|i| format!("item{i}")).collect();
    let space: Arc<dyn Space> = Arc::new(SetSpace::new(items, 1, 4).expect("valid set"));
    let l1 = train_on_policy(space, small_config(Objective::Tb), set_reward, 16_000, 2);
    assert!(l1 < L1_BOUND, "set: exact sum-L1 {l1:.4}");
}

/// Rewards sequences rich in token 0 that end in token 2, with length mattering.
fn sequence_reward(x: &State) -> f64 {
    let zeros = x.0.iter().filter(|&&t| t == 0).count() as f64;
    let ends_in_two = x.0.last() == Some(&2);
    (0.6 * zeros + if ends_in_two { 1.0 } else { 0.0 } - 0.1 * x.0.len() as f64).exp()
}

#[test]
fn trajectory_balance_learns_a_variable_length_sequence_space() {
    let alphabet = ["A", "B", "C"].iter().map(|s| s.to_string()).collect();
    let space: Arc<dyn Space> =
        Arc::new(SequenceSpace::new(alphabet, 1, 4, String::new()).expect("valid sequence"));
    let l1 = train_on_policy(
        space,
        small_config(Objective::Tb),
        sequence_reward,
        16_000,
        3,
    );
    assert!(l1 < L1_BOUND, "sequence: exact sum-L1 {l1:.4}");
}

#[test]
fn training_only_on_backward_trajectories_from_random_terminals_learns_hypergrid() {
    // The service trains on labelled candidates it did not sample itself (Prop. 3 of the
    // 2021 paper): no forward sampling at all here.
    let (space, task) = grid_2x8();
    let target = ExactTarget::new(space.as_ref(), 100_000, |x| task.reward(x)).expect("small");
    let mut rng = StdRng::seed_from_u64(4);
    let mut gfn = GflowNet::new(space, small_config(Objective::Tb), &mut rng).expect("config");
    for _ in 0..16_000 / 16 {
        let terminals: Vec<(State, f32)> = (0..16)
            .map(|_| {
                let x = State(vec![rng.random_range(0..8), rng.random_range(0..8)]);
                let r = task.log_reward(&x);
                (x, r)
            })
            .collect();
        let trajs = gfn
            .sample_backward(&terminals, &mut rng)
            .expect("backward sampling");
        gfn.train_step(&trajs).expect("training step");
    }
    let l1 = target.evaluate(&gfn).expect("evaluation").l1;
    assert!(l1 < L1_BOUND, "backward-only: exact sum-L1 {l1:.4}");
}

#[test]
fn backward_trajectories_start_at_the_initial_state_and_end_at_their_terminal() {
    let (space, _) = grid_2x8();
    let mut rng = StdRng::seed_from_u64(5);
    let gfn = GflowNet::new(space.clone(), small_config(Objective::Tb), &mut rng).expect("config");
    let terminals = vec![(State(vec![3, 5]), 0.5f32), (State(vec![0, 0]), -1.0)];
    let trajs = gfn.sample_backward(&terminals, &mut rng).expect("sampling");
    for (t, (x, r)) in trajs.iter().zip(&terminals) {
        assert_eq!(t.states[0], space.initial());
        assert_eq!(t.terminal(), x);
        assert_eq!(t.log_reward, *r);
        assert_eq!(t.states.len(), space.depth(x) + 1);
        for w in 0..t.states.len() - 1 {
            assert_eq!(
                space.step(&t.states[w], t.actions[w]).as_ref(),
                Ok(&t.states[w + 1])
            );
        }
        assert_eq!(t.actions.last(), Some(&space.stop_action()));
    }
}

#[test]
fn same_seed_gives_the_same_numbers() {
    let run = |seed: u64| {
        let (space, task) = grid_2x8();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut gfn = GflowNet::new(space, small_config(Objective::Db), &mut rng).expect("config");
        let mut losses = Vec::new();
        for _ in 0..20 {
            let mut trajs = gfn
                .sample_forward(
                    8,
                    Exploration {
                        temperature: 1.5,
                        epsilon: 0.1,
                    },
                    &mut rng,
                )
                .expect("sample");
            for t in &mut trajs {
                t.log_reward = task.log_reward(t.terminal());
            }
            losses.push(gfn.train_step(&trajs).expect("step").loss);
        }
        losses
    };
    assert_eq!(run(11), run(11));
    assert_ne!(run(11), run(12));
}

#[test]
fn forward_samples_follow_the_exact_terminal_distribution() {
    // An untrained policy is far from uniform; its samples must still match the dynamic
    // programme state by state, within 5 binomial standard deviations for N draws.
    let space: Arc<dyn Space> = Arc::new(GridSpace::new(2, 4).expect("grid"));
    let target = ExactTarget::new(space.as_ref(), 1000, |_| 1.0).expect("small");
    let mut rng = StdRng::seed_from_u64(6);
    let gfn = GflowNet::new(space, small_config(Objective::Tb), &mut rng).expect("config");
    let p = target.terminal_distribution(&gfn).expect("dp");
    let n = 40_000usize;
    let mut counts = vec![0usize; p.len()];
    for _ in 0..n / 500 {
        for t in gfn
            .sample_forward(500, Exploration::default(), &mut rng)
            .expect("sampling")
        {
            counts[target.index_of(t.terminal()).expect("enumerated")] += 1;
        }
    }
    for (i, (&c, &pi)) in counts.iter().zip(&p).enumerate() {
        let freq = c as f64 / n as f64;
        let sd = (pi * (1.0 - pi) / n as f64).sqrt();
        assert!(
            (freq - pi).abs() <= 5.0 * sd + 1.0 / n as f64,
            "state {i}: frequency {freq:.4}, exact {pi:.4}"
        );
    }
    assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
}

/// The TB loss of one trajectory, recomputed by hand from the network's outputs.
#[test]
fn trajectory_balance_loss_matches_its_formula() {
    let (space, task) = grid_2x8();
    let mut rng = StdRng::seed_from_u64(7);
    let mut gfn =
        GflowNet::new(space.clone(), small_config(Objective::Tb), &mut rng).expect("config");
    let mut trajs = gfn
        .sample_forward(1, Exploration::default(), &mut rng)
        .expect("sample");
    trajs[0].log_reward = task.log_reward(trajs[0].terminal());
    let t = &trajs[0];
    let a = space.n_actions();
    let out = gfn.outputs(&t.states).expect("outputs");
    let log_softmax = |row: &[f32], mask: &[bool], k: usize| -> f64 {
        let lse: f64 = row
            .iter()
            .zip(mask)
            .filter(|(_, m)| **m)
            .map(|(v, _)| (*v as f64).exp())
            .sum::<f64>()
            .ln();
        row[k] as f64 - lse
    };
    let mut residual = gfn.log_z().expect("log z") as f64 - t.log_reward as f64;
    let mut fmask = vec![false; a];
    let mut bmask = vec![false; a - 1];
    for (i, s) in t.states.iter().enumerate() {
        let row = &out[i * 2 * a..(i + 1) * 2 * a];
        space.forward_mask(s, &mut fmask);
        residual += log_softmax(&row[..a], &fmask, t.actions[i]);
        if i > 0 {
            space.backward_mask(s, &mut bmask);
            residual -= log_softmax(&row[a..2 * a - 1], &bmask, t.actions[i - 1]);
        }
    }
    let loss = gfn.train_step(&trajs).expect("step").loss as f64;
    assert!(
        (loss - residual * residual).abs() < 1e-4 * (1.0 + loss),
        "loss {loss}, formula {}",
        residual * residual
    );
}
