"""Fixed-bucket histograms for hot paths: ``observe()`` is one C ``bisect`` and two additions.

No messages. Owners (actors, adapters, the journal, the mirror) keep one :class:`Histogram`
per series and observe into it on their own paths; ``daemon.metrics`` renders them as
Prometheus histograms only when ``/metrics`` is scraped, so scraping costs the hot path nothing.
Buckets are upper bounds in seconds (Prometheus ``le``), ``+Inf`` implied.

:class:`OrderLatency` is a group's frame-received -> order-on-the-wire clock (one per
:class:`actors.channels.Router`): the strategy and the stop-monitor note the ``ts_recv`` of the
market message behind each ``OrderIntent``; the execution adapter calls :meth:`OrderLatency.sent`
when it hands the order to the venue (paper: the engine takes it; Binance: through
:data:`ON_WIRE`, right before the signed request is written to the connection).
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Sequence
from contextvars import ContextVar

# Frame received -> order bytes handed to the socket, a risk decision: microseconds matter.
FAST_BUCKETS: tuple[float, ...] = (
    10e-6,
    25e-6,
    50e-6,
    100e-6,
    150e-6,
    250e-6,
    500e-6,
    1e-3,
    2.5e-3,
    5e-3,
    10e-3,
    25e-3,
    100e-3,
    250e-3,
    1.0,
)
# fsync, Redis round trips, REST round trips: milliseconds to seconds.
IO_BUCKETS: tuple[float, ...] = (
    0.5e-3,
    1e-3,
    2.5e-3,
    5e-3,
    10e-3,
    25e-3,
    50e-3,
    100e-3,
    250e-3,
    500e-3,
    1.0,
    2.5,
    5.0,
    10.0,
)


class Histogram:
    """Counts per bucket (the last is ``+Inf``), their sum and the sum of observed values."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float] = FAST_BUCKETS) -> None:
        if list(bounds) != sorted(set(bounds)) or not bounds:
            raise ValueError("histogram bounds must be distinct and ascending")
        self.bounds: tuple[float, ...] = tuple(float(b) for b in bounds)
        self.counts: list[int] = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bound's bucket (le semantics).
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def observe_ns(self, elapsed_ns: int) -> None:
        self.observe(elapsed_ns / 1e9)

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """``(le, count of values <= le)`` per bound, ``+Inf`` last."""
        out: list[tuple[float, int]] = []
        running = 0
        for le, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += n
            out.append((le, running))
        return out

    def quantile(self, q: float) -> float:
        """The upper bound of the bucket holding quantile ``q`` (``inf`` past the last bound)."""
        total = self.count
        if total == 0:
            return float("nan")
        rank = q * total
        for le, running in self.cumulative():
            if running >= rank:
                return le
        return float("inf")


# Set by an execution adapter around its order request; the REST client calls it (once) right
# before the request goes to the connection, so the latency ends where the bytes leave.
ON_WIRE: ContextVar[Callable[[], None] | None] = ContextVar("tradingd_on_wire", default=None)
MAX_PENDING = 4096  # intents noted and not sent yet (rejected by risk, say): the oldest are forgotten
MAX_LATENCY_NS = 60 * 1_000_000_000  # past this, ts_recv is not our receive time (backtests: event time)


class OrderLatency:
    """Frame received (a market message's ``ts_recv``, wall clock ns) to the order on the wire."""

    __slots__ = ("_origin", "histogram", "unmatched")

    def __init__(self) -> None:
        self.histogram = Histogram(FAST_BUCKETS)
        self._origin: dict[str, int] = {}
        self.unmatched = 0  # orders sent with no frame noted (restored, operator flatten, backtest)

    def note(self, intent_id: str, frame_recv_ns: int) -> None:
        origin = self._origin
        if len(origin) >= MAX_PENDING:
            del origin[next(iter(origin))]
        origin[intent_id] = frame_recv_ns

    def sent(self, intent_id: str, now_ns: int | None = None) -> None:
        frame = self._origin.pop(intent_id, None)
        elapsed = (time.time_ns() if now_ns is None else now_ns) - frame if frame is not None else -1
        if 0 <= elapsed <= MAX_LATENCY_NS:
            self.histogram.observe(elapsed / 1e9)
        else:
            self.unmatched += 1
