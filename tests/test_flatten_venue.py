"""``tradingd flatten`` against a daemon trading a venue in another process, checked at the venue.

The venue is the fake Binance as its own process (``tests/fake_venue_process.py``, STOP_LOSS and
TAKE_PROFIT allowed on NKNUSDT); the daemon (a subprocess, journal on) runs a grid on NKN/USDT with
native stops: limit entries rest on both sides, the buys that fill make a position and its
stop-loss rests at the venue as a STOP_LOSS order.  The operator then types
``tradingd flatten --all --yes``: afterwards the venue has no open order of the symbol, its NKN
balance is back where it started (the position was sold, reduce-only, at market), the daemon
reports it order by order and stays halted (no new order reaches the venue, /readyz says why),
and a restart (SIGKILL, then start) is still halted until ``tradingd resume``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.fake_binance import API_KEY, API_SECRET
from tests.fake_venue_process import START_BALANCES
from tests.helpers import ROOT, free_port, wait_for

TOKEN = "flatten-test-token-0123456789abcdef"
OPEN = ("NEW", "PARTIALLY_FILLED")


@pytest.fixture
def venue(tmp_path: Path) -> Iterator[dict[str, str]]:
    portfile = tmp_path / "venue.json"
    log = (tmp_path / "venue.log").open("wb")
    env = {**os.environ, "FAKE_VENUE_ORDER_TYPES": "STOP_LOSS,TAKE_PROFIT"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_venue_process", str(portfile)],
        cwd=ROOT,
        stdout=log,
        stderr=log,
        env=env,
    )
    try:
        wait_for(portfile.exists, 20, "the venue process to listen")
        yield json.loads(portfile.read_text())
    finally:
        proc.kill()
        proc.wait(10)
        log.close()


def _config(tmp: Path, urls: dict[str, str], port: int) -> Path:
    text = f"""
[daemon]
log_format = "json"
state_dir = "{tmp / "state"}"
[health]
port = {port}
[redis]
enabled = false
[store]
enabled = false
[accounts.live]
exchange = "binance"
rest_url = "{urls["venue_url"]}"
ws_api_url = "{urls["ws_api_url"]}"
api_key_env = "TEST_BINANCE_KEY"
secret_env = "TEST_BINANCE_SECRET"
timeout_s = 2.0
[[groups]]
exchange = "binance"
symbol = "NKN/USDT"
account = "live"
bar_interval_s = 1
[groups.instrument]
base = "NKN"
quote = "USDT"
tick_size = "0.0001"
step_size = "1"
[groups.feed]
kind = "binance"
venue_symbol = "NKNUSDT"
ws_url = "{urls["ws_url"]}"
rest_url = "{urls["rest_url"]}"
streams = ["aggTrade", "depth@100ms"]
silence_timeout_s = 10.0
[groups.strategy]
name = "grid"
lower = "0.3400"
upper = "0.3660"
levels = 8
quantity = "50"
arm_within_pct = 5.0
stop_loss_pct = 20.0
[groups.risk]
max_order_notional = "100"
max_position = "100000"
max_open_orders = 12
max_orders_per_minute = 600
price_band_pct = "10"
native_stops = true
"""
    path = tmp / "config.toml"
    path.write_text(text)
    return path


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "TEST_BINANCE_KEY": API_KEY,
        "TEST_BINANCE_SECRET": API_SECRET,
        "TRADINGD_ADMIN_TOKEN": TOKEN,
    }


def _start(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "daemon", "run", "--config", str(cfg)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_env(),
        )


def _cli(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daemon", *args, "--config", str(cfg)],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=90,
    )


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def _readyz(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except OSError:
        return 0, {}


def _open_at_venue(urls: dict[str, str]) -> list[dict[str, Any]]:
    return [o for o in _get(f"{urls['control_url']}/state")["orders"] if o["status"] in OPEN]


def _nkn(urls: dict[str, str]) -> Decimal:
    return Decimal(_get(f"{urls['control_url']}/state")["balances"]["NKN"])


def test_flatten_at_the_venue_cancels_everything_sells_the_position_and_stays_halted(
    tmp_path: Path, venue: dict[str, str]
) -> None:
    port = free_port()
    cfg = _config(tmp_path, venue, port)
    log = tmp_path / "daemon.log"
    proc = _start(cfg, log)
    try:
        wait_for(lambda: _readyz(port)[0] == 200, 30, "the daemon to be ready")

        def built() -> bool:
            orders = _open_at_venue(venue)
            stops = [o for o in orders if o["type"] == "STOP_LOSS"]
            entries = [o for o in orders if o["type"] == "LIMIT"]
            return bool(stops) and bool(entries) and _nkn(venue) > START_BALANCES["NKN"]

        wait_for(built, 60, "a position with its stop resting at the venue and open entries")

        done = _cli(cfg, "flatten", "--all", "--yes")
        assert done.returncode == 0, done.stdout + done.stderr
        report = done.stdout
        assert "binance:NKN/USDT" in report and ": flat" in report, report
        rows = [line.split() for line in report.splitlines() if line.startswith("binance:NKN/USDT ")]
        canceled = {r[2]: r for r in rows if r[1] == "cancel"}
        closes = [r for r in rows if r[1] == "close"]
        # order by order: the resting stop and the grid's entries canceled, one market sell
        assert any("stop_market" in r for r in canceled.values()), report
        assert any("limit" in r for r in canceled.values()), report
        assert len(closes) == 1 and closes[0][4:6] == ["sell", "market"] and closes[0][-1] == "filled", report
        at_venue = {o["clientOrderId"]: o for o in _get(f"{venue['control_url']}/state")["orders"]}
        assert all(at_venue[cid]["status"] == "CANCELED" for cid in canceled), report

        # at the venue: nothing open, the position sold
        assert _open_at_venue(venue) == []
        assert _nkn(venue) == START_BALANCES["NKN"]
        code, ready = _readyz(port)
        assert code == 503 and any("flattened by the operator" in r for r in ready["reasons"]), ready
        requests = len(_get(f"{venue['control_url']}/state")["order_requests"])
        time.sleep(3)  # the grid's levels keep being crossed: the halt holds
        assert _open_at_venue(venue) == []
        assert len(_get(f"{venue['control_url']}/state")["order_requests"]) == requests

        # a crash and a restart: still halted, until resume
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc = _start(cfg, log)
        wait_for(lambda: _readyz(port)[0] == 503, 30, "the restarted daemon to answer")
        code, ready = _readyz(port)
        assert any("flattened by the operator" in r for r in ready["reasons"]), ready
        resumed = _cli(cfg, "resume")
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        wait_for(lambda: _readyz(port)[0] == 200, 30, "ready again after resume")
        wait_for(lambda: bool(_open_at_venue(venue)), 30, "the grid to trade again")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
