"""The balance check against a venue whose balances the test sets: baseline, fills and fees,
a drift reported once and re-based, a moving venue not taken for a drift, a failing venue,
tolerance, halt; and the ledger a restart folds from the journal equals the live one."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from decimal import Decimal as D
from pathlib import Path

import anyio
import msgspec
import pytest

from actors.balance_ledger import BalanceLedger
from actors.channels import Channel, Router
from actors.messages import LedgerAdjusted, Message, OrderFilled, stamp
from actors.portfolio import Portfolio
from daemon import balance_check
from daemon.app import Daemon
from daemon.balance_check import BalanceChecker
from daemon.config import parse_config
from daemon.config_schema import BinanceAccount
from daemon.metrics import Metrics
from daemon.notify.consumer import ALERT_TYPES
from daemon.notify.events import message_alert
from tests.helpers import make_config, unique_prefix

pytestmark = pytest.mark.anyio
UNITS = {"NKN": D(1), "USDT": D("0.0001")}


def fill(tid: str, side: str, qty: str, price: str, fee: str = "0.01") -> OrderFilled:
    return OrderFilled(
        client_order_id=f"c{tid}",
        venue_order_id=tid,
        trade_id=tid,
        side="buy" if side == "buy" else "sell",
        last_qty=D(qty),
        last_price=D(price),
        cum_qty=D(qty),
        leaves_qty=D(0),
        fee=D(fee),
        fee_asset="USDT",
        liquidity="maker",
        **stamp("binance", "NKN/USDT", 1),
    )


class Venue:
    """What the checker reads: balances the test moves, or a failure."""

    def __init__(self) -> None:
        self.balances = {"NKN": D(1000), "USDT": D(500), "BNB": D(1)}
        self.fail = 0
        self.reads = 0
        self.on_read: list[dict[str, D]] = []  # moves applied at the next reads, one per read

    async def fetch(self) -> dict[str, D]:
        self.reads += 1
        if self.fail:
            self.fail -= 1
            raise ConnectionError("venue down")
        if self.on_read:
            for asset, amount in self.on_read.pop(0).items():
                self.balances[asset] += amount
        return dict(self.balances)

    def trade(self, f: OrderFilled) -> None:
        sign = 1 if f.side == "buy" else -1
        self.balances["NKN"] += sign * f.last_qty
        self.balances["USDT"] -= sign * f.last_qty * f.last_price + f.fee


class World:
    def __init__(self, **cfg: object) -> None:
        self.journal: list[Message] = []
        self.router = Router(tap=self.journal.append)
        inbox = Channel[Message]("portfolio", 64)
        self.portfolio = Portfolio("live", self.router, inbox, {}, {"NKN/USDT": ("NKN", "USDT")})
        self.router.subscribe(inbox, (OrderFilled, LedgerAdjusted))
        self.venue = Venue()
        self.halts: list[str] = []
        self.checker = BalanceChecker(
            "live",
            BinanceAccount(**cfg),  # type: ignore[arg-type]
            self.portfolio,
            self.venue.fetch,
            lambda: dict(UNITS),
            self.halts.append,
        )

    def our_fill(self, f: OrderFilled) -> None:
        self.venue.trade(f)
        self.router.publish_nowait(f)


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(balance_check, "SETTLE_S", 0.01)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    w = World()
    async with anyio.create_task_group() as tg:
        tg.start_soon(w.portfolio.run)
        yield w
        tg.cancel_scope.cancel()


async def test_first_check_takes_the_venue_as_baseline_and_fills_with_fees_are_no_drift(world: World) -> None:
    await world.checker.check(at_start=True)
    assert world.portfolio.ledger.balances == {"NKN": D(1000), "USDT": D(500)}  # BNB: no group trades it
    assert world.portfolio.balances["BNB"] == D(1)  # the Binance portfolio is filled from the venue
    for i in range(20):
        f = fill(str(i), "buy" if i % 3 else "sell", "50", "0.3511", "0.017555")
        world.our_fill(f)
        world.router.publish_nowait(f)  # delivered twice (stream, then REST catch-up): counted once
        await world.checker.check()
    assert world.checker.drifts == {} and world.checker.checks == 21
    assert world.checker.assets["USDT"]["state"] == "ok"
    assert [m.reason for m in world.journal if isinstance(m, LedgerAdjusted)] == ["baseline"]


async def test_a_deposit_is_reported_once_and_the_ledger_re_bases(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    await world.checker.check(at_start=True)
    world.venue.balances["USDT"] += D("250.5")
    with caplog.at_level(logging.WARNING, logger="tradingd.balance_check"):
        await world.checker.check()
        await world.checker.check()
        await world.checker.check()
    assert world.checker.drifts == {"USDT": 1} and world.checker.last_drift == {"USDT": D("250.5")}
    (line,) = [r.getMessage() for r in caplog.records]
    assert "USDT venue 750.5000 vs ledger 500.0000 (+250.5000)" in line
    assert world.halts == []  # on_balance_drift = "alert"
    assert world.checker.status()["last_drift"] == {"USDT": "250.5000"}
    samples = {(n, lbl): v for n, lbl, v in world.checker.samples()}
    assert samples[("tradingd_balance_drift_total", (("account", "live"), ("asset", "USDT")))] == 1.0


async def test_a_fill_in_flight_is_not_a_drift_but_a_steady_difference_is() -> None:
    w = World()
    async with anyio.create_task_group() as tg:
        tg.start_soon(w.portfolio.run)
        await w.checker.check(at_start=True)
        # The venue made a fill whose report reaches the daemon only after the first read.
        f = fill("9", "buy", "100", "0.35")
        w.venue.trade(f)

        async def late_report() -> None:
            await anyio.sleep(0.005)
            w.router.publish_nowait(f)

        tg.start_soon(late_report)
        await w.checker.check()
        assert w.checker.drifts == {}
        # A difference that keeps moving (a trader at work on the web app) waits for the next check.
        w.venue.on_read = [{"NKN": D(5)}, {"NKN": D(5)}, {"NKN": D(5)}, {"NKN": D(5)}]
        await w.checker.check()
        assert w.checker.drifts == {} and w.checker.unsettled == 1
        await w.checker.check()  # now it stands still: 20 NKN more
        assert w.checker.last_drift == {"NKN": D(20)}
        tg.cancel_scope.cancel()


async def test_a_venue_that_cannot_be_asked_is_an_error_not_a_drift(world: World) -> None:
    await world.checker.check(at_start=True)
    world.venue.fail = 3  # every attempt of one check (tenacity: 3)
    await world.checker.check()
    assert world.checker.errors == 1 and world.checker.drifts == {}
    assert world.checker.status()["error"] == "ConnectionError: venue down"
    world.venue.fail = 1  # one failed attempt is retried
    await world.checker.check()
    assert world.checker.errors == 1 and world.checker.status()["error"] == ""


async def test_a_venue_down_at_start_does_not_hold_the_start_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(balance_check, "RETRY_S", 0.05)
    w = World(balance_check_s=0.0)  # only at start: a start that could not ask is asked again
    async with anyio.create_task_group() as tg:
        tg.start_soon(w.portfolio.run)
        w.venue.fail = 1
        await w.checker.check(at_start=True)  # one attempt, not three
        assert (w.venue.reads, w.checker.errors, w.portfolio.ledger.based) == (1, 1, False)
        tg.start_soon(w.checker.run)
        with anyio.fail_after(5):
            while not w.checker.checks:  # retried within RETRY_S, not after balance_check_s
                await anyio.sleep(0.01)
        assert w.portfolio.ledger.balances == {"NKN": D(1000), "USDT": D(500)}
        assert w.portfolio.balances["BNB"] == D(1) and w.checker.populated
        tg.cancel_scope.cancel()


async def test_halt_and_tolerance() -> None:
    w = World(on_balance_drift="halt", balance_tolerance=D("0.5"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(w.portfolio.run)
        await w.checker.check(at_start=True)
        w.venue.balances["USDT"] += D("0.4")  # within the tolerance
        await w.checker.check()
        assert w.halts == []
        w.venue.balances["NKN"] -= D(3)
        await w.checker.check()
        assert len(w.halts) == 1 and "NKN venue 997 vs ledger 1000 (-3)" in w.halts[0]
        tg.cancel_scope.cancel()


async def test_the_journal_fold_gives_the_live_ledger() -> None:
    """What the persistence folds from the journal (LedgerAdjusted + fills) equals the portfolio's."""
    w = World()
    async with anyio.create_task_group() as tg:
        tg.start_soon(w.portfolio.run)
        await w.checker.check(at_start=True)
        for i in range(5):
            w.our_fill(fill(str(i), "sell", "10", "0.36"))
        w.venue.balances["NKN"] += D(42)
        await w.checker.check()
        w.our_fill(fill("x", "buy", "7", "0.34"))
        await w.checker.check()
        tg.cancel_scope.cancel()
    folded = BalanceLedger()
    for m in w.journal:
        if isinstance(m, LedgerAdjusted):
            folded.apply(m)
        elif isinstance(m, OrderFilled):
            folded.apply_fill(m, "NKN", "USDT")
    assert folded.balances == w.portfolio.ledger.balances
    assert folded.balances == {k: v for k, v in w.venue.balances.items() if k != "BNB"}


