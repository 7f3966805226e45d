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

from tests.fake_venue_process import START_BALANCES
from tests.helpers import ROOT, free_port, wait_for
from tests.venue_helpers import daemon_env, grid_config, start_daemon, venue_process

TOKEN = "flatten-test-token-0123456789abcdef"
OPEN = ("NEW", "PARTIALLY_FILLED")


@pytest.fixture
def venue(tmp_path: Path) -> Iterator[dict[str, str]]:
    with venue_process(tmp_path, FAKE_VENUE_ORDER_TYPES="STOP_LOSS,TAKE_PROFIT") as urls:
        yield urls


def _start(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    return start_daemon(cfg, log, TRADINGD_ADMIN_TOKEN=TOKEN)


def _cli(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daemon", *args, "--config", str(cfg)],
        cwd=ROOT,
        env=daemon_env(TRADINGD_ADMIN_TOKEN=TOKEN),
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
    cfg = grid_config(tmp_path, venue, port, risk="native_stops = true")
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
