//! Candidate spaces: the DAGs a GFlowNet walks.
//!
//! A space owns the initial state, the forward actions (the stop action is always the last
//! index), the parents of a state, a fixed-size encoding for the networks, the canonical JSON
//! value of a terminal state with its parsing, and a distance for batch diversity.
//!
//! Every state is a [`State`], a short vector of `u16` codes whose meaning belongs to the
//! space (grid coordinates, sequence tokens, sorted set item indices). One concrete state
//! type keeps `dyn Space` usable by the service, which picks a space per campaign at run time.
//!
//! Backward actions are indexed like the forward move they undo: backward action `a` at `s`
//! leads to the parent `p` with `step(p, a) == s`. This holds for all three spaces and lets
//! the policy's backward head share the forward action indexing.
//!
//! Synchronous and pure: imports nothing from tokio, sqlx or axum.

mod grid;
mod sequence;
mod set;
mod token_code;

pub use grid::GridSpace;
pub use sequence::SequenceSpace;
pub use set::SetSpace;

use rand::RngCore;
use serde::{Deserialize, Serialize};

/// A state of a space: the codes whose meaning the space defines. Cheap to clone and hash.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct State(pub Vec<u16>);

/// Why a client-supplied value is not a terminal state of the space. Each variant names the
/// offending token or element, its position, and the bound it broke.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValueError {
    #[error("expected {expected}")]
    WrongType { expected: &'static str },
    #[error("unknown token at position {position}: {found:?}")]
    UnknownToken { position: usize, found: String },
    #[error("length {length} is outside [{min}, {max}]")]
    Length {
        length: usize,
        min: usize,
        max: usize,
    },
    #[error("element {index} is {value}, outside [0, {bound})")]
    OutOfRange {
        index: usize,
        value: String,
        bound: usize,
    },
    #[error("element {index} is not {expected}")]
    ElementType {
        index: usize,
        expected: &'static str,
    },
    #[error("unknown item at index {index}: {found:?}")]
    UnknownItem { index: usize, found: String },
    #[error("duplicate item at index {index}: {found:?}")]
    DuplicateItem { index: usize, found: String },
}

/// A space definition that is not allowed (the protocol's bounds).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("space.{field}: {reason}")]
pub struct SpecError {
    /// The offending field, e.g. `alphabet` or `size`.
    pub field: &'static str,
    pub reason: String,
}

impl SpecError {
    pub(crate) fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// An action that is not valid at a state, or a backward move at the initial state.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("action {action} is not valid at state {state:?}")]
pub struct InvalidAction {
    pub action: usize,
    pub state: State,
}

/// The space part of a campaign, as clients write it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SpaceSpec {
    /// Strings of tokens; a value is the tokens joined by the separator.
    Sequence {
        /// 2..=1024 distinct non-empty tokens; with an empty separator, a uniquely
        /// decodable code (no two different token sequences may spell the same text) whose
        /// tokens have at most 64 chars if one is a prefix of another.
        alphabet: Vec<String>,
        /// Fewest tokens, `1..=max_length`.
        min_length: usize,
        /// Most tokens, 1..=512.
        max_length: usize,
        /// Written between tokens (default empty); may not occur in a token.
        #[serde(default)]
        separator: String,
    },
    /// Points of a `size^dims` grid; a value is an array of `dims` integers in `[0, size)`.
    Grid {
        /// 1..=16.
        dims: usize,
        /// 2..=1024.
        size: usize,
    },
    /// Subsets of the items; a value is an array of items.
    Set {
        /// 2..=4096 distinct non-empty strings.
        items: Vec<String>,
        /// Fewest items, `0..=max_size`.
        min_size: usize,
        /// Most items, `1..=items.len()`.
        max_size: usize,
    },
}

impl SpaceSpec {
    /// Validates the bounds of the protocol and builds the space.
    pub fn build(&self) -> Result<Box<dyn Space>, SpecError> {
        Ok(match self {
            SpaceSpec::Sequence {
                alphabet,
                min_length,
                max_length,
                separator,
            } => Box::new(SequenceSpace::new(
                alphabet.clone(),
                *min_length,
                *max_length,
                separator.clone(),
            )?),
            SpaceSpec::Grid { dims, size } => Box::new(GridSpace::new(*dims, *size)?),
            SpaceSpec::Set {
                items,
                min_size,
                max_size,
            } => Box::new(SetSpace::new(items.clone(), *min_size, *max_size)?),
        })
    }
}

