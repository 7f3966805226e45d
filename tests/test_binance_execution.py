"""BinanceExecution against tests/fake_binance.py on 127.0.0.1: order mapping, local filters, venue
errors, cancels, UNKNOWN outcomes resolved by query (never re-sent), and the reconciliation API.

Every test is bounded by ``anyio.fail_after``; fills come back both in the FULL reply and on the
user data stream, and each is published exactly once.
"""

from __future__ import annotations

from decimal import Decimal

import anyio
import pytest

from actors.messages import (
    BalancesChanged,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderUnknown,
    SubmitOrder,
    stamp,
)
from adapters.binance.http import BinanceHttpClient
from adapters.binance.orders import map_order
from adapters.binance.signing import CredentialsError
from tests.binance_exec_helpers import cancel, kinds, make_actor, of, running, submit, until
from tests.fake_binance import API_KEY, API_SECRET, open_fake_binance

pytestmark = pytest.mark.anyio


# --- mapping -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("side", "order_type", "stop", "expected"),
    [
        ("sell", "stop_market", "0.0030", "STOP_LOSS"),  # sell below the market: stop-loss
        ("sell", "stop_market", "0.0040", "TAKE_PROFIT"),
        ("buy", "stop_market", "0.0040", "STOP_LOSS"),  # buy above the market: stop-loss
        ("buy", "stop_market", "0.0030", "TAKE_PROFIT"),
        ("sell", "stop_limit", "0.0030", "STOP_LOSS_LIMIT"),
        ("buy", "stop_limit", "0.0030", "TAKE_PROFIT_LIMIT"),
    ],
)
def test_stop_orders_map_to_stop_loss_or_take_profit_by_side_vs_last_price(
    side: str, order_type: str, stop: str, expected: str
) -> None:
    msg = submit("c", side, order_type, price="0.0031" if order_type == "stop_limit" else None, stop=stop)  # type: ignore[arg-type]
    wire = map_order(msg, "LTCBTC", Decimal("0.0035"))
    assert (wire.type, wire.stopPrice, wire.newClientOrderId) == (expected, Decimal(stop), "c")
    assert wire.timeInForce == ("GTC" if order_type == "stop_limit" else None)


def test_market_limit_and_maker_mapping() -> None:
    assert map_order(submit("m", order_type="market", price=None), "LTCBTC", None).type == "MARKET"
    for tif, wire_tif in (("gtc", "GTC"), ("ioc", "IOC"), ("fok", "FOK")):
        wire = map_order(submit("l", tif=tif), "LTCBTC", None)  # type: ignore[arg-type]
        assert (wire.type, wire.timeInForce, wire.side) == ("LIMIT", wire_tif, "BUY")
    maker = map_order(submit("l"), "LTCBTC", None, limit_maker=True)
    assert (maker.type, maker.timeInForce) == ("LIMIT_MAKER", None)
    assert map_order(submit("l", tif="ioc"), "LTCBTC", None, limit_maker=True).type == "LIMIT"


# --- orders that go through ------------------------------------------------------------------------


async def test_market_order_is_accepted_and_filled_once_from_reply_and_stream() -> None:
    with anyio.fail_after(15):
        async with (
            open_fake_binance(
                market_price=Decimal("0.0036"),
                commission_rate=Decimal("0.001"),
                balances={"BTC": Decimal(1), "LTC": Decimal(10), "BNB": Decimal(1)},
            ) as fake,
            running(fake) as (actor, events),
        ):
            await actor.inbox.send(submit("mkt", "sell", "market", qty="2", price=None))
            await until(lambda: len(fake.user_events) >= 3 and actor.n["duplicate_fills"] >= 1)
            await until(lambda: bool(of(events, BalancesChanged)))

    assert kinds(events, "mkt") == ["OrderAccepted", "OrderFilled"]
    (fill,) = of(events, OrderFilled)
    assert (fill.side, fill.last_qty, fill.last_price, fill.cum_qty, fill.leaves_qty) == (
        "sell",
        Decimal("2"),
        Decimal("0.0036"),
        Decimal("2"),
        Decimal("0"),
    )
    assert (fill.fee, fill.fee_asset, fill.liquidity) == (Decimal("0.0000072"), "BNB", "taker")
    assert fake.order_requests("mkt") == 1
    assert fake.seen[-1].params["newClientOrderId"] == "mkt"
    balances = of(events, BalancesChanged)[-1]
    assert balances.symbol == "*" and balances.account == "main"
    assert balances.free == {"LTC": Decimal("8"), "BTC": Decimal("1.0072"), "BNB": Decimal("0.9999928")}


