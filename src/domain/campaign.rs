//! Campaigns: a named candidate space with the settings of its GFlowNet.

use crate::error::Error;
use crate::gfn::{GfnConfig, SpaceSpec};
use serde::{Deserialize, Serialize};

/// Longest campaign name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// The body of `POST /campaigns`, as the client writes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCampaign {
    pub name: String,
    pub space: SpaceSpec,
    #[serde(default)]
    pub model: Option<GfnConfig>,
}

/// A validated campaign definition with every default filled in: what is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignSpec {
    pub name: String,
    pub space: SpaceSpec,
    pub model: GfnConfig,
}

impl NewCampaign {
    /// Checks the name, the space bounds and the model settings.
    pub fn validate(self) -> Result<CampaignSpec, Error> {
        let name = self.name.trim().to_string();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(Error::invalid(
                "name",
                format!("must be 1 to {MAX_NAME_CHARS} characters"),
            ));
        }
        self.space
            .build()
            .map_err(|e| Error::invalid(format!("space.{}", e.field), e.reason))?;
        let model = self.model.unwrap_or_default();
        model
            .validate()
            .map_err(|e| Error::invalid("model", e.to_string()))?;
        Ok(CampaignSpec {
            name,
            space: self.space,
            model,
        })
    }
}

/// A stored campaign.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Campaign {
    pub id: i64,
    #[serde(flatten)]
    pub spec: CampaignSpec,
    pub created_at: String,
}
