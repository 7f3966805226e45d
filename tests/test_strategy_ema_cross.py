"""ema_cross on the bundled real candles vs an independent TA-Lib batch crossover, plus sizing,
state round trips, bad bars, reload and its config (including the strategy union itself)."""

from __future__ import annotations

from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import anyio
import msgspec
import numpy as np
import pytest
import talib

from actors.messages import OrderIntent, Quote, Signal, Trade
from actors.params import (
    STRATEGY_NAMES,
    BreakoutParams,
    EmaCrossParams,
    FloorParams,
    GridParams,
    HyperRsiParams,
    SignalsParams,
    StrategyBase,
    StrategyParams,
    TimeWindowParams,
)
from actors.strategies.breakout import BreakoutStrategy
from actors.strategies.ema_cross import EmaCrossState, EmaCrossStrategy
from actors.strategies.registry import build_strategy
from daemon.app import Daemon
from daemon.config import diff_configs, parse_config
from daemon.group import make_strategy
from daemon.metrics import Metrics
from tests.helpers import make_config, unique_prefix
from tests.strategy_helpers import (
    EXCHANGE,
    NS,
    STRATEGY_LINE,
    SYMBOL,
    ZERO,
    D,
    bars,
    column,
    config_text,
    intents,
    make_bar,
    make_ctx,
    parse_strategy,
    rejects,
    roundtrip,
    rows,
    run,
    signals,
)

PARAMS = EmaCrossParams(quantity=D("100.019"))


def crossovers(fast: int = 5, slow: int = 13) -> tuple[list[int], list[int]]:
    """backtesting.py's crossover(a, b) = a[-2] < b[-2] and a[-1] > b[-1], on TA-Lib EMAs of the closes."""
    c = column(4)
    a, b = talib.EMA(c, fast), talib.EMA(c, slow)
    with np.errstate(invalid="ignore"):
        up = np.flatnonzero((a[:-1] < b[:-1]) & (a[1:] > b[1:])) + 1
        down = np.flatnonzero((b[:-1] < a[:-1]) & (b[1:] > a[1:])) + 1
    return up.tolist(), down.tolist()


def test_entries_and_exits_are_the_batch_crossovers_on_real_candles() -> None:
    up, down = crossovers()
    assert (len(up), len(down)) == (639, 638)
    result = run(EmaCrossStrategy(PARAMS), bars())
    sig = signals(result.outputs)
    assert sorted(i for i, s in sig.items() if s.side == "buy") == up
    assert sorted(i for i, s in sig.items() if s.side == "sell") == down
    entries = [i for i, x in intents(result.outputs) if not x.reduce_only]
    exits = [i for i, x in intents(result.outputs) if x.reduce_only]
    assert entries == up  # crosses alternate on this data: every up-cross finds the book flat
    assert exits == down
    assert result.position == D("100.01")  # the last up-cross (bar 13660) is still open


def test_first_cross_checked_by_hand() -> None:
    """Bar 33 (candle 2017-11-04 23:49 UTC, close 0.00159897) is the first up-cross; exact EMAs
    in rational arithmetic say EMA5 < EMA13 at bar 32 and EMA5 > EMA13 at bar 33."""

    def exact_ema(period: int, n: int) -> list[Fraction]:
        closes = [Fraction(r[4]) for r in rows()[:n]]
        k = Fraction(2, period + 1)
        out = [sum(closes[:period], Fraction(0)) / period]
        for x in closes[period:]:
            out.append((x - out[-1]) * k + out[-1])
        return out[-2:]

    (f32, f33), (s32, s33) = exact_ema(5, 34), exact_ema(13, 34)
    assert f32 < s32 and f33 > s33
    first = rows()[33]
    assert datetime.fromtimestamp(first[0] / 1000, UTC) == datetime(2017, 11, 4, 23, 49, tzinfo=UTC)
    assert first[4] == D("0.00159897")
    result = run(EmaCrossStrategy(PARAMS), bars()[:34])
    (i, entry), *_ = intents(result.outputs)
    assert i == 33 and entry.ts_event == (first[0] + 60_000) * 1_000_000
    assert entry.intent_id == f"{EXCHANGE}:{SYMBOL}:ema_cross:{entry.ts_event}:buy"
    assert (entry.side, entry.order_type, entry.quantity, entry.reduce_only) == (
        "buy",
        "market",
        D("100.01"),
        False,
    )
    # 0.00159897 * 0.5 = 0.000799485: an exact half tick, banker's rounding keeps the even 8
    assert entry.stop_loss == D("0.00079948") and entry.take_profit is None
    assert entry.source == "strategy:ema_cross" and entry.reason.startswith("entry: ema5 ")
    # the first down-cross (bar 37, close 0.00158663) exits the whole position
    result = run(EmaCrossStrategy(PARAMS), bars()[:38])
    i, exit_ = intents(result.outputs)[-1]
    assert i == 37 and rows()[37][4] == D("0.00158663")
    assert (exit_.side, exit_.quantity, exit_.reduce_only, exit_.stop_loss) == (
        "sell",
        D("100.01"),
        True,
        None,
    )
    assert exit_.intent_id.endswith(":exit-sell")


