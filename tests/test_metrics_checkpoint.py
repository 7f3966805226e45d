"""Metric checkpoints in PostgreSQL (daemon/metrics_checkpoint.py): rows per sample; an outage only skips."""

from __future__ import annotations

import anyio
import pytest

from daemon.metrics import Metrics
from daemon.metrics_checkpoint import checkpoint_loop, write_checkpoint
from daemon.store import migrate
from tests.helpers import free_port
from tests.test_store import query, temp_database

pytestmark = pytest.mark.anyio


async def test_every_finite_sample_becomes_a_row_queryable_by_labels() -> None:
    m = Metrics()
    m.inc("tradingd_orders_total", {"status": "filled"}, 3)
    m.inc("tradingd_orders_total", {"status": "rejected"})
    m.set("tradingd_feed_lag_seconds", float("nan"))  # not a number: skipped
    m.set("tradingd_redis_up", 1.0)
    with anyio.fail_after(30):
        async with temp_database() as db:
            await migrate(db)
            # Three samples and tradingd_build_info (NaN skipped).
            assert await write_checkpoint(db, m, now_ns=1_000_000_000_000) == 4
            assert await write_checkpoint(db, m, now_ns=1_000_000_000_000) == 0  # same instant: no doubles
            m.inc("tradingd_orders_total", {"status": "filled"})
            await write_checkpoint(db, m, now_ns=2_000_000_000_000)
            rows = await query(
                db,
                "SELECT ts_ns, value FROM metrics_checkpoints WHERE name = 'tradingd_orders_total' "
                """AND labels @> '{"status": "filled"}' ORDER BY ts_ns""",
            )
    assert rows == [{"ts_ns": 1_000_000_000_000, "value": 3.0}, {"ts_ns": 2_000_000_000_000, "value": 4.0}]


async def test_an_unreachable_database_is_counted_and_never_raises() -> None:
    m = Metrics()
    m.inc("tradingd_x_total")
    dsn = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    with anyio.move_on_after(1.0):
        await checkpoint_loop(dsn, m, 0.1, lambda: True)
    assert m.get("tradingd_metrics_checkpoint_errors_total") >= 3
