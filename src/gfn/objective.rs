//! Training objectives: trajectory balance, detailed balance, sub-trajectory balance and the
//! 2021 paper's flow matching, each written as tensor code over the outputs of ONE batched
//! forward pass covering every state of every trajectory in the batch.
//!
//! [`Prepared`] turns a batch of trajectories into index and mask tensors once (plain Rust);
//! [`loss`] then reads the network outputs through those indices, so the network runs once
//! per training step however long the trajectories are.
//!
//! Notation as in DESIGN.md: a trajectory `s_0 -> ... -> s_n -> s_f`, the last move being the
//! stop action taken at the terminal `x = s_n`.

use super::space::{Space, State};
use candle_core::{DType, Device, Tensor, D};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Additive mask for an invalid action: finite, so that no `0 * inf` reaches the gradients,
/// and far enough below any logit that `exp` of it is exactly zero in f32.
const MASKED: f32 = -1.0e9;

/// Which balance condition the policy is trained to satisfy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
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
    /// Flat indices into the masked edge-flow matrix of the edges entering each visited state.
    in_edges: Tensor,
    /// For each entering edge, the visited state it enters.
    in_target: Tensor,
    /// Row of each visited state.
    visited_rows: Tensor,
    n_visited: usize,
    /// Flat index of the stop edge of each trajectory's terminal.
    stop_edges: Tensor,
}

struct SubTb {
    /// `[R, R]`, 1 where column is an earlier row of the same trajectory (prefix sums).
    prefix: Tensor,
    /// Pairs of nodes (i, j), i < j, into the node vector `[R + B]`.
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
    segment: Tensor,
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
        let mut rows: Vec<State> = Vec::new();
        let mut pf_index = Vec::new();
        let mut pb_index = Vec::new();
        let mut pb_weight = Vec::new();
        let mut next_row = Vec::new();
        let mut is_last = Vec::new();
        let mut log_reward_rows = Vec::new();
        let mut starts = Vec::with_capacity(n_traj);
        for tr in trajs {
            let base = rows.len();
            starts.push(base);
            let n = tr.states.len() - 1;
            for t in 0..=n {
                let row = base + t;
                pf_index.push(tr.actions[t] as u32);
                pb_index.push(if t == 0 { 0 } else { tr.actions[t - 1] as u32 });
                pb_weight.push(if t == 0 { 0f32 } else { 1.0 });
                next_row.push(if t < n { (row + 1) as u32 } else { row as u32 });
                is_last.push(if t == n { 1f32 } else { 0.0 });
                log_reward_rows.push(if t == n { tr.log_reward } else { 0.0 });
            }
            rows.extend(tr.states.iter().cloned());
        }
        let n_traj_rows = rows.len();
        let r = n_traj_rows;

        let mut segment = vec![0f32; n_traj * r];
        for (b, tr) in trajs.iter().enumerate() {
            for t in 0..tr.states.len() {
                segment[b * r + starts[b] + t] = 1.0;
            }
        }

