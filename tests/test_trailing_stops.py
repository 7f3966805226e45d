"""Stop-monitor (actors/stop_monitor.py): trailing stops, time exits and native venue stops.

Each test arms a stop from an entry's RiskApproved + PositionChanged and then feeds trade
or bar sequences, asserting on exactly what the monitor published: StopArmed (also the
amendment of a trailing move), StopTriggered, exit OrderIntents, native stop_market
OrderIntents and CancelOrders.
"""

from __future__ import annotations

from decimal import Decimal as D

import anyio
import pytest

from actors.channels import Channel, Router
from actors.messages import (
    CancelOrder,
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderIntent,
    OrderRejected,
    PositionChanged,
    RiskApproved,
    RiskRejected,
    Side,
    StopArmed,
    StopCanceled,
    StopTriggered,
)
from actors.order import OrderActor
from actors.order_ids import client_order_id
from actors.params import RiskLimits
from actors.risk import RiskActor
from actors.runtime import GroupState
from actors.state import SymbolState
from actors.stop_levels import auto_trail_step
from actors.stop_monitor import StopMonitor
from adapters.paper import PaperExchange
from tests.test_paper_engine import EX as PEX
from tests.test_paper_engine import INST, account
from tests.test_paper_engine import SYM as PSYM
from tests.test_paper_engine import trade as ptrade
from tests.test_stop_monitor import EX, SYM, bar, stop_id, trade

pytestmark = pytest.mark.anyio

SID = stop_id("e1")


def entry(side: Side = "buy", qty: str = "2", **plan: object) -> OrderIntent:
    fields: dict[str, object] = {"stop_loss": D("95") if side == "buy" else D("105")}
    fields.update({k: (D(v) if isinstance(v, str) else v) for k, v in plan.items()})
    return OrderIntent(
        exchange=EX,
        symbol=SYM,
        ts_event=1,
        ts_recv=1,
        intent_id="e1",
        source="strategy",
        side=side,
        order_type="market",
        quantity=D(qty),
        **fields,  # type: ignore[arg-type]
    )


def position(qty: str, cid: str) -> PositionChanged:
    return PositionChanged(
        exchange=EX,
        symbol=SYM,
        ts_event=3,
        ts_recv=3,
        account="acct",
        quantity=D(qty),
        avg_price=D("100"),
        realized_pnl=D(0),
        fees=D(0),
        last_client_order_id=cid,
    )


def fill(cid: str, qty: str, leaves: str, price: str = "95", side: Side = "sell") -> OrderFilled:
    return OrderFilled(
        exchange=EX,
        symbol=SYM,
        ts_event=50,
        ts_recv=51,
        client_order_id=cid,
        venue_order_id="v1",
        trade_id=f"t-{cid}-{leaves}",
        side=side,
        last_qty=D(qty),
        last_price=D(price),
        cum_qty=D(qty),
        leaves_qty=D(leaves),
        fee=D(0),
        fee_asset="USDT",
        liquidity="taker",
    )


def accepted(cid: str) -> OrderAccepted:
    return OrderAccepted(
        exchange=EX, symbol=SYM, ts_event=5, ts_recv=5, client_order_id=cid, venue_order_id="v1"
    )


def canceled(cid: str) -> OrderCanceled:
    return OrderCanceled(exchange=EX, symbol=SYM, ts_event=6, ts_recv=6, client_order_id=cid)


def cancel_rejected(cid: str) -> OrderRejected:
    reason = f"cancel rejected: unknown order {cid}"
    return OrderRejected(exchange=EX, symbol=SYM, ts_event=6, ts_recv=6, client_order_id=cid, reason=reason)


def view(msg: Message) -> tuple[object, ...]:
    match msg:
        case StopArmed():
            return ("armed", msg.stop_price, msg.take_profit, msg.quantity)
        case StopTriggered():
            return ("triggered", msg.trigger, msg.price)
        case StopCanceled():
            return ("canceled", msg.reason)
        case CancelOrder():
            return ("cancel", msg.client_order_id)
        case OrderIntent() if msg.order_type == "stop_market" and msg.replaces:
            assert msg.reduce_only and msg.source == "stop-monitor"
            return ("replace", msg.replaces, msg.quantity, msg.stop_price)
        case OrderIntent() if msg.order_type == "stop_market":
            assert msg.reduce_only and msg.source == "stop-monitor"
            return ("native", msg.side, msg.quantity, msg.stop_price)
        case OrderIntent():
            assert msg.reduce_only and msg.order_type == "market" and msg.source == "stop-monitor"
            return ("exit", msg.side, msg.quantity, msg.reason)
        case _:
            raise AssertionError(msg)


