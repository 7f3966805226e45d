"""Binance spot wire schemas: the venue's JSON as msgspec Structs, and their mapping to our messages.

In: raw JSON of the combined market stream (``{"stream": ..., "data": ...}``) and its payloads
(``aggTrade``, ``trade``, ``bookTicker``, ``depthUpdate``, ``kline``), the REST depth snapshot
(``/api/v3/depth``) and ``/api/v3/exchangeInfo``.
Out (``parse_to_<internal>()``): :class:`~actors.messages.Trade`, :class:`~actors.messages.Quote`,
:class:`~actors.messages.BookDelta`, :class:`~actors.messages.BookSnapshot`,
:class:`~actors.messages.Bar`.  exchangeInfo is decoded to wire Structs only: the filters are a
tagged union on ``filterType`` with :class:`BinanceUnknownFilter` for types not modelled here.

Field names are the venue's, verbatim (``E`` event time, ``s`` symbol, ``U``/``u`` first/last
update id ...), so a Struct reads side by side with Binance's "WebSocket Streams" and "Market Data
endpoints" pages.  Prices and quantities are JSON strings on the wire and decode straight to
:class:`~decimal.Decimal`.  The Structs accept unknown fields: Binance adds fields without notice.
The stream payloads are keyword-only, so a subclass may narrow a field (``s`` to one symbol)
without moving it.

msgspec checks types and integer ranges; ``parse_to_*`` checks what types cannot (finite,
non-negative, sane magnitude) and raises :class:`BinanceValueError` with the field's name.

:class:`BinanceStreamFrame` is the base of the per-stream frame types that decode a frame's envelope
and payload in one pass (built per connection by :class:`adapters.binance.data.FrameDecoder`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, ClassVar

import msgspec

from actors.messages import Bar, BookDelta, BookSnapshot, Quote, Side, Trade

NS_PER_MS = 1_000_000
MAX_MS = (2**63 - 1) // NS_PER_MS  # event times must fit int64 nanoseconds downstream
MAX_EXPONENT = 18  # Decimal.adjusted(): 10**19 and above is no Binance price, size or volume
ZERO = Decimal(0)
MAX_VALUE = Decimal(10) ** (MAX_EXPONENT + 1)  # for a positive x: x < MAX_VALUE <=> x.adjusted() <= 18

Millis = Annotated[int, msgspec.Meta(ge=0, le=MAX_MS)]
UpdateId = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
Level = tuple[Decimal, Decimal]


class BinanceValueError(ValueError):
    """A field decoded but holds a value no real frame carries (NaN, infinite, negative, absurd)."""


def check_number(name: str, value: Decimal, *, positive: bool = False) -> Decimal:
    """``value`` if finite, non-negative (or positive) and below 1e19, else :class:`BinanceValueError`."""
    # is_finite() first: ordering comparisons on NaN raise decimal.InvalidOperation.
    if value.is_finite() and value.adjusted() <= MAX_EXPONENT and value >= ZERO and (value or not positive):
        return value
    expected = "positive" if positive else "non-negative"
    raise BinanceValueError(f"{name}: expected a finite {expected} number below 1e19, got {value}")


def check_levels(name: str, levels: list[Level]) -> list[Level]:
    """Each ``[price, qty]``: price positive, quantity non-negative (0 removes the level)."""
    for price, qty in levels:  # hot path (every depth level): one inline test, names only on failure
        if not (
            price.is_finite()
            and qty.is_finite()
            and price > ZERO
            and qty >= ZERO
            and price.adjusted() <= MAX_EXPONENT
            and qty.adjusted() <= MAX_EXPONENT
        ):
            check_number(f"{name} price", price, positive=True)
            check_number(f"{name} quantity", qty)
    return levels


def aggressor_side(buyer_is_maker: bool) -> Side:
    """``m`` true: the buyer's order was resting, so the incoming (aggressor) order sold."""
    return "sell" if buyer_is_maker else "buy"


