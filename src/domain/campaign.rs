//! Campaigns: a named candidate space with its reward settings, the settings of
//! its GFlowNet, and how the background trainer runs.

use crate::error::Error;
use crate::gfn::{GfnConfig, SpaceSpec};
use serde::{Deserialize, Serialize};

/// Longest campaign name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// The body of `POST /campaigns`, as the client writes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCampaign {
    /// 1 to 200 characters, trimmed.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Acquisition {
    /// Upper confidence bound `mean + kappa * std` of the proxy.
    #[default]
    Ucb,
    /// The proxy's mean.
    Mean,
}

/// The transform from acquisition value to reward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    /// `R = exp(beta * a)`, `a` in units of standardised score.
    #[default]
    Exp,
    /// `R = max(a', min)^beta`, `a'` the score rescaled to [0, 1].
    Power,
}

/// The campaign's `reward` block; every field optional on input, all filled in when stored.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RewardSpec {
    /// Whether higher rewards are better.
    pub maximize: bool,
    pub acquisition: Acquisition,
    /// Weight of the proxy's standard deviation in `ucb`, at least 0.
    pub kappa: f64,
    pub transform: Transform,
    /// Defaults to 4.0 for `exp` and 3.0 for `power`; in (0, 100]. Always set once stored.
    pub beta: Option<f64>,
    /// Floor of `power` before exponentiation, in (0, 1).
    pub min: f64,
}

impl Default for RewardSpec {
    fn default() -> Self {
        Self {
            maximize: true,
            acquisition: Acquisition::Ucb,
            kappa: 1.0,
            transform: Transform::Exp,
            beta: None,
            min: 1e-8,
        }
    }
}

impl RewardSpec {
    /// The beta in force.
    pub fn beta(&self) -> f64 {
        self.beta.unwrap_or(match self.transform {
            Transform::Exp => 4.0,
            Transform::Power => 3.0,
        })
    }

    fn validate(mut self) -> Result<Self, Error> {
        let finite_positive = |v: f64| v.is_finite() && v > 0.0;
        if !(self.kappa.is_finite() && self.kappa >= 0.0) {
            return Err(Error::invalid(
                "reward.kappa",
                "must be finite and at least 0",
            ));
        }
        if !finite_positive(self.beta()) || self.beta() > 100.0 {
            return Err(Error::invalid("reward.beta", "must be in (0, 100]"));
        }
        if !finite_positive(self.min) || self.min >= 1.0 {
            return Err(Error::invalid("reward.min", "must be in (0, 1)"));
        }
        self.beta = Some(self.beta());
        Ok(self)
    }
}

/// How the background trainer trains a campaign's GFlowNet.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainingSpec {
    /// Optimisation steps per training run, 1..=1000000.
    pub steps: usize,
    /// Trajectories per step, 1..=4096.
    pub batch_size: usize,
    /// Seed of the run's random draws (combined with the run number).
    pub seed: u64,
    /// Default exploration of rounds and of training's forward trajectories: sampling
    /// temperature, in (0, 1000].
    pub temperature: f64,
    /// Default exploration of rounds and of training's forward trajectories: uniform mixing
    /// weight, in [0, 1].
    pub epsilon: f64,
    /// Where each training batch's trajectories come from.
    pub mix: TrainingMix,
    /// The surrogate reward model.
    pub proxy: ProxySpec,
    /// The best labelled candidates that seed local search (mutations and crossovers), in
    /// training and in rounds; 1..=1000.
    pub elites: usize,
    /// Share of an elite's moves that conservative search redraws, in training and in
    /// rounds; in (0, 1].
    pub conservative_delta: f64,
    /// The round settings as campaigns wrote them before the `round` block: each, when
    /// present, is [`RoundSpec`]'s field of the same name. [`NewCampaign::validate`] and a
    /// stored spec's reading move them there, so a [`CampaignSpec`] never holds them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool_local_search: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool_conservative: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool_spread: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool_walk: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refine: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refine_backtrack: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selection: Option<Selection>,
}

