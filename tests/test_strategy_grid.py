"""grid on the bundled real candles against a toy limit-order exchange, checked against an
independent reference grid that sees every fill directly; plus levels, stop / rebalance,
take profit, vanished orders, canceling resting buys (CancelIntent) and the fill accounting
around it, state round trips (also of a state saved before ``order_ts``) and its config."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import msgspec
import pytest

from actors.messages import Bar, CancelIntent, OrderIntent, Signal
from actors.params import GridParams
from actors.strategies.base import OpenOrder, StrategyContext
from actors.strategies.grid import (
    BUYING,
    CANCELING,
    HOLDING,
    IDLE,
    GridState,
    GridStrategy,
    grid_levels,
    split_ended,
)
from actors.strategies.registry import build_strategy
from tests.strategy_helpers import (
    EXCHANGE,
    NS,
    STRATEGY_LINE,
    SYMBOL,
    TICK,
    ZERO,
    D,
    bars,
    make_bar,
    make_ctx,
    parse_strategy,
    rejects,
    roundtrip,
)

LOWER, UPPER = D("0.0017"), D("0.0021")
PARAMS = GridParams(lower=LOWER, upper=UPPER, levels=9, quantity=D(10), stop_loss_pct=5.0, arm_within_pct=0.0)
WINDOW = slice(2000, 5000)  # 0.00176..0.00207 on these bars: inside the grid


@dataclass
class Exchange:
    """A toy venue: a resting limit buy fills at its price when a later bar's low reaches it, a
    sell when the high does; market orders fill at the close at once; a CancelIntent removes
    the order its intent became at once (and is recorded)."""

    position: Decimal = ZERO
    resting: list[OrderIntent] = field(default_factory=list)
    fills: list[tuple[int, str, Decimal]] = field(default_factory=list)
    canceled: list[str] = field(default_factory=list)
    placed: set[str] = field(default_factory=set)

    def match(self, i: int, bar: Bar) -> None:
        for o in list(self.resting):
            assert o.price is not None
            if (o.side == "buy" and bar.low <= o.price) or (o.side == "sell" and bar.high >= o.price):
                self.fill(i, o, o.price)
                self.resting.remove(o)

    def fill(self, i: int, o: OrderIntent, price: Decimal) -> None:
        qty = o.quantity if o.side == "buy" else -min(o.quantity, self.position)
        self.position += qty
        self.fills.append((i, o.side, price))

    def submit(self, i: int, bar: Bar, out: list[object]) -> None:
        for o in out:
            if isinstance(o, CancelIntent):
                assert o.intent_id in self.placed and o.intent_id not in self.canceled  # once, and known
                self.canceled.append(o.intent_id)
                self.resting = [r for r in self.resting if r.intent_id != o.intent_id]
            elif isinstance(o, OrderIntent):
                self.placed.add(o.intent_id)
                if o.order_type == "market":
                    self.fill(i, o, bar.close)
                else:
                    self.resting.append(o)


def simulate(
    strategy: GridStrategy, bar_list: list[Bar], state: GridState | None = None
) -> tuple[GridState, Exchange, list[list[object]]]:
    ex = Exchange()
    state = strategy.initial_state() if state is None else state
    outputs: list[list[object]] = []
    for i, bar in enumerate(bar_list):
        ex.match(i, bar)
        ctx = make_ctx(bar.ts_event, ex.position, open_orders=len(ex.resting))
        state, out = strategy.on_bar(state, bar, ctx)
        outputs.append(list(out))
        ex.submit(i, bar, list(out))
    return state, ex, outputs


def reference(
    bar_list: list[Bar], lines: tuple[Decimal, ...]
) -> tuple[list[tuple[int, str, Decimal]], Decimal]:
    """The grid's rules with perfect information: each slot's own orders, no inference."""
    slots = [IDLE] * (len(lines) - 1)
    fills: list[tuple[int, str, Decimal]] = []
    profit = ZERO
    for i, bar in enumerate(bar_list):
        done_buys, done_sells = [], []
        for k, s in enumerate(slots):  # orders rest from earlier bars; match like the toy venue
            if s == BUYING and bar.low <= lines[k]:
                done_buys.append(k)
            elif s == HOLDING and bar.high >= lines[k + 1]:
                done_sells.append(k)
        for k in done_buys:
            slots[k] = HOLDING
            fills.append((i, "buy", lines[k]))
        for k in done_sells:
            slots[k] = IDLE
            fills.append((i, "sell", lines[k + 1]))
            profit += D(10) * (lines[k + 1] - lines[k])
        for k, s in enumerate(slots):
            if s == IDLE and lines[k] < bar.close:
                slots[k] = BUYING
    return fills, profit


def test_levels_arithmetic_and_geometric() -> None:
    assert grid_levels(D(100), D(200), 5, "arithmetic", D("0.01")) == (
        D(100),
        D(125),
        D(150),
        D(175),
        D(200),
    )
    geo = grid_levels(D(100), D(400), 3, "geometric", D("0.01"))
    assert geo == (D("100.00"), D("200.00"), D("400.00"))
    arith = grid_levels(LOWER, UPPER, 9, "arithmetic", TICK)
    assert arith[1] - arith[0] == D("0.00005") and arith[-1] == UPPER


def test_fills_and_profit_match_the_perfect_information_reference() -> None:
    strategy = GridStrategy(msgspec.structs.replace(PARAMS, levels=41))  # one level per 0.00001
    window = bars()[WINDOW]
    state, ex, _ = simulate(strategy, window)
    expected_fills, expected_profit = reference(window, state.lines)
    assert sorted(ex.fills) == sorted(expected_fills) and len(ex.fills) == 589
    assert state.profit == expected_profit and state.round_trips == sum(1 for f in ex.fills if f[1] == "sell")
    assert state.round_trips == 287 and state.profit == D("0.0287")  # 287 * 10 * 0.00001
    assert not state.stopped and ex.position == D(10) * sum(1 for s in state.slots if s == HOLDING)


def test_first_bar_arms_every_level_below_the_close_checked_by_hand() -> None:
    """Bar 2000 closes at 0.00199400 (2017-11-06): levels 0.0017, 0.00175, ..., 0.00195 are below it."""
    bar = bars()[2000]
    assert bar.close == D("0.001994")
    state, out = GridStrategy(PARAMS).on_bar(GridState(), bar, make_ctx(bar.ts_event))
    buys = [x for x in out if isinstance(x, OrderIntent)]
    assert [x.price for x in buys] == [D("0.0017") + D("0.00005") * k for k in range(6)]
    assert all(x.order_type == "limit" and x.side == "buy" and x.quantity == D(10) for x in buys)
    assert {x.stop_loss for x in buys} == {D("0.001615")}  # 0.0017 * 0.95
    assert buys[0].intent_id == f"{EXCHANGE}:{SYMBOL}:grid:{bar.ts_event}:buy-0"
    assert state.slots == (BUYING,) * 6 + (IDLE,) * 2
    roundtrip(state)


def hand(closes: list[str], start: int = 0) -> list[Bar]:
    """Bars at the given closes, wicks of one grid step around them."""
    out = []
    for k, c in enumerate(closes):
        px = D(c)
        out.append(make_bar((start + k + 1) * 60 * NS, px, px + D("0.00001"), px - D("0.00001"), px))
    return out


def buy_id(bar: Bar, i: int) -> str:
    """The intent id of slot ``i``'s buy armed on ``bar``."""
    return f"{EXCHANGE}:{SYMBOL}:grid:{bar.ts_event}:buy-{i}"


