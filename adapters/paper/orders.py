"""Paper orders: the record of one open order, submit validation, and the book's trigger levels.

Used by :class:`adapters.paper.engine.PaperEngine`; handles no messages itself.
:func:`check_order` turns a ``SubmitOrder`` into a reject reason (or ``None``) from the
instrument's rules alone; :class:`PaperOrder` is what the engine keeps per accepted order;
:class:`BookLevels` summarises the open orders so that a market event that cannot fill or
trigger any of them is recognised with a few comparisons.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from actors.messages import Side, SubmitOrder
from adapters.paper.account import ZERO
from daemon.config import Instrument

INF = Decimal("Infinity")


@dataclass(slots=True)
class PaperOrder:
    """An accepted, still-open order and what it holds of the account."""

    cmd: SubmitOrder
    venue_order_id: str
    seq: int
    reserve_asset: str
    reserve_rate: Decimal  # reservation per unit of leaves quantity
    reserved: Decimal
    cum_qty: Decimal = ZERO
    arrived: int = 0  # the engine's matching-event count when the order arrived
    triggered: bool = False
    trig_px: Decimal | None = None  # set only during the event that triggers a stop

    @property
    def side(self) -> Side:
        return self.cmd.side

    @property
    def leaves(self) -> Decimal:
        return self.cmd.quantity - self.cum_qty

    @property
    def market_like(self) -> bool:
        t = self.cmd.order_type
        return t == "market" or (t == "stop_market" and self.triggered)

    @property
    def active(self) -> bool:
        """Working on the book (stops only once triggered)."""
        return self.cmd.order_type in ("market", "limit") or self.triggered


class BookLevels:
    """Prices at which an event starts to matter to the open orders."""

    __slots__ = ("ask", "bid", "buy_stop", "sell_stop", "urgent")

    def __init__(self, orders: Iterable[PaperOrder]) -> None:
        self.bid, self.ask, self.buy_stop, self.sell_stop = -INF, INF, INF, -INF
        self.urgent = False  # market-like and ioc/fok orders act on every event
        for o in orders:
            if not o.active:
                stop = o.cmd.stop_price or ZERO
                if o.side == "buy":
                    self.buy_stop = min(self.buy_stop, stop)
                else:
                    self.sell_stop = max(self.sell_stop, stop)
            elif o.market_like or o.cmd.time_in_force != "gtc":
                self.urgent = True
            elif o.side == "buy":
                self.bid = max(self.bid, o.cmd.price or ZERO)
            else:
                self.ask = min(self.ask, o.cmd.price or INF)

    def touched(self, high: Decimal, low: Decimal) -> bool:
        """Whether an event trading between ``low`` and ``high`` can fill or trigger anything."""
        return (
            self.urgent
            or low <= self.bid
            or high >= self.ask
            or high >= self.buy_stop
            or low <= self.sell_stop
        )


def ok_price(p: Decimal) -> bool:
    return p.is_finite() and p > ZERO


def on_grid(value: Decimal, step: Decimal) -> bool:
    try:
        return value % step == 0
    except InvalidOperation:  # quotient too large for the context precision
        return False


def reference_price(cmd: SubmitOrder, last_price: Decimal | None) -> Decimal | None:
    """The price an order is valued at before it fills: limit, stop, or the last market price."""
    if cmd.order_type in ("limit", "stop_limit"):
        return cmd.price
    if cmd.order_type == "stop_market":
        return cmd.stop_price
    return last_price


def check_order(cmd: SubmitOrder, inst: Instrument, last_price: Decimal | None) -> str | None:
    """Why ``cmd`` breaks the instrument's rules, or None when it is well formed."""
    return (
        _check_quantity(cmd.quantity, inst.step_size)
        or _check_prices(cmd, inst.tick_size)
        or _check_notional(cmd, inst.min_notional, last_price)
    )


def _check_quantity(qty: Decimal, step: Decimal) -> str | None:
    if not qty.is_finite() or qty <= ZERO:
        return f"invalid quantity {qty}: must be > 0"
    if not on_grid(qty, step):
        return f"invalid quantity {qty}: not a multiple of step_size {step}"
    return None


def _check_prices(cmd: SubmitOrder, tick: Decimal) -> str | None:
    needed: list[tuple[str, Decimal | None]] = []
    if cmd.order_type in ("limit", "stop_limit"):
        needed.append(("price", cmd.price))
    if cmd.order_type in ("stop_market", "stop_limit"):
        needed.append(("stop_price", cmd.stop_price))
    for name, value in needed:
        if value is None:
            return f"missing {name}: required for {cmd.order_type} orders"
        if not ok_price(value):
            return f"invalid {name} {value}: must be > 0"
        if not on_grid(value, tick):
            return f"invalid {name} {value}: not a multiple of tick_size {tick}"
    return None


def _check_notional(cmd: SubmitOrder, min_notional: Decimal, last_price: Decimal | None) -> str | None:
    ref = reference_price(cmd, last_price)
    if ref is None:
        return "no market price yet: a market order needs a trade, bar or quote first"
    notional = cmd.quantity * ref
    if notional < min_notional:
        return f"notional {notional} below min_notional {min_notional}"
    return None
