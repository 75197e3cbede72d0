"""Parts of the client that need no server: keys, CSV, metrics, spaces, decoding, backoff."""

from __future__ import annotations

import csv
import io
import pickle

import pytest

import flowlab
from flowlab import _keys
from flowlab._decode import DecodeError, decode
from flowlab._http import RetryPolicy


def test_derived_label_keys_depend_on_candidate_and_result_only() -> None:
    first = _keys.with_keys([flowlab.Label(candidate_id=1, reward=0.5)])
    again = _keys.with_keys([flowlab.Label(candidate_id=1, reward=0.5, metadata={"t": 1})])
    other_result = _keys.with_keys([flowlab.Label(candidate_id=1, reward=0.25)])
    other_candidate = _keys.with_keys([flowlab.Label(candidate_id=2, reward=0.5)])
    assert first[0].key == again[0].key
    assert first[0].key != other_result[0].key
    assert first[0].key != other_candidate[0].key


def test_identical_labels_in_one_batch_get_distinct_keys() -> None:
    labels = [flowlab.Label(candidate_id=1, reward=0.5)] * 3
    keys = [x.key for x in _keys.with_keys(labels)]
    assert len(set(keys)) == 3
    assert keys == [x.key for x in _keys.with_keys(labels)], "and the same ones every time"


def test_a_batch_key_names_each_candidate() -> None:
    labels = [
        flowlab.Label(candidate_id=7, reward=1.0),
        flowlab.Label(candidate_id=7, reward=2.0),
        flowlab.Label(candidate_id=8, failed=True),
        flowlab.Label(candidate_id=9, reward=1.0, key="mine"),
    ]
    keys = [x.key for x in _keys.with_keys(labels, "plate-7")]
    assert keys == ["plate-7:7", "plate-7:7#1", "plate-7:8", "mine"]


def test_a_batch_key_too_long_for_the_server_is_refused_here() -> None:
    with pytest.raises(ValueError, match="bytes"):
        _keys.with_keys([flowlab.Label(candidate_id=1, reward=1.0)], "k" * 199)


def test_round_keys_are_unique_per_call() -> None:
    assert _keys.round_key() != _keys.round_key()


def test_csv_rows_without_a_key_get_one_and_keep_their_cells() -> None:
    text = 'candidate_id,reward,error\n1,0.5,\n,,"pump, clogged"\n1,0.5,\n'
    keyed = list(csv.DictReader(io.StringIO(_keys.csv_with_keys(text, 3))))
    assert [r["candidate_id"] for r in keyed] == ["1", "", "1"]
    assert keyed[1]["error"] == "pump, clogged"
    keys = [r["key"] for r in keyed]
    assert all(keys) and len(set(keys)) == 3
    assert _keys.csv_with_keys(text, 3) == _keys.csv_with_keys(text, 3)


def test_csv_keys_given_are_kept() -> None:
    text = "candidate_id,reward,key\n1,0.5,k1\n2,0.5,\n"
    keyed = list(csv.DictReader(io.StringIO(_keys.csv_with_keys(text, None))))
    assert keyed[0]["key"] == "k1"
    assert keyed[1]["key"].startswith("py-")


def test_metrics_text_is_parsed_into_samples() -> None:
    text = (
        "# HELP flowlab_rounds_total Rounds.\n"
        "# TYPE flowlab_rounds_total counter\n"
        "flowlab_rounds_total 3\n"
        'flowlab_labels_total{result="accepted"} 5\n'
        'flowlab_labels_total{result="duplicate"} 2\n'
        'odd{path="a\\"b"} 1e3\n'
    )
    metrics = flowlab.Metrics.parse(text)
    assert metrics.value("flowlab_rounds_total") == 3
    assert metrics.value("flowlab_labels_total") == 7
    assert metrics.value("flowlab_labels_total", result="duplicate") == 2
    assert metrics.value("odd", path='a"b') == 1000
    assert metrics.value("absent") == 0


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(max_retries=10, backoff=0.5, max_backoff=3.0)
    pauses = [policy.pause(n) for n in range(10)]
    assert all(0 < p <= 3.0 for p in pauses)
    assert pauses[0] <= 0.5 < pauses[3]
    assert policy.pause(0, retry_after=100.0) == 3.0


def test_sequence_spaces() -> None:
    dna = flowlab.Sequence("ACGT", length=8)
    assert dna.to_json() == {
        "type": "sequence",
        "alphabet": ["A", "C", "G", "T"],
        "min_length": 8,
        "max_length": 8,
        "separator": "",
    }
    peptides = flowlab.Sequence(["Ala", "Gly"], min_length=2, max_length=5, separator="-")
    assert (peptides.min_length, peptides.max_length) == (2, 5)
    assert flowlab.Sequence("AB", max_length=3).min_length == 3
    with pytest.raises(ValueError):
        flowlab.Sequence("ACGT")
    with pytest.raises(ValueError):
        flowlab.Sequence("ACGT", 4, min_length=2)


def test_decoding_refuses_answers_of_another_shape() -> None:
    assert decode(flowlab.LabelsOutcome, {"accepted": 1, "duplicates": 0, "new": 1}) == (
        flowlab.LabelsOutcome(accepted=1, duplicates=0)
    ), "unknown fields are ignored"
    with pytest.raises(DecodeError, match="duplicates"):
        decode(flowlab.LabelsOutcome, {"accepted": 1})
    with pytest.raises(DecodeError, match="accepted"):
        decode(flowlab.LabelsOutcome, {"accepted": "1", "duplicates": 0})


def test_api_errors_survive_pickling() -> None:
    error = flowlab.ApiError(400, "invalid_value", "bad", field="name", request_id="r1")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.status, copy.code, copy.field, copy.request_id) == (
        400,
        "invalid_value",
        "name",
        "r1",
    )
    assert "field name" in str(copy)


def test_url_and_token_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWLAB_URL", "http://127.0.0.1:9/")
    monkeypatch.delenv("FLOWLAB_API_TOKEN", raising=False)
    assert flowlab.Client().url == "http://127.0.0.1:9"
    monkeypatch.delenv("FLOWLAB_URL")
    assert flowlab.Client().url == flowlab.DEFAULT_URL
