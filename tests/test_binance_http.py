"""BinanceHttpClient against tests/fake_binance.py on 127.0.0.1: signing, clock, limits, errors, unknowns.

Every test is bounded by ``anyio.fail_after``; the few real waits (Retry-After, a ban, a window
boundary) are one or two seconds, set up through the fake's clock.
"""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import aiohttp
import anyio
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.binance.filters import BinanceNewOrder
from adapters.binance.http import (
    BinanceBadReply,
    BinanceBanned,
    BinanceCancelReplaceFailed,
    BinanceHttpClient,
    BinanceOrderRejected,
    BinanceParameterError,
    BinanceServerError,
    BinanceSignatureError,
    BinanceTimestampError,
    BinanceUnknownOrder,
    OutcomeUnknown,
    RateLimiter,
)
from adapters.binance.schemas import BinanceRateLimit
from adapters.binance.signing import Ed25519Signer
from tests.fake_binance import API_KEY, API_SECRET, FakeBinance, Fault, open_fake_binance

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def client_for(
    fake: FakeBinance, secret: Any = API_SECRET, **options: Any
) -> AsyncIterator[BinanceHttpClient]:
    async with BinanceHttpClient(fake.url, options.pop("api_key", API_KEY), secret, **options) as client:
        yield client


def limit_order(cid: str = "cid-1", price: str = "0.003500", qty: str = "1.000") -> BinanceNewOrder:
    return BinanceNewOrder(
        symbol="LTCBTC",
        side="BUY",
        type="LIMIT",
        quantity=Decimal(qty),
        price=Decimal(price),
        timeInForce="GTC",
        newClientOrderId=cid,
    )


def market_order(cid: str = "cid-m") -> BinanceNewOrder:
    return BinanceNewOrder(
        symbol="LTCBTC", side="SELL", type="MARKET", quantity=Decimal("2"), newClientOrderId=cid
    )


# --- signing ------------------------------------------------------------------------------------


async def test_signed_limit_order_is_accepted_and_rests() -> None:
    with anyio.fail_after(10):
        async with open_fake_binance() as fake, client_for(fake) as client:
            reply = await client.new_order(limit_order())

    assert (reply.clientOrderId, reply.status, reply.price, reply.origQty) == (
        "cid-1",
        "NEW",
        Decimal("0.0035"),
        Decimal("1"),
    )
    assert fake.order_requests("cid-1") == 1
    assert fake.statuses() == [200, 200]  # GET /api/v3/time, POST /api/v3/order


async def test_market_order_fills_at_once_and_shows_in_my_trades() -> None:
    with anyio.fail_after(10):
        async with open_fake_binance(market_price=Decimal("0.0036")) as fake, client_for(fake) as client:
            reply = await client.new_order(market_order())
            trades = await client.my_trades("LTCBTC", order_id=reply.orderId)

    assert (reply.status, reply.executedQty, [f.price for f in reply.fills]) == (
        "FILLED",
        Decimal("2"),
        [Decimal("0.0036")],
    )
    assert [(t.orderId, t.qty, t.isBuyer) for t in trades] == [(reply.orderId, Decimal("2"), False)]


async def test_ed25519_signed_order_is_accepted() -> None:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with anyio.fail_after(10):
        async with (
            open_fake_binance(hmac_keys={}, ed25519_keys={"ed-key": key.public_key()}) as fake,
            client_for(fake, Ed25519Signer(pem), api_key="ed-key") as client,
        ):
            reply = await client.new_order(limit_order())

    assert reply.status == "NEW"
    assert base64.b64decode(fake.seen[-1].params["signature"])  # the base64 survived the query string


async def test_bad_secret_is_a_typed_signature_error() -> None:
    with anyio.fail_after(10):
        async with open_fake_binance() as fake, client_for(fake, "not-the-secret") as client:
            with pytest.raises(
                BinanceSignatureError,
                match=r"^HTTP 400 code -1022: Signature for this request is not valid\.$",
            ):
                await client.new_order(limit_order())

    assert fake.orders == {}
    assert fake.order_requests("cid-1") == 1  # a signature error is not retried


# --- clock --------------------------------------------------------------------------------------


async def test_clock_skew_resyncs_and_retries_once() -> None:
    with anyio.fail_after(10):
        async with open_fake_binance() as fake, client_for(fake) as client:
            await client.sync_time()
            fake.skew_ms = 10_000  # the venue's clock jumps: our timestamps are now 10 s old

            reply = await client.new_order(limit_order())

    assert reply.status == "NEW"
    assert fake.statuses() == [200, 400, 200, 200]  # time, -1021, time (resync), order
    assert fake.order_requests("cid-1") == 2 and len(fake.orders) == 1
    assert client.statistics().clock_syncs == 2
    assert abs(client.statistics().clock_offset_ms - 10_000) < 500


