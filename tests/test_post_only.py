"""Per-order post-only: OrderIntent.post_only reaches the venue as Binance LIMIT_MAKER (the fake
Binance refuses one that would take, with -2010, as the venue does); the paper venue refuses a
crossing post-only order the same way and never fills one as taker; risk refuses post_only on
anything but a GTC limit; the grid's ``post_only`` makes its resting orders post-only."""

from __future__ import annotations

from decimal import Decimal as D

import anyio
import msgspec
import pytest

from actors.messages import OrderAccepted, OrderFilled, OrderRejected, SubmitOrder
from adapters.binance.orders import map_order
from tests.binance_exec_helpers import kinds, of, running, submit, until
from tests.fake_binance import open_fake_binance
from tests.test_paper_engine import EX, SYM, bar, engine, trade
from tests.test_risk import Wired, intent


def post_only(cmd: SubmitOrder) -> SubmitOrder:
    return msgspec.structs.replace(cmd, post_only=True)


def paper_limit(side: str, price: str, cid: str = "p1") -> SubmitOrder:
    return SubmitOrder(
        exchange=EX, symbol=SYM, ts_event=1, ts_recv=1, intent_id=f"i-{cid}", client_order_id=cid,
        side=side, order_type="limit", quantity=D("1"), price=D(price), post_only=True,  # type: ignore[arg-type]
    )  # fmt: skip


def test_paper_refuses_a_crossing_post_only_order_and_rests_one_that_does_not() -> None:
    e = engine()
    e.on_trade(trade("100"))
    (refused,) = e.submit(paper_limit("buy", "100.50", "take"))
    assert isinstance(refused, OrderRejected)
    assert refused.reason.startswith("post-only order would immediately match and take")
    (sell_refused,) = e.submit(paper_limit("sell", "99.00", "take-sell"))
    assert isinstance(sell_refused, OrderRejected)
    (ok,) = e.submit(paper_limit("buy", "99.50", "rest"))
    assert isinstance(ok, OrderAccepted)


def test_paper_post_only_never_fills_as_taker() -> None:
    e = engine()
    e.on_trade(trade("100"))
    assert isinstance(e.submit(paper_limit("buy", "99.50"))[0], OrderAccepted)
    # the next bar opens below the limit: a plain limit would take at the open; post-only rests and
    # fills at its own price as maker when the market trades through it
    fills = [m for m in e.on_bar(bar("99.00", "99.60", "98.90", "99.40")) if isinstance(m, OrderFilled)]
    assert fills and all(f.liquidity == "maker" and f.last_price == D("99.50") for f in fills)


@pytest.mark.anyio
async def test_risk_refuses_post_only_on_anything_but_a_gtc_limit() -> None:
    w = Wired()
    market = msgspec.structs.replace(intent("m"), post_only=True)
    rule, reason = await w.rejected(market)
    assert rule == "invalid" and "post_only needs a GTC limit order" in reason
    limit = msgspec.structs.replace(intent("l", order_type="limit", price="100"), post_only=True)
    await w.approved(limit)


def test_binance_maps_post_only_to_limit_maker() -> None:
    wire = map_order(post_only(submit("po")), "LTCBTC", None)
    assert (wire.type, wire.timeInForce) == ("LIMIT_MAKER", None)
    assert map_order(submit("plain"), "LTCBTC", None).type == "LIMIT"


@pytest.mark.anyio
async def test_fake_binance_refuses_a_post_only_order_that_would_take() -> None:
    with anyio.fail_after(15):
        async with open_fake_binance() as fake, running(fake) as (actor, events):
            await actor.inbox.send(post_only(submit("mk", "buy", "limit", price="0.003400")))
            await actor.inbox.send(post_only(submit("take", "buy", "limit", price="0.003600")))
            await actor.inbox.send(submit("plain", "buy", "limit", price="0.003300"))
            await until(lambda: bool(of(events, OrderRejected, "take")))
            await until(lambda: bool(kinds(events, "plain")))
    sent = {s.params.get("newClientOrderId"): s.params.get("type") for s in fake.seen if s.method == "POST"}
    assert sent == {"mk": "LIMIT_MAKER", "take": "LIMIT_MAKER", "plain": "LIMIT"}
    assert kinds(events, "mk") == ["OrderAccepted"]
    (rejected,) = of(events, OrderRejected, "take")
    assert rejected.reason == "HTTP 400 code -2010: Order would immediately match and take."
