"""The daemon's news for its operator: each transition of Redis, PostgreSQL and a group's feed is
told once (ServiceChanged), rounded and dated for a person, and ``tradingd notify`` files it.

The daemon's parts are stood in for by plain objects with the attributes the watcher reads (the
real mirror and writer are exercised in tests/test_redis_outage.py and tests/test_store.py)."""

from __future__ import annotations

from typing import Literal

import pytest

from actors.messages import KEPT_KINDS, ORDER_PATH_KINDS, STREAM_KIND, ServiceChanged, is_order_path
from daemon.mirror import stream_key
from daemon.notify.events import message_alert
from daemon.service_watch import ServiceWatch, daemon_started, daemon_stopping

NS = 1_000_000_000
T0 = 1_765_000_000 * NS  # 2025-12-06T05:46:40Z


class Mirror:
    def __init__(self) -> None:
        self.redis_state: Literal["up", "down", "disabled"] = "up"
        self.dropped = self.outages = self.last_down_ns = 0

    def go_down(self, at: int) -> None:
        self.redis_state, self.outages, self.last_down_ns = "down", self.outages + 1, at


class Store:
    def __init__(self) -> None:
        self.down = False
        self.last_error = ""
        self.outages = self.last_down_ns = 0

    def go_down(self, at: int, error: str) -> None:
        self.down, self.last_error, self.outages, self.last_down_ns = True, error, self.outages + 1, at


class Group:
    def __init__(self, name: str) -> None:
        self.name = name
        self.key = tuple(name.split(":", 1))
        self.last_ns = 0

    def feed_age_s(self, now_ns: int) -> float | None:
        return None if self.last_ns == 0 else (now_ns - self.last_ns) / NS


def _told(news: list[ServiceChanged]) -> list[tuple[str, str]]:
    return [(n.service, n.state) for n in news]


def test_redis_outage_is_told_once_down_and_once_back_with_what_was_dropped() -> None:
    mirror, sent = Mirror(), []
    watch = ServiceWatch(sent.append, lambda: [], mirror, None, lambda: 60.0, T0)
    assert watch.check(T0) == []  # up at the first look is no news
    mirror.go_down(T0 + NS)
    mirror.dropped = 10
    assert _told(watch.check(T0 + 2 * NS)) == [("redis", "down")]
    mirror.dropped = 500
    assert watch.check(T0 + 3 * NS) == []  # still down: nothing new
    mirror.redis_state = "up"
    (back,) = watch.check(T0 + 91 * NS)
    assert (back.service, back.state, back.severity) == ("redis", "up", "info")
    assert back.detail == (
        "Redis back after 90 s (down since 2025-12-06T05:46:41Z); 490 market/system messages dropped "
        "meanwhile, the order path kept and sent"
    )
    assert back.since_ns == T0 + NS and (back.exchange, back.symbol) == ("*", "*")
    assert _told(sent) == [("redis", "down"), ("redis", "up")]


def test_a_daemon_starting_while_redis_is_down_says_so() -> None:
    mirror = Mirror()
    mirror.redis_state = "down"  # not tried yet: not news
    watch = ServiceWatch(lambda m: None, lambda: [], mirror, None, lambda: 60.0, T0)
    assert watch.check(T0) == []
    mirror.go_down(T0)  # the first attempt failed
    assert _told(watch.check(T0)) == [("redis", "down")]
    mirror.redis_state = "disabled"  # [redis] enabled = false: nothing to tell
    assert ServiceWatch(lambda m: None, lambda: [], mirror, None, lambda: 60.0, T0).check(T0) == []


def test_postgres_outage_names_the_error_without_the_password() -> None:
    store = Store()
    watch = ServiceWatch(lambda m: None, lambda: [], None, store, lambda: 60.0, T0)
    assert watch.check(T0) == []
    store.go_down(T0 + NS, "ConnectionRefusedError: postgresql://bob:hunter2@db/test refused")
    (down,) = watch.check(T0 + 2 * NS)
    assert down.severity == "warning" and "hunter2" not in down.detail
    assert down.detail.startswith("PostgreSQL unavailable since 2025-12-06T05:46:41Z (ConnectionRefusedError")
    store.down = False
    (up,) = watch.check(T0 + 3 * 60 * NS + NS)
    assert up.detail.startswith("PostgreSQL back after 3.0 min (down since 2025-12-06T05:46:41Z)")


