"""A trailed stop survives a restart at its trailed level, never loosening back to the plan's.

The stop-monitor publishes a StopArmed at every trailing move; the journal keeps them; the
fold (and the GroupSnapshot) carry the open position's newest one; restart recovery hands
it to the new stop-monitor (``resume``), which arms the re-armed plan at those levels.
"""

from __future__ import annotations

from decimal import Decimal as D

import msgspec
import pytest

from actors.messages import (
    GroupSnapshot,
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderIntent,
    OrderSubmitted,
    RiskApproved,
    StopArmed,
    StopCanceled,
    stamp,
)
from actors.order_fold import OrderFold
from actors.order_ids import client_order_id
from daemon.backtest.runner import Lockstep
from daemon.config import PaperAccount, parse_config
from daemon.restore import open_native_stop, restore_group
from tests.test_backtest_batched import CONFIG, STRATEGIES
from tests.test_recovery import EX, SYM, Harness, fill, intent
from tests.test_stop_monitor import trade
from tests.test_trailing_stops import SID, Wired, accepted, canceled

pytestmark = pytest.mark.anyio


async def trailed_then_restarted(resume: bool) -> tuple[Wired, list[tuple[object, ...]]]:
    """Arm a 3-point trailing stop at 95, trail it to 98.5, restart, re-arm from the plan."""
    before = Wired()
    await before.arm(trailing_distance="3")
    await before.send(trade(10, "100"), trade(11, "101.5"))
    stop = before.monitor.stop
    assert stop is not None and stop.stop_price == D("98.5")
    last = StopArmed(
        stop_id=stop.stop_id,
        side=stop.exit_side,
        quantity=stop.quantity,
        stop_price=stop.stop_price,
        take_profit=stop.take_profit,
        **stamp(EX, SYM, 11),
    )
    after = Wired()  # the restarted daemon's stop-monitor
    if resume:
        after.monitor.resume(last)
    armed = await after.arm(trailing_distance="3")  # restore: the entry's approval + the position
    return after, armed


async def test_a_trailed_stop_resumes_at_its_level() -> None:
    w, armed = await trailed_then_restarted(resume=True)
    assert armed == [("armed", D("98.5"), None, D("2"))]
    # a dip that stays above the plan's 95 but reaches the trailed 98.5 exits, as "trailing"
    assert await w.send(trade(20, "98.4")) == [
        ("triggered", "trailing", D("98.5")),
        ("exit", "sell", D("2"), "trailing at 98.5"),
    ]


async def test_without_the_resume_the_stop_would_fall_back_to_the_plan() -> None:
    """What the resume prevents (and so what the test above would catch)."""
    w, armed = await trailed_then_restarted(resume=False)
    assert armed == [("armed", D("95"), None, D("2"))]
    assert await w.send(trade(20, "98.4")) == [("armed", D("95.4"), None, D("2"))]


async def test_the_trail_goes_on_from_the_resumed_level() -> None:
    w, _ = await trailed_then_restarted(resume=True)
    assert await w.send(trade(20, "100")) == []  # 97 would loosen it: the stop stays at 98.5
    assert await w.send(trade(21, "102")) == [("armed", D("99"), None, D("2"))]


async def test_a_resume_for_the_other_side_is_not_applied() -> None:
    w = Wired()
    w.monitor.resume(
        StopArmed(
            stop_id=SID, side="buy", quantity=D(2), stop_price=D("110"), take_profit=None, **stamp(EX, SYM, 1)
        )
    )
    assert await w.arm(trailing_distance="3") == [("armed", D("95"), None, D("2"))]  # a long: exit sells


def armed_msg(stop_id: str, sl: str, tp: str | None = None) -> StopArmed:
    return StopArmed(
        stop_id=stop_id,
        side="sell",
        quantity=D(10),
        stop_price=D(sl),
        take_profit=None if tp is None else D(tp),
        **stamp(EX, SYM, 5),
    )


