//! The `grid` space: `dims` coordinates in `[0, size)`, starting at the origin; a move
//! increments one coordinate, and any state may stop. The DAG of the HyperGrid benchmark.

use super::{enumerate_by_depth, InvalidAction, Space, SpecError, State, ValueError};
use rand::{Rng, RngCore};
use serde_json::Value;

/// A `dims`-dimensional grid of side `size` (dims 1..=16, size 2..=1024).
#[derive(Debug, Clone)]
pub struct GridSpace {
    dims: usize,
    size: usize,
}

impl GridSpace {
    /// Validates the bounds and builds the space.
    pub fn new(dims: usize, size: usize) -> Result<Self, SpecError> {
        if !(1..=16).contains(&dims) {
            return Err(SpecError::new("dims", format!("{dims} is outside 1..=16")));
        }
        if !(2..=1024).contains(&size) {
            return Err(SpecError::new(
                "size",
                format!("{size} is outside 2..=1024"),
            ));
        }
        Ok(Self { dims, size })
    }

    /// Number of coordinates (1..=16).
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// Side of the grid: every coordinate lies in `[0, size)` (2..=1024).
    pub fn size(&self) -> usize {
        self.size
    }

    fn check(&self, s: &State, a: usize) -> Result<(), InvalidAction> {
        if a < self.dims && s.0.len() == self.dims {
            Ok(())
        } else {
            Err(InvalidAction {
                action: a,
                state: s.clone(),
            })
        }
    }
}

impl Space for GridSpace {
    fn n_actions(&self) -> usize {
        self.dims + 1
    }

    fn initial(&self) -> State {
        State(vec![0; self.dims])
    }

    fn forward_mask(&self, s: &State, mask: &mut [bool]) {
        for (m, &c) in mask.iter_mut().zip(&s.0) {
            *m = (c as usize) + 1 < self.size;
        }
        mask[self.dims] = true;
    }

    fn step(&self, s: &State, a: usize) -> Result<State, InvalidAction> {
        self.check(s, a)?;
        if (s.0[a] as usize) + 1 >= self.size {
            return Err(InvalidAction {
                action: a,
                state: s.clone(),
            });
        }
        let mut c = s.clone();
        c.0[a] += 1;
        Ok(c)
    }

    fn backward_mask(&self, s: &State, mask: &mut [bool]) {
        for (m, &c) in mask.iter_mut().zip(&s.0) {
            *m = c > 0;
        }
    }

    fn backward_step(&self, s: &State, a: usize) -> Result<State, InvalidAction> {
        self.check(s, a)?;
        if s.0[a] == 0 {
            return Err(InvalidAction {
                action: a,
                state: s.clone(),
            });
        }
        let mut p = s.clone();
        p.0[a] -= 1;
        Ok(p)
    }

    fn can_stop(&self, _s: &State) -> bool {
        true
    }

    fn depth(&self, s: &State) -> usize {
        s.0.iter().map(|&c| c as usize).sum()
    }

    fn max_depth(&self) -> usize {
        self.dims * (self.size - 1)
    }

    /// A point is its `dims` coordinates, however far it is from the origin.
    fn max_state_codes(&self) -> usize {
        self.dims
    }

    fn encoding_dim(&self) -> usize {
        self.dims * self.size
    }

    /// One-hot per coordinate (the "K-hot" encoding of the HyperGrid papers).
    fn encode_into(&self, s: &State, out: &mut [f32]) {
        for (d, &c) in s.0.iter().enumerate() {
            out[d * self.size + c as usize] = 1.0;
        }
    }

    fn to_value(&self, x: &State) -> Value {
        Value::Array(x.0.iter().map(|&c| Value::from(c)).collect())
    }

    fn parse_value(&self, value: &Value) -> Result<State, ValueError> {
        let items = value.as_array().ok_or(ValueError::WrongType {
            expected: "an array of integers",
        })?;
        if items.len() != self.dims {
            return Err(ValueError::Length {
                length: items.len(),
                min: self.dims,
                max: self.dims,
            });
        }
        let mut coords = Vec::with_capacity(self.dims);
        for (index, v) in items.iter().enumerate() {
            let Some(n) = v
                .as_i64()
                .or_else(|| v.as_u64().map(|u| u.min(i64::MAX as u64) as i64))
            else {
                return Err(ValueError::ElementType {
                    index,
                    expected: "an integer",
                });
            };
            if n < 0 || n as usize >= self.size {
                return Err(ValueError::OutOfRange {
                    index,
                    value: n.to_string(),
                    bound: self.size,
                });
            }
            coords.push(n as u16);
        }
        Ok(State(coords))
    }

    fn distance(&self, x: &State, y: &State) -> f64 {
        x.0.iter()
            .zip(&y.0)
            .map(|(&a, &b)| (a as f64 - b as f64).abs())
            .sum()
    }

