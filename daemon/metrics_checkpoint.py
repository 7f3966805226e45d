"""Periodic copies of every metric into PostgreSQL's ``metrics_checkpoints`` table.

Every ``store.metrics_checkpoint_s`` seconds (0 = off) the whole registry (owned series and
collected ones: actors, channels, feeds, mirror, journal) is written as one batch,
``(name, labels jsonb, value, ts_ns, taken_at)``, so the history of a counter outlives the
process and can be queried next to orders and fills::

    SELECT taken_at, value FROM metrics_checkpoints
     WHERE name = 'tradingd_orders_total' AND labels @> '{"status": "filled"}' ORDER BY taken_at;

PostgreSQL being down only skips checkpoints (counted in
``tradingd_metrics_checkpoint_errors_total``, logged once per outage); nothing waits on it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import anyio
import asyncpg
import msgspec

from daemon.metrics import Metrics

log = logging.getLogger("tradingd.store")
_X = {"component": "store"}
_JSON = msgspec.json.Encoder()
INSERT = """
INSERT INTO metrics_checkpoints (name, labels, value, ts_ns, taken_at)
SELECT name, labels::jsonb, value, $4::int8, ns_to_timestamptz($4::int8)
  FROM unnest($1::text[], $2::text[], $3::float8[]) AS t(name, labels, value)
ON CONFLICT DO NOTHING
"""


async def write_checkpoint(dsn: str, metrics: Metrics, now_ns: int | None = None) -> int:
    """Write one checkpoint of every finite sample; returns the rows written."""
    samples = [(n, labels, v) for n, labels, v in metrics.samples() if math.isfinite(v)]
    if not samples:
        return 0
    names = [n for n, _, _ in samples]
    labels = [_JSON.encode(dict(lbl)).decode() for _, lbl, _ in samples]
    values = [float(v) for _, _, v in samples]
    ts = time.time_ns() if now_ns is None else now_ns
    conn = await asyncpg.connect(dsn, timeout=5.0)
    try:
        status: str = await conn.execute(INSERT, names, labels, values, ts)
    finally:
        await conn.close(timeout=2.0)
    return int(status.rsplit(" ", 1)[-1])


async def checkpoint_loop(dsn: str, metrics: Metrics, interval_s: float, ready: Callable[[], bool]) -> None:
    """Write a checkpoint every ``interval_s`` once ``ready()`` (the schema is migrated); never raises."""
    metrics.describe(
        "tradingd_metrics_checkpoint_errors_total", "counter", "Metric checkpoints PostgreSQL did not take."
    )
    failing = False
    while True:
        await anyio.sleep(interval_s)
        if not ready():
            continue
        try:
            with anyio.fail_after(30):
                await write_checkpoint(dsn, metrics)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            metrics.inc("tradingd_metrics_checkpoint_errors_total")
            if not failing:
                log.warning("metrics checkpoint not written (%r); will retry", exc, extra=_X)
            failing = True
            continue
        if failing:
            log.info("metrics checkpoints written again", extra=_X)
        failing = False
