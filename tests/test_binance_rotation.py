"""The 24 h connection limit: make-before-break rotation keeps books synced and trades exact.

The fake runs in live mode (one timeline; a connection only sees what happens after it
connected) and closes every connection after ``max_connection_s`` like Binance does after
24 hours.  With rotation the feed opens a successor before that and hands over without a
gap: no reconnect, no resync, every aggregate trade exactly once and in order, every diff
applied, the book equal to the venue's.  Without rotation the same server costs a reconnect,
a resync and lost trades, which is what the rotation is for.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from actors.messages import BookDelta, BookSnapshot, Trade
from adapters.binance.websocket import BinanceMarketFeed
from tests.fake_binance_ws import FakeBinanceWs, open_fake_binance_ws
from tests.test_binance_feed import FAST, Collector

SYMBOLS = {"NKNUSDT": "NKN/USDT", "LRCBTC": "LRC/BTC"}
REPLAY_S = 3.0
LIFETIME_S = 1.0
TRADE_EVERY_S = 0.01


@asynccontextmanager
async def running(fake: FakeBinanceWs, **options: Any) -> AsyncIterator[tuple[BinanceMarketFeed, Collector]]:
    feed = BinanceMarketFeed(fake.url, fake.rest_url, SYMBOLS, **{**FAST, **options})
    out = Collector()
    async with anyio.create_task_group() as tg:
        await tg.start(
            lambda task_status: feed.run(out.sink, sink_nowait=out.nowait, task_status=task_status)
        )
        yield feed, out
        tg.cancel_scope.cancel()


def expected_trade_ids(fake: FakeBinanceWs) -> list[int]:
    return [f.data["a"] for f in fake.timeline() if f.stream == "nknusdt@aggTrade"]


@pytest.mark.anyio
async def test_rotation_hands_over_without_a_gap() -> None:
    with anyio.fail_after(20):
        async with open_fake_binance_ws(
            live=True, replay_s=REPLAY_S, max_connection_s=LIFETIME_S, trades_every_s=TRADE_EVERY_S
        ) as fake:
            async with running(fake, rotate_after_s=0.6, handover_timeout_s=0.3) as (feed, out):
                await anyio.sleep(REPLAY_S + 0.2)
                stats = feed.statistics()
                book = feed.books()["NKN/USDT"]
                venue = fake.live_book("NKNUSDT")
            assert stats.rotations >= 3, stats
            assert stats.reconnects == 0 and stats.resyncs == 0, stats
            assert fake.closed_by_limit == 0  # every connection was left before the venue cut it
            ids = [int(t.trade_id) for t in out.of(Trade, "NKN/USDT")]
            assert ids == sorted(set(ids)), "a trade came twice or out of order"
            expected = expected_trade_ids(fake)
            assert ids == expected[expected.index(ids[0]) :], "a trade was lost in a handover"
            assert len(ids) >= len(expected) - 5  # only the first few before the first connect
            # the book: every diff since its snapshot applied in sequence, equal to the venue's
            deltas = out.of(BookDelta, "NKN/USDT")
            for prev, nxt in itertools.pairwise(deltas):
                assert nxt.first_seq == prev.last_seq + 1
            assert len(out.of(BookSnapshot, "NKN/USDT")) == 1
            assert not book.stale and book.last_update_id == venue.lid
            top = book.as_snapshot(0, 0, 5)
            assert top is not None
            assert [float(p) for p, _ in top.bids] == [
                float(p) for p, _ in sorted(venue.sides["bids"].items(), reverse=True)[:5]
            ]


@pytest.mark.anyio
async def test_without_rotation_the_cut_costs_a_reconnect_and_trades() -> None:
    with anyio.fail_after(20):
        async with open_fake_binance_ws(
            live=True, replay_s=REPLAY_S, max_connection_s=LIFETIME_S, trades_every_s=TRADE_EVERY_S
        ) as fake:
            async with running(fake, rotate_after_s=None) as (feed, out):
                await anyio.sleep(REPLAY_S + 0.2)
                stats = feed.statistics()
            assert stats.reconnects >= 2 and stats.rotations == 0
            ids = [int(t.trade_id) for t in out.of(Trade, "NKN/USDT")]
            expected = expected_trade_ids(fake)
            assert len(ids) < len(expected[expected.index(ids[0]) :])  # the reconnect gaps lost trades
            assert len(out.of(BookSnapshot, "NKN/USDT")) >= 2  # each new connection resynced the book


@pytest.mark.anyio
async def test_a_successor_that_never_catches_up_is_forced_and_resyncs() -> None:
    with anyio.fail_after(20):
        async with open_fake_binance_ws(live=True, replay_s=REPLAY_S, trades_every_s=TRADE_EVERY_S) as fake:
            async with running(fake, rotate_after_s=0.8, handover_timeout_s=0.0) as (feed, out):
                await anyio.sleep(1.6)
                stats = feed.statistics()
            assert stats.rotations >= 1 and stats.forced_rotations == stats.rotations
            assert stats.reconnects == 0
            ids = [int(t.trade_id) for t in out.of(Trade, "NKN/USDT")]
            assert ids == sorted(set(ids))  # still never twice


def test_rotate_after_must_be_inside_the_24h_limit() -> None:
    from daemon.config import ConfigError, parse_config

    text = """
[accounts.paper]
[[groups]]
exchange = "binance"
symbol = "NKN/USDT"
account = "paper"
[groups.instrument]
base = "NKN"
quote = "USDT"
tick_size = "0.0001"
step_size = "0.1"
[groups.feed]
kind = "binance"
venue_symbol = "NKNUSDT"
rotate_after_s = 90000.0
"""
    with pytest.raises(
        ConfigError, match=r"groups\[0\]\.feed\.rotate_after_s: expected seconds in \(0, 86400\)"
    ):
        parse_config(text, "cfg.toml")
    assert parse_config(text.replace("90000.0", "3600.0"), "cfg.toml").groups[0].feed.rotate_after_s == 3600.0  # type: ignore[union-attr]