/// How a round makes its batch: the pool it scores with the proxy, where the pool comes
/// from, how its policy samples are refined, and how the batch is chosen from it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoundSpec {
    /// Candidates a round scores with the proxy for each one it proposes, 1..=100; 1 takes
    /// the policy's samples as they come.
    pub pool: usize,
    /// Share of a round's scored pool that comes from local search around the elites rather
    /// than from the policy, in [0, 1].
    pub pool_local_search: f64,
    /// Share of a round's scored pool that comes from conservative search around the
    /// elites: each an elite with a share `training.conservative_delta` of its moves
    /// redrawn by the policy (δ-CS, Kim et al. 2024). In [0, 1]; local search takes its
    /// share first, so conservative search gets at most what is left, and the rest of the
    /// pool is sampled from the policy.
    pub pool_conservative: f64,
    /// A round first takes the best of its pool at least this share of the space's
    /// diameter apart, then fills the rest by score; in [0, 1], 0 ranks by score alone.
    pub pool_spread: f64,
    /// Metropolis steps on the proxy's reward that each local-search move takes (0..=100),
    /// in a round's pool and in the local search that training replays: longer walks spread
    /// the moves along what the proxy rates well.
    pub pool_walk: usize,
    /// Refinement passes over each policy sample of a round's pool (0..=20): the local
    /// search of "Local Search GFlowNets" (Kim et al. 2024) — backtrack with `P_B`,
    /// reconstruct with `P_F`, accept by the proxy's reward with the Metropolis–Hastings
    /// ratio. 0 takes the policy's samples as they come.
    pub refine: usize,
    /// Share of a sample's trajectory that each refinement pass backtracks, in (0, 1].
    pub refine_backtrack: f64,
    /// How a round chooses its batch from the scored pool.
    pub selection: Selection,
}

/// How a round chooses its batch from a scored pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
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

impl Default for TrainingSpec {
    fn default() -> Self {
        Self {
            steps: 1000,
            batch_size: 32,
            seed: 0,
            temperature: 1.0,
            epsilon: 0.05,
            mix: TrainingMix::default(),
            proxy: ProxySpec::default(),
            elites: 32,
            conservative_delta: 0.1,
            pool: None,
            pool_local_search: None,
            pool_conservative: None,
            pool_spread: None,
            pool_walk: None,
            refine: None,
            refine_backtrack: None,
            selection: None,
        }
    }
}

impl Default for RoundSpec {
    fn default() -> Self {
        Self {
            // Chosen on the bench's tuning seeds (100-109): every candidate of the pool from
            // conservative search (elites with a tenth of their moves redrawn by the
            // policy), 16 per requested one, taken best first. The policy then makes the
            // whole batch, and it did as well as half local search and half conservative
            // search at a pool of 8, within the noise; a pool of 8 from conservative search
            // alone fell behind. A pool of 32 did a little better still, but a round of
            // 1000 peptides would no longer fit the default --max-step-memory (see README).
            pool: 16,
            pool_local_search: 0.0,
            pool_conservative: 1.0,
            pool_spread: 0.1,
            pool_walk: 10,
            refine: 2,
            refine_backtrack: 0.5,
            selection: Selection::Greedy,
        }
    }
}

/// Shares of each training batch, normalised by their sum (which must be positive). Until a
/// proxy exists every trajectory comes from the labels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainingMix {
    /// Backward trajectories from labelled candidates, with their measured reward.
    pub labelled: f64,
    /// Forward trajectories from the policy (with the campaign's exploration), rewarded by
    /// the proxy.
    pub forward: f64,
    /// Backward trajectories from mutations and crossovers of the elites, rewarded by the
    /// proxy.
    pub local_search: f64,
    /// Forward walks of conservative search around the elites (each an elite with a share
    /// `training.conservative_delta` of its moves redrawn by the policy), rewarded by the
    /// proxy: the policy learns what to put in the places a round's conservative search
    /// redraws.
    pub conservative: f64,
}

