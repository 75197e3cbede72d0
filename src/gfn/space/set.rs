//! The `set` space: subsets of a fixed item list, built by adding one item at a time, that
//! may stop once they hold `min_size` items. A DAG: a set of `k` items has `k` parents, one
//! per item that could have been added last.
//!
//! A state is the indices of its items, sorted and strictly increasing, so every set has one
//! representation and membership is a binary search (no allocation in the hot loops).

use super::{enumerate_by_depth, log_sum_exp, InvalidAction, Space, SpecError, State, ValueError};
use rand::{Rng, RngCore};
use serde_json::Value;
use std::collections::HashMap;

/// Longest excerpt of a client's item echoed back in a [`ValueError`], in chars.
const EXCERPT_CHARS: usize = 64;

/// Subsets of `items` with `min_size..=max_size` elements (2..=4096 distinct
/// non-empty items, `0 <= min_size <= max_size <= items.len()`, `max_size >= 1`).
///
/// Forward action `i < items.len()` adds item `i`; the stop action is `items.len()`.
/// Backward action `i` removes item `i`.
#[derive(Debug, Clone)]
pub struct SetSpace {
    items: Vec<String>,
    min_size: usize,
    max_size: usize,
    /// Item text to index, for parsing.
    index: HashMap<String, u16>,
}

impl SetSpace {
    /// Validates the bounds of the protocol. Errors name the field: `items` (count, empty or
    /// duplicate items), `max_size` (outside `1..=items.len()`), `min_size` (above `max_size`).
    pub fn new(items: Vec<String>, min_size: usize, max_size: usize) -> Result<Self, SpecError> {
        if !(2..=4096).contains(&items.len()) {
            return Err(SpecError::new(
                "items",
                format!("{} items is outside 2..=4096", items.len()),
            ));
        }
        if let Some(i) = items.iter().position(|t| t.is_empty()) {
            return Err(SpecError::new("items", format!("item {i} is empty")));
        }
        // Values are stored as text, and PostgreSQL text cannot hold U+0000.
        if let Some(i) = items.iter().position(|t| t.contains('\0')) {
            return Err(SpecError::new("items", format!("item {i} contains U+0000")));
        }
        if let Some(i) = items.iter().position(|t| t.len() > super::MAX_SYMBOL_BYTES) {
            return Err(SpecError::new(
                "items",
                format!(
                    "item {i} has {} bytes; at most {} are allowed",
                    items[i].len(),
                    super::MAX_SYMBOL_BYTES
                ),
            ));
        }
        let mut index = HashMap::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if index.insert(item.clone(), i as u16).is_some() {
                return Err(SpecError::new(
                    "items",
                    format!("item {item:?} appears twice"),
                ));
            }
        }
        if !(1..=items.len()).contains(&max_size) {
            return Err(SpecError::new(
                "max_size",
                format!(
                    "{max_size} is outside 1..={} (the number of items)",
                    items.len()
                ),
            ));
        }
        if min_size > max_size {
            return Err(SpecError::new(
                "min_size",
                format!("{min_size} is outside 0..={max_size} (max_size)"),
            ));
        }
        Ok(Self {
            items,
            min_size,
            max_size,
            index,
        })
    }

    /// The items; item `i` is added by forward action `i`.
    pub fn items(&self) -> &[String] {
        &self.items
    }

    /// Fewest items of a terminal state (may be 0: the empty set is then a candidate).
    pub fn min_size(&self) -> usize {
        self.min_size
    }

    /// Most items of any state (at least 1).
    pub fn max_size(&self) -> usize {
        self.max_size
    }

    fn n_items(&self) -> usize {
        self.items.len()
    }

    fn invalid(s: &State, a: usize) -> InvalidAction {
        InvalidAction {
            action: a,
            state: s.clone(),
        }
    }
}

/// The first [`EXCERPT_CHARS`] chars of `text`, so errors stay short.
fn excerpt(text: &str) -> String {
    text.chars().take(EXCERPT_CHARS).collect()
}

impl Space for SetSpace {
    fn n_actions(&self) -> usize {
        self.n_items() + 1
    }

    fn initial(&self) -> State {
        State(Vec::new())
    }

