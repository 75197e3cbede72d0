//! Conservative search around the best labelled candidates ("δ-CS", Kim et al. 2024,
//! "Improved Off-Policy Reinforcement Learning in Biological Sequence Design"): take an
//! elite, keep each move of a path to it with probability `1 - δ`, and let the policy redraw
//! the others. The candidates stay within a few moves of what was measured, where the proxy
//! can be trusted, while the GFlowNet decides what goes in the redrawn places: on a sequence
//! of fixed length that is a substitution at each redrawn position, chosen by the policy
//! given the prefix, rather than a uniform mutation.
//!
//! A path to an elite is drawn with `P_B` (the only one on trees). A kept move that is no
//! longer valid once an earlier move changed (a set element already added, a grid edge
//! reached) is redrawn too, and a walk that runs past the elite's path continues with the
//! policy until it stops. Every candidate redraws at least one move.
//!
//! Synchronous; the walks advance in lock-step, one network call per step.

use super::propose::rank_biased;
use super::sampler::SampledPath;
use super::space::State;
use super::train::{Exploration, GflowNet, GfnError};
use rand::{Rng, RngCore};

/// `n` candidates, each an elite (drawn best-biased from `elites`, best first) with a share
/// `delta` of its moves redrawn by the policy under `explore`. Empty without elites.
pub fn conservative_search(
    net: &GflowNet,
    elites: &[State],
    n: usize,
    delta: f64,
    explore: Exploration,
    rng: &mut impl Rng,
) -> Result<Vec<State>, GfnError> {
    Ok(conservative_paths(net, elites, n, delta, explore, rng)?
        .into_iter()
        .map(|p| p.terminal().clone())
        .collect())
}