def test_only_levels_near_the_close_are_armed() -> None:
    """With arm_within_pct = 4 (the default) at 0.0019 only levels >= 0.001824 are armed: 0.00185;
    0.0018 follows when the price comes near."""
    strategy = GridStrategy(msgspec.structs.replace(PARAMS, arm_within_pct=4.0))
    state, _, outputs = simulate(strategy, hand(["0.00190", "0.00187"]))
    assert [x.price for x in outputs[0] if isinstance(x, OrderIntent)] == [D("0.00185")]
    assert [x.price for x in outputs[1] if isinstance(x, OrderIntent)] == [D("0.0018")]  # >= 0.0017952
    assert state.slots[:4] == (IDLE, IDLE, BUYING, BUYING)


def test_exit_range_stop_sells_what_no_working_sell_covers() -> None:
    """Buys at 0.0017..0.00185 armed at 0.0019; 0.00184 fills 0.00185 (its sell at 0.0019 works);
    0.00165 (below the grid) fills 0.0018, 0.00175, 0.0017 and stops the grid: those 30 units are
    sold at market, the 10 held by the working sell at 0.0019 stay with it."""
    strategy = GridStrategy(PARAMS)
    made = hand(["0.00190", "0.00184", "0.00165", "0.00180", "0.00170"])
    state, ex, outputs = simulate(strategy, made)
    assert state.stopped and "below the grid" in state.stop_reason
    stop_out = outputs[2]
    assert [type(x) for x in stop_out] == [Signal, OrderIntent]
    exit_ = stop_out[1]
    assert isinstance(exit_, OrderIntent) and exit_.reduce_only and exit_.order_type == "market"
    assert exit_.quantity == D(30) and exit_.intent_id.endswith(":exit-sell")
    assert not any(outputs[3]) and not any(outputs[4])
    assert ex.position == D(10) and [(o.side, o.price) for o in ex.resting] == [("sell", D("0.0019"))]
    assert state.slots == (IDLE, IDLE, IDLE, HOLDING) + (IDLE,) * 4


def test_stopped_grid_flattens_orphan_fills_and_retries() -> None:
    strategy = GridStrategy(PARAMS)
    state = GridState(spec="x")
    bar = hand(["0.00190"])[0]
    state, _ = strategy.on_bar(state, bar, make_ctx(bar.ts_event))
    state = msgspec.structs.replace(state, stopped=True, stop_reason="test")
    later = hand(["0.00185"] * 7, start=1)
    sent = []
    for b in later:
        state, out = strategy.on_bar(state, b, make_ctx(b.ts_event, D(10)))
        sent.append(len(out))
    assert sent == [1, 0, 0, 0, 0, 1, 0]  # once, then again after RETRY_BARS bars


def test_exit_range_rebalance_cancels_the_buys_at_once_then_recenters() -> None:
    """0.00215 is above the grid: its 4 resting buys are canceled on that bar (nothing else works),
    and the next bar re-centers without waiting for them to fill or be canceled by hand."""
    strategy = GridStrategy(msgspec.structs.replace(PARAMS, on_exit_range="rebalance"))
    made = hand(["0.00190", "0.00215", "0.00216"])
    state, ex, outputs = simulate(strategy, made)
    assert all(isinstance(x, CancelIntent) for x in outputs[1])
    assert [x.intent_id for x in outputs[1] if isinstance(x, CancelIntent)] == [
        buy_id(made[0], i) for i in range(4)
    ]
    assert ex.canceled == [buy_id(made[0], i) for i in range(4)] and ex.fills == []
    assert not state.stopped
    assert state.lower == D("0.00196") and state.upper == D("0.00236")  # 0.00216 -+ 0.0002
    out = outputs[2]
    assert isinstance(out[0], Signal) and out[0].reason.startswith("rebalance: close 0.00216 above the grid")
    assert [x.price for x in out if isinstance(x, OrderIntent)] == [
        D("0.00196") + D("0.00005") * k for k in range(4)
    ]
    assert not any(isinstance(x, CancelIntent) for x in out)


