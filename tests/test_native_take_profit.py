"""The take-profit resting at the fake Binance as a TAKE_PROFIT_LIMIT (``risk.native_take_profit``).

Wired as in tests/test_native_stop_replace.py (risk, order, stop-monitor, the Binance execution
actor against tests/fake_binance.py).  With no native stop-loss the take-profit rests at the venue
(a spot balance covers one resting exit): it triggers and fills there, and is the exit, once.  The
stop-loss is watched by the monitor; when it is hit, the resting take-profit is canceled first and
the market exit follows, so the position is never sold twice.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from actors.messages import OrderFilled, OrderIntent, PositionChanged, StopTriggered
from tests.test_native_stop_replace import EX, SYM, VENUE, Wired, until, wired

pytestmark = pytest.mark.anyio


async def enter(w: Wired) -> str:
    """1 LTC bought at market (0.0035), stop-loss 0.0034, take-profit 0.0036; returns the TP's cid."""
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
        )
    )
    await until("entry filled", lambda: w.order.position.quantity == D("1"))
    await until("take-profit resting", lambda: w.native_working() is not None)
    cid = w.native_working()
    assert cid is not None
    resting = [(o["clientOrderId"], o["type"], o["side"], o["stopPrice"], o["price"]) for o in open_orders(w)]
    assert resting == [(cid, "TAKE_PROFIT_LIMIT", "SELL", "0.00360000", "0.00360000")]
    return cid


def open_orders(w: Wired) -> list[dict[str, str]]:
    return [
        o
        for o in w.fake.orders.values()
        if o["symbol"] == VENUE and o["status"] in ("NEW", "PARTIALLY_FILLED")
    ]


def exits(w: Wired) -> list[OrderIntent]:
    return [m for m in w.seen if isinstance(m, OrderIntent) and m.order_type == "market" and m.reduce_only]


async def test_the_take_profit_rests_at_the_venue_and_is_the_exit() -> None:
    async with wired(native_stops=False, native_take_profit=True) as w:
        cid = await enter(w)
        await w.price("0.003550")  # below the take-profit: nothing
        assert [o["clientOrderId"] for o in open_orders(w)] == [cid]
        await w.price("0.003610")  # triggers and fills at the venue (limit 0.0036)
        await until("flat", lambda: w.order.position.quantity == 0 and w.monitor.stop is None)
        sells = [m for m in w.seen if isinstance(m, OrderFilled) and m.side == "sell"]
        assert [(m.client_order_id, m.last_price) for m in sells] == [(cid, D("0.003600"))]
        assert [(m.trigger, m.price) for m in w.seen if isinstance(m, StopTriggered)] == [
            ("take_profit", D("0.003600"))
        ]
        assert not exits(w) and not open_orders(w)
        assert len([m for m in w.seen if isinstance(m, PositionChanged) and m.quantity == 0]) == 1


async def test_a_stop_loss_hit_cancels_the_resting_take_profit_before_its_exit() -> None:
    async with wired(native_stops=False, native_take_profit=True) as w:
        cid = await enter(w)
        await w.price("0.003390")  # the monitor watches the stop-loss: hit
        await until("flat", lambda: w.order.position.quantity == 0 and w.monitor.stop is None)
        deletes = [
            s.params.get("origClientOrderId")
            for s in w.fake.seen
            if (s.method, s.path) == ("DELETE", "/api/v3/order")
        ]
        assert deletes == [cid]
        (exit_intent,) = exits(w)
        sells = [m for m in w.seen if isinstance(m, OrderFilled) and m.side == "sell"]
        assert len(sells) == 1 and sells[0].client_order_id != cid
        # the take-profit was gone before the exit was sent: never two sells resting or filling
        cancel_at = next(i for i, s in enumerate(w.fake.seen) if s.method == "DELETE")
        exit_at = next(
            i
            for i, s in enumerate(w.fake.seen)
            if s.params.get("type") == "MARKET" and s.params.get("side") == "SELL"
        )
        assert cancel_at < exit_at
        assert [m.trigger for m in w.seen if isinstance(m, StopTriggered)] == ["stop_loss"]
        assert not open_orders(w) and exit_intent.quantity == D("1")


async def test_with_a_native_stop_loss_the_take_profit_is_watched_not_placed() -> None:
    async with wired(native_stops=True, native_take_profit=True) as w:
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
            )
        )
        await until("stop resting", lambda: w.native_working() is not None)
        assert [o["type"] for o in open_orders(w)] == ["STOP_LOSS"]
        await w.price("0.003610")  # the monitor's take-profit: cancel the stop, then exit
        await until("flat", lambda: w.order.position.quantity == 0 and w.monitor.stop is None)
        assert [m.trigger for m in w.seen if isinstance(m, StopTriggered)] == ["take_profit"]
        assert len(exits(w)) == 1 and not open_orders(w)
