//! Refining policy samples by the local search of "Local Search GFlowNets" (Kim et al.,
//! ICLR 2024): from a terminal `x`, backtrack `K` moves with the backward policy `P_B` to a
//! state `s`, reconstruct from `s` with the forward policy `P_F` to a new terminal `x'`, and
//! accept `x'` with the Metropolis–Hastings probability
//!
//! ```text
//! A = min(1, R(x') P_B(x' ⇝ s) P_F(s ⇝ x) / (R(x) P_B(x ⇝ s) P_F(s ⇝ x')))
//! ```
//!
//! where `P_B(x ⇝ s)` is the probability of the backtracked moves and `P_F(s ⇝ x)` that of
//! walking them forward again (stop action included). With this ratio the chain leaves the
//! distribution proportional to `R` invariant, so refinement sharpens a pool towards what the
//! reward favours without collapsing it onto one mode; `R` is the caller's (the proxy's).
//!
//! Every space here is graded (all paths from the initial state to a terminal have the same
//! number of moves), so a terminal's depth is all the bookkeeping a chain needs. On trees
//! `P_B` is 1 and backtracking just drops the last `K` moves.
//!
//! Synchronous; all chains advance in lock-step, one network call per step.

use super::objective::BackwardPolicy;
use super::propose::Scorer;
use super::sampler::{draw, explore_weights};
use super::space::State;
use super::train::{Exploration, GflowNet, GfnError};
use rand::Rng;

/// How refinement runs.
#[derive(Debug, Clone, Copy)]
pub struct RefineSettings {
    /// Passes over every chain; 0 leaves the samples as they are.
    pub passes: usize,
    /// Share of a terminal's moves that a pass backtracks, in (0, 1]; at least one move.
    pub backtrack: f64,
    /// Exploration of the reconstruction (the same weights give its probability).
    pub explore: Exploration,
}

/// The chains after refinement.
#[derive(Debug, Clone, PartialEq)]
pub struct Refined {
    pub terminals: Vec<State>,
    /// `log R` of each terminal under the scorer.
    pub scores: Vec<f64>,
    /// Whether a chain ever accepted a move (its terminal is no longer the policy's sample).
    pub moved: Vec<bool>,
    /// Proposals accepted over all passes and chains.
    pub accepted: usize,
    /// Proposals made over all passes and chains.
    pub proposed: usize,
}

/// One backtracked path: the states from `x` down to `s` (`x` first) and, for each move
/// `states[j + 1] -> states[j]`, the forward action that makes it.
struct Backtrack {
    states: Vec<State>,
    actions: Vec<usize>,
    log_pb: f64,
}

