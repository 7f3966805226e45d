"""OkxMarketFeed (adapters/okx/websocket.py) against the fake OKX server (tests/fake_okx.py),
which replays the real 2022 capture with an authoritative book: books synced and verified,
resubscription after a corrupted checksum and a skipped seqId (nothing of the broken book
forwarded), reconnect after a drop with the book resynced, ping/pong when idle, silence, error
events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from actors.messages import BookDelta, BookSnapshot, Message, Quote, Trade
from adapters.okx.websocket import OkxMarketFeed
from tests.fake_okx import FakeOkx, open_fake_okx, until

pytestmark = pytest.mark.anyio
SYMBOLS = {"BTC-USDT": "BTC/USDT", "UNI-USD-SWAP": "UNI/USD-SWAP"}
FAST: dict[str, Any] = {"backoff_initial_s": 0.02, "backoff_max_s": 0.1}


class Collector:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    def nowait(self, msg: Message) -> bool:
        self.messages.append(msg)
        return True

    async def sink(self, msg: Message) -> None:
        self.messages.append(msg)

    def of(self, tp: type[Message], symbol: str | None = None) -> list[Any]:
        return [m for m in self.messages if type(m) is tp and (symbol is None or m.symbol == symbol)]


@asynccontextmanager
async def running(fake: FakeOkx, **options: Any) -> AsyncIterator[tuple[OkxMarketFeed, Collector]]:
    feed = OkxMarketFeed(fake.url, SYMBOLS, rest_url=fake.rest_url, **{**FAST, **options})
    out = Collector()
    async with anyio.create_task_group() as tg:
        await tg.start(
            lambda task_status: feed.run(out.sink, sink_nowait=out.nowait, task_status=task_status)
        )
        yield feed, out
        tg.cancel_scope.cancel()


def synced(feed: OkxMarketFeed) -> bool:
    return feed.ws is not None and all(b.synced for b in feed.stream.books.values())


async def test_many_symbols_on_one_connection_books_synced_trades_and_quotes() -> None:
    async with open_fake_okx(replay_s=1.0) as fake, running(fake) as (feed, out):
        await until(lambda: len(out.of(BookDelta, "BTC/USDT")) >= 50 and len(out.of(Trade)) >= 20, 10)
        stats = feed.statistics()
    assert fake.connections == 1 and fake.subscribes("books", "UNI-USD-SWAP") == 1
    assert len(out.of(BookSnapshot, "BTC/USDT")) >= 1 and out.of(Quote, "BTC/USDT")
    assert (stats.checksum_failures, stats.gaps, stats.resubscribes, stats.rejected) == (0, 0, 0, 0)
    assert stats.books["BTC/USDT"].synced and stats.instruments == {"BTC-USDT": "live"}
    assert feed.rules["BTC-USDT"].min_sz == feed.rules["BTC-USDT"].min_sz.__class__("0.00001")


async def _broken_book_resubscribes(fake: FakeOkx, feed: OkxMarketFeed, out: Collector, inst: str) -> None:
    """After the fault: the book's deltas up to the broken push, none from it on, then a new snapshot."""
    sym, start = SYMBOLS[inst], len(out.messages)
    await until(lambda: feed.resubscribes == 1 and feed.stream.books[inst].synced, 10)
    await until(lambda: any(type(m) is BookSnapshot and m.symbol == sym for m in out.messages[start:]), 10)
    broken = fake.faulted[inst]
    book = [m for m in out.messages[start:] if m.symbol == sym and type(m) in (BookDelta, BookSnapshot)]
    resync = next(i for i, m in enumerate(book) if type(m) is BookSnapshot)
    assert all(m.last_seq < broken for m in book[:resync])  # nothing from the broken push on
    assert book[resync].seq >= broken
    assert fake.subscribes("books", inst) == 2
    assert {"op": "unsubscribe", "args": [{"channel": "books", "instId": inst}]} in fake.requests


