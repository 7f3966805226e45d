"""hyper_rsi: buy when RSI climbs back out of oversold, exit when it falls back out of overbought.

Takes closed :class:`Bar` messages (trades and quotes are ignored) and the
:class:`StrategyContext`.  Parameters: :class:`~actors.params.HyperRsiParams`.

Indicators on the closes (streaming, equal to TA-Lib's batch functions over the full
history, see :mod:`actors.indicators`): RSI(``rsi_period``), EMA(``trend_period``) and
ATR(``atr_period``) of the bars.  Rules on each closed bar:

- BUY when RSI crosses up through ``oversold``: ``rsi[-2] < oversold < rsi[-1]`` (strict,
  like backtesting.py's ``crossover``), and the trend filter agrees:
  ``trend_filter = "ema_slope"``: the EMA rises (``ema[-1] > ema[-2]``);
  ``"price_above_ema"``: ``close > ema[-1]``; ``"none"``: always.  No BUY while the
  filter's EMA has no value yet (the first ``trend_period`` bars).
- SELL when RSI crosses down through ``overbought``: ``rsi[-2] > overbought > rsi[-1]``.
- Every BUY/SELL emits a :class:`Signal`.  BUY, flat and no working order: market buy of
  ``floor_to_step(quantity, step)``, id ``{exchange}:{symbol}:hyper_rsi:{ts_event}:buy``,
  with a stop-loss of ``close - atr_mult * ATR`` when ``atr_mult > 0`` (no entry while
  the ATR has no value), else ``close * (1 - stop_loss_pct / 100)``, and a take-profit
  ``close * (1 + take_profit_pct / 100)`` when that is > 0; rounded to the tick.
  SELL while long and no working order: market sell of the whole position, reduce-only,
  id ``...:exit-sell``.  Long only.

Bars with a price that is not finite and > 0, a bad volume or low > high are ignored.
State: :class:`HyperRsiState` (immutable; the three streams and the previous RSI/EMA),
round-trips through msgspec msgpack and json.  Reload (:meth:`HyperRsiStrategy.with_params`)
keeps the state; if a period changed, the indicators restart and warm up again.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

import msgspec

from actors.indicators import AtrStream, EmaStream, RsiStream
from actors.messages import Bar
from actors.params import HyperRsiParams
from actors.strategies.base import Output, StrategyContext, floor_to_step
from actors.strategies.common import (
    BarStrategy,
    bar_prices,
    exit_long,
    level,
    make_intent,
    make_signal,
    offset_level,
    pct,
)

if TYPE_CHECKING:
    from actors.strategies.base import Strategy

NAME = "hyper_rsi"


class HyperRsiState(msgspec.Struct, frozen=True, kw_only=True):
    rsi: RsiStream
    ema: EmaStream
    atr: AtrStream
    prev_rsi: float | None = None
    prev_ema: float | None = None


Result = tuple[HyperRsiState, list[Output]]


class HyperRsiStrategy(BarStrategy[HyperRsiState, HyperRsiParams]):
    name = NAME

    def __init__(self, params: HyperRsiParams) -> None:
        if params.rsi_period < 2 or params.trend_period < 1 or params.atr_period < 1:
            raise ValueError("hyper_rsi: expected rsi_period >= 2, trend_period >= 1 and atr_period >= 1")
        if not params.oversold < params.overbought:
            raise ValueError(
                f"hyper_rsi: expected oversold < overbought, got {params.oversold}, {params.overbought}"
            )
        self._params = params
        self._stop = pct(params.stop_loss_pct)
        self._take = pct(params.take_profit_pct)

    def initial_state(self) -> HyperRsiState:
        p = self._params
        return HyperRsiState(
            rsi=RsiStream(period=p.rsi_period),
            ema=EmaStream(period=p.trend_period),
            atr=AtrStream(period=p.atr_period),
        )

    def on_bar(self, state: HyperRsiState, bar: Bar, ctx: StrategyContext) -> Result:
        prices = bar_prices(bar)
        if prices is None:
            return state, []
        p = self._params
        if (state.rsi.period, state.ema.period, state.atr.period) != (
            p.rsi_period,
            p.trend_period,
            p.atr_period,
        ):
            state = self.initial_state()
        _, high, low, close = prices
        rsi, ema, atr = state.rsi.update(close), state.ema.update(close), state.atr.update(high, low, close)
        new = HyperRsiState(rsi=rsi, ema=ema, atr=atr, prev_rsi=rsi.value, prev_ema=ema.value)
        r0, r1 = state.prev_rsi, rsi.value
        if r0 is None or r1 is None:
            return new, []
        if r0 < p.oversold < r1 and self._trend_ok(close, state.prev_ema, ema.value):
            return new, self._buy(bar, ctx, r1, atr.value)
        if r0 > p.overbought > r1:
            reason = f"rsi{p.rsi_period} {r1:.2f} crossed below overbought {p.overbought:g}"
            out: list[Output] = [make_signal(ctx, NAME, bar.ts_event, "sell", bar.close, reason)]
            if ctx.position > 0 and not ctx.open_orders:
                out.append(exit_long(ctx, NAME, bar.ts_event, f"exit: {reason}"))
            return new, out
        return new, []

    def _trend_ok(self, close: float, prev_ema: float | None, ema: float | None) -> bool:
        mode = self._params.trend_filter
        if mode == "none":
            return True
        if ema is None:
            return False
        if mode == "price_above_ema":
            return close > ema
        return prev_ema is not None and ema > prev_ema

    def _buy(self, bar: Bar, ctx: StrategyContext, rsi: float, atr: float | None) -> list[Output]:
        p = self._params
        reason = f"rsi{p.rsi_period} {rsi:.2f} crossed above oversold {p.oversold:g}, trend {p.trend_filter}"
        out: list[Output] = [make_signal(ctx, NAME, bar.ts_event, "buy", bar.close, reason)]
        if ctx.position != 0 or ctx.open_orders or ctx.step_size <= 0 or ctx.tick_size <= 0:
            return out
        quantity = floor_to_step(p.quantity, ctx.step_size)
        stop = self.stop_loss(bar.close, atr, ctx.tick_size)
        if quantity <= 0 or stop is None:
            return out
        take = level(bar.close, self._take, ctx.tick_size)
        out.append(
            make_intent(
                ctx,
                NAME,
                bar.ts_event,
                "buy",
                "buy",
                quantity,
                f"entry: {reason}",
                stop_loss=stop,
                take_profit=take,
            )
        )
        return out

    def stop_loss(self, close: Decimal, atr: float | None, tick: Decimal) -> Decimal | None:
        """The entry's stop: ATR-based when ``atr_mult > 0`` (None without an ATR yet), else a percentage."""
        mult = self._params.atr_mult
        if mult > 0:
            if atr is None or not atr > 0:
                return None
            stop = offset_level(close, -Decimal(repr(mult * atr)), tick)
            return stop if stop is not None and stop < close else None
        return level(close, -self._stop, tick)


if TYPE_CHECKING:

    def _conforms(params: HyperRsiParams) -> Strategy[HyperRsiState]:
        return HyperRsiStrategy(params)
