"""Binance symbol rules from ``GET /api/v3/exchangeInfo``, and checking an order against them.

:func:`parse_exchange_info` decodes the reply with msgspec into the wire Structs of
:mod:`adapters.binance.schemas`.  The venue adds fields and filter types over time, so decoding is
tolerant: unknown fields are ignored, and a filter whose ``filterType`` is not one we enforce
(``ICEBERG_PARTS``, ``MAX_NUM_ORDERS``, ``TRAILING_DELTA``, anything new) is skipped.  A filter we
do enforce must be well formed, or :meth:`SymbolRules.from_symbol` fails: a silently missing tick
size would be worse than no rules at all.

:meth:`SymbolRules.prepare` takes a :class:`BinanceNewOrder` and the last traded price and
returns either the order ready for the wire -- price and stopPrice rounded to the tick (nearest,
:func:`round_to_tick`), quantity rounded DOWN to the step (:func:`floor_to_step`, never up) --
or a :class:`Rejection` naming the filter that would refuse it and why.  :meth:`SymbolRules.check`
validates without rounding (what the venue, or tests/fake_binance.py, does).

Rules follow Binance's spot filters documentation (filters.md): ``0`` disables a PRICE_FILTER
part (and, here, any min/max/step); PERCENT_PRICE(_BY_SIDE) and MARKET notional compare with
the weighted average price over ``avgPriceMins``, for which the last price stands in (exact when
``avgPriceMins`` is 0).  Checks needing a reference price are skipped when none is given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import msgspec

from actors.strategies.base import floor_to_step, round_to_tick
from adapters.binance.errors import BinanceBadReply
from adapters.binance.schemas import (
    EXCHANGE_INFO_DECODER,
    BinanceExchangeInfo,
    BinanceLotSizeFilter,
    BinanceMarketLotSizeFilter,
    BinanceMinNotionalFilter,
    BinanceNotionalFilter,
    BinancePercentPriceBySideFilter,
    BinancePercentPriceFilter,
    BinancePriceFilter,
    BinanceSymbolInfo,
)

__all__ = [
    "BinanceNewOrder",
    "Rejection",
    "SymbolRules",
    "parse_exchange_info",
    "rules_by_symbol",
]

BinanceSide = Literal["BUY", "SELL"]
BinanceOrderType = Literal[
    "MARKET", "LIMIT", "LIMIT_MAKER", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"
]
BinanceTimeInForce = Literal["GTC", "IOC", "FOK"]

ZERO = Decimal(0)

# Which optional parameters each order type needs (Binance "New order": mandatory parameters).
_NEEDS: dict[str, frozenset[str]] = {
    "MARKET": frozenset(),
    "LIMIT": frozenset({"price", "timeInForce"}),
    "LIMIT_MAKER": frozenset({"price"}),
    "STOP_LOSS": frozenset({"stopPrice"}),
    "TAKE_PROFIT": frozenset({"stopPrice"}),
    "STOP_LOSS_LIMIT": frozenset({"price", "stopPrice", "timeInForce"}),
    "TAKE_PROFIT_LIMIT": frozenset({"price", "stopPrice", "timeInForce"}),
}


# --- order and verdict ------------------------------------------------------------------------


class BinanceNewOrder(msgspec.Struct, frozen=True, kw_only=True):
    """A new spot order as sent to ``POST /api/v3/order`` (``newClientOrderId`` = our client order id)."""

    symbol: str
    side: BinanceSide
    type: BinanceOrderType
    quantity: Decimal
    newClientOrderId: str
    price: Decimal | None = None
    stopPrice: Decimal | None = None
    timeInForce: BinanceTimeInForce | None = None


class Rejection(msgspec.Struct, frozen=True):
    """The order would fail ``filter`` (a Binance filter type, or STATUS/ORDER_TYPES/PARAMETERS)."""

    filter: str
    reason: str


_FILTER_FIELD: dict[type[msgspec.Struct], str] = {
    BinancePriceFilter: "price_filter",
    BinancePercentPriceFilter: "percent_price",
    BinancePercentPriceBySideFilter: "percent_price_by_side",
    BinanceLotSizeFilter: "lot_size",
    BinanceMarketLotSizeFilter: "market_lot_size",
    BinanceMinNotionalFilter: "min_notional",
    BinanceNotionalFilter: "notional",
}


def parse_exchange_info(data: bytes | str) -> BinanceExchangeInfo:
    """Decode an exchangeInfo reply (raises ``msgspec.DecodeError``/``ValidationError`` if malformed)."""
    return EXCHANGE_INFO_DECODER.decode(data)


def rules_by_symbol(info: BinanceExchangeInfo) -> dict[str, SymbolRules]:
    return {s.symbol: SymbolRules.from_symbol(s) for s in info.symbols}


def _s(value: Decimal) -> str:
    return format(value, "f")


def _n(value: Decimal) -> str:
    """A computed value (notional, band bound) without the trailing zeros of the multiplication."""
    return format(value.normalize(), "f")


def _range(
    filter_name: str, what: str, value: Decimal, low: Decimal, high: Decimal, names: tuple[str, str]
) -> Rejection | None:
    """``low <= value <= high``, where a zero bound is disabled."""
    if low > ZERO and value < low:
        return Rejection(filter_name, f"{what} {_s(value)} is below {names[0]} {_s(low)}")
    if high > ZERO and value > high:
        return Rejection(filter_name, f"{what} {_s(value)} is above {names[1]} {_s(high)}")
    return None


def _multiple(filter_name: str, what: str, value: Decimal, step: Decimal, name: str) -> Rejection | None:
    if step > ZERO and value % step != ZERO:
        return Rejection(filter_name, f"{what} {_s(value)} is not a multiple of {name} {_s(step)}")
    return None


def _band(
    filter_name: str, price: Decimal, last: Decimal, up: tuple[str, Decimal], down: tuple[str, Decimal]
) -> Rejection | None:
    """``last * down <= price <= last * up`` (PERCENT_PRICE and PERCENT_PRICE_BY_SIDE)."""
    high, low = last * up[1], last * down[1]
    if price > high:
        reason = f"price {_s(price)} is above {_n(high)} = last price {_s(last)} x {up[0]} {_s(up[1])}"
        return Rejection(filter_name, reason)
    if price < low:
        reason = f"price {_s(price)} is below {_n(low)} = last price {_s(last)} x {down[0]} {_s(down[1])}"
        return Rejection(filter_name, reason)
    return None


def _numbers(order: BinanceNewOrder) -> tuple[tuple[str, Decimal | None], ...]:
    return (("quantity", order.quantity), ("price", order.price), ("stopPrice", order.stopPrice))


def _check_params(order: BinanceNewOrder, last: Decimal | None) -> Rejection | None:
    """Each parameter the type needs is there, no other, and numbers are finite and not negative."""
    needs = _NEEDS[order.type]
    for name in ("price", "stopPrice", "timeInForce"):
        present = getattr(order, name) is not None
        if name in needs and not present:
            return Rejection("PARAMETERS", f"{order.type} order needs {name}")
        if present and name not in needs:
            return Rejection("PARAMETERS", f"{order.type} order takes no {name}")
    for name, value in _numbers(order):
        if value is not None and not (value.is_finite() and value >= ZERO):
            return Rejection("PARAMETERS", f"{name} must be a positive number, not {value}")
    return None


def _check_positive(order: BinanceNewOrder, last: Decimal | None) -> Rejection | None:
    """Zero after rounding is normally a minQty/minPrice failure; this catches it where those are off."""
    for name, value in _numbers(order):
        if value is not None and value == ZERO:
            return Rejection("PARAMETERS", f"{name} must be a positive number, not {value}")
    return None


def _notional_price(order: BinanceNewOrder, last: Decimal | None) -> Decimal | None:
    """The price a notional is computed with: the limit price, else the stop price, else the last price."""
    if order.price is not None:
        return order.price
    return order.stopPrice if order.stopPrice is not None else last


@dataclass(frozen=True, slots=True)
class SymbolRules:
    """What exchangeInfo says one symbol accepts; ``None`` where the venue sends no such filter."""

    symbol: str
    status: str
    base_asset: str
    quote_asset: str
    order_types: frozenset[str]
    price_filter: BinancePriceFilter | None = None
    percent_price: BinancePercentPriceFilter | None = None
    percent_price_by_side: BinancePercentPriceBySideFilter | None = None
    lot_size: BinanceLotSizeFilter | None = None
    market_lot_size: BinanceMarketLotSizeFilter | None = None
    min_notional: BinanceMinNotionalFilter | None = None
    notional: BinanceNotionalFilter | None = None
    oco_allowed: bool = False  # exchangeInfo ocoAllowed: POST /api/v3/orderList/oco is accepted
    oto_allowed: bool = False

    @classmethod
    def from_symbol(cls, sym: BinanceSymbolInfo) -> SymbolRules:
        """Raises BinanceBadReply for a filter with a number that is not finite and >= 0."""
        found: dict[str, Any] = {}
        for f in sym.parse_filters():
            name = _FILTER_FIELD.get(type(f))
            if name is not None:  # filter types we do not enforce are skipped on purpose
                for field in msgspec.structs.fields(f):
                    value = getattr(f, field.name)
                    if isinstance(value, Decimal) and not (value.is_finite() and value >= 0):
                        raise BinanceBadReply(
                            f"exchangeInfo {sym.symbol}: {type(f).__name__}.{field.name} = {value}"
                        )
                found[name] = f
        return cls(
            sym.symbol,
            sym.status,
            sym.baseAsset,
            sym.quoteAsset,
            frozenset(sym.orderTypes),
            oco_allowed=sym.ocoAllowed,
            oto_allowed=sym.otoAllowed,
            **found,
        )

    @property
    def tick_size(self) -> Decimal:
        return self.price_filter.tickSize if self.price_filter else ZERO

    @property
    def step_size(self) -> Decimal:
        return self.lot_size.stepSize if self.lot_size else ZERO

    def prepare(
        self, order: BinanceNewOrder, last_price: Decimal | None = None
    ) -> BinanceNewOrder | Rejection:
        """Round ``order`` to the tick and (down) to the step, then :meth:`check` it."""
        bad = _check_params(order, last_price) or _check_positive(order, last_price)
        if bad is not None:
            return bad
        rounded = self._round(order)
        return self.check(rounded, last_price) or rounded

    def check(self, order: BinanceNewOrder, last_price: Decimal | None = None) -> Rejection | None:
        """The first rule ``order`` breaks, as the venue would name it, or ``None``."""
        checks: tuple[Callable[[BinanceNewOrder, Decimal | None], Rejection | None], ...] = (
            self._check_status,
            _check_params,
            self._check_price_filter,
            self._check_percent_price,
            self._check_lot_size,
            self._check_min_notional,
            self._check_notional,
            _check_positive,
        )
        for rule in checks:
            rejection = rule(order, last_price)
            if rejection is not None:
                return rejection
        return None

    def _round(self, order: BinanceNewOrder) -> BinanceNewOrder:
        tick = self.tick_size
        qty = order.quantity
        steps = [self.step_size]
        if order.type == "MARKET" and self.market_lot_size is not None:
            steps.append(self.market_lot_size.stepSize)
        for step in steps:
            qty = floor_to_step(qty, step) if step > ZERO else qty
        price, stop = order.price, order.stopPrice
        if tick > ZERO:
            price = None if price is None else round_to_tick(price, tick)
            stop = None if stop is None else round_to_tick(stop, tick)
        return msgspec.structs.replace(order, quantity=qty, price=price, stopPrice=stop)

    def _check_status(self, order: BinanceNewOrder, last: Decimal | None) -> Rejection | None:
        if self.status != "TRADING":
            return Rejection("STATUS", f"{self.symbol} is {self.status}, not TRADING")
        if self.order_types and order.type not in self.order_types:
            return Rejection("ORDER_TYPES", f"{order.type} orders are not allowed on {self.symbol}")
        return None

    def _check_price_filter(self, order: BinanceNewOrder, last: Decimal | None) -> Rejection | None:
        f = self.price_filter
        if f is None:
            return None
        for what, value in (("price", order.price), ("stopPrice", order.stopPrice)):
            if value is None:
                continue
            bad = _range("PRICE_FILTER", what, value, f.minPrice, f.maxPrice, ("minPrice", "maxPrice"))
            bad = bad or _multiple("PRICE_FILTER", what, value, f.tickSize, "tickSize")
            if bad is not None:
                return bad
        return None

    def _check_percent_price(self, order: BinanceNewOrder, last: Decimal | None) -> Rejection | None:
        if order.price is None or last is None:
            return None
        if (pp := self.percent_price) is not None:
            bad = _band(
                "PERCENT_PRICE",
                order.price,
                last,
                ("multiplierUp", pp.multiplierUp),
                ("multiplierDown", pp.multiplierDown),
            )
            if bad is not None:
                return bad
        if (ps := self.percent_price_by_side) is None:
            return None
        if order.side == "BUY":
            up, down = ("bidMultiplierUp", ps.bidMultiplierUp), ("bidMultiplierDown", ps.bidMultiplierDown)
        else:
            up, down = ("askMultiplierUp", ps.askMultiplierUp), ("askMultiplierDown", ps.askMultiplierDown)
        return _band("PERCENT_PRICE_BY_SIDE", order.price, last, up, down)

    def _check_lot_size(self, order: BinanceNewOrder, last: Decimal | None) -> Rejection | None:
        lots: list[tuple[str, BinanceLotSizeFilter | BinanceMarketLotSizeFilter | None]]
        lots = [("LOT_SIZE", self.lot_size)]
        if order.type == "MARKET":
            lots.append(("MARKET_LOT_SIZE", self.market_lot_size))
        for name, f in lots:
            if f is None:
                continue
            q = order.quantity
            bad = _range(name, "quantity", q, f.minQty, f.maxQty, ("minQty", "maxQty"))
            bad = bad or _multiple(name, "quantity", q, f.stepSize, "stepSize")
            if bad is not None:
                return bad
        return None

    def _check_min_notional(self, order: BinanceNewOrder, last: Decimal | None) -> Rejection | None:
        f = self.min_notional
        price = _notional_price(order, last)
        if f is None or price is None or (order.type == "MARKET" and not f.applyToMarket):
            return None
        notional = price * order.quantity
        if notional < f.minNotional:
            return Rejection(
                "MIN_NOTIONAL", f"notional {_n(notional)} is below minNotional {_s(f.minNotional)}"
            )
        return None

    def _check_notional(self, order: BinanceNewOrder, last: Decimal | None) -> Rejection | None:
        f = self.notional
        price = _notional_price(order, last)
        if f is None or price is None:
            return None
        market = order.type == "MARKET"
        notional = price * order.quantity
        if (f.applyMinToMarket or not market) and notional < f.minNotional:
            return Rejection("NOTIONAL", f"notional {_n(notional)} is below minNotional {_s(f.minNotional)}")
        if (f.applyMaxToMarket or not market) and f.maxNotional > ZERO and notional > f.maxNotional:
            return Rejection("NOTIONAL", f"notional {_n(notional)} is above maxNotional {_s(f.maxNotional)}")
        return None
