"""The stop-loss and the take-profit resting at the venue as ONE OCO list (native_stops and
native_take_profit on, a venue that takes lists), against the paper venue and the fake Binance.

Wired as a group wires them (tests/oco_wiring.py): a market entry fills, the stop-monitor rests one
list (a stop-loss leg and a take-profit leg under the list's derived ids); the first leg to fill or
trigger is the exit, once, and the other expires.  A trail move cancels the list and rests a new
one; between the two the monitor watches both levels, so every venue state recorded (after each
request and market trade) shows the position guarded.  Hostile: a list the venue refuses falls
back to a native stop-loss and a watched take-profit (logged and counted); a symbol without
``ocoAllowed`` never sees a list; a list that fired while its cancel was on its way is the exit.
"""

from __future__ import annotations

import itertools
from decimal import Decimal as D

import pytest

from actors.messages import (
    CancelOrder,
    OrderCanceled,
    OrderExpired,
    OrderIntent,
    OrderRejected,
    OrderSubmitted,
    RiskApproved,
    stamp,
)
from actors.oco import leg_ids
from actors.order_ids import client_order_id
from tests.oco_wiring import EX, SYM, VENUE, OcoWired, VenueKind, oco_wired, until

pytestmark = pytest.mark.anyio
VENUES: list[VenueKind] = ["paper", "binance"]


async def listed(w: OcoWired) -> str:
    """The list the monitor rests once the entry filled; asserts both legs rest at the venue."""
    await until("OCO list resting", lambda: w.native() is not None)
    cid = w.native()
    assert cid is not None
    sl, tp = leg_ids(cid)
    await until("both legs at the venue", lambda: len(w.resting()) == 2)
    assert sorted(w.resting()) == [(sl, "stop", D("0.0034")), (tp, "limit", D("0.0036"))]
    return cid


@pytest.mark.parametrize("venue", VENUES)
async def test_stop_loss_and_take_profit_rest_as_one_list_one_exit_reserved(venue: VenueKind) -> None:
    async with oco_wired(venue) as w:
        await w.enter()
        cid = await listed(w)
        exits = [m.intent for m in w.seen if isinstance(m, RiskApproved) and m.intent.reduce_only]
        assert len(exits) == 1 and exits[0].oco_take_profit == D("0.003600")  # one exit, not two
        (journaled,) = [m for m in w.seen if isinstance(m, OrderSubmitted) and m.client_order_id == cid]
        assert journaled.oco_legs == leg_ids(cid) and journaled.oco_take_profit == D("0.003600")
        assert [r.cid for r in w.order.open_orders()] == [cid]
        assert (w.state.open_orders, w.state.pending_exposure) == (1, D("-1"))  # reserved once
        assert w.oco_requests() == 1


@pytest.mark.parametrize("venue", VENUES)
async def test_the_take_profit_leg_fills_once_and_the_stop_leg_expires(venue: VenueKind) -> None:
    async with oco_wired(venue) as w:
        await w.enter()
        cid = await listed(w)
        sl, tp = leg_ids(cid)
        await w.price("0.003550")  # between the legs: nothing
        await w.price("0.003610")  # the take-profit leg fills at 0.0036
        await until("flat", lambda: w.order.position.quantity == 0 and w.monitor.stop is None)
        await until("stop leg expired", lambda: any(isinstance(m, OrderExpired) for m in w.seen))
        assert [(m.client_order_id, m.last_price) for m in w.sells()] == [(tp, D("0.003600"))]
        assert [m.client_order_id for m in w.seen if isinstance(m, OrderExpired)] == [sl]
        assert w.triggers() == [("take_profit", D("0.003600"))]
        assert not w.exits() and not w.resting() and w.flat_once()
        assert w.order.orders[cid].status == "filled" and w.state.open_orders == 1 - 1
        assert w.state.pending_exposure == 0 and not w.order.anomalies


@pytest.mark.parametrize("venue", VENUES)
async def test_the_stop_loss_leg_triggers_and_is_the_only_exit(venue: VenueKind) -> None:
    async with oco_wired(venue) as w:
        await w.enter()
        cid = await listed(w)
        sl, tp = leg_ids(cid)
        await w.price("0.003390")  # through the stop: the venue's stop leg fires, the take-profit expires
        await until("flat", lambda: w.order.position.quantity == 0 and w.monitor.stop is None)
        await until("take-profit leg expired", lambda: any(isinstance(m, OrderExpired) for m in w.seen))
        assert [m.client_order_id for m in w.sells()] == [sl]
        assert [m.client_order_id for m in w.seen if isinstance(m, OrderExpired)] == [tp]
        assert w.triggers() == [("stop_loss", D("0.003400"))]
        assert not w.exits() and not w.resting() and w.flat_once()
        assert w.order.orders[cid].status == "filled" and not w.order.anomalies
        assert (w.state.open_orders, w.state.pending_exposure) == (0, 0)


