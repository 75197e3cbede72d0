//! The inputs of the surrogate's networks. The space's own encoding (one-hot per position
//! for sequences, an indicator per item for sets) lets a network learn position-specific
//! effects, but a motif that scores wherever it sits, or a residue class that matters by how
//! often it occurs, has to be learned once per position from few labels. Counting features
//! state those directly:
//!
//! - sequences: token composition (how often each token occurs) and counts of every 2-mer
//!   and 3-mer (contiguous), wherever they occur;
//! - sets: the set's size, every pair of items and (for small sets) every triple, which are
//!   the interactions (synergies, incompatibilities) a sum of per-item effects cannot show.
//!
//! Counts are fed as `ln(1 + count)`, so they stay on the scale of the one-hot inputs. Each
//! block has a bounded width: a block with more possible values than [`BUCKETS`] (a 3-mer
//! over 20 tokens, a pair over 4096 items) is hashed into [`BUCKETS`] buckets, so the inputs
//! stay a few thousand wide even for an alphabet of 1024 tokens and 512 positions.
//!
//! The space's layout (token count and length, or item count) is read off the public
//! contract of [`Space`] when a proxy is fit, and stored in the proxy's checkpoint
//! metadata together with the chosen [`FeatureSet`], so a checkpoint computes the same
//! inputs when it is loaded.

pub use crate::domain::campaign::FeatureSet;
use crate::gfn::space::encode_batch;
use crate::gfn::{Space, State};
use serde::{Deserialize, Serialize};

/// Widest that one block of counting features gets; more possible values are hashed.
pub const BUCKETS: usize = 1024;

/// Sets of at most this many items get pair features (a set of 128 holds 8128 pairs).
const MAX_SET_FOR_PAIRS: usize = 128;
/// Sets of at most this many items get triple features (a set of 16 holds 560 triples).
const MAX_SET_FOR_TRIPLES: usize = 16;

/// The shape of a space as far as the features need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// Strings of `tokens` distinct tokens, at most `max_length` long.
    Sequence { tokens: usize, max_length: usize },
    /// Subsets of `items` items, at most `max_size` of them.
    Set { items: usize, max_size: usize },
    /// Anything else (grids): only the encoding is used.
    Other,
}

impl Layout {
    /// Reads the layout off a space. A sequence space is the one whose values are strings,
    /// with one action per token plus stop and an encoding of one `tokens`-wide block per
    /// position; a set space is the one whose values are arrays, with one action per item
    /// plus stop and one input per item.
    pub fn of(space: &dyn Space) -> Self {
        let actions = space.n_actions().saturating_sub(1);
        let dim = space.encoding_dim();
        let depth = space.max_depth();
        match space.to_value(&space.initial()) {
            serde_json::Value::String(_) if actions > 0 && dim == actions * depth => {
                Layout::Sequence {
                    tokens: actions,
                    max_length: depth,
                }
            }
            serde_json::Value::Array(a) if a.is_empty() && actions > 0 && dim == actions => {
                Layout::Set {
                    items: actions,
                    max_size: depth,
                }
            }
            _ => Layout::Other,
        }
    }
}

/// How a proxy turns candidates into network inputs; stored with its checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureMap {
    pub features: FeatureSet,
    pub layout: Layout,
    /// Width of the space's encoding.
    pub encoding_dim: usize,
}

/// A block of counting features: `width` inputs, indexed directly when every possible
/// value has its own input, hashed otherwise.
#[derive(Debug, Clone, Copy)]
struct Block {
    width: usize,
    direct: bool,
}

impl Block {
    /// A block for `values` possible values (`None`: more than `usize` holds).
    fn new(values: Option<usize>) -> Self {
        match values {
            Some(v) if v <= BUCKETS => Block {
                width: v.max(1),
                direct: true,
            },
            _ => Block {
                width: BUCKETS,
                direct: false,
            },
        }
    }

    /// The input of a k-mer (or k-subset) of symbols below `base`.
    fn index(&self, symbols: &[u16], base: usize) -> usize {
        if self.direct {
            symbols
                .iter()
                .fold(0usize, |acc, &s| acc * base + usize::from(s))
                % self.width
        } else {
            (hash(symbols) % self.width as u64) as usize
        }
    }
}

/// SplitMix64-style mixing of the symbols: fixed, so hashed inputs never change between
/// builds (a checkpoint's inputs must be computed the same way when it is loaded).
fn hash(symbols: &[u16]) -> u64 {
    let mut h: u64 = 0x9E37_79B9_7F4A_7C15 ^ symbols.len() as u64;
    for &s in symbols {
        h = h
            .wrapping_add(u64::from(s))
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        h ^= h >> 31;
    }
    h
}

