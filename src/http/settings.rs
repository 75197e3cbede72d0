//! The bodies that create and describe a campaign: `POST /campaigns` as the client writes
//! it, and a stored campaign with every default filled in. Each mirrors a settings block of
//! the domain field for field (the domain keeps its own serde shape for the stored spec) and
//! converts into it and back; the OpenAPI document's campaign schemas come from these types,
//! and the tests below hold their serde shape to the domain's.

use crate::domain::campaign as domain;
use crate::gfn::{GfnConfig, SpaceSpec};
use serde::{Deserialize, Serialize};

/// The body of `POST /campaigns`, as the client writes it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCampaign {
    /// 1 to 200 characters, trimmed.
    #[schema(min_length = 1)]
    pub name: String,
    pub space: SpaceSpec,
    #[serde(default)]
    pub reward: RewardSpec,
    /// The GFlowNet's settings; every field has a default.
    #[serde(default)]
    pub model: Option<GfnConfig>,
    #[serde(default)]
    pub training: TrainingSpec,
    /// How rounds choose their batch; every field has a default. Its fields are also
    /// accepted under `training`, where they were first written, when this block is absent.
    #[serde(default)]
    pub round: Option<RoundSpec>,
}

/// How acquisition values become GFlowNet rewards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Acquisition {
    /// Upper confidence bound `mean + kappa * std` of the proxy.
    #[default]
    Ucb,
    /// The proxy's mean.
    Mean,
}

/// The transform from acquisition value to reward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    /// `R = exp(beta * a)`, `a` in units of standardised score.
    #[default]
    Exp,
    /// `R = max(a', min)^beta`, `a'` the score rescaled to [0, 1].
    Power,
}

/// The campaign's `reward` block; every field optional on input, all filled in when stored.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
#[schema(default)]
pub struct RewardSpec {
    /// Whether higher rewards are better.
    pub maximize: bool,
    pub acquisition: Acquisition,
    /// Weight of the proxy's standard deviation in `ucb`, at least 0.
    #[schema(minimum = 0.0)]
    pub kappa: f64,
    pub transform: Transform,
    /// Defaults to 4.0 for `exp` and 3.0 for `power`; in (0, 100]. Always set once stored.
    #[schema(exclusive_minimum = 0.0, maximum = 100.0)]
    pub beta: Option<f64>,
    /// Floor of `power` before exponentiation, in (0, 1).
    #[schema(exclusive_minimum = 0.0, exclusive_maximum = 1.0)]
    pub min: f64,
}

/// How the background trainer trains a campaign's GFlowNet. The round settings first
/// written here (`pool` to `selection`) now live in the `round` block: written here they are
/// still accepted when a campaign has no `round` block, and a stored campaign repeats the
/// `round` block's values here for clients that read them here.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
#[schema(default)]
pub struct TrainingSpec {
    /// Optimisation steps per training run, 1..=1000000.
    #[schema(minimum = 1, maximum = 1000000)]
    pub steps: usize,
    /// Trajectories per step, 1..=4096.
    #[schema(minimum = 1, maximum = 4096)]
    pub batch_size: usize,
    /// Seed of the run's random draws (combined with the run number).
    pub seed: u64,
    /// Default exploration of rounds and of training's forward trajectories: sampling
    /// temperature, in (0, 1000].
    #[schema(exclusive_minimum = 0.0, maximum = 1000.0)]
    pub temperature: f64,
    /// Default exploration of rounds and of training's forward trajectories: uniform mixing
    /// weight, in [0, 1].
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub epsilon: f64,
    /// Where each training batch's trajectories come from.
    pub mix: TrainingMix,
    /// The surrogate reward model.
    pub proxy: ProxySpec,
    /// The best labelled candidates that seed local search (mutations and crossovers), in
    /// training and in rounds; 1..=1000.
    #[schema(minimum = 1, maximum = 1000)]
    pub elites: usize,
    /// Share of an elite's moves that conservative search redraws, in training and in
    /// rounds; in (0, 1].
    #[schema(exclusive_minimum = 0.0, maximum = 1.0)]
    pub conservative_delta: f64,
    /// `round.pool`, where campaigns first wrote it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = usize, default = 8, minimum = 1, maximum = 100, deprecated)]
    pub pool: Option<usize>,
    /// `round.pool_local_search`, where campaigns first wrote it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = f64, default = 0.5, minimum = 0.0, maximum = 1.0, deprecated)]
    pub pool_local_search: Option<f64>,
    /// `round.pool_conservative`, where campaigns first wrote it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = f64, default = 0.5, minimum = 0.0, maximum = 1.0, deprecated)]
    pub pool_conservative: Option<f64>,
    /// `round.pool_spread`, where campaigns first wrote it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = f64, default = 0.1, minimum = 0.0, maximum = 1.0, deprecated)]
    pub pool_spread: Option<f64>,
    /// `round.pool_walk`, where campaigns first wrote it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = usize, default = 10, minimum = 0, maximum = 100, deprecated)]
    pub pool_walk: Option<usize>,
    /// `round.refine`, where campaigns first wrote it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = usize, default = 2, minimum = 0, maximum = 20, deprecated)]
    pub refine: Option<usize>,
    /// `round.refine_backtrack`, where campaigns first wrote it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = f64, default = 0.5, exclusive_minimum = 0.0, maximum = 1.0, deprecated)]
    pub refine_backtrack: Option<f64>,
    /// `round.selection`, where campaigns first wrote it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Selection, default = "greedy", deprecated)]
    pub selection: Option<Selection>,
}

