//! Synthetic oracles for `flowlab bench loop` and `flowlab demo`: black-box scoring functions
//! shaped like the assays flowlab is meant for, so that the whole loop can be measured
//! without a lab.
//!
//! A [`Task`] is a candidate space (the JSON `space` block of `POST /campaigns`), a score
//! for each value of that space (`Err` = the candidate is infeasible: the assay fails and the
//! client posts a failed label with the reason), and a distance normalised to [0, 1] for the
//! diversity metric.
//!
//! - `motif` (a peptide of exactly 32 residues over the 20 amino acids): three planted motifs
//!   that score near a preferred window of positions (binding sites), with partial credit for
//!   residues of the same physico-chemical class; a Potts-like term with per-position fields
//!   and class-level couplings between 20 contact pairs of distant positions (epistasis); and
//!   an infeasible region: aggregation (too many hydrophobic residues, or a hydrophobic
//!   patch) and unwanted N-glycosylation sites (`N`, any residue but `P`, then `S` or `T`).
//!   About a third of uniformly random sequences fail. The motifs carry most of the reward.
//! - `cocktail` (a set of 3 to 8 of 40 culture-medium components): individual effects, sparse
//!   pairwise synergies and antagonisms, a few three-way terms that only pay when all three
//!   components are present, a small cost per component, and incompatible pairs that
//!   precipitate (the candidate fails). About a quarter of random sets fail.
//! - `adjacent` (a peptide of exactly 32 residues): feasibility depends on neighbours only:
//!   20 of the 400 ordered pairs of residues may not stand next to each other (about four
//!   in five random sequences hold one and fail). The reward is epistatic: four motifs made
//!   of two or three parts (three residues each, anywhere in the sequence), each motif
//!   paying its weight times the product of its parts' squared match qualities, so a part
//!   alone earns almost nothing and only complete sets of parts score. Built to punish
//!   string-space moves that ignore which neighbours a substitution creates.
//! - `fragments` (strings of 2 to 10 tokens over 16 molecular fragments and the no-op cap
//!   `H`): the molecule is the multiset of fragments, so the order of the tokens and the caps
//!   do not matter; many strings are one molecule. The oracle reports the molecule as an
//!   entity ([`Task::entity`]) with its score: fragment effects with diminishing repeats,
//!   sparse pair and three-way synergies, a cost per fragment; reactive pairs (and a string of
//!   caps only) fail. Built to punish optimisers that spend oracle calls on replicates.
//!
//! Each task states its mode rule ([`Task::mode_rule`]): a mode is a distinct object scoring
//! at least `min_score`, at least `min_distance` from every better mode.
//!
//! Determinism: the random structure of each landscape (fields, couplings, effects, which pairs
//! interact) is drawn from a fixed per-task seed with a small generator of our own
//! (SplitMix64), so the landscape is the same for every bench seed and every `rand` version;
//! the bench seed drives only the methods' own randomness.
//!
//! Synchronous and pure; candidates are handled as the engine's [`State`] (token indices of a
//! sequence, sorted item indices of a set) through the crate's own [`Space`], so the oracle
//! parses and prints values exactly as the server does.

use flowlab::gfn::{Space, SpaceSpec, State};
use serde_json::{json, Value};
use std::fmt;

/// The 20 amino acids, one letter each, in the usual alphabetical order of their codes.
const AMINO_ACIDS: [&str; 20] = [
    "A", "C", "D", "E", "F", "G", "H", "I", "K", "L", "M", "N", "P", "Q", "R", "S", "T", "V", "W",
    "Y",
];
/// Residues of the `motif` task.
const PEPTIDE_LENGTH: usize = 32;
/// Landscape seed of `motif` (fixed: the landscape is part of the task's definition).
const MOTIF_LANDSCAPE_SEED: u64 = 0x6d6f_7469_6601;
/// Landscape seed of `cocktail`.
const COCKTAIL_LANDSCAPE_SEED: u64 = 0x636f_636b_7401;
/// Landscape seed of `adjacent`.
const ADJACENT_LANDSCAPE_SEED: u64 = 0x6164_6a61_6301;
/// Landscape seed of `fragments`.
const FRAGMENTS_LANDSCAPE_SEED: u64 = 0x6672_6167_6d01;

/// What counts as a mode of a task: a distinct object scoring at least `min_score` whose
/// distance (the task's [`Task::distance`], in [0, 1]) to every better mode is at least
/// `min_distance`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ModeRule {
    /// τ: the least score of a mode.
    pub min_score: f64,
    /// δ: the least distance between two modes.
    pub min_distance: f64,
}

/// The tasks the bench knows, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum TaskName {
    /// Peptides of 32 residues with planted motifs, epistasis and infeasible sequences.
    Motif,
    /// Sets of 3..=8 of 40 medium components with synergies and incompatible pairs.
    Cocktail,
    /// Peptides of 32 residues with forbidden neighbours and motifs that only score whole.
    Adjacent,
    /// Multisets of fragments written as strings: many strings are one molecule.
    Fragments,
}

impl TaskName {
    /// Every task, in the order the bench runs them.
    pub const ALL: [TaskName; 4] = [
        TaskName::Motif,
        TaskName::Cocktail,
        TaskName::Adjacent,
        TaskName::Fragments,
    ];
}

impl TaskName {
    /// The name as written on the command line and in the results.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskName::Motif => "motif",
            TaskName::Cocktail => "cocktail",
            TaskName::Adjacent => "adjacent",
            TaskName::Fragments => "fragments",
        }
    }

    /// One line for people: what the candidates are and what the oracle rewards.
    pub fn description(self) -> &'static str {
        match self {
            TaskName::Motif => {
                "peptides of 32 residues; the oracle rewards three binding motifs near their \
                 sites and favourable residue contacts, and fails aggregating or glycosylated ones"
            }
            TaskName::Cocktail => {
                "supplement sets of 3 to 8 of 40 medium components; the oracle rewards \
                 effects and synergies, charges a cost per component, and fails sets that precipitate"
            }
            TaskName::Adjacent => {
                "peptides of 32 residues; 20 residue pairs may not be neighbours, and four motifs \
                 of two or three parts score only when all their parts are present"
            }
            TaskName::Fragments => {
                "molecules written as 2 to 10 fragment tokens in any order, with no-op H caps; \
                 the oracle scores the multiset of fragments and fails reactive pairs"
            }
        }
    }
}

