"""The PostgreSQL store against real servers: migrations, the journal writer, replays, restarts,
poison records, and a private cluster stopped with ``pg_ctl stop -m immediate`` mid-run.

Writer tests share one fresh database per module (``tradingd_test_<random>`` on
127.0.0.1:5432, dropped afterwards); migration tests make their own so they start empty.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from decimal import Decimal as D
from pathlib import Path
from typing import Any, TypeVar

import anyio
import asyncpg  # type: ignore[import-untyped]
import pytest

from actors.messages import (
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderIntent,
    OrderRejected,
    OrderSubmitted,
    PositionChanged,
    RiskApproved,
    RiskRejected,
    ServiceChanged,
    Signal,
    SubmitOrder,
    Trade,
)
from actors.oco import leg_ids
from actors.order_ids import client_order_id
from daemon.journal import Journal
from daemon.metrics import Metrics
from daemon.service_watch import ServiceWatch
from daemon.store import LOCK_KEY, MigrationError, migrate, migrate_main
from daemon.store.writer import JournalWriter
from tests.helpers import free_port

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"
OUTAGE_S = 30.0
"""How long the private cluster stays down in the outage test (the whole test takes ~35 s)."""
DATA_TABLES = "orders, order_events, fills, positions, signals, risk_decisions, writer_offsets"
T0 = 1_700_000_000_000_000_000
M = TypeVar("M", bound=Message)


def num(value: object) -> str:
    """A NUMERIC as fixed-point text: digits and scale exactly as stored."""
    assert isinstance(value, Decimal)
    return f"{value:f}"


def dsn_for(name: str) -> str:
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def temp_database() -> AsyncIterator[str]:
    name = f"tradingd_test_{uuid.uuid4().hex[:12]}"
    await _admin(f"CREATE DATABASE {name}")
    try:
        yield dsn_for(name)
    finally:
        with anyio.CancelScope(shield=True):
            await _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def dsn() -> Iterator[str]:
    """A fresh, migrated database for this module's writer tests."""
    name = f"tradingd_test_{uuid.uuid4().hex[:12]}"
    anyio.run(_admin, f"CREATE DATABASE {name}")
    try:
        anyio.run(migrate, dsn_for(name))
        yield dsn_for(name)
    finally:
        anyio.run(_admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def query(dsn: str, sql: str, *args: object) -> list[dict[str, object]]:
    conn = await asyncpg.connect(dsn)
    try:
        if ";" in sql and not args:  # several statements: the simple protocol
            await conn.execute(sql)
            return []
        return [dict(r) for r in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


@pytest.fixture
def clean(dsn: str) -> str:
    anyio.run(query, dsn, f"TRUNCATE {DATA_TABLES}")
    return dsn


# --- a realistic order flow -------------------------------------------------------------------


def order_flow(n: int = 0, t0: int = T0) -> list[Message]:
    """Signal -> intent -> approved -> submitted -> accepted -> partial fill -> fill -> position,
    a rejected intent, a second order that is cancelled, and market data (not stored)."""

    def mk(cls: type[M], k: int, **fields: Any) -> M:
        ts = t0 + k * 1_000_000
        return cls(exchange="binance", symbol="BTC/USDT", ts_event=ts, ts_recv=ts + 250, **fields)

    def intent(k: int, qty: str) -> OrderIntent:
        return mk(OrderIntent, k, intent_id=f"brk-{n}-{k}", source="breakout", side="buy", order_type="limit",
                  quantity=D(qty), price=D("42000.10"), stop_loss=D("41000"), reason="channel")  # fmt: skip

    def submit(k: int, it: OrderIntent) -> list[Message]:
        f = {"intent_id": it.intent_id, "client_order_id": client_order_id(it.intent_id), "side": it.side}
        f |= {"order_type": it.order_type, "quantity": it.quantity, "price": it.price}
        return [mk(SubmitOrder, k, **f), mk(OrderSubmitted, k, **f)]

    i1, i2, i3 = intent(1, "0.01500000"), intent(10, "5"), intent(20, "0.002")
    c1, c3 = client_order_id(i1.intent_id), client_order_id(i3.intent_id)
    fill = {
        "client_order_id": c1,
        "side": "buy",
        "fee_asset": "BTC",
        "liquidity": "maker",
        "venue_order_id": f"v{n}-1",
    }
    fill1 = mk(OrderFilled, 6, trade_id=f"t{n}-1", last_qty=D("0.00600000"), last_price=D("42000.10"),
               cum_qty=D("0.00600000"), leaves_qty=D("0.00900000"), fee=D("0.00000600"), **fill)  # fmt: skip
    fill2 = mk(OrderFilled, 8, trade_id=f"t{n}-2", last_qty=D("0.00900000"), last_price=D("41999.95"),
               cum_qty=D("0.01500000"), leaves_qty=D("0E-8"), fee=D("0.00000900"), **fill)  # fmt: skip
    pos = {"account": "main", "last_client_order_id": c1}
    pos1 = mk(PositionChanged, 7, quantity=D("0.00600000"), avg_price=D("42000.10"), realized_pnl=D("0"),
              fees=D("0.00000600"), **pos)  # fmt: skip
    pos2 = mk(PositionChanged, 9, quantity=D("0.01500000"), avg_price=D("42000.01"),
              realized_pnl=D("-0.00000001"), fees=D("0.00001500"), **pos)  # fmt: skip
    return [
        mk(
            Signal, 0, strategy="breakout", side="buy", confidence=0.75, price=D("42000.10"), reason="channel"
        ),
        i1,
        mk(RiskApproved, 2, intent=i1),
        *submit(3, i1),
        mk(Trade, 4, price=D("42000"), size=D("0.1")),
        mk(OrderAccepted, 5, client_order_id=c1, venue_order_id=f"v{n}-1"),
        fill1,
        pos1,
        fill2,
        pos2,
        mk(RiskRejected, 10, intent=i2, rule="max_position", reason="5 > 0.05 BTC"),
        i3,
        mk(RiskApproved, 21, intent=i3),
        *submit(22, i3),
        mk(OrderAccepted, 23, client_order_id=c3, venue_order_id=f"v{n}-3"),
        mk(OrderRejected, 24, client_order_id=c3, reason="cancel rejected: too late"),
        mk(OrderCanceled, 25, client_order_id=c3, reason="user"),
    ]


def open_journal(tmp_path: Path, name: str = "journal") -> Journal:
    return Journal.open(tmp_path / name, metrics=Metrics())


async def append_all(journal: Journal, msgs: list[Message]) -> int:
    for m in msgs:
        journal.append(m)
    return await journal.flush()


@contextlib.asynccontextmanager
async def running(writer: JournalWriter) -> AsyncIterator[JournalWriter]:
    async with anyio.create_task_group() as tg:
        await tg.start(writer.run)
        yield writer
        tg.cancel_scope.cancel()


async def write_through(journal: Journal, dsn: str, metrics: Metrics | None = None) -> Metrics:
    metrics = metrics or Metrics()
    async with running(JournalWriter(journal, dsn, metrics, max_delay=0.01)) as writer:
        await writer.wait_committed(journal.durable_offset)
    return metrics


async def tables(dsn: str) -> dict[str, list[dict[str, object]]]:
    keys = {
        "orders": "client_order_id",
        "order_events": "journal_id, journal_offset",
        "fills": "client_order_id, trade_id",
        "positions": "account, exchange, symbol",
        "signals": "journal_offset",
        "risk_decisions": "journal_offset",
        "writer_offsets": "journal_id",
    }
    return {t: await query(dsn, f"SELECT * FROM {t} ORDER BY {k}") for t, k in keys.items()}


# --- migrations -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_migrations_apply_once_and_are_idempotent() -> None:
    with anyio.fail_after(30):
        async with temp_database() as db:
            assert await migrate(db) == ["0001", "0002"]
            assert await migrate(db) == []
            rows = await query(
                db, "SELECT version, name, length(checksum) AS n FROM schema_migrations ORDER BY version"
            )
            assert rows == [
                {"version": "0001", "name": "initial", "n": 64},
                {"version": "0002", "name": "unknown_status", "n": 64},
            ]
            names = {r["tablename"] for r in await query(db, "SELECT tablename FROM pg_tables")}
            assert set(DATA_TABLES.split(", ")) | {"snapshots", "metrics_checkpoints"} <= names


@pytest.mark.anyio
async def test_concurrent_migrations_are_serialized_by_the_advisory_lock() -> None:
    with anyio.fail_after(30):
        async with temp_database() as db:
            holder = await asyncpg.connect(db)
            await holder.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
            results: list[list[str]] = []

            async def run() -> None:
                results.append(await migrate(db))

            async with anyio.create_task_group() as tg:
                tg.start_soon(run)
                tg.start_soon(run)
                await anyio.sleep(0.5)
                assert results == []  # both wait for the lock
                await holder.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
            await holder.close()
            assert sorted(results) == [[], ["0001", "0002"]]
            assert await query(db, "SELECT count(*) AS n FROM schema_migrations") == [{"n": 2}]


@pytest.mark.anyio
async def test_migration_order_failure_rollback_and_edited_file(tmp_path: Path) -> None:
    (tmp_path / "0002_b.sql").write_text("CREATE TABLE b (a_id int REFERENCES a (id));")
    (tmp_path / "0001_a.sql").write_text("CREATE TABLE a (id int PRIMARY KEY);")
    (tmp_path / "notes.txt").write_text("not a migration")
    with anyio.fail_after(30):
        async with temp_database() as db:
            assert await migrate(db, directory=tmp_path) == ["0001", "0002"]
            (tmp_path / "0003_bad.sql").write_text("CREATE TABLE c (x int); SELECT 1 / 0;")
            with pytest.raises(MigrationError, match="0003_bad failed"):
                await migrate(db, directory=tmp_path)
            assert await query(db, "SELECT to_regclass('c') IS NULL AS gone") == [{"gone": True}]
            (tmp_path / "0003_bad.sql").unlink()
            (tmp_path / "0001_a.sql").write_text("CREATE TABLE a (id bigint PRIMARY KEY);")
            with pytest.raises(MigrationError, match="changed after it was applied"):
                await migrate(db, directory=tmp_path)
            versions = await query(db, "SELECT version FROM schema_migrations ORDER BY version")
            assert [r["version"] for r in versions] == ["0001", "0002"]


@pytest.mark.anyio
async def test_migrate_main(capsys: pytest.CaptureFixture[str]) -> None:
    with anyio.fail_after(30):
        async with temp_database() as db:
            assert await migrate_main(db) == 0
            assert "applied migrations 0001" in capsys.readouterr().out
            assert await migrate_main(db) == 0
            assert "up to date at 0002" in capsys.readouterr().out
        assert await migrate_main(f"postgresql://postgres@127.0.0.1:{free_port()}/x") == 1
        assert "migration failed" in capsys.readouterr().err


# --- the writer -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_writer_stores_an_order_flow_with_exact_numbers(clean: str, tmp_path: Path) -> None:
    journal = open_journal(tmp_path)
    msgs = order_flow()
    with anyio.fail_after(20):
        assert await append_all(journal, msgs) == len(msgs)
        metrics = await write_through(journal, clean)
    c1 = client_order_id("brk-0-1")
    t = await tables(clean)
    assert [(o["client_order_id"], o["status"]) for o in t["orders"]] == sorted(
        [(c1, "filled"), (client_order_id("brk-0-20"), "canceled")]
    )
    o1 = next(o for o in t["orders"] if o["client_order_id"] == c1)
    assert (num(o1["quantity"]), num(o1["price"]), num(o1["filled_qty"])) == (
        "0.01500000",
        "42000.10",
        "0.01500000",
    )
    assert (o1["venue_order_id"], o1["intent_id"], o1["type"], o1["side"]) == (
        "v0-1",
        "brk-0-1",
        "limit",
        "buy",
    )
    assert (o1["created_ts_ns"], o1["updated_ts_ns"]) == (T0 + 3_000_000, T0 + 8_000_000)
    assert [(f["trade_id"], num(f["quantity"]), num(f["price"]), num(f["fee"])) for f in t["fills"]] == [
        ("t0-1", "0.00600000", "42000.10", "0.00000600"),
        ("t0-2", "0.00900000", "41999.95", "0.00000900"),
    ]
    (pos,) = t["positions"]
    assert (num(pos["quantity"]), num(pos["avg_price"]), num(pos["realized_pnl"]), num(pos["fees"])) == (
        "0.01500000",
        "42000.01",
        "-0.00000001",
        "0.00001500",
    )
    assert [(r["intent_id"], r["approved"], r["rule"]) for r in t["risk_decisions"]] == [
        ("brk-0-1", True, None),
        ("brk-0-10", False, "max_position"),
        ("brk-0-20", True, None),
    ]
    assert [num(r["quantity"]) for r in t["risk_decisions"]] == ["0.01500000", "5", "0.002"]
    assert [(s["strategy"], s["confidence"], num(s["price"])) for s in t["signals"]] == [
        ("breakout", 0.75, "42000.10")
    ]
    events = t["order_events"]
    assert len(events) == len(msgs) - 1  # all but the Trade
    assert [e["journal_offset"] for e in events] == [
        i for i, m in enumerate(msgs) if not isinstance(m, Trade)
    ]
    fill_event = next(e for e in events if e["kind"] == "OrderFilled")
    assert '"last_qty": "0.00600000"' in str(fill_event["payload"]) and fill_event["client_order_id"] == c1
    assert t["writer_offsets"][0]["next_offset"] == len(msgs)
    assert metrics.get("tradingd_store_records_total") == len(msgs)
    assert metrics.get("tradingd_store_skipped_total") == 1
    assert metrics.get("tradingd_store_rows_total", {"table": "fills"}) == 2
    assert metrics.get("tradingd_store_rows_total", {"table": "order_events"}) == len(msgs) - 1
    journal.close()


def oco_flow() -> tuple[list[Message], str, str]:
    """Two OCO lists: one whose stop leg fires (the take-profit leg expires first, then the stop
    leg fills), one canceled (both legs).  Returns the messages and the two list ids."""

    def mk(cls: type[M], k: int, **fields: Any) -> M:
        ts = T0 + k * 1_000_000
        return cls(exchange="binance", symbol="BTC/USDT", ts_event=ts, ts_recv=ts + 250, **fields)

    out: list[Message] = []
    cids = []
    for n in (1, 2):
        cid = client_order_id(f"stop:x:native:{n}:{n}")
        cids.append(cid)
        f = {"intent_id": f"stop:x:native:{n}:{n}", "client_order_id": cid, "side": "sell"}
        f |= {"order_type": "stop_market", "quantity": D("0.015"), "stop_price": D("41000")}
        out.append(mk(OrderSubmitted, 10 * n, oco_take_profit=D("43000"), oco_legs=leg_ids(cid), **f))
        out += [
            mk(OrderAccepted, 10 * n + 1, client_order_id=leg, venue_order_id=leg) for leg in leg_ids(cid)
        ]
    sl1, tp1 = leg_ids(cids[0])
    out.append(mk(OrderExpired, 13, client_order_id=tp1))
    out.append(
        mk(
            OrderFilled,
            14,
            client_order_id=sl1,
            venue_order_id=sl1,
            trade_id="t-oco",
            side="sell",
            last_qty=D("0.015"),
            last_price=D("40990"),
            cum_qty=D("0.015"),
            leaves_qty=D("0"),
            fee=D("0"),
            fee_asset="USDT",
            liquidity="taker",
        )
    )
    out += [mk(OrderCanceled, 23, client_order_id=leg) for leg in leg_ids(cids[1])]
    return out, cids[0], cids[1]


@pytest.mark.anyio
async def test_an_oco_list_is_one_order_row_moved_by_its_legs(clean: str, tmp_path: Path) -> None:
    journal = open_journal(tmp_path)
    msgs, fired, canceled = oco_flow()
    with anyio.fail_after(20):
        await append_all(journal, msgs)
        await write_through(journal, clean)
    t = await tables(clean)
    rows = {o["client_order_id"]: o for o in t["orders"]}
    assert set(rows) == {fired, canceled}  # the lists, not their legs
    assert (rows[fired]["status"], num(rows[fired]["filled_qty"]), rows[fired]["venue_order_id"]) == (
        "filled",
        "0.015",
        leg_ids(fired)[0],
    )
    assert rows[canceled]["status"] == "canceled"
    assert [(f["client_order_id"], f["trade_id"]) for f in t["fills"]] == [(leg_ids(fired)[0], "t-oco")]
    journal.close()


@pytest.mark.anyio
async def test_replaying_the_journal_writes_nothing_twice(clean: str, tmp_path: Path) -> None:
    journal = open_journal(tmp_path)
    with anyio.fail_after(30):
        await append_all(journal, order_flow(0) + order_flow(1, T0 + 10**12))
        await write_through(journal, clean)
        before = await tables(clean)
        again = await write_through(journal, clean)  # a new writer resumes at the end: nothing to do
        assert again.get("tradingd_store_records_total") == 0
        await query(clean, "UPDATE writer_offsets SET next_offset = 0")  # replay everything
        replay = await write_through(journal, clean)
    assert replay.get("tradingd_store_records_total") == journal.durable_offset
    for table in ("order_events", "fills", "signals", "risk_decisions", "positions"):
        assert replay.get("tradingd_store_rows_total", {"table": table}) == 0, table
    after = await tables(clean)
    for rows in (before["writer_offsets"], after["writer_offsets"]):
        rows[0].pop("updated_at")
    assert after == before
    journal.close()


@pytest.mark.anyio
async def test_restart_resumes_from_the_committed_offset(clean: str, tmp_path: Path) -> None:
    journal = open_journal(tmp_path)
    first, second = order_flow(0), order_flow(1, T0 + 10**12)
    with anyio.fail_after(30):
        await append_all(journal, first)
        await write_through(journal, clean)
        journal.close()  # the process goes away ...
        journal = open_journal(tmp_path)  # ... and comes back with more to write
        await append_all(journal, second)
        assert await query(clean, "SELECT next_offset FROM writer_offsets") == [{"next_offset": len(first)}]
        metrics = await write_through(journal, clean)
    assert metrics.get("tradingd_store_records_total") == len(second)
    n_events = await query(
        clean, "SELECT count(*) AS n, count(DISTINCT journal_offset) AS d FROM order_events"
    )
    assert n_events == [{"n": len(first) + len(second) - 2, "d": len(first) + len(second) - 2}]
    assert len(await query(clean, "SELECT 1 FROM fills")) == 4
    journal.close()


@pytest.mark.anyio
async def test_rows_and_offset_commit_together(clean: str, tmp_path: Path) -> None:
    """A transaction that fails at its offset update leaves no rows behind; after the fix, all arrive once."""
    await query(
        clean,
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE 'refused'; END $$;"
        " CREATE TRIGGER refuse BEFORE UPDATE ON writer_offsets FOR EACH ROW EXECUTE FUNCTION refuse();",
    )
    journal, metrics = open_journal(tmp_path), Metrics()
    try:
        with anyio.fail_after(30):
            await append_all(journal, order_flow())
            writer = JournalWriter(
                journal, clean, metrics, max_delay=0.01, backoff_initial=0.05, backoff_max=0.2
            )
            async with running(writer):
                while metrics.get("tradingd_store_errors_total", {"error": "RaiseError"}) < 3:
                    await anyio.sleep(0.02)
                assert await query(clean, "SELECT count(*) AS n FROM order_events") == [{"n": 0}]
                assert writer.committed_offset == 0 and writer.lag() == journal.durable_offset
                await query(clean, "DROP TRIGGER refuse ON writer_offsets; DROP FUNCTION refuse();")
                await writer.wait_committed(journal.durable_offset)
    finally:
        await query(
            clean, "DROP TRIGGER IF EXISTS refuse ON writer_offsets; DROP FUNCTION IF EXISTS refuse();"
        )
    assert await query(clean, "SELECT count(*) AS n FROM order_events") == [{"n": journal.durable_offset - 1}]
    journal.close()


def _reject(k: int, reason: str) -> OrderRejected:
    return OrderRejected(
        exchange="binance",
        symbol="BTC/USDT",
        ts_event=T0 + k,
        ts_recv=T0 + k,
        client_order_id=f"c{k}",
        reason=reason,
    )


@pytest.mark.anyio
async def test_poison_record_is_skipped_after_retries(clean: str, tmp_path: Path) -> None:
    journal, metrics = open_journal(tmp_path), Metrics()
    msgs = [_reject(0, "ok"), _reject(1, "venue says \x00"), _reject(2, "ok too")]  # jsonb refuses \u0000
    with anyio.fail_after(30):
        await append_all(journal, msgs)
        await write_through(journal, clean, metrics)
    assert metrics.get("tradingd_store_poison_total") == 1
    assert metrics.get("tradingd_store_errors_total", {"error": "poison"}) == 1
    offsets = await query(clean, "SELECT journal_offset FROM order_events ORDER BY 1")
    assert [r["journal_offset"] for r in offsets] == [0, 2]
    assert await query(clean, "SELECT next_offset FROM writer_offsets") == [{"next_offset": 3}]
    journal.close()


@pytest.mark.anyio
async def test_a_run_of_poison_stops_skipping(clean: str, tmp_path: Path) -> None:
    journal, metrics = open_journal(tmp_path), Metrics()
    await append_all(journal, [_reject(k, "\x00") for k in range(5)])
    writer = JournalWriter(journal, clean, metrics, max_delay=0.01, backoff_initial=0.01, max_poison_run=2)
    with anyio.fail_after(30):
        async with running(writer):
            while metrics.get("tradingd_store_errors_total", {"error": "PoisonStorm"}) < 2:
                await anyio.sleep(0.02)
    assert metrics.get("tradingd_store_poison_total") == 2 and writer.committed_offset == 2
    journal.close()


# --- PostgreSQL going away --------------------------------------------------------------------

PG_BIN = max(Path("/usr/lib/postgresql").glob("*/bin"), default=None)


class Cluster:
    """A private PostgreSQL cluster in a temp dir on a free port (run as ``postgres`` when we are root)."""

    def __init__(self) -> None:
        assert PG_BIN is not None
        self.root = Path(tempfile.mkdtemp(prefix="tradingd-pg-"))
        self.port = free_port()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.root, "postgres")
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _pg(self, tool: str, *args: str) -> None:
        cmd = [*self.as_user, str(PG_BIN / tool), *args]  # type: ignore[operator]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        self._pg("initdb", "-D", str(self.root / "data"), "-A", "trust", "-U", "postgres", "-N")

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._pg(
            "pg_ctl", "-D", str(self.root / "data"), "-l", str(self.root / "log"), "-w", "-o", opts, "start"
        )

    def stop(self, mode: str = "immediate") -> None:
        self._pg("pg_ctl", "-D", str(self.root / "data"), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self.stop("fast")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.anyio
@pytest.mark.skipif(PG_BIN is None, reason="PostgreSQL server binaries are not installed")
async def test_outage_trading_goes_on_and_the_writer_catches_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tradingd.store")
    cluster = Cluster()
    journal, metrics = open_journal(tmp_path), Metrics()
    flows = 0
    try:
        with anyio.fail_after(OUTAGE_S + 40):
            await anyio.to_thread.run_sync(cluster.init)
            await anyio.to_thread.run_sync(cluster.start)
            assert await migrate(cluster.dsn) == ["0001", "0002"]
            writer = JournalWriter(
                journal, cluster.dsn, metrics, max_delay=0.01, backoff_initial=0.05, backoff_max=1.0
            )
            news: list[ServiceChanged] = []  # what the operator is told (daemon.service_watch)
            watch = ServiceWatch(news.append, lambda: [], None, writer, lambda: 60.0, time.time_ns())
            async with running(writer):
                for flows in range(1, 11):
                    await append_all(journal, order_flow(flows, T0 + flows * 10**12))
                await writer.wait_committed(journal.durable_offset)
                assert watch.check() == []  # up at the first look: no news

                await anyio.to_thread.run_sync(cluster.stop)  # kill -9 of the server, in effect
                slowest, deadline = 0.0, time.monotonic() + OUTAGE_S
                while time.monotonic() < deadline:  # trading goes on: the journal never waits for PostgreSQL
                    flows += 1
                    started = time.monotonic()
                    await append_all(journal, order_flow(flows, T0 + flows * 10**12))
                    slowest = max(slowest, time.monotonic() - started)
                    await anyio.sleep(0.1)
                assert (
                    writer.committed_offset is not None and writer.committed_offset < journal.durable_offset
                )
                assert metrics.total("tradingd_store_errors_total") >= 2
                watch.check()
                watch.check()  # once per outage
                assert [(n.service, n.state) for n in news] == [("postgres", "down")]
                assert "PostgreSQL unavailable since" in news[0].detail and "Error" in news[0].detail
                await anyio.to_thread.run_sync(cluster.start)
                await writer.wait_committed(journal.durable_offset)
                watch.check()
                assert [(n.service, n.state) for n in news] == [("postgres", "down"), ("postgres", "up")]
                assert "PostgreSQL back after" in news[1].detail and news[1].since_ns == news[0].since_ns

            per_flow = len(order_flow())
            rows = await query(
                cluster.dsn,
                "SELECT count(*) AS n, count(DISTINCT journal_offset) AS d, min(journal_offset) AS lo,"
                " max(journal_offset) AS hi FROM order_events",
            )
            assert journal.durable_offset == flows * per_flow
            assert rows == [
                {
                    "n": flows * (per_flow - 1),
                    "d": flows * (per_flow - 1),
                    "lo": 0,
                    "hi": flows * per_flow - 1,
                }
            ]
            fills = await query(cluster.dsn, "SELECT count(*) AS n FROM fills")
            assert fills == [{"n": 2 * flows}]
            statuses = await query(
                cluster.dsn, "SELECT status, count(*) AS n FROM orders GROUP BY 1 ORDER BY 1"
            )
            assert statuses == [{"status": "canceled", "n": flows}, {"status": "filled", "n": flows}]
            assert slowest < 1.0, f"a journal flush took {slowest:.3f} s during the outage"
    finally:
        journal.close()
        await anyio.to_thread.run_sync(cluster.remove)
    down = [r for r in caplog.records if "store unavailable" in r.getMessage()]
    back = [r for r in caplog.records if "store back after" in r.getMessage()]
    assert len(down) == 1 and len(back) == 1, [r.getMessage() for r in caplog.records]


@pytest.mark.anyio
async def test_snapshots_are_stored_and_only_the_newest_are_kept_per_group(
    clean: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import msgspec

    from actors.messages import GroupSnapshot, stamp
    from daemon.store import writer as writer_module

    monkeypatch.setattr(writer_module, "KEEP_SNAPSHOTS", 3)
    journal = open_journal(tmp_path)
    snaps: list[Message] = [
        GroupSnapshot(account="a", quantity=D(k), strategy="breakout", **stamp("paper", sym, T0 + k))
        for k in range(5)
        for sym in ("A/B", "C/D")
    ]
    with anyio.fail_after(30):
        await append_all(journal, snaps)
        await write_through(journal, clean)
        rows = await query(clean, "SELECT group_key, version, state FROM snapshots ORDER BY 1, 2")
        events = await query(clean, "SELECT count(*) AS n FROM order_events")
    assert [(r["group_key"], r["version"]) for r in rows] == [
        ("paper:A/B", 4),
        ("paper:A/B", 6),
        ("paper:A/B", 8),
        ("paper:C/D", 5),
        ("paper:C/D", 7),
        ("paper:C/D", 9),
    ]
    newest = msgspec.msgpack.decode(rows[2]["state"], type=GroupSnapshot)  # the row is the whole message
    assert newest.quantity == D(4) and newest.symbol == "A/B"
    assert events == [{"n": 0}]  # a state blob, not an event
    journal.close()
