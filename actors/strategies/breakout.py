"""The seed breakout strategy: trade closes beyond the recent range, confirmed by trend, RSI and volume.

Takes closed :class:`Bar` messages and the :class:`StrategyContext` the strategy actor fills
in (position, tick/step sizes, notional).  Emits a :class:`Signal` for every bar that meets
the BUY or SELL conditions, and an :class:`OrderIntent` when that signal opens or closes a
position.  Trades and quotes are ignored.

Conditions on each closed bar (parameters from :class:`BreakoutParams`; indicators from
TA-Lib, see :mod:`actors.indicators`):

- BUY: close > highest high of the previous ``lookback`` bars (current bar excluded),
  EMA(``ema_fast``) > EMA(``ema_slow``) of closes, RSI(``rsi_period``) < ``rsi_buy_max``,
  volume / SMA(volume, ``volume_sma``) > ``volume_ratio`` (the SMA includes the current bar).
- SELL: close < lowest low of the previous ``lookback`` bars, EMA fast < slow,
  RSI > ``rsi_sell_min``, same volume rule.

Actions (position truth is ``ctx.position``; an intent is never assumed filled):

- flat + BUY: market buy entry, quantity ``floor_to_step(max_notional * min(confidence *
  max_position_fraction, max_position_fraction) / close, step)``, stop-loss and
  take-profit ``stop_loss_pct``/``take_profit_pct`` below/above the close, rounded to the
  tick.  Flat + SELL with ``allow_short``: the mirrored short entry.
  Entries are skipped (the signal is still emitted) within ``cooldown_s`` of the previous
  entry, after ``max_trades_per_day`` entries in the bar's UTC day (event time), or when
  the quantity rounds to zero.
- long + SELL, short + BUY: market exit of the whole position, ``reduce_only``.
- intent ids are ``{exchange}:{symbol}:breakout:{bar.ts_event}:{buy|sell|exit-buy|exit-sell}``,
  so a replay after a crash produces the same ids.

Bars with a price that is not finite and > 0, a volume that is not finite and >= 0, or
low > high are ignored (state unchanged, no output).  No signal before ``warmup`` bars.

State and speed: :class:`BreakoutState` is a frozen msgspec Struct, but its ``series``
(the indicator ring buffers, a :class:`~actors.indicators.BarSeries`) is mutable and is
updated IN PLACE on every bar, so a bar costs a few scalar stores instead of copying the
window.  The strategy stays deterministic; the consequences are:

- always continue from the state returned by the previous call: an older state object
  shares the same series and does not describe the past;
- to branch (e.g. two backtests from one point) call :meth:`BreakoutState.copy`;
- the whole state, buffers included, encodes with ``msgspec.msgpack``/``msgspec.json``
  and decodes with ``type=BreakoutState`` into an independent state that produces the
  same future outputs.  :meth:`BreakoutState.snapshot`/:meth:`BreakoutState.restore` give
  the same content as plain lists instead.

Config reload: a strategy is immutable.  :meth:`BreakoutStrategy.with_params` returns a
new strategy which the actor swaps in, keeping the state; if the new periods need another
window, the series is resized on the next bar (newest bars kept).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

import msgspec

from actors.indicators import (
    DEFAULT_WINDOW_FACTOR,
    BarSeries,
    SeriesSnapshot,
    ema,
    highest_prev,
    lowest_prev,
    rsi,
    sma,
    window_capacity,
)
from actors.messages import Bar, OrderIntent, Quote, Side, Signal, Trade
from actors.params import BreakoutParams
from actors.strategies.base import OpenOrder, Output, StrategyContext, floor_to_step, round_to_tick

if TYPE_CHECKING:
    from actors.strategies.base import Strategy

NAME = "breakout"
SOURCE = "strategy:breakout"
NS_PER_SECOND = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_SECOND
_HUNDRED = Decimal(100)
_ZERO = Decimal(0)

BarValues = tuple[float, float, float, float, float]


class BreakoutSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """A :class:`BreakoutState` as plain data (lists of floats for the bars)."""

    series: SeriesSnapshot
    last_entry_ns: int | None
    day: int
    trades_today: int


class BreakoutState(msgspec.Struct, frozen=True, kw_only=True):
    """Resume data: indicator buffers (mutated in place), last entry time, entries per UTC day."""

    series: BarSeries
    last_entry_ns: int | None = None
    day: int = -1
    trades_today: int = 0

    def copy(self) -> BreakoutState:
        """An independent state (its own buffers)."""
        return msgspec.structs.replace(self, series=self.series.copy())

    def snapshot(self) -> BreakoutSnapshot:
        return BreakoutSnapshot(
            series=self.series.snapshot(),
            last_entry_ns=self.last_entry_ns,
            day=self.day,
            trades_today=self.trades_today,
        )

    @classmethod
    def restore(cls, snap: BreakoutSnapshot) -> BreakoutState:
        return cls(
            series=BarSeries.restore(snap.series),
            last_entry_ns=snap.last_entry_ns,
            day=snap.day,
            trades_today=snap.trades_today,
        )


def bar_values(bar: Bar) -> BarValues | None:
    """``(open, high, low, close, volume)`` as floats, or None for a bar that must be ignored."""
    try:
        values = (float(bar.open), float(bar.high), float(bar.low), float(bar.close), float(bar.volume))
    except ValueError:  # signalling NaN
        return None
    o, hi, lo, c, v = values
    inf = math.inf
    if 0.0 < lo <= hi < inf and 0.0 < o < inf and 0.0 < c < inf and 0.0 <= v < inf:
        return values
    return None


def _pct(value: float) -> Decimal:
    return Decimal(str(value)) / _HUNDRED


Result = tuple[BreakoutState, list[Output]]


class BreakoutStrategy:
    """The breakout strategy for one symbol; holds only its (immutable) parameters."""

    name = NAME
    consumes: frozenset[str] = frozenset()  # bars only

    def __init__(self, params: BreakoutParams, window_factor: int = DEFAULT_WINDOW_FACTOR) -> None:
        if params.rsi_period < 2:
            raise ValueError(f"breakout: expected rsi_period >= 2, got {params.rsi_period}")
        for field in ("lookback", "ema_fast", "ema_slow", "volume_sma"):
            if getattr(params, field) < 1:
                raise ValueError(f"breakout: expected {field} >= 1, got {getattr(params, field)}")
        self._params = params
        self.window_factor = window_factor
        self.capacity = window_capacity(
            (params.ema_fast, params.ema_slow, params.rsi_period),
            (params.lookback + 1, params.volume_sma),
            window_factor,
        )
        # bars held before the first signal: every indicator has a value
        self.warmup = max(
            params.lookback + 1, params.ema_fast, params.ema_slow, params.rsi_period + 1, params.volume_sma
        )
        fraction = Decimal(str(params.max_position_fraction))
        self._fraction = min(Decimal(str(params.confidence)) * fraction, fraction)
        self._stop = _pct(params.stop_loss_pct)
        self._take = _pct(params.take_profit_pct)

    @property
    def params(self) -> BreakoutParams:
        return self._params

    def with_params(self, params: BreakoutParams) -> BreakoutStrategy:
        """A strategy with new parameters; existing states stay valid (config reload)."""
        return BreakoutStrategy(params, self.window_factor)

    def initial_state(self) -> BreakoutState:
        return BreakoutState(series=BarSeries.with_capacity(self.capacity))

    def on_trade(self, state: BreakoutState, trade: Trade, ctx: StrategyContext) -> Result:
        return state, []

    def on_quote(self, state: BreakoutState, quote: Quote, ctx: StrategyContext) -> Result:
        return state, []

    def reconcile(
        self, state: BreakoutState, ctx: StrategyContext, orders: Sequence[OpenOrder]
    ) -> BreakoutState:
        """Nothing to re-derive: entries and exits are decided from the context's position."""
        return state

    def on_bar(self, state: BreakoutState, bar: Bar, ctx: StrategyContext) -> Result:
        values = bar_values(bar)
        if values is None:
            return state, []
        if state.series.capacity != self.capacity:
            state = msgspec.structs.replace(state, series=state.series.resized(self.capacity))
        series = state.series
        series.append(*values)
        if len(series) < self.warmup:
            return state, []
        hit = self._evaluate(series, values[3], bar.close)
        if hit is None:
            return state, []
        side, reason = hit
        signal = Signal(
            exchange=ctx.exchange,
            symbol=ctx.symbol,
            ts_event=bar.ts_event,
            ts_recv=ctx.now_ns,
            strategy=NAME,
            side=side,
            confidence=self._params.confidence,
            price=bar.close,
            reason=reason,
        )
        state, intent = self._act(state, side, reason, bar, ctx)
        return state, [signal] if intent is None else [signal, intent]

    # --- conditions ----------------------------------------------------------------------

    def _evaluate(self, series: BarSeries, close: float, close_d: Decimal) -> tuple[Side, str] | None:
        """The signal side and its reason, or None; cheapest checks first."""
        p = self._params
        level = highest_prev(series.high.view(), p.lookback)
        side: Side = "buy"
        if not close > level:
            level = lowest_prev(series.low.view(), p.lookback)
            if not close < level:
                return None
            side = "sell"
        volumes = series.volume.tail(p.volume_sma)
        volume_sma = sma(volumes, p.volume_sma)
        ratio = float(volumes[-1]) / volume_sma if volume_sma > 0.0 else 0.0
        if not ratio > p.volume_ratio:
            return None
        strength = self._confirm(series, side)
        if strength is None:
            return None
        op, band = (">", "high") if side == "buy" else ("<", "low")
        reason = (
            f"close {close_d} {op} {band}{p.lookback} {level:.8g}, ema{p.ema_fast} {op} ema{p.ema_slow}, "
            f"rsi {strength:.1f}, vol ratio {ratio:.2f}"
        )
        return side, reason

    def _confirm(self, series: BarSeries, side: Side) -> float | None:
        """The RSI when trend (EMA fast vs slow) and RSI confirm ``side``, else None."""
        p = self._params
        closes = series.close.view()
        fast = ema(closes, p.ema_fast)
        slow = ema(closes, p.ema_slow)
        if not (fast > slow if side == "buy" else fast < slow):
            return None
        strength = rsi(closes, p.rsi_period)
        if not (strength < p.rsi_buy_max if side == "buy" else strength > p.rsi_sell_min):
            return None
        return strength

    # --- actions -------------------------------------------------------------------------

    def _act(
        self, state: BreakoutState, side: Side, reason: str, bar: Bar, ctx: StrategyContext
    ) -> tuple[BreakoutState, OrderIntent | None]:
        position = ctx.position
        if ctx.open_orders:
            # An order is already working (an entry not yet filled, or an exit): never stack another.
            return state, None
        if (side == "buy" and position < 0) or (side == "sell" and position > 0):
            return state, self._exit(side, abs(position), reason, bar, ctx)
        if position != 0 or (side == "sell" and not self._params.allow_short):
            return state, None
        return self._enter(state, side, reason, bar, ctx)

    def _enter(
        self, state: BreakoutState, side: Side, reason: str, bar: Bar, ctx: StrategyContext
    ) -> tuple[BreakoutState, OrderIntent | None]:
        p = self._params
        ts = bar.ts_event
        day = ts // NS_PER_DAY
        trades = state.trades_today if state.day == day else 0
        if trades >= p.max_trades_per_day:
            return state, None
        last = state.last_entry_ns
        if last is not None and ts - last < p.cooldown_s * NS_PER_SECOND:
            return state, None
        quantity = self.entry_quantity(bar.close, ctx)
        if quantity <= 0:
            return state, None
        stop_loss, take_profit = self.brackets(side, bar.close, ctx.tick_size)
        intent = OrderIntent(
            exchange=ctx.exchange,
            symbol=ctx.symbol,
            ts_event=ts,
            ts_recv=ctx.now_ns,
            intent_id=f"{ctx.exchange}:{ctx.symbol}:{NAME}:{ts}:{side}",
            source=SOURCE,
            side=side,
            order_type="market",
            quantity=quantity,
            stop_loss=stop_loss,
            take_profit=take_profit,
            reason=f"entry: {reason}",
        )
        new_state = msgspec.structs.replace(state, last_entry_ns=ts, day=day, trades_today=trades + 1)
        return new_state, intent

    def _exit(
        self, side: Side, quantity: Decimal, reason: str, bar: Bar, ctx: StrategyContext
    ) -> OrderIntent:
        ts = bar.ts_event
        return OrderIntent(
            exchange=ctx.exchange,
            symbol=ctx.symbol,
            ts_event=ts,
            ts_recv=ctx.now_ns,
            intent_id=f"{ctx.exchange}:{ctx.symbol}:{NAME}:{ts}:exit-{side}",
            source=SOURCE,
            side=side,
            order_type="market",
            quantity=quantity,
            reduce_only=True,
            reason=f"exit: {reason}",
        )

    def entry_quantity(self, close: Decimal, ctx: StrategyContext) -> Decimal:
        """Entry size in base units, floored to the step; 0 when it cannot be sized."""
        if ctx.step_size <= 0 or ctx.max_notional <= 0:
            return _ZERO
        return floor_to_step(ctx.max_notional * self._fraction / close, ctx.step_size)

    def brackets(self, side: Side, close: Decimal, tick: Decimal) -> tuple[Decimal | None, Decimal | None]:
        """``(stop_loss, take_profit)`` prices for an entry on ``side``, rounded to the tick."""
        if tick <= 0:
            return None, None
        sign = 1 if side == "buy" else -1
        return _level(close, -sign * self._stop, tick), _level(close, sign * self._take, tick)


def _level(close: Decimal, offset: Decimal, tick: Decimal) -> Decimal | None:
    """``close * (1 + offset)`` rounded to the tick; None for no offset or a price <= 0."""
    if offset == 0:
        return None
    price = round_to_tick(close * (1 + offset), tick)
    return price if price > 0 else None


if TYPE_CHECKING:

    def _conforms(params: BreakoutParams) -> Strategy[BreakoutState]:
        return BreakoutStrategy(params)