impl fmt::Display for TaskName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The bounds of a task's space, for the baselines that build candidates themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Token indices in `0..tokens`, `min_length..=max_length` of them.
    Sequence {
        tokens: usize,
        min_length: usize,
        max_length: usize,
    },
    /// Sorted distinct item indices in `0..items`, `min_size..=max_size` of them.
    Set {
        items: usize,
        min_size: usize,
        max_size: usize,
    },
}

/// One synthetic task: space, oracle and distance.
#[derive(Debug)]
pub struct Task {
    name: TaskName,
    spec: Value,
    space: Box<dyn Space>,
    shape: Shape,
    landscape: Landscape,
}

#[derive(Debug)]
enum Landscape {
    Motif(MotifLandscape),
    Cocktail(CocktailLandscape),
    Adjacent(AdjacentLandscape),
    Fragments(FragmentLandscape),
}

impl Task {
    /// Builds the task and its landscape (deterministic: see the module header).
    pub fn new(name: TaskName) -> anyhow::Result<Self> {
        let (spec, shape, landscape) = match name {
            TaskName::Motif => (
                json!({"type": "sequence", "alphabet": AMINO_ACIDS,
                       "min_length": PEPTIDE_LENGTH, "max_length": PEPTIDE_LENGTH}),
                Shape::Sequence {
                    tokens: AMINO_ACIDS.len(),
                    min_length: PEPTIDE_LENGTH,
                    max_length: PEPTIDE_LENGTH,
                },
                Landscape::Motif(MotifLandscape::new(MOTIF_LANDSCAPE_SEED)),
            ),
            TaskName::Cocktail => (
                json!({"type": "set", "items": MEDIUM_COMPONENTS.as_slice(),
                       "min_size": COCKTAIL_MIN_SIZE, "max_size": COCKTAIL_MAX_SIZE}),
                Shape::Set {
                    items: MEDIUM_COMPONENTS.len(),
                    min_size: COCKTAIL_MIN_SIZE,
                    max_size: COCKTAIL_MAX_SIZE,
                },
                Landscape::Cocktail(CocktailLandscape::new(COCKTAIL_LANDSCAPE_SEED)),
            ),
            TaskName::Adjacent => (
                json!({"type": "sequence", "alphabet": AMINO_ACIDS,
                       "min_length": PEPTIDE_LENGTH, "max_length": PEPTIDE_LENGTH}),
                Shape::Sequence {
                    tokens: AMINO_ACIDS.len(),
                    min_length: PEPTIDE_LENGTH,
                    max_length: PEPTIDE_LENGTH,
                },
                Landscape::Adjacent(AdjacentLandscape::new(ADJACENT_LANDSCAPE_SEED)),
            ),
            TaskName::Fragments => {
                let alphabet: Vec<&str> = FRAGMENTS.iter().copied().chain([NO_OP]).collect();
                (
                    json!({"type": "sequence", "alphabet": alphabet, "separator": "-",
                           "min_length": FRAGMENTS_MIN_TOKENS, "max_length": FRAGMENTS_MAX_TOKENS}),
                    Shape::Sequence {
                        tokens: alphabet.len(),
                        min_length: FRAGMENTS_MIN_TOKENS,
                        max_length: FRAGMENTS_MAX_TOKENS,
                    },
                    Landscape::Fragments(FragmentLandscape::new(FRAGMENTS_LANDSCAPE_SEED)),
                )
            }
        };
        let parsed: SpaceSpec = serde_json::from_value(spec.clone())?;
        let space = parsed.build().map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Self {
            name,
            spec,
            space,
            shape,
            landscape,
        })
    }

    /// The task's name.
    pub fn name(&self) -> TaskName {
        self.name
    }

    /// The `space` block of `POST /campaigns`.
    pub fn space_spec(&self) -> &Value {
        &self.spec
    }

    /// The bounds of the space.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// Parses a value as the server writes it (errors say why it is not in the space).
    pub fn parse(&self, value: &Value) -> Result<State, String> {
        self.space.parse_value(value).map_err(|e| e.to_string())
    }

    /// The canonical JSON value of a candidate.
    pub fn to_value(&self, candidate: &State) -> Value {
        self.space.to_value(candidate)
    }

    /// The oracle on a JSON value: the score, or why the candidate failed (including a value
    /// that is not in the space at all).
    pub fn score(&self, value: &Value) -> Result<f64, String> {
        let candidate = self.parse(value)?;
        self.score_candidate(&candidate)
    }

    /// The oracle on a parsed candidate: the score (higher is better), or why the candidate
    /// is infeasible.
    pub fn score_candidate(&self, candidate: &State) -> Result<f64, String> {
        match &self.landscape {
            Landscape::Motif(l) => l.score(&candidate.0),
            Landscape::Cocktail(l) => l.score(&candidate.0),
            Landscape::Adjacent(l) => l.score(&candidate.0),
            Landscape::Fragments(l) => l.score(&candidate.0),
        }
    }

    /// The object a candidate stands for: the sorted fragments (caps dropped) of a
    /// `fragments` string, the candidate itself elsewhere. Candidates with the same object
    /// are replicates of one measurement target.
    pub fn object(&self, candidate: &State) -> State {
        match self.landscape {
            Landscape::Fragments(_) => fragment_multiset(candidate),
            _ => candidate.clone(),
        }
    }

    /// The canonical entity string the oracle reports with a candidate's score, for tasks
    /// whose encoding is many-to-one (`fragments`: the fragments sorted, joined by `-`);
    /// `None` for the others, and for a string of caps only (no molecule at all).
    pub fn entity(&self, candidate: &State) -> Option<String> {
        match self.landscape {
            Landscape::Fragments(_) => {
                let object = fragment_multiset(candidate);
                (!object.0.is_empty()).then(|| {
                    object
                        .0
                        .iter()
                        .filter_map(|&t| FRAGMENTS.get(usize::from(t)).copied())
                        .collect::<Vec<_>>()
                        .join("-")
                })
            }
            _ => None,
        }
    }

    /// The task's mode rule (see the module header). τ is the genetic algorithm's mean
    /// final top-10 mean on the tuning seeds 100-102 at the bench's default budget (100
    /// initial + 8 rounds of 50), rounded to 0.5: a mode is a design as good as a strong
    /// baseline's typical top ten. δ makes two modes different designs: a quarter of the
    /// positions of a peptide, half of a set or of a molecule's fragments.
    pub fn mode_rule(&self) -> ModeRule {
        let (min_score, min_distance) = match self.name {
            TaskName::Motif => (4.0, 0.25),
            TaskName::Cocktail => (5.5, 0.5),
            TaskName::Adjacent => (1.5, 0.25),
            TaskName::Fragments => (5.0, 0.5),
        };
        ModeRule {
            min_score,
            min_distance,
        }
    }

    /// Distance between two candidates in [0, 1]: Hamming distance over the length for
    /// sequences of equal length (Levenshtein over the longer length otherwise), Jaccard
    /// distance for sets. The same distance as the server's `min_distance`, scaled so that
    /// both kinds of task read alike.
    ///
    /// `fragments` compares molecules, not strings: the multiset Jaccard distance
    /// `1 - sum(min counts) / sum(max counts)` of the two fragment multisets.
    pub fn distance(&self, a: &State, b: &State) -> f64 {
        if let Landscape::Fragments(_) = self.landscape {
            return multiset_jaccard_distance(&fragment_multiset(a), &fragment_multiset(b));
        }
        let raw = self.space.distance(a, b);
        match self.shape {
            Shape::Sequence { .. } => {
                let longest = a.0.len().max(b.0.len());
                if longest == 0 {
                    0.0
                } else {
                    raw / longest as f64
                }
            }
            Shape::Set { .. } => raw,
        }
    }
}