async def test_resting_limit_fills_in_parts_from_the_stream_as_maker() -> None:
    with anyio.fail_after(15):
        async with open_fake_binance() as fake, running(fake) as (actor, events):
            await actor.inbox.send(submit("lim", "buy", "limit", qty="3", price="0.003400"))
            await until(lambda: bool(of(events, OrderAccepted, "lim")))
            await fake.trade("LTCBTC", Decimal("0.0034"), Decimal("1"))
            await until(lambda: len(of(events, OrderFilled)) == 1)
            await fake.trade("LTCBTC", Decimal("0.0033"), Decimal("5"))
            await until(lambda: len(of(events, OrderFilled)) == 2)

    fills = of(events, OrderFilled)
    assert [(f.last_qty, f.cum_qty, f.leaves_qty, f.liquidity) for f in fills] == [
        (Decimal("1"), Decimal("1"), Decimal("2"), "maker"),
        (Decimal("2"), Decimal("3"), Decimal("0"), "maker"),
    ]
    assert all(f.last_price == Decimal("0.0034") for f in fills)
    assert len({f.trade_id for f in fills}) == 2
    assert kinds(events, "lim") == ["OrderAccepted", "OrderFilled", "OrderFilled"]


@pytest.mark.parametrize("tif", ["ioc", "fok"])
async def test_ioc_and_fok_that_do_not_cross_expire(tif: str) -> None:
    with anyio.fail_after(15):
        async with open_fake_binance() as fake, running(fake) as (actor, events):
            await actor.inbox.send(submit("x", "buy", "limit", qty="1", price="0.003000", tif=tif))  # type: ignore[arg-type]
            await until(lambda: bool(of(events, OrderExpired)))
            await anyio.sleep(0.1)  # the stream's EXPIRED too: published once

    assert kinds(events, "x") == ["OrderAccepted", "OrderExpired"]
    assert fake.seen[-1].params["timeInForce"] == tif.upper()


async def test_limit_maker_option_sends_limit_maker_and_a_would_take_order_is_rejected() -> None:
    with anyio.fail_after(15):
        async with open_fake_binance() as fake, running(fake, limit_maker=True) as (actor, events):
            await actor.inbox.send(submit("mk", "buy", "limit", price="0.003400"))
            await actor.inbox.send(submit("take", "buy", "limit", price="0.003600"))
            await until(lambda: bool(of(events, OrderRejected, "take")))

    assert [s.params.get("type") for s in fake.seen if s.method == "POST"] == ["LIMIT_MAKER", "LIMIT_MAKER"]
    assert kinds(events, "mk") == ["OrderAccepted"]
    (rejected,) = of(events, OrderRejected, "take")
    assert rejected.reason == "HTTP 400 code -2010: Order would immediately match and take."


async def test_stop_market_rests_and_triggers_when_the_venue_allows_stop_loss() -> None:
    with anyio.fail_after(15):
        async with (
            open_fake_binance(order_types_extra=frozenset({"STOP_LOSS", "TAKE_PROFIT"})) as fake,
            running(fake) as (actor, events),
        ):
            await actor.inbox.send(submit("sl", "sell", "stop_market", qty="1", price=None, stop="0.003000"))
            await until(lambda: bool(of(events, OrderAccepted, "sl")))
            assert not of(events, OrderFilled)
            await fake.trade("LTCBTC", Decimal("0.0029"))
            await until(lambda: bool(of(events, OrderFilled, "sl")))

    assert fake.orders["sl"]["type"] == "STOP_LOSS"
    (fill,) = of(events, OrderFilled)
    assert (fill.last_price, fill.leaves_qty, fill.liquidity) == (Decimal("0.0029"), Decimal("0"), "taker")


