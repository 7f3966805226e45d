"""Hostile REST replies (Hypothesis): a mutated order reply never crashes the execution actor and
never becomes a fill with a price, quantity or fee that is not a finite, in-range number."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import anyio
import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.messages import OrderFilled
from adapters.binance.order_tracker import TrackedOrder
from adapters.binance.replies import BinanceOrderReply
from tests.binance_exec_helpers import make_actor
from tests.fake_binance import FakeBinance

# A FULL reply of a market order, as Binance documents it (and the fake sends it).
REAL = {
    "symbol": "LTCBTC",
    "orderId": 28,
    "orderListId": -1,
    "clientOrderId": "td-fuzz",
    "transactTime": 1507725176595,
    "price": "0.00000000",
    "origQty": "10.00000000",
    "executedQty": "10.00000000",
    "cummulativeQuoteQty": "0.03400000",
    "status": "FILLED",
    "timeInForce": "GTC",
    "type": "MARKET",
    "side": "BUY",
    "fills": [
        {
            "price": "0.00340000",
            "qty": "4.00000000",
            "commission": "0.00000400",
            "commissionAsset": "LTC",
            "tradeId": 56,
        },
        {
            "price": "0.00340100",
            "qty": "6.00000000",
            "commission": "0.00000600",
            "commissionAsset": "LTC",
            "tradeId": 57,
        },
    ],
}
HOSTILE = st.sampled_from(
    [
        "NaN",
        "nan",
        "Infinity",
        "-Infinity",
        "-1",
        "0",
        "-0.00000001",
        "1e400",
        "",
        "abc",
        None,
        1.5,
        -3,
        True,
        [],
        {},
    ]
)
FIELDS = ["price", "qty", "commission", "tradeId"]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    reply: dict[str, Any] = json.loads(json.dumps(REAL))
    for _ in range(draw(st.integers(1, 4))):
        fill = reply["fills"][draw(st.integers(0, 1))]
        fill[draw(st.sampled_from(FIELDS))] = draw(HOSTILE)
    if draw(st.booleans()):
        reply[draw(st.sampled_from(["executedQty", "status", "orderId", "transactTime"]))] = draw(HOSTILE)
    return json.dumps(reply).encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=mutated())
def test_mutated_replies_never_become_bad_fills(body: bytes) -> None:
    actor, events = make_actor(FakeBinance())
    try:
        reply = msgspec.json.decode(body, type=BinanceOrderReply)
    except msgspec.MsgspecError:
        return  # the client turns this into BinanceBadReply / OutcomeUnknown (tested in test_binance_http)
    order = actor._track(TrackedOrder("td-fuzz", "buy", Decimal(10)))

    async def apply() -> None:
        await actor._apply_reply(order, reply)

    anyio.run(apply)
    for fill in (e for e in events if isinstance(e, OrderFilled)):
        assert fill.last_qty.is_finite() and fill.last_qty > 0
        assert fill.last_price.is_finite() and fill.last_price > 0
        assert fill.fee.is_finite() and fill.fee >= 0
    published = sum(isinstance(e, OrderFilled) for e in events)
    refused = actor.n.get("bad_fills", 0) + actor.n["duplicate_fills"]  # two fills may share a trade id
    assert published + refused == len(reply.fills)


def test_the_real_reply_gives_two_fills() -> None:
    actor, events = make_actor(FakeBinance())
    reply = msgspec.json.decode(json.dumps(REAL).encode(), type=BinanceOrderReply)
    order = actor._track(TrackedOrder("td-fuzz", "buy", Decimal(10)))
    anyio.run(actor._apply_reply, order, reply)
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert [(f.trade_id, f.last_qty, f.last_price) for f in fills] == [
        ("56", Decimal("4.00000000"), Decimal("0.00340000")),
        ("57", Decimal("6.00000000"), Decimal("0.00340100")),
    ]
