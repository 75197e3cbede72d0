//! Training objectives: trajectory balance, detailed balance, sub-trajectory balance and the
//! 2021 paper's flow matching, each written as tensor code over the outputs of ONE batched
//! forward pass covering every state of every trajectory in the batch.
//!
//! [`Prepared`] turns a batch of trajectories into index and mask tensors once (plain Rust);
//! [`loss`] then reads the network outputs through those indices, so the network runs once
//! per training step however long the trajectories are.
//!
//! Notation: a trajectory `s_0 -> ... -> s_n -> s_f`, the last move being the
//! stop action taken at the terminal `x = s_n`.

use super::space::{Space, State};
use candle_core::{DType, Device, Tensor, D};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Additive mask for an invalid action: finite, so that no `0 * inf` reaches the gradients,
/// and far enough below any logit that `exp` of it is exactly zero in f32.
const MASKED: f32 = -1.0e9;

/// Which balance condition the policy is trained to satisfy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// Trajectory balance (Malkin et al. 2022).
    #[default]
    Tb,
    /// Detailed balance (Bengio et al., "GFlowNet Foundations").
    Db,
    /// Sub-trajectory balance with geometric weights lambda^(j-i) (Madan et al. 2023).
    Subtb,
    /// Flow matching on edge flows (Bengio et al. 2021).
    Fm,
}

impl std::str::FromStr for Objective {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tb" => Ok(Self::Tb),
            "db" => Ok(Self::Db),
            "subtb" => Ok(Self::Subtb),
            "fm" => Ok(Self::Fm),
            other => Err(format!(
                "unknown objective {other:?}: expected tb, db, subtb or fm"
            )),
        }
    }
}

impl std::fmt::Display for Objective {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Tb => "tb",
            Self::Db => "db",
            Self::Subtb => "subtb",
            Self::Fm => "fm",
        })
    }
}

/// How the backward policy `P_B` is obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BackwardPolicy {
    /// A head of the network, trained with the objective.
    #[default]
    Learned,
    /// Uniform over the parents of a state.
    Uniform,
}

/// A complete trajectory: `states[t]` for `t = 0..=n`, `actions[t]` taken at `states[t]`,
/// the last of them the stop action, and the log-reward of the terminal `states[n]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Trajectory {
    pub states: Vec<State>,
    pub actions: Vec<usize>,
    pub log_reward: f32,
}

impl Trajectory {
    /// The terminal state.
    pub fn terminal(&self) -> &State {
        // A trajectory always holds at least the initial state.
        &self.states[self.states.len() - 1]
    }
}

/// The settings the loss needs beyond the objective's name.
#[derive(Debug, Clone, Copy)]
pub struct LossSettings {
    pub objective: Objective,
    pub backward: BackwardPolicy,
    /// SubTB's lambda.
    pub lambda: f64,
    /// FM's epsilon inside `log(eps + flow)`.
    pub fm_epsilon: f64,
}

enum LogPb {
    /// Learned head: additive mask `[R, A-1]`, the action index `[R, 1]` and a 0/1 weight
    /// `[R]` that zeroes the rows of initial states (which have no parent).
    Learned {
        mask: Tensor,
        index: Tensor,
        weight: Tensor,
    },
    /// Constant `log P_B` per row (uniform over parents, or 0 on trees).
    Fixed(Tensor),
}

struct FlowMatching {
    /// `[n_visited, K + 1]` indices into the flat edge log-flows `[rows * A]` followed by
    /// two constants, `ln eps` then [`MASKED`]: for each visited state, `ln eps` first, the
    /// edges entering it, and [`MASKED`] as padding up to the most parents `K` in the batch.
    in_index: Tensor,
    /// Row of each visited state (every state of every trajectory but the initial one).
    visited_rows: Tensor,
    /// Flat index of the stop edge of each trajectory's terminal.
    stop_edges: Tensor,
    /// `ln(eps + R(x))` of each trajectory's terminal, computed in f64 from `ln R`.
    log_reward_eps: Tensor,
    /// `ln eps`, the offset every flow is compared with.
    ln_eps: f32,
}

