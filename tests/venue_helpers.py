"""A daemon trading a grid on the fake Binance in another process: the pieces those tests share.

:func:`venue_process` starts ``tests/fake_venue_process.py`` (its knobs as environment variables,
e.g. ``FAKE_VENUE_COMMISSION``, ``FAKE_VENUE_ORDER_TYPES``) and yields its URLs;
:func:`grid_config` writes a daemon config trading NKN/USDT there with a grid (resting orders on
both sides, filled by the venue's own trades); :func:`start_daemon` runs ``tradingd run`` on it
with the fake's API key in the environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.fake_binance import API_KEY, API_SECRET
from tests.helpers import ROOT, module_process


@contextmanager
def venue_process(tmp_path: Path, **env: str) -> Iterator[dict[str, str]]:
    """The fake venue as a process; yields its ``ws_url``, ``rest_url``, ``venue_url``,
    ``ws_api_url`` and ``control_url``."""
    with module_process(tmp_path, "tests.fake_venue_process", name="venue", env=env) as urls:
        yield urls


def grid_config(
    tmp: Path,
    urls: dict[str, str],
    port: int,
    *,
    store: str = "enabled = false",
    account: str = "",
    risk: str = "",
) -> Path:
    """``tmp/config.toml``: account ``live`` on the fake venue, a grid on NKN/USDT; ``store``,
    ``account`` and ``risk`` are extra lines of those sections."""
    text = f"""
[daemon]
log_format = "json"
state_dir = "{tmp / "state"}"
[health]
port = {port}
[redis]
enabled = false
[store]
{store}
[supervisor]
backoff_initial_s = 0.01
backoff_max_s = 0.1
[accounts.live]
exchange = "binance"
rest_url = "{urls["venue_url"]}"
ws_api_url = "{urls["ws_api_url"]}"
api_key_env = "TEST_BINANCE_KEY"
secret_env = "TEST_BINANCE_SECRET"
timeout_s = 2.0
recv_window_ms = 1000
{account}
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
stall_timeout_s = 60.0
[groups.strategy]
name = "grid"
lower = "0.3400"
upper = "0.3660"
levels = 8
quantity = "50"
on_exit_range = "rebalance"
arm_within_pct = 5.0
stop_loss_pct = 20.0
[groups.risk]
max_order_notional = "100"
max_position = "100000"
max_open_orders = 12
max_orders_per_minute = 600
price_band_pct = "10"
{risk}
"""
    path = tmp / "config.toml"
    path.write_text(text)
    return path


def daemon_env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "TEST_BINANCE_KEY": API_KEY,
        "TEST_BINANCE_SECRET": API_SECRET,
        **extra,
    }


def start_daemon(cfg: Path, log: Path, **env: str) -> subprocess.Popen[bytes]:
    """``tradingd run --config cfg``, its output appended to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "daemon", "run", "--config", str(cfg)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=daemon_env(**env),
        )
