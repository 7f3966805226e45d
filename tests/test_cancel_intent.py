"""CancelIntent: a strategy withdraws an order it asked for; the order actor cancels what it became."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from actors.channels import Channel, Router
from actors.messages import (
    CancelIntent,
    CancelOrder,
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderIntent,
    RiskApproved,
    SubmitOrder,
    stamp,
)
from actors.order import OrderActor
from actors.order_ids import client_order_id
from actors.state import SymbolState

pytestmark = pytest.mark.anyio
EX, SYM = "paper", "XRP/ETH"


def st() -> dict[str, object]:
    return dict(stamp(EX, SYM, 1))


def intent(n: int) -> OrderIntent:
    return OrderIntent(
        intent_id=f"grid-{n}",
        source="grid",
        side="buy",
        order_type="limit",
        quantity=D(10),
        price=D("0.001"),
        stop_loss=D("0.0009"),
        **st(),  # type: ignore[arg-type]
    )


def wired() -> tuple[OrderActor, SymbolState, Channel[Message]]:
    router = Router()
    venue: Channel[Message] = Channel("venue", 64)
    router.subscribe(venue, (SubmitOrder, CancelOrder))
    state = SymbolState(EX, SYM, "paper")
    return OrderActor(EX, SYM, router, Channel("order", 64), state, D("0.00000001"), D(1)), state, venue


async def approve(actor: OrderActor, state: SymbolState, i: OrderIntent) -> None:
    state.open_orders += 1
    state.pending_exposure += i.quantity
    await actor.handle(RiskApproved(intent=i, **st()))  # type: ignore[arg-type]


async def test_cancel_intent_cancels_the_working_order_once() -> None:
    actor, state, venue = wired()
    await approve(actor, state, intent(1))
    cid = client_order_id("grid-1")
    await actor.handle(OrderAccepted(client_order_id=cid, venue_order_id="v1", **st()))  # type: ignore[arg-type]
    await actor.handle(CancelIntent(intent_id="grid-1", source="grid", reason="grid stopped", **st()))  # type: ignore[arg-type]
    sent = await venue.receive_batch(10)
    assert [type(m).__name__ for m in sent] == ["SubmitOrder", "CancelOrder"]
    assert sent[1].client_order_id == cid and sent[1].venue_order_id == "v1"  # type: ignore[attr-defined]
    await actor.handle(OrderCanceled(client_order_id=cid, **st()))  # type: ignore[arg-type]
    assert state.open_orders == 0 and state.pending_exposure == 0
    await actor.handle(CancelIntent(intent_id="grid-1", source="grid", **st()))  # type: ignore[arg-type]
    assert venue.depth() == 0  # an ended order is not canceled again


async def test_an_intent_withdrawn_before_approval_is_never_sent() -> None:
    actor, state, venue = wired()
    await actor.handle(CancelIntent(intent_id="grid-2", source="grid", reason="price moved", **st()))  # type: ignore[arg-type]
    await approve(actor, state, intent(2))  # risk approved it meanwhile
    assert venue.depth() == 0
    assert state.open_orders == 0 and state.pending_exposure == 0  # the reservation is given back
    assert client_order_id("grid-2") not in actor.orders