async def test_clock_error_that_a_resync_cannot_fix_raises_after_one_retry() -> None:
    with anyio.fail_after(10):
        async with open_fake_binance(time_lie_ms=-20_000) as fake, client_for(fake) as client:
            with pytest.raises(
                BinanceTimestampError,
                match=r"^HTTP 400 code -1021: Timestamp for this request is outside of the recvWindow\.$",
            ):
                await client.account()

    assert [s.path for s in fake.seen].count("/api/v3/account") == 2


async def test_clock_is_refreshed_after_the_sync_interval() -> None:
    with anyio.fail_after(10):
        async with open_fake_binance() as fake, client_for(fake, time_sync_interval_s=0.0) as client:
            for _ in range(3):
                await client.account()

    assert [s.path for s in fake.seen] == ["/api/v3/time", "/api/v3/account"] * 3


# --- rate limits --------------------------------------------------------------------------------


def _skew_to_minute_end(fake: FakeBinance, seconds_left: float) -> None:
    """Move the fake's clock so its current minute ends ``seconds_left`` from now."""
    wall = int(time.time() * 1000)
    fake.skew_ms = (wall - wall % 60_000 + 60_000 - int(seconds_left * 1000)) - wall


async def test_client_throttles_before_the_weight_limit_and_never_sees_429() -> None:
    with anyio.fail_after(15):
        async with open_fake_binance(weight_limit=40) as fake, client_for(fake) as client:
            _skew_to_minute_end(fake, 1.5)
            await client.sync_time()  # weight 1
            await client.exchange_info()  # weight 20; the limit becomes 40
            started = time.monotonic()
            for _ in range(5):  # weight 6 each: the fourth would make 45 > 40
                await client.open_orders("LTCBTC")
            waited = time.monotonic() - started

    assert 429 not in fake.statuses() and 418 not in fake.statuses()
    assert client.statistics().throttled == 1
    assert 0.8 < waited < 5.0


async def test_weight_used_by_others_on_the_ip_is_learnt_from_the_header() -> None:
    with anyio.fail_after(15):
        async with open_fake_binance(weight_limit=40) as fake, client_for(fake) as client:
            _skew_to_minute_end(fake, 1.5)
            await client.sync_time()
            await client.exchange_info()  # 21 used, all by us
            fake.add_foreign_weight(12)  # 33: another process on this IP
            await client.open_orders("LTCBTC")  # 39, says the header (we alone count 27)
            assert client.statistics().used_weight == 39
            await client.open_orders("LTCBTC")  # 45 > 40: must wait for the next minute

    assert 429 not in fake.statuses()
    assert client.statistics().throttled == 1


async def test_exchange_info_rate_limits_configure_the_limiter() -> None:
    with anyio.fail_after(10):
        async with open_fake_binance() as fake, client_for(fake) as client:
            info = await client.exchange_info()

    limits = {(w.kind, w.length_ms): w.limit for w in client.limiter.windows}
    assert info.rateLimits[0] == BinanceRateLimit("REQUEST_WEIGHT", "MINUTE", 1, 1200)
    assert limits == {
        ("REQUEST_WEIGHT", 60_000): 1200,
        ("ORDERS", 10_000): 50,
        ("ORDERS", 86_400_000): 160000,
        ("RAW_REQUESTS", 300_000): 6100,
    }
    assert client.statistics().used_weight == 20


async def test_forced_429_honours_retry_after_then_succeeds() -> None:
    with anyio.fail_after(10):
        async with open_fake_binance() as fake, client_for(fake) as client:
            await client.sync_time()
            fake.fail_next("429", path="/api/v3/account", retry_after=1)
            started = time.monotonic()

            account = await client.account()
            waited = time.monotonic() - started

    assert [b.asset for b in account.balances] == ["BTC", "LTC"]
    assert fake.statuses() == [200, 429, 200]  # no 418: the retry came after Retry-After
    assert waited >= 0.95
    assert client.statistics().rate_limited == 1


async def test_fake_server_bans_a_client_that_ignores_429() -> None:
    with anyio.fail_after(10):
        async with open_fake_binance(weight_limit=2, ban_s=3) as fake, aiohttp.ClientSession() as session:
            _skew_to_minute_end(fake, 30)
            replies = []
            for _ in range(4):
                async with session.get(f"{fake.url}/api/v3/time") as resp:
                    replies.append((resp.status, resp.headers.get("Retry-After")))

    assert replies[:2] == [(200, None), (200, None)]
    assert replies[2][0] == 429 and replies[2][1] in ("30", "31")
    assert replies[3] == (418, "3")


