"""What PostgreSQL knows that the journal lost: a store ahead of the journal is a finding and moves
the journal past the store's offsets; used client ids and the newest decision become a group's floor.
Against a real, fresh PostgreSQL database."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import pytest

from actors.messages import OrderSubmitted, stamp
from daemon.config import StoreSection
from daemon.journal import Journal
from daemon.journal_repair import recover
from daemon.metrics import Metrics
from daemon.persistence import Persistence
from daemon.recovery_floor import read_store_view
from daemon.store.migrations import migrate
from tests.helpers import free_port
from tests.test_store import temp_database

TS = 1_750_000_000_000_000_000


def _persistence(tmp: Path, dsn: str) -> Persistence:
    cfg = StoreSection(enabled=True, postgres=True, dsn=dsn, snapshot_interval_s=3600)
    return Persistence(cfg, tmp, Metrics())


async def _execute(dsn: str, sql: str, *args: object) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


@pytest.mark.anyio
async def test_store_ahead_of_the_journal_is_a_finding_and_no_offset_is_reused(tmp_path: Path) -> None:
    async with temp_database() as dsn:
        await migrate(dsn)
        p = _persistence(tmp_path, dsn)
        for i in range(5):
            p.offer(
                OrderSubmitted(
                    intent_id=f"i{i}", client_order_id=f"td-{i}", side="buy", order_type="market",
                    quantity=1, **stamp("paper", "X/Y", TS + i),  # type: ignore[arg-type]
                )
            )  # fmt: skip
        await p.journal.flush()
        # the store copied 500 records of this journal: the journal lost 495 (a deleted segment)
        await _execute(
            dsn, "INSERT INTO writer_offsets (journal_id, next_offset) VALUES ($1, 500)", p.journal.journal_id
        )
        await p.check_store([])
        assert p.findings and "PostgreSQL has this journal's records up to offset 499" in p.findings[0]
        assert p.journal.next_offset == 500
        assert any("journal damaged" in r for r in p.readiness())
        await p.journal.aclose()
        again = Journal.open(tmp_path / "journal", metrics=Metrics())
        assert again.findings and again.next_offset >= 500  # durable until an operator recovers
        again.close()
        assert recover(tmp_path / "journal")[0] == 0
        clean = Journal.open(tmp_path / "journal", metrics=Metrics())
        assert clean.findings == [] and clean.next_offset >= 500
        clean.close()


@pytest.mark.anyio
async def test_store_floor_gives_used_ids_and_newest_decision(tmp_path: Path) -> None:
    async with temp_database() as dsn:
        await migrate(dsn)
        await _execute(
            dsn,
            """INSERT INTO orders (client_order_id, intent_id, exchange, symbol, side, type, quantity, status,
                                   created_ts_ns, created_at, updated_ts_ns, updated_at)
               VALUES ('td-used', 'i-used', 'binance', 'BTCUSDT', 'buy', 'market', 1, 'filled',
                       $1, ns_to_timestamptz($1), $1, ns_to_timestamptz($1))""",
            TS,
        )
        for kind, source, ts in (("Signal", None, TS + 5), ("OrderIntent", "stop-monitor", TS + 99)):
            payload = json.dumps({"source": source} if source else {})
            await _execute(
                dsn,
                """INSERT INTO order_events (journal_id, journal_offset, kind, exchange, symbol, ts_event_ns,
                                             ts_recv_ns, ts_event, payload)
                   VALUES ('old', $1, $2, 'binance', 'BTCUSDT', $3, $3, ns_to_timestamptz($3), $4::jsonb)""",
                ts - TS, kind, ts, payload,
            )  # fmt: skip
        p = _persistence(tmp_path, dsn)
        await p.check_store([("binance", "BTCUSDT")])
        folds = p.recover()
        fold = folds[("binance", "BTCUSDT")]
        assert "td-used" in fold.client_order_ids()
        assert fold.decision_ns == TS + 5  # the stop-monitor's exit is no strategy decision
        assert p.findings == []
        p.journal.close()


@pytest.mark.anyio
async def test_unreachable_store_is_no_error(tmp_path: Path) -> None:
    view = await read_store_view(f"postgresql://postgres@127.0.0.1:{free_port()}/x", "j", [("binance", "X")])
    assert not view.reachable and view.error
