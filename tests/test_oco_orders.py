"""An OCO list on the order path is one order: risk, the order actor, the journal's fold, restart.

The stop-monitor's list is one reduce-only stop intent carrying ``oco_take_profit``.  Risk checks
it as one exit; the order actor journals it (OrderSubmitted with both leg ids) before its one
SubmitOrder, reserves it once and maps both legs' events to it: the other leg's OrderExpired after
a fill ends nothing, a cancel ends it once both legs are canceled, a refusal of both legs rejects it
once.  The journal's fold follows it exactly (and a snapshot keeps which legs ended); the leg ids
count as used after a restart, the venue is asked about the legs (not the list) and a list's legs
are never taken for foreign orders.
"""

from __future__ import annotations

from decimal import Decimal as D
from types import SimpleNamespace

import msgspec
import pytest

from actors.channels import Channel, Router
from actors.messages import (
    GroupSnapshot,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderIntent,
    OrderRejected,
    OrderSubmitted,
    OrderUnknown,
    RiskApproved,
    RiskRejected,
    SubmitOrder,
)
from actors.oco import leg_ids, list_end
from actors.order_fold import OrderFold
from actors.order_ids import client_order_id
from actors.params import RiskLimits
from actors.risk import RiskActor
from actors.runtime import GroupState
from actors.state import SymbolState
from daemon.config import Instrument
from daemon.operator_view import _order_row
from daemon.restore import open_native_stop, venue_orders
from tests.test_recovery import EX, SYM, Harness, assert_same, fill, st

pytestmark = pytest.mark.anyio


def oco(
    n: int = 1, qty: str = "10", sl: str = "0.0009", tp: str = "0.0012", side: str = "sell"
) -> OrderIntent:
    return OrderIntent(
        intent_id=f"stop:e:native:{n}:{n}",
        source="stop-monitor",
        side=side,  # type: ignore[arg-type]
        order_type="stop_market",
        quantity=D(qty),
        stop_price=D(sl),
        reduce_only=True,
        oco_take_profit=D(tp),
        **st(n),  # type: ignore[arg-type]
    )


async def listed(h: Harness, n: int = 1) -> tuple[str, str, str]:
    """A held position of 10 and the list resting for it: (list id, stop leg, take-profit leg)."""
    h.actor.position.quantity = h.fold.position.quantity = D(10)
    h.actor.position.avg_price = h.fold.position.avg_price = D("0.001")
    cid = await h.approve(oco(n))
    sl, tp = leg_ids(cid)
    await h.event(OrderAccepted(client_order_id=sl, venue_order_id="v-sl", **st()))  # type: ignore[arg-type]
    await h.event(OrderAccepted(client_order_id=tp, venue_order_id="v-tp", **st()))  # type: ignore[arg-type]
    return cid, sl, tp


async def test_one_submission_journaled_with_both_leg_ids_and_reserved_once() -> None:
    h = Harness()
    cid, sl, tp = await listed(h)
    (submitted,) = [m for m in h.sent if isinstance(m, OrderSubmitted)]
    assert (submitted.client_order_id, submitted.oco_legs, submitted.oco_take_profit) == (
        cid,
        (sl, tp),
        D("0.0012"),
    )
    (command,) = [m for m in h.sent if isinstance(m, SubmitOrder)]
    assert command.client_order_id == cid and command.oco_take_profit == D("0.0012")
    assert (h.state.open_orders, h.state.pending_exposure) == (1, D(-10))
    assert h.actor.orders[cid].status == "accepted" and h.actor.counts["accepted"] == 1
    assert not h.actor.anomalies
    assert_same(h.fold, h.actor)


async def test_a_filled_leg_fills_the_list_and_the_other_legs_expiry_ends_nothing() -> None:
    h = Harness()
    cid, sl, tp = await listed(h)
    await h.event(fill(tp, "t1", "4", "4", "6", side="sell", price="0.0012"))
    await h.event(OrderExpired(client_order_id=sl, **st()))  # type: ignore[arg-type]
    rec = h.actor.orders[cid]
    assert (rec.status, rec.cum_qty, h.state.pending_exposure) == ("partially_filled", D(4), D(-6))
    assert_same(h.fold, h.actor)
    await h.event(fill(tp, "t2", "6", "10", "0", side="sell", price="0.0012"))
    assert (rec.status, h.actor.position.quantity, h.state.open_orders) == ("filled", 0, 0)
    assert h.state.pending_exposure == 0 and not h.actor.anomalies
    assert_same(h.fold, h.actor)
    assert h.fold.finished[cid].status == "filled"