/// SplitMix64 (Steele, Lea and Flood 2014): a tiny generator whose output never changes,
/// so a landscape drawn from it is the same on every build.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (n > 0); the modulo bias is far below anything measured here.
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// `k` distinct unordered pairs of `0..n` with `min_gap <= |i - j|`, each as `(i, j)`
    /// with `i < j`, none in `avoid`.
    fn distinct_pairs(
        &mut self,
        n: usize,
        k: usize,
        min_gap: usize,
        avoid: &[(usize, usize)],
    ) -> Vec<(usize, usize)> {
        let mut pairs: Vec<(usize, usize)> = Vec::with_capacity(k);
        while pairs.len() < k {
            let (a, b) = (self.below(n), self.below(n));
            let (i, j) = (a.min(b), a.max(b));
            if j - i >= min_gap.max(1) && !pairs.contains(&(i, j)) && !avoid.contains(&(i, j)) {
                pairs.push((i, j));
            }
        }
        pairs
    }
}

// ---------------------------------------------------------------------------------------
// motif

/// Physico-chemical class of each residue of [`AMINO_ACIDS`], for partial motif credit and
/// for the contact couplings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResidueClass {
    /// A I L M V
    Aliphatic,
    /// F W Y
    Aromatic,
    /// H K R
    Positive,
    /// D E
    Negative,
    /// N Q S T
    Polar,
    /// C
    Cysteine,
    /// G
    Glycine,
    /// P
    Proline,
}

fn residue_class(token: u16) -> ResidueClass {
    use ResidueClass::*;
    match AMINO_ACIDS.get(usize::from(token)).copied().unwrap_or("") {
        "A" | "I" | "L" | "M" | "V" => Aliphatic,
        "F" | "W" | "Y" => Aromatic,
        "H" | "K" | "R" => Positive,
        "D" | "E" => Negative,
        "N" | "Q" | "S" | "T" => Polar,
        "C" => Cysteine,
        "G" => Glycine,
        _ => Proline,
    }
}

/// Residues that drive aggregation (a common hydrophobicity scale's top eight).
fn is_hydrophobic(token: u16) -> bool {
    matches!(
        AMINO_ACIDS.get(usize::from(token)).copied(),
        Some("A" | "C" | "F" | "I" | "L" | "M" | "V" | "W")
    )
}

fn token(letter: &str) -> u16 {
    AMINO_ACIDS.iter().position(|a| *a == letter).unwrap_or(0) as u16
}

/// Interaction of two residue classes in contact: salt bridges and cation-pi attract, like
/// charges repel, hydrophobic and aromatic contacts pack. In [-1, 1].
fn contact_energy(a: ResidueClass, b: ResidueClass) -> f64 {
    use ResidueClass::*;
    match (a, b) {
        (Positive, Negative) | (Negative, Positive) => 1.0,
        (Positive, Positive) | (Negative, Negative) => -0.8,
        (Aromatic, Positive) | (Positive, Aromatic) => 0.6,
        (Aliphatic | Aromatic, Aliphatic | Aromatic) => 0.5,
        (Cysteine, Cysteine) => 0.8,
        (Polar, Polar) => 0.3,
        (Proline, _) | (_, Proline) => -0.4,
        (Aliphatic | Aromatic, Positive | Negative)
        | (Positive | Negative, Aliphatic | Aromatic) => -0.5,
        _ => 0.0,
    }
}

/// Most hydrophobic residues a feasible peptide may hold (uniform sequences hold 12.8 on
/// average).
const MAX_HYDROPHOBIC: usize = 16;
/// A window this long holding at least [`PATCH_HYDROPHOBIC`] hydrophobic residues is an
/// aggregation patch.
const PATCH_WINDOW: usize = 7;
const PATCH_HYDROPHOBIC: usize = 6;
/// How far outside its window a motif still earns something, in positions.
const MOTIF_PLACEMENT_SLACK: f64 = 4.0;
/// Number of contact pairs of the Potts-like term.
const CONTACTS: usize = 20;

/// A planted motif: its residues, the window of start positions where it scores fully, and
/// its weight.
#[derive(Debug, Clone)]
struct Motif {
    residues: Vec<u16>,
    first_start: usize,
    last_start: usize,
    weight: f64,
}

#[derive(Debug)]
struct MotifLandscape {
    motifs: Vec<Motif>,
    /// Per position, per residue: a small preference (the Potts fields).
    fields: Vec<[f64; 20]>,
    /// Contacts `(i, j, strength)`: `strength * contact_energy(class(x_i), class(x_j))`.
    contacts: Vec<(usize, usize, f64)>,
}

