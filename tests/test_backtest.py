"""`tradingd backtest`: the daemon's actors on a simulated clock, driven in lockstep.

Hostile inputs give one clear line and an exit code (1: unusable input, 2: bad argument);
two runs give the same JSON; no wall clock is read; the HTML report is self-contained.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pytest

from daemon.backtest.data import BacktestError
from daemon.backtest.progress import progress_bar
from daemon.backtest.runner import run_backtest
from daemon.backtest.setup import prepare
from daemon.cli import main
from tests.helpers import CANDLES, TRADES

DAY = ["--from", "2017-11-06", "--to", "2017-11-07"]


def write_config(
    tmp_path: Path, strategy: str = 'name = "ema_cross"\nquantity = "100"', fmt: str = "candles"
) -> Path:
    path = tmp_path / "bt.toml"
    data = CANDLES if fmt == "candles" else TRADES
    base, quote, step = ("UNITTEST", "BTC", "0.01") if fmt == "candles" else ("XRP", "ETH", "1")
    symbol = f"{base}/{quote}"
    path.write_text(
        f"""
[accounts.paper]
balances = {{ {quote} = "10", {base} = "0" }}
taker_fee = "0.001"
slippage_bps = "2"

[[groups]]
exchange = "paper"
symbol = "{symbol}"
account = "paper"

[groups.instrument]
base = "{base}"
quote = "{quote}"
tick_size = "0.00000001"
step_size = "{step}"

[groups.feed]
path = "{data}"
format = "{fmt}"

[groups.strategy]
{strategy}