class Wired:
    def __init__(self, venue_stops: bool = True, tick: str | None = None, **limits: object) -> None:
        limits.setdefault("trail_step", D(0))  # every improvement moves the stop, unless a test says
        self.router = Router()
        self.out: Channel[Message] = Channel("out", 1024)
        self.router.subscribe(self.out, (StopArmed, StopTriggered, StopCanceled, OrderIntent, CancelOrder))
        self.monitor = StopMonitor(
            EX,
            SYM,
            self.router,
            Channel("stop-monitor", 64),
            RiskLimits(**limits),  # type: ignore[arg-type]
            venue_stops=venue_stops,
            tick_size=None if tick is None else D(tick),
        )
        self.intents: list[OrderIntent] = []

    async def send(self, *msgs: Message) -> list[tuple[object, ...]]:
        with anyio.fail_after(2):
            for m in msgs:
                await self.monitor.handle(m)
            got = await self.out.receive_batch() if self.out.depth() else []
        self.intents += [m for m in got if isinstance(m, OrderIntent)]
        return [view(m) for m in got]

    async def arm(self, side: Side = "buy", qty: str = "2", **plan: object) -> list[tuple[object, ...]]:
        it = entry(side, qty, **plan)
        signed = qty if side == "buy" else f"-{qty}"
        return await self.send(
            RiskApproved(exchange=EX, symbol=SYM, ts_event=2, ts_recv=2, intent=it),
            position(signed, client_order_id("e1")),
        )

    @property
    def native_cid(self) -> str:
        stop = self.monitor.stop
        assert stop is not None and stop.native is not None
        return stop.native.cid

    def last_intent_id(self) -> str:
        return self.intents[-1].intent_id


# --- synthetic trailing stops ---------------------------------------------------------------


async def test_trailing_distance_follows_the_high_and_triggers_as_trailing() -> None:
    w = Wired()
    assert await w.arm(trailing_distance="3") == [("armed", D("95"), None, D("2"))]
    assert await w.send(trade(10, "100")) == [("armed", D("97"), None, D("2"))]
    assert await w.send(trade(11, "101.5")) == [("armed", D("98.5"), None, D("2"))]
    assert await w.send(trade(12, "99"), trade(13, "98.6")) == []  # falling: the stop stays
    assert await w.send(trade(14, "98.5")) == [
        ("triggered", "trailing", D("98.5")),
        ("exit", "sell", D("2"), "trailing at 98.5"),
    ]


async def test_stop_that_never_moved_triggers_as_stop_loss() -> None:
    w = Wired()
    await w.arm(trailing_distance="10")  # 100 - 10 = 90 is below the 95 stop: no move
    assert await w.send(trade(10, "100"), trade(11, "95")) == [
        ("triggered", "stop_loss", D("95")),
        ("exit", "sell", D("2"), "stop_loss at 95"),
    ]


async def test_trail_step_suppresses_amendments_smaller_than_the_step() -> None:
    w = Wired(trail_step=D("1"))
    await w.arm(trailing_distance="3")
    assert await w.send(trade(10, "100")) == [("armed", D("97"), None, D("2"))]  # +2 from 95
    assert await w.send(trade(11, "100.5"), trade(12, "100.99")) == []  # +0.5, +0.99: no churn
    assert await w.send(trade(13, "101")) == [("armed", D("98"), None, D("2"))]  # +1 exactly
    assert w.monitor.amendments == 2
    # the un-amended candidate (97.99) does not protect: the published stop (98) does
    assert await w.send(trade(14, "98.01")) == []
    assert (await w.send(trade(15, "98")))[0] == ("triggered", "trailing", D("98"))


