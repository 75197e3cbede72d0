//! Sampling trajectories: forward from the initial state with the policy (plus exploration),
//! and backward from given terminal states with `P_B` (off-policy data from labels).
//!
//! All trajectories of a batch advance in lock-step, one network call per step for the
//! trajectories still running, without gradients. Every random draw comes from the caller's
//! seeded RNG.

use super::objective::{BackwardPolicy, Trajectory};
use super::space::{Space, State};
use super::train::{Exploration, GflowNet, GfnError};
use rand::Rng;

/// A forward walk from some state: the states visited (the start first), the action taken at
/// each (the last one the stop action), and `log P_F` of those actions as drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct SampledPath {
    pub states: Vec<State>,
    pub actions: Vec<usize>,
    pub log_pf: f64,
}

impl SampledPath {
    /// Where the walk stopped.
    pub fn terminal(&self) -> &State {
        &self.states[self.states.len() - 1]
    }
}

/// `n` walks of the uniform policy from the initial state: each move drawn uniformly among
/// the valid ones, stopping included where the state may stop. The distribution of any
/// network's walks at `epsilon` 1, without a network; it reaches every terminal.
pub fn sample_uniform(
    space: &dyn Space,
    n: usize,
    rng: &mut impl Rng,
) -> Result<Vec<Trajectory>, GfnError> {
    let a = space.n_actions();
    let stop = space.stop_action();
    let mut mask = vec![false; a];
    let mut valid = Vec::with_capacity(a);
    let mut walks = Vec::with_capacity(n);
    for _ in 0..n {
        let mut states = vec![space.initial()];
        let mut actions = Vec::new();
        loop {
            let here = &states[states.len() - 1];
            space.forward_mask(here, &mut mask);
            valid.clear();
            valid.extend((0..a).filter(|&i| mask[i]));
            if valid.is_empty() {
                return Err(GfnError::Config(format!(
                    "the uniform policy reached a state with no valid move: {here:?}"
                )));
            }
            let action = valid[rng.random_range(0..valid.len())];
            actions.push(action);
            if action == stop {
                break;
            }
            let next = space.step(here, action).map_err(|e| {
                GfnError::Config(format!("the uniform policy drew an invalid action: {e}"))
            })?;
            states.push(next);
        }
        walks.push(Trajectory {
            states,
            actions,
            log_reward: 0.0,
        });
    }
    Ok(walks)
}

/// Draws an index from unnormalised non-negative weights.
pub(super) fn draw(weights: &[f64], rng: &mut impl Rng) -> usize {
    let total: f64 = weights.iter().sum();
    let mut u = rng.random::<f64>() * total;
    let mut last = 0;
    for (i, w) in weights.iter().enumerate() {
        if *w > 0.0 {
            last = i;
            if u < *w {
                return i;
            }
            u -= w;
        }
    }
    last
}

/// Fills `weights` with the sampling distribution over valid actions: softmax of
/// `logits / temperature` mixed with uniform weight `epsilon`.
pub(super) fn explore_weights(
    logits: &[f32],
    mask: &[bool],
    explore: Exploration,
    weights: &mut Vec<f64>,
) {
    weights.clear();
    let t = explore.temperature.max(1e-6) as f64;
    let max = logits
        .iter()
        .zip(mask)
        .filter(|(_, m)| **m)
        .map(|(v, _)| *v as f64 / t)
        .fold(f64::NEG_INFINITY, f64::max);
    let mut total = 0.0;
    for (v, m) in logits.iter().zip(mask) {
        let e = if *m { (*v as f64 / t - max).exp() } else { 0.0 };
        total += e;
        weights.push(e);
    }
    let n_valid = mask.iter().filter(|m| **m).count().max(1) as f64;
    let eps = explore.epsilon.clamp(0.0, 1.0) as f64;
    for (w, m) in weights.iter_mut().zip(mask) {
        *w = if *m {
            (1.0 - eps) * *w / total + eps / n_valid
        } else {
            0.0
        };
    }
}

impl GflowNet {
    /// Samples `n` complete trajectories forward. Their `log_reward` is left at 0: the caller
    /// scores the terminals.
    pub fn sample_forward(
        &self,
        n: usize,
        explore: Exploration,
        rng: &mut impl Rng,
    ) -> Result<Vec<Trajectory>, GfnError> {
        let starts = vec![self.space.initial(); n];
        Ok(self
            .sample_forward_from(&starts, explore, rng)?
            .into_iter()
            .map(|p| Trajectory {
                states: p.states,
                actions: p.actions,
                log_reward: 0.0,
            })
            .collect())
    }

    /// Walks forward from each of `starts` until the policy stops, with the probability of
    /// the moves drawn (under the exploration weights they were drawn from).
    pub fn sample_forward_from(
        &self,
        starts: &[State],
        explore: Exploration,
        rng: &mut impl Rng,
    ) -> Result<Vec<SampledPath>, GfnError> {
        self.walk_forward(starts, &[], explore, rng)
    }