impl Default for TrainingMix {
    fn default() -> Self {
        Self {
            // Chosen on the bench's tuning seeds (100-105) with the round defaults below:
            // training the policy on conservative search's own walks, instead of on its
            // free samples, made conservative search's candidates better (see README).
            labelled: 0.25,
            forward: 0.0,
            local_search: 0.25,
            conservative: 0.5,
        }
    }
}

/// The surrogate: an ensemble of small MLPs on bootstrap resamples of the labels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxySpec {
    /// Members of the ensemble, 1..=32.
    pub members: usize,
    /// Width of each member's two hidden layers, 1..=1024.
    pub hidden: usize,
    /// Most optimisation steps of each fit, 1..=100000: a fit stops earlier once the
    /// loss on the rows each member's resample left out stops falling.
    pub steps: usize,
    /// Share of the labels held out to measure the proxy's quality, in [0, 0.5]; 0 skips
    /// the measurement (the final fit always uses every label).
    pub holdout: f64,
    /// The networks' inputs: `onehot`, `onehot+composition`, `onehot+kmer` or `kmer`.
    pub features: FeatureSet,
}

/// Which inputs the surrogate's networks see (`training.proxy.features`): the space's
/// encoding, and counts that see composition and motifs wherever they sit (the proxy's
/// `features` module says which counts for which space).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

impl FeatureSet {
    /// Parses [`FeatureSet::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == name)
    }

    /// Every variant, in the order the bench lists them.
    pub const ALL: [FeatureSet; 4] = [
        FeatureSet::OneHot,
        FeatureSet::OneHotComposition,
        FeatureSet::OneHotKmer,
        FeatureSet::Kmer,
    ];

    /// The name as written in campaigns and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            FeatureSet::OneHot => "onehot",
            FeatureSet::OneHotComposition => "onehot+composition",
            FeatureSet::OneHotKmer => "onehot+kmer",
            FeatureSet::Kmer => "kmer",
        }
    }

    pub(crate) fn encoding(self) -> bool {
        !matches!(self, FeatureSet::Kmer)
    }

    pub(crate) fn composition(self) -> bool {
        !matches!(self, FeatureSet::OneHot)
    }

    pub(crate) fn kmers(self) -> bool {
        matches!(self, FeatureSet::OneHotKmer | FeatureSet::Kmer)
    }
}

impl Default for ProxySpec {
    fn default() -> Self {
        Self {
            members: 5,
            hidden: 64,
            steps: 300,
            holdout: 0.2,
            // On the prospective proxy bench (`flowlab bench proxy`) no counting variant
            // beat the encoding alone on every task.
            features: FeatureSet::OneHot,
        }
    }
}

impl TrainingSpec {
    fn validate(self) -> Result<Self, Error> {
        require(
            (1..=1_000_000).contains(&self.steps),
            "training.steps",
            "must be in 1..=1000000",
        )?;
        require(
            (1..=4096).contains(&self.batch_size),
            "training.batch_size",
            "must be in 1..=4096",
        )?;
        validate_exploration("training", self.temperature, self.epsilon)?;
        self.mix.validate()?;
        self.proxy.validate()?;
        require(
            (1..=1000).contains(&self.elites),
            "training.elites",
            "must be in 1..=1000",
        )?;
        require(
            self.conservative_delta > 0.0 && self.conservative_delta <= 1.0,
            "training.conservative_delta",
            "must be in (0, 1]",
        )?;
        Ok(self)
    }

