"""Ten rounds of the whole loop on a toy oracle; what the client saw must be what the API
reports at the end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import TINY_MODEL, TINY_TRAINING, Server

import flowlab

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))

from lab_loop import measure  # noqa: E402

ROUNDS = 10
BATCH = 6


def test_ten_rounds_end_with_the_stats_the_api_reports(lab: flowlab.Client) -> None:
    campaign = lab.create_campaign(
        "ten-rounds",
        flowlab.Sequence("ACGT", length=8),
        training=TINY_TRAINING,
        model=TINY_MODEL,
    )
    proposed: set[int] = set()
    scores: dict[int, float] = {}
    failures: set[int] = set()
    told = 0
    versions = []
    for number in range(1, ROUNDS + 1):
        batch = campaign.ask(BATCH, key=f"round-{number}")
        assert batch.number == number
        # The round waited for the model to learn from every result told before it.
        model = campaign.model()
        assert model.trained_on_observations >= told
        versions.append(batch.model_version)
        assert not proposed & {c.id for c in batch}
        proposed |= {c.id for c in batch}
        results = {c.id: measure(str(c.value)) for c in batch}
        for candidate_id, result in results.items():
            if isinstance(result, flowlab.Failed):
                failures.add(candidate_id)
            else:
                scores[candidate_id] = result
        outcome = campaign.tell(results)
        assert outcome.accepted == len(results)
        told += len(results)

    assert versions == sorted(versions), "the model only moves forward"
    assert versions[0] == 0 and versions[-1] >= 1
    stats = campaign.stats()
    assert stats.rounds == ROUNDS
    assert stats.candidates == len(proposed)
    assert stats.labelled == len(scores)
    assert stats.failed == len(failures)
    assert stats.objects == len(scores)
    assert (stats.pending, stats.abandoned) == (0, 0)
    best_id = max(scores, key=lambda i: scores[i])
    assert stats.best is not None
    assert stats.best.reward == scores[best_id]
    assert scores[stats.best.candidate_id] == scores[best_id]
    listed = campaign.candidates(status="labelled").to_pandas()
    assert dict(zip(listed["id"], listed["mean_reward"])) == scores
    figures = {r.number: r for r in campaign.model().rounds}
    assert sum(figures[n].labelled for n in range(1, ROUNDS + 1)) == len(scores)
    assert sum(figures[n].failed for n in range(1, ROUNDS + 1)) == len(failures)


def test_the_example_loop_runs_and_resumes(server: Server) -> None:
    env = {**os.environ, "FLOWLAB_URL": server.url, "FLOWLAB_API_TOKEN": server.token}
    command = [
        sys.executable,
        str(EXAMPLES / "lab_loop.py"),
        "--name",
        f"example-{server.backend}",
        "--rounds",
        "2",
        "--batch",
        "4",
        "--steps",
        "10",
    ]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout.strip().splitlines()[-1])
    with server.client() as lab:
        stats = lab.get_campaign(summary["campaign_id"]).stats
    assert (summary["rounds"], summary["labelled"], summary["failed"]) == (
        stats.rounds,
        stats.labelled,
        stats.failed,
    )
    assert stats.rounds == 2
    # Running it again replays the keyed rounds and stores nothing twice.
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "resuming" in again.stdout
    assert json.loads(again.stdout.strip().splitlines()[-1]) == summary