async def test_a_corrupted_checksum_resubscribes_that_book_only() -> None:
    async with open_fake_okx(replay_s=2.0) as fake, running(fake) as (feed, out):
        await until(lambda: synced(feed) and len(out.of(BookDelta, "BTC/USDT")) >= 5, 10)
        fake.corrupt_checksum("BTC-USDT")
        await _broken_book_resubscribes(fake, feed, out, "BTC-USDT")
        stats = feed.statistics()
    assert (stats.checksum_failures, stats.gaps) == (1, 0)
    assert fake.subscribes("books", "UNI-USD-SWAP") == 1 and fake.connections == 1


async def test_a_skipped_seq_id_resubscribes_that_book() -> None:
    async with open_fake_okx(replay_s=2.0) as fake, running(fake) as (feed, out):
        await until(lambda: synced(feed) and len(out.of(BookDelta, "UNI/USD-SWAP")) >= 5, 10)
        fake.skip_seq("UNI-USD-SWAP")
        await _broken_book_resubscribes(fake, feed, out, "UNI-USD-SWAP")
        stats = feed.statistics()
    assert (stats.checksum_failures, stats.gaps) == (0, 1)


async def test_a_dropped_connection_reconnects_and_resyncs_the_books() -> None:
    async with open_fake_okx(replay_s=2.0) as fake, running(fake) as (feed, out):
        await until(lambda: synced(feed) and len(out.of(BookDelta)) >= 10, 10)
        await fake.drop()
        dropped_at = len(out.messages)
        await until(lambda: fake.connections == 2 and synced(feed), 10)
        await until(
            lambda: (
                len(out.of(BookDelta, "BTC/USDT"))
                > len(
                    [m for m in out.messages[:dropped_at] if type(m) is BookDelta and m.symbol == "BTC/USDT"]
                )
            ),
            10,
        )
        after = [
            m
            for m in out.messages[dropped_at:]
            if m.symbol == "BTC/USDT" and type(m) in (BookDelta, BookSnapshot)
        ]
        stats = feed.statistics()
    assert type(after[0]) is BookSnapshot  # a new connection: the book starts from its snapshot
    assert stats.reconnects == 1 and (stats.checksum_failures, stats.gaps) == (0, 0)


async def test_idle_connection_pings_and_a_silent_one_is_dropped() -> None:
    async with (
        open_fake_okx(replay_s=0.3, loop=False) as fake,
        running(fake, ping_after_s=0.3, silence_timeout_s=1.0) as (feed, _out),
    ):
        await until(lambda: fake.loops == 1 and feed.stream.pongs >= 2, 10)  # replay over: idle, kept alive
        assert feed.reconnects == 0 and fake.pings == feed.pings
        fake.silent = True  # no pong any more
        await until(lambda: feed.silences == 1, 10)
        fake.silent = False
        await until(lambda: fake.connections == 2 and synced(feed), 10)


async def test_error_events_are_counted_and_the_stream_goes_on() -> None:
    async with open_fake_okx(replay_s=1.0) as fake:
        feed = OkxMarketFeed(fake.url, {**SYMBOLS, "NOPE-USDT": "NOPE/USDT"}, channels=("trades",), **FAST)
        out = Collector()
        async with anyio.create_task_group() as tg:
            await tg.start(
                lambda task_status: feed.run(out.sink, sink_nowait=out.nowait, task_status=task_status)
            )
            await until(lambda: feed.stream.rejected.get("venue_error", 0) == 1, 10)
            await fake.send_error("60012", 'Invalid request: {"op":"subscribe"}')
            await until(
                lambda: feed.stream.rejected.get("venue_error", 0) == 2 and len(out.of(Trade)) >= 5, 10
            )
            tg.cancel_scope.cancel()
    assert feed.statistics().errors[0].startswith("60018 Wrong URL or channel:trades,instId:NOPE-USDT")
    assert feed.reconnects == 0 and not out.of(BookDelta)
