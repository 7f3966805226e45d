"""Is the venue usable? The REST side of one Binance account, as its requests experience it.

:class:`RestHealth` is shared by every REST client of an account (one per symbol group): each
request's outcome is recorded by :class:`~adapters.binance.http.BinanceHttpClient`.

- A reply from the venue (2xx, or a 4xx refusal of the request itself: bad parameters,
  insufficient balance, an unknown order, a stale timestamp) means REST is reachable.
- A timeout, a refused or broken connection, a 5xx (or -1000/-1001/-1006/-1007), an unreadable
  2xx reply, a 429 and a 418 ban are failures, counted by reason (``timeout``, ``connection``,
  ``server_error``, ``bad_reply``, ``rate_limited``, ``banned``).  A request never sent (the
  client knows it is banned, or a window is full) is not counted: it says nothing new.
- -2015 (key refused: wrong key, IP not whitelisted, no permission) and -1022 (bad signature) on a
  signed request make the account blind even though the venue answers; that state is kept apart
  (:attr:`RestHealth.auth_error`) and only a signed request that succeeds clears it.
- A request still waiting for its reply after the grace period is trouble too (a silently dropped
  route answers nothing until the client's timeout): "REST not answering since ...".

:meth:`RestHealth.problem` is the readiness verdict: ``None``, or why the account cannot trade,
once the trouble has lasted ``grace_s`` (a single lost request does not flap readiness; a venue
unreachable from the start shows once the grace has passed since the tracker was created).
:meth:`RestHealth.probe_due` tells the execution actors when to ping the venue so the verdict stays
current: often while it fails, after ``PROBE_IDLE_S`` of silence while it works.
"""

from __future__ import annotations

import logging
import time

import msgspec

from actors.histogram import IO_BUCKETS, Histogram
from actors.timefmt import iso_utc

__all__ = [
    "PROBE_CHECK_S",
    "PROBE_FAILING_S",
    "PROBE_IDLE_S",
    "REST_FAILURE_REASONS",
    "RestHealth",
    "RestHealthStatistics",
    "iso_utc",
]

log = logging.getLogger("tradingd.binance.health")

REST_FAILURE_REASONS = ("timeout", "connection", "server_error", "bad_reply", "rate_limited", "banned")
PROBE_CHECK_S = 1.0  # how often an execution actor looks whether a probe is due
PROBE_FAILING_S = 2.0  # while REST fails: a ping this long after the last attempt
PROBE_IDLE_S = 15.0  # while REST works: a ping after this long without any reply


class RestHealthStatistics(msgspec.Struct, frozen=True):
    """A snapshot of one account's REST health, for /status."""

    up: bool
    down_since: str | None
    consecutive_failures: int
    failures: dict[str, int]
    last_error: str
    last_ok: str | None
    auth_error: str
    weight_used: int
    weight_limit: int
    banned_until: str | None