/// How a round makes its batch: the pool it scores with the proxy, where the pool comes
/// from, how its policy samples are refined, and how the batch is chosen from it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
#[schema(default)]
pub struct RoundSpec {
    /// Candidates a round scores with the proxy for each one it proposes, 1..=100; 1 takes
    /// the policy's samples as they come.
    #[schema(minimum = 1, maximum = 100)]
    pub pool: usize,
    /// Share of a round's scored pool that comes from local search around the elites rather
    /// than from the policy, in [0, 1].
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub pool_local_search: f64,
    /// Share of a round's scored pool that comes from conservative search around the
    /// elites: each an elite with a share `training.conservative_delta` of its moves
    /// redrawn by the policy (δ-CS, Kim et al. 2024). In [0, 1]; local search takes its
    /// share first, so conservative search gets at most what is left, and the rest of the
    /// pool is sampled from the policy.
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub pool_conservative: f64,
    /// A round first takes the best of its pool at least this share of the space's
    /// diameter apart, then fills the rest by score; in [0, 1], 0 ranks by score alone.
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub pool_spread: f64,
    /// Metropolis steps on the proxy's reward that each local-search move takes (0..=100),
    /// in a round's pool and in the local search that training replays: longer walks spread
    /// the moves along what the proxy rates well.
    #[schema(minimum = 0, maximum = 100)]
    pub pool_walk: usize,
    /// Refinement passes over each policy sample of a round's pool (0..=20): the local
    /// search of "Local Search GFlowNets" (Kim et al. 2024) — backtrack with `P_B`,
    /// reconstruct with `P_F`, accept by the proxy's reward with the Metropolis–Hastings
    /// ratio. 0 takes the policy's samples as they come.
    #[schema(minimum = 0, maximum = 20)]
    pub refine: usize,
    /// Share of a sample's trajectory that each refinement pass backtracks, in (0, 1].
    #[schema(exclusive_minimum = 0.0, maximum = 1.0)]
    pub refine_backtrack: f64,
    /// How a round chooses its batch from the scored pool.
    pub selection: Selection,
}

/// How a round chooses its batch from a scored pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    /// Draw the batch from the pool without replacement, each candidate with probability
    /// proportional to its reward under the proxy (skipping near duplicates): the batch
    /// keeps the GFlowNet's promise of sampling in proportion to reward.
    Proportional,
    /// Take the pool's best first (spread out by `pool_spread`, no near duplicates).
    #[default]
    Greedy,
}

/// Shares of each training batch, normalised by their sum (which must be positive). Until a
/// proxy exists every trajectory comes from the labels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
#[schema(default)]
pub struct TrainingMix {
    /// Backward trajectories from labelled candidates, with their measured reward.
    #[schema(minimum = 0.0)]
    pub labelled: f64,
    /// Forward trajectories from the policy (with the campaign's exploration), rewarded by
    /// the proxy.
    #[schema(minimum = 0.0)]
    pub forward: f64,
    /// Backward trajectories from mutations and crossovers of the elites, rewarded by the
    /// proxy.
    #[schema(minimum = 0.0)]
    pub local_search: f64,
    /// Forward walks of conservative search around the elites (each an elite with a share
    /// `training.conservative_delta` of its moves redrawn by the policy), rewarded by the
    /// proxy: the policy learns what to put in the places a round's conservative search
    /// redraws.
    #[schema(minimum = 0.0)]
    pub conservative: f64,
}

