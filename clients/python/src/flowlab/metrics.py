"""The server's Prometheus metrics, parsed enough to read a value."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class MetricSample:
    name: str
    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class Metrics:
    """``GET /metrics``: the raw ``text`` and its ``samples``."""

    text: str
    samples: list[MetricSample]

    @classmethod
    def parse(cls, text: str) -> Metrics:
        samples = []
        for line in text.splitlines():
            match = _SAMPLE.match(line)
            if line.startswith("#") or match is None:
                continue
            name, labels, value = match.groups()
            parsed = {
                k: v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
                for k, v in _LABEL.findall(labels or "")
            }
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            samples.append(MetricSample(name, parsed, number))
        return cls(text, samples)

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples named ``name`` whose labels include ``labels``; 0.0 when
        none does (a counter not yet incremented has no sample)."""
        return sum(
            s.value
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )
