//! What one step of a campaign costs in memory, computed from its settings before anything is
//! allocated, so that the server can refuse a campaign, a round or a preview that would not
//! fit (`--max-step-memory`) instead of dying of it.
//!
//! Two kinds of step are priced:
//!
//! - a **training step**, with what a training run holds while it steps: the policy network
//!   with its gradients and Adam's moments, the proxy ensembles being fit, the pool of
//!   local-search candidates the run replays, and one batch of `training.batch_size`
//!   trajectories laid out for the network's single forward and backward pass;
//! - a **sampling step** of a round (or a preview) of a given batch: every walk drawn at once
//!   with its states, refinement's copies of them and the network's outputs for every state
//!   visited, plus one chunk of network work.
//!
//! Each figure follows the shapes the engine allocates (`gfn::train`, `gfn::objective`,
//! `gfn::sampler`, `gfn::propose`, `gfn::refine`, the trainer's recipe) and rounds up where
//! they vary: every trajectory is as long as the space allows, every state holds as many
//! codes as it can, every temporary of the loss is alive at once. What the labels cost (the
//! proxy's training data, the seen-set of a round) grows with the campaign's data, not its
//! settings, and is not priced here. `tests/step_memory.rs` runs real steps and
//! checks that these figures bound their peak resident memory.
//!
//! Pure arithmetic: no I/O, nothing allocated beyond a few numbers.

use crate::domain::campaign::CampaignSpec;
use crate::domain::round::MAX_BATCH_SIZE;
use crate::error::Error;
use crate::gfn::{Objective, Space};

/// Bytes of one f32: every tensor of the engine.
const F32: u128 = 4;
/// Bytes a stored state costs beyond its codes: the `Vec` header (24) and, conservatively,
/// the allocator's bookkeeping and rounding of its buffer (16).
const STATE_OVERHEAD: u128 = 40;
/// Bytes of one code of a state (`u16`).
const CODE: u128 = 2;
/// Bytes of one action index (`usize`) kept with each state of a walk.
const ACTION: u128 = 8;
/// Bytes of what a scored candidate carries beside its state: its score (`f64`) and the
/// proxy's prediction (five `f64`).
const SCORED: u128 = 48;

/// Candidates of the trainer's local-search pool per trajectory of a batch: the training
/// recipe draws its local-search trajectories from a pool this many times the batch.
pub const LOCAL_POOL_PER_TRAJECTORY: usize = 16;
/// Uniform draws whose proxy reward estimates a fresh network's log Z in the recipe.
pub const LOG_Z_SAMPLES: usize = 256;
/// Rows a proxy ensemble's fit takes per member and step (the surrogate's fit batch).
pub const PROXY_FIT_BATCH: usize = 64;
/// Ensembles a surrogate fits: the regression and, once candidates fail, the feasibility.
const PROXY_ENSEMBLES: u128 = 2;
/// Per row of a training step's forward pass: f32 values per action of the output and the
/// loss: the output, its autograd copy and its gradient (3 x 2 columns per action), the
/// forward mask, the masked logits, log-softmax with its temporaries, the backward head's
/// mask, logits and log-softmax, and autograd's gradient of each (16), and as much again
/// for what candle's operations keep besides: measured (`tests/step_memory.rs`), a space
/// with many actions needs about 21.
const LOSS_VALUES_PER_ACTION: u128 = 32;
/// Per row of a training step: f32 values of the index, weight and reward vectors of the
/// layout (`pf_index`, `pb_index`, `pb_weight`, `next_row`, `is_last`, `log_reward_rows`,
/// `traj_of_row`, and one spare).
const LAYOUT_VALUES_PER_ROW: u128 = 8;
/// Per pair of nodes of SubTB: bytes of its two indices, its weight (f64, then f32) and the
/// residual's temporaries and gradients (eight f32).
const SUBTB_BYTES_PER_PAIR: u128 = 52;
/// Copies of each walk a round's refinement holds at once: the walk (its backtrack), the
/// reconstruction and the states gathered for one network call.
const REFINE_COPIES: u128 = 3;

/// The budget of a process that sets none, in bytes: 256 MiB. Up to 8 training runs take
/// turns (each holding its networks, moments and pool between turns, one of them stepping)
/// while 2 rounds draw: about 10 budgets at worst, 2.5 GiB, within a 4 GiB machine.
pub const DEFAULT_BUDGET: u64 = 256 << 20;

/// The chunk of network work (`gfn::memory`) that a budget allows: an eighth of it, between
/// 1 MiB and 64 MiB.
pub fn chunk_bytes_for(budget: u64) -> usize {
    let eighth = usize::try_from(budget / 8).unwrap_or(usize::MAX);
    eighth.clamp(
        crate::gfn::memory::MIN_CHUNK_BYTES,
        crate::gfn::memory::DEFAULT_CHUNK_BYTES,
    )
}

