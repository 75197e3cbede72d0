//! Proposing a batch: distinct terminal states the campaign has not seen, drawn from the
//! policy, at least `min_distance` apart, with exploration raised step by step when the policy
//! keeps returning values already seen (SPEC §4, rounds).

use super::space::{Space, State};
use super::train::{Exploration, GflowNet, GfnError};
use rand::Rng;
use std::collections::HashSet;

/// Spaces with at most this many states are enumerated when sampling alone cannot find
/// enough unseen terminals, so `exhausted` is only ever reported when the space ran out.
pub const ENUMERATION_LIMIT: usize = 1_000_000;

/// What a proposal returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    pub states: Vec<State>,
    /// True when the space has no other unseen terminal left.
    pub exhausted: bool,
}

/// Canonical text of a terminal, the form stored and compared for "already seen".
pub fn canonical(space: &dyn Space, x: &State) -> String {
    space.to_value(x).to_string()
}

/// What to propose.
#[derive(Debug, Clone, Copy)]
pub struct ProposalRequest<'a> {
    /// How many new terminals.
    pub n: usize,
    /// Canonical texts of every value the campaign has proposed or labelled.
    pub seen: &'a HashSet<String>,
    pub explore: Exploration,
    /// Smallest allowed distance between two terminals of the batch.
    pub min_distance: Option<f64>,
    /// Terminals already in the batch (a top-up): new ones keep `min_distance` from them too.
    pub apart_from: &'a [State],
}

/// Draws up to `request.n` new terminals from `gfn`, or uniformly at random when `gfn` is
/// `None`. `untrained` is any network of the space, used for uniform draws (its logits are
/// ignored at epsilon 1).
pub fn propose(
    space: &dyn Space,
    gfn: Option<&GflowNet>,
    untrained: &GflowNet,
    request: ProposalRequest<'_>,
    rng: &mut impl Rng,
) -> Result<Proposal, GfnError> {
    let ProposalRequest {
        n,
        seen,
        explore,
        min_distance,
        apart_from,
    } = request;
    let mut chosen: Vec<State> = Vec::with_capacity(n);
    let mut chosen_text: HashSet<String> = HashSet::with_capacity(n);
    let fits = |x: &State, chosen: &[State]| match min_distance {
        Some(d) if d > 0.0 => chosen
            .iter()
            .chain(apart_from)
            .all(|c| space.distance(c, x) >= d),
        _ => true,
    };
    // Escalating exploration: the campaign's own first, then hotter and more uniform, ending
    // with the uniform policy, which reaches every terminal.
    let schedule = [
        explore,
        Exploration {
            temperature: explore.temperature * 2.0,
            epsilon: explore.epsilon.max(0.1),
        },
        Exploration {
            temperature: explore.temperature * 4.0,
            epsilon: explore.epsilon.max(0.3),
        },
        Exploration {
            temperature: explore.temperature * 8.0,
            epsilon: 0.6,
        },
        Exploration {
            temperature: 1.0,
            epsilon: 1.0,
        },
        Exploration {
            temperature: 1.0,
            epsilon: 1.0,
        },
    ];
    for (attempt, ex) in schedule.iter().enumerate() {
        if chosen.len() >= n {
            break;
        }
        let policy = match gfn {
            Some(g) if ex.epsilon < 1.0 => g,
            _ => untrained,
        };
        let ex = if gfn.is_none() {
            Exploration {
                temperature: 1.0,
                epsilon: 1.0,
            }
        } else {
            *ex
        };
        // Oversample: a draw may repeat or fall too close to another.
        let want = (n - chosen.len()).max(8) * (2 + attempt);
        for t in policy.sample_forward(want, ex, rng)? {
            let x = t.terminal();
            let text = canonical(space, x);
            if seen.contains(&text) || chosen_text.contains(&text) || !fits(x, &chosen) {
                continue;
            }
            chosen_text.insert(text);
            chosen.push(x.clone());
            if chosen.len() >= n {
                break;
            }
        }
    }
    let mut exhausted = false;
    if chosen.len() < n {
        // Sampling fell short: on an enumerable space, list what remains so that a short
        // batch means the space ran out, not that sampling was unlucky.
        if let Some(all) = space.enumerate(ENUMERATION_LIMIT) {
            let mut remaining: Vec<State> = all
                .into_iter()
                .filter(|x| space.can_stop(x))
                .filter(|x| {
                    let text = canonical(space, x);
                    !seen.contains(&text) && !chosen_text.contains(&text)
                })
                .collect();
            // A random order keeps the fallback from always favouring the same corner.
            for i in (1..remaining.len()).rev() {
                remaining.swap(i, rng.random_range(0..=i));
            }
            let mut left = remaining.len();
            for x in remaining {
                if chosen.len() >= n {
                    break;
                }
                if fits(&x, &chosen) {
                    chosen.push(x);
                    left -= 1;
                }
            }
            // Exhausted: every unseen terminal is in this batch and it is still short.
            exhausted = left == 0 && chosen.len() < n;
        }
    }
    Ok(Proposal {
        states: chosen,
        exhausted,
    })
}
