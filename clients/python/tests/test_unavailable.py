"""A round that waits for the model longer than the server allows answers 503
``unavailable`` with nothing stored; the client retries it with backoff, within its bound.

These tests run a server of their own (the last one leaves it training without end, until
the server stops at the end of the module) with a very short ``--wait-timeout``, on SQLite only:
the behaviour under test is the client's, not the storage's.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import TINY_MODEL, TINY_TRAINING, Server, _server

import flowlab

WAIT_TIMEOUT = "0.2"
#: Training steps that take a few seconds on a small machine.
TRAINING_STEPS = 10_000


@pytest.fixture(scope="module")
def impatient_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    yield from _server(request, tmp_path_factory, "sqlite", "--wait-timeout", WAIT_TIMEOUT)


def round_answers(lab: flowlab.Client, status: str) -> float:
    return lab.metrics().value(
        "flowlab_http_requests_total", method="POST", route="/rounds", status=status
    )


def test_ask_is_retried_until_the_model_is_ready(impatient_server: Server) -> None:
    with impatient_server.client(max_retries=40, backoff=0.1, max_backoff=0.5) as lab:
        # A run of some seconds here: far longer than the server's wait, far shorter than
        # the client's retries.
        campaign = lab.create_campaign(
            "catching-up",
            flowlab.Grid(2, 8),
            training={**TINY_TRAINING, "steps": TRAINING_STEPS},
            model=TINY_MODEL,
        )
        batch = campaign.ask(4)
        campaign.tell({c.id: float(i) for i, c in enumerate(batch)})
        before = round_answers(lab, "503")
        second = campaign.ask(4)
        assert round_answers(lab, "503") - before >= 1, "the server did answer 503 first"
        assert not second.replayed
        assert second.model_version >= 1
        assert campaign.model().trained_on_observations >= len(batch)
        assert campaign.stats().rounds == 2


def test_a_model_that_never_catches_up_fails_after_the_bounded_retries(
    impatient_server: Server,
) -> None:
    with impatient_server.client(max_retries=2) as lab:
        # Long enough training that the model cannot catch up within the retries.
        campaign = lab.create_campaign(
            "slow", flowlab.Grid(2, 8), training={**TINY_TRAINING, "steps": 1_000_000}
        )
        batch = campaign.ask(3)
        campaign.tell({c.id: 1.0 for c in batch})
        before = round_answers(lab, "503")
        with pytest.raises(flowlab.ApiError) as caught:
            campaign.ask(3)
        assert (caught.value.status, caught.value.code) == (503, "unavailable")
        assert round_answers(lab, "503") - before == 3, "one attempt and two retries"
        assert campaign.stats().rounds == 1, "nothing stored"
        assert len(campaign.ask(3, wait_for_model=False)) == 3
