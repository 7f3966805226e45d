"""hyper_rsi on the bundled real candles vs an independent TA-Lib batch computation, plus stops,
trend filters, state round trips, bad bars and its config."""

from __future__ import annotations

from datetime import UTC, datetime
from fractions import Fraction
from itertools import pairwise

import msgspec
import numpy as np
import pytest
import talib

from actors.messages import Signal
from actors.params import HyperRsiParams
from actors.strategies.hyper_rsi import HyperRsiState, HyperRsiStrategy
from actors.strategies.registry import build_strategy
from tests.strategy_helpers import (
    EXCHANGE,
    STRATEGY_LINE,
    SYMBOL,
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
    signals,
)

RSI_TOL = 1e-9  # streaming RSI vs TA-Lib (see test_indicators_streaming); every margin below is larger


def expected(mode: str, oversold: float = 30.0, overbought: float = 70.0) -> tuple[list[int], list[int]]:
    c = column(4)
    rsi, ema = talib.RSI(c, 14), talib.EMA(c, 200)
    with np.errstate(invalid="ignore"):
        up = (rsi[:-1] < oversold) & (rsi[1:] > oversold)
        down = (rsi[:-1] > overbought) & (rsi[1:] < overbought)
        if mode == "ema_slope":
            up &= ema[1:] > ema[:-1]
        elif mode == "price_above_ema":
            up &= c[1:] > ema[1:]
        # no threshold is within the streaming tolerance on this data: the comparison is exact
        assert np.nanmin(np.abs(rsi - oversold)) > RSI_TOL and np.nanmin(np.abs(rsi - overbought)) > RSI_TOL
    return (np.flatnonzero(up) + 1).tolist(), (np.flatnonzero(down) + 1).tolist()


def trades(buys: list[int], sells: list[int]) -> tuple[list[int], list[int]]:
    """Entries and exits a long-only book makes from the signals (instant fills)."""
    entries, exits, long = [], [], False
    for i in sorted({*buys, *sells}):
        if i in buys and not long:
            entries.append(i)
            long = True
        elif i in sells and long:
            exits.append(i)
            long = False
    return entries, exits


@pytest.mark.parametrize("mode", ["none", "ema_slope", "price_above_ema"])
def test_signals_and_trades_match_the_batch_computation(mode: str) -> None:
    buys, sells = expected(mode)
    result = run(HyperRsiStrategy(HyperRsiParams(trend_filter=mode, quantity=D(100))), bars())  # type: ignore[arg-type]
    sig = signals(result.outputs)
    assert sorted(i for i, s in sig.items() if s.side == "buy") == buys
    assert sorted(i for i, s in sig.items() if s.side == "sell") == sells
    entries, exits = trades(buys, sells)
    assert [i for i, x in intents(result.outputs) if not x.reduce_only] == entries
    assert [i for i, x in intents(result.outputs) if x.reduce_only] == exits
    assert len(buys) == {"none": 117, "ema_slope": 21, "price_above_ema": 21}[mode]
    assert len(sells) == 163


def exact_rsi(n: int, period: int = 14) -> list[Fraction]:
    """Wilder's RSI of the first ``n`` closes in rational arithmetic (no floating point)."""
    closes = [Fraction(r[4]) for r in rows()[:n]]
    changes = [b - a for a, b in pairwise(closes)]
    gain = sum((x for x in changes[:period] if x > 0), Fraction(0)) / period
    loss = sum((-x for x in changes[:period] if x < 0), Fraction(0)) / period
    out = [100 * gain / (gain + loss)]
    for x in changes[period:]:
        gain = (gain * (period - 1) + max(x, Fraction(0))) / period
        loss = (loss * (period - 1) + max(-x, Fraction(0))) / period
        out.append(100 * gain / (gain + loss))
    return out


def test_first_buy_checked_by_hand() -> None:
    """Bar 21 (candle 2017-11-04 23:30 UTC, close 0.00158817): RSI 29.95 -> 30.34 crosses 30."""
    rsi20, rsi21 = exact_rsi(22)[-2:]
    assert rsi20 < 30 < rsi21 and round(float(rsi20), 2) == 29.95 and round(float(rsi21), 2) == 30.34
    assert datetime.fromtimestamp(rows()[21][0] / 1000, UTC) == datetime(2017, 11, 4, 23, 30, tzinfo=UTC)
    strategy = HyperRsiStrategy(HyperRsiParams(trend_filter="none", quantity=D("2.5"), stop_loss_pct=2.0))
    (i, entry), *_ = intents(run(strategy, bars()[:22]).outputs)
    assert i == 21 and entry.ts_event == bars()[21].ts_event and bars()[21].close == D("0.00158817")
    assert entry.intent_id == f"{EXCHANGE}:{SYMBOL}:hyper_rsi:{entry.ts_event}:buy"
    assert (entry.quantity, entry.side, entry.order_type) == (D("2.5"), "buy", "market")
    assert entry.stop_loss == D("0.00155641")  # 0.00158817 * 0.98 = 0.0015564066
    assert entry.take_profit is None


