"""Idempotency keys for every write.

Rounds: a key the caller gives names the round (``"plate-7"``); without one, each call of
``ask`` makes a random key, so the client's own retries of that call return the same round.

Labels: the server stores a label key once per campaign, and a key that comes back with the
same result is a duplicate, not a second observation. A label without a key gets one
derived from what it says (its candidate or value, result and entity), so sending the same
results again -- a retry, a re-run notebook cell -- stores nothing twice. Identical labels
within one batch are numbered, so deliberate replicates in one call all count. With a key
for the batch (``tell(..., key="plate-7")``) each label's key is that key plus its
candidate, which makes the key readable in the stored labels.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from typing import Any, Optional

from .types import Label

#: The server's bound on a key, in UTF-8 bytes.
MAX_KEY_BYTES = 200


def round_key() -> str:
    return f"py-{uuid.uuid4().hex}"


def _digest(parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _checked(key: str) -> str:
    if not key or len(key.encode()) > MAX_KEY_BYTES:
        raise ValueError(
            f"label key {key!r} must be 1..={MAX_KEY_BYTES} bytes; give a shorter batch key"
        )
    return key


def _target(label: Label) -> Any:
    if label.candidate_id is not None:
        return label.candidate_id
    return [label.campaign_id, label.value]


def with_keys(labels: Iterable[Label], batch_key: Optional[str] = None) -> list[Label]:
    """The labels, each with a key: its own, or one derived as the module says."""
    seen: Counter[str] = Counter()
    keyed = []
    for label in labels:
        if label.key is not None:
            keyed.append(label)
            continue
        result = [label.reward, label.failed, label.error, label.entity]
        identity = _digest([_target(label), *result])
        occurrence = seen[identity]
        seen[identity] += 1
        if batch_key is None:
            key = f"py-{identity[:32]}" + (f"-{occurrence}" if occurrence else "")
        else:
            target = (
                str(label.candidate_id)
                if label.candidate_id is not None
                else _digest(_target(label))[:16]
            )
            # Replicates of one candidate in one batch are told apart by their number.
            count = seen[f"target:{target}"]
            seen[f"target:{target}"] += 1
            key = f"{batch_key}:{target}" + (f"#{count}" if count else "")
        keyed.append(replace(label, key=_checked(key)))
    return keyed


def csv_with_keys(text: str, campaign_id: Optional[int]) -> str:
    """The CSV upload with a ``key`` on every row: rows that have one keep it, the others get
    one derived from the row's cells, as for JSON labels."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return text
    header = [h.strip() for h in rows[0]]
    if "key" in header:
        column = header.index("key")
    else:
        column = len(header)
        rows[0] = [*rows[0], "key"]
        for row in rows[1:]:
            if row:
                row.extend([""] * (column - len(row)))
    seen: Counter[str] = Counter()
    for row in rows[1:]:
        if not row or (column < len(row) and row[column]):
            continue
        cells = {name: (row[i] if i < len(row) else "") for i, name in enumerate(header)}
        cells.pop("key", None)
        if not cells.get("campaign_id") and campaign_id is not None:
            cells["campaign_id"] = str(campaign_id)
        identity = _digest(cells)
        occurrence = seen[identity]
        seen[identity] += 1
        key = f"py-{identity[:32]}" + (f"-{occurrence}" if occurrence else "")
        while len(row) <= column:
            row.append("")
        row[column] = key
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()
