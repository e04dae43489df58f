"""Prometheus text exposition (format 0.0.4) of the relay's counters, written by hand.

The relay exports a dozen counters and gauges with at most two labels and no histograms, which is
about forty lines of text formatting; `prometheus_client` would add a process-global registry (awkward
with several relays in one process, as the tests and `share`'s embedded relay have) for nothing we
need. Every sample carries a `node` label so that several relay nodes can be told apart.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


@dataclass
class Metric:
    name: str
    kind: str  # "counter" or "gauge"
    help: str
    samples: list[tuple[Labels, float]] = field(default_factory=list)

    def add(self, value: float, **labels: str) -> Metric:
        self.samples.append((tuple(labels.items()), value))
        return self


def render(metrics: Iterable[Metric], node: str) -> str:
    lines: list[str] = []
    for metric in metrics:
        lines.append(f"# HELP {metric.name} {metric.help}")
        lines.append(f"# TYPE {metric.name} {metric.kind}")
        for labels, value in metric.samples:
            pairs = ",".join(f'{k}="{_escape(v)}"' for k, v in (("node", node), *labels))
            number = repr(float(value)) if value != int(value) else str(int(value))
            lines.append(f"{metric.name}{{{pairs}}} {number}")
    return "\n".join(lines) + "\n"