/// The surrogate: an ensemble of small MLPs on bootstrap resamples of the labels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
#[schema(default)]
pub struct ProxySpec {
    /// Members of the ensemble, 1..=32.
    #[schema(minimum = 1, maximum = 32)]
    pub members: usize,
    /// Width of each member's two hidden layers, 1..=1024.
    #[schema(minimum = 1, maximum = 1024)]
    pub hidden: usize,
    /// Most optimisation steps of each fit, 1..=100000: a fit stops earlier once the
    /// loss on the rows each member's resample left out stops falling.
    #[schema(minimum = 1, maximum = 100000)]
    pub steps: usize,
    /// Share of the labels held out to measure the proxy's quality, in [0, 0.5]; 0 skips
    /// the measurement (the final fit always uses every label).
    #[schema(minimum = 0.0, maximum = 0.5)]
    pub holdout: f64,
    /// The networks' inputs: `onehot`, `onehot+composition`, `onehot+kmer` or `kmer`.
    pub features: FeatureSet,
}

/// Which inputs the surrogate's networks see (`training.proxy.features`): the space's
/// encoding, and counts that see composition and motifs wherever they sit (the proxy's
/// `features` module says which counts for which space).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum FeatureSet {
    /// The space's encoding alone (one-hot per position, or per item).
    #[serde(rename = "onehot")]
    OneHot,
    /// The encoding plus composition: token counts of a sequence, the size of a set.
    #[serde(rename = "onehot+composition")]
    OneHotComposition,
    /// The encoding, composition and k-mers: 2- and 3-mer counts of a sequence, the pairs
    /// and triples of a set.
    #[serde(rename = "onehot+kmer")]
    OneHotKmer,
    /// Composition and k-mers without the encoding: position-free for sequences.
    #[serde(rename = "kmer")]
    Kmer,
}

/// A validated campaign definition with every default filled in: what is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CampaignSpec {
    pub name: String,
    pub space: SpaceSpec,
    pub reward: RewardSpec,
    pub model: GfnConfig,
    pub training: TrainingSpec,
    pub round: RoundSpec,
}

/// A stored campaign.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Campaign {
    pub id: i64,
    #[serde(flatten)]
    pub spec: CampaignSpec,
    /// RFC 3339, UTC.
    pub created_at: String,
}

impl From<NewCampaign> for domain::NewCampaign {
    fn from(value: NewCampaign) -> Self {
        Self {
            name: value.name,
            space: value.space,
            reward: value.reward.into(),
            model: value.model,
            training: value.training.into(),
            round: value.round.map(Into::into),
        }
    }
}

impl From<domain::Acquisition> for Acquisition {
    fn from(value: domain::Acquisition) -> Self {
        match value {
            domain::Acquisition::Ucb => Self::Ucb,
            domain::Acquisition::Mean => Self::Mean,
        }
    }
}

impl From<Acquisition> for domain::Acquisition {
    fn from(value: Acquisition) -> Self {
        match value {
            Acquisition::Ucb => Self::Ucb,
            Acquisition::Mean => Self::Mean,
        }
    }
}

impl From<domain::Transform> for Transform {
    fn from(value: domain::Transform) -> Self {
        match value {
            domain::Transform::Exp => Self::Exp,
            domain::Transform::Power => Self::Power,
        }
    }
}

impl From<Transform> for domain::Transform {
    fn from(value: Transform) -> Self {
        match value {
            Transform::Exp => Self::Exp,
            Transform::Power => Self::Power,
        }
    }
}

impl From<domain::RewardSpec> for RewardSpec {
    fn from(value: domain::RewardSpec) -> Self {
        Self {
            maximize: value.maximize,
            acquisition: value.acquisition.into(),
            kappa: value.kappa,
            transform: value.transform.into(),
            beta: value.beta,
            min: value.min,
        }
    }
}

impl From<RewardSpec> for domain::RewardSpec {
    fn from(value: RewardSpec) -> Self {
        Self {
            maximize: value.maximize,
            acquisition: value.acquisition.into(),
            kappa: value.kappa,
            transform: value.transform.into(),
            beta: value.beta,
            min: value.min,
        }
    }
}

impl Default for RewardSpec {
    fn default() -> Self {
        domain::RewardSpec::default().into()
    }
}

impl From<domain::TrainingSpec> for TrainingSpec {
    fn from(value: domain::TrainingSpec) -> Self {
        Self {
            steps: value.steps,
            batch_size: value.batch_size,
            seed: value.seed,
            temperature: value.temperature,
            epsilon: value.epsilon,
            mix: value.mix.into(),
            proxy: value.proxy.into(),
            elites: value.elites,
            conservative_delta: value.conservative_delta,
            pool: value.pool,
            pool_local_search: value.pool_local_search,
            pool_conservative: value.pool_conservative,
            pool_spread: value.pool_spread,
            pool_walk: value.pool_walk,
            refine: value.refine,
            refine_backtrack: value.refine_backtrack,
            selection: value.selection.map(Into::into),
        }
    }
}