impl MotifLandscape {
    fn new(seed: u64) -> Self {
        let mut rng = SplitMix64(seed);
        let motif = |letters: &str, first_start: usize, last_start: usize, weight: f64| Motif {
            residues: letters
                .chars()
                .map(|c| token(c.encode_utf8(&mut [0; 4])))
                .collect(),
            first_start,
            last_start,
            weight,
        };
        // An adhesion-like site near the N-terminus, an amyloid-like hydrophobic core in the
        // middle (it spends five of the sixteen hydrophobic residues and must be flanked by
        // polar ones to avoid a patch), and a short tyrosine site near the C-terminus.
        let motifs = vec![
            motif("RGDSP", 2, 6, 3.0),
            motif("KLVFFA", 12, 16, 2.5),
            motif("HPQY", 23, 26, 2.0),
        ];
        let fields = (0..PEPTIDE_LENGTH)
            .map(|_| {
                let mut row = [0.0; 20];
                for v in &mut row {
                    *v = 0.03 * rng.normal();
                }
                row
            })
            .collect();
        let contacts = rng
            .distinct_pairs(PEPTIDE_LENGTH, CONTACTS, 3, &[])
            .into_iter()
            .map(|(i, j)| (i, j, 0.05 + 0.1 * rng.uniform()))
            .collect();
        Self {
            motifs,
            fields,
            contacts,
        }
    }

    /// Why the peptide cannot be made or measured, if it cannot.
    fn infeasibility(x: &[u16]) -> Option<String> {
        let hydrophobic = x.iter().filter(|&&t| is_hydrophobic(t)).count();
        if hydrophobic > MAX_HYDROPHOBIC {
            return Some(format!(
                "aggregated: {hydrophobic} hydrophobic residues (at most {MAX_HYDROPHOBIC})"
            ));
        }
        if let Some(start) = x
            .windows(PATCH_WINDOW)
            .position(|w| w.iter().filter(|&&t| is_hydrophobic(t)).count() >= PATCH_HYDROPHOBIC)
        {
            return Some(format!(
                "aggregated: hydrophobic patch at positions {}..{}",
                start + 1,
                start + PATCH_WINDOW
            ));
        }
        let (n, p, s, t) = (token("N"), token("P"), token("S"), token("T"));
        if let Some(at) = x
            .windows(3)
            .position(|w| w[0] == n && w[1] != p && (w[2] == s || w[2] == t))
        {
            return Some(format!("glycosylated: N-x-S/T site at position {}", at + 1));
        }
        None
    }

    /// How well `motif` is present: the best start's `quality^2 * placement`, where quality
    /// is the mean per-residue credit (1 for the residue, 0.5 for its class) and placement
    /// is 1 inside the window, falling linearly to 0 at [`MOTIF_PLACEMENT_SLACK`] outside.
    /// Squaring the quality makes complete motifs worth far more than scattered matches.
    fn motif_presence(motif: &Motif, x: &[u16]) -> f64 {
        let len = motif.residues.len();
        if x.len() < len {
            return 0.0;
        }
        (0..=x.len() - len)
            .map(|start| {
                let outside = if start < motif.first_start {
                    motif.first_start - start
                } else {
                    start.saturating_sub(motif.last_start)
                };
                let placement = (1.0 - outside as f64 / MOTIF_PLACEMENT_SLACK).max(0.0);
                if placement == 0.0 {
                    return 0.0;
                }
                let credit: f64 = motif
                    .residues
                    .iter()
                    .zip(&x[start..start + len])
                    .map(|(&want, &got)| {
                        if want == got {
                            1.0
                        } else if residue_class(want) == residue_class(got) {
                            0.5
                        } else {
                            0.0
                        }
                    })
                    .sum();
                let quality = credit / len as f64;
                quality * quality * placement
            })
            .fold(0.0, f64::max)
    }

    fn score(&self, x: &[u16]) -> Result<f64, String> {
        if let Some(reason) = Self::infeasibility(x) {
            return Err(reason);
        }
        let motifs: f64 = self
            .motifs
            .iter()
            .map(|m| m.weight * Self::motif_presence(m, x))
            .sum();
        let fields: f64 = x
            .iter()
            .zip(&self.fields)
            .map(|(&t, row)| row[usize::from(t) % 20])
            .sum();
        let contacts: f64 = self
            .contacts
            .iter()
            .filter(|(i, j, _)| *i < x.len() && *j < x.len())
            .map(|&(i, j, strength)| {
                strength * contact_energy(residue_class(x[i]), residue_class(x[j]))
            })
            .sum();
        Ok(motifs + fields + contacts)
    }
}

// ---------------------------------------------------------------------------------------
// cocktail

/// The 40 components of the `cocktail` task (a cell-culture medium supplement screen).
const MEDIUM_COMPONENTS: [&str; 40] = [
    "glucose",
    "glutamine",
    "pyruvate",
    "insulin",
    "transferrin",
    "selenite",
    "ascorbate",
    "hydrocortisone",
    "egf",
    "fgf2",
    "albumin",
    "lipid_mix",
    "ethanolamine",
    "putrescine",
    "progesterone",
    "t3",
    "heparin",
    "dexamethasone",
    "b27",
    "n2",
    "retinoic_acid",
    "forskolin",
    "ibmx",
    "chir99021",
    "sb431542",
    "y27632",
    "ldn193189",
    "noggin",
    "wnt3a",
    "bmp4",
    "activin_a",
    "vegf",
    "pdgf",
    "igf1",
    "lif",
    "nicotinamide",
    "zinc_sulfate",
    "copper_sulfate",
    "ferric_citrate",
    "calcium_chloride",
];
const COCKTAIL_MIN_SIZE: usize = 3;
const COCKTAIL_MAX_SIZE: usize = 8;
/// Pairs with a synergy or an antagonism.
const PAIR_TERMS: usize = 50;
/// Triples that pay only when all three are present.
const TRIPLE_TERMS: usize = 6;
/// Pairs that precipitate together.
const INCOMPATIBLE_PAIRS: usize = 16;
/// Cost of each component in the score (media are cheaper with fewer supplements).
const COMPONENT_COST: f64 = 0.15;

#[derive(Debug)]
struct CocktailLandscape {
    effects: Vec<f64>,
    /// `(i, j, w)` with `i < j`: `w` added when both are present.
    pairs: Vec<(usize, usize, f64)>,
    /// `([i, j, k], w)`: `w` added when all three are present.
    triples: Vec<([usize; 3], f64)>,
    /// `(i, j)` with `i < j`: together they fail.
    incompatible: Vec<(usize, usize)>,
}