    /// Moves one coordinate: by one step, or (one time in four) to a uniformly drawn other
    /// value, so local search can also jump along an axis.
    fn mutate(&self, x: &State, rng: &mut dyn RngCore) -> State {
        let mut coords = x.0.clone();
        if coords.is_empty() {
            return x.clone();
        }
        let d = rng.random_range(0..coords.len());
        let size = self.size as u16;
        let current = coords[d];
        coords[d] = if rng.random_bool(0.25) {
            let mut v = rng.random_range(0..size - 1);
            if v >= current {
                v += 1;
            }
            v
        } else if current == 0 || (current + 1 < size && rng.random_bool(0.5)) {
            current + 1
        } else {
            current - 1
        };
        State(coords)
    }

    /// Each coordinate from either parent.
    fn crossover(&self, a: &State, b: &State, rng: &mut dyn RngCore) -> State {
        State(
            a.0.iter()
                .zip(&b.0)
                .map(|(&u, &v)| if rng.random_bool(0.5) { u } else { v })
                .collect(),
        )
    }

    /// One unit step apart along one axis.
    fn diameter(&self) -> f64 {
        (self.dims * (self.size - 1)) as f64
    }

    fn near_duplicate(&self, x: &State, y: &State) -> bool {
        self.distance(x, y) <= 1.0
    }

    fn is_tree(&self) -> bool {
        self.dims == 1
    }

    fn n_states(&self) -> Option<u64> {
        (self.size as u64).checked_pow(self.dims as u32)
    }

    /// Every state is terminal: `dims * ln(size)`.
    fn log_n_terminals(&self) -> f64 {
        self.dims as f64 * (self.size as f64).ln()
    }

    fn enumerate(&self, limit: usize) -> Option<Vec<State>> {
        enumerate_by_depth(self, limit)
    }
}

