"""Client-side accounting of Binance's REST rate limits (spot docs, "LIMITS").

:class:`RateLimiter` keeps Binance's fixed windows, aligned to server time, for REQUEST_WEIGHT,
ORDERS and RAW_REQUESTS (limits from exchangeInfo ``rateLimits``, :data:`DEFAULT_LIMITS` until it
is loaded): requests are counted before they leave, the venue's ``X-MBX-USED-WEIGHT-*`` /
``X-MBX-ORDER-COUNT-*`` headers are taken as the floor, and :meth:`RateLimiter.delay_ms` says how
long a request must wait for the next window.  It also holds the 429 back-off and 418 ban deadlines
that :class:`~adapters.binance.http.BinanceHttpClient` sets.  Pure code, no networking or clock.

Binance counts REQUEST_WEIGHT per IP: every client of one venue host in this process (each
group's trading client, the market feed's snapshots and exchangeInfo) shares one limiter,
:func:`shared_limiter` (keyed by scheme, host and port), so their weights add up here as they do at
the venue, and a 429 back-off or a 418 ban seen by one holds all of them.  A *background* request
(depth snapshots) leaves :data:`BACKGROUND_RESERVE` of each weight window to the order path: it
waits for the next window rather than use the last fifth of one.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass

from yarl import URL

from adapters.binance.schemas import BinanceRateLimit

# Until exchangeInfo is loaded: the limits of the recorded reply (tests/data/binance/BINANCE.0).
DEFAULT_LIMITS = (
    BinanceRateLimit("REQUEST_WEIGHT", "MINUTE", 1, 1200),
    BinanceRateLimit("ORDERS", "SECOND", 10, 50),
    BinanceRateLimit("ORDERS", "DAY", 1, 160000),
    BinanceRateLimit("RAW_REQUESTS", "MINUTE", 5, 6100),
)
_INTERVAL_MS = {"SECOND": 1000, "MINUTE": 60_000, "HOUR": 3_600_000, "DAY": 86_400_000}
BACKGROUND_RESERVE = 0.2  # share of each REQUEST_WEIGHT window kept for the order path
_HEADER = {"REQUEST_WEIGHT": "x-mbx-used-weight-", "ORDERS": "x-mbx-order-count-"}


@dataclass(slots=True)
class _Window:
    kind: str
    length_ms: int
    limit: int
    header: str = ""
    start_ms: int = 0
    used: int = 0

    def roll(self, now_ms: int) -> None:
        start = now_ms - now_ms % self.length_ms
        if start > self.start_ms:
            self.start_ms, self.used = start, 0

    def need(self, weight: int, orders: int) -> int:
        return {"REQUEST_WEIGHT": weight, "ORDERS": orders, "RAW_REQUESTS": 1}.get(self.kind, 0)

    def room(self, background: bool) -> int:
        """What may be used of this window: all of it, less the order path's reserve for background."""
        if background and self.kind == "REQUEST_WEIGHT":
            return self.limit - max(1, int(self.limit * BACKGROUND_RESERVE))
        return self.limit


class RateLimiter:
    """Binance's rate-limit windows for one IP/account; all times are server-time milliseconds."""

    def __init__(
        self, limits: tuple[BinanceRateLimit, ...] = DEFAULT_LIMITS, *, margin_ms: int = 250
    ) -> None:
        self.margin_ms = margin_ms
        self.windows: list[_Window] = []
        self.blocked_until_ms = 0
        self.banned_until_ms = 0
        self.configured = False  # True once the venue's own rateLimits were adopted
        self.configure(limits)
        self.configured = False

    def configure(self, limits: tuple[BinanceRateLimit, ...] | list[BinanceRateLimit]) -> None:
        """Adopt exchangeInfo ``rateLimits``, keeping what was already counted."""
        self.configured = True
        old = {(w.kind, w.length_ms): w for w in self.windows}
        self.windows = []
        for rl in limits:
            length = _INTERVAL_MS.get(rl.interval, 60_000) * rl.intervalNum
            prefix = _HEADER.get(rl.rateLimitType, "")  # RAW_REQUESTS has no header: counted here only
            header = f"{prefix}{rl.intervalNum}{rl.interval[0].lower()}" if prefix else ""
            w = _Window(rl.rateLimitType, length, rl.limit, header)
            if (prev := old.get((w.kind, length))) is not None:
                w.start_ms, w.used = prev.start_ms, prev.used
            self.windows.append(w)

    def delay_ms(self, weight: int, orders: int, now_ms: int, *, background: bool = False) -> int:
        """How long to wait before a request of this weight and order count may leave (0: now).

        ``background``: a request that must leave the order path its reserve (snapshots)."""
        wait = max(self.blocked_until_ms, self.banned_until_ms) - now_ms
        for w in self.windows:
            w.roll(now_ms)
            need = w.need(weight, orders)
            if need and w.used and w.used + need > w.room(background):
                wait = max(wait, w.start_ms + w.length_ms + self.margin_ms - now_ms)
        return max(wait, 0)

    def acquire(self, weight: int, orders: int, now_ms: int) -> None:
        for w in self.windows:
            w.roll(now_ms)
            w.used += w.need(weight, orders)

    def observe(self, headers: Mapping[str, str], now_ms: int) -> None:
        """Take the venue's counters: they include other clients on the same IP/account."""
        for w in self.windows:
            value = headers.get(w.header) if w.header else None
            if value is not None and value.isdigit():
                w.roll(now_ms)
                w.used = max(w.used, int(value))

    def used(self, kind: str = "REQUEST_WEIGHT") -> int:
        return max((w.used for w in self.windows if w.kind == kind), default=0)


_SHARED: weakref.WeakValueDictionary[str, RateLimiter] = weakref.WeakValueDictionary()


def venue_key(base_url: str) -> str:
    """``https://api.binance.com`` -> ``https://api.binance.com:443``: one key per venue host."""
    url = URL(base_url)
    return f"{url.scheme}://{url.host}:{url.port}"


def shared_limiter(base_url: str) -> RateLimiter:
    """The process's limiter for the venue host of ``base_url``, created on first use.

    It lives as long as a client holds it (a weak registry): a host nobody talks to any more
    starts afresh."""
    key = venue_key(base_url)
    limiter = _SHARED.get(key)
    if limiter is None:
        limiter = _SHARED[key] = RateLimiter()
    return limiter