/// The shape of a space as far as memory goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpaceShape {
    /// Width of the encoding the networks read.
    pub encoding: usize,
    /// Forward actions, the stop action included.
    pub actions: usize,
    /// Most non-stop moves of a trajectory: it holds one state more.
    pub depth: usize,
    /// Codes of the initial state; each move adds at most one, up to `state_codes`.
    pub initial_codes: usize,
    /// Most codes of one state.
    pub state_codes: usize,
    /// Most parents of one state: 1 on trees; otherwise each parent undoes one move, which
    /// changes one code of the state (an item of a set, a coordinate of a grid point) and is
    /// one of the actions.
    pub parents: usize,
}

impl SpaceShape {
    /// The shape of `space`, read off its [`Space`] methods.
    pub fn of(space: &dyn Space) -> Self {
        let actions = space.n_actions();
        let state_codes = space.max_state_codes();
        Self {
            encoding: space.encoding_dim(),
            actions,
            depth: space.max_depth(),
            initial_codes: space.initial().0.len().min(state_codes),
            state_codes,
            parents: if space.is_tree() {
                1
            } else {
                state_codes.min(actions.saturating_sub(1)).max(1)
            },
        }
    }

    /// Most states of one trajectory.
    fn states(&self) -> u128 {
        self.depth as u128 + 1
    }

    /// Bytes of one stored state at its largest.
    fn state_bytes(&self) -> u128 {
        STATE_OVERHEAD + CODE * self.state_codes as u128
    }

    /// Bytes of the states of one trajectory at its longest: the state after `t` moves
    /// holds at most `min(state_codes, initial_codes + t)` codes.
    fn path_state_bytes(&self) -> u128 {
        let states = self.states();
        let first = self.initial_codes as u128;
        let most = self.state_codes as u128;
        // States still growing (fewer than `most` codes), then every later one at `most`.
        let growing = states.min(most.saturating_sub(first));
        let codes =
            growing * first + growing * growing.saturating_sub(1) / 2 + (states - growing) * most;
        states * STATE_OVERHEAD + CODE * codes
    }

    /// Bytes of one walk at its longest: every state with the action taken there.
    fn path_bytes(&self) -> u128 {
        self.path_state_bytes() + self.states() * ACTION
    }
}

/// The settings of a campaign that its cost depends on, with its space's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignCost {
    pub shape: SpaceShape,
    /// Width of the proxy's inputs (`proxy::features`), which the caller computes.
    pub proxy_inputs: usize,
    hidden: usize,
    layers: usize,
    objective: Objective,
    batch_size: usize,
    pool: usize,
    pool_walk: usize,
    /// Share of a round's pool from local search.
    local_share: f64,
    training_local_search: bool,
    proxy_members: usize,
    proxy_hidden: usize,
    /// The engine's chunk of network work ([`crate::gfn::memory::chunk_bytes`]).
    chunk_bytes: usize,
}

/// Why something does not fit: the field to name and the message.
fn refused(field: &str, message: String) -> Error {
    Error::invalid(field, message)
}

impl CampaignCost {
    /// The cost of `spec` over `space` (its own space, built) with a proxy of `proxy_inputs`
    /// inputs, at the process's chunk of network work; the `admit_*` checks price it with
    /// the chunk their budget gives instead.
    pub fn new(spec: &CampaignSpec, space: &dyn Space, proxy_inputs: usize) -> Self {
        let training = &spec.training;
        Self {
            shape: SpaceShape::of(space),
            proxy_inputs,
            hidden: spec.model.hidden,
            layers: spec.model.layers,
            objective: spec.model.objective,
            batch_size: training.batch_size,
            pool: spec.round.pool,
            pool_walk: spec.round.pool_walk,
            local_share: spec.round.pool_local_search,
            training_local_search: training.mix.local_search > 0.0,
            proxy_members: training.proxy.members,
            proxy_hidden: training.proxy.hidden,
            chunk_bytes: crate::gfn::memory::chunk_bytes(),
        }
    }

    /// Parameters of the policy network: `encoding -> hidden (x layers) -> 2 actions`,
    /// weights and biases, and log Z.
    pub fn policy_parameters(&self) -> u128 {
        let e = self.shape.encoding as u128;
        let h = self.hidden as u128;
        let out = 2 * self.shape.actions as u128;
        let deeper = (self.layers as u128).saturating_sub(1);
        (e * h + h) + deeper * (h * h + h) + (h * out + out) + 1
    }

    /// Parameters of one proxy ensemble: per member, `inputs -> hidden -> hidden -> 1`.
    pub fn proxy_parameters(&self) -> u128 {
        let d = self.proxy_inputs as u128;
        let h = self.proxy_hidden as u128;
        self.proxy_members as u128 * ((d * h + h) + (h * h + h) + (h + 1))
    }