    fn forward_mask(&self, s: &State, mask: &mut [bool]) {
        let n = self.n_items();
        let open = s.0.len() < self.max_size;
        mask[..n].fill(open);
        if open {
            for &i in &s.0 {
                mask[i as usize] = false;
            }
        }
        mask[n] = s.0.len() >= self.min_size;
    }

    fn step(&self, s: &State, a: usize) -> Result<State, InvalidAction> {
        if a >= self.n_items() || s.0.len() >= self.max_size {
            return Err(Self::invalid(s, a));
        }
        let Err(at) = s.0.binary_search(&(a as u16)) else {
            return Err(Self::invalid(s, a));
        };
        let mut c = Vec::with_capacity(s.0.len() + 1);
        c.extend_from_slice(&s.0[..at]);
        c.push(a as u16);
        c.extend_from_slice(&s.0[at..]);
        Ok(State(c))
    }

    fn backward_mask(&self, s: &State, mask: &mut [bool]) {
        mask.fill(false);
        for &i in &s.0 {
            if let Some(m) = mask.get_mut(i as usize) {
                *m = true;
            }
        }
    }

    fn backward_step(&self, s: &State, a: usize) -> Result<State, InvalidAction> {
        if a >= self.n_items() {
            return Err(Self::invalid(s, a));
        }
        let Ok(at) = s.0.binary_search(&(a as u16)) else {
            return Err(Self::invalid(s, a));
        };
        let mut p = Vec::with_capacity(s.0.len() - 1);
        p.extend_from_slice(&s.0[..at]);
        p.extend_from_slice(&s.0[at + 1..]);
        Ok(State(p))
    }

    fn parents(&self, s: &State) -> Vec<(State, usize)> {
        (0..s.0.len())
            .map(|at| {
                let mut p = s.0.clone();
                let item = p.remove(at);
                (State(p), item as usize)
            })
            .collect()
    }

    fn can_stop(&self, s: &State) -> bool {
        s.0.len() >= self.min_size
    }

    fn depth(&self, s: &State) -> usize {
        s.0.len()
    }

    fn max_depth(&self) -> usize {
        self.max_size
    }

    fn encoding_dim(&self) -> usize {
        self.n_items()
    }

    /// Binary indicator: `out[i]` is 1 when item `i` is in the set.
    fn encode_into(&self, s: &State, out: &mut [f32]) {
        for &i in &s.0 {
            out[i as usize] = 1.0;
        }
    }

    /// The items as a JSON array, in the order of `items`.
    fn to_value(&self, x: &State) -> Value {
        Value::Array(
            x.0.iter()
                .map(|&i| Value::String(self.items[i as usize].clone()))
                .collect(),
        )
    }

    /// Accepts a JSON array of items in any order and sorts it. The array's length is
    /// checked first, so an oversized value is rejected before its elements are read.
    fn parse_value(&self, value: &Value) -> Result<State, ValueError> {
        let elements = value.as_array().ok_or(ValueError::WrongType {
            expected: "an array of strings",
        })?;
        if !(self.min_size..=self.max_size).contains(&elements.len()) {
            return Err(ValueError::Length {
                length: elements.len(),
                min: self.min_size,
                max: self.max_size,
            });
        }
        let mut indices = Vec::with_capacity(elements.len());
        let mut seen = vec![false; self.n_items()];
        for (index, v) in elements.iter().enumerate() {
            let item = v.as_str().ok_or(ValueError::ElementType {
                index,
                expected: "a string",
            })?;
            let &i = self
                .index
                .get(item)
                .ok_or_else(|| ValueError::UnknownItem {
                    index,
                    found: excerpt(item),
                })?;
            if std::mem::replace(&mut seen[i as usize], true) {
                return Err(ValueError::DuplicateItem {
                    index,
                    found: excerpt(item),
                });
            }
            indices.push(i);
        }
        indices.sort_unstable();
        Ok(State(indices))
    }

