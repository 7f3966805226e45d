"""Stop-monitor actor (actors/stop_monitor.py): arms from the entry's levels, exits once, disarms when flat.

The entry's RiskApproved carries stop_loss / take_profit; the PositionChanged of its fill
(``last_client_order_id`` = the entry's client order id) arms the stop.  A price at or
through a level publishes StopTriggered and a reduce-only market OrderIntent (to risk).
"""

from __future__ import annotations

from decimal import Decimal as D

import anyio
import pytest

from actors.channels import Channel, Router
from actors.messages import (
    Bar,
    CancelIntent,
    Message,
    OrderCanceled,
    OrderExpired,
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
    Trade,
)
from actors.order_ids import client_order_id
from actors.stop_monitor import StopMonitor

EX, SYM = "paper", "BTC/USDT"

pytestmark = pytest.mark.anyio


def entry(
    intent_id: str = "e1", side: Side = "buy", qty: str = "2", sl: str | None = "95", tp: str | None = "110"
) -> OrderIntent:
    return OrderIntent(
        exchange=EX,
        symbol=SYM,
        ts_event=1,
        ts_recv=1,
        intent_id=intent_id,
        source="strategy",
        side=side,
        order_type="market",
        quantity=D(qty),
        stop_loss=None if sl is None else D(sl),
        take_profit=None if tp is None else D(tp),
    )


def approved(it: OrderIntent) -> RiskApproved:
    return RiskApproved(exchange=EX, symbol=SYM, ts_event=2, ts_recv=2, intent=it)


def position(qty: str, intent_id: str) -> PositionChanged:
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
        last_client_order_id=client_order_id(intent_id),
    )


def trade(ts: int, price: str) -> Trade:
    return Trade(exchange=EX, symbol=SYM, ts_event=ts, ts_recv=ts + 1, price=D(price), size=D("0.1"))


def bar(ts: int, low: str, high: str) -> Bar:
    return Bar(
        exchange=EX,
        symbol=SYM,
        ts_event=ts,
        ts_recv=ts + 1,
        ts_open=ts - 60,
        interval_s=60,
        open=D(low),
        high=D(high),
        low=D(low),
        close=D(high),
        volume=D(1),
    )


def stop_id(intent_id: str = "e1") -> str:
    return f"stop:{client_order_id(intent_id)}"


def armed(sid: str, side: Side, qty: str, sl: str | None, tp: str | None) -> tuple[object, ...]:
    return ("armed", sid, side, D(qty), None if sl is None else D(sl), None if tp is None else D(tp))


def triggered(sid: str, trigger: str, price: str, ts: int) -> tuple[object, ...]:
    return ("triggered", sid, trigger, D(price), f"{sid}:{trigger}:{ts}", ts, ts + 1)


def exit_intent(sid: str, trigger: str, side: Side, qty: str, level: str, ts: int) -> OrderIntent:
    return OrderIntent(
        exchange=EX,
        symbol=SYM,
        ts_event=ts,
        ts_recv=ts + 1,
        intent_id=f"{sid}:{trigger}:{ts}",
        source="stop-monitor",
        side=side,
        order_type="market",
        quantity=D(qty),
        reduce_only=True,
        reason=f"{trigger} at {level}",
    )


def view(msg: Message) -> object:
    """A comparable summary of what the monitor published (system timestamps left out)."""
    match msg:
        case StopArmed():
            return ("armed", msg.stop_id, msg.side, msg.quantity, msg.stop_price, msg.take_profit)
        case StopTriggered():
            return (
                "triggered",
                msg.stop_id,
                msg.trigger,
                msg.price,
                msg.intent_id,
                msg.ts_event,
                msg.ts_recv,
            )
        case StopCanceled():
            return ("canceled", msg.stop_id, msg.reason)
        case _:
            return msg