async def test_a_canceled_list_ends_once_when_both_legs_are_canceled() -> None:
    h = Harness()
    cid, sl, tp = await listed(h)
    await h.event(OrderCanceled(client_order_id=sl, **st()))  # type: ignore[arg-type]
    assert h.actor.orders[cid].status == "accepted" and cid in h.fold.open  # the other leg still rests
    await h.event(OrderCanceled(client_order_id=tp, **st()))  # type: ignore[arg-type]
    assert (h.actor.orders[cid].status, h.actor.counts["canceled"]) == ("canceled", 1)
    assert (h.state.open_orders, h.state.pending_exposure) == (0, 0) and not h.actor.anomalies
    assert_same(h.fold, h.actor)


async def test_a_refused_list_is_rejected_once_and_an_unknown_outcome_counted_once() -> None:
    h = Harness()
    h.actor.position.quantity = h.fold.position.quantity = D(10)
    cid = await h.approve(oco())
    sl, tp = leg_ids(cid)
    await h.event(OrderUnknown(client_order_id=sl, reason="timeout", **st()))  # type: ignore[arg-type]
    await h.event(OrderUnknown(client_order_id=tp, reason="timeout", **st()))  # type: ignore[arg-type]
    assert h.actor.counts["unknown"] == 1 and h.actor.orders[cid].status == "unknown"
    await h.event(OrderRejected(client_order_id=sl, reason="not found at venue", **st()))  # type: ignore[arg-type]
    await h.event(OrderRejected(client_order_id=tp, reason="not found at venue", **st()))  # type: ignore[arg-type]
    assert (h.actor.orders[cid].status, h.actor.counts["rejected"]) == ("rejected", 1)
    assert (h.state.open_orders, h.state.pending_exposure) == (0, 0) and not h.actor.anomalies
    assert_same(h.fold, h.actor)


async def test_the_legs_open_survive_a_snapshot() -> None:
    h = Harness()
    cid, sl, _ = await listed(h)
    await h.event(OrderExpired(client_order_id=sl, **st()))  # type: ignore[arg-type]
    snap = msgspec.json.decode(msgspec.json.encode(h.fold.snapshot(st(9))), type=GroupSnapshot)  # type: ignore[arg-type]
    (order,) = snap.orders
    assert order.legs_ended == [sl] and order.intent.oco_take_profit == D("0.0012")
    again = OrderFold(EX, SYM, "paper", "UNITTEST", "BTC")
    again.apply(snap)
    assert again.open[cid].legs_ended == {sl} and again.open[cid].legs == leg_ids(cid)
    assert {cid, *leg_ids(cid)} <= again.client_order_ids()


async def test_after_a_restart_the_list_and_its_legs_are_never_sent_again() -> None:
    h = Harness()
    cid, sl, tp = await listed(h)
    after = Harness()
    after.actor.restore(h.fold)
    assert after.actor.orders[cid].legs == (sl, tp) and after.state.open_orders == 1
    await after.actor.handle(RiskApproved(intent=oco(), **st()))  # type: ignore[arg-type]  # a replay
    assert after.actor.anomalies == {"duplicate_intent": 1}
    # the venue knows a leg id the journal lost: a list that would carry it is refused too
    fresh = OrderFold(EX, SYM, "paper", "UNITTEST", "BTC")
    fresh.known_ids = {leg_ids(client_order_id(oco(2).intent_id))[1]}
    third = Harness()
    third.actor.restore(fresh)
    await third.actor.handle(RiskApproved(intent=oco(2), **st()))  # type: ignore[arg-type]
    assert third.actor.anomalies == {"duplicate_intent": 1}
    assert not [m for m in [*after.sent, *third.sent] if isinstance(m, SubmitOrder)]