def test_rebalance_waits_only_for_the_working_sells() -> None:
    """A venue that confirms cancels and fills a bar late: slot 3 holds (its sell at 0.0019 works)
    when the price leaves the grid; the 3 buys are canceled once, their end is no fill, and the
    grid re-centers on the bar after the sell filled."""
    strategy = GridStrategy(msgspec.structs.replace(PARAMS, on_exit_range="rebalance"))
    b = hand(["0.00190", "0.00184", "0.00215", "0.00216", "0.00217", "0.00218"])
    state, _ = strategy.on_bar(GridState(), b[0], make_ctx(b[0].ts_event))
    state, out = strategy.on_bar(state, b[1], make_ctx(b[1].ts_event, D(10), open_orders=3))
    assert state.slots[3] == HOLDING and state.order_ts[3] == b[1].ts_event
    # above the grid: the sell still works at the venue, the 3 buys are canceled
    state, out = strategy.on_bar(state, b[2], make_ctx(b[2].ts_event, D(10), open_orders=4))
    assert [x.intent_id for x in out if isinstance(x, CancelIntent)] == [buy_id(b[0], i) for i in range(3)]
    assert len(out) == 3 and state.slots[:4] == (CANCELING,) * 3 + (HOLDING,)
    # the cancels are not confirmed yet: nothing changes, nothing is sent again
    state, out = strategy.on_bar(state, b[3], make_ctx(b[3].ts_event, D(10), open_orders=4))
    assert out == [] and state.slots[:4] == (CANCELING,) * 3 + (HOLDING,)
    # the cancels are confirmed: 3 orders ended, position unchanged: no fill, only the sell works
    state, out = strategy.on_bar(state, b[4], make_ctx(b[4].ts_event, D(10), open_orders=1))
    assert out == [] and state.slots[:4] == (IDLE,) * 3 + (HOLDING,) and state.round_trips == 0
    assert state.lower == LOWER
    # the sell filled: one round trip, nothing works, re-centered on 0.00218
    state, out = strategy.on_bar(state, b[5], make_ctx(b[5].ts_event, ZERO, open_orders=0))
    assert state.round_trips == 1 and state.profit == D("0.0005")
    assert state.lower == D("0.00198") and state.base == ZERO
    assert isinstance(out[0], Signal) and out[0].reason.startswith("rebalance: close 0.00218")
    assert len([x for x in out if isinstance(x, OrderIntent) and x.side == "buy"]) == 4


def test_back_in_range_before_a_rebalance_the_old_grid_goes_on() -> None:
    """The buys canceled on leaving the range are armed again (new intents) once they ended."""
    strategy = GridStrategy(msgspec.structs.replace(PARAMS, on_exit_range="rebalance"))
    made = hand(["0.00190", "0.00215", "0.00205"])
    _, ex, outputs = simulate(strategy, made)
    assert len(outputs[1]) == 4 and all(isinstance(x, CancelIntent) for x in outputs[1])
    again = [x for x in outputs[2] if isinstance(x, OrderIntent)]
    assert [x.price for x in again] == [D("0.0017") + D("0.00005") * k for k in range(7)]
    assert {x.intent_id.split(":")[3] for x in again} == {str(made[2].ts_event)}
    assert len(ex.resting) == 7


def test_back_in_range_a_canceled_buy_is_armed_again_only_once_it_ended() -> None:
    strategy = GridStrategy(msgspec.structs.replace(PARAMS, on_exit_range="rebalance"))
    b = hand(["0.00190", "0.00215", "0.00205", "0.00205"])
    state, _ = strategy.on_bar(GridState(), b[0], make_ctx(b[0].ts_event))
    state, _ = strategy.on_bar(state, b[1], make_ctx(b[1].ts_event, open_orders=4))
    # back inside, the 4 cancels not confirmed yet: only the free slots 4..6 are armed
    state, out = strategy.on_bar(state, b[2], make_ctx(b[2].ts_event, open_orders=4))
    assert [x.price for x in out if isinstance(x, OrderIntent)] == [D("0.0019"), D("0.00195"), D("0.002")]
    assert state.slots[:7] == (CANCELING,) * 4 + (BUYING,) * 3
    # the cancels are confirmed (the 3 new buys work): 4 ended, no fill; slots 0..3 armed again
    state, out = strategy.on_bar(state, b[3], make_ctx(b[3].ts_event, open_orders=3))
    assert [x.price for x in out if isinstance(x, OrderIntent)] == [
        D("0.0017") + D("0.00005") * k for k in range(4)
    ]
    assert state.slots[:7] == (BUYING,) * 7 and state.round_trips == 0


