"""`tradingd optimize`: grid syntax, parallel runs ranked deterministically, CSV, walk-forward."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from daemon.backtest.data import BacktestError
from daemon.backtest.grid import combinations, parse_grid, sample, size
from daemon.cli import main
from tests.helpers import CANDLES
from tests.test_backtest import write_config

FIELDS = ["ema_fast", "ema_slow", "quantity", "stop_loss_pct", "take_profit_pct"]
SPAN = ["--from", "2017-11-06", "--to", "2017-11-08"]


def test_grid_syntax() -> None:
    grid = parse_grid("fast=3..5 ema_slow=10..20:5 stop_loss_pct=0.5..1.5:0.5,3", FIELDS, "ema_cross")
    assert grid == {"ema_fast": [3, 4, 5], "ema_slow": [10, 15, 20], "stop_loss_pct": [0.5, 1.0, 1.5, 3.0]}
    assert size(grid) == 36
    combos = list(combinations(grid))
    assert combos[0] == {"ema_fast": 3, "ema_slow": 10, "stop_loss_pct": 0.5}
    assert combos[1] == {"ema_fast": 3, "ema_slow": 10, "stop_loss_pct": 1.0}
    drawn = sample(grid, 5, seed=7)
    assert drawn == sample(grid, 5, seed=7) and len({tuple(d.values()) for d in drawn}) == 5
    assert all(d in combos for d in drawn)
    assert sample(grid, 100, seed=1) == combos


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "--grid: empty"),
        ("fast", "missing '='"),
        ("=3", "missing the parameter name"),
        ("fast=", "no values"),
        ("fast=3..", "needs both ends"),
        ("fast=8..3", "is empty (start > end)"),
        ("fast=1..5:0", "step 0 must be > 0"),
        ("fast=1..5:-1", "step -1 must be > 0"),
        ("fast=a..b", "is not a number"),
        ("fast=1,,2", "empty item"),
        ("speed=1..3", "'speed' is not a parameter of strategy ema_cross (parameters: ema_fast,"),
        ("fast=3 ema_fast=4", "ema_fast is given twice"),
        ("fast=1..10000000", "more than 100000 values"),
    ],
)
def test_bad_grids_say_what_was_expected(text: str, message: str) -> None:
    with pytest.raises(BacktestError) as info:
        parse_grid(text, FIELDS, "ema_cross")
    assert message in str(info.value)
    assert info.value.code == 2


def test_ambiguous_key() -> None:
    with pytest.raises(BacktestError, match="could be a_pct or b_pct"):
        parse_grid("pct=1", ["a_pct", "b_pct"], "x")


def optimize(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["optimize", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_parallel_ranking_csv_and_walk_forward(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(write_config(tmp_path))
    common = ["--config", cfg, "--data", str(CANDLES), *SPAN, "--grid", "fast=3..5 slow=8,13 fast=3"]
    code, _, err = optimize(capsys, *common)
    assert code == 2 and "given twice" in err
    common[-1] = "fast=3..5 slow=4,13"  # fast >= slow sets are invalid: skipped, not run
    out_csv = tmp_path / "out.csv"
    code, serial, err = optimize(
        capsys, *common, "--workers", "1", "--walk-forward", "0.7", "--csv", str(out_csv)
    )
    assert code == 0, err
    assert "6 parameter sets (4 run, 2 invalid)" in serial
    assert "expected ema_fast < ema_slow" in serial
    assert "OOS sharpe" in serial and "walk-forward: first 70% in-sample" in serial
    code, parallel, err = optimize(capsys, *common, "--workers", "2", "--walk-forward", "0.7")
    assert code == 0, err
    strip = [line for line in serial.splitlines() if not line.startswith("csv:")]
    assert parallel.splitlines() == strip  # same ranking and figures, whatever the scheduling
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 6
    ran = [r for r in rows if not r["error"]]
    assert len(ran) == 4 and all(r["is_sharpe"] and r["oos_sharpe"] for r in ran)
    ranked = [float(r["is_sharpe"]) for r in ran]
    assert ranked == sorted(ranked, reverse=True)


def test_random_subset_and_metric(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(write_config(tmp_path))
    argv = [
        "--config",
        cfg,
        "--data",
        str(CANDLES),
        *SPAN,
        "--grid",
        "fast=2..6 slow=10..30:10",
        "--workers",
        "1",
    ]
    code, out, err = optimize(capsys, *argv, "--random", "3", "--seed", "4", "--metric", "drawdown")
    assert code == 0, err
    assert "3 parameter sets (3 run, 0 invalid)" in out and "ranked by max_drawdown_pct" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--metric", "luck"], "--metric luck: unknown"),
        (["--walk-forward", "1.5"], "--walk-forward 1.5: expected a fraction"),
        (["--random", "0"], "--random 0: expected a positive number"),
        (["--workers", "0"], "--workers 0: expected at least 1"),
        (["--from", "later"], "--from: expected an ISO 8601"),
    ],
)
def test_hostile_optimize_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    argv = ["--config", str(write_config(tmp_path)), "--data", str(CANDLES), "--grid", "fast=3"]
    code, _, err = optimize(capsys, *argv, *extra)
    assert code == 2
    assert message in err and err.startswith("error: ")


def test_missing_data_and_no_valid_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(write_config(tmp_path))
    code, _, err = optimize(capsys, "--config", cfg, "--data", str(tmp_path / "x.json"), "--grid", "fast=3")
    assert code == 1 and "no such file" in err
    code, _, err = optimize(
        capsys, "--config", cfg, "--data", str(CANDLES), *SPAN, "--grid", "fast=20 slow=10"
    )
    assert code == 1 and "no valid parameter set" in err