impl CocktailLandscape {
    fn new(seed: u64) -> Self {
        let n = MEDIUM_COMPONENTS.len();
        let mut rng = SplitMix64(seed);
        let effects = (0..n).map(|_| 0.4 * rng.normal()).collect();
        let incompatible = rng.distinct_pairs(n, INCOMPATIBLE_PAIRS, 1, &[]);
        let pairs = rng
            .distinct_pairs(n, PAIR_TERMS, 1, &incompatible)
            .into_iter()
            .map(|(i, j)| (i, j, 0.8 * rng.normal()))
            .collect();
        let mut triples = Vec::with_capacity(TRIPLE_TERMS);
        while triples.len() < TRIPLE_TERMS {
            let mut t = [rng.below(n), rng.below(n), rng.below(n)];
            t.sort_unstable();
            let compatible = [(t[0], t[1]), (t[0], t[2]), (t[1], t[2])]
                .iter()
                .all(|p| !incompatible.contains(p));
            if t[0] < t[1] && t[1] < t[2] && compatible {
                triples.push((t, 1.5 + rng.uniform()));
            }
        }
        Self {
            effects,
            pairs,
            triples,
            incompatible,
        }
    }

    fn score(&self, x: &[u16]) -> Result<f64, String> {
        let n = MEDIUM_COMPONENTS.len();
        let mut present = vec![false; n];
        for &i in x {
            if let Some(p) = present.get_mut(usize::from(i)) {
                *p = true;
            }
        }
        if let Some(&(i, j)) = self
            .incompatible
            .iter()
            .find(|(i, j)| present[*i] && present[*j])
        {
            return Err(format!(
                "precipitated: {} with {}",
                MEDIUM_COMPONENTS[i], MEDIUM_COMPONENTS[j]
            ));
        }
        let single: f64 = x
            .iter()
            .filter_map(|&i| self.effects.get(usize::from(i)))
            .sum();
        let pairs: f64 = self
            .pairs
            .iter()
            .filter(|(i, j, _)| present[*i] && present[*j])
            .map(|(_, _, w)| w)
            .sum();
        let triples: f64 = self
            .triples
            .iter()
            .filter(|(t, _)| t.iter().all(|&i| present[i]))
            .map(|(_, w)| w)
            .sum();
        Ok(single + pairs + triples - COMPONENT_COST * x.len() as f64)
    }
}

// ---------------------------------------------------------------------------------------
// adjacent

/// Ordered residue pairs that may not be neighbours in `adjacent`.
const FORBIDDEN_NEIGHBOURS: usize = 20;
/// Residues of one motif part.
const PART_LENGTH: usize = 3;

/// A motif of `adjacent`: parts that pay only together.
#[derive(Debug, Clone)]
struct EpistaticMotif {
    parts: Vec<[u16; PART_LENGTH]>,
    weight: f64,
}

#[derive(Debug)]
struct AdjacentLandscape {
    /// `forbidden[a * 20 + b]`: residue `b` may not follow residue `a`.
    forbidden: Vec<bool>,
    motifs: Vec<EpistaticMotif>,
    /// Per position, per residue: a small preference that breaks ties between designs.
    fields: Vec<[f64; 20]>,
}

impl AdjacentLandscape {
    fn new(seed: u64) -> Self {
        let n = AMINO_ACIDS.len();
        let mut rng = SplitMix64(seed);
        let mut forbidden = vec![false; n * n];
        let mut drawn = 0;
        while drawn < FORBIDDEN_NEIGHBOURS {
            let k = rng.below(n * n);
            if !forbidden[k] {
                forbidden[k] = true;
                drawn += 1;
            }
        }
        // Parts are feasible on their own (no forbidden pair inside): the difficulty is in
        // joining them, not in a part that can never be made.
        let part = |rng: &mut SplitMix64| loop {
            let p = [
                rng.below(n) as u16,
                rng.below(n) as u16,
                rng.below(n) as u16,
            ];
            let inside = p
                .windows(2)
                .any(|w| forbidden[usize::from(w[0]) * n + usize::from(w[1])]);
            if !inside {
                break p;
            }
        };
        // Two pairs and two triples of parts: 30 of the 32 positions hold parts when all
        // four motifs are complete, so the best designs are tightly packed.
        let motifs = [(2, 1.0), (2, 1.0), (3, 2.0), (3, 2.0)]
            .into_iter()
            .map(|(parts, weight)| EpistaticMotif {
                parts: (0..parts).map(|_| part(&mut rng)).collect(),
                weight,
            })
            .collect();
        let fields = (0..PEPTIDE_LENGTH)
            .map(|_| {
                let mut row = [0.0; 20];
                for v in &mut row {
                    *v = 0.02 * rng.normal();
                }
                row
            })
            .collect();
        Self {
            forbidden,
            motifs,
            fields,
        }
    }

    fn is_forbidden(&self, a: u16, b: u16) -> bool {
        let n = AMINO_ACIDS.len();
        self.forbidden
            .get(usize::from(a) * n + usize::from(b))
            .copied()
            .unwrap_or(false)
    }

    /// The best match quality of a part anywhere in `x`: the share of its residues in place
    /// at the best start, in {0, 1/3, 2/3, 1}.
    fn part_quality(part: &[u16; PART_LENGTH], x: &[u16]) -> f64 {
        x.windows(PART_LENGTH)
            .map(|w| w.iter().zip(part).filter(|(a, b)| a == b).count())
            .max()
            .unwrap_or(0) as f64
            / PART_LENGTH as f64
    }

    fn score(&self, x: &[u16]) -> Result<f64, String> {
        if let Some(at) = x.windows(2).position(|w| self.is_forbidden(w[0], w[1])) {
            let letter = |t: u16| AMINO_ACIDS.get(usize::from(t)).copied().unwrap_or("?");
            return Err(format!(
                "unstable: {}{} may not be neighbours (positions {}..{})",
                letter(x[at]),
                letter(x[at + 1]),
                at + 1,
                at + 2
            ));
        }
        // The product of squared qualities: a motif pays its weight only when every part is
        // whole; one whole part beside a half-matched one earns a small fraction of it.
        let motifs: f64 = self
            .motifs
            .iter()
            .map(|m| {
                m.weight
                    * m.parts
                        .iter()
                        .map(|p| Self::part_quality(p, x).powi(2))
                        .product::<f64>()
            })
            .sum();
        let fields: f64 = x
            .iter()
            .zip(&self.fields)
            .map(|(&t, row)| row[usize::from(t) % 20])
            .sum();
        Ok(motifs + fields)
    }
}

