"""floor on the bundled real candles vs an independent re-statement of its rules on TA-Lib's batch
ATR, plus hand-checked first layers, settling of unfilled layers, state round trips and config."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest
import talib

from actors.messages import OrderIntent, Signal
from actors.params import FloorParams
from actors.strategies.floor import FloorState, FloorStrategy
from actors.strategies.registry import build_strategy
from tests.strategy_helpers import (
    EXCHANGE,
    STRATEGY_LINE,
    SYMBOL,
    ZERO,
    D,
    bars,
    column,
    intents,
    make_ctx,
    parse_strategy,
    rejects,
    roundtrip,
    rows,
    run,
)


def params(vt: float = 0.0) -> FloorParams:
    return FloorParams(
        initial_units=D(10),
        retracement=0.01,
        max_layers=4,
        layer_multiplier=2.0,
        take_profit=0.01,
        volatility_threshold=vt,
        stop_loss_pct=10.0,
    )


def reference(vt: float) -> list[tuple[int, str]]:
    """The rules restated: instant fills at the close, average cost in exact decimals."""
    atr = talib.ATR(column(2), column(3), column(4), 14)
    pos = cost = ZERO
    layers, last = 0, ZERO
    events: list[tuple[int, str]] = []
    for i, row in enumerate(rows()):
        close = row[4]
        if pos > 0 and close >= (cost / pos) * D("1.01"):
            events.append((i, "exit-sell"))
            pos = cost = ZERO
            layers = 0
            continue
        if vt > 0:
            assert math.isnan(atr[i]) or abs(atr[i] / float(close) - vt) > 1e-12  # nothing borderline
            if math.isnan(atr[i]) or atr[i] / float(close) > vt:
                continue
        if layers == 0 or (layers < 4 and close <= last * D("0.99")):
            size = D(10) * 2**layers
            events.append((i, f"layer-{layers}"))
            pos, cost, layers, last = pos + size, cost + size * close, layers + 1, close
    return events


@pytest.mark.parametrize("vt", [0.0, 0.003])
def test_layers_and_exits_match_the_restated_rules(vt: float) -> None:
    result = run(FloorStrategy(params(vt)), bars())
    got = [(i, x.intent_id.rsplit(":", 1)[1]) for i, x in intents(result.outputs)]
    assert got == reference(vt)
    counts = {tag: sum(1 for _, t in got if t == tag) for tag in ("layer-0", "layer-3", "exit-sell")}
    assert counts == (
        {"layer-0": 161, "layer-3": 15, "exit-sell": 160}
        if vt == 0
        else {"layer-0": 65, "layer-3": 2, "exit-sell": 64}
    )


def test_first_layers_checked_by_hand() -> None:
    """Bar 0 closes 0.00162008: layer 0 (10 units).  1 % below is 0.0016038792: bar 5 (0.00160345) is the
    first close at or under it: layer 1 (20 units), same stop 0.00162008 * 0.9 = 0.001458072."""
    result = run(FloorStrategy(params()), bars()[:6])
    (i0, first), (i1, second) = intents(result.outputs)
    assert (i0, i1) == (0, 5) and rows()[5][4] == D("0.00160345")
    assert all(rows()[k][4] > D("0.0016038792") for k in range(1, 5))
    assert (first.quantity, second.quantity) == (D(10), D(20))
    assert first.stop_loss == second.stop_loss == D("0.00145807")
    assert first.intent_id == f"{EXCHANGE}:{SYMBOL}:floor:{bars()[0].ts_event}:layer-0"
    assert second.intent_id.endswith(":layer-1") and second.order_type == "market" and not second.reduce_only
    assert result.position == D(30)
    assert result.avg_price == (10 * D("0.00162008") + 20 * D("0.00160345")) / 30


def test_take_profit_exits_everything() -> None:
    result = run(FloorStrategy(params()), bars()[:400])
    exits = [(i, x) for i, x in intents(result.outputs) if x.reduce_only]
    i, exit_ = exits[0]
    sig = next(x for x in result.outputs[i] if isinstance(x, Signal))
    assert sig.side == "sell" and sig.reason.startswith("take profit: ")
    assert exit_.side == "sell" and exit_.order_type == "market" and exit_.stop_loss is None


def test_an_unfilled_layer_is_forgotten_and_a_working_one_waits() -> None:
    strategy = FloorStrategy(params())
    state, out = strategy.on_bar(strategy.initial_state(), bars()[0], make_ctx(bars()[0].ts_event))
    assert state.pending_qty == D(10)
    waiting, out = strategy.on_bar(state, bars()[1], make_ctx(bars()[1].ts_event, open_orders=1))
    assert out == [] and waiting.pending_qty == D(10)
    refused, out = strategy.on_bar(waiting, bars()[2], make_ctx(bars()[2].ts_event))
    assert refused.layers == 0 and [type(x) for x in out] == [Signal, OrderIntent]  # sends layer 0 again
    filled, out = strategy.on_bar(waiting, bars()[2], make_ctx(bars()[2].ts_event, D(10), D("0.00162008")))
    assert filled.layers == 1 and filled.last_price == D("0.00162008") and out == []


def test_a_position_from_before_is_adopted_and_sizes() -> None:
    strategy = FloorStrategy(FloorParams(initial_units=D(1), layer_size=[D(2), D("3.333")], max_layers=3))
    state, out = strategy.on_bar(
        strategy.initial_state(), bars()[0], make_ctx(bars()[0].ts_event, D(5), D("0.002"))
    )
    assert state.layers == 1 and state.first_price == D("0.002")
    assert [strategy.layer_size(n) for n in range(3)] == [D(1), D(2), D("3.333")]
    state, out = strategy.on_bar(state, bars()[1], make_ctx(bars()[1].ts_event, D(5), D("0.002")))
    (layer,) = [x for x in out if isinstance(x, OrderIntent)]  # 0.00161 <= 0.002 * 0.99
    assert layer.quantity == D(2) and layer.stop_loss == D("0.0018")  # 0.002 * 0.9


def test_state_round_trips_and_resume_is_identical() -> None:
    strategy = FloorStrategy(params(0.003))
    whole = run(strategy, bars()[:5000])
    head = run(strategy, bars()[:2222])
    for codec in (msgspec.msgpack, msgspec.json):
        resumed = codec.decode(codec.encode(head.state), type=FloorState)
        tail = run(
            strategy, bars()[2222:5000], state=resumed, position=head.position, avg_price=head.avg_price
        )
        assert head.outputs + tail.outputs == whole.outputs and tail.state == whole.state
    roundtrip(whole.state)


@pytest.mark.parametrize("changes", [{"close": D("NaN")}, {"close": D(0)}, {"high": D("Infinity")}])
def test_bad_bars_are_ignored(changes: dict[str, D]) -> None:
    strategy = FloorStrategy(params())
    state = strategy.initial_state()
    bad = msgspec.structs.replace(bars()[0], **changes)
    assert strategy.on_bar(state, bad, make_ctx(bad.ts_event)) == (state, [])


def test_volatility_lock_needs_an_atr() -> None:
    strategy = FloorStrategy(params(0.5))
    result = run(strategy, bars()[:20])
    assert [i for i, _ in intents(result.outputs)] == [14]  # the first ATR(14) is at bar 14
    assert np.isnan(talib.ATR(column(2), column(3), column(4), 14)[13])


def test_config() -> None:
    p = parse_strategy('name = "floor"\ninitial_units = "5"\nlayer_size = ["5", "10"]\nmax_layers = 3')
    assert isinstance(build_strategy(p), FloorStrategy) and p.layer_size == [D(5), D(10)]


L = STRATEGY_LINE


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            'name = "floor"\nmax_layers = 4\nlayer_size = ["1"]',
            f"cfg.toml:{L + 2}: groups[0].strategy.layer_size: expected a size for each of the 3 layers "
            "after the first, got 1",
        ),
        (
            'name = "floor"\nretracement = 1.5',
            f"cfg.toml:{L + 1}: groups[0].strategy.retracement: expected a fraction in (0, 0.99], got 1.5",
        ),
        (
            'name = "floor"\nmax_layers = 0',
            f"cfg.toml:{L + 1}: groups[0].strategy.max_layers: expected 1..100 layers, got 0",
        ),
        (
            'name = "floor"\nvolatility_threshold = -0.1',
            f"cfg.toml:{L + 1}: groups[0].strategy.volatility_threshold: "
            "expected a non-negative finite number, got -0.1",
        ),
        (
            'name = "floor"\nstop_loss_pct = 0.0',
            f"cfg.toml:{L + 1}: groups[0].strategy.stop_loss_pct: floor entries need a stop-loss: "
            "expected 0 < stop_loss_pct < 100, got 0.0",
        ),
        (
            'name = "floor"\ninitial_units = "-1"',
            f"cfg.toml:{L + 1}: groups[0].strategy.initial_units: expected a positive finite number, got -1",
        ),
    ],
)
def test_config_errors(table: str, message: str) -> None:
    rejects(table, message)
