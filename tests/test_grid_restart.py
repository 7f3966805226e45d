"""The grid trades on after kill -9 restarts: a paper daemon runs the grid on the bundled candles
(looped, as fast as they replay), is SIGKILLed at seeded random moments, and after every restart
the strategy's restored state is reconciled with the recovered position and open orders (the log
says so), the last life places grid orders again as its levels are crossed, and across all lives
no grid intent is journaled twice.  Bounded: a few lives (``GRID_KILL_LIVES``, seed
``CRASH_SEED``), each waited on by condition with a deadline.
"""

from __future__ import annotations

import os
import random
import re
import signal
import time
from pathlib import Path

from actors.messages import OrderIntent
from daemon.journal import Journal
from daemon.metrics import Metrics
from tests.helpers import make_config, ready_count, start_daemon, unique_prefix, wait_for

LIVES = int(os.environ.get("GRID_KILL_LIVES", "2"))
GRID = """[groups.strategy]
name = "grid"
lower = "0.0017"
upper = "0.0021"
levels = 9
quantity = "100"
on_exit_range = "rebalance"
arm_within_pct = 0.0
"""


def _config(tmp: Path) -> Path:
    text = make_config(
        tmp / "state",
        prefix=unique_prefix(),
        speed=0.0,
        loop=True,
        trades_group=False,
        redis_enabled=False,
        store_dsn="postgresql://postgres@127.0.0.1:5432/unused",
    )
    text = text.replace("[store]\nenabled = true\n", "[store]\nenabled = true\npostgres = false\n")
    text = text.replace("[health]\n", "[health]\nenabled = false\n")
    text = text.replace("[groups.strategy]\nrsi_buy_max = 75.0\n", GRID)
    text = text.replace(
        '[groups.risk]\nmax_order_notional = "0.5"\n',
        '[groups.risk]\nmax_order_notional = "0.5"\nmax_open_orders = 10\nmax_orders_per_minute = 100000\n'
        'price_band_pct = "50"\n',
    )
    assert 'name = "grid"' in text and "max_open_orders = 10" in text
    path = tmp / "config.toml"
    path.write_text(text)
    return path


def _lives(log: Path) -> list[str]:
    """The log split at each READY: element k is what life k logged after getting ready."""
    return log.read_text(errors="replace").split("tradingd ready")[1:]


def _grid_intents(text: str) -> int:
    return text.count('"intent paper:UNITTEST/BTC:grid:')


def _journaled(state: Path, life_log: str) -> bool:
    """Has the journal written (to the file: a kill -9 keeps it) one of the grid intents this life
    logged?  The journal flushes every ``flush_interval_ms``: a kill before that loses the
    records, and the next life would have nothing to restore and reconcile."""
    ids = set(re.findall(r'"intent (paper:UNITTEST/BTC:grid:[0-9]+:[a-z]+-[0-9]+) ', life_log))
    data = b"".join(p.read_bytes() for p in (state / "journal").glob("*.jseg"))
    return any(i.encode() in data for i in ids)


def test_the_grid_places_orders_again_after_kill_9_restarts(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    log = tmp_path / "daemon.log"
    rng = random.Random(int(os.environ.get("CRASH_SEED", "7")))
    for life in range(LIVES):
        proc = start_daemon(cfg, log)
        try:
            wait_for(lambda n=life: ready_count(log) > n, 30, f"life {life} to get ready")
            # killed once the grid has traded a little, at a random moment after that
            wait_for(lambda n=life: _grid_intents(_lives(log)[n]) >= 3, 20, f"life {life} to trade")
            wait_for(
                lambda n=life: _journaled(tmp_path / "state", _lives(log)[n]),
                20,
                f"life {life}'s grid intents in the journal",
            )
            time.sleep(rng.uniform(0.0, 0.8))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
    proc = start_daemon(cfg, log)
    try:
        wait_for(lambda: ready_count(log) > LIVES, 30, "the last life to get ready")
        # the grid works again: new orders as the replayed prices cross its levels
        wait_for(lambda: _grid_intents(_lives(log)[LIVES]) >= 5, 20, "the grid to place orders again")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    text = log.read_text(errors="replace")
    assert "Traceback" not in text
    # every restarted life reconciled its restored grid with the recovered position and orders
    assert text.count("strategy state reconciled with position") == LIVES

    journal = Journal.open(tmp_path / "state" / "journal", metrics=Metrics())
    try:
        records = [m for _, m in journal.read_from(journal.first_offset)]
    finally:
        journal.close()
    intents = [m.intent_id for m in records if isinstance(m, OrderIntent) and m.source == "strategy:grid"]
    assert len(intents) >= 5 * (LIVES + 1)
    assert len(intents) == len(set(intents)), "a grid intent was journaled twice"
