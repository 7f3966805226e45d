"""Venue health of the running groups and accounts: readiness reasons, /status and /metrics.

A group that trades on a real venue (Binance) is only ready when the venue is usable:

- per group: its exchange rules (exchangeInfo filters) are loaded; without them no order leaves
  (``binance:BTC/USDT: exchange rules not loaded since ... (15 failed attempts; last error: ...)``);
- per account: REST reaches the venue (``account main: REST unreachable since <ISO 8601 UTC>
  (N failures; last error: ...)``), the IP is not banned, the API key is accepted, and the user
  data stream is subscribed and caught up (``account main: user data stream not subscribed since
  ...``) -- without it fills and cancels are not heard of.

Each reason appears once its trouble has lasted :data:`VENUE_GRACE_S` (a reconnect or a lost
request repaired within it does not flap readiness; at start the grace runs from the moment the
group or account was set up) and disappears as soon as the venue answers again.  Paper groups
have no venue health.  The supervisor calls :func:`readiness`, :func:`group_status` and
:func:`account_status`; :func:`register` adds the gauges and counters to the metrics.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import msgspec

from actors.timefmt import iso_utc
from adapters.binance.account_stream import AccountUserStream
from adapters.binance.execution import BinanceExecution
from daemon.metrics import Collected, Labels, Metrics

if TYPE_CHECKING:
    from daemon.group import SymbolGroup
    from daemon.supervisor import AccountRuntime, Supervisor

__all__ = ["VENUE_GRACE_S", "account_status", "collect", "group_status", "readiness", "register"]

VENUE_GRACE_S = 5.0  # how long venue trouble may last before readiness reports it

HELP = {
    "tradingd_venue_rest_seconds": ("histogram", "REST round trip per endpoint: request sent to reply read"),
    "tradingd_venue_rest_up": ("gauge", "1 when the account's last REST request got a reply from the venue"),
    "tradingd_venue_rest_failures_total": ("counter", "REST requests that got no usable reply, by reason"),
    "tradingd_venue_rest_failing_seconds": (
        "gauge",
        "How long the account's REST requests have been failing",
    ),
    "tradingd_venue_rest_weight_used": ("gauge", "REQUEST_WEIGHT used in the current window (venue's count)"),
    "tradingd_venue_rest_weight_limit": ("gauge", "REQUEST_WEIGHT limit per window (from exchangeInfo)"),
    "tradingd_venue_banned_until_seconds": ("gauge", "Unix time the venue's IP ban ends (0: not banned)"),
    "tradingd_venue_api_key_refused": (
        "gauge",
        "1 while signed requests are refused for the key (-2015/-1022)",
    ),
    "tradingd_user_stream_up": ("gauge", "1 when the account's user data stream is subscribed and caught up"),
    "tradingd_user_stream_reconnects_total": ("counter", "User data stream connections lost or failed"),
    "tradingd_user_stream_catchup_errors_total": ("counter", "User data stream catch-ups that failed"),
    "tradingd_exchange_rules_loaded": (
        "gauge",
        "1 when the group's exchange rules (exchangeInfo) are loaded",
    ),
    "tradingd_exchange_rules_failures_total": ("counter", "Failed attempts to load a group's exchange rules"),
}


def _venue(group: SymbolGroup) -> BinanceExecution | None:
    venue = group.venue
    return venue if isinstance(venue, BinanceExecution) else None


def _stream(acct: AccountRuntime) -> AccountUserStream | None:
    return acct.user_stream


def readiness(sup: Supervisor, now_ns: int | None = None) -> list[str]:
    """Every venue reason the daemon is not ready, per group and per account."""
    now = time.time_ns() if now_ns is None else now_ns
    reasons: list[str] = []
    used = {g.cfg.account for g in sup.groups.values()}
    for group in sup.groups.values():
        venue = _venue(group)
        if venue is not None:
            reasons += [f"{group.name}: {p}" for p in venue.problems(now, VENUE_GRACE_S)]
    for name, acct in sup.accounts.items():
        stream = _stream(acct)
        if stream is not None and name in used:
            reasons += [f"account {name}: {p}" for p in stream.problems(now, VENUE_GRACE_S)]
    return reasons


def group_status(group: SymbolGroup) -> dict[str, object] | None:
    """The group's venue on /status: exchange rules and the execution counters (None on paper)."""
    venue = _venue(group)
    if venue is None:
        return None
    loader = venue.rules_loader
    problems = venue.problems(time.time_ns(), VENUE_GRACE_S)
    return {
        "ready": not problems,
        "problems": problems,
        "rules_loaded": venue.rules is not None,
        "rules_loaded_at": _iso(loader.loaded_ns),
        "rules_failures": loader.failures,
        "rules_last_error": loader.last_error,
        "execution": msgspec.to_builtins(venue.statistics()),
    }


