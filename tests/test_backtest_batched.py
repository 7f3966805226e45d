"""The batched backtest loop gives exactly the stepwise loop's result, for every strategy.

``run_backtest`` hands candles to the actors in quiet runs (see :mod:`daemon.backtest.runner`);
``stepwise=True`` hands every bar to every actor on its own, the way the daemon's actors see
a live feed.  On the bundled real candles, with volume limits on and off, with stops,
take-profits, resting grid orders and the daily loss limit in play, both must give the same
equity curve (bit for bit), the same round trips, the same counters and the same final
equity.  A mutated "quiet" answer (a stop-monitor or paper engine that claims quiet bars it
would act on) is caught.
"""

from __future__ import annotations

import msgspec
import pytest

from actors.messages import Bar
from actors.stop_monitor import StopMonitor
from adapters.paper.engine import PaperEngine
from daemon.backtest.data import BacktestError, load_messages
from daemon.backtest.runner import BacktestResult, run_backtest
from daemon.config import PaperAccount, parse_config
from tests.helpers import CANDLES

STRATEGIES = {
    "ema_cross": 'name = "ema_cross"\nquantity = "100"',
    "ema_cross_tp": 'name = "ema_cross"\nquantity = "100"\nstop_loss_pct = 0.4\ntake_profit_pct = 0.3',
    "breakout": 'name = "breakout"',
    "hyper_rsi": 'name = "hyper_rsi"\nquantity = "100"\natr_mult = 1.5\ntrend_filter = "none"',
    "grid": (
        'name = "grid"\nlower = "0.0015"\nupper = "0.0019"\nlevels = 9\nquantity = "10"\n'
        'on_exit_range = "rebalance"'
    ),
    "floor": 'name = "floor"\ninitial_units = "50"\nretracement = 0.004\ntake_profit = 0.004',
    "time_window": (
        'name = "time_window"\nbuy_time = "09:00"\nsell_time = "15:30"\nquantity = "100"\nstop_loss_pct = 0.5'
    ),
    "signals": 'name = "signals"\nquantity = "100"',
}

CONFIG = """
[accounts.paper]
balances = {{ BTC = "10", UNITTEST = "0" }}
taker_fee = "0.001"
maker_fee = "0.0005"
slippage_bps = "2"
[[groups]]
exchange = "paper"
symbol = "UNITTEST/BTC"
account = "paper"
[groups.instrument]
base = "UNITTEST"
quote = "BTC"
tick_size = "0.00000001"
step_size = "0.01"
[groups.feed]
path = "{path}"
format = "candles"
[groups.strategy]
{strategy}
[groups.risk]
max_order_notional = "1"
max_position = "100000"
max_open_orders = 10
daily_loss_limit = "{daily_loss}"
"""


def backtest(
    strategy: str, bars: list[Bar], *, stepwise: bool, ignore_volume: bool, daily_loss: str = "0"
) -> BacktestResult:
    cfg = parse_config(CONFIG.format(path=CANDLES, strategy=STRATEGIES[strategy], daily_loss=daily_loss))
    acct = cfg.accounts["paper"]
    assert isinstance(acct, PaperAccount)
    return run_backtest(
        cfg.groups[0], acct, "paper", bars, interval_s=60, ignore_volume=ignore_volume, stepwise=stepwise
    )


def assert_same(a: BacktestResult, b: BacktestResult) -> None:
    assert list(a.ledger.equity) == list(b.ledger.equity)
    assert list(a.ledger.bar_open_ns) == list(b.ledger.bar_open_ns)
    assert a.ledger.trips == b.ledger.trips
    assert a.ledger.exposed_bars == b.ledger.exposed_bars
    assert a.counters == b.counters
    assert a.final_equity == b.final_equity


@pytest.fixture(scope="module")
def bars() -> list[Bar]:
    """The bundled 13,681 real 1-minute candles."""
    msgs = load_messages(CANDLES, "candles", "paper", "UNITTEST/BTC", 60)
    out = [m for m in msgs if isinstance(m, Bar)]
    assert len(out) == len(msgs) == 13_681
    return out


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
@pytest.mark.parametrize("ignore_volume", [False, True])
def test_batched_equals_stepwise(bars: list[Bar], strategy: str, ignore_volume: bool) -> None:
    batched = backtest(strategy, bars, stepwise=False, ignore_volume=ignore_volume)
    stepwise = backtest(strategy, bars, stepwise=True, ignore_volume=ignore_volume)
    assert_same(batched, stepwise)
    if strategy != "time_window":  # it trades once a day: a handful of trades in 9 days
        assert batched.counters["orders"]["filled"] > 5, "the comparison must cover trading"


def test_batched_equals_stepwise_with_daily_loss_limit(bars: list[Bar]) -> None:
    """Risk marks each bar at its own close: the latch trips on the same bar both ways."""
    batched = backtest("ema_cross", bars, stepwise=False, ignore_volume=True, daily_loss="0.0005")
    stepwise = backtest("ema_cross", bars, stepwise=True, ignore_volume=True, daily_loss="0.0005")
    assert_same(batched, stepwise)
    assert batched.counters["risk"].get("daily_loss_limit", 0) > 0, "the limit must have tripped"


def test_stops_are_exercised(bars: list[Bar]) -> None:
    """The comparison above covers stop-loss and take-profit exits (not only strategy exits)."""
    r = backtest("ema_cross_tp", bars, stepwise=False, ignore_volume=True)
    assert r.counters["stops"]["triggered"] > 10


def test_a_wrong_quiet_answer_from_stop_monitor_is_caught(
    bars: list[Bar], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(StopMonitor, "quiet_bars", lambda self, bars, start, stop: stop - start)
    with pytest.raises(BacktestError, match="acted on a bar it had called quiet"):
        backtest("ema_cross_tp", bars, stepwise=False, ignore_volume=True)


def test_a_wrong_quiet_answer_from_the_paper_engine_is_caught(
    bars: list[Bar], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(PaperEngine, "quiet_bars", lambda self, bars, start, stop: stop - start)
    with pytest.raises(BacktestError, match="acted on a bar it had called quiet"):
        backtest("ema_cross", bars, stepwise=False, ignore_volume=True)


def test_invalid_bars_are_dropped_the_same_way(bars: list[Bar]) -> None:
    """Bars market-feed refuses (out of order, inconsistent) never reach the others either way."""
    hostile = list(bars[:3000])
    hostile[100] = msgspec.structs.replace(hostile[100], low=hostile[100].high * 2)  # low > high
    hostile[200] = hostile[150]  # out of order
    a = backtest("ema_cross", hostile, stepwise=False, ignore_volume=False)
    b = backtest("ema_cross", hostile, stepwise=True, ignore_volume=False)
    assert_same(a, b)
    assert a.counters["market_rejected"] == {"inconsistent_bar": 1, "out_of_order": 1}
    assert len(a.ledger.equity) == len(hostile) - 2