def _trade(
    exchange: str, symbol: str, ts_recv: int, time_ms: int, p: Decimal, q: Decimal, m: bool, trade_id: int
) -> Trade:
    return Trade(
        exchange=exchange,
        symbol=symbol,
        ts_event=time_ms * NS_PER_MS,
        ts_recv=ts_recv,
        price=check_number("p", p, positive=True),
        size=check_number("q", q, positive=True),
        side=aggressor_side(m),
        trade_id=str(trade_id),
    )


# --- combined stream envelope -------------------------------------------------------------------


class BinanceWsError(msgspec.Struct, frozen=True):
    code: int = 0
    msg: str = ""


class BinanceStreamEnvelope(msgspec.Struct, frozen=True):
    """One frame of ``/stream?streams=...``: market data (``stream`` + ``data``) or a reply.

    Replies to our ``SUBSCRIBE``/``LIST_SUBSCRIPTIONS``/... requests carry the request ``id`` and a
    ``result`` (``null`` on success), or an ``error``.  ``data`` and ``result`` stay raw here.
    """

    stream: str | None = None
    data: msgspec.Raw = msgspec.Raw(b"")
    id: int | str | None = None
    result: msgspec.Raw = msgspec.Raw(b"")
    error: BinanceWsError | None = None


class BinanceStreamFrame(msgspec.Struct, frozen=True, gc=False, kw_only=True, tag_field="stream"):
    """Base of the one-pass frame types: one subclass per stream name, tagged by it (``stream``).

    A decoder for the union of a connection's subclasses reads a frame's envelope and its typed
    payload in one pass and picks the subclass by the stream name.  The envelope fields and types
    are :class:`BinanceStreamEnvelope`'s, so a frame decodes here only if it decodes there too;
    ``data`` is overridden by each subclass with its payload type.  ``route`` is set per subclass
    by its maker (:mod:`adapters.binance.data`).
    """

    data: Any
    id: int | str | None = None
    result: msgspec.Raw = msgspec.Raw(b"")
    error: BinanceWsError | None = None
    route: ClassVar[Any] = None


# --- market stream payloads ---------------------------------------------------------------------


