"""The Binance execution actor rests a stop-loss and a take-profit as one OCO list (against the
fake Binance): both legs accepted under their own client order ids (derived from the list's), the
take-profit filling expires the stop leg and the stop triggering expires the take-profit leg (each
an ordinary event for its leg), a cancel of one leg cancels both, a symbol without ocoAllowed is
refused unsent, and a re-sent list (a restart) is a duplicate at the venue."""

from __future__ import annotations

from decimal import Decimal

import anyio
import msgspec
import pytest

from actors.messages import (
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    SubmitOrder,
)
from actors.oco import leg_ids
from actors.order_ids import client_order_id
from tests.binance_exec_helpers import cancel, kinds, of, running, submit, until
from tests.fake_binance import open_fake_binance

pytestmark = pytest.mark.anyio
STOPS = frozenset({"STOP_LOSS", "TAKE_PROFIT"})  # the recorded LTCBTC takes only the *_LIMIT stops
LIST = client_order_id("stop:td-entry:native:1:1")
SL, TP = leg_ids(LIST)


def legs(list_cid: str = LIST, sl: str = "0.003400", tp: str = "0.003600") -> tuple[SubmitOrder, SubmitOrder]:
    s, t = leg_ids(list_cid)
    stop = msgspec.structs.replace(
        submit(s, "sell", "stop_market", price=None, stop=sl), reduce_only=True, intent_id=f"i-{list_cid}"
    )
    take = msgspec.structs.replace(
        submit(t, "sell", "limit", price=tp), reduce_only=True, intent_id=f"i-{list_cid}"
    )
    return stop, take


async def test_take_profit_fill_expires_the_stop_leg() -> None:
    with anyio.fail_after(15):
        async with open_fake_binance(order_types_extra=STOPS) as fake, running(fake) as (actor, events):
            await actor.submit_oco(LIST, *legs())
            await until(lambda: len(of(events, OrderAccepted)) == 2)
            at_venue = {c: (o["type"], o["status"]) for c, o in fake.orders.items()}
            await fake.trade("LTCBTC", Decimal("0.003600"))
            await until(lambda: bool(of(events, OrderExpired, SL)) and bool(of(events, OrderFilled, TP)))
            await fake.trade("LTCBTC", Decimal("0.003300"))  # below the old stop: nothing is left to fire
    assert at_venue == {SL: ("STOP_LOSS", "NEW"), TP: ("LIMIT_MAKER", "NEW")}
    assert fake.order_lists[LIST]["legs"] == [TP, SL]
    assert kinds(events, TP) == ["OrderAccepted", "OrderFilled"]
    assert kinds(events, SL) == ["OrderAccepted", "OrderExpired"]
    fill = of(events, OrderFilled, TP)[0]
    assert fill.last_qty == Decimal("1") and fill.leaves_qty == 0
    assert (fake.orders[SL]["status"], fake.orders[TP]["status"]) == ("EXPIRED", "FILLED")


async def test_stop_trigger_expires_the_take_profit_leg() -> None:
    with anyio.fail_after(15):
        async with open_fake_binance(order_types_extra=STOPS) as fake, running(fake) as (actor, events):
            await actor.submit_oco(LIST, *legs())
            await until(lambda: len(of(events, OrderAccepted)) == 2)
            await fake.trade("LTCBTC", Decimal("0.003390"))
            await until(lambda: bool(of(events, OrderExpired, TP)) and bool(of(events, OrderFilled, SL)))
    assert kinds(events, SL) == ["OrderAccepted", "OrderFilled"]
    assert kinds(events, TP) == ["OrderAccepted", "OrderExpired"]
    assert sum(f.last_qty for f in of(events, OrderFilled)) == Decimal("1")  # one exit


async def test_list_stop_leg_is_stop_loss_limit_where_the_symbol_has_no_stop_loss() -> None:
    with anyio.fail_after(15):
        async with open_fake_binance() as fake, running(fake) as (actor, events):
            await actor.submit_oco(LIST, *legs())
            await until(lambda: len(of(events, OrderAccepted)) == 2)
            (sent,) = [s.params for s in fake.seen if s.method == "POST"]
            await fake.trade("LTCBTC", Decimal("0.003390"))
            await until(lambda: bool(of(events, OrderExpired, TP)) and bool(of(events, OrderFilled, SL)))
    below = (sent["belowType"], Decimal(sent["belowStopPrice"]), Decimal(sent["belowPrice"]))
    assert below == ("STOP_LOSS_LIMIT", Decimal("0.003400"), Decimal("0.003383"))
    assert sent["belowTimeInForce"] == "GTC"
    assert fake.orders[SL]["type"] == "STOP_LOSS_LIMIT"
    assert kinds(events, SL) == ["OrderAccepted", "OrderFilled"]
    assert of(events, OrderFilled, SL)[0].last_price == Decimal("0.003383")


async def test_cancel_of_one_leg_cancels_the_list_then_a_new_list_rests() -> None:
    with anyio.fail_after(15):
        async with open_fake_binance(order_types_extra=STOPS) as fake, running(fake) as (actor, events):
            await actor.submit_oco(LIST, *legs())
            await until(lambda: len(of(events, OrderAccepted)) == 2)
            await actor.handle(cancel(SL))
            await until(lambda: bool(of(events, OrderCanceled, SL)) and bool(of(events, OrderCanceled, TP)))
            nxt = client_order_id("stop:td-entry:native:2:2")
            await actor.submit_oco(nxt, *legs(nxt, sl="0.003450"))
            await until(lambda: len(of(events, OrderAccepted)) == 4)
    assert kinds(events, TP) == ["OrderAccepted", "OrderCanceled"]
    assert {c for c, o in fake.orders.items() if o["status"] == "NEW"} == set(leg_ids(nxt))


async def test_oco_not_allowed_is_refused_unsent() -> None:
    with anyio.fail_after(15):
        async with (
            open_fake_binance(order_types_extra=STOPS, oco_allowed=False) as fake,
            running(fake) as (actor, events),
        ):
            await actor.submit_oco(LIST, *legs())
    rejected = of(events, OrderRejected)
    assert [r.client_order_id for r in rejected] == [SL, TP]
    assert all("ocoAllowed false" in r.reason for r in rejected)
    assert fake.orders == {}


async def test_a_resent_list_is_a_duplicate_at_the_venue() -> None:
    with anyio.fail_after(15):
        async with open_fake_binance(order_types_extra=STOPS) as fake:
            async with running(fake) as (actor, events):
                await actor.submit_oco(LIST, *legs())
                await until(lambda: len(of(events, OrderAccepted)) == 2)
            async with running(fake) as (again, after):  # a new process sends the same intent's list
                await again.submit_oco(LIST, *legs())
                await until(lambda: len(of(after, OrderRejected)) == 2)
    assert all("already in use" in r.reason or "Duplicate" in r.reason for r in of(after, OrderRejected))
    assert {c for c, o in fake.orders.items() if o["status"] == "NEW"} == {SL, TP}


async def test_a_list_arrives_as_one_submit_order() -> None:
    with anyio.fail_after(15):
        async with open_fake_binance(order_types_extra=STOPS) as fake, running(fake) as (actor, events):
            stop, _ = legs()
            listed = msgspec.structs.replace(stop, client_order_id=LIST, oco_take_profit=Decimal("0.003600"))
            await actor.handle(listed)
            await until(lambda: len(of(events, OrderAccepted)) == 2)
    assert {c: o["type"] for c, o in fake.orders.items()} == {TP: "LIMIT_MAKER", SL: "STOP_LOSS"}
    assert fake.order_lists[LIST]["legs"] == [TP, SL]
