"""grid on the bundled real candles against a toy limit-order exchange, checked against an
independent reference grid that sees every fill directly; plus levels, stop / rebalance,
take profit, vanished orders, state round trips and its config."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import msgspec
import pytest

from actors.messages import Bar, OrderIntent, Signal
from actors.params import GridParams
from actors.strategies.grid import BUYING, HOLDING, IDLE, GridState, GridStrategy, grid_levels
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
    sell when the high does; market orders fill at the close at once."""

    position: Decimal = ZERO
    resting: list[OrderIntent] = field(default_factory=list)
    fills: list[tuple[int, str, Decimal]] = field(default_factory=list)

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
            if isinstance(o, OrderIntent):
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


def test_exit_range_rebalance_waits_for_the_old_orders_then_recenters() -> None:
    strategy = GridStrategy(msgspec.structs.replace(PARAMS, on_exit_range="rebalance"))
    state, ex, outputs = simulate(strategy, hand(["0.00190", "0.00215", "0.00216"]))
    assert outputs[1] == outputs[2] == [] and state.lower == LOWER  # 4 buys still rest below
    assert len(ex.resting) == 4
    ex.resting.clear()  # the venue expired them
    bar = hand(["0.00216"], start=3)[0]
    state, out = strategy.on_bar(state, bar, make_ctx(bar.ts_event, ex.position, open_orders=0))
    assert not state.stopped
    assert state.lower == D("0.00196") and state.upper == D("0.00236")  # 0.00216 -+ 0.0002
    assert isinstance(out[0], Signal) and out[0].reason.startswith("rebalance: close 0.00216 above the grid")
    assert [x.price for x in out if isinstance(x, OrderIntent)] == [
        D("0.00196") + D("0.00005") * k for k in range(4)
    ]


def test_back_in_range_before_a_rebalance_the_old_grid_goes_on() -> None:
    strategy = GridStrategy(msgspec.structs.replace(PARAMS, on_exit_range="rebalance"))
    _, _, outputs = simulate(strategy, hand(["0.00190", "0.00215", "0.00205"]))
    assert outputs[1] == []
    assert [x.price for x in outputs[2] if isinstance(x, OrderIntent)] == [
        D("0.0019"),
        D("0.00195"),
        D("0.002"),
    ]


def test_take_profit_stops_the_grid() -> None:
    strategy = GridStrategy(msgspec.structs.replace(PARAMS, take_profit_quote=D("0.001")))
    state, ex, outputs = simulate(strategy, bars()[WINDOW])
    assert state.stopped and state.stop_reason.startswith("grid profit 0.00100")
    # stopped at bar 1088 (close 0.002) holding 2 slots whose sells work; nothing else to sell
    assert state.round_trips == 2 and state.slots == (IDLE,) * 6 + (HOLDING,) * 2 and ex.position == D(20)
    assert [(o.side, o.price) for o in ex.resting] == [
        ("buy", D("0.0017")),  # no cancel intent yet: resting buys stay
        ("buy", D("0.00175")),
        ("sell", D("0.0021")),
        ("sell", D("0.00205")),
    ]
    assert not any(isinstance(x, OrderIntent) and x.side == "buy" for out in outputs[1089:] for x in out)


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
    fresh, out = moved.on_bar(state, bar, make_ctx(bar.ts_event, D(10), open_orders=4))
    assert fresh.lines[0] == D("0.0018") and fresh.base == D(10) and len(out) == 3


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
