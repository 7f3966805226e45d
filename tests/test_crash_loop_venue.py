"""kill -9 the daemon while it trades on a venue in another process; the books must agree after.

The venue is the fake Binance (REST, WebSocket API user stream, live market stream) running
as its own process (``tests/fake_venue_process.py``): it keeps its orders, fills resting
orders from its own trades while the daemon is dead, and never restarts.  The daemon runs a
grid strategy on NKN/USDT (resting limit orders on both sides: there is nearly always
something open at the venue when it dies) with the journal and the PostgreSQL store on,
and is SIGKILLed at random moments ``VENUE_CRASH_LOOPS`` times (10 in ``make test``, 100
in ``make soak``; half as often with snapshots off, so every restart recovers from the journal's
records alone).  Then the venue stops trading, the daemon starts once more, reconciles,
lets the store catch up and is stopped with SIGTERM.  Asserted:

- no client order id was sent to the venue twice;
- every order at the venue is known to the daemon (in PostgreSQL), with the venue's status;
- the fills in PostgreSQL are exactly the venue's trades (ids, quantities, prices);
- the position in PostgreSQL equals the change of the venue's NKN balance;
- the balance check (every second, and at each start after the venue filled orders while the
  daemon was dead) never cried wolf: no balance drift in any life.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import pytest

from tests.fake_venue_process import START_BALANCES
from tests.helpers import free_port, wait_for
from tests.test_store import _admin, dsn_for
from tests.venue_helpers import grid_config, start_daemon, venue_process

LOOPS = int(os.environ.get("VENUE_CRASH_LOOPS", "10"))
STATUS = {
    "NEW": "accepted",
    "PARTIALLY_FILLED": "partially_filled",
    "FILLED": "filled",
    "CANCELED": "canceled",
    "EXPIRED": "expired",
    "REJECTED": "rejected",
}


@pytest.fixture
def venue(tmp_path: Path) -> Iterator[dict[str, str]]:
    with venue_process(tmp_path) as urls:
        yield urls


@pytest.fixture
def database() -> Iterator[str]:
    name = f"tradingd_test_{uuid.uuid4().hex[:12]}"
    anyio.run(_admin, f"CREATE DATABASE {name}")
    try:
        yield dsn_for(name)
    finally:
        anyio.run(_admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _config(tmp: Path, urls: dict[str, str], dsn: str, port: int, snapshot_s: float = 0.5) -> Path:
    store = f'enabled = true\ndsn = "{dsn}"\nflush_interval_ms = 20\nsnapshot_interval_s = {snapshot_s}'
    return grid_config(tmp, urls, port, store=store)


def _start(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    return start_daemon(cfg, log)


def _get(url: str, data: bytes | None = None) -> Any:
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=5) as resp:
        return json.loads(resp.read())


def _ready(log: Path) -> int:
    return log.read_text(errors="replace").count("tradingd ready")


def _status(port: int) -> dict[str, Any] | None:
    try:
        return _get(f"http://127.0.0.1:{port}/status")  # type: ignore[no-any-return]
    except OSError:
        return None


async def _rows(dsn: str, sql: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        return [dict(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("snapshot_s", "lives"),
    [(0.5, LOOPS), (3600.0, max(3, LOOPS // 2))],
    ids=["snapshots", "between-snapshots"],
)
def test_kill_9_against_a_venue_in_another_process(
    tmp_path: Path, venue: dict[str, str], database: str, snapshot_s: float, lives: int
) -> None:
    """``between-snapshots``: no snapshot is ever taken but at the last clean stop, so every restart
    recovers from the journal's records alone."""
    port = free_port()
    cfg = _config(tmp_path, venue, database, port, snapshot_s)
    log = tmp_path / "daemon.log"
    rng = random.Random(int(os.environ.get("CRASH_SEED", "11")))
    for life in range(lives):
        proc = _start(cfg, log)
        try:
            wait_for(lambda n=life: _ready(log) > n, 60, f"life {life} to get ready")
            time.sleep(rng.uniform(1.0, 4.0))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)

    _get(f"{venue['control_url']}/freeze", data=b"")
    time.sleep(0.3)  # the last trade's events are out
    proc = _start(cfg, log)
    try:
        wait_for(lambda: _ready(log) > lives, 60, "the last life to get ready")

        def settled() -> bool:
            status = _status(port)
            if status is None:
                return False
            store = status["store"]
            return bool(store["migrated"]) and store["store_lag_records"] == 0

        time.sleep(2.0)  # reconciliation events, then nothing fills any more
        wait_for(settled, 60, "the PostgreSQL store to catch up")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    text = log.read_text(errors="replace")
    assert "Traceback" not in text
    assert "balance drift" not in text, [m for m in text.splitlines() if "balance drift" in m][:3]
    assert text.count("balance ledger of account live starts from the venue") == 1

    at_venue = _get(f"{venue['control_url']}/state")
    orders = anyio.run(_rows, database, "SELECT client_order_id, status, filled_qty FROM orders")
    fills = anyio.run(_rows, database, "SELECT client_order_id, trade_id, quantity, price FROM fills")
    positions = anyio.run(_rows, database, "SELECT symbol, quantity FROM positions")

    twice = {cid: n for cid, n in at_venue["order_requests"].items() if n > 1}
    assert not twice, f"client order ids sent more than once: {twice}"

    ours = {o["client_order_id"]: o for o in orders}
    venue_orders = {o["clientOrderId"]: o for o in at_venue["orders"]}
    assert venue_orders, "the grid placed no order: nothing was tested"
    unknown = sorted(set(venue_orders) - set(ours))
    assert not unknown, f"orders at the venue the daemon does not know: {unknown}"
    wrong = {
        cid: (o["status"], ours[cid]["status"])
        for cid, o in venue_orders.items()
        if STATUS[o["status"]] != ours[cid]["status"]
    }
    assert not wrong, f"status at the venue vs the daemon's: {wrong}"

    venue_fills = {
        (t["clientOrderId"], str(t["id"])): (Decimal(t["qty"]), Decimal(t["price"]))
        for t in at_venue["trades"]
    }
    stored = {(f["client_order_id"], f["trade_id"]): (f["quantity"], f["price"]) for f in fills}
    assert len(venue_fills) >= 3, f"only {len(venue_fills)} fills: nothing was tested"
    assert stored == venue_fills

    moved = Decimal(at_venue["balances"]["NKN"]) - START_BALANCES["NKN"]
    assert positions == [{"symbol": "NKN/USDT", "quantity": moved}]
    recovered = text.count("group recovered from the journal")
    assert recovered >= lives // 2, f"only {recovered} restarts recovered the group"
