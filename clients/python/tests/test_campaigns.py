"""Campaigns: create, read, list; spaces and settings round-trip through the server."""

from __future__ import annotations

import uuid

import pytest
from conftest import TINY_MODEL, TINY_TRAINING, Server, tiny_campaign

import flowlab

SPACES = [
    flowlab.Sequence("ACGT", length=6),
    flowlab.Sequence(["Ala", "Gly", "Ser"], min_length=2, max_length=4, separator="-"),
    flowlab.Grid(dims=3, size=5),
    flowlab.Set(["a", "b", "c", "d", "e"], min_size=1, max_size=3),
]


@pytest.mark.parametrize("space", SPACES, ids=lambda s: type(s).__name__.lower())
def test_a_campaign_keeps_its_space_and_fills_every_default(
    lab: flowlab.Client, space: flowlab.Space
) -> None:
    campaign = tiny_campaign(lab, space)
    assert campaign.space == space
    detail = lab.get_campaign(campaign.id)
    assert detail.space == space
    assert detail.training.steps == TINY_TRAINING["steps"]
    assert detail.model.hidden == TINY_MODEL["hidden"]
    # Settings not given come back filled in by the server.
    for settings in (detail.reward, detail.model, detail.training, detail.round):
        unset = [k for k, v in settings.__dict__.items() if v is None and k != "beta"]
        assert not unset, f"{type(settings).__name__}: {unset}"


def test_settings_as_classes_and_as_dicts_make_the_same_campaign(lab: flowlab.Client) -> None:
    as_classes = lab.create_campaign(
        "classes",
        flowlab.Grid(2, 4),
        reward=flowlab.RewardSettings(maximize=False, kappa=0.5),
        model=flowlab.ModelSettings(hidden=16, objective="db"),
        training=flowlab.TrainingSettings(
            steps=15, proxy=flowlab.ProxySettings(members=2), mix=flowlab.TrainingMix(forward=1)
        ),
        round=flowlab.RoundSettings(pool=3, selection="proportional"),
    )
    as_dicts = lab.create_campaign(
        "dicts",
        flowlab.Grid(2, 4),
        reward={"maximize": False, "kappa": 0.5},
        model={"hidden": 16, "objective": "db"},
        training={"steps": 15, "proxy": {"members": 2}, "mix": {"forward": 1}},
        round={"pool": 3, "selection": "proportional"},
    )
    assert as_classes.info.reward == as_dicts.info.reward
    assert as_classes.info.model == as_dicts.info.model
    assert as_classes.info.training == as_dicts.info.training
    assert as_classes.info.round == as_dicts.info.round
    assert (as_classes.info.round.pool, as_classes.info.round.selection) == (3, "proportional")
    # Round settings are repeated where campaigns first wrote them.
    assert as_classes.info.training.pool == 3
    assert as_classes.info.reward.maximize is False
    assert as_classes.info.training.proxy is not None
    assert as_classes.info.training.proxy.members == 2


def test_a_new_campaign_reads_back_empty(lab: flowlab.Client) -> None:
    campaign = tiny_campaign(lab)
    again = lab.campaign(campaign.id)
    assert again.info == campaign.info
    stats = campaign.stats()
    assert (stats.candidates, stats.labelled, stats.rounds, stats.objects) == (0, 0, 0, 0)
    assert stats.best is None
    assert stats.model.version == 0
    assert stats.model.status == "untrained"


def test_detail_has_the_campaign_and_its_counts_now(campaign: flowlab.Campaign) -> None:
    before = campaign.detail()
    assert before.id == campaign.id
    assert before.stats.candidates == 0
    batch = campaign.ask(3)
    campaign.tell({batch[0].id: 1.0})
    after = campaign.detail()
    assert (after.stats.candidates, after.stats.labelled, after.stats.pending) == (3, 1, 2)
    assert after.stats.best is not None
    assert after.stats.best.candidate_id == batch[0].id
    assert after.stats.best.value == batch[0].value


def test_campaigns_lists_every_campaign_and_filters_by_name(lab: flowlab.Client) -> None:
    name = f"listed-{uuid.uuid4().hex[:8]}"
    first = tiny_campaign(lab, name=name)
    second = tiny_campaign(lab, name=name)
    tiny_campaign(lab)
    every = lab.campaigns()
    assert {first.id, second.id} <= {c.id for c in every}
    named = lab.campaigns(name=name)
    assert [c.id for c in named] == sorted([first.id, second.id])
    assert all(c.info == lab.campaign(c.id).info for c in named)


def test_the_url_and_token_may_come_from_the_environment(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWLAB_URL", server.url)
    monkeypatch.setenv("FLOWLAB_API_TOKEN", server.token)
    with flowlab.Client() as lab:
        campaign = tiny_campaign(lab)
        assert lab.campaign(campaign.id).id == campaign.id
