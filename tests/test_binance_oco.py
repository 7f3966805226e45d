"""OCO order lists at the fake Binance through the REST client (``POST /api/v3/orderList/oco``).

The ground for a stop-loss + take-profit resting as one venue OCO: the client's
:meth:`~adapters.binance.http.BinanceHttpClient.new_oco` and ``cancel_order_list``, exchangeInfo's
``ocoAllowed`` in :class:`~adapters.binance.filters.SymbolRules`, and the fake answering with
Binance's shapes (``orderListId``, ``contingencyType``, ``listStatusType``, ``listOrderStatus``,
``orders``, ``orderReports``): legs above and below the market, the price relation checked, one
leg filling or triggering ends the other (EXPIRED), canceling one leg cancels the list.
"""

from __future__ import annotations

from decimal import Decimal

import anyio
import pytest

from adapters.binance.filters import rules_by_symbol
from adapters.binance.http import BinanceOrderRejected, BinanceParameterError
from adapters.binance.orders import BinanceNewOco
from tests.fake_binance import open_fake_binance
from tests.test_binance_http import client_for

pytestmark = pytest.mark.anyio
STOPS = frozenset({"STOP_LOSS", "TAKE_PROFIT"})  # the recorded LTCBTC takes only the *_LIMIT stops


def sell_oco(list_cid: str = "list-1", tp: str = "0.003600", sl: str = "0.003400") -> BinanceNewOco:
    return BinanceNewOco(
        symbol="LTCBTC",
        side="SELL",
        quantity=Decimal("1.000"),
        listClientOrderId=list_cid,
        aboveType="TAKE_PROFIT_LIMIT",
        aboveClientOrderId=f"{list_cid}-tp",
        abovePrice=Decimal(tp),
        aboveStopPrice=Decimal(tp),
        aboveTimeInForce="GTC",
        belowType="STOP_LOSS",
        belowClientOrderId=f"{list_cid}-sl",
        belowStopPrice=Decimal(sl),
    )


def statuses(fake: object, *cids: str) -> list[str]:
    return [fake.orders[c]["status"] for c in cids]  # type: ignore[attr-defined]


async def test_an_oco_rests_two_legs_and_a_triggered_stop_expires_the_take_profit() -> None:
    with anyio.fail_after(10):
        async with open_fake_binance(order_types_extra=STOPS) as fake, client_for(fake) as client:
            rules = rules_by_symbol(await client.exchange_info())["LTCBTC"]
            placed = await client.new_oco(sell_oco())
            resting = await client.open_orders("LTCBTC")
            await fake.trade("LTCBTC", Decimal("0.003390"))  # through the stop: it fires, the TP goes
            after = await client.open_orders("LTCBTC")

    assert rules.oco_allowed
    assert (placed.contingencyType, placed.listStatusType, placed.listOrderStatus) == (
        "OCO",
        "EXEC_STARTED",
        "EXECUTING",
    )
    assert placed.listClientOrderId == "list-1" and placed.symbol == "LTCBTC"
    assert [o.clientOrderId for o in placed.orders] == ["list-1-tp", "list-1-sl"]
    assert [(r.type, r.stopPrice, r.status) for r in placed.orderReports] == [
        ("TAKE_PROFIT_LIMIT", Decimal("0.0036"), "NEW"),
        ("STOP_LOSS", Decimal("0.0034"), "NEW"),
    ]
    assert {o.clientOrderId for o in resting} == {"list-1-tp", "list-1-sl"}
    assert statuses(fake, "list-1-sl", "list-1-tp") == ["FILLED", "EXPIRED"] and after == []
    assert fake.order_lists["list-1"]["listOrderStatus"] == "ALL_DONE"
    reports = [(e["c"], e["X"], e["g"]) for e in fake.user_events if e.get("e") == "executionReport"]
    assert ("list-1-tp", "EXPIRED", placed.orderListId) in reports


async def test_canceling_the_list_or_one_leg_cancels_both() -> None:
    with anyio.fail_after(10):
        async with open_fake_binance(order_types_extra=STOPS) as fake, client_for(fake) as client:
            await client.new_oco(sell_oco("a"))
            canceled = await client.cancel_order_list("LTCBTC", "a")
            await client.new_oco(sell_oco("b"))
            await client.cancel_order("LTCBTC", "b-sl")
            left = await client.open_orders("LTCBTC")

    assert canceled.listOrderStatus == "ALL_DONE"
    assert [r.status for r in canceled.orderReports] == ["CANCELED", "CANCELED"]
    assert statuses(fake, "b-sl", "b-tp") == ["CANCELED", "CANCELED"] and left == []


async def test_an_oco_is_refused_where_not_allowed_or_with_the_prices_the_wrong_way_round() -> None:
    with anyio.fail_after(10):
        async with open_fake_binance(oco_allowed=False) as fake, client_for(fake) as client:
            rules = rules_by_symbol(await client.exchange_info())["LTCBTC"]
            with pytest.raises(BinanceParameterError, match="OCO orders are not supported"):
                await client.new_oco(sell_oco())
        async with open_fake_binance(order_types_extra=STOPS) as fake2, client_for(fake2) as client2:
            with pytest.raises(BinanceOrderRejected, match="relationship of the prices"):
                await client2.new_oco(sell_oco(tp="0.003300"))  # the take-profit below the market
            left = await client2.open_orders("LTCBTC")

    assert not rules.oco_allowed and not fake.orders and left == []
