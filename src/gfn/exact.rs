//! Exact evaluation on enumerable spaces: the terminal distribution of the forward policy by
//! dynamic programming, its sum-L1 distance to `R/Z`, and the modes it reaches.
//!
//! `u(s0) = 1`, `u(s') = sum over parents (s, a) of u(s) P_F(a | s)`, processed in depth
//! order so that parents come first; `P_T(x) = u(x) P_F(stop | x)`. One forward pass covers
//! all states; the dynamic programme runs in f64.

use super::space::{Space, State};
use super::train::{GflowNet, GfnError};
use std::collections::HashMap;

/// A target distribution over the terminals of an enumerable space, prepared once.
#[derive(Debug, Clone)]
pub struct ExactTarget {
    states: Vec<State>,
    index: HashMap<State, usize>,
    /// `R(x)/Z` per state (0 for states that cannot stop).
    target: Vec<f64>,
    /// Indices of the mode states (maximal reward).
    modes: Vec<usize>,
    log_partition: f64,
}

/// What [`ExactTarget::evaluate`] reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExactReport {
    /// `sum_x |P_T(x) - R(x)/Z|`, in [0, 2].
    pub l1: f64,
    /// Total terminal probability mass of the policy (1 up to rounding).
    pub mass: f64,
    /// Modes whose probability under the policy is at least half their target probability.
    pub modes_covered: usize,
    pub modes_total: usize,
}

impl ExactTarget {
    /// Enumerates the space (at most `limit` states) and normalises `reward` over its
    /// terminals. `None` when the space is larger than `limit`.
    pub fn new(space: &dyn Space, limit: usize, reward: impl Fn(&State) -> f64) -> Option<Self> {
        let states = space.enumerate(limit)?;
        let index: HashMap<State, usize> = states
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, s)| (s, i))
            .collect();
        let mut target: Vec<f64> = states
            .iter()
            .map(|s| if space.can_stop(s) { reward(s) } else { 0.0 })
            .collect();
        let z: f64 = target.iter().sum();
        let best = target.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let modes = (0..states.len())
            .filter(|&i| space.can_stop(&states[i]) && target[i] >= best * (1.0 - 1e-9))
            .collect();
        for t in &mut target {
            *t /= z;
        }
        Some(Self {
            states,
            index,
            target,
            modes,
            log_partition: z.ln(),
        })
    }

    /// `log Z` of the reward.
    pub fn log_partition(&self) -> f64 {
        self.log_partition
    }

    pub fn modes_total(&self) -> usize {
        self.modes.len()
    }

    /// Whether `x` is one of the mode states.
    pub fn is_mode(&self, x: &State) -> bool {
        self.index
            .get(x)
            .is_some_and(|i| self.modes.binary_search(i).is_ok())
    }

    /// The policy's exact terminal distribution, indexed like the enumeration.
    pub fn terminal_distribution(&self, gfn: &GflowNet) -> Result<Vec<f64>, GfnError> {
        let space = gfn.space().as_ref();
        let a = space.n_actions();
        let stop = space.stop_action();
        let mut probs = Vec::with_capacity(self.states.len() * a);
        // Chunks bound the memory of one forward pass on large spaces.
        for chunk in self.states.chunks(8192) {
            probs.extend(gfn.forward_probabilities(chunk)?);
        }
        let mut reach = vec![0f64; self.states.len()];
        reach[0] = 1.0;
        for (i, s) in self.states.iter().enumerate().skip(1) {
            reach[i] = space
                .parents(s)
                .iter()
                .filter_map(|(p, act)| self.index.get(p).map(|&j| reach[j] * probs[j * a + act]))
                .sum();
        }
        Ok(reach
            .iter()
            .enumerate()
            .map(|(i, u)| u * probs[i * a + stop])
            .collect())
    }

    /// Exact sum-L1 distance and mode coverage of the policy.
    pub fn evaluate(&self, gfn: &GflowNet) -> Result<ExactReport, GfnError> {
        let p = self.terminal_distribution(gfn)?;
        Ok(self.compare(&p))
    }

    /// Compares a terminal distribution (indexed like the enumeration) with the target.
    pub fn compare(&self, p: &[f64]) -> ExactReport {
        let l1 = p.iter().zip(&self.target).map(|(a, b)| (a - b).abs()).sum();
        let mass = p.iter().sum();
        let modes_covered = self
            .modes
            .iter()
            .filter(|&&i| p[i] >= 0.5 * self.target[i])
            .count();
        ExactReport {
            l1,
            mass,
            modes_covered,
            modes_total: self.modes.len(),
        }
    }

    /// Position of `x` in the enumeration.
    pub fn index_of(&self, x: &State) -> Option<usize> {
        self.index.get(x).copied()
    }

    pub fn states(&self) -> &[State] {
        &self.states
    }
}
