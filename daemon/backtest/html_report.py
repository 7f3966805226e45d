"""The HTML report: one self-contained file (inline CSS and SVG, no scripts, no network assets).

It shows the metrics table, the equity curve and the drawdown as inline SVG (a line and a filled area)
(at most :data:`MAX_POINTS` points each: the curve is bucketed, the drawdown keeps each
bucket's worst), and the list of round trips.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from daemon.backtest.data import iso

MAX_POINTS = 1200
MAX_TRADES = 5000
W, H, PAD, LEFT = 960, 260, 48, 104  # LEFT: room for the value labels

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1000px}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse}td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
.pos{color:#137333}.neg{color:#b3261e}svg{background:#fafafa;border:1px solid #ddd}
.note{color:#666;font-size:12px}
"""


def _bucket(values: Sequence[float], worst: bool) -> list[tuple[int, float]]:
    n = len(values)
    if n <= MAX_POINTS:
        return list(enumerate(values))
    step = n / MAX_POINTS
    out = []
    for k in range(MAX_POINTS):
        lo, hi = int(k * step), max(int((k + 1) * step), int(k * step) + 1)
        chunk = values[lo:hi]
        out.append((hi - 1, max(chunk) if worst else chunk[-1]))
    return out


def svg_line(
    values: Sequence[float], times: Sequence[int], title: str, unit: str, invert: bool = False
) -> str:
    """An SVG chart of ``values`` against bar index, labelled with the first and last times."""
    if not values:
        return "<p class='note'>no data</p>"
    pts = _bucket(values, worst=invert)
    lo, hi = min(v for _, v in pts), max(v for _, v in pts)
    if hi == lo:
        hi = lo + (abs(lo) or 1.0) * 1e-9 + 1e-12
    n = max(len(values) - 1, 1)

    def xy(i: int, v: float) -> str:
        x = LEFT + (W - LEFT - PAD / 2) * i / n
        frac = (v - lo) / (hi - lo)
        y = PAD / 2 + (H - PAD) * (frac if invert else 1 - frac)
        return f"{x:.1f},{y:.1f}"

    poly = " ".join(xy(i, v) for i, v in pts)
    color = "#b3261e" if invert else "#1a73e8"
    # drawdown: a filled area hanging from the 0 % line; equity: a line
    shape = (
        f"<polygon fill='#f3c4c0' stroke='{color}' stroke-width='1' "
        f"points='{xy(0, 0.0)} {poly} {xy(n, 0.0)}'/>"
        if invert
        else f"<polyline fill='none' stroke='{color}' stroke-width='1.2' points='{poly}'/>"
    )
    top, bottom = (lo, hi) if invert else (hi, lo)
    labels = (
        f"<text x='4' y='{PAD / 2 + 4:.0f}' font-size='11'>{html.escape(f'{top:.6g} {unit}')}</text>"
        f"<text x='4' y='{H - PAD / 2:.0f}' font-size='11'>{html.escape(f'{bottom:.6g} {unit}')}</text>"
        f"<text x='{LEFT}' y='{H - 6}' font-size='11'>{iso(times[0])}</text>"
        f"<text x='{W - PAD / 2:.0f}' y='{H - 6}' font-size='11' text-anchor='end'>{iso(times[-1])}</text>"
    )
    return (
        f"<svg width='{W}' height='{H}' viewBox='0 0 {W} {H}' "
        f"role='img' aria-label='{html.escape(title)}'>"
        f"{shape}{labels}</svg>"
    )


def _cls(value: str | None) -> str:
    if value is None:
        return ""
    return "pos" if not value.startswith("-") and value not in ("0", "0E-8") else "neg"


def render(
    doc: dict[str, Any],
    table_text: str,
    equity: Sequence[float],
    drawdown: Sequence[float],
    times: Sequence[int],
) -> str:
    """The whole report as one HTML string."""
    esc = html.escape
    quote = doc["account"]["quote"]
    trades: list[dict[str, Any]] = doc["trades"]
    rows = []
    for i, t in enumerate(trades[:MAX_TRADES], 1):
        rows.append(
            "<tr>"
            f"<td>{i}</td><td>{t['direction']}</td><td>{t['entry_time']}</td><td>{t['entry_price']}</td>"
            f"<td>{t['exit_time'] or 'open'}</td><td>{t['exit_price'] or ''}</td><td>{t['quantity']}</td>"
            f"<td>{t['fees']}</td><td class='{_cls(t['pnl'])}'>{t['pnl'] or ''}</td>"
            f"<td>{'' if t['return_pct'] is None else format(t['return_pct'], '.3f')}</td></tr>"
        )
    more = (
        f"<p class='note'>first {MAX_TRADES} of {len(trades)} round trips shown; all are in --json</p>"
        if len(trades) > MAX_TRADES
        else ""
    )
    title = f"Backtest {doc['group']} — {doc['strategy'].get('name', '')}"
    strategy = ", ".join(f"{k}={v}" for k, v in doc["strategy"].items())
    svg_equity = svg_line(list(equity), times, "equity curve", quote)
    svg_dd = svg_line(list(drawdown), times, "drawdown", "%", invert=True)
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{esc(title)}</h1><p class='note'>{esc(strategy)}</p>"
        f"<pre>{esc(table_text)}</pre>"
        f"<h2>Equity ({esc(quote)})</h2>{svg_equity}"
        f"<h2>Drawdown (% below the running peak)</h2>{svg_dd}"
        f"<h2>Round trips ({len(trades)})</h2>"
        "<table><tr><th>#</th><th>side</th><th>entry</th><th>entry price</th><th>exit</th>"
        f"<th>exit price</th><th>qty</th><th>fees</th><th>PnL ({esc(quote)})</th><th>return %</th></tr>"
        f"{''.join(rows)}</table>{more}</body></html>\n"
    )