@pytest.mark.parametrize("venue", VENUES)
async def test_trailing_rests_a_new_list_after_each_cancel_and_the_position_is_always_guarded(
    venue: VenueKind,
) -> None:
    async with oco_wired(venue) as w:
        await w.enter(trailing_distance="0.000100")
        first = await listed(w)
        lists = [first]
        for px, level in (("0.003550", "0.003450"), ("0.003560", None), ("0.003590", "0.003490")):
            await w.price(px)
            if level is None:  # under the step: nothing moves
                continue
            await until(f"list at {level}", lambda: w.native() not in (None, *lists))
            new = w.native()
            assert new is not None
            lists.append(new)
            stop = w.monitor.stop
            assert stop is not None and stop.native is not None and stop.native.level == D(level)
            legs = set(leg_ids(new))
            await until("new legs at the venue", lambda: {c for c, _, _ in w.resting()} == legs)  # noqa: B023
        assert w.monitor.replacements == 2 and w.oco_requests() == 3
        await w.price("0.003480")  # through the trailed stop: the venue's stop leg fires
        await until("flat", lambda: w.order.position.quantity == 0 and w.monitor.stop is None)

        assert [m.client_order_id for m in w.sells()] == [leg_ids(lists[-1])[0]]
        assert w.triggers() == [("trailing", D("0.003490"))] and not w.exits() and w.flat_once()
        records = w.from_the_first_stop()
        unguarded = [r for r in records if not r.guarded]
        assert not unguarded, unguarded
        # between a list's cancel and the next one's acceptance the monitor itself guarded it
        gaps = [r for r in records if r.position and not any(k == "stop" for _, k, _ in r.resting)]
        assert gaps and all(r.watching or r.exiting for r in gaps)
        assert not w.order.anomalies and (w.state.open_orders, w.state.pending_exposure) == (0, 0)


@pytest.mark.parametrize("venue", VENUES)
async def test_a_stop_hit_while_the_list_is_being_moved_exits_once(venue: VenueKind) -> None:
    async with oco_wired(venue) as w:
        await w.enter(trailing_distance="0.000100")
        await listed(w)
        await w.price("0.003550")  # the trail moves to 0.003450: the list is canceled ...
        await w.price("0.003390", venue=False)  # ... and the price falls through both levels at once
        await until("flat", lambda: w.order.position.quantity == 0 and w.monitor.stop is None)
        await until("nothing open", lambda: not w.order.open_orders())
        assert len(w.sells()) == 1 and len(w.triggers()) == 1 and w.flat_once()
        if w.fake is not None:  # the venue never saw the fall: the monitor's watch was the exit
            (exit_intent,) = w.exits()
            assert w.sells()[0].client_order_id == client_order_id(exit_intent.intent_id)
        # a cancel the venue refused (the list fired first) is the only thing out of the ordinary
        assert not w.resting() and set(w.order.anomalies) <= {"request_rejected"}
        assert (w.state.open_orders, w.state.pending_exposure) == (0, 0)


async def test_a_symbol_without_oco_gets_a_native_stop_and_a_watched_take_profit() -> None:
    async with oco_wired("binance", oco_allowed=False) as w:
        await w.enter()
        await until("native stop resting", lambda: w.native("stop") is not None)
        assert [k for _, k, _ in w.resting()] == ["stop"] and w.oco_requests() == 0
        await w.price("0.003610")  # the monitor's take-profit: the stop is canceled, then the exit
        await until("flat", lambda: w.order.position.quantity == 0 and w.monitor.stop is None)
        assert w.triggers() == [("take_profit", D("0.003600"))] and len(w.exits()) == 1
        assert w.fake is not None and not [s for s in w.fake.seen if s.path == "/api/v3/orderList/oco"]


