"""Our orders as OKX request bodies, client ids both ways, and OKX's numbers read strictly."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from actors.messages import SubmitOrder
from actors.order_ids import client_order_id
from adapters.okx.errors import OkxBadReply
from adapters.okx.orders import OkxNewAlgo, OkxNewOrder, map_order, okx_client_id, our_client_id
from adapters.okx.replies import dec

LAST = Decimal("30000")


def submit(order_type: str, side: str = "buy", **kw: object) -> SubmitOrder:
    now = time.time_ns()
    fields: dict[str, object] = {
        "exchange": "okx", "symbol": "BTC/USDT", "ts_event": now, "ts_recv": now, "intent_id": "i-1",
        "client_order_id": client_order_id("i-1"), "side": side, "order_type": order_type,
        "quantity": Decimal("0.0015"),
    } | kw  # fmt: skip
    return SubmitOrder(**fields)  # type: ignore[arg-type]


def test_client_ids_lose_their_dash_and_get_it_back() -> None:
    cid = client_order_id("intent-42")
    okx = okx_client_id(cid)
    assert okx == cid.replace("-", "") and len(okx) == 31 and okx.isalnum()
    assert our_client_id(okx) == cid
    assert our_client_id("webAppOrder7") == "webAppOrder7"  # another tool's id stays as it is
    with pytest.raises(ValueError, match=r"cannot be an OKX clOrdId"):
        okx_client_id(cid + "-sl")


def test_market_limit_and_time_in_force_map_to_okx_order_types() -> None:
    market = map_order(submit("market"), "BTC-USDT", LAST)
    assert isinstance(market, OkxNewOrder)
    assert market.body() == {
        "instId": "BTC-USDT", "tdMode": "cash", "side": "buy", "ordType": "market", "sz": "0.0015",
        "clOrdId": okx_client_id(client_order_id("i-1")), "tgtCcy": "base_ccy",
    }  # fmt: skip
    kinds = [
        map_order(submit("limit", price=Decimal("29000.5"), **kw), "BTC-USDT", LAST)  # type: ignore[arg-type]
        for kw in ({}, {"post_only": True}, {"time_in_force": "ioc"}, {"time_in_force": "fok"})
    ]
    assert [(k.ordType, k.px) for k in kinds if isinstance(k, OkxNewOrder)] == [
        ("limit", "29000.5"), ("post_only", "29000.5"), ("ioc", "29000.5"), ("fok", "29000.5"),
    ]  # fmt: skip


def test_stops_become_conditional_algo_orders_on_the_right_side() -> None:
    loss = map_order(submit("stop_market", "sell", stop_price=Decimal("29000")), "BTC-USDT", LAST)
    profit = map_order(submit("stop_market", "sell", stop_price=Decimal("31000")), "BTC-USDT", LAST)
    limit = map_order(
        submit("stop_limit", "buy", stop_price=Decimal("31000"), price=Decimal("31100")), "BTC-USDT", LAST
    )
    assert isinstance(loss, OkxNewAlgo) and isinstance(profit, OkxNewAlgo) and isinstance(limit, OkxNewAlgo)
    assert (loss.slTriggerPx, loss.slOrdPx, loss.tpTriggerPx) == ("29000", "-1", "")
    assert (profit.tpTriggerPx, profit.tpOrdPx, profit.slTriggerPx) == ("31000", "-1", "")
    assert (limit.slTriggerPx, limit.slOrdPx) == ("31000", "31100")  # a buy stop above the market loses
    assert loss.body()["ordType"] == "conditional" and loss.body()["tdMode"] == "cash"


@pytest.mark.parametrize("text", ["NaN", "inf", "-1", "1e", "abc", "-Infinity"])
def test_numbers_that_are_not_finite_non_negative_decimals_are_refused(text: str) -> None:
    with pytest.raises(OkxBadReply, match=r"^fillPx "):
        dec(text, "fillPx")


def test_an_empty_number_is_the_default_or_refused() -> None:
    assert dec("", "px") == 0
    assert dec("-0.02", "fillFee", allow_negative=True) == Decimal("-0.02")
    with pytest.raises(OkxBadReply, match=r"^sz is empty$"):
        dec("", "sz", empty=None)
