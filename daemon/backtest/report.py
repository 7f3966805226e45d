"""Backtest output for people (a terminal table) and for machines (a JSON document).

The JSON document holds no wall-clock value (no run time, no date of the run), so two
runs of the same backtest produce the same bytes.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from daemon.backtest.data import iso
from daemon.backtest.ledger import RoundTrip
from daemon.backtest.metrics import Metrics, frequency
from daemon.backtest.runner import BacktestResult

FILL_MODEL = "market orders sent on a bar's close fill at the next bar's open"


def trade_doc(t: RoundTrip) -> dict[str, Any]:
    return {
        "direction": t.direction,
        "entry_bar": t.entry_bar,
        "entry_time": iso(t.entry_ns),
        "entry_price": str(t.entry_price),
        "exit_bar": t.exit_bar if t.closed else None,
        "exit_time": iso(t.exit_ns) if t.closed else None,
        "exit_price": str(t.exit_price) if t.closed else None,
        "quantity": str(t.quantity),
        "fees": str(t.fees),
        "pnl": str(t.pnl) if t.closed else None,
        "return_pct": round(t.return_pct, 6) if t.closed else None,
    }


def document(result: BacktestResult, metrics: Metrics, data_path: str, data_format: str) -> dict[str, Any]:
    g, a = result.group, result.account
    return {
        "group": f"{g.exchange}:{g.symbol}",
        "strategy": msgspec.to_builtins(g.strategy),
        "risk": msgspec.to_builtins(g.risk),
        "account": {
            "quote": g.instrument.quote,
            "taker_fee": str(a.taker_fee),
            "maker_fee": str(a.maker_fee),
            "slippage_bps": str(a.slippage_bps),
            "participation": str(a.participation),
        },
        "fill_model": FILL_MODEL,
        "data": {
            "path": data_path,
            "format": data_format,
            "from": iso(result.first_ns),
            "to": iso(result.last_ns),
            "messages": result.messages,
            "interval": frequency(result.interval_s),
        },
        "metrics": msgspec.to_builtins(metrics),
        "counters": result.counters,
        "trades": [trade_doc(t) for t in result.ledger.trips],
    }


def _money(x: float, quote: str) -> str:
    return f"{x:,.8f} {quote}"


def table(result: BacktestResult, m: Metrics) -> str:
    g, a = result.group, result.account
    q = g.instrument.quote
    pf = "n/a (no losing trade)" if m.profit_factor is None else f"{m.profit_factor:.2f}"
    slip = Decimal(a.slippage_bps)
    rows = [
        ("total return", f"{m.total_return_pct:+.4g} %"),
        ("net PnL", f"{_money(m.net_pnl, q)}  (fees {_money(m.fees, q)})"),
        ("trades", f"{m.trades} round trips" + (f", {m.open_trades} still open" if m.open_trades else "")),
        ("win rate", f"{m.win_rate_pct:.1f} %"),
        ("avg win / avg loss", f"{_money(m.avg_win, q)} / {_money(m.avg_loss, q)}"),
        ("max drawdown", f"{m.max_drawdown_pct:.4g} %"),
        ("Sharpe", f"{m.sharpe:.2f}  ({m.sharpe_frequency}, 365-day year)"),
        ("profit factor", pf),
        ("exposure time", f"{m.exposure_pct:.1f} % of bars"),
        ("equity", f"{_money(m.initial_equity, q)} -> {_money(m.final_equity, q)}"),
    ]
    width = max(len(k) for k, _ in rows)
    head = [
        f"backtest {g.exchange}:{g.symbol}  strategy {g.strategy.name}  "
        f"{iso(result.first_ns)} .. {iso(result.last_ns)}  {m.bars:,} bars ({frequency(result.interval_s)})",
        f"fills: {FILL_MODEL}; taker fee {a.taker_fee}, slippage {slip} bps",
    ]
    rule = "-" * max(len(h) for h in head)
    body = [f"{k:<{width}}  {v}" for k, v in rows]
    return "\n".join([*head, rule, *body])
