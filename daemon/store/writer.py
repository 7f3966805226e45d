"""The journal -> PostgreSQL writer: batched, idempotent, resumable, and never in trading's way.

:class:`JournalWriter` reads durable journal records from the offset it committed last
(``writer_offsets.next_offset`` for the journal's id), turns a batch (``batch_size`` records,
or what arrived within ``max_delay``) into rows (:func:`daemon.store.build_rows`) and writes
them in ONE transaction that also moves ``next_offset`` (compare-and-set): a crash never
skips a record nor writes one twice, and a replay from 0 changes nothing.

PostgreSQL down: logged once per outage, every attempt counted
(``tradingd_store_errors_total{error}``), reconnect with capped exponential backoff and
jitter, catch up from the committed offset.  A batch refused for its data (SQLSTATE class 22,
23, 54, or a value the driver cannot encode) is retried record by record; a record refused
``poison_retries`` times is logged, counted and skipped (it stays in the journal), unless
``max_poison_run`` were skipped in a row (then it is a bug, not bad data: :class:`PoisonStorm`,
retried).  Schema or permission errors are never poison: they are retried until fixed.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterable, Sequence

import anyio
import asyncpg
from anyio.abc import TaskStatus

from actors.messages import Message
from daemon.journal import Journal
from daemon.metrics import Metrics, Sample
from daemon.store import TABLES, UPDATE_ORDERS, Record, Rows, build_rows, update_rounds
from daemon.store.migrations import close_connection

log = logging.getLogger("tradingd.store")
_X = {"component": "store"}

POISON_SQLSTATE_CLASSES = frozenset({"22", "23", "54"})
RETRYABLE = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


KEEP_SNAPSHOTS = 100
"""GroupSnapshots kept per group in PostgreSQL (about 100 minutes at the default interval)."""
PRUNE_SNAPSHOTS = """
DELETE FROM snapshots s USING (
    SELECT group_key, version,
           row_number() OVER (PARTITION BY group_key ORDER BY version DESC) AS newest
      FROM snapshots WHERE group_key = ANY($1::text[])
) old
WHERE s.group_key = old.group_key AND s.version = old.version AND old.newest > $2
"""


class WriterConflict(RuntimeError):
    """``writer_offsets`` moved under this writer (another writer on the same journal, or a manual reset)."""


class StoreAheadOfJournal(RuntimeError):
    """The store claims records the journal does not have: the journal lost flushed records."""


class PoisonStorm(RuntimeError):
    """Too many records in a row refused for their data: a bug or a schema mismatch, not bad records."""


_SESSION_ERRORS = (*RETRYABLE, WriterConflict, PoisonStorm)
_HELP = {
    "tradingd_store_errors_total": ("counter", "Failed store attempts by error (poison: records skipped)."),
    "tradingd_store_rows_total": ("counter", "Rows written to PostgreSQL by table (inserted or updated)."),
    "tradingd_store_records_total": ("counter", "Journal records committed to the store."),
    "tradingd_store_skipped_total": ("counter", "Journal records not stored (not on the order path)."),
    "tradingd_store_poison_total": ("counter", "Journal records PostgreSQL refused for their data, skipped."),
    "tradingd_store_lag_records": ("gauge", "Durable journal records not in the store yet."),
    "tradingd_store_committed_offset": ("gauge", "Every journal record below this offset is in the store."),
}


ADVANCE = """
UPDATE writer_offsets SET next_offset = $3, updated_at = now() WHERE journal_id = $1 AND next_offset = $2
"""


def is_poison(exc: BaseException) -> bool:
    """Refused for its data (this record), not for the state of the server or the schema."""
    if isinstance(exc, asyncpg.PostgresError):
        return str(getattr(exc, "sqlstate", "") or "")[:2] in POISON_SQLSTATE_CLASSES
    return isinstance(exc, asyncpg.InterfaceError) and isinstance(exc, ValueError)  # cannot encode a value


class JournalWriter:
    """Copies one journal into PostgreSQL; run :meth:`run` as a task (``await tg.start(writer.run)``)."""

    def __init__(
        self,
        journal: Journal,
        dsn: str,
        metrics: Metrics,
        *,
        batch_size: int = 1000,
        max_delay: float = 0.05,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
        poison_retries: int = 3,
        max_poison_run: int = 100,
        connect_timeout: float = 5.0,
        command_timeout: float = 30.0,
    ) -> None:
        self.journal, self.dsn, self.metrics = journal, dsn, metrics
        self.batch_size, self.max_delay = max(1, batch_size), max_delay
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self.poison_retries, self.connect_timeout = max(1, poison_retries), connect_timeout
        self.command_timeout = command_timeout  # a hung server (no RST) is an outage too
        self.max_poison_run = max_poison_run  # skipped in a row, then stop skipping: something is broken
        self._poison_run = 0
        self.committed_offset: int | None = None  # known once connected: every record below is stored
        self._delay = backoff_initial
        self._down_since: float | None = None
        self.last_error = ""  # the outage's first error, for the operator (ServiceChanged)
        self.outages = 0  # outages so far (daemon.service_watch tells each, however short)
        self.last_down_ns = 0  # wall clock, when the last one began
        self._committed_event: anyio.Event | None = None
        for name, (kind, text) in _HELP.items():
            metrics.describe(name, kind, text)

    @property
    def down(self) -> bool:
        """True from the first failure of an outage until the store answers again."""
        return self._down_since is not None

    def lag(self) -> int:
        """Durable journal records not in the store yet."""
        base = self.journal.first_offset if self.committed_offset is None else self.committed_offset
        return max(0, self.journal.durable_offset - base)

    def _collect(self) -> Iterable[Sample]:
        yield "tradingd_store_lag_records", (), float(self.lag())

    async def wait_committed(self, offset: int) -> None:
        """Return once every record below ``offset`` is committed to the store."""
        while self.committed_offset is None or self.committed_offset < offset:
            if self._committed_event is None:
                self._committed_event = anyio.Event()
            await self._committed_event.wait()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Write until cancelled. Started at once: it never waits for PostgreSQL to be up."""
        self.metrics.add_collector(self._collect)
        task_status.started()
        try:
            while True:
                try:
                    conn = await asyncpg.connect(
                        self.dsn,
                        timeout=self.connect_timeout,
                        command_timeout=self.command_timeout,
                        server_settings={"application_name": "tradingd-journal-writer"},
                    )
                except RETRYABLE as exc:
                    await self._failed(exc)
                    continue
                try:
                    await self._session(conn)
                except _SESSION_ERRORS as exc:
                    error: Exception = exc
                finally:
                    await close_connection(conn)
                await self._failed(error)  # _session only ever ends with an error
        finally:
            self.metrics.remove_collector(self._collect)

    async def _session(self, conn: asyncpg.Connection) -> None:
        jid = self.journal.journal_id
        await conn.execute(
            "INSERT INTO writer_offsets (journal_id, next_offset) VALUES ($1, 0) ON CONFLICT DO NOTHING", jid
        )
        nxt = int(await conn.fetchval("SELECT next_offset FROM writer_offsets WHERE journal_id = $1", jid))
        if nxt > self.journal.durable_offset:
            raise StoreAheadOfJournal(
                f"store has {jid} up to {nxt}, the journal to {self.journal.durable_offset}"
            )
        self._set_committed(nxt)
        while True:
            if self.journal.durable_offset <= nxt:
                self._recovered()  # connected and idle: the outage (if any) is over
                await self.journal.wait_durable(nxt)
            if self.journal.durable_offset - nxt < self.batch_size and self.max_delay > 0:
                with anyio.move_on_after(self.max_delay):
                    await self.journal.wait_durable(nxt + self.batch_size - 1)
            records, end = await anyio.to_thread.run_sync(self.journal.read_batch, nxt, self.batch_size)
            rows = build_rows(jid, records)
            try:
                counts = await self._write(conn, rows, nxt, end)
            except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                if not is_poison(exc):
                    raise
                await self._one_by_one(conn, records, nxt, end)
            else:
                self._count(counts, len(records), rows.skipped)
                self._set_committed(end)
            self._recovered()
            nxt = end

    async def _write(self, conn: asyncpg.Connection, rows: Rows, expected: int, end: int) -> dict[str, int]:
        """One transaction: the rows, the status updates, and ``next_offset`` ``expected`` -> ``end``."""
        async with conn.transaction():
            counts = {t.table: await t.run(conn, rows.tables[t.table]) for t in TABLES}
            if rows.tables["snapshots"]:  # recovery needs the newest: keep a bounded history per group
                groups = sorted({str(r[0]) for r in rows.tables["snapshots"]})
                await conn.execute(PRUNE_SNAPSHOTS, groups, KEEP_SNAPSHOTS)
            for batch in update_rounds(rows.updates):
                status = await conn.execute(UPDATE_ORDERS, *(list(col) for col in zip(*batch, strict=True)))
                counts["orders"] += int(status.rsplit(" ", 1)[-1])
            status = await conn.execute(ADVANCE, self.journal.journal_id, expected, end)
            if status != "UPDATE 1":
                raise WriterConflict(
                    f"writer_offsets for journal {self.journal.journal_id} is not at {expected}"
                )
        return counts

    async def _one_by_one(
        self, conn: asyncpg.Connection, records: Sequence[Record], nxt: int, end: int
    ) -> None:
        """A batch was refused for its data: find the record(s) to blame, skip them, keep the rest."""
        for off, msg in records:
            rows = build_rows(self.journal.journal_id, [(off, msg)])
            self._count(await self._write_one(conn, rows, off, msg, nxt), 1, rows.skipped)
            nxt = off + 1
            self._set_committed(nxt)
        if nxt < end:  # records the journal could not decode close the batch
            await self._write(conn, Rows(), nxt, end)
            self._set_committed(end)

    async def _write_one(
        self, conn: asyncpg.Connection, rows: Rows, off: int, msg: Message, nxt: int
    ) -> dict[str, int]:
        error: BaseException | None = None
        for attempt in range(1, self.poison_retries + 1):
            try:
                counts = await self._write(conn, rows, nxt, off + 1)
                self._poison_run = 0
                return counts
            except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                if not is_poison(exc):
                    raise
                error = exc
                if attempt < self.poison_retries:
                    await anyio.sleep(self.backoff_initial * attempt)
        if self._poison_run >= self.max_poison_run:
            raise PoisonStorm(
                f"{self._poison_run} records in a row refused, now record {off}: {error}"
            ) from error
        self._poison_run += 1
        self.metrics.inc("tradingd_store_poison_total")
        self.metrics.inc("tradingd_store_errors_total", {"error": "poison"})
        what = f"{off} ({type(msg).__name__} {msg.exchange}:{msg.symbol})"
        log.error("journal record %s refused, skipped (it stays in the journal): %r", what, error, extra=_X)
        return await self._write(conn, Rows(), nxt, off + 1)

    def _count(self, counts: dict[str, int], records: int, skipped: int) -> None:
        for table, n in counts.items():
            if n:
                self.metrics.inc("tradingd_store_rows_total", {"table": table}, n)
        self.metrics.inc("tradingd_store_records_total", None, records)
        if skipped:
            self.metrics.inc("tradingd_store_skipped_total", None, skipped)

    def _set_committed(self, offset: int) -> None:
        self.committed_offset = offset
        self.metrics.set("tradingd_store_committed_offset", offset)
        if self._committed_event is not None:
            self._committed_event.set()
            self._committed_event = None

    def _recovered(self) -> None:
        if self._down_since is not None:
            down, lag = time.monotonic() - self._down_since, self.lag()
            log.info("PostgreSQL store back after %.1f s; %d records to catch up", down, lag, extra=_X)
            self._down_since = None
        self._delay = self.backoff_initial

    async def _failed(self, exc: BaseException) -> None:
        self.metrics.inc("tradingd_store_errors_total", {"error": type(exc).__name__})
        if self._down_since is None:
            self._down_since = time.monotonic()
            self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            self.outages, self.last_down_ns = self.outages + 1, time.time_ns()
            log.warning(
                "PostgreSQL store unavailable, retrying (the journal keeps every record): %r", exc, extra=_X
            )
        else:
            log.debug("PostgreSQL store still unavailable: %r", exc, extra=_X)
        await anyio.sleep(self._delay * random.uniform(0.5, 1.0))
        self._delay = min(self._delay * 2, self.backoff_max)
