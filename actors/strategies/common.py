"""Building blocks shared by the strategies: bar checks, signals, intents, price levels.

Every strategy builds its outputs here so they look alike on the bus:

- intent ids are ``{exchange}:{symbol}:{strategy}:{ts_event}:{tag}`` (the tag says what
  the intent is, e.g. ``buy``, ``exit-sell``, ``grid-buy-3``), so a replay after a crash
  gives the same ids and the order actor refuses a re-sent one;
- quantities are floored to the step (:func:`~actors.strategies.base.floor_to_step`),
  prices rounded to the tick (:func:`~actors.strategies.base.round_to_tick`);
- exits are ``reduce_only`` and carry no stop-loss; entries carry the stop-loss risk
  requires (``risk.require_stop_loss``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Generic, Self, TypeVar

from actors.bar_check import bar_ok
from actors.messages import Bar, OrderIntent, OrderType, Quote, Side, Signal, Trade
from actors.strategies.base import OpenOrder, Output, StrategyContext, round_to_tick

S = TypeVar("S")
P = TypeVar("P")


class BarStrategy(Generic[S, P]):
    """What the bar-only strategies share: trades and quotes are ignored (``consumes`` is empty),
    ``params`` are kept, and a config reload builds the same strategy with the new parameters."""

    consumes: frozenset[str] = frozenset()

    def __init__(self, params: P) -> None:
        self._params = params

    @property
    def params(self) -> P:
        return self._params

    def with_params(self, params: P) -> Self:
        return type(self)(params)

    def on_trade(self, state: S, trade: Trade, ctx: StrategyContext) -> tuple[S, list[Output]]:
        return state, []

    def on_quote(self, state: S, quote: Quote, ctx: StrategyContext) -> tuple[S, list[Output]]:
        return state, []

    def reconcile(self, state: S, ctx: StrategyContext, orders: Sequence[OpenOrder]) -> S:
        """Nothing of the state depends on orders: position and open orders are read from the
        context on every bar (the grid overrides this)."""
        return state


_HUNDRED = Decimal(100)

Prices = tuple[float, float, float, float]


def bar_prices(bar: Bar) -> Prices | None:
    """``(open, high, low, close)`` as floats, or None for a bar a strategy must ignore:
    a price that is not finite and > 0, low > high, or a volume that is not finite and >= 0."""
    try:
        o, hi, lo, c, v = (
            float(bar.open),
            float(bar.high),
            float(bar.low),
            float(bar.close),
            float(bar.volume),
        )
    except ValueError:  # signalling NaN
        return None
    inf = math.inf
    if 0.0 < lo <= hi < inf and 0.0 < o < inf and 0.0 < c < inf and 0.0 <= v < inf:
        return o, hi, lo, c
    return None


_TINY = Decimal("1e-300")  # converts to a float > 0
_HUGE = Decimal("1e300")  # converts to a finite float


def bar_close(bar: Bar) -> float | None:
    """``bar_prices(bar)[3]`` (the close as a float), or None when :func:`bar_prices` is None.

    A bar that :func:`~actors.bar_check.bar_ok` accepts (market-feed already asked, so that
    answer is a lookup) and whose prices and volume lie within ``[1e-300, 1e300]`` passes
    :func:`bar_prices` too (float conversion is monotonic): only its close is converted.
    """
    if bar_ok(bar) and bar.low >= _TINY and bar.high <= _HUGE and bar.volume <= _HUGE:
        return float(bar.close)
    prices = bar_prices(bar)
    return None if prices is None else prices[3]


def pct(value: float) -> Decimal:
    """A percentage parameter as an exact fraction (0.3 -> 0.003)."""
    return Decimal(str(value)) / _HUNDRED


def level(price: Decimal, offset: Decimal, tick: Decimal) -> Decimal | None:
    """``price * (1 + offset)`` rounded to the tick; None for no offset or a level <= 0."""
    if offset == 0 or tick <= 0:
        return None
    out = round_to_tick(price * (1 + offset), tick)
    return out if out > 0 else None


def offset_level(price: Decimal, distance: Decimal, tick: Decimal) -> Decimal | None:
    """``price + distance`` rounded to the tick; None for no distance or a level <= 0."""
    if distance == 0 or tick <= 0:
        return None
    out = round_to_tick(price + distance, tick)
    return out if out > 0 else None


def make_signal(
    ctx: StrategyContext, name: str, ts: int, side: Side, price: Decimal, reason: str, confidence: float = 1.0
) -> Signal:
    return Signal(
        exchange=ctx.exchange,
        symbol=ctx.symbol,
        ts_event=ts,
        ts_recv=ctx.now_ns,
        strategy=name,
        side=side,
        confidence=confidence,
        price=price,
        reason=reason,
    )


def make_intent(
    ctx: StrategyContext,
    name: str,
    ts: int,
    tag: str,
    side: Side,
    quantity: Decimal,
    reason: str,
    *,
    order_type: OrderType = "market",
    price: Decimal | None = None,
    reduce_only: bool = False,
    stop_loss: Decimal | None = None,
    take_profit: Decimal | None = None,
    post_only: bool = False,
) -> OrderIntent:
    return OrderIntent(
        exchange=ctx.exchange,
        symbol=ctx.symbol,
        ts_event=ts,
        ts_recv=ctx.now_ns,
        intent_id=f"{ctx.exchange}:{ctx.symbol}:{name}:{ts}:{tag}",
        source=f"strategy:{name}",
        side=side,
        order_type=order_type,
        quantity=quantity,
        price=price,
        reduce_only=reduce_only,
        stop_loss=stop_loss,
        take_profit=take_profit,
        reason=reason,
        post_only=post_only,
    )


def exit_long(ctx: StrategyContext, name: str, ts: int, reason: str) -> OrderIntent:
    """A reduce-only market sell of the whole (long) position."""
    return make_intent(ctx, name, ts, "exit-sell", "sell", ctx.position, reason, reduce_only=True)


def cross_above(prev_a: float | None, prev_b: float | None, a: float | None, b: float | None) -> bool:
    """backtesting.py's ``crossover(a, b)``: ``a[-2] < b[-2] and a[-1] > b[-1]`` (strict both)."""
    if prev_a is None or prev_b is None or a is None or b is None:
        return False
    return prev_a < prev_b and a > b