    /// The name of the first round setting written under `training`, if any.
    fn first_round_field(&self) -> Option<&'static str> {
        [
            ("pool", self.pool.is_some()),
            ("pool_local_search", self.pool_local_search.is_some()),
            ("pool_conservative", self.pool_conservative.is_some()),
            ("pool_spread", self.pool_spread.is_some()),
            ("pool_walk", self.pool_walk.is_some()),
            ("refine", self.refine.is_some()),
            ("refine_backtrack", self.refine_backtrack.is_some()),
            ("selection", self.selection.is_some()),
        ]
        .into_iter()
        .find_map(|(name, present)| present.then_some(name))
    }

    /// Moves the round settings written under `training` out, over `base`: the round
    /// settings they make (`None` when there were none) and the training settings without
    /// them.
    fn take_round(mut self, base: RoundSpec) -> (Self, Option<RoundSpec>) {
        if self.first_round_field().is_none() {
            return (self, None);
        }
        let round = RoundSpec {
            pool: self.pool.take().unwrap_or(base.pool),
            pool_local_search: self
                .pool_local_search
                .take()
                .unwrap_or(base.pool_local_search),
            pool_conservative: self
                .pool_conservative
                .take()
                .unwrap_or(base.pool_conservative),
            pool_spread: self.pool_spread.take().unwrap_or(base.pool_spread),
            pool_walk: self.pool_walk.take().unwrap_or(base.pool_walk),
            refine: self.refine.take().unwrap_or(base.refine),
            refine_backtrack: self
                .refine_backtrack
                .take()
                .unwrap_or(base.refine_backtrack),
            selection: self.selection.take().unwrap_or(base.selection),
        };
        (self, Some(round))
    }
}

impl RoundSpec {
    /// Checks the ranges; `block` is where the client wrote the settings (`round`, or
    /// `training` for a campaign written before the round block), for the field names of
    /// errors.
    fn validate(self, block: &str) -> Result<Self, Error> {
        let unit = |v: f64| (0.0..=1.0).contains(&v);
        let field = |name: &str| format!("{block}.{name}");
        require(
            (1..=100).contains(&self.pool),
            &field("pool"),
            "must be in 1..=100",
        )?;
        require(
            self.pool_walk <= 100,
            &field("pool_walk"),
            "must be in 0..=100",
        )?;
        require(
            unit(self.pool_spread),
            &field("pool_spread"),
            "must be in [0, 1]",
        )?;
        require(
            unit(self.pool_local_search),
            &field("pool_local_search"),
            "must be in [0, 1]",
        )?;
        require(
            unit(self.pool_conservative),
            &field("pool_conservative"),
            "must be in [0, 1]",
        )?;
        require(self.refine <= 20, &field("refine"), "must be in 0..=20")?;
        require(
            self.refine_backtrack > 0.0 && self.refine_backtrack <= 1.0,
            &field("refine_backtrack"),
            "must be in (0, 1]",
        )?;
        Ok(self)
    }
}

impl TrainingMix {
    fn validate(&self) -> Result<(), Error> {
        for (name, v) in [
            ("labelled", self.labelled),
            ("forward", self.forward),
            ("local_search", self.local_search),
            ("conservative", self.conservative),
        ] {
            require(
                v.is_finite() && v >= 0.0,
                &format!("training.mix.{name}"),
                "must be finite and at least 0",
            )?;
        }
        require(
            self.labelled + self.forward + self.local_search + self.conservative > 0.0,
            "training.mix",
            "the shares must not all be 0",
        )
    }
}

impl ProxySpec {
    fn validate(&self) -> Result<(), Error> {
        require(
            (1..=32).contains(&self.members),
            "training.proxy.members",
            "must be in 1..=32",
        )?;
        require(
            (1..=1024).contains(&self.hidden),
            "training.proxy.hidden",
            "must be in 1..=1024",
        )?;
        require(
            (1..=100_000).contains(&self.steps),
            "training.proxy.steps",
            "must be in 1..=100000",
        )?;
        require(
            (0.0..=0.5).contains(&self.holdout),
            "training.proxy.holdout",
            "must be in [0, 0.5]",
        )
    }
}

