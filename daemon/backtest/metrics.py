"""Performance figures of one backtest, from its equity curve and round trips.

Definitions (equity in the quote asset, marked at every bar's close):

- ``total_return_pct``: final equity / initial equity - 1, in %.
- ``net_pnl``: final equity - initial equity (fees included; an open position is marked
  at the last close).
- ``trades``: closed round trips (flat -> position -> flat); ``open_trades``: still open at the end.
- ``win_rate_pct``: round trips with PnL > 0 (net of fees) / closed round trips.
- ``avg_win`` / ``avg_loss``: mean PnL of winning / losing (PnL <= 0) round trips.
- ``max_drawdown_pct``: largest fall of equity from its running peak, in % of that peak.
- ``sharpe``: mean / standard deviation (n-1) of per-bar simple equity returns, times
  sqrt(bars per year) with a 365-day year (crypto trades every day): annualised from
  the bar interval, which is stated as ``sharpe_frequency``; 0 without variance.
- ``profit_factor``: gross profit / gross loss of the round trips (null when nothing was lost).
- ``exposure_pct``: bars closed with a position open / all bars, in %.
"""

from __future__ import annotations

import itertools
import math
from array import array
from decimal import Decimal

import msgspec

from daemon.backtest.ledger import RoundTrip

SECONDS_PER_YEAR = 365 * 86_400


class Metrics(msgspec.Struct, frozen=True, kw_only=True):
    initial_equity: float
    final_equity: float
    total_return_pct: float
    net_pnl: float
    fees: float
    trades: int
    open_trades: int
    win_rate_pct: float
    avg_win: float
    avg_loss: float
    max_drawdown_pct: float
    sharpe: float
    sharpe_frequency: str
    profit_factor: float | None
    exposure_pct: float
    bars: int


def frequency(interval_s: int) -> str:
    for unit, n in (("d", 86_400), ("h", 3600), ("m", 60)):
        if interval_s % n == 0:
            return f"{interval_s // n}{unit}"
    return f"{interval_s}s"


def max_drawdown_pct(equity: array[float]) -> float:
    peak = -math.inf
    worst = 0.0
    for e in equity:
        if e > peak:
            peak = e
        elif peak > 0:
            dd = (peak - e) / peak
            if dd > worst:
                worst = dd
    return worst * 100


def drawdown_series(equity: array[float]) -> list[float]:
    """Drawdown in % at each point (0 at a new peak)."""
    out = []
    peak = -math.inf
    for e in equity:
        peak = max(peak, e)
        out.append((peak - e) / peak * 100 if peak > 0 else 0.0)
    return out


def sharpe(equity: array[float], interval_s: int) -> float:
    n = len(equity)
    if n < 3:
        return 0.0
    rets = [b / a - 1.0 for a, b in itertools.pairwise(equity) if a]
    m = len(rets)
    if m < 2:
        return 0.0
    mean = math.fsum(rets) / m
    var = math.fsum((r - mean) ** 2 for r in rets) / (m - 1)
    if var <= 0:
        return 0.0
    return mean / math.sqrt(var) * math.sqrt(SECONDS_PER_YEAR / interval_s)


def compute(
    equity: array[float],
    trips: list[RoundTrip],
    initial: Decimal,
    final: Decimal,
    fees: Decimal,
    exposed_bars: int,
    interval_s: int,
) -> Metrics:
    closed = [t for t in trips if t.closed]
    pnls = [t.pnl for t in closed]
    wins = [p for p in pnls if p > 0]
    losses = [p for p in pnls if p <= 0]
    gross_win = sum(wins, Decimal(0))
    gross_loss = -sum(losses, Decimal(0))
    bars = len(equity)
    bars_per_year = SECONDS_PER_YEAR // interval_s
    return Metrics(
        initial_equity=float(initial),
        final_equity=float(final),
        total_return_pct=float((final / initial - 1) * 100) if initial else 0.0,
        net_pnl=float(final - initial),
        fees=float(fees),
        trades=len(closed),
        open_trades=len(trips) - len(closed),
        win_rate_pct=100.0 * len(wins) / len(closed) if closed else 0.0,
        avg_win=float(gross_win / len(wins)) if wins else 0.0,
        avg_loss=float(-gross_loss / len(losses)) if losses else 0.0,
        max_drawdown_pct=max_drawdown_pct(equity),
        sharpe=sharpe(equity, interval_s),
        sharpe_frequency=f"per-bar ({frequency(interval_s)}) returns x sqrt({bars_per_year})",
        profit_factor=float(gross_win / gross_loss) if gross_loss > 0 else None,
        exposure_pct=100.0 * exposed_bars / bars if bars else 0.0,
        bars=bars,
    )