async def test_unset_trail_step_moves_by_at_least_ten_ticks_or_a_tenth_of_a_percent() -> None:
    assert auto_trail_step(D("0.01"), D("100")) == D("0.1")  # 10 ticks = 0.1 % of 100
    assert auto_trail_step(D("0.01"), D("1000")) == D("1")  # 0.1 % is larger
    assert auto_trail_step(D("0.01"), None) == D("0.1") and auto_trail_step(None, None) == 0
    w = Wired(tick="0.01", trail_step=None)
    await w.arm(trailing_distance="3")
    assert await w.send(trade(10, "100")) == [("armed", D("97"), None, D("2"))]
    assert await w.send(trade(11, "100.05"), trade(12, "100.09")) == []  # +0.05, +0.09: under 0.1
    assert await w.send(trade(13, "100.2")) == [("armed", D("97.2"), None, D("2"))]
    assert w.monitor.amendments == 2


async def test_entry_trailing_step_overrides_the_configured_one() -> None:
    w = Wired(trail_step=D("5"))
    await w.arm(trailing_distance="3", trailing_step="0.5")
    assert await w.send(trade(10, "100"), trade(11, "100.5")) == [
        ("armed", D("97"), None, D("2")),
        ("armed", D("97.5"), None, D("2")),
    ]


async def test_trailing_starts_only_at_the_activation_price() -> None:
    w = Wired()
    await w.arm(trailing_distance="3", trailing_activation="105")
    assert await w.send(trade(10, "104.99")) == []
    assert await w.send(trade(11, "105")) == [("armed", D("102"), None, D("2"))]
    assert await w.send(trade(12, "103")) == []  # activated for good: falling back does not undo it


async def test_trailing_pct_is_rounded_to_the_tick_away_from_the_market() -> None:
    w = Wired(tick="0.01")
    await w.arm(trailing_pct="2")
    assert await w.send(trade(10, "101.23")) == [("armed", D("99.20"), None, D("2"))]  # 99.2054 floored


async def test_trailing_without_initial_stop_sets_the_stop_at_the_first_price() -> None:
    w = Wired(require_stop_loss=False)
    await w.arm(stop_loss=None, trailing_distance="2")
    assert await w.send(trade(10, "100")) == [("armed", D("98"), None, D("2"))]


async def test_short_trailing_stop_follows_the_low_and_triggers_upwards() -> None:
    w = Wired()
    assert await w.arm("sell", trailing_distance="3") == [("armed", D("105"), None, D("2"))]
    assert await w.send(trade(10, "100")) == [("armed", D("103"), None, D("2"))]
    assert await w.send(trade(11, "98")) == [("armed", D("101"), None, D("2"))]
    assert await w.send(trade(12, "100"), trade(13, "100.99")) == []
    assert await w.send(trade(14, "104")) == [
        ("triggered", "trailing", D("101")),
        ("exit", "buy", D("2"), "trailing at 101"),
    ]


async def test_gap_through_the_trailed_stop_triggers_at_once_for_the_whole_position() -> None:
    w = Wired()
    await w.arm(trailing_distance="2")
    await w.send(trade(10, "110"))  # stop 108
    assert await w.send(trade(11, "90")) == [
        ("triggered", "trailing", D("108")),
        ("exit", "sell", D("2"), "trailing at 108"),
    ]
    assert await w.send(trade(12, "80"), trade(13, "120")) == []  # once


async def test_bar_is_checked_against_the_stop_before_its_high_moves_the_trail() -> None:
    w = Wired()
    await w.arm(trailing_distance="3")
    # low 96 stays above the old stop 95; the high 104 then moves it to 101 (not triggered by this bar)
    assert await w.send(bar(60, "96", "104")) == [("armed", D("101"), None, D("2"))]
    assert await w.send(bar(120, "100.5", "103")) == [
        ("triggered", "trailing", D("101")),
        ("exit", "sell", D("2"), "trailing at 101"),
    ]


async def test_the_same_prices_as_trades_trigger_inside_the_move() -> None:
    w = Wired()
    await w.arm(trailing_distance="3")
    assert await w.send(trade(10, "104"), trade(11, "96")) == [
        ("armed", D("101"), None, D("2")),
        ("triggered", "trailing", D("101")),
        ("exit", "sell", D("2"), "trailing at 101"),
    ]


