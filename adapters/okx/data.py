"""OKX public frames in, our market messages out: the synchronous core of the OKX feed.

Takes: raw text frames of one public WebSocket connection (pushes, events, ``pong``).
Emits: :class:`~actors.messages.Trade` (``trades``), :class:`~actors.messages.Quote`
(``tickers`` or ``bbo-tbt``), :class:`~actors.messages.BookSnapshot` and
:class:`~actors.messages.BookDelta` (``books``), the same messages as the Binance feed, so the
actors stay venue-neutral.  Symbols: ours ``BTC/USDT`` is OKX's instId ``BTC-USDT``.

Every frame is decoded with typed msgspec Structs (:mod:`adapters.okx.schemas`); a frame that
fails is dropped and counted in ``rejected`` by reason (``malformed_json``, ``bad_envelope``,
``bad_payload``, ``bad_value`` -- NaN, infinite, zero or negative prices and sizes --,
``unknown_symbol``, ``unknown_stream``, ``venue_error`` for OKX ``error`` events such as 60012
and 60018).  A ``books`` push that breaks the book (a ``prevSeqId`` gap, a checksum mismatch, a
push refused as bad for a known instrument) makes it stale: counted (``gaps``,
``checksum_failures``), its instId queued in :attr:`OkxStream.resubscribe` for the feed to
resubscribe, and nothing of it is forwarded until the snapshot of the resubscription arrives.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation

import msgspec

from actors.messages import BookDelta, BookSnapshot, Message, Quote, Side, Trade
from adapters.okx.book import BadLevel, BookResult, OkxBook, parse_levels
from adapters.okx.schemas import (
    OkxArg,
    OkxBookData,
    OkxFrame,
    OkxTickersPush,
    OkxTradesPush,
)

__all__ = ["CHANNELS", "OkxStream", "to_inst_id", "to_symbol"]

log = logging.getLogger("tradingd.okx.data")
COMPONENT = "okx-ws"
CHANNELS = ("books", "trades", "tickers", "bbo-tbt")
LOG_FIRST, LOG_INTERVAL_S = 5, 10.0

_FRAME = msgspec.json.Decoder(OkxFrame)
_BOOKS = msgspec.json.Decoder(list[OkxBookData])
_TRADE_DATA = msgspec.json.Decoder(OkxTradesPush)
_TICKER_DATA = msgspec.json.Decoder(OkxTickersPush)


def to_inst_id(symbol: str) -> str:
    """``BTC/USDT`` -> ``BTC-USDT``."""
    return symbol.replace("/", "-")


def to_symbol(inst_id: str) -> str:
    """``BTC-USDT`` -> ``BTC/USDT``."""
    return inst_id.replace("-", "/", 1)


class BadValue(ValueError):
    """A price or size that is not a finite positive decimal."""


def _num(text: str, what: str, *, zero_ok: bool = False) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise BadValue(f"{what} {text!r} is not a decimal") from None
    if not value.is_finite() or value < 0 or (value == 0 and not zero_ok):
        raise BadValue(f"{what} {text!r} must be {'>= 0' if zero_ok else '> 0'}")
    return value


def _ms(text: str) -> int:
    try:
        ms = int(text)
    except ValueError:
        raise BadValue(f"ts {text!r} is not integer milliseconds") from None
    if ms <= 0:
        raise BadValue(f"ts {text!r} must be > 0")
    return ms * 1_000_000


class OkxStream:
    """Decodes one connection's frames for ``symbols`` (OKX instId -> ours) and keeps their books."""

    def __init__(
        self,
        symbols: Mapping[str, str],
        *,
        exchange: str = "okx",
        conn: str = "ws0",
        book_depth: int = 100,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.symbols, self.exchange, self.conn = dict(symbols), exchange, conn
        self.book_depth = book_depth
        self.books: dict[str, OkxBook] = {inst: OkxBook(ours) for inst, ours in self.symbols.items()}
        self.resubscribe: list[str] = []  # instIds whose books need a resubscription, oldest first
        self.decoded: dict[str, int] = {}
        self.rejected: dict[str, int] = {}
        self.checksum_failures = self.gaps = self.pongs = 0
        self.errors: list[str] = []  # the latest OKX error events, "code msg"
        self._clock = clock
        self._last_log: dict[str, float] = {}

    def reset_books(self) -> None:
        """A new connection: every book waits for the snapshot of its subscription."""
        for inst, book in self.books.items():
            fresh = OkxBook(book.symbol)
            if not book.synced:
                fresh.since_ns = book.since_ns
            self.books[inst] = fresh
        self.resubscribe.clear()

    def decode(self, raw: str | bytes, ts_recv: int) -> list[Message]:
        """The messages in one frame; ``[]`` for events, ``pong`` and rejected frames."""
        if raw == "pong" or raw == b"pong":
            self.pongs += 1
            return []
        try:
            frame = _FRAME.decode(raw)
        except msgspec.DecodeError as exc:
            reason = "bad_envelope" if isinstance(exc, msgspec.ValidationError) else "malformed_json"
            return self._reject(reason, "", str(exc))
        if frame.event is not None:
            return self._event(frame)
        if frame.arg is None or not frame.data:
            return self._reject("bad_envelope", "", "a push without arg or data")
        ours = self.symbols.get(frame.arg.instId)
        if ours is None:
            return self._reject("unknown_symbol", frame.arg.instId, f"push for {frame.arg.instId!r}")
        channel = frame.arg.channel
        self.decoded[channel] = self.decoded.get(channel, 0) + 1
        try:
            if channel == "books":
                return self._books(frame.arg, frame.action or "", frame.data, ours, ts_recv)
            if channel == "trades":
                return self._trades(raw, ours, ts_recv)
            if channel in ("tickers", "bbo-tbt"):
                return self._quotes(channel, raw, frame.data, ours, ts_recv)
        except msgspec.DecodeError as exc:
            return self._broken(frame.arg, "bad_payload", ours, str(exc))
        except (BadValue, BadLevel) as exc:
            return self._broken(frame.arg, "bad_value", ours, str(exc))
        return self._reject("unknown_stream", ours, f"channel {channel!r}")

    # --- channels --------------------------------------------------------------------------------

    def _books(self, arg: OkxArg, action: str, data: msgspec.Raw, ours: str, ts_recv: int) -> list[Message]:
        if action not in ("snapshot", "update"):
            raise BadValue(f"books action {action!r}")
        pushes = _BOOKS.decode(data)
        if len(pushes) != 1:
            raise BadValue(f"books push with {len(pushes)} data items, expected 1")
        push = pushes[0]
        ts_event = _ms(push.ts)
        book = self.books[arg.instId]
        result, bids, asks = book.apply(action, push)
        if result is BookResult.NOT_SYNCED:
            return []
        if result is not BookResult.APPLIED:
            if result is BookResult.GAP:
                self.gaps += 1
            else:
                self.checksum_failures += 1
            self._queue_resubscribe(arg.instId, book.reason)
            return []
        seq = push.seqId or 0
        if action == "snapshot":
            n = self.book_depth
            msg: Message = BookSnapshot(
                exchange=self.exchange,
                symbol=ours,
                ts_event=ts_event,
                ts_recv=ts_recv,
                bids=book.bids.decimals(n),
                asks=book.asks.decimals(n),
                seq=seq,
            )
            return [msg]
        first = push.prevSeqId + 1 if push.prevSeqId is not None and push.prevSeqId >= 0 else seq
        delta = BookDelta(
            exchange=self.exchange,
            symbol=ours,
            ts_event=ts_event,
            ts_recv=ts_recv,
            bids=bids,
            asks=asks,
            first_seq=first,
            last_seq=seq,
        )
        return [delta]

    def _trades(self, raw: str | bytes, ours: str, ts_recv: int) -> list[Message]:
        push = _TRADE_DATA.decode(raw)
        out: list[Message] = []
        for t in push.data:
            if t.side not in ("buy", "sell"):
                raise BadValue(f"trade side {t.side!r}")
            side: Side = "buy" if t.side == "buy" else "sell"
            out.append(
                Trade(
                    exchange=self.exchange,
                    symbol=ours,
                    ts_event=_ms(t.ts),
                    ts_recv=ts_recv,
                    price=_num(t.px, "px"),
                    size=_num(t.sz, "sz"),
                    side=side,
                    trade_id=t.tradeId,
                )
            )
        return out

    def _quotes(
        self, channel: str, raw: str | bytes, data: msgspec.Raw, ours: str, ts_recv: int
    ) -> list[Message]:
        if channel == "tickers":
            quotes = [(q.bidPx, q.bidSz, q.askPx, q.askSz, q.ts) for q in _TICKER_DATA.decode(raw).data]
        else:  # bbo-tbt: a one-level book
            quotes = []
            for b in _BOOKS.decode(data):
                if not b.bids or not b.asks:
                    raise BadValue("bbo-tbt without a bid and an ask")
                top_bid, top_ask = parse_levels(b.bids[:1])[0], parse_levels(b.asks[:1])[0]
                quotes.append((top_bid[2], top_bid[3], top_ask[2], top_ask[3], b.ts))
        out: list[Message] = []
        for bid_px, bid_sz, ask_px, ask_sz, ts in quotes:
            bid, ask = _num(bid_px, "bidPx"), _num(ask_px, "askPx")
            if bid >= ask:
                raise BadValue(f"crossed quote: bid {bid_px} >= ask {ask_px}")
            out.append(
                Quote(
                    exchange=self.exchange,
                    symbol=ours,
                    ts_event=_ms(ts),
                    ts_recv=ts_recv,
                    bid_price=bid,
                    bid_size=_num(bid_sz, "bidSz"),
                    ask_price=ask,
                    ask_size=_num(ask_sz, "askSz"),
                )
            )
        return out

    # --- events and rejections --------------------------------------------------------------------

    def _event(self, frame: OkxFrame) -> list[Message]:
        if frame.event == "error":
            self.errors = [*self.errors[-9:], f"{frame.code} {frame.msg}"]
            return self._reject("venue_error", "", f"OKX error {frame.code}: {frame.msg}")
        if frame.event in ("subscribe", "unsubscribe"):
            key = f"event_{frame.event}"
            self.decoded[key] = self.decoded.get(key, 0) + 1
            return []
        return self._reject("bad_envelope", "", f"unknown event {frame.event!r}")

    def _broken(self, arg: OkxArg, reason: str, ours: str, detail: str) -> list[Message]:
        """A refused push; for a book, one update it will never have: resubscribe it."""
        book = self.books.get(arg.instId) if arg.channel == "books" else None
        if book is not None:
            book.mark_stale(f"refused push ({reason})")
            self._queue_resubscribe(arg.instId, book.reason)
        return self._reject(reason, ours, detail)

    def _queue_resubscribe(self, inst_id: str, why: str) -> None:
        if inst_id not in self.resubscribe:
            self.resubscribe.append(inst_id)
            log.warning(
                "okx book stale (%s): resubscribing",
                why,
                extra={
                    "component": COMPONENT,
                    "exchange": self.exchange,
                    "symbol": self.symbols[inst_id],
                    "conn": self.conn,
                },
            )

    def _reject(self, reason: str, symbol: str, detail: str) -> list[Message]:
        n = self.rejected.get(reason, 0) + 1
        self.rejected[reason] = n
        now = self._clock()
        if n <= LOG_FIRST or now - self._last_log.get(reason, -LOG_INTERVAL_S) >= LOG_INTERVAL_S:
            self._last_log[reason] = now
            log.warning(
                "dropped okx frame (%s, #%d): %s",
                reason,
                n,
                detail[:300],
                extra={
                    "component": COMPONENT,
                    "exchange": self.exchange,
                    "symbol": symbol,
                    "conn": self.conn,
                },
            )
        return []