// ---------------------------------------------------------------------------------------
// fragments

/// The fragments of the `fragments` task.
const FRAGMENTS: [&str; 16] = [
    "Me", "Et", "Ph", "OH", "NH2", "COOH", "Cl", "F", "Br", "CN", "NO2", "SH", "Py", "Ac", "OMe",
    "CF3",
];
/// The no-op cap: written anywhere, it changes nothing.
const NO_OP: &str = "H";
const FRAGMENTS_MIN_TOKENS: usize = 2;
const FRAGMENTS_MAX_TOKENS: usize = 10;
/// Fragment pairs that react together (the candidate fails).
const REACTIVE_PAIRS: usize = 6;
/// Fragment pairs with a synergy or an antagonism.
const FRAGMENT_PAIR_TERMS: usize = 30;
/// Fragment triples that pay only when all three are present.
const FRAGMENT_TRIPLE_TERMS: usize = 4;
/// Cost of each fragment (caps are free).
const FRAGMENT_COST: f64 = 0.1;

/// The fragments of a string, sorted, caps dropped: the molecule.
fn fragment_multiset(x: &State) -> State {
    let mut fragments: Vec<u16> =
        x.0.iter()
            .copied()
            .filter(|&t| usize::from(t) < FRAGMENTS.len())
            .collect();
    fragments.sort_unstable();
    State(fragments)
}

