"""Process-wide metrics: counters and gauges with labels, rendered as Prometheus text.

Hot paths keep their own plain integer counters (channels, actors); this registry holds
the counters of rarer events (drops, rejects, restarts, reloads) and collects the rest
through registered collector callbacks when /metrics is scraped, so scraping costs the
hot path nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from threading import Lock

Labels = tuple[tuple[str, str], ...]
Sample = tuple[str, Labels, float]


def _labels(labels: dict[str, str] | None) -> Labels:
    return tuple(sorted(labels.items())) if labels else ()


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt_value(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if float(v).is_integer():
        return str(int(v))
    return repr(float(v))


class Metrics:
    """A registry. ``inc``/``set`` for owned series; ``add_collector`` for series read at scrape time."""

    def __init__(self) -> None:
        self._lock = Lock()
        self._help: dict[str, tuple[str, str]] = {}
        self._values: dict[str, dict[Labels, float]] = {}
        self._collectors: list[Callable[[], Iterable[Sample]]] = []

    def describe(self, name: str, kind: str, help_text: str) -> None:
        self._help[name] = (kind, help_text)

    def inc(self, name: str, labels: dict[str, str] | None = None, amount: float = 1.0) -> None:
        key = _labels(labels)
        series = self._values.setdefault(name, {})
        series[key] = series.get(key, 0.0) + amount
        if name not in self._help:
            self._help[name] = ("counter", name.replace("_", " "))

    def set(self, name: str, value: float, labels: dict[str, str] | None = None) -> None:
        self._values.setdefault(name, {})[_labels(labels)] = float(value)
        if name not in self._help:
            self._help[name] = ("gauge", name.replace("_", " "))

    def get(self, name: str, labels: dict[str, str] | None = None) -> float:
        return self._values.get(name, {}).get(_labels(labels), 0.0)

    def total(self, name: str) -> float:
        """Sum of a counter over all its label sets."""
        return sum(self._values.get(name, {}).values())

    def add_collector(self, collector: Callable[[], Iterable[Sample]]) -> None:
        self._collectors.append(collector)

    def remove_collector(self, collector: Callable[[], Iterable[Sample]]) -> None:
        if collector in self._collectors:
            self._collectors.remove(collector)

    def samples(self) -> list[Sample]:
        out: list[Sample] = []
        for name, series in self._values.items():
            out.extend((name, labels, value) for labels, value in series.items())
        for collector in list(self._collectors):
            out.extend(collector())
        return out

    def render(self) -> str:
        """Prometheus text exposition format 0.0.4."""
        by_name: dict[str, list[tuple[Labels, float]]] = {}
        for name, labels, value in self.samples():
            by_name.setdefault(name, []).append((labels, value))
        lines: list[str] = []
        for name in sorted(by_name):
            kind, help_text = self._help.get(name, ("gauge", name.replace("_", " ")))
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            for labels, value in sorted(by_name[name]):
                if labels:
                    body = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                    lines.append(f"{name}{{{body}}} {_fmt_value(value)}")
                else:
                    lines.append(f"{name} {_fmt_value(value)}")
        return "\n".join(lines) + "\n"


METRICS = Metrics()
"""The process registry. Tests that need isolation build their own ``Metrics()``."""