/// A candidate space: a DAG from one initial state, with a stop action.
///
/// Invariants every implementation keeps (the property tests check them):
/// - `forward_mask(s)[a]` is true exactly when `step(s, a)` succeeds (for non-stop `a`),
/// - every child `c = step(s, a)` lists `(s, a)` among `parents(c)`,
/// - `backward_mask(c)[a]` is true exactly when `(backward_step(c, a)?, a)` is a parent,
/// - walking backward from any state reaches `initial()`; every walk has the same length,
/// - `parse_value(&to_value(x)) == Ok(x)` for every terminal `x`.
pub trait Space: Send + Sync + std::fmt::Debug {
    /// Number of forward actions, the stop action (the last index) included.
    fn n_actions(&self) -> usize;

    /// Index of the stop action.
    fn stop_action(&self) -> usize {
        self.n_actions() - 1
    }

    /// The empty state every trajectory starts from.
    fn initial(&self) -> State;

    /// Writes into `mask` (length `n_actions()`) which forward actions are valid at `s`.
    fn forward_mask(&self, s: &State, mask: &mut [bool]);

    /// The child reached from `s` by the non-stop action `a`.
    fn step(&self, s: &State, a: usize) -> Result<State, InvalidAction>;

    /// Writes into `mask` (length `n_actions() - 1`) which forward moves lead into `s`:
    /// `mask[a]` is true when `s` has a parent `p` with `step(p, a) == s`.
    fn backward_mask(&self, s: &State, mask: &mut [bool]);

    /// The parent `p` of `s` with `step(p, a) == s`.
    fn backward_step(&self, s: &State, a: usize) -> Result<State, InvalidAction>;

    /// Every parent of `s`, each with the forward action that leads from it to `s`.
    fn parents(&self, s: &State) -> Vec<(State, usize)> {
        let mut mask = vec![false; self.n_actions() - 1];
        self.backward_mask(s, &mut mask);
        mask.iter()
            .enumerate()
            .filter(|(_, ok)| **ok)
            .filter_map(|(a, _)| self.backward_step(s, a).ok().map(|p| (p, a)))
            .collect()
    }

    /// Whether `s` may stop, i.e. is a terminal candidate.
    fn can_stop(&self, s: &State) -> bool {
        let mut mask = vec![false; self.n_actions()];
        self.forward_mask(s, &mut mask);
        mask[self.stop_action()]
    }

    /// Number of moves from the initial state to `s` (the same along every path).
    fn depth(&self, s: &State) -> usize;

    /// Largest number of non-stop moves in any trajectory.
    fn max_depth(&self) -> usize;

    /// Most codes any state holds (the length of its [`State`]): what a stored state costs.
    /// The default suits spaces whose moves each add at most one code to the initial state's.
    fn max_state_codes(&self) -> usize {
        self.initial().0.len() + self.max_depth()
    }

    /// Width of the encoding the networks read.
    fn encoding_dim(&self) -> usize;

    /// Writes the encoding of `s` into `out` (length `encoding_dim()`, zeroed by the caller).
    fn encode_into(&self, s: &State, out: &mut [f32]);

    /// Canonical JSON value of a terminal state.
    fn to_value(&self, x: &State) -> serde_json::Value;

    /// Parses and validates a client's value; only terminal states are accepted.
    fn parse_value(&self, value: &serde_json::Value) -> Result<State, ValueError>;

    /// Distance between two terminal states, used for batch diversity.
    fn distance(&self, x: &State, y: &State) -> f64;

    /// Whether `distance(x, y) >= d`. A batch's spacing rules only need this answer, and
    /// a space may give it for much less than the distance (a cheap lower bound first, a
    /// computation that stops once the answer is known); this default computes the
    /// distance.
    fn distance_at_least(&self, x: &State, y: &State, d: f64) -> bool {
        self.distance(x, y) >= d
    }

    /// Whether every state has exactly one parent (then `P_B` is fixed to 1).
    fn is_tree(&self) -> bool;

    /// Number of states reachable from the initial state, when it fits in `u64`.
    fn n_states(&self) -> Option<u64>;

    /// Natural log of the number of terminal states, finite however large the space (a
    /// 32-residue peptide space has about `e^96` terminals). Seeds the estimate of log Z.
    fn log_n_terminals(&self) -> f64;

    /// Every state reachable from the initial state, ordered by depth (parents before
    /// children), or `None` when there are more than `limit`.
    fn enumerate(&self, limit: usize) -> Option<Vec<State>>;

    /// A random terminal one elementary change away from the terminal `x` (a token
    /// substituted, inserted or deleted; an item swapped, added or removed; a coordinate
    /// moved), within the space's bounds. Local search around good candidates (the proposals
    /// of "local search GFlowNets" and genetic algorithms) is built on it. Returns `x`
    /// unchanged only when the space allows no change.
    fn mutate(&self, x: &State, rng: &mut dyn RngCore) -> State;

