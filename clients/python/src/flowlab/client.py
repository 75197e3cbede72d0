"""``Client``: the server; ``Campaign``: one campaign's loop of ask and tell."""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable, Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, Optional, Union

import httpx

from . import _keys
from ._decode import decode
from ._http import HttpSession, RetryPolicy
from .metrics import Metrics
from .settings import (
    ModelSettings,
    RewardSettings,
    RoundSettings,
    TrainingSettings,
    settings_to_json,
)
from .spaces import Space
from .types import (
    CampaignDetail,
    CampaignInfo,
    CampaignStats,
    CandidateList,
    CandidateOrder,
    CandidatePage,
    CandidateStatus,
    Failed,
    Health,
    Label,
    LabelsOutcome,
    ModelDetail,
    ModelSample,
    Round,
    RoundDetail,
    Value,
)

#: Where a server started with its defaults listens.
DEFAULT_URL = "http://127.0.0.1:8080"

#: Page size when :meth:`Campaign.candidates` reads every candidate.
_PAGE = 1000

CsvData = Union[str, bytes, "os.PathLike[str]"]


def _csv_text(data: CsvData) -> str:
    """CSV given as bytes, as text, or as a file: a path, or a string without a line break
    (CSV text with any row has one; a file name has none)."""
    if isinstance(data, bytes):
        return data.decode("utf-8")
    if isinstance(data, os.PathLike) or "\n" not in data:
        return Path(data).read_text(encoding="utf-8")
    return data