    /// Jaccard distance `1 - |x ∩ y| / |x ∪ y|`, 0 when both are empty.
    fn distance(&self, x: &State, y: &State) -> f64 {
        let (mut i, mut j, mut common) = (0, 0, 0usize);
        while i < x.0.len() && j < y.0.len() {
            match x.0[i].cmp(&y.0[j]) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    common += 1;
                    i += 1;
                    j += 1;
                }
            }
        }
        let union = x.0.len() + y.0.len() - common;
        if union == 0 {
            0.0
        } else {
            1.0 - common as f64 / union as f64
        }
    }

    /// A set of one item has one parent, so the space is a tree exactly when `max_size` is 1.
    /// Swaps one member for a non-member (three times in five when a size change is also
    /// allowed), else adds or removes one item.
    fn mutate(&self, x: &State, rng: &mut dyn RngCore) -> State {
        let n = self.n_items();
        let k = x.0.len();
        let can_add = k < self.max_size && k < n;
        let can_remove = k > self.min_size;
        let can_swap = k > 0 && k < n;
        let mut members = x.0.clone();
        let outsider = |members: &[u16], rng: &mut dyn RngCore| -> u16 {
            // The j-th non-member, j uniform: walk the sorted members to skip them.
            let mut j = rng.random_range(0..n - members.len()) as u16;
            for &m in members {
                if m <= j {
                    j += 1;
                } else {
                    break;
                }
            }
            j
        };
        let resize = (can_add || can_remove) && (!can_swap || rng.random_bool(0.4));
        if !resize {
            if !can_swap {
                return x.clone();
            }
            let incoming = outsider(&members, rng);
            members.remove(rng.random_range(0..k));
            members.push(incoming);
        } else if can_add && (!can_remove || rng.random_bool(0.5)) {
            let incoming = outsider(&members, rng);
            members.push(incoming);
        } else {
            members.remove(rng.random_range(0..k));
        }
        members.sort_unstable();
        State(members)
    }

    /// Keeps the items both parents share, then fills up with a random choice of the items
    /// only one of them has, to a size drawn between the parents' sizes.
    fn crossover(&self, a: &State, b: &State, rng: &mut dyn RngCore) -> State {
        let (lo, hi) = (a.0.len().min(b.0.len()), a.0.len().max(b.0.len()));
        let size = rng.random_range(lo..=hi);
        let mut shared: Vec<u16> = a.0.iter().filter(|i| b.0.contains(i)).copied().collect();
        let mut either: Vec<u16> =
            a.0.iter()
                .chain(&b.0)
                .filter(|i| !shared.contains(i))
                .copied()
                .collect();
        shuffle(&mut shared, rng);
        shuffle(&mut either, rng);
        let mut child: Vec<u16> = shared.into_iter().chain(either).take(size).collect();
        child.sort_unstable();
        State(child)
    }

    /// At most one item swapped, added or removed: a symmetric difference of at most two.
    fn diameter(&self) -> f64 {
        1.0
    }

    fn near_duplicate(&self, x: &State, y: &State) -> bool {
        let common = x.0.iter().filter(|i| y.0.binary_search(i).is_ok()).count();
        x.0.len() + y.0.len() - 2 * common <= 2
    }

    fn is_tree(&self) -> bool {
        self.max_size == 1
    }

    /// `sum_{k=0}^{max_size} C(n_items, k)`, `None` past `u64::MAX`.
    fn n_states(&self) -> Option<u64> {
        let n = self.n_items() as u128;
        // C(n, k) = C(n, k - 1) * (n - k + 1) / k is exact; u128 holds the product while
        // C(n, k - 1) fits in u64 (n <= 4096).
        let mut term = 1u128;
        let mut total = 1u128;
        for k in 1..=self.max_size as u128 {
            term = term * (n - k + 1) / k;
            total += term;
            if total > u64::MAX as u128 {
                return None;
            }
        }
        u64::try_from(total).ok()
    }

    /// `ln sum_{k=min_size}^{max_size} C(n_items, k)`, with `ln C(n, k)` built up term by
    /// term (`C(n, k) = C(n, k - 1) (n - k + 1) / k`) and summed in log space.
    fn log_n_terminals(&self) -> f64 {
        let n = self.n_items() as f64;
        let mut ln_binomial = 0.0;
        let mut terms = Vec::with_capacity(self.max_size + 1);
        for k in 0..=self.max_size {
            if k > 0 {
                ln_binomial += (n - k as f64 + 1.0).ln() - (k as f64).ln();
            }
            if k >= self.min_size {
                terms.push(ln_binomial);
            }
        }
        log_sum_exp(terms.into_iter())
    }

    fn enumerate(&self, limit: usize) -> Option<Vec<State>> {
        enumerate_by_depth(self, limit)
    }
}