async def test_bar_through_the_old_stop_takes_the_stop_loss_not_the_trail() -> None:
    w = Wired()
    await w.arm(trailing_distance="3", take_profit="120")
    assert await w.send(bar(60, "94", "125")) == [
        ("triggered", "stop_loss", D("95")),
        ("exit", "sell", D("2"), "stop_loss at 95"),
    ]


async def test_take_profit_and_trailing_stop_are_one_cancels_other() -> None:
    w = Wired()
    await w.arm(trailing_distance="3", take_profit="110")
    await w.send(trade(10, "105"))  # stop 102
    assert await w.send(trade(11, "110")) == [
        ("triggered", "take_profit", D("110")),
        ("exit", "sell", D("2"), "take_profit at 110"),
    ]
    assert await w.send(trade(12, "90")) == []


async def test_partial_exit_fill_waits_and_a_filled_exit_with_the_rest_open_re_arms_at_the_trail() -> None:
    w = Wired()
    await w.arm(qty="4", trailing_distance="3")
    await w.send(trade(10, "104"), trade(11, "100"))  # stop 101, triggered: exit 4
    exit_cid = client_order_id(w.last_intent_id())
    assert await w.send(fill(exit_cid, "1", "3"), position("3", exit_cid), trade(12, "99")) == []
    # the entry kept filling: the exit's 4 filled, 2 still open
    await w.send(position("6", client_order_id("e1")))
    out = await w.send(fill(exit_cid, "3", "0"), position("2", exit_cid), trade(13, "100.5"))
    assert out == [("triggered", "trailing", D("101")), ("exit", "sell", D("2"), "trailing at 101")]


# --- time exits -----------------------------------------------------------------------------


async def test_time_exit_closes_at_the_first_trade_at_or_after_exit_at() -> None:
    w = Wired()
    await w.arm(exit_at_ns=1000)
    assert await w.send(trade(999, "100")) == []
    assert await w.send(trade(1000, "100.5")) == [
        ("triggered", "time", D("100.5")),
        ("exit", "sell", D("2"), "time at 100.5"),
    ]
    assert await w.send(trade(1001, "90")) == []


async def test_time_exit_on_a_bar_uses_its_close() -> None:
    w = Wired()
    await w.arm("sell", exit_at_ns=1000)
    assert await w.send(bar(1060, "99", "101")) == [
        ("triggered", "time", D("101")),
        ("exit", "buy", D("2"), "time at 101"),
    ]


async def test_stop_loss_before_the_time_exit_on_the_same_price() -> None:
    w = Wired()
    await w.arm(exit_at_ns=1000)
    assert (await w.send(trade(1000, "94")))[0] == ("triggered", "stop_loss", D("95"))


async def test_refused_time_exit_is_retried_on_the_next_price() -> None:
    w = Wired()
    await w.arm(exit_at_ns=1000)
    await w.send(trade(1000, "100"))
    refused = RiskRejected(
        exchange=EX, symbol=SYM, ts_event=9, ts_recv=9, intent=w.intents[-1], rule="no_price", reason="x"
    )
    assert await w.send(refused, trade(1001, "100.2")) == [
        ("triggered", "time", D("100.2")),
        ("exit", "sell", D("2"), "time at 100.2"),
    ]


# --- native venue stops -----------------------------------------------------------------------


async def test_native_stop_is_placed_at_arming_and_prices_are_left_to_the_venue() -> None:
    w = Wired(native_stops=True)
    assert await w.arm() == [("armed", D("95"), None, D("2")), ("native", "sell", D("2"), D("95"))]
    await w.send(accepted(w.native_cid))
    assert await w.send(trade(10, "94"), bar(60, "90", "99")) == []  # the venue's stop fires, not us
    assert w.monitor.triggered == 0


async def test_native_stops_need_a_venue_that_takes_them() -> None:
    w = Wired(native_stops=True, venue_stops=False)
    assert await w.arm() == [("armed", D("95"), None, D("2"))]
    assert (await w.send(trade(10, "94")))[0] == ("triggered", "stop_loss", D("95"))


