"""The ``tradingd backtest`` and ``tradingd optimize`` sub-commands.

Exit codes: 0 done, 1 input that cannot be used (missing or malformed data or config,
an empty time range), 2 a bad argument (``--from``/``--to`` syntax or order, ``--grid``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from daemon.backtest.data import BacktestError


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", required=True, help="TOML config: the group's strategy, risk, instrument, account"
    )
    p.add_argument("--data", required=True, help="replay data file: candles or trades (.json or .json.gz)")
    p.add_argument(
        "--from", dest="t_from", metavar="ISO", help="start, inclusive (UTC unless an offset is given)"
    )
    p.add_argument("--to", dest="t_to", metavar="ISO", help="end, exclusive")
    p.add_argument(
        "--symbol", help="which group of the config (default: the one replaying --data, else the first)"
    )
    p.add_argument("--format", choices=("candles", "trades"), help="data format (default: recognised)")
    p.add_argument(
        "--ignore-volume",
        action="store_true",
        help="fill market orders in full whatever the bar's volume (as volume-blind backtesters do)",
    )


def add_parsers(sub: Any) -> None:
    """Register ``backtest`` and ``optimize`` on the top-level sub-parsers."""
    bt = sub.add_parser("backtest", help="backtest a group's strategy on recorded data through the actors")
    _common(bt)
    bt.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    bt.add_argument("--html", metavar="OUT.html", help="also write a self-contained HTML report")
    bt.add_argument(
        "--stepwise",
        action="store_true",
        help="hand every bar to every actor on its own (slower; the same result as the default quiet runs)",
    )
    opt = sub.add_parser("optimize", help="backtest a grid of strategy parameters in parallel")
    _common(opt)
    opt.add_argument(
        "--grid", required=True, help="e.g. 'ema_fast=3..8 ema_slow=10..30:5 stop_loss_pct=0.5,1'"
    )
    opt.add_argument("--random", type=int, metavar="N", help="run N parameter sets drawn from the grid")
    opt.add_argument("--seed", type=int, default=0, help="seed for --random (default 0)")
    opt.add_argument("--metric", default="sharpe", help="rank by this metric (default sharpe)")
    opt.add_argument("--csv", metavar="OUT.csv", help="write every result as CSV")
    opt.add_argument("--walk-forward", type=float, metavar="FRACTION", help="in-sample fraction, e.g. 0.7")
    opt.add_argument("--workers", type=int, help="worker processes (default: CPU count)")
    opt.add_argument("--top", type=int, default=20, help="rows of the ranked table (default 20)")


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    """The actors log every order; a backtest's output is its report (errors still show)."""
    logger = logging.getLogger("tradingd")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def backtest_main(args: argparse.Namespace) -> int:
    with _quiet_logs():
        return _backtest(args)


def _backtest(args: argparse.Namespace) -> int:
    # imported here, not at the top: every `tradingd` command parses its arguments with this module
    from daemon.backtest.html_report import render
    from daemon.backtest.metrics import compute, drawdown_series
    from daemon.backtest.progress import progress_bar
    from daemon.backtest.report import document, table
    from daemon.backtest.runner import run_backtest
    from daemon.backtest.setup import prepare

    try:
        prep = prepare(
            args.config,
            args.data,
            symbol=args.symbol,
            data_format=args.format,
            t_from=args.t_from,
            t_to=args.t_to,
        )
        result = run_backtest(
            prep.group,
            prep.account,
            prep.account_name,
            prep.messages,
            interval_s=prep.interval_s,
            ignore_volume=args.ignore_volume,
            progress=progress_bar(),
            stepwise=args.stepwise,
        )
    except BacktestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    led = result.ledger
    m = compute(
        led.equity,
        led.trips,
        result.initial_equity,
        result.final_equity,
        led.fees,
        led.exposed_bars,
        result.interval_s,
    )
    doc = document(result, m, str(prep.data_path), prep.data_format)
    text = table(result, m)
    if args.json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        print(text)
    if args.html:
        out = Path(args.html)
        try:
            out.write_text(
                render(doc, text, led.equity, drawdown_series(led.equity), led.bar_open_ns), encoding="utf-8"
            )
        except OSError as exc:
            print(f"error: --html {out}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        if not args.json:
            print(f"report: {out}")
    return 0


def optimize_main(args: argparse.Namespace) -> int:
    from daemon.backtest.optimize import optimize_cli

    try:
        with _quiet_logs():
            return optimize_cli(args)
    except BacktestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
