"""The Redis stream mirror against real Redis: the shared one on 127.0.0.1:6379 and private servers
(tests/redis_server.py) that are killed, paused and restarted under it."""

from __future__ import annotations

import gc
import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import uuid4

import anyio
import pytest
import redis
from redis.asyncio import Redis

from actors.messages import (
    ANY_DECODER_JSON,
    ANY_DECODER_MSGPACK,
    STREAM_KIND,
    Bar,
    BookDelta,
    BookSnapshot,
    GroupSnapshot,
    Heartbeat,
    Message,
    OrderFilled,
    OrderIntent,
    PositionChanged,
    Quote,
    RiskApproved,
    ServiceChanged,
    Signal,
    SubmitOrder,
    Trade,
    is_order_path,
)
from daemon.config import RedisSection
from daemon.metrics import Metrics
from daemon.mirror import DROPPED, DUPLICATES, ERRORS, PUBLISHED, RedisMirror
from daemon.spill import SpillQueue, SpillRecord, parse_id, read_frames
from tests.redis_server import RedisServer, free_port

MAIN_URL = "redis://127.0.0.1:6379/0"
D = Decimal


# --- messages ------------------------------------------------------------------------------------
def stamp(i: int, symbol: str = "BTC/USDT") -> dict[str, Any]:
    ts = 1_700_000_000_000_000_000 + i
    return {"exchange": "paper", "symbol": symbol, "ts_event": ts, "ts_recv": ts}


def trade(i: int, symbol: str = "BTC/USDT") -> Trade:
    return Trade(**stamp(i, symbol), price=D("100.5") + i, size=D("0.25"), side="buy", trade_id=str(i))


def fill(i: int, symbol: str = "BTC/USDT") -> OrderFilled:
    return OrderFilled(
        **stamp(i, symbol), client_order_id=f"c{i}", venue_order_id=f"v{i}", trade_id=f"t{i}", side="buy",
        last_qty=D("0.1"), last_price=D(100 + i), cum_qty=D("0.1"), leaves_qty=D(0), fee=D("0.01"),
        fee_asset="USDT", liquidity="taker",
    )  # fmt: skip


def every_kind(i: int) -> list[Message]:
    s = stamp(i)
    intent = OrderIntent(
        **s, intent_id=f"i{i}", source="breakout", side="buy", order_type="market", quantity=D(1)
    )
    return [
        trade(i),
        Quote(**s, bid_price=D(100), bid_size=D(1), ask_price=D("100.1"), ask_size=D(2)),
        BookDelta(**s, bids=[(D(100), D(0))], first_seq=i, last_seq=i),
        BookSnapshot(**s, bids=[(D(100), D(1))], asks=[(D(101), D(1))], seq=i),
        Bar(**s, ts_open=0, interval_s=60, open=D(1), high=D(2), low=D(1), close=D(2), volume=D(9)),
        Signal(**s, strategy="breakout", side="buy", confidence=0.8, price=D(100), reason="test"),
        RiskApproved(**s, intent=intent),
        SubmitOrder(
            **s, intent_id=f"i{i}", client_order_id=f"c{i}", side="buy", order_type="market", quantity=D(1)
        ),
        fill(i),
        PositionChanged(**s, account="a", quantity=D(1), avg_price=D(100), realized_pnl=D(0), fees=D(0)),
        GroupSnapshot(
            **s, account="a", quantity=D(1), avg_price=D(100), strategy="breakout", strategy_state=b"\x90"
        ),
        Heartbeat(**s, actor="risk", seq=i),
        ServiceChanged(**s, service="feed", state="stale", severity="warning", detail="stale"),
    ]