async def test_native_trailing_stop_is_cancel_replaced_one_at_a_time_with_the_latest_level() -> None:
    w = Wired(native_stops=True)
    await w.arm(trailing_distance="3")
    first = w.native_cid
    assert await w.send(accepted(first), trade(10, "100")) == [
        ("armed", D("97"), None, D("2")),
        ("replace", first, D("2"), D("97")),
    ]
    second = w.native_cid
    assert second != first and w.monitor.stop is not None and w.monitor.stop.native_prev is not None
    # while the replacement is in flight the trail moves on: amendment, but no second replace
    assert await w.send(trade(11, "102")) == [("armed", D("99"), None, D("2"))]
    assert await w.send(canceled(first)) == []  # the replace's cancel half: nothing to do
    assert await w.send(accepted(second)) == [("replace", second, D("2"), D("99"))]
    third = w.native_cid
    assert await w.send(canceled(second), accepted(third), trade(12, "102.5")) == [
        ("armed", D("99.5"), None, D("2")),
        ("replace", third, D("2"), D("99.5")),
    ]
    assert w.monitor.replacements == 3 and not [v for v in map(view, w.intents) if v[0] == "cancel"]


async def test_a_replacement_refused_leaves_the_old_stop_in_force() -> None:
    w = Wired(native_stops=True)
    await w.arm(trailing_distance="3")
    first = w.native_cid
    await w.send(accepted(first), trade(10, "100"))
    refused = OrderRejected(
        exchange=EX,
        symbol=SYM,
        ts_event=7,
        ts_recv=7,
        client_order_id=w.native_cid,
        reason="replace refused: cancel FAILURE, new order NOT_ATTEMPTED",
    )
    assert await w.send(refused) == []
    stop = w.monitor.stop
    assert stop is not None and stop.native is not None and stop.native_prev is None
    assert (stop.native.cid, stop.native.state, stop.native.level) == (first, "working", D("95"))
    assert await w.send(trade(11, "94")) == []  # the venue's stop at 95 still guards it
    assert await w.send(trade(12, "101")) == [
        ("armed", D("98"), None, D("2")),
        ("replace", first, D("2"), D("98")),
    ]


async def test_old_stop_canceled_but_its_replacement_refused_places_a_new_stop_at_once() -> None:
    w = Wired(native_stops=True)
    await w.arm(trailing_distance="3")
    first = w.native_cid
    await w.send(accepted(first), trade(10, "100"))
    refused = OrderRejected(
        exchange=EX,
        symbol=SYM,
        ts_event=7,
        ts_recv=7,
        client_order_id=w.native_cid,
        reason="replace refused: cancel SUCCESS, new order FAILURE",
    )
    assert await w.send(canceled(first), refused) == [("native", "sell", D("2"), D("97"))]


async def test_native_replacement_respects_the_trail_step() -> None:
    w = Wired(native_stops=True, trail_step=D("2"))
    await w.arm(trailing_distance="3")
    await w.send(accepted(w.native_cid))
    assert await w.send(trade(10, "99"), trade(11, "99.5")) == []  # 96, 96.5: under the step
    resting = w.native_cid
    assert await w.send(trade(12, "100")) == [
        ("armed", D("97"), None, D("2")),
        ("replace", resting, D("2"), D("97")),
    ]


async def test_move_before_the_venue_accepted_the_stop_replaces_it_once_accepted() -> None:
    w = Wired(native_stops=True)
    await w.arm(trailing_distance="3")
    cid = w.native_cid
    assert await w.send(trade(10, "100")) == [("armed", D("97"), None, D("2"))]
    assert await w.send(accepted(cid)) == [("replace", cid, D("2"), D("97"))]


@pytest.mark.parametrize("fill_first", [False, True], ids=["reject_then_fill", "fill_then_reject"])
async def test_failed_cancel_of_a_filled_native_stop_is_its_fill_not_a_second_exit(fill_first: bool) -> None:
    w = Wired(native_stops=True)
    await w.arm(trailing_distance="3")
    cid = w.native_cid
    await w.send(accepted(cid))
    assert await w.send(trade(10, "100")) == [
        ("armed", D("97"), None, D("2")),
        ("replace", cid, D("2"), D("97")),
    ]
    # the stop at 95 had already filled at the venue when our cancel-replace arrived: its cancel
    # half failed (-2022) and the replacement was never placed
    replacement = w.native_cid
    refused = OrderRejected(
        exchange=EX,
        symbol=SYM,
        ts_event=6,
        ts_recv=6,
        client_order_id=replacement,
        reason="replace refused: cancel FAILURE, new order NOT_ATTEMPTED",
    )
    events: list[Message] = [refused, fill(cid, "2", "0")]
    out = await w.send(*(reversed(events) if fill_first else events))
    assert out == [("triggered", "stop_loss", D("95"))]
    assert w.monitor.stop is not None and w.monitor.stop.exit_cid == cid
    assert await w.send(trade(11, "90"), trade(12, "120")) == []
    assert await w.send(position("0", cid)) == [("canceled", "position closed")]  # nothing left to cancel
    assert all(i.order_type == "stop_market" for i in w.intents)  # no market exit
    assert w.monitor.triggered == 1


