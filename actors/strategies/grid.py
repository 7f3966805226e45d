"""grid: resting limit buys on price levels below the market, each sold one level up once filled.

Takes closed :class:`Bar` messages (trades and quotes are ignored) and the
:class:`StrategyContext` (position, open orders).  Parameters: :class:`~actors.params.GridParams`.

The grid: ``levels`` prices from ``lower`` to ``upper`` (both included), spaced evenly
(``spacing = "arithmetic"``) or by a constant ratio (``"geometric"``), rounded to the tick.
Slot ``i`` (``0 <= i < levels - 1``) buys at level ``i`` and sells at level ``i + 1``; each
slot is IDLE, BUYING (a limit buy works) or HOLDING (bought; a limit sell works).

Rules on each closed bar (in this order):

1. Fills, from the context (the strategy never assumes an order filled): the grid holds
   ``floor((position - base) / q)`` slots' worth (``q = floor_to_step(quantity)``; ``base``
   is position that is not the grid's, e.g. held before it started), and of the orders it
   had working, ``working - ctx.open_orders`` ended.  So ``B`` buys and ``S`` sells filled
   with ``B - S`` = change of holding and ``B + S`` = orders ended (a bar can fill a buy
   and a sell; when the two do not fit, e.g. another order of the symbol ended too, the
   position change alone decides).  A falling price fills the highest buys first: the ``B``
   highest BUYING slots become HOLDING and send a reduce-only limit sell of ``q`` at the
   next level up.  A rising price fills the lowest sells first: the ``S`` lowest HOLDING
   slots become IDLE (re-armed below) and, if the bar's high reached their sell level, book
   one round trip of profit ``q * (sell - buy)`` (else it was another exit, e.g. the
   stop-loss, and nothing is booked).
2. Vanished orders: ``ctx.open_orders == 0`` while the grid thinks orders work (risk
   refused them, the venue canceled or expired them): BUYING slots become IDLE and
   HOLDING slots send their sell again.
3. Take profit: booked profit >= ``take_profit_quote`` (> 0): stop (below).
4. Range: close above the top level or below the bottom one: ``on_exit_range = "stop"``
   stops; ``"rebalance"`` arms nothing while outside and, once nothing of the grid works
   any more (no BUYING/HOLDING slot, ``ctx.open_orders == 0``), re-centers the grid on the
   close with the same width (arithmetic) or ratio (geometric) and takes the position it
   sees as ``base``; back inside the range first, the old grid simply goes on.  A
   re-centered bottom level <= 0 stops instead.
5. Arm: every IDLE slot whose buy level is below the close, and (``arm_within_pct > 0``)
   not more than ``arm_within_pct`` % below it, gets a limit buy of ``q`` (GTC) with
   ``stop_loss = bottom level * (1 - stop_loss_pct / 100)`` (one stop under the whole grid;
   risk requires a stop on entries).  The distance limit keeps buys inside risk's
   ``price_band_pct`` (default 5 %): farther levels are armed as the price comes near.

Stop: a Signal (sell) records why; no buy is sent any more; the limit sells working since
earlier bars keep working (they hold the units they would sell: a market sell of those
units would be refused by risk's reduce-only check and the venue's reservations); every
unit they do not cover (this bar's fills, late fills of buys still resting) is sold with a
reduce-only market order (again when the position changed, or after ``RETRY_BARS`` bars).

Intent ids: ``{exchange}:{symbol}:grid:{ts_event}:{buy-i|sell-i|exit-sell}``.

Limits (documented, not hidden): the grid keeps up to ``levels - 1`` limit orders working,
so it needs ``risk.max_open_orders >= levels`` (config validation enforces it) and
``risk.max_orders_per_minute >= levels`` to arm a whole grid on one bar.  The strategy
protocol has no cancel intent yet, so a stop cannot cancel resting buys and cannot take
back the units its working sells hold (a true "cancel everything and flatten" needs a
cancel intent on the order path), and a rebalance waits for the old grid's orders to
end.  A reload that changes the grid leaves the old orders working; their fills show in
the position (above ``base``) and are counted by the new grid.  An order
risk refuses counts as "ended" like a fill: in a bar where that coincides with fills the
buy/sell split can be wrong for that bar; the holding count is re-checked against the
position on every bar, and a surplus reduce-only sell is refused by risk (it would not
reduce), so the grid converges back.

State: :class:`GridState` (immutable, decimals) round-trips through msgspec msgpack and
json.  Reload (:meth:`GridStrategy.with_params`): the state is kept when ``lower``,
``upper``, ``levels`` and ``spacing`` are unchanged; otherwise the grid starts afresh on
the next bar (profit kept, current position taken as ``base``).
"""

