"""time_window: be long between ``buy_time`` and ``sell_time`` every day, in the exchange's time zone.

Takes closed :class:`Bar` messages (trades and quotes are ignored) and the
:class:`StrategyContext`.  Parameters: :class:`~actors.params.TimeWindowParams`.

The window: from ``buy_time`` (included) to ``sell_time`` (excluded), times of day
``HH:MM`` on the wall clock of ``timezone`` (an IANA name, via :mod:`zoneinfo`, so
daylight-saving changes are followed; default "UTC").  When ``sell_time < buy_time`` the
window runs over midnight and belongs to the day it starts.  A bar is placed in time by
its close, ``ts_event`` (event time, never the local clock): the bar closing at 09:00 is
the first one "at" 09:00.

Rules on each closed bar:

- inside a window not yet traded, flat, no working order: BUY signal and market buy of
  ``floor_to_step(quantity, step)`` with ``stop_loss = close * (1 - stop_loss_pct / 100)``
  (mandatory: config validation refuses ``stop_loss_pct <= 0``) and, when
  ``take_profit_pct > 0``, a take-profit; id ``{exchange}:{symbol}:time_window:{ts}:buy``.
  The window counts as traded once the buy is sent: a stop-loss inside the window is not
  followed by a second entry.  After a gap in the data the first bar inside the window
  buys (late); a window without any bar is skipped.
- outside the windows, long, no working order: SELL signal and a reduce-only market
  sell of the whole position (``...:exit-sell``); repeated on later bars if it did not fill.

Bars with a price that is not finite and > 0, a bad volume or low > high are ignored.
State: :class:`TimeWindowState` (the last traded window, as a proleptic ordinal of its
local start date) round-trips through msgspec msgpack and json.  Reload
(:meth:`TimeWindowStrategy.with_params`) keeps it.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import msgspec

from actors.messages import Bar
from actors.params import TimeWindowParams
from actors.strategies.base import Output, StrategyContext, floor_to_step
from actors.strategies.common import BarStrategy, bar_prices, exit_long, level, make_intent, make_signal, pct

if TYPE_CHECKING:
    from actors.strategies.base import Strategy

NAME = "time_window"
NS = 1_000_000_000


def seconds_of_day(hhmm: str) -> int:
    """``"HH:MM"`` -> seconds after midnight; ValueError for anything else."""
    hours, sep, minutes = hhmm.partition(":")
    if not (sep and len(hours) == 2 and len(minutes) == 2 and hours.isdigit() and minutes.isdigit()):
        raise ValueError(f"expected a time of day HH:MM, got {hhmm!r}")
    h, m = int(hours), int(minutes)
    if h > 23 or m > 59:
        raise ValueError(f"expected a time of day HH:MM (00:00..23:59), got {hhmm!r}")
    return h * 3600 + m * 60


class TimeWindowState(msgspec.Struct, frozen=True, kw_only=True):
    last_window: int | None = None
    """The window already traded: ordinal of its local start date."""


Result = tuple[TimeWindowState, list[Output]]


class TimeWindowStrategy(BarStrategy[TimeWindowState, TimeWindowParams]):
    name = NAME

    def __init__(self, params: TimeWindowParams) -> None:
        self._buy = seconds_of_day(params.buy_time)
        self._sell = seconds_of_day(params.sell_time)
        if self._buy == self._sell:
            raise ValueError("time_window: expected buy_time != sell_time")
        if not 0 < params.stop_loss_pct < 100:
            raise ValueError(f"time_window: expected 0 < stop_loss_pct < 100, got {params.stop_loss_pct}")
        self._zone = ZoneInfo(params.timezone)
        self._params = params
        self._stop = pct(params.stop_loss_pct)
        self._take = pct(params.take_profit_pct)

    def initial_state(self) -> TimeWindowState:
        return TimeWindowState()

    def window_of(self, ts_ns: int) -> int | None:
        """The window ``ts_ns`` falls in (ordinal of its local start date), None outside."""
        local = datetime.fromtimestamp(ts_ns // NS, self._zone)
        t = local.hour * 3600 + local.minute * 60 + local.second
        day = local.date().toordinal()
        buy, sell = self._buy, self._sell
        if buy < sell:
            return day if buy <= t < sell else None
        if t >= buy:
            return day
        return day - 1 if t < sell else None

    def on_bar(self, state: TimeWindowState, bar: Bar, ctx: StrategyContext) -> Result:
        if bar_prices(bar) is None:
            return state, []
        p = self._params
        window = self.window_of(bar.ts_event)
        ts = bar.ts_event
        if window is None:
            if ctx.position > 0 and not ctx.open_orders:
                reason = f"outside {p.buy_time}-{p.sell_time} {p.timezone}"
                return state, [
                    make_signal(ctx, NAME, ts, "sell", bar.close, reason),
                    exit_long(ctx, NAME, ts, f"exit: {reason}"),
                ]
            return state, []
        if window == state.last_window or ctx.position != 0 or ctx.open_orders:
            return state, []
        if ctx.step_size <= 0 or ctx.tick_size <= 0:
            return state, []
        quantity = floor_to_step(p.quantity, ctx.step_size)
        stop = level(bar.close, -self._stop, ctx.tick_size)
        reason = f"inside {p.buy_time}-{p.sell_time} {p.timezone}"
        signal = make_signal(ctx, NAME, ts, "buy", bar.close, reason)
        if quantity <= 0 or stop is None:
            return state, [signal]
        take = level(bar.close, self._take, ctx.tick_size)
        intent = make_intent(
            ctx, NAME, ts, "buy", "buy", quantity, f"entry: {reason}", stop_loss=stop, take_profit=take
        )
        return TimeWindowState(last_window=window), [signal, intent]


if TYPE_CHECKING:

    def _conforms(params: TimeWindowParams) -> Strategy[TimeWindowState]:
        return TimeWindowStrategy(params)