def test_take_profit_stops_the_grid_and_cancels_exactly_the_resting_buys() -> None:
    strategy = GridStrategy(msgspec.structs.replace(PARAMS, take_profit_quote=D("0.001")))
    window = bars()[WINDOW]
    state, ex, outputs = simulate(strategy, window)
    assert state.stopped and state.stop_reason.startswith("grid profit 0.00100")
    # stopped at bar 1088 (close 0.002) holding 2 slots whose sells work; nothing else to sell
    assert state.round_trips == 2 and state.slots == (IDLE,) * 6 + (HOLDING,) * 2 and ex.position == D(20)
    assert [(o.side, o.price) for o in ex.resting] == [("sell", D("0.0021")), ("sell", D("0.00205"))]
    # the stop bar: the Signal, then a cancel of each buy resting at the venue then (and nothing else)
    _, before, _ = simulate(strategy, window[:1088])
    resting_buys = [o.intent_id for o in before.resting if o.side == "buy"]
    assert len(resting_buys) == 5  # 0.0017..0.0019, armed on the first bar
    stop_out = outputs[1088]
    assert isinstance(stop_out[0], Signal) and stop_out[0].reason.startswith("stop: grid profit")
    assert all(isinstance(x, CancelIntent) for x in stop_out[1:])
    assert [x.intent_id for x in stop_out if isinstance(x, CancelIntent)] == resting_buys == ex.canceled
    assert not any(isinstance(x, OrderIntent) and x.side == "buy" for out in outputs[1089:] for x in out)
    assert not any(isinstance(x, CancelIntent) for out in outputs[1089:] for x in out)
    # canceled, they no longer fill later (they used to, and were sold at market): no trade after
    assert ex.fills[-1] == (1088, "sell", D("0.002")) and not any(outputs[1090:])


def test_stop_cancels_the_resting_buys_by_their_intent_ids() -> None:
    """Buys at 0.0017..0.00185 armed on bar 0; 0.00184 fills 0.00185 (its sell at 0.0019 then works);
    0.00215 above the grid stops it (the toy venue fills the sell on that bar): the three buys
    still resting are canceled, in the same output list as the stop Signal, and nothing is left."""
    strategy = GridStrategy(PARAMS)
    made = hand(["0.00190", "0.00184", "0.00215", "0.00216"])
    state, ex, outputs = simulate(strategy, made)
    placed = [x.intent_id for x in outputs[0] if isinstance(x, OrderIntent)]
    stop_out = outputs[2]
    assert [type(x) for x in stop_out] == [Signal, CancelIntent, CancelIntent, CancelIntent]
    cancels = [x for x in stop_out if isinstance(x, CancelIntent)]
    assert [x.intent_id for x in cancels] == placed[:3] == [buy_id(made[0], i) for i in range(3)]
    assert {x.source for x in cancels} == {"strategy:grid"} and cancels[0].reason.startswith("stop: close")
    assert ex.resting == [] and ex.position == ZERO and state.round_trips == 1
    assert state.slots == (IDLE,) * 8 and outputs[3] == []


def test_stopped_grid_sells_a_canceled_buy_that_filled_before_its_cancel() -> None:
    """Stop with a sell working (slot 3) and 3 buys canceled; one of those fills before its cancel
    lands: it is no grid holding, so it is sold at market; the other two end without a fill."""
    strategy = GridStrategy(msgspec.structs.replace(PARAMS, take_profit_quote=D("0.0001")))
    b = hand(["0.00190", "0.00184", "0.00186", "0.00183", "0.00183"])
    state, _ = strategy.on_bar(GridState(), b[0], make_ctx(b[0].ts_event))
    state, _ = strategy.on_bar(state, b[1], make_ctx(b[1].ts_event, D(10), open_orders=3))
    state = msgspec.structs.replace(state, profit=D("0.0001"))  # take profit reached
    state, out = strategy.on_bar(state, b[2], make_ctx(b[2].ts_event, D(10), open_orders=4))
    assert state.stopped and [type(x) for x in out] == [Signal, CancelIntent, CancelIntent, CancelIntent]
    assert state.slots[:4] == (CANCELING,) * 3 + (HOLDING,)
    # buy-2 (0.0018) filled before its cancel; the other two cancels are not confirmed yet
    state, out = strategy.on_bar(state, b[3], make_ctx(b[3].ts_event, D(20), open_orders=3))
    assert state.slots[:4] == (CANCELING, CANCELING, IDLE, HOLDING)
    assert len(out) == 1 and isinstance(out[0], OrderIntent) and out[0].intent_id.endswith(":exit-sell")
    assert out[0].quantity == D(10) and out[0].order_type == "market" and out[0].reduce_only
    # the exit sold, the two cancels confirmed: two orders ended without a fill
    state, out = strategy.on_bar(state, b[4], make_ctx(b[4].ts_event, D(10), open_orders=1))
    assert out == [] and state.slots[:4] == (IDLE,) * 3 + (HOLDING,) and state.round_trips == 0


def test_a_stop_on_a_bar_that_sends_a_vanished_sell_again_sells_those_units_at_market() -> None:
    """Everything vanished (open orders 0) on the bar take profit is reached: the sell rule 2 would
    send again is dropped with the stop, so its units are sold at market (not left uncovered)."""
    strategy = GridStrategy(msgspec.structs.replace(PARAMS, take_profit_quote=D("0.0001")))
    b = hand(["0.00190", "0.00184", "0.00186"])
    state, _ = strategy.on_bar(GridState(), b[0], make_ctx(b[0].ts_event))
    state, _ = strategy.on_bar(state, b[1], make_ctx(b[1].ts_event, D(10), open_orders=3))
    state = msgspec.structs.replace(state, profit=D("0.0001"))
    state, out = strategy.on_bar(state, b[2], make_ctx(b[2].ts_event, D(10), open_orders=0))
    assert [type(x) for x in out] == [Signal, OrderIntent]  # nothing rests: nothing to cancel
    exit_ = out[1]
    assert (
        isinstance(exit_, OrderIntent) and exit_.intent_id.endswith(":exit-sell") and exit_.quantity == D(10)
    )
    assert state.stopped and state.slots == (IDLE,) * 8


