"""The model, its training history and the sample preview."""

from __future__ import annotations

import flowlab


def test_a_new_campaign_has_no_model(campaign: flowlab.Campaign) -> None:
    model = campaign.model()
    assert isinstance(model, flowlab.ModelDetail)
    assert (model.version, model.status, model.trained_on_observations) == (0, "untrained", 0)
    assert model.history == []
    assert model.rounds == []
    assert model.prospective.rounds == 0


def test_the_model_reports_what_it_was_trained_on(campaign: flowlab.Campaign) -> None:
    batch = campaign.ask(6)
    campaign.tell({c.id: float(i) for i, c in enumerate(batch.candidates[:5])})
    campaign.tell_failed(batch[5].id, "dried out")
    campaign.ask(4)  # waits for the model
    model = campaign.model()
    assert model.version >= 1
    assert model.status in ("ready", "training")
    assert model.trained_on_observations >= len(batch)
    assert model.trained_on_labels >= 5
    assert model.history, "the training runs"
    newest = model.history[0]
    assert newest.status in ("succeeded", "running")
    succeeded = [run for run in model.history if run.status == "succeeded"]
    assert any(run.version == model.version for run in succeeded)
    assert all(run.steps <= campaign.info.training.steps for run in succeeded)  # type: ignore[operator]
    figures = {r.number: r for r in model.rounds}
    assert figures[1].proposed == len(batch)
    assert (figures[1].labelled, figures[1].failed) == (5, 1)
    assert figures[1].model_version == batch.model_version
    overview = campaign.stats().model
    assert overview.version == model.version
    assert overview.trained_on_observations == model.trained_on_observations


def test_the_sample_preview_is_reproducible_and_stores_nothing(
    campaign: flowlab.Campaign,
) -> None:
    first = campaign.sample(n=5, seed=3)
    assert first.campaign_id == campaign.id
    assert first.seed == 3
    assert first.model_version == campaign.model().version
    assert len(first.values) == 5
    assert campaign.sample(n=5, seed=3).values == first.values
    assert campaign.stats().candidates == 0, "a preview stores nothing"
