"""PaperExchange actor: feeds its engine from the inbox and publishes order events through the router."""

from __future__ import annotations

from decimal import Decimal as D

import anyio
import pytest

from actors.channels import Channel, Router
from actors.messages import (
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    Signal,
)
from adapters.paper import PaperExchange
from daemon.config import PaperAccount
from tests.test_paper_engine import EX, INST, SYM, account, cancel, order, trade

ORDER_EVENTS = (OrderAccepted, OrderRejected, OrderFilled, OrderCanceled, OrderExpired)


def wire(tapped: list[Message] | None = None) -> tuple[Router, PaperExchange, Channel[Message]]:
    router = Router(tapped.append if tapped is not None else None)
    inbox: Channel[Message] = Channel("paper-exchange", 64)
    out: Channel[Message] = Channel("order-events", 64)
    router.subscribe(inbox, PaperExchange.subscribes)
    router.subscribe(out, ORDER_EVENTS)
    return router, PaperExchange(EX, SYM, router, inbox, INST, account()), out


async def collect(out: Channel[Message], n: int) -> list[Message]:
    got: list[Message] = []
    while len(got) < n:
        got += await out.receive_batch()
    return got


@pytest.mark.anyio
async def test_paper_exchange_accepts_fills_and_cancels_through_the_router() -> None:
    router, actor, out = wire()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(actor.run)
            await router.publish(trade("2000"))
            await router.publish(order("a", "buy", "market", "1"))
            await router.publish(order("b", "sell", "limit", "1", "2100"))
            await router.publish(trade("2000", ts=42))
            await router.publish(cancel("b"))
            await router.publish(cancel("a"))
            got = await collect(out, 5)
            actor.inbox.close()
    assert [(type(m), getattr(m, "client_order_id", None)) for m in got] == [
        (OrderAccepted, "a"),
        (OrderAccepted, "b"),
        (OrderFilled, "a"),
        (OrderCanceled, "b"),
        (OrderRejected, "a"),
    ]
    fill = got[2]
    assert isinstance(fill, OrderFilled) and (fill.last_price, fill.ts_event) == (D("2002.00"), 42)
    assert actor.account.snapshot()["ETH"] == (D("6"), D("0"))
    assert actor.handled == 6


@pytest.mark.anyio
async def test_paper_exchange_ignores_other_symbols_and_message_kinds() -> None:
    router, actor, out = wire()
    other_symbol = order("x", "buy", "limit", "1", "2000", symbol="BTC/USDT")
    signal = Signal(
        exchange=EX,
        symbol=SYM,
        ts_event=1,
        ts_recv=1,
        strategy="s",
        side="buy",
        confidence=1.0,
        price=D(1),
        reason="",
    )
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(actor.run)
            await router.publish(other_symbol)
            await actor.inbox.send(signal)
            await router.publish(order("a", "buy", "limit", "1", "2000"))
            (accepted,) = await collect(out, 1)
            actor.inbox.close()
    assert isinstance(accepted, OrderAccepted) and accepted.client_order_id == "a"
    assert actor.ignored == 2


@pytest.mark.anyio
async def test_stopping_the_venue_cancels_open_orders_and_releases_reservations() -> None:
    tapped: list[Message] = []
    router, actor, out = wire(tapped)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(actor.run)
            await router.publish(order("a", "buy", "limit", "1", "2000"))
            await collect(out, 1)
            assert actor.account.snapshot()["USDT"] == (D("10000"), D("2004.000"))
            tg.cancel_scope.cancel()
    assert actor.engine.open_orders == {}
    assert actor.account.snapshot()["USDT"] == (D("10000"), D("0"))
    canceled = tapped[-1]
    assert isinstance(canceled, OrderCanceled)
    assert (canceled.client_order_id, canceled.reason) == ("a", "venue stopped")
    assert out.depth() == 0  # nobody in the stopped group is told


@pytest.mark.anyio
async def test_a_failed_run_keeps_the_book_for_the_supervisors_restart() -> None:
    _, actor, _ = wire()
    actor.engine.submit(order("a", "buy", "limit", "1", "2000"))

    def boom(msg: Message) -> list[Message]:
        raise RuntimeError("bug")

    actor.dispatch = boom  # type: ignore[method-assign]
    await actor.inbox.send(trade("2000"))
    with anyio.fail_after(5), pytest.raises(RuntimeError):
        await actor.run()
    assert list(actor.engine.open_orders) == ["a"]


def test_a_restarted_venue_on_the_same_account_still_refuses_seen_client_ids() -> None:
    _, first, _ = wire()
    first.engine.submit(order("a", "buy", "limit", "1", "2000"))
    first.close_book("venue stopped")
    restarted = PaperExchange(EX, SYM, Router(), Channel("paper-exchange", 8), INST, first.account)
    (reject,) = restarted.engine.submit(order("a", "buy", "limit", "1", "2000"))
    assert isinstance(reject, OrderRejected) and reject.reason == "duplicate client_order_id a"


def test_update_account_config_changes_fees_without_touching_balances() -> None:
    _, actor, _ = wire()
    actor.update_account_config(PaperAccount(balances={}, taker_fee=D("0.004"), maker_fee=D("0.003")))
    assert (actor.account.taker_fee, actor.account.maker_fee) == (D("0.004"), D("0.003"))
    assert actor.account.total("USDT") == D("10000")
