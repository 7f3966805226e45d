"""Binance spot market data: raw combined-stream frames in, normalised market messages out.

In: one frame of ``wss://stream.binance.com:9443/stream?streams=...`` as received (bytes or str),
with our receive time in ns.  Out: ``[Trade]`` (``aggTrade``, ``trade``), ``[Quote]``
(``bookTicker``), ``[BookDelta]`` (``depthUpdate``), ``[Bar]`` (a *closed* ``kline``), or ``[]``.

:class:`FrameDecoder` never raises on what the network hands it.  A frame that is not JSON, not
an envelope, names a stream kind or symbol we did not subscribe to, misses or mistypes a field,
or carries NaN / infinite / negative / absurd numbers is dropped, counted in ``rejected`` by
reason (:data:`REJECT_REASONS`) and logged at a bounded rate with component, exchange, symbol and
connection id.  Every other frame is counted in ``decoded`` by kind, including the replies to our
``SUBSCRIBE`` requests (``{"result": null, "id": 1}``) and still-open klines, so
``sum(decoded) + sum(rejected)`` is the number of frames seen.

Also here: the REST depth snapshot and exchangeInfo decoders, and readers for cryptofeed capture
files (the recorded frames the tests and benchmarks replay).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple, assert_never

import msgspec

from actors.messages import BookSnapshot, Message
from adapters.binance.schemas import (
    AGG_TRADE_DECODER,
    BOOK_TICKER_DECODER,
    DEPTH_SNAPSHOT_DECODER,
    DEPTH_UPDATE_DECODER,
    ENVELOPE_DECODER,
    EXCHANGE_INFO_DECODER,
    KLINE_DECODER,
    TRADE_DECODER,
    BinanceAggTrade,
    BinanceBookTicker,
    BinanceDepthUpdate,
    BinanceExchangeInfo,
    BinanceKlineEvent,
    BinanceStreamEnvelope,
    BinanceTrade,
    BinanceValueError,
)

log = logging.getLogger("tradingd.binance")

COMPONENT = "binance-data"
LOG_FIRST = 10  # rejections logged one by one per reason, then ...
LOG_INTERVAL_S = 10.0  # ... at most one line per reason per interval, with the count suppressed
DETAIL_MAX = 200  # hostile frames can be large: log at most this much of a detail

REJECT_REASONS = (
    "malformed_json",  # not JSON at all, or nested past msgspec's depth limit
    "bad_envelope",  # JSON, but not {"stream", "data"} nor a reply with an "id"
    "unknown_stream",  # a stream kind we do not decode (depth5, ticker, ...)
    "unknown_symbol",  # a symbol outside the decoder's symbol map
    "symbol_mismatch",  # payload "s" differs from the stream name's symbol
    "bad_payload",  # a field missing, mistyped or out of integer range
    "bad_value",  # NaN, infinite, negative or absurd price/quantity, U > u, T < t
    "venue_error",  # Binance answered one of our requests with an error
)

Payload = BinanceAggTrade | BinanceTrade | BinanceBookTicker | BinanceDepthUpdate | BinanceKlineEvent
PayloadDecoder = Callable[[bytes], Payload]
_Route = tuple[PayloadDecoder, str, str, str]  # decode, kind, venue symbol, our symbol
MAX_ROUTES = 1024

_PAYLOAD_DECODERS: dict[str, PayloadDecoder] = {
    "aggTrade": AGG_TRADE_DECODER.decode,
    "trade": TRADE_DECODER.decode,
    "bookTicker": BOOK_TICKER_DECODER.decode,
    "depthUpdate": DEPTH_UPDATE_DECODER.decode,
    "kline": KLINE_DECODER.decode,
}


def stream_kind(name: str) -> str | None:
    """Payload kind of a stream name's suffix (``depth@100ms`` -> ``depthUpdate``); None if unknown."""
    if name in ("aggTrade", "trade", "bookTicker"):
        return name
    if name == "depth" or name.startswith("depth@"):  # not depth5/10/20: those are partial books
        return "depthUpdate"
    if name.startswith("kline_"):
        return "kline"
    return None