struct SubTb {
    /// Nodes per trajectory in the padded layout: the most states of any trajectory of the
    /// batch, plus one for the reward node.
    width: usize,
    /// `[B * width]` indices into `cat(log F [R], log R [B], 0)`: the log-flow of each node
    /// of each trajectory (the reward node reads `log R`), padding reads the 0.
    node_flow: Tensor,
    /// `[B * width]` indices into `cat(edge log-ratios [R], 0)`: edge `k` leaves node `k`,
    /// padding reads the 0.
    edge: Tensor,
    /// `[width, width]`, 1 where the row is below the column: `E x upper` gives exclusive
    /// prefix sums along each trajectory. Quadratic in one trajectory's length only.
    upper: Tensor,
    /// Pairs of nodes (i, j), i < j, as indices `b * width + k` into the padded nodes.
    first: Tensor,
    second: Tensor,
    /// lambda^(j-i), normalised within each trajectory and divided by the batch size.
    weight: Tensor,
}

/// A batch of trajectories laid out for one forward pass.
pub struct Prepared {
    /// States to run the network on: all trajectory states in order, then (FM only) the
    /// parents of visited states that are not already there.
    pub rows: Vec<State>,
    n_traj: usize,
    n_traj_rows: usize,
    forward_mask: Tensor,
    pf_index: Tensor,
    log_pb: LogPb,
    /// `[R]`, the trajectory of each row: per-trajectory sums are scatter-adds, linear in
    /// the batch (a dense `[B, R]` selector would grow with its square).
    traj_of_row: Tensor,
    log_reward: Tensor,
    next_row: Tensor,
    is_last: Tensor,
    log_reward_rows: Tensor,
    subtb: Option<SubTb>,
    fm: Option<FlowMatching>,
}

fn additive_mask(space: &dyn Space, states: &[State], backward: bool) -> Vec<f32> {
    let width = if backward {
        space.n_actions() - 1
    } else {
        space.n_actions()
    };
    let mut mask = vec![false; width];
    let mut out = Vec::with_capacity(states.len() * width);
    for s in states {
        if backward {
            space.backward_mask(s, &mut mask);
        } else {
            space.forward_mask(s, &mut mask);
        }
        // A state without any valid action (the initial state, backward) keeps a
        // harmless all-valid row; its entries are weighted out.
        let none = !mask.iter().any(|m| *m);
        out.extend(mask.iter().map(|&ok| if ok || none { 0.0 } else { MASKED }));
    }
    out
}

impl SubTb {
    fn new(
        trajs: &[Trajectory],
        starts: &[usize],
        r: usize,
        lambda: f64,
        device: &Device,
    ) -> candle_core::Result<Self> {
        let n_traj = trajs.len();
        let width = trajs.iter().map(|t| t.states.len()).max().unwrap_or(0) + 1;
        let mut node_flow = Vec::with_capacity(n_traj * width);
        let mut edge = Vec::with_capacity(n_traj * width);
        let mut first = Vec::new();
        let mut second = Vec::new();
        let mut weight = Vec::new();
        for (b, tr) in trajs.iter().enumerate() {
            let base = starts[b];
            let len = tr.states.len();
            for k in 0..width {
                node_flow.push(match k.cmp(&len) {
                    std::cmp::Ordering::Less => (base + k) as u32,
                    std::cmp::Ordering::Equal => (r + b) as u32,
                    std::cmp::Ordering::Greater => (r + n_traj) as u32,
                });
                edge.push(if k < len { (base + k) as u32 } else { r as u32 });
            }
            // Nodes 0..len are the trajectory's states, node len its reward node.
            let start = weight.len();
            for i in 0..=len {
                for j in i + 1..=len {
                    first.push((b * width + i) as u32);
                    second.push((b * width + j) as u32);
                    weight.push(lambda.powi((j - i) as i32));
                }
            }
            let total: f64 = weight[start..].iter().sum();
            for w in &mut weight[start..] {
                *w /= total * n_traj as f64;
            }
        }
        let mut upper = vec![0f32; width * width];
        for m in 0..width {
            for k in m + 1..width {
                upper[m * width + k] = 1.0;
            }
        }
        let n_pairs = first.len();
        Ok(Self {
            width,
            node_flow: Tensor::from_vec(node_flow, n_traj * width, device)?,
            edge: Tensor::from_vec(edge, n_traj * width, device)?,
            upper: Tensor::from_vec(upper, (width, width), device)?,
            first: Tensor::from_vec(first, n_pairs, device)?,
            second: Tensor::from_vec(second, n_pairs, device)?,
            weight: Tensor::from_vec(
                weight.iter().map(|w| *w as f32).collect::<Vec<_>>(),
                n_pairs,
                device,
            )?,
        })
    }
}

