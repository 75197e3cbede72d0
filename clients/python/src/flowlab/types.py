"""What the API answers, as typed dataclasses.

Field names are the API's own (see ``proto-docs/openapi.json``), so the protocol's
documentation applies word for word. A test compares every class here with its schema in
that document. Fields the client adds itself carry ``metadata={"client_only": True}``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Optional, Union, overload

from .settings import ModelSettings, RewardSettings, RoundSettings, TrainingSettings
from .spaces import Space

if TYPE_CHECKING:
    import pandas

#: A candidate's value: a string (sequences), a list of integers (grids) or a list of items
#: (sets).
Value = Union[str, list[int], list[str]]

CandidateStatus = Literal["pending", "labelled", "failed", "abandoned"]
CandidateSource = Literal["uniform", "policy", "policy+local", "local", "elite+policy", "imported"]
ModelStatus = Literal["untrained", "training", "ready", "failed"]
RunStatus = Literal["running", "succeeded", "failed", "cancelled"]
ErrorCode = Literal[
    "malformed_json",
    "invalid_body",
    "invalid_value",
    "invalid_item",
    "bad_request",
    "unauthorized",
    "not_found",
    "method_not_allowed",
    "conflict",
    "payload_too_large",
    "unsupported_media_type",
    "unavailable",
    "internal",
]
CandidateOrder = Literal["created", "reward"]


def _data_frame(rows: list[dict[str, Any]], columns: list[str]) -> pandas.DataFrame:
    try:
        import pandas
    except ImportError:
        raise ImportError(
            "to_pandas() needs pandas: pip install 'flowlab-client[pandas]'"
        ) from None
    return pandas.DataFrame(rows, columns=columns)


@dataclass(frozen=True)
class Health:
    """``GET /healthz``: ``status`` is ``ok`` or ``degraded``, ``database`` ``ok`` or
    ``unreachable``."""

    status: str
    database: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class ProxyQuality:
    """The proxy scored on labels held out of its fit (optimistic; see the protocol)."""

    spearman: float
    rmse: float
    train: int
    test: int


@dataclass(frozen=True)
class TrainingRun:
    """One background training run of a campaign."""

    id: int
    owner: str
    status: RunStatus
    labels: int
    observations: int
    steps: int
    loss: Optional[float]
    version: Optional[int]
    error: Optional[str]
    started_at: str
    finished_at: Optional[str]
    proxy: Optional[ProxyQuality]


@dataclass(frozen=True)
class ModelOverview:
    """The newest checkpoint of a campaign and its training runs, newest first."""

    version: int
    status: ModelStatus
    error: Optional[str]
    trained_on_labels: int
    trained_on_observations: int
    steps: int
    loss: Optional[float]
    proxy: Optional[ProxyQuality]
    updated_at: Optional[str]
    history: list[TrainingRun]


@dataclass(frozen=True)
class ProspectiveQuality:
    """One round's predictions scored against what the lab then measured."""

    n: int
    spearman: Optional[float]
    rmse: Optional[float]
    coverage_1sigma: Optional[float]
    coverage_2sigma: Optional[float]


@dataclass(frozen=True)
class ProspectiveSummary:
    """The prospective figures over the rounds that have them."""

    rounds: int
    n: int
    median_spearman: Optional[float]
    median_rmse: Optional[float]
    coverage_1sigma: Optional[float]
    coverage_2sigma: Optional[float]


@dataclass(frozen=True)
class RoundFigures:
    """What became of one round's candidates, and how well the proxy predicted them."""

    number: int
    model_version: int
    proposed: int
    sources: dict[str, int]
    labelled: int
    failed: int
    prospective: ProspectiveQuality


@dataclass(frozen=True)
class ModelDetail(ModelOverview):
    """``GET /campaigns/{id}/model``: the overview plus per-round figures.

    ``serving_version`` is the checkpoint rounds draw from: ``version`` as a rule, an older
    one when the newest cannot be loaded, ``None`` before any checkpoint.
    """

    serving_version: Optional[int]
    prospective: ProspectiveSummary
    rounds: list[RoundFigures]


@dataclass(frozen=True)
class BestCandidate:
    """The best labelled candidate of a campaign (per ``maximize``)."""

    candidate_id: int
    value: Value
    reward: float
    entity: Optional[str]


@dataclass(frozen=True)
class CampaignStats:
    """Counts of a campaign's candidates, its best one and its model."""

    candidates: int
    labelled: int
    failed: int
    pending: int
    abandoned: int
    rounds: int
    objects: int
    best: Optional[BestCandidate]
    model: ModelOverview


@dataclass(frozen=True)
class CampaignInfo:
    """A campaign as created: its space and every setting, defaults filled in."""

    id: int
    name: str
    space: Space
    reward: RewardSettings
    model: ModelSettings
    training: TrainingSettings
    round: RoundSettings
    created_at: str


@dataclass(frozen=True)
class CampaignDetail(CampaignInfo):
    """``GET /campaigns/{id}``: the campaign with its counts and model."""

    stats: CampaignStats


@dataclass(frozen=True)
class ProxyEstimate:
    """The proxy's prediction for a candidate, in the oracle's units."""

    mean: float
    std: float


@dataclass(frozen=True)
class ProposedCandidate:
    """A candidate of a new round: measure ``value``, then tell its ``id``'s score."""

    id: int
    value: Value
    proxy: Optional[ProxyEstimate]
    source: Optional[CandidateSource]


