"""OkxExecution against tests/fake_okx_venue.py on 127.0.0.1: orders over the private WebSocket and
REST, local rules, OKX's refusals, cancels, algo stops, cancel-replace, UNKNOWN outcomes resolved
by query (never re-sent), the catch-up after a reconnect, hostile pushes, and the reconciliation API.

Every test is bounded by ``anyio.fail_after``; a fill reaches the actor by push, catch-up and query,
and is published exactly once.
"""

from __future__ import annotations

import re
import time
from decimal import Decimal

import anyio
import pytest

from actors.messages import (
    BalancesChanged,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderIntent,
    OrderRejected,
    OrderUnknown,
)
from actors.oco import leg_ids
from actors.order import OrderRecord
from adapters.okx.orders import okx_client_id
from tests.fake_okx_venue import open_fake_okx_venue
from tests.okx_exec_helpers import INST, cancel, cid, kinds, make_actor, of, running, submit, until

pytestmark = pytest.mark.anyio
PRICES = {INST: Decimal("30000")}


async def test_a_limit_order_goes_over_the_websocket_and_its_fill_is_published_once() -> None:
    with anyio.fail_after(15):
        async with (
            open_fake_okx_venue(prices=PRICES, maker_fee=Decimal("0.0008")) as venue,
            running(venue) as (actor, events),
        ):
            await actor.handle(submit("ws-1"))
            await until(lambda: len(of(events, OrderAccepted, "ws-1")) == 1)
            await venue.trade(INST, Decimal("28990"))
            await until(lambda: len(of(events, OrderFilled, "ws-1")) == 1)
            await actor.catch_up()  # the catch-up reads the same fill from REST
            stats = actor.statistics()
    [fill] = of(events, OrderFilled, "ws-1")
    assert (fill.last_qty, fill.last_price, fill.cum_qty, fill.leaves_qty) == (
        Decimal("0.01"), Decimal("29000"), Decimal("0.01"), Decimal("0"),
    )  # fmt: skip
    assert (fill.fee, fill.fee_asset, fill.liquidity) == (Decimal("0.000008"), "BTC", "maker")
    assert kinds(events, "ws-1") == ["OrderAccepted", "OrderFilled"]
    assert venue.order_requests(okx_client_id(cid("ws-1"))) == 1
    assert stats.sent_websocket == 1 and stats.sent_rest == 0 and stats.duplicate_fills >= 1
    assert any(isinstance(e, BalancesChanged) and e.free.get("BTC") == Decimal("1.009992") for e in events)


async def test_a_market_order_over_rest_takes_liquidity_and_pays_in_the_base_currency() -> None:
    with anyio.fail_after(15):
        async with (
            open_fake_okx_venue(prices=PRICES, taker_fee=Decimal("0.001")) as venue,
            running(venue, order_channel="rest") as (actor, events),
        ):
            await actor.handle(submit("mkt-1", order_type="market", price=None, qty="0.002"))
            await until(lambda: len(of(events, OrderFilled, "mkt-1")) == 1)
            stats = actor.statistics()
    [fill] = of(events, OrderFilled, "mkt-1")
    assert (fill.last_price, fill.liquidity, fill.fee, fill.fee_asset) == (
        Decimal("30000"),
        "taker",
        Decimal("0.000002"),
        "BTC",
    )
    assert stats.sent_rest == 1 and stats.sent_websocket == 0
    assert venue.book.avail["USDT"] == Decimal("9940")


@pytest.mark.parametrize(
    ("qty", "price", "reason"),
    [
        ("0.000000015", "29000", r"^lotSz: size 0.000000015 is not a multiple of lotSz 0.00000001$"),
        ("0.000001", "29000", r"^minSz: size 0.000001 is below minSz 0.00001$"),
        ("0.01", "-5", r"^price: a limit order needs a positive price, got -5$"),
    ],
)
async def test_the_instrument_rules_refuse_an_order_before_it_leaves(
    qty: str, price: str, reason: str
) -> None:
    with anyio.fail_after(15):
        async with open_fake_okx_venue(prices=PRICES) as venue, running(venue) as (actor, events):
            await actor.handle(submit("rule-1", qty=qty, price=price))
            await until(lambda: of(events, OrderRejected, "rule-1"))
    [rejected] = of(events, OrderRejected, "rule-1")
    assert re.match(reason, rejected.reason), rejected.reason
    assert venue.book.orders == {} and actor.statistics().rejected_locally == 1