def test_vanished_orders_are_re_armed() -> None:
    strategy = GridStrategy(PARAMS)
    bar, nxt = hand(["0.00190", "0.00191"])
    state, out = strategy.on_bar(GridState(), bar, make_ctx(bar.ts_event))
    assert sum(isinstance(x, OrderIntent) for x in out) == 4
    # risk refused them all: nothing works at the venue, nothing filled; 0.00191 also arms 0.0019
    state, out = strategy.on_bar(state, nxt, make_ctx(nxt.ts_event, open_orders=0))
    again = [x for x in out if isinstance(x, OrderIntent)]
    assert len(again) == 5 and again[0].intent_id.endswith(f"{nxt.ts_event}:buy-0")


def test_a_bar_filling_a_buy_and_a_sell_is_told_apart_by_the_order_count() -> None:
    """One wide bar sells slot 4 (0.0019 -> 0.00195) and buys slot 3 (0.00185): the position does
    not move, but two orders ended: one buy and one sell."""
    strategy = GridStrategy(PARAMS)
    state, ex, _ = simulate(strategy, hand(["0.00192", "0.00189", "0.00192"]))
    assert state.slots[4] == HOLDING and ex.position == D(10)
    wide = make_bar(4 * 60 * NS, D("0.00192"), D("0.00196"), D("0.00184"), D("0.00192"))
    ex.match(3, wide)
    assert ex.position == D(10)
    state, out = strategy.on_bar(
        state, wide, make_ctx(wide.ts_event, ex.position, open_orders=len(ex.resting))
    )
    assert state.round_trips == 1 and state.profit == D("0.0005")
    assert state.slots[3] == HOLDING and state.slots[4] == BUYING
    sells = [x for x in out if isinstance(x, OrderIntent) and x.side == "sell"]
    assert [(x.price, x.reduce_only) for x in sells] == [(D("0.0019"), True)]


def test_state_round_trips_and_resume_is_identical() -> None:
    strategy = GridStrategy(PARAMS)
    window = bars()[WINDOW]
    whole, _, out_whole = simulate(strategy, window)
    for codec in (msgspec.msgpack, msgspec.json):
        state = GridState()
        ex = Exchange()
        outputs: list[list[object]] = []
        for i, bar in enumerate(window):
            ex.match(i, bar)
            if i == 1500:
                state = codec.decode(codec.encode(state), type=GridState)
            state, out = strategy.on_bar(
                state, bar, make_ctx(bar.ts_event, ex.position, open_orders=len(ex.resting))
            )
            outputs.append(list(out))
            ex.submit(i, bar, list(out))
        assert outputs == out_whole and state == whole


@pytest.mark.parametrize(
    ("ended", "moved", "holding", "buying", "canceling", "expected"),
    [
        (0, 0, 1, 0, 3, (0, 0, 0)),  # cancels not confirmed yet
        (3, 0, 1, 0, 3, (0, 0, 3)),  # 3 canceled buys ended: no fill
        (4, -1, 1, 0, 3, (0, 1, 3)),  # ... and the sell filled in the same bar
        (3, 1, 1, 0, 3, (1, 0, 2)),  # one canceled buy filled before its cancel landed
        (1, -1, 1, 0, 3, (0, 1, 0)),  # the sell filled, the cancels not confirmed yet
        (2, 0, 1, 1, 2, (0, 0, 2)),  # two ended, no move: the canceled ones, not a buy + a sell
        (2, 0, 1, 1, 0, (1, 1, 0)),  # without cancels: a buy and a sell
        (1, 0, 1, 1, 0, (0, 0, 0)),  # does not fit: the position decides
    ],
)
def test_split_ended_takes_canceled_buys_as_vanished_first(
    ended: int, moved: int, holding: int, buying: int, canceling: int, expected: tuple[int, int, int]
) -> None:
    assert split_ended(ended, moved, holding, buying, canceling) == expected


def test_canceled_buys_ending_with_a_sell_fill_book_one_round_trip_only() -> None:
    """Rebalance pending: the 3 cancels are confirmed in the bar the working sell fills (4 orders
    ended, holding -1): one round trip, no phantom buy, then the re-centering."""
    strategy = GridStrategy(msgspec.structs.replace(PARAMS, on_exit_range="rebalance"))
    b = hand(["0.00190", "0.00184", "0.00215", "0.00216"])
    state, _ = strategy.on_bar(GridState(), b[0], make_ctx(b[0].ts_event))
    state, _ = strategy.on_bar(state, b[1], make_ctx(b[1].ts_event, D(10), open_orders=3))
    state, out = strategy.on_bar(state, b[2], make_ctx(b[2].ts_event, D(10), open_orders=4))
    assert sum(isinstance(x, CancelIntent) for x in out) == 3
    state, out = strategy.on_bar(state, b[3], make_ctx(b[3].ts_event, ZERO, open_orders=0))
    assert state.round_trips == 1 and state.profit == D("0.0005") and state.lower == D("0.00196")
    assert not any(isinstance(x, OrderIntent) and x.side == "sell" for x in out)
    assert not any(isinstance(x, CancelIntent) for x in out)


