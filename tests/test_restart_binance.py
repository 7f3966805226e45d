"""Restart recovery against the fake Binance: a resting order survives a restart; an unreachable
venue at start halts the group (no new entries) instead of trading on unconfirmed orders."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import anyio
import pytest

from actors.messages import OrderAccepted
from daemon import restore
from daemon.app import Daemon
from daemon.config import parse_config
from daemon.metrics import Metrics
from tests.fake_binance import API_KEY, API_SECRET, FakeBinance, open_fake_binance
from tests.fake_binance_ws import open_fake_binance_ws
from tests.test_e2e_binance_trading import _config, _intent, _until

pytestmark = pytest.mark.anyio


def _text(tmp_path: Path, market_url: str, market_rest: str, venue: FakeBinance) -> str:
    text = _config(tmp_path / "state", market_url, market_rest, venue.url, venue.ws_api_url)
    return text.replace(
        "[health]\nport = 0\n", "[health]\nport = 0\n[store]\nenabled = true\npostgres = false\n"
    )


async def _run_until_group(daemon: Daemon, tg: anyio.abc.TaskGroup) -> None:
    tg.start_soon(daemon.run)
    while ("binance", "NKN/USDT") not in daemon.supervisor.groups:
        await anyio.sleep(0.02)


async def test_resting_order_survives_a_restart_and_an_unreachable_venue_halts_the_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_BINANCE_KEY", API_KEY)
    monkeypatch.setenv("TEST_BINANCE_SECRET", API_SECRET)
    monkeypatch.setattr(restore, "RECONCILE_FIRST_DELAY_S", 0.01)
    async with (
        open_fake_binance_ws(replay_s=0.5) as market,
        open_fake_binance(balances={"USDT": Decimal("1000"), "NKN": Decimal("1000")}) as venue,
    ):
        venue.last_prices["NKNUSDT"] = Decimal("0.3528")
        text = _text(tmp_path, market.url, market.rest_url, venue)
        with anyio.fail_after(30):
            first = Daemon(parse_config(text), tmp_path / "c.toml", Metrics())
            async with anyio.create_task_group() as tg:
                await _run_until_group(first, tg)
                group = first.supervisor.groups[("binance", "NKN/USDT")]
                while group.state.last_price is None:
                    await anyio.sleep(0.02)
                await group.router.publish(_intent(1, "buy", "limit", "100", "0.3400"))  # rests
                await _until(group, OrderAccepted, 1)
                tg.cancel_scope.cancel()
            (cid,) = [o["clientOrderId"] for o in venue.orders.values()]

            # the venue fills it while the daemon is down; the next start must learn that
            await venue.trade("NKNUSDT", Decimal("0.3400"), Decimal("100"))
            second = Daemon(parse_config(text), tmp_path / "c.toml", Metrics())
            async with anyio.create_task_group() as tg:
                await _run_until_group(second, tg)
                group = second.supervisor.groups[("binance", "NKN/USDT")]
                while group.state.position != Decimal("100"):
                    await anyio.sleep(0.02)
                assert any("venue reconciliation" in line for line in group.recovery), group.recovery
                assert group.order.orders[cid].status == "filled" and not group.health.halted
                while group.state.last_price is None:
                    await anyio.sleep(0.02)
                await group.router.publish(_intent(2, "buy", "limit", "50", "0.3380"))  # rests
                await _until(group, OrderAccepted, 1)
                tg.cancel_scope.cancel()

            for _ in range(60):  # every query of the restart fails: the venue is unreachable
                venue.fail_next("500-unprocessed", path="/api/v3/order")
            third = Daemon(parse_config(text), tmp_path / "c.toml", Metrics())
            async with anyio.create_task_group() as tg:
                await _run_until_group(third, tg)
                group = third.supervisor.groups[("binance", "NKN/USDT")]
                reasons = third.readiness()
                tg.cancel_scope.cancel()
    assert group.health.halted and group.health.admin_reason.startswith("restart reconciliation failed")
    assert any(line.startswith("HALTED: restart reconciliation failed") for line in group.recovery)
    assert any("restart reconciliation failed" in r for r in reasons), reasons
    assert group.state.position == Decimal("100")  # the journal's truth is kept meanwhile