class Client:
    """A flowlab server.

    ``url`` and ``token`` default to the environment variables ``FLOWLAB_URL`` and
    ``FLOWLAB_API_TOKEN`` (and the URL then to ``http://127.0.0.1:8080``).

    ``timeout`` bounds each request, in seconds. ``wait_timeout`` bounds a round that waits
    for the model (:meth:`Campaign.ask`); keep it above the server's ``--wait-timeout`` (120 s
    by default) so that the server's own answer arrives first. Transient failures are retried
    at most ``max_retries`` times, pausing ``backoff`` seconds, doubling up to
    ``max_backoff``. ``transport`` replaces httpx's (tests, proxies).
    """

    def __init__(
        self,
        url: Optional[str] = None,
        token: Optional[str] = None,
        *,
        timeout: float = 30.0,
        wait_timeout: float = 180.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        transport: Optional[httpx.BaseTransport] = None,
    ) -> None:
        self.url = (url or os.environ.get("FLOWLAB_URL") or DEFAULT_URL).rstrip("/")
        if token is None:
            token = os.environ.get("FLOWLAB_API_TOKEN") or None
        self.timeout = timeout
        self.wait_timeout = wait_timeout
        self.retry = RetryPolicy(max_retries=max_retries, backoff=backoff, max_backoff=max_backoff)
        self._http = HttpSession(
            self.url, token, timeout=timeout, retry=self.retry, transport=transport
        )

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    def close(self) -> None:
        """Closes the connections."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the server ---------------------------------------------------------------------

    def health(self) -> Health:
        """Whether the server serves and reaches its database (``ok`` is False when not).
        Needs no token."""
        response = self._http.request("GET", "/healthz", idempotent=True, ok=(200, 503))
        return decode(Health, response.json())

    def metrics(self) -> Metrics:
        """The server process's Prometheus metrics."""
        response = self._http.request("GET", "/metrics", idempotent=True)
        return Metrics.parse(response.text)

    # -- campaigns ----------------------------------------------------------------------

    def create_campaign(
        self,
        name: str,
        space: Space,
        *,
        reward: Union[RewardSettings, Mapping[str, Any], None] = None,
        model: Union[ModelSettings, Mapping[str, Any], None] = None,
        training: Union[TrainingSettings, Mapping[str, Any], None] = None,
        round: Union[RoundSettings, Mapping[str, Any], None] = None,
    ) -> Campaign:
        """Creates a campaign; unset settings take the server's defaults.

        The API has no idempotency key for campaigns, so this request is retried only when
        it certainly did not reach the server.
        """
        body: dict[str, Any] = {"name": name, "space": space.to_json()}
        for field, settings in (
            ("reward", reward),
            ("model", model),
            ("training", training),
            ("round", round),
        ):
            if settings is not None:
                body[field] = settings_to_json(
                    dict(settings) if isinstance(settings, Mapping) else settings
                )
        response = self._http.request("POST", "/campaigns", idempotent=False, json=body, ok=(201,))
        return Campaign(self, decode(CampaignInfo, response.json()))

    def campaign(self, campaign_id: int) -> Campaign:
        """The campaign with this id (``ApiError`` 404 when there is none)."""
        detail = self.get_campaign(campaign_id)
        # The handle keeps the campaign as created; its counts go stale, so they stay out.
        info = CampaignInfo(**{f.name: getattr(detail, f.name) for f in fields(CampaignInfo)})
        return Campaign(self, info)

    def get_campaign(self, campaign_id: int) -> CampaignDetail:
        """The campaign with its counts and model."""
        response = self._http.request("GET", f"/campaigns/{campaign_id}", idempotent=True)
        return decode(CampaignDetail, response.json())

    def campaigns(self, name: Optional[str] = None) -> list[Campaign]:
        """Every campaign (only those called ``name`` when given), oldest first.

        The server answers in pages; this reads them all.
        """
        infos: list[CampaignInfo] = []
        page_size = 1000
        while True:
            response = self._http.request(
                "GET",
                "/campaigns",
                params={"limit": page_size, "offset": len(infos)},
                idempotent=True,
            )
            page = [decode(CampaignInfo, c) for c in response.json()["campaigns"]]
            infos.extend(page)
            if len(page) < page_size:
                break
        return [Campaign(self, c) for c in infos if name is None or c.name == name]

    # -- rounds -------------------------------------------------------------------------

    def create_round(
        self,
        campaign_id: int,
        batch_size: int,
        *,
        key: Optional[str] = None,
        wait_for_model: bool = True,
        temperature: Optional[float] = None,
        epsilon: Optional[float] = None,
        min_distance: Optional[float] = None,
    ) -> Round:
        """Asks for ``batch_size`` new candidates. See :meth:`Campaign.ask`."""
        body: dict[str, Any] = {
            "campaign_id": campaign_id,
            "batch_size": batch_size,
            "key": key if key is not None else _keys.round_key(),
            "wait_for_model": wait_for_model,
        }
        for name, value in (
            ("temperature", temperature),
            ("epsilon", epsilon),
            ("min_distance", min_distance),
        ):
            if value is not None:
                body[name] = value
        timeout = httpx.Timeout(self.timeout, read=self.wait_timeout) if wait_for_model else None
        response = self._http.request(
            "POST", "/rounds", idempotent=True, json=body, ok=(200, 201), timeout=timeout
        )
        round_ = decode(Round, response.json())
        if response.status_code == 200:
            round_ = replace(round_, replayed=True)
        return round_

    def get_round(self, round_id: int) -> RoundDetail:
        """A round, each candidate with its status and labels."""
        response = self._http.request("GET", f"/rounds/{round_id}", idempotent=True)
        return decode(RoundDetail, response.json())

    def abandon_round(self, round_id: int) -> RoundDetail:
        """Marks the round's still-pending candidates abandoned: they will never be measured
        and are never proposed again. Doing it twice changes nothing."""
        response = self._http.request("POST", f"/rounds/{round_id}/abandon", idempotent=True)
        return decode(RoundDetail, response.json())

    # -- labels -------------------------------------------------------------------------

    def post_labels(self, labels: Iterable[Label], *, key: Optional[str] = None) -> LabelsOutcome:
        """Stores a batch of labels, all or nothing. Each label without a key gets one (see
        :meth:`Campaign.tell`), so the batch may be sent again safely."""
        keyed = _keys.with_keys(labels, key)
        response = self._http.request(
            "POST", "/labels", idempotent=True, json={"labels": [x.to_json() for x in keyed]}
        )
        return decode(LabelsOutcome, response.json())

    def post_labels_csv(self, data: CsvData, *, campaign_id: Optional[int] = None) -> LabelsOutcome:
        """Stores labels from CSV (a file path, text or bytes) with a header of some of
        ``candidate_id``, ``campaign_id``, ``value``, ``reward``, ``failed``, ``error``,
        ``key``, ``entity``; ``campaign_id`` is the campaign of rows that give a value only.
        Rows without a key get one derived from their cells."""
        text = _keys.csv_with_keys(_csv_text(data), campaign_id)
        response = self._http.request(
            "POST",
            "/labels",
            idempotent=True,
            params={"campaign_id": campaign_id},
            content=text.encode("utf-8"),
            content_type="text/csv",
        )
        return decode(LabelsOutcome, response.json())

    # -- candidates ---------------------------------------------------------------------

    def list_candidates(
        self,
        campaign_id: int,
        *,
        status: Optional[CandidateStatus] = None,
        order: Optional[CandidateOrder] = None,
        limit: Optional[int] = None,
        offset: Optional[int] = None,
        distinct: Optional[str] = None,
        after: Optional[str] = None,
    ) -> CandidatePage:
        """One page of the campaign's candidates (the server's default page is 100).
        ``after`` is an earlier page's ``next``: the page starts just after that page's last
        row, as fast however deep it is (same ``status``, ``order`` and ``distinct``, no
        ``offset``)."""
        response = self._http.request(
            "GET",
            f"/campaigns/{campaign_id}/candidates",
            idempotent=True,
            params={
                "status": status,
                "order": order,
                "limit": limit,
                "offset": offset,
                "distinct": distinct,
                "after": after,
            },
        )
        return decode(CandidatePage, response.json())

    def candidates_csv(
        self,
        campaign_id: int,
        *,
        status: Optional[CandidateStatus] = None,
        order: Optional[CandidateOrder] = None,
        limit: Optional[int] = None,
        offset: Optional[int] = None,
        distinct: Optional[str] = None,
        after: Optional[str] = None,
    ) -> str:
        """The same listing as CSV: ``id, value, round, status, mean_reward, observations,
        source, entity``."""
        response = self._http.request(
            "GET",
            f"/campaigns/{campaign_id}/candidates",
            idempotent=True,
            params={
                "status": status,
                "order": order,
                "limit": limit,
                "offset": offset,
                "distinct": distinct,
                "after": after,
                "format": "csv",
            },
        )
        return response.text

    # -- the model ----------------------------------------------------------------------

    def get_model(self, campaign_id: int) -> ModelDetail:
        """The campaign's model: newest checkpoint, training runs, per-round figures."""
        response = self._http.request("GET", f"/campaigns/{campaign_id}/model", idempotent=True)
        return decode(ModelDetail, response.json())

    def sample_model(self, campaign_id: int, n: int = 10, seed: int = 0) -> ModelSample:
        """``n`` values drawn from the newest model with ``seed``; nothing is stored."""
        response = self._http.request(
            "GET",
            f"/campaigns/{campaign_id}/model/sample",
            idempotent=True,
            params={"n": n, "seed": seed},
        )
        return decode(ModelSample, response.json())