def test_rebalancing_over_all_bars_cancels_each_buy_once_and_counts_no_phantom_fill() -> None:
    """The whole candle file (0.0016 .. 0.0037) through a rebalancing grid against the toy venue:
    every cancel names a buy that was placed, at most once (the venue asserts it); after every
    bar the grid's holding matches the venue's position, and its working orders the venue's."""
    q = D(10)
    strategy = GridStrategy(msgspec.structs.replace(PARAMS, on_exit_range="rebalance", arm_within_pct=4.0))
    ex = Exchange()
    state = strategy.initial_state()
    rebalances = 0
    for i, bar in enumerate(bars()):
        ex.match(i, bar)
        state, out = strategy.on_bar(
            state, bar, make_ctx(bar.ts_event, ex.position, open_orders=len(ex.resting))
        )
        rebalances += any(isinstance(x, Signal) and x.reason.startswith("rebalance") for x in out)
        assert ex.position - state.base == q * state.slots.count(HOLDING)
        ex.submit(i, bar, list(out))
        assert len(ex.resting) == state.slots.count(BUYING) + state.slots.count(HOLDING)
        assert sorted(o.intent_id for o in ex.resting) == sorted(  # order_ts names them
            f"{EXCHANGE}:{SYMBOL}:grid:{state.order_ts[k]}:{'buy' if s == BUYING else 'sell'}-{k}"
            for k, s in enumerate(state.slots)
            if s in (BUYING, HOLDING)
        )
        # the venue drops a canceled order at once: only this bar's cancels are still CANCELING
        assert state.slots.count(CANCELING) == sum(isinstance(x, CancelIntent) for x in out)
    sells = sum(1 for f in ex.fills if f[1] == "sell")
    buys = sum(1 for f in ex.fills if f[1] == "buy")
    assert not state.stopped and state.base == ZERO and rebalances >= 10 and len(ex.canceled) >= 10
    assert state.round_trips == sells and buys == sells + state.slots.count(HOLDING)
    assert len(set(ex.canceled)) == len(ex.canceled)


def test_state_with_order_ts_round_trips() -> None:
    strategy = GridStrategy(msgspec.structs.replace(PARAMS, on_exit_range="rebalance"))
    b = hand(["0.00190", "0.00184", "0.00215"])
    state, _ = strategy.on_bar(GridState(), b[0], make_ctx(b[0].ts_event))
    state, _ = strategy.on_bar(state, b[1], make_ctx(b[1].ts_event, D(10), open_orders=3))
    state, _ = strategy.on_bar(state, b[2], make_ctx(b[2].ts_event, D(10), open_orders=4))
    assert state.slots[:4] == (CANCELING,) * 3 + (HOLDING,)
    assert state.order_ts[:4] == (b[0].ts_event,) * 3 + (b[1].ts_event,) and state.order_ts[4:] == (0,) * 4
    roundtrip(state)


def test_a_state_saved_before_order_ts_decodes_and_goes_on() -> None:
    """An older state (no ``order_ts``) decodes; its buys' intent ids are unknown, so a stop
    cannot cancel them (they are left as before); orders placed from then on are tracked."""
    strategy = GridStrategy(PARAMS)
    b = hand(["0.00190", "0.00191", "0.00165"])
    state, _ = strategy.on_bar(GridState(), b[0], make_ctx(b[0].ts_event))
    raw = msgspec.to_builtins(state)
    del raw["order_ts"]
    for codec in (msgspec.msgpack, msgspec.json):
        old = codec.decode(codec.encode(raw), type=GridState)
        assert old.order_ts == () and old.slots == state.slots and old.lines == state.lines
        roundtrip(old)
    old = msgspec.json.decode(msgspec.json.encode(raw), type=GridState)
    # 0.00191 arms 0.0019 (tracked); the 4 older buys still work
    state, out = strategy.on_bar(old, b[1], make_ctx(b[1].ts_event, open_orders=4))
    assert [x.intent_id for x in out if isinstance(x, OrderIntent)] == [buy_id(b[1], 4)] and len(out) == 1
    assert state.order_ts == (0,) * 4 + (b[1].ts_event,) + (0,) * 3
    # below the grid, nothing filled (say): only the tracked buy can be canceled
    state, out = strategy.on_bar(state, b[2], make_ctx(b[2].ts_event, open_orders=5))
    assert [type(x) for x in out] == [Signal, CancelIntent]
    assert [x.intent_id for x in out if isinstance(x, CancelIntent)] == [buy_id(b[1], 4)]
    assert state.stopped and state.slots == (IDLE,) * 4 + (CANCELING,) + (IDLE,) * 3