async def test_native_stop_partial_fills_are_one_exit() -> None:
    w = Wired(native_stops=True)
    await w.arm(qty="4")
    cid = w.native_cid
    await w.send(accepted(cid))
    assert await w.send(fill(cid, "1", "3")) == [("triggered", "stop_loss", D("95"))]
    assert await w.send(position("3", cid), trade(10, "90")) == []  # no resize of a firing stop
    assert await w.send(fill(cid, "3", "0"), position("0", cid)) == [("canceled", "position closed")]


async def test_take_profit_cancels_the_native_stop_before_its_exit() -> None:
    w = Wired(native_stops=True)
    await w.arm(take_profit="110")
    cid = w.native_cid
    await w.send(accepted(cid))
    assert await w.send(trade(10, "111")) == [("cancel", cid)]
    assert await w.send(trade(11, "112")) == []
    assert await w.send(canceled(cid)) == [
        ("triggered", "take_profit", D("110")),
        ("exit", "sell", D("2"), "take_profit at 110"),
    ]


async def test_take_profit_loses_to_a_native_stop_that_filled_first() -> None:
    w = Wired(native_stops=True)
    await w.arm(take_profit="110")
    cid = w.native_cid
    await w.send(accepted(cid))
    await w.send(trade(10, "111"))
    assert await w.send(cancel_rejected(cid), fill(cid, "2", "0")) == [("triggered", "stop_loss", D("95"))]
    assert all(i.order_type == "stop_market" for i in w.intents)


async def test_time_exit_with_a_native_stop_cancels_it_first() -> None:
    w = Wired(native_stops=True)
    await w.arm(exit_at_ns=1000)
    cid = w.native_cid
    await w.send(accepted(cid))
    assert await w.send(trade(1000, "100")) == [("cancel", cid)]
    assert await w.send(canceled(cid)) == [
        ("triggered", "time", D("100")),
        ("exit", "sell", D("2"), "time at 100"),
    ]


@pytest.mark.parametrize("refused_by", ["risk", "venue"])
async def test_refused_native_stop_falls_back_to_watching_prices(refused_by: str) -> None:
    w = Wired(native_stops=True)
    await w.arm()
    if refused_by == "risk":
        msg: Message = RiskRejected(
            exchange=EX,
            symbol=SYM,
            ts_event=9,
            ts_recv=9,
            intent=w.intents[-1],
            rule="reduce_only",
            reason="x",
        )
    else:
        msg = OrderRejected(
            exchange=EX,
            symbol=SYM,
            ts_event=9,
            ts_recv=9,
            client_order_id=w.native_cid,
            reason="insufficient",
        )
    assert await w.send(msg, trade(10, "96")) == []
    assert await w.send(trade(11, "94.9")) == [
        ("triggered", "stop_loss", D("95")),
        ("exit", "sell", D("2"), "stop_loss at 95"),
    ]


async def test_adding_to_the_position_replaces_the_native_stop_with_the_new_size() -> None:
    w = Wired(native_stops=True)
    await w.arm()
    cid = w.native_cid
    await w.send(accepted(cid))
    assert await w.send(position("3", client_order_id("e2"))) == [("replace", cid, D("3"), D("95"))]
    assert await w.send(canceled(cid)) == []


