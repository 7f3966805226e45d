"""EMA crossover: long when the fast EMA crosses above the slow one, flat when it crosses below.

Takes closed :class:`Bar` messages (trades and quotes are ignored) and the
:class:`StrategyContext`.  Parameters: :class:`~actors.params.EmaCrossParams`.

Rules on each closed bar, with EMA(``ema_fast``) and EMA(``ema_slow``) of the closes
(streaming, bit for bit TA-Lib's ``EMA`` over the full history, see
:class:`~actors.indicators.EmaStream`):

- a cross is backtesting.py's ``crossover``: up when ``fast[-2] < slow[-2]`` and
  ``fast[-1] > slow[-1]``, down when ``slow[-2] < fast[-2]`` and ``slow[-1] > fast[-1]``
  (strict both; equal EMAs are no cross).  Every cross emits a :class:`Signal` (buy/sell).
- up-cross, flat, no working order: market buy of ``floor_to_step(quantity, step)`` with
  ``stop_loss = close * (1 - stop_loss_pct / 100)`` (risk requires one; the default 50 %
  practically never triggers, so trades match a plain crossover backtest) and, when
  ``take_profit_pct > 0``, ``take_profit = close * (1 + take_profit_pct / 100)``, both
  rounded to the tick.  Intent id ``{exchange}:{symbol}:ema_cross:{ts_event}:buy``.
- down-cross, long, no working order: market sell of the whole position, ``reduce_only``,
  id ``...:{ts_event}:exit-sell``.
- long only: a down-cross when flat is only a signal.

The strategy decides on the bar's close; when the order fills is the execution's
business (a backtest fills it at the next bar's open).  Bars with a price that is not
finite and > 0, a negative/NaN volume, or low > high are ignored (state unchanged).

State: :class:`EmaCrossState` (immutable; both EMAs and their previous values) encodes
with msgspec msgpack and json.  Config reload (:meth:`EmaCrossStrategy.with_params`):
the state is kept; when the EMA periods change the EMAs restart (warm up again, so no
cross is reported until both have values for two bars).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from actors.indicators import EmaStream
from actors.messages import Bar
from actors.params import EmaCrossParams
from actors.strategies.base import Output, StrategyContext, floor_to_step
from actors.strategies.common import BarStrategy, bar_close, exit_long, level, make_intent, make_signal, pct

if TYPE_CHECKING:
    from actors.strategies.base import Strategy

NAME = "ema_cross"


class EmaCrossState(msgspec.Struct, frozen=True, kw_only=True):
    """Both EMAs (after the newest bar) and their values one bar before."""

    fast: EmaStream
    slow: EmaStream
    prev_fast: float | None = None
    prev_slow: float | None = None


Result = tuple[EmaCrossState, list[Output]]


class EmaCrossStrategy(BarStrategy[EmaCrossState, EmaCrossParams]):
    name = NAME

    def __init__(self, params: EmaCrossParams) -> None:
        if not 1 <= params.ema_fast < params.ema_slow:
            raise ValueError(
                f"ema_cross: expected 1 <= ema_fast < ema_slow, got {params.ema_fast}, {params.ema_slow}"
            )
        self._params = params
        self._stop = pct(params.stop_loss_pct)
        self._take = pct(params.take_profit_pct)

    def initial_state(self) -> EmaCrossState:
        p = self._params
        return EmaCrossState(fast=EmaStream(period=p.ema_fast), slow=EmaStream(period=p.ema_slow))

    def on_bar(self, state: EmaCrossState, bar: Bar, ctx: StrategyContext) -> Result:
        close = bar_close(bar)
        if close is None:
            return state, []
        p = self._params
        fast, slow = state.fast, state.slow
        if fast.period != p.ema_fast or slow.period != p.ema_slow:
            state = self.initial_state()  # new periods after a reload: warm up again
            fast, slow = state.fast, state.slow
        fast, slow = fast.update(close), slow.update(close)
        a1, b1 = fast.value, slow.value
        new_state = EmaCrossState(fast=fast, slow=slow, prev_fast=a1, prev_slow=b1)
        a0, b0 = state.prev_fast, state.prev_slow
        if a0 is None or b0 is None or a1 is None or b1 is None:
            return new_state, []
        if a0 < b0 and a1 > b1:  # cross_above(fast, slow)
            return new_state, self._up(bar, ctx, a1, b1)
        if b0 < a0 and b1 > a1:  # cross_above(slow, fast)
            return new_state, self._down(bar, ctx, a1, b1)
        return new_state, []

    def _up(self, bar: Bar, ctx: StrategyContext, fast: float | None, slow: float | None) -> list[Output]:
        p = self._params
        reason = f"ema{p.ema_fast} {fast:.8g} crossed above ema{p.ema_slow} {slow:.8g}"
        out: list[Output] = [make_signal(ctx, NAME, bar.ts_event, "buy", bar.close, reason)]
        if ctx.position != 0 or ctx.open_orders or ctx.step_size <= 0 or ctx.tick_size <= 0:
            return out
        quantity = floor_to_step(p.quantity, ctx.step_size)
        if quantity <= 0:
            return out
        stop = level(bar.close, -self._stop, ctx.tick_size)
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

    def _down(self, bar: Bar, ctx: StrategyContext, fast: float | None, slow: float | None) -> list[Output]:
        p = self._params
        reason = f"ema{p.ema_fast} {fast:.8g} crossed below ema{p.ema_slow} {slow:.8g}"
        out: list[Output] = [make_signal(ctx, NAME, bar.ts_event, "sell", bar.close, reason)]
        if ctx.position > 0 and not ctx.open_orders:
            out.append(exit_long(ctx, NAME, bar.ts_event, f"exit: {reason}"))
        return out


if TYPE_CHECKING:

    def _conforms(params: EmaCrossParams) -> Strategy[EmaCrossState]:
        return EmaCrossStrategy(params)