def test_take_profit_when_asked() -> None:
    strategy = EmaCrossStrategy(EmaCrossParams(quantity=D(1), stop_loss_pct=1.0, take_profit_pct=2.0))
    _, entry = intents(run(strategy, bars()[:34]).outputs)[0]
    assert entry.stop_loss == D("0.00158298")  # 0.00159897 * 0.99 = 0.0015829803
    assert entry.take_profit == D("0.00163095")  # 0.00159897 * 1.02 = 0.0016309494


def test_no_entry_when_long_or_an_order_works_and_no_short() -> None:
    strategy = EmaCrossStrategy(PARAMS)
    state = run(strategy, bars()[:33]).state
    bar = bars()[33]
    for ctx in (make_ctx(bar.ts_event, D(5)), make_ctx(bar.ts_event, open_orders=1)):
        _, out = strategy.on_bar(state, bar, ctx)
        assert [type(x) for x in out] == [Signal]
    state = run(strategy, bars()[:37]).state
    _, out = strategy.on_bar(state, bars()[37], make_ctx(bars()[37].ts_event))
    assert [type(x) for x in out] == [Signal] and out[0].side == "sell"  # flat: long only


def test_quantity_below_one_step_gives_only_the_signal() -> None:
    strategy = EmaCrossStrategy(EmaCrossParams(quantity=D("0.009")))
    assert [type(x) for x in run(strategy, bars()[:34]).outputs[33]] == [Signal]


def test_state_round_trips_and_a_resumed_run_is_identical() -> None:
    strategy = EmaCrossStrategy(PARAMS)
    whole = run(strategy, bars()[:3000])
    head = run(strategy, bars()[:1234])
    for codec in (msgspec.msgpack, msgspec.json):
        resumed = codec.decode(codec.encode(head.state), type=EmaCrossState)
        assert resumed == head.state
        tail = run(strategy, bars()[1234:3000], state=resumed, position=head.position)
        assert head.outputs + tail.outputs == whole.outputs and tail.state == whole.state
    roundtrip(strategy.initial_state())


@pytest.mark.parametrize(
    "changes",
    [
        {"close": D("NaN")},
        {"close": D("sNaN")},
        {"close": D(0)},
        {"open": D("-1")},
        {"low": D(0)},
        {"high": D("Infinity")},
        {"volume": D("NaN")},
        {"high": D("0.0015"), "low": D("0.0017")},
    ],
)
def test_bad_bars_are_ignored(changes: dict[str, D]) -> None:
    strategy = EmaCrossStrategy(PARAMS)
    state = run(strategy, bars()[:33]).state
    bad = msgspec.structs.replace(bars()[33], **changes)
    assert strategy.on_bar(state, bad, make_ctx(bad.ts_event)) == (state, [])


def test_a_gap_in_time_changes_nothing() -> None:
    """Bars are a sequence: a missing hour between two bars is no event of its own."""
    strategy = EmaCrossStrategy(PARAMS)
    shifted = [msgspec.structs.replace(b, ts_event=b.ts_event + 3600 * NS) for b in bars()[20:40]]
    gapped = run(strategy, [*bars()[:20], *shifted])
    plain = run(strategy, bars()[:40])
    assert [[type(x) for x in o] for o in gapped.outputs] == [[type(x) for x in o] for o in plain.outputs]
    assert gapped.state == plain.state