impl FeatureMap {
    /// The map of `features` for `space`.
    pub fn new(features: FeatureSet, space: &dyn Space) -> Self {
        Self {
            features,
            layout: Layout::of(space),
            encoding_dim: space.encoding_dim(),
        }
    }

    /// The map of proxies saved before features existed: the encoding alone.
    pub fn legacy(encoding_dim: usize) -> Self {
        Self {
            features: FeatureSet::OneHot,
            layout: Layout::Other,
            encoding_dim,
        }
    }

    /// The counting blocks, in input order.
    fn blocks(&self) -> Vec<Block> {
        let mut out = Vec::new();
        let f = self.features;
        match self.layout {
            Layout::Sequence { tokens, .. } => {
                if f.composition() {
                    out.push(Block::new(Some(tokens)));
                }
                if f.kmers() {
                    out.push(Block::new(tokens.checked_pow(2)));
                    out.push(Block::new(tokens.checked_pow(3)));
                }
            }
            Layout::Set { items, max_size } => {
                if f.composition() {
                    out.push(Block::new(Some(1)));
                }
                if f.kmers() {
                    if (2..=MAX_SET_FOR_PAIRS).contains(&max_size) {
                        out.push(Block::new(items.checked_pow(2)));
                    }
                    if (3..=MAX_SET_FOR_TRIPLES).contains(&max_size) {
                        out.push(Block::new(items.checked_pow(3)));
                    }
                }
            }
            Layout::Other => {}
        }
        out
    }

    /// Whether the map adds nothing to the encoding (so the inputs are the encoding).
    fn encoding_only(&self) -> bool {
        self.blocks().is_empty()
    }

    /// Width of the inputs.
    pub fn dim(&self) -> usize {
        let counts: usize = self.blocks().iter().map(|b| b.width).sum();
        if self.features.encoding() || self.encoding_only() {
            self.encoding_dim + counts
        } else {
            counts
        }
    }

    /// The inputs of `states`, row after row (`states.len() * self.dim()` values).
    pub fn encode(&self, space: &dyn Space, states: &[State]) -> Vec<f32> {
        let blocks = self.blocks();
        let with_encoding = self.features.encoding() || blocks.is_empty();
        if blocks.is_empty() {
            return encode_batch(space, states);
        }
        let dim = self.dim();
        let mut out = vec![0.0f32; states.len() * dim];
        let encoded = if with_encoding {
            encode_batch(space, states)
        } else {
            Vec::new()
        };
        for (i, s) in states.iter().enumerate() {
            let row = &mut out[i * dim..(i + 1) * dim];
            let mut at = 0;
            if with_encoding {
                row[..self.encoding_dim]
                    .copy_from_slice(&encoded[i * self.encoding_dim..(i + 1) * self.encoding_dim]);
                at = self.encoding_dim;
            }
            self.count_into(&s.0, &blocks, &mut row[at..]);
            for v in &mut row[at..] {
                *v = v.ln_1p();
            }
        }
        out
    }

