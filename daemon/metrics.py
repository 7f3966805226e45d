"""One daemon's metrics registry, exposed through ``prometheus_client``. No messages.

Hot paths keep their own plain integer counters and :class:`actors.histogram.Histogram`s
(channels, actors, adapters); this registry owns the counters of rarer events (drops,
rejects, restarts, reloads) and reads the rest through collector callbacks when /metrics is
scraped, so scraping costs the hot path nothing.  Each :class:`Metrics` has its own
``prometheus_client.CollectorRegistry`` (several daemons in one process never collide, the
library's global default registry is not used); :meth:`Metrics.render` is
``prometheus_client.generate_latest`` of it: the families owned and collected here (one
custom collector, typed by :meth:`Metrics.describe`), ``process_*`` (the library's
``ProcessCollector``) and ``tradingd_build_info``.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from threading import Lock

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from actors.histogram import FAST_BUCKETS, Histogram
from daemon.version import tradingd_version

Labels = tuple[tuple[str, str], ...]
Sample = tuple[str, Labels, float]
# What a collector yields: a value, or a histogram rendered as <name>_bucket/_count/_sum.
Collected = tuple[str, Labels, float | Histogram]
BUILD_INFO = "tradingd_build_info"


def _labels(labels: Mapping[str, str] | None) -> Labels:
    return tuple(sorted(labels.items())) if labels else ()


def _fmt_le(le: float) -> str:
    return "+Inf" if le == float("inf") else repr(le)


def histogram_samples(name: str, labels: Labels, h: Histogram) -> Iterator[Sample]:
    """The Prometheus samples of one histogram series: cumulative buckets, count, sum."""
    running = 0
    for le, running in h.cumulative():
        yield f"{name}_bucket", (*labels, ("le", _fmt_le(le))), float(running)
    yield f"{name}_count", labels, float(running)
    yield f"{name}_sum", labels, h.sum


class _Exposition(Collector):
    """The registry's view of a :class:`Metrics` (whose own ``describe`` means something else)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return self._metrics.collect()


class Metrics:
    """A registry: ``inc``/``set``/``histogram`` own series; ``add_collector`` reads series at scrape time."""

    def __init__(self, *, process: bool = True) -> None:
        self._lock = Lock()
        self._help: dict[str, tuple[str, str]] = {}
        self._values: dict[str, dict[Labels, float]] = {}
        self._histograms: dict[str, dict[Labels, Histogram]] = {}
        self._collectors: list[Callable[[], Iterable[Collected]]] = []
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Exposition(self))
        if process:
            ProcessCollector(registry=self.registry)
        self.describe(BUILD_INFO, "gauge", "Always 1: the running tradingd's version and Python")
        self.set(BUILD_INFO, 1, {"version": tradingd_version(), "python": platform.python_version()})

    def describe(self, name: str, kind: str, help_text: str) -> None:
        if kind == "counter" and not name.endswith("_total"):
            raise ValueError(f"counter {name} must end in _total")
        self._help[name] = (kind, help_text)

    def inc(self, name: str, labels: dict[str, str] | None = None, amount: float = 1.0) -> None:
        key = _labels(labels)
        series = self._values.setdefault(name, {})
        series[key] = series.get(key, 0.0) + amount
        if name not in self._help:
            self._help[name] = ("counter" if name.endswith("_total") else "gauge", name.replace("_", " "))

    def set(self, name: str, value: float, labels: dict[str, str] | None = None) -> None:
        self._values.setdefault(name, {})[_labels(labels)] = float(value)
        if name not in self._help:
            self._help[name] = ("gauge", name.replace("_", " "))

    def zero(self, name: str, label_sets: Iterable[Mapping[str, str]]) -> None:
        """Make a counter's series exist at 0 (every reason known up front) without touching counts."""
        series = self._values.setdefault(name, {})
        for labels in label_sets:
            series.setdefault(_labels(labels), 0.0)

    def histogram(
        self,
        name: str,
        help_text: str,
        labels: dict[str, str] | None = None,
        bounds: Sequence[float] = FAST_BUCKETS,
    ) -> Histogram:
        """The owned histogram series ``name{labels}`` (created empty on first call, then the same)."""
        self._help[name] = ("histogram", help_text)
        series = self._histograms.setdefault(name, {})
        key = _labels(labels)
        if key not in series:
            series[key] = Histogram(bounds)
        return series[key]

    def get(self, name: str, labels: dict[str, str] | None = None) -> float:
        return self._values.get(name, {}).get(_labels(labels), 0.0)

    def total(self, name: str) -> float:
        """Sum of a counter over all its label sets."""
        return sum(self._values.get(name, {}).values())

    def add_collector(self, collector: Callable[[], Iterable[Collected]]) -> None:
        self._collectors.append(collector)

    def remove_collector(self, collector: Callable[[], Iterable[Collected]]) -> None:
        if collector in self._collectors:
            self._collectors.remove(collector)

    def _collected(self) -> Iterator[Collected]:
        for name, series in list(self._values.items()):
            for labels, value in list(series.items()):
                yield name, labels, value
        for name, hseries in list(self._histograms.items()):
            for labels, h in list(hseries.items()):
                yield name, labels, h
        for collector in list(self._collectors):
            yield from collector()

    def samples(self) -> list[Sample]:
        """Every sample (histograms as their bucket/count/sum samples), for checkpoints and tests."""
        out: list[Sample] = []
        for name, labels, value in self._collected():
            if isinstance(value, Histogram):
                out.extend(histogram_samples(name, labels, value))
            else:
                out.append((name, labels, float(value)))
        return out

    def collect(self) -> Iterator[Metric]:
        """prometheus_client's collector protocol: one family per name, sorted, typed by describe()."""
        by_name: dict[str, list[tuple[Labels, float | Histogram]]] = {}
        for name, labels, value in self._collected():
            by_name.setdefault(name, []).append((labels, value))
        for name in sorted(by_name):
            yield self._family(name, sorted(by_name[name], key=lambda s: s[0]))

    def _family(self, name: str, series: list[tuple[Labels, float | Histogram]]) -> Metric:
        kind, help_text = self._help.get(name, ("gauge", name.replace("_", " ")))
        if any(isinstance(v, Histogram) for _, v in series):
            kind = "histogram"
        # A counter's family is named without _total; its samples keep it (the library's convention).
        family = Metric(name.removesuffix("_total") if kind == "counter" else name, help_text, kind)
        for labels, value in series:
            if isinstance(value, Histogram):
                for sample_name, sample_labels, v in histogram_samples(name, labels, value):
                    family.add_sample(sample_name, dict(sample_labels), v)
            else:
                family.add_sample(name, dict(labels), float(value))
        return family

    def render(self) -> str:
        """Prometheus text exposition format 0.0.4, by ``prometheus_client.generate_latest``."""
        return generate_latest(self.registry).decode()


METRICS = Metrics()
"""A fallback registry for code run without a daemon. Each daemon builds its own ``Metrics()``."""
