"""An OCO list across a crash: the daemon against the fake Binance, stopped and started again.

With ``native_stops`` and ``native_take_profit`` on, a market entry with a stop-loss and a
take-profit gets one OCO list at the venue.  Killed after the venue accepted it, the next start
asks the venue about both legs, finds them open (ours, not foreign), and the stop-monitor takes
the list back: it is never re-sent, and its take-profit leg is the exit.  Killed between the
journal and the send (the list journaled, the request never made), the next start finds neither
leg at the venue after a recvWindow, ends the list "not found at venue" and rests one new list:
the venue sees one list in all.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

import anyio
import pytest

from actors.messages import OrderIntent
from actors.oco import leg_ids
from adapters.binance.execution import BinanceExecution
from daemon import restore
from daemon.app import Daemon
from daemon.config import parse_config
from daemon.group import SymbolGroup
from daemon.metrics import Metrics
from tests.fake_binance import API_KEY, API_SECRET, FakeBinance, open_fake_binance
from tests.fake_binance_ws import open_fake_binance_ws
from tests.test_e2e_binance_trading import _config

pytestmark = pytest.mark.anyio
KEY = ("binance", "NKN/USDT")
OPEN = ("NEW", "PARTIALLY_FILLED")


def _text(tmp_path: Path, market_url: str, market_rest: str, venue: FakeBinance) -> str:
    text = _config(tmp_path / "state", market_url, market_rest, venue.url, venue.ws_api_url)
    text = text.replace("timeout_s = 2.0\n", "timeout_s = 2.0\nrecv_window_ms = 1000\n")
    return text.replace(
        "require_stop_loss = false\n",
        "require_stop_loss = false\nnative_stops = true\nnative_take_profit = true\n",
    )


def _entry() -> OrderIntent:
    now = time.time_ns()
    return OrderIntent(
        exchange="binance",
        symbol="NKN/USDT",
        ts_event=now,
        ts_recv=now,
        intent_id="oco-entry",
        source="test",
        side="buy",
        order_type="market",
        quantity=Decimal("100"),
        stop_loss=Decimal("0.3000"),
        take_profit=Decimal("0.4000"),
    )


@asynccontextmanager
async def _life(text: str, tmp_path: Path) -> AsyncIterator[tuple[Daemon, SymbolGroup]]:
    """One life of the daemon; leaving it cancels the daemon (as a crash would, mid-flight)."""
    daemon = Daemon(parse_config(text), tmp_path / "c.toml", Metrics())
    async with anyio.create_task_group() as tg:
        tg.start_soon(daemon.run)
        while KEY not in daemon.supervisor.groups:
            await anyio.sleep(0.02)
        group = daemon.supervisor.groups[KEY]
        assert isinstance(group.venue, BinanceExecution)
        while group.state.last_price is None or group.venue.user_stream.catchups == 0:
            await anyio.sleep(0.02)
        yield daemon, group
        tg.cancel_scope.cancel()


def _lists_sent(venue: FakeBinance) -> list[str]:
    return [s.params["listClientOrderId"] for s in venue.seen if s.path == "/api/v3/orderList/oco"]


def _resting(venue: FakeBinance) -> list[tuple[str, str]]:
    return sorted((o["clientOrderId"], o["type"]) for o in venue.orders.values() if o["status"] in OPEN)


@asynccontextmanager
async def _venues() -> AsyncIterator[tuple[str, str, FakeBinance]]:
    async with (
        open_fake_binance_ws(replay_s=0.5) as market,
        open_fake_binance(
            balances={"USDT": Decimal("1000"), "NKN": Decimal("0")},
            order_types_extra=frozenset({"STOP_LOSS"}),
        ) as venue,
    ):
        venue.last_prices["NKNUSDT"] = Decimal("0.3528")
        yield market.url, market.rest_url, venue


async def _wait(what: str, pred: object) -> None:
    assert callable(pred)
    with anyio.fail_after(15):
        while not pred():
            await anyio.sleep(0.02)


async def test_a_list_accepted_before_the_crash_is_taken_back_and_never_re_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_BINANCE_KEY", API_KEY)
    monkeypatch.setenv("TEST_BINANCE_SECRET", API_SECRET)
    monkeypatch.setattr(restore, "RECONCILE_FIRST_DELAY_S", 0.01)
    async with _venues() as (ws, rest, venue):
        text = _text(tmp_path, ws, rest, venue)
        with anyio.fail_after(60):
            async with _life(text, tmp_path) as (_, group):
                await group.router.publish(_entry())
                await _wait("both legs resting", lambda: len(_resting(venue)) == 2)
                (list_cid,) = _lists_sent(venue)
                await _wait("list accepted", lambda: group.order.orders[list_cid].status == "accepted")
            sl, tp = leg_ids(list_cid)
            assert _resting(venue) == [(sl, "STOP_LOSS"), (tp, "LIMIT_MAKER")]

            async with _life(text, tmp_path) as (_, group):
                await _wait("stop re-armed", lambda: group.stop_monitor.stop is not None)
                stop = group.stop_monitor.stop
                assert stop is not None and stop.native is not None
                assert (stop.native.cid, stop.native.kind, stop.native.state) == (list_cid, "oco", "working")
                recovery = " ".join(group.recovery)
                assert f"native stop {list_cid} at the venue taken back" in recovery
                assert "FLAGGED" not in recovery and "foreign" not in recovery  # its legs are ours
                await anyio.sleep(0.3)  # prices flow: nothing is placed beside it
                assert _lists_sent(venue) == [list_cid] and _resting(venue) == [
                    (sl, "STOP_LOSS"),
                    (tp, "LIMIT_MAKER"),
                ]
                await venue.trade("NKNUSDT", Decimal("0.4000"))  # the take-profit leg fills at the venue
                await _wait("flat", lambda: group.state.position == 0 and group.stop_monitor.stop is None)
                assert group.order.orders[list_cid].status == "filled" and group.state.open_orders == 0
                assert not [m for m in group.order.anomalies if m != "request_rejected"]
    assert not _resting(venue) and venue.balances["NKN"] == 0 and _lists_sent(venue) == [list_cid]


async def test_a_list_journaled_but_never_sent_is_ended_and_one_new_list_rests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_BINANCE_KEY", API_KEY)
    monkeypatch.setenv("TEST_BINANCE_SECRET", API_SECRET)
    monkeypatch.setattr(restore, "RECONCILE_FIRST_DELAY_S", 0.01)
    async with _venues() as (ws, rest, venue):
        text = _text(tmp_path, ws, rest, venue)
        with anyio.fail_after(60):
            with monkeypatch.context() as patch:
                sending = anyio.Event()

                async def dies_before_sending(self: BinanceExecution, *args: object) -> None:
                    sending.set()
                    await anyio.sleep_forever()  # the process dies here: journaled, never sent

                patch.setattr(BinanceExecution, "submit_oco", dies_before_sending)
                async with _life(text, tmp_path) as (_, group):
                    await group.router.publish(_entry())
                    await sending.wait()
                    (journaled,) = [c for c, r in group.order.orders.items() if r.legs]
            assert _lists_sent(venue) == [] and group.state.position == Decimal("100")

            async with _life(text, tmp_path) as (_, group):
                old = group.order.orders[journaled]
                await _wait("the unsent list ended", lambda: old.status == "rejected")  # neither leg found
                await _wait("a new list resting", lambda: len(_resting(venue)) == 2)
                (new,) = _lists_sent(venue)
                assert new != journaled
                stop = group.stop_monitor.stop
                assert stop is not None and stop.native is not None and stop.native.cid == new
                await anyio.sleep(0.3)
                assert _lists_sent(venue) == [new] and len(_resting(venue)) == 2
    assert journaled not in _lists_sent(venue)