class Wired:
    def __init__(self) -> None:
        self.router = Router()
        self.out: Channel[Message] = Channel("out", 1024)
        self.router.subscribe(self.out, (StopArmed, StopTriggered, StopCanceled, OrderIntent))
        self.monitor = StopMonitor(EX, SYM, self.router, Channel("stop-monitor", 64))

    async def send(self, *msgs: Message) -> list[object]:
        with anyio.fail_after(2):
            for m in msgs:
                await self.monitor.handle(m)
            got = await self.out.receive_batch() if self.out.depth() else []
        for m in got:
            assert (m.exchange, m.symbol) == (EX, SYM)
        return [view(m) for m in got]

    async def arm_long(self, qty: str = "2", sl: str | None = "95", tp: str | None = "110") -> None:
        it = entry("e1", "buy", qty, sl, tp)
        assert await self.send(approved(it), position(qty, "e1")) == [armed(stop_id(), "sell", qty, sl, tp)]

    async def arm_short(self, qty: str = "2", sl: str | None = "105", tp: str | None = "90") -> None:
        it = entry("e1", "sell", qty, sl, tp)
        assert await self.send(approved(it), position(f"-{qty}", "e1")) == [
            armed(stop_id(), "buy", qty, sl, tp)
        ]


def rejected(it: OrderIntent, rule: str) -> RiskRejected:
    return RiskRejected(exchange=EX, symbol=SYM, ts_event=9, ts_recv=9, intent=it, rule=rule, reason="no")


# --- arming ---------------------------------------------------------------------------------


async def test_entry_fill_arms_the_stop_with_the_levels_its_approved_intent_carried() -> None:
    w = Wired()
    out = await w.send(approved(entry("e1", "buy", "2", "95", "110")), position("2", "e1"))
    assert out == [armed(stop_id("e1"), "sell", "2", "95", "110")]
    assert w.monitor.stop is not None and w.monitor.stop.stop_id == stop_id("e1")


async def test_position_from_a_fill_without_remembered_levels_arms_nothing() -> None:
    w = Wired()
    out = await w.send(approved(entry("e1", sl=None, tp=None)), position("2", "e1"))
    assert out == []
    assert w.monitor.stop is None


async def test_reduce_only_approvals_are_not_remembered_as_levels() -> None:
    w = Wired()
    exit_with_levels = OrderIntent(
        exchange=EX,
        symbol=SYM,
        ts_event=1,
        ts_recv=1,
        intent_id="x1",
        source="strategy",
        side="buy",
        order_type="market",
        quantity=D(1),
        reduce_only=True,
        stop_loss=D("1"),
    )
    await w.send(approved(exit_with_levels))
    assert w.monitor.levels == {}


async def test_prices_before_arming_trigger_nothing() -> None:
    w = Wired()
    assert await w.send(trade(1, "1"), bar(2, "1", "1000")) == []


# --- long stops -----------------------------------------------------------------------------


async def test_trade_above_the_stop_and_below_the_take_profit_triggers_nothing() -> None:
    w = Wired()
    await w.arm_long()
    assert await w.send(trade(10, "95.01"), trade(11, "109.99")) == []
    assert w.monitor.triggered == 0


@pytest.mark.parametrize("price", ["95", "94.5"], ids=["at_stop", "below_stop"])
async def test_trade_at_or_below_the_stop_triggers_a_reduce_only_market_exit_for_the_full_position(
    price: str,
) -> None:
    # Arrange
    w = Wired()
    await w.arm_long(qty="2")
    # Act
    out = await w.send(trade(10, price))
    # Assert
    sid = stop_id()
    assert out == [
        triggered(sid, "stop_loss", "95", 10),
        exit_intent(sid, "stop_loss", "sell", "2", "95", 10),
    ]
    assert w.monitor.triggered == 1