    /// Rows of one trajectory in a training step's forward pass: its states, and with flow
    /// matching the parents of each that the layout appends.
    pub fn rows_per_trajectory(&self) -> u128 {
        let parents = match self.objective {
            Objective::Fm => self.shape.parents as u128,
            _ => 0,
        };
        self.shape.states() * (1 + parents)
    }

    /// f32 values of one row of a training step: the encoding and the copy its transpose
    /// may take for the first layer's gradient, every cached hidden activation and three
    /// temporaries of a layer (product, activation, gradient), the loss's values per action
    /// and the layout's vectors.
    fn training_row_values(&self) -> u128 {
        let e = self.shape.encoding as u128;
        let h = self.hidden as u128;
        let a = self.shape.actions as u128;
        2 * e + (self.layers as u128 + 3) * h + LOSS_VALUES_PER_ACTION * a + LAYOUT_VALUES_PER_ROW
    }

    /// Bytes of a training step that grow with each trajectory of the batch.
    pub fn training_bytes_per_trajectory(&self) -> u128 {
        let shape = &self.shape;
        let rows = self.rows_per_trajectory();
        // The tensors of the forward and backward pass.
        let mut bytes = rows * self.training_row_values() * F32;
        // The trajectory's states and actions, the layout's copy of them, and of the parents
        // flow matching appends.
        bytes += shape.path_bytes()
            + shape.path_state_bytes()
            + (rows - shape.states()) * shape.state_bytes();
        match self.objective {
            Objective::Fm => {
                // The index of rows by state (a copy of each), and the in-edge indices of
                // every visited state (built, then a tensor).
                bytes += rows * (shape.state_bytes() + 32);
                bytes += shape.states() * (shape.parents as u128 + 1) * 2 * F32;
            }
            Objective::Subtb => {
                // Every pair of nodes of the trajectory (its states and its reward node).
                let nodes = shape.states() + 1;
                bytes += nodes * nodes / 2 * SUBTB_BYTES_PER_PAIR + 2 * nodes * F32;
            }
            Objective::Tb | Objective::Db => {}
        }
        if self.training_local_search {
            // The local-search pool the run replays: chains walked on the proxy's reward,
            // every visited state kept with its score.
            bytes += LOCAL_POOL_PER_TRAJECTORY as u128
                * (self.pool_walk as u128 + 1)
                * (shape.state_bytes() + SCORED);
        }
        bytes
    }

    /// Bytes of a training run whatever its batch: the policy's parameters nine times over
    /// (weights, gradient tensors, their host copies, Adam's two moments, the update's copy,
    /// and the checkpoint the run resumed from with its moments), a proxy ensemble six times
    /// over (the one being fit: weights, gradients, AdamW's two moments, the best weights
    /// early stopping keeps; the other one's weights) with one fit step's activations, the
    /// walks of log Z's estimate, SubTB's triangular matrix, and one chunk of network work
    /// each for the policy and the proxy.
    pub fn training_fixed_bytes(&self) -> u128 {
        let shape = &self.shape;
        let mut bytes = self.policy_parameters() * 9 * F32;
        bytes += self.proxy_parameters() * 6 * F32;
        let proxy_row = self.proxy_inputs as u128 + 3 * self.proxy_hidden as u128 + 2;
        bytes += self.proxy_members as u128 * PROXY_FIT_BATCH as u128 * proxy_row * 2 * F32;
        bytes += LOG_Z_SAMPLES as u128 * shape.path_bytes();
        if self.objective == Objective::Subtb {
            let nodes = shape.states() + 1;
            bytes += nodes * nodes * F32;
        }
        bytes + 2 * self.chunk_bytes as u128
    }

    /// Bytes of a training step of `batch` trajectories.
    pub fn training_step_bytes_at(&self, batch: usize) -> u128 {
        self.training_fixed_bytes() + batch as u128 * self.training_bytes_per_trajectory()
    }

    /// Bytes of a training step at the campaign's `training.batch_size`.
    pub fn training_step_bytes(&self) -> u128 {
        self.training_step_bytes_at(self.batch_size)
    }

    /// Walks a round of `batch` candidates may hold at once: its whole pool (`round.pool`
    /// per candidate, local share included, since a round without elites samples all of it
    /// from the policy), or the last escalating draw when the policy repeats itself.
    pub fn round_walks(&self, batch: usize) -> u128 {
        let n = batch as u128;
        let last_draw =
            crate::gfn::propose::escalating_draw(batch, crate::gfn::propose::DRAW_ATTEMPTS - 1)
                as u128;
        (n * self.pool.max(1) as u128).max(last_draw)
    }

