"""Cancel-on-halt (daemon/group.py ``cancel_open_entries``, risk.halt_cancels_orders).

A real Supervisor runs one paper group on the bundled candles (played so slowly that only
the first bar arrives); a resting limit entry is placed through risk and the order actor,
then the group is halted through POST /admin/halt (or by the supervisor's actor-failure
halt): the entry is canceled at the paper venue.  Reduce-only orders are left alone, and
``halt_cancels_orders = false`` keeps everything.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal as D
from pathlib import Path

import aiohttp
import anyio
import pytest

from actors.channels import Channel
from actors.messages import CancelOrder, Message, OrderIntent
from actors.order import OrderRecord
from daemon.config import HealthSection, parse_config
from daemon.group import SymbolGroup
from daemon.health import open_health_server
from daemon.metrics import Metrics
from daemon.supervisor import Supervisor
from tests.helpers import make_config, unique_prefix

pytestmark = pytest.mark.anyio

TOKEN_ENV = "TRADINGD_TEST_CANCEL_ON_HALT_TOKEN"
TOKEN = "cancel-on-halt-token-9d2a"
KEY = ("paper", "UNITTEST/BTC")


def config_text(tmp_path: Path, cancels: bool) -> str:
    text = make_config(
        tmp_path / "state", prefix=unique_prefix(), speed=0.0001, trades_group=False, redis_enabled=False
    )
    assert text.rstrip().endswith('max_order_notional = "0.5"')  # the candles group's [groups.risk]
    return text + f"halt_cancels_orders = {str(cancels).lower()}\n"


async def until(what: str, pred: Callable[[], object], timeout: float = 5) -> None:
    with anyio.fail_after(timeout):
        while not pred():
            await anyio.sleep(0.01)


@asynccontextmanager
async def running(tmp_path: Path, cancels: bool = True) -> AsyncIterator[tuple[Supervisor, SymbolGroup]]:
    sup = Supervisor(parse_config(config_text(tmp_path, cancels)), tap=None)
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        group = sup.groups[KEY]
        await until("first bar", lambda: group.state.last_price is not None)
        yield sup, group
        tg.cancel_scope.cancel()


async def rest_limit_buy(group: SymbolGroup, intent_id: str) -> str:
    last = group.state.last_price
    assert last is not None
    price = (last * D("0.98")).quantize(D("0.00000001"))
    await group.router.publish(
        OrderIntent(
            exchange=KEY[0],
            symbol=KEY[1],
            ts_event=group.state.last_ts_event,
            ts_recv=group.state.last_ts_event,
            intent_id=intent_id,
            source="test",
            side="buy",
            order_type="limit",
            quantity=D("100"),
            price=price,
            stop_loss=(price * D("0.99")).quantize(D("0.00000001")),
        )
    )
    await until("accepted", lambda: any(r.status == "accepted" for r in group.order.open_orders()))
    (rec,) = group.order.open_orders()
    assert rec.cid in group.venue.engine._open  # type: ignore[union-attr]
    return rec.cid


async def test_admin_halt_cancels_open_limit_entries_on_the_paper_venue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    cfg = HealthSection(bind="127.0.0.1", port=0, admin_token_env=TOKEN_ENV)
    async with running(tmp_path) as (sup, group), open_health_server(cfg, sup, Metrics()) as server:
        cid = await rest_limit_buy(group, "resting-entry")
        assert group.state.open_orders == 1
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with (
            aiohttp.ClientSession(base_url=server.url) as http,
            http.post("/admin/halt", headers=auth, json={"reason": "desk"}) as r,
        ):
            assert r.status == 200
        await until("canceled", lambda: group.order.orders[cid].status == "canceled")
        assert group.venue.engine._open == {}  # type: ignore[union-attr]
        assert (group.state.open_orders, group.state.pending_exposure) == (0, D(0))
        assert group.health.halted


async def test_supervisor_halt_cancels_open_entries_too(tmp_path: Path) -> None:
    async with running(tmp_path) as (_, group):
        cid = await rest_limit_buy(group, "resting-entry")
        group.health.halt("order actor failed 6 times")
        await until("canceled", lambda: group.order.orders[cid].status == "canceled")


async def test_halt_with_halt_cancels_orders_false_keeps_open_orders(tmp_path: Path) -> None:
    async with running(tmp_path, cancels=False) as (sup, group):
        cid = await rest_limit_buy(group, "resting-entry")
        sup.halt("desk")
        await anyio.sleep(0.2)
        assert group.order.orders[cid].status == "accepted"
        assert cid in group.venue.engine._open  # type: ignore[union-attr]


async def test_reduce_only_orders_are_not_canceled_and_a_second_halt_sends_nothing(tmp_path: Path) -> None:
    async with running(tmp_path) as (sup, group):
        cid = await rest_limit_buy(group, "resting-entry")
        exit_intent = OrderIntent(
            exchange=KEY[0],
            symbol=KEY[1],
            ts_event=1,
            ts_recv=1,
            intent_id="native-stop",
            source="stop-monitor",
            side="sell",
            order_type="stop_market",
            quantity=D("1"),
            stop_price=D("0.001"),
            reduce_only=True,
        )
        group.order.orders["native-stop-cid"] = OrderRecord("native-stop-cid", exit_intent, D("1"))
        cancels: Channel[Message] = Channel("cancels", 16)
        group.router.subscribe(cancels, (CancelOrder,))
        assert group.cancel_open_entries("test") == 1  # the entry only
        sup.halt("desk")  # was not halted: one round of cancels
        group.health.halt("actor failed")  # already halted: no second round
        with anyio.fail_after(1):
            sent = await cancels.receive_batch()
        assert [m.client_order_id for m in sent if isinstance(m, CancelOrder)] == [cid, cid]
        assert group.order.orders["native-stop-cid"].status == "submitted"