    /// Walks forward from each of `starts` as [`Self::sample_forward_from`] does, except that
    /// step `t` of walk `i` takes `guides[i][t]` when that is `Some` action valid there; a
    /// `None`, an invalid action or a step past the guide's end is drawn from the policy.
    /// `log_pf` is the policy's probability of the moves it drew (given the forced ones):
    /// the network is only asked about the states where a walk draws, so a guide that
    /// forces most moves (conservative search) costs a fraction of a free walk.
    /// Missing guides (`guides` shorter than `starts`) leave those walks unguided.
    pub fn walk_forward(
        &self,
        starts: &[State],
        guides: &[Vec<Option<usize>>],
        explore: Exploration,
        rng: &mut impl Rng,
    ) -> Result<Vec<SampledPath>, GfnError> {
        let space = self.space.as_ref();
        let a = space.n_actions();
        let stop = space.stop_action();
        let mut paths: Vec<SampledPath> = starts
            .iter()
            .map(|s| SampledPath {
                states: vec![s.clone()],
                actions: Vec::new(),
                log_pf: 0.0,
            })
            .collect();
        let mut active: Vec<usize> = (0..paths.len()).collect();
        let mut mask = vec![false; a];
        let mut weights = Vec::with_capacity(a);
        // Per active walk: the guide's action when it is valid here, else `None` (drawn).
        let mut forced: Vec<Option<usize>> = Vec::with_capacity(paths.len());
        let mut drawing: Vec<State> = Vec::new();
        // The masks of the drawing walks' states, `a` entries each, kept for the draw.
        let mut masks: Vec<bool> = Vec::new();
        while !active.is_empty() {
            forced.clear();
            drawing.clear();
            masks.clear();
            for &i in &active {
                let s = &paths[i].states[paths[i].states.len() - 1];
                space.forward_mask(s, &mut mask);
                let guided = guides
                    .get(i)
                    .and_then(|g| g.get(paths[i].actions.len()))
                    .copied()
                    .flatten()
                    .filter(|&f| f < a && mask[f]);
                if guided.is_none() {
                    drawing.push(s.clone());
                    masks.extend_from_slice(&mask);
                }
                forced.push(guided);
            }
            let out = self.outputs(&drawing)?;
            let mut row = 0;
            let mut still = Vec::with_capacity(active.len());
            for (k, &i) in active.iter().enumerate() {
                let s = paths[i].states[paths[i].states.len() - 1].clone();
                let action = match forced[k] {
                    Some(f) => f,
                    None => {
                        explore_weights(
                            &out[row * 2 * a..row * 2 * a + a],
                            &masks[row * a..(row + 1) * a],
                            explore,
                            &mut weights,
                        );
                        row += 1;
                        let action = draw(&weights, rng);
                        paths[i].log_pf += weights[action].max(f64::MIN_POSITIVE).ln();
                        action
                    }
                };
                paths[i].actions.push(action);
                if action != stop {
                    let next = space.step(&s, action).map_err(|e| {
                        GfnError::Config(format!("sampler drew an invalid action: {e}"))
                    })?;
                    paths[i].states.push(next);
                    still.push(i);
                }
            }
            active = still;
        }
        Ok(paths)
    }