/// `ln(exp(a) + exp(b))` in f64 without overflow.
fn log_add_exp(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
    if hi == f64::NEG_INFINITY {
        return hi;
    }
    hi + (lo - hi).exp().ln_1p()
}

impl FlowMatching {
    /// Lays out the flow-matching terms; parents of visited states that are not rows yet
    /// are appended to `rows`.
    fn new(
        space: &dyn Space,
        trajs: &[Trajectory],
        starts: &[usize],
        rows: &mut Vec<State>,
        eps: f64,
        device: &Device,
    ) -> candle_core::Result<Self> {
        let n_actions = space.n_actions();
        let mut index: HashMap<State, usize> = HashMap::new();
        for (i, s) in rows.iter().enumerate() {
            index.entry(s.clone()).or_insert(i);
        }
        let mut in_edges: Vec<Vec<u32>> = Vec::new();
        let mut visited_rows = Vec::new();
        let mut stop_edges = Vec::new();
        for (b, tr) in trajs.iter().enumerate() {
            for t in 1..tr.states.len() {
                visited_rows.push((starts[b] + t) as u32);
                let mut edges = Vec::new();
                for (p, a) in space.parents(&tr.states[t]) {
                    let row = match index.get(&p) {
                        Some(&row) => row,
                        None => {
                            rows.push(p.clone());
                            index.insert(p, rows.len() - 1);
                            rows.len() - 1
                        }
                    };
                    edges.push((row * n_actions + a) as u32);
                }
                in_edges.push(edges);
            }
            let last = starts[b] + tr.states.len() - 1;
            stop_edges.push((last * n_actions + space.stop_action()) as u32);
        }
        // The two constants sit right after the flat edge log-flows of all rows.
        let eps_at = (rows.len() * n_actions) as u32;
        let pad_at = eps_at + 1;
        let k = in_edges.iter().map(Vec::len).max().unwrap_or(0);
        let n_visited = in_edges.len();
        let mut in_index = Vec::with_capacity(n_visited * (k + 1));
        for edges in &in_edges {
            in_index.push(eps_at);
            in_index.extend_from_slice(edges);
            in_index.extend(std::iter::repeat_n(pad_at, k - edges.len()));
        }
        let ln_eps = eps.ln();
        let log_reward_eps: Vec<f32> = trajs
            .iter()
            .map(|t| log_add_exp(f64::from(t.log_reward), ln_eps) as f32)
            .collect();
        let n_traj = trajs.len();
        Ok(Self {
            in_index: Tensor::from_vec(in_index, (n_visited, k + 1), device)?,
            visited_rows: Tensor::from_vec(visited_rows, n_visited, device)?,
            stop_edges: Tensor::from_vec(stop_edges, n_traj, device)?,
            log_reward_eps: Tensor::from_vec(log_reward_eps, n_traj, device)?,
            ln_eps: ln_eps as f32,
        })
    }
}

