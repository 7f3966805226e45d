"""A trailing native stop moved by cancel-replace at the fake Binance: never a moment without a stop.

Risk, the order actor, the stop-monitor and the Binance execution actor are wired as a group wires
them (daemon/group.py), against tests/fake_binance.py over loopback (signatures checked, fills back
on the user data stream).  A market entry fills, the stop-monitor rests its stop-loss at the venue
(STOP_LOSS, reduce-only) and trails it up; every move is one ``POST /api/v3/order/cancelReplace``.
The fake records its open orders after every request and market trade (``open_log``): from the
first stop until the position is closed, every record shows exactly one resting stop.  Faults: the
cancel-replace's reply lost (the venue did it: both orders resolved by query), the request refused
before processing (nothing changed: the old stop stays), and Binance's -2021 (the old stop canceled,
the new one refused: a new stop is placed at once).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal as D
from typing import Any

import anyio
import pytest

from actors.channels import Channel, Router
from actors.messages import (
    CancelOrder,
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderIntent,
    OrderRejected,
    OrderSubmitted,
    OrderUnknown,
    PositionChanged,
    RiskApproved,
    RiskRejected,
    SubmitOrder,
    Trade,
)
from actors.order import OrderActor
from actors.params import RiskLimits
from actors.risk import RiskActor
from actors.runtime import GroupState
from actors.state import SymbolState
from actors.stop_monitor import StopMonitor
from adapters.binance.execution import BinanceExecution
from tests.binance_exec_helpers import CREDS, LTC, account_config
from tests.fake_binance import FakeBinance, open_fake_binance

pytestmark = pytest.mark.anyio

EX, SYM, VENUE = "binance", "LTC/BTC", "LTCBTC"
ORDER_EVENTS = (OrderAccepted, OrderRejected, OrderFilled, OrderCanceled, OrderExpired, OrderUnknown)
STOP_TYPES = ("STOP_LOSS", "STOP_LOSS_LIMIT")


@dataclass
class Wired:
    fake: FakeBinance
    state: SymbolState
    router: Router
    risk: RiskActor
    order: OrderActor
    monitor: StopMonitor
    venue: BinanceExecution
    seen: list[Message]
    ts: itertools.count[int]

    async def price(self, px: str, venue: bool = True) -> None:
        """A market trade at the venue (fills or triggers its resting orders) and on our feed."""
        price = D(px)
        if venue:
            await self.fake.trade(VENUE, price)
        ts = next(self.ts)
        self.state.last_price = price
        await self.router.publish(
            Trade(exchange=EX, symbol=SYM, ts_event=ts, ts_recv=ts, price=price, size=D(1))
        )

    def native_working(self) -> str | None:
        stop = self.monitor.stop
        n = stop.native if stop is not None else None
        return (
            n.cid
            if n is not None and n.state == "working" and stop is not None and stop.native_prev is None
            else None
        )

    def venue_stops(self) -> list[tuple[str, str]]:
        return [
            (o["clientOrderId"], o["stopPrice"])
            for o in self.fake.orders.values()
            if o["symbol"] == VENUE and o["type"] in STOP_TYPES and o["status"] in ("NEW", "PARTIALLY_FILLED")
        ]

    def stops_per_record(self) -> list[int]:
        """Resting sell stops in each of the fake's open-order records, from the first stop on."""
        counts = [
            sum(1 for sym, _, kind, side, _ in snap if sym == VENUE and kind in STOP_TYPES and side == "SELL")
            for _, snap in self.fake.open_log
        ]
        first = next(i for i, n in enumerate(counts) if n)
        return counts[first:]

    def requests(self, path: str) -> int:
        return sum(1 for s in self.fake.seen if s.path == path and s.method != "GET")


async def until(what: str, pred: Callable[[], object], timeout: float = 10) -> None:
    try:
        with anyio.fail_after(timeout):
            while not pred():
                await anyio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