from __future__ import annotations

from decimal import Decimal
from itertools import pairwise
from typing import TYPE_CHECKING

import msgspec

from actors.messages import Bar, OrderIntent, Quote, Trade
from actors.params import GridParams
from actors.strategies.base import Output, StrategyContext, floor_to_step, round_to_tick
from actors.strategies.common import bar_prices, make_intent, make_signal, pct

if TYPE_CHECKING:
    from actors.strategies.base import Strategy

NAME = "grid"
IDLE, BUYING, HOLDING = 0, 1, 2
RETRY_BARS = 5
_ZERO = Decimal(0)
_TWO = Decimal(2)


def grid_levels(
    lower: Decimal, upper: Decimal, levels: int, spacing: str, tick: Decimal
) -> tuple[Decimal, ...]:
    """The ``levels`` grid prices from ``lower`` to ``upper``, rounded to the tick."""
    n = levels - 1
    if spacing == "geometric":
        ratio = upper / lower
        raw = [lower * ratio ** (Decimal(k) / n) for k in range(levels)]
    else:
        step = (upper - lower) / n
        raw = [lower + step * k for k in range(levels)]
    return tuple(round_to_tick(x, tick) for x in raw)


class GridState(msgspec.Struct, frozen=True, kw_only=True):
    spec: str = ""
    """lower/upper/levels/spacing of the parameters this grid was built from."""
    lower: Decimal = _ZERO
    upper: Decimal = _ZERO
    lines: tuple[Decimal, ...] = ()
    slots: tuple[int, ...] = ()
    base: Decimal = _ZERO
    profit: Decimal = _ZERO
    round_trips: int = 0
    stopped: bool = False
    stop_reason: str = ""
    bars: int = 0
    exit_position: Decimal | None = None
    exit_bar: int = -RETRY_BARS


Result = tuple[GridState, list[Output]]


