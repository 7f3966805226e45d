"""OkxHttpClient against tests/fake_okx_venue.py on 127.0.0.1: signing, clock, limits, errors, unknowns.

The fake checks every signature, passphrase, key, environment header and timestamp the way OKX does
and meters each endpoint; each test is bounded by ``anyio.fail_after``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import anyio
import pytest

from adapters.okx.errors import (
    OkxAuthError,
    OkxCancelRefused,
    OkxOrderRejected,
    OkxOutcomeUnknown,
    OkxServerError,
    OkxTimestampError,
    OkxUnknownOrder,
    error_for,
)
from adapters.okx.http import OkxHttpClient
from adapters.okx.orders import OkxNewAlgo, OkxNewOrder
from adapters.okx.ratelimit import OkxRateLimiter, Rule
from adapters.okx.signing import OkxCredentials, OkxSigner, auth_headers, iso_timestamp, login_args
from tests.fake_okx_venue import API_KEY, API_SECRET, PASSPHRASE, FakeOkxVenue, open_fake_okx_venue

pytestmark = pytest.mark.anyio
INST = "BTC-USDT"
PRICES = {INST: Decimal("30000")}
DOC_SECRET = "22582BD0CFF14C41EDBF1AB98506286D"  # the secret of OKX's signing example


def creds(key: str = API_KEY, secret: str = API_SECRET, passphrase: str = PASSPHRASE) -> OkxCredentials:
    return OkxCredentials(key, OkxSigner(secret), passphrase)


@asynccontextmanager
async def client_for(
    venue: FakeOkxVenue, credentials: OkxCredentials | None = None, **options: Any
) -> AsyncIterator[OkxHttpClient]:
    options.setdefault("limiter", OkxRateLimiter())
    async with OkxHttpClient(venue.url, credentials or creds(), **options) as client:
        yield client


def limit(cid: str, px: str = "29000", sz: str = "0.001", side: str = "buy") -> OkxNewOrder:
    return OkxNewOrder(instId=INST, side=side, ordType="limit", sz=sz, clOrdId=cid, px=px)


# --- signing ------------------------------------------------------------------------------------


def test_signature_matches_an_independent_hmac_sha256_base64() -> None:
    # Expected values computed with `openssl dgst -sha256 -hmac <secret> -binary | base64`.
    c = OkxCredentials("key-0001", OkxSigner(DOC_SECRET), "phrase-0001")
    stamp_ms = 1607418537715
    assert iso_timestamp(stamp_ms) == "2020-12-08T09:08:57.715Z"
    get = auth_headers(c, stamp_ms, "GET", "/api/v5/account/balance?ccy=BTC")
    assert get["OK-ACCESS-SIGN"] == "HiZhvSfMtWJA3uUIVXV3a/bSXNPCWvYFXoGCVS8V4zY="
    assert get["OK-ACCESS-TIMESTAMP"] == "2020-12-08T09:08:57.715Z"
    assert get["OK-ACCESS-KEY"] == "key-0001" and get["OK-ACCESS-PASSPHRASE"] == "phrase-0001"
    body = (
        '{"instId":"BTC-USDT","tdMode":"cash","side":"buy","ordType":"limit","sz":"0.001",'
        '"clOrdId":"tdabc","px":"30000"}'
    )
    post = auth_headers(c, stamp_ms, "post", "/api/v5/trade/order", body)
    assert post["OK-ACCESS-SIGN"] == "pM7GCp66Ez8Wkhj/FpsaQCBLh0F9f7ahT27woJNf+ug="
    login = login_args(c, 1538054050)
    assert login == {
        "apiKey": "key-0001",
        "passphrase": "phrase-0001",
        "timestamp": "1538054050",
        "sign": "+LdIr8lkkvhr5hoA3g9TMC0+uQJ849ftAcocA/ouu4M=",
    }
    assert "22582" not in repr(c) and "phrase" not in repr(c)


def test_iso_timestamp_pads_milliseconds() -> None:
    assert iso_timestamp(1_700_000_000_007) == "2023-11-14T22:13:20.007Z"


def test_error_codes_map_to_kinds() -> None:
    assert isinstance(error_for(200, "51008", "Insufficient USDT"), OkxOrderRejected)
    dup = error_for(200, "51016", "Duplicated clOrdId")
    assert isinstance(dup, OkxOrderRejected) and dup.duplicate
    assert isinstance(error_for(200, "51603", "Order does not exist"), OkxUnknownOrder)
    assert isinstance(error_for(401, "50102", "Timestamp request expired"), OkxTimestampError)
    assert isinstance(error_for(401, "50113", "Invalid Sign"), OkxAuthError)
    assert isinstance(error_for(503, "50001", "Service temporarily unavailable"), OkxServerError)
    assert isinstance(error_for(200, "51402", "completed"), OkxCancelRefused)
    assert str(error_for(200, "51008", "Insufficient USDT")) == "HTTP 200 code 51008: Insufficient USDT"


# --- authentication at the fake ------------------------------------------------------------------


async def test_a_signed_order_is_accepted_and_kept() -> None:
    with anyio.fail_after(10):
        async with open_fake_okx_venue(prices=PRICES) as venue, client_for(venue) as client:
            ack = await client.place_order(limit("tdorder1"))
            order = await client.order_details(INST, cl_ord_id="tdorder1")
    assert ack.sCode == "0" and ack.clOrdId == "tdorder1" and ack.ordId == order.ordId
    assert (order.state, order.px, order.sz, order.side) == ("live", "29000", "0.001", "buy")
    assert venue.book.frozen["USDT"] == Decimal("29")


@pytest.mark.parametrize(
    ("credentials", "code"),
    [
        (creds(secret="wrong-secret-0001"), "50113"),
        (creds(passphrase="wrong-pass-0001"), "50105"),
        (creds(key="unknown-key-0001"), "50111"),
    ],
)
async def test_bad_credentials_are_refused_with_okx_codes(credentials: OkxCredentials, code: str) -> None:
    with anyio.fail_after(10):
        async with open_fake_okx_venue(prices=PRICES) as venue, client_for(venue, credentials) as client:
            with pytest.raises(OkxAuthError, match=rf"^HTTP 401 code {code}: "):
                await client.place_order(limit("tdauth1"))
    assert venue.book.orders == {}


async def test_a_demo_key_needs_the_simulated_trading_header() -> None:
    with anyio.fail_after(10):
        async with open_fake_okx_venue(prices=PRICES, simulated=True) as venue:
            async with client_for(venue) as live:
                with pytest.raises(OkxAuthError, match=r"^HTTP 401 code 50101: APIKey does not match"):
                    await live.balance()
            async with client_for(venue, simulated=True) as demo:
                balance = await demo.balance()
    assert {d.ccy: d.availBal for d in balance.details} == {"BTC": "1", "USDT": "10000"}


async def test_a_clock_behind_okx_is_measured_again_and_the_request_retried() -> None:
    with anyio.fail_after(10):
        async with open_fake_okx_venue(prices=PRICES) as venue, client_for(venue) as client:
            await client.ensure_clock()
            venue.skew_ms = 45_000  # OKX's clock moved 45 s ahead of what we measured
            ack = await client.place_order(limit("tdclock1"))
            stats = client.statistics()
    assert ack.sCode == "0"
    assert venue.codes("/api/v5/trade/order") == ["50102", "0"]
    assert stats.clock_syncs == 2 and 44_000 < stats.clock_offset_ms < 46_000


async def test_an_order_arriving_after_its_exptime_is_not_processed() -> None:
    with anyio.fail_after(10):
        async with open_fake_okx_venue(prices=PRICES) as venue, client_for(venue, expiry_ms=2000) as client:
            await client.ensure_clock()
            venue.skew_ms = 5000  # within OKX's 30 s timestamp window, past the request's expTime
            with pytest.raises(OkxOrderRejected, match=r"code 50037: Order expired"):
                await client.place_order(limit("tdexp1"))
    assert venue.book.orders == {}


# --- rate limits ---------------------------------------------------------------------------------


async def test_a_50011_blocks_the_endpoint_for_a_window_and_the_order_goes_once() -> None:
    with anyio.fail_after(15):
        async with (
            open_fake_okx_venue(prices=PRICES, limits={"place_order": 3}) as venue,
            client_for(venue) as client,
        ):
            for i in range(4):
                await client.place_order(limit(f"tdlimit{i}"))
            stats = client.statistics()
    assert venue.codes("/api/v5/trade/order") == ["0", "0", "0", "50011", "0"]
    assert [venue.order_requests(f"tdlimit{i}") for i in range(4)] == [1, 1, 1, 1]
    assert stats.rate_limited == 1 and client.limiter.penalties == 1


async def test_the_limiter_keeps_each_instrument_within_its_rule() -> None:
    rules = {
        "place_order": Rule("place_order", 3, 2.0, "instrument"),
        "sub_account_orders": Rule("sub_account_orders", 1000, 2.0, "user"),
    }
    with anyio.fail_after(15):
        async with (
            open_fake_okx_venue(
                prices=PRICES | {"ETH-USDT": Decimal("2000")}, limits={"place_order": 3}
            ) as venue,
            client_for(venue, limiter=OkxRateLimiter(rules)) as client,
        ):
            t0 = anyio.current_time()
            for i in range(3):  # another instrument has its own window
                await client.place_order(
                    OkxNewOrder(
                        instId="ETH-USDT",
                        side="buy",
                        ordType="limit",
                        sz="0.01",
                        clOrdId=f"tdeth{i}",
                        px="1000",
                    )
                )
            for i in range(5):
                await client.place_order(limit(f"tdwin{i}"))
            elapsed = anyio.current_time() - t0
            stats = client.statistics()
    assert "50011" not in venue.codes("/api/v5/trade/order")
    assert stats.throttled >= 1 and 1.9 < elapsed < 3.5


# --- errors and unknown outcomes -----------------------------------------------------------------


async def test_order_refusals_are_typed_with_the_orders_scode() -> None:
    with anyio.fail_after(10):
        async with open_fake_okx_venue(prices=PRICES) as venue, client_for(venue) as client:
            with pytest.raises(
                OkxOrderRejected, match=r"^HTTP 200 code 51008: Order failed. Insufficient USDT balance"
            ):
                await client.place_order(limit("tdbig1", sz="1"))
            await client.place_order(limit("tddup1"))
            with pytest.raises(OkxOrderRejected, match=r"code 51016: Duplicated clOrdId") as dup:
                await client.place_order(limit("tddup1"))
            with pytest.raises(OkxUnknownOrder, match=r"code 51603: Order does not exist"):
                await client.order_details(INST, cl_ord_id="tdnever1")
            await client.place_order(
                OkxNewOrder(
                    instId=INST, side="buy", ordType="market", sz="0.001", clOrdId="tdmkt1", tgtCcy="base_ccy"
                )
            )
            with pytest.raises(OkxCancelRefused, match=r"code 51402: "):
                await client.cancel_order(INST, cl_ord_id="tdmkt1")
            with pytest.raises(OkxOrderRejected, match=r"code 51121: "):
                await client.place_order(limit("tdlot1", sz="0.0010000001"))
    assert dup.value.duplicate


@pytest.mark.parametrize("fault", ["500", "disconnect", "garbage", "50013"])
async def test_an_order_whose_reply_is_lost_is_unknown_and_resolved_by_query(fault: Any) -> None:
    with anyio.fail_after(15):
        async with open_fake_okx_venue(prices=PRICES) as venue, client_for(venue) as client:
            venue.fail_next(fault, path="/api/v5/trade/order")
            with pytest.raises(
                OkxOutcomeUnknown, match=r"^POST /api/v5/trade/order tdlost1: outcome unknown: "
            ) as lost:
                await client.place_order(limit("tdlost1"))
            found = await client.resolve_unknown(INST, "tdlost1", deadline_ms=lost.value.deadline_ms)
    assert venue.order_requests("tdlost1") == (0 if fault == "50013" else 1)  # never re-sent
    if fault == "50013":  # not processed: not found once its expTime has passed
        assert found is None
    else:
        assert found is not None and found.clOrdId == "tdlost1" and found.state == "live"
    assert lost.value.deadline_ms > 0 and lost.value.client_order_id == "tdlost1"


async def test_a_hung_order_times_out_as_unknown_and_is_found() -> None:
    with anyio.fail_after(15):
        async with open_fake_okx_venue(prices=PRICES) as venue, client_for(venue, timeout_s=0.5) as client:
            venue.fail_next("hang", path="/api/v5/trade/order")
            with pytest.raises(OkxOutcomeUnknown, match=r"outcome unknown: TimeoutError"):
                await client.place_order(limit("tdhang1"))
            found = await client.resolve_unknown(INST, "tdhang1", deadline_ms=client.now_ms())
    assert found is not None and found.ordId


async def test_reads_are_retried_but_a_cancel_is_not() -> None:
    with anyio.fail_after(15):
        async with open_fake_okx_venue(prices=PRICES) as venue, client_for(venue) as client:
            await client.place_order(limit("tdread1"))
            venue.fail_next("500-unprocessed", path="/api/v5/trade/orders-pending")
            pending = await client.pending_orders(INST)
            venue.fail_next("500-unprocessed", path="/api/v5/trade/cancel-order")
            with pytest.raises(OkxServerError, match=r"^HTTP 500 code 50026: System error"):
                await client.cancel_order(INST, cl_ord_id="tdread1")
            stats = client.statistics()
    assert [o.clOrdId for o in pending] == ["tdread1"]
    assert venue.codes("/api/v5/trade/orders-pending") == ["50026", "0"]
    assert venue.codes("/api/v5/trade/cancel-order") == ["50026"]
    assert stats.retries == 1 and stats.failures == {"server_error": 2}


# --- endpoints -----------------------------------------------------------------------------------


async def test_pending_orders_and_fills_are_read_across_pages() -> None:
    with anyio.fail_after(20):
        async with open_fake_okx_venue(prices=PRICES, limits={"place_order": 1000}) as venue:
            rules = {
                n: Rule(n, 1000, 2.0, "user")
                for n in ("place_order", "sub_account_orders", "orders_pending", "fills")
            }
            async with client_for(venue, limiter=OkxRateLimiter(rules)) as client:
                for i in range(130):
                    await client.place_order(limit(f"tdpage{i}", px=str(20000 + i)))
                pending = await client.pending_orders(INST)
                await venue.trade(INST, Decimal("20000"))  # fills every resting buy
                fills = await client.fills(INST)
                one = await client.fills(INST, ord_id=pending[0].ordId)
    assert len(pending) == 130 and len({o.ordId for o in pending}) == 130
    assert len(fills) == 130 and len({f.tradeId for f in fills}) == 130
    assert [f.ordId for f in one] == [pending[0].ordId]
    assert all(f.execType == "M" and f.fillPx == f"{20000 + int(f.clOrdId[6:])}" for f in fills)


async def test_algo_orders_rest_trigger_and_cancel() -> None:
    with anyio.fail_after(10):
        async with open_fake_okx_venue(prices=PRICES) as venue, client_for(venue) as client:
            stop = OkxNewAlgo(
                instId=INST,
                side="sell",
                sz="0.5",
                algoClOrdId="tdstop1",
                slTriggerPx="29000",
                slOrdPx="-1",
                slTriggerPxType="last",
            )
            ack = await client.place_algo(stop)
            other = await client.place_algo(
                OkxNewAlgo(
                    instId=INST, side="sell", sz="0.1", algoClOrdId="tdtp1", tpTriggerPx="35000", tpOrdPx="-1"
                )
            )
            pending = await client.algos_pending(INST)
            await venue.trade(INST, Decimal("28950"))
            fired = await client.algo_details(algo_cl_ord_id="tdstop1")
            order = await client.order_details(INST, ord_id=fired.ordId)
            canceled = await client.cancel_algos([(INST, other.algoId)])
            left = await client.algos_pending(INST)
    assert ack.sCode == "0" and {a.algoClOrdId for a in pending} == {"tdstop1", "tdtp1"}
    assert fired.state == "effective" and order.algoClOrdId == "tdstop1" and order.state == "filled"
    assert order.clOrdId == "" and order.accFillSz == "0.5"
    assert canceled.sCode == "0" and left == []