    /// Local-search chains of a round of `batch` candidates (`round.pool_local_search` of
    /// its pool, rounded as the engine rounds it).
    fn round_chains(&self, batch: usize) -> u128 {
        let pool_n = batch as u128 * self.pool.max(1) as u128;
        ((pool_n as f64 * self.local_share.clamp(0.0, 1.0)).round() as u128).min(pool_n)
    }

    /// Bytes of a round's draw of `batch` candidates: every walk with refinement's copies
    /// of it and the network's outputs for each of its states (refinement asks for them in
    /// one call; conservative search's guided walks hold about as much, measured), the
    /// local-search chains with every state they visit, a score and prediction for each,
    /// the model's weights, and one chunk of network work each for the policy and the
    /// proxy.
    pub fn round_bytes(&self, batch: usize) -> u128 {
        let shape = &self.shape;
        let walks = self.round_walks(batch);
        let outputs = shape.states() * 2 * shape.actions as u128 * F32;
        let mut bytes = walks * (REFINE_COPIES * shape.path_bytes() + outputs + SCORED);
        bytes += self.round_chains(batch)
            * (self.pool_walk as u128 + 1)
            * (shape.state_bytes() + SCORED);
        bytes += self.policy_parameters() * F32;
        bytes += PROXY_ENSEMBLES * self.proxy_parameters() * F32;
        bytes + 2 * self.chunk_bytes as u128
    }

    /// Bytes of a preview of `n` draws: each walk with its states and the outputs of one
    /// step, the model's weights and one chunk of network work.
    pub fn preview_bytes(&self, n: usize) -> u128 {
        let shape = &self.shape;
        let per_walk = shape.path_bytes() + 2 * shape.actions as u128 * F32;
        n as u128 * per_walk + self.policy_parameters() * F32 + self.chunk_bytes as u128
    }

    /// The same campaign at the smallest settings: one trajectory per step, the narrowest
    /// networks, no pool. What is left is the space's own cost.
    fn smallest(&self) -> Self {
        Self {
            hidden: 1,
            layers: 1,
            batch_size: 1,
            pool: 1,
            pool_walk: 0,
            proxy_members: 1,
            proxy_hidden: 1,
            ..self.clone()
        }
    }

    /// The same campaign priced with the chunk of network work that `budget` gives: what a
    /// server with that budget runs with (see [`chunk_bytes_for`]).
    fn under(&self, budget: u64) -> Self {
        Self {
            chunk_bytes: chunk_bytes_for(budget),
            ..self.clone()
        }
    }

    /// Bytes of one training step on a server whose `--max-step-memory` is `budget` (the
    /// figure [`Self::admit_training`] holds against it).
    pub fn training_step_bytes_under(&self, budget: u64) -> u128 {
        self.under(budget).training_step_bytes()
    }

    /// Refuses a campaign whose training step, or whose round of one candidate, needs more
    /// than `budget` bytes; the error names the field to change, the round settings under
    /// `round_block` (`round`, or `training` for a body that wrote them there).
    pub fn admit_campaign(&self, budget: u64, round_block: &str) -> Result<(), Error> {
        self.admit_training(budget)?;
        let this = self.under(budget);
        let need = this.round_bytes(1);
        if need > u128::from(budget) {
            let field = if this.smallest().round_bytes(1) <= u128::from(budget) {
                format!("{round_block}.pool")
            } else {
                "space".to_owned()
            };
            return Err(refused(
                &field,
                format!(
                    "a round of one candidate needs {}, limit {} (--max-step-memory); lower {round_block}.pool, {round_block}.pool_walk or the space's size",
                    human(need),
                    human(u128::from(budget)),
                ),
            ));
        }
        Ok(())
    }

    /// Refuses a training step that needs more than `budget` bytes, naming
    /// `training.batch_size` when fewer trajectories would fit, `model.hidden` when a
    /// smaller network would, and `space` when nothing would.
    pub fn admit_training(&self, budget: u64) -> Result<(), Error> {
        let this = self.under(budget);
        this.check_training(budget)
    }

    fn check_training(&self, budget: u64) -> Result<(), Error> {
        let need = self.training_step_bytes();
        let limit = u128::from(budget);
        if need <= limit {
            return Ok(());
        }
        let shape = &self.shape;
        let figures = format!(
            "a training step needs {} ({} of up to {} states, an encoding {} wide, {} policy parameters), limit {} (--max-step-memory)",
            human(need),
            count(self.batch_size, "trajectory", "trajectories"),
            shape.states(),
            shape.encoding,
            self.policy_parameters(),
            human(limit),
        );
        let fixed = self.training_fixed_bytes();
        let per_trajectory = self.training_bytes_per_trajectory();
        if fixed + per_trajectory <= limit {
            let fits = (limit - fixed) / per_trajectory.max(1);
            return Err(refused(
                "training.batch_size",
                format!(
                    "{figures}; at most {fits} trajectories per step fit: lower training.batch_size, model.hidden or the space's size"
                ),
            ));
        }
        if self.smallest().training_step_bytes() <= limit {
            return Err(refused(
                "model.hidden",
                format!(
                    "{figures}; not even one trajectory per step fits this network: lower model.hidden, model.layers, training.proxy.hidden or the space's size"
                ),
            ));
        }
        Err(refused(
            "space",
            format!(
                "{figures}; not even one trajectory of this space fits with the smallest network: shorten or narrow the space"
            ),
        ))
    }