/// Fisher-Yates shuffle in place.
fn shuffle(items: &mut [u16], rng: &mut dyn RngCore) {
    for i in (1..items.len()).rev() {
        items.swap(i, rng.random_range(0..=i));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::grid::invariants;
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|t| t.to_string()).collect()
    }

    fn space(items: &[&str], min: usize, max: usize) -> SetSpace {
        SetSpace::new(strings(items), min, max).unwrap()
    }

    fn spec_error(items: &[&str], min: usize, max: usize) -> SpecError {
        SetSpace::new(strings(items), min, max).unwrap_err()
    }

    #[test]
    fn set_new_rejects_item_counts_outside_2_to_4096() {
        let err = spec_error(&["a"], 0, 1);
        assert_eq!(err.field, "items");
        assert!(err.reason.contains("1 items"), "{err}");
        let many: Vec<String> = (0..4097).map(|i| format!("i{i}")).collect();
        assert_eq!(SetSpace::new(many, 0, 1).unwrap_err().field, "items");
        let most: Vec<String> = (0..4096).map(|i| format!("i{i}")).collect();
        assert!(SetSpace::new(most, 0, 4096).is_ok());
    }

    #[test]
    fn set_new_rejects_empty_and_duplicate_items() {
        let err = spec_error(&["a", ""], 0, 1);
        assert_eq!(err.field, "items");
        assert!(err.reason.contains("item 1 is empty"), "{err}");
        let err = spec_error(&["a", "b", "a"], 0, 1);
        assert_eq!(err.field, "items");
        assert!(err.reason.contains("\"a\" appears twice"), "{err}");
    }

    #[test]
    fn set_new_rejects_sizes_outside_bounds() {
        let abc = ["a", "b", "c"];
        assert_eq!(spec_error(&abc, 0, 0).field, "max_size");
        let err = spec_error(&abc, 0, 4);
        assert_eq!(err.field, "max_size");
        assert!(err.reason.contains("1..=3"), "{err}");
        assert_eq!(spec_error(&abc, 3, 2).field, "min_size");
        assert!(SetSpace::new(strings(&abc), 3, 3).is_ok());
        assert!(SetSpace::new(strings(&abc), 0, 1).is_ok());
    }

    #[test]
    fn set_parse_rejects_values_that_are_not_arrays() {
        let s = space(&["a", "b"], 0, 2);
        for v in [json!("a"), json!(1), json!(null), json!({"a": true})] {
            assert_eq!(
                s.parse_value(&v),
                Err(ValueError::WrongType {
                    expected: "an array of strings"
                })
            );
        }
    }

    #[test]
    fn set_parse_rejects_non_string_elements_naming_the_index() {
        let s = space(&["a", "b", "c"], 0, 3);
        assert_eq!(
            s.parse_value(&json!(["a", 2])),
            Err(ValueError::ElementType {
                index: 1,
                expected: "a string"
            })
        );
    }

    #[test]
    fn set_parse_rejects_unknown_items_naming_the_index() {
        let s = space(&["a", "b", "c"], 0, 3);
        assert_eq!(
            s.parse_value(&json!(["b", "a", "z"])),
            Err(ValueError::UnknownItem {
                index: 2,
                found: "z".into()
            })
        );
        let long = "x".repeat(1000);
        match s.parse_value(&json!([long])) {
            Err(ValueError::UnknownItem { index: 0, found }) => {
                assert_eq!(found.len(), EXCERPT_CHARS)
            }
            other => panic!("expected UnknownItem, got {other:?}"),
        }
    }

    #[test]
    fn set_parse_rejects_duplicates_naming_the_second_index() {
        let s = space(&["a", "b", "c"], 0, 3);
        assert_eq!(
            s.parse_value(&json!(["b", "c", "b"])),
            Err(ValueError::DuplicateItem {
                index: 2,
                found: "b".into()
            })
        );
    }

    #[test]
    fn set_parse_rejects_sizes_outside_bounds() {
        let s = space(&["a", "b", "c", "d"], 1, 2);
        let length = |l| {
            Err(ValueError::Length {
                length: l,
                min: 1,
                max: 2,
            })
        };
        assert_eq!(s.parse_value(&json!([])), length(0));
        assert_eq!(s.parse_value(&json!(["a", "b", "c"])), length(3));
    }

    #[test]
    fn set_parse_accepts_any_order_and_to_value_sorts_as_in_items() {
        let s = space(&["zeta", "alpha", "mu"], 0, 3);
        let x = s.parse_value(&json!(["mu", "zeta"])).unwrap();
        assert_eq!(x, State(vec![0, 2]));
        assert_eq!(s.to_value(&x), json!(["zeta", "mu"]));
        assert_eq!(s.parse_value(&json!([])), Ok(State(vec![])));
    }

    #[test]
    fn set_forward_mask_hides_members_and_every_add_at_max_size() {
        let s = space(&["a", "b", "c", "d"], 1, 2);
        let mask = |st: &[u16]| {
            let mut m = vec![true; 5];
            s.forward_mask(&State(st.to_vec()), &mut m);
            m
        };
        assert_eq!(mask(&[]), [true, true, true, true, false]);
        assert_eq!(mask(&[2]), [true, true, false, true, true]);
        assert_eq!(mask(&[0, 3]), [false, false, false, false, true]);
    }

    #[test]
    fn set_step_and_backward_step_reject_invalid_actions() {
        let s = space(&["a", "b", "c", "d"], 0, 2);
        let x = State(vec![1]);
        assert_eq!(s.step(&x, 3), Ok(State(vec![1, 3])));
        assert_eq!(s.step(&x, 0), Ok(State(vec![0, 1])));
        assert_eq!(
            s.step(&x, 1),
            Err(InvalidAction {
                action: 1,
                state: x.clone()
            })
        );
        assert!(s.step(&x, 4).is_err());
        assert!(s.step(&State(vec![0, 1]), 2).is_err(), "full at max_size");
        assert_eq!(s.backward_step(&State(vec![0, 2]), 2), Ok(State(vec![0])));
        assert!(s.backward_step(&State(vec![0, 2]), 1).is_err());
        assert!(s.backward_step(&s.initial(), 0).is_err());
        let mut mask = vec![true; 4];
        s.backward_mask(&State(vec![0, 2]), &mut mask);
        assert_eq!(mask, [true, false, true, false]);
    }

    #[test]
    fn set_encoding_is_a_binary_indicator() {
        let s = space(&["a", "b", "c", "d"], 0, 4);
        let mut out = vec![0.0; s.encoding_dim()];
        s.encode_into(&State(vec![1, 3]), &mut out);
        assert_eq!(out, [0., 1., 0., 1.]);
    }

    #[test]
    fn set_distance_is_jaccard() {
        let s = space(&["a", "b", "c", "d"], 0, 4);
        let d = |x: &[u16], y: &[u16]| s.distance(&State(x.to_vec()), &State(y.to_vec()));
        assert_eq!(d(&[], &[]), 0.0);
        assert_eq!(d(&[], &[1]), 1.0);
        assert_eq!(d(&[0, 1], &[1, 2]), 1.0 - 1.0 / 3.0);
        assert_eq!(d(&[0, 1, 2], &[0, 1, 2]), 0.0);
        assert_eq!(d(&[0, 1], &[2, 3]), 1.0);
    }

    #[test]
    fn set_n_states_sums_binomials_and_reports_overflow() {
        assert_eq!(space(&["a", "b", "c", "d", "e"], 0, 2).n_states(), Some(16));
        assert_eq!(space(&["a", "b", "c", "d", "e"], 3, 5).n_states(), Some(32));
        let items = |n: usize| (0..n).map(|i| format!("i{i}")).collect::<Vec<_>>();
        assert_eq!(
            SetSpace::new(items(64), 0, 63).unwrap().n_states(),
            Some(u64::MAX)
        );
        assert_eq!(SetSpace::new(items(64), 0, 64).unwrap().n_states(), None);
        assert_eq!(
            SetSpace::new(items(4096), 0, 4096).unwrap().n_states(),
            None
        );
        assert_eq!(
            SetSpace::new(items(4096), 0, 2).unwrap().n_states(),
            Some(1 + 4096 + 4096 * 4095 / 2)
        );
    }

    #[test]
    fn set_is_a_tree_only_when_max_size_is_one() {
        assert!(space(&["a", "b", "c"], 0, 1).is_tree());
        assert!(!space(&["a", "b", "c"], 0, 2).is_tree());
    }

    fn space_strategy() -> impl Strategy<Value = SetSpace> {
        let items = prop::collection::btree_set("[a-zé]{1,3}", 2..=6)
            .prop_map(|set| set.into_iter().collect::<Vec<_>>())
            .prop_shuffle();
        (
            items,
            any::<prop::sample::Index>(),
            any::<prop::sample::Index>(),
        )
            .prop_map(|(items, max, min)| {
                let max = 1 + max.index(items.len());
                let min = min.index(max + 1);
                SetSpace::new(items, min, max).unwrap()
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        #[test]
        fn set_walks_keep_the_space_invariants(
            s in space_strategy(),
            forward in prop::collection::vec(any::<usize>(), 0..8),
            backward in prop::collection::vec(any::<usize>(), 0..8),
        ) {
            invariants::check_walks(&s, &forward, &backward);
        }

        #[test]
        fn set_small_spaces_enumerate_every_state_parents_first(s in space_strategy()) {
            invariants::check_enumerate(&s);
        }

        #[test]
        fn set_parse_canonicalises_any_order(
            s in space_strategy(),
            forward in prop::collection::vec(any::<usize>(), 0..8),
            seed in any::<u64>(),
        ) {
            let x = invariants::walk(&s, &forward).pop().unwrap();
            prop_assume!(s.can_stop(&x));
            let mut elements = s.to_value(&x).as_array().unwrap().clone();
            // A rotation by a seeded amount, plus a reversal on odd seeds.
            if !elements.is_empty() {
                let k = (seed as usize) % elements.len();
                elements.rotate_left(k);
            }
            if seed % 2 == 1 {
                elements.reverse();
            }
            prop_assert_eq!(s.parse_value(&Value::Array(elements)), Ok(x));
        }

        #[test]
        fn set_parse_rejects_an_unknown_or_repeated_item_at_its_index(
            s in space_strategy(),
            forward in prop::collection::vec(any::<usize>(), 0..8),
            at in any::<prop::sample::Index>(),
        ) {
            let x = invariants::walk(&s, &forward).pop().unwrap();
            prop_assume!(s.can_stop(&x));
            let elements = s.to_value(&x).as_array().unwrap().clone();
            let at = at.index(elements.len() + 1);
            let too_long = Err(ValueError::Length {
                length: elements.len() + 1,
                min: s.min_size(),
                max: s.max_size(),
            });
            let fits = elements.len() < s.max_size();

            let mut unknown = elements.clone();
            unknown.insert(at, json!("#"));
            let expected = if fits {
                Err(ValueError::UnknownItem { index: at, found: "#".into() })
            } else {
                too_long.clone()
            };
            prop_assert_eq!(s.parse_value(&Value::Array(unknown)), expected);

            if let Some(first) = elements.first() {
                let mut repeated = elements.clone();
                repeated.insert(at.max(1), first.clone());
                let expected = if fits {
                    Err(ValueError::DuplicateItem {
                        index: at.max(1),
                        found: first.as_str().unwrap().to_string(),
                    })
                } else {
                    too_long
                };
                prop_assert_eq!(s.parse_value(&Value::Array(repeated)), expected);
            }

            let mut shorter = elements;
            if shorter.pop().is_some() && shorter.len() < s.min_size() {
                prop_assert_eq!(
                    s.parse_value(&Value::Array(shorter.clone())),
                    Err(ValueError::Length {
                        length: shorter.len(),
                        min: s.min_size(),
                        max: s.max_size(),
                    })
                );
            }
        }
    }
}