async def test_okx_refusals_are_rejections_with_the_code_and_a_resent_intent_is_a_duplicate() -> None:
    with anyio.fail_after(15):
        async with open_fake_okx_venue(prices=PRICES) as venue:
            async with running(venue) as (actor, events):
                await actor.handle(submit("big-1", qty="1"))  # 29000 USDT: more than the account has
                await actor.handle(submit("dup-1"))
                await actor.handle(submit("dup-1"))
                await until(
                    lambda: len(of(events, OrderRejected)) == 2 and of(events, OrderAccepted, "dup-1")
                )
            restarted, again = make_actor(venue)  # a new process sends the same intent again
            await restarted.handle(submit("dup-1"))
            await restarted.aclose()
    assert (
        of(events, OrderRejected, "big-1")[0].reason
        == "code 51008: Order failed. Insufficient USDT balance in account."
    )
    assert of(events, OrderRejected, "dup-1")[0].reason == "duplicate client order id: already sent"
    assert (
        of(again, OrderRejected, "dup-1")[0].reason
        == "duplicate client order id: HTTP 200 code 51016: Duplicated clOrdId"
    )
    assert len([o for o in venue.book.orders.values() if o.cl_ord_id == okx_client_id(cid("dup-1"))]) == 1


async def test_an_unanswered_websocket_order_is_unknown_then_resolved_by_query_never_resent() -> None:
    with anyio.fail_after(15):
        async with (
            open_fake_okx_venue(prices=PRICES) as venue,
            running(venue, timeout_s=0.3) as (actor, events),
        ):
            venue.mute_ops, venue.mute_private = True, True
            await actor.handle(submit("lost-1"))
            await until(lambda: of(events, OrderAccepted, "lost-1"))
    assert kinds(events, "lost-1") == ["OrderUnknown", "OrderAccepted"]
    assert venue.order_requests(okx_client_id(cid("lost-1"))) == 1
    assert actor.statistics().resolved == 1


@pytest.mark.parametrize(("fault", "after"), [("500", "OrderAccepted"), ("500-unprocessed", "OrderRejected")])
async def test_a_rest_order_whose_outcome_is_unknown_is_resolved(fault: str, after: str) -> None:
    with anyio.fail_after(15):
        async with (
            open_fake_okx_venue(prices=PRICES) as venue,
            running(venue, order_channel="rest", expiry_ms=500) as (actor, events),
        ):
            venue.fail_next(fault, path="/api/v5/trade/order")  # type: ignore[arg-type]
            venue.mute_private = True  # no push tells the actor first: only the query can
            await actor.handle(submit("rest-lost-1"))
            await until(lambda: len(kinds(events, "rest-lost-1")) == 2)
    assert kinds(events, "rest-lost-1") == ["OrderUnknown", after]
    if after == "OrderRejected":
        assert of(events, OrderRejected, "rest-lost-1")[0].reason.startswith(
            "not found at venue: POST /api/v5/trade/order"
        )
    assert venue.order_requests(okx_client_id(cid("rest-lost-1"))) == (1 if fault == "500" else 0)


async def test_a_cancel_ends_the_order_once_and_a_cancel_of_a_filled_order_is_refused() -> None:
    with anyio.fail_after(15):
        async with open_fake_okx_venue(prices=PRICES) as venue, running(venue) as (actor, events):
            await actor.handle(submit("rest-1"))
            await actor.handle(submit("gone-1", order_type="market", price=None))
            await until(lambda: of(events, OrderAccepted, "rest-1") and of(events, OrderFilled, "gone-1"))
            await actor.handle(cancel("rest-1"))
            await actor.handle(cancel("gone-1"))
            await until(lambda: of(events, OrderCanceled, "rest-1") and of(events, OrderRejected, "gone-1"))
    assert kinds(events, "rest-1") == ["OrderAccepted", "OrderCanceled"]
    assert of(events, OrderRejected, "gone-1")[0].reason.startswith("cancel rejected: code 51402: ")
    assert venue.book.by_cl and venue.book.frozen.get("USDT") == 0