@pytest.mark.parametrize("price", ["110", "111"], ids=["at_tp", "above_tp"])
async def test_trade_at_or_above_the_take_profit_triggers_the_take_profit_exit(price: str) -> None:
    w = Wired()
    await w.arm_long()
    out = await w.send(trade(10, price))
    sid = stop_id()
    assert out == [
        triggered(sid, "take_profit", "110", 10),
        exit_intent(sid, "take_profit", "sell", "2", "110", 10),
    ]


async def test_bar_touching_both_levels_takes_the_stop_loss_first() -> None:
    w = Wired()
    await w.arm_long()
    out = await w.send(bar(60, "94", "111"))
    sid = stop_id()
    assert out == [
        triggered(sid, "stop_loss", "95", 60),
        exit_intent(sid, "stop_loss", "sell", "2", "95", 60),
    ]


async def test_bar_reaching_only_the_take_profit_triggers_it() -> None:
    w = Wired()
    await w.arm_long()
    out = await w.send(bar(60, "96", "110.5"))
    assert out[0] == triggered(stop_id(), "take_profit", "110", 60)


async def test_stop_triggers_only_once_while_its_exit_is_working() -> None:
    w = Wired()
    await w.arm_long()
    first = await w.send(trade(10, "94"))
    again = await w.send(trade(11, "93"), bar(60, "90", "120"), trade(12, "111"))
    assert len(first) == 2
    assert again == []
    assert w.monitor.triggered == 1


async def test_stop_with_only_a_take_profit_ignores_falling_prices() -> None:
    w = Wired()
    await w.arm_long(sl=None, tp="110")
    assert await w.send(trade(10, "1")) == []
    assert (await w.send(trade(11, "110")))[0] == triggered(stop_id(), "take_profit", "110", 11)


# --- re-arming --------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", ["halted", "no_price", "price_band"])
async def test_stop_whose_exit_risk_refused_triggers_again_on_the_next_price(rule: str) -> None:
    # Arrange: triggered, exit refused by risk
    w = Wired()
    await w.arm_long()
    await w.send(trade(10, "94"))
    sid = stop_id()
    # Act
    assert await w.send(rejected(exit_intent(sid, "stop_loss", "sell", "2", "95", 10), rule)) == []
    out = await w.send(trade(11, "94.5"))
    # Assert: a fresh exit intent (new id) for the same stop
    assert out == [
        triggered(sid, "stop_loss", "95", 11),
        exit_intent(sid, "stop_loss", "sell", "2", "95", 11),
    ]
    assert w.monitor.triggered == 2


async def test_exit_refused_because_another_exit_is_already_working_is_not_retried() -> None:
    w = Wired()
    await w.arm_long()
    await w.send(trade(10, "94"))
    await w.send(rejected(exit_intent(stop_id(), "stop_loss", "sell", "2", "95", 10), "reduce_only"))
    assert await w.send(trade(11, "94")) == []


async def test_rejection_of_some_other_intent_does_not_re_arm_the_stop() -> None:
    w = Wired()
    await w.arm_long()
    await w.send(trade(10, "94"))
    await w.send(rejected(entry("e2"), "max_position"))
    assert await w.send(trade(11, "94")) == []


def ended(kind: str, cid: str, ts: int) -> Message:
    hdr = {"exchange": EX, "symbol": SYM, "ts_event": ts, "ts_recv": ts, "client_order_id": cid}
    if kind == "canceled":
        return OrderCanceled(**hdr)  # type: ignore[arg-type]
    if kind == "expired":
        return OrderExpired(**hdr)  # type: ignore[arg-type]
    return OrderRejected(**hdr, reason="insufficient balance")  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["canceled", "expired", "rejected"])
async def test_stop_looks_again_when_its_exit_order_ends_unfilled(kind: str) -> None:
    # Arrange: triggered; risk approved the exit and the venue then ended it unfilled
    w = Wired()
    await w.arm_long()
    await w.send(trade(10, "94"))
    exit_cid = client_order_id(f"{stop_id()}:stop_loss:10")
    # Act
    await w.send(ended(kind, exit_cid, 11))
    out = await w.send(trade(12, "94"))
    # Assert
    assert out == [
        triggered(stop_id(), "stop_loss", "95", 12),
        exit_intent(stop_id(), "stop_loss", "sell", "2", "95", 12),
    ]


