"""Python client of flowlab, the active-learning service.

import flowlab
lab = flowlab.Client("http://127.0.0.1:8080", token=...)
campaign = lab.create_campaign("promoters", space=flowlab.Sequence("ACGT", length=8))
batch = campaign.ask(96, key="plate-7")
campaign.tell({c.id: score(c.value) for c in batch})
"""

from ._decode import DecodeError
from ._http import RetryPolicy
from .client import DEFAULT_URL, Campaign, Client
from .errors import ApiError, FlowlabError, TransportError
from .metrics import Metrics, MetricSample
from .operations import OPERATIONS, Operation
from .settings import (
    ModelSettings,
    ProxySettings,
    RewardSettings,
    RoundSettings,
    TrainingMix,
    TrainingSettings,
)
from .spaces import Grid, Sequence, Set, Space
from .types import (
    BestCandidate,
    CampaignDetail,
    CampaignInfo,
    CampaignStats,
    CandidateList,
    CandidatePage,
    Failed,
    Health,
    Label,
    LabelsOutcome,
    ListedCandidate,
    ModelDetail,
    ModelOverview,
    ModelSample,
    ProposedCandidate,
    ProspectiveQuality,
    ProspectiveSummary,
    ProxyEstimate,
    ProxyQuality,
    Round,
    RoundCandidate,
    RoundDetail,
    RoundFigures,
    StoredLabel,
    TrainingRun,
    Value,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_URL",
    "OPERATIONS",
    "ApiError",
    "BestCandidate",
    "Campaign",
    "CampaignDetail",
    "CampaignInfo",
    "CampaignStats",
    "CandidateList",
    "CandidatePage",
    "Client",
    "DecodeError",
    "Failed",
    "FlowlabError",
    "Grid",
    "Health",
    "Label",
    "LabelsOutcome",
    "ListedCandidate",
    "MetricSample",
    "Metrics",
    "ModelDetail",
    "ModelOverview",
    "ModelSample",
    "ModelSettings",
    "Operation",
    "ProposedCandidate",
    "ProspectiveQuality",
    "ProspectiveSummary",
    "ProxyEstimate",
    "ProxyQuality",
    "ProxySettings",
    "RetryPolicy",
    "RewardSettings",
    "Round",
    "RoundCandidate",
    "RoundDetail",
    "RoundFigures",
    "RoundSettings",
    "Sequence",
    "Set",
    "Space",
    "StoredLabel",
    "TrainingMix",
    "TrainingRun",
    "TrainingSettings",
    "TransportError",
    "Value",
    "__version__",
]