async def test_a_native_stop_rests_as_an_algo_order_and_its_trigger_fills_it() -> None:
    with anyio.fail_after(15):
        async with open_fake_okx_venue(prices=PRICES) as venue, running(venue) as (actor, events):
            await actor.handle(submit("stop-1", "sell", "stop_market", qty="0.5", price=None, stop="29500"))
            await actor.handle(submit("stop-2", "sell", "stop_market", qty="0.1", price=None, stop="29000"))
            await until(lambda: of(events, OrderAccepted, "stop-1") and of(events, OrderAccepted, "stop-2"))
            await actor.handle(cancel("stop-2"))
            await until(lambda: of(events, OrderCanceled, "stop-2"))
            await venue.trade(INST, Decimal("29400"))
            await until(lambda: of(events, OrderFilled, "stop-1"))
    [fill] = of(events, OrderFilled, "stop-1")
    assert (fill.side, fill.last_qty, fill.last_price, fill.leaves_qty) == (
        "sell",
        Decimal("0.5"),
        Decimal("29400"),
        Decimal("0"),
    )
    assert kinds(events, "stop-1") == ["OrderAccepted", "OrderFilled"]
    assert [a.state for a in venue.book.algos.values()] == ["effective", "canceled"]


async def test_a_replace_cancels_the_old_order_first_and_a_failed_cancel_refuses_the_new_one() -> None:
    with anyio.fail_after(15):
        async with open_fake_okx_venue(prices=PRICES) as venue, running(venue) as (actor, events):
            await actor.handle(submit("old-1"))
            await until(lambda: of(events, OrderAccepted, "old-1"))
            await actor.handle(submit("new-1", price="29100", replaces=cid("old-1")))
            await until(lambda: of(events, OrderAccepted, "new-1"))
            await venue.trade(INST, Decimal("29050"))  # fills new-1
            await until(lambda: of(events, OrderFilled, "new-1"))
            await actor.handle(submit("new-2", price="29200", replaces=cid("new-1")))
            await until(lambda: of(events, OrderRejected, "new-2"))
    assert kinds(events, "old-1") == ["OrderAccepted", "OrderCanceled"]
    order = [
        type(e).__name__ for e in events if getattr(e, "client_order_id", "") in (cid("old-1"), cid("new-1"))
    ]
    assert order[:3] == ["OrderAccepted", "OrderCanceled", "OrderAccepted"]  # old canceled before new placed
    assert of(events, OrderRejected, "new-2")[0].reason.startswith(
        f"replace refused: cancel of {cid('new-1')} failed: "
    )
    assert okx_client_id(cid("new-2")) not in venue.book.by_cl


async def test_fills_made_while_the_socket_was_down_arrive_once_by_the_catch_up() -> None:
    with anyio.fail_after(15):
        async with open_fake_okx_venue(prices=PRICES) as venue, running(venue) as (actor, events):
            await actor.handle(submit("gap-1", qty="0.02"))
            await until(lambda: of(events, OrderAccepted, "gap-1"))
            venue.mute_private = True
            await venue.trade(INST, Decimal("29000"), Decimal("0.005"))
            await venue.trade(INST, Decimal("29000"), Decimal("0.015"))
            venue.mute_private = False
            await venue.drop_private()
            await until(lambda: len(of(events, OrderFilled, "gap-1")) == 2 and actor.stream.ready)
            await actor.catch_up()
    fills = of(events, OrderFilled, "gap-1")
    assert [(f.last_qty, f.cum_qty, f.leaves_qty) for f in fills] == [
        (Decimal("0.005"), Decimal("0.005"), Decimal("0.015")),
        (Decimal("0.015"), Decimal("0.02"), Decimal("0")),
    ]
    assert actor.statistics().catchups >= 3


async def test_a_push_with_garbage_numbers_is_counted_and_never_published() -> None:
    bad = (
        '{"arg":{"channel":"orders","instType":"SPOT","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT",'
        '"ordId":"1","clOrdId":"%s","side":"buy","ordType":"limit","state":"filled","sz":"0.01","accFillSz":"0.01",'
        '"tradeId":"777","fillPx":"NaN","fillSz":"0.01","fillFee":"0","execType":"M"}]}'
    )
    with anyio.fail_after(15):
        async with open_fake_okx_venue(prices=PRICES) as venue, running(venue) as (actor, events):
            await actor.handle(submit("bad-1"))
            await until(lambda: of(events, OrderAccepted, "bad-1"))
            await venue.send_private_raw(bad % okx_client_id(cid("bad-1")))
            await venue.send_private_raw(
                '{"arg":{"channel":"account"},"data":[{"details":[{"ccy":"BTC","availBal":"-inf"}]}]}'
            )
            await until(lambda: actor.statistics().bad_fills == 1)
            await venue.trade(INST, Decimal("29000"))  # the real fill
            await until(lambda: of(events, OrderFilled, "bad-1"))
            stats = actor.statistics()
    assert [f.last_price for f in of(events, OrderFilled, "bad-1")] == [Decimal("29000")]
    assert stats.private.rejected_by_reason.get("bad_value") == 1 and stats.private.connected