impl From<TrainingSpec> for domain::TrainingSpec {
    fn from(value: TrainingSpec) -> Self {
        Self {
            steps: value.steps,
            batch_size: value.batch_size,
            seed: value.seed,
            temperature: value.temperature,
            epsilon: value.epsilon,
            mix: value.mix.into(),
            proxy: value.proxy.into(),
            elites: value.elites,
            conservative_delta: value.conservative_delta,
            pool: value.pool,
            pool_local_search: value.pool_local_search,
            pool_conservative: value.pool_conservative,
            pool_spread: value.pool_spread,
            pool_walk: value.pool_walk,
            refine: value.refine,
            refine_backtrack: value.refine_backtrack,
            selection: value.selection.map(Into::into),
        }
    }
}

impl TrainingSpec {
    /// These settings with `round`'s values repeated where campaigns first wrote them.
    fn repeating(self, round: &RoundSpec) -> Self {
        Self {
            pool: Some(round.pool),
            pool_local_search: Some(round.pool_local_search),
            pool_conservative: Some(round.pool_conservative),
            pool_spread: Some(round.pool_spread),
            pool_walk: Some(round.pool_walk),
            refine: Some(round.refine),
            refine_backtrack: Some(round.refine_backtrack),
            selection: Some(round.selection),
            ..self
        }
    }
}

impl From<domain::RoundSpec> for RoundSpec {
    fn from(value: domain::RoundSpec) -> Self {
        Self {
            pool: value.pool,
            pool_local_search: value.pool_local_search,
            pool_conservative: value.pool_conservative,
            pool_spread: value.pool_spread,
            pool_walk: value.pool_walk,
            refine: value.refine,
            refine_backtrack: value.refine_backtrack,
            selection: value.selection.into(),
        }
    }
}

impl From<RoundSpec> for domain::RoundSpec {
    fn from(value: RoundSpec) -> Self {
        Self {
            pool: value.pool,
            pool_local_search: value.pool_local_search,
            pool_conservative: value.pool_conservative,
            pool_spread: value.pool_spread,
            pool_walk: value.pool_walk,
            refine: value.refine,
            refine_backtrack: value.refine_backtrack,
            selection: value.selection.into(),
        }
    }
}

impl Default for RoundSpec {
    fn default() -> Self {
        domain::RoundSpec::default().into()
    }
}

impl Default for TrainingSpec {
    fn default() -> Self {
        domain::TrainingSpec::default().into()
    }
}

impl From<domain::Selection> for Selection {
    fn from(value: domain::Selection) -> Self {
        match value {
            domain::Selection::Proportional => Self::Proportional,
            domain::Selection::Greedy => Self::Greedy,
        }
    }
}

impl From<Selection> for domain::Selection {
    fn from(value: Selection) -> Self {
        match value {
            Selection::Proportional => Self::Proportional,
            Selection::Greedy => Self::Greedy,
        }
    }
}

impl From<domain::TrainingMix> for TrainingMix {
    fn from(value: domain::TrainingMix) -> Self {
        Self {
            labelled: value.labelled,
            forward: value.forward,
            local_search: value.local_search,
            conservative: value.conservative,
        }
    }
}

impl From<TrainingMix> for domain::TrainingMix {
    fn from(value: TrainingMix) -> Self {
        Self {
            labelled: value.labelled,
            forward: value.forward,
            local_search: value.local_search,
            conservative: value.conservative,
        }
    }
}

impl Default for TrainingMix {
    fn default() -> Self {
        domain::TrainingMix::default().into()
    }
}

impl From<domain::ProxySpec> for ProxySpec {
    fn from(value: domain::ProxySpec) -> Self {
        Self {
            members: value.members,
            hidden: value.hidden,
            steps: value.steps,
            holdout: value.holdout,
            features: value.features.into(),
        }
    }
}

impl From<ProxySpec> for domain::ProxySpec {
    fn from(value: ProxySpec) -> Self {
        Self {
            members: value.members,
            hidden: value.hidden,
            steps: value.steps,
            holdout: value.holdout,
            features: value.features.into(),
        }
    }
}

impl Default for ProxySpec {
    fn default() -> Self {
        domain::ProxySpec::default().into()
    }
}