/// `Ok` when `holds`, else the error naming `field` and the `rule` it breaks.
fn require(holds: bool, field: &str, rule: &str) -> Result<(), Error> {
    if holds {
        Ok(())
    } else {
        Err(Error::invalid(field, rule))
    }
}

/// Temperature must be positive and finite, epsilon in [0, 1].
pub fn validate_exploration(prefix: &str, temperature: f64, epsilon: f64) -> Result<(), Error> {
    if !(temperature.is_finite() && temperature > 0.0 && temperature <= 1000.0) {
        return Err(Error::invalid(
            format!("{prefix}.temperature"),
            "must be in (0, 1000]",
        ));
    }
    if !(0.0..=1.0).contains(&epsilon) {
        return Err(Error::invalid(
            format!("{prefix}.epsilon"),
            "must be in [0, 1]",
        ));
    }
    Ok(())
}

/// A validated campaign definition with every default filled in: what is stored. Its
/// `training` never holds round settings: reading a spec stored before the `round` block
/// moves them into `round`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "StoredCampaignSpec")]
pub struct CampaignSpec {
    pub name: String,
    pub space: SpaceSpec,
    pub reward: RewardSpec,
    pub model: GfnConfig,
    pub training: TrainingSpec,
    pub round: RoundSpec,
}

/// A stored spec as written, by this release or by one before the `round` block.
#[derive(Deserialize)]
struct StoredCampaignSpec {
    name: String,
    space: SpaceSpec,
    reward: RewardSpec,
    model: GfnConfig,
    training: TrainingSpec,
    #[serde(default)]
    round: Option<RoundSpec>,
}

impl From<StoredCampaignSpec> for CampaignSpec {
    fn from(stored: StoredCampaignSpec) -> Self {
        let base = stored.round.unwrap_or_default();
        let (training, lifted) = stored.training.take_round(base);
        Self {
            name: stored.name,
            space: stored.space,
            reward: stored.reward,
            model: stored.model,
            training,
            round: lifted.unwrap_or(base),
        }
    }
}

impl CampaignSpec {
    /// The campaign's space. A stored spec was validated when the campaign was created, so a
    /// failure here means the stored row is damaged: a storage error, not a client's.
    pub fn build_space(&self) -> Result<std::sync::Arc<dyn crate::gfn::Space>, Error> {
        self.space
            .build()
            .map(std::sync::Arc::from)
            .map_err(|e| Error::Storage(format!("stored space is invalid: {e}").into()))
    }
}

impl NewCampaign {
    /// Where this body wrote its round settings: `training` when it has no `round` block
    /// and puts any of them under `training` (as campaigns first did), else `round`. Errors
    /// about them name the field where the client wrote it.
    pub fn round_block(&self) -> &'static str {
        match (&self.round, self.training.first_round_field()) {
            (None, Some(_)) => "training",
            _ => "round",
        }
    }

    /// Checks the name, the space bounds, the reward, model, training and round settings.
    pub fn validate(self) -> Result<CampaignSpec, Error> {
        let name = self.name.trim().to_string();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(Error::invalid(
                "name",
                format!("must be 1 to {MAX_NAME_CHARS} characters"),
            ));
        }
        // PostgreSQL text cannot hold U+0000; refused on both backends alike.
        if name.contains('\0') {
            return Err(Error::invalid("name", "must not contain U+0000"));
        }
        self.space
            .build()
            .map_err(|e| Error::invalid(format!("space.{}", e.field), e.reason))?;
        let model = self.model.unwrap_or_default();
        model
            .validate()
            .map_err(|e| Error::invalid("model", e.to_string()))?;
        let written_under_training = self.training.first_round_field();
        let (training, lifted) = self.training.take_round(RoundSpec::default());
        let round = match (self.round, lifted, written_under_training) {
            (Some(_), _, Some(name)) => {
                return Err(Error::invalid(
                    format!("training.{name}"),
                    format!("is a round setting: write it as round.{name}, beside the other round settings (under training it is accepted only from campaigns without a round block)"),
                ))
            }
            (Some(round), _, None) => round.validate("round")?,
            (None, Some(round), _) => round.validate("training")?,
            (None, None, _) => RoundSpec::default().validate("round")?,
        };
        Ok(CampaignSpec {
            name,
            space: self.space,
            reward: self.reward.validate()?,
            model,
            training: training.validate()?,
            round,
        })
    }
}

