"""Backtest throughput: bars per second through the full actor graph, vs a plain loop.

Data: the bundled UNITTEST/BTC 1-minute candles tiled end to end up to ``N`` bars
(default :data:`DEFAULT_BARS`; the full 1M with ``BENCH_BACKTEST_BARS=1000000`` or
``python -m bench.backtest_bench --bars 1000000``).  Tiles alternate the series and its
time-reversed copy (bars in reverse order, open and close swapped), so each tile starts
at the price where the previous one ended; timestamps are one interval apart throughout.

Settings are the backtesting.py cross-check's (``tests/test_backtest_crosscheck.py``):
fills in full at the next bar's open (``ignore_volume``), 0.1 % fee, no slippage.  Before
timing, the bench runs ema_cross on the bundled 13,681 candles alone and checks it makes
backtesting.py's trades there: 639 entries, 638 round trips.

For each strategy (ema_cross 5/13, breakout with its defaults), in the same run:

- ``actors``: ``tradingd backtest``'s runner, batched lockstep (quiet runs of bars go to
  each actor as one batch; see :mod:`daemon.backtest.runner`): the daemon's symbol group
  (market-feed, strategy, risk, order, stop-monitor, paper exchange, portfolio) on a
  simulated clock, equity recorded per bar;
- ``stepwise``: the same runner handing every bar to every actor on its own (the
  reference the batched mode is tested equal to);
- ``plain``: a plain-Python loop over the same Bar messages computing the same signals
  (EMA crossings; breakout's range, EMA, RSI and volume rules) and nothing else.

Reported: bars/s of each, the ratios, and the signal counts (they agree when the plain
loop really computes the same thing), and the orders each run made.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections import deque
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from actors.messages import Bar
from adapters.replay.feed import load_candle_rows
from bench import write_result
from daemon.backtest.runner import run_backtest
from daemon.config import PaperAccount, parse_config

ROOT = Path(__file__).resolve().parent.parent
CANDLES = ROOT / "adapters/replay/data/candles/UNITTEST_BTC-1m.json"
DEFAULT_BARS = 200_000
FULL_BARS = 1_000_000
INTERVAL_S = 60
NS = 1_000_000_000

CONFIG = """
[accounts.paper]
balances = {{ BTC = "1000000", UNITTEST = "0" }}
taker_fee = "0.001"
maker_fee = "0.001"
slippage_bps = "0"
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
max_order_notional = "0.5"
max_position = "100000000"
"""
STRATEGIES = {
    "ema_cross": 'name = "ema_cross"\nema_fast = 5\nema_slow = 13\nquantity = "100"',
    "breakout": 'name = "breakout"',
}


def tiled_bars(n: int) -> list[Bar]:
    """``n`` bars: the bundled candles, then reversed, then forward... one interval apart."""
    rows = load_candle_rows(CANDLES)
    forward = [(o, h, lo, c, v) for _, o, h, lo, c, v in rows]
    backward = [(c, h, lo, o, v) for o, h, lo, c, v in reversed(forward)]
    t0 = rows[0][0] * 1_000_000
    iv = INTERVAL_S * NS
    out: list[Bar] = []
    tile = 0
    while len(out) < n:
        for o, h, lo, c, v in forward if tile % 2 == 0 else backward:
            if len(out) == n:
                break
            ts_open = t0 + len(out) * iv
            out.append(
                Bar(
                    exchange="paper",
                    symbol="UNITTEST/BTC",
                    ts_event=ts_open + iv,
                    ts_recv=ts_open + iv,
                    ts_open=ts_open,
                    interval_s=INTERVAL_S,
                    open=o,
                    high=h,
                    low=lo,
                    close=c,
                    volume=v,
                )
            )
        tile += 1
    return out


# --- plain-Python references ------------------------------------------------------------------


class _Ema:
    """TA-Lib's EMA: SMA seed over the first ``n`` values, then ``ema += (x - ema) * k``."""

    __slots__ = ("k", "n", "seen", "total", "value")

    def __init__(self, n: int) -> None:
        self.n, self.k, self.seen, self.total = n, 2.0 / (n + 1), 0, 0.0
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        self.seen += 1
        if self.seen < self.n:
            self.total += x
        elif self.seen == self.n:
            self.value = (self.total + x) / self.n
        else:
            v = self.value
            assert v is not None
            self.value = v + (x - v) * self.k
        return self.value


def plain_ema_cross(bars: Sequence[Bar], fast_n: int = 5, slow_n: int = 13) -> int:
    """Crossings (up and down, strict) of EMA(fast) and EMA(slow) of the closes."""
    fast, slow = _Ema(fast_n), _Ema(slow_n)
    pf = ps = None
    signals = 0
    for bar in bars:
        c = float(bar.close)
        f, s = fast.update(c), slow.update(c)
        ready = pf is not None and ps is not None and f is not None and s is not None
        if ready and ((pf < ps and f > s) or (ps < pf and s > f)):  # type: ignore[operator]
            signals += 1
        pf, ps = f, s
    return signals