def to_message(payload: Payload, exchange: str, symbol: str, ts_recv: int) -> Message | None:
    """Our message for one decoded payload (None: an open kline).  Raises :class:`BinanceValueError`."""
    match payload:
        case BinanceAggTrade() | BinanceTrade():
            return payload.parse_to_trade(exchange, symbol, ts_recv)
        case BinanceBookTicker():
            return payload.parse_to_quote(exchange, symbol, ts_recv)
        case BinanceDepthUpdate():
            return payload.parse_to_book_delta(exchange, symbol, ts_recv)
        case BinanceKlineEvent():
            return payload.parse_to_bar(exchange, symbol, ts_recv)
        case _:
            assert_never(payload)


class FrameDecoder:
    """Decodes one connection's frames for ``symbols`` (Binance's -> ours: ``NKNUSDT`` -> ``NKN/USDT``)."""

    def __init__(
        self,
        symbols: Mapping[str, str],
        *,
        exchange: str = "binance",
        conn: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.exchange = exchange
        self.conn = conn
        self.symbols = dict(symbols)
        # Stream names carry the symbol in lower case: "nknusdt@aggTrade".
        self._by_stream = {venue.lower(): (venue, ours) for venue, ours in self.symbols.items()}
        self._routes: dict[str, _Route] = {}
        self.decoded: dict[str, int] = {}
        self.rejected: dict[str, int] = {}
        self._clock = clock
        self._last_log: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def decode(self, raw: bytes | str, ts_recv: int) -> list[Message]:
        """The messages in one frame; ``[]`` for replies, open klines and rejected frames."""
        try:
            env = ENVELOPE_DECODER.decode(raw)
        except msgspec.ValidationError as exc:
            return self._reject("bad_envelope", "", str(exc))
        except (msgspec.DecodeError, RecursionError) as exc:
            return self._reject("malformed_json", "", str(exc))
        if env.stream is None:
            return self._reply(env)
        return self._stream(env.stream, env.data, ts_recv)

    def _route(self, stream: str) -> _Route | str:
        """``(decode, kind, venue symbol, our symbol)`` for a stream name, or the reason it has none."""
        route = self._routes.get(stream)
        if route is not None:
            return route
        prefix, _, suffix = stream.partition("@")
        kind = stream_kind(suffix)
        if kind is None:
            return "unknown_stream"
        known = self._by_stream.get(prefix)
        if known is None:
            return "unknown_symbol"
        route = (_PAYLOAD_DECODERS[kind], kind, *known)
        if len(self._routes) < MAX_ROUTES:  # names are venue-chosen: keep the cache bounded
            self._routes[stream] = route
        return route

    def _stream(self, stream: str, data: msgspec.Raw, ts_recv: int) -> list[Message]:
        route = self._route(stream)
        if isinstance(route, str):
            return self._reject(route, "", f"stream {stream!r}")
        decode, kind, venue, symbol = route
        if not data:
            return self._reject("bad_envelope", symbol, f"stream {stream!r} without data")
        try:
            payload = decode(data)
            if payload.s != venue:
                return self._reject("symbol_mismatch", symbol, f"stream {stream!r} carries s={payload.s!r}")
            msg = to_message(payload, self.exchange, symbol, ts_recv)
        except msgspec.ValidationError as exc:
            return self._reject("bad_payload", symbol, f"{kind}: {exc}")
        except (msgspec.DecodeError, RecursionError) as exc:  # data is Raw: only its syntax was checked
            return self._reject("malformed_json", symbol, f"{kind}: {exc}")
        except BinanceValueError as exc:
            return self._reject("bad_value", symbol, f"{kind}: {exc}")
        if msg is None:
            kind = "kline_open"
        decoded = self.decoded
        decoded[kind] = decoded.get(kind, 0) + 1
        return [] if msg is None else [msg]

    def _reply(self, env: BinanceStreamEnvelope) -> list[Message]:
        if env.error is not None:
            return self._reject("venue_error", "", f"request {env.id!r}: {env.error.code} {env.error.msg}")
        if env.id is None:
            return self._reject("bad_envelope", "", "frame has neither a stream nor a request id")
        self.decoded["reply"] = self.decoded.get("reply", 0) + 1
        return []

    def _reject(self, reason: str, symbol: str, detail: str) -> list[Message]:
        n = self.rejected.get(reason, 0) + 1
        self.rejected[reason] = n
        now = self._clock()
        if n > LOG_FIRST and now - self._last_log.get(reason, -LOG_INTERVAL_S) < LOG_INTERVAL_S:
            self._suppressed[reason] = self._suppressed.get(reason, 0) + 1
            return []
        self._last_log[reason] = now
        suppressed = self._suppressed.pop(reason, 0)
        log.warning(
            "dropped binance frame (%s, #%d, %d not logged since the last line): %s",
            reason,
            n,
            suppressed,
            detail[:DETAIL_MAX],
            extra={"component": COMPONENT, "exchange": self.exchange, "symbol": symbol, "conn": self.conn},
        )
        return []


# --- REST replies -------------------------------------------------------------------------------


class BinanceDecodeError(ValueError):
    """A REST reply that does not decode to its schema, or carries impossible values."""


def decode_depth_snapshot(raw: bytes | str, exchange: str, symbol: str, ts_recv: int) -> BookSnapshot:
    """``GET /api/v3/depth`` reply -> :class:`BookSnapshot` (``seq`` = ``lastUpdateId``)."""
    try:
        return DEPTH_SNAPSHOT_DECODER.decode(raw).parse_to_book_snapshot(exchange, symbol, ts_recv)
    except (msgspec.DecodeError, RecursionError, BinanceValueError) as exc:
        raise BinanceDecodeError(f"depth snapshot for {symbol}: {exc}") from exc


def decode_exchange_info(raw: bytes | str) -> BinanceExchangeInfo:
    try:
        return EXCHANGE_INFO_DECODER.decode(raw)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise BinanceDecodeError(f"exchangeInfo: {exc}") from exc


# --- capture files (cryptofeed format) ----------------------------------------------------------


class CapturedFrame(NamedTuple):
    ts_recv: int  # ns
    raw: bytes


class CapturedReply(NamedTuple):
    url: str
    ts_recv: int  # ns
    raw: bytes


def _ns(seconds: str) -> int:
    return int(Decimal(seconds) * 1_000_000_000)


def read_ws_capture(path: str | Path) -> tuple[str, list[CapturedFrame]]:
    """``(url, frames)`` of a WebSocket capture: a URL line, then ``<recv_unix_s>: <frame>`` lines.

    Lines of another shape (blank ones, what the client sent) are skipped.
    """
    url, *lines = Path(path).read_bytes().split(b"\n")
    frames = []
    for line in lines:
        ts, sep, raw = line.partition(b": ")
        if not sep or not ts.replace(b".", b"", 1).isdigit():  # blank, or a " <- " line we sent
            continue
        frames.append(CapturedFrame(_ns(ts.decode()), raw))
    return url.decode().partition(" <-> ")[0], frames


def read_rest_capture(path: str | Path) -> list[CapturedReply]:
    """Replies of a REST capture: ``<url> -> <recv_unix_s>: <body>`` lines (others are skipped)."""
    replies = []
    for line in Path(path).read_bytes().split(b"\n"):
        url, sep, rest = line.partition(b" -> ")
        if not sep:
            continue
        ts, _, raw = rest.partition(b": ")
        replies.append(CapturedReply(url.decode(), _ns(ts.decode()), raw))
    return replies