/// The walks of [`conservative_search`], from the initial state, for training on them.
pub fn conservative_paths(
    net: &GflowNet,
    elites: &[State],
    n: usize,
    delta: f64,
    explore: Exploration,
    rng: &mut impl Rng,
) -> Result<Vec<SampledPath>, GfnError> {
    if elites.is_empty() || n == 0 {
        return Ok(Vec::new());
    }
    // random_bool panics outside [0, 1]; NaN redraws nothing beyond the one forced move.
    let delta = if delta.is_nan() {
        0.0
    } else {
        delta.clamp(0.0, 1.0)
    };
    let picked: Vec<(State, f32)> = {
        let rng: &mut dyn RngCore = rng;
        (0..n)
            .map(|_| (elites[rank_biased(elites.len(), rng)].clone(), 0.0))
            .collect()
    };
    let paths = net.sample_backward(&picked, rng)?;
    let stop = net.space().stop_action();
    let guides: Vec<Vec<Option<usize>>> = paths
        .iter()
        .map(|path| {
            let mut guide: Vec<Option<usize>> = path
                .actions
                .iter()
                .map(|&action| (!rng.random_bool(delta)).then_some(action))
                .collect();
            // At least one move is redrawn, a real move where the path has one (redrawing
            // the stop of a fixed-length sequence could only stop again).
            let moves = path.actions.iter().filter(|&&a| a != stop).count();
            if guide.iter().all(Option::is_some) && !guide.is_empty() {
                let j = if moves > 0 {
                    rng.random_range(0..moves)
                } else {
                    guide.len() - 1
                };
                guide[j] = None;
            }
            guide
        })
        .collect();
    let starts = vec![net.space().initial(); paths.len()];
    net.walk_forward(&starts, &guides, explore, rng)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::gfn::space::{SequenceSpace, Space};
    use crate::gfn::GfnConfig;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use std::sync::Arc;

    fn peptides(length: usize) -> Arc<dyn Space> {
        let alphabet = "ACDEFGHIKLMNPQRSTVWY"
            .chars()
            .map(|c| c.to_string())
            .collect();
        Arc::new(SequenceSpace::new(alphabet, length, length, String::new()).unwrap())
    }

    fn hamming(a: &State, b: &State) -> usize {
        a.0.iter().zip(b.0.iter()).filter(|(x, y)| x != y).count()
    }

    fn random_peptide(length: usize, rng: &mut impl Rng) -> State {
        State((0..length).map(|_| rng.random_range(0..20)).collect())
    }

    /// A guided walk's `log_pf` counts only the moves it drew: a walk forced all the way
    /// reproduces its guide with `log_pf` 0, and one with a single free move carries that
    /// move's probability under the (fresh, near-uniform) policy.
    #[test]
    fn guided_walks_count_only_the_moves_they_draw() {
        let space = peptides(8);
        let mut rng = StdRng::seed_from_u64(3);
        let net = GflowNet::new(space.clone(), GfnConfig::default(), &mut rng).unwrap();
        let elite = random_peptide(8, &mut rng);
        let path = net
            .sample_backward(&[(elite.clone(), 0.0)], &mut rng)
            .unwrap();
        let forced: Vec<Option<usize>> = path[0].actions.iter().map(|&a| Some(a)).collect();
        let mut one_free = forced.clone();
        one_free[3] = None;
        let starts = vec![space.initial(); 2];
        let walks = net
            .walk_forward(
                &starts,
                &[forced, one_free],
                Exploration::default(),
                &mut rng,
            )
            .unwrap();
        assert_eq!(walks[0].terminal(), &elite);
        assert_eq!(walks[0].log_pf, 0.0);
        // One draw among 20 residues from a fresh network: close to ln(1/20).
        let uniform = (1.0f64 / 20.0).ln();
        assert!(
            (walks[1].log_pf - uniform).abs() < 1.0,
            "{}",
            walks[1].log_pf
        );
        assert!(hamming(walks[1].terminal(), &elite) <= 1);
    }

    #[test]
    fn candidates_differ_from_their_elite_in_about_delta_of_the_positions() {
        let space = peptides(32);
        let mut rng = StdRng::seed_from_u64(7);
        let net = GflowNet::new(space.clone(), GfnConfig::default(), &mut rng).unwrap();
        let elite = random_peptide(32, &mut rng);
        let n = 400;
        let delta = 0.25;
        let out = conservative_search(
            &net,
            std::slice::from_ref(&elite),
            n,
            delta,
            Exploration::default(),
            &mut rng,
        )
        .unwrap();
        assert_eq!(out.len(), n);
        let distances: Vec<usize> = out.iter().map(|x| hamming(x, &elite)).collect();
        // A redrawn position keeps its token with probability about 1/20 under a fresh
        // network, and one position is always redrawn: the mean distance is about
        // 32 * 0.25 * 0.95 = 7.6, with a standard error of about 2.4 / sqrt(400) = 0.12.
        let mean = distances.iter().sum::<usize>() as f64 / n as f64;
        assert!((mean - 7.6).abs() < 0.6, "mean distance {mean}");
        assert!(out.iter().all(|x| x.0.len() == 32));
    }

    #[test]
    fn a_policy_that_learned_a_token_redraws_to_it() {
        // A policy trained so that every position prefers token 0 ("A") puts it in the
        // redrawn positions (the target puts it at each with probability e^4 / (e^4 + 19),
        // about 0.74); a fresh one puts it there about 1 time in 20.
        let space = peptides(8);
        let mut rng = StdRng::seed_from_u64(3);
        let mut net = GflowNet::new(space.clone(), GfnConfig::default(), &mut rng).unwrap();
        let elite = State(vec![5; 8]);
        // Tokens "A" in 300 candidates around the elite (which holds none).
        let redrawn_a = |net: &GflowNet, rng: &mut StdRng| -> usize {
            let out = conservative_search(
                net,
                std::slice::from_ref(&elite),
                300,
                0.5,
                Exploration::default(),
                rng,
            )
            .unwrap();
            out.iter()
                .map(|x| x.0.iter().filter(|&&t| t == 0).count())
                .sum()
        };
        let fresh = redrawn_a(&net, &mut rng);
        for _ in 0..300 {
            let batch: Vec<(State, f32)> = (0..16)
                .map(|_| {
                    let x = random_peptide(8, &mut rng);
                    let r = 4.0 * x.0.iter().filter(|&&t| t == 0).count() as f32;
                    (x, r)
                })
                .collect();
            let trajectories = net.sample_backward(&batch, &mut rng).unwrap();
            net.train_step(&trajectories).unwrap();
        }
        let trained = redrawn_a(&net, &mut rng);
        assert!(
            trained > 3 * fresh.max(1),
            "A redrawn {trained} times after training, {fresh} before"
        );
    }

    #[test]
    fn a_share_that_is_not_a_number_redraws_one_move() {
        let space = peptides(16);
        let mut rng = StdRng::seed_from_u64(5);
        let net = GflowNet::new(space, GfnConfig::default(), &mut rng).unwrap();
        let elite = random_peptide(16, &mut rng);
        let out = conservative_search(
            &net,
            std::slice::from_ref(&elite),
            50,
            f64::NAN,
            Exploration::default(),
            &mut rng,
        )
        .unwrap();
        assert_eq!(out.len(), 50);
        assert!(out.iter().all(|x| hamming(x, &elite) <= 1));
    }

    #[test]
    fn no_elites_no_candidates() {
        let space = peptides(4);
        let mut rng = StdRng::seed_from_u64(1);
        let net = GflowNet::new(space, GfnConfig::default(), &mut rng).unwrap();
        let out =
            conservative_search(&net, &[], 10, 0.5, Exploration::default(), &mut rng).unwrap();
        assert!(out.is_empty());
    }
}
