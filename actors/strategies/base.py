"""The strategy interface: pure ``(state, event, ctx) -> (state, outputs)`` functions.

A strategy owns logic only; the strategy actor owns I/O.  Given the same state, event
and context a strategy returns the same result, which is what lets one strategy run
live, on paper and in backtests.  Outputs are :class:`Signal` (recorded) and
:class:`OrderIntent` (sent to risk) messages, and :class:`CancelIntent` (withdraw an earlier
intent: the order actor cancels the order it became).

``StrategyContext`` is what the actor knows and the strategy may read: the current
position, the instrument's tick and step sizes, the notional risk allows, and the time.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import Generic, Protocol, TypeVar

import msgspec

from actors.messages import Bar, CancelIntent, OrderIntent, Quote, Signal, Trade

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