async def test_unrelated_order_ending_does_not_trigger_the_stop_a_second_time() -> None:
    """After a trigger the exit is working.  ``handle`` resets ``stop.triggered`` on *any*
    OrderCanceled / OrderExpired / OrderRejected — including an unrelated entry order
    expiring, or a venue "cancel rejected: ..." reply that ends nothing — so the next
    price publishes a second StopTriggered and a second exit OrderIntent for the same
    stop while the first exit is still working.  Today risk's net-of-pending reduce-only
    check refuses the duplicate, but the bus shows the stop triggering twice and the
    monitor's ``triggered`` count is wrong.  Fix: remember the exit's client order id
    (``client_order_id(intent_id)`` at trigger time) on the ArmedStop and re-arm only
    when the ended order's ``client_order_id`` is that one (and ignore OrderRejected
    whose reason is a request rejection, cf. ``actors.order.REQUEST_REJECTS``).
    """
    w = Wired()
    await w.arm_long()
    await w.send(trade(10, "94"))
    await w.send(ended("expired", client_order_id("some-resting-entry"), 11))
    assert await w.send(trade(12, "94")) == []
    assert w.monitor.triggered == 1


# --- resizing and disarming -------------------------------------------------------------------


async def test_position_back_to_zero_disarms_the_stop() -> None:
    # Arrange
    w = Wired()
    await w.arm_long()
    await w.send(trade(10, "94"))
    # Act: the exit filled
    out = await w.send(position("0", "whatever-exit"))
    # Assert
    assert out == [("canceled", stop_id(), "position closed")]
    assert w.monitor.stop is None
    assert await w.send(trade(11, "1"), trade(12, "1000")) == []


async def test_flat_position_without_a_stop_publishes_nothing() -> None:
    w = Wired()
    assert await w.send(position("0", "x")) == []


async def test_adding_to_the_position_resizes_the_stop_and_keeps_its_levels() -> None:
    w = Wired()
    await w.arm_long(qty="2")
    assert await w.send(approved(entry("e2", sl=None, tp=None)), position("3", "e2")) == []
    out = await w.send(trade(10, "95"))
    assert out[1] == exit_intent(stop_id(), "stop_loss", "sell", "3", "95", 10)


async def test_adding_with_an_entry_that_brings_new_levels_moves_the_stop() -> None:
    w = Wired()
    await w.arm_long(qty="2")
    await w.send(approved(entry("e2", qty="1", sl="97", tp="105")), position("3", "e2"))
    out = await w.send(trade(10, "96.5"))
    assert out == [
        triggered(stop_id("e1"), "stop_loss", "97", 10),
        exit_intent(stop_id("e1"), "stop_loss", "sell", "3", "97", 10),
    ]


async def test_partial_exit_fill_shrinks_what_the_stop_would_close() -> None:
    w = Wired()
    await w.arm_long(qty="2")
    await w.send(position("0.5", "some-strategy-exit"))
    out = await w.send(trade(10, "110"))
    assert out[1] == exit_intent(stop_id(), "take_profit", "sell", "0.5", "110", 10)


# --- shorts ---------------------------------------------------------------------------------


async def test_short_entry_arms_a_buy_stop() -> None:
    w = Wired()
    out = await w.send(approved(entry("e1", "sell", "2", "105", "90")), position("-2", "e1"))
    assert out == [armed(stop_id(), "buy", "2", "105", "90")]


@pytest.mark.parametrize("price", ["105", "106"], ids=["at_stop", "above_stop"])
async def test_short_stop_loss_triggers_at_or_above_the_stop(price: str) -> None:
    w = Wired()
    await w.arm_short()
    assert await w.send(trade(10, "104.99")) == []
    out = await w.send(trade(11, price))
    sid = stop_id()
    assert out == [
        triggered(sid, "stop_loss", "105", 11),
        exit_intent(sid, "stop_loss", "buy", "2", "105", 11),
    ]