def _result_label(result: Union[float, Failed], **target: Any) -> Label:
    """The label saying ``result`` about ``target`` (``candidate_id=`` or ``value=``)."""
    if isinstance(result, Failed):
        return Label(**target, failed=True, error=result.error)
    # numbers.Real takes numpy's scalars too, which lab code is full of.
    if isinstance(result, bool) or not isinstance(result, numbers.Real):
        raise TypeError(f"{target}: a result is a number or flowlab.Failed, not {result!r}")
    reward = float(result)
    if not math.isfinite(reward):
        # JSON has no NaN; a measurement that gave none is a failure.
        raise ValueError(f"{target}: reward {reward} is not finite; tell a flowlab.Failed")
    return Label(**target, reward=reward)


class Campaign:
    """One campaign: ask for batches, tell their results, read what the server learnt.

    Made by :meth:`Client.create_campaign`, :meth:`Client.campaign` or
    :meth:`Client.campaigns`; ``info`` is the campaign as created, every setting filled in.
    """

    def __init__(self, client: Client, info: CampaignInfo) -> None:
        self.client = client
        self.info = info

    @property
    def id(self) -> int:
        return self.info.id

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def space(self) -> Space:
        return self.info.space

    def __repr__(self) -> str:
        return f"Campaign(id={self.id}, name={self.name!r})"

    def detail(self) -> CampaignDetail:
        """The campaign now, with its counts and model."""
        return self.client.get_campaign(self.id)

    def stats(self) -> CampaignStats:
        """Counts of candidates by status, rounds, objects, the best candidate, the model."""
        return self.detail().stats

    def ask(
        self,
        n: int,
        *,
        key: Optional[str] = None,
        wait_for_model: bool = True,
        temperature: Optional[float] = None,
        epsilon: Optional[float] = None,
        min_distance: Optional[float] = None,
    ) -> Round:
        """A new batch of ``n`` candidates to measure.

        By default the server first waits until the model has learnt from every label told
        so far. ``key`` names the round: asking again with the same key answers that same
        round (``replayed`` True) and spends nothing, so a script that crashed can simply
        run again. Without a key, a random one still protects this call's own retries.
        ``temperature``, ``epsilon`` and ``min_distance`` override the exploration of this
        round only.
        """
        return self.client.create_round(
            self.id,
            n,
            key=key,
            wait_for_model=wait_for_model,
            temperature=temperature,
            epsilon=epsilon,
            min_distance=min_distance,
        )

    def tell(
        self,
        results: Mapping[int, Union[float, Failed]],
        *,
        key: Optional[str] = None,
        entities: Optional[Mapping[int, str]] = None,
        metadata: Optional[Mapping[int, Any]] = None,
    ) -> LabelsOutcome:
        """Stores measured results, candidate id -> score (or :class:`Failed`).

        Every label carries an idempotency key: ``key:<candidate id>`` with a ``key`` for the
        batch, else one derived from the candidate and its result. Telling the same results
        again stores nothing twice (they count as ``duplicates``); telling another result
        under the same key is a ``conflict``. To store a deliberate replicate with the very
        same score later, give it a new ``key``. ``entities`` names what the oracle actually
        measured (a canonical id) per candidate; ``metadata`` is any JSON per candidate.
        """
        entities = entities or {}
        metadata = metadata or {}
        labels = [
            replace(
                _result_label(result, candidate_id=candidate_id),
                entity=entities.get(candidate_id),
                metadata=metadata.get(candidate_id),
            )
            for candidate_id, result in results.items()
        ]
        return self.client.post_labels(labels, key=key)

    def tell_failed(
        self,
        candidate_ids: Union[int, Iterable[int]],
        error: Optional[str] = None,
        *,
        key: Optional[str] = None,
    ) -> LabelsOutcome:
        """Records that measuring these candidates failed (``error`` says why). Failures are
        information: the model learns to avoid what fails."""
        ids = [candidate_ids] if isinstance(candidate_ids, int) else list(candidate_ids)
        return self.tell({i: Failed(error) for i in ids}, key=key)

    def label(self, labels: Iterable[Label], *, key: Optional[str] = None) -> LabelsOutcome:
        """Stores labels with every option of the API (replicates, metadata, entities,
        values never proposed); labels naming a ``value`` belong to this campaign."""
        own = [
            replace(x, campaign_id=self.id)
            if x.candidate_id is None and x.campaign_id is None
            else x
            for x in labels
        ]
        return self.client.post_labels(own, key=key)

    def import_labels(
        self,
        data: Iterable[tuple[Value, Union[float, Failed]]],
        *,
        key: Optional[str] = None,
    ) -> LabelsOutcome:
        """Loads an initial data set of ``(value, score)`` pairs; values never proposed
        become candidates of the campaign."""
        labels = [_result_label(result, campaign_id=self.id, value=value) for value, result in data]
        return self.client.post_labels(labels, key=key)

    def upload_csv(self, data: CsvData) -> LabelsOutcome:
        """Stores labels from a CSV file or text (see :meth:`Client.post_labels_csv`); rows
        with a value and no campaign belong to this campaign."""
        return self.client.post_labels_csv(data, campaign_id=self.id)

    def candidates(
        self,
        status: Optional[CandidateStatus] = None,
        *,
        order: Optional[CandidateOrder] = None,
        limit: Optional[int] = None,
        offset: int = 0,
        distinct: Optional[str] = None,
    ) -> CandidateList:
        """The campaign's candidates (``to_pandas()`` for a data frame): every one, page by
        page, unless ``limit`` is given. ``order="reward"`` puts the best first;
        ``distinct="entity"`` gives one row per measured object."""
        found = CandidateList()
        # The first page starts at the offset; each later one after the previous page's
        # cursor, so reading a long listing costs the same per page however deep it goes.
        after: Optional[str] = None
        while limit is None or len(found) < limit:
            size = _PAGE if limit is None else min(_PAGE, limit - len(found))
            page = self.client.list_candidates(
                self.id,
                status=status,
                order=order,
                limit=size,
                offset=offset if after is None else None,
                distinct=distinct,
                after=after,
            )
            found.extend(page.candidates)
            if page.next is None or len(page.candidates) < size:
                break
            after = page.next
        return found

    def candidates_csv(
        self,
        status: Optional[CandidateStatus] = None,
        *,
        order: Optional[CandidateOrder] = None,
        limit: int = 100_000,
        offset: int = 0,
        distinct: Optional[str] = None,
    ) -> str:
        """The candidates as CSV text (at most ``limit`` rows, the server's largest page)."""
        return self.client.candidates_csv(
            self.id, status=status, order=order, limit=limit, offset=offset, distinct=distinct
        )

    def model(self) -> ModelDetail:
        """The model: version, status, training history and prospective figures."""
        return self.client.get_model(self.id)

    def sample(self, n: int = 10, seed: int = 0) -> ModelSample:
        """A preview of what the newest model proposes; stores nothing."""
        return self.client.sample_model(self.id, n=n, seed=seed)

    def round(self, round_id: int) -> RoundDetail:
        """One of the campaign's rounds with each candidate's status and labels."""
        detail = self.client.get_round(round_id)
        if detail.campaign_id != self.id:
            raise ValueError(f"round {round_id} belongs to campaign {detail.campaign_id}")
        return detail

    def abandon(self, round_: Union[Round, RoundDetail, int]) -> RoundDetail:
        """Gives up the round's still-pending candidates (an assay that will never report)."""
        round_id = round_ if isinstance(round_, int) else round_.id
        return self.client.abandon_round(round_id)
