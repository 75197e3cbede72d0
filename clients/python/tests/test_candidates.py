"""The candidate listing: filters, order, paging and data frames."""

from __future__ import annotations

import pytest

import flowlab
from flowlab import client as client_module


@pytest.fixture
def measured(campaign: flowlab.Campaign) -> flowlab.Campaign:
    """A campaign with labelled, failed and pending candidates."""
    batch = campaign.ask(7)
    campaign.tell({c.id: float((i * 3) % 7) for i, c in enumerate(batch.candidates[:4])})
    campaign.tell_failed(batch[4].id, "no colonies")
    return campaign


def test_status_filters_the_listing(measured: flowlab.Campaign) -> None:
    every = measured.candidates()
    stats = measured.stats()
    assert len(every) == stats.candidates
    for status, expected in (
        ("labelled", stats.labelled),
        ("failed", stats.failed),
        ("pending", stats.pending),
    ):
        listed = measured.candidates(status=status)  # type: ignore[arg-type]
        assert len(listed) == expected
        assert {c.status for c in listed} <= {status}


def test_reward_order_puts_the_best_first(measured: flowlab.Campaign) -> None:
    labelled = measured.candidates(status="labelled", order="reward")
    rewards = [c.mean_reward for c in labelled]
    assert rewards == sorted(rewards, reverse=True)  # type: ignore[type-var]
    best = measured.stats().best
    assert best is not None
    assert labelled[0].id == best.candidate_id


def test_limit_and_offset_page_through_the_listing(measured: flowlab.Campaign) -> None:
    every = measured.candidates()
    assert [c.id for c in measured.candidates(limit=3)] == [c.id for c in every[:3]]
    assert [c.id for c in measured.candidates(limit=3, offset=2)] == [c.id for c in every[2:5]]
    page = measured.client.list_candidates(measured.id, limit=2, offset=1)
    assert (page.limit, page.offset) == (2, 1)
    assert [c.id for c in page.candidates] == [c.id for c in every[1:3]]


def test_a_cursor_continues_where_the_previous_page_ended(measured: flowlab.Campaign) -> None:
    every = measured.candidates(order="reward")
    assert len(every) > 2
    first = measured.client.list_candidates(measured.id, order="reward", limit=2)
    assert first.next is not None
    second = measured.client.list_candidates(
        measured.id, order="reward", limit=len(every), after=first.next
    )
    assert [c.id for c in second.candidates] == [c.id for c in every[2:]]
    assert second.next is None
    with pytest.raises(flowlab.ApiError) as refused:
        measured.client.list_candidates(measured.id, order="created", after=first.next)
    assert (refused.value.status, refused.value.code) == (400, "invalid_value")


def test_every_page_is_read_when_no_limit_is_given(
    measured: flowlab.Campaign, monkeypatch: pytest.MonkeyPatch
) -> None:
    every = measured.candidates()
    monkeypatch.setattr(client_module, "_PAGE", 2)
    assert [c.id for c in measured.candidates()] == [c.id for c in every]
    assert [c.id for c in measured.candidates(limit=5)] == [c.id for c in every[:5]]


def test_to_pandas_has_a_row_per_candidate(measured: flowlab.Campaign) -> None:
    labelled = measured.candidates(status="labelled")
    frame = labelled.to_pandas()
    assert list(frame["id"]) == [c.id for c in labelled]
    assert list(frame["mean_reward"]) == [c.mean_reward for c in labelled]
    assert {"value", "status", "observations", "source", "entity"} <= set(frame.columns)
    empty = measured.candidates(status="abandoned").to_pandas()
    assert len(empty) == 0
    assert list(empty.columns) == list(frame.columns)


def test_a_round_to_pandas_has_its_candidates(campaign: flowlab.Campaign) -> None:
    batch = campaign.ask(3)
    frame = batch.to_pandas()
    assert list(frame["id"]) == [c.id for c in batch]
    assert list(frame["value"]) == [c.value for c in batch]
