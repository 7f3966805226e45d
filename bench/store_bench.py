"""Order journal and PostgreSQL writer throughput, each against its naive baseline in the same run.

Journal (a temp directory on the default temp filesystem, every record made durable with
``fdatasync`` before its producer goes on, as an order must be before it leaves):

- ``naive``: one producer, ``append`` + ``flush`` per order: one sync per record;
- ``group``: :data:`PRODUCERS` concurrent producers doing the same; concurrent flushes share
  one write and one sync (group commit);
- ``bulk``: one producer appending :data:`BULK` orders per ``flush`` (the upper bound).

Writer (a throw-away database ``tradingd_bench_<random>`` on the local PostgreSQL, admin DSN
from ``TRADINGD_BENCH_PG``, default ``postgresql://postgres@127.0.0.1:5432/test``):

- ``naive``: one autocommitted single-row ``INSERT`` (or status ``UPDATE``) per row, the
  same SQL semantics as the writer, no offset bookkeeping at all;
- ``batched``: :class:`daemon.store.writer.JournalWriter` catching up a journal: batches of 1000
  records, column arrays through ``unnest``, rows and offset in one transaction.

Rows are what the records become (order events, orders, fills, positions, signals, risk
decisions, status updates), counted the same way for both.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import anyio
import asyncpg

from actors.messages import (
    Message,
    OrderAccepted,
    OrderFilled,
    OrderIntent,
    OrderSubmitted,
    PositionChanged,
    RiskApproved,
    Signal,
)
from actors.order_ids import client_order_id
from bench import event_loop_name, run_async, write_result
from daemon.journal import Journal
from daemon.metrics import Metrics
from daemon.store import TABLES, UPDATE_ORDERS, build_rows, migrate
from daemon.store.writer import JournalWriter

ADMIN_DSN = os.environ.get("TRADINGD_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
PRODUCERS = 64
BULK = 1000
JOURNAL_NAIVE_N = 1_000
JOURNAL_N = 20_000
WRITER_NAIVE_FLOWS = 100
WRITER_FLOWS = 2_000


def flow(n: int) -> list[Message]:
    """One order's life: signal, intent, approval, submit, ack, two fills, two position updates."""
    base = {"exchange": "binance", "symbol": "BTC/USDT", "ts_event": 1_700_000_000_000_000_000 + n * 10**9}
    s: dict[str, Any] = {**base, "ts_recv": base["ts_event"]}
    intent = OrderIntent(
        **s, intent_id=f"i{n}", source="bench", side="buy", order_type="limit",
        quantity=D("0.01500000"), price=D("42000.10"),
    )  # fmt: skip
    cid = client_order_id(intent.intent_id)
    submitted = OrderSubmitted(
        **s, intent_id=intent.intent_id, client_order_id=cid, side="buy", order_type="limit",
        quantity=intent.quantity, price=intent.price,
    )  # fmt: skip
    fill: dict[str, Any] = {"client_order_id": cid, "venue_order_id": f"v{n}", "side": "buy"}
    fill |= {"last_price": D("42000.10"), "fee_asset": "BTC", "liquidity": "maker", "fee": D("0.00000600")}
    pos: dict[str, Any] = {"account": "main", "avg_price": D("42000.10"), "realized_pnl": D("0")}
    pos |= {"fees": D("0.00001200"), "last_client_order_id": cid}
    return [
        Signal(**s, strategy="bench", side="buy", confidence=0.5, price=D("42000.10"), reason="bench"),
        intent,
        RiskApproved(**s, intent=intent),
        submitted,
        OrderAccepted(**s, client_order_id=cid, venue_order_id=f"v{n}"),
        OrderFilled(
            **s, **fill, trade_id=f"t{n}a", last_qty=D("0.006"), cum_qty=D("0.006"), leaves_qty=D("0.009")
        ),
        PositionChanged(**s, **pos, quantity=D("0.006")),
        OrderFilled(
            **s, **fill, trade_id=f"t{n}b", last_qty=D("0.009"), cum_qty=D("0.015"), leaves_qty=D("0")
        ),
        PositionChanged(**s, **pos, quantity=D("0.015")),
    ]


def messages(flows: int, start: int = 0) -> list[Message]:
    return [m for n in range(start, start + flows) for m in flow(n)]


# --- journal ----------------------------------------------------------------------------------


async def journal_run(directory: Path, msgs: list[Message], producers: int, per_flush: int) -> dict[str, Any]:
    metrics = Metrics()
    journal = Journal.open(directory, metrics=metrics)
    chunks = [msgs[i::producers] for i in range(producers)]

    async def produce(chunk: list[Message]) -> None:
        for i in range(0, len(chunk), per_flush):
            for m in chunk[i : i + per_flush]:
                journal.append(m)
            await journal.flush()

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for chunk in chunks:
            tg.start_soon(produce, chunk)
    elapsed = time.perf_counter() - start
    assert journal.durable_offset == len(msgs)
    journal.close()
    fsyncs = int(metrics.get("tradingd_journal_fsyncs_total"))
    return {
        "orders": len(msgs),
        "producers": producers,
        "orders_per_flush": per_flush,
        "seconds": round(elapsed, 3),
        "orders_per_s": round(len(msgs) / elapsed),
        "fsyncs": fsyncs,
        "orders_per_fsync": round(len(msgs) / max(1, fsyncs), 1),
    }