    /// A random terminal mixing the terminals `a` and `b` (one-point crossover of
    /// sequences, a subset of the union of sets, coordinates drawn from either parent).
    fn crossover(&self, a: &State, b: &State, rng: &mut dyn RngCore) -> State;

    /// Whether two terminals are at most one elementary change apart: what a batch avoids by
    /// default, since measuring both tells the lab little more than measuring one.
    fn near_duplicate(&self, x: &State, y: &State) -> bool;

    /// The largest distance between two terminals (or a bound on it): the scale against
    /// which a batch's spread is measured.
    fn diameter(&self) -> f64;
}

/// Encodes a batch of states into a row-major `[states.len(), encoding_dim]` buffer.
pub fn encode_batch(space: &dyn Space, states: &[State]) -> Vec<f32> {
    let dim = space.encoding_dim();
    let mut out = vec![0f32; states.len() * dim];
    for (s, row) in states.iter().zip(out.chunks_mut(dim.max(1))) {
        space.encode_into(s, row);
    }
    out
}

/// `ln(sum_i exp(terms_i))` without overflow: the largest term is factored out.
pub(crate) fn log_sum_exp(terms: impl Iterator<Item = f64> + Clone) -> f64 {
    let max = terms.clone().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return max;
    }
    max + terms.map(|t| (t - max).exp()).sum::<f64>().ln()
}

/// Longest token, set item or separator, in bytes: one of them appears in every stored value,
/// and a value must stay small.
pub const MAX_SYMBOL_BYTES: usize = 256;