impl Prepared {
    /// Lays out `trajs` for `settings`. Every trajectory must come from `space`.
    pub fn new(
        space: &dyn Space,
        trajs: &[Trajectory],
        settings: &LossSettings,
        device: &Device,
    ) -> candle_core::Result<Self> {
        let n_actions = space.n_actions();
        let n_traj = trajs.len();
        let RowLayout {
            mut rows,
            pf_index,
            pb_index,
            pb_weight,
            next_row,
            is_last,
            log_reward_rows,
            starts,
        } = RowLayout::of(trajs);
        let r = rows.len();
        let traj_of_row: Vec<u32> = trajs
            .iter()
            .enumerate()
            .flat_map(|(b, tr)| std::iter::repeat_n(b as u32, tr.states.len()))
            .collect();
        let log_pb = backward_log_probs(space, &rows, settings, pb_index, pb_weight, device)?;
        let subtb = if settings.objective == Objective::Subtb {
            Some(SubTb::new(trajs, &starts, r, settings.lambda, device)?)
        } else {
            None
        };

        let fm = if settings.objective == Objective::Fm {
            Some(FlowMatching::new(
                space,
                trajs,
                &starts,
                &mut rows,
                settings.fm_epsilon,
                device,
            )?)
        } else {
            None
        };

        let forward_mask = Tensor::from_vec(
            additive_mask(space, &rows, false),
            (rows.len(), n_actions),
            device,
        )?;
        Ok(Self {
            n_traj,
            n_traj_rows: r,
            forward_mask,
            pf_index: Tensor::from_vec(pf_index, (r, 1), device)?,
            log_pb,
            traj_of_row: Tensor::from_vec(traj_of_row, r, device)?,
            log_reward: Tensor::from_vec(
                trajs.iter().map(|t| t.log_reward).collect::<Vec<_>>(),
                n_traj,
                device,
            )?,
            next_row: Tensor::from_vec(next_row, r, device)?,
            is_last: Tensor::from_vec(is_last, r, device)?,
            log_reward_rows: Tensor::from_vec(log_reward_rows, r, device)?,
            subtb,
            fm,
            rows,
        })
    }
}

/// One row per state of every trajectory, in order, with what the loss needs of each row:
/// the forward action taken from it, the backward action that led to it (weight 0 at a
/// start), the next row (itself at the end), whether it ends its trajectory, and the log
/// reward there.
struct RowLayout {
    rows: Vec<State>,
    pf_index: Vec<u32>,
    pb_index: Vec<u32>,
    pb_weight: Vec<f32>,
    next_row: Vec<u32>,
    is_last: Vec<f32>,
    log_reward_rows: Vec<f32>,
    /// The first row of each trajectory.
    starts: Vec<usize>,
}

impl RowLayout {
    fn of(trajs: &[Trajectory]) -> Self {
        let mut layout = Self {
            rows: Vec::new(),
            pf_index: Vec::new(),
            pb_index: Vec::new(),
            pb_weight: Vec::new(),
            next_row: Vec::new(),
            is_last: Vec::new(),
            log_reward_rows: Vec::new(),
            starts: Vec::with_capacity(trajs.len()),
        };
        for tr in trajs {
            let base = layout.rows.len();
            layout.starts.push(base);
            let n = tr.states.len() - 1;
            for t in 0..=n {
                let row = base + t;
                layout.pf_index.push(tr.actions[t] as u32);
                layout
                    .pb_index
                    .push(if t == 0 { 0 } else { tr.actions[t - 1] as u32 });
                layout.pb_weight.push(if t == 0 { 0f32 } else { 1.0 });
                layout
                    .next_row
                    .push(if t < n { (row + 1) as u32 } else { row as u32 });
                layout.is_last.push(if t == n { 1f32 } else { 0.0 });
                layout
                    .log_reward_rows
                    .push(if t == n { tr.log_reward } else { 0.0 });
            }
            layout.rows.extend(tr.states.iter().cloned());
        }
        layout
    }
}

