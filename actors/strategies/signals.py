"""signals: MACD line crossing its signal line, filtered by RSI and an SMA trend, ATR stop and target.

Takes closed :class:`Bar` messages (trades and quotes are ignored) and the
:class:`StrategyContext`.  Parameters: :class:`~actors.params.SignalsParams`.

Indicators (streaming, equal to TA-Lib's batch functions over the full history, see
:mod:`actors.indicators`): MACD(``macd_fast``, ``macd_slow``, ``macd_signal``) of the closes
(TA-Lib's ``MACD``, its seeding included), RSI(``rsi_period``), SMA(``trend_sma``) of the
closes and ATR(``atr_period``).  Rules on each closed bar:

- BUY: the MACD line crosses above the signal line (``macd[-2] < signal[-2]`` and
  ``macd[-1] > signal[-1]``, strict, as backtesting.py's ``crossover``), RSI <
  ``rsi_buy_max`` and close > SMA(``trend_sma``) (``trend_sma = 0``: no trend filter; no
  BUY while the SMA has no value).
- SELL: the MACD line crosses below the signal line and RSI > ``rsi_sell_min``.
- Every BUY/SELL emits a :class:`Signal`.  BUY, flat, no working order, ATR known: market
  buy of ``floor_to_step(quantity, step)``, ``stop_loss = close - atr_stop_mult * ATR``,
  ``take_profit = close + atr_target_mult * ATR`` (none when the multiple is 0), rounded to
  the tick; id ``{exchange}:{symbol}:signals:{ts_event}:buy``.  SELL while long and no
  working order: reduce-only market sell of the whole position (``...:exit-sell``).
  Long only.

Bars with a price that is not finite and > 0, a bad volume or low > high are ignored.
State: :class:`SignalsState` (immutable streams, previous MACD and signal values)
round-trips through msgspec msgpack and json.  Reload (:meth:`SignalsStrategy.with_params`)
keeps it; changed periods restart the indicators (they warm up again).
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

import msgspec

from actors.indicators import AtrStream, MacdStream, RsiStream, SmaStream
from actors.messages import Bar
from actors.params import SignalsParams
from actors.strategies.base import Output, StrategyContext, floor_to_step
from actors.strategies.common import (
    BarStrategy,
    bar_prices,
    cross_above,
    exit_long,
    make_intent,
    make_signal,
    offset_level,
)

if TYPE_CHECKING:
    from actors.strategies.base import Strategy

NAME = "signals"


class SignalsState(msgspec.Struct, frozen=True, kw_only=True):
    macd: MacdStream
    rsi: RsiStream
    sma: SmaStream | None
    atr: AtrStream
    prev_macd: float | None = None
    prev_signal: float | None = None


Result = tuple[SignalsState, list[Output]]


class SignalsStrategy(BarStrategy[SignalsState, SignalsParams]):
    name = NAME

    def __init__(self, params: SignalsParams) -> None:
        if not 1 <= params.macd_fast < params.macd_slow or params.macd_signal < 1:
            raise ValueError("signals: expected 1 <= macd_fast < macd_slow and macd_signal >= 1")
        if params.rsi_period < 2 or params.atr_period < 1 or params.trend_sma < 0:
            raise ValueError("signals: expected rsi_period >= 2, atr_period >= 1, trend_sma >= 0")
        self._params = params
        self._key = (
            params.macd_fast,
            params.macd_slow,
            params.macd_signal,
            params.rsi_period,
            params.trend_sma,
            params.atr_period,
        )

    def initial_state(self) -> SignalsState:
        p = self._params
        return SignalsState(
            macd=MacdStream.create(p.macd_fast, p.macd_slow, p.macd_signal),
            rsi=RsiStream(period=p.rsi_period),
            sma=SmaStream(period=p.trend_sma) if p.trend_sma else None,
            atr=AtrStream(period=p.atr_period),
        )

    @staticmethod
    def _key_of(state: SignalsState) -> tuple[int, int, int, int, int, int]:
        m = state.macd
        return (
            m.fast.period,
            m.slow.period,
            m.signal.period,
            state.rsi.period,
            0 if state.sma is None else state.sma.period,
            state.atr.period,
        )

    def on_bar(self, state: SignalsState, bar: Bar, ctx: StrategyContext) -> Result:
        prices = bar_prices(bar)
        if prices is None:
            return state, []
        if self._key_of(state) != self._key:
            state = self.initial_state()
        _, high, low, close = prices
        macd = state.macd.update(close)
        rsi = state.rsi.update(close)
        sma = None if state.sma is None else state.sma.update(close)
        atr = state.atr.update(high, low, close)
        line, signal = (None, None) if macd.value is None else macd.value[:2]
        new = SignalsState(macd=macd, rsi=rsi, sma=sma, atr=atr, prev_macd=line, prev_signal=signal)
        r = rsi.value
        if r is None:
            return new, []
        p = self._params
        if cross_above(state.prev_macd, state.prev_signal, line, signal):
            if r < p.rsi_buy_max and (sma is None or (sma.value is not None and close > sma.value)):
                return new, self._buy(bar, ctx, r, atr.value)
        elif cross_above(state.prev_signal, state.prev_macd, signal, line) and r > p.rsi_sell_min:
            reason = f"macd crossed below signal, rsi{p.rsi_period} {r:.2f} > {p.rsi_sell_min:g}"
            out: list[Output] = [make_signal(ctx, NAME, bar.ts_event, "sell", bar.close, reason)]
            if ctx.position > 0 and not ctx.open_orders:
                out.append(exit_long(ctx, NAME, bar.ts_event, f"exit: {reason}"))
            return new, out
        return new, []

    def _buy(self, bar: Bar, ctx: StrategyContext, rsi: float, atr: float | None) -> list[Output]:
        p = self._params
        trend = f", close > sma{p.trend_sma}" if p.trend_sma else ""
        reason = f"macd crossed above signal, rsi{p.rsi_period} {rsi:.2f} < {p.rsi_buy_max:g}{trend}"
        out: list[Output] = [make_signal(ctx, NAME, bar.ts_event, "buy", bar.close, reason)]
        if ctx.position != 0 or ctx.open_orders or ctx.step_size <= 0 or ctx.tick_size <= 0:
            return out
        if atr is None or not atr > 0:
            return out
        quantity = floor_to_step(p.quantity, ctx.step_size)
        stop = offset_level(bar.close, -Decimal(repr(p.atr_stop_mult * atr)), ctx.tick_size)
        if quantity <= 0 or stop is None or stop >= bar.close:
            return out
        take = offset_level(bar.close, Decimal(repr(p.atr_target_mult * atr)), ctx.tick_size)
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
                take_profit=take if p.atr_target_mult > 0 else None,
            )
        )
        return out


if TYPE_CHECKING:

    def _conforms(params: SignalsParams) -> Strategy[SignalsState]:
        return SignalsStrategy(params)