def test_reload_keeps_state_and_new_periods_warm_up_again() -> None:
    strategy = EmaCrossStrategy(PARAMS)
    state = run(strategy, bars()[:500]).state
    same = strategy.with_params(EmaCrossParams(quantity=D(1)))
    kept, _ = same.on_bar(state, bars()[500], make_ctx(bars()[500].ts_event))
    assert kept.fast.seen == 501
    other = strategy.with_params(EmaCrossParams(ema_fast=3, ema_slow=8))
    fresh = run(other, bars()[500:510], state=state)
    assert fresh.state.fast.period == 3 and fresh.state.slow.seen == 10
    assert not any(fresh.outputs[:8])  # no cross before EMA(8) has two values


def test_trades_quotes_and_invalid_periods() -> None:
    strategy = EmaCrossStrategy(PARAMS)
    state = strategy.initial_state()
    ctx = make_ctx(1)
    trade = Trade(exchange=EXCHANGE, symbol=SYMBOL, ts_event=1, ts_recv=1, price=D(1), size=D(1))
    quote = Quote(
        exchange=EXCHANGE,
        symbol=SYMBOL,
        ts_event=1,
        ts_recv=1,
        bid_price=D(1),
        bid_size=D(1),
        ask_price=D(2),
        ask_size=D(1),
    )
    assert strategy.on_trade(state, trade, ctx) == (state, [])
    assert strategy.on_quote(state, quote, ctx) == (state, [])
    assert strategy.name == "ema_cross" and strategy.consumes == frozenset()
    with pytest.raises(ValueError, match="ema_fast < ema_slow"):
        EmaCrossStrategy(EmaCrossParams(ema_fast=13, ema_slow=13))


def test_hand_made_cross_and_equal_emas_are_no_cross() -> None:
    """A slow fall then a jump: one up-cross at the jump.  A flat series then the same jump: the
    EMAs were equal before it, and backtesting.py's strict crossover sees no cross at all."""
    falling = [D("1.20") - D("0.01") * i for i in range(20)] + [D("2.00")] * 3
    flat = [D("1.00")] * 20 + [D("2.00")] * 3
    for closes, expected in ((falling, [20]), (flat, [])):
        made = [make_bar((i + 1) * 60 * NS, c, c, c, c) for i, c in enumerate(closes)]
        result = run(EmaCrossStrategy(EmaCrossParams(quantity=D(2))), made)
        assert [i for i, _ in intents(result.outputs)] == expected


# --- config: the strategy union ---------------------------------------------------------------


def test_a_strategy_table_without_name_is_breakout() -> None:
    params = parse_strategy("lookback = 30")
    assert isinstance(params, BreakoutParams) and params.lookback == 30 and params.name == "breakout"
    assert isinstance(build_strategy(params), BreakoutStrategy)


@pytest.mark.parametrize(
    ("table", "params_type"),
    [
        ('name = "breakout"', BreakoutParams),
        ('name = "ema_cross"', EmaCrossParams),
        ('name = "hyper_rsi"', HyperRsiParams),
        ('name = "grid"\nlower = "1"\nupper = "2"\nlevels = 4', GridParams),
        ('name = "floor"', FloorParams),
        ('name = "time_window"\nstop_loss_pct = 1.0', TimeWindowParams),
        ('name = "signals"', SignalsParams),
    ],
)
def test_every_strategy_name_parses_and_builds_its_strategy(
    table: str, params_type: type[StrategyBase]
) -> None:
    params = parse_strategy(table)
    assert isinstance(params, params_type) and type(params) is params_type
    cfg = parse_config(config_text(table), "cfg.toml")
    strategy = make_strategy(cfg.groups[0])
    assert strategy.name == params.name == table.split('"')[1] and strategy.consumes == frozenset()
    state = strategy.initial_state()
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(state), type=type(state)) == state
    assert params.name in STRATEGY_NAMES


def test_ema_cross_config_parses_and_builds() -> None:
    params = parse_strategy('name = "ema_cross"\nema_fast = 3\nema_slow = 8\nquantity = "0.5"')
    assert params == EmaCrossParams(ema_fast=3, ema_slow=8, quantity=D("0.5"))
    assert params.name == "ema_cross" and msgspec.to_builtins(params)["name"] == "ema_cross"
    assert isinstance(build_strategy(params), EmaCrossStrategy)
    assert msgspec.convert(msgspec.to_builtins(params), StrategyParams) == params