@pytest.mark.parametrize("price", ["90", "89"], ids=["at_tp", "below_tp"])
async def test_short_take_profit_triggers_at_or_below_the_target(price: str) -> None:
    w = Wired()
    await w.arm_short()
    out = await w.send(trade(10, price))
    sid = stop_id()
    assert out == [
        triggered(sid, "take_profit", "90", 10),
        exit_intent(sid, "take_profit", "buy", "2", "90", 10),
    ]


async def test_short_bar_touching_both_levels_takes_the_stop_loss_first() -> None:
    w = Wired()
    await w.arm_short()
    out = await w.send(bar(60, "89", "106"))
    assert out[0] == triggered(stop_id(), "stop_loss", "105", 60)


async def test_short_position_closed_disarms_the_stop() -> None:
    w = Wired()
    await w.arm_short()
    assert await w.send(position("0", "x")) == [("canceled", stop_id(), "position closed")]


# --- through the run loop -------------------------------------------------------------------


async def test_run_loop_arms_triggers_once_and_skips_prices_while_nothing_is_live() -> None:
    # Arrange
    w = Wired()
    it = entry("e1", "buy", "2", "95", "110")
    for m in (
        trade(1, "50"),
        approved(it),
        position("2", "e1"),
        trade(10, "96"),
        trade(11, "95"),
        trade(12, "90"),
    ):
        w.monitor.inbox.send_nowait(m)
    w.monitor.inbox.close()
    # Act
    with anyio.fail_after(2):
        await w.monitor.run()
        got = await w.out.receive_batch()
    # Assert
    sid = stop_id()
    assert [view(m) for m in got] == [
        armed(sid, "sell", "2", "95", "110"),
        triggered(sid, "stop_loss", "95", 11),
        exit_intent(sid, "stop_loss", "sell", "2", "95", 11),
    ]
    assert w.monitor.handled == 6


async def test_position_flipping_through_zero_cancels_the_old_stop_before_arming_the_new_one() -> None:
    """Long 2 with stop A armed; a sell 4 entry (with its own levels) fills in one go and
    the position goes to -2.  ``_on_position`` sees a different exit side and a new
    set of levels and publishes StopArmed for B, but never StopCanceled for A: anyone
    following the stop lifecycle on the bus (mirror, dashboards) sees A armed forever.
    The same happens when the flipping fill has no levels (A is dropped silently and
    the new position is left unprotected with only a log line).  Fix: in
    ``_on_position``, when ``self.stop`` exists and its ``exit_side`` differs from the new
    one, publish ``StopCanceled(stop_id=old, reason="position flipped")`` before arming
    the new stop (or leaving it unarmed).
    """
    w = Wired()
    await w.arm_long(qty="2")
    out = await w.send(approved(entry("e2", "sell", "4", "105", "90")), position("-2", "e2"))
    cancels = [m for m in out if isinstance(m, tuple) and m[0] == "canceled"]
    assert [c[1] for c in cancels] == [stop_id("e1")]
    assert out.index(cancels[0]) < out.index(armed(stop_id("e2"), "buy", "2", "105", "90"))


# --- the exit filled but the position is still open ----------------------------------------


def exit_fill(intent_id: str, qty: str, leaves: str) -> OrderFilled:
    cid = client_order_id(intent_id)
    return OrderFilled(
        exchange=EX,
        symbol=SYM,
        ts_event=20,
        ts_recv=20,
        client_order_id=cid,
        venue_order_id="v9",
        trade_id="t9",
        side="sell",
        last_qty=D(qty),
        last_price=D("94"),
        cum_qty=D(qty),
        leaves_qty=D(leaves),
        fee=D(0),
        fee_asset="USDT",
        liquidity="taker",
    )