async def test_stop_market_rests_as_stop_loss_limit_where_the_symbol_has_no_stop_loss() -> None:
    """The recorded LTCBTC allows STOP_LOSS_LIMIT only: the stop rests there with its limit 0.5 %
    (the default band) below the trigger, floored to the tick; a gap through the limit leaves it
    resting (triggered), a trade back at the limit fills it."""
    with anyio.fail_after(15):
        async with open_fake_binance() as fake, running(fake) as (actor, events):
            await actor.inbox.send(submit("sl", "sell", "stop_market", qty="1", price=None, stop="0.003001"))
            await until(lambda: bool(of(events, OrderAccepted, "sl")))
            resting = dict(fake.orders["sl"])
            await fake.trade("LTCBTC", Decimal("0.0029"))
            await anyio.sleep(0.1)
            assert not of(events, OrderFilled) and fake.orders["sl"]["status"] == "NEW"
            await fake.trade("LTCBTC", Decimal("0.002990"))
            await until(lambda: bool(of(events, OrderFilled, "sl")))

    assert (resting["type"], resting["timeInForce"]) == ("STOP_LOSS_LIMIT", "GTC")
    levels = (Decimal(resting["stopPrice"]), Decimal(resting["price"]))
    assert levels == (Decimal("0.003001"), Decimal("0.002985"))
    assert [s.params.get("type") for s in fake.seen if s.method == "POST"] == ["STOP_LOSS_LIMIT"]
    (fill,) = of(events, OrderFilled)
    assert (fill.last_price, fill.leaves_qty) == (Decimal("0.002985"), Decimal("0"))


# --- refusals -----------------------------------------------------------------------------------


async def test_filters_reject_before_sending_and_name_the_filter() -> None:
    with anyio.fail_after(15):
        async with open_fake_binance() as fake, running(fake) as (actor, events):
            await actor.inbox.send(submit("tiny", qty="0.001", price="0.003500"))
            await actor.inbox.send(submit("take", "sell", "stop_market", price=None, stop="0.0040"))
            await actor.inbox.send(submit("lots", qty="1.0005"))
            await until(lambda: len(of(events, OrderRejected)) == 3)

    reasons = {e.client_order_id: e.reason for e in of(events, OrderRejected)}
    assert reasons == {
        "tiny": "MIN_NOTIONAL: notional 0.0000035 is below minNotional 0.00010000",
        "take": "ORDER_TYPES: TAKE_PROFIT orders are not allowed on LTCBTC",
        "lots": "LOT_SIZE: quantity 1.0005 is not a multiple of stepSize 0.00100000",
    }
    assert all(fake.order_requests(cid) == 0 for cid in reasons)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        ((400, -1013, "Filter failure: PERCENT_PRICE"), "HTTP 400 code -1013: Filter failure: PERCENT_PRICE"),
        ((400, -1111, "Precision is over the maximum defined for this asset."), "HTTP 400 code -1111: "),
        ((400, -1102, "Mandatory parameter 'price' was not sent."), "HTTP 400 code -1102: Mandatory"),
        (
            (400, -2010, "Account has insufficient balance for requested action."),
            "HTTP 400 code -2010: Account has insufficient balance for requested action.",
        ),
        ((400, -2010, "Duplicate order sent."), "duplicate client order id: HTTP 400 code -2010: Duplicate"),
    ],
)
async def test_venue_refusals_are_rejections_with_code_and_message(
    error: tuple[int, int, str], reason: str
) -> None:
    with anyio.fail_after(15):
        async with open_fake_binance() as fake, running(fake) as (actor, events):
            fake.next_order_error = error
            await actor.inbox.send(submit("r"))
            await until(lambda: bool(of(events, OrderRejected)))

    (rejected,) = of(events, OrderRejected)
    assert rejected.reason.startswith(reason)
    assert kinds(events, "r") == ["OrderRejected"] and fake.order_requests("r") == 1


async def test_a_client_id_already_open_at_the_venue_is_rejected_as_duplicate() -> None:
    with anyio.fail_after(15):
        async with open_fake_binance() as fake, running(fake) as (actor, events):
            async with BinanceHttpClient(fake.url, API_KEY, API_SECRET) as other:  # an earlier life
                from tests.test_binance_http import limit_order

                await other.new_order(limit_order("dup", price="0.003300"))
            await actor.inbox.send(submit("dup"))
            await actor.inbox.send(submit("dup"))  # and this process never sends an id twice
            await until(lambda: len(of(events, OrderRejected)) == 2)

    # commands overlap: the local refusal may come before the venue's answer to the first
    venue, local = sorted(of(events, OrderRejected), key=lambda e: "-2010" not in e.reason)
    assert "duplicate" in venue.reason and "-2010" in venue.reason
    assert local.reason == "duplicate client order id: already sent"
    assert fake.order_requests("dup") == 2  # the earlier life's and ours