class RestHealth:
    """The REST health of account ``account`` (times are wall-clock nanoseconds)."""

    def __init__(self, account: str) -> None:
        self.account = account
        self.created_ns = time.time_ns()
        self.up = False  # the last request that left got a reply from the venue
        self.last_ok_ns = 0
        self.last_attempt_ns = 0  # the last recorded outcome, ok or not
        self.down_since_ns = self.created_ns  # first failure since the last reply (or the start)
        self.consecutive_failures = 0
        self.failures: dict[str, int] = dict.fromkeys(REST_FAILURE_REASONS, 0)
        self.last_error = ""
        self.auth_error = ""
        self.auth_error_since_ns = 0
        self.weight_used = 0
        self.weight_limit = 0
        self.banned_until_ms = 0
        self.probing = False
        self._waiting: dict[int, int] = {}  # requests on the wire: token -> sent at
        self.round_trips: dict[tuple[str, str], Histogram] = {}  # (method, path): request to reply read
        self._tokens = 0

    # --- what the REST clients record ----------------------------------------------------------

    def ok(self, *, signed: bool = False) -> None:
        """The venue answered a request."""
        now = time.time_ns()
        if not self.up and self.consecutive_failures:
            log.warning(
                "account %s: Binance REST reachable again after %d failures (%.1fs)",
                self.account,
                self.consecutive_failures,
                (now - self.down_since_ns) / 1e9,
                extra=self._extra(),
            )
        self.up, self.last_ok_ns, self.last_attempt_ns = True, now, now
        self.down_since_ns, self.consecutive_failures = 0, 0
        if signed and self.auth_error:
            log.warning("account %s: API key accepted again", self.account, extra=self._extra())
            self.auth_error, self.auth_error_since_ns = "", 0

    def failure(self, reason: str, detail: str) -> None:
        """A request got no usable reply: ``reason`` is one of :data:`REST_FAILURE_REASONS`."""
        now = time.time_ns()
        self.failures[reason] = self.failures.get(reason, 0) + 1
        if self.up or not self.down_since_ns:
            self.down_since_ns = now
        self.up, self.last_attempt_ns = False, now
        self.consecutive_failures += 1
        self.last_error = f"{reason}: {detail}"[:300]

    def round_trip(self, method: str, path: str, seconds: float) -> None:
        """A reply (any status) was read ``seconds`` after its request left."""
        h = self.round_trips.get((method, path))
        if h is None:
            h = self.round_trips[(method, path)] = Histogram(IO_BUCKETS)
        h.observe(seconds)

    def refused_key(self, detail: str) -> None:
        """A signed request was refused for its key or signature (-2015, -1022)."""
        if not self.auth_error:
            self.auth_error_since_ns = time.time_ns()
        self.auth_error = detail[:300]

    def sent(self) -> int:
        """A request left; returns the token to pass to :meth:`answered` once it is over."""
        self._tokens += 1
        self._waiting[self._tokens] = time.time_ns()
        return self._tokens

    def answered(self, token: int) -> None:
        """The request ``token`` is over (replied, failed or cancelled)."""
        self._waiting.pop(token, None)

    def waiting_since_ns(self) -> int:
        """When the oldest request still on the wire left (0: none is)."""
        return min(self._waiting.values(), default=0)

    def limits(self, weight_used: int, weight_limit: int, banned_until_ms: int) -> None:
        """The client's rate-limit view after a request (the venue's counters are per IP)."""
        self.weight_used, self.weight_limit = weight_used, weight_limit
        self.banned_until_ms = max(self.banned_until_ms, banned_until_ms)

    # --- what the daemon reads -------------------------------------------------------------------

    def banned(self, now_ns: int) -> bool:
        return self.banned_until_ms * 1_000_000 > now_ns

    def failing_for_s(self, now_ns: int) -> float:
        """How long REST has been failing (unreached since the start counts), 0 while it works."""
        return 0.0 if self.up else max(0.0, (now_ns - self.down_since_ns) / 1e9)

    def problem(self, now_ns: int, grace_s: float) -> str | None:
        """Why this account cannot use REST, once that has lasted ``grace_s``; ``None`` if it can."""
        if self.banned(now_ns):
            return f"REST banned by Binance (HTTP 418) until {iso_utc(self.banned_until_ms * 1_000_000)}"
        if self.auth_error and (now_ns - self.auth_error_since_ns) / 1e9 >= grace_s:
            return f"API key refused since {iso_utc(self.auth_error_since_ns)} ({self.auth_error})"
        waiting = self.waiting_since_ns()
        if self.up and waiting and (now_ns - waiting) / 1e9 >= grace_s:
            waited = (now_ns - waiting) / 1e9
            return f"REST not answering since {iso_utc(waiting)} (a request has waited {waited:.0f}s)"
        if self.up or self.failing_for_s(now_ns) < grace_s:
            return None
        since = iso_utc(self.down_since_ns)
        if not self.consecutive_failures:
            return f"REST unreachable since {since} (no reply yet)"
        n, last = self.consecutive_failures, self.last_error
        return f"REST unreachable since {since} ({n} failures; last error: {last})"

    def probe_due(self, now_ns: int) -> bool:
        """Should an execution actor ping the venue now (nobody else is, and no ban forbids it)?"""
        if self.probing or self.banned(now_ns):
            return False
        if self.up:
            return (now_ns - self.last_ok_ns) / 1e9 >= PROBE_IDLE_S
        return (now_ns - max(self.last_attempt_ns, self.created_ns)) / 1e9 >= PROBE_FAILING_S

    def statistics(self) -> RestHealthStatistics:
        now = time.time_ns()
        return RestHealthStatistics(
            up=self.up,
            down_since=None if self.up else iso_utc(self.down_since_ns),
            consecutive_failures=self.consecutive_failures,
            failures=dict(self.failures),
            last_error=self.last_error,
            last_ok=iso_utc(self.last_ok_ns) if self.last_ok_ns else None,
            auth_error=self.auth_error,
            weight_used=self.weight_used,
            weight_limit=self.weight_limit,
            banned_until=iso_utc(self.banned_until_ms * 1_000_000) if self.banned(now) else None,
        )

    def _extra(self) -> dict[str, str]:
        return {
            "component": "binance.http",
            "exchange": "binance",
            "symbol": "*",
            "conn": f"rest:{self.account}",
        }
