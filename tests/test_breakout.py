"""The breakout strategy on the bundled real candles, checked against an independent TA-Lib batch computation,
plus hand-made series for sizing, brackets, exits, cooldown, bad bars and state resume."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

import msgspec
import numpy as np
import pytest
import talib

from actors.messages import Bar, OrderIntent, Quote, Side, Signal, Trade
from actors.params import BreakoutParams
from actors.strategies.base import Output, StrategyContext
from actors.strategies.breakout import BreakoutSnapshot, BreakoutState, BreakoutStrategy

DATA = Path(__file__).resolve().parents[1] / "adapters" / "replay" / "data"
CANDLES = DATA / "candles" / "UNITTEST_BTC-1m.json"
Row = tuple[int, Decimal, Decimal, Decimal, Decimal, Decimal]
EXCHANGE, SYMBOL = "replay", "UNITTEST/BTC"
NS = 1_000_000_000
DAY_NS = 86_400 * NS
D = Decimal
ZERO, NOTIONAL = D(0), D("0.5")

# Tolerances of the strategy's windowed indicators vs TA-Lib on the full series (see test_indicators).
EMA_TOL, RSI_TOL, RATIO_TOL = 1e-12, 1e-5, 1e-9


def make_bar(ts_event: int, o: Decimal, h: Decimal, lo: Decimal, c: Decimal, v: Decimal) -> Bar:
    return Bar(
        exchange=EXCHANGE,
        symbol=SYMBOL,
        ts_event=ts_event,
        ts_recv=ts_event,
        ts_open=ts_event - 60 * NS,
        interval_s=60,
        open=o,
        high=h,
        low=lo,
        close=c,
        volume=v,
    )


def make_ctx(ts: int, position: Decimal = ZERO, max_notional: Decimal = NOTIONAL) -> StrategyContext:
    return StrategyContext(
        exchange=EXCHANGE,
        symbol=SYMBOL,
        now_ns=ts,
        position=position,
        avg_price=D(0),
        max_notional=max_notional,
        tick_size=D("1e-8"),
        step_size=D("0.01"),
    )


@pytest.fixture(scope="module")
def rows() -> list[Row]:
    return msgspec.json.decode(CANDLES.read_bytes(), type=list[Row])


@pytest.fixture(scope="module")
def bars(rows: list[Row]) -> list[Bar]:
    return [make_bar((t + 60_000) * 1_000_000, o, h, lo, c, v) for t, o, h, lo, c, v in rows]


PositionFn = Callable[[Decimal, list[Output]], Decimal]


@dataclass
class Run:
    state: BreakoutState
    outputs: list[list[Output]]
    position: Decimal


def run(
    strategy: BreakoutStrategy,
    bars: Iterable[Bar],
    state: BreakoutState | None = None,
    fills: PositionFn | None = None,
    position: Decimal = ZERO,
) -> Run:
    """Feed ``bars``; ``fills`` (if given) turns each bar's outputs into the next position."""
    state = strategy.initial_state() if state is None else state
    outputs = []
    for bar in bars:
        state, out = strategy.on_bar(state, bar, make_ctx(bar.ts_event, position))
        outputs.append(out)
        if fills is not None:
            position = fills(position, out)
    return Run(state, outputs, position)


def instant_fills(position: Decimal, out: list[Output]) -> Decimal:
    """A toy execution: every intent fills completely at once."""
    for item in out:
        if isinstance(item, OrderIntent):
            position += item.quantity if item.side == "buy" else -item.quantity
    return position


def signals(outputs: list[list[Output]]) -> dict[int, Signal]:
    return {i: x for i, out in enumerate(outputs) for x in out if isinstance(x, Signal)}


def intents(outputs: list[list[Output]]) -> dict[int, OrderIntent]:
    return {i: x for i, out in enumerate(outputs) for x in out if isinstance(x, OrderIntent)}


@pytest.fixture(scope="module")
def flat_run(bars: list[Bar]) -> list[list[Output]]:
    return run(BreakoutStrategy(BreakoutParams()), bars).outputs


# --- the real candles vs an independent TA-Lib batch computation --------------------------


