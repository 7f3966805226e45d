"""Restart reconciliation of open orders the journal does not know (placed by hand or another tool).

A foreign limit buy rests at the fake Binance before the daemon starts; the account's
``foreign_orders`` policy decides: ``flag`` leaves it and says so on /status, ``cancel``
cancels it at the venue, ``adopt`` tracks it like the daemon's own (its fill moves the
group's position).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import anyio
import pytest

from adapters.binance.filters import BinanceNewOrder
from adapters.binance.http import BinanceHttpClient
from daemon.app import Daemon
from daemon.config import parse_config
from daemon.metrics import Metrics
from tests.fake_binance import API_KEY, API_SECRET, open_fake_binance
from tests.fake_binance_ws import open_fake_binance_ws
from tests.test_e2e_binance_trading import _config

pytestmark = pytest.mark.anyio
FOREIGN = "manual-order-1"


@pytest.mark.parametrize("policy", ["flag", "cancel", "adopt"])
async def test_foreign_open_order_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: str
) -> None:
    monkeypatch.setenv("TEST_BINANCE_KEY", API_KEY)
    monkeypatch.setenv("TEST_BINANCE_SECRET", API_SECRET)
    async with (
        open_fake_binance_ws(replay_s=0.5) as market,
        open_fake_binance(balances={"USDT": Decimal("1000"), "NKN": Decimal("0")}) as venue,
    ):
        venue.last_prices["NKNUSDT"] = Decimal("0.3528")
        async with BinanceHttpClient(venue.url, API_KEY, API_SECRET) as client:
            await client.new_order(
                BinanceNewOrder(
                    symbol="NKNUSDT",
                    side="BUY",
                    type="LIMIT",
                    quantity=Decimal("100"),
                    price=Decimal("0.3400"),
                    timeInForce="GTC",
                    newClientOrderId=FOREIGN,
                )
            )
        text = _config(tmp_path / "state", market.url, market.rest_url, venue.url, venue.ws_api_url)
        text = text.replace("timeout_s = 2.0\n", f'timeout_s = 2.0\nforeign_orders = "{policy}"\n')
        text = text.replace(
            "[health]\nport = 0\n", "[health]\nport = 0\n[store]\nenabled = true\npostgres = false\n"
        )
        daemon = Daemon(parse_config(text), tmp_path / "c.toml", Metrics())
        async with anyio.create_task_group() as tg:
            tg.start_soon(daemon.run)
            with anyio.fail_after(20):
                while ("binance", "NKN/USDT") not in daemon.supervisor.groups:
                    await anyio.sleep(0.02)
                group = daemon.supervisor.groups[("binance", "NKN/USDT")]
                recovery = " ".join(group.recovery)
                status = venue.orders[
                    next(k for k, o in venue.orders.items() if o["clientOrderId"] == FOREIGN)
                ]
                if policy == "adopt":
                    assert FOREIGN in group.order.orders and group.state.open_orders == 1
                    await venue.trade("NKNUSDT", Decimal("0.3400"), Decimal("100"))
                    while group.state.position != Decimal("100"):
                        await anyio.sleep(0.02)
                shown = daemon.status()["groups"][0]["recovery"]  # type: ignore[index]
            tg.cancel_scope.cancel()
    assert FOREIGN in recovery and shown == group.recovery
    if policy == "flag":
        assert "FLAGGED 1 foreign" in recovery and status["status"] == "NEW"
        assert FOREIGN not in group.order.orders
    elif policy == "cancel":
        assert "canceled 1 foreign" in recovery and status["status"] == "CANCELED"
    else:
        assert "adopted 1 foreign" in recovery
        assert group.order.orders[FOREIGN].status == "filled"
