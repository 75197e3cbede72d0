"""Labels: tell, failures, replicates, imports, entities and CSV, each stored exactly once."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from conftest import tiny_campaign

import flowlab


def observations(campaign: flowlab.Campaign) -> dict[int, int]:
    return {c.id: c.observations for c in campaign.candidates()}


def test_tell_stores_each_result_once_however_often_it_is_sent(
    campaign: flowlab.Campaign,
) -> None:
    batch = campaign.ask(5)
    results = {c.id: float(i) / 2 for i, c in enumerate(batch)}
    first = campaign.tell(results)
    assert (first.accepted, first.duplicates) == (len(batch), 0)
    again = campaign.tell(results)
    assert (again.accepted, again.duplicates) == (0, len(batch))
    assert set(observations(campaign).values()) == {1}
    labelled = {c.id: c.mean_reward for c in campaign.candidates(status="labelled")}
    assert labelled == results


def test_a_batch_key_names_the_labels_and_refuses_another_result(
    campaign: flowlab.Campaign,
) -> None:
    batch = campaign.ask(3)
    results = {c.id: 1.0 for c in batch}
    campaign.tell(results, key="plate-7")
    stored = campaign.round(batch.id)
    assert {c.labels[0].key for c in stored} == {f"plate-7:{c.id}" for c in batch}
    changed = {**results, batch[0].id: 2.0}
    with pytest.raises(flowlab.ApiError) as caught:
        campaign.tell(changed, key="plate-7")
    assert (caught.value.status, caught.value.code) == (409, "conflict")
    assert set(observations(campaign).values()) == {1}, "nothing of the batch stored"
    replicate = campaign.tell(changed, key="plate-7-repeat")
    assert replicate.accepted == len(batch)
    assert set(observations(campaign).values()) == {2}


def test_results_must_be_finite_numbers(campaign: flowlab.Campaign) -> None:
    batch = campaign.ask(2)
    with pytest.raises(ValueError, match="not finite"):
        campaign.tell({batch[0].id: float("nan")})
    with pytest.raises(TypeError, match="a result is a number"):
        campaign.tell({batch[0].id: "0.5"})  # type: ignore[dict-item]
    numpy = pytest.importorskip("numpy")
    assert campaign.tell({batch[0].id: numpy.float32(0.5), batch[1].id: numpy.int64(2)}) == (
        flowlab.LabelsOutcome(accepted=2, duplicates=0)
    )
    assert {c.mean_reward for c in campaign.candidates()} == {0.5, 2.0}


def test_failures_are_stored_with_their_reason(campaign: flowlab.Campaign) -> None:
    batch = campaign.ask(4)
    outcome = campaign.tell_failed([c.id for c in batch[:2]], "no colonies")
    assert outcome.accepted == 2
    single = campaign.tell_failed(batch[2].id)
    assert single.accepted == 1
    assert campaign.tell_failed(batch[2].id).duplicates == 1
    detail = {c.id: c for c in campaign.round(batch.id)}
    assert [detail[c.id].status for c in batch] == ["failed", "failed", "failed", "pending"]
    assert detail[batch[0].id].labels[0].error == "no colonies"
    assert detail[batch[2].id].labels[0].error is None
    stats = campaign.stats()
    assert (stats.failed, stats.labelled, stats.pending) == (3, 0, 1)


def test_replicates_in_one_batch_all_count(campaign: flowlab.Campaign) -> None:
    batch = campaign.ask(2)
    target = batch[0].id
    replicates = [flowlab.Label(candidate_id=target, reward=r) for r in (1.0, 1.0, 4.0)]
    assert campaign.label(replicates).accepted == 3
    assert campaign.label(replicates).duplicates == 3
    row = next(c for c in campaign.candidates() if c.id == target)
    assert row.observations == 3
    assert row.mean_reward == 2.0


def test_an_initial_data_set_is_imported_as_candidates(lab: flowlab.Client) -> None:
    campaign = tiny_campaign(lab, flowlab.Grid(dims=2, size=6))
    data: list[tuple[flowlab.Value, float | flowlab.Failed]] = [
        ([0, 1], 1.5),
        ([2, 3], 0.5),
        ([5, 5], flowlab.Failed("out of range")),
    ]
    outcome = campaign.import_labels(data)
    assert outcome.accepted == 3
    assert campaign.import_labels(data).duplicates == 3
    rows = {tuple(c.value): c for c in campaign.candidates()}
    assert set(rows) == {(0, 1), (2, 3), (5, 5)}
    assert all(c.source == "imported" and c.round is None for c in rows.values())
    assert rows[(0, 1)].mean_reward == 1.5
    assert rows[(5, 5)].status == "failed"
    batch = campaign.ask(8)
    assert not {tuple(c.value) for c in batch} & set(rows), "imported values are never proposed"


def test_the_client_level_calls_take_labels_of_any_campaign(lab: flowlab.Client) -> None:
    one = tiny_campaign(lab, flowlab.Grid(dims=2, size=4))
    other = tiny_campaign(lab, flowlab.Grid(dims=2, size=4))
    batch = lab.create_round(one.id, 2, wait_for_model=False)
    labels = [
        flowlab.Label(candidate_id=batch[0].id, reward=1.0),
        flowlab.Label(campaign_id=other.id, value=[3, 3], reward=2.0, entity="corner"),
    ]
    assert lab.post_labels(labels) == flowlab.LabelsOutcome(accepted=2, duplicates=0)
    assert lab.post_labels(labels) == flowlab.LabelsOutcome(accepted=0, duplicates=2)
    unproposed = next(
        [x, y] for x in range(4) for y in range(4) if [x, y] not in [c.value for c in batch]
    )
    csv_text = f'campaign_id,value,reward\n{one.id},"{unproposed}",0.5\n'
    assert lab.post_labels_csv(csv_text).accepted == 1
    assert lab.post_labels_csv(csv_text).duplicates == 1
    assert lab.get_campaign(one.id).stats.labelled == 2
    imported = lab.list_candidates(other.id).candidates
    assert [(c.value, c.entity, c.mean_reward) for c in imported] == [([3, 3], "corner", 2.0)]


def test_entities_group_candidates_into_objects(campaign: flowlab.Campaign) -> None:
    batch = campaign.ask(4)
    a, b, c, d = (x.id for x in batch)
    campaign.tell(
        {a: 1.0, b: 3.0, c: 2.0, d: 0.5}, entities={a: "molecule-1", b: "molecule-1", c: "m2"}
    )
    stats = campaign.stats()
    assert stats.labelled == 4
    assert stats.objects == 3
    objects = campaign.candidates(distinct="entity", order="reward")
    assert len(objects) == 3
    grouped = next(o for o in objects if o.entity == "molecule-1")
    assert grouped.replicates == 2
    assert grouped.id == b, "an object's row is its best candidate"
    assert grouped.mean_reward == 2.0, "over every observation of the object"
    assert stats.best is not None
    assert stats.best.candidate_id == b
    assert stats.best.entity == "molecule-1"


def test_csv_upload_is_keyed_and_stored_once(lab: flowlab.Client, tmp_path: Path) -> None:
    campaign = tiny_campaign(lab, flowlab.Grid(dims=2, size=5))
    batch = campaign.ask(2)
    text = (
        "candidate_id,value,reward,failed,error\n"
        f"{batch[0].id},,1.5,,\n"
        ',"[4, 4]",2.5,false,\n'
        ',"[0, 4]",,true,"pump, clogged"\n'
    )
    path = tmp_path / "plate.csv"
    path.write_text(text)
    assert campaign.upload_csv(path).accepted == 3
    assert campaign.upload_csv(str(path)).duplicates == 3
    assert campaign.upload_csv(text).duplicates == 3
    assert campaign.upload_csv(text.encode()).duplicates == 3
    stats = campaign.stats()
    assert (stats.labelled, stats.failed, stats.candidates) == (2, 1, 4)


def test_csv_download_matches_the_json_listing(campaign: flowlab.Campaign) -> None:
    batch = campaign.ask(4)
    campaign.tell({c.id: float(i) for i, c in enumerate(batch)})
    rows = list(csv.DictReader(io.StringIO(campaign.candidates_csv(order="reward"))))
    listed = campaign.candidates(order="reward")
    assert [int(r["id"]) for r in rows] == [c.id for c in listed]
    assert [r["status"] for r in rows] == [c.status for c in listed]
    assert [float(r["mean_reward"]) for r in rows] == [c.mean_reward for c in listed]
    assert [r["value"] for r in rows] == [c.value for c in listed]
    labelled_only = campaign.client.candidates_csv(campaign.id, status="labelled", limit=2)
    assert len(list(csv.DictReader(io.StringIO(labelled_only)))) == 2