        let log_pb = if space.is_tree() {
            LogPb::Fixed(Tensor::zeros(r, DType::F32, device)?)
        } else {
            match settings.backward {
                BackwardPolicy::Learned => LogPb::Learned {
                    mask: Tensor::from_vec(
                        additive_mask(space, &rows, true),
                        (r, n_actions - 1),
                        device,
                    )?,
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
            }
        };

        let subtb = if settings.objective == Objective::Subtb {
            let mut prefix = vec![0f32; r * r];
            let mut first = Vec::new();
            let mut second = Vec::new();
            let mut weight = Vec::new();
            for (b, tr) in trajs.iter().enumerate() {
                let base = starts[b];
                let len = tr.states.len();
                for i in 0..len {
                    for j in 0..i {
                        prefix[(base + i) * r + base + j] = 1.0;
                    }
                }
                // Nodes 0..len are the trajectory rows; node len is the terminal's reward
                // node, stored after all rows at index r + b.
                let node = |k: usize| {
                    if k < len {
                        (base + k) as u32
                    } else {
                        (r + b) as u32
                    }
                };
                let start = weight.len();
                for i in 0..=len {
                    for j in i + 1..=len {
                        first.push(node(i));
                        second.push(node(j));
                        weight.push(settings.lambda.powi((j - i) as i32));
                    }
                }
                let total: f64 = weight[start..].iter().sum();
                for w in &mut weight[start..] {
                    *w /= total * n_traj as f64;
                }
            }
            let n_pairs = first.len();
            Some(SubTb {
                prefix: Tensor::from_vec(prefix, (r, r), device)?,
                first: Tensor::from_vec(first, n_pairs, device)?,
                second: Tensor::from_vec(second, n_pairs, device)?,
                weight: Tensor::from_vec(
                    weight.iter().map(|w| *w as f32).collect::<Vec<_>>(),
                    n_pairs,
                    device,
                )?,
            })
        } else {
            None
        };

        let fm = if settings.objective == Objective::Fm {
            let mut index: HashMap<State, usize> = HashMap::new();
            for (i, s) in rows.iter().enumerate() {
                index.entry(s.clone()).or_insert(i);
            }
            let mut in_edges = Vec::new();
            let mut in_target = Vec::new();
            let mut visited_rows = Vec::new();
            let mut stop_edges = Vec::new();
            for (b, tr) in trajs.iter().enumerate() {
                for t in 1..tr.states.len() {
                    let v = visited_rows.len() as u32;
                    visited_rows.push((starts[b] + t) as u32);
                    for (p, a) in space.parents(&tr.states[t]) {
                        let row = match index.get(&p) {
                            Some(&row) => row,
                            None => {
                                rows.push(p.clone());
                                index.insert(p, rows.len() - 1);
                                rows.len() - 1
                            }
                        };
                        in_edges.push((row * n_actions + a) as u32);
                        in_target.push(v);
                    }
                }
                let last = starts[b] + tr.states.len() - 1;
                stop_edges.push((last * n_actions + space.stop_action()) as u32);
            }
            let n_visited = visited_rows.len();
            let n_edges = in_edges.len();
            Some(FlowMatching {
                in_edges: Tensor::from_vec(in_edges, n_edges, device)?,
                in_target: Tensor::from_vec(in_target, n_edges, device)?,
                visited_rows: Tensor::from_vec(visited_rows, n_visited, device)?,
                n_visited,
                stop_edges: Tensor::from_vec(stop_edges, n_traj, device)?,
            })
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
            segment: Tensor::from_vec(segment, (n_traj, r), device)?,
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
        return flow_matching_loss(&logits, fm, p, settings.fm_epsilon);
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
            let per_row = log_pf.sub(&log_pb)?.unsqueeze(1)?;
            let sums = p.segment.matmul(&per_row)?.squeeze(1)?;
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
            let prefix = st.prefix.matmul(&edge.unsqueeze(1)?)?.squeeze(1)?;
            let total = p.segment.matmul(&edge.unsqueeze(1)?)?.squeeze(1)?;
            // With A_k = log F(u_k) - sum_{m<k} edge_m, the residual of the sub-trajectory
            // u_i -> u_j is A_i - A_j.
            let nodes = Tensor::cat(&[log_f.sub(&prefix)?, p.log_reward.sub(&total)?], 0)?;
            let res = nodes
                .index_select(&st.first, 0)?
                .sub(&nodes.index_select(&st.second, 0)?)?;
            res.sqr()?.mul(&st.weight)?.sum_all()
        }
        Objective::Fm => Err(candle_core::Error::Msg("unreachable".into())),
    }
}

fn flow_matching_loss(
    logits: &Tensor,
    fm: &FlowMatching,
    p: &Prepared,
    eps: f64,
) -> candle_core::Result<Tensor> {
    let flows = logits.exp()?;
    let flat = flows.flatten_all()?;
    let in_flow = Tensor::zeros(fm.n_visited, DType::F32, flows.device())?.index_add(
        &fm.in_target,
        &flat.index_select(&fm.in_edges, 0)?,
        0,
    )?;
    let out_flow = flows.sum(1)?.index_select(&fm.visited_rows, 0)?;
    let state_res = in_flow
        .affine(1.0, eps)?
        .log()?
        .sub(&out_flow.affine(1.0, eps)?.log()?)?;
    let stop_in = flat
        .index_select(&fm.stop_edges, 0)?
        .affine(1.0, eps)?
        .log()?;
    let reward_out = p.log_reward.exp()?.affine(1.0, eps)?.log()?;
    let term_res = stop_in.sub(&reward_out)?;
    let n = (fm.n_visited + p.n_traj) as f64;
    (state_res.sqr()?.sum_all()? + term_res.sqr()?.sum_all()?)?.affine(1.0 / n, 0.0)
}
