"""signals on the bundled real candles vs an independent TA-Lib batch computation (MACD, RSI, SMA,
ATR), plus ATR brackets checked by hand, state round trips, bad bars and config."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import numpy as np
import pytest
import talib

from actors.messages import Signal
from actors.params import SignalsParams
from actors.strategies.registry import build_strategy
from actors.strategies.signals import SignalsState, SignalsStrategy
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

RSI_TOL = 1e-9


def expected(p: SignalsParams) -> tuple[list[int], list[int]]:
    c = column(4)
    macd, signal, _ = talib.MACD(c, p.macd_fast, p.macd_slow, p.macd_signal)
    rsi = talib.RSI(c, p.rsi_period)
    with np.errstate(invalid="ignore"):
        assert (
            np.nanmin(np.abs(rsi - p.rsi_buy_max)) > RSI_TOL
            and np.nanmin(np.abs(rsi - p.rsi_sell_min)) > RSI_TOL
        )
        up = (macd[:-1] < signal[:-1]) & (macd[1:] > signal[1:]) & (rsi[1:] < p.rsi_buy_max)
        if p.trend_sma:
            up &= c[1:] > talib.SMA(c, p.trend_sma)[1:]
        down = (signal[:-1] < macd[:-1]) & (signal[1:] > macd[1:]) & (rsi[1:] > p.rsi_sell_min)
    return (np.flatnonzero(up) + 1).tolist(), (np.flatnonzero(down) + 1).tolist()


@pytest.mark.parametrize(
    "params",
    [SignalsParams(), SignalsParams(macd_fast=5, macd_slow=13, macd_signal=4, trend_sma=0, rsi_buy_max=60.0)],
    ids=["default", "fast-no-trend"],
)
def test_signals_and_trades_match_the_batch_computation(params: SignalsParams) -> None:
    buys, sells = expected(params)
    result = run(SignalsStrategy(params), bars())
    sig = signals(result.outputs)
    assert sorted(i for i, s in sig.items() if s.side == "buy") == buys
    assert sorted(i for i, s in sig.items() if s.side == "sell") == sells
    entries, exits, long = [], [], False
    for i in sorted({*buys, *sells}):
        if i in buys and not long:
            entries.append(i)
            long = True
        elif i in sells and long:
            exits.append(i)
            long = False
    assert [i for i, x in intents(result.outputs) if not x.reduce_only] == entries
    assert [i for i, x in intents(result.outputs) if x.reduce_only] == exits
    if params == SignalsParams():
        assert (len(buys), len(sells), len(entries) + len(exits)) == (333, 618, 661)


def test_first_buy_and_atr_brackets_checked_by_hand() -> None:
    """Bar 223 (2017-11-05 05:19 UTC, close 0.00159732): MACD -1.3637e-06 < signal -1.3085e-06 one bar
    before, -4.3855e-07 > -1.1345e-06 now; RSI 63.65 < 70; close > SMA200 0.00159378; ATR14 2.4461e-06.
    Stop 0.00159732 - 2 * ATR = 0.00159242778, target 0.00159732 + 3 * ATR = 0.00160465833."""
    c, h, lo = column(4), column(2), column(3)
    macd, signal, _ = talib.MACD(c, 12, 26, 9)
    assert macd[222] < signal[222] and macd[223] > signal[223]
    assert abs(talib.ATR(h, lo, c, 14)[223] - 2.4461086702594e-06) < 1e-17
    assert datetime.fromtimestamp(rows()[223][0] / 1000, UTC) == datetime(2017, 11, 5, 5, 19, tzinfo=UTC)
    result = run(SignalsStrategy(SignalsParams(quantity=D("3"))), bars()[:224])
    (i, entry), *_ = intents(result.outputs)
    assert i == 223 and bars()[223].close == D("0.00159732")
    assert entry.stop_loss == D("0.00159243") and entry.take_profit == D("0.00160466")
    assert entry.quantity == D(3) and entry.order_type == "market" and not entry.reduce_only
    assert entry.intent_id == f"{EXCHANGE}:{SYMBOL}:signals:{bars()[223].ts_event}:buy"
    assert (
        signals(result.outputs)[223].reason == "macd crossed above signal, rsi14 63.65 < 70, close > sma200"
    )


def test_no_take_profit_when_its_multiple_is_zero_and_orders_block() -> None:
    result = run(SignalsStrategy(SignalsParams(atr_target_mult=0.0)), bars()[:224])
    (_, entry), *_ = intents(result.outputs)
    assert entry.take_profit is None and entry.stop_loss == D("0.00159243")
    strategy = SignalsStrategy(SignalsParams())
    state = run(strategy, bars()[:223]).state
    _, out = strategy.on_bar(state, bars()[223], make_ctx(bars()[223].ts_event, open_orders=1))
    assert [type(x) for x in out] == [Signal]


def test_state_round_trips_and_a_resumed_run_is_identical() -> None:
    strategy = SignalsStrategy(SignalsParams())
    whole = run(strategy, bars()[:4000])
    head = run(strategy, bars()[:1777])
    for codec in (msgspec.msgpack, msgspec.json):
        resumed = codec.decode(codec.encode(head.state), type=SignalsState)
        tail = run(strategy, bars()[1777:4000], state=resumed, position=head.position)
        assert head.outputs + tail.outputs == whole.outputs and tail.state == whole.state
    roundtrip(whole.state)
    roundtrip(SignalsStrategy(SignalsParams(trend_sma=0)).initial_state())


@pytest.mark.parametrize("changes", [{"close": D("NaN")}, {"open": D(0)}, {"volume": D("-3")}])
def test_bad_bars_are_ignored(changes: dict[str, D]) -> None:
    strategy = SignalsStrategy(SignalsParams())
    state = run(strategy, bars()[:223]).state
    bad = msgspec.structs.replace(bars()[223], **changes)
    assert strategy.on_bar(state, bad, make_ctx(bad.ts_event)) == (state, [])


def test_reload_with_new_periods_warms_up_again() -> None:
    strategy = SignalsStrategy(SignalsParams())
    state = run(strategy, bars()[:300]).state
    other = strategy.with_params(SignalsParams(macd_fast=6))
    result = run(other, bars()[300:320], state=state)
    assert result.state.macd.fast.period == 6 and result.state.rsi.changes == 19
    assert not any(result.outputs)


def test_config() -> None:
    p = parse_strategy('name = "signals"\ntrend_sma = 0\natr_stop_mult = 1.5')
    assert isinstance(build_strategy(p), SignalsStrategy) and p.trend_sma == 0


L = STRATEGY_LINE


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            'name = "signals"\nmacd_fast = 30',
            f"cfg.toml:{L + 1}: groups[0].strategy.macd_fast: expected macd_fast < macd_slow, got 30 >= 26",
        ),
        (
            'name = "signals"\natr_stop_mult = 0.0',
            f"cfg.toml:{L + 1}: groups[0].strategy.atr_stop_mult: expected a positive finite number, got 0.0",
        ),
        (
            'name = "signals"\nrsi_sell_min = -1.0',
            f"cfg.toml:{L + 1}: groups[0].strategy.rsi_sell_min: expected a number in [0, 100], got -1.0",
        ),
        (
            'name = "signals"\ntrend_sma = -5',
            f"cfg.toml:{L + 1}: groups[0].strategy.trend_sma: expected 0 (no trend filter) or a period of "
            "1..10000 bars, got -5",
        ),
        (
            'name = "signals"\nmacd_signal = 0',
            f"cfg.toml:{L + 1}: groups[0].strategy.macd_signal: expected a period of 1..10000 bars, got 0",
        ),
    ],
)
def test_config_errors(table: str, message: str) -> None:
    rejects(table, message)