async def journal_bench(root: Path) -> dict[str, Any]:
    return {
        "naive": await journal_run(
            root / "naive", messages(JOURNAL_NAIVE_N // 9 + 1)[:JOURNAL_NAIVE_N], 1, 1
        ),
        "group": await journal_run(root / "group", messages(JOURNAL_N // 9 + 1)[:JOURNAL_N], PRODUCERS, 1),
        "bulk": await journal_run(root / "bulk", messages(JOURNAL_N // 9 + 1)[:JOURNAL_N], 1, BULK),
    }


# --- writer -----------------------------------------------------------------------------------


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def row_count(msgs: list[Message]) -> int:
    rows = build_rows("x", enumerate(msgs))
    return sum(len(r) for r in rows.tables.values()) + len(rows.updates)


async def writer_naive(dsn: str, msgs: list[Message]) -> dict[str, Any]:
    rows = build_rows("naive", enumerate(msgs))
    by_sql = {t.table: t.row_sql for t in TABLES}
    conn = await asyncpg.connect(dsn)
    try:
        start = time.perf_counter()
        for table, table_rows in rows.tables.items():
            for row in table_rows:
                await conn.execute(by_sql[table], *row)
        for update in rows.updates:
            await conn.execute(UPDATE_ORDERS, *([v] for v in update))
        elapsed = time.perf_counter() - start
    finally:
        await conn.close()
    n = row_count(msgs)
    return {"records": len(msgs), "rows": n, "seconds": round(elapsed, 3), "rows_per_s": round(n / elapsed)}


async def writer_batched(dsn: str, directory: Path, msgs: list[Message]) -> dict[str, Any]:
    journal = Journal.open(directory, metrics=Metrics())
    for m in msgs:
        journal.append(m)
    await journal.flush()
    writer = JournalWriter(journal, dsn, Metrics())
    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        await tg.start(writer.run)
        await writer.wait_committed(journal.durable_offset)
        tg.cancel_scope.cancel()
    elapsed = time.perf_counter() - start
    journal.close()
    n = row_count(msgs)
    return {
        "records": len(msgs),
        "rows": n,
        "batch": writer.batch_size,
        "seconds": round(elapsed, 3),
        "rows_per_s": round(n / elapsed),
        "records_per_s": round(len(msgs) / elapsed),
    }


async def writer_bench(root: Path) -> dict[str, Any]:
    name = f"tradingd_bench_{uuid.uuid4().hex[:10]}"
    await _admin(f"CREATE DATABASE {name}")
    try:
        dsn = ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
        await migrate(dsn)
        naive = await writer_naive(dsn, messages(WRITER_NAIVE_FLOWS, start=10**6))
        batched = await writer_batched(dsn, root / "writer", messages(WRITER_FLOWS))
    finally:
        with anyio.CancelScope(shield=True):
            await _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    return {"naive": naive, "batched": batched}


async def run_all() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tradingd-bench-") as tmp:
        root = Path(tmp)
        journal = await journal_bench(root)
        writer = await writer_bench(root)
    return {"journal": journal, "writer": writer}


def report(results: dict[str, Any]) -> None:
    j, w = results["journal"], results["writer"]
    print(f"  journal dir: {results['journal_dir']} (loop {results['loop']})")
    for name in ("naive", "group", "bulk"):
        r = j[name]
        what = f"{r['orders']} orders, {r['producers']} producers, {r['orders_per_fsync']} orders per fsync"
        print(f"  journal {name:6} {r['orders_per_s']:>9,} orders/s  ({what})")
    print(f"  journal group/naive: {results['journal_group_vs_naive']}x")
    for name in ("naive", "batched"):
        r = w[name]
        what = f"{r['rows']} rows from {r['records']} records"
        print(f"  writer  {name:7} {r['rows_per_s']:>9,} rows/s    ({what})")
    print(f"  writer batched/naive: {results['writer_batched_vs_naive']}x")


def main() -> dict[str, Any]:
    results: dict[str, Any] = run_async(run_all)
    results["loop"] = event_loop_name()
    results["journal_dir"] = tempfile.gettempdir()
    results["journal_group_vs_naive"] = round(
        results["journal"]["group"]["orders_per_s"] / results["journal"]["naive"]["orders_per_s"], 1
    )
    results["writer_batched_vs_naive"] = round(
        results["writer"]["batched"]["rows_per_s"] / results["writer"]["naive"]["rows_per_s"], 1
    )
    report(results)
    path = write_result("store_bench", results)
    print(f"  written to {path}")
    return results


if __name__ == "__main__":
    main()
