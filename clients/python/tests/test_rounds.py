"""Rounds: ask, replay by key, read, abandon, and the exploration settings."""

from __future__ import annotations

import itertools

import pytest
from conftest import tiny_campaign

import flowlab


def in_space(value: flowlab.Value, space: flowlab.Space) -> bool:
    if isinstance(space, flowlab.Sequence):
        assert isinstance(value, str)
        return space.min_length <= len(value) <= space.max_length and set(value) <= set(
            space.alphabet
        )
    if isinstance(space, flowlab.Grid):
        assert isinstance(value, list)
        return len(value) == space.dims and all(
            isinstance(x, int) and 0 <= x < space.size for x in value
        )
    assert isinstance(value, list)
    return set(map(str, value)) <= set(space.items)


def test_ask_answers_a_new_round_of_new_values(campaign: flowlab.Campaign) -> None:
    batch = campaign.ask(6)
    assert isinstance(batch, flowlab.Round)
    assert not batch.replayed
    assert batch.campaign_id == campaign.id
    assert batch.number == 1
    assert batch.model_version == 0
    assert len(batch) == batch.batch_size == 6
    assert batch.key, "every round carries a key, derived when none is given"
    values = [c.value for c in batch]
    assert len(set(values)) == len(values)
    assert all(in_space(v, campaign.space) for v in values)
    assert all(c.source == "uniform" for c in batch), "no model yet: the uniform policy"
    second = campaign.ask(6)
    assert second.number == 2
    assert second.key != batch.key
    assert not {c.value for c in second} & set(values), "a value is never proposed twice"


def test_asking_again_with_a_key_answers_the_same_round(campaign: flowlab.Campaign) -> None:
    first = campaign.ask(5, key="plate-7")
    again = campaign.ask(5, key="plate-7")
    assert again.replayed and not first.replayed
    assert again.id == first.id
    assert again.key == "plate-7"
    assert [c.id for c in again] == [c.id for c in first]
    stats = campaign.stats()
    assert stats.rounds == 1
    assert stats.candidates == len(first)


def test_a_round_reads_back_with_statuses_and_labels(campaign: flowlab.Campaign) -> None:
    batch = campaign.ask(4)
    detail = campaign.round(batch.id)
    assert isinstance(detail, flowlab.RoundDetail)
    assert [c.id for c in detail] == [c.id for c in batch]
    assert {c.status for c in detail} == {"pending"}
    told: dict[int, float | flowlab.Failed] = {
        batch[0].id: 2.5,
        batch[1].id: flowlab.Failed("no colonies"),
    }
    campaign.tell(told, metadata={batch[0].id: {"plate": 7}})
    after = {c.id: c for c in campaign.client.get_round(batch.id)}
    labelled = after[batch[0].id]
    assert labelled.status == "labelled"
    assert labelled.mean_reward == 2.5
    assert labelled.observations == 1
    assert [label.reward for label in labelled.labels] == [2.5]
    assert labelled.labels[0].metadata == {"plate": 7}
    assert labelled.labels[0].key
    failed = after[batch[1].id]
    assert failed.status == "failed"
    assert failed.labels[0].failed
    assert failed.labels[0].error == "no colonies"
    assert after[batch[2].id].status == "pending"


def test_a_round_of_another_campaign_is_refused(lab: flowlab.Client) -> None:
    one, other = tiny_campaign(lab), tiny_campaign(lab)
    batch = one.ask(2, wait_for_model=False)
    with pytest.raises(ValueError, match="belongs to campaign"):
        other.round(batch.id)


def test_abandon_gives_up_the_pending_candidates_only(campaign: flowlab.Campaign) -> None:
    batch = campaign.ask(4)
    campaign.tell({batch[0].id: 1.0})
    abandoned = campaign.abandon(batch)
    statuses = {c.id: c.status for c in abandoned}
    assert statuses[batch[0].id] == "labelled"
    assert [statuses[c.id] for c in batch.candidates[1:]] == ["abandoned"] * 3
    again = campaign.abandon(batch.id)
    assert {c.id: c.status for c in again} == statuses
    stats = campaign.stats()
    assert (stats.abandoned, stats.labelled, stats.pending) == (3, 1, 0)
    assert len(campaign.candidates(status="abandoned")) == 3


def test_ask_waits_for_the_model_to_learn_every_label(campaign: flowlab.Campaign) -> None:
    batch = campaign.ask(6)
    campaign.tell({c.id: float(i) for i, c in enumerate(batch)})
    told = len(batch)
    second = campaign.ask(6)
    model = campaign.model()
    assert second.model_version >= 1
    assert model.trained_on_observations >= told
    assert second.model_version <= model.version
    without_waiting = campaign.ask(3, wait_for_model=False)
    assert without_waiting.model_version <= model.version


def test_min_distance_keeps_the_batch_apart(lab: flowlab.Client) -> None:
    campaign = tiny_campaign(lab, flowlab.Grid(dims=2, size=10))
    batch = campaign.ask(5, min_distance=4)
    points = [[int(x) for x in c.value] for c in batch]
    assert len(points) == 5
    for a, b in itertools.combinations(points, 2):
        assert sum(abs(x - y) for x, y in zip(a, b)) >= 4


@pytest.mark.parametrize("setting", ["temperature", "epsilon", "min_distance"])
def test_exploration_overrides_reach_the_server(campaign: flowlab.Campaign, setting: str) -> None:
    assert len(campaign.ask(2, **{setting: 0.5})) == 2  # type: ignore[arg-type]
    with pytest.raises(flowlab.ApiError) as caught:
        campaign.ask(2, **{setting: -1.0})  # type: ignore[arg-type]
    assert (caught.value.status, caught.value.code) == (400, "invalid_value")
    assert caught.value.field == setting