# --- fixtures and helpers ------------------------------------------------------------------------
@pytest.fixture
def prefix() -> Iterator[str]:
    name = f"t{uuid4().hex[:8]}"
    yield name
    client = redis.Redis.from_url(MAIN_URL)
    keys = list(client.scan_iter(match=f"{name}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
async def main_redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(MAIN_URL)
    yield client
    await client.aclose()


def config(prefix: str, url: str = MAIN_URL, **kw: Any) -> RedisSection:
    opts: dict[str, Any] = {"flush_interval_ms": 2, "connect_timeout_s": 0.3, "retry_interval_s": 0.05}
    return RedisSection(url=url, prefix=prefix, **{**opts, **kw})


def key(prefix: str, msg: Message) -> str:
    return f"{prefix}:{msg.exchange}:{msg.symbol}:{STREAM_KIND[type(msg)]}"


@asynccontextmanager
async def running(mirror: RedisMirror) -> AsyncIterator[None]:
    async with anyio.create_task_group() as tg:
        await tg.start(mirror.run)
        yield
        tg.cancel_scope.cancel()


async def wait_until(pred: Callable[[], bool], limit_s: float = 10.0) -> None:
    with anyio.fail_after(limit_s):
        while not pred():
            await anyio.sleep(0.005)


async def stream(
    client: Redis, name: str, decoder: Any = ANY_DECODER_MSGPACK
) -> list[tuple[tuple[int, int], Any]]:
    """(id, decoded message) of every entry, checking ``type`` against the decoded class."""
    out = []
    for rid, fields in await client.xrange(name):
        msg = decoder.decode(fields[b"data"])
        assert fields[b"type"].decode() == type(msg).__name__
        out.append((parse_id(rid.decode()), msg))
    return out


def by_key(prefix: str, msgs: list[Message]) -> dict[str, list[Message]]:
    out: dict[str, list[Message]] = {}
    for m in msgs:
        out.setdefault(key(prefix, m), []).append(m)
    return out


def strictly_increasing(ids: list[tuple[int, int]]) -> bool:
    return all(a < b for a, b in itertools.pairwise(ids))


# --- the happy path ------------------------------------------------------------------------------
@pytest.mark.anyio
@pytest.mark.parametrize("encoding", ["msgpack", "json"])
async def test_every_kind_lands_in_its_stream_in_order(
    prefix: str, tmp_path: Path, main_redis: Redis, encoding: str
) -> None:
    metrics = Metrics()
    mirror = RedisMirror(config(prefix, encoding=encoding), tmp_path, metrics)
    msgs = [m for i in range(3) for m in every_kind(i)]
    with anyio.fail_after(10):
        async with running(mirror):
            for m in msgs:
                mirror.offer(m)
            await wait_until(lambda: mirror.pending() == 0)
            assert mirror.redis_state == "up"
        decoder = ANY_DECODER_JSON if encoding == "json" else ANY_DECODER_MSGPACK
        expected = by_key(prefix, msgs)
        assert {k.rsplit(":", 1)[1] for k in expected} == set(STREAM_KIND.values())
        keys = [k.decode() async for k in main_redis.scan_iter(match=f"{prefix}:*")]
        assert sorted(keys) == sorted(expected)
        for name, want in expected.items():
            got = await stream(main_redis, name, decoder)
            assert [m for _, m in got] == want
            assert strictly_increasing([rid for rid, _ in got])
    assert metrics.get(PUBLISHED, {"kind": "book"}) == 6
    assert metrics.total(PUBLISHED) == len(msgs) == mirror.statistics().published
    assert metrics.total(DROPPED) == metrics.total(ERRORS) == 0
    assert "tradingd_mirror_pending 0.0" in metrics.render()
    assert "tradingd_redis_up 1.0" in metrics.render()


@pytest.mark.anyio
async def test_maxlen_trims_approximately(prefix: str, tmp_path: Path, main_redis: Redis) -> None:
    mirror = RedisMirror(config(prefix, maxlen=10, batch_size=50), tmp_path, Metrics())
    with anyio.fail_after(10):
        async with running(mirror):
            for i in range(1000):
                mirror.offer(trade(i))
            await wait_until(lambda: mirror.pending() == 0)
        name = key(prefix, trade(0))
        assert 10 <= await main_redis.xlen(name) < 300
        (_, last), *_ = await main_redis.xrevrange(name, count=1)
        assert ANY_DECODER_MSGPACK.decode(last[b"data"]) == trade(999)


@pytest.mark.anyio
async def test_a_consumer_group_reads_the_records(prefix: str, tmp_path: Path, main_redis: Redis) -> None:
    name = key(prefix, fill(0))
    await main_redis.xgroup_create(name, "audit", id="$", mkstream=True)
    mirror = RedisMirror(config(prefix), tmp_path, Metrics())
    with anyio.fail_after(10):
        async with running(mirror):
            for i in range(20):
                mirror.offer(fill(i))
            await wait_until(lambda: mirror.pending() == 0)
        ((_, entries),) = await main_redis.xreadgroup("audit", "c1", {name: ">"}, count=100, block=1000)
        assert [ANY_DECODER_MSGPACK.decode(f[b"data"]) for _, f in entries] == [fill(i) for i in range(20)]
        assert await main_redis.xack(name, "audit", *[rid for rid, _ in entries]) == 20
        assert (await main_redis.xpending(name, "audit"))["pending"] == 0


@pytest.mark.anyio
async def test_restart_continues_above_the_stream_top(prefix: str, tmp_path: Path, main_redis: Redis) -> None:
    first = RedisMirror(config(prefix), tmp_path / "a", Metrics())
    with anyio.fail_after(10):
        async with running(first):
            for i in range(30):
                first.offer(fill(i))
                first.offer(trade(i))
            await wait_until(lambda: first.pending() == 0)
        # The next process' clock is an hour behind what is in the stream (skew, a stale host):
        future = int(time.time() * 1000) + 3_600_000
        await main_redis.xadd(key(prefix, fill(0)), {"type": "x", "data": b""}, id=f"{future}-5")
        metrics = Metrics()
        second = RedisMirror(config(prefix), tmp_path / "b", metrics)
        async with running(second):
            for i in range(30, 60):
                second.offer(fill(i))
                second.offer(trade(i))
            await wait_until(lambda: second.pending() == 0)
        fills = [(rid, m) for rid, m in (await main_redis.xrange(key(prefix, fill(0)))) if m[b"type"] != b"x"]
        assert [ANY_DECODER_MSGPACK.decode(m[b"data"]) for _, m in fills] == [fill(i) for i in range(60)]
        ids = [parse_id(rid.decode()) for rid, _ in fills]
        assert strictly_increasing(ids[:30]) and min(ids[30:]) > (future, 5) and strictly_increasing(ids[30:])
        trades = await stream(main_redis, key(prefix, trade(0)))
        assert [m for _, m in trades] == [trade(i) for i in range(60)]
        assert strictly_increasing([rid for rid, _ in trades])
        assert metrics.total(ERRORS) == metrics.total(DUPLICATES) == 0


# --- offer() never blocks ----------------------------------------------------------------------
def test_offer_is_cheap_and_drops_market_data_when_the_queue_is_full(tmp_path: Path) -> None:
    metrics = Metrics()
    mirror = RedisMirror(config("tq", queue_size=5), tmp_path, metrics)  # never run: nothing drains
    for i in range(8):
        mirror.offer(trade(i))
        mirror.offer(fill(i))
    assert metrics.get(DROPPED, {"kind": "trade", "reason": "queue_full"}) == 3
    assert mirror.pending() == 5 + 8  # the order path is never dropped
    # A bound on the code's cost (about 2 µs here; make bench measures it), not on the machine's:
    # the best of five rounds with the collector paused, so a GC pass over a long test session's
    # heap or a noisy neighbour does not fail it.
    rounds = []
    for r in range(5):
        msgs = [fill(r * 4000 + i, symbol=f"S{i % 4}") for i in range(4000)]
        gc.disable()
        try:
            t0 = time.perf_counter()
            for m in msgs:
                mirror.offer(m)
            rounds.append((time.perf_counter() - t0) / len(msgs))
        finally:
            gc.enable()
    per_offer = min(rounds)
    assert per_offer < 20e-6, f"offer() took {per_offer * 1e6:.1f} µs"


def test_disabled_mirror_takes_nothing(tmp_path: Path) -> None:
    mirror = RedisMirror(config("td", enabled=False), tmp_path, Metrics())
    mirror.offer(fill(0))
    assert mirror.redis_state == "disabled" and mirror.pending() == 0


# --- outages ----------------------------------------------------------------------------------
class Producer:
    """Offers a fill per symbol and a trade every millisecond; records the slowest offer()."""

    def __init__(self, mirror: RedisMirror) -> None:
        self.mirror, self.offered, self.slowest, self.running = mirror, [], 0.0, True
        self.offered: list[Message] = []

    async def run(self) -> None:
        i = 0
        while self.running:
            for m in (fill(i, "BTC/USDT"), fill(i, "ETH/USDT"), trade(i)):
                t0 = time.perf_counter()
                self.mirror.offer(m)
                self.slowest = max(self.slowest, time.perf_counter() - t0)
                self.offered.append(m)
            i += 1
            await anyio.sleep(0.001)

    def order_path(self, prefix: str) -> dict[str, list[Message]]:
        return by_key(prefix, [m for m in self.offered if is_order_path(m)])


async def outage(server: RedisServer, mode: str, mirror: RedisMirror, producer: Producer) -> int:
    """Take Redis away for a while under load and bring it back; returns how many offers preceded it."""
    await anyio.sleep(0.15)
    if mode == "pause":
        server.pause()
    else:
        await anyio.to_thread.run_sync(server.stop)
    gone = len(producer.offered)  # everything offered from here on was offered while Redis was gone
    await wait_until(lambda: mirror.redis_state == "down", 5)
    await anyio.sleep(0.3)
    if mode == "pause":
        server.resume()
    else:
        await anyio.to_thread.run_sync(server.start)
    await wait_until(lambda: mirror.redis_state == "up", 5)
    await anyio.sleep(0.1)
    producer.running = False
    return gone


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["kill_persistent", "pause", "kill_fresh"])
async def test_order_path_survives_redis_outages_exactly_once(tmp_path: Path, mode: str) -> None:
    prefix, metrics = f"t{uuid4().hex[:8]}", Metrics()
    with (
        anyio.fail_after(30),
        RedisServer(tmp_path / "redis", persistent=mode == "kill_persistent") as server,
    ):
        mirror = RedisMirror(config(prefix, server.url, order_path_memory=50), tmp_path / "state", metrics)
        producer = Producer(mirror)
        async with running(mirror):
            async with anyio.create_task_group() as tg:
                tg.start_soon(producer.run)
                gone = await outage(server, mode.split("_")[0], mirror, producer)
            await wait_until(lambda: mirror.pending() == 0, 10)
        client = Redis.from_url(server.url)
        try:
            for name, want in producer.order_path(prefix).items():
                got = await stream(client, name)
                assert strictly_increasing([rid for rid, _ in got])
                if mode == "kill_fresh":  # what Redis had before it died is gone; the rest arrives once
                    assert [m for _, m in got] == want[len(want) - len(got) :]
                    assert len(got) >= len([m for m in producer.offered[gone:] if key(prefix, m) == name])
                else:
                    assert [m for _, m in got] == want
        finally:
            await client.aclose()
    assert metrics.get(DROPPED, {"kind": "trade", "reason": "redis_down"}) > 0
    assert metrics.get(ERRORS, {"error": "timeout" if mode == "pause" else "connection"}) > 0
    assert metrics.get("tradingd_mirror_spilled_total") > 0  # the outage outgrew order_path_memory
    assert producer.slowest < 0.02, f"offer() blocked for {producer.slowest:.3f}s"
    if mode == "pause":  # the batch sent to the frozen server ran when it woke: re-sent, refused, counted
        assert metrics.get(DUPLICATES) >= 1


@pytest.mark.anyio
async def test_a_batch_in_flight_at_shutdown_is_kept_and_not_written_twice(tmp_path: Path) -> None:
    prefix, metrics = f"t{uuid4().hex[:8]}", Metrics()
    with anyio.fail_after(20), RedisServer(tmp_path / "redis") as server:
        first = RedisMirror(config(prefix, server.url, connect_timeout_s=5.0), tmp_path / "state", Metrics())
        async with running(first):
            first.offer(fill(0))  # the stream's top is known from here on: the next batch goes straight out
            await wait_until(lambda: first.pending() == 0)
            server.pause()
            for i in range(1, 11):
                first.offer(fill(i))
            await anyio.sleep(0.2)  # the MULTI..EXEC sits in the frozen server's socket buffer
            assert first.pending() == 10
        assert len(spilled(tmp_path / "state")) == 10  # kept on disk by the shutdown
        server.resume()  # ...and the frozen server runs the transaction after all
        second = RedisMirror(config(prefix, server.url), tmp_path / "state", metrics)
        async with running(second):
            await wait_until(lambda: second.pending() == 0)
        client = Redis.from_url(server.url)
        try:
            got = await stream(client, key(prefix, fill(0)))
        finally:
            await client.aclose()
    assert [m for _, m in got] == [fill(i) for i in range(11)]
    assert metrics.get(DUPLICATES) == 10 and metrics.total(PUBLISHED) == 0


# --- the spill --------------------------------------------------------------------------------
def spilled(state_dir: Path) -> list[SpillRecord]:
    q = SpillQueue(state_dir / "mirror-spill")
    out: list[SpillRecord] = []
    while (head := q.peek_head()) is not None:
        q.mark_loaded(head[0])
        out += head[1]
    return out


@pytest.mark.anyio
async def test_spill_survives_a_restart_and_is_sent_once_with_the_same_ids(
    prefix: str, tmp_path: Path, main_redis: Redis
) -> None:
    dead_url = f"redis://127.0.0.1:{free_port()}/0"
    metrics = Metrics()
    first = RedisMirror(config(prefix, dead_url, order_path_memory=4), tmp_path, metrics)
    msgs = [m for i in range(15) for m in (fill(i, "BTC/USDT"), fill(i, "ETH/USDT"), trade(i))]
    with anyio.fail_after(15):
        async with running(first):
            await wait_until(lambda: first.redis_state == "down")
            for m in msgs:
                first.offer(m)
            await wait_until(lambda: first.statistics().spilled == 30 - 4 and first.pending() == 30)
            stats = first.statistics()
            assert not stats.connected and stats.published == 0 and stats.lag_s >= 0
        assert metrics.get("tradingd_mirror_spilled_total") == 26
        assert metrics.get(DROPPED, {"kind": "trade", "reason": "redis_down"}) == 15
        records = spilled(tmp_path)
        assert len(records) == 30  # the 4 in memory were written in front at shutdown
        want = by_key(prefix, [m for m in msgs if is_order_path(m)])
        on_disk = {k: [r for r in records if r.key == k] for k in want}
        assert {k: [ANY_DECODER_MSGPACK.decode(r.data) for r in v] for k, v in on_disk.items()} == want
        # As if the previous process' last pipeline reached Redis before it died:
        btc = key(prefix, fill(0, "BTC/USDT"))
        for r in on_disk[btc][:3]:
            await main_redis.xadd(btc, {"type": r.type, "data": r.data}, id=r.id)

        metrics2 = Metrics()
        second = RedisMirror(config(prefix, order_path_memory=4), tmp_path, metrics2)
        assert second.pending() == 30
        async with running(second):
            await wait_until(lambda: second.pending() == 0)
            await wait_until(lambda: not list((tmp_path / "mirror-spill").glob("*.seg")))
        for name, recs in on_disk.items():
            got = await stream(main_redis, name)
            assert [m for _, m in got] == want[name]
            assert [rid for rid, _ in got] == [parse_id(r.id) for r in recs]  # the original ids
    assert metrics2.get(DUPLICATES) == 3
    assert metrics2.total(PUBLISHED) == 27


# --- hostile answers --------------------------------------------------------------------------
@pytest.mark.anyio
async def test_wrongtype_keys_are_counted_and_dead_lettered_while_other_streams_flow(
    prefix: str, tmp_path: Path, main_redis: Redis
) -> None:
    metrics = Metrics()
    mirror = RedisMirror(config(prefix), tmp_path, metrics, max_attempts=3)
    await main_redis.set(key(prefix, trade(0, "BAD")), "not a stream")
    await main_redis.set(key(prefix, fill(0, "BAD")), "not a stream")
    msgs = [m for i in range(10) for s in ("BAD", "GOOD") for m in (trade(i, s), fill(i, s))]
    with anyio.fail_after(10):
        async with running(mirror):
            for m in msgs:
                mirror.offer(m)
            await wait_until(lambda: mirror.pending() == 0)
            await wait_until(lambda: (tmp_path / "mirror-dead-letter.frames").exists())
            mirror.offer(fill(10, "GOOD"))  # still alive
            await wait_until(lambda: mirror.pending() == 0)
        for m in (trade(0, "GOOD"), fill(0, "GOOD")):
            got = await stream(main_redis, key(prefix, m))
            assert [x for _, x in got] == [
                x for x in [*msgs, fill(10, "GOOD")] if key(prefix, x) == key(prefix, m)
            ]
    assert metrics.get(ERRORS, {"error": "wrongtype"}) >= 10 + 10 * 3
    assert metrics.get(DROPPED, {"kind": "trade", "reason": "refused"}) == 10
    assert metrics.get("tradingd_mirror_dead_letters_total", {"kind": "fill"}) == 10
    dead, damage = read_frames(tmp_path / "mirror-dead-letter.frames")
    assert damage is None
    assert [ANY_DECODER_MSGPACK.decode(r.data) for r in dead] == [fill(i, "BAD") for i in range(10)]
    assert strictly_increasing([parse_id(r.id) for r in dead])


@pytest.mark.anyio
async def test_out_of_memory_holds_the_order_path_until_redis_has_room(tmp_path: Path) -> None:
    prefix, metrics = f"t{uuid4().hex[:8]}", Metrics()
    with anyio.fail_after(15), RedisServer(tmp_path / "redis") as server:
        client = Redis.from_url(server.url)
        try:
            await client.config_set("maxmemory", 1)
            mirror = RedisMirror(config(prefix, server.url), tmp_path / "state", metrics, max_attempts=2)
            async with running(mirror):
                for i in range(20):
                    mirror.offer(fill(i))
                    mirror.offer(trade(i))
                await wait_until(lambda: metrics.get(ERRORS, {"error": "oom"}) >= 3)
                assert (
                    mirror.pending() == 20 and mirror.redis_state == "up"
                )  # not dead-lettered: not their fault
                await client.config_set("maxmemory", 0)
                await wait_until(lambda: mirror.pending() == 0)
            got = await stream(client, key(prefix, fill(0)))
            assert [m for _, m in got] == [fill(i) for i in range(20)]
        finally:
            await client.aclose()
    assert metrics.get(DROPPED, {"kind": "trade", "reason": "refused"}) == 20
    assert metrics.total("tradingd_mirror_dead_letters_total") == 0


def test_daemon_wide_messages_go_to_a_key_a_consumer_can_type() -> None:
    from actors.messages import ConfigReloaded, HaltChanged
    from actors.messages import stamp as message_stamp
    from daemon.mirror import stream_key

    reload = ConfigReloaded(ok=True, **message_stamp("*", "*", 1))
    halt = HaltChanged(scope="daemon", halted=True, **message_stamp("*", "*", 1))
    assert stream_key("td", reload) == "td:daemon:all:system"
    assert stream_key("td", halt) == "td:daemon:all:risk"
    assert "*" not in stream_key("td", reload)
