"""The strategy interface: pure ``(state, event, ctx) -> (state, outputs)`` functions.

A strategy owns logic only; the strategy actor owns I/O.  Given the same state, event
and context a strategy returns the same result, which is what lets one strategy run
live, on paper and in backtests.  Outputs are :class:`Signal` (recorded) and
:class:`OrderIntent` (sent to risk) messages, and :class:`CancelIntent` (withdraw an earlier
intent: the order actor cancels the order it became).

``StrategyContext`` is what the actor knows and the strategy may read: the current
position, the instrument's tick and step sizes, the notional risk allows, and the time.

After a restart the actor calls ``reconcile(state, ctx, orders)`` once, on the first market
event, with the recovered position (``ctx``) and the strategy's open orders
(:class:`OpenOrder`): a state restored from a snapshot or checkpoint can be older than them
(orders filled or ended while it was not saved), and whatever in it depends on orders or
position is re-derived there.  Strategies that keep no such state return it unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import Generic, Protocol, TypeVar

import msgspec

from actors.messages import Bar, CancelIntent, OrderIntent, Quote, Side, Signal, Trade

S = TypeVar("S")

Output = Signal | OrderIntent | CancelIntent


class StrategyContext(msgspec.Struct, frozen=True, kw_only=True):
    exchange: str
    symbol: str
    now_ns: int
    position: Decimal
    avg_price: Decimal
    max_notional: Decimal
    tick_size: Decimal
    step_size: Decimal
    open_orders: int = 0


class OpenOrder(msgspec.Struct, frozen=True, kw_only=True):
    """One of the strategy's orders still working, as recovered after a restart."""

    intent_id: str
    side: Side
    price: Decimal | None
    leaves: Decimal


def round_to_tick(price: Decimal, tick: Decimal) -> Decimal:
    """Nearest multiple of ``tick`` (banker's rounding at exact halves)."""
    return (price / tick).quantize(Decimal(1), rounding=ROUND_HALF_EVEN) * tick


def floor_to_step(qty: Decimal, step: Decimal) -> Decimal:
    """Largest multiple of ``step`` not above ``qty``: never round a size up."""
    return (qty / step).quantize(Decimal(1), rounding=ROUND_DOWN) * step


class Strategy(Protocol, Generic[S]):
    """What the strategy actor calls. Implementations are plain classes holding their parameters."""

    name: str
    consumes: frozenset[str]
    """Market data the strategy wants besides bars: any of "trade", "quote". Only those are routed to it."""

    def initial_state(self) -> S: ...

    def on_bar(self, state: S, bar: Bar, ctx: StrategyContext) -> tuple[S, list[Output]]: ...

    def on_trade(self, state: S, trade: Trade, ctx: StrategyContext) -> tuple[S, list[Output]]: ...

    def on_quote(self, state: S, quote: Quote, ctx: StrategyContext) -> tuple[S, list[Output]]: ...

    def reconcile(self, state: S, ctx: StrategyContext, orders: Sequence[OpenOrder]) -> S:
        """After a restart: ``state`` brought in line with the recovered position and open orders."""
        ...
