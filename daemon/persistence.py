"""The order journal and its PostgreSQL copy, as the daemon runs them.

Order-path messages (signals, risk decisions, orders and their events, fills, positions)
are appended to the journal from the bus tap (no I/O on the actors' path); the order
actor awaits :meth:`Persistence.durable` between OrderSubmitted and SubmitOrder, so an
order never leaves the process before its record is fsynced.  Everything else becomes
durable within ``store.flush_interval_ms``.

The journal writer copies the journal into PostgreSQL in batches, resuming from its
committed offset; PostgreSQL being down never blocks trading (the journal keeps
everything) and shows on /readyz.  Migrations are applied when PostgreSQL is first
reachable, then the writer starts (``store.postgres = false``: journal only).

Restart recovery: every order-path message is also folded per group
(:class:`actors.order_fold.OrderFold`: open orders and position, exactly as journaled),
and every ``store.snapshot_interval_s`` (and at shutdown) each group's fold and its
strategy's state are journaled as a ``GroupSnapshot``.  At start :meth:`recover` reads
the retained journal: the newest snapshot per group plus everything after it.  Segments
are released once both the store has committed them and a newer snapshot round covers them.

Each account's balance ledger (:class:`actors.balance_ledger.BalanceLedger`) is folded the same
way (LedgerAdjusted baselines and re-bases, the account's fills) and journaled whole with every
snapshot round; a restart's balance check starts from it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

import anyio
from anyio.abc import TaskStatus

from actors.balance_ledger import BalanceLedger
from actors.messages import HaltChanged, LedgerAdjusted, Message, OrderFilled, RiskDay, is_order_path, stamp
from actors.order_fold import OrderFold
from daemon.config import StoreSection
from daemon.halts import HaltBook
from daemon.journal import Journal
from daemon.metrics import Metrics
from daemon.metrics_checkpoint import checkpoint_loop
from daemon.recovery_floor import StoreView, read_store_view
from daemon.store.migrations import migrate
from daemon.store.writer import JournalWriter


class StrategyView(NamedTuple):
    """What a snapshot takes from a running group besides its order fold."""

    key: tuple[str, str]
    account: str
    strategy: str
    state: bytes  # msgpack of the strategy's state
    reached_ns: int  # market (event) time the group had reached
    risk_day: RiskDay | None = None  # risk's counters of the UTC day


StrategySource = Callable[[], Iterable[StrategyView]]

log = logging.getLogger("tradingd.store")
_X = {"component": "store"}
RELEASE_EVERY_S = 30.0
STALE_AFTER_S = 30.0


class Persistence:
    def __init__(self, cfg: StoreSection, state_dir: Path, metrics: Metrics) -> None:
        self.cfg = cfg
        self.journal = Journal.open(state_dir / "journal", metrics=metrics)
        self.writer = JournalWriter(self.journal, cfg.dsn, metrics, batch_size=cfg.batch_size)
        self.metrics = metrics
        self.migrated = False
        self.journal_error = ""
        self.store_error = ""
        self.appended = 0
        self._last_commit = time.monotonic()
        self.folds: dict[tuple[str, str], OrderFold] = {}
        # (base, quote) of a group: fees charged in the base asset shrink the position (the daemon
        # passes the config's instruments; unknown groups count every fee in quote, as paper does)
        self.assets_for: Callable[[tuple[str, str]], tuple[str, str]] = lambda key: ("", "")
        self.strategies: StrategySource = lambda: ()
        self.snapshot_offset = 0  # every group has a snapshot at or after this offset
        self.snapshots = 0
        self.recovered_records = 0
        self.store_view = StoreView()
        self.halts = HaltBook()  # the operator's halts in force, as journaled
        self.ledgers: dict[str, BalanceLedger] = {}  # per account: its balance ledger, as journaled
        self.account_for: Callable[[tuple[str, str]], str] = lambda key: ""  # a group's account

    def offer(self, msg: Message) -> None:
        """The bus tap: order-path messages go to the journal (buffered; flushed by the loop)."""
        if is_order_path(msg):
            self.journal.append(msg)
            self.appended += 1
            self._fold(msg)

    def _fold(self, msg: Message) -> None:
        if type(msg) is HaltChanged:
            assert isinstance(msg, HaltChanged)
            self.halts.apply(msg)
            return
        if type(msg) is LedgerAdjusted:
            assert isinstance(msg, LedgerAdjusted)
            self.ledgers.setdefault(msg.account, BalanceLedger()).apply(msg)
            return
        key = (msg.exchange, msg.symbol)
        fold = self.folds.get(key)
        if fold is None:
            if msg.symbol == "*":
                return
            base, quote = self.assets_for(key)
            fold = self.folds[key] = OrderFold(
                msg.exchange, msg.symbol, getattr(msg, "account", ""), base, quote
            )
        fold.apply(msg)
        if type(msg) is OrderFilled:
            assert isinstance(msg, OrderFilled)
            ledger = self.ledgers.get(self.account_for(key) or fold.account)
            base, quote = self.assets_for(key)
            if ledger is not None and base:
                ledger.apply_fill(msg, base, quote)

    async def check_store(self, real_venue_groups: list[tuple[str, str]]) -> None:
        """Before :meth:`recover`: what PostgreSQL knows that the journal may have lost. PostgreSQL
        ahead of the journal is a journal finding (records were lost) and moves the journal's next
        offset past the store's; used client ids and decision times become each group's floor."""
        if not self.cfg.postgres:
            return
        view = await read_store_view(self.cfg.dsn, self.journal.journal_id, real_venue_groups)
        self.store_view = view
        if view.next_offset > self.journal.next_offset:
            self.journal.add_finding(
                f"PostgreSQL has this journal's records up to offset {view.next_offset - 1} but the journal "
                f"ends at offset {self.journal.next_offset}: journal records were lost (deleted or truncated)"
            )
            self.journal.skip_to(view.next_offset)

    @property
    def findings(self) -> list[str]:
        """Journal damage that needs an operator (trading is halted while there is any)."""
        return self.journal.findings

    def recover(self) -> dict[tuple[str, str], OrderFold]:
        """Fold the retained journal (blocking read; call before trading starts)."""
        started = time.monotonic()
        n = 0
        for _, msg in self.journal.read_from(self.journal.first_offset):
            self._fold(msg)
            n += 1
        self.recovered_records = n
        for key, floor in self.store_view.groups.items():
            fold = self.folds.get(key)
            if fold is None:
                fold = self.folds[key] = OrderFold(*key, "", *self.assets_for(key))
            fold.decision_ns = max(fold.decision_ns, floor.decision_ns)
            fold.known_ids |= floor.client_order_ids
        live = {k: f for k, f in self.folds.items() if not f.is_empty}
        if n:
            log.info(
                "recovered %d groups from %d journal records in %.2fs",
                len(live),
                n,
                time.monotonic() - started,
                extra=_X,
            )
        return live

    def take_snapshots(self) -> int:
        """Journal a GroupSnapshot of every group (fold + strategy state); returns its first offset."""
        first = self.journal.next_offset
        views = {v.key: v for v in self.strategies()}
        now = time.time_ns()
        for key in sorted(self.folds.keys() | views.keys()):
            fold = self.folds.get(key)
            if fold is None:
                fold = self.folds[key] = OrderFold(*key, "", *self.assets_for(key))
            view = views.get(key)
            if view is not None:
                fold.account = view.account or fold.account
                fold.strategy, fold.strategy_state = view.strategy, view.state
                fold.last_event_ns = max(fold.last_event_ns, view.reached_ns)
                fold.risk_day = view.risk_day
            if fold.is_empty:
                continue
            snap = fold.snapshot(stamp(key[0], key[1], now), fold.strategy, fold.strategy_state)
            self.journal.append(snap)
            self.snapshots += 1
        for halt in self.halts.active.values():  # again in every round: a release never drops one
            self.journal.append(halt)
        for account, ledger in sorted(self.ledgers.items()):  # the same for the balance ledgers
            if ledger.based:
                self.journal.append(
                    LedgerAdjusted(
                        **stamp("*", "*", now),
                        account=account,
                        reason="snapshot",
                        balances=dict(ledger.balances),
                    )
                )
        self.snapshot_offset = first
        return first

    async def _snapshot_loop(self) -> None:
        while True:
            await anyio.sleep(self.cfg.snapshot_interval_s)
            self.take_snapshots()

    async def durable(self) -> object:
        """Everything appended so far is on disk when this returns."""
        return await self.journal.flush()

    def readiness(self) -> list[str]:
        if self.journal.findings:
            return [
                f"journal damaged ({len(self.journal.findings)} findings: {self.journal.findings[0]}): "
                "every group halted; stop the daemon, run `tradingd journal verify`, then "
                "`tradingd journal recover`"
            ]
        if self.journal_error:
            return [f"journal unwritable ({self.journal_error}): orders are refused"]
        if not self.cfg.postgres:
            return []
        if self.store_error:
            return [f"postgres writer stopped: {self.store_error}"]
        lag = self.writer.lag()
        if not self.migrated:
            return ["postgres store unreachable: schema not migrated yet (the journal keeps every record)"]
        if lag and time.monotonic() - self._last_commit > STALE_AFTER_S:
            return [f"postgres store behind by {lag} journal records (the journal keeps them)"]
        return []

    def status(self) -> dict[str, object]:
        journal: dict[str, object] = {
            "journal_next_offset": self.journal.next_offset,
            "journal_durable_offset": self.journal.durable_offset,
            "journal_segments": self.journal.segment_count,
            "snapshots": self.snapshots,
            "snapshot_offset": self.snapshot_offset,
            "recovered_records": self.recovered_records,
            "journal_findings": list(self.journal.findings),
        }
        if not self.cfg.postgres:
            return {"postgres": False, **journal}
        return {
            "postgres": True,
            "dsn_host": self.cfg.dsn.rsplit("@", 1)[-1],
            "migrated": self.migrated,
            "store_committed_offset": self.writer.committed_offset,
            "store_lag_records": self.writer.lag(),
            **journal,
        }

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._flush_loop)
            if self.cfg.postgres:
                tg.start_soon(self._store_loop)
                if self.cfg.metrics_checkpoint_s > 0:
                    tg.start_soon(
                        checkpoint_loop,
                        self.cfg.dsn,
                        self.metrics,
                        self.cfg.metrics_checkpoint_s,
                        lambda: self.migrated,
                    )
            tg.start_soon(self._snapshot_loop)
            tg.start_soon(self._release_loop)
            task_status.started()

    async def aclose(self) -> None:
        """Last flush (shielded) and close; call after the actors stopped."""
        with anyio.CancelScope(shield=True):
            try:
                self.take_snapshots()
                await self.journal.flush()
            except OSError as exc:
                log.error("last journal flush failed: %r", exc, extra=_X)
            finally:
                await self.journal.aclose()

    async def _flush_loop(self) -> None:
        """Make everything durable every interval. A failing disk never kills the daemon: it is
        reported (/readyz, log, metric) and retried; meanwhile no order can leave (the order
        actor's own flush fails and the order is rejected unsent)."""
        interval = self.cfg.flush_interval_ms / 1000
        while True:
            await anyio.sleep(interval)
            try:
                await self.journal.flush()
            except OSError as exc:
                if not self.journal_error:
                    log.error("journal write failed, no order can be sent until it works: %r", exc, extra=_X)
                self.journal_error = repr(exc)
                self.metrics.inc("tradingd_journal_errors_total", {"error": type(exc).__name__})
                await anyio.sleep(min(5.0, interval * 10))
                continue
            if self.journal_error:
                log.warning("journal writes work again", extra=_X)
                self.journal_error = ""

    async def _store_loop(self) -> None:
        delay = 0.5
        while not self.migrated:
            try:
                with anyio.fail_after(60):  # a server that accepts but never answers, a held lock
                    applied = await migrate(self.cfg.dsn, connect_timeout=5.0)
            except Exception as exc:  # noqa: BLE001 - unreachable, refused, half-up: retry until it works
                log.warning(
                    "postgres migrations not applied yet (%r); retrying in %.0fs", exc, delay, extra=_X
                )
                await anyio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            self.migrated = True
            log.info(
                "postgres schema ready%s", f" (applied {', '.join(applied)})" if applied else "", extra=_X
            )
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(self.writer.run)
                tg.start_soon(self._watch_commits)
        except Exception as exc:  # noqa: BLE001 - the store must never stop trading
            # e.g. StoreAheadOfJournal: the store has records this journal lacks. Keep trading on
            # the journal; an operator must look (it is on /readyz and in the log).
            self.store_error = repr(exc)
            log.critical("journal writer stopped: %r; the journal keeps every record", exc, extra=_X)

    async def _watch_commits(self) -> None:
        last = self.writer.committed_offset
        while True:
            await anyio.sleep(1.0)
            if self.writer.committed_offset != last or self.writer.lag() == 0:
                self._last_commit = time.monotonic()
                last = self.writer.committed_offset

    async def _release_loop(self) -> None:
        while True:
            await anyio.sleep(RELEASE_EVERY_S)
            limit = self.snapshot_offset
            if self.cfg.postgres:
                limit = min(limit, self.writer.committed_offset or 0)
            if limit:
                await self.journal.release_below(limit)
