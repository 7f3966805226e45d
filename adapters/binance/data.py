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

Two ways through, same messages and counts.  One pass (the hot path): each stream the connection
subscribes to has a frame type tagged by its name (:func:`stream_frame_type`, symbol and event
type pinned as literals), and one msgspec decoder for their union reads envelope and typed payload
at once; the ``aggTrade`` Trade is built inline.  Two passes (the reference, and what says why a
frame is dropped): the envelope with the payload left raw, then the payload decoder its stream
name routes to.  A frame goes the two-pass way whenever the one-pass decode or a value check
refuses it: replies, streams without a frame type, and everything hostile.

Also here: the REST depth snapshot and exchangeInfo decoders, and readers for cryptofeed capture
files (the recorded frames the tests and benchmarks replay).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, NamedTuple, Union, assert_never, cast

import msgspec

from actors.messages import BookSnapshot, Message, Trade
from adapters.binance.schemas import (
    AGG_TRADE_DECODER,
    BOOK_TICKER_DECODER,
    DEPTH_SNAPSHOT_DECODER,
    DEPTH_UPDATE_DECODER,
    ENVELOPE_DECODER,
    EXCHANGE_INFO_DECODER,
    KLINE_DECODER,
    MAX_VALUE,
    NS_PER_MS,
    TRADE_DECODER,
    ZERO,
    BinanceAggTrade,
    BinanceBookTicker,
    BinanceDepthUpdate,
    BinanceExchangeInfo,
    BinanceKlineEvent,
    BinanceStreamEnvelope,
    BinanceStreamFrame,
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


_PAYLOAD_TYPES: dict[str, type[Payload]] = {
    "aggTrade": BinanceAggTrade,
    "trade": BinanceTrade,
    "bookTicker": BinanceBookTicker,
    "depthUpdate": BinanceDepthUpdate,
    "kline": BinanceKlineEvent,
}
Handler = Callable[[Any, str, str, int], Message | None]  # payload, exchange, our symbol, ts_recv
_HANDLERS: dict[str, Handler] = {
    "trade": BinanceTrade.parse_to_trade,
    "bookTicker": BinanceBookTicker.parse_to_quote,
    "depthUpdate": BinanceDepthUpdate.parse_to_book_delta,
    "kline": BinanceKlineEvent.parse_to_bar,
}
# Streams given a one-pass frame type when the caller does not say which it subscribes to.
ONE_PASS_STREAMS = ("aggTrade", "trade", "bookTicker", "depth", "depth@100ms", "kline_1m")
# What the one-pass way counts, by index (a list slot is cheaper to bump than a dict entry).
_COUNTED = ("aggTrade", "trade", "bookTicker", "depthUpdate", "kline", "kline_open")
_AGG_TRADE, _KLINE_OPEN = _COUNTED.index("aggTrade"), _COUNTED.index("kline_open")


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


@functools.lru_cache(maxsize=4096)
def stream_frame_type(stream: str, kind: str, venue: str, symbol: str) -> type[BinanceStreamFrame]:
    """The one-pass frame type of ``stream``: tagged by its name, data typed by ``kind``.

    The payload is the kind's Struct with ``s`` narrowed to ``venue`` and ``e`` to the kind (a
    frame whose symbol or event type differs fails to decode here, and goes the two-pass way).
    ``route`` is ``(index in _COUNTED, symbol, handler)``; the handler is None for ``aggTrade``,
    whose Trade :meth:`FrameDecoder.decode` builds inline.
    """
    base = _PAYLOAD_TYPES[kind]
    narrowed = [("s", Literal.__getitem__(venue))]
    if "e" in base.__struct_fields__:  # the event type: a literal decodes without a new str
        narrowed.insert(0, ("e", Literal.__getitem__(kind)))
    payload = msgspec.defstruct(
        base.__name__,
        narrowed,
        bases=(base,),
        module=__name__,
        frozen=True,
        gc=base.__struct_config__.gc,
        kw_only=True,  # as every payload Struct: ``s`` keeps its place
    )
    frame = msgspec.defstruct(
        f"{base.__name__}Frame",
        [("data", payload)],
        bases=(BinanceStreamFrame,),
        module=__name__,
        namespace={"route": (_COUNTED.index(kind), symbol, _HANDLERS.get(kind))},
        tag=stream,
        frozen=True,
        gc=False,
        kw_only=True,
    )
    return cast(type[BinanceStreamFrame], frame)


def _no_frame(raw: bytes | str) -> BinanceStreamFrame:
    raise msgspec.DecodeError("no stream to decode in one pass")


FrameDecode = Callable[[bytes | str], BinanceStreamFrame]


@functools.lru_cache(maxsize=16)
def _frame_decoder(types: tuple[type[BinanceStreamFrame], ...]) -> FrameDecode:
    """One decoder for the union of ``types`` (built once per set of types: ~10 us a type)."""
    if not types:
        return _no_frame
    decoder: msgspec.json.Decoder[BinanceStreamFrame] = msgspec.json.Decoder(Union.__getitem__(types))
    return decoder.decode


class FrameDecoder:
    """Decodes one connection's frames for ``symbols`` (Binance's -> ours: ``NKNUSDT`` -> ``NKN/USDT``).

    ``streams`` are the stream names' suffixes the connection subscribes to (``aggTrade``,
    ``depth@100ms`` ...): their frames decode in one pass (:func:`stream_frame_type`).  Every other
    frame, and any frame the one-pass decode or its checks refuse, goes the two-pass way (envelope,
    then the payload its stream name routes to), which decides what is dropped and why; both ways
    yield the same messages.
    """

    def __init__(
        self,
        symbols: Mapping[str, str],
        *,
        exchange: str = "binance",
        conn: str = "",
        clock: Callable[[], float] = time.monotonic,
        streams: Iterable[str] = ONE_PASS_STREAMS,
    ) -> None:
        self.exchange = exchange
        self.conn = conn
        self.symbols = dict(symbols)
        # Stream names carry the symbol in lower case: "nknusdt@aggTrade".
        self._by_stream = {venue.lower(): (venue, ours) for venue, ours in self.symbols.items()}
        self._routes: dict[str, _Route] = {}
        self._decoded: dict[str, int] = {}
        self._pending = [0] * len(_COUNTED)  # decoded the one-pass way, not yet in _decoded
        self.rejected: dict[str, int] = {}
        self._clock = clock
        self._last_log: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        suffixes = tuple(dict.fromkeys(streams))
        types = []
        for prefix, (venue, ours) in self._by_stream.items():
            for suffix in suffixes:
                name = f"{prefix}@{suffix}"
                route = self._resolve(name)
                if not isinstance(route, str) and route[2:] == (venue, ours):  # as the two-pass way routes it
                    types.append(stream_frame_type(name, route[1], venue, ours))
        self._decode_frame = _frame_decoder(tuple(types))

    @property
    def decoded(self) -> dict[str, int]:
        """Frames decoded, by kind (``reply`` and ``kline_open`` too); assign to share a dict."""
        self._flush()
        return self._decoded

    @decoded.setter
    def decoded(self, counts: dict[str, int]) -> None:
        self._flush()
        self._decoded = counts

    def _flush(self) -> None:
        pending, decoded = self._pending, self._decoded
        for i, n in enumerate(pending):
            if n:
                kind = _COUNTED[i]
                decoded[kind] = decoded.get(kind, 0) + n
                pending[i] = 0

    def decode(self, raw: bytes | str, ts_recv: int) -> list[Message]:
        """The messages in one frame; ``[]`` for replies, open klines and rejected frames."""
        try:
            decode_frame = self._decode_frame  # a local: an instance attribute's call is not specialised
            frame = decode_frame(raw)
            index, symbol, handler = frame.route
            data = frame.data
            if handler is None:  # aggTrade, the busiest stream: BinanceAggTrade.parse_to_trade inlined
                p = data.p
                q = data.q
                # check_number(positive=True) on both; a NaN raises InvalidOperation (caught below)
                if ZERO < p < MAX_VALUE and ZERO < q < MAX_VALUE:
                    self._pending[_AGG_TRADE] += 1
                    return [
                        Trade(
                            exchange=self.exchange,
                            symbol=symbol,
                            ts_event=data.T * NS_PER_MS,
                            ts_recv=ts_recv,
                            price=p,
                            size=q,
                            side="sell" if data.m else "buy",
                            trade_id=str(data.a),
                        )
                    ]
                return self._decode_two_pass(raw, ts_recv)
            msg = handler(data, self.exchange, symbol, ts_recv)
        except (msgspec.DecodeError, RecursionError, ArithmeticError, BinanceValueError):
            # Not a stream known here, or a frame to drop: the two-pass way says why.
            return self._decode_two_pass(raw, ts_recv)
        if msg is None:
            self._pending[_KLINE_OPEN] += 1
            return []
        self._pending[index] += 1
        return [msg]

    def _decode_two_pass(self, raw: bytes | str, ts_recv: int) -> list[Message]:
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
        cached = self._routes.get(stream)
        if cached is not None:
            return cached
        route = self._resolve(stream)
        if not isinstance(route, str) and len(self._routes) < MAX_ROUTES:  # names are venue-chosen: bounded
            self._routes[stream] = route
        return route

    def _resolve(self, stream: str) -> _Route | str:
        prefix, _, suffix = stream.partition("@")
        kind = stream_kind(suffix)
        if kind is None:
            return "unknown_stream"
        known = self._by_stream.get(prefix)
        if known is None:
            return "unknown_symbol"
        return (_PAYLOAD_DECODERS[kind], kind, *known)

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
        decoded = self._decoded
        decoded[kind] = decoded.get(kind, 0) + 1
        return [] if msg is None else [msg]

    def _reply(self, env: BinanceStreamEnvelope) -> list[Message]:
        if env.error is not None:
            return self._reject("venue_error", "", f"request {env.id!r}: {env.error.code} {env.error.msg}")
        if env.id is None:
            return self._reject("bad_envelope", "", "frame has neither a stream nor a request id")
        self._decoded["reply"] = self._decoded.get("reply", 0) + 1
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