async def test_the_fold_keeps_the_open_positions_newest_stop() -> None:
    h = Harness()
    cid = await h.approve(intent(1))
    await h.event(fill(cid, "t1", "10", "10", "0"))
    sid = f"stop:{cid}"
    for m in (armed_msg(sid, "0.0009"), armed_msg(sid, "0.00095", "0.0012")):
        h.fold.apply(m)
    assert h.fold.stop == armed_msg(sid, "0.00095", "0.0012")
    # the snapshot carries it, through msgpack, and a fold continuing from it has it
    snap = h.fold.snapshot(stamp(EX, SYM, 9))
    decoded = msgspec.msgpack.decode(msgspec.msgpack.encode(snap), type=GroupSnapshot)
    again = OrderFold(EX, SYM, "paper", "UNITTEST", "BTC")
    again.apply(decoded)
    assert again.stop == h.fold.stop
    # a canceled stop is forgotten
    h.fold.apply(StopCanceled(stop_id=sid, reason="position closed", **stamp(EX, SYM, 10)))
    assert h.fold.stop is None


async def test_a_flat_position_forgets_its_stop() -> None:
    h = Harness()
    cid = await h.approve(intent(1))
    await h.event(fill(cid, "t1", "10", "10", "0"))
    h.fold.apply(armed_msg(f"stop:{cid}", "0.00095"))
    out = await h.approve(intent(2, side="sell", reduce_only=True))
    await h.event(fill(out, "t2", "10", "10", "0", side="sell"))
    assert h.fold.position.quantity == 0 and h.fold.stop is None
    assert h.fold.snapshot(stamp(EX, SYM, 9)).stop is None


def test_old_snapshots_without_a_stop_still_decode() -> None:
    """A snapshot written before the field existed decodes (stop None)."""
    old = msgspec.msgpack.encode({"kind": "GroupSnapshot", **stamp(EX, SYM, 1), "account": "paper"})
    msg: Message = msgspec.msgpack.decode(old, type=GroupSnapshot)
    assert isinstance(msg, GroupSnapshot) and msg.stop is None


async def test_restore_group_arms_the_trailed_level() -> None:
    """Restart recovery end to end on a real group: the journal's fold in, the stop armed."""
    cfg = parse_config(CONFIG.format(path="x.json", strategy=STRATEGIES["ema_cross"], daily_loss="0"))
    acct = cfg.accounts["paper"]
    assert isinstance(acct, PaperAccount)
    group = Lockstep(cfg.groups[0], acct, "paper", ignore_volume=True).group
    entry = OrderIntent(
        intent_id="e1",
        source="strategy",
        side="buy",
        order_type="market",
        quantity=D(10),
        stop_loss=D("0.0009"),
        trailing_distance=D("0.0001"),
        **stamp(EX, SYM, 1),
    )
    h = Harness()
    cid = await h.approve(entry)
    await h.event(fill(cid, "t1", "10", "10", "0"))
    h.fold.apply(armed_msg(f"stop:{cid}", "0.00097"))  # trailed up from 0.0009 before the crash
    done = await restore_group(group, h.fold, None)
    assert any("stop levels as last published" in line for line in done)
    monitor = group.stop_monitor
    queued = monitor.inbox.items  # type: ignore[attr-defined]
    monitor.inbox.items = []  # type: ignore[attr-defined]
    await monitor.handle_batch(queued)
    assert monitor.stop is not None
    assert (monitor.stop.stop_price, monitor.stop.trailed) == (D("0.00097"), True)


# --- the native stop order resting at the venue across a restart ------------------------------