/// The backward log-probability of each row's incoming action: 0 on trees (one parent),
/// the learned policy's masked choice, or uniform over the row's parents.
fn backward_log_probs(
    space: &dyn Space,
    rows: &[State],
    settings: &LossSettings,
    pb_index: Vec<u32>,
    pb_weight: Vec<f32>,
    device: &Device,
) -> candle_core::Result<LogPb> {
    let (r, n_actions) = (rows.len(), space.n_actions());
    if space.is_tree() {
        return Ok(LogPb::Fixed(Tensor::zeros(r, DType::F32, device)?));
    }
    Ok(match settings.backward {
        BackwardPolicy::Learned => LogPb::Learned {
            mask: Tensor::from_vec(additive_mask(space, rows, true), (r, n_actions - 1), device)?,
            index: Tensor::from_vec(pb_index, (r, 1), device)?,
            weight: Tensor::from_vec(pb_weight, r, device)?,
        },
        BackwardPolicy::Uniform => {
            let mut mask = vec![false; n_actions - 1];
            let vals: Vec<f32> = rows
                .iter()
                .zip(&pb_weight)
                .map(|(s, w)| {
                    space.backward_mask(s, &mut mask);
                    let k = mask.iter().filter(|m| **m).count().max(1);
                    -(k as f32).ln() * w
                })
                .collect();
            LogPb::Fixed(Tensor::from_vec(vals, r, device)?)
        }
    })
}

/// The batch loss (a scalar tensor) from the network outputs `out` (`[rows, 2A]`, one row per
/// entry of `prepared.rows`) and the scalar `log_z` (shape `[1]`, used by TB only).
pub fn loss(
    space: &dyn Space,
    prepared: &Prepared,
    out: &Tensor,
    log_z: &Tensor,
    settings: &LossSettings,
) -> candle_core::Result<Tensor> {
    let a = space.n_actions();
    let p = prepared;
    let r = p.n_traj_rows;
    let logits = out.narrow(1, 0, a)?.add(&p.forward_mask)?;
    if settings.objective == Objective::Fm {
        let fm =
            p.fm.as_ref()
                .ok_or_else(|| candle_core::Error::Msg("missing FM layout".into()))?;
        return flow_matching_loss(&logits, fm, p);
    }
    let traj_logits = logits.narrow(0, 0, r)?;
    let log_pf = candle_nn::ops::log_softmax(&traj_logits, D::Minus1)?
        .gather(&p.pf_index, 1)?
        .squeeze(1)?;
    let log_pb = match &p.log_pb {
        LogPb::Fixed(t) => t.clone(),
        LogPb::Learned {
            mask,
            index,
            weight,
        } => {
            let b_logits = out.narrow(0, 0, r)?.narrow(1, a, a - 1)?.add(mask)?;
            candle_nn::ops::log_softmax(&b_logits, D::Minus1)?
                .gather(index, 1)?
                .squeeze(1)?
                .mul(weight)?
        }
    };
    match settings.objective {
        Objective::Tb => {
            let per_row = log_pf.sub(&log_pb)?;
            let sums = per_trajectory_sum(&per_row, p)?;
            let residual = sums.broadcast_add(log_z)?.sub(&p.log_reward)?;
            residual.sqr()?.mean_all()
        }
        Objective::Db => {
            let log_f = out.narrow(0, 0, r)?.narrow(1, 2 * a - 1, 1)?.squeeze(1)?;
            let next = log_f.add(&log_pb)?.index_select(&p.next_row, 0)?;
            let not_last = p.is_last.affine(-1.0, 1.0)?;
            let target = next.mul(&not_last)?.add(&p.log_reward_rows)?;
            log_f.add(&log_pf)?.sub(&target)?.sqr()?.mean_all()
        }
        Objective::Subtb => {
            let st = p
                .subtb
                .as_ref()
                .ok_or_else(|| candle_core::Error::Msg("missing SubTB layout".into()))?;
            let log_f = out.narrow(0, 0, r)?.narrow(1, 2 * a - 1, 1)?.squeeze(1)?;
            // Edge t of a trajectory goes from row t to row t+1 (or to the reward node after
            // the stop move, whose P_B is 1). Its log-ratio is log PF - log PB.
            let not_last = p.is_last.affine(-1.0, 1.0)?;
            let edge = log_pf.sub(&log_pb.index_select(&p.next_row, 0)?.mul(&not_last)?)?;
            let b = p.n_traj;
            let zero = Tensor::zeros(1, DType::F32, out.device())?;
            let edges = Tensor::cat(&[&edge, &zero], 0)?
                .index_select(&st.edge, 0)?
                .reshape((b, st.width))?;
            // prefix[b, k] = sum_{m<k} edge_m of trajectory b.
            let prefix = edges.matmul(&st.upper)?;
            let flows = Tensor::cat(&[&log_f, &p.log_reward, &zero], 0)?
                .index_select(&st.node_flow, 0)?
                .reshape((b, st.width))?;
            // With A_k = log F(u_k) - sum_{m<k} edge_m (and log R for the reward node), the
            // residual of the sub-trajectory u_i -> u_j is A_i - A_j.
            let nodes = flows.sub(&prefix)?.flatten_all()?;
            let res = nodes
                .index_select(&st.first, 0)?
                .sub(&nodes.index_select(&st.second, 0)?)?;
            res.sqr()?.mul(&st.weight)?.sum_all()
        }
        Objective::Fm => Err(candle_core::Error::Msg("unreachable".into())),
    }
}