@pytest.mark.parametrize("venue", VENUES)
async def test_a_refused_list_falls_back_to_a_native_stop_and_a_watched_take_profit(
    venue: VenueKind, caplog: pytest.LogCaptureFixture
) -> None:
    async with oco_wired(venue) as w:
        # the market ran above the take-profit before the list reached the venue: it is refused
        if w.fake is not None:
            w.fake.last_prices[VENUE] = D("0.003700")
        else:
            await w.price("0.003700")
        await w.enter()
        await until("native stop resting", lambda: w.native("stop") is not None)
        refused = [m for m in w.seen if isinstance(m, OrderRejected)]
        assert len(refused) == 2 and {m.client_order_id for m in refused} == set(
            leg_ids(refused[0].client_order_id[:-3])
        )
        assert w.monitor.oco_refused == 1 and w.oco_requests() == 1
        assert "falling back to a native stop-loss, the take-profit watched" in caplog.text
        assert [k for _, k, _ in w.resting()] == ["stop"]
        await w.price("0.003700")  # the watched take-profit: the native stop canceled, one market exit
        if w.fake is None:  # the paper venue fills a market order on the next trade
            await until("exit sent", lambda: w.exits() and w.order.open_orders())
            await w.price("0.003700")
        await until("flat", lambda: w.order.position.quantity == 0 and w.monitor.stop is None)
        assert w.triggers() == [("take_profit", D("0.003600"))] and len(w.exits()) == 1 and w.flat_once()
        assert not w.resting() and (w.state.open_orders, w.state.pending_exposure) == (0, 0)


async def test_a_list_that_fired_before_its_cancel_landed_is_the_exit_and_nothing_new_rests() -> None:
    async with oco_wired("binance") as w:
        await w.enter(trailing_distance="0.000100")
        cid = await listed(w)
        assert w.fake is not None
        w.fake.mute_user_stream = True  # we do not hear of it: the list's stop leg fires at the venue
        await w.fake.trade(VENUE, D("0.003390"))
        w.fake.mute_user_stream = False
        await w.price("0.003550", venue=False)  # our feed, late: the trail moves, the list's cancel fails
        await until("flat", lambda: w.order.position.quantity == 0 and w.monitor.stop is None)
        assert [m.client_order_id for m in w.sells()] == [leg_ids(cid)[0]]
        refused = [
            m for m in w.seen if isinstance(m, OrderRejected) and m.reason.startswith("cancel rejected")
        ]
        assert [m.client_order_id for m in refused] == [cid]
        assert not w.exits() and w.oco_requests() == 1 and not w.resting() and w.flat_once()


@pytest.mark.parametrize("venue", VENUES)
async def test_a_cancel_of_the_list_id_cancels_both_legs_once(venue: VenueKind) -> None:
    """What flatten and an operator send: CancelOrder for each open order, here the list's id."""
    async with oco_wired(venue) as w:
        await w.enter()
        cid = await listed(w)
        await w.router.publish(CancelOrder(client_order_id=cid, **stamp(EX, SYM, 50)))
        await until("list canceled", lambda: w.order.orders[cid].status == "canceled")
        canceled = sorted(m.client_order_id for m in w.seen if isinstance(m, OrderCanceled))
        assert canceled == sorted(leg_ids(cid)) and not w.resting()
        assert (w.order.counts["canceled"], w.state.open_orders, w.state.pending_exposure) == (1, 0, 0)
        assert not w.order.anomalies
        await w.price("0.003390")  # the monitor watches again: its own exit, once
        if w.fake is None:
            await until("exit sent", lambda: w.exits() and w.order.open_orders())
            await w.price("0.003390")
        await until("flat", lambda: w.order.position.quantity == 0 and w.monitor.stop is None)
        assert len(w.exits()) == 1 and w.flat_once()


@pytest.mark.parametrize("venue", VENUES)
async def test_a_time_exit_cancels_the_list_first_then_exits_once(venue: VenueKind) -> None:
    async with oco_wired(venue) as w:
        await w.router.publish(
            OrderIntent(
                exchange=EX,
                symbol=SYM,
                ts_event=1,
                ts_recv=1,
                intent_id="entry",
                source="test",
                side="buy",
                order_type="market",
                quantity=D("1"),
                stop_loss=D("0.003400"),
                take_profit=D("0.003600"),
                exit_at_ns=1_000,
            )
        )
        if w.fake is None:
            await until("entry sent", lambda: w.order.orders)
            await w.price("0.0035")
        await until("entry filled", lambda: w.order.position.quantity == D("1"))
        cid = await listed(w)
        w.ts = itertools.count(1_000)
        await w.price("0.003500")  # the exit time: the list is canceled, then one market exit
        if w.fake is None:
            await until("exit sent", lambda: w.exits() and w.order.open_orders())
            await w.price("0.003500")
        await until("flat", lambda: w.order.position.quantity == 0 and w.monitor.stop is None)
        assert w.order.orders[cid].status == "canceled" and len(w.exits()) == 1
        assert w.triggers() == [("time", D("0.003500"))] and w.flat_once() and not w.resting()
        cancel_at = next(i for i, m in enumerate(w.seen) if isinstance(m, CancelOrder))
        exit_at = next(
            i
            for i, m in enumerate(w.seen)
            if isinstance(m, OrderIntent) and m.reduce_only and m.order_type == "market"
        )
        assert cancel_at < exit_at  # never two exits resting or filling