async def native_before_restart(level_after_trail: bool) -> tuple[OrderIntent, StopArmed]:
    """A native 3-point trailing stop placed at 95 and acknowledged; optionally trailed to 97
    with the daemon killed before the replacement went out.  Returns (native order, last StopArmed)."""
    before = Wired(native_stops=True)
    await before.arm(trailing_distance="3")
    native = before.intents[-1]
    await before.send(accepted(before.native_cid))
    if level_after_trail:
        await before.send(trade(10, "100"))  # amendment to 97 + cancel of the 95 order (lost)
    stop = before.monitor.stop
    assert stop is not None
    last = StopArmed(
        stop_id=stop.stop_id,
        side="sell",
        quantity=stop.quantity,
        stop_price=stop.stop_price,
        take_profit=None,
        **stamp(EX, SYM, 10),
    )
    return native, last


async def test_the_resting_native_stop_is_taken_back_not_doubled() -> None:
    native, last = await native_before_restart(level_after_trail=False)
    after = Wired(native_stops=True)
    after.monitor.resume(last, native, "working")
    assert await after.arm(trailing_distance="3") == [("armed", D("95"), None, D("2"))]  # no second order
    cid = after.native_cid
    assert cid == native_cid(native)
    # the trail amends the order taken back: one cancel-replace at the new level
    assert await after.send(trade(20, "100")) == [
        ("armed", D("97"), None, D("2")),
        ("replace", cid, D("2"), D("97")),
    ]
    assert await after.send(canceled(cid)) == []


async def test_without_taking_it_back_a_second_stop_order_would_go_out() -> None:
    _, last = await native_before_restart(level_after_trail=False)
    after = Wired(native_stops=True)
    after.monitor.resume(last)
    assert await after.arm(trailing_distance="3") == [
        ("armed", D("95"), None, D("2")),
        ("native", "sell", D("2"), D("95")),
    ]


async def test_a_native_stop_behind_the_trail_is_replaced_at_once() -> None:
    native, last = await native_before_restart(level_after_trail=True)
    assert last.stop_price == D("97")
    after = Wired(native_stops=True)
    after.monitor.resume(last, native, "working")
    cid = native_cid(native)
    assert await after.arm(trailing_distance="3") == [
        ("armed", D("97"), None, D("2")),
        ("replace", cid, D("2"), D("97")),
    ]


async def test_a_pending_native_stop_taken_back_waits_for_its_acknowledgement() -> None:
    native, last = await native_before_restart(level_after_trail=True)
    after = Wired(native_stops=True)
    after.monitor.resume(last, native, "pending")
    cid = native_cid(native)
    assert await after.arm(trailing_distance="3") == [("armed", D("97"), None, D("2"))]
    assert await after.send(accepted(cid)) == [("replace", cid, D("2"), D("97"))]  # 95 is behind the trail


def native_cid(order: OrderIntent) -> str:
    return client_order_id(order.intent_id)


def test_restore_picks_the_open_native_stop_the_venue_did_not_end() -> None:
    fold = OrderFold(EX, SYM, "paper", "UNITTEST", "BTC")
    native = OrderIntent(
        intent_id="stop:x:native:5:1",
        source="stop-monitor",
        side="sell",
        order_type="stop_market",
        quantity=D(10),
        stop_price=D("0.0009"),
        reduce_only=True,
        **stamp(EX, SYM, 5),
    )
    fold.apply(RiskApproved(intent=native, **stamp(EX, SYM, 5)))
    cid = native_cid(native)
    fold.apply(
        OrderSubmitted(
            intent_id=native.intent_id,
            client_order_id=cid,
            side="sell",
            order_type="stop_market",
            quantity=D(10),
            stop_price=D("0.0009"),
            **stamp(EX, SYM, 5),
        )
    )
    found, state = open_native_stop(fold, [])
    assert found is not None and found.cid == cid and state == "pending"
    acked = OrderAccepted(client_order_id=cid, venue_order_id="v9", **stamp(EX, SYM, 6))
    assert open_native_stop(fold, [acked])[1] == "working"
    gone = OrderCanceled(client_order_id=cid, **stamp(EX, SYM, 6))
    assert open_native_stop(fold, [acked, gone]) == (None, "working")
