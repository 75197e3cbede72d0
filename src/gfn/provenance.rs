//! Where a proposed candidate came from, so that a lab (and the benchmarks) can see what
//! each part of a round contributed.

use std::fmt;
use std::str::FromStr;

/// How a proposed candidate was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// The uniform policy: before any model, or when exploration had to fall back to it.
    Uniform,
    /// A sample of the trained policy, as drawn.
    Policy,
    /// A policy sample moved by refinement (backtrack with `P_B`, reconstruct with `P_F`,
    /// accepted on the proxy's reward).
    PolicyLocal,
    /// A mutation or crossover of the best labelled candidates (only when a campaign asks
    /// rounds for it).
    Local,
}

impl Source {
    /// Every source, in a fixed order.
    pub const ALL: [Source; 4] = [
        Source::Uniform,
        Source::Policy,
        Source::PolicyLocal,
        Source::Local,
    ];

    /// The name stored and returned by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Uniform => "uniform",
            Source::Policy => "policy",
            Source::PolicyLocal => "policy+local",
            Source::Local => "local",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Source {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Source::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown source {s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_source_reads_back_from_its_name() {
        for s in Source::ALL {
            assert_eq!(s.as_str().parse::<Source>(), Ok(s));
        }
        assert!("genetic".parse::<Source>().is_err());
    }
}