async def test_418_stops_every_request_until_the_ban_ends() -> None:
    with anyio.fail_after(10):
        async with open_fake_binance() as fake, client_for(fake) as client:
            await client.sync_time()
            fake.fail_next("418", retry_after=1)
            with pytest.raises(BinanceBanned, match=r"^HTTP 418 code -1003: IP banned$"):
                await client.account()
            seen = len(fake.seen)

            with pytest.raises(BinanceBanned, match=r"^IP banned for another \d\.\ds: request not sent$"):
                await client.depth("LTCBTC")
            with pytest.raises(BinanceBanned):
                await client.new_order(limit_order())
            assert len(fake.seen) == seen  # nothing left the client during the ban

            await anyio.sleep(1.1)
            depth = await client.depth("LTCBTC")

    assert depth.bids == [] and client.statistics().bans == 1
    assert fake.order_requests("cid-1") == 0


# --- orders whose outcome is unknown ------------------------------------------------------------


@pytest.mark.parametrize("fault", ["500", "html", "hang", "disconnect", "garbage"])
async def test_lost_new_order_reply_is_outcome_unknown_and_resolves_without_resending(fault: Fault) -> None:
    with anyio.fail_after(10):
        async with open_fake_binance() as fake, client_for(fake, timeout_s=0.5) as client:
            fake.fail_next(fault, path="/api/v3/order")
            with pytest.raises(OutcomeUnknown) as caught:
                await client.new_order(limit_order("cid-u"))

            found = await client.resolve_unknown("LTCBTC", "cid-u", deadline_ms=caught.value.deadline_ms)

    assert (caught.value.symbol, caught.value.client_order_id) == ("LTCBTC", "cid-u")
    assert found is not None and (found.clientOrderId, found.status) == ("cid-u", "NEW")
    assert fake.order_requests("cid-u") == 1


async def test_unprocessed_order_resolves_to_not_found_only_after_its_recv_window() -> None:
    with anyio.fail_after(10):
        async with open_fake_binance() as fake, client_for(fake, recv_window_ms=300) as client:
            fake.fail_next("500-unprocessed", path="/api/v3/order")
            with pytest.raises(
                OutcomeUnknown, match=r"^POST /api/v3/order cid-x: outcome unknown: HTTP 500 code -1000: "
            ):
                await client.new_order(limit_order("cid-x"))
            deadline = client.now_ms() + 300

            found = await client.resolve_unknown("LTCBTC", "cid-x", deadline_ms=deadline)
            resolved_at = client.now_ms()

    assert found is None
    assert resolved_at >= deadline
    assert fake.order_requests("cid-x") == 1 and "cid-x" not in fake.orders


# --- typed errors and hostile replies ------------------------------------------------------------


async def test_venue_rejections_are_typed_and_not_retried() -> None:
    with anyio.fail_after(10):
        async with open_fake_binance() as fake, client_for(fake) as client:
            with pytest.raises(
                BinanceParameterError, match=r"^HTTP 400 code -1013: Filter failure: PRICE_FILTER$"
            ):
                await client.new_order(limit_order("cid-t", price="0.0035001"))
            with pytest.raises(BinanceUnknownOrder, match=r"^HTTP 400 code -2011: Unknown order sent\.$"):
                await client.cancel_order("LTCBTC", "nope")
            with pytest.raises(BinanceUnknownOrder, match=r"^HTTP 400 code -2013: Order does not exist\.$"):
                await client.query_order("LTCBTC", "nope")
            fake.reject_orders = "Account has insufficient balance for requested action."
            with pytest.raises(
                BinanceOrderRejected,
                match=r"^HTTP 400 code -2010: Account has insufficient balance for requested action\.$",
            ):
                await client.new_order(limit_order("cid-b"))

    assert fake.order_requests("cid-t") == 1 and fake.order_requests("cid-b") == 1


@pytest.mark.parametrize(
    ("fault", "error", "message"),
    [
        (
            "garbage",
            BinanceBadReply,
            r"^HTTP 200 on /api/v3/account: unreadable reply \(Input data was truncated\)$",
        ),
        (
            "wrong-json",
            BinanceBadReply,
            r"^HTTP 200 on /api/v3/account: unreadable reply \(Expected `object`, got `array`\)$",
        ),
        ("html", BinanceServerError, r"^HTTP 502: <html><head><title>502 Bad Gateway</title>"),
        ("500", BinanceServerError, r"^HTTP 500: <html>"),
    ],
)
async def test_hostile_replies_become_typed_errors(
    fault: Fault, error: type[Exception], message: str
) -> None:
    with anyio.fail_after(10):
        async with open_fake_binance() as fake, client_for(fake) as client:
            fake.fail_next(fault, path="/api/v3/account")
            with pytest.raises(error, match=message):
                await client.account()
            account = await client.account()  # and the client carries on

    assert account.canTrade


