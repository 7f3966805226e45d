"""Tells the operator when something the daemon depends on changes: ServiceChanged news.

Takes no messages.  Every ``interval_s`` it looks at the Redis mirror (up/down), the PostgreSQL
writer (an outage in progress) and each group's market data (stale after
``daemon.feed_stale_after_s``, the same rule as ``/readyz``), and emits one ServiceChanged per
transition: ``redis``/``postgres`` ``down`` then ``up`` (with the outage's length), ``feed``
``stale`` then ``recovered`` per group.  The daemon's ``started`` and ``stopping`` come from
:mod:`daemon.app` through :func:`daemon_started` / :func:`daemon_stopping`.

The mirror and the writer count their outages, so one shorter than a look is told too (down,
then up); a daemon that starts while Redis is down says so.  News goes to the mirror (stream
``{prefix}:daemon:all:event`` or the group's ``...:event``), whose ``event`` kind is never
dropped: an outage of Redis reaches ``tradingd notify`` once Redis is back, followed by its end.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Literal, Protocol

import anyio

from actors.messages import ServiceChanged, stamp
from actors.timefmt import iso_utc
from daemon.logs import redact

__all__ = ["ServiceWatch", "daemon_started", "daemon_stopping"]

log = logging.getLogger("tradingd.daemon")
Announce = Callable[[ServiceChanged], None]
NS = 1_000_000_000


class _Mirror(Protocol):
    @property
    def redis_state(self) -> Literal["up", "down", "disabled"]: ...

    @property
    def dropped(self) -> int: ...

    @property
    def outages(self) -> int: ...

    @property
    def last_down_ns(self) -> int: ...


class _Store(Protocol):
    @property
    def down(self) -> bool: ...

    @property
    def last_error(self) -> str: ...

    @property
    def outages(self) -> int: ...

    @property
    def last_down_ns(self) -> int: ...


class _Group(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def key(self) -> tuple[str, str]: ...

    def feed_age_s(self, now_ns: int) -> float | None: ...


Service = Literal["daemon", "redis", "postgres", "feed", "balance"]
State = Literal["started", "stopping", "down", "up", "stale", "recovered", "drift"]
Severity = Literal["info", "warning", "critical"]


def _for(
    service: Service,
    state: State,
    severity: Severity,
    detail: str,
    since_ns: int,
    now: int,
    group: tuple[str, str] = ("*", "*"),
) -> ServiceChanged:
    fields = stamp(group[0], group[1], now)
    return ServiceChanged(
        service=service, state=state, severity=severity, detail=detail, since_ns=since_ns, **fields
    )


def _took(since_ns: int, now: int) -> str:
    s = max(0.0, (now - since_ns) / NS)
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


def daemon_started(groups: list[str], recovered: str, now: int | None = None) -> ServiceChanged:
    at = time.time_ns() if now is None else now
    names = ", ".join(groups[:10]) + (f" (+{len(groups) - 10} more)" if len(groups) > 10 else "")
    count = "1 group" if len(groups) == 1 else f"{len(groups)} groups"
    detail = f"tradingd started: {count} ({names or 'none'})" + (f"; {recovered}" if recovered else "")
    return _for("daemon", "started", "info", detail, at, at)


def daemon_stopping(why: str, now: int | None = None) -> ServiceChanged:
    at = time.time_ns() if now is None else now
    return _for("daemon", "stopping", "warning", f"tradingd stopping: {why}", at, at)


class ServiceWatch:
    """The transitions of Redis, PostgreSQL and each group's feed, as ServiceChanged news."""

    def __init__(
        self,
        announce: Announce,
        groups: Callable[[], list[_Group]],
        mirror: _Mirror | None,
        store: _Store | None,
        stale_after_s: Callable[[], float],
        started_ns: int,
    ) -> None:
        self.announce, self.groups, self.mirror, self.store = announce, groups, mirror, store
        self.stale_after_s, self.started_ns = stale_after_s, started_ns
        # per service: outages told so far, and the one told down but not back yet (since, dropped)
        self._redis_told, self._store_told = 0, 0
        self._redis_open: tuple[int, int] | None = None
        self._store_open: int | None = None
        self._stale: dict[tuple[str, str], int] = {}  # group -> stale since
        self.sent = 0

    def check(self, now: int | None = None) -> list[ServiceChanged]:
        """One look: the news since the last one (also handed to ``announce``)."""
        at = time.time_ns() if now is None else now
        news = [*self._redis_news(at), *self._store_news(at), *self._feed_news(at)]
        for msg in news:
            level = logging.INFO if msg.severity == "info" else logging.WARNING
            log.log(
                level,
                "%s",
                msg.detail,
                extra={"component": "daemon", "exchange": msg.exchange, "symbol": msg.symbol},
            )
            self.announce(msg)
        self.sent += len(news)
        return news

    async def run(self, interval_s: float = 1.0) -> None:
        while True:
            self.check()
            await anyio.sleep(interval_s)

    # --- each service -----------------------------------------------------------------------
    def _redis_news(self, now: int) -> Iterator[ServiceChanged]:
        """Each outage of Redis, however short (the mirror counts them), told down, then up."""
        mirror = self.mirror
        if mirror is None or mirror.redis_state == "disabled":
            return
        if mirror.outages > self._redis_told:
            self._redis_told = mirror.outages
            if self._redis_open is None:
                since = mirror.last_down_ns or now
                self._redis_open = (since, mirror.dropped)
                held = "order-path messages are held (memory, then disk)"
                detail = f"Redis unreachable since {iso_utc(since)}: {held}"
                yield _for("redis", "down", "warning", detail, since, now)
        if self._redis_open is not None and mirror.redis_state == "up":
            since, dropped = self._redis_open
            self._redis_open = None
            took, began, lost = _took(since, now), iso_utc(since), mirror.dropped - dropped
            detail = (
                f"Redis back after {took} (down since {began}); {lost} market/system messages dropped "
                "meanwhile, the order path kept and sent"
            )
            yield _for("redis", "up", "info", detail, since, now)

    def _store_news(self, now: int) -> Iterator[ServiceChanged]:
        """Each outage of PostgreSQL (the writer counts them), told down, then up."""
        store = self.store
        if store is None:
            return
        if store.outages > self._store_told:
            self._store_told = store.outages
            if self._store_open is None:
                since = store.last_down_ns or now
                self._store_open = since
                error = redact(store.last_error) or "no answer"
                detail = (
                    f"PostgreSQL unavailable since {iso_utc(since)} ({error}); the journal keeps every record"
                )
                yield _for("postgres", "down", "warning", detail, since, now)
        if self._store_open is not None and not store.down:
            since, self._store_open = self._store_open, None
            took, began = _took(since, now), iso_utc(since)
            detail = f"PostgreSQL back after {took} (down since {began}); catching up from the journal"
            yield _for("postgres", "up", "info", detail, since, now)

    def _feed_news(self, now: int) -> Iterator[ServiceChanged]:
        seen: set[tuple[str, str]] = set()
        limit = self.stale_after_s()
        for group in self.groups():
            key = group.key
            seen.add(key)
            age = group.feed_age_s(now)
            if age is None:
                stale = (now - self.started_ns) / NS > limit
                since = self.started_ns
            else:
                stale = age > limit
                since = now - int(age * NS)
            was = self._stale.get(key)
            if stale and was is None:
                self._stale[key] = since
                what = "no market data yet" if age is None else "no market data"
                detail = f"{group.name}: {what} since {iso_utc(since)} (> {limit:g} s); entries wait"
                yield _for("feed", "stale", "warning", detail, since, now, key)
            elif not stale and was is not None:
                del self._stale[key]
                detail = (
                    f"{group.name}: market data again after {_took(was, now)} (stale since {iso_utc(was)})"
                )
                yield _for("feed", "recovered", "info", detail, was, now, key)
        for key in set(self._stale) - seen:  # a group stopped by a reload: no news about it any more
            del self._stale[key]
