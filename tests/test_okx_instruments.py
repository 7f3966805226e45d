"""OKX spot instrument rules (adapters/okx/instruments.py, rules_loader.py) from the captured
``/api/v5/public/instruments?instType=SPOT`` reply: rounding, refusals by rule name, loading with
retries and a periodic refresh against the fake OKX REST server."""

from __future__ import annotations

import json
from decimal import Decimal

import aiohttp
import anyio
import msgspec
import pytest

from adapters.okx.instruments import OkxOrderCheck, OkxRestError, Refusal, parse_instruments
from adapters.okx.rules_loader import OkxRulesLoader
from tests.fake_okx import open_fake_okx, until
from tests.okx_capture import instruments_reply

D = Decimal
RULES = parse_instruments(instruments_reply())
BTC = RULES["BTC-USDT"]


def test_the_captured_reply_gives_every_spot_instruments_rules() -> None:
    assert len(RULES) == 513
    assert (BTC.symbol, BTC.base, BTC.quote, BTC.state) == ("BTC/USDT", "BTC", "USDT", "live")
    assert (BTC.tick_sz, BTC.lot_sz, BTC.min_sz, BTC.max_mkt_sz) == (
        D("0.1"),
        D("0.00000001"),
        D("0.00001"),
        D("1000000"),
    )


def test_prepare_rounds_to_the_tick_never_to_a_worse_price_and_the_size_down() -> None:
    buy = BTC.prepare("buy", "limit", D("0.123456789"), D("30000.06"))
    sell = BTC.prepare("sell", "limit", D("0.123456789"), D("30000.01"))
    assert buy == OkxOrderCheck(
        inst_id="BTC-USDT", side="buy", ord_type="limit", size=D("0.12345678"), price=D("30000.0")
    )
    assert isinstance(sell, OkxOrderCheck) and sell.price == D("30000.1") and sell.size == D("0.12345678")
    assert BTC.prepare("sell", "market", D("0.5")) == OkxOrderCheck(
        inst_id="BTC-USDT", side="sell", ord_type="market", size=D("0.5")
    )


@pytest.mark.parametrize(
    ("args", "rule", "reason"),
    [
        (("buy", "limit", D("0.000009"), D("30000")), "minSz", r"^size 0\.000009 is below minSz 0\.00001$"),
        (("buy", "limit", D("0"), D("30000")), "lotSz", r"^size 0 must be a positive number$"),
        (("buy", "limit", D("NaN"), D("30000")), "lotSz", r"^size NaN must be a positive number$"),
        (("buy", "limit", D("1"), None), "price", r"^a limit order needs a positive price, got None$"),
        (("buy", "limit", D("1"), D("-5")), "price", r"^a limit order needs a positive price, got -5$"),
        (("sell", "market", D("2000000")), "maxMktSz", r"^size 2000000 is above maxMktSz 1000000$"),
    ],
)
def test_prepare_refuses_with_the_rules_name(args: tuple[object, ...], rule: str, reason: str) -> None:
    refusal = BTC.prepare(*args)  # type: ignore[arg-type]
    assert isinstance(refusal, Refusal) and refusal.rule == rule
    with pytest.raises(AssertionError, match=reason):
        raise AssertionError(refusal.reason)


def test_check_refuses_what_is_not_exact_and_a_suspended_instrument() -> None:
    off_tick = BTC.check("buy", "limit", D("1"), D("30000.05"))
    off_lot = BTC.check("buy", "limit", D("0.000000015"), D("30000"))
    assert off_tick == Refusal("tickSz", "price 30000.05 is not a multiple of tickSz 0.1")
    assert off_lot == Refusal("lotSz", "size 0.000000015 is not a multiple of lotSz 0.00000001")
    buy_cap = BTC.check("buy", "market", D("40"), ref_price=D("30000"))
    assert isinstance(buy_cap, Refusal) and buy_cap.rule == "maxMktSz"  # 1.2M USDT of a 1M USDT cap
    suspended = msgspec.structs.replace(BTC, state="suspend")
    assert suspended.prepare("buy", "limit", D("1"), D("30000")) == Refusal(
        "state", "BTC-USDT is suspend: OKX takes no orders for it"
    )


def test_an_error_reply_or_a_bad_rule_raises() -> None:
    with pytest.raises(OkxRestError, match=r"^OKX 50011: Too Many Requests$"):
        parse_instruments('{"code":"50011","msg":"Too Many Requests","data":[]}')
    bad = json.loads(instruments_reply())
    bad["data"][0]["tickSz"] = "-0.1"
    with pytest.raises(OkxRestError, match=r"^OKX bad_reply: BTC-USDT tickSz '-0\.1' must be > 0$"):
        parse_instruments(json.dumps(bad))


@pytest.mark.anyio
async def test_rules_load_at_start_retry_busy_replies_and_refresh() -> None:
    async with open_fake_okx() as fake:
        fake.instruments_errors = ["50013", "50011"]  # busy, then rate limited, then the reply
        loader = OkxRulesLoader(fake.rest_url, ["BTC-USDT"], refresh_s=0.2, retry_s=0.01, simulated=True)
        async with anyio.create_task_group() as tg:
            await tg.start(loader.run)
            assert loader.rules["BTC-USDT"].tick_sz == D("0.1") and loader.loads == 1
            assert fake.instruments_requests == 3 and fake.simulated_headers == 3
            fake.instrument_state["BTC-USDT"] = "suspend"
            await until(lambda: loader.rules["BTC-USDT"].state == "suspend", 5)
            fake.instruments_errors = ["50001"] * 10  # down for longer than the retries
            loads = loader.loads
            await until(lambda: loader.load_errors >= 1, 5)
            assert loader.loads == loads and loader.rules["BTC-USDT"].state == "suspend"  # kept
            tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_a_failed_first_load_does_not_hold_up_the_start() -> None:
    loader = OkxRulesLoader("http://127.0.0.1:9", attempts=2, retry_s=0.01, timeout_s=1)
    async with aiohttp.ClientSession() as session:
        assert not await loader.refresh(session)
    assert loader.rules == {} and loader.load_errors == 1 and "ClientConnectorError" in loader.last_error
