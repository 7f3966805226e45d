"""Balance reconciliation of one account: the venue's balances against the ledger.

Takes nothing from a channel: at start (before READY, see :meth:`Supervisor.run`; one short
attempt, so a venue that is down does not hold READY back: the next check comes within ``RETRY_S``)
and every
``accounts.X.balance_check_s`` it asks the venue for the account's balances (Binance
``GET /api/v3/account``; a paper account's book is its venue) and compares them, asset by asset
for the base and quote assets of the account's groups, with the portfolio's ledger
(:class:`actors.balance_ledger.BalanceLedger`: a baseline from the venue plus the daemon's own
fills and fees).  Emits :class:`~actors.messages.LedgerAdjusted` through the portfolio's router
(journaled by the tap, applied by the portfolio in order with the fills): ``baseline`` for an
asset the ledger does not hold yet (the first start), ``drift`` once a drift is reported, so one
deposit is reported once and not at every check.

A drift is believed only when it holds still: the venue is read again after ``SETTLE_S`` until two
reads in a row give the same differences (a fill the venue has made but whose report is still on
its way moves the next read's difference, a deposit does not).  A venue that cannot be asked is
counted and reported (``error``), never taken for a drift.  On a drift: a log line (amounts rounded
to the asset's unit, time ISO 8601 UTC), the counter ``tradingd_balance_drift_total{account,asset}``,
the gauge ``tradingd_balance_drift{account,asset}`` (the last difference, venue minus ledger),
``/status`` ``accounts.X.balance_check``, and with ``on_balance_drift = "halt"`` an account halt
(journaled; only ``tradingd resume`` lifts it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from decimal import Decimal
from typing import Literal

import anyio
import anyio.lowlevel
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from actors.messages import BalancesChanged, LedgerAdjusted, stamp
from actors.portfolio import Portfolio
from daemon import display
from daemon.config_schema import AccountConfig, BinanceAccount
from daemon.halts import iso
from daemon.metrics import Labels, Sample

log = logging.getLogger("tradingd.balance_check")
ZERO = Decimal(0)
SETTLE_S = 0.5  # between two reads of a suspected drift: a fill report in flight lands by then
MAX_READS = 4  # reads of one check before a moving difference is left to the next check
FETCH_TIMEOUT_S = 10.0
FETCH_ATTEMPTS = 3
START_TIMEOUT_S = 5.0  # at start one short attempt: a venue that is down must not hold READY back
RETRY_S = 5.0  # after a check whose venue read failed, the next one comes this soon
DRAIN_TIMEOUT_S = 2.0  # the portfolio's inbox (fills) is emptied before the venue is read
DEFAULT_UNIT = Decimal("0.00000001")
IDLE_S = 60.0  # balance_check_s = 0: how often a reload turning checks on is noticed

Fetch = Callable[[], Awaitable[dict[str, Decimal]]]
Halt = Callable[[str], None]


class BalanceChecker:
    """The balance check of account ``name``; ``units`` gives each compared asset its display unit."""

    def __init__(
        self,
        name: str,
        cfg: AccountConfig,
        portfolio: Portfolio,
        fetch: Fetch,
        units: Callable[[], dict[str, Decimal]],
        halt: Halt,
    ) -> None:
        self.name, self.cfg, self.portfolio = name, cfg, portfolio
        self.fetch, self.units, self.halt = fetch, units, halt
        self.checks = 0
        self.errors = 0
        self.unsettled = 0
        self.drifts: dict[str, int] = {}  # per asset: drifts reported
        self.last_drift: dict[str, Decimal] = {}  # per asset: the last difference reported
        self.last_check_ns = 0
        self.last_error = ""
        self.assets: dict[str, dict[str, str | None]] = {}  # per asset: venue, ledger, state
        self.populated = False  # the portfolio has had the venue's balances once
        self._quick = False  # this check is the one at start: one short attempt per read

    def update(self, cfg: AccountConfig) -> None:
        self.cfg = cfg

    def tolerance(self, asset: str) -> Decimal:
        if self.cfg.balance_tolerance is not None:
            return self.cfg.balance_tolerance
        return self.units().get(asset, DEFAULT_UNIT)

    async def run(self) -> None:
        """Check every ``balance_check_s`` (the first check is the caller's, at start); 0: only
        until one check has completed (a venue down at start is asked again), then none (looked at
        again each minute, so a reload can turn checks on)."""
        while True:
            wait = self.cfg.balance_check_s or IDLE_S
            if self.last_error and (self.cfg.balance_check_s or not self.checks):
                wait = min(wait, RETRY_S)
            await anyio.sleep(wait)
            if self.cfg.balance_check_s or not self.checks:
                await self.check()

    async def check(self, *, at_start: bool = False) -> None:
        """One check: read, compare, settle, report."""
        units = self.units()
        if not units:
            return  # no group on the account yet: nothing to compare
        self._quick = at_start
        await self._drain()
        venue = await self._read()
        if venue is None:
            return
        if not self.populated and isinstance(self.cfg, BinanceAccount):
            self._populate(venue)
        ledger = self.portfolio.ledger
        fresh = ledger.unknown(venue, units)
        if fresh:
            self._adjust("baseline", fresh)
            log.info(
                "balance ledger of account %s starts from the venue: %s",
                self.name,
                self._amounts(fresh, units),
                extra={"component": "balance_check", "exchange": self._exchange, "symbol": "*"},
            )
            await self._drain()
        found = await self._settled(venue)
        if found is None:
            return
        venue, drifts = found
        self._record(venue, drifts)
        if drifts:
            self._report(venue, drifts, at_start)

    @property
    def _exchange(self) -> str:
        return "binance" if isinstance(self.cfg, BinanceAccount) else "paper"

    async def _drain(self) -> None:
        """Wait (bounded) until the portfolio has taken every fill published so far."""
        for _ in range(int(DRAIN_TIMEOUT_S / 0.01)):  # a queue's depth has no event to wait on
            if not self.portfolio.inbox.depth():
                break
            await anyio.sleep(0.01)
        await anyio.lowlevel.checkpoint()

    def _amounts(self, amounts: Mapping[str, Decimal], units: Mapping[str, Decimal]) -> str:
        return ", ".join(f"{a} {display.quantity(v, units.get(a, DEFAULT_UNIT))}" for a, v in amounts.items())

    async def _read(self) -> dict[str, Decimal] | None:
        """The venue's balances (free + locked), retried; None (counted, reported) if it fails."""
        attempts, timeout = (1, START_TIMEOUT_S) if self._quick else (FETCH_ATTEMPTS, FETCH_TIMEOUT_S)
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(attempts),
                wait=wait_exponential(multiplier=0.2, max=2.0),
                retry=retry_if_exception_type(Exception),
                reraise=True,
            ):
                with attempt, anyio.fail_after(timeout):
                    return await self.fetch()
        except Exception as exc:  # noqa: BLE001 - a venue that cannot be asked is reported, not a drift
            self.errors += 1
            self.last_check_ns = time.time_ns()
            self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            log.warning(
                "balance check of account %s: the venue could not be asked (%s)",
                self.name,
                self.last_error,
                extra={"component": "balance_check", "exchange": self._exchange, "symbol": "*"},
            )
        return None

    async def _settled(
        self, venue: dict[str, Decimal]
    ) -> tuple[dict[str, Decimal], dict[str, Decimal]] | None:
        """(venue, drifts) once two reads in a row agree; None when the venue kept moving."""
        units = self.units()
        drifts = self.portfolio.ledger.drifts(venue, units, self.tolerance)
        for _ in range(MAX_READS - 1):
            if not drifts:
                return venue, drifts
            await anyio.sleep(SETTLE_S)
            await self._drain()
            again = await self._read()
            if again is None:
                return None
            now = self.portfolio.ledger.drifts(again, units, self.tolerance)
            if self._same(drifts, now):
                return again, now
            venue, drifts = again, now
        if not drifts:
            return venue, drifts
        self.unsettled += 1
        self.last_check_ns = time.time_ns()
        log.info(
            "balance check of account %s: the venue's balances kept moving (%s); checked again next time",
            self.name,
            ", ".join(sorted(drifts)),
            extra={"component": "balance_check", "exchange": self._exchange, "symbol": "*"},
        )
        return None

    def _same(self, a: Mapping[str, Decimal], b: Mapping[str, Decimal]) -> bool:
        return a.keys() == b.keys() and all(abs(a[k] - b[k]) <= self.tolerance(k) for k in a)

    def _populate(self, venue: dict[str, Decimal]) -> None:
        """The Binance portfolio holds the venue's balances from the start (not only after an event)."""
        now = time.time_ns()
        self.portfolio.set_venue_balances(
            BalancesChanged(**stamp(self._exchange, "*", now), account=self.name, free=dict(venue))
        )
        self.populated = True

    def _adjust(self, reason: Literal["baseline", "drift"], amounts: dict[str, Decimal]) -> None:
        msg = LedgerAdjusted(
            **stamp(self._exchange, "*", time.time_ns()), account=self.name, reason=reason, adjust=amounts
        )
        # The tap journals it; the portfolio applies it in order with the fills published before it.
        self.portfolio.router.publish_nowait(msg)

    def _record(self, venue: Mapping[str, Decimal], drifts: Mapping[str, Decimal]) -> None:
        self.checks += 1
        self.last_check_ns = time.time_ns()
        self.last_error = ""
        units = self.units()
        ledger = self.portfolio.ledger.balances
        self.assets = {}
        for asset in sorted(units):
            unit = units[asset]
            mine = ledger.get(asset)
            self.assets[asset] = {
                "venue": display.quantity(venue.get(asset, ZERO), unit),
                "ledger": None if mine is None else display.quantity(mine, unit),
                "state": "drift" if asset in drifts else "ok",
            }

    def _report(self, venue: Mapping[str, Decimal], drifts: dict[str, Decimal], at_start: bool) -> None:
        units = self.units()
        ledger = self.portfolio.ledger.balances
        parts = []
        for asset, diff in drifts.items():
            unit = units.get(asset, DEFAULT_UNIT)
            self.drifts[asset] = self.drifts.get(asset, 0) + 1
            self.last_drift[asset] = diff
            parts.append(
                f"{asset} venue {display.quantity(venue.get(asset, ZERO), unit)} vs ledger "
                f"{display.quantity(ledger[asset], unit)} ({'+' if diff > 0 else ''}"
                f"{display.quantity(diff, unit)})"
            )
        when = "at start (changed while the daemon was down)" if at_start else f"at {iso(time.time_ns())}"
        what = f"balance drift on account {self.name} {when}: " + "; ".join(parts)
        halting = self.cfg.on_balance_drift == "halt"
        log.warning(
            "%s; the ledger re-bases on the venue%s",
            what,
            "; account halted" if halting else "",
            extra={"component": "balance_check", "exchange": self._exchange, "symbol": "*"},
        )
        self._adjust("drift", drifts)  # reported once: the next check compares from the venue's amounts
        if halting:
            self.halt(what)

    def status(self) -> dict[str, object]:
        return {
            "last_check": iso(self.last_check_ns) if self.last_check_ns else None,
            "interval_s": self.cfg.balance_check_s,
            "on_drift": self.cfg.on_balance_drift,
            "checks": self.checks,
            "errors": self.errors,
            "unsettled": self.unsettled,
            "error": self.last_error,
            "assets": self.assets,
            "drifts": dict(self.drifts),
            "last_drift": {
                a: display.quantity(d, self.units().get(a, DEFAULT_UNIT)) for a, d in self.last_drift.items()
            },
        }

    def samples(self) -> Iterator[Sample]:
        for asset, n in self.drifts.items():
            labels: Labels = (("account", self.name), ("asset", asset))
            yield "tradingd_balance_drift_total", labels, float(n)
            yield "tradingd_balance_drift", labels, float(self.last_drift.get(asset, ZERO))
        yield "tradingd_balance_checks_total", (("account", self.name),), float(self.checks)
        yield "tradingd_balance_check_errors_total", (("account", self.name),), float(self.errors)


HELP = {
    "tradingd_balance_drift_total": (
        "counter",
        "Balance drifts found (venue vs ledger), by account and asset",
    ),
    "tradingd_balance_drift": ("gauge", "The last balance drift found: venue minus ledger, in the asset"),
    "tradingd_balance_checks_total": ("counter", "Balance checks completed (venue read, compared)"),
    "tradingd_balance_check_errors_total": ("counter", "Balance checks whose venue read failed"),
}