    /// Samples one trajectory backward from each terminal with `P_B` (learned head, uniform
    /// over parents, or the only parent on trees), and returns it in forward order with the
    /// given log-reward.
    pub fn sample_backward(
        &self,
        terminals: &[(State, f32)],
        rng: &mut impl Rng,
    ) -> Result<Vec<Trajectory>, GfnError> {
        let space = self.space.as_ref();
        let a = space.n_actions();
        let nb = a - 1;
        for (x, _) in terminals {
            if !space.can_stop(x) {
                return Err(GfnError::NotTerminal(x.clone()));
            }
        }
        // Built in reverse: states from x back to s0, and the forward action of each move.
        let mut rev: Vec<(Vec<State>, Vec<usize>)> = terminals
            .iter()
            .map(|(x, _)| (vec![x.clone()], Vec::new()))
            .collect();
        let learned = self.config.backward_policy == BackwardPolicy::Learned && !space.is_tree();
        let initial = space.initial();
        let mut active: Vec<usize> = (0..terminals.len())
            .filter(|&i| terminals[i].0 != initial)
            .collect();
        let mut mask = vec![false; nb];
        let mut weights = Vec::with_capacity(nb);
        let mut current: Vec<State> = Vec::new();
        while !active.is_empty() {
            current.clear();
            current.extend(active.iter().map(|&i| rev[i].0[rev[i].0.len() - 1].clone()));
            let out = if learned {
                self.outputs(&current)?
            } else {
                Vec::new()
            };
            let mut still = Vec::with_capacity(active.len());
            for (k, &i) in active.iter().enumerate() {
                let s = &current[k];
                space.backward_mask(s, &mut mask);
                if learned {
                    let logits = &out[k * 2 * a + a..k * 2 * a + a + nb];
                    explore_weights(logits, &mask, Exploration::default(), &mut weights);
                } else {
                    weights.clear();
                    weights.extend(mask.iter().map(|&m| if m { 1.0 } else { 0.0 }));
                }
                let action = draw(&weights, rng);
                let parent = space.backward_step(s, action).map_err(|e| {
                    GfnError::Config(format!("backward sampler drew an invalid action: {e}"))
                })?;
                rev[i].1.push(action);
                let done = parent == initial;
                rev[i].0.push(parent);
                if !done {
                    still.push(i);
                }
            }
            active = still;
        }
        let stop = space.stop_action();
        Ok(rev
            .into_iter()
            .zip(terminals)
            .map(|((mut states, mut actions), (_, log_reward))| {
                states.reverse();
                actions.reverse();
                actions.push(stop);
                Trajectory {
                    states,
                    actions,
                    log_reward: *log_reward,
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exploration_with_full_epsilon_is_uniform_over_valid_actions() {
        let mut w = Vec::new();
        explore_weights(
            &[5.0, -3.0, 0.0],
            &[true, false, true],
            Exploration {
                temperature: 1.0,
                epsilon: 1.0,
            },
            &mut w,
        );
        assert_eq!(w, vec![0.5, 0.0, 0.5]);
    }

    #[test]
    fn temperature_flattens_the_policy() {
        let (mut cold, mut hot) = (Vec::new(), Vec::new());
        let mask = [true, true];
        explore_weights(
            &[1.0, 0.0],
            &mask,
            Exploration {
                temperature: 1.0,
                epsilon: 0.0,
            },
            &mut cold,
        );
        explore_weights(
            &[1.0, 0.0],
            &mask,
            Exploration {
                temperature: 4.0,
                epsilon: 0.0,
            },
            &mut hot,
        );
        let expected_cold = 1.0f64.exp() / (1.0f64.exp() + 1.0);
        let expected_hot = 0.25f64.exp() / (0.25f64.exp() + 1.0);
        assert!((cold[0] - expected_cold).abs() < 1e-6);
        assert!((hot[0] - expected_hot).abs() < 1e-6);
    }
}

#[cfg(test)]
mod uniform_tests {
    use super::*;
    use crate::gfn::space::GridSpace;
    use crate::gfn::GfnConfig;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use std::collections::HashMap;
    use std::sync::Arc;

    /// Share of each terminal among `walks`.
    fn shares(walks: &[Trajectory]) -> HashMap<State, f64> {
        let mut counts: HashMap<State, f64> = HashMap::new();
        for w in walks {
            *counts.entry(w.terminal().clone()).or_default() += 1.0;
        }
        let n = walks.len() as f64;
        counts.values_mut().for_each(|c| *c /= n);
        counts
    }

    /// The uniform policy without a network draws terminals as a (far from uniform)
    /// network's walks do at epsilon 1: on a 3×3 grid, where the uniform forward policy
    /// favours some terminals over others, every terminal's share agrees within 4.5
    /// standard errors of the difference of two samples of this size.
    #[test]
    fn uniform_walks_match_a_network_s_walks_at_epsilon_one() {
        let space: Arc<dyn Space> = Arc::new(GridSpace::new(2, 3).expect("grid"));
        let n = 20_000;
        let mut rng = StdRng::seed_from_u64(11);
        let net = GflowNet::new(space.clone(), GfnConfig::default(), &mut rng).expect("network");
        let uniform = Exploration {
            temperature: 1.0,
            epsilon: 1.0,
        };
        let by_network = shares(&net.sample_forward(n, uniform, &mut rng).expect("walks"));
        let walks = sample_uniform(space.as_ref(), n, &mut rng).expect("walks");
        for w in &walks {
            assert_eq!(w.states.len(), w.actions.len(), "one action per state");
            assert_eq!(w.actions.last(), Some(&space.stop_action()));
        }
        let without = shares(&walks);
        assert_eq!(without.len(), 9, "every terminal is reached");
        let spread = without.values().fold(0.0f64, |m, p| m.max(*p))
            - without.values().fold(1.0f64, |m, p| m.min(*p));
        assert!(spread > 0.05, "the test needs unequal shares: {without:?}");
        for (state, p) in &without {
            let q = by_network.get(state).copied().unwrap_or(0.0);
            let pooled = (p + q) / 2.0;
            let se = (pooled * (1.0 - pooled) * 2.0 / n as f64).sqrt();
            assert!((p - q).abs() <= 4.5 * se, "{state:?}: {p} vs {q} (se {se})");
        }
    }
}
