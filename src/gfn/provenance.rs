//! Provenance of proposed candidates: which part of a round's proposal made each one.
//!
//! Recorded per candidate so that a user (and the benchmarks) can tell whether good
//! candidates come from the GFlowNet itself, from local search around the best labelled
//! ones, or from uniform exploration, and so that the proxy's figures can be read per
//! source. The text forms are stored in the database and returned by the API, so they must
//! never change.
//!
//! Part of the engine: no tokio, sqlx or axum.

use std::fmt;
use std::str::FromStr;

/// How a proposed candidate was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// Drawn from the uniform-action policy (before any model, when exploration escalated
    /// to uniform) or listed by the enumeration fallback of a small space.
    Uniform,
    /// Sampled from the trained policy (with the round's temperature and epsilon).
    Policy,
    /// Sampled from the trained policy, then moved by local search.
    PolicyLocal,
    /// Made by local search (mutations, crossovers, reward walks) around labelled elites.
    Local,
    /// A labelled elite with some of its moves redrawn by the trained policy (conservative
    /// search, see [`super::conservative`]).
    ElitePolicy,
}

impl Source {
    /// Every source, in a fixed order (for metrics that must exist from the start).
    pub const ALL: [Source; 5] = [
        Source::Uniform,
        Source::Policy,
        Source::PolicyLocal,
        Source::Local,
        Source::ElitePolicy,
    ];

    /// The stored and reported text: `uniform`, `policy`, `policy+local`, `local` or
    /// `elite+policy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Uniform => "uniform",
            Self::Policy => "policy",
            Self::PolicyLocal => "policy+local",
            Self::Local => "local",
            Self::ElitePolicy => "elite+policy",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A text that names no [`Source`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown candidate source {0:?}")]
pub struct UnknownSource(pub String);

impl FromStr for Source {
    type Err = UnknownSource;

    /// The inverse of [`Source::as_str`]; exact, case-sensitive.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|source| source.as_str() == s)
            .ok_or_else(|| UnknownSource(s.to_string()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::gfn::propose::{canonical, propose, ProposalRequest, Screening};
    use crate::gfn::space::GridSpace;
    use crate::gfn::{Exploration, GflowNet, GfnConfig, GfnError, Space, State};
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use std::collections::HashSet;
    use std::sync::Arc;

    #[test]
    fn text_forms_are_the_documented_ones_and_parse_back() {
        let texts: Vec<&str> = Source::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            texts,
            ["uniform", "policy", "policy+local", "local", "elite+policy"]
        );
        for source in Source::ALL {
            assert_eq!(source.as_str().parse::<Source>(), Ok(source));
            assert_eq!(source.to_string(), source.as_str());
        }
    }

    /// A grid, a small network, and a score that rises towards the far corner.
    fn setup() -> (Arc<dyn Space>, GflowNet, StdRng) {
        let space: Arc<dyn Space> = Arc::new(GridSpace::new(2, 16).expect("grid"));
        let mut rng = StdRng::seed_from_u64(11);
        let config = GfnConfig {
            hidden: 8,
            layers: 1,
            ..GfnConfig::default()
        };
        let net = GflowNet::new(space.clone(), config, &mut rng).expect("network");
        (space, net, rng)
    }

    fn coordinate_sum(states: &[State]) -> Result<Vec<f64>, GfnError> {
        Ok(states
            .iter()
            .map(|x| x.0.iter().map(|&c| f64::from(c)).sum())
            .collect())
    }

    fn request(n: usize, seen: &HashSet<String>) -> ProposalRequest<'_> {
        ProposalRequest {
            n,
            seen,
            explore: Exploration {
                temperature: 1.0,
                epsilon: 0.0,
            },
            min_distance: None,
            apart_from: &[],
            cancel: None,
        }
    }

    #[test]
    fn without_a_model_every_proposal_is_uniform() {
        let (space, _, mut rng) = setup();
        let seen = HashSet::new();
        let p =
            propose(space.as_ref(), None, request(12, &seen), None, &mut rng).expect("proposal");
        assert_eq!(p.states.len(), 12);
        assert_eq!(p.sources, vec![Source::Uniform; 12]);
    }

    #[test]
    fn plain_policy_samples_are_policy() {
        let (space, net, mut rng) = setup();
        let seen = HashSet::new();
        let p = propose(
            space.as_ref(),
            Some(&net),
            request(12, &seen),
            None,
            &mut rng,
        )
        .expect("proposal");
        assert_eq!(p.states.len(), 12);
        assert_eq!(p.sources, vec![Source::Policy; 12]);
    }

    #[test]
    fn screened_pools_say_which_part_made_each_candidate() {
        let (space, net, mut rng) = setup();
        let elites = [State(vec![15, 14]), State(vec![14, 15])];
        let seen: HashSet<String> = elites
            .iter()
            .map(|x| canonical(space.as_ref(), x))
            .collect();
        let screening = |local_share: f64| Screening {
            pool: 10,
            local_share,
            conservative_share: 0.0,
            conservative_delta: 0.1,
            elites: &elites,
            spread: 0.0,
            walk: 2,
            score: &coordinate_sum,
            refine: 0,
            backtrack: 0.5,
            rule: crate::gfn::propose::BatchRule::Greedy,
        };
        // An all-local pool fills the batch with local moves, an all-policy pool with
        // policy samples.
        let local = propose(
            space.as_ref(),
            Some(&net),
            request(6, &seen),
            Some(screening(1.0)),
            &mut rng,
        )
        .expect("local");
        assert_eq!(local.sources, vec![Source::Local; local.states.len()]);
        assert_eq!(local.states.len(), 6);
        let policy = propose(
            space.as_ref(),
            Some(&net),
            request(6, &seen),
            Some(screening(0.0)),
            &mut rng,
        )
        .expect("policy");
        assert_eq!(policy.sources, vec![Source::Policy; 6]);
        // A mixed pool: every candidate carries a source, local moves among them (they
        // score higher, near the best corner).
        let mixed = propose(
            space.as_ref(),
            Some(&net),
            request(6, &seen),
            Some(screening(0.5)),
            &mut rng,
        )
        .expect("mixed");
        assert_eq!(mixed.sources.len(), mixed.states.len());
        assert!(mixed.sources.contains(&Source::Local), "{mixed:?}");
    }

    #[test]
    fn unknown_texts_do_not_parse() {
        for text in ["", "Policy", "imported", "policy+", " local"] {
            assert_eq!(
                text.parse::<Source>(),
                Err(UnknownSource(text.to_string())),
                "{text:?}"
            );
        }
    }
}
