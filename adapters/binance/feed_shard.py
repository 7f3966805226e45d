"""One connection of the Binance live market feed: its share of the symbols and its state.

:class:`~adapters.binance.websocket.BinanceMarketFeed` splits its symbols into shards so that no
connection carries more than ``max_streams_per_connection`` streams.  A :class:`FeedShard` is one
of them: the symbols it streams, its frame decoder, its order books (depth streams), the watchdog
clocks, and during a rotation (:mod:`adapters.binance.feed_rotation`) the successor socket and
what it delivered meanwhile.  :class:`ConnectionLost` and :data:`CONNECTION_ERRORS` are what ends
a shard's connection (the feed reconnects).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import aiohttp
import anyio
from anyio.abc import TaskGroup

from actors.messages import Message
from adapters.binance.book import OrderBook
from adapters.binance.data import FrameDecoder

if TYPE_CHECKING:
    from adapters.binance.websocket import BinanceMarketFeed

__all__ = ["CONNECTION_ERRORS", "ConnectionLost", "FeedShard"]

CONNECTION_ERRORS = (aiohttp.ClientError, OSError, TimeoutError)


class ConnectionLost(Exception):
    """The peer closed the socket, or a watchdog gave up on it: reconnect."""


class FeedShard:
    """One connection's share of the symbols, its decoder, books and watchdog clocks."""

    def __init__(self, feed: BinanceMarketFeed, n: int, symbols: Mapping[str, str]) -> None:
        self.feed, self.name = feed, f"ws{n}"
        self.symbols = dict(symbols)  # venue -> ours, the active subscription
        self.decoder = FrameDecoder(
            self.symbols, exchange=feed.exchange, conn=self.name, streams=feed.streams
        )
        self.books: dict[str, OrderBook] = {}
        self.syncing: set[str] = set()  # our symbols with a snapshot request in flight
        self.last_frame = self.connected_at = 0.0
        self.last_data: dict[str, float] = {}
        self.quiet: set[str] = set()  # our symbols without data for stall_timeout_s (counted once)
        self.last_trade_ts: dict[str, int] = {}  # newest trade time delivered per symbol
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.wake: anyio.Event | None = None  # set when a symbol comes to a shard left empty
        self.counts: Counter[str] = Counter()  # this connection's reconnects, silences, rotations, ...
        self.tg: TaskGroup | None = None
        self.lock = anyio.Lock()  # orders a book's snapshot before its deltas
        self.drop_reason = ""
        # rotation (make-before-break): the successor socket and what it delivered meanwhile
        self.successor: aiohttp.ClientWebSocketResponse | None = None
        self.held: list[Message] = []
        # last aggregate trade id delivered per symbol, from a rotation's start until a while after
        # its handover: both sockets carry the same trades then, and each must go out once
        self.trade_floor: dict[str, int] | None = None
        self.fresh_quotes: set[str] = set()  # quotes the old socket delivered after the freeze
        self.generation = 0
        self.handover: tuple[aiohttp.ClientWebSocketResponse, FrameDecoder, list[Message]] | None = None

    def streams(self, venues: Sequence[str] | None = None) -> list[str]:
        names = self.symbols if venues is None else venues
        return [f"{v.lower()}@{s}" for v in names for s in self.feed.streams]

    def add(self, symbols: Mapping[str, str]) -> None:
        self.symbols.update(symbols)
        if symbols and self.wake is not None:  # the connection waits for a symbol
            self.wake.set()
        known = {**self.decoder.symbols, **symbols}
        decoder = FrameDecoder(known, exchange=self.feed.exchange, conn=self.name, streams=self.feed.streams)
        decoder.decoded, decoder.rejected = self.decoder.decoded, self.decoder.rejected
        self.decoder = decoder
        now = time.monotonic()
        for ours in symbols.values():
            self.last_data[ours] = now
            if self.feed.depth:
                self.books[ours] = OrderBook(ours, exchange=self.feed.exchange)

    def remove(self, venues: Sequence[str]) -> None:
        for venue in venues:
            ours = self.symbols.pop(venue, None)
            if ours is not None:
                self.books.pop(ours, None)
                self.last_data.pop(ours, None)
                self.quiet.discard(ours)
                self.syncing.discard(ours)

    def reset(self) -> None:
        """A new connection: every book starts over, every watchdog clock from now.

        A book already stale stays stale *since* it went stale, so the resync queue serves the
        books out of date the longest first."""
        now = time.monotonic()
        self.last_frame = self.connected_at = now
        self.last_data = dict.fromkeys(self.symbols.values(), now)
        self.quiet.clear()
        self.syncing.clear()
        if self.feed.depth:
            old, self.books = self.books, {}
            for ours in self.symbols.values():
                book = self.books[ours] = OrderBook(ours, exchange=self.feed.exchange)
                prev = old.get(ours)
                if prev is not None and prev.stale:
                    book.since_ns = prev.since_ns