async def test_banned_order_is_rejected_unsent() -> None:
    with anyio.fail_after(15):
        async with open_fake_binance() as fake, running(fake) as (actor, events):
            fake.fail_next("418", retry_after=5)
            await actor.inbox.send(submit("b1"))
            await until(lambda: len(of(events, OrderRejected)) == 1)  # the ban is known from here on
            await actor.inbox.send(submit("b2"))
            await until(lambda: len(of(events, OrderRejected)) == 2)

    reasons = [e.reason for e in of(events, OrderRejected)]
    assert reasons[0].startswith("HTTP 418 code -1003: IP banned")
    assert reasons[1].startswith("IP banned for another") and fake.order_requests("b2") == 0


async def test_429_is_retried_after_retry_after_and_the_order_goes_through() -> None:
    with anyio.fail_after(15):
        async with open_fake_binance() as fake, running(fake) as (actor, events):
            fake.fail_next("429", path="/api/v3/order", retry_after=1)
            await actor.inbox.send(submit("rl"))
            await until(lambda: bool(of(events, OrderAccepted, "rl")))

    assert fake.order_requests("rl") == 2 and [s.status for s in fake.seen if s.method == "POST"] == [
        429,
        200,
    ]


# --- cancels ---------------------------------------------------------------------------------------


async def test_cancel_is_published_once_and_a_refused_cancel_is_a_request_rejection() -> None:
    with anyio.fail_after(15):
        async with open_fake_binance() as fake, running(fake) as (actor, events):
            await actor.inbox.send(submit("c1"))
            await until(lambda: bool(of(events, OrderAccepted, "c1")))
            await actor.inbox.send(cancel("c1"))
            await until(lambda: bool(of(events, OrderCanceled, "c1")))
            await actor.inbox.send(cancel("c1"))
            await actor.inbox.send(cancel("never"))
            await until(lambda: len(of(events, OrderRejected)) == 2)
            await anyio.sleep(0.1)

    assert kinds(events, "c1") == ["OrderAccepted", "OrderCanceled", "OrderRejected"]
    reasons = [e.reason for e in of(events, OrderRejected)]
    assert reasons == ["cancel rejected: HTTP 400 code -2011: Unknown order sent."] * 2
    assert of(events, OrderCanceled)[0].venue_order_id == str(fake.orders["c1"]["orderId"])


# --- UNKNOWN outcomes --------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["500", "hang", "disconnect"])
async def test_unknown_outcome_of_a_placed_order_resolves_to_accepted_without_resending(fault: str) -> None:
    with anyio.fail_after(15):
        async with open_fake_binance(hang_s=3) as fake, running(fake, timeout_s=0.5) as (actor, events):
            fake.mute_user_stream = True  # only the query can tell
            fake.fail_next(fault, path="/api/v3/order")  # type: ignore[arg-type]
            await actor.inbox.send(submit("u1"))
            await until(lambda: actor.n["resolved"] == 1)

    assert kinds(events, "u1") == ["OrderUnknown", "OrderAccepted"]
    assert fake.order_requests("u1") == 1
    (unknown,) = of(events, OrderUnknown)
    assert unknown.reason.startswith("POST /api/v3/order u1: outcome unknown:")


async def test_unknown_outcome_already_answered_by_the_stream_is_not_reported_unknown() -> None:
    with anyio.fail_after(15):
        async with open_fake_binance(hang_s=3) as fake, running(fake, timeout_s=0.5) as (actor, events):
            fake.fail_next("hang", path="/api/v3/order")
            await actor.inbox.send(submit("u0"))
            await until(lambda: actor.n["resolved"] == 1)

    assert kinds(events, "u0") == ["OrderAccepted"]  # NEW came on the stream while the request hung
    assert fake.order_requests("u0") == 1 and actor.n["unknown"] == 1


