"""time_window on the bundled real candles (which span the end of US daylight saving time on
2017-11-05), against an independent computation with fixed UTC offsets; plus overnight windows,
gaps, the mandatory stop-loss, state round trips and config."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import msgspec
import pytest

from actors.messages import Bar, OrderIntent, Signal
from actors.params import TimeWindowParams
from actors.strategies.registry import build_strategy
from actors.strategies.time_window import TimeWindowState, TimeWindowStrategy, seconds_of_day
from tests.strategy_helpers import (
    EXCHANGE,
    NS,
    STRATEGY_LINE,
    SYMBOL,
    D,
    bars,
    intents,
    make_ctx,
    parse_strategy,
    rejects,
    roundtrip,
    run,
    signals,
)

NY = TimeWindowParams(buy_time="09:30", sell_time="16:00", timezone="America/New_York", stop_loss_pct=5.0)
DST_END = int(datetime(2017, 11, 5, 6, 0, tzinfo=UTC).timestamp()) * NS  # 02:00 EDT -> 01:00 EST


def expected(
    bar_list: list[Bar], buy: int, sell: int, offset_h: Callable[[int], int] | int
) -> list[tuple[int, str]]:
    """Buys/sells from minute arithmetic on UTC with an explicit offset (no zoneinfo)."""
    events: list[tuple[int, str]] = []
    long, traded = False, None
    for i, bar in enumerate(bar_list):
        offset = offset_h if isinstance(offset_h, int) else offset_h(bar.ts_event)
        local_s = bar.ts_event // NS + offset * 3600
        day, t = divmod(local_s, 86_400)
        if buy < sell:
            window = day if buy <= t < sell else None
        else:
            window = day if t >= buy else (day - 1 if t < sell else None)
        if window is None and long:
            events.append((i, "sell"))
            long = False
        elif window is not None and not long and traded != window:
            events.append((i, "buy"))
            long, traded = True, window
    return events


def got(strategy: TimeWindowStrategy, bar_list: list[Bar]) -> list[tuple[int, str]]:
    return [(i, x.side) for i, x in intents(run(strategy, bar_list).outputs)]


def test_new_york_window_follows_the_end_of_daylight_saving_time() -> None:
    events = got(TimeWindowStrategy(NY), bars())
    assert events == expected(bars(), 9 * 3600 + 1800, 16 * 3600, lambda ts: -4 if ts < DST_END else -5)
    assert len(events) == 20 and [s for _, s in events] == ["buy", "sell"] * 10
    # hand-checked: Sunday 2017-11-05 09:30 EST is 14:30 UTC (it would be 13:30 UTC a day earlier, in EDT)
    first_buy = bars()[events[0][0]]
    assert datetime.fromtimestamp(first_buy.ts_event // NS, UTC) == datetime(2017, 11, 5, 14, 30, tzinfo=UTC)
    first_sell = bars()[events[1][0]]
    assert datetime.fromtimestamp(first_sell.ts_event // NS, UTC) == datetime(2017, 11, 5, 21, 0, tzinfo=UTC)


def test_entry_intent_checked_by_hand() -> None:
    result = run(TimeWindowStrategy(NY), bars()[:700])
    (i, entry), *_ = intents(result.outputs)
    bar = bars()[i]
    assert i == 672 and bar.close == D("0.00176")
    assert entry.stop_loss == D("0.00167200")  # 0.00176 * 0.95
    assert entry.take_profit is None and entry.quantity == D(1) and entry.order_type == "market"
    assert entry.intent_id == f"{EXCHANGE}:{SYMBOL}:time_window:{bar.ts_event}:buy"
    assert signals(result.outputs)[i].reason == "inside 09:30-16:00 America/New_York"


@pytest.mark.parametrize(("buy", "sell"), [("22:00", "02:00"), ("00:00", "23:59"), ("23:59", "00:00")])
def test_utc_windows_including_overnight(buy: str, sell: str) -> None:
    params = TimeWindowParams(buy_time=buy, sell_time=sell, stop_loss_pct=1.0)
    events = got(TimeWindowStrategy(params), bars())
    assert events == expected(bars(), seconds_of_day(buy), seconds_of_day(sell), 0)
    assert events


def test_a_gap_buys_late_and_a_window_without_bars_is_skipped() -> None:
    params = TimeWindowParams(buy_time="10:00", sell_time="10:30", stop_loss_pct=1.0)
    start = int(datetime(2017, 11, 5, 10, 0, tzinfo=UTC).timestamp()) * NS
    gapped = [b for b in bars() if not start - 60 * NS <= b.ts_event < start + 10 * 60 * NS]
    events = got(TimeWindowStrategy(params), gapped)
    first = gapped[events[0][0]]
    # the data itself has no bar closing at 10:10: the first one inside the window closes at 10:11
    assert datetime.fromtimestamp(first.ts_event // NS, UTC) == datetime(2017, 11, 5, 10, 11, tzinfo=UTC)
    assert not any(b.ts_event == start + 600 * NS for b in bars())
    day6 = int(datetime(2017, 11, 6, 10, 0, tzinfo=UTC).timestamp()) * NS
    skipped = [b for b in bars() if not day6 <= b.ts_event < day6 + 1800 * NS]
    times = [
        datetime.fromtimestamp(skipped[i].ts_event // NS, UTC).date()
        for i, s in got(TimeWindowStrategy(params), skipped)
        if s == "buy"
    ]
    assert datetime(2017, 11, 6).date() not in times and len(times) == 9  # 11-05..11-14 but 11-06


def test_no_second_entry_in_a_window_after_a_stop() -> None:
    strategy = TimeWindowStrategy(NY)
    state = run(strategy, bars()[:673]).state
    assert state.last_window is not None
    later = bars()[680]
    assert strategy.on_bar(state, later, make_ctx(later.ts_event)) == (state, [])  # flat again: stopped out


def test_exit_waits_for_working_orders_and_is_reduce_only() -> None:
    strategy = TimeWindowStrategy(NY)
    outside = bars()[10]
    assert (
        strategy.on_bar(TimeWindowState(), outside, make_ctx(outside.ts_event, D(3), open_orders=1))[1] == []
    )
    _, out = strategy.on_bar(TimeWindowState(), outside, make_ctx(outside.ts_event, D(3)))
    assert [type(x) for x in out] == [Signal, OrderIntent]
    exit_ = out[1]
    assert isinstance(exit_, OrderIntent) and exit_.reduce_only and exit_.quantity == D(3)


def test_state_round_trips_and_bad_bars() -> None:
    strategy = TimeWindowStrategy(NY)
    whole = run(strategy, bars())
    head = run(strategy, bars()[:3000])
    for codec in (msgspec.msgpack, msgspec.json):
        resumed = codec.decode(codec.encode(head.state), type=TimeWindowState)
        tail = run(strategy, bars()[3000:], state=resumed, position=head.position)
        assert head.outputs + tail.outputs == whole.outputs
    roundtrip(whole.state)
    bad = msgspec.structs.replace(bars()[672], close=D("NaN"))
    assert strategy.on_bar(TimeWindowState(), bad, make_ctx(bad.ts_event)) == (TimeWindowState(), [])


def test_strategy_refuses_bad_params() -> None:
    with pytest.raises(ValueError, match="stop_loss_pct"):
        TimeWindowStrategy(TimeWindowParams())
    with pytest.raises(ValueError, match="HH:MM"):
        TimeWindowStrategy(TimeWindowParams(buy_time="9:30", stop_loss_pct=1.0))


def test_config() -> None:
    p = parse_strategy('name = "time_window"\nbuy_time = "22:00"\nsell_time = "02:00"\nstop_loss_pct = 1.5')
    assert isinstance(build_strategy(p), TimeWindowStrategy) and p.timezone == "UTC"


L = STRATEGY_LINE


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            'name = "time_window"',
            f"cfg.toml:{L - 1}: groups[0].strategy.stop_loss_pct: time_window needs a stop-loss: "
            "expected 0 < stop_loss_pct < 100, got 0.0",
        ),
        (
            'name = "time_window"\nstop_loss_pct = 1.0\nbuy_time = "24:00"',
            f"cfg.toml:{L + 2}: groups[0].strategy.buy_time: expected a time of day HH:MM (00:00..23:59), "
            "got '24:00'",
        ),
        (
            'name = "time_window"\nstop_loss_pct = 1.0\nsell_time = "09:00"',
            f"cfg.toml:{L + 2}: groups[0].strategy.sell_time: expected sell_time different from buy_time, "
            "got '09:00' for both",
        ),
        (
            'name = "time_window"\nstop_loss_pct = 1.0\ntimezone = "Mars/Olympus"',
            f"cfg.toml:{L + 2}: groups[0].strategy.timezone: expected an IANA time zone name like 'UTC' or "
            "'America/New_York', got 'Mars/Olympus'",
        ),
        (
            'name = "time_window"\nstop_loss_pct = -2.0',
            f"cfg.toml:{L + 1}: groups[0].strategy.stop_loss_pct: time_window needs a stop-loss: "
            "expected 0 < stop_loss_pct < 100, got -2.0",
        ),
    ],
)
def test_config_errors(table: str, message: str) -> None:
    rejects(table, message)