def test_bad_bars_and_reload() -> None:
    strategy = GridStrategy(PARAMS)
    bar = hand(["0.00190"])[0]
    state, _ = strategy.on_bar(GridState(), bar, make_ctx(bar.ts_event))
    bad = msgspec.structs.replace(bar, close=D("NaN"))
    assert strategy.on_bar(state, bad, make_ctx(bar.ts_event)) == (state, [])
    same = strategy.with_params(msgspec.structs.replace(PARAMS, take_profit_quote=D(1)))
    kept, out = same.on_bar(state, bar, make_ctx(bar.ts_event, open_orders=4))
    assert kept.slots == state.slots and not out
    moved = strategy.with_params(msgspec.structs.replace(PARAMS, lower=D("0.0018")))
    nxt = hand(["0.00190"], start=1)[0]
    fresh, out = moved.on_bar(state, nxt, make_ctx(nxt.ts_event, D(10), open_orders=4))
    assert fresh.lines[0] == D("0.0018") and fresh.base == D(10) and len(out) == 7
    # the old grid's 4 resting buys are canceled (the old grid held nothing: no sell to leave)
    cancels = [x for x in out if isinstance(x, CancelIntent)]
    assert [x.intent_id for x in cancels] == [buy_id(bar, i) for i in range(4)]
    assert cancels[0].reason.startswith("grid changed: 0.0017:0.0021:9:arithmetic -> 0.0018:")
    assert [x.intent_id for x in out[4:] if isinstance(x, OrderIntent)] == [buy_id(nxt, i) for i in range(3)]
    assert fresh.slots == (BUYING,) * 3 + (IDLE,) * 5
    # the next bar: the old buys' cancels confirmed (3 orders work: the new buys), nothing filled
    later = hand(["0.00190"], start=2)[0]
    after, out = moved.on_bar(fresh, later, make_ctx(later.ts_event, D(10), open_orders=3))
    assert out == [] and after.slots == fresh.slots and after.base == D(10)


def test_config() -> None:
    params = parse_strategy(
        'name = "grid"\nlower = "0.0017"\nupper = "0.0021"\nlevels = 4', max_open_orders=4
    )
    assert isinstance(build_strategy(params), GridStrategy) and params.levels == 4


L = STRATEGY_LINE


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            'name = "grid"\nlower = "2"\nupper = "1"',
            f"cfg.toml:{L + 2}: groups[0].strategy.upper: expected lower < upper, got lower 2 >= upper 1",
        ),
        (
            'name = "grid"\nlower = "1"\nupper = "2"\nlevels = 5',
            f"cfg.toml:{L + 3}: groups[0].strategy.levels: expected at most risk.max_open_orders (4) levels: "
            "the grid keeps up to levels - 1 limit orders working, got 5",
        ),
        (
            'name = "grid"\nlower = "1"\nupper = "2"\nlevels = 1',
            f"cfg.toml:{L + 3}: groups[0].strategy.levels: expected 2..1000 grid levels, got 1",
        ),
        (
            'name = "grid"\nupper = "2"',
            f"cfg.toml:{L - 1}: groups[0].strategy.lower: expected a positive finite number, got 0",
        ),
        (
            'name = "grid"\nlower = "1"\nupper = "2"\nspacing = "log"',
            f"cfg.toml:{L + 3}: groups[0].strategy.spacing: Invalid enum value 'log'",
        ),
        (
            'name = "grid"\nlower = "1"\nupper = "2"\non_exit_range = "hold"',
            f"cfg.toml:{L + 3}: groups[0].strategy.on_exit_range: Invalid enum value 'hold'",
        ),
    ],
)
def test_config_errors(table: str, message: str) -> None:
    rejects(table, message)


# --- restart: a restored state older than the recovered orders and position ------------------------


@dataclass
class Venue:
    """Orders by intent id (the grid's ids survive a restart at a real venue); a limit buy fills when
    a bar's low reaches it, a sell when the high does; a reduce-only sell the position net of the
    working sells cannot cover is refused, like risk does; a CancelIntent removes its order."""

    position: Decimal = ZERO
    resting: dict[str, OrderIntent] = field(default_factory=dict)

    def match(self, bar: Bar) -> None:
        for iid, o in list(self.resting.items()):
            assert o.price is not None
            if (o.side == "buy" and bar.low <= o.price) or (o.side == "sell" and bar.high >= o.price):
                self.position += o.quantity if o.side == "buy" else -o.quantity
                del self.resting[iid]

    def submit(self, out: list[object]) -> None:
        for o in out:
            if isinstance(o, CancelIntent):
                self.resting.pop(o.intent_id, None)
            elif isinstance(o, OrderIntent):
                selling = sum(r.quantity for r in self.resting.values() if r.side == "sell")
                if o.reduce_only and o.quantity > self.position - selling:
                    continue  # refused: it would not reduce
                self.resting[o.intent_id] = o

    def orders(self) -> list[OpenOrder]:
        return [
            OpenOrder(intent_id=i, side=o.side, price=o.price, leaves=o.quantity)
            for i, o in self.resting.items()
        ]

    def ctx(self, ts: int) -> StrategyContext:
        return make_ctx(ts, self.position, open_orders=len(self.resting))


def _restart_from_an_old_state(reconcile: bool) -> tuple[list[list[object]], Venue]:
    """Bar 1 arms slot 5; bar 2 (its state lost in the crash) fills it, sells it one level up and
    arms slot 4; the daemon restarts from bar 1's state, then the price leaves the grid upwards
    (rebalance): the sell fills, the buy at slot 4 rests below."""
    strategy = GridStrategy(msgspec.structs.replace(PARAMS, on_exit_range="rebalance", arm_within_pct=4.0))
    venue = Venue()
    t = [k * 60 * NS for k in range(1, 40)]
    bar1 = make_bar(t[0], D("0.00198"), D("0.00198"), D("0.00197"), D("0.00198"))
    old, out = strategy.on_bar(strategy.initial_state(), bar1, venue.ctx(t[0]))
    venue.submit(list(out))
    assert [o.intent_id.rsplit(":", 1)[1] for o in out if isinstance(o, OrderIntent)] == ["buy-5"]
    bar2 = make_bar(t[1], D("0.00196"), D("0.00196"), D("0.00192"), D("0.00193"))
    venue.match(bar2)
    _, out = strategy.on_bar(old, bar2, venue.ctx(t[1]))  # this state is never saved
    venue.submit(list(out))
    assert sorted(i.rsplit(":", 1)[1] for i in venue.resting) == ["buy-4", "sell-5"]

    state = strategy.reconcile(old, venue.ctx(t[2]), venue.orders()) if reconcile else old
    outputs: list[list[object]] = []
    for ts in t[2:]:
        bar = make_bar(ts, D("0.00216"), D("0.00218"), D("0.00214"), D("0.00216"))
        venue.match(bar)
        state, out = strategy.on_bar(state, bar, venue.ctx(ts))
        outputs.append(list(out))
        venue.submit(list(out))
    return outputs, venue


