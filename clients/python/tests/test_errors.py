"""Errors of the API become one exception, ApiError, with status, code, message and field."""

from __future__ import annotations

import pytest
from conftest import tiny_campaign

import flowlab


def raised(call: object, *args: object, **kwargs: object) -> flowlab.ApiError:
    assert callable(call)
    with pytest.raises(flowlab.ApiError) as caught:
        call(*args, **kwargs)
    error = caught.value
    assert error.message, "the server's words come along"
    assert error.request_id, "and the id the server logged the request under"
    assert error.code in str(error)
    return error


def test_an_invalid_setting_names_its_field(lab: flowlab.Client) -> None:
    error = raised(lab.create_campaign, "bad", flowlab.Grid(2, 4), training={"steps": 0})
    assert (error.status, error.code, error.field) == (400, "invalid_value", "training.steps")
    assert error.details == {"field": "training.steps"}


def test_an_invalid_space_names_its_field(lab: flowlab.Client) -> None:
    error = raised(lab.create_campaign, "bad", flowlab.Sequence("AAC", length=3))
    assert (error.status, error.code) == (400, "invalid_value")
    assert error.field == "space.alphabet"


def test_an_unknown_setting_is_an_invalid_body(lab: flowlab.Client) -> None:
    error = raised(lab.create_campaign, "bad", flowlab.Grid(2, 4), training={"stepz": 5})
    assert (error.status, error.code, error.field) == (400, "invalid_body", None)
    assert "stepz" in error.message


def test_a_bad_label_names_its_index_and_field(campaign: flowlab.Campaign) -> None:
    batch = campaign.ask(2)
    error = raised(campaign.tell, {batch[0].id: 1.0, batch[1].id: 1e16})
    assert (error.status, error.code) == (400, "invalid_item")
    assert (error.index, error.field) == (1, "labels[1].reward")
    assert campaign.stats().labelled == 0, "all or nothing"


def test_a_bad_csv_row_names_the_row(campaign: flowlab.Campaign) -> None:
    batch = campaign.ask(1)
    error = raised(campaign.upload_csv, f"candidate_id,reward\n{batch[0].id},lots\n")
    assert (error.status, error.code) == (400, "invalid_item")
    assert error.field is not None and "row 2" in error.field


def test_a_bad_query_parameter_names_it(campaign: flowlab.Campaign) -> None:
    error = raised(campaign.sample, n=0)
    assert (error.status, error.code, error.field) == (400, "invalid_value", "n")


def test_unknown_things_are_not_found(lab: flowlab.Client, campaign: flowlab.Campaign) -> None:
    for call, argument in (
        (lab.campaign, 987654321),
        (lab.get_model, 987654321),
        (lab.get_round, 987654321),
        (lab.abandon_round, 987654321),
    ):
        error = raised(call, argument)
        assert (error.status, error.code, error.field) == (404, "not_found", None)
    error = raised(lab.create_round, 987654321, 2)
    assert (error.status, error.code) == (404, "not_found")


def test_an_unknown_candidate_in_a_batch_names_its_index(campaign: flowlab.Campaign) -> None:
    batch = campaign.ask(1)
    error = raised(campaign.tell, {batch[0].id: 1.0, 987654321: 2.0})
    assert (error.status, error.code, error.index) == (404, "not_found", 1)
    assert campaign.stats().labelled == 0


def test_another_entity_for_a_candidate_is_a_conflict(campaign: flowlab.Campaign) -> None:
    batch = campaign.ask(1)
    campaign.tell({batch[0].id: 1.0}, entities={batch[0].id: "first"})
    error = raised(campaign.tell, {batch[0].id: 2.0}, entities={batch[0].id: "second"})
    assert (error.status, error.code) == (409, "conflict")


def test_a_body_over_the_limit_is_payload_too_large(lab: flowlab.Client) -> None:
    campaign = tiny_campaign(lab)
    batch = campaign.ask(1)
    error = raised(campaign.tell, {batch[0].id: 1.0}, metadata={batch[0].id: "x" * 9 * 2**20})
    assert (error.status, error.code) == (413, "payload_too_large")