class GridStrategy:
    name = NAME
    consumes: frozenset[str] = frozenset()

    def __init__(self, params: GridParams) -> None:
        if not _ZERO < params.lower < params.upper or params.levels < 2:
            raise ValueError(
                f"grid: expected 0 < lower < upper and levels >= 2, got {params.lower}, {params.upper}, "
                f"{params.levels}"
            )
        self._params = params
        self._spec = f"{params.lower}:{params.upper}:{params.levels}:{params.spacing}"
        self._stop = pct(params.stop_loss_pct)
        self._near = 1 - pct(params.arm_within_pct)

    @property
    def params(self) -> GridParams:
        return self._params

    def with_params(self, params: GridParams) -> GridStrategy:
        return GridStrategy(params)

    def initial_state(self) -> GridState:
        return GridState()

    def on_trade(self, state: GridState, trade: Trade, ctx: StrategyContext) -> Result:
        return state, []

    def on_quote(self, state: GridState, quote: Quote, ctx: StrategyContext) -> Result:
        return state, []

    def _fresh(
        self, state: GridState, lower: Decimal, upper: Decimal, ctx: StrategyContext
    ) -> GridState | None:
        """A grid on ``lower``..``upper`` with every slot IDLE; None if its levels collapse at this tick."""
        p = self._params
        lines = grid_levels(lower, upper, p.levels, p.spacing, ctx.tick_size)
        if lines[0] <= 0 or any(b <= a for a, b in pairwise(lines)):
            return None
        return msgspec.structs.replace(
            state, spec=self._spec, lower=lower, upper=upper, lines=lines, slots=(IDLE,) * (p.levels - 1)
        )

    def on_bar(self, state: GridState, bar: Bar, ctx: StrategyContext) -> Result:
        prices = bar_prices(bar)
        if prices is None or ctx.tick_size <= 0 or ctx.step_size <= 0:
            return state, []
        p = self._params
        q = floor_to_step(p.quantity, ctx.step_size)
        if q <= 0:
            return state, []
        position = ctx.position
        if state.spec != self._spec:
            base = max(position, _ZERO)
            fresh = self._fresh(GridState(profit=state.profit, base=base), p.lower, p.upper, ctx)
            if fresh is None:
                reason = "grid levels collapse at this tick"
                return GridState(spec=self._spec, stopped=True, stop_reason=reason), []
            state = fresh
        state = msgspec.structs.replace(
            state, bars=state.bars + 1, base=min(state.base, max(position, _ZERO))
        )
        ts = bar.ts_event
        stopped = state.stopped
        # 1. fills (a stopped grid places no sell for a late buy fill: it sells it at market)
        state, out, placed = self._fills(state, bar, ctx, q, place_sells=not stopped)
        if stopped:
            return self._flatten(state, bar, ctx, out, q)
        slots = list(state.slots)
        lines = state.lines
        # 2. orders that vanished without a fill
        if ctx.open_orders == 0:
            for i, s in enumerate(slots):
                if s == BUYING:
                    slots[i] = IDLE
                elif s == HOLDING and i not in placed:
                    out.append(self._sell(ctx, ts, i, lines, q))
            state = msgspec.structs.replace(state, slots=tuple(slots))
        close = bar.close
        # 3. take profit
        if p.take_profit_quote > 0 and state.profit >= p.take_profit_quote:
            reason = f"grid profit {state.profit} >= take_profit_quote {p.take_profit_quote}"
            return self._stop_grid(state, bar, ctx, out, placed, q, reason)
        # 4. range
        if close > lines[-1] or close < lines[0]:
            where = "above" if close > lines[-1] else "below"
            reason = f"close {close} {where} the grid {lines[0]}..{lines[-1]}"
            if p.on_exit_range == "stop":
                return self._stop_grid(state, bar, ctx, out, placed, q, reason)
            if any(slots) or ctx.open_orders or out:
                return state, out  # rebalance pending: wait until nothing of this grid works
            recentered = self._recenter(state, close, ctx)
            if recentered is None:
                return self._stop_grid(state, bar, ctx, out, placed, q, f"{reason}; cannot re-center below 0")
            out.append(make_signal(ctx, NAME, ts, "buy", close, f"rebalance: {reason}"))
            state = msgspec.structs.replace(recentered, base=max(position, _ZERO))
            slots, lines = list(state.slots), state.lines
        # 5. arm idle slots below the close
        stop = round_to_tick(lines[0] * (1 - self._stop), ctx.tick_size)
        stop_loss = stop if stop > 0 else None
        lowest = close * self._near if p.arm_within_pct > 0 else _ZERO
        for i, s in enumerate(slots):
            if s == IDLE and lowest <= lines[i] < close:
                slots[i] = BUYING
                out.append(
                    make_intent(
                        ctx,
                        NAME,
                        ts,
                        f"buy-{i}",
                        "buy",
                        q,
                        f"grid buy at level {i} {lines[i]}",
                        order_type="limit",
                        price=lines[i],
                        stop_loss=stop_loss,
                    )
                )
        return msgspec.structs.replace(state, slots=tuple(slots)), out

    def _fills(
        self, state: GridState, bar: Bar, ctx: StrategyContext, q: Decimal, place_sells: bool
    ) -> tuple[GridState, list[Output], list[int]]:
        """Rule 1: which buys and sells filled since the last bar, from position and open orders;
        also the slots that got a sell now."""
        slots = list(state.slots)
        held_real = int(max(ctx.position - state.base, _ZERO) // q)
        holding = [i for i, s in enumerate(slots) if s == HOLDING]
        buying = sorted((i for i, s in enumerate(slots) if s == BUYING), reverse=True)
        moved = held_real - len(holding)
        ended = max(len(holding) + len(buying) - ctx.open_orders, 0)
        bought = (ended + moved) // 2
        sold = ended - bought
        if (ended + moved) % 2 or not (0 <= bought <= len(buying) and 0 <= sold <= len(holding)):
            # not explained by fills alone (orders vanished, or another order of the symbol ended)
            bought, sold = max(moved, 0), max(-moved, 0)
        out: list[Output] = []
        lines = state.lines
        placed: list[int] = []
        for i in buying[:bought]:
            if place_sells:
                slots[i] = HOLDING
                placed.append(i)
                out.append(self._sell(ctx, bar.ts_event, i, lines, q))
            else:
                slots[i] = IDLE
        profit, trips = state.profit, state.round_trips
        for i in holding[:sold]:
            slots[i] = IDLE
            if bar.high >= lines[i + 1]:
                profit += q * (lines[i + 1] - lines[i])
                trips += 1
        return (
            msgspec.structs.replace(state, slots=tuple(slots), profit=profit, round_trips=trips),
            out,
            placed,
        )

    def _sell(
        self, ctx: StrategyContext, ts: int, i: int, lines: tuple[Decimal, ...], q: Decimal
    ) -> OrderIntent:
        return make_intent(
            ctx,
            NAME,
            ts,
            f"sell-{i}",
            "sell",
            q,
            f"grid sell at level {i + 1} {lines[i + 1]} (bought at {lines[i]})",
            order_type="limit",
            price=lines[i + 1],
            reduce_only=True,
        )

    def _recenter(self, state: GridState, close: Decimal, ctx: StrategyContext) -> GridState | None:
        if self._params.spacing == "geometric":
            factor = (state.upper / state.lower).sqrt()
            lower, upper = close / factor, close * factor
        else:
            half = (state.upper - state.lower) / _TWO
            lower, upper = close - half, close + half
        if lower <= 0:
            return None
        return self._fresh(state, lower, upper, ctx)

    def _stop_grid(
        self,
        state: GridState,
        bar: Bar,
        ctx: StrategyContext,
        out: list[Output],
        placed: list[int],
        q: Decimal,
        reason: str,
    ) -> Result:
        """Stop: no more buys; what the sells working before this bar do not cover is sold at
        market (the sells just placed for this bar's fills are dropped: those units go too)."""
        out = [o for o in out if not (isinstance(o, OrderIntent) and o.reduce_only)]
        out.append(make_signal(ctx, NAME, bar.ts_event, "sell", bar.close, f"stop: {reason}"))
        slots = tuple(IDLE if s == BUYING or i in placed else s for i, s in enumerate(state.slots))
        state = msgspec.structs.replace(state, stopped=True, stop_reason=reason, slots=slots)
        return self._flatten(state, bar, ctx, out, q)

    def _flatten(
        self, state: GridState, bar: Bar, ctx: StrategyContext, out: list[Output], q: Decimal
    ) -> Result:
        """A stopped grid sells, at market, the position its working sells do not cover."""
        covered = q * sum(1 for s in state.slots if s == HOLDING)
        excess = floor_to_step(ctx.position - covered, ctx.step_size)
        if excess <= 0:
            return state, out
        if state.exit_position == ctx.position and state.bars - state.exit_bar < RETRY_BARS:
            return state, out
        reason = f"flatten {excess} not covered by grid sells: {state.stop_reason}"
        out.append(
            make_intent(ctx, NAME, bar.ts_event, "exit-sell", "sell", excess, reason, reduce_only=True)
        )
        return msgspec.structs.replace(state, exit_position=ctx.position, exit_bar=state.bars), out


if TYPE_CHECKING:

    def _conforms(params: GridParams) -> Strategy[GridState]:
        return GridStrategy(params)