L = STRATEGY_LINE


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            'name = "ema_cross"\nema_fast = 13',
            f"cfg.toml:{L + 1}: groups[0].strategy.ema_fast: expected ema_fast < ema_slow, got 13 >= 13",
        ),
        (
            'name = "ema_cross"\nquantity = "0"',
            f"cfg.toml:{L + 1}: groups[0].strategy.quantity: expected a positive finite number, got 0",
        ),
        (
            'name = "ema_cross"\nstop_loss_pct = 0.0',
            f"cfg.toml:{L + 1}: groups[0].strategy.stop_loss_pct: ema_cross entries need a stop-loss: "
            "expected 0 < stop_loss_pct < 100, got 0.0",
        ),
        (
            'name = "ema_cross"\nema_fast = 0',
            f"cfg.toml:{L + 1}: groups[0].strategy.ema_fast: expected a period of 1..10000 bars, got 0",
        ),
        (
            'name = "ema_cross"\nlookback = 20',
            f"cfg.toml:{L + 1}: groups[0].strategy.lookback: unknown key `lookback` "
            "(check the spelling; see config.toml for every key)",
        ),
        ('name = "ema"', f"cfg.toml:{L}: groups[0].strategy.name: Invalid value 'ema'"),
    ],
)
def test_ema_cross_config_errors(table: str, message: str) -> None:
    rejects(table, message)


def test_a_change_of_strategy_name_restarts_the_group_with_fresh_state() -> None:
    """The safer choice: a new strategy never inherits another's state; the group restarts,
    and the supervisor refuses that reload while the group holds a position or orders."""
    old = parse_config(config_text('name = "breakout"'), "cfg.toml")
    new = parse_config(config_text('name = "ema_cross"'), "cfg.toml")
    tuned = parse_config(config_text('name = "breakout"\nlookback = 30'), "cfg.toml")
    assert diff_configs(old, new).restart == [("paper", "BTC/USDT")]
    assert diff_configs(old, tuned).update == [("paper", "BTC/USDT")]
    assert diff_configs(old, tuned).restart == []


def test_flat_zero_position_context_default() -> None:
    assert make_ctx(0).position == ZERO and isinstance(PARAMS.quantity, D)
    assert not any(isinstance(x, OrderIntent) for x in run(EmaCrossStrategy(PARAMS), bars()[:33]).outputs)


@pytest.mark.anyio
async def test_reload_to_another_strategy_is_refused_while_busy_then_restarts_fresh(tmp_path: Path) -> None:
    """Changing ``name`` on SIGHUP restarts the group (fresh state of the new strategy); while the
    group holds a position that reload is refused whole, like any restart."""
    base = make_config(
        tmp_path / "state", prefix=unique_prefix(), speed=1.0, redis_enabled=False, trades_group=False
    )
    path = tmp_path / "config.toml"
    path.write_text(base)
    daemon = Daemon(parse_config(path.read_text()), path, Metrics())
    key = ("paper", "UNITTEST/BTC")
    async with anyio.create_task_group() as tg:
        tg.start_soon(daemon.run)
        with anyio.fail_after(10):
            while key not in daemon.supervisor.groups:
                await anyio.sleep(0.02)
        group = daemon.supervisor.groups[key]
        assert isinstance(group.strategy.strategy, BreakoutStrategy)
        group.state.position = D(5)
        old = "[groups.strategy]\nrsi_buy_max = 75.0"
        assert base.count(old) == 1
        path.write_text(base.replace(old, '[groups.strategy]\nname = "ema_cross"\nquantity = "100"'))
        await daemon.reload()
        assert daemon.supervisor.groups[key] is group
        assert daemon.supervisor.last_reload_error.startswith(
            "reload refused: it would stop or restart paper:"
        )
        group.state.position = D(0)
        await daemon.reload()
        fresh = daemon.supervisor.groups[key]
        assert fresh is not group and isinstance(fresh.strategy.strategy, EmaCrossStrategy)
        assert isinstance(fresh.strategy.strategy_state, EmaCrossState)
        assert "restart paper:UNITTEST/BTC" in daemon.supervisor.last_reload_changes
        tg.cancel_scope.cancel()
