"""Our estimate of one Binance account's server clock, shared by everything that signs for it.

Binance refuses a signed request whose ``timestamp`` is not within ``recvWindow`` of its own
clock (``-1021``, spot docs "Timing security": ``timestamp < serverTime + 1000`` and
``serverTime - timestamp <= recvWindow``).  Every signed request of an account -- each symbol's
REST calls and the WebSocket API ``userDataStream.subscribe.signature`` of its user data stream
-- must therefore use the same venue-synced clock, not the host's: a host clock 7 s behind the
venue gets the subscription refused while REST (synced) still places orders, and fills are
never heard of.

:class:`ServerClock` holds the offset to the venue's clock, measured with ``GET /api/v3/time``
by a :class:`~adapters.binance.http.BinanceHttpClient` (corrected by half the round trip).  It
takes no messages and emits none; the REST clients and the user data stream read ``now_ms`` and
re-measure through :meth:`ServerClock.due` / :meth:`ServerClock.invalidate` (after a ``-1021``).
"""

from __future__ import annotations

import time

import anyio

__all__ = ["ServerClock"]


class ServerClock:
    """The offset (ms) of Binance's clock to ours, and when it was last measured."""

    def __init__(self) -> None:
        self.offset_ms = 0.0
        self.synced_at = float("-inf")  # time.monotonic() of the last measurement
        self.syncs = 0
        self.lock = anyio.Lock()  # one measurement at a time for every user of the clock

    def now_ms(self) -> int:
        """Our estimate of Binance's clock, in milliseconds."""
        return int(time.time() * 1000 + self.offset_ms)

    def due(self, interval_s: float) -> bool:
        """Never measured, invalidated, or measured ``interval_s`` ago or longer."""
        return time.monotonic() - self.synced_at >= interval_s

    def update(self, server_ms: int, sent_ms: float, received_ms: float) -> None:
        """A ``serverTime`` asked at ``sent_ms`` and answered at ``received_ms`` (our clock)."""
        self.offset_ms = server_ms - (sent_ms + received_ms) / 2
        self.synced_at = time.monotonic()
        self.syncs += 1

    def invalidate(self) -> None:
        """The venue refused a timestamp (-1021): the next user measures again."""
        self.synced_at = float("-inf")