def plain_breakout(bars: Sequence[Bar]) -> int:
    """Bars meeting breakout's BUY or SELL conditions (default parameters)."""
    lookback, vol_n, rsi_n, buy_max, sell_min, ratio_min = 20, 5, 14, 75.0, 25.0, 1.2
    warmup = max(lookback + 1, 13, rsi_n + 1, vol_n)
    highs: deque[float] = deque(maxlen=lookback + 1)
    lows: deque[float] = deque(maxlen=lookback + 1)
    vols: deque[float] = deque(maxlen=vol_n)
    fast, slow = _Ema(5), _Ema(13)
    gain = loss = 0.0
    prev: float | None = None
    n = signals = 0
    for bar in bars:
        c = float(bar.close)
        highs.append(float(bar.high))
        lows.append(float(bar.low))
        vols.append(float(bar.volume))
        f, s = fast.update(c), slow.update(c)
        if prev is not None:
            d = c - prev
            up, down = (d, 0.0) if d > 0 else (0.0, -d)
            if n <= rsi_n:
                gain += up / rsi_n
                loss += down / rsi_n
            else:
                gain = (gain * (rsi_n - 1) + up) / rsi_n
                loss = (loss * (rsi_n - 1) + down) / rsi_n
        prev = c
        n += 1
        if n < warmup or f is None or s is None:
            continue
        hi = max(list(highs)[:-1])
        lo = min(list(lows)[:-1])
        side = "buy" if c > hi else "sell" if c < lo else ""
        if not side:
            continue
        sma = sum(vols) / vol_n
        if not (sma > 0 and vols[-1] / sma > ratio_min):
            continue
        rsi = 100.0 * gain / (gain + loss) if gain + loss > 0 else 0.0
        if (side == "buy" and f > s and rsi < buy_max) or (side == "sell" and f < s and rsi > sell_min):
            signals += 1
    return signals


PLAIN = {"ema_cross": plain_ema_cross, "breakout": plain_breakout}


def _run(name: str, bars: list[Bar], *, stepwise: bool) -> dict[str, Any]:
    cfg = parse_config(CONFIG.format(path=CANDLES, strategy=STRATEGIES[name]))
    g = cfg.groups[0]
    acct = cfg.accounts["paper"]
    assert isinstance(acct, PaperAccount)
    t = time.perf_counter()
    result = run_backtest(
        g, acct, "paper", bars, interval_s=INTERVAL_S, ignore_volume=True, stepwise=stepwise
    )
    dt = time.perf_counter() - t
    led = result.ledger
    return {
        "bars_per_s": len(bars) / dt,
        "seconds": dt,
        "signals": result.counters["strategy"]["signals"],
        "orders": result.counters["orders"]["submitted"],
        "entries": len(led.trips),
        "round_trips": sum(1 for trip in led.trips if trip.closed),
        "final_equity": str(result.final_equity.quantize(Decimal("1e-8"))),
    }


def check_trades() -> dict[str, Any]:
    """ema_cross on the bundled candles alone: backtesting.py's 639 entries / 638 round trips."""
    bundled = tiled_bars(len(load_candle_rows(CANDLES)))
    got = _run("ema_cross", bundled, stepwise=False)
    ok = (got["entries"], got["round_trips"]) == (639, 638)
    print(
        f"  trades check on the bundled {len(bundled):,} candles: {got['entries']} entries, "
        f"{got['round_trips']} round trips "
        f"({'as backtesting.py' if ok else 'NOT as backtesting.py: 639 / 638'})"
    )
    return {"entries": got["entries"], "round_trips": got["round_trips"], "same_as_backtesting_py": ok}


def _plain(name: str, bars: list[Bar]) -> dict[str, Any]:
    t = time.perf_counter()
    signals = PLAIN[name](bars)
    dt = time.perf_counter() - t
    return {"bars_per_s": len(bars) / dt, "seconds": dt, "signals": signals}


def main(n_bars: int | None = None) -> dict[str, Any]:
    logging.getLogger("tradingd").setLevel(logging.ERROR)
    n = n_bars or int(os.environ.get("BENCH_BACKTEST_BARS", DEFAULT_BARS))
    t = time.perf_counter()
    bars = tiled_bars(n)
    print(f"  {n:,} bars (bundled candles tiled forward/reversed), built in {time.perf_counter() - t:.1f} s")
    if n < FULL_BARS:
        print(f"  (full run: BENCH_BACKTEST_BARS={FULL_BARS} python -m bench backtest_bench)")
    results: dict[str, Any] = {"bars": n, "trades_check": check_trades()}
    for name in STRATEGIES:
        actors = _run(name, bars, stepwise=False)
        stepwise = _run(name, bars, stepwise=True)
        plain = _plain(name, bars)
        results[name] = {
            "actors": actors,
            "stepwise": stepwise,
            "plain": plain,
            "plain_over_actors": plain["bars_per_s"] / actors["bars_per_s"],
            "actors_over_stepwise": actors["bars_per_s"] / stepwise["bars_per_s"],
        }
        same = "same" if actors["signals"] == plain["signals"] == stepwise["signals"] else "DIFFERENT"
        print(
            f"  {name:<9} actors: {actors['bars_per_s']:>9,.0f} bars/s ({actors['seconds']:.1f} s, "
            f"{actors['orders']:,} orders) | stepwise: {stepwise['bars_per_s']:>9,.0f} bars/s "
            f"({actors['bars_per_s'] / stepwise['bars_per_s']:.2f}x) | plain loop: "
            f"{plain['bars_per_s']:>10,.0f} bars/s "
            f"| signals {actors['signals']:,} vs {plain['signals']:,} ({same})"
        )
    target = results["ema_cross"]["actors"]["bars_per_s"]
    verdict = "met" if target >= 2e5 else "NOT met"
    print(f"  target >= 200,000 bars/s for ema_cross through the actors: {verdict}")
    write_result("backtest_bench", results)
    return results


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument(
        "--bars", type=int, help=f"bars to backtest (default {DEFAULT_BARS:,}, full: {FULL_BARS:,})"
    )
    a = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    main(a.bars)
