"""OKX's rate limits, one sliding window per endpoint rule and key (user, instrument).

OKX limits each endpoint on its own (v5 docs, "Rate Limit" of each endpoint), private endpoints
per user ID, some also per instrument ("Rate limit rule: User ID + Instrument ID"); the public
ones per IP.  A request over a limit is refused with ``50011`` (HTTP 429) and not executed.
Place, amend and cancel share their limits between REST and the private WebSocket's order ops.
Since 2024 new and amended orders also count against the sub-account's 1000 per 2 s.

:class:`OkxRateLimiter` keeps a window of send times per (rule, key), so a request that would
exceed a rule waits until the oldest request of its window has aged out; after a ``50011`` the
(rule, key) is blocked for one window (:meth:`OkxRateLimiter.penalize`).  It takes and emits no
messages; :class:`~adapters.okx.http.OkxHttpClient` and the private WebSocket's order ops ask it
before each request.  One limiter per OKX user (API key), shared by every symbol's client
(:func:`shared_limiter`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["RULES", "OkxRateLimiter", "Rule", "shared_limiter"]


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    limit: int
    window_s: float
    per: Literal["user", "instrument", "ip"]


def _rules(*rules: Rule) -> dict[str, Rule]:
    return {r.name: r for r in rules}


# The numbers of the OKX v5 docs for spot (requests per window).
RULES = _rules(
    Rule("place_order", 60, 2.0, "instrument"),  # POST /api/v5/trade/order, WS op "order"
    Rule("cancel_order", 60, 2.0, "instrument"),  # POST /api/v5/trade/cancel-order, WS "cancel-order"
    Rule("amend_order", 60, 2.0, "instrument"),  # POST /api/v5/trade/amend-order, WS "amend-order"
    Rule("order_details", 60, 2.0, "instrument"),  # GET /api/v5/trade/order
    Rule("orders_pending", 60, 2.0, "user"),  # GET /api/v5/trade/orders-pending
    Rule("fills", 60, 2.0, "user"),  # GET /api/v5/trade/fills (last 3 days)
    Rule("fills_history", 10, 2.0, "user"),  # GET /api/v5/trade/fills-history (last 3 months)
    Rule("balance", 10, 2.0, "user"),  # GET /api/v5/account/balance
    Rule("place_algo", 20, 2.0, "user"),  # POST /api/v5/trade/order-algo
    Rule("cancel_algos", 20, 2.0, "user"),  # POST /api/v5/trade/cancel-algos
    Rule("algo_details", 20, 2.0, "user"),  # GET /api/v5/trade/order-algo
    Rule("algos_pending", 20, 2.0, "user"),  # GET /api/v5/trade/orders-algo-pending
    Rule("time", 10, 2.0, "ip"),  # GET /api/v5/public/time
    Rule("sub_account_orders", 1000, 2.0, "user"),  # every new and amended order of the sub-account
)

Key = tuple[str, str]  # (rule name, instrument or "")


class OkxRateLimiter:
    """Sliding windows of one OKX user; times are ``time.monotonic()`` seconds."""

    def __init__(self, rules: dict[str, Rule] | None = None) -> None:
        self.rules = {**RULES, **(rules or {})}
        self._sent: dict[Key, deque[float]] = {}
        self._blocked: dict[Key, float] = {}
        self.penalties = 0

    def keys(self, names: Sequence[str], inst_id: str = "") -> list[Key]:
        """The windows a request of rules ``names`` (about ``inst_id``) counts against."""
        return [(n, inst_id if self.rules[n].per == "instrument" else "") for n in names]

    def delay(self, keys: Sequence[Key], now: float) -> float:
        """Seconds until a request counting against ``keys`` may leave (0: now)."""
        wait = 0.0
        for key in keys:
            rule = self.rules[key[0]]
            sent = self._window(key, now)
            if len(sent) >= rule.limit:
                wait = max(wait, sent[0] + rule.window_s - now)
            wait = max(wait, self._blocked.get(key, 0.0) - now)
        return wait

    def acquire(self, keys: Sequence[Key], now: float) -> None:
        """Count a request that leaves now."""
        for key in keys:
            self._window(key, now).append(now)

    def penalize(self, keys: Sequence[Key], now: float, seconds: float | None = None) -> None:
        """OKX said 50011: nothing more on ``keys`` for ``seconds`` (default: one window)."""
        self.penalties += 1
        for key in keys:
            hold = self.rules[key[0]].window_s if seconds is None else seconds
            self._blocked[key] = max(self._blocked.get(key, 0.0), now + hold)

    def used(self, key: Key, now: float) -> int:
        return len(self._window(key, now))

    def _window(self, key: Key, now: float) -> deque[float]:
        sent = self._sent.get(key)
        if sent is None:
            sent = self._sent[key] = deque()
        horizon = now - self.rules[key[0]].window_s
        while sent and sent[0] <= horizon:
            sent.popleft()
        return sent


_SHARED: dict[tuple[str, str], OkxRateLimiter] = {}


def shared_limiter(rest_url: str, api_key: str) -> OkxRateLimiter:
    """The limiter of one OKX user on one environment, shared by every client of the process."""
    key = (rest_url.rstrip("/"), api_key)
    limiter = _SHARED.get(key)
    if limiter is None:
        limiter = _SHARED[key] = OkxRateLimiter()
    return limiter
