"""Make-before-break rotation of the Binance live feed's connections (the 24 h limit).

The 24 h limit: Binance closes every stream connection after 24 hours.  Each connection is
rotated before that (``rotate_after_s``, default 23.5 h) make-before-break: a successor
connection to the same streams is opened while the old one keeps delivering; the
successor's messages are held until the old connection has delivered up to where the
successor starts (each book's update id and each symbol's aggregate trade id reach the
successor's first ones), then the old socket is closed and the held messages are played
with the overlap removed (books drop diffs they already have, trades at or below the last
delivered id are dropped, only the newest held quote per symbol goes out).  Books stay
synced and no trade is lost or doubled (``rotations``); if the successor never catches up
within ``handover_timeout_s`` the switch happens anyway and a gap, if any, resyncs the
book as usual (``forced_rotations``).

:class:`ConnectionRotation` is mixed into :class:`~adapters.binance.websocket.BinanceMarketFeed`;
the rotation state of a connection lives on its :class:`~adapters.binance.feed_shard.FeedShard`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence

import aiohttp
import anyio

from actors.messages import BookDelta, Message, Quote, Trade
from adapters.binance.data import FrameDecoder
from adapters.binance.feed_shard import CONNECTION_ERRORS, ConnectionLost, FeedShard

__all__ = ["ConnectionRotation", "trade_is_new"]

log = logging.getLogger("tradingd.binance.ws")


class ConnectionRotation:
    """The rotation half of :class:`~adapters.binance.websocket.BinanceMarketFeed` (a mixin).

    The feed starts :meth:`_rotate` with each connection, its reader calls :meth:`_take_over`
    when the old socket closes during a handover, and a lost connection ends with
    :meth:`_abandon_successor`.  What it uses of the feed is declared here.
    """

    exchange: str
    streams: tuple[str, ...]
    rotate_after_s: float | None
    handover_timeout_s: float
    rotations: int
    forced_rotations: int
    _open: Callable[[FeedShard], Awaitable[aiohttp.ClientWebSocketResponse]]
    _emit: Callable[[FeedShard, Message], Awaitable[None]]
    _on_delta: Callable[[FeedShard, BookDelta], bool]
    _extra: Callable[[FeedShard], dict[str, str]]
    _resubscribe: Callable[[FeedShard, Sequence[str], aiohttp.ClientWebSocketResponse], Awaitable[None]]
    _count: Callable[..., None]  # (name, shard, symbol=None)

    async def _rotate(self, shard: FeedShard) -> None:
        """Open a successor before Binance's 24 h cut; hand over once it caught up with the old socket."""
        assert self.rotate_after_s is not None
        retry = min(60.0, self.rotate_after_s / 10)
        await anyio.sleep(self.rotate_after_s)
        while True:
            opened = shard.streams()  # what _open puts in the URL
            try:
                successor = await self._open(shard)
            except (*CONNECTION_ERRORS, ConnectionLost) as exc:
                log.warning(
                    "rotation: successor failed to connect (%s); retrying", exc, extra=self._extra(shard)
                )
                await anyio.sleep(retry)
                continue
            shard.successor, shard.held = successor, []
            await self._resubscribe(shard, opened, successor)
            if shard.trade_floor is None:
                shard.trade_floor = {}
            shard.generation += 1
            decoder = FrameDecoder(
                shard.symbols, exchange=self.exchange, conn=f"{shard.name}+", streams=self.streams
            )
            state = await self._hold(shard, successor, decoder)
            if state != "lost":
                break
            log.warning(
                "rotation: successor closed early; keeping the old connection", extra=self._extra(shard)
            )
            await self._abandon_successor(shard)
            await anyio.sleep(retry)
        if state == "forced":
            self._count("forced_rotations", shard)
        old = shard.ws
        shard.fresh_quotes = set()
        shard.handover = (successor, decoder, shard.held)
        shard.successor, shard.held = None, []
        if old is not None:
            await old.close()  # the reader sees it close and takes over

    async def _hold(
        self, shard: FeedShard, successor: aiohttp.ClientWebSocketResponse, decoder: FrameDecoder
    ) -> str:
        """Hold the successor's messages until the old socket caught up: "caught_up", "forced", "lost"."""
        with anyio.move_on_after(self.handover_timeout_s):
            while True:
                frame = await successor.receive()
                if frame.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    return "lost"
                shard.held.extend(decoder.decode(frame.data, time.time_ns()))
                if self._caught_up(shard):
                    return "caught_up"
        return "forced"

    def _caught_up(self, shard: FeedShard) -> bool:
        """Has the old socket delivered up to the first message of each symbol the successor holds?"""
        firsts: dict[tuple[str, type], Message] = {}
        for msg in shard.held:
            firsts.setdefault((msg.symbol, type(msg)), msg)
        last_trade = shard.trade_floor or {}
        for (symbol, kind), msg in firsts.items():
            if kind is BookDelta:
                assert isinstance(msg, BookDelta)
                book = shard.books.get(symbol)
                if book is not None and not book.stale and book.last_update_id < msg.first_seq - 1:
                    return False
            elif kind is Trade:
                assert isinstance(msg, Trade)
                tid = _trade_id(msg)
                if tid is not None and last_trade.get(symbol, -1) < tid - 1:
                    return False
        return bool(firsts)

    async def _take_over(self, shard: FeedShard) -> aiohttp.ClientWebSocketResponse:
        """The old socket is closed: play the successor's held messages without the overlap."""
        assert shard.handover is not None
        successor, decoder, held = shard.handover
        shard.handover = None
        for reason, n in shard.decoder.rejected.items():
            decoder.rejected[reason] = decoder.rejected.get(reason, 0) + n
        for name, n in shard.decoder.decoded.items():
            decoder.decoded[name] = decoder.decoded.get(name, 0) + n
        shard.decoder, shard.ws = decoder, successor
        newest_quote = {m.symbol: i for i, m in enumerate(held) if type(m) is Quote}
        for i, msg in enumerate(held):
            symbol = msg.symbol
            if symbol not in shard.last_data:
                continue
            kind = type(msg)
            if kind is Trade:
                if not trade_is_new(shard, msg):  # type: ignore[arg-type]
                    continue  # the old socket delivered it
            elif kind is Quote and (newest_quote.get(symbol) != i or symbol in shard.fresh_quotes):
                continue  # an older view of the top of book than one already delivered
            elif kind is BookDelta and not self._on_delta(shard, msg):  # type: ignore[arg-type]
                continue
            await self._emit(shard, msg)
        self._count("rotations", shard)
        shard.connected_at = time.monotonic()
        log.info("rotated to a new connection (the 24 h limit) without a gap", extra=self._extra(shard))
        if shard.tg is not None:
            shard.tg.start_soon(self._end_overlap, shard, shard.generation)
            if self.rotate_after_s:
                shard.tg.start_soon(self._rotate, shard)
        return successor

    async def _end_overlap(self, shard: FeedShard, generation: int) -> None:
        """Stop de-duplicating trades once the old socket's last frames can no longer be repeated."""
        await anyio.sleep(max(5.0, 2 * self.handover_timeout_s))
        if shard.generation == generation and shard.successor is None:
            shard.trade_floor = None

    async def _abandon_successor(self, shard: FeedShard) -> None:
        successor, shard.successor, shard.held, shard.trade_floor = shard.successor, None, [], None
        if shard.handover is not None:
            successor = successor or shard.handover[0]
            shard.handover = None
        if successor is not None:
            with anyio.CancelScope(shield=True):
                await successor.close()


def trade_is_new(shard: FeedShard, trade: Trade) -> bool:
    """Around a rotation: True (and noted) unless this trade id was delivered already."""
    floor = shard.trade_floor
    tid = _trade_id(trade)
    if floor is None or tid is None:
        return True
    last = floor.get(trade.symbol)
    if last is not None and tid <= last:
        return False
    floor[trade.symbol] = tid
    return True


def _trade_id(trade: Trade) -> int | None:
    """Binance's aggregate (or plain) trade id, increasing per symbol; None if not numeric."""
    try:
        return int(trade.trade_id)
    except ValueError:
        return None
