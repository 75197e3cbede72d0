"""Retries with idempotency keys, against the real server behind a proxy that breaks
connections: the server acts on the request, the client sees the connection reset, and the
retry must return the same round or store nothing twice."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import Server, tiny_campaign
from flaky_proxy import FlakyProxy

import flowlab


@pytest.fixture
def proxy(server: Server) -> Iterator[FlakyProxy]:
    flaky = FlakyProxy(server.port)
    yield flaky
    flaky.close()


@pytest.fixture
def flaky_lab(server: Server, proxy: FlakyProxy) -> Iterator[flowlab.Client]:
    with server.client(url=proxy.url) as client:
        yield client


def requests_seen(lab: flowlab.Client, method: str, route: str) -> float:
    """What the server counted for the route, every status together."""
    return lab.metrics().value("flowlab_http_requests_total", method=method, route=route)


def test_a_retried_ask_returns_the_round_the_server_made(
    lab: flowlab.Client, flaky_lab: flowlab.Client, proxy: FlakyProxy
) -> None:
    campaign = flaky_lab.campaign(tiny_campaign(lab).id)
    before = requests_seen(lab, "POST", "/rounds")
    proxy.drop_next_responses(1)
    batch = campaign.ask(4)
    assert proxy.dropped_responses == 1
    assert requests_seen(lab, "POST", "/rounds") - before == 2, "sent twice"
    assert batch.replayed, "the second answer is the round the first request made"
    stats = lab.get_campaign(campaign.id).stats
    assert (stats.rounds, stats.candidates) == (1, len(batch))
    assert [c.id for c in lab.get_round(batch.id)] == [c.id for c in batch]


def test_a_retried_ask_with_a_key_returns_the_same_round(
    lab: flowlab.Client, flaky_lab: flowlab.Client, proxy: FlakyProxy
) -> None:
    campaign = flaky_lab.campaign(tiny_campaign(lab).id)
    proxy.drop_next_responses(2)
    batch = campaign.ask(3, key="plate-1")
    assert proxy.dropped_responses == 2
    assert batch.key == "plate-1"
    assert lab.get_campaign(campaign.id).stats.rounds == 1


def test_a_retried_tell_stores_nothing_twice(
    lab: flowlab.Client, flaky_lab: flowlab.Client, proxy: FlakyProxy
) -> None:
    campaign = flaky_lab.campaign(tiny_campaign(lab).id)
    batch = campaign.ask(4)
    results = {c.id: float(i) for i, c in enumerate(batch)}
    proxy.drop_next_responses(1)
    outcome = campaign.tell(results)
    assert proxy.dropped_responses == 1
    assert (outcome.accepted, outcome.duplicates) == (0, len(batch)), (
        "the answer to the retry: the first attempt stored them"
    )
    listed = lab.get_campaign(campaign.id).stats
    assert listed.labelled == len(batch)
    assert {c.observations for c in campaign.candidates()} == {1}


def test_a_retried_csv_upload_stores_nothing_twice(
    lab: flowlab.Client, flaky_lab: flowlab.Client, proxy: FlakyProxy
) -> None:
    campaign = flaky_lab.campaign(tiny_campaign(lab).id)
    batch = campaign.ask(2)
    text = "candidate_id,reward\n" + "".join(f"{c.id},1.5\n" for c in batch)
    proxy.drop_next_responses(1)
    outcome = campaign.upload_csv(text)
    assert proxy.dropped_responses == 1
    assert outcome.duplicates == len(batch)
    assert {c.observations for c in campaign.candidates()} == {1}


def test_a_retried_abandon_answers_the_abandoned_round(
    lab: flowlab.Client, flaky_lab: flowlab.Client, proxy: FlakyProxy
) -> None:
    campaign = flaky_lab.campaign(tiny_campaign(lab).id)
    batch = campaign.ask(2)
    proxy.drop_next_responses(1)
    detail = campaign.abandon(batch)
    assert proxy.dropped_responses == 1
    assert {c.status for c in detail} == {"abandoned"}


def test_reads_are_retried_after_a_reset_connection(
    flaky_lab: flowlab.Client, proxy: FlakyProxy
) -> None:
    proxy.reset_next_connections(2)
    assert flaky_lab.health().ok
    assert proxy.reset_connections == 2


def test_a_campaign_is_not_created_twice_when_the_answer_is_lost(
    lab: flowlab.Client, flaky_lab: flowlab.Client, proxy: FlakyProxy
) -> None:
    """Campaigns have no idempotency key: once the request may have reached the server,
    the client reports the failure rather than risk a second campaign."""
    name = "lost-answer"
    before = len(lab.campaigns(name=name))
    proxy.drop_next_responses(1)
    with pytest.raises(flowlab.TransportError) as caught:
        flaky_lab.create_campaign(name, flowlab.Grid(2, 3), training={"steps": 1})
    assert caught.value.__cause__ is not None
    assert len(lab.campaigns(name=name)) == before + 1, "the server made it once"


def test_retries_are_bounded(server: Server, proxy: FlakyProxy) -> None:
    proxy.reset_next_connections(100)
    with (
        server.client(url=proxy.url, max_retries=2) as client,
        pytest.raises(flowlab.TransportError, match="3 attempt"),
    ):
        client.campaigns()
    assert proxy.reset_connections == 3


def test_a_server_out_of_reach_is_a_transport_error(server: Server) -> None:
    with (
        server.client(url="http://127.0.0.1:9", max_retries=1) as client,
        pytest.raises(flowlab.TransportError),
    ):
        client.health()