/// Breadth-first enumeration shared by the spaces: all states by depth, deduplicated,
/// `None` as soon as more than `limit` states are found (memory and time stay bounded by
/// `limit`, whatever the space). Depth-ordering holds because every move adds exactly one to depth.
pub(crate) fn enumerate_by_depth(space: &dyn Space, limit: usize) -> Option<Vec<State>> {
    if let Some(n) = space.n_states() {
        if n > limit as u64 {
            return None;
        }
    }
    let mut all = vec![space.initial()];
    let mut frontier = vec![space.initial()];
    let mut mask = vec![false; space.n_actions()];
    while !frontier.is_empty() {
        let mut next = std::collections::BTreeSet::new();
        for s in &frontier {
            space.forward_mask(s, &mut mask);
            for (a, ok) in mask[..space.stop_action()].iter().enumerate() {
                if *ok {
                    if let Ok(c) = space.step(s, a) {
                        next.insert(c);
                        // Checked while the level grows: a level can be far larger than
                        // `limit` (a billion states), and building it first would not end.
                        if all.len() + next.len() > limit {
                            return None;
                        }
                    }
                }
            }
        }
        frontier = next.into_iter().collect();
        all.extend(frontier.iter().cloned());
        if all.len() > limit {
            return None;
        }
    }
    Some(all)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod local_search_tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn spaces() -> Vec<Box<dyn Space>> {
        let letters = |n: usize| (0..n).map(|i| format!("t{i}")).collect::<Vec<_>>();
        vec![
            Box::new(SequenceSpace::new(letters(4), 2, 6, "-".into()).expect("sequence")),
            Box::new(SequenceSpace::new(letters(3), 5, 5, String::new()).expect("fixed")),
            Box::new(SetSpace::new(letters(7), 1, 4).expect("set")),
            Box::new(SetSpace::new(letters(5), 2, 2).expect("fixed-size set")),
            Box::new(GridSpace::new(3, 5).expect("grid")),
        ]
    }

    fn terminals(space: &dyn Space) -> Vec<State> {
        let all = space.enumerate(1_000_000).expect("small space");
        all.into_iter().filter(|s| space.can_stop(s)).collect()
    }

    fn is_valid_terminal(space: &dyn Space, x: &State) -> bool {
        space.can_stop(x) && space.parse_value(&space.to_value(x)).as_ref() == Ok(x)
    }

    #[test]
    fn mutation_gives_a_different_valid_terminal() {
        let mut rng = StdRng::seed_from_u64(11);
        for space in spaces() {
            let xs = terminals(space.as_ref());
            for _ in 0..500 {
                let x = &xs[rng.random_range(0..xs.len())];
                let m = space.mutate(x, &mut rng);
                assert!(is_valid_terminal(space.as_ref(), &m), "{space:?}: {m:?}");
                assert_ne!(&m, x, "{space:?}");
            }
        }
    }

    #[test]
    fn mutation_of_sequences_and_sets_is_one_elementary_change() {
        let mut rng = StdRng::seed_from_u64(12);
        for space in spaces().into_iter().take(4) {
            let xs = terminals(space.as_ref());
            for _ in 0..300 {
                let x = &xs[rng.random_range(0..xs.len())];
                let m = space.mutate(x, &mut rng);
                assert!(space.near_duplicate(x, &m), "{space:?}: {x:?} -> {m:?}");
            }
        }
    }

    #[test]
    fn crossover_gives_valid_terminals_made_of_the_parents() {
        let mut rng = StdRng::seed_from_u64(13);
        for (kind, space) in spaces().into_iter().enumerate() {
            let xs = terminals(space.as_ref());
            for _ in 0..500 {
                let a = &xs[rng.random_range(0..xs.len())];
                let b = &xs[rng.random_range(0..xs.len())];
                let c = space.crossover(a, b, &mut rng);
                assert!(is_valid_terminal(space.as_ref(), &c), "{space:?}: {c:?}");
                // Every part of the child comes from one of the parents: positions of
                // sequences and grids, items of sets (kinds 2 and 3).
                let from_parents = if (2..4).contains(&kind) {
                    c.0.iter().all(|i| a.0.contains(i) || b.0.contains(i))
                } else {
                    c.0.iter()
                        .enumerate()
                        .all(|(i, t)| a.0.get(i) == Some(t) || b.0.get(i) == Some(t))
                };
                assert!(from_parents, "{space:?}: {a:?} x {b:?} -> {c:?}");
            }
        }
    }

    #[test]
    fn crossover_of_a_terminal_with_itself_is_that_terminal() {
        let mut rng = StdRng::seed_from_u64(14);
        for space in spaces() {
            for x in terminals(space.as_ref()).iter().take(50) {
                assert_eq!(&space.crossover(x, x, &mut rng), x, "{space:?}");
            }
        }
    }

    #[test]
    fn log_n_terminals_counts_the_enumerated_terminals() {
        for space in spaces() {
            let n = terminals(space.as_ref()).len() as f64;
            let got = space.log_n_terminals();
            assert!((got - n.ln()).abs() < 1e-9, "{space:?}: {got} vs ln {n}");
        }
    }

    #[test]
    fn log_n_terminals_stays_finite_on_spaces_past_f64() {
        // 20 tokens, lengths 1..=300: sum_L 20^L = 20 (20^300 - 1) / 19, about e^899, which
        // overflows f64 if summed directly; the closed form's log is computed by hand here.
        let tokens: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
        let seq = SequenceSpace::new(tokens, 1, 300, "-".into()).expect("sequence");
        let expected = 300.0 * 20f64.ln() + (20.0f64 / 19.0).ln();
        assert!((seq.log_n_terminals() - expected).abs() < 1e-9);
        // All subsets of 2000 items: 2^2000 terminals.
        let items: Vec<String> = (0..2000).map(|i| format!("i{i}")).collect();
        let set = SetSpace::new(items, 0, 2000).expect("set");
        assert!((set.log_n_terminals() - 2000.0 * 2f64.ln()).abs() < 1e-6);
        let grid = GridSpace::new(16, 1024).expect("grid");
        assert!((grid.log_n_terminals() - 16.0 * 1024f64.ln()).abs() < 1e-9);
    }

    #[test]
    fn near_duplicates_are_one_change_apart() {
        let seq = SequenceSpace::new(vec!["a".into(), "b".into()], 1, 4, String::new())
            .expect("sequence");
        let s = |v: &[u16]| State(v.to_vec());
        assert!(seq.near_duplicate(&s(&[0, 1, 0]), &s(&[0, 0, 0])));
        assert!(seq.near_duplicate(&s(&[0, 1, 0]), &s(&[0, 1, 0, 1])));
        assert!(!seq.near_duplicate(&s(&[0, 1, 0]), &s(&[1, 0, 0])));
        let set = SetSpace::new((0..6).map(|i| i.to_string()).collect(), 1, 6).expect("set");
        assert!(set.near_duplicate(&s(&[0, 1, 2]), &s(&[0, 1, 3])));
        assert!(set.near_duplicate(&s(&[0, 1, 2]), &s(&[0, 1])));
        assert!(!set.near_duplicate(&s(&[0, 1, 2]), &s(&[0, 4, 5])));
        let grid = GridSpace::new(2, 4).expect("grid");
        assert!(grid.near_duplicate(&s(&[1, 1]), &s(&[1, 2])));
        assert!(!grid.near_duplicate(&s(&[1, 1]), &s(&[2, 2])));
    }
}
