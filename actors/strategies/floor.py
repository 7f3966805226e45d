"""floor: buy a first layer, add layers on each retracement, sell everything at a take-profit.

Takes closed :class:`Bar` messages (trades and quotes are ignored) and the
:class:`StrategyContext` (position and average entry price are the truth; an intent is
never assumed filled).  Parameters: :class:`~actors.params.FloorParams`.

A cycle, on each closed bar:

1. A layer sent on an earlier bar is settled once no order works (``ctx.open_orders == 0``):
   the position grew -> the layer counts (its price: the close it was sent at); else it
   did not fill (refused, canceled) and is forgotten.  While it is still working nothing
   else happens.
2. Flat with layers counted: the cycle is over (take-profit, stop-loss or a manual exit);
   start again.  Long with no layer counted (a position from before): adopted as layer 1
   at ``ctx.avg_price``.
3. Take profit: long and ``close >= avg_price * (1 + take_profit)``: SELL signal and a
   reduce-only market sell of the whole position (``...:exit-sell``).
4. Volatility lock: with ``volatility_threshold > 0`` no layer (the first included) is sent
   while ``ATR(atr_period) / close > volatility_threshold`` or the ATR has no value yet.
5. Flat: the first layer, a market buy of ``initial_units`` (``...:layer-0``).
6. ``0 < layers < max_layers`` and ``close <= last layer's price * (1 - retracement)``:
   layer ``n`` (``...:layer-n``), size ``layer_size[n - 1]`` when the list is given, else
   ``initial_units * layer_multiplier ** n``.

Sizes are floored to the step (a size of 0 sends nothing).  Every layer carries the same
stop-loss, ``first layer's price * (1 - stop_loss_pct / 100)`` rounded to the tick: one
floor under the whole cycle (keep it below ``retracement * (max_layers - 1)``).  Every
layer and the take-profit emit a :class:`Signal`.  Bars with a price that is not finite
and > 0, a bad volume or low > high are ignored.

State: :class:`FloorState` (immutable; ATR stream and decimals) round-trips through msgspec
msgpack and json.  Reload (:meth:`FloorStrategy.with_params`) keeps the cycle; a new
``atr_period`` restarts the ATR.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

import msgspec

from actors.indicators import AtrStream
from actors.messages import Bar
from actors.params import FloorParams
from actors.strategies.base import Output, StrategyContext, floor_to_step, round_to_tick
from actors.strategies.common import BarStrategy, bar_prices, exit_long, make_intent, make_signal, pct

if TYPE_CHECKING:
    from actors.strategies.base import Strategy

NAME = "floor"
_ZERO = Decimal(0)
_ONE = Decimal(1)


class FloorState(msgspec.Struct, frozen=True, kw_only=True):
    atr: AtrStream
    layers: int = 0
    first_price: Decimal | None = None
    last_price: Decimal | None = None
    pending_qty: Decimal = _ZERO
    pending_from: Decimal = _ZERO
    pending_price: Decimal | None = None


Result = tuple[FloorState, list[Output]]


class FloorStrategy(BarStrategy[FloorState, FloorParams]):
    name = NAME

    def __init__(self, params: FloorParams) -> None:
        if params.max_layers < 1 or params.atr_period < 1 or not 0 < params.retracement < 1:
            raise ValueError("floor: expected max_layers >= 1, atr_period >= 1 and 0 < retracement < 1")
        self._params = params
        self._retrace = _ONE - Decimal(str(params.retracement))
        self._take = _ONE + Decimal(str(params.take_profit))
        self._stop = _ONE - pct(params.stop_loss_pct)

    def initial_state(self) -> FloorState:
        return FloorState(atr=AtrStream(period=self._params.atr_period))

    def layer_size(self, n: int) -> Decimal:
        """Units of layer ``n`` (0 is the first), before flooring to the step."""
        p = self._params
        if n == 0:
            return p.initial_units
        if p.layer_size:
            return p.layer_size[min(n, len(p.layer_size)) - 1]
        return p.initial_units * Decimal(str(p.layer_multiplier)) ** n

    def on_bar(self, state: FloorState, bar: Bar, ctx: StrategyContext) -> Result:
        prices = bar_prices(bar)
        if prices is None:
            return state, []
        p = self._params
        atr_stream = state.atr if state.atr.period == p.atr_period else AtrStream(period=p.atr_period)
        _, high, low, close_f = prices
        state = msgspec.structs.replace(state, atr=atr_stream.update(high, low, close_f))
        position = ctx.position
        # 1. settle a layer sent earlier
        if state.pending_qty > 0:
            if ctx.open_orders:
                return state, []
            state = self._settle(state, position)
        # 2. cycle over / adopt a position
        if position <= 0 and state.layers:
            state = msgspec.structs.replace(state, layers=0, first_price=None, last_price=None)
        elif position > 0 and not state.layers and ctx.avg_price > 0:
            state = msgspec.structs.replace(
                state, layers=1, first_price=ctx.avg_price, last_price=ctx.avg_price
            )
        close = bar.close
        ts = bar.ts_event
        # 3. take profit
        if position > 0 and ctx.avg_price > 0 and close >= ctx.avg_price * self._take:
            reason = (
                f"close {close} >= avg entry {ctx.avg_price} * (1 + {p.take_profit}), {state.layers} layers"
            )
            out: list[Output] = [make_signal(ctx, NAME, ts, "sell", close, f"take profit: {reason}")]
            if not ctx.open_orders:
                out.append(exit_long(ctx, NAME, ts, f"take profit: {reason}"))
            return state, out
        if ctx.open_orders or ctx.step_size <= 0 or ctx.tick_size <= 0:
            return state, []
        # 4. volatility lock
        atr = state.atr.value
        if p.volatility_threshold > 0 and (atr is None or atr / close_f > p.volatility_threshold):
            return state, []
        # 5./6. layers
        n = state.layers
        if position == 0 and n == 0:
            return self._layer(state, bar, ctx, 0, close, "first layer")
        last = state.last_price
        if 0 < n < p.max_layers and last is not None and close <= last * self._retrace:
            return self._layer(state, bar, ctx, n, state.first_price or close, f"retraced from {last}")
        return state, []

    def _settle(self, state: FloorState, position: Decimal) -> FloorState:
        if position > state.pending_from:
            layers = state.layers + 1
            price = state.pending_price
            first = state.first_price if layers > 1 and state.first_price is not None else price
            return msgspec.structs.replace(
                state,
                layers=layers,
                first_price=first,
                last_price=price,
                pending_qty=_ZERO,
                pending_price=None,
            )
        return msgspec.structs.replace(state, pending_qty=_ZERO, pending_price=None)

    def _layer(
        self, state: FloorState, bar: Bar, ctx: StrategyContext, n: int, anchor: Decimal, why: str
    ) -> Result:
        quantity = floor_to_step(self.layer_size(n), ctx.step_size)
        reason = f"layer {n}: {why}"
        out: list[Output] = [make_signal(ctx, NAME, bar.ts_event, "buy", bar.close, reason)]
        stop = round_to_tick(anchor * self._stop, ctx.tick_size)
        if quantity <= 0 or stop <= 0:
            return state, out
        out.append(
            make_intent(ctx, NAME, bar.ts_event, f"layer-{n}", "buy", quantity, reason, stop_loss=stop)
        )
        new = msgspec.structs.replace(
            state, pending_qty=quantity, pending_from=ctx.position, pending_price=bar.close
        )
        return new, out


if TYPE_CHECKING:

    def _conforms(params: FloorParams) -> Strategy[FloorState]:
        return FloorStrategy(params)
