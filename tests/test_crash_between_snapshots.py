"""A crash between two snapshots forgets nothing risk or the strategy decided.

Unit: the journal fold alone (no GroupSnapshot) gives back risk's day counters (the newest
RiskDayChanged plus every approved entry after it, as risk counts), the strategy's state at its
last decision (StrategyCheckpoint, and the replay position after it) and the newest decision's
time.  Process: the daemon trades the bundled candles on paper with snapshots practically off,
is SIGKILLed at random moments, and across all its lives no decision is journaled twice, every
decision is later than the one before (the replay never starts over), and the day's entry count
risk holds at the end equals the distinct entries approved that day.
"""

from __future__ import annotations

import os
import random
from decimal import Decimal
from pathlib import Path

from actors.messages import (
    GroupSnapshot,
    OrderIntent,
    RiskApproved,
    RiskDay,
    RiskDayChanged,
    RiskRejected,
    Signal,
    StrategyCheckpoint,
    SubmitOrder,
    stamp,
)
from actors.order_fold import OrderFold
from tests.helpers import crash_config, journal_records, kill_9_lives

DAY = 86_400 * 1_000_000_000
LIVES = int(os.environ.get("BETWEEN_SNAPSHOT_LIVES", "6"))


def _intent(n: int, ts: int, reduce_only: bool = False) -> OrderIntent:
    return OrderIntent(
        intent_id=f"i{n}",
        source="strategy:test",
        side="sell" if reduce_only else "buy",
        order_type="market",
        quantity=Decimal("1"),
        reduce_only=reduce_only,
        stop_loss=None if reduce_only else Decimal("0.9"),
        **stamp("paper", "X/Y", ts),
    )


def test_fold_recovers_risk_day_strategy_state_and_decision_time_without_a_snapshot() -> None:
    fold = OrderFold("paper", "X/Y", "paper")
    day = 20_000
    t0 = day * DAY + 5
    fold.apply(
        RiskDayChanged(
            day=RiskDay(day=day, entries=0, start_equity=Decimal("1.5")),
            why="new_day",
            **stamp("paper", "X/Y", t0),
        )
    )
    for n in range(3):
        fold.apply(_intent(n, t0 + n))
        fold.apply(RiskApproved(intent=_intent(n, t0 + n), **stamp("paper", "X/Y", t0 + n)))
    fold.apply(RiskApproved(intent=_intent(9, t0 + 9, reduce_only=True), **stamp("paper", "X/Y", t0 + 9)))
    fold.apply(
        StrategyCheckpoint(strategy="s", state=b"\x01", reached_ns=t0 + 7, **stamp("paper", "X/Y", t0 + 7))
    )
    assert fold.risk_day == RiskDay(day=day, entries=3, start_equity=Decimal("1.5"))
    assert (fold.strategy, fold.strategy_state, fold.last_event_ns) == ("s", b"\x01", t0 + 7)
    assert fold.decision_ns == t0 + 2
    assert not fold.is_empty
    breach = RiskDay(day=day, entries=3, start_equity=Decimal("1.5"), breach="daily PnL -1 breached")
    fold.apply(RiskDayChanged(day=breach, why="breach", **stamp("paper", "X/Y", t0 + 10)))
    assert fold.risk_day is not None and fold.risk_day.breach  # the REDUCING latch survives
    # the stop-monitor's exits follow positions, not the replay: they never move the floor
    stop_exit = OrderIntent(
        intent_id="x", source="stop-monitor", side="sell", order_type="market", quantity=Decimal(1),
        reduce_only=True, **stamp("paper", "X/Y", t0 + 10**12),
    )  # fmt: skip
    fold.apply(stop_exit)
    assert fold.decision_ns == t0 + 2


def _config(tmp: Path) -> Path:
    return crash_config(tmp, 3600)


def test_kill_9_between_snapshots_decides_nothing_twice(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    log = tmp_path / "daemon.log"
    rng = random.Random(int(os.environ.get("CRASH_SEED", "11")))
    kill_9_lives(cfg, log, LIVES, rng, (0.2, 1.2))

    records = journal_records(tmp_path / "state")
    snapshots = [m for m in records if isinstance(m, GroupSnapshot)]
    assert len(snapshots) == 1, "snapshots were taken: the test would not test a crash between them"

    signals = [(m.ts_event, m.side, m.reason) for m in records if isinstance(m, Signal)]
    intents = [m.intent_id for m in records if isinstance(m, OrderIntent) and m.source.startswith("strategy")]
    decided = [
        m.intent.intent_id
        for m in records
        if isinstance(m, RiskApproved | RiskRejected) and m.intent.source.startswith("strategy")
    ]
    assert len(signals) >= 3, f"too little trading to prove anything: {len(signals)} signals"
    assert len(signals) == len(set(signals)), "a signal was journaled twice"
    assert len(intents) == len(set(intents)), "an intent was journaled twice"
    assert len(decided) == len(set(decided)), "risk decided an intent twice"
    times = [ts for ts, _, _ in signals]
    assert times == sorted(times) and len(set(times)) == len(times), "the replay went back in time"
    sent = [m.client_order_id for m in records if isinstance(m, SubmitOrder)]
    assert len(sent) == len(set(sent)), "an order was sent twice"

    # risk's counters at the end (the shutdown snapshot) are those of a run without crashes
    (snap,) = snapshots
    assert snap.risk_day is not None and snap.risk_day.day >= 0
    day = snap.risk_day.day
    approved_entries = {
        m.intent.intent_id for m in records if isinstance(m, RiskApproved) and not m.intent.reduce_only
    }
    rolls = [m for m in records if isinstance(m, RiskDayChanged) and m.day.day == day and m.why == "new_day"]
    assert len(rolls) == 1, "the day's counters were started twice"
    after_roll = records.index(rolls[0])
    today = {
        m.intent.intent_id
        for m in records[after_roll:]
        if isinstance(m, RiskApproved) and not m.intent.reduce_only
    }
    assert today <= approved_entries
    assert snap.risk_day.entries == len(today)
