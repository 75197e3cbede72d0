//! Synthetic reward functions used by the benchmarks and the correctness tests.

use super::space::State;

/// The HyperGrid reward of Bengio et al. 2021 on a grid of side `size`:
/// `R(x) = R0 + R1 * prod_i 1[|x_i/(H-1) - 0.5| > 0.25]
///       + R2 * prod_i 1[0.3 < |x_i/(H-1) - 0.5| < 0.4]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HyperGrid {
    pub size: usize,
    pub r0: f64,
    pub r1: f64,
    pub r2: f64,
}

impl HyperGrid {
    /// The paper's constants with the given `r0` (0.1, 0.01 or 0.001 in the literature).
    pub fn new(size: usize, r0: f64) -> Self {
        Self {
            size,
            r0,
            r1: 0.5,
            r2: 2.0,
        }
    }

    pub fn reward(&self, x: &State) -> f64 {
        let h = (self.size - 1) as f64;
        let mut outer = true;
        let mut ring = true;
        for &c in &x.0 {
            let d = (c as f64 / h - 0.5).abs();
            outer &= d > 0.25;
            ring &= d > 0.3 && d < 0.4;
        }
        self.r0 + if outer { self.r1 } else { 0.0 } + if ring { self.r2 } else { 0.0 }
    }

    pub fn log_reward(&self, x: &State) -> f32 {
        self.reward(x).ln() as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypergrid_has_two_to_the_dims_modes_on_size_eight() {
        // On H = 8 the ring condition 0.3 < |x/7 - 0.5| < 0.4 holds for x in {1, 6} only.
        let task = HyperGrid::new(8, 0.1);
        let best = 0.1 + 0.5 + 2.0;
        let mut modes = 0;
        for a in 0..8u16 {
            for b in 0..8u16 {
                let r = task.reward(&State(vec![a, b]));
                if (r - best).abs() < 1e-12 {
                    assert!([1, 6].contains(&a) && [1, 6].contains(&b));
                    modes += 1;
                }
            }
        }
        assert_eq!(modes, 4);
        assert!((task.reward(&State(vec![0, 0])) - 0.6).abs() < 1e-12);
        assert!((task.reward(&State(vec![3, 4])) - 0.1).abs() < 1e-12);
    }
}