@dataclass
class Margins:
    """How far each condition is from its threshold at every bar (> 0: holds)."""

    buy: list[np.ndarray]
    sell: list[np.ndarray]
    tol: list[np.ndarray]


def condition_margins(rows: list[Row], p: BreakoutParams) -> Margins:
    h, lo, c, v = (np.array([float(r[k]) for r in rows]) for k in (2, 3, 4, 5))
    prev_high = np.concatenate(([np.nan], talib.MAX(h, p.lookback)[:-1]))
    prev_low = np.concatenate(([np.nan], talib.MIN(lo, p.lookback)[:-1]))
    trend = talib.EMA(c, p.ema_fast) - talib.EMA(c, p.ema_slow)
    strength = talib.RSI(c, p.rsi_period)
    ratio = v / talib.SMA(v, p.volume_sma)
    zero = np.zeros_like(c)
    return Margins(
        buy=[c - prev_high, trend, p.rsi_buy_max - strength, ratio - p.volume_ratio],
        sell=[prev_low - c, -trend, strength - p.rsi_sell_min, ratio - p.volume_ratio],
        tol=[zero, EMA_TOL * c, zero + RSI_TOL, ratio * RATIO_TOL],
    )


def expected_sides(m: Margins, strict: bool) -> dict[str, np.ndarray]:
    """Bars where every condition holds; ``strict=False`` also accepts values within tolerance."""
    out = {}
    for side, margins in (("buy", m.buy), ("sell", m.sell)):
        ok = np.ones_like(m.tol[0], dtype=bool)
        for margin, tol in zip(margins, m.tol, strict=True):
            with np.errstate(invalid="ignore"):
                ok &= margin > tol if strict else margin > -tol
        out[side] = ok
    return out


def test_every_signal_on_real_candles_meets_the_independent_conditions(
    rows: list[Row], flat_run: list[list[Output]]
) -> None:
    m = condition_margins(rows, BreakoutParams())
    loose, strict = expected_sides(m, strict=False), expected_sides(m, strict=True)
    got = signals(flat_run)
    assert got, "the strategy emits signals on the real candles"
    for i, sig in got.items():
        assert loose[sig.side][i], f"bar {i}: {sig.side} signal but a condition fails: {sig.reason}"
        assert sig.price == rows[i][4] and sig.confidence == 0.8 and sig.strategy == "breakout"
        assert sig.ts_event == (rows[i][0] + 60_000) * 1_000_000
    silent = [i for i in range(len(rows)) if i not in got]
    for i in silent:  # every bar without a signal, not just a sample
        assert not strict["buy"][i] and not strict["sell"][i], f"bar {i}: conditions hold but no signal"
    borderline = (loose["buy"] != strict["buy"]) | (loose["sell"] != strict["sell"])
    assert not borderline.any()  # so the comparison above is exact on this data


def test_signal_and_entry_counts_with_default_params(flat_run: list[list[Output]]) -> None:
    sides = Counter(s.side for s in signals(flat_run).values())
    entries = intents(flat_run)
    assert (sides["buy"], sides["sell"], len(entries)) == (412, 327, 100)
    assert all(x.side == "buy" and not x.reduce_only for x in entries.values())


def test_reasons_name_the_values(flat_run: list[list[Output]]) -> None:
    sig = next(s for s in signals(flat_run).values() if s.side == "buy")
    assert sig.reason.startswith(f"close {sig.price} > high20 ")
    assert re.fullmatch(r"close \S+ > high20 \S+, ema5 > ema13, rsi \d+\.\d, vol ratio \d+\.\d\d", sig.reason)
    sell = next(s for s in signals(flat_run).values() if s.side == "sell")
    assert re.fullmatch(r"close \S+ < low20 \S+, ema5 < ema13, rsi \d+\.\d, vol ratio \d+\.\d\d", sell.reason)
    assert sell.reason.startswith(f"close {sell.price} < low20 ")


