"""End to end with the PostgreSQL store: the paper run's orders and fills land in PostgreSQL
exactly as the order actor saw them, through the journal (fsynced before each order leaves)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import anyio
import asyncpg
import pytest

from daemon.app import Daemon
from daemon.config import parse_config
from daemon.metrics import Metrics
from tests.helpers import ROOT, make_config, unique_prefix

pytestmark = pytest.mark.anyio
ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def readme_queries() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("```sql\n", 1)[1].split("```", 1)[0]
    return [q.strip() for q in block.split(";") if "SELECT" in q]


@pytest.fixture
async def database() -> AsyncIterator[str]:
    name = f"tradingd_e2e_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(ADMIN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_orders_and_fills_reach_postgres_through_the_journal(tmp_path: Path, database: str) -> None:
    text = make_config(
        tmp_path / "state",
        prefix=unique_prefix(),
        speed=0.0,
        trades_group=False,
        redis_enabled=False,
        store_dsn=database,
    )
    daemon = Daemon(parse_config(text), tmp_path / "config.toml", Metrics())
    assert daemon.persistence is not None
    store = daemon.persistence
    async with anyio.create_task_group() as tg:
        tg.start_soon(daemon.run)
        with anyio.fail_after(60):
            while ("paper", "UNITTEST/BTC") not in daemon.supervisor.groups:
                await anyio.sleep(0.02)
            group = daemon.supervisor.groups[("paper", "UNITTEST/BTC")]
            while group.feed.status != "stopped" or store.journal.durable_offset < store.journal.next_offset:
                await anyio.sleep(0.05)
            while not store.migrated or store.writer.lag() > 0:
                await anyio.sleep(0.05)
        assert daemon.readiness() == []
        fills = group.order.counts["filled"] + group.order.counts["partially_filled"]
        submitted = group.order.counts["submitted"]
        position = group.state.position
        tg.cancel_scope.cancel()
    assert submitted >= 2 and fills >= 2
    conn = await asyncpg.connect(database)
    try:
        assert await conn.fetchval("SELECT count(*) FROM orders") == submitted
        assert await conn.fetchval("SELECT count(*) FROM fills") == fills
        assert await conn.fetchval("SELECT count(DISTINCT client_order_id) FROM fills") <= submitted
        net = await conn.fetchval(
            "SELECT coalesce(sum(CASE WHEN side = 'buy' THEN quantity ELSE -quantity END), 0) FROM fills"
        )
        assert Decimal(net) == position  # the store's fills add up to the daemon's position
        for query in readme_queries():  # the queries the README shows users must run as shown
            await conn.fetch(query)
        pnl = await conn.fetch(readme_queries()[2])
        assert pnl and all(r["realized_pnl"] is not None for r in pnl)
    finally:
        await conn.close()