/// Refines `terminals` (each `depth[i]` moves from the initial state, scored `scores[i]` =
/// `log R`) by `settings.passes` Metropolis–Hastings passes of backtrack-and-reconstruct.
pub fn refine(
    net: &GflowNet,
    terminals: Vec<State>,
    depths: Vec<usize>,
    scores: Vec<f64>,
    settings: RefineSettings,
    score: Scorer<'_>,
    rng: &mut impl Rng,
) -> Result<Refined, GfnError> {
    let mut refined = Refined {
        moved: vec![false; terminals.len()],
        terminals,
        scores,
        accepted: 0,
        proposed: 0,
    };
    let mut depths = depths;
    let share = settings.backtrack.clamp(f64::MIN_POSITIVE, 1.0);
    for _ in 0..settings.passes {
        let chains: Vec<usize> = (0..refined.terminals.len())
            .filter(|&i| depths[i] > 0)
            .collect();
        if chains.is_empty() {
            break;
        }
        // K is drawn uniformly in 1..=kmax(depth); the reverse move backtracks exactly the
        // rebuilt part, so its own chance of drawing that K enters the ratio below.
        let ks: Vec<usize> = chains
            .iter()
            .map(|&i| rng.random_range(1..=max_backtrack(depths[i], share)))
            .collect();
        let starts: Vec<State> = chains
            .iter()
            .map(|&i| refined.terminals[i].clone())
            .collect();
        let back = backtrack(net, &starts, &ks, rng)?;
        let bases: Vec<State> = back
            .iter()
            .map(|b| b.states[b.states.len() - 1].clone())
            .collect();
        let rebuilt = net.sample_forward_from(&bases, settings.explore, rng)?;
        let new_terminals: Vec<State> = rebuilt.iter().map(|t| t.terminal().clone()).collect();
        let new_scores = score(&new_terminals)?;
        // The reverse move: P_F of walking the backtracked moves forward again, and P_B of
        // backtracking the reconstruction.
        let old_forward = forward_log_probs_of_backtracks(net, &back, settings.explore)?;
        let new_backward = backward_log_probs(net, &rebuilt)?;
        for (c, &i) in chains.iter().enumerate() {
            refined.proposed += 1;
            let new_forward: f64 = rebuilt[c].log_pf;
            let rebuilt_moves = rebuilt[c].states.len() - 1;
            let new_depth = depths[i] - ks[c] + rebuilt_moves;
            let reverse_kmax = max_backtrack(new_depth, share);
            // Choosing K: 1/kmax forward, and for the reverse 1/kmax' if it can draw the
            // rebuilt length at all.
            let choice = if (1..=reverse_kmax).contains(&rebuilt_moves) {
                (max_backtrack(depths[i], share) as f64).ln() - (reverse_kmax as f64).ln()
            } else {
                f64::NEG_INFINITY
            };
            let log_ratio = new_scores[c] - refined.scores[i] + new_backward[c] + old_forward[c]
                - back[c].log_pb
                - new_forward
                + choice;
            let accept = if log_ratio.is_nan() || !new_scores[c].is_finite() {
                false
            } else {
                log_ratio >= 0.0 || rng.random::<f64>().ln() < log_ratio
            };
            if accept {
                refined.accepted += 1;
                if new_terminals[c] != refined.terminals[i] {
                    refined.moved[i] = true;
                }
                depths[i] = new_depth;
                refined.terminals[i] = new_terminals[c].clone();
                refined.scores[i] = new_scores[c];
            }
        }
    }
    Ok(refined)
}

/// The most moves a pass may backtrack from a terminal `depth` moves deep: `share` of them,
/// rounded up (0 only at depth 0).
fn max_backtrack(depth: usize, share: f64) -> usize {
    ((depth as f64 * share).ceil() as usize).min(depth)
}

/// Backtracks `ks[i]` moves from each of `starts` with `P_B`, recording the probability.
fn backtrack(
    net: &GflowNet,
    starts: &[State],
    ks: &[usize],
    rng: &mut impl Rng,
) -> Result<Vec<Backtrack>, GfnError> {
    let space = net.space().as_ref();
    let a = space.n_actions();
    let nb = a - 1;
    let learned = net.config().backward_policy == BackwardPolicy::Learned && !space.is_tree();
    let mut paths: Vec<Backtrack> = starts
        .iter()
        .map(|x| Backtrack {
            states: vec![x.clone()],
            actions: Vec::new(),
            log_pb: 0.0,
        })
        .collect();
    let mut mask = vec![false; nb];
    let mut weights = Vec::with_capacity(nb);
    let max_k = ks.iter().copied().max().unwrap_or(0);
    for step in 0..max_k {
        let active: Vec<usize> = (0..paths.len()).filter(|&i| ks[i] > step).collect();
        let current: Vec<State> = active
            .iter()
            .map(|&i| paths[i].states[paths[i].states.len() - 1].clone())
            .collect();
        let out = if learned {
            net.outputs(&current)?
        } else {
            Vec::new()
        };
        for (k, &i) in active.iter().enumerate() {
            let s = &current[k];
            space.backward_mask(s, &mut mask);
            if learned {
                let logits = &out[k * 2 * a + a..k * 2 * a + a + nb];
                explore_weights(logits, &mask, Exploration::default(), &mut weights);
            } else {
                let parents = mask.iter().filter(|m| **m).count().max(1) as f64;
                weights.clear();
                weights.extend(mask.iter().map(|&m| if m { 1.0 / parents } else { 0.0 }));
            }
            let action = draw(&weights, rng);
            let parent = space.backward_step(s, action).map_err(|e| {
                GfnError::Config(format!("refinement drew an invalid backward action: {e}"))
            })?;
            if !space.is_tree() {
                paths[i].log_pb += weights[action].max(f64::MIN_POSITIVE).ln();
            }
            paths[i].actions.push(action);
            paths[i].states.push(parent);
        }
    }
    Ok(paths)
}