    /// Raw counts of the blocks of one candidate into `out` (zeroed, the blocks' width).
    fn count_into(&self, symbols: &[u16], blocks: &[Block], out: &mut [f32]) {
        let mut blocks = blocks.iter();
        let mut at = 0;
        let mut next = |out: &mut [f32], counts: &mut dyn FnMut(&Block, &mut [f32])| {
            if let Some(b) = blocks.next() {
                counts(b, &mut out[at..at + b.width]);
                at += b.width;
            }
        };
        let f = self.features;
        match self.layout {
            Layout::Sequence { tokens, .. } => {
                if f.composition() {
                    next(out, &mut |b, o| {
                        for w in symbols.windows(1) {
                            o[b.index(w, tokens)] += 1.0;
                        }
                    });
                }
                if f.kmers() {
                    for k in [2, 3] {
                        next(out, &mut |b, o| {
                            for w in symbols.windows(k) {
                                o[b.index(w, tokens)] += 1.0;
                            }
                        });
                    }
                }
            }
            Layout::Set { items, max_size } => {
                if f.composition() {
                    next(out, &mut |_, o| o[0] = symbols.len() as f32);
                }
                if f.kmers() {
                    if (2..=MAX_SET_FOR_PAIRS).contains(&max_size) {
                        next(out, &mut |b, o| {
                            for (i, &p) in symbols.iter().enumerate() {
                                for &q in &symbols[i + 1..] {
                                    o[b.index(&[p, q], items)] += 1.0;
                                }
                            }
                        });
                    }
                    if (3..=MAX_SET_FOR_TRIPLES).contains(&max_size) {
                        next(out, &mut |b, o| {
                            for (i, &p) in symbols.iter().enumerate() {
                                for (j, &q) in symbols.iter().enumerate().skip(i + 1) {
                                    for &r in &symbols[j + 1..] {
                                        o[b.index(&[p, q, r], items)] += 1.0;
                                    }
                                }
                            }
                        });
                    }
                }
            }
            Layout::Other => {}
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::gfn::SpaceSpec;
    use serde_json::json;

    fn space(spec: serde_json::Value) -> Box<dyn Space> {
        serde_json::from_value::<SpaceSpec>(spec)
            .unwrap()
            .build()
            .unwrap()
    }

    #[test]
    fn layouts_are_read_off_each_kind_of_space() {
        let seq = space(json!({"type": "sequence", "alphabet": ["A", "B", "C"],
                               "min_length": 1, "max_length": 5}));
        assert_eq!(
            Layout::of(seq.as_ref()),
            Layout::Sequence {
                tokens: 3,
                max_length: 5
            }
        );
        let set = space(json!({"type": "set", "items": ["a", "b", "c", "d"],
                               "min_size": 0, "max_size": 2}));
        assert_eq!(
            Layout::of(set.as_ref()),
            Layout::Set {
                items: 4,
                max_size: 2
            }
        );
        let grid = space(json!({"type": "grid", "dims": 2, "size": 4}));
        assert_eq!(Layout::of(grid.as_ref()), Layout::Other);
    }

    #[test]
    fn sequence_counts_see_a_motif_wherever_it_sits() {
        let seq = space(json!({"type": "sequence", "alphabet": ["A", "B", "C"],
                               "min_length": 1, "max_length": 6}));
        let map = FeatureMap::new(FeatureSet::Kmer, seq.as_ref());
        // 3 composition + 9 2-mers + 27 3-mers, all direct.
        assert_eq!(map.dim(), 3 + 9 + 27);
        // "ABC" at the start and at the end, padded with A: the same 3-mer input fires.
        let x = map.encode(
            seq.as_ref(),
            &[State(vec![0, 1, 2, 0, 0, 0]), State(vec![0, 0, 0, 0, 1, 2])],
        );
        let (a, b) = x.split_at(map.dim());
        let abc = 3 + 9 + 5; // 0 * 9 + 1 * 3 + 2
        assert_eq!(a[abc], 2f32.ln());
        assert_eq!(b[abc], 2f32.ln());
        assert_eq!(a[..3], b[..3], "equal composition");
        // Composition of A: four times, ln(5).
        assert_eq!(a[0], 5f32.ln());
        let with = FeatureMap::new(FeatureSet::OneHotKmer, seq.as_ref());
        assert_eq!(with.dim(), seq.encoding_dim() + map.dim());
    }

    #[test]
    fn set_features_count_pairs_and_triples() {
        let set = space(json!({"type": "set", "items": ["a", "b", "c", "d"],
                               "min_size": 0, "max_size": 3}));
        let map = FeatureMap::new(FeatureSet::OneHotKmer, set.as_ref());
        assert_eq!(map.dim(), 4 + 1 + 16 + 64);
        let x = map.encode(set.as_ref(), &[State(vec![0, 2, 3])]);
        // Three pairs and one triple fire, once each.
        let pairs = &x[5..21];
        assert_eq!(pairs.iter().filter(|v| **v > 0.0).count(), 3);
        assert_eq!(pairs[2 * 4 + 3], 2f32.ln());
        let triples = &x[21..];
        assert_eq!(triples.iter().filter(|v| **v > 0.0).count(), 1);
        assert_eq!(x[4], 4f32.ln(), "the size, 3");
    }

    #[test]
    fn inputs_stay_bounded_for_the_largest_sequences() {
        let alphabet: Vec<String> = (0..1024).map(|i| format!("t{i:04}")).collect();
        let seq = space(
            json!({"type": "sequence", "alphabet": alphabet, "separator": " ",
                               "min_length": 1, "max_length": 512}),
        );
        let map = FeatureMap::new(FeatureSet::Kmer, seq.as_ref());
        assert_eq!(map.dim(), 3 * BUCKETS);
        let x = map.encode(
            seq.as_ref(),
            &[State((0..512).map(|i| (i * 7 % 1024) as u16).collect())],
        );
        assert_eq!(x.len(), map.dim());
        assert!(x.iter().all(|v| v.is_finite() && *v >= 0.0));
    }

    #[test]
    fn grids_and_onehot_use_the_encoding_alone() {
        let grid = space(json!({"type": "grid", "dims": 2, "size": 4}));
        let map = FeatureMap::new(FeatureSet::OneHotKmer, grid.as_ref());
        assert_eq!(map.dim(), grid.encoding_dim());
        let states = [State(vec![1, 3])];
        assert_eq!(
            map.encode(grid.as_ref(), &states),
            encode_batch(grid.as_ref(), &states)
        );
    }
}