/// Sum of `per_row` over the rows of each trajectory, `[R] -> [B]`.
fn per_trajectory_sum(per_row: &Tensor, p: &Prepared) -> candle_core::Result<Tensor> {
    Tensor::zeros(p.n_traj, DType::F32, per_row.device())?.index_add(&p.traj_of_row, per_row, 0)
}

/// `ln sum exp` along the last axis of a matrix, the largest entry factored out so that no
/// `exp` overflows. The maximum is held constant for the gradient (it cancels exactly).
fn log_sum_exp_rows(x: &Tensor) -> candle_core::Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    x.broadcast_sub(&max)?
        .exp()?
        .sum_keepdim(D::Minus1)?
        .log()?
        .add(&max)?
        .squeeze(D::Minus1)
}

/// Flow matching with every flow kept as a log: `ln(eps + sum_i F_i)` is a log-sum-exp of
/// `ln eps` and the edge log-flows, so log-flows far past f32's `exp` range (about 88) stay
/// finite.
fn flow_matching_loss(
    logits: &Tensor,
    fm: &FlowMatching,
    p: &Prepared,
) -> candle_core::Result<Tensor> {
    let device = logits.device();
    let n_visited = fm.visited_rows.dim(0)?;
    let flat = logits.flatten_all()?;
    let constants = Tensor::new(&[fm.ln_eps, MASKED], device)?;
    let extended = Tensor::cat(&[&flat, &constants], 0)?;
    let k = fm.in_index.dim(1)?;
    let in_flow = log_sum_exp_rows(
        &extended
            .index_select(&fm.in_index.flatten_all()?, 0)?
            .reshape((n_visited, k))?,
    )?;
    let eps_column = Tensor::full(fm.ln_eps, (n_visited, 1), device)?;
    let out_flow = log_sum_exp_rows(&Tensor::cat(
        &[&logits.index_select(&fm.visited_rows, 0)?, &eps_column],
        1,
    )?)?;
    let state_res = in_flow.sub(&out_flow)?;
    let stop = flat.index_select(&fm.stop_edges, 0)?.unsqueeze(1)?;
    let eps_stop = Tensor::full(fm.ln_eps, (p.n_traj, 1), device)?;
    let stop_in = log_sum_exp_rows(&Tensor::cat(&[&stop, &eps_stop], 1)?)?;
    let term_res = stop_in.sub(&fm.log_reward_eps)?;
    let n = (n_visited + p.n_traj) as f64;
    (state_res.sqr()?.sum_all()? + term_res.sqr()?.sum_all()?)?.affine(1.0 / n, 0.0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::gfn::space::GridSpace;
    use crate::gfn::{Exploration, GflowNet, GfnConfig};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::sync::Arc;

    fn net(space: &Arc<dyn Space>, objective: Objective, seed: u64) -> (GflowNet, StdRng) {
        let mut rng = StdRng::seed_from_u64(seed);
        let config = GfnConfig {
            objective,
            hidden: 16,
            ..GfnConfig::default()
        };
        (
            GflowNet::new(space.clone(), config, &mut rng).expect("config"),
            rng,
        )
    }

    /// `ln sum exp` in f64, written out for the references below.
    fn lse(xs: &[f64]) -> f64 {
        let m = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        m + xs.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
    }

    /// `log_softmax(row over the valid entries)[k]`.
    fn log_softmax(row: &[f32], mask: &[bool], k: usize) -> f64 {
        let valid: Vec<f64> = row
            .iter()
            .zip(mask)
            .filter(|(_, m)| **m)
            .map(|(v, _)| f64::from(*v))
            .collect();
        f64::from(row[k]) - lse(&valid)
    }

    #[test]
    fn subtrajectory_balance_matches_a_sum_over_every_sub_trajectory() {
        // A DAG (learned P_B matters) and a batch of trajectories of different lengths.
        let space: Arc<dyn Space> = Arc::new(GridSpace::new(3, 4).expect("grid"));
        let (mut gfn, mut rng) = net(&space, Objective::Subtb, 21);
        let mut trajs = gfn
            .sample_forward(6, Exploration::default(), &mut rng)
            .expect("sample");
        for t in &mut trajs {
            t.log_reward = rng.random_range(-3.0..2.0);
        }
        let a = space.n_actions();
        let lambda = gfn.config().subtb_lambda;
        let mut reference = 0.0;
        for t in &trajs {
            let out = gfn.outputs(&t.states).expect("outputs");
            let row = |i: usize| &out[i * 2 * a..(i + 1) * 2 * a];
            let n = t.states.len();
            // log F of nodes 0..n (the states) and n (the reward node).
            let mut log_f: Vec<f64> = (0..n).map(|i| f64::from(row(i)[2 * a - 1])).collect();
            log_f.push(f64::from(t.log_reward));
            // edge[k]: log PF - log PB of the move from node k to node k + 1.
            let mut fmask = vec![false; a];
            let mut bmask = vec![false; a - 1];
            let mut edge = Vec::new();
            for k in 0..n {
                space.forward_mask(&t.states[k], &mut fmask);
                let mut e = log_softmax(&row(k)[..a], &fmask, t.actions[k]);
                if k + 1 < n {
                    space.backward_mask(&t.states[k + 1], &mut bmask);
                    e -= log_softmax(&row(k + 1)[a..2 * a - 1], &bmask, t.actions[k]);
                }
                edge.push(e);
            }
            let (mut sum, mut total_weight) = (0.0, 0.0);
            for i in 0..=n {
                for j in i + 1..=n {
                    let path: f64 = edge[i..j].iter().sum();
                    let res = log_f[i] + path - log_f[j];
                    let w = lambda.powi((j - i) as i32);
                    sum += w * res * res;
                    total_weight += w;
                }
            }
            reference += sum / total_weight / trajs.len() as f64;
        }
        let loss = f64::from(gfn.train_step(&trajs).expect("step").loss);
        assert!(
            (loss - reference).abs() < 1e-4 * (1.0 + reference),
            "loss {loss}, reference {reference}"
        );
    }

    #[test]
    fn subtrajectory_balance_takes_a_batch_whose_dense_prefix_matrix_would_not_fit() {
        // 16,384 trajectories of 15 states: 245,760 rows, so a dense [rows, rows] f32 prefix
        // matrix would need 241 GB (and a [trajectories, rows] one 16 GB).
        let space: Arc<dyn Space> = Arc::new(GridSpace::new(2, 8).expect("grid"));
        let (mut gfn, _) = net(&space, Objective::Subtb, 22);
        let mut state = space.initial();
        let mut states = vec![state.clone()];
        let mut actions = Vec::new();
        for k in 0..14 {
            let a = k % 2;
            state = space.step(&state, a).expect("inside the grid");
            states.push(state.clone());
            actions.push(a);
        }
        actions.push(space.stop_action());
        let trajs: Vec<Trajectory> = (0..16_384)
            .map(|i| Trajectory {
                states: states.clone(),
                actions: actions.clone(),
                log_reward: (i % 7) as f32 * 0.1,
            })
            .collect();
        let report = gfn.train_step(&trajs).expect("step");
        assert!(report.loss.is_finite() && !report.skipped, "{report:?}");
    }

    #[test]
    fn flow_matching_stays_finite_with_log_flows_near_100() {
        // Log-rewards around 100 and edge log-flows shifted to match: every flow overflows
        // f32 as soon as it leaves log space (exp(88.7) is f32's largest).
        let space: Arc<dyn Space> = Arc::new(GridSpace::new(2, 4).expect("grid"));
        let (mut gfn, mut rng) = net(&space, Objective::Fm, 23);
        let a = space.n_actions();
        {
            let head = &gfn.mlp.layers()[gfn.mlp.layers().len() - 1];
            let mut bias = head.bias.as_tensor().to_vec1::<f32>().expect("bias");
            for b in &mut bias[..a] {
                *b += 100.0;
            }
            head.bias
                .set(&Tensor::new(bias.as_slice(), head.bias.as_tensor().device()).expect("tensor"))
                .expect("set");
        }
        let mut trajs = gfn
            .sample_forward(8, Exploration::default(), &mut rng)
            .expect("sample");
        for t in &mut trajs {
            t.log_reward = 100.0 + rng.random_range(-2.0f32..2.0);
        }
        let ln_eps = gfn.config().fm_epsilon.ln();
        let flows = |s: &State| -> Vec<f64> {
            let out = gfn.outputs(std::slice::from_ref(s)).expect("outputs");
            out[..a].iter().map(|v| f64::from(*v)).collect()
        };
        let mut mask = vec![false; a];
        let (mut sum, mut terms) = (0.0, 0usize);
        for t in &trajs {
            for s in &t.states[1..] {
                let mut inflow = vec![ln_eps];
                for (p, act) in space.parents(s) {
                    inflow.push(flows(&p)[act]);
                }
                space.forward_mask(s, &mut mask);
                let mut outflow = vec![ln_eps];
                outflow.extend(
                    flows(s)
                        .into_iter()
                        .zip(&mask)
                        .filter(|(_, m)| **m)
                        .map(|(f, _)| f),
                );
                sum += (lse(&inflow) - lse(&outflow)).powi(2);
                terms += 1;
            }
            let stop = flows(t.terminal())[space.stop_action()];
            let res = lse(&[stop, ln_eps]) - lse(&[f64::from(t.log_reward), ln_eps]);
            sum += res * res;
            terms += 1;
        }
        let reference = sum / terms as f64;
        let report = gfn.train_step(&trajs).expect("step");
        let loss = f64::from(report.loss);
        assert!(!report.skipped, "{report:?}");
        assert!(
            (loss - reference).abs() < 1e-3 * (1.0 + reference),
            "loss {loss}, reference {reference}"
        );
    }
}