/// `log P_F` of walking each backtracked path forward from its base back to its terminal,
/// stop action included, under the exploration weights.
fn forward_log_probs_of_backtracks(
    net: &GflowNet,
    paths: &[Backtrack],
    explore: Exploration,
) -> Result<Vec<f64>, GfnError> {
    let space = net.space().as_ref();
    let a = space.n_actions();
    let stop = space.stop_action();
    // Every (state, forward action) of every path, in one network call.
    let mut states = Vec::new();
    let mut actions = Vec::new();
    let mut owner = Vec::new();
    for (p, path) in paths.iter().enumerate() {
        // states[j + 1] -> states[j] by actions[j]; the terminal states[0] then stops.
        for j in 0..path.actions.len() {
            states.push(path.states[j + 1].clone());
            actions.push(path.actions[j]);
            owner.push(p);
        }
        states.push(path.states[0].clone());
        actions.push(stop);
        owner.push(p);
    }
    let out = net.outputs(&states)?;
    let mut mask = vec![false; a];
    let mut weights = Vec::with_capacity(a);
    let mut totals = vec![0.0; paths.len()];
    for (k, s) in states.iter().enumerate() {
        space.forward_mask(s, &mut mask);
        explore_weights(&out[k * 2 * a..k * 2 * a + a], &mask, explore, &mut weights);
        totals[owner[k]] += weights[actions[k]].max(f64::MIN_POSITIVE).ln();
    }
    Ok(totals)
}