impl From<domain::FeatureSet> for FeatureSet {
    fn from(value: domain::FeatureSet) -> Self {
        match value {
            domain::FeatureSet::OneHot => Self::OneHot,
            domain::FeatureSet::OneHotComposition => Self::OneHotComposition,
            domain::FeatureSet::OneHotKmer => Self::OneHotKmer,
            domain::FeatureSet::Kmer => Self::Kmer,
        }
    }
}

impl From<FeatureSet> for domain::FeatureSet {
    fn from(value: FeatureSet) -> Self {
        match value {
            FeatureSet::OneHot => Self::OneHot,
            FeatureSet::OneHotComposition => Self::OneHotComposition,
            FeatureSet::OneHotKmer => Self::OneHotKmer,
            FeatureSet::Kmer => Self::Kmer,
        }
    }
}

impl From<domain::CampaignSpec> for CampaignSpec {
    fn from(value: domain::CampaignSpec) -> Self {
        let round = RoundSpec::from(value.round);
        Self {
            name: value.name,
            space: value.space,
            reward: value.reward.into(),
            model: value.model,
            training: TrainingSpec::from(value.training).repeating(&round),
            round,
        }
    }
}

impl From<domain::Campaign> for Campaign {
    fn from(value: domain::Campaign) -> Self {
        Self {
            id: value.id,
            spec: value.spec.into(),
            created_at: value.created_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn wire<T: Serialize>(value: &T) -> Value {
        serde_json::to_value(value).expect("serialises")
    }

    /// A campaign body that moves every settings block and every enum off its default.
    fn body() -> Value {
        json!({
            "name": "  shape  ",
            "space": {"type": "grid", "dims": 2, "size": 4},
            "reward": {"maximize": false, "acquisition": "mean", "kappa": 2.0,
                       "transform": "power", "beta": 2.0, "min": 0.01},
            "training": {"steps": 5, "selection": "proportional", "pool": 3,
                         "mix": {"labelled": 1.0, "forward": 2.0, "local_search": 0.0,
                                 "conservative": 0.5},
                         "proxy": {"features": "kmer", "members": 3, "holdout": 0.0}},
        })
    }

    #[test]
    fn defaults_are_the_domain_s() {
        assert_eq!(
            wire(&RewardSpec::default()),
            wire(&domain::RewardSpec::default())
        );
        assert_eq!(
            wire(&TrainingSpec::default()),
            wire(&domain::TrainingSpec::default())
        );
        assert_eq!(
            wire(&RoundSpec::default()),
            wire(&domain::RoundSpec::default())
        );
        assert_eq!(
            wire(&TrainingMix::default()),
            wire(&domain::TrainingMix::default())
        );
        assert_eq!(
            wire(&ProxySpec::default()),
            wire(&domain::ProxySpec::default())
        );
    }

    /// Read through the body type or straight into the domain, a campaign validates to the
    /// same spec, and a stored campaign is written out the same either way.
    #[test]
    fn a_campaign_reads_and_writes_as_the_domain_does() {
        for body in [
            body(),
            json!({"name": "d", "space": {"type": "grid", "dims": 2, "size": 4}}),
            json!({"name": "r", "space": {"type": "grid", "dims": 2, "size": 4},
                   "round": {"pool": 2, "selection": "proportional", "refine_backtrack": 0.25}}),
        ] {
            let through: NewCampaign = serde_json::from_value(body.clone()).expect("the body");
            let direct: domain::NewCampaign = serde_json::from_value(body).expect("the domain");
            let spec = domain::NewCampaign::from(through)
                .validate()
                .expect("valid");
            assert_eq!(spec, direct.validate().expect("valid"));
            let stored = domain::Campaign {
                id: 3,
                spec,
                created_at: "2026-12-02T00:00:00Z".to_string(),
            };
            // The body repeats the round settings where campaigns first wrote them.
            let mut expected = wire(&stored);
            let round = expected["round"].clone();
            for (name, value) in round.as_object().expect("the round block") {
                expected["training"][name] = value.clone();
            }
            assert_eq!(wire(&Campaign::from(stored.clone())), expected);
        }
    }

    #[test]
    fn unknown_fields_are_refused_alike() {
        for (block, field) in [("reward", "kapa"), ("training", "stepz"), ("round", "pol")] {
            let mut body = body();
            body[block][field] = json!(1);
            assert!(serde_json::from_value::<NewCampaign>(body.clone()).is_err());
            assert!(serde_json::from_value::<domain::NewCampaign>(body).is_err());
        }
    }
}