/// Checks of the [`Space`] invariants along walks, shared by the property tests of every
/// space (the trait doc lists the invariants).
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(super) mod invariants {
    use super::super::{Space, State};

    /// Largest space `check_enumerate` enumerates in full.
    const ENUMERATE_UP_TO: u64 = 5_000;

    /// The states of a forward walk from `initial()`: at each step the valid non-stop action
    /// `valid[choice % valid.len()]`, until the choices run out or no move is valid.
    pub(crate) fn walk(space: &dyn Space, choices: &[usize]) -> Vec<State> {
        let mut path = vec![space.initial()];
        let mut mask = vec![false; space.n_actions()];
        for &choice in choices {
            let s = path.last().unwrap();
            space.forward_mask(s, &mut mask);
            let valid: Vec<usize> = (0..space.stop_action()).filter(|&a| mask[a]).collect();
            if valid.is_empty() {
                break;
            }
            let child = space.step(s, valid[choice % valid.len()]).unwrap();
            path.push(child);
        }
        path
    }

    /// Walks forward by `forward`, checks every state on the way, walks back from the last
    /// state by `backward`, and checks values and distances of the states reached.
    pub(crate) fn check_walks(space: &dyn Space, forward: &[usize], backward: &[usize]) {
        let path = walk(space, forward);
        for s in &path {
            check_state(space, s);
        }
        check_walk_back(space, path.last().unwrap(), backward);
        for x in &path {
            if space.can_stop(x) {
                assert_eq!(
                    space.parse_value(&space.to_value(x)),
                    Ok(x.clone()),
                    "{x:?}"
                );
            }
            for y in &path {
                let d = space.distance(x, y);
                assert!(d.is_finite() && d >= 0.0, "distance({x:?}, {y:?}) = {d}");
                assert_eq!(d, space.distance(y, x), "asymmetric at {x:?}, {y:?}");
                assert_eq!(d == 0.0, x == y, "distance({x:?}, {y:?}) = {d}");
            }
        }
    }

    /// The local invariants at `s`: masks agree with `step`, `backward_step` and `parents`,
    /// masks are written in full, depth grows by one per move, encodings tell moves apart.
    pub(crate) fn check_state(space: &dyn Space, s: &State) {
        let n = space.n_actions();
        let stop = space.stop_action();
        assert_eq!(stop, n - 1);

        let mut mask = vec![false; n];
        space.forward_mask(s, &mut mask);
        let mut reused = vec![true; n];
        space.forward_mask(s, &mut reused);
        assert_eq!(mask, reused, "forward_mask must write every entry at {s:?}");
        assert_eq!(space.can_stop(s), mask[stop], "can_stop at {s:?}");
        assert!(space.step(s, stop).is_err(), "stop is not a move");
        assert!(space.step(s, n).is_err(), "action {n} is out of range");

        let encode = |x: &State| {
            let mut out = vec![0f32; space.encoding_dim()];
            space.encode_into(x, &mut out);
            out
        };
        let encoding = encode(s);
        assert!(encoding.iter().all(|v| v.is_finite()));
        for (a, &valid) in mask[..stop].iter().enumerate() {
            let child = space.step(s, a);
            assert_eq!(child.is_ok(), valid, "forward_mask[{a}] vs step at {s:?}");
            if let Ok(c) = child {
                assert!(
                    space.parents(&c).contains(&(s.clone(), a)),
                    "({s:?}, {a}) missing from parents({c:?})"
                );
                assert_eq!(space.backward_step(&c, a), Ok(s.clone()));
                assert_eq!(space.depth(&c), space.depth(s) + 1);
                assert_ne!(encode(&c), encoding, "{c:?} encodes like its parent {s:?}");
            }
        }

        let mut back = vec![false; stop];
        space.backward_mask(s, &mut back);
        let mut reused = vec![true; stop];
        space.backward_mask(s, &mut reused);
        assert_eq!(
            back, reused,
            "backward_mask must write every entry at {s:?}"
        );
        let parents = space.parents(s);
        for (a, &valid) in back.iter().enumerate() {
            match space.backward_step(s, a) {
                Ok(p) => {
                    assert!(valid, "backward_step({s:?}, {a}) succeeds but is masked");
                    assert_eq!(space.step(&p, a), Ok(s.clone()));
                    assert!(parents.contains(&(p, a)), "parents({s:?}) lacks action {a}");
                }
                Err(_) => assert!(!valid, "backward_mask[{a}] set at {s:?} but step fails"),
            }
        }
        assert!(space.backward_step(s, stop).is_err(), "stop is not a move");
        assert_eq!(parents.len(), back.iter().filter(|v| **v).count());

        assert!(space.depth(s) <= space.max_depth());
        if *s == space.initial() {
            assert!(parents.is_empty());
            assert_eq!(space.depth(s), 0);
        } else if space.is_tree() {
            assert_eq!(parents.len(), 1, "a tree state has one parent: {s:?}");
        } else {
            assert!(!parents.is_empty(), "{s:?} has no parent");
        }
    }

    /// Walking backward from `s` by any valid actions reaches `initial()` in `depth(s)` steps.
    pub(crate) fn check_walk_back(space: &dyn Space, s: &State, choices: &[usize]) {
        let initial = space.initial();
        let mut mask = vec![false; space.stop_action()];
        let mut cur = s.clone();
        let mut steps = 0;
        while cur != initial {
            assert!(steps < space.depth(s), "walk back from {s:?} is too long");
            space.backward_mask(&cur, &mut mask);
            let valid: Vec<usize> = (0..mask.len()).filter(|&a| mask[a]).collect();
            assert!(!valid.is_empty(), "{cur:?} has no backward move");
            let choice = choices.get(steps).copied().unwrap_or(steps);
            cur = space
                .backward_step(&cur, valid[choice % valid.len()])
                .unwrap();
            steps += 1;
        }
        assert_eq!(steps, space.depth(s));
    }

    /// For a small space, `enumerate` lists `n_states()` distinct states, each after all of
    /// its parents, and refuses a limit one short.
    pub(crate) fn check_enumerate(space: &dyn Space) {
        let Some(n) = space.n_states().filter(|&n| n <= ENUMERATE_UP_TO) else {
            return;
        };
        let n = n as usize;
        let all = space.enumerate(n).expect("a small space enumerates");
        assert_eq!(all.len(), n);
        assert_eq!(all[0], space.initial());
        let position: std::collections::HashMap<&State, usize> =
            all.iter().enumerate().map(|(i, s)| (s, i)).collect();
        assert_eq!(position.len(), n, "enumerate repeats a state");
        for (i, s) in all.iter().enumerate() {
            for (p, _) in space.parents(s) {
                assert!(position[&p] < i, "parent {p:?} listed after {s:?}");
            }
        }
        assert_eq!(space.enumerate(n - 1), None);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn grid_new_rejects_dims_and_size_outside_bounds() {
        assert_eq!(GridSpace::new(0, 4).unwrap_err().field, "dims");
        assert_eq!(GridSpace::new(17, 4).unwrap_err().field, "dims");
        assert_eq!(GridSpace::new(2, 1).unwrap_err().field, "size");
        assert_eq!(GridSpace::new(2, 1025).unwrap_err().field, "size");
        assert!(GridSpace::new(16, 1024).is_ok());
    }

    #[test]
    fn grid_parse_rejects_values_that_are_not_arrays() {
        let g = GridSpace::new(2, 4).unwrap();
        for v in [json!("1,2"), json!(3), json!({"x": 1}), json!(null)] {
            assert_eq!(
                g.parse_value(&v),
                Err(ValueError::WrongType {
                    expected: "an array of integers"
                })
            );
        }
    }

    #[test]
    fn grid_parse_rejects_a_wrong_number_of_coordinates() {
        let g = GridSpace::new(2, 4).unwrap();
        let length = |l| {
            Err(ValueError::Length {
                length: l,
                min: 2,
                max: 2,
            })
        };
        assert_eq!(g.parse_value(&json!([1])), length(1));
        assert_eq!(g.parse_value(&json!([1, 2, 3])), length(3));
    }

    #[test]
    fn grid_parse_rejects_non_integer_coordinates_naming_the_index() {
        let g = GridSpace::new(3, 4).unwrap();
        for bad in [json!(1.5), json!("1"), json!(null), json!(1.0)] {
            assert_eq!(
                g.parse_value(&json!([0, 1, bad])),
                Err(ValueError::ElementType {
                    index: 2,
                    expected: "an integer"
                })
            );
        }
    }

    #[test]
    fn grid_parse_rejects_coordinates_outside_the_grid_naming_the_index_and_bound() {
        let g = GridSpace::new(2, 4).unwrap();
        assert_eq!(
            g.parse_value(&json!([0, 4])),
            Err(ValueError::OutOfRange {
                index: 1,
                value: "4".into(),
                bound: 4
            })
        );
        assert_eq!(
            g.parse_value(&json!([-1, 0])),
            Err(ValueError::OutOfRange {
                index: 0,
                value: "-1".into(),
                bound: 4
            })
        );
        assert!(matches!(
            g.parse_value(&json!([u64::MAX, 0])),
            Err(ValueError::OutOfRange {
                index: 0,
                bound: 4,
                ..
            })
        ));
        assert_eq!(g.parse_value(&json!([3, 0])), Ok(State(vec![3, 0])));
    }

    #[test]
    fn grid_moves_stop_at_the_edge_and_never_below_zero() {
        let g = GridSpace::new(2, 3).unwrap();
        let edge = State(vec![2, 0]);
        let mut mask = vec![false; 3];
        g.forward_mask(&edge, &mut mask);
        assert_eq!(mask, [false, true, true]);
        assert!(g.step(&edge, 0).is_err());
        assert_eq!(g.step(&edge, 1), Ok(State(vec![2, 1])));
        assert!(g.backward_step(&edge, 1).is_err());
        assert_eq!(g.backward_step(&edge, 0), Ok(State(vec![1, 0])));
    }

    #[test]
    fn grid_distance_is_l1() {
        let g = GridSpace::new(3, 8).unwrap();
        assert_eq!(
            g.distance(&State(vec![0, 5, 2]), &State(vec![3, 1, 2])),
            7.0
        );
    }

    #[test]
    fn grid_n_states_is_size_to_the_dims_and_reports_overflow() {
        assert_eq!(GridSpace::new(3, 4).unwrap().n_states(), Some(64));
        assert_eq!(GridSpace::new(16, 1024).unwrap().n_states(), None);
    }

    #[test]
    fn grid_is_a_tree_only_in_one_dimension() {
        assert!(GridSpace::new(1, 5).unwrap().is_tree());
        assert!(!GridSpace::new(2, 5).unwrap().is_tree());
    }

    fn space_strategy() -> impl Strategy<Value = GridSpace> {
        (1usize..=3, 2usize..=5).prop_map(|(dims, size)| GridSpace::new(dims, size).unwrap())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        #[test]
        fn grid_walks_keep_the_space_invariants(
            g in space_strategy(),
            forward in prop::collection::vec(any::<usize>(), 0..12),
            backward in prop::collection::vec(any::<usize>(), 0..12),
        ) {
            invariants::check_walks(&g, &forward, &backward);
        }

        #[test]
        fn grid_small_spaces_enumerate_every_state_parents_first(g in space_strategy()) {
            invariants::check_enumerate(&g);
        }

        #[test]
        fn grid_parse_rejects_a_coordinate_equal_to_size_or_a_wrong_length(
            g in space_strategy(),
            forward in prop::collection::vec(any::<usize>(), 0..12),
            at in any::<prop::sample::Index>(),
        ) {
            let x = invariants::walk(&g, &forward).pop().unwrap();
            let at = at.index(g.dims());
            let mut coords: Vec<Value> = x.0.iter().map(|&c| json!(c)).collect();
            coords[at] = json!(g.size());
            prop_assert_eq!(
                g.parse_value(&Value::Array(coords.clone())),
                Err(ValueError::OutOfRange { index: at, value: g.size().to_string(), bound: g.size() })
            );
            coords.push(json!(0));
            prop_assert_eq!(
                g.parse_value(&Value::Array(coords)),
                Err(ValueError::Length { length: g.dims() + 1, min: g.dims(), max: g.dims() })
            );
        }
    }
}
