"""``tradingd optimize``: many backtests of one group over a parameter grid, in worker processes.

Each parameter set replaces keys of the group's ``[groups.strategy]`` table (see
:mod:`.grid`), is checked like a config file (an invalid set, e.g. ``ema_fast >=
ema_slow``, is skipped and counted, never run) and is backtested by the same lockstep
runner as ``tradingd backtest``.  Worker processes (``--workers``, default the CPU count;
1 runs in-process) each load the data once.  Results are ranked by ``--metric`` (highest
first; lowest first for ``max_drawdown_pct``), ties kept in grid order, so the ranking is
deterministic whatever the scheduling.

``--walk-forward F`` splits the data at fraction F of its messages: every set is run on
the in-sample part (ranked) and, from a flat book and fresh indicators, on the
out-of-sample rest; both sets of metrics are reported side by side.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import msgspec

from daemon.backtest.data import BacktestError, DataFormat, MarketMessage
from daemon.backtest.grid import Value, parse_grid, sample, size
from daemon.backtest.grid import combinations as all_combinations
from daemon.backtest.metrics import Metrics, compute
from daemon.backtest.progress import progress_bar
from daemon.backtest.runner import run_backtest
from daemon.backtest.setup import Prepared, prepare
from daemon.config import GroupConfig
from daemon.config_checks import validate

MAX_RUNS = 100_000
LOWER_IS_BETTER = frozenset({"max_drawdown_pct"})
METRIC_ALIASES = {
    "return": "total_return_pct",
    "pnl": "net_pnl",
    "drawdown": "max_drawdown_pct",
    "win_rate": "win_rate_pct",
    "exposure": "exposure_pct",
}
METRICS = tuple(
    f
    for f, t in zip(Metrics.__struct_fields__, msgspec.structs.fields(Metrics), strict=True)
    if t.type in (float, int, float | None)
)


def metric_name(text: str) -> str:
    name = METRIC_ALIASES.get(text, text)
    if name not in METRICS:
        choices = ", ".join((*METRICS, *METRIC_ALIASES))
        raise BacktestError(f"--metric {text}: unknown; expected one of {choices}", 2)
    return name


@dataclass(slots=True)
class Job:
    config: str
    data: str
    symbol: str | None
    data_format: DataFormat | None
    t_from: str | None
    t_to: str | None
    ignore_volume: bool
    walk_forward: float | None


# --- the worker side ------------------------------------------------------------------------

_PREPARED: Prepared | None = None
_JOB: Job | None = None


def _init_worker(job: Job) -> None:
    global _PREPARED, _JOB
    _JOB = job
    if _PREPARED is None:  # spawned (not forked from a parent that already loaded the data)
        _PREPARED = prepare(
            job.config,
            job.data,
            symbol=job.symbol,
            data_format=job.data_format,
            t_from=job.t_from,
            t_to=job.t_to,
        )


def split(msgs: Sequence[MarketMessage], fraction: float | None) -> tuple[Sequence[MarketMessage], ...]:
    if fraction is None:
        return (msgs,)
    cut = int(len(msgs) * fraction)
    return msgs[:cut], msgs[cut:]


def with_params(g: GroupConfig, params: dict[str, Value], prep: Prepared) -> GroupConfig:
    """The group with ``params`` in its strategy table; ValueError saying why a set is invalid."""
    raw = msgspec.to_builtins(g.strategy)
    raw.update(params)
    try:
        strategy = msgspec.convert(raw, type(g.strategy), strict=False)
    except msgspec.ValidationError as exc:
        raise ValueError(str(exc)) from None
    new = msgspec.structs.replace(g, strategy=strategy)
    problems = list(validate(msgspec.structs.replace(prep.config, groups=[new])))
    if problems:
        path, what = problems[0]
        raise ValueError(f"{path.replace('groups[0].', '')}: {what}")
    return new


def _metrics(
    prep: Prepared, g: GroupConfig, msgs: Sequence[MarketMessage], ignore_volume: bool
) -> dict[str, Any]:
    r = run_backtest(
        g, prep.account, prep.account_name, msgs, interval_s=prep.interval_s, ignore_volume=ignore_volume
    )
    led = r.ledger
    m = compute(
        led.equity, led.trips, r.initial_equity, r.final_equity, led.fees, led.exposed_bars, r.interval_s
    )
    out: dict[str, Any] = msgspec.to_builtins(m)
    return out


def run_one(index: int, params: dict[str, Value]) -> dict[str, Any]:
    """One parameter set: its in-sample (and out-of-sample) metrics, or why it was skipped."""
    prep, job = _PREPARED, _JOB
    assert prep is not None and job is not None
    row: dict[str, Any] = {"index": index, "params": params, "error": None, "is": None, "oos": None}
    try:
        g = with_params(prep.group, params, prep)
        parts = split(prep.messages, job.walk_forward)
        row["is"] = _metrics(prep, g, parts[0], job.ignore_volume)
        if len(parts) > 1:
            row["oos"] = _metrics(prep, g, parts[1], job.ignore_volume)
    except (ValueError, BacktestError) as exc:
        row["error"] = str(exc)
    return row


# --- the parent side ------------------------------------------------------------------------


def rank_key(metric: str) -> Any:
    sign = 1.0 if metric in LOWER_IS_BETTER else -1.0

    def key(row: dict[str, Any]) -> tuple[float, int]:
        m = row["is"]
        v = m[metric]
        if v is None:  # profit factor without a losing trade: best if anything was won
            v = math.inf if m["avg_win"] > 0 else -math.inf
        return (sign * v, row["index"])

    return key


def run_all(job: Job, prep: Prepared, sets: list[dict[str, Value]], workers: int) -> list[dict[str, Any]]:
    global _PREPARED
    _PREPARED = prep  # forked workers inherit it: no reload
    progress = progress_bar(label="optimize")
    rows: list[dict[str, Any]] = []
    if workers <= 1:
        _init_worker(job)
        for i, params in enumerate(sets):
            rows.append(run_one(i, params))
            if progress is not None:
                progress(i + 1, len(sets))
        return rows
    chunk = max(1, len(sets) // (workers * 8))
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(job,)) as pool:
        for row in pool.map(run_one, range(len(sets)), sets, chunksize=chunk):
            rows.append(row)
            if progress is not None:
                progress(len(rows), len(sets))
    return rows


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.1f}" if abs(v) >= 1000 else f"{v:.4g}"
    return str(v)


STANDARD = (
    ("total_return_pct", "return %"),
    ("trades", "trades"),
    ("win_rate_pct", "win %"),
    ("max_drawdown_pct", "max DD %"),
    ("sharpe", "sharpe"),
)


def table(rows: list[dict[str, Any]], keys: list[str], metric: str, top: int, walk: bool) -> str:
    name = dict(STANDARD).get(metric, metric)
    shown = [(metric, name), *((f, label) for f, label in STANDARD if f != metric)]
    oos = [(metric, f"OOS {name}"), *((f, f"OOS {label}") for f, label in STANDARD[:2] if f != metric)]
    cols = ["#", *keys, *(label for _, label in shown)]
    if walk:
        cols += [label for _, label in oos]
    lines = []
    for rank, row in enumerate(rows[:top], 1):
        m, o = row["is"], row["oos"]
        cells = [str(rank), *(_fmt(row["params"][k]) for k in keys), *(_fmt(m[f]) for f, _ in shown)]
        if walk:
            cells += [_fmt(o[f]) for f, _ in oos]
        lines.append(cells)
    widths = [max(len(c), *(len(r[i]) for r in lines)) if lines else len(c) for i, c in enumerate(cols)]
    out = ["  ".join(c.rjust(w) for c, w in zip(cols, widths, strict=True))]
    out += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in lines]
    return "\n".join(out)


def write_csv(path: str, rows: list[dict[str, Any]], keys: list[str], walk: bool) -> None:
    fields = list(METRICS)
    header = [*keys, *(f"is_{f}" if walk else f for f in fields)]
    if walk:
        header += [f"oos_{f}" for f in fields]
    header.append("error")
    try:
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(header)
            for row in rows:
                m, o = row["is"] or {}, row["oos"] or {}
                line = [row["params"][k] for k in keys] + [m.get(x, "") for x in fields]
                if walk:
                    line += [o.get(x, "") for x in fields]
                w.writerow([*line, row["error"] or ""])
    except OSError as exc:
        raise BacktestError(f"--csv {path}: {exc.strerror or exc}") from None


def optimize_cli(args: argparse.Namespace) -> int:
    metric = metric_name(args.metric)
    wf = args.walk_forward
    if wf is not None and not 0 < wf < 1:
        raise BacktestError(f"--walk-forward {wf}: expected a fraction between 0 and 1, e.g. 0.7", 2)
    if args.random is not None and args.random < 1:
        raise BacktestError(f"--random {args.random}: expected a positive number of parameter sets", 2)
    workers = args.workers if args.workers is not None else (os.cpu_count() or 1)
    if workers < 1:
        raise BacktestError(f"--workers {workers}: expected at least 1", 2)
    prep = prepare(
        args.config,
        args.data,
        symbol=args.symbol,
        data_format=args.format,
        t_from=args.t_from,
        t_to=args.t_to,
    )
    strategy = prep.group.strategy
    fields = [f for f in msgspec.structs.asdict(strategy) if f != "name"]
    grid = parse_grid(args.grid, fields, strategy.name)
    total = size(grid)
    if args.random is None and total > MAX_RUNS:
        raise BacktestError(
            f"--grid: {total:,} parameter sets (max {MAX_RUNS:,}); narrow it or use --random N", 2
        )
    sets = sample(grid, args.random, args.seed) if args.random is not None else list(all_combinations(grid))
    if wf is not None:
        cut = int(len(prep.messages) * wf)
        if cut < 2 or len(prep.messages) - cut < 2:
            raise BacktestError(
                f"--walk-forward {wf}: too little data on one side ({len(prep.messages)} messages)"
            )
    job = Job(
        args.config, args.data, args.symbol, args.format, args.t_from, args.t_to, args.ignore_volume, wf
    )
    rows = run_all(job, prep, sets, min(workers, len(sets)))
    ok = sorted((r for r in rows if r["error"] is None), key=rank_key(metric))
    skipped = [r for r in rows if r["error"] is not None]
    keys = list(grid)
    g = prep.group
    split_note = f", walk-forward: first {wf:.0%} in-sample, rest out-of-sample" if wf is not None else ""
    print(
        f"optimize {g.exchange}:{g.symbol} strategy {strategy.name}: {len(sets)} parameter sets "
        f"({len(ok)} run, {len(skipped)} invalid) on {len(prep.messages):,} messages{split_note}; "
        f"ranked by {metric}"
    )
    if skipped:
        print(f"skipped {len(skipped)} invalid sets, e.g. {skipped[0]['params']}: {skipped[0]['error']}")
    if ok:
        print(table(ok, keys, metric, args.top, wf is not None))
    if args.csv:
        write_csv(args.csv, ok + skipped, keys, wf is not None)
        print(f"csv: {args.csv}")
    if not ok:
        print("error: no valid parameter set in the grid", file=sys.stderr)
        return 1
    return 0