async def test_an_oco_list_is_refused_unsent() -> None:
    with anyio.fail_after(15):
        async with open_fake_okx_venue(prices=PRICES) as venue, running(venue) as (actor, events):
            msg = submit(
                "oco-1",
                "sell",
                "stop_market",
                qty="0.1",
                price=None,
                stop="29000",
                oco_take_profit=Decimal("31000"),
            )
            await actor.handle(msg)
            await until(lambda: len(of(events, OrderRejected)) == 2)
    legs = leg_ids(cid("oco-1"))
    assert [(e.client_order_id, e.reason) for e in of(events, OrderRejected)] == [
        (legs[0], "not sent: OCO lists are not supported on OKX yet"),
        (legs[1], "not sent: OCO lists are not supported on OKX yet"),
    ]
    assert venue.book.algos == {}


def _record(name: str, qty: str, *, order_type: str = "limit") -> OrderRecord:
    now = time.time_ns()
    intent = OrderIntent(
        exchange="okx", symbol="BTC/USDT", ts_event=now, ts_recv=now, intent_id=name, source="test",
        side="buy", order_type=order_type, quantity=Decimal(qty), price=Decimal("29000"),  # type: ignore[arg-type]
    )  # fmt: skip
    return OrderRecord(cid(name), intent, Decimal(qty))


async def test_restart_reconciliation_and_the_venue_queries() -> None:
    with anyio.fail_after(20):
        async with open_fake_okx_venue(prices=PRICES) as venue:
            async with running(venue) as (first, _):
                await first.handle(submit("keep-1", qty="0.02"))
                await first.handle(submit("done-1", qty="0.01", price="28000"))
                await until(
                    lambda: (
                        len(first.tracker.orders) == 2
                        and all(o.accepted for o in first.tracker.orders.values())
                    )
                )
            await venue.trade(INST, Decimal("29000"), Decimal("0.005"))  # while the daemon is down
            await venue.trade(INST, Decimal("28000"))
            second, events = make_actor(venue, expiry_ms=300)
            out = await second.reconcile(
                [_record("keep-1", "0.02"), _record("done-1", "0.01"), _record("never-1", "0.01")]
            )
            opened = await second.open_orders()
            status = await second.order_status(cid("done-1"))
            fills = await second.recent_fills(venue.now_ms() - 60_000)
            balances = await second.balances()
            await second.aclose()
    got = [(type(e).__name__, e.client_order_id) for e in out]  # type: ignore[attr-defined]
    assert got == [
        ("OrderAccepted", cid("keep-1")), ("OrderFilled", cid("keep-1")), ("OrderFilled", cid("keep-1")),
        ("OrderAccepted", cid("done-1")), ("OrderFilled", cid("done-1")), ("OrderRejected", cid("never-1")),
    ]  # fmt: skip
    keep = [e for e in out if isinstance(e, OrderFilled) and e.client_order_id == cid("keep-1")]
    assert [(f.last_qty, f.cum_qty) for f in keep] == [
        (Decimal("0.005"), Decimal("0.005")),
        (Decimal("0.015"), Decimal("0.02")),
    ]
    assert [o.client_order_id for o in opened] == []
    assert status is not None and (status.status, status.filled) == ("filled", Decimal("0.01"))
    assert sorted({f.client_order_id for f in fills}) == sorted({cid("keep-1"), cid("done-1")})
    assert fills[-1].leaves_qty == 0 and all(f.fee >= 0 for f in fills)
    assert (balances.free["USDT"], balances.free["BTC"]) == (
        Decimal("9140"),
        Decimal("1.03"),
    )  # 10000 - 580 - 280
    assert of(events, OrderUnknown) == []