async def test_stop_rearms_when_its_exit_filled_but_the_entry_kept_filling_after_the_trigger() -> None:
    """Long 2, stop-loss hit: exit for 2 goes out; meanwhile the entry fills 5 more. The exit
    fills (2), the position is still 5: the stop must watch the 5 and exit them on the next
    price beyond its level, not stay 'triggered' forever."""
    w = Wired()
    await w.arm_long(qty="2")
    await w.send(trade(10, "94"))  # trigger: exit 2
    exit_id = f"{stop_id()}:stop_loss:10"
    await w.send(position("7", "e1"))  # the entry kept filling
    assert await w.send(trade(11, "93")) == []  # the exit is still working: no second trigger
    out = await w.send(exit_fill(exit_id, "2", "0"), position("5", exit_id), trade(12, "93"))
    assert out == [
        triggered(stop_id(), "stop_loss", "95", 12),
        exit_intent(stop_id(), "stop_loss", "sell", "5", "95", 12),
    ]


async def test_partial_exit_fill_does_not_rearm() -> None:
    w = Wired()
    await w.arm_long(qty="4")
    await w.send(trade(10, "94"))
    exit_id = f"{stop_id()}:stop_loss:10"
    out = await w.send(exit_fill(exit_id, "1", "3"), position("3", exit_id), trade(12, "93"))
    assert out == []


# --- a hit while the entry is still filling ------------------------------------------------


def entry_fill(qty: str, cum: str, leaves: str, ts: int) -> OrderFilled:
    return OrderFilled(
        exchange=EX,
        symbol=SYM,
        ts_event=ts,
        ts_recv=ts,
        client_order_id=client_order_id("e1"),
        venue_order_id="v1",
        trade_id=f"te{ts}",
        side="buy",
        last_qty=D(qty),
        last_price=D("96"),
        cum_qty=D(cum),
        leaves_qty=D(leaves),
        fee=D(0),
        fee_asset="USDT",
        liquidity="maker",
    )


async def test_a_hit_while_the_entry_fills_withdraws_it_and_exits_once_not_per_partial_fill() -> None:
    """The paper churn: an entry for 4 filling in parts below its own stop sent one exit per
    partial fill.  Now the first hit withdraws the entry; what filled before the cancel landed
    is exited once more; nothing after the entry ended."""
    w = Wired()
    w.router.subscribe(w.out, (CancelIntent,))
    it = entry("e1", "buy", "4", "95", "110")
    await w.send(approved(it), entry_fill("1", "1", "3", 5), position("1", "e1"))
    out = await w.send(trade(10, "94"))  # the stop is hit with 3 still to fill
    cancels = [m for m in out if isinstance(m, CancelIntent)]
    assert [c.intent_id for c in cancels] == ["e1"] and cancels[0].source == "stop-monitor"
    exits = [m for m in out if isinstance(m, OrderIntent)]
    assert [(e.quantity, e.reduce_only) for e in exits] == [(D(1), True)]
    first_exit = exits[0].intent_id
    # one more part fills before the cancel lands, then the entry is canceled
    await w.send(entry_fill("1", "2", "2", 11), position("2", "e1"))
    canceled = OrderCanceled(
        exchange=EX,
        symbol=SYM,
        ts_event=12,
        ts_recv=12,
        client_order_id=client_order_id("e1"),
        reason="withdrawn",
    )
    assert await w.send(canceled, trade(12, "93")) == []  # the first exit still works: nothing new
    out = await w.send(exit_fill(first_exit, "1", "0"), position("1", first_exit), trade(13, "93"))
    assert [m for m in out if isinstance(m, CancelIntent)] == []  # withdrawn once
    assert [m.quantity for m in out if isinstance(m, OrderIntent)] == [D(1)]  # the rest, once
    assert await w.send(trade(14, "92"), trade(15, "91")) == []  # one exit in flight