def test_an_outage_shorter_than_a_look_is_told_down_and_up() -> None:
    mirror, store = Mirror(), Store()
    watch = ServiceWatch(lambda m: None, lambda: [], mirror, store, lambda: 60.0, T0)
    assert watch.check(T0) == []
    mirror.go_down(T0 + NS)
    mirror.redis_state = "up"  # back before the next look
    store.go_down(T0 + NS, "TimeoutError: ")
    store.down = False
    assert _told(watch.check(T0 + 2 * NS)) == [
        ("redis", "down"),
        ("redis", "up"),
        ("postgres", "down"),
        ("postgres", "up"),
    ]
    assert watch.check(T0 + 3 * NS) == []


def test_a_stale_feed_and_its_recovery_per_group() -> None:
    a, b = Group("binance:BTC/USDT"), Group("binance:ETH/USDT")
    groups = [a, b]
    watch = ServiceWatch(lambda m: None, lambda: groups, None, None, lambda: 30.0, T0)
    a.last_ns = b.last_ns = T0
    assert watch.check(T0 + 10 * NS) == []
    b.last_ns = T0 + 40 * NS
    (stale,) = watch.check(T0 + 45 * NS)  # a: 45 s without data; b is current
    assert (stale.service, stale.state, stale.exchange, stale.symbol) == (
        "feed",
        "stale",
        "binance",
        "BTC/USDT",
    )
    assert (
        stale.detail == "binance:BTC/USDT: no market data since 2025-12-06T05:46:40Z (> 30 s); entries wait"
    )
    assert watch.check(T0 + 50 * NS) == []
    a.last_ns = b.last_ns = T0 + 100 * NS
    (back,) = watch.check(T0 + 101 * NS)
    assert back.state == "recovered" and back.since_ns == T0
    assert back.detail == "binance:BTC/USDT: market data again after 101 s (stale since 2025-12-06T05:46:40Z)"


def test_a_feed_that_never_sent_anything_is_stale_after_the_limit_from_the_start() -> None:
    g = Group("paper:UNITTEST/BTC")
    watch = ServiceWatch(lambda m: None, lambda: [g], None, None, lambda: 30.0, T0)
    assert watch.check(T0 + 29 * NS) == []
    (stale,) = watch.check(T0 + 31 * NS)
    assert "no market data yet since 2025-12-06T05:46:40Z" in stale.detail


def test_a_group_removed_by_a_reload_is_forgotten() -> None:
    g = Group("paper:UNITTEST/BTC")
    groups = [g]
    watch = ServiceWatch(lambda m: None, lambda: groups, None, None, lambda: 30.0, T0)
    g.last_ns = T0
    assert _told(watch.check(T0 + 60 * NS)) == [("feed", "stale")]
    groups.clear()
    assert watch.check(T0 + 61 * NS) == []
    groups.append(g)  # back, still stale: told again (a new group as far as the operator knows)
    assert _told(watch.check(T0 + 62 * NS)) == [("feed", "stale")]


def test_news_is_kept_by_the_mirror_and_not_journaled() -> None:
    msg = daemon_stopping("received SIGTERM", T0)
    assert STREAM_KIND[ServiceChanged] == "event" and "event" in KEPT_KINDS - ORDER_PATH_KINDS
    assert not is_order_path(msg)
    assert stream_key("tradingd", msg) == "tradingd:daemon:all:event"
    started = daemon_started(
        ["paper:UNITTEST/BTC", "paper:XRP/ETH"], "2 groups restored from the journal", T0
    )
    assert started.detail == (
        "tradingd started: 2 groups (paper:UNITTEST/BTC, paper:XRP/ETH); 2 groups restored from the journal"
    )


@pytest.mark.parametrize(
    ("service", "state", "kind"),
    [
        ("redis", "down", "outage"),
        ("postgres", "up", "outage"),
        ("feed", "stale", "feed"),
        ("balance", "drift", "reconcile"),
        ("daemon", "started", "daemon"),
    ],
)
def test_notify_files_each_kind_of_news_under_its_alert_kind(service: str, state: str, kind: str) -> None:
    msg = ServiceChanged(
        service=service,  # type: ignore[arg-type]
        state=state,  # type: ignore[arg-type]
        severity="warning",
        detail=f"{service} {state} at 2025-12-06T05:46:40Z",
        exchange="binance" if service == "feed" else "*",
        symbol="BTC/USDT" if service == "feed" else "*",
        ts_event=T0,
        ts_recv=T0,
    )
    alert = message_alert(msg)
    assert alert is not None
    assert (alert.kind, alert.severity, alert.text) == (kind, "warning", msg.detail)
    assert alert.ts_ms == T0 // 1_000_000
    assert alert.where == ("binance:BTC/USDT" if service == "feed" else "")