async def test_unknown_market_order_resolves_to_its_fill_exactly_once() -> None:
    with anyio.fail_after(15):
        async with open_fake_binance() as fake, running(fake) as (actor, events):
            fake.mute_user_stream = True
            fake.fail_next("500", path="/api/v3/order")
            await actor.inbox.send(submit("u2", "sell", "market", qty="2", price=None))
            await until(lambda: actor.n["resolved"] == 1)
            await anyio.sleep(0.1)

    assert kinds(events, "u2") == ["OrderUnknown", "OrderAccepted", "OrderFilled"]
    (fill,) = of(events, OrderFilled)
    assert (fill.last_qty, fill.leaves_qty) == (Decimal("2"), Decimal("0"))
    assert fake.order_requests("u2") == 1


async def test_unknown_outcome_of_an_order_never_placed_resolves_to_not_found_after_its_window() -> None:
    with anyio.fail_after(15):
        async with open_fake_binance() as fake, running(fake, recv_window_ms=300) as (actor, events):
            fake.fail_next("500-unprocessed", path="/api/v3/order")
            fake.fail_next("500-unprocessed", path="/api/v3/order")  # and the first query fails too
            await actor.inbox.send(submit("u3"))
            await until(lambda: bool(of(events, OrderRejected, "u3")))

    assert kinds(events, "u3") == ["OrderUnknown", "OrderRejected"]
    (rejected,) = of(events, OrderRejected)
    assert rejected.reason.startswith("not found at venue: POST /api/v3/order u3: outcome unknown: HTTP 500")
    assert fake.order_requests("u3") == 1 and "u3" not in fake.orders
    queries = [s.status for s in fake.seen if s.method == "GET" and s.path == "/api/v3/order"]
    assert queries[0] == 500 and set(queries[1:]) == {400}


# --- reconciliation API --------------------------------------------------------------------------


async def test_reconciliation_api_reports_the_venue_truth() -> None:
    with anyio.fail_after(15):
        async with open_fake_binance() as fake, running(fake) as (actor, events):
            since = fake.now_ms() - 1000
            await actor.inbox.send(submit("open", qty="2"))
            await actor.inbox.send(submit("mkt", "sell", "market", qty="1", price=None))
            await until(
                lambda: bool(of(events, OrderFilled, "mkt")) and bool(of(events, OrderAccepted, "open"))
            )
            opens = await actor.open_orders()
            status = await actor.order_status("mkt")
            missing = await actor.order_status("nope")
            fills = await actor.recent_fills(since)
            balances = await actor.balances()

    assert [(o.client_order_id, o.status, o.quantity, o.side) for o in opens] == [
        ("open", "NEW", Decimal("2"), "buy")
    ]
    assert status is not None and (status.status, status.filled, status.venue_type) == (
        "FILLED",
        Decimal(1),
        "MARKET",
    )
    assert missing is None
    assert [(f.client_order_id, f.last_qty, f.cum_qty, f.leaves_qty, f.side) for f in fills] == [
        ("mkt", Decimal("1"), Decimal("1"), Decimal("0"), "sell")
    ]
    assert fills[0].trade_id == of(events, OrderFilled)[0].trade_id
    assert balances.free["LTC"] == Decimal("9") and balances.account == "main"