@asynccontextmanager
async def wired(
    trail_step: str = "0.000020",
    native_stops: bool = True,
    native_take_profit: bool = False,
    **fake_options: Any,
) -> AsyncIterator[Wired]:
    async with open_fake_binance(
        order_types_extra=frozenset({"STOP_LOSS", "TAKE_PROFIT"}), **fake_options
    ) as fake:
        seen: list[Message] = []
        router = Router(seen.append)
        state = SymbolState(EX, SYM, "main")
        state.last_price = fake.market_price
        limits = RiskLimits(
            native_stops=native_stops,
            native_take_profit=native_take_profit,
            trail_step=D(trail_step),
            max_order_notional=D("10"),
        )
        risk = RiskActor(EX, SYM, router, Channel("risk", 256), state, GroupState(EX, SYM), limits)
        order = OrderActor(EX, SYM, router, Channel("order", 256), state, LTC.tick_size, LTC.step_size)
        risk.leaves_of = order.signed_leaves
        monitor = StopMonitor(
            EX, SYM, router, Channel("stop-monitor", 256), limits, venue_stops=True, tick_size=LTC.tick_size
        )
        venue = BinanceExecution(
            EX,
            SYM,
            router,
            Channel("binance-execution", 256),
            LTC,
            "main",
            account_config(fake, recv_window_ms=1000),
            last_price=lambda: state.last_price,
            credentials=CREDS,
            backoff_initial_s=0.05,
        )
        router.subscribe(risk.inbox, (OrderIntent, PositionChanged))
        router.subscribe(order.inbox, (RiskApproved, *ORDER_EVENTS))
        router.subscribe(
            monitor.inbox,
            (
                Trade,
                RiskApproved,
                RiskRejected,
                PositionChanged,
                OrderAccepted,
                OrderFilled,
                OrderRejected,
                OrderCanceled,
                OrderExpired,
            ),
        )
        router.subscribe(venue.inbox, (SubmitOrder, CancelOrder))
        w = Wired(fake, state, router, risk, order, monitor, venue, seen, itertools.count(10))
        async with anyio.create_task_group() as tg:
            for actor in (risk, order, monitor, venue):
                tg.start_soon(actor.run)
            await until("user stream caught up", lambda: venue.user_stream.catchups > 0)
            yield w
            tg.cancel_scope.cancel()


async def enter(w: Wired) -> str:
    """1 LTC bought at market (0.0035) with a 0.0001 trailing stop from 0.0034; returns the stop's cid."""
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
            trailing_distance=D("0.000100"),
        )
    )
    await until("entry filled", lambda: w.order.position.quantity == D("1"))
    await until("native stop resting", lambda: w.native_working() is not None)
    cid = w.native_working()
    assert cid is not None and w.venue_stops() == [(cid, "0.00340000")]
    return cid


async def moved_to(w: Wired, level: str, previous: str) -> str:
    await until(f"stop at {level}", lambda: w.native_working() not in (None, previous))
    cid = w.native_working()
    assert cid is not None
    await until(f"venue stop at {level}", lambda: w.venue_stops() == [(cid, level)])
    return cid


async def test_a_trailing_stop_moved_by_cancel_replace_always_rests_at_the_venue() -> None:
    async with wired() as w:
        cid = await enter(w)
        await w.price("0.003550")  # trail 0.003450: +0.00005, over the step
        cid = await moved_to(w, "0.00345000", cid)
        await w.price("0.003560")  # 0.003460: +0.00001, under the 0.00002 step: no replace
        await w.price("0.003565")  # 0.003465: +0.000015, still under it
        await w.price("0.003600")  # 0.003500
        cid = await moved_to(w, "0.00350000", cid)
        await w.price("0.003650")  # 0.003550
        cid = await moved_to(w, "0.00355000", cid)
        await w.price("0.003540")  # through the stop: the venue's STOP_LOSS fires
        await until("flat", lambda: w.order.position.quantity == 0 and w.monitor.stop is None)

        assert w.monitor.replacements == 3
        assert w.requests("/api/v3/order/cancelReplace") == 3
        assert [s.method for s in w.fake.seen if s.path == "/api/v3/order"].count("DELETE") == 0
        # from the first stop on, exactly one stop rests after every request and trade, until it fired
        per_record = w.stops_per_record()
        last = max(i for i, n in enumerate(per_record) if n)
        assert per_record[: last + 1] == [1] * (last + 1), per_record
        assert all(n == 0 for n in per_record[last + 1 :])
        sells = [m for m in w.seen if isinstance(m, OrderFilled) and m.side == "sell"]
        assert [(m.client_order_id, m.last_qty) for m in sells] == [(cid, D("1"))]
        flat = [m for m in w.seen if isinstance(m, PositionChanged) and m.quantity == 0]
        assert len(flat) == 1
        assert not [
            m for m in w.seen if isinstance(m, OrderIntent) and m.order_type == "market" and m.reduce_only
        ]
        # each replacement was journaled (OrderSubmitted) naming the order it replaces
        replaced = [m.replaces for m in w.seen if isinstance(m, OrderSubmitted) and m.replaces]
        assert len(replaced) == 3 and len(set(replaced)) == 3