async def test_closing_the_position_cancels_a_working_native_stop_and_a_pending_one_once_accepted() -> None:
    w = Wired(native_stops=True)
    await w.arm()
    cid = w.native_cid
    await w.send(accepted(cid))
    assert await w.send(position("0", "strategy-exit")) == [("cancel", cid), ("canceled", "position closed")]
    w2 = Wired(native_stops=True)
    await w2.arm()
    pending = w2.native_cid
    assert await w2.send(position("0", "strategy-exit")) == [("canceled", "position closed")]
    assert await w2.send(accepted(pending)) == [("cancel", pending)]
    assert await w2.send(canceled(pending), accepted(pending)) == []


# --- end to end with risk, order and the paper venue -------------------------------------------


async def test_native_trailing_stop_end_to_end_on_the_paper_venue() -> None:
    """Entry fills, the native stop rests at the venue, trails up by cancel/replace and fills once."""
    seen: list[Message] = []
    router = Router(seen.append)
    state = SymbolState(PEX, PSYM, "paper")
    state.last_price = D("2000")
    limits = RiskLimits(native_stops=True, max_order_notional=D("100000"))
    risk = RiskActor(PEX, PSYM, router, Channel("risk", 256), state, GroupState(PEX, PSYM), limits)
    order = OrderActor(PEX, PSYM, router, Channel("order", 256), state, INST.tick_size, INST.step_size)
    monitor = StopMonitor(
        PEX, PSYM, router, Channel("stop-monitor", 256), limits, venue_stops=True, tick_size=INST.tick_size
    )
    venue = PaperExchange(PEX, PSYM, router, Channel("paper", 256), INST, account())
    router.subscribe(risk.inbox, (OrderIntent, PositionChanged))
    router.subscribe(order.inbox, (RiskApproved, OrderAccepted, OrderRejected, OrderFilled, OrderCanceled))
    router.subscribe(
        monitor.inbox,
        (
            RiskApproved,
            RiskRejected,
            PositionChanged,
            OrderAccepted,
            OrderFilled,
            OrderRejected,
            OrderCanceled,
        ),
    )
    router.subscribe(venue.inbox, PaperExchange.subscribes)
    risk.leaves_of = order.signed_leaves

    async def until(what: str, pred: object) -> None:
        with anyio.fail_after(5):
            while not pred():  # type: ignore[operator]
                await anyio.sleep(0.005)

    async def price(p: str, ts: int) -> None:
        t = ptrade(p, ts=ts)
        state.last_price = t.price
        await router.publish(t)
        await monitor.inbox.send(t)

    def native() -> list[OrderIntent]:
        return [m for m in seen if isinstance(m, OrderIntent) and m.order_type == "stop_market"]

    def working_stop() -> str | None:
        stop = monitor.stop
        n = stop.native if stop is not None else None
        return n.cid if n is not None and n.state == "working" else None

    async with anyio.create_task_group() as tg:
        for actor in (risk, order, monitor, venue):
            tg.start_soon(actor.run)
        await price("2000", 1)
        await router.publish(
            OrderIntent(
                exchange=PEX,
                symbol=PSYM,
                ts_event=2,
                ts_recv=2,
                intent_id="entry",
                source="test",
                side="buy",
                order_type="market",
                quantity=D("1"),
                stop_loss=D("1990"),
                trailing_distance=D("10"),
            )
        )
        await until("entry accepted", lambda: order.orders and state.open_orders == 1)
        await price("2000", 3)
        await until("native stop working", lambda: working_stop() is not None)
        first = working_stop()
        await price("2020", 4)  # trail: 2010
        await until("replacement working", lambda: working_stop() not in (None, first))
        await price("2005", 5)  # through 2010: the venue's stop fires
        await until("flat", lambda: state.position == 0 and monitor.stop is None)
        for actor in (risk, order, monitor, venue):
            actor.inbox.close()

    assert [(i.stop_price, i.quantity) for i in native()] == [(D("1990"), D("1")), (D("2010"), D("1"))]
    assert not [
        m
        for m in seen
        if isinstance(m, OrderIntent) and m.source == "stop-monitor" and m.order_type == "market"
    ]
    fills = [m for m in seen if isinstance(m, OrderFilled) and m.side == "sell"]
    assert len(fills) == 1 and fills[0].client_order_id == client_order_id(native()[1].intent_id)
    assert [(m.trigger, m.price) for m in seen if isinstance(m, StopTriggered)] == [("trailing", D("2010"))]
    assert [m.client_order_id for m in seen if isinstance(m, OrderCanceled)] == [first]