async def test_a_paper_account_trading_finds_no_drift(tmp_path: Path) -> None:
    """The paper venue's book is the venue: a replay's fills and fees, checked every second, agree."""
    text = make_config(tmp_path / "state", prefix=unique_prefix(), speed=0.0, loop=True, redis_enabled=False)
    text = text.replace("[accounts.paper]\n", "[accounts.paper]\nbalance_check_s = 1.0\n", 1)
    daemon = Daemon(parse_config(text), tmp_path / "config.toml", Metrics())
    async with anyio.create_task_group() as tg:
        tg.start_soon(daemon.run)
        with anyio.fail_after(60):
            while (
                "paper" not in daemon.supervisor.accounts or not daemon.supervisor.accounts["paper"].balance
            ):
                await anyio.sleep(0.05)
            acct = daemon.supervisor.accounts["paper"]
            assert acct.balance is not None
            while acct.portfolio.fills < 4 or acct.balance.checks < 3:
                await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    assert acct.balance.drifts == {} and acct.balance.errors == 0
    assert {s["state"] for s in acct.balance.assets.values()} == {"ok"}


def test_a_drift_is_a_notification_a_baseline_is_not() -> None:
    drift = LedgerAdjusted(
        **stamp("binance", "*", 1_700_000_000_000_000_000),
        account="live",
        reason="drift",
        adjust={"USDT": D("250.123456789"), "NKN": D(-120)},
    )
    alert = message_alert(drift)
    assert alert is not None and (alert.kind, alert.severity) == ("reconcile", "warning")
    assert alert.text == (
        "balance drift on account live: venue minus ledger NKN -120, USDT +250.123; the ledger re-based"
    )
    assert message_alert(msgspec.structs.replace(drift, reason="baseline")) is None
    assert b"LedgerAdjusted" in ALERT_TYPES  # the notifier reads it from the mirror
