"""Health, authentication and metrics."""

from __future__ import annotations

import pytest
from conftest import Server

import flowlab


def test_health_needs_no_token(server: Server) -> None:
    with flowlab.Client(server.url, token=None) as anonymous:
        health = anonymous.health()
    assert health.ok
    assert health.database == "ok"


@pytest.mark.parametrize("token", [None, "not-the-token"])
def test_a_missing_or_wrong_token_is_an_unauthorized_api_error(
    server: Server, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLOWLAB_API_TOKEN", raising=False)
    with flowlab.Client(server.url, token=token) as lab, pytest.raises(flowlab.ApiError) as caught:
        lab.campaigns()
    assert caught.value.status == 401
    assert caught.value.code == "unauthorized"
    assert caught.value.request_id


def test_metrics_count_what_the_client_did(lab: flowlab.Client) -> None:
    campaign = lab.create_campaign("metrics", flowlab.Grid(2, 6), training={"steps": 5})
    before = lab.metrics()
    batch = campaign.ask(4, wait_for_model=False)
    outcome = campaign.tell({c.id: 1.0 for c in batch})
    campaign.tell({c.id: 1.0 for c in batch})
    after = lab.metrics()
    rounds = after.value("flowlab_rounds_total") - before.value("flowlab_rounds_total")
    proposed = after.value("flowlab_candidates_proposed_total") - before.value(
        "flowlab_candidates_proposed_total"
    )
    accepted = after.value("flowlab_labels_total", result="accepted") - before.value(
        "flowlab_labels_total", result="accepted"
    )
    duplicates = after.value("flowlab_labels_total", result="duplicate") - before.value(
        "flowlab_labels_total", result="duplicate"
    )
    assert rounds == 1
    assert proposed == len(batch)
    assert accepted == outcome.accepted == len(batch)
    assert duplicates == len(batch)
    assert "flowlab_http_requests_total" in after.text