def test_a_restored_grid_older_than_its_orders_rebalances_instead_of_waiting_forever() -> None:
    outputs, venue = _restart_from_an_old_state(reconcile=True)
    flat = [o for out in outputs for o in out]
    cancels = [o.intent_id.rsplit(":", 2)[1:] for o in flat if isinstance(o, CancelIntent)]
    assert len(cancels) == 1 and cancels[0][1] == "buy-4"  # the buy placed by the lost bar, by its id
    (at,) = [k for k, o in enumerate(flat) if isinstance(o, Signal) and o.reason.startswith("rebalance")]
    assert any(isinstance(o, OrderIntent) and o.side == "buy" for o in flat[at:])  # trading again
    assert venue.position == ZERO


def test_without_reconcile_the_same_restart_waits_for_an_order_it_does_not_know() -> None:
    """Why the hook exists: the old state never learns of the lost bar's buy, which rests below a
    price that left the grid, so the rebalance waits for open orders to reach zero forever."""
    outputs, venue = _restart_from_an_old_state(reconcile=False)
    assert not any(isinstance(o, Signal) for out in outputs[3:] for o in out)
    assert not any(isinstance(o, OrderIntent) and o.side == "buy" for out in outputs[3:] for o in out)
    assert len(venue.resting) == 1


def test_reconcile_holds_what_no_sell_covers_and_sells_it_on_the_next_bar() -> None:
    """Paper after a restart: every order was canceled, the position (two filled buys) kept; the
    state is from before the buys were even armed.  Two slots hold, their sells go out on the
    next bar, the ended-order count is not fooled, and the other slots are armed again."""
    strategy = GridStrategy(PARAMS)
    t = 60 * NS
    bar = make_bar(t, D("0.00198"), D("0.00198"), D("0.00197"), D("0.00198"))
    old, _ = strategy.on_bar(strategy.initial_state(), bar, make_ctx(t))
    foreign = OpenOrder(intent_id="paper:UNITTEST/BTC:ema_cross:5:buy", side="buy", price=None, leaves=D(1))
    ctx = make_ctx(2 * t, D(20), avg_price=D("0.00192"), open_orders=0)
    state = strategy.reconcile(old, ctx, [foreign])
    assert state.slots.count(HOLDING) == 2 and state.slots.count(BUYING) == 0
    assert [state.lines[i] for i in state.unsold] == [D("0.00190"), D("0.00195")]  # nearest 0.00192
    roundtrip(state)

    bar2 = make_bar(2 * t, D("0.00193"), D("0.00194"), D("0.00192"), D("0.00193"))
    state, out = strategy.on_bar(state, bar2, ctx)
    sells = [o for o in out if isinstance(o, OrderIntent) and o.side == "sell"]
    buys = [o for o in out if isinstance(o, OrderIntent) and o.side == "buy"]
    assert sorted(o.intent_id.rsplit(":", 1)[1] for o in sells) == ["sell-4", "sell-5"]
    assert all(o.reduce_only and o.quantity == D(10) for o in sells)
    assert buys and all(o.price is not None and o.price < D("0.00193") for o in buys)
    assert state.unsold == () and state.slots.count(HOLDING) == 2

    # the next bar: the sells work (open orders), nothing ended, no sell sent twice
    ctx3 = make_ctx(3 * t, D(20), open_orders=len(sells) + len(buys))
    state, out = strategy.on_bar(state, make_bar(3 * t, *[D("0.00193")] * 4), ctx3)
    assert not [o for o in out if isinstance(o, OrderIntent)]
    assert state.slots.count(HOLDING) == 2


def test_reconcile_takes_the_slots_from_the_grid_s_open_orders() -> None:
    strategy = GridStrategy(PARAMS)
    t = 60 * NS
    bar = make_bar(t, D("0.00198"), D("0.00198"), D("0.00197"), D("0.00198"))
    old, _ = strategy.on_bar(strategy.initial_state(), bar, make_ctx(t))
    prefix = f"{EXCHANGE}:{SYMBOL}:grid"
    orders = [
        OpenOrder(intent_id=f"{prefix}:77:buy-2", side="buy", price=D("0.0018"), leaves=D(10)),
        OpenOrder(intent_id=f"{prefix}:78:sell-6", side="sell", price=D("0.00205"), leaves=D(10)),
        OpenOrder(intent_id=f"{prefix}:79:sell-99", side="sell", price=D("0.00205"), leaves=D(10)),
    ]
    state = strategy.reconcile(old, make_ctx(2 * t, D(10), open_orders=3), orders)
    assert state.slots[2] == BUYING and state.order_ts[2] == 77
    assert state.slots[6] == HOLDING and state.order_ts[6] == 78
    assert state.slots.count(IDLE) == len(state.slots) - 2 and state.unsold == ()
    # a grid not built yet, or stopped, is left alone
    fresh = strategy.initial_state()
    assert strategy.reconcile(fresh, make_ctx(t, D(10)), orders) is fresh
