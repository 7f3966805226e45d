"""The simulated clock of a backtest: actors read event time instead of the wall clock.

The runner sets :attr:`SimClock.now_ns` to each market message's ``ts_event`` before it
is delivered, so every stamp an actor puts on a message (``system_fields``), every paper
fill's ``ts_recv`` and every interval an actor measures (``monotonic``) come from the data.
"""

from __future__ import annotations

from actors.runtime import Clock

NS_PER_S = 1_000_000_000


class SimClock(Clock):
    """Event time, advanced by the backtest runner."""

    def __init__(self, now_ns: int = 0) -> None:
        self.now_ns = now_ns

    def time_ns(self) -> int:
        return self.now_ns

    def monotonic(self) -> float:
        return self.now_ns / NS_PER_S