async def test_unknown_fields_in_every_reply_are_ignored() -> None:
    with anyio.fail_after(10):
        async with open_fake_binance(extra_fields=True) as fake, client_for(fake) as client:
            placed = await client.new_order(limit_order("cid-e"))
            queried = await client.query_order("LTCBTC", "cid-e")
            account = await client.account()
            info = await client.exchange_info()

    assert placed.orderId == queried.orderId and account.balances and info.symbols


# --- the rest of the endpoints --------------------------------------------------------------------


async def test_cancel_replace_swaps_orders_and_reports_a_failed_cancel() -> None:
    with anyio.fail_after(10):
        async with open_fake_binance() as fake, client_for(fake) as client:
            await client.new_order(limit_order("old"))
            swapped = await client.cancel_replace("old", limit_order("new", price="0.003400"))
            with pytest.raises(BinanceCancelReplaceFailed, match=r"^HTTP 400 code -2022: ") as failed:
                await client.cancel_replace("old", limit_order("newer"))
            open_orders = await client.open_orders("LTCBTC")
            depth = await client.depth("LTCBTC")

    assert (swapped.cancelResult, swapped.newOrderResult) == ("SUCCESS", "SUCCESS")
    assert swapped.newOrderResponse is not None and swapped.newOrderResponse.clientOrderId == "new"
    assert failed.value.data is not None and failed.value.data["newOrderResult"] == "NOT_ATTEMPTED"
    assert [o.clientOrderId for o in open_orders] == ["new"]
    assert depth.bids == [(Decimal("0.0034"), Decimal("1"))]
    assert fake.order_requests("newer") == 1


async def test_cancel_order_returns_the_canceled_order() -> None:
    with anyio.fail_after(10):
        async with open_fake_binance() as fake, client_for(fake) as client:
            await client.new_order(limit_order("c-1"))
            canceled = await client.cancel_order("LTCBTC", "c-1")

    assert (canceled.origClientOrderId, canceled.status) == ("c-1", "CANCELED")
    assert fake.orders["c-1"]["status"] == "CANCELED"


# --- the limiter on a fake clock ----------------------------------------------------------------

LIMITS = (
    BinanceRateLimit("REQUEST_WEIGHT", "MINUTE", 1, 10),
    BinanceRateLimit("ORDERS", "SECOND", 10, 2),
    BinanceRateLimit("RAW_REQUESTS", "MINUTE", 5, 100),
)
T0 = 1_700_000_020_000  # 40 s into a minute, server time


def test_limiter_waits_for_the_next_window_when_a_request_would_exceed_the_weight() -> None:
    limiter = RateLimiter(LIMITS, margin_ms=250)
    limiter.acquire(8, 0, T0)

    assert limiter.delay_ms(2, 0, T0) == 0
    assert limiter.delay_ms(3, 0, T0) == 20_000 + 250  # the minute ends 20 s later
    assert limiter.delay_ms(3, 0, T0 + 20_000) == 0  # a new window


def test_limiter_counts_orders_only_for_orders() -> None:
    limiter = RateLimiter(LIMITS, margin_ms=0)
    limiter.acquire(1, 1, T0)
    limiter.acquire(1, 1, T0 + 1)

    assert limiter.delay_ms(1, 0, T0 + 2) == 0
    assert limiter.delay_ms(1, 1, T0 + 2) == 10_000 - 2  # T0 is on a 10-second boundary
    assert limiter.used("ORDERS") == 2 and limiter.used("RAW_REQUESTS") == 2


def test_limiter_takes_venue_headers_as_a_floor() -> None:
    limiter = RateLimiter(LIMITS)
    limiter.acquire(3, 0, T0)

    limiter.observe({"x-mbx-used-weight-1m": "9", "x-mbx-order-count-10s": "2"}, T0)
    assert (limiter.used(), limiter.used("ORDERS")) == (9, 2)
    limiter.observe({"x-mbx-used-weight-1m": "4"}, T0)  # an older reply: never lowers the count
    assert limiter.used() == 9


def test_limiter_keeps_counts_when_limits_are_reconfigured() -> None:
    limiter = RateLimiter(LIMITS)
    limiter.acquire(7, 0, T0)

    limiter.configure([BinanceRateLimit("REQUEST_WEIGHT", "MINUTE", 1, 8)])

    assert limiter.used() == 7 and limiter.delay_ms(2, 0, T0) > 0
