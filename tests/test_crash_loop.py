"""kill -9 the daemon again and again while it trades; every restart must recover exactly.

The daemon trades the bundled candles on paper as fast as it can (journal on, no
PostgreSQL, snapshots every 0.3 s), is SIGKILLed at a random moment, restarted, and so on
(``CRASH_LOOPS`` times: 30 in ``make test``, 100 in ``make soak``).  Then it is stopped
cleanly and its journal is checked:

- no client order id was ever submitted twice (across all lives);
- every restart resumed from exactly the state the journal holds: the position it
  announced equals a fold of every record before it, snapshots ignored (so recovery from
  snapshot + tail agrees with recovery from the whole history);
- every restored open position got its stop-loss re-armed (a StopArmed before the next restart);
- every life got to READY and trading went on (orders and fills in most lives).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from actors.messages import (
    GroupSnapshot,
    OrderFilled,
    OrderSubmitted,
    PositionChanged,
    StopArmed,
    SubmitOrder,
)
from actors.order_fold import OrderFold
from tests.helpers import crash_config, journal_records, kill_9_lives

LOOPS = int(os.environ.get("CRASH_LOOPS", "30"))


def _config(tmp: Path) -> Path:
    return crash_config(tmp, 0.3)


def test_kill_9_loop_recovers_exactly(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    log = tmp_path / "daemon.log"
    rng = random.Random(int(os.environ.get("CRASH_SEED", "7")))
    kill_9_lives(cfg, log, LOOPS, rng, (0.05, 0.8))

    records = journal_records(tmp_path / "state")

    submitted = [m.client_order_id for m in records if isinstance(m, OrderSubmitted)]
    sent = [m.client_order_id for m in records if isinstance(m, SubmitOrder)]
    assert len(submitted) == len(set(submitted)), "an order was submitted twice"
    assert len(sent) == len(set(sent)), "an order was sent twice"
    assert len(sent) >= LOOPS // 3, f"too little trading to prove anything: {len(sent)} orders"
    assert sum(isinstance(m, OrderFilled) for m in records) >= LOOPS // 3

    full = OrderFold("paper", "UNITTEST/BTC", "paper")
    restores = 0
    unprotected = 0  # a restored position whose stop has not been re-armed yet
    rearmed = 0
    for msg in records:
        if isinstance(msg, StopArmed) and unprotected:
            unprotected, rearmed = 0, rearmed + 1
        if isinstance(msg, PositionChanged) and msg.recovered:
            assert not unprotected, "a restored position never got its stop back"
            unprotected = 1 if msg.quantity != 0 else 0
            restores += 1
            p = full.position
            assert (msg.quantity, msg.avg_price, msg.realized_pnl, msg.fees) == (
                p.quantity,
                p.avg_price,
                p.realized_pnl,
                p.fees,
            ), f"restore #{restores} announced a position the journal does not hold"
        if not isinstance(msg, GroupSnapshot):
            full.apply(msg)
    assert restores >= LOOPS // 2, f"only {restores} of {LOOPS} restarts recovered a group"
    assert rearmed >= 1, "no restart restored a position with its stop"
