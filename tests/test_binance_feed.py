"""BinanceMarketFeed (adapters/binance/websocket.py) against the fake combined-stream server.

The fake replays the real 2021 capture (tests/data/binance/BINANCE.ws.1.0) compressed into about
a second and serves the captured REST depth snapshots; its fault knobs drive the reconnect,
watchdog and resync paths.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from actors.messages import BookDelta, BookSnapshot, Message, Quote
from adapters.binance.websocket import BinanceFeedStatistics, BinanceMarketFeed, _symbols_field
from tests.fake_binance_ws import FakeBinanceWs, load_frames, open_fake_binance_ws

SYMBOLS = {"NKNUSDT": "NKN/USDT", "BLZETH": "BLZ/ETH", "LRCBTC": "LRC/BTC", "RUNEEUR": "RUNE/EUR"}
FAST: dict[str, Any] = {
    "backoff_initial_s": 0.02,
    "backoff_max_s": 0.1,
    "snapshot_retry_s": 0.02,
    "heartbeat_s": 1.0,
}


def capture_counts() -> Counter[str]:
    kinds = {"aggTrade": "Trade", "bookTicker": "Quote"}
    suffixes = (f.stream.partition("@")[2] for f in load_frames())
    return Counter(kinds[s] for s in suffixes if s in kinds)


def capture_diffs() -> dict[str, list[tuple[int, int]]]:
    diffs: dict[str, list[tuple[int, int]]] = {}
    for f in load_frames():
        if f.data.get("e") == "depthUpdate":
            diffs.setdefault(SYMBOLS[f.symbol], []).append((f.data["U"], f.data["u"]))
    return diffs


class Collector:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def sink(self, msg: Message) -> None:
        self.messages.append(msg)

    def nowait(self, msg: Message) -> bool:
        self.messages.append(msg)
        return True

    def of(self, tp: type[Message], symbol: str | None = None) -> list[Any]:
        return [m for m in self.messages if type(m) is tp and (symbol is None or m.symbol == symbol)]


@asynccontextmanager
async def running(
    fake: FakeBinanceWs, symbols: dict[str, str] = SYMBOLS, **options: Any
) -> AsyncIterator[tuple[BinanceMarketFeed, Collector]]:
    feed = BinanceMarketFeed(fake.url, fake.rest_url, symbols, **{**FAST, **options})
    out = Collector()
    async with anyio.create_task_group() as tg:
        await tg.start(
            lambda task_status: feed.run(out.sink, sink_nowait=out.nowait, task_status=task_status)
        )
        yield feed, out
        tg.cancel_scope.cancel()


async def until(cond: Callable[[], bool], period: float = 0.01) -> None:
    while not cond():
        await anyio.sleep(period)


def all_synced(feed: BinanceMarketFeed) -> bool:
    books = feed.books()
    return len(books) == len(SYMBOLS) and not any(b.stale for b in books.values())


def check_chain(out: Collector, symbol: str, diffs: list[tuple[int, int]]) -> None:
    """After the last published snapshot, the forwarded deltas are exactly the later diffs, in order."""
    snaps = out.of(BookSnapshot, symbol)
    assert snaps, f"no BookSnapshot for {symbol}"
    idx = max(i for i, m in enumerate(out.messages) if m is snaps[-1])
    deltas = [
        (m.first_seq, m.last_seq) for m in out.messages[idx:] if type(m) is BookDelta and m.symbol == symbol
    ]
    assert deltas == [d for d in diffs if d[1] > snaps[-1].seq]


@pytest.mark.anyio
async def test_books_sync_and_messages_match_capture() -> None:
    with anyio.fail_after(5):
        async with open_fake_binance_ws(replay_s=0.8) as fake, running(fake) as (feed, out):
            last = capture_diffs()
            await until(lambda: all(b.last_update_id == last[s][-1][1] for s, b in feed.books().items()))
            expected = capture_counts()
            await until(lambda: len(out.of(Quote)) == expected["Quote"])
            assert all_synced(feed)
            counts = Counter(type(m).__name__ for m in out.messages)
            assert counts["Trade"] == expected["Trade"] == 2
            assert counts["Quote"] == 84
            assert counts["BookSnapshot"] == 4
            for symbol, diffs in capture_diffs().items():
                check_chain(out, symbol, diffs)
            assert fake.connect_streams[0] == [f"{v.lower()}@{s}" for v in SYMBOLS for s in feed.streams]
            stats = feed.statistics()
            assert isinstance(stats, BinanceFeedStatistics)
            assert stats.reconnects == stats.resyncs == stats.stalls == stats.rejected == 0
            assert stats.emitted == len(out.messages) and stats.last_emit_ns > 0
            assert stats.books_stale == 0 and stats.running


@pytest.mark.anyio
async def test_disconnect_storm_reconnects_and_resyncs() -> None:
    with anyio.fail_after(8):
        async with (
            open_fake_binance_ws(replay_s=0.6, drop_after=[7, 40, 3, 90]) as fake,
            running(fake) as (feed, out),
        ):
            await until(lambda: fake.connections >= 5)
            last = capture_diffs()
            await until(lambda: all(b.last_update_id == last[s][-1][1] for s, b in feed.books().items()))
            assert feed.reconnects >= 4
            assert all_synced(feed)
            assert len(out.of(BookSnapshot)) >= 4
            for symbol, diffs in last.items():
                check_chain(out, symbol, diffs)


@pytest.mark.anyio
async def test_deaf_peer_reconnects_after_silence_timeout(caplog: pytest.LogCaptureFixture) -> None:
    """No frame at all, not even a pong to our heartbeat: the connection is dead."""
    with anyio.fail_after(5):
        async with (
            open_fake_binance_ws(deaf=True) as fake,
            running(fake, silence_timeout_s=0.3) as (feed, out),
        ):
            await until(lambda: fake.connections >= 3)
            assert feed.silences >= 2 and feed.reconnects >= 2
            assert out.of(Quote) == []
    lost = [r for r in caplog.records if r.getMessage().startswith("binance stream lost")]
    assert lost and {getattr(r, "symbol", "") for r in lost} == {"NKN/USDT,BLZ/ETH,LRC/BTC,RUNE/EUR"}
    assert {getattr(r, "conn", "") for r in lost} == {"ws0"}


def test_a_connection_of_many_symbols_names_a_few_in_its_log_lines() -> None:
    many = [f"S{i}/USDT" for i in range(341)]
    assert _symbols_field(many) == ",".join(many[:8]) + " (+333 more)"
    assert _symbols_field(many[:8]) == ",".join(many[:8])


@pytest.mark.anyio
async def test_quiet_connection_that_answers_pings_stays_connected() -> None:
    """Binance pings every connection; a connection with no data but its pings is alive."""
    with anyio.fail_after(5):
        async with (
            open_fake_binance_ws(silent=True, ping_every_s=0.1) as fake,
            running(fake, silence_timeout_s=0.3) as (feed, _out),
        ):
            await anyio.sleep(1.5)  # five silence timeouts
            assert (feed.silences, feed.reconnects, fake.connections) == (0, 0, 1)
            assert fake.pongs >= 5  # Binance's pings were answered
            assert all_synced(feed)  # from their snapshots alone: nothing changed since
            assert feed.heard_ns() > 0


@pytest.mark.anyio
async def test_quiet_symbol_is_counted_and_keeps_its_connection_and_book() -> None:
    with anyio.fail_after(5):
        options: dict[str, Any] = {"silence_timeout_s": 5.0, "stall_timeout_s": 0.3}
        async with (
            open_fake_binance_ws(replay_s=2.0, stall_symbol="NKNUSDT") as fake,
            running(fake, **options) as (feed, out),
        ):
            await anyio.sleep(1.5)
            assert (fake.connections, feed.reconnects) == (1, 0)
            stats = feed.statistics()
            assert "NKN/USDT" in stats.quiet and feed.stalls >= 1  # counted, not dropped
            top = stats.books["NKN/USDT"]
            assert top.synced and top.best_bid is not None and top.best_ask is not None
            assert out.of(Quote, "NKN/USDT") == []


@pytest.mark.anyio
async def test_gap_resyncs_and_holds_deltas_while_stale() -> None:
    with anyio.fail_after(5):
        async with (
            open_fake_binance_ws(replay_s=0.8, gap=("NKNUSDT", 20)) as fake,
            running(fake) as (feed, out),
        ):
            last = capture_diffs()
            await until(lambda: all(b.last_update_id == last[s][-1][1] for s, b in feed.books().items()))
            assert feed.resyncs >= 1 and feed.reconnects == 0
            snaps = out.of(BookSnapshot, "NKN/USDT")
            assert len(snaps) == 2
            (_, hidden_u0, hidden_u1) = fake.hidden[0]
            # No delta crossed the gap: everything forwarded before the second snapshot ends before it.
            idx = out.messages.index(snaps[1])
            before = [m for m in out.messages[:idx] if type(m) is BookDelta and m.symbol == "NKN/USDT"]
            assert before and before[-1].last_seq < hidden_u0
            assert snaps[1].seq >= hidden_u1
            check_chain(out, "NKN/USDT", last["NKN/USDT"])


@pytest.mark.anyio
async def test_snapshot_older_than_first_diff_is_fetched_again() -> None:
    with anyio.fail_after(5):
        stale = {"NKNUSDT": 2}
        async with (
            open_fake_binance_ws(replay_s=0.8, stale_snapshots=stale) as fake,
            running(fake) as (feed, out),
        ):
            await until(lambda: all_synced(feed))
            assert feed.resyncs >= 2
            assert feed.books()["NKN/USDT"].stale_snapshots == 2
            assert fake.snapshot_requests.count("NKNUSDT") == 3
            assert len(out.of(BookSnapshot, "NKN/USDT")) == 1


@pytest.mark.anyio
async def test_subscribe_and_unsubscribe_live() -> None:
    with anyio.fail_after(6):
        async with (
            open_fake_binance_ws(replay_s=2.0) as fake,
            running(fake, {"NKNUSDT": "NKN/USDT"}) as (feed, out),
        ):
            await until(lambda: len(out.messages) > 0)
            await feed.subscribe({"BLZETH": "BLZ/ETH"})
            await until(lambda: bool(out.of(Quote, "BLZ/ETH")) and bool(out.of(BookSnapshot, "BLZ/ETH")))
            sub = fake.requests[0]
            assert sub["method"] == "SUBSCRIBE" and set(sub["params"]) == {
                f"blzeth@{s}" for s in feed.streams
            }
            await until(lambda: feed.shards[0].decoder.decoded.get("reply", 0) == 1)
            await feed.unsubscribe(["NKNUSDT"])
            await until(lambda: feed.shards[0].decoder.decoded.get("reply", 0) == 2)
            assert fake.requests[1]["method"] == "UNSUBSCRIBE" and fake.requests[1]["id"] > sub["id"]
            n = len(out.of(Quote, "NKN/USDT")) + len(out.of(BookDelta, "NKN/USDT"))
            await anyio.sleep(0.3)
            assert len(out.of(Quote, "NKN/USDT")) + len(out.of(BookDelta, "NKN/USDT")) == n
            assert set(feed.books()) == {"BLZ/ETH"} and feed.reconnects == 0


@pytest.mark.anyio
async def test_sharding_opens_one_connection_per_shard() -> None:
    with anyio.fail_after(5):
        async with (
            open_fake_binance_ws(replay_s=0.8) as fake,
            running(fake, max_streams_per_connection=6) as (feed, out),
        ):
            await until(lambda: all_synced(feed))
            assert len(feed.shards) == 2 and fake.connections == 2
            assert sorted(len(s) for s in fake.connect_streams) == [6, 6]
            assert len(out.of(BookSnapshot)) == 4


@pytest.mark.anyio
async def test_cancellation_stops_run_promptly() -> None:
    with anyio.fail_after(3):
        async with open_fake_binance_ws(replay_s=0.5) as fake:
            feed = BinanceMarketFeed(fake.url, fake.rest_url, SYMBOLS, **FAST)
            out = Collector()
            t0 = anyio.current_time()
            with anyio.move_on_after(0.3):
                await feed.run(out.sink)
            assert out.messages and not feed.running
            assert anyio.current_time() - t0 < 0.6


def test_unsupported_stream_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        BinanceMarketFeed("ws://x", "http://x", SYMBOLS, streams=("depth5",))
    assert json.loads('{"result": null, "id": 1}')["result"] is None