    /// The pool a round of `batch` candidates may screen within `budget` bytes: the
    /// campaign's `round.pool`, or the largest smaller one that fits, so that a large batch
    /// screens less rather than being refused. Refuses the round, naming `batch_size` with
    /// the largest batch that fits, when not even a pool of one fits.
    pub fn admit_round(&self, batch: usize, budget: u64) -> Result<usize, Error> {
        self.under(budget).check_round(batch, budget)
    }

    fn check_round(&self, batch: usize, budget: u64) -> Result<usize, Error> {
        let limit = u128::from(budget);
        let with_pool = |pool: usize| Self {
            pool,
            ..self.clone()
        };
        let pool = largest_fitting(self.pool.max(1), |p| {
            with_pool(p).round_bytes(batch) <= limit
        });
        if pool > 0 {
            return Ok(pool);
        }
        let least = with_pool(1);
        let need = least.round_bytes(batch);
        let fits = largest_fitting(MAX_BATCH_SIZE, |n| least.round_bytes(n) <= limit);
        Err(refused(
            "batch_size",
            format!(
                "a round of {} needs {} ({} walks of up to {} states), limit {} (--max-step-memory); {}",
                count(batch, "candidate", "candidates"),
                human(need),
                least.round_walks(batch),
                self.shape.states(),
                human(limit),
                fitting_advice(fits, "candidates per round"),
            ),
        ))
    }

    /// Refuses a preview of `n` draws that needs more than `budget` bytes, naming `n`.
    pub fn admit_preview(&self, n: usize, max: usize, budget: u64) -> Result<(), Error> {
        self.under(budget).check_preview(n, max, budget)
    }

    fn check_preview(&self, n: usize, max: usize, budget: u64) -> Result<(), Error> {
        let need = self.preview_bytes(n);
        let limit = u128::from(budget);
        if need <= limit {
            return Ok(());
        }
        let fits = largest_fitting(max, |k| self.preview_bytes(k) <= limit);
        Err(refused(
            "n",
            format!(
                "a preview of {} needs {}, limit {} (--max-step-memory); {}",
                count(n, "draw", "draws"),
                human(need),
                human(limit),
                fitting_advice(fits, "draws"),
            ),
        ))
    }
}

/// `n` and the noun, singular or plural.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn fitting_advice(fits: usize, what: &str) -> String {
    if fits == 0 {
        "not even one fits this campaign's settings (round.pool, round.pool_walk) and space".into()
    } else {
        format!("at most {fits} {what} fit")
    }
}

/// The largest `n` in `1..=max` with `fits(n)` for a `fits` that holds up to some point and
/// not beyond; 0 when not even 1 fits.
fn largest_fitting(max: usize, fits: impl Fn(usize) -> bool) -> usize {
    if !fits(1) {
        return 0;
    }
    let (mut good, mut bad) = (1, max.saturating_add(1));
    if fits(max) {
        return max;
    }
    while bad - good > 1 {
        let mid = good + (bad - good) / 2;
        if fits(mid) {
            good = mid;
        } else {
            bad = mid;
        }
    }
    good
}