async def test_the_venue_is_asked_about_the_legs_not_ended_and_the_list_found_open() -> None:
    h = Harness()
    cid, sl, tp = await listed(h)
    await h.event(OrderExpired(client_order_id=tp, **st()))  # the stop leg fires
    after = Harness()
    after.actor.restore(h.fold)
    asked = venue_orders(after.actor.open_orders())
    assert [(r.cid, r.quantity) for r in asked] == [(sl, D(10))]
    found, state = open_native_stop(h.fold, [])
    assert found is not None and found.cid == cid and state == "working"
    canceled = OrderCanceled(client_order_id=sl, **st())  # type: ignore[arg-type]
    assert open_native_stop(h.fold, [canceled]) == (None, "working")  # both legs ended: gone


async def test_a_list_journaled_but_never_acknowledged_is_pending() -> None:
    fold = OrderFold(EX, SYM, "paper", "UNITTEST", "BTC")
    intent = oco()
    cid = client_order_id(intent.intent_id)
    fold.apply(
        OrderSubmitted(
            intent_id=intent.intent_id,
            client_order_id=cid,
            side="sell",
            order_type="stop_market",
            quantity=D(10),
            stop_price=D("0.0009"),
            oco_take_profit=D("0.0012"),
            oco_legs=leg_ids(cid),
            **st(),  # type: ignore[arg-type]
        )
    )  # the approval was in a released segment: the intent is rebuilt from the submission
    assert fold.open[cid].intent.oco_take_profit == D("0.0012") and fold.open[cid].intent.reduce_only
    assert open_native_stop(fold, [])[1] == "pending"
    accepted = OrderAccepted(client_order_id=leg_ids(cid)[0], venue_order_id="v", **st())  # type: ignore[arg-type]
    assert open_native_stop(fold, [accepted])[1] == "working"


def test_list_end_rules() -> None:
    ended: set[str] = set()
    assert list_end("accepted", ended, "x-tp", "expired") is None  # the stop leg fires
    assert list_end("accepted", ended, "x-sl", "canceled") == "canceled"
    assert list_end("submitted", set(), "x-sl", "rejected") == "rejected"  # refused as a whole
    assert list_end("accepted", set(), "x-sl", "rejected") is None


async def test_risk_checks_the_list_as_one_exit() -> None:
    state = SymbolState(EX, SYM, "paper")
    state.position, state.last_price = D(10), D("0.001")
    out: list[object] = []
    router = Router(out.append)
    risk = RiskActor(EX, SYM, router, Channel("risk", 16), state, GroupState(EX, SYM), RiskLimits())
    for bad in (oco(1, tp="0.0008"), msgspec.structs.replace(oco(2), reduce_only=False)):
        await risk.handle(bad)
    await risk.handle(oco(3))
    await risk.handle(oco(4, qty="1"))  # a second exit while the list covers the position: refused
    verdicts = [
        (m.rule, m.reason) if isinstance(m, RiskRejected) else "approved"
        for m in out
        if isinstance(m, RiskRejected | RiskApproved)
    ]
    assert verdicts == [
        ("invalid", "OCO take-profit 0.0008 must be above the stop 0.0009 for a sell"),
        ("invalid", "an OCO list is a reduce-only stop order, got stop_market"),
        "approved",
        ("reduce_only", "reduce-only sell but position net of open orders is 0"),
    ]
    assert (state.open_orders, state.pending_exposure) == (1, D(-10))


async def test_tradingd_orders_shows_a_list_as_oco_with_its_take_profit_and_stop() -> None:
    h = Harness()
    cid, _, _ = await listed(h)
    inst = Instrument(base="UNITTEST", quote="BTC", tick_size=D("0.0001"), step_size=D("0.01"))
    group = SimpleNamespace(name=f"{EX}:{SYM}", cfg=SimpleNamespace(instrument=inst))
    row = _order_row(group, h.actor.orders[cid])  # type: ignore[arg-type]
    assert (row["type"], row["price"], row["stop_price"], row["quantity"], row["status"]) == (
        "oco",
        "0.0012",
        "0.0009",
        "10.00",
        "accepted",
    )


def test_only_paper_and_binance_venues_are_offered_lists() -> None:
    from daemon.group import oco_allowed
    from tests.oco_wiring import paper_venue

    assert oco_allowed(paper_venue(Router()))() is True
    assert oco_allowed(SimpleNamespace(rules=None))() is False  # type: ignore[arg-type]  # e.g. OKX
