"""A complete lab loop against a toy oracle.

The "lab" here is a function: a promoter's strength is its GC content plus a bonus for the
motif "GATA", and constructs that start with "TT" fail to clone. Swap ``measure`` for your
assay. Every round asks the server for a batch (waiting for the model to learn from every
result so far), measures it and tells the results. Rounds are keyed ``<name>-round-<n>``, so
running the script again after a crash resumes: rounds already drawn come back as they were
and results already told are not stored twice.

    python lab_loop.py --url http://127.0.0.1:8080 --rounds 10 --batch 8

The URL and token default to $FLOWLAB_URL and $FLOWLAB_API_TOKEN.
"""

from __future__ import annotations

import argparse
import json
from typing import Optional, Union

import flowlab

MOTIF = "GATA"


def measure(value: str) -> Union[float, flowlab.Failed]:
    """The toy oracle: a score, or a failure with its reason."""
    if value.startswith("TT"):
        return flowlab.Failed("no colonies")
    gc = sum(base in "GC" for base in value) / len(value)
    return round(gc + (1.0 if MOTIF in value else 0.0), 6)


def run(
    lab: flowlab.Client, name: str, rounds: int, batch_size: int, steps: int
) -> flowlab.Campaign:
    matches = lab.campaigns(name=name)
    if matches:
        campaign = matches[-1]
        print(f"resuming campaign {campaign.id} ({name})")
    else:
        campaign = lab.create_campaign(
            name,
            space=flowlab.Sequence("ACGT", length=8),
            training=flowlab.TrainingSettings(steps=steps),
        )
        print(f"created campaign {campaign.id} ({name})")
    for number in range(1, rounds + 1):
        batch = campaign.ask(batch_size, key=f"{name}-round-{number}")
        results = {c.id: measure(str(c.value)) for c in batch}
        outcome = campaign.tell(results)
        failures = sum(isinstance(r, flowlab.Failed) for r in results.values())
        best = campaign.stats().best
        print(
            f"round {batch.number}: model v{batch.model_version}, {len(batch)} measured, "
            f"{failures} failed, {outcome.accepted} stored; best so far "
            + (f"{best.value} = {best.reward:.3f}" if best else "none")
        )
    return campaign


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="server URL (default: $FLOWLAB_URL or localhost:8080)")
    parser.add_argument("--name", default="toy-promoters", help="campaign name")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=200, help="training steps per run")
    args = parser.parse_args(argv)
    with flowlab.Client(args.url) as lab:
        campaign = run(lab, args.name, args.rounds, args.batch, args.steps)
        stats = campaign.stats()
        top = campaign.candidates(status="labelled", order="reward", limit=5)
        print("top candidates:")
        for candidate in top:
            print(f"  {candidate.value}  {candidate.mean_reward:.3f}  ({candidate.source})")
        # The last line is machine-readable: the campaign's counts as the server reports them.
        print(
            json.dumps(
                {
                    "campaign_id": campaign.id,
                    "rounds": stats.rounds,
                    "candidates": stats.candidates,
                    "labelled": stats.labelled,
                    "failed": stats.failed,
                    "pending": stats.pending,
                    "best_reward": stats.best.reward if stats.best else None,
                }
            )
        )


if __name__ == "__main__":
    main()