@dataclass(frozen=True)
class Round:
    """A batch of candidates to measure. Iterating it yields the candidates."""

    id: int
    campaign_id: int
    number: int
    model_version: int
    batch_size: int
    exhausted: bool
    key: Optional[str]
    created_at: str
    candidates: list[ProposedCandidate]
    #: True when the server answered with a round it already held under this key (a retry
    #: or a repeated ``key``) rather than drawing a new one.
    replayed: bool = field(default=False, metadata={"client_only": True})

    def __iter__(self) -> Iterator[ProposedCandidate]:
        return iter(self.candidates)

    def __len__(self) -> int:
        return len(self.candidates)

    @overload
    def __getitem__(self, index: int) -> ProposedCandidate: ...

    @overload
    def __getitem__(self, index: slice) -> list[ProposedCandidate]: ...

    def __getitem__(
        self, index: Union[int, slice]
    ) -> Union[ProposedCandidate, list[ProposedCandidate]]:
        return self.candidates[index]

    def to_pandas(self) -> pandas.DataFrame:
        """One row per candidate: id, value, source and the proxy's prediction."""
        rows = [
            {
                "id": c.id,
                "value": c.value,
                "source": c.source,
                "proxy_mean": c.proxy.mean if c.proxy else None,
                "proxy_std": c.proxy.std if c.proxy else None,
            }
            for c in self.candidates
        ]
        return _data_frame(rows, ["id", "value", "source", "proxy_mean", "proxy_std"])


@dataclass(frozen=True)
class StoredLabel:
    """One observation of a candidate as stored."""

    reward: Optional[float]
    failed: bool
    error: Optional[str]
    key: Optional[str]
    metadata: Any
    created_at: str


@dataclass(frozen=True)
class RoundCandidate:
    """A candidate of a stored round, with where it stands and its labels."""

    id: int
    value: Value
    status: CandidateStatus
    mean_reward: Optional[float]
    observations: int
    source: Optional[CandidateSource]
    labels: list[StoredLabel]


@dataclass(frozen=True)
class RoundDetail:
    """``GET /rounds/{id}``: a round, each candidate with its status and labels."""

    id: int
    campaign_id: int
    number: int
    model_version: int
    batch_size: int
    exhausted: bool
    key: Optional[str]
    created_at: str
    candidates: list[RoundCandidate]

    def __iter__(self) -> Iterator[RoundCandidate]:
        return iter(self.candidates)

    def __len__(self) -> int:
        return len(self.candidates)


@dataclass(frozen=True)
class ListedCandidate:
    """A row of a campaign's candidate listing. With ``distinct="entity"`` the row is an
    object's best candidate with the whole object's counts and ``replicates``."""

    id: int
    value: Value
    round: Optional[int]
    status: CandidateStatus
    mean_reward: Optional[float]
    observations: int
    successes: int
    failures: int
    created_at: str
    source: Optional[CandidateSource]
    entity: Optional[str]
    replicates: Optional[int] = None


CANDIDATE_COLUMNS = [f for f in ListedCandidate.__dataclass_fields__]


class CandidateList(list[ListedCandidate]):
    """Candidates as a list, with ``to_pandas()`` for a data frame."""

    def to_pandas(self) -> pandas.DataFrame:
        """One row per candidate, one column per field of :class:`ListedCandidate`."""
        return _data_frame([asdict(c) for c in self], CANDIDATE_COLUMNS)


@dataclass(frozen=True)
class CandidatePage:
    """One page of a candidate listing, as the API answers it. ``next`` is the ``after`` of
    the page that follows (``None`` when no row follows)."""

    candidates: list[ListedCandidate]
    limit: int
    offset: int
    next: Optional[str]


@dataclass(frozen=True)
class ModelSample:
    """Values drawn from the newest model (nothing stored)."""

    campaign_id: int
    model_version: int
    seed: int
    values: list[Value]


@dataclass(frozen=True)
class LabelsOutcome:
    """``accepted``: new observations stored; ``duplicates``: labels whose key was already
    stored with the same result (after a retry, the labels the first attempt stored)."""

    accepted: int
    duplicates: int


@dataclass(frozen=True)
class Label:
    """One measurement to store: name the candidate by ``candidate_id``, or by ``value``
    (with ``campaign_id``; filled in by a :class:`~flowlab.Campaign`) to import a value never
    proposed. Give ``reward``, or ``failed=True`` with an optional ``error``. Without a
    ``key`` the client derives one from the label's content. A key given here must name this
    one measurement: the server compares a repeated key by result alone, so the same key on
    another candidate with the same reward would be taken for a duplicate and not stored."""

    candidate_id: Optional[int] = None
    campaign_id: Optional[int] = None
    value: Optional[Value] = None
    reward: Optional[float] = None
    failed: bool = False
    error: Optional[str] = None
    key: Optional[str] = None
    metadata: Any = None
    entity: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {}
        for name in (
            "candidate_id",
            "campaign_id",
            "value",
            "reward",
            "error",
            "key",
            "metadata",
            "entity",
        ):
            item = getattr(self, name)
            if item is not None:
                body[name] = item
        if self.failed:
            body["failed"] = True
        return body


@dataclass(frozen=True)
class Failed:
    """A measurement that failed, as a value of :meth:`Campaign.tell`'s mapping:
    ``campaign.tell({c.id: Failed("no colonies")})``."""

    error: Optional[str] = None