/// `log P_B` of backtracking each reconstructed trajectory from its terminal to where it
/// started (0 on trees).
fn backward_log_probs(
    net: &GflowNet,
    trajs: &[super::sampler::SampledPath],
) -> Result<Vec<f64>, GfnError> {
    let space = net.space().as_ref();
    if space.is_tree() {
        return Ok(vec![0.0; trajs.len()]);
    }
    let a = space.n_actions();
    let nb = a - 1;
    let learned = net.config().backward_policy == BackwardPolicy::Learned;
    let mut states = Vec::new();
    let mut actions = Vec::new();
    let mut owner = Vec::new();
    for (p, t) in trajs.iter().enumerate() {
        // The move states[j] -> states[j + 1] by actions[j] is undone at states[j + 1].
        for j in 0..t.states.len() - 1 {
            states.push(t.states[j + 1].clone());
            actions.push(t.actions[j]);
            owner.push(p);
        }
    }
    let out = if learned {
        net.outputs(&states)?
    } else {
        Vec::new()
    };
    let mut mask = vec![false; nb];
    let mut weights = Vec::with_capacity(nb);
    let mut totals = vec![0.0; trajs.len()];
    for (k, s) in states.iter().enumerate() {
        space.backward_mask(s, &mut mask);
        let lp = if learned {
            explore_weights(
                &out[k * 2 * a + a..k * 2 * a + a + nb],
                &mask,
                Exploration::default(),
                &mut weights,
            );
            weights[actions[k]].max(f64::MIN_POSITIVE).ln()
        } else {
            -(mask.iter().filter(|m| **m).count().max(1) as f64).ln()
        };
        totals[owner[k]] += lp;
    }
    Ok(totals)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::gfn::space::{GridSpace, SequenceSpace, Space};
    use crate::gfn::GfnConfig;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use std::collections::HashMap;
    use std::sync::Arc;

    fn net(space: Arc<dyn Space>, seed: u64) -> GflowNet {
        let config = GfnConfig {
            hidden: 16,
            layers: 1,
            ..GfnConfig::default()
        };
        GflowNet::new(space, config, &mut StdRng::seed_from_u64(seed)).expect("network")
    }

    fn depth_of(x: &State) -> usize {
        x.0.iter().map(|&c| c as usize).sum()
    }

    /// The chain leaves `R` invariant: started from exact draws of `R/Z` on a small grid, many
    /// passes with an untrained (far from `R`) policy keep the chains distributed as `R/Z`.
    #[test]
    fn refinement_keeps_the_reward_distribution_invariant() {
        let space: Arc<dyn Space> = Arc::new(GridSpace::new(2, 4).expect("grid"));
        let policy = net(space.clone(), 3);
        let log_r = |x: &State| -> f64 {
            if x.0[0] + x.0[1] >= 5 {
                2.0
            } else {
                0.0
            }
        };
        let all: Vec<State> = space
            .enumerate(100)
            .expect("small")
            .into_iter()
            .filter(|x| space.can_stop(x))
            .collect();
        let z: f64 = all.iter().map(|x| log_r(x).exp()).sum();
        let mut rng = StdRng::seed_from_u64(11);
        let n = 4000;
        let weights: Vec<f64> = all.iter().map(|x| log_r(x).exp()).collect();
        let starts: Vec<State> = (0..n)
            .map(|_| all[draw(&weights, &mut rng)].clone())
            .collect();
        let depths = starts.iter().map(depth_of).collect();
        let scores: Vec<f64> = starts.iter().map(log_r).collect();
        let scorer =
            |xs: &[State]| -> Result<Vec<f64>, GfnError> { Ok(xs.iter().map(log_r).collect()) };
        let settings = RefineSettings {
            passes: 5,
            backtrack: 0.5,
            explore: Exploration::default(),
        };
        let out =
            refine(&policy, starts, depths, scores, settings, &scorer, &mut rng).expect("refined");
        assert!(out.accepted > 0 && out.accepted < out.proposed);
        let mut counts: HashMap<State, usize> = HashMap::new();
        for x in &out.terminals {
            *counts.entry(x.clone()).or_default() += 1;
        }
        // Each of the 16 cells: |empirical - target| within 4 standard errors of a binomial
        // frequency over n draws (the chains are correlated with their starts, which only
        // makes the spread smaller than for independent draws of a wrong distribution).
        for x in &all {
            let p = log_r(x).exp() / z;
            let freq = *counts.get(x).unwrap_or(&0) as f64 / n as f64;
            let se = (p * (1.0 - p) / n as f64).sqrt();
            assert!((freq - p).abs() < 4.0 * se + 1e-3, "{x:?}: {freq} vs {p}");
        }
    }

    /// With a reward that favours one corner, refinement moves chains there, and moves
    /// chains only by accepted proposals.
    #[test]
    fn refinement_climbs_towards_high_reward_on_a_tree() {
        let space: Arc<dyn Space> = Arc::new(
            SequenceSpace::new(vec!["a".into(), "b".into()], 6, 6, String::new()).expect("space"),
        );
        let policy = net(space.clone(), 4);
        let log_r = |x: &State| -> f64 { 3.0 * x.0.iter().filter(|&&t| t == 1).count() as f64 };
        let mut rng = StdRng::seed_from_u64(5);
        let starts: Vec<State> = policy
            .sample_forward(200, Exploration::default(), &mut rng)
            .expect("samples")
            .into_iter()
            .map(|t| t.terminal().clone())
            .collect();
        let depths = vec![6; starts.len()];
        let scores: Vec<f64> = starts.iter().map(log_r).collect();
        let before = scores.iter().sum::<f64>() / scores.len() as f64;
        let scorer =
            |xs: &[State]| -> Result<Vec<f64>, GfnError> { Ok(xs.iter().map(log_r).collect()) };
        let settings = RefineSettings {
            passes: 10,
            backtrack: 0.5,
            explore: Exploration::default(),
        };
        let out = refine(
            &policy,
            starts.clone(),
            depths,
            scores,
            settings,
            &scorer,
            &mut rng,
        )
        .expect("refined");
        let after = out.scores.iter().sum::<f64>() / out.scores.len() as f64;
        // Only the last 3 tokens can change (at most half of 6 moves backtracked); under
        // R ∝ e^{3k} each of them is b with probability e^3 / (1 + e^3) = 0.95, so the
        // chains head for about 2.9 b's there, against 1.5 for a uniform suffix: the mean
        // score must rise by well over 3 (about 4 when mixed).
        assert!(after > before + 3.0, "{before} -> {after}");
        for (i, x) in out.terminals.iter().enumerate() {
            // A chain that never moved still holds its sample (one that moved may have
            // come back to it).
            assert!(out.moved[i] || *x == starts[i]);
            assert_eq!(out.scores[i], log_r(x));
            // Backtracking at most 3 moves keeps the first 3 tokens of a tree path.
            assert_eq!(x.0[..3], starts[i].0[..3]);
        }
    }
}