def account_status(acct: AccountRuntime) -> dict[str, object] | None:
    """The account's venue on /status: REST health and the user data stream (None on paper)."""
    stream = _stream(acct)
    if stream is None:
        return None
    problems = stream.problems(time.time_ns(), VENUE_GRACE_S)
    return {
        "ready": not problems,
        "problems": problems,
        "rest": msgspec.to_builtins(stream.rest.statistics()),
        "user_stream": msgspec.to_builtins(stream.stream.statistics()),
        "unrouted_events": stream.unrouted,
    }


def _iso(ns: int) -> str | None:
    return iso_utc(ns) if ns else None


def _l(**labels: str) -> Labels:
    return tuple(sorted(labels.items()))


def _account_samples(name: str, stream: AccountUserStream, now: int) -> Iterator[Collected]:
    rest, user = stream.rest, stream.stream
    labels = _l(account=name)
    yield "tradingd_venue_rest_up", labels, 1.0 if rest.up else 0.0
    for (method, path), h in list(rest.round_trips.items()):
        yield "tradingd_venue_rest_seconds", _l(account=name, method=method, endpoint=path), h
    for reason, n in rest.failures.items():
        yield "tradingd_venue_rest_failures_total", _l(account=name, reason=reason), float(n)
    yield "tradingd_venue_rest_failing_seconds", labels, rest.failing_for_s(now)
    yield "tradingd_venue_rest_weight_used", labels, float(rest.weight_used)
    yield "tradingd_venue_rest_weight_limit", labels, float(rest.weight_limit)
    banned = rest.banned_until_ms / 1000 if rest.banned(now) else 0.0
    yield "tradingd_venue_banned_until_seconds", labels, banned
    yield "tradingd_venue_api_key_refused", labels, 1.0 if rest.auth_error else 0.0
    yield "tradingd_user_stream_up", labels, 1.0 if user.ready else 0.0
    yield "tradingd_user_stream_reconnects_total", labels, float(user.reconnects)
    yield "tradingd_user_stream_catchup_errors_total", labels, float(user.catchup_errors)


def collect(accounts: Iterable[AccountRuntime], groups: Iterable[SymbolGroup]) -> Iterator[Collected]:
    now = time.time_ns()
    for acct in list(accounts):
        stream = _stream(acct)
        if stream is not None:
            yield from _account_samples(acct.name, stream, now)
    for group in list(groups):
        venue = _venue(group)
        if venue is None:
            continue
        labels = _l(exchange=group.cfg.exchange, symbol=group.cfg.symbol)
        yield "tradingd_exchange_rules_loaded", labels, 1.0 if venue.rules is not None else 0.0
        yield "tradingd_exchange_rules_failures_total", labels, float(venue.rules_loader.failures)


def register(metrics: Metrics, sup: Supervisor) -> None:
    """Describe the venue series and collect them from ``sup`` at every scrape."""
    for name, (kind, text) in HELP.items():
        metrics.describe(name, kind, text)
    metrics.add_collector(lambda: list(collect(sup.accounts.values(), sup.groups.values())))