/// `1 - sum(min counts) / sum(max counts)` of two sorted multisets; 0 for two empty ones.
fn multiset_jaccard_distance(a: &State, b: &State) -> f64 {
    let (mut i, mut j, mut common, mut union) = (0, 0, 0usize, 0usize);
    while i < a.0.len() || j < b.0.len() {
        match (a.0.get(i), b.0.get(j)) {
            (Some(x), Some(y)) if x == y => {
                common += 1;
                union += 1;
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x < y => {
                union += 1;
                i += 1;
            }
            (Some(_), None) => {
                union += 1;
                i += 1;
            }
            _ => {
                union += 1;
                j += 1;
            }
        }
    }
    if union == 0 {
        0.0
    } else {
        1.0 - common as f64 / union as f64
    }
}

#[derive(Debug)]
struct FragmentLandscape {
    effects: Vec<f64>,
    pairs: Vec<(usize, usize, f64)>,
    triples: Vec<([usize; 3], f64)>,
    reactive: Vec<(usize, usize)>,
}

impl FragmentLandscape {
    fn new(seed: u64) -> Self {
        let n = FRAGMENTS.len();
        let mut rng = SplitMix64(seed);
        let effects = (0..n).map(|_| 0.5 * rng.normal()).collect();
        let reactive = rng.distinct_pairs(n, REACTIVE_PAIRS, 1, &[]);
        let pairs = rng
            .distinct_pairs(n, FRAGMENT_PAIR_TERMS, 1, &reactive)
            .into_iter()
            .map(|(i, j)| (i, j, 0.8 * rng.normal()))
            .collect();
        let mut triples = Vec::with_capacity(FRAGMENT_TRIPLE_TERMS);
        while triples.len() < FRAGMENT_TRIPLE_TERMS {
            let mut t = [rng.below(n), rng.below(n), rng.below(n)];
            t.sort_unstable();
            let compatible = [(t[0], t[1]), (t[0], t[2]), (t[1], t[2])]
                .iter()
                .all(|p| !reactive.contains(p));
            if t[0] < t[1] && t[1] < t[2] && compatible {
                triples.push((t, 1.5 + rng.uniform()));
            }
        }
        Self {
            effects,
            pairs,
            triples,
            reactive,
        }
    }

    fn score(&self, x: &[u16]) -> Result<f64, String> {
        let n = FRAGMENTS.len();
        let mut counts = vec![0u32; n];
        for &t in x {
            if let Some(c) = counts.get_mut(usize::from(t)) {
                *c += 1;
            }
        }
        let total: u32 = counts.iter().sum();
        if total == 0 {
            return Err("no molecule: caps only".to_string());
        }
        if let Some(&(i, j)) = self
            .reactive
            .iter()
            .find(|(i, j)| counts[*i] > 0 && counts[*j] > 0)
        {
            return Err(format!("reactive: {} with {}", FRAGMENTS[i], FRAGMENTS[j]));
        }
        // Repeats of a fragment pay less and less: 1, 1.5, 1.75, ... times its effect.
        let single: f64 = counts
            .iter()
            .zip(&self.effects)
            .map(|(&c, e)| e * 2.0 * (1.0 - 0.5f64.powi(c as i32)))
            .sum();
        let pairs: f64 = self
            .pairs
            .iter()
            .filter(|(i, j, _)| counts[*i] > 0 && counts[*j] > 0)
            .map(|(_, _, w)| w)
            .sum();
        let triples: f64 = self
            .triples
            .iter()
            .filter(|(t, _)| t.iter().all(|&i| counts[i] > 0))
            .map(|(_, w)| w)
            .sum();
        Ok(single + pairs + triples - FRAGMENT_COST * f64::from(total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::loop_bench::baselines::random_candidate;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn failed_fraction(name: TaskName, n: usize) -> f64 {
        let task = Task::new(name).expect("task");
        let mut rng = StdRng::seed_from_u64(11);
        let failed = (0..n)
            .filter(|_| {
                task.score_candidate(&random_candidate(task.shape(), &mut rng))
                    .is_err()
            })
            .count();
        failed as f64 / n as f64
    }

    #[test]
    fn oracles_are_deterministic_across_builds_of_the_task() {
        for name in TaskName::ALL {
            let (a, b) = (
                Task::new(name).expect("task"),
                Task::new(name).expect("task"),
            );
            let mut rng = StdRng::seed_from_u64(3);
            for _ in 0..200 {
                let x = random_candidate(a.shape(), &mut rng);
                assert_eq!(a.score_candidate(&x), b.score_candidate(&x), "{name}");
                assert_eq!(a.score(&a.to_value(&x)), a.score_candidate(&x), "{name}");
                assert_eq!(a.entity(&x), b.entity(&x), "{name}");
            }
        }
    }

    /// The intended band is 20% to 40% of uniformly random values. With n = 4000 the
    /// standard error of a fraction near 0.3 is about 0.007, so the band's edges are more
    /// than five standard errors from any value that belongs inside it.
    #[test]
    fn a_fifth_to_two_fifths_of_random_values_fail() {
        for name in [TaskName::Motif, TaskName::Cocktail] {
            let fraction = failed_fraction(name, 4000);
            assert!(
                (0.20..=0.40).contains(&fraction),
                "{name}: {fraction:.3} of random values fail"
            );
        }
    }

    /// `adjacent` is built so that most random sequences fail: with 20 of 400 ordered pairs
    /// forbidden at each of 31 joins, about 1 - 0.95^31 = 0.80 fail. The band 70% to 90% is
    /// more than ten standard errors (0.006 at n = 4000) from 0.80 on each side.
    #[test]
    fn most_random_adjacent_peptides_fail() {
        let fraction = failed_fraction(TaskName::Adjacent, 4000);
        assert!(
            (0.70..=0.90).contains(&fraction),
            "{fraction:.3} of random values fail"
        );
    }

    /// `fragments`: six reactive pairs among 16 fragments; a random string of 2 to 10 tokens
    /// holds about 4.5 distinct fragments (10 pairs of them), so roughly a third to two
    /// fifths fail. The band 15% to 50% is wide for that approximation, and far wider than
    /// the standard error (about 0.008 at n = 4000).
    #[test]
    fn about_a_third_of_random_fragment_strings_fail() {
        let fraction = failed_fraction(TaskName::Fragments, 4000);
        assert!(
            (0.15..=0.50).contains(&fraction),
            "{fraction:.3} of random values fail"
        );
    }

    fn adjacent_landscape(task: &Task) -> &AdjacentLandscape {
        match &task.landscape {
            Landscape::Adjacent(l) => l,
            _ => panic!("adjacent landscape"),
        }
    }

    /// A feasible peptide holding `parts` at the given starts, the rest filled with the
    /// first residue that makes no forbidden pair with its neighbours.
    fn peptide_with(l: &AdjacentLandscape, parts: &[(usize, [u16; PART_LENGTH])]) -> State {
        let mut fixed: Vec<Option<u16>> = vec![None; PEPTIDE_LENGTH];
        for (start, part) in parts {
            for (k, &t) in part.iter().enumerate() {
                fixed[start + k] = Some(t);
            }
        }
        let mut x: Vec<u16> = Vec::with_capacity(PEPTIDE_LENGTH);
        for i in 0..PEPTIDE_LENGTH {
            let t = fixed[i].unwrap_or_else(|| {
                (0..20u16)
                    .find(|&t| {
                        x.last().is_none_or(|&p| !l.is_forbidden(p, t))
                            && fixed
                                .get(i + 1)
                                .copied()
                                .flatten()
                                .is_none_or(|n| !l.is_forbidden(t, n))
                    })
                    .expect("a residue that fits")
            });
            x.push(t);
        }
        State(x)
    }

    #[test]
    fn adjacent_fails_on_a_forbidden_pair_with_its_positions() {
        let task = Task::new(TaskName::Adjacent).expect("task");
        let l = adjacent_landscape(&task);
        let k = l
            .forbidden
            .iter()
            .position(|&f| f)
            .expect("a forbidden pair");
        let (a, b) = ((k / 20) as u16, (k % 20) as u16);
        let mut x = peptide_with(l, &[]).0;
        assert!(task.score_candidate(&State(x.clone())).is_ok());
        // Put the pair at positions 11..12 (1-based), after neighbours that allow it.
        x[10] = a;
        x[11] = b;
        let left_ok = !l.is_forbidden(x[9], a);
        let right_ok = !l.is_forbidden(b, x[12]);
        let e = task.score_candidate(&State(x)).expect_err("forbidden pair");
        if left_ok && right_ok {
            assert!(e.contains("positions 11..12"), "{e}");
        }
        assert!(e.contains("may not be neighbours"), "{e}");
    }

    #[test]
    fn adjacent_motifs_pay_only_when_all_their_parts_are_present() {
        let task = Task::new(TaskName::Adjacent).expect("task");
        let l = adjacent_landscape(&task);
        for motif in &l.motifs {
            let placed: Vec<(usize, [u16; PART_LENGTH])> = motif
                .parts
                .iter()
                .enumerate()
                .map(|(k, p)| (2 + 9 * k, *p))
                .collect();
            let whole = task
                .score_candidate(&peptide_with(l, &placed))
                .expect("feasible");
            let one_missing = task
                .score_candidate(&peptide_with(l, &placed[1..]))
                .expect("feasible");
            let first_only = task
                .score_candidate(&peptide_with(l, &placed[..1]))
                .expect("feasible");
            // Whole: the weight. One part missing: at most (2/3)^2 of it from chance matches
            // of the filler, plus the small fields (well under 0.1 of a weight here).
            assert!(
                whole - one_missing > 0.4 * motif.weight,
                "whole {whole:.3} vs one missing {one_missing:.3}"
            );
            assert!(
                whole - first_only > 0.4 * motif.weight,
                "whole {whole:.3} vs first part only {first_only:.3}"
            );
        }
    }

    #[test]
    fn fragment_strings_of_one_molecule_share_entity_score_and_object() {
        let task = Task::new(TaskName::Fragments).expect("task");
        let a = task.parse(&json!("Me-OH-H-Ph")).expect("a");
        let b = task.parse(&json!("H-Ph-H-Me-OH")).expect("b");
        let c = task.parse(&json!("Me-OH-Ph-Ph")).expect("c");
        assert_eq!(task.entity(&a).as_deref(), Some("Me-Ph-OH"));
        assert_eq!(task.entity(&a), task.entity(&b));
        assert_eq!(task.object(&a), task.object(&b));
        assert_eq!(task.score_candidate(&a), task.score_candidate(&b));
        assert_eq!(task.distance(&a, &b), 0.0);
        // A second Ph is another molecule: {Me, OH, Ph} vs {Me, OH, Ph, Ph}: 3 of 4 shared.
        assert_ne!(task.entity(&a), task.entity(&c));
        assert!((task.distance(&a, &c) - 0.25).abs() < 1e-12);
        let caps = task.parse(&json!("H-H")).expect("caps");
        assert_eq!(task.entity(&caps), None);
        assert!(task.score_candidate(&caps).is_err());
        // Tasks with a one-to-one encoding report no entity.
        let motif = Task::new(TaskName::Motif).expect("task");
        let x = motif
            .parse(&json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))
            .expect("x");
        assert_eq!((motif.entity(&x), motif.object(&x)), (None, x));
    }

    #[test]
    fn random_fragment_strings_keep_their_score_when_shuffled_and_capped() {
        let task = Task::new(TaskName::Fragments).expect("task");
        let mut rng = StdRng::seed_from_u64(9);
        let cap = FRAGMENTS.len() as u16;
        for _ in 0..300 {
            let x = random_candidate(task.shape(), &mut rng);
            let mut y = x.0.clone();
            y.reverse();
            if y.len() < FRAGMENTS_MAX_TOKENS {
                y.insert(y.len() / 2, cap);
            }
            let y = State(y);
            assert_eq!(task.score_candidate(&x), task.score_candidate(&y));
            assert_eq!(task.entity(&x), task.entity(&y));
        }
    }

    #[test]
    fn a_reactive_pair_fails_with_both_names() {
        let task = Task::new(TaskName::Fragments).expect("task");
        let Landscape::Fragments(l) = &task.landscape else {
            panic!("fragments landscape");
        };
        let (i, j) = l.reactive[0];
        let x = State(vec![i as u16, FRAGMENTS.len() as u16, j as u16]);
        let e = task.score_candidate(&x).expect_err("reactive");
        assert!(e.contains(FRAGMENTS[i]) && e.contains(FRAGMENTS[j]), "{e}");
    }

    #[test]
    fn each_infeasibility_rule_of_motif_has_its_reason() {
        let task = Task::new(TaskName::Motif).expect("task");
        let peptide = |s: &str| json!(s);
        // 17 hydrophobic residues spread out (no window of 7 holds 6).
        let aggregated = "LSLSLSLSLSLSLSLSLSLSLSLSLSLSLSLL";
        let hydrophobic = aggregated
            .chars()
            .filter(|c| "ACFILMVW".contains(*c))
            .count();
        assert_eq!(hydrophobic, 17);
        let e = task.score(&peptide(aggregated)).expect_err("aggregated");
        assert!(e.contains("17 hydrophobic"), "{e}");
        let patch = "SSSSSSSSSSLLLLLLSSSSSSSSSSSSSSSS";
        let e = task.score(&peptide(patch)).expect_err("patch");
        assert!(e.contains("patch at positions 10..16"), "{e}");
        let sequon = "SSSSSSSSSSSSSSSSSSSSNGTSSSSSSSSS";
        let e = task.score(&peptide(sequon)).expect_err("sequon");
        assert!(e.contains("position 21"), "{e}");
        // N-P-S is not a sequon: proline blocks it.
        assert!(task
            .score(&peptide("SSSSSSSSSSSSSSSSSSSSNPSSSSSSSSSS"))
            .is_ok());
        assert!(task.score(&json!("SHORT")).is_err());
    }

    #[test]
    fn planted_motifs_in_their_windows_dominate_the_motif_score() {
        let task = Task::new(TaskName::Motif).expect("task");
        // Polar filler, the three motifs at the start of their windows.
        let mut letters: Vec<char> = "QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ".chars().collect();
        for (motif, at) in [("RGDSP", 2), ("KLVFFA", 12), ("HPQY", 23)] {
            for (k, c) in motif.chars().enumerate() {
                letters[at + k] = c;
            }
        }
        let planted: String = letters.iter().collect();
        let filler = "QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ";
        let best = task.score(&json!(planted)).expect("feasible");
        let plain = task.score(&json!(filler)).expect("feasible");
        assert!(best - plain > 6.0, "planted {best:.2} vs filler {plain:.2}");
        // The same motifs far from their windows earn much less.
        let moved = "KLVFFAQQQQHPQYQQQQQQQQQQQQQRGDSP";
        let displaced = task.score(&json!(moved)).expect("feasible");
        assert!(
            best - displaced > 3.0,
            "planted {best:.2} vs moved {displaced:.2}"
        );
    }

    #[test]
    fn incompatible_components_precipitate_and_costs_add_up() {
        let task = Task::new(TaskName::Cocktail).expect("task");
        let Landscape::Cocktail(landscape) = &task.landscape else {
            panic!("cocktail landscape");
        };
        let (i, j) = landscape.incompatible[0];
        let third = (0..40)
            .find(|k| {
                *k != i
                    && *k != j
                    && !landscape.incompatible.iter().any(|p| {
                        [i, j].contains(&p.0) && p.1 == *k || [i, j].contains(&p.1) && p.0 == *k
                    })
            })
            .expect("a third component");
        let mut items = vec![i as u16, j as u16, third as u16];
        items.sort_unstable();
        let e = task
            .score_candidate(&State(items))
            .expect_err("precipitates");
        assert!(
            e.contains(MEDIUM_COMPONENTS[i]) && e.contains(MEDIUM_COMPONENTS[j]),
            "{e}"
        );
    }

    #[test]
    fn distances_are_normalised_to_the_unit_interval() {
        let task = Task::new(TaskName::Motif).expect("task");
        let a = task
            .parse(&json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))
            .expect("a");
        let b = task
            .parse(&json!("CCCCCCCCAAAAAAAAAAAAAAAAAAAAAAAA"))
            .expect("b");
        assert_eq!(task.distance(&a, &b), 0.25);
        assert_eq!(task.distance(&a, &a), 0.0);
        let task = Task::new(TaskName::Cocktail).expect("task");
        let a = task
            .parse(&json!(["glucose", "insulin", "egf"]))
            .expect("a");
        let b = task
            .parse(&json!(["glucose", "insulin", "lif", "zinc_sulfate"]))
            .expect("b");
        // |a ∩ b| = 2, |a ∪ b| = 5.
        assert!((task.distance(&a, &b) - 0.6).abs() < 1e-12);
    }
}