[groups.risk]
max_order_notional = "1"
"""
    )
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["backtest", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def doc_of(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    result: dict[str, Any] = json.loads(out)
    return result


def test_table_has_every_metric(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--config", str(write_config(tmp_path)), "--data", str(CANDLES), *DAY)
    assert code == 0, err
    for label in (
        "total return",
        "net PnL",
        "trades",
        "win rate",
        "avg win / avg loss",
        "max drawdown",
        "Sharpe",
        "per-bar (1m) returns",
        "profit factor",
        "exposure time",
    ):
        assert label in out
    assert "2017-11-06T00:00:00Z .. 2017-11-07T00:00:00Z" in out
    assert err == ""  # no progress bar when stderr is not a terminal


def test_two_runs_give_the_same_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(write_config(tmp_path))
    first = doc_of(capsys, "--config", cfg, "--data", str(CANDLES), *DAY)
    second = doc_of(capsys, "--config", cfg, "--data", str(CANDLES), *DAY)
    assert first == second
    assert first["metrics"]["trades"] > 0
    assert first["metrics"]["bars"] == first["data"]["messages"]


def test_stepwise_gives_the_same_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(write_config(tmp_path, 'name = "ema_cross"\nquantity = "100"\ntake_profit_pct = 0.3'))
    batched = doc_of(capsys, "--config", cfg, "--data", str(CANDLES), *DAY)
    stepwise = doc_of(capsys, "--config", cfg, "--data", str(CANDLES), *DAY, "--stepwise")
    assert batched == stepwise
    assert batched["counters"]["stops"]["triggered"] > 0


def test_no_wall_clock_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prep = prepare(str(write_config(tmp_path)), str(CANDLES), t_from="2017-11-06", t_to="2017-11-07")

    def forbidden() -> int:
        raise AssertionError("a backtest read the wall clock")

    monkeypatch.setattr(time, "time_ns", forbidden)
    monkeypatch.setattr(time, "monotonic", forbidden)
    monkeypatch.setattr(time, "monotonic_ns", forbidden)
    result = run_backtest(prep.group, prep.account, prep.account_name, prep.messages, interval_s=60)
    monkeypatch.undo()
    assert result.counters["orders"]["filled"] > 0
    # message stamps are event time: every fill is stamped inside the data's range
    assert all(
        prep.messages[0].ts_event <= t.entry_ns <= prep.messages[-1].ts_event for t in result.ledger.trips
    )


def test_fills_at_next_bar_open_with_fee_and_slippage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = doc_of(capsys, "--config", str(write_config(tmp_path)), "--data", str(CANDLES), *DAY)
    rows = json.loads(CANDLES.read_text())
    t0 = next(i for i, r in enumerate(rows) if r[0] >= 1509926400000)  # 2017-11-06T00:00Z
    trip = doc["trades"][0]
    bar = rows[t0 + trip["entry_bar"]]
    # bought at that bar's open moved up by 2 bps of slippage, rounded to the tick
    assert float(trip["entry_price"]) == pytest.approx(bar[1] * 1.0002, abs=1e-8)
    assert trip["entry_time"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(bar[0] / 1000))


def test_trades_data_builds_bars(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path, 'name = "ema_cross"\nquantity = "100"', fmt="trades")
    doc = doc_of(capsys, "--config", str(cfg), "--data", str(TRADES))
    assert doc["data"]["format"] == "trades"
    assert doc["metrics"]["bars"] > 100
    assert doc["counters"]["strategy"]["signals"] > 0  # the bars built from trades reach the strategy


def test_html_report_is_self_contained(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.html"
    code, _, err = run(
        capsys, "--config", str(write_config(tmp_path)), "--data", str(CANDLES), *DAY, "--html", str(out)
    )
    assert code == 0, err
    text = out.read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert "http://" not in text and "https://" not in text
    assert "<script" not in text and "<link" not in text and "src=" not in text
    assert text.count("<svg") == 2 and "<polyline" in text  # equity and drawdown
    assert "Round trips" in text and "<td>long</td>" in text


def test_breakout_runs_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = doc_of(capsys, "--config", str(write_config(tmp_path, 'name = "breakout"')), "--data", str(CANDLES))
    assert doc["strategy"]["name"] == "breakout"
    assert doc["counters"]["strategy"]["signals"] > 0


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--data", "/nonexistent/candles.json"], 1, "--data /nonexistent/candles.json: no such file"),
        (["--from", "yesterday"], 2, "--from: expected an ISO 8601 date or time"),
        (["--to", "2017-13-45"], 2, "--to: expected an ISO 8601 date or time"),
        (["--from", "2017-11-08", "--to", "2017-11-07"], 2, "is not before --to"),
        (["--from", "2020-01-01"], 1, "no data in the range [2020-01-01T00:00:00Z, end): the file covers"),
        (["--from", "2017-11-01", "--to", "2017-11-02T12:00+02:00"], 1, "no data in the range [2017-11-01"),
        (["--symbol", "NOPE/BTC"], 2, "--symbol NOPE/BTC: no such group"),
    ],
)
def test_hostile_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], code: int, message: str
) -> None:
    argv = ["--config", str(write_config(tmp_path)), "--data", str(CANDLES)]
    if "--data" in args:
        argv = argv[:2]
    got, out, err = run(capsys, *argv, *args)
    assert got == code
    assert message in err, err
    assert err.startswith("error: ") and err.count("\n") == 1 and out == ""


def test_hostile_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(write_config(tmp_path))
    bad = tmp_path / "bad.json"
    bad.write_text("[[1509836520000, 1, 1, 1, 1, 1], [1509836580000, 1, 1, 1, NaN, 1]]")
    code, _, err = run(capsys, "--config", cfg, "--data", str(bad))
    assert code == 1 and "rows[1]" in err
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    code, _, err = run(capsys, "--config", cfg, "--data", str(empty))
    assert code == 1 and "not a replay data file" in err
    junk = tmp_path / "junk.json"
    junk.write_text('{"hello": 1}')
    code, _, err = run(capsys, "--config", cfg, "--data", str(junk))
    assert code == 1 and "not a replay data file" in err
    code, _, err = run(capsys, "--config", str(tmp_path / "missing.toml"), "--data", str(CANDLES))
    assert code == 1 and "cannot read config file" in err
    code, _, err = run(capsys, "--config", cfg, "--data", str(tmp_path))
    assert code == 1 and "not a file" in err
    code, _, err = run(
        capsys, "--config", cfg, "--data", str(CANDLES), *DAY, "--html", str(tmp_path / "no/dir/r.html")
    )
    assert code == 1 and "--html" in err


def test_backtest_error_codes() -> None:
    assert BacktestError("x").code == 1
    assert BacktestError("x", 2).code == 2


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal() -> None:
    assert progress_bar(io.StringIO()) is None
    tty = _Tty()
    show = progress_bar(tty)
    assert show is not None
    show(0, 200)
    show(1, 200)  # same percent: not redrawn
    show(200, 200)
    text = tty.getvalue()
    assert text.count("\r") == 2 and "100% 200/200" in text and text.endswith("\n")


def test_an_actor_failure_ends_the_run_with_its_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from actors.strategies.ema_cross import EmaCrossStrategy

    def boom(*_: object) -> None:
        raise ValueError("boom")

    monkeypatch.setattr(EmaCrossStrategy, "on_bar", boom)
    code, out, err = run(capsys, "--config", str(write_config(tmp_path)), "--data", str(CANDLES), *DAY)
    assert code == 1 and out == ""
    assert "strategy:paper:UNITTEST/BTC failed on Bar at 20" in err and "boom" in err
