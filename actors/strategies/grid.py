"""grid: resting limit buys on price levels below the market, each sold one level up once filled.

Takes closed :class:`Bar` messages (trades and quotes are ignored) and the
:class:`StrategyContext` (position, open orders).  Parameters: :class:`~actors.params.GridParams`.

The grid: ``levels`` prices from ``lower`` to ``upper`` (both included), spaced evenly
(``spacing = "arithmetic"``) or by a constant ratio (``"geometric"``), rounded to the tick.
Slot ``i`` (``0 <= i < levels - 1``) buys at level ``i`` and sells at level ``i + 1``; each
slot is IDLE, BUYING (a limit buy works), HOLDING (bought; a limit sell works) or CANCELING
(its limit buy was withdrawn with a :class:`CancelIntent` and has not ended yet).  The state
keeps, per slot, the ``ts_event`` of the bar that placed the slot's working order, which
gives its intent id (below).

Rules on each closed bar (in this order):

1. Fills, from the context (the strategy never assumes an order filled): the grid holds
   ``floor((position - base) / q)`` slots' worth (``q = floor_to_step(quantity)``; ``base``
   is position that is not the grid's, e.g. held before it started), and of the orders it
   had working (BUYING, HOLDING and CANCELING slots), ``working - ctx.open_orders`` ended.
   Those are ``C`` canceled buys that ended without a fill, ``B`` buys that filled and ``S``
   sells that filled, with ``B - S`` = change of holding and ``B + S + C`` = orders ended.
   Canceled buys are expected to vanish: ``C`` is the largest count (at most the CANCELING
   slots) for which ``B`` and ``S`` fit (whole, ``0 <= S <=`` HOLDING slots, ``0 <= B <=``
   BUYING slots plus the CANCELING ones not counted in ``C``: a canceled buy can fill before
   its cancel lands); so a canceled order that ended counts as a fill only where the
   position change calls for one.  A bar can fill a buy and a sell; when nothing fits, e.g.
   another order of the symbol ended too, the position change alone decides and ``C = 0``.  A falling
   price fills the highest buys first: the ``B`` highest BUYING or CANCELING slots (at most
   the CANCELING ones not in ``C``) become HOLDING and send a reduce-only limit sell of
   ``q`` at the next level up; ``C`` of the other CANCELING slots become IDLE.  A rising
   price fills the lowest sells first: the ``S`` lowest HOLDING slots become IDLE (re-armed
   below) and, if the bar's high reached their sell level, book one round trip of profit
   ``q * (sell - buy)`` (else it was another exit, e.g. the stop-loss, and nothing is
   booked).  With ``ctx.open_orders == 0`` every CANCELING slot left becomes IDLE.
2. Vanished orders: ``ctx.open_orders == 0`` while the grid thinks orders work (risk
   refused them, the venue canceled or expired them): BUYING slots become IDLE and
   HOLDING slots send their sell again.
3. Take profit: booked profit >= ``take_profit_quote`` (> 0): stop (below).
4. Range: close above the top level or below the bottom one: ``on_exit_range = "stop"``
   stops; ``"rebalance"`` cancels every BUYING slot's buy at once (a CancelIntent each; the
   slot becomes CANCELING), arms nothing while outside and, once nothing of the grid works
   any more (no BUYING/HOLDING/CANCELING slot, ``ctx.open_orders == 0``: in practice once
   the working sells have filled and the cancels are confirmed), re-centers the grid on the
   close with the same width (arithmetic) or ratio (geometric) and takes the position it
   sees as ``base``; back inside the range first, the old grid simply goes on (a CANCELING
   slot is armed again once its canceled buy has ended).  A re-centered bottom level <= 0
   stops instead.
5. Arm: every IDLE slot whose buy level is below the close, and (``arm_within_pct > 0``)
   not more than ``arm_within_pct`` % below it, gets a limit buy of ``q`` (GTC) with
   ``stop_loss = bottom level * (1 - stop_loss_pct / 100)`` (one stop under the whole grid;
   risk requires a stop on entries).  The distance limit keeps buys inside risk's
   ``price_band_pct`` (default 5 %): farther levels are armed as the price comes near.

Stop: a Signal (sell) records why and, in the same output list, a CancelIntent withdraws
every resting buy (BUYING slots become CANCELING); no buy is sent any more; the limit sells
working since earlier bars keep working (they hold the units they would sell: a market sell
of those units would be refused by risk's reduce-only check and the venue's reservations);
every unit they do not cover (this bar's fills and the sells rule 2 would send again, a
canceled buy that filled before its cancel landed) is sold with a reduce-only market order
(again when the position changed, or after ``RETRY_BARS`` bars).

Intent ids: ``{exchange}:{symbol}:grid:{ts_event}:{buy-i|sell-i|exit-sell}``; a CancelIntent
names the id of the buy it withdraws (``ts_event`` of the bar that placed it, from the
state), and is sent once per order: only a BUYING slot is canceled, and it leaves BUYING.

Limits (documented, not hidden): the grid keeps up to ``levels - 1`` limit orders working,
so it needs ``risk.max_open_orders >= levels`` (config validation enforces it) and
``risk.max_orders_per_minute >= levels`` to arm a whole grid on one bar.  A stop does not
take back the units its working sells hold (a true "cancel everything and flatten" would
cancel the sells too), and a rebalance waits for the old grid's sells to fill.  A reload
that changes the grid (below) cancels the old grid's resting buys and leaves its sells
working; their fills, and those of a buy that fills before its cancel lands, show in the
position (against ``base``) and are counted by the new grid.  An order risk refuses counts
as "ended" like a fill: in a bar where that coincides with fills the buy/sell split can be
wrong for that bar; the holding count is re-checked against the position on every bar, and
a surplus reduce-only sell is refused by risk (it would not reduce), so the grid converges
back.  A state saved before ``order_ts`` existed decodes with the intent ids unknown: its
resting buys are not canceled (they are left working, untracked, as before) and every
order placed from then on is tracked.

Restart (:meth:`GridStrategy.reconcile`, called once on the first bar after a restart with the
recovered position and the grid's open orders): a restored state may be older than both (its
buys filled, its sells were placed or filled, the paper venue canceled everything), and rule 1
only infers fills from changes since the state was saved.  So the slots are re-derived: a slot
with an open ``buy-i`` order of this grid works it (BUYING, CANCELING if it was being canceled),
one with an open ``sell-i`` holds (HOLDING), every other slot is IDLE; the held units, ``floor((
position - base) / q)``, that no working sell covers are HOLDING slots without a sell
(``unsold``: the IDLE ones whose buy level is nearest the position's average price), and the
next bar sends their sells before anything else (rule 1 then does not count them as ended
orders).  Orders with other ids (another strategy's, an older grid's with other levels) are not
the grid's.  A stopped grid is left as it is (it sells what its sells do not cover anyway).

State: :class:`GridState` (immutable, decimals) round-trips through msgspec msgpack and
json.  Reload (:meth:`GridStrategy.with_params`): the state is kept when ``lower``,
``upper``, ``levels`` and ``spacing`` are unchanged; otherwise the grid starts afresh on
the next bar (profit kept, current position taken as ``base``) and, in that bar's outputs,
cancels the old grid's resting buys.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from itertools import pairwise
from typing import TYPE_CHECKING

import msgspec

from actors.messages import Bar, CancelIntent, OrderIntent
from actors.params import GridParams
from actors.strategies.base import OpenOrder, Output, StrategyContext, floor_to_step, round_to_tick
from actors.strategies.common import BarStrategy, bar_prices, make_intent, make_signal, pct

if TYPE_CHECKING:
    from actors.strategies.base import Strategy

NAME = "grid"
IDLE, BUYING, HOLDING, CANCELING = 0, 1, 2, 3
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


def grid_intent_id(ctx: StrategyContext, ts: int, tag: str) -> str:
    """The id :func:`~actors.strategies.common.make_intent` gives a grid intent of bar ``ts``."""
    return f"{ctx.exchange}:{ctx.symbol}:{NAME}:{ts}:{tag}"


def split_ended(ended: int, moved: int, holding: int, buying: int, canceling: int) -> tuple[int, int, int]:
    """Rule 1: ``(bought, sold, vanished)`` for ``ended`` orders and a holding change of ``moved``
    slots, with ``holding`` sells, ``buying`` buys and ``canceling`` canceled buys working.

    Canceled buys are expected to vanish: the largest ``vanished`` that lets the fills fit wins.
    """
    for vanished in range(min(canceling, ended), -1, -1):
        rest = ended - vanished
        if (rest + moved) % 2:
            continue
        bought = (rest + moved) // 2
        sold = rest - bought
        if 0 <= bought <= buying + canceling - vanished and 0 <= sold <= holding:
            return bought, sold, vanished
    # not explained by fills alone (orders vanished, or another order of the symbol ended)
    return max(moved, 0), max(-moved, 0), 0


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
    order_ts: tuple[int, ...] = ()
    """Per slot, ``ts_event`` of the bar that placed the slot's working (or canceled) order: its
    intent id is ``{exchange}:{symbol}:grid:{ts}:{buy-i|sell-i}``; 0: none or unknown.  Empty
    in a state saved before this field existed (read as all unknown)."""
    unsold: tuple[int, ...] = ()
    """HOLDING slots whose sell is not working (found by :meth:`GridStrategy.reconcile` after a
    restart): the next bar sends it."""


Result = tuple[GridState, list[Output]]


def _order_ts(state: GridState) -> list[int]:
    """``state.order_ts`` as a list as long as the slots (all 0, unknown, for an older state)."""
    if len(state.order_ts) == len(state.slots):
        return list(state.order_ts)
    return [0] * len(state.slots)


class GridStrategy(BarStrategy[GridState, GridParams]):
    name = NAME

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

    def initial_state(self) -> GridState:
        return GridState()

    def _fresh(
        self, state: GridState, lower: Decimal, upper: Decimal, ctx: StrategyContext
    ) -> GridState | None:
        """A grid on ``lower``..``upper`` with every slot IDLE; None if its levels collapse at this tick."""
        p = self._params
        lines = grid_levels(lower, upper, p.levels, p.spacing, ctx.tick_size)
        if lines[0] <= 0 or any(b <= a for a, b in pairwise(lines)):
            return None
        n = p.levels - 1
        return msgspec.structs.replace(
            state,
            spec=self._spec,
            lower=lower,
            upper=upper,
            lines=lines,
            slots=(IDLE,) * n,
            order_ts=(0,) * n,
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
        ts = bar.ts_event
        reloaded: list[Output] = []
        if state.spec != self._spec:
            # a new grid (first bar, or a reload that moved it): the old grid's resting buys go
            _, reloaded = self._cancel_buys(state, ctx, ts, f"grid changed: {state.spec} -> {self._spec}")
            base = max(position, _ZERO)
            fresh = self._fresh(GridState(profit=state.profit, base=base), p.lower, p.upper, ctx)
            if fresh is None:
                reason = "grid levels collapse at this tick"
                return GridState(spec=self._spec, stopped=True, stop_reason=reason), reloaded
            state = fresh
        state = msgspec.structs.replace(
            state, bars=state.bars + 1, base=min(state.base, max(position, _ZERO))
        )
        stopped = state.stopped
        resent: list[Output] = []
        pending: list[int] = []
        if state.unsold and not stopped:  # after a restart: held units no working sell covers
            state, resent, pending = self._sell_unsold(state, ctx, ts, q)
        # 1. fills (a stopped grid places no sell for a late buy fill: it sells it at market)
        state, out, placed = self._fills(state, bar, ctx, q, place_sells=not stopped, pending=len(pending))
        out = reloaded + resent + out
        placed += pending
        if stopped:
            return self._flatten(state, bar, ctx, out, q)
        lines = state.lines
        # 2. orders that vanished without a fill
        if ctx.open_orders == 0:
            slots, order_ts = list(state.slots), _order_ts(state)
            for i, s in enumerate(slots):
                if s == BUYING:
                    slots[i], order_ts[i] = IDLE, 0
                elif s == HOLDING and i not in placed:
                    out.append(self._sell(ctx, ts, i, lines, q))
                    order_ts[i] = ts
                    placed.append(i)
            state = msgspec.structs.replace(state, slots=tuple(slots), order_ts=tuple(order_ts))
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
            state, cancels = self._cancel_buys(state, ctx, ts, f"rebalance pending: {reason}")
            out.extend(cancels)
            if any(state.slots) or ctx.open_orders or out:
                return state, out  # rebalance pending: wait until nothing of this grid works
            recentered = self._recenter(state, close, ctx)
            if recentered is None:
                return self._stop_grid(state, bar, ctx, out, placed, q, f"{reason}; cannot re-center below 0")
            out.append(make_signal(ctx, NAME, ts, "buy", close, f"rebalance: {reason}"))
            state = msgspec.structs.replace(recentered, base=max(position, _ZERO))
            lines = state.lines
        # 5. arm idle slots below the close
        slots, order_ts = list(state.slots), _order_ts(state)
        stop = round_to_tick(lines[0] * (1 - self._stop), ctx.tick_size)
        stop_loss = stop if stop > 0 else None
        lowest = close * self._near if p.arm_within_pct > 0 else _ZERO
        for i, s in enumerate(slots):
            if s == IDLE and lowest <= lines[i] < close:
                slots[i], order_ts[i] = BUYING, ts
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
                        post_only=self._params.post_only,
                    )
                )
        return msgspec.structs.replace(state, slots=tuple(slots), order_ts=tuple(order_ts)), out

    def reconcile(self, state: GridState, ctx: StrategyContext, orders: Sequence[OpenOrder]) -> GridState:
        """After a restart: each slot's status from the grid's open orders and the position (module doc)."""
        if state.spec != self._spec or state.stopped or not state.slots or ctx.step_size <= 0:
            return state
        q = floor_to_step(self._params.quantity, ctx.step_size)
        if q <= 0:
            return state
        n = len(state.slots)
        slots, order_ts = [IDLE] * n, [0] * n
        prefix = f"{ctx.exchange}:{ctx.symbol}:{NAME}:"
        for order in orders:
            if not order.intent_id.startswith(prefix):
                continue
            ts_text, _, tag = order.intent_id[len(prefix) :].partition(":")
            kind, _, index = tag.partition("-")
            if not (ts_text.isdigit() and index.isdigit() and int(index) < n):
                continue
            i = int(index)
            if kind == "buy" and order.side == "buy":
                canceling = state.slots[i] == CANCELING and _order_ts(state)[i] == int(ts_text)
                slots[i], order_ts[i] = (CANCELING if canceling else BUYING), int(ts_text)
            elif kind == "sell" and order.side == "sell":
                slots[i], order_ts[i] = HOLDING, int(ts_text)
        base = min(state.base, max(ctx.position, _ZERO))
        held = int(max(ctx.position - base, _ZERO) // q)
        uncovered = held - slots.count(HOLDING)
        idle = [i for i, s in enumerate(slots) if s == IDLE]
        anchor = ctx.avg_price if ctx.avg_price > 0 else state.lines[n // 2]
        idle.sort(key=lambda i: (abs(state.lines[i] - anchor), -i))
        unsold = sorted(idle[: max(uncovered, 0)])
        for i in unsold:
            slots[i] = HOLDING
        return msgspec.structs.replace(
            state, slots=tuple(slots), order_ts=tuple(order_ts), base=base, unsold=tuple(unsold)
        )

    def _sell_unsold(
        self, state: GridState, ctx: StrategyContext, ts: int, q: Decimal
    ) -> tuple[GridState, list[Output], list[int]]:
        """The sells of the HOLDING slots :meth:`reconcile` found without one."""
        order_ts = _order_ts(state)
        out: list[Output] = []
        sent = [i for i in state.unsold if i < len(state.slots) and state.slots[i] == HOLDING]
        for i in sent:
            out.append(self._sell(ctx, ts, i, state.lines, q))
            order_ts[i] = ts
        return msgspec.structs.replace(state, order_ts=tuple(order_ts), unsold=()), out, sent

    def _fills(
        self,
        state: GridState,
        bar: Bar,
        ctx: StrategyContext,
        q: Decimal,
        place_sells: bool,
        pending: int = 0,
    ) -> tuple[GridState, list[Output], list[int]]:
        """Rule 1: which buys and sells filled and which canceled buys ended since the last bar,
        from position and open orders; also the slots that got a sell now.  ``pending``: HOLDING
        slots whose sell goes out on this bar (not in ``ctx.open_orders`` yet, not ended)."""
        slots, order_ts = list(state.slots), _order_ts(state)
        held_real = int(max(ctx.position - state.base, _ZERO) // q)
        holding = [i for i, s in enumerate(slots) if s == HOLDING]
        buying = [i for i, s in enumerate(slots) if s == BUYING]
        canceling = [i for i, s in enumerate(slots) if s == CANCELING]
        moved = held_real - len(holding)
        ended = max(len(holding) + len(buying) + len(canceling) - pending - ctx.open_orders, 0)
        bought, sold, vanished = split_ended(ended, moved, len(holding), len(buying), len(canceling))
        out: list[Output] = []
        lines = state.lines
        placed: list[int] = []
        ts = bar.ts_event
        canceled_fills = len(canceling) - vanished  # at most this many canceled buys filled
        for i in sorted(buying + canceling, reverse=True):  # highest buys first
            if bought == 0:
                break
            if slots[i] == CANCELING:
                if canceled_fills == 0:
                    continue
                canceled_fills -= 1
            bought -= 1
            if place_sells:
                slots[i], order_ts[i] = HOLDING, ts
                placed.append(i)
                out.append(self._sell(ctx, ts, i, lines, q))
            else:
                slots[i], order_ts[i] = IDLE, 0
        for i in canceling:
            if slots[i] == CANCELING and (vanished > 0 or ctx.open_orders == 0):
                vanished -= 1
                slots[i], order_ts[i] = IDLE, 0
        profit, trips = state.profit, state.round_trips
        for i in holding[:sold]:
            slots[i], order_ts[i] = IDLE, 0
            if bar.high >= lines[i + 1]:
                profit += q * (lines[i + 1] - lines[i])
                trips += 1
        return (
            msgspec.structs.replace(
                state, slots=tuple(slots), order_ts=tuple(order_ts), profit=profit, round_trips=trips
            ),
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
            post_only=self._params.post_only,
        )

    def _cancel_buys(
        self, state: GridState, ctx: StrategyContext, ts: int, reason: str
    ) -> tuple[GridState, list[Output]]:
        """A CancelIntent for every BUYING slot's buy, which becomes CANCELING; a buy whose intent
        id is unknown (a state from before ``order_ts``) is left working, its slot IDLE."""
        slots, order_ts = list(state.slots), _order_ts(state)
        out: list[Output] = []
        for i, s in enumerate(slots):
            if s != BUYING:
                continue
            if order_ts[i] == 0:
                slots[i] = IDLE
                continue
            slots[i] = CANCELING
            out.append(
                CancelIntent(
                    exchange=ctx.exchange,
                    symbol=ctx.symbol,
                    ts_event=ts,
                    ts_recv=ctx.now_ns,
                    intent_id=grid_intent_id(ctx, order_ts[i], f"buy-{i}"),
                    source=f"strategy:{NAME}",
                    reason=reason,
                )
            )
        return msgspec.structs.replace(state, slots=tuple(slots), order_ts=tuple(order_ts)), out

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
        """Stop: no more buys, the resting ones canceled; what the sells working before this bar
        do not cover is sold at market (the sells just placed on this bar, for its fills or sent
        again by rule 2, are dropped: those units go too)."""
        out = [o for o in out if not (isinstance(o, OrderIntent) and o.reduce_only)]
        out.append(make_signal(ctx, NAME, bar.ts_event, "sell", bar.close, f"stop: {reason}"))
        slots, order_ts = list(state.slots), _order_ts(state)
        for i in placed:
            slots[i], order_ts[i] = IDLE, 0
        state = msgspec.structs.replace(state, slots=tuple(slots), order_ts=tuple(order_ts))
        state, cancels = self._cancel_buys(state, ctx, bar.ts_event, f"stop: {reason}")
        out.extend(cancels)
        state = msgspec.structs.replace(state, stopped=True, stop_reason=reason)
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
