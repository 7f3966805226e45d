"""`tradingd backtest` against backtesting.py on the same strategy, data and fee model.

ema_cross(5, 13), long only, fixed size, on the bundled UNITTEST/BTC 1-minute candles:
both fill a market order sent on bar t's close at bar t+1's open, charge the same
commission on each side, no slippage, no volume limit.  They must agree on every entry
and exit bar and, to a tight tolerance, on every trade's PnL.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import talib
from backtesting import Backtest, Strategy  # test-only dependency: pip install -e '.[test]'
from backtesting.lib import crossover

from daemon.cli import main
from tests.helpers import CANDLES

FEE = 0.001
QTY = 100
CASH = 1000.0


def config(tmp_path: Path) -> Path:
    path = tmp_path / "ema.toml"
    path.write_text(
        f"""
[accounts.paper]
balances = {{ BTC = "{CASH}", UNITTEST = "0" }}
taker_fee = "{FEE}"
maker_fee = "{FEE}"
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
path = "{CANDLES}"
format = "candles"

[groups.strategy]
name = "ema_cross"
ema_fast = 5
ema_slow = 13
quantity = "{QTY}"

[groups.risk]
max_order_notional = "100"
max_position = "1000000"
"""
    )
    return path


class EmaCross(Strategy):  # type: ignore[misc]
    fast = 5
    slow = 13

    def init(self) -> None:
        close = self.data.Close
        self.ema_fast = self.I(talib.EMA, close, self.fast)
        self.ema_slow = self.I(talib.EMA, close, self.slow)

    def next(self) -> None:
        if crossover(self.ema_fast, self.ema_slow):
            if not self.position:
                self.buy(size=QTY)
        elif crossover(self.ema_slow, self.ema_fast) and self.position:
            self.position.close()


def reference() -> Any:
    rows = json.loads(CANDLES.read_text())
    df = pd.DataFrame(rows, columns=["t", "Open", "High", "Low", "Close", "Volume"])
    df.index = pd.to_datetime(df.pop("t"), unit="ms")
    bt = Backtest(df, EmaCross, cash=CASH, commission=FEE, trade_on_close=False, finalize_trades=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bt.run()


def ours(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    code = main(
        ["backtest", "--config", str(config(tmp_path)), "--data", str(CANDLES), "--ignore-volume", "--json"]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    doc: dict[str, Any] = json.loads(out)
    return doc


def test_same_trades_and_pnl_as_backtesting_py(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = ours(tmp_path, capsys)
    stats = reference()
    ref = stats["_trades"].sort_values("EntryBar").reset_index(drop=True)
    trades = doc["trades"]
    closed = [t for t in trades if t["exit_bar"] is not None]
    assert len(trades) == 639  # entries
    assert len(closed) == 638  # round trips; the last entry is still open at the end
    assert len(ref) == len(closed)
    assert [t["entry_bar"] for t in closed] == ref["EntryBar"].tolist()
    assert [t["exit_bar"] for t in closed] == ref["ExitBar"].tolist()
    np.testing.assert_allclose([float(t["entry_price"]) for t in closed], ref["EntryPrice"], rtol=1e-12)
    np.testing.assert_allclose([float(t["exit_price"]) for t in closed], ref["ExitPrice"], rtol=1e-12)
    np.testing.assert_allclose([float(t["pnl"]) for t in closed], ref["PnL"], rtol=1e-9, atol=1e-12)
    total = sum(float(t["pnl"]) for t in closed)
    assert total == pytest.approx(float(ref["PnL"].sum()), rel=1e-9, abs=1e-12)
    assert doc["metrics"]["trades"] == 638 and doc["metrics"]["open_trades"] == 1
    # the open trade: entered where backtesting.py still holds its position
    assert trades[-1]["exit_bar"] is None
