"""Test helpers: configs pointing at the bundled data, free ports, waiting with a deadline."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from actors.messages import Message

ROOT = Path(__file__).resolve().parent.parent
CANDLES = ROOT / "adapters/replay/data/candles/UNITTEST_BTC-1m.json"
TRADES = ROOT / "adapters/replay/data/trades/XRP_ETH-trades.json.gz"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unique_prefix() -> str:
    return f"test{uuid.uuid4().hex[:10]}"


def make_config(
    state_dir: Path,
    *,
    prefix: str,
    redis_url: str = "redis://127.0.0.1:6379/0",
    port: int = 0,
    speed: float = 0.0,
    loop: bool = False,
    trades_group: bool = True,
    candles_group: bool = True,
    rsi_buy_max: float = 75.0,
    redis_enabled: bool = True,
    store_dsn: str | None = None,
) -> str:
    """A config like the shipped one, pointed at temp state and a private Redis prefix."""
    parts = [
        f"""
[daemon]
log_level = "info"
log_format = "json"
state_dir = "{state_dir}"
feed_stale_after_s = 120.0

[health]
bind = "127.0.0.1"
port = {port}

[redis]
enabled = {str(redis_enabled).lower()}
url = "{redis_url}"
prefix = "{prefix}"
maxlen = 200000
retry_interval_s = 0.2
connect_timeout_s = 0.5

[store]
enabled = {str(store_dsn is not None).lower()}
dsn = "{store_dsn or "postgresql://postgres@127.0.0.1:5432/unused"}"
flush_interval_ms = 20

[supervisor]
max_restarts = 3
window_s = 30.0
backoff_initial_s = 0.01
backoff_max_s = 0.1

[accounts.paper]
balances = {{ BTC = "1.0", ETH = "10.0" }}
"""
    ]
    if candles_group:
        parts.append(
            f"""
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
speed = {speed}
loop = {str(loop).lower()}
[groups.strategy]
rsi_buy_max = {rsi_buy_max}
[groups.risk]
max_order_notional = "0.5"
"""
        )
    if trades_group:
        parts.append(
            f"""
[[groups]]
exchange = "paper"
symbol = "XRP/ETH"
account = "paper"
[groups.instrument]
base = "XRP"
quote = "ETH"
tick_size = "0.00000001"
step_size = "1"
[groups.feed]
path = "{TRADES}"
format = "trades"
speed = {speed}
loop = {str(loop).lower()}
[groups.risk]
max_order_notional = "2.0"
"""
        )
    return "".join(parts)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``predicate`` (blocking) until true or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def start_daemon(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    """``tradingd run --config cfg`` in a subprocess, its output appended to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "daemon", "run", "--config", str(cfg)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def ready_count(log: Path) -> int:
    """How many lives of the daemon logging to ``log`` got to READY."""
    return log.read_text(errors="replace").count("tradingd ready")


def kill_9_lives(cfg: Path, log: Path, lives: int, rng: random.Random, pause: tuple[float, float]) -> None:
    """Start the daemon ``lives`` times, each SIGKILLed a random ``pause`` after READY, then once
    more and stop it cleanly (exit 0, no traceback in the log)."""
    for life in range(lives):
        proc = start_daemon(cfg, log)
        try:
            wait_for(lambda n=life: ready_count(log) > n, 30, f"life {life} to get ready")
            time.sleep(rng.uniform(*pause))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
    proc = start_daemon(cfg, log)
    wait_for(lambda: ready_count(log) > lives, 30, "the last life to get ready")
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert "Traceback" not in log.read_text(errors="replace")


def crash_config(tmp: Path, snapshot_interval_s: float) -> Path:
    """A paper daemon for kill -9 loops: the journal on (no PostgreSQL), no Redis, no health
    server, the bundled candles looping as fast as they go; ``tmp/config.toml``."""
    text = make_config(
        tmp / "state",
        prefix=unique_prefix(),
        speed=0.0,
        loop=True,
        trades_group=False,
        redis_enabled=False,
        store_dsn="postgresql://postgres@127.0.0.1:5432/unused",
    )
    store = f"[store]\nenabled = true\npostgres = false\nsnapshot_interval_s = {snapshot_interval_s}\n"
    text = text.replace("[store]\nenabled = true\n", store)
    text = text.replace("[health]\n", "[health]\nenabled = false\n")
    path = tmp / "config.toml"
    path.write_text(text)
    return path


def journal_records(state_dir: Path) -> list[Message]:
    """Every record of the journal under ``state_dir``, in order."""
    from daemon.journal import Journal
    from daemon.metrics import Metrics

    journal = Journal.open(state_dir / "journal", metrics=Metrics())
    try:
        return [m for _, m in journal.read_from(journal.first_offset)]
    finally:
        journal.close()


@contextmanager
def module_process(
    tmp_path: Path, module: str, *args: str, name: str, env: dict[str, str] | None = None
) -> Iterator[dict[str, str]]:
    """``python -m module PORTFILE *args`` (a fake server) as a process of its own, output in
    ``tmp_path/<name>.log``; yields the JSON it writes to ``tmp_path/<name>.json`` once it
    listens, and kills it at the end."""
    portfile = tmp_path / f"{name}.json"
    with (tmp_path / f"{name}.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, str(portfile), *args],
            cwd=ROOT,
            stdout=log,
            stderr=log,
            env={**os.environ, **(env or {})},
        )
        try:
            wait_for(portfile.exists, 20, f"the {name} process to listen")
            yield json.loads(portfile.read_text())
        finally:
            proc.kill()
            proc.wait(10)