def expected_entries(buy_times: list[int], cooldown_s: int, per_day: int) -> list[int]:
    last: int | None = None
    days: Counter[int] = Counter()
    out = []
    for ts in buy_times:
        if (last is None or ts - last >= cooldown_s * NS) and days[ts // DAY_NS] < per_day:
            out.append(ts)
            last = ts
            days[ts // DAY_NS] += 1
    return out


@pytest.mark.parametrize(("cooldown_s", "per_day"), [(1800, 10), (0, 3), (600, 5)])
def test_entries_respect_cooldown_and_daily_cap(bars: list[Bar], cooldown_s: int, per_day: int) -> None:
    params = BreakoutParams(cooldown_s=cooldown_s, max_trades_per_day=per_day)
    outputs = run(BreakoutStrategy(params), bars).outputs
    buys = [s.ts_event for s in signals(outputs).values() if s.side == "buy"]
    entry_times = [x.ts_event for x in intents(outputs).values()]
    assert entry_times == expected_entries(buys, cooldown_s, per_day)
    assert all(b - a >= cooldown_s * NS for a, b in pairwise(entry_times))
    per_utc_day = Counter(ts // DAY_NS for ts in entry_times)
    assert max(per_utc_day.values()) <= per_day
    assert len(entry_times) < len(buys)  # the limits did bite
    if cooldown_s == 0:
        assert max(per_utc_day.values()) == per_day


def test_entry_intents_on_real_candles_are_sized_and_bracketed(flat_run: list[list[Output]]) -> None:
    closes = {s.ts_event: s.price for s in signals(flat_run).values()}
    for x in intents(flat_run).values():
        close = closes[x.ts_event]
        assert x.quantity == (D("0.2") / close).quantize(D("0.01"), rounding="ROUND_DOWN")
        assert x.stop_loss == (close * D("0.997")).quantize(D("1e-8"))
        assert x.take_profit == (close * D("1.006")).quantize(D("1e-8"))
        assert x.order_type == "market" and x.source == "strategy:breakout" and x.price is None
        assert x.intent_id == f"{EXCHANGE}:{SYMBOL}:breakout:{x.ts_event}:buy"
    ids = [x.intent_id for x in intents(flat_run).values()]
    assert len(ids) == len(set(ids))


# --- hand-made series ------------------------------------------------------------------------

BASE_TS = 19_700 * DAY_NS  # a UTC midnight
LOW, HIGH = D("0.00160000"), D("0.00161000")
HALF = D("0.000005")
JUMP_UP, JUMP_DOWN = D("0.00163457"), D("0.00157543")


def wave(n: int) -> list[Decimal]:
    """Closes alternating LOW, HIGH: no breakout, RSI near 50, EMAs flat."""
    return [LOW if i % 2 == 0 else HIGH for i in range(n)]


def synthetic(closes: list[Decimal], loud: Iterable[int] = (), start: int = BASE_TS) -> list[Bar]:
    """Bars opening at the previous close, wicks of HALF, volume 10 (20 at the ``loud`` indexes)."""
    loud = set(loud)
    out, prev = [], closes[0]
    for i, c in enumerate(closes):
        volume = D(20) if i in loud else D(10)
        out.append(
            make_bar(start + (i + 1) * 60 * NS, prev, max(prev, c) + HALF, min(prev, c) - HALF, c, volume)
        )
        prev = c
    return out


def test_a_hand_made_series_gives_exactly_one_buy_at_the_jump() -> None:
    bars = synthetic([*wave(40), JUMP_UP, *wave(30)], loud=[40])
    outputs = run(BreakoutStrategy(BreakoutParams()), bars).outputs
    assert list(signals(outputs)) == [40] and signals(outputs)[40].side == "buy"
    assert list(intents(outputs)) == [40]


def test_entry_quantity_stop_and_take_profit_are_rounded_exactly() -> None:
    bars = synthetic([*wave(40), JUMP_UP], loud=[40])
    (intent,) = intents(run(BreakoutStrategy(BreakoutParams()), bars).outputs).values()
    # 0.5 * min(0.8 * 0.5, 0.5) / 0.00163457 = 122.356..., floored to the 0.01 step
    assert intent.quantity == D("122.35")
    assert intent.stop_loss == D("0.00162967")  # 0.00163457 * 0.997 = 0.00162966629
    assert intent.take_profit == D("0.00164438")  # 0.00163457 * 1.006 = 0.00164437742
    assert intent.side == "buy" and not intent.reduce_only
    assert intent.intent_id == f"{EXCHANGE}:{SYMBOL}:breakout:{bars[-1].ts_event}:buy"


def test_a_quantity_that_rounds_to_zero_gives_the_signal_but_no_entry() -> None:
    strategy = BreakoutStrategy(BreakoutParams())
    bars = synthetic([*wave(40), JUMP_UP], loud=[40])
    state = run(strategy, bars[:-1]).state
    state, out = strategy.on_bar(state, bars[-1], make_ctx(bars[-1].ts_event, max_notional=D("0.00001")))
    assert [type(x) for x in out] == [Signal]
    assert state.last_entry_ns is None and state.trades_today == 0


def test_no_signal_during_warm_up(flat_run: list[list[Output]]) -> None:
    strategy = BreakoutStrategy(BreakoutParams())
    assert strategy.warmup == 21
    early = synthetic([*wave(15), JUMP_UP, *wave(4)], loud=[15])
    assert not any(run(strategy, early).outputs)
    assert min(signals(flat_run)) >= strategy.warmup - 1


def last_bar_outputs(params: BreakoutParams, bars: list[Bar], position: Decimal) -> list[Output]:
    strategy = BreakoutStrategy(params)
    state = run(strategy, bars[:-1]).state
    return strategy.on_bar(state, bars[-1], make_ctx(bars[-1].ts_event, position))[1]


UP = synthetic([*wave(40), JUMP_UP], loud=[40])
DOWN = synthetic([*wave(40), JUMP_DOWN], loud=[40])


def test_long_and_sell_signal_exits_the_whole_position() -> None:
    sig, exit_ = last_bar_outputs(BreakoutParams(), DOWN, D("3.21"))
    assert isinstance(sig, Signal) and sig.side == "sell" and "< low20" in sig.reason
    assert isinstance(exit_, OrderIntent)
    assert (exit_.side, exit_.quantity, exit_.reduce_only, exit_.order_type) == (
        "sell",
        D("3.21"),
        True,
        "market",
    )
    assert exit_.stop_loss is None and exit_.take_profit is None
    assert exit_.intent_id.endswith(f":{DOWN[-1].ts_event}:exit-sell")


def test_short_and_buy_signal_exits_the_whole_position() -> None:
    _, exit_ = last_bar_outputs(BreakoutParams(), UP, D("-2.5"))
    assert isinstance(exit_, OrderIntent)
    assert (exit_.side, exit_.quantity, exit_.reduce_only) == ("buy", D("2.5"), True)
    assert exit_.intent_id.endswith(":exit-buy")


def test_a_signal_in_the_direction_of_the_position_only_records_the_signal() -> None:
    assert [type(x) for x in last_bar_outputs(BreakoutParams(), UP, D("1"))] == [Signal]
    assert [type(x) for x in last_bar_outputs(BreakoutParams(allow_short=True), DOWN, D("-1"))] == [Signal]


def test_short_entries_only_when_allowed_and_mirrored() -> None:
    assert [type(x) for x in last_bar_outputs(BreakoutParams(), DOWN, D(0))] == [Signal]
    _, short = last_bar_outputs(BreakoutParams(allow_short=True), DOWN, D(0))
    assert isinstance(short, OrderIntent)
    assert (short.side, short.reduce_only, short.quantity) == (
        "sell",
        False,
        D("126.94"),
    )  # 0.2 / 0.00157543 = 126.949...
    assert short.stop_loss == D("0.00158016")  # 0.00157543 * 1.003 = 0.00158015629
    assert short.take_profit == D("0.00156598")  # 0.00157543 * 0.994 = 0.00156597742
    assert short.intent_id.endswith(f":{DOWN[-1].ts_event}:sell")


def bad(bar: Bar, **changes: Decimal) -> Bar:
    return msgspec.structs.replace(bar, **changes)


@pytest.mark.parametrize(
    "changes",
    [
        {"close": D("NaN")},
        {"close": D("sNaN")},
        {"close": D("Infinity")},
        {"close": D(0)},
        {"close": D("-0.0016")},
        {"open": D(0)},
        {"low": D(0)},
        {"high": D("1e400")},
        {"volume": D(-1)},
        {"volume": D("NaN")},
        {"high": D("0.0015"), "low": D("0.0017")},
    ],
)
def test_bad_bars_are_ignored(changes: dict[str, Decimal]) -> None:
    strategy = BreakoutStrategy(BreakoutParams())
    state = run(strategy, UP[:-1]).state
    before = state.snapshot()
    after, out = strategy.on_bar(state, bad(UP[-1], **changes), make_ctx(UP[-1].ts_event))
    assert after is state and out == [] and state.snapshot() == before
    _, out = strategy.on_bar(state, UP[-1], make_ctx(UP[-1].ts_event))
    assert out == last_bar_outputs(BreakoutParams(), UP, D(0))


def test_state_round_trips_and_a_resumed_run_is_identical(bars: list[Bar]) -> None:
    strategy = BreakoutStrategy(BreakoutParams(allow_short=True))
    full = run(strategy, bars, fills=instant_fills)
    kinds = Counter((x.side, x.reduce_only) for x in intents(full.outputs).values())
    wanted: list[tuple[Side, bool]] = [("buy", False), ("sell", False), ("buy", True), ("sell", True)]
    assert all(kinds[k] for k in wanted)

    split = 7_000
    head = run(strategy, bars[:split], fills=instant_fills)
    blob = msgspec.msgpack.encode(head.state)
    snap = msgspec.json.encode(head.state.snapshot())
    resumed = msgspec.msgpack.decode(blob, type=BreakoutState)
    assert resumed == head.state and resumed.series is not head.state.series
    tail = run(strategy, bars[split:], state=resumed, fills=instant_fills, position=head.position)
    assert head.outputs + tail.outputs == full.outputs
    assert msgspec.msgpack.encode(tail.state) == msgspec.msgpack.encode(full.state)

    from_lists = BreakoutState.restore(msgspec.json.decode(snap, type=BreakoutSnapshot))
    again = run(strategy, bars[split:], state=from_lists, fills=instant_fills, position=head.position)
    assert again.outputs == tail.outputs and again.state.snapshot() == full.state.snapshot()


def test_copy_gives_an_independent_branch() -> None:
    strategy = BreakoutStrategy(BreakoutParams())
    state = run(strategy, UP[:-1]).state
    branch = state.copy()
    strategy.on_bar(state, UP[-1], make_ctx(UP[-1].ts_event))
    assert len(branch.series) == len(state.series) - 1 == 40 and branch.series.count == 40


def test_with_params_swaps_parameters_and_keeps_the_state(bars: list[Bar]) -> None:
    old = BreakoutStrategy(BreakoutParams())
    state = run(old, bars[:500]).state
    same_window = old.with_params(BreakoutParams(volume_ratio=1.5))
    assert same_window.params.volume_ratio == 1.5 and old.params.volume_ratio == 1.2
    kept, _ = same_window.on_bar(state, bars[500], make_ctx(bars[500].ts_event))
    assert kept.series is state.series
    wider = old.with_params(BreakoutParams(rsi_period=30))
    assert wider.capacity == 600 and old.capacity == 280
    grown, _ = wider.on_bar(kept, bars[501], make_ctx(bars[501].ts_event))
    assert grown.series.capacity == 600 and len(grown.series) == 281 and grown.series.count == 502
    assert kept.series.capacity == 280  # the old state is not touched by the resize
    run(wider, bars[502:1500], state=grown)


def test_invalid_params_are_refused() -> None:
    with pytest.raises(ValueError, match="rsi_period"):
        BreakoutStrategy(BreakoutParams(rsi_period=1))
    with pytest.raises(ValueError, match="lookback"):
        BreakoutStrategy(BreakoutParams(lookback=0))


def test_trades_and_quotes_are_ignored() -> None:
    strategy = BreakoutStrategy(BreakoutParams())
    state = strategy.initial_state()
    ctx = make_ctx(BASE_TS)
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
    assert strategy.name == "breakout"