class BinanceAggTrade(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """``<symbol>@aggTrade``: trades of one taker order at one price, aggregated.

    Fields in wire order (msgspec decodes fastest when the keys come in field order).
    """

    e: str
    E: Millis
    s: str
    a: UpdateId
    p: Decimal
    q: Decimal
    f: int = 0
    l: int = 0  # noqa: E741 - the venue's name for the last trade id
    T: Millis
    m: bool
    M: bool = True

    def parse_to_trade(self, exchange: str, symbol: str, ts_recv: int) -> Trade:
        return _trade(exchange, symbol, ts_recv, self.T, self.p, self.q, self.m, self.a)


class BinanceTrade(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """``<symbol>@trade``: one raw trade (``b``/``a`` order ids were dropped from the stream in 2023)."""

    e: str
    E: Millis
    s: str
    t: UpdateId
    p: Decimal
    q: Decimal
    T: Millis
    m: bool
    M: bool = True

    def parse_to_trade(self, exchange: str, symbol: str, ts_recv: int) -> Trade:
        return _trade(exchange, symbol, ts_recv, self.T, self.p, self.q, self.m, self.t)


class BinanceBookTicker(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """``<symbol>@bookTicker``: best bid/ask.  The spot payload has no event time."""

    u: UpdateId
    s: str
    b: Decimal
    B: Decimal
    a: Decimal
    A: Decimal

    def parse_to_quote(self, exchange: str, symbol: str, ts_recv: int) -> Quote:
        return Quote(
            exchange=exchange,
            symbol=symbol,
            ts_event=ts_recv,
            ts_recv=ts_recv,
            bid_price=check_number("b", self.b),
            bid_size=check_number("B", self.B),
            ask_price=check_number("a", self.a),
            ask_size=check_number("A", self.A),
        )


class BinanceDepthUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """``<symbol>@depth[@100ms]``: changed levels between update ids ``U`` and ``u`` (inclusive)."""

    e: str
    E: Millis
    s: str
    U: UpdateId
    u: UpdateId
    b: list[Level]
    a: list[Level]

    def parse_to_book_delta(self, exchange: str, symbol: str, ts_recv: int) -> BookDelta:
        if self.u < self.U:
            raise BinanceValueError(f"U: first update id {self.U} is after last update id u {self.u}")
        return BookDelta(
            exchange=exchange,
            symbol=symbol,
            ts_event=self.E * NS_PER_MS,
            ts_recv=ts_recv,
            bids=check_levels("b", self.b),
            asks=check_levels("a", self.a),
            first_seq=self.U,
            last_seq=self.u,
        )


class BinanceKline(msgspec.Struct, frozen=True):
    """The ``k`` object of a kline event: one candle, ``x`` true once it is closed."""

    t: Millis
    T: Millis
    s: str
    i: str
    o: Decimal
    c: Decimal
    h: Decimal
    l: Decimal  # noqa: E741 - the venue's name for the low
    v: Decimal
    n: Annotated[int, msgspec.Meta(ge=0)]
    x: bool
    f: int = -1
    L: int = -1
    q: Decimal = ZERO
    V: Decimal = ZERO
    Q: Decimal = ZERO


class BinanceKlineEvent(msgspec.Struct, frozen=True, kw_only=True):
    """``<symbol>@kline_<interval>``: pushed on every update of the current candle."""

    e: str
    E: Millis
    s: str
    k: BinanceKline

    def parse_to_bar(self, exchange: str, symbol: str, ts_recv: int) -> Bar | None:
        """The closed candle as a :class:`Bar`; ``None`` while it is still open (``x`` false)."""
        k = self.k
        if not k.x:
            return None
        if k.t > k.T:
            raise BinanceValueError(f"T: close time {k.T} is before open time t {k.t}")
        # Binance's T is the candle's last millisecond; our bars close at ts_open + interval.
        close_ms = k.T + 1
        return Bar(
            exchange=exchange,
            symbol=symbol,
            ts_event=close_ms * NS_PER_MS,
            ts_recv=ts_recv,
            ts_open=k.t * NS_PER_MS,
            interval_s=(close_ms - k.t) // 1000,
            open=check_number("o", k.o, positive=True),
            high=check_number("h", k.h, positive=True),
            low=check_number("l", k.l, positive=True),
            close=check_number("c", k.c, positive=True),
            volume=check_number("v", k.v),
            trades=k.n,
        )


# --- REST ---------------------------------------------------------------------------------------


class BinanceDepthSnapshot(msgspec.Struct, frozen=True):
    """``GET /api/v3/depth``: the book at update id ``lastUpdateId``.  No event time on the wire."""

    lastUpdateId: UpdateId
    bids: list[Level]
    asks: list[Level]

    def parse_to_book_snapshot(self, exchange: str, symbol: str, ts_recv: int) -> BookSnapshot:
        return BookSnapshot(
            exchange=exchange,
            symbol=symbol,
            ts_event=ts_recv,
            ts_recv=ts_recv,
            bids=check_levels("bids", self.bids),
            asks=check_levels("asks", self.asks),
            seq=self.lastUpdateId,
        )


# --- exchangeInfo -------------------------------------------------------------------------------


class BinanceFilter(msgspec.Struct, frozen=True, tag_field="filterType"):
    """Base of the symbol filters we know, tagged by ``filterType`` (``GET /api/v3/exchangeInfo``)."""


class BinancePriceFilter(BinanceFilter, frozen=True, tag="PRICE_FILTER"):
    minPrice: Decimal
    maxPrice: Decimal
    tickSize: Decimal


class BinancePercentPriceFilter(BinanceFilter, frozen=True, tag="PERCENT_PRICE"):
    multiplierUp: Decimal
    multiplierDown: Decimal
    avgPriceMins: int = 0


class BinancePercentPriceBySideFilter(BinanceFilter, frozen=True, tag="PERCENT_PRICE_BY_SIDE"):
    bidMultiplierUp: Decimal
    bidMultiplierDown: Decimal
    askMultiplierUp: Decimal
    askMultiplierDown: Decimal
    avgPriceMins: int = 0


class BinanceLotSizeFilter(BinanceFilter, frozen=True, tag="LOT_SIZE"):
    minQty: Decimal
    maxQty: Decimal
    stepSize: Decimal


class BinanceMarketLotSizeFilter(BinanceFilter, frozen=True, tag="MARKET_LOT_SIZE"):
    minQty: Decimal
    maxQty: Decimal
    stepSize: Decimal


class BinanceMinNotionalFilter(BinanceFilter, frozen=True, tag="MIN_NOTIONAL"):
    minNotional: Decimal
    applyToMarket: bool = True
    avgPriceMins: int = 0


class BinanceNotionalFilter(BinanceFilter, frozen=True, tag="NOTIONAL"):
    minNotional: Decimal
    maxNotional: Decimal = ZERO
    applyMinToMarket: bool = True
    applyMaxToMarket: bool = False
    avgPriceMins: int = 0


class BinanceUnknownFilter(msgspec.Struct, frozen=True):
    """Any ``filterType`` not modelled above (``MAX_POSITION``, ``TRAILING_DELTA`` ...): kept by name."""

    filterType: str


class _FilterType(msgspec.Struct, frozen=True):
    filterType: str


KnownFilter = (
    BinancePriceFilter
    | BinancePercentPriceFilter
    | BinancePercentPriceBySideFilter
    | BinanceLotSizeFilter
    | BinanceMarketLotSizeFilter
    | BinanceMinNotionalFilter
    | BinanceNotionalFilter
)
BinanceSymbolFilter = KnownFilter | BinanceUnknownFilter
_KNOWN_FILTERS = frozenset(cls.__struct_config__.tag for cls in BinanceFilter.__subclasses__())
_FILTER_DECODER: msgspec.json.Decoder[KnownFilter] = msgspec.json.Decoder(KnownFilter)
_FILTER_TYPE_DECODER = msgspec.json.Decoder(_FilterType)


def decode_filter(raw: msgspec.Raw | bytes) -> BinanceSymbolFilter:
    """One filter object; an unknown ``filterType`` becomes :class:`BinanceUnknownFilter`.

    msgspec tagged unions have no fallback member, so the tag is peeked at first.
    """
    filter_type = _FILTER_TYPE_DECODER.decode(raw).filterType
    if filter_type not in _KNOWN_FILTERS:
        return BinanceUnknownFilter(filterType=filter_type)
    return _FILTER_DECODER.decode(raw)


class BinanceSymbolInfo(msgspec.Struct, frozen=True):
    """One entry of ``symbols``; ``filters`` stay raw until :meth:`parse_filters` (1,695 symbols)."""

    symbol: str
    status: str
    baseAsset: str
    quoteAsset: str
    filters: list[msgspec.Raw] = []
    baseAssetPrecision: int = 8
    quoteAssetPrecision: int = 8
    orderTypes: list[str] = []
    permissions: list[str] = []
    ocoAllowed: bool = False  # orderList/oco allowed on this symbol
    otoAllowed: bool = False

    def parse_filters(self) -> list[BinanceSymbolFilter]:
        return [decode_filter(raw) for raw in self.filters]


class BinanceRateLimit(msgspec.Struct, frozen=True):
    rateLimitType: str
    interval: str
    intervalNum: int
    limit: int


class BinanceExchangeInfo(msgspec.Struct, frozen=True):
    """``GET /api/v3/exchangeInfo``: rate limits and every symbol's trading rules."""

    timezone: str
    serverTime: Millis
    rateLimits: list[BinanceRateLimit]
    symbols: list[BinanceSymbolInfo]


# Decoders are built once: msgspec compiles the type tree at construction.
ENVELOPE_DECODER = msgspec.json.Decoder(BinanceStreamEnvelope)
AGG_TRADE_DECODER = msgspec.json.Decoder(BinanceAggTrade)
TRADE_DECODER = msgspec.json.Decoder(BinanceTrade)
BOOK_TICKER_DECODER = msgspec.json.Decoder(BinanceBookTicker)
DEPTH_UPDATE_DECODER = msgspec.json.Decoder(BinanceDepthUpdate)
KLINE_DECODER = msgspec.json.Decoder(BinanceKlineEvent)
DEPTH_SNAPSHOT_DECODER = msgspec.json.Decoder(BinanceDepthSnapshot)
EXCHANGE_INFO_DECODER = msgspec.json.Decoder(BinanceExchangeInfo)