async def test_reconcile_brings_journal_orders_up_to_the_venue_truth() -> None:
    from actors.messages import OrderIntent
    from actors.order import OrderRecord

    def record(
        cid: str, qty: str, venue_id: str = "", cum: str = "0", trades: tuple[str, ...] = ()
    ) -> OrderRecord:
        intent = OrderIntent(
            **stamp("binance", "LTC/BTC", 1), intent_id=cid, source="t", side="buy", order_type="limit",
            quantity=Decimal(qty), price=Decimal("0.0034"),
        )  # fmt: skip
        rec = OrderRecord(cid, intent, Decimal(qty))
        rec.venue_order_id, rec.cum_qty, rec.trade_ids = venue_id, Decimal(cum), set(trades)
        return rec

    with anyio.fail_after(15):
        async with open_fake_binance() as fake:
            async with BinanceHttpClient(fake.url, API_KEY, API_SECRET) as before:  # the previous life
                from tests.test_binance_http import limit_order

                await before.new_order(limit_order("r1", price="0.003400", qty="3"))
                await before.new_order(limit_order("r2", price="0.003300"))
                await fake.trade("LTCBTC", Decimal("0.0034"), Decimal("1"))  # journaled before the crash
                known = str(fake.trades[-1]["id"])
                await fake.trade("LTCBTC", Decimal("0.0034"), Decimal("1"))  # while the daemon was down
                await before.cancel_order("LTCBTC", "r2")
            actor, events = make_actor(fake, recv_window_ms=300)
            r1 = record("r1", "3", str(fake.orders["r1"]["orderId"]), "1", (known,))
            out = await actor.reconcile([r1, record("r2", "1"), record("r3", "1")])
            await actor.aclose()

    assert events == []  # returned, not published
    assert [type(m).__name__ + ":" + getattr(m, "client_order_id", "") for m in out] == [
        "OrderFilled:r1",
        "OrderAccepted:r2",
        "OrderCanceled:r2",
        "OrderRejected:r3",
    ]
    fill = out[0]
    assert isinstance(fill, OrderFilled) and (fill.last_qty, fill.cum_qty, fill.leaves_qty) == (
        Decimal("1"),
        Decimal("2"),
        Decimal("1"),
    )
    rejected = out[3]
    assert isinstance(rejected, OrderRejected) and rejected.reason.startswith("not found at venue")


def test_missing_credentials_name_the_variable() -> None:
    from adapters.binance.credentials import credentials_for
    from daemon.config_schema import BinanceAccount

    cfg = BinanceAccount(api_key_env="MY_KEY", secret_env="MY_SECRET")
    with pytest.raises(
        CredentialsError, match=r"^environment variable MY_KEY \(the Binance API key\) is not set$"
    ):
        credentials_for(cfg, {})
    with pytest.raises(CredentialsError, match=r"MY_SECRET \(the Binance hmac secret\) is not set"):
        credentials_for(cfg, {"MY_KEY": "tk-91f3c2"})
    assert credentials_for(cfg, {"MY_KEY": "tk-91f3c2", "MY_SECRET": "ts-5b8e0d"}).api_key == "tk-91f3c2"


def test_submit_helper_types() -> None:
    assert isinstance(submit("x"), SubmitOrder)


async def test_exchange_info_is_refreshed_and_a_failed_refresh_keeps_the_rules() -> None:
    with anyio.fail_after(15):
        async with open_fake_binance() as fake, running(fake, exchange_info_refresh_s=0.1) as (actor, events):
            while actor.rules is None:
                await anyio.sleep(0.01)
            assert actor.rules.status == "TRADING"
            fake.fail_next("500", path="/api/v3/exchangeInfo")  # one refresh fails: the rules stay
            symbols = [
                s | {"status": "BREAK"} if s["symbol"] == "LTCBTC" else s for s in fake._info["symbols"]
            ]
            fake._info = fake._info | {"symbols": symbols}  # the venue halts the symbol
            while actor.rules.status != "BREAK":
                await anyio.sleep(0.02)
            assert actor.n["rules_refreshes"] >= 1
            await actor.inbox.send(submit("halted-1"))
            while not any(isinstance(e, OrderRejected) for e in events):
                await anyio.sleep(0.02)
    rejected = next(e for e in events if isinstance(e, OrderRejected))
    assert rejected.reason.startswith("STATUS") and fake.order_requests("halted-1") == 0


@pytest.mark.parametrize("bad", ["NaN", "-0.001", "Infinity"])
async def test_hostile_exchange_info_filters_never_leave_an_order_unanswered(bad: str) -> None:
    with anyio.fail_after(15):
        async with open_fake_binance() as fake:
            symbols = []
            for sym in fake._info["symbols"]:
                if sym["symbol"] == "LTCBTC":
                    filters = [
                        f | {"tickSize": bad} if f["filterType"] == "PRICE_FILTER" else f
                        for f in sym["filters"]
                    ]
                    sym = sym | {"filters": filters}
                symbols.append(sym)
            fake._info = fake._info | {"symbols": symbols}
            async with running(fake) as (actor, events):
                await actor.inbox.send(submit("hostile-1"))
                await until(lambda: bool(of(events, OrderRejected)))
    (rejected,) = of(events, OrderRejected)
    assert rejected.reason.startswith("not sent: no exchangeInfo") and "tickSize" in rejected.reason
    assert fake.order_requests("hostile-1") == 0