def test_first_trend_filtered_buy_and_atr_stop() -> None:
    """With the EMA(200) slope filter the first buy is bar 687 (2017-11-05 14:44 UTC, close 0.00172888);
    the ATR stop is close - 2 * ATR(14) = 0.00172888 - 2 * 9.0366e-06."""
    c, h, lo = column(4), column(2), column(3)
    atr = talib.ATR(h, lo, c, 14)[687]
    assert abs(atr - 9.036553585559e-06) < 1e-15
    strategy = HyperRsiStrategy(HyperRsiParams(quantity=D(1), atr_mult=2.0))
    (i, entry), *_ = intents(run(strategy, bars()[:688]).outputs)
    assert i == 687 and bars()[687].close == D("0.00172888")
    assert datetime.fromtimestamp(rows()[687][0] / 1000, UTC) == datetime(2017, 11, 5, 14, 44, tzinfo=UTC)
    assert entry.stop_loss == D("0.00171081")  # 0.00172888 - 0.0000180731 = 0.0017108069


def test_no_buy_before_the_trend_ema_exists() -> None:
    result = run(HyperRsiStrategy(HyperRsiParams(trend_filter="price_above_ema")), bars()[:199])
    assert not any(s.side == "buy" for s in signals(result.outputs).values())
    unfiltered = run(HyperRsiStrategy(HyperRsiParams(trend_filter="none")), bars()[:199])
    assert any(s.side == "buy" for s in signals(unfiltered.outputs).values())  # the filter bit


def test_no_atr_stop_no_entry_and_working_orders_block() -> None:
    strategy = HyperRsiStrategy(HyperRsiParams(trend_filter="none", atr_mult=1.0, atr_period=30))
    out = run(strategy, bars()[:22]).outputs[21]  # the ATR(30) has no value at bar 21
    assert [type(x) for x in out] == [Signal]
    strategy = HyperRsiStrategy(HyperRsiParams(trend_filter="none"))
    state = run(strategy, bars()[:21]).state
    _, out = strategy.on_bar(state, bars()[21], make_ctx(bars()[21].ts_event, open_orders=1))
    assert [type(x) for x in out] == [Signal]


def test_state_round_trips_and_a_resumed_run_is_identical() -> None:
    strategy = HyperRsiStrategy(HyperRsiParams(atr_mult=1.5))
    whole = run(strategy, bars()[:4000])
    head = run(strategy, bars()[:2500])
    for codec in (msgspec.msgpack, msgspec.json):
        resumed = codec.decode(codec.encode(head.state), type=HyperRsiState)
        tail = run(strategy, bars()[2500:4000], state=resumed, position=head.position)
        assert head.outputs + tail.outputs == whole.outputs and tail.state == whole.state
    roundtrip(whole.state)


@pytest.mark.parametrize(
    "changes",
    [{"close": D("NaN")}, {"close": D(0)}, {"low": D("-1")}, {"volume": D(-1)}, {"high": D("0.001")}],
)
def test_bad_bars_are_ignored(changes: dict[str, D]) -> None:
    strategy = HyperRsiStrategy(HyperRsiParams(trend_filter="none"))
    state = run(strategy, bars()[:21]).state
    bad = msgspec.structs.replace(bars()[21], **changes)
    assert strategy.on_bar(state, bad, make_ctx(bad.ts_event)) == (state, [])


def test_reload_with_new_periods_warms_up_again() -> None:
    strategy = HyperRsiStrategy(HyperRsiParams())
    state = run(strategy, bars()[:300]).state
    other = strategy.with_params(HyperRsiParams(rsi_period=7))
    result = run(other, bars()[300:310], state=state)
    assert result.state.rsi.period == 7 and result.state.rsi.changes == 9
    assert strategy.with_params(HyperRsiParams(oversold=25)).params.oversold == 25


def test_config_parses_and_builds() -> None:
    params = parse_strategy('name = "hyper_rsi"\ntrend_filter = "price_above_ema"\natr_mult = 2.0')
    assert params == HyperRsiParams(trend_filter="price_above_ema", atr_mult=2.0)
    assert isinstance(build_strategy(params), HyperRsiStrategy)
    assert parse_strategy('name = "hyper_rsi"\natr_mult = 2.0\nstop_loss_pct = 0.0').stop_loss_pct == 0.0


L = STRATEGY_LINE


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            'name = "hyper_rsi"\noversold = 80.0',
            f"cfg.toml:{L + 1}: groups[0].strategy.oversold: "
            "expected oversold < overbought, got 80.0 >= 70.0",
        ),
        (
            'name = "hyper_rsi"\noverbought = 101.0',
            f"cfg.toml:{L + 1}: groups[0].strategy.overbought: expected a number in [0, 100], got 101.0",
        ),
        (
            'name = "hyper_rsi"\ntrend_filter = "sma"',
            f"cfg.toml:{L + 1}: groups[0].strategy.trend_filter: Invalid enum value 'sma'",
        ),
        (
            'name = "hyper_rsi"\nrsi_period = 1',
            f"cfg.toml:{L + 1}: groups[0].strategy.rsi_period: expected a period of 2..10000 bars, got 1",
        ),
        (
            'name = "hyper_rsi"\nstop_loss_pct = 0.0',
            f"cfg.toml:{L + 1}: groups[0].strategy.stop_loss_pct: hyper_rsi (atr_mult = 0) entries need a "
            "stop-loss: expected 0 < stop_loss_pct < 100, got 0.0",
        ),
        (
            'name = "hyper_rsi"\natr_mult = -1.0',
            f"cfg.toml:{L + 1}: groups[0].strategy.atr_mult: expected a non-negative finite number, got -1.0",
        ),
    ],
)
def test_config_errors(table: str, message: str) -> None:
    rejects(table, message)
