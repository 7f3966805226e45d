"""Redis killed mid-run under the whole daemon: trading goes on, and after Redis returns every
order-path record is in its stream exactly once (a private, persistent redis-server on a free port)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import anyio
import pytest
import redis.asyncio as aioredis

from actors.messages import ANY_DECODER_MSGPACK, OrderFilled, OrderSubmitted, ServiceChanged
from daemon.app import Daemon
from daemon.config import parse_config
from daemon.metrics import Metrics
from tests.helpers import make_config, unique_prefix
from tests.redis_server import RedisServer

pytestmark = pytest.mark.anyio


async def _until(predicate, timeout: float) -> None:  # type: ignore[no-untyped-def]
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.02)


def _fills(daemon: Daemon) -> int:
    group = daemon.supervisor.groups[("paper", "UNITTEST/BTC")]
    return group.order.counts["filled"] + group.order.counts["partially_filled"]


async def test_trading_continues_through_redis_kill_and_order_path_arrives_once(tmp_path: Path) -> None:
    prefix = unique_prefix()
    with RedisServer(tmp_path / "redis", persistent=True) as server:
        text = make_config(
            tmp_path / "state", prefix=prefix, redis_url=server.url, speed=60_000.0, trades_group=False
        )
        metrics = Metrics()
        daemon = Daemon(parse_config(text), tmp_path / "config.toml", metrics)
        async with anyio.create_task_group() as tg:
            tg.start_soon(daemon.run)
            await _until(
                lambda: ("paper", "UNITTEST/BTC") in daemon.supervisor.groups and _fills(daemon) >= 2, 30
            )
            server.stop()  # SIGKILL; the AOF keeps what Redis acknowledged
            down_at = _fills(daemon)
            await _until(lambda: _fills(daemon) >= down_at + 4, 30)  # trading goes on without Redis
            assert daemon.mirror is not None
            await _until(lambda: daemon.mirror is not None and daemon.mirror.redis_state == "down", 10)
            await anyio.to_thread.run_sync(server.start)
            group = daemon.supervisor.groups[("paper", "UNITTEST/BTC")]
            await _until(lambda: group.feed.status == "stopped", 60)  # the replay ran to its end
            await _until(lambda: daemon.mirror is not None and daemon.mirror.statistics().pending == 0, 30)
            expected_fills = _fills(daemon)
            expected_orders = group.order.counts["submitted"]
            tg.cancel_scope.cancel()

        assert metrics.total("tradingd_mirror_dropped_total") > 0  # market data dropped while down, counted
        r = aioredis.Redis.from_url(server.url)
        try:
            fills = [
                ANY_DECODER_MSGPACK.decode(f[b"data"])
                for _, f in await r.xrange(f"{prefix}:paper:UNITTEST/BTC:fill")
            ]
            orders = [
                ANY_DECODER_MSGPACK.decode(f[b"data"])
                for _, f in await r.xrange(f"{prefix}:paper:UNITTEST/BTC:order")
            ]
            news = [
                ANY_DECODER_MSGPACK.decode(f[b"data"])
                for _, f in await r.xrange(f"{prefix}:daemon:all:event")
            ]
        finally:
            await r.aclose()
    trade_ids = Counter(f.trade_id for f in fills if isinstance(f, OrderFilled))
    assert trade_ids and max(trade_ids.values()) == 1, "a fill record was written twice"
    assert sum(trade_ids.values()) == expected_fills, "a fill record is missing"
    # the operator is told: started, Redis down (kept while Redis was away), Redis back, once each
    told = [(n.service, n.state) for n in news if isinstance(n, ServiceChanged)]
    assert told == [("daemon", "started"), ("redis", "down"), ("redis", "up")], news
    assert "Redis back after" in news[2].detail and "market/system messages dropped" in news[2].detail
    submitted = Counter(o.client_order_id for o in orders if isinstance(o, OrderSubmitted))
    assert max(submitted.values()) == 1
    assert sum(submitted.values()) == expected_orders