/// Bytes as people read them: binary units, one decimal where it is not whole.
pub fn human(bytes: u128) -> String {
    const UNITS: [&str; 7] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        return format!("{bytes} bytes");
    }
    let rounded = (value * 10.0).round() / 10.0;
    if rounded.fract() == 0.0 {
        format!("{rounded:.0} {}", UNITS[unit])
    } else {
        format!("{rounded:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::domain::campaign::{NewCampaign, RoundSpec};
    use crate::gfn::{GflowNet, GfnConfig};
    use rand::SeedableRng;
    use serde_json::json;
    use std::sync::Arc;

    fn spec(body: serde_json::Value) -> CampaignSpec {
        let campaign: NewCampaign = serde_json::from_value(body).expect("a campaign body");
        campaign.validate().expect("valid settings")
    }

    /// The cost with the proxy reading the space's encoding (`onehot`, the default).
    fn cost_of(spec: &CampaignSpec) -> CampaignCost {
        let space = spec.space.build().expect("space");
        CampaignCost::new(spec, space.as_ref(), space.encoding_dim())
    }

    fn sequence(tokens: usize, length: usize, training: serde_json::Value) -> CampaignSpec {
        let alphabet: Vec<String> = (0..tokens).map(|i| format!("t{i}")).collect();
        spec(
            json!({"name": "s", "space": {"type": "sequence", "alphabet": alphabet,
            "min_length": length, "max_length": length, "separator": "-"},
            "training": training}),
        )
    }

    #[test]
    fn policy_parameters_are_those_of_the_network() {
        for (space, hidden, layers) in [
            (json!({"type": "grid", "dims": 3, "size": 5}), 16, 1),
            (json!({"type": "grid", "dims": 2, "size": 4}), 8, 3),
            (
                json!({"type": "set", "items": ["a", "b", "c", "d"], "min_size": 0, "max_size": 3}),
                32,
                2,
            ),
        ] {
            let spec = spec(json!({"name": "p", "space": space,
                "model": {"hidden": hidden, "layers": layers}}));
            let space: Arc<dyn Space> = Arc::from(spec.space.build().expect("space"));
            let config = GfnConfig {
                hidden,
                layers,
                ..GfnConfig::default()
            };
            let mut rng = rand::rngs::StdRng::seed_from_u64(1);
            let net = GflowNet::new(space.clone(), config, &mut rng).expect("network");
            // Every parameter the network holds, log Z included.
            let counted: usize = net
                .mlp
                .named_vars()
                .iter()
                .map(|(_, v)| v.as_tensor().elem_count())
                .sum::<usize>()
                + net.log_z.as_tensor().elem_count();
            let cost = CampaignCost::new(&spec, space.as_ref(), 1);
            assert_eq!(cost.policy_parameters(), counted as u128);
        }
    }

    #[test]
    fn a_small_grid_costs_what_its_shapes_say() {
        // A 2 x 3 grid: encoding 2 * 3 = 6, actions 2 + stop = 3, at most 2 * (3 - 1) = 4
        // moves (5 states), each state 2 codes. Network 6 -> 4 -> 6 (one hidden layer).
        let spec = spec(
            json!({"name": "g", "space": {"type": "grid", "dims": 2, "size": 3},
            "model": {"hidden": 4, "layers": 1}, "training": {"batch_size": 1}}),
        );
        let cost = cost_of(&spec);
        // trunk.0 [6, 4] + [4], head [4, 6] + [6], log Z.
        assert_eq!(cost.policy_parameters(), 24 + 4 + 24 + 6 + 1);
        assert_eq!(cost.rows_per_trajectory(), 5);
        // Per row: encoding twice (12), 1 + 3 hidden-wide values (16), 32 per action (96),
        // 8 of the layout: 132 f32 = 528 bytes; five rows.
        let rows = 5 * 528;
        // Five states of 2 codes: 5 * (40 + 4) bytes, once in the trajectory (with an
        // action of 8 bytes each) and once in the layout.
        let states = 5 * 44 + 5 * 8 + 5 * 44;
        // The local-search pool: 16 chains of 10 + 1 states, each with 48 bytes of score.
        let pool = 16 * 11 * (44 + 48);
        assert_eq!(
            cost.training_bytes_per_trajectory(),
            (rows + states + pool) as u128
        );
        // A round of one: the last escalating draw, 7 * 8 = 56 walks, outnumbers its pool of
        // 16; a round of 100 holds its pool, 16 * 100.
        assert_eq!(cost.round_walks(1), 56);
        assert_eq!(cost.round_walks(100), 1600);
    }

    #[test]
    fn a_sequence_walk_holds_states_of_every_length() {
        // 4 tokens, length 6: states of 0, 1, ..., 6 codes.
        let cost = cost_of(&sequence(4, 6, json!({})));
        let codes = 6 * 7 / 2;
        assert_eq!(cost.shape.path_state_bytes(), 7 * 40 + 2 * codes);
        assert_eq!(cost.shape.path_bytes(), 7 * 40 + 2 * codes + 7 * 8);
    }

    #[test]
    fn training_grows_linearly_with_the_batch_and_rounds_with_theirs() {
        let cost = cost_of(&sequence(20, 32, json!({})));
        let at = |b| cost.training_step_bytes_at(b);
        assert!(at(2) > at(1));
        assert_eq!(at(2) - at(1), at(3) - at(2));
        assert_eq!(
            at(200) - at(100),
            100 * cost.training_bytes_per_trajectory()
        );
        // Rounds: past the fallback's floor of 8, each candidate adds the same.
        let round = |n| cost.round_bytes(n);
        assert_eq!(round(3000) - round(2000), round(2000) - round(1000));
        assert_eq!(
            cost.round_walks(1),
            cost.round_walks(3),
            "at least 8 x 7 walks"
        );
        assert!(cost.round_bytes(1000) > cost.round_bytes(100));
        let wider = cost_of(&sequence(20, 32, json!({"pool": 32})));
        assert!(wider.round_bytes(1000) > cost.round_bytes(1000));
    }

    #[test]
    fn flow_matching_adds_the_parents_as_rows() {
        let tb = spec(json!({"name": "g", "space": {"type": "grid", "dims": 3, "size": 4}}));
        let mut fm = tb.clone();
        fm.model.objective = Objective::Fm;
        // Three coordinates: at most three parents per state.
        assert_eq!(cost_of(&fm).rows_per_trajectory(), 10 * 4);
        assert_eq!(cost_of(&tb).rows_per_trajectory(), 10);
    }

    #[test]
    fn the_defaults_and_usual_campaigns_fit_the_default_budget() {
        for body in [
            json!({"type": "sequence", "alphabet": ["A","C","G","T"], "min_length": 8, "max_length": 8}),
            json!({"type": "grid", "dims": 4, "size": 8}),
            json!({"type": "set", "items": (0..40).map(|i| format!("m{i}")).collect::<Vec<_>>(),
                   "min_size": 3, "max_size": 8}),
        ] {
            let cost = cost_of(&spec(json!({"name": "usual", "space": body})));
            cost.admit_campaign(DEFAULT_BUDGET, "round")
                .expect("admitted");
            let pool = cost
                .admit_round(1000, DEFAULT_BUDGET)
                .expect("a round of 1000");
            assert_eq!(
                pool,
                RoundSpec::default().pool,
                "a round of 1000 at the full pool"
            );
            cost.admit_preview(1000, 1000, DEFAULT_BUDGET)
                .expect("the largest preview");
        }
        // 32-residue peptides, the demo's and the benchmarks' campaign.
        let peptides = cost_of(&sequence(20, 32, json!({"batch_size": 64})));
        peptides
            .admit_campaign(DEFAULT_BUDGET, "round")
            .expect("admitted");
        let full = RoundSpec::default().pool;
        let pool = peptides
            .admit_round(100, DEFAULT_BUDGET)
            .expect("a round of 100");
        assert_eq!(pool, full, "a round of 100 at the full pool");
        // A round of 1000 screens what fits, at least half the pool.
        let pool = peptides
            .admit_round(1000, DEFAULT_BUDGET)
            .expect("a round of 1000");
        assert!(pool * 2 >= full && pool <= full, "pool {pool}");
    }

    #[test]
    fn a_large_round_screens_the_largest_pool_that_fits() {
        let cost = cost_of(&sequence(20, 32, json!({})));
        let priced = cost.under(DEFAULT_BUDGET);
        let at = |pool: usize, batch: usize| {
            CampaignCost {
                pool,
                ..priced.clone()
            }
            .round_bytes(batch)
        };
        let limit = u128::from(DEFAULT_BUDGET);
        // The largest batch at the full pool, and one more.
        let full = RoundSpec::default().pool;
        let batch = largest_fitting(MAX_BATCH_SIZE, |n| at(full, n) <= limit) + 1;
        let pool = cost.admit_round(batch, DEFAULT_BUDGET).expect("admitted");
        assert!(pool < full, "pool {pool} for a batch of {batch}");
        assert!(at(pool, batch) <= limit);
        assert!(at(pool + 1, batch) > limit);
    }

    fn refusal(result: Result<(), Error>) -> (String, String) {
        match result {
            Err(Error::Invalid { field, reason }) => (field, reason),
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn a_long_sequence_with_a_large_batch_names_the_batch_size_and_what_fits() {
        let cost = cost_of(&sequence(2, 512, json!({"batch_size": 4096})));
        let (field, reason) = refusal(cost.admit_campaign(DEFAULT_BUDGET, "round"));
        // Priced as a server with that budget prices it.
        let cost = cost.under(DEFAULT_BUDGET);
        assert_eq!(field, "training.batch_size", "{reason}");
        assert!(reason.contains("limit 256 MiB"), "{reason}");
        // The batch it names fits, one more does not.
        let fits: usize = reason
            .split("at most ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .expect("a number of trajectories");
        assert!(fits > 0 && fits < 4096, "{reason}");
        assert!(cost.training_step_bytes_at(fits) <= u128::from(DEFAULT_BUDGET));
        assert!(cost.training_step_bytes_at(fits + 1) > u128::from(DEFAULT_BUDGET));
    }

    #[test]
    fn a_space_too_large_at_any_settings_names_the_space() {
        let cost = cost_of(&spec(
            json!({"name": "huge", "space": {"type": "grid", "dims": 16, "size": 1024}}),
        ));
        let (field, reason) = refusal(cost.admit_campaign(DEFAULT_BUDGET, "round"));
        assert_eq!(field, "space", "{reason}");
        assert!(reason.contains("GiB"), "{reason}");
        // A wide network on a modest space: the network is what to shrink.
        let wide = cost_of(&spec(json!({"name": "wide", "space": {"type": "sequence",
            "alphabet": (0..64).map(|i| format!("t{i}")).collect::<Vec<_>>(),
            "min_length": 64, "max_length": 64, "separator": "-"},
            "model": {"hidden": 4096}, "training": {"batch_size": 1}})));
        let (field, reason) = refusal(wide.admit_training(DEFAULT_BUDGET));
        assert_eq!(field, "model.hidden", "{reason}");
    }

    #[test]
    fn a_round_too_large_names_the_batch_size_and_what_fits() {
        let mut spec = sequence(1024, 8, json!({}));
        spec.model.hidden = 64;
        let cost = cost_of(&spec);
        cost.admit_campaign(DEFAULT_BUDGET, "round")
            .expect("admitted");
        let (field, reason) = refusal(cost.admit_round(10_000, DEFAULT_BUDGET).map(|_| ()));
        assert_eq!(field, "batch_size", "{reason}");
        // What fits is counted at a pool of one, the least a round screens.
        let priced = CampaignCost {
            pool: 1,
            ..cost.under(DEFAULT_BUDGET)
        };
        let fits = largest_fitting(MAX_BATCH_SIZE, |n| {
            priced.round_bytes(n) <= u128::from(DEFAULT_BUDGET)
        });
        assert!(
            reason.contains(&format!("at most {fits} candidates")),
            "{reason}"
        );
        assert!(cost.admit_round(fits, DEFAULT_BUDGET).is_ok());
        assert!(cost.admit_round(fits + 1, DEFAULT_BUDGET).is_err());
        // 1000 walks of 9 states with 2050 outputs each (8.7 MB), the weights (2.6 MB) and
        // a 1 MiB chunk: over 8 MiB; a tenth of the walks is not.
        let (field, reason) = refusal(cost.admit_preview(1000, 1000, 8 << 20));
        assert_eq!(field, "n", "{reason}");
        assert!(cost.admit_preview(100, 1000, 8 << 20).is_ok());
    }

    #[test]
    fn a_round_refused_for_its_pool_names_the_pool_where_the_body_wrote_it() {
        let body = |settings: serde_json::Value| {
            let mut body = json!({"name": "s", "space": {"type": "sequence",
                "alphabet": ["A", "C", "G", "T"], "min_length": 8, "max_length": 8}});
            if let (Some(b), Some(extra)) = (body.as_object_mut(), settings.as_object()) {
                b.extend(extra.clone());
            }
            serde_json::from_value::<NewCampaign>(body).expect("a campaign body")
        };
        assert_eq!(body(json!({})).round_block(), "round");
        for (new, block) in [
            (
                body(json!({"round": {"pool": 2, "pool_local_search": 0.5}})),
                "round",
            ),
            (
                body(json!({"training": {"pool": 2, "pool_local_search": 0.5}})),
                "training",
            ),
        ] {
            assert_eq!(new.round_block(), block);
            let mut cost = cost_of(&new.validate().expect("valid settings"));
            cost.admit_campaign(DEFAULT_BUDGET, block)
                .expect("admitted");
            // Walks beyond what validation lets a campaign ask for, so that the round of
            // one candidate outgrows the budget while the training step still fits.
            // (Training replays local search with the same walks: priced without it here.)
            cost.pool_walk = 1 << 40;
            cost.training_local_search = false;
            let (field, reason) = refusal(cost.admit_campaign(DEFAULT_BUDGET, block));
            assert_eq!(field, format!("{block}.pool"), "{reason}");
            assert!(reason.contains(&format!("lower {block}.pool")), "{reason}");
        }
    }

    #[test]
    fn the_largest_fitting_value_is_found() {
        assert_eq!(largest_fitting(100, |n| n <= 37), 37);
        assert_eq!(largest_fitting(100, |n| n <= 1000), 100);
        assert_eq!(largest_fitting(100, |_| false), 0);
        assert_eq!(largest_fitting(1, |n| n <= 1), 1);
    }

    #[test]
    fn bytes_read_in_binary_units() {
        assert_eq!(human(512), "512 bytes");
        assert_eq!(human(1 << 30), "1 GiB");
        assert_eq!(human(512 << 20), "512 MiB");
        assert_eq!(human((34 << 30) + (410 << 20)), "34.4 GiB");
        assert_eq!(human(1536), "1.5 KiB");
    }

    #[test]
    fn a_budget_gives_an_eighth_to_each_chunk_within_bounds() {
        assert_eq!(chunk_bytes_for(DEFAULT_BUDGET), 32 << 20);
        assert_eq!(chunk_bytes_for(512 << 20), 64 << 20);
        assert_eq!(chunk_bytes_for(256 << 20), 32 << 20);
        assert_eq!(chunk_bytes_for(1 << 40), 64 << 20);
        assert_eq!(chunk_bytes_for(1 << 20), 1 << 20);
    }
}