/// A stored campaign.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Campaign {
    pub id: i64,
    #[serde(flatten)]
    pub spec: CampaignSpec,
    /// RFC 3339, UTC.
    pub created_at: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn validated(body: Value) -> Result<CampaignSpec, Error> {
        serde_json::from_value::<NewCampaign>(body)
            .expect("the body reads")
            .validate()
    }

    fn campaign(training: Value, round: Option<Value>) -> Value {
        let mut body = json!({"name": "r", "space": {"type": "grid", "dims": 2, "size": 4},
                              "training": training});
        if let Some(round) = round {
            body["round"] = round;
        }
        body
    }

    fn refused_field(body: Value) -> String {
        match validated(body) {
            Err(Error::Invalid { field, .. }) => field,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn round_settings_under_training_mean_what_they_mean_in_the_round_block() {
        let settings = json!({"pool": 3, "refine": 0, "pool_walk": 4, "selection": "proportional"});
        let old = validated(campaign(settings.clone(), None)).expect("valid");
        let new = validated(campaign(json!({}), Some(settings))).expect("valid");
        assert_eq!(old, new);
        assert_eq!(
            (new.round.pool, new.round.refine, new.round.pool_walk),
            (3, 0, 4)
        );
        assert_eq!(new.round.selection, Selection::Proportional);
        // What was not written takes the round block's default, and the stored training
        // block holds no round setting.
        assert_eq!(new.round.pool_spread, RoundSpec::default().pool_spread);
        assert_eq!(new.training.first_round_field(), None);
        let stored = serde_json::to_value(&new).expect("serialises");
        assert!(stored["training"].get("pool").is_none(), "{stored}");
        assert_eq!(stored["round"]["pool"], 3);
    }

    #[test]
    fn round_settings_in_both_places_are_refused_naming_the_old_one() {
        let body = campaign(json!({"pool_spread": 0.2}), Some(json!({"pool": 3})));
        assert_eq!(refused_field(body), "training.pool_spread");
    }

    #[test]
    fn a_bad_round_setting_is_named_where_it_was_written() {
        assert_eq!(
            refused_field(campaign(json!({"pool": 0}), None)),
            "training.pool"
        );
        let round = Some(json!({"pool": 0}));
        assert_eq!(refused_field(campaign(json!({}), round)), "round.pool");
        let round = Some(json!({"pool_local_search": 0.6, "pool_conservative": -0.1}));
        assert_eq!(
            refused_field(campaign(json!({}), round)),
            "round.pool_conservative"
        );
    }

    /// A spec stored before the round block kept the round settings under `training`:
    /// read back, they are the round block's.
    #[test]
    fn a_spec_stored_before_the_round_block_reads_into_it() {
        let current =
            validated(campaign(json!({}), Some(json!({"pool": 5, "refine": 1})))).expect("valid");
        let mut old_shape = serde_json::to_value(&current).expect("serialises");
        let round = old_shape
            .as_object_mut()
            .and_then(|o| o.remove("round"))
            .expect("a round block");
        for (name, value) in round.as_object().expect("an object") {
            old_shape["training"][name] = value.clone();
        }
        let read: CampaignSpec = serde_json::from_value(old_shape).expect("reads");
        assert_eq!(read, current);
        let round_trip: CampaignSpec =
            serde_json::from_value(serde_json::to_value(&current).expect("serialises"))
                .expect("reads");
        assert_eq!(round_trip, current);
    }
}