async def test_a_lost_cancel_replace_reply_is_resolved_to_exactly_one_stop() -> None:
    async with wired() as w:
        old = await enter(w)
        w.fake.fail_next("500", path="/api/v3/order/cancelReplace")  # done at the venue, reply lost
        await w.price("0.003550")
        new = await moved_to(w, "0.00345000", old)
        assert w.venue.n["unknown"] == 1  # (the user stream told of the new stop before the query)
        await until("old stop resolved canceled", lambda: w.order.signed_leaves(old) == 0)
        assert w.venue_stops() == [(new, "0.00345000")]
        assert set(w.stops_per_record()) == {1}


async def test_a_cancel_replace_refused_unprocessed_leaves_the_old_stop() -> None:
    async with wired() as w:
        old = await enter(w)
        w.fake.fail_next("500-unprocessed", path="/api/v3/order/cancelReplace")  # nothing happened
        await w.price("0.003550")
        await until(
            "replacement resolved: not at the venue",
            lambda: any(isinstance(m, OrderRejected) and "not found at venue" in m.reason for m in w.seen),
        )
        await until("old stop in force again", lambda: w.native_working() == old)
        assert w.venue_stops() == [(old, "0.00340000")]
        await w.price("0.003600")  # the next move replaces it
        await moved_to(w, "0.00350000", old)
        assert set(w.stops_per_record()) == {1}


async def test_old_stop_canceled_and_replacement_refused_places_a_new_stop_at_once() -> None:
    async with wired() as w:
        old = await enter(w)
        w.fake.next_order_error = (400, -2010, "Account has insufficient balance for requested action.")
        await w.price("0.003550")
        await until(
            "partial failure seen",
            lambda: any(isinstance(m, OrderRejected) and "-2021" in m.reason for m in w.seen),
        )
        cid = await moved_to(w, "0.00345000", old)
        assert w.requests("/api/v3/order/cancelReplace") == 1
        assert [s.params.get("newClientOrderId") for s in w.fake.seen if s.path == "/api/v3/order"][-1] == cid
        assert len(w.venue_stops()) == 1


async def test_a_stop_that_filled_before_its_replace_is_the_exit_and_nothing_is_placed() -> None:
    async with wired() as w:
        old = await enter(w)
        w.fake.mute_user_stream = True  # we do not hear of the fill: the venue's cancel half will fail
        await w.fake.trade(VENUE, D("0.003390"))  # the stop at 0.0034 fires at the venue
        w.fake.mute_user_stream = False
        await w.price("0.003550", venue=False)  # our feed, late: the trail moves, a replace goes out
        await until("flat", lambda: w.order.position.quantity == 0 and w.monitor.stop is None)
        refused = [
            m for m in w.seen if isinstance(m, OrderRejected) and m.reason.startswith("replace refused")
        ]
        assert len(refused) == 1 and "-2022" in refused[0].reason
        assert w.venue_stops() == []
        sells = [m for m in w.seen if isinstance(m, OrderFilled) and m.side == "sell"]
        assert [m.client_order_id for m in sells] == [old]
        assert not [
            m for m in w.seen if isinstance(m, OrderIntent) and m.order_type == "market" and m.reduce_only
        ]
